//! Any text through config parsing and validation. Any panic is a finding, and so is a
//! config that validates but breaks what validation promises: a host or default naming a
//! missing profile, a profile name outside `[A-Za-z0-9._-]{1,64}`, a boot path or URL that is
//! not one safe word of an iPXE line, a cmdline with a control character, or any rendered
//! kernel, chain or local script whose lines are not exactly the ones pxed writes, or any
//! rendered GRUB config that is not exactly pxed's shape (a kernel GRUB can boot as quoted
//! GRUB words only, the rest refused or sent to the local disk). A refusal must name its
//! place as `file:line:col: key `...`: msg` with the key on one line.
#![no_main]

use std::net::Ipv4Addr;
use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use pxed::config::{Config, ConfigError};
use pxed::grub::{render as render_grub, supports};
use pxed::mac::Mac;
use pxed::profiles::{check_template, is_url, render_ipxe, render_template, Profile, Vars};

mod shape;

/// One word of an iPXE script line: no control character, no whitespace, no leading `#`.
fn token(what: &str, v: &str) {
    assert!(!v.is_empty(), "{what} is empty");
    assert!(
        !v.chars().any(|c| c.is_control() || c.is_whitespace()),
        "{what} = {v:?}"
    );
    assert!(!v.starts_with('#'), "{what} = {v:?}");
}

/// A path under `boot_dir`: relative, no `..`.
fn relative(what: &str, v: &str) {
    for c in Path::new(v).components() {
        assert!(
            matches!(c, Component::Normal(_) | Component::CurDir),
            "{what} = {v:?} leaves boot_dir"
        );
    }
}

fn boot_path(what: &str, v: &str, url_ok: bool) {
    token(what, v);
    if !(url_ok && is_url(v)) {
        relative(what, v);
    }
}

fn check_ok(cfg: &Config) {
    for (mac, h) in &cfg.hosts {
        assert!(
            cfg.profiles.contains_key(&h.profile),
            "host {mac} boots missing {}",
            h.profile
        );
        if let Some(n) = &h.hostname {
            assert!(
                !n.is_empty()
                    && n.len() <= 253
                    && n.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'),
                "host {mac} hostname {n:?}"
            );
        }
        if let Some(ip) = h.ip {
            assert!(
                cfg.dhcp.pool_for(ip).is_some(),
                "host {mac} pinned outside: {ip}"
            );
        }
    }
    if let Some(p) = &cfg.default_profile {
        assert!(cfg.profiles.contains_key(p), "default profile {p} missing");
    }
    let t = &cfg.tftp;
    assert!((512..=65464).contains(&t.max_blksize) && t.max_windowsize >= 1);
    assert!(t.unanswered_retries <= 10);
    for p in &cfg.dhcp.pools {
        if let Some((a, b)) = p.range {
            assert!(
                p.subnet.contains(&a) && p.subnet.contains(&b) && a <= b,
                "{p:?}"
            );
        }
    }
    let fs = &cfg.first_stage;
    for v in [
        &fs.bios,
        &fs.efi_ia32,
        &fs.efi_x64,
        &fs.efi_arm64,
        &fs.secure_boot_x64,
    ] {
        boot_path("first_stage", v, false);
    }
    for v in [&fs.http_ia32, &fs.http_x64] {
        boot_path("first_stage http", v, true);
    }
    // Empty (the default) offers arm64 HTTP Boot no first stage.
    if !fs.http_arm64.is_empty() {
        boot_path("first_stage http_arm64", &fs.http_arm64, true);
    }

    let http = cfg.http_base();
    // Each profile rendered for a host that has every value and for one that has none.
    let hostnames: Vec<Option<&str>> = std::iter::once(None)
        .chain(std::iter::once(Some("worker-0")))
        .chain(
            cfg.hosts
                .values()
                .filter_map(|h| h.hostname.as_deref())
                .take(2)
                .map(Some),
        )
        .collect();
    for (name, profile) in &cfg.profiles {
        shape::check_grub_fallbacks(name);
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        assert!(ok, "profile name {name:?}");
        match profile {
            Profile::Kernel {
                kernel,
                initrd,
                cmdline,
            } => {
                boot_path("kernel", kernel, true);
                for i in initrd {
                    boot_path("initrd", i, true);
                }
                assert!(
                    !cmdline.chars().any(char::is_control),
                    "cmdline {cmdline:?}"
                );
                assert!(check_template(cmdline).is_ok(), "cmdline {cmdline:?}");
            }
            Profile::Script { script } => boot_path("script", script, false),
            Profile::Chain { url } => {
                assert!(!url.chars().any(char::is_control), "chain {url:?}");
                assert!(check_template(url).is_ok(), "chain {url:?}");
            }
            Profile::Local => {}
        }
        for (i, hostname) in hostnames.iter().enumerate() {
            let vars = Vars {
                mac: Mac([0xde, 0, 0, 0, 0, i as u8]),
                ip: hostname.map(|_| Ipv4Addr::new(10, 123, 0, 100)),
                hostname: *hostname,
                server: cfg.server.address,
                http: &http,
                arch: if hostname.is_some() { "efi-x64" } else { "" },
            };
            if let Profile::Chain { url } = profile {
                let r = render_template(url, &vars).expect("a valid chain renders");
                assert!(
                    !r.chars().any(|c| c.is_whitespace() || c.is_control()),
                    "chain {r:?}"
                );
            }
            let script = render_ipxe(name, profile, &vars, Some("#!ipxe\n"));
            let script = script.expect("a valid profile renders");
            shape::check_script(&script, name, vars.mac, &http, profile);
            let grub = render_grub(name, profile, &vars, shape::GRUB_DEVICE);
            let grub = grub.expect("a valid profile renders for GRUB");
            let words = shape::check_grub(&grub, name, vars.mac, profile);
            if let (Profile::Kernel { cmdline, .. }, Ok(())) = (profile, supports(profile)) {
                // Every word of the rendered cmdline, as written, one GRUB word each.
                let rendered = render_template(cmdline, &vars).expect("a valid cmdline renders");
                let want: Vec<&str> = rendered.split_whitespace().collect();
                assert_eq!(words, want, "GRUB cmdline words of {cmdline:?}");
            }
        }
    }
}

fn check_err(text: &str, e: &ConfigError) {
    let ConfigError::Invalid {
        line, column, key, ..
    } = e
    else {
        panic!("parse returned {e:?}");
    };
    assert!(!key.is_empty());
    assert!(
        !key.chars().any(char::is_control),
        "key {key:?} holds a control character"
    );
    assert!(*line >= 1 && *column >= 1, "{e}");
    assert!(
        *line <= text.matches('\n').count() + 1,
        "line {line} past the end: {e}"
    );
    let s = e.to_string();
    let want = format!("fuzz.toml:{line}:{column}: key `{key}`: ");
    assert!(s.starts_with(&want), "{s:?} does not start with {want:?}");
    assert!(!s[..want.len()].contains('\n'));
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match pxed::config::parse(Path::new("fuzz.toml"), &text) {
        Ok(cfg) => check_ok(&cfg),
        Err(e) => check_err(&text, &e),
    }
});
