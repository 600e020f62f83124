//! Any request path through `bootfs::lexical` and `grub::asked`, and any text as the
//! free-form values of an iPXE script (hostname, architecture name) and as a script template.
//! Any panic is a finding, and so is a broken invariant: an accepted path that climbs, is
//! absolute or has an empty component; a rendered value that brings whitespace, `$`, `#`,
//! `|`, `&`, `;` or a newline into a script; a kernel, chain or local script (or GRUB config)
//! whose lines are not exactly the ones pxed writes; a GRUB config name read as a MAC it does
//! not end with.
#![no_main]

use std::net::Ipv4Addr;
use std::path::{Component, Path};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode_str;
use pxed::config::Config;
use pxed::grub::{render as render_grub, supports, Asked};
use pxed::mac::Mac;
use pxed::profiles::{check_template, render_ipxe, render_template, Profile, Vars};

mod shape;

const CONFIG: &str = r#"
[server]
interface = "br1"
address = "10.123.0.1"
boot_dir = "/srv/pxed/boot"
state_dir = "/var/lib/pxed"
[dhcp]
subnet = "10.123.0.0/24"
range = ["10.123.0.100", "10.123.0.110"]
[profiles.kernel]
kernel = "fedora/vmlinuz"
initrd = ["fedora/initrd.gz", "https://mirror.example/extra.img?x=1"]
cmdline = "console=ttyS0 host={{ hostname }} arch={{arch}} mac={{mac}} ip={{ ip }} srv={{server}} url={{http}}/x"
[profiles.url]
kernel = "http://mirror.example/vmlinuz"
cmdline = "{{hostname}}x"
[profiles.chain]
chain = "{{ http }}/next/{{mac}}?host={{hostname}}&arch={{ arch }}&ip={{ip}}"
[profiles.local]
action = "local"
[profiles.grub]
kernel = "debian/linux"
initrd = ["debian/initrd.gz"]
cmdline = "mac={{mac}} ip={{ ip }} arch={{arch}} q='{{hostname}}'"
[profiles.script]
script = "custom.ipxe"
"#;

fn config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| pxed::config::parse(Path::new("fuzz.toml"), CONFIG).unwrap())
}

/// `value` as rendered: only `[A-Za-z0-9._:/%-]`, and it decodes back to `value`.
fn check_encoded(rendered: &str, value: &str, what: &str) {
    assert!(
        rendered
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/%-".contains(&b)),
        "{what} {value:?} rendered as {rendered:?}"
    );
    assert_eq!(
        percent_decode_str(rendered).decode_utf8().unwrap(),
        value,
        "{what}"
    );
}

fn check_lexical(requested: &str) {
    let Ok(p) = pxed::bootfs::lexical(requested) else {
        return;
    };
    assert!(!p.as_os_str().is_empty(), "{requested:?} -> empty path");
    assert!(
        p.is_relative() && !p.has_root(),
        "{requested:?} -> {p:?} is absolute"
    );
    let s = p.to_str().expect("lexical of a str is a str");
    assert!(
        !s.contains('\0') && !s.contains('\\'),
        "{requested:?} -> {p:?}"
    );
    for c in p.components() {
        match c {
            Component::Normal(n) => {
                assert!(
                    !n.is_empty() && n != ".." && n != ".",
                    "{requested:?} -> {p:?}"
                )
            }
            other => panic!("{requested:?} -> {p:?} has component {other:?}"),
        }
    }
    assert!(
        !s.split('/').any(|c| c.is_empty() || c == ".."),
        "{requested:?} -> {p:?}"
    );
    // Idempotent: what it accepted it accepts again unchanged.
    assert_eq!(pxed::bootfs::lexical(s).unwrap(), p);
}

/// A name `grub::asked` recognises is one GRUB asks for, with or without leading `/`.
fn check_asked(requested: &str) {
    let Some(asked) = pxed::grub::asked(requested) else {
        return;
    };
    let name = requested.trim_start_matches('/');
    match asked {
        Asked::Mac(m) => {
            let lower = name.to_ascii_lowercase();
            assert!(
                lower.ends_with(&format!("grub.cfg-01-{}", m.hyphenated()))
                    || lower.ends_with(&format!("grub.cfg-01-{m}")),
                "{requested:?} read as MAC {m}"
            );
        }
        Asked::ByAddress => assert_eq!(name, "grub/grub.cfg"),
        Asked::AddressPrefix => {
            let hex = name
                .strip_prefix("grub/grub.cfg-")
                .expect("a grub.cfg- name");
            assert!(
                (1..=8).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit()),
                "{requested:?} read as an address prefix"
            );
        }
    }
}

