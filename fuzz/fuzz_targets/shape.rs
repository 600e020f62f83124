//! Shared by the `http` and `config` targets: the exact shape of the iPXE scripts pxed writes
//! for kernel, chain and local profiles, read the way iPXE reads them (lines split at `\n`,
//! words split at ASCII whitespace, `||`, `&&` and `;` as whole words end a command, a word
//! starting with `#` comments out the rest of the line).

use pxed::mac::Mac;
use pxed::profiles::{url_for, Profile};

/// The words iPXE splits a line into (its `isspace`: space, `\t`, `\n`, `\v`, `\f`, `\r`).
pub fn words(line: &str) -> Vec<&str> {
    line.split([' ', '\t', '\n', '\x0b', '\x0c', '\r'])
        .filter(|w| !w.is_empty())
        .collect()
}

/// No word of a command's arguments ends the command or starts a comment.
pub fn check_args(line: &str, args: &[&str]) {
    for w in args {
        assert!(
            !matches!(*w, "||" | "&&" | ";"),
            "word `{w}` ends the command early in {line:?}"
        );
        assert!(
            !w.starts_with('#'),
            "word `{w}` starts a comment in {line:?}"
        );
    }
}

/// Checks `script`, the rendered script of `profile`, line by line. Returns the argument
/// words of the `kernel` line after the kernel URL and the `initrd=` names (the rendered
/// cmdline), for the caller's own checks. Script profiles are the operator's own text and
/// are not checked here.
pub fn check_script<'s>(
    script: &'s str,
    name: &str,
    mac: Mac,
    http: &str,
    profile: &Profile,
) -> Vec<&'s str> {
    if let Profile::Script { .. } = profile {
        return Vec::new();
    }
    assert!(
        script.ends_with('\n'),
        "script does not end with a newline: {script:?}"
    );
    for c in script.chars() {
        assert!(
            c == '\n' || !c.is_control(),
            "control character {c:?} in {script:?}"
        );
    }
    let lines: Vec<&str> = script[..script.len() - 1].split('\n').collect();
    let head = [
        "#!ipxe".to_string(),
        format!("# pxed: profile {name} for {mac}"),
    ];
    assert!(
        lines.len() >= 2 && lines[..2] == head,
        "bad script head: {script:?}"
    );
    match profile {
        Profile::Kernel { kernel, initrd, .. } => {
            let n = initrd.len();
            assert_eq!(
                lines.len(),
                9 + n,
                "kernel script has the wrong lines: {script:?}"
            );
            assert_eq!(
                lines[2],
                format!("echo pxed: booting profile {name} for {mac}")
            );
            let k = lines[3];
            let w = words(k);
            assert!(w.len() >= 5 + n, "short kernel line {k:?}");
            assert_eq!(w[0], "kernel", "{k:?}");
            assert_eq!(w[1], url_for(http, kernel), "{k:?}");
            assert_eq!(w[w.len() - 3..], ["||", "goto", "failed"], "{k:?}");
            assert!(k.ends_with(" || goto failed"), "{k:?}");
            for (i, path) in initrd.iter().enumerate() {
                assert!(w[2 + i].starts_with("initrd="), "{k:?}");
                assert!(!path.is_empty());
                assert_eq!(
                    lines[4 + i],
                    format!("initrd {} || goto failed", url_for(http, path))
                );
                check_args(lines[4 + i], &words(lines[4 + i])[1..2]);
            }
            let args = &w[1..w.len() - 3];
            check_args(k, args);
            let tail = [
                "boot || goto failed".to_string(),
                ":failed".to_string(),
                format!("echo pxed: profile {name} failed to boot, trying the next boot device"),
                "sleep 5".to_string(),
                "exit 1".to_string(),
            ];
            assert_eq!(lines[4 + n..], tail, "bad kernel script tail: {script:?}");
            w[2 + n..w.len() - 3].to_vec()
        }
        Profile::Chain { .. } => {
            assert_eq!(
                lines.len(),
                3,
                "chain script has the wrong lines: {script:?}"
            );
            let w = words(lines[2]);
            // One word, or none when the URL is only placeholders whose values are unknown
            // (`chain = "{{ hostname }}"` for a host without one): iPXE then refuses `chain`
            // with a usage error, which injects nothing.
            assert!(
                matches!(w.len(), 1 | 2),
                "chain line is not `chain URL`: {:?}",
                lines[2]
            );
            assert_eq!(w[0], "chain");
            assert!(lines[2].starts_with("chain "));
            check_args(lines[2], &w[1..]);
            Vec::new()
        }
        Profile::Local => {
            let want = [
                format!("echo pxed: {mac} boots from its local disk"),
                "exit 0".to_string(),
            ];
            assert_eq!(lines[2..], want, "bad local script: {script:?}");
            Vec::new()
        }
        Profile::Script { .. } => unreachable!(),
    }
}
