//! Unit tests of the single-value checks, and of the refusal of private files under
//! `boot_dir` through `parse` (lexical) and `load` (symlinks resolved).

use super::super::tests::{err_of, CONTRACT};
use super::super::{load, parse, ConfigError};
use super::*;

#[test]
fn profile_names() {
    for ok in ["fedora", "fedora-40.x86_64", "A.b_c-9", &"x".repeat(64)] {
        assert_eq!(check_profile_name(ok), Ok(()), "{ok}");
    }
    for bad in [
        "",
        "menu\nshell\n#",
        "a b",
        "a#b",
        "x;y",
        "a/b",
        "é",
        &"x".repeat(65),
    ] {
        assert!(check_profile_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_token_is_one_word_that_starts_no_comment() {
    for ok in [
        "vmlinuz",
        "f/initrd.img",
        "http://m/x?a=1#frag",
        "a${net0/mac}",
        "x#y",
    ] {
        assert_eq!(check_token(ok), Ok(()), "{ok}");
    }
    for bad in [
        "vmlinuz\nshell",
        "a\rb",
        "a\tb",
        "a\u{7f}",
        "a\u{85}",
        "a b",
        "a\u{a0}b",
        "#x",
        "# x",
    ] {
        assert!(check_token(bad).is_err(), "{bad:?}");
    }
    assert!(check_token("a\nb")
        .unwrap_err()
        .contains("control characters (\\n)"));
}

#[test]
fn a_cmdline_may_not_end_the_command_or_the_line() {
    for ok in [
        "",
        "console=ttyS0 quiet",
        "ip=${net0/ip} mac=${net0/mac}",
        "a||b x&&y k;v x#y",
        "  spaced   out  ",
    ] {
        assert_eq!(check_cmdline(ok), Ok(()), "{ok}");
    }
    for bad in [
        "console=ttyS0\nchain http://x/",
        "a\r",
        "a\tb",
        "quiet || shell",
        "quiet && shell",
        "quiet ; shell",
        "quiet #",
        "quiet #comment",
        "#",
    ] {
        assert!(check_cmdline(bad).is_err(), "{bad:?}");
    }
    assert!(check_cmdline("x || shell").unwrap_err().contains("`||`"));
}

#[test]
fn placeholders_are_judged_as_empty_values() {
    assert_eq!(without_placeholders("ip={{ ip }} h={{hostname}}"), "ip= h=");
    assert_eq!(without_placeholders("{{ip}}||"), "||");
    assert_eq!(without_placeholders("a {{ mac"), "a {{ mac");
    assert!(check_cmdline(&without_placeholders("x {{ip}}|| shell")).is_err());
    assert!(check_token(&without_placeholders("http://a/{{ mac }}")).is_ok());
    assert!(check_token(&without_placeholders("{{ mac }}#x")).is_err());
}

#[test]
fn lexical_normalisation() {
    let n = |p: &str| lexical(Path::new(p));
    assert_eq!(n("/srv/boot/./state/"), Path::new("/srv/boot/state"));
    assert_eq!(n("/srv/boot/x/../state"), Path::new("/srv/boot/state"));
    assert_eq!(n("/srv/boot/../../../state"), Path::new("/state"));
    assert_eq!(n("a/../../b"), Path::new("../b"));
}

#[test]
fn private_files_may_not_be_served() {
    let boot = Path::new("/srv/pxed/boot");
    let served = |p: &str| served_by_boot_dir("server.state_dir", Path::new(p), boot);
    for bad in [
        "/srv/pxed/boot",
        "/srv/pxed/boot/",
        "/srv/pxed/boot/state",
        "/srv/pxed/./boot/state",
        "/srv/pxed/x/../boot/state",
    ] {
        assert!(served(bad).is_some(), "{bad}");
    }
    for ok in [
        "/srv/pxed/boot2",
        "/srv/pxed/boot/../state",
        "/var/lib/pxed",
        "/srv",
    ] {
        assert_eq!(served(ok), None, "{ok}");
    }
    assert_eq!(
        served("/srv/pxed/boot").unwrap(),
        "/srv/pxed/boot is boot_dir itself, so TFTP and HTTP would serve the leases and one-shot boots kept there to anyone"
    );
    let token = served_by_boot_dir("admin.token_file", Path::new("/srv/pxed/boot/token"), boot);
    assert_eq!(
        token.unwrap(),
        "/srv/pxed/boot/token is inside boot_dir /srv/pxed/boot, so TFTP and HTTP would serve the admin token to anyone"
    );
    assert_eq!(
        served_by_boot_dir("admin.token_file", Path::new("token"), boot),
        None,
        "relative paths are judged by load, from the working directory"
    );
}

#[test]
fn state_dir_and_token_file_may_not_be_served_from_boot_dir() {
    let state = |to: &str| CONTRACT.replace("\"/var/lib/pxed\"", to);
    for (text, want_line, want_key, says) in [
        (
            state("\"/srv/pxed/boot/state\""),
            5,
            "server.state_dir",
            "inside boot_dir",
        ),
        (
            state("\"/srv/pxed/boot\""),
            5,
            "server.state_dir",
            "boot_dir itself",
        ),
        (
            state("\"/srv/x/../pxed/boot/.\""),
            5,
            "server.state_dir",
            "boot_dir itself",
        ),
        (
            format!("{CONTRACT}\n[admin]\ntoken_file = \"/srv/pxed/boot/t\"\n"),
            25,
            "admin.token_file",
            "the admin token",
        ),
    ] {
        let (line, key, msg) = err_of(&text);
        assert_eq!((line, key.as_str()), (want_line, want_key), "{msg}");
        assert!(msg.contains(says), "{msg}");
    }
    parse(
        Path::new("test.toml"),
        &state("\"/srv/pxed/boot/../state\""),
    )
    .unwrap();
    parse(Path::new("test.toml"), &state("\"/srv/pxed/boot2\"")).unwrap();
}

/// The same refusal once symlinks are resolved, which only `load` (not the pure `parse`) does.
#[test]
fn load_refuses_private_files_that_symlinks_put_in_boot_dir() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("boot")).unwrap();
    std::fs::write(d.join("boot/t"), "secret").unwrap();
    std::os::unix::fs::symlink(d.join("boot"), d.join("link")).unwrap();
    std::os::unix::fs::symlink(d.join("boot/t"), d.join("token")).unwrap();
    std::fs::write(d.join("real-token"), "secret").unwrap();
    let load_with = |state: &Path, token: &Path| {
        let text = CONTRACT
            .replace("/srv/pxed/boot", d.join("boot").to_str().unwrap())
            .replace("/var/lib/pxed", state.to_str().unwrap())
            + &format!("\n[admin]\ntoken_file = \"{}\"\n", token.display());
        std::fs::write(d.join("pxed.toml"), text).unwrap();
        load(&d.join("pxed.toml"))
    };
    let state_ok = d.join("state");
    load_with(&state_ok, &d.join("real-token")).unwrap();
    for (state, token, want_key) in [
        (
            d.join("link/state"),
            d.join("real-token"),
            "server.state_dir",
        ),
        (d.join("link"), d.join("real-token"), "server.state_dir"),
        (state_ok.clone(), d.join("token"), "admin.token_file"),
        (state_ok.clone(), d.join("link/new"), "admin.token_file"),
    ] {
        match load_with(&state, &token) {
            Err(ConfigError::Invalid { key, message, .. }) => {
                assert_eq!(key, want_key, "{message}");
                assert!(message.contains("resolves to"), "{message}");
            }
            other => panic!("{state:?} {token:?}: {other:?}"),
        }
    }
}

#[test]
fn a_chain_of_placeholders_only_and_raw_newlines_in_messages_are_refused() {
    let text = format!("{CONTRACT}\n[profiles.c]\nchain = \"{{{{ hostname }}}}\"\n");
    let (_, key, message) = err_of(&text);
    assert_eq!(key, "profiles.c.chain");
    assert!(message.contains("placeholders"), "{message}");
    // A value quoted in a message keeps its control characters escaped: one line.
    let text = CONTRACT.replace("[dhcp]\n", "[dhcp]\nmode = \"x\\ny\"\n");
    let (_, key, message) = err_of(&text);
    assert_eq!(key, "dhcp.mode");
    assert!(
        !message.contains('\n') && message.contains("x\\ny"),
        "{message}"
    );
}