fn check_scripts(cfg: &Config, vars: &Vars<'_>, template: &str) {
    let hostname = vars.hostname.unwrap_or_default();
    let ip = vars.ip.map(|i| i.to_string()).unwrap_or_default();
    let mac = vars.mac.to_string();
    for (name, value) in [
        ("hostname", hostname),
        ("arch", vars.arch),
        ("mac", &mac),
        ("ip", &ip),
        ("http", vars.http),
    ] {
        let r = render_template(&format!("{{{{ {name} }}}}"), vars).unwrap();
        check_encoded(&r, value, name);
    }
    for (name, profile) in &cfg.profiles {
        let script = render_ipxe(name, profile, vars, Some(template));
        if let Profile::Script { .. } = profile {
            assert_eq!(script, render_template(template, vars));
            continue;
        }
        let script = script.expect("the fixed config's templates render");
        let cmdline = shape::check_script(&script, name, vars.mac, vars.http, profile);
        shape::check_grub_fallbacks(name);
        let grub = render_grub(name, profile, vars, shape::GRUB_DEVICE);
        let grub = grub.expect("the fixed config's templates render for GRUB");
        let grub_cmdline = shape::check_grub(&grub, name, vars.mac, profile);
        if supports(profile).is_ok() {
            // The same cmdline words as in the iPXE script: each value is one word.
            assert_eq!(grub_cmdline, cmdline, "GRUB cmdline of {name}: {grub:?}");
        }
        if name == "grub" {
            assert_eq!(grub_cmdline.len(), 4, "{grub:?}");
            check_encoded(
                grub_cmdline[3]
                    .strip_prefix("q='")
                    .unwrap()
                    .strip_suffix('\'')
                    .unwrap(),
                hostname,
                "grub hostname",
            );
        }
        match name.as_str() {
            "kernel" => {
                // Each placeholder sits inside a word with a fixed prefix, so every word
                // survives and holds exactly its own value.
                let want = [
                    ("console=", "ttyS0"),
                    ("host=", hostname),
                    ("arch=", vars.arch),
                    ("mac=", &mac),
                    ("ip=", &ip),
                    ("srv=", "10.123.0.1"),
                    ("url=", vars.http),
                ];
                assert_eq!(
                    cmdline.len(),
                    want.len(),
                    "kernel cmdline words {cmdline:?}"
                );
                for (w, (prefix, value)) in cmdline.iter().zip(want) {
                    let rest = w.strip_prefix(prefix).unwrap_or_else(|| panic!("{w:?}"));
                    let rest = if prefix == "url=" {
                        rest.strip_suffix("/x").unwrap_or_else(|| panic!("{w:?}"))
                    } else {
                        rest
                    };
                    check_encoded(rest, value, prefix);
                }
                let k = script.lines().nth(3).unwrap();
                let args = k.strip_suffix(" || goto failed").unwrap();
                assert!(!args.contains(['$', '#', '|', '&', ';']), "{k:?}");
            }
            "url" => {
                assert_eq!(cmdline.len(), 1, "{cmdline:?}");
                check_encoded(
                    cmdline[0].strip_suffix('x').unwrap(),
                    hostname,
                    "url hostname",
                );
            }
            "chain" => {
                let line = script.lines().nth(2).unwrap();
                let url = line.strip_prefix("chain ").unwrap();
                let rest = url.strip_prefix(vars.http).unwrap();
                let rest = rest.strip_prefix("/next/").unwrap();
                let (m, rest) = rest.split_once("?host=").unwrap();
                let (h, rest) = rest.split_once("&arch=").unwrap();
                let (a, i) = rest.split_once("&ip=").unwrap();
                check_encoded(m, &mac, "chain mac");
                check_encoded(h, hostname, "chain hostname");
                check_encoded(a, vars.arch, "chain arch");
                check_encoded(i, &ip, "chain ip");
            }
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check_lexical(&text);
    check_asked(&text);

    // The template checks `pxed check` runs agree with what rendering does.
    let cfg = config();
    let http = cfg.http_base();
    let mut b = [0u8; 11];
    for (d, s) in b.iter_mut().zip(data) {
        *d = *s;
    }
    let mut parts = text.splitn(3, '\0');
    let hostname = parts.next().unwrap_or_default();
    let arch = parts.next().unwrap_or("efi-x64");
    let mut vars = Vars {
        mac: Mac([b[0], b[1], b[2], b[3], b[4], b[5]]),
        ip: (b[10] & 1 == 1).then(|| Ipv4Addr::new(b[6], b[7], b[8], b[9])),
        hostname: Some(hostname),
        server: cfg.server.address,
        http: &http,
        arch,
    };
    let checked = check_template(&text);
    let rendered = render_template(&text, &vars);
    assert_eq!(
        checked.as_ref().err(),
        rendered.as_ref().err(),
        "check_template and render disagree"
    );
    if let Ok(r) = &rendered {
        if !text.contains("{{") {
            assert_eq!(r, &*text);
        }
    }
    check_scripts(cfg, &vars, &text);
    // A host without a hostname, a client without a lease.
    vars.hostname = None;
    vars.ip = None;
    check_scripts(cfg, &vars, &text);
});
