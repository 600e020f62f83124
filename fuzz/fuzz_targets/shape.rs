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

/// Where the `config` target's GRUB configs load `boot_dir` files from.
pub const GRUB_DEVICE: &str = "(tftp,10.123.0.1)";

/// The words of a GRUB command line, read the way GRUB's shell reads the lines pxed writes:
/// split at spaces outside single quotes; each word one or more `'...'` runs (inside which
/// nothing is special), joined only by `\'` (a literal quote), which is exactly what quoting
/// with `'\''` produces. Nothing else may appear outside quotes: no `$`, `;`, `|`, `&`, `#`,
/// tab, newline or stray backslash. `None` if the line is not of that form; else the words'
/// values.
pub fn grub_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        match chars.peek() {
            None => return Some(words),
            Some(' ') => {
                chars.next();
                continue;
            }
            Some('\'') => {}
            Some(_) => return None,
        }
        let mut value = String::new();
        loop {
            // A quoted run.
            if chars.next() != Some('\'') {
                return None;
            }
            loop {
                match chars.next()? {
                    '\'' => break,
                    c => value.push(c),
                }
            }
            // The word ends at a space or the end of the line, or goes on with `\'` and
            // another quoted run.
            match chars.peek() {
                None | Some(' ') => break,
                Some('\\') => {
                    chars.next();
                    if chars.next() != Some('\'') {
                        return None;
                    }
                    value.push('\'');
                }
                Some(_) => return None,
            }
        }
        words.push(value);
    }
}

/// The command on `line` and its words, asserting the line is GRUB-safe as above.
fn grub_command(line: &str, command: &str) -> Vec<String> {
    let args = line
        .strip_prefix(command)
        .and_then(|rest| rest.strip_prefix(' '))
        .unwrap_or_else(|| panic!("not a `{command}` line: {line:?}"));
    let words = grub_words(args)
        .unwrap_or_else(|| panic!("`{command}` line is not only quoted words: {line:?}"));
    assert!(!words.is_empty(), "bare `{command}`: {line:?}");
    words
}

/// `path` of a kernel profile as GRUB must load it: a file under `boot_dir` on
/// [`GRUB_DEVICE`], or a plain `http://` URL on port 80 as `(http,HOST)PATH`.
fn check_grub_path(word: &str, path: &str, line: &str) {
    if !pxed::profiles::is_url(path) {
        let want = format!("{GRUB_DEVICE}/{}", path.trim_start_matches('/'));
        assert_eq!(word, want, "{path:?} loads from the wrong place: {line:?}");
        return;
    }
    let rest = word
        .strip_prefix("(http,")
        .unwrap_or_else(|| panic!("URL {path:?} not loaded over http: {line:?}"));
    let (host, file) = rest
        .split_once(')')
        .unwrap_or_else(|| panic!("unclosed device for {path:?}: {line:?}"));
    // GRUB ends the device at its first `)`, reads a `,` in it as the start of a port (2.12),
    // and `?`/`#` in the URL's authority would end the host.
    assert!(
        !host.is_empty() && !host.contains(['(', ')', ',', ':', '@', '[', ']', '?', '#', '/']),
        "URL {path:?} becomes the GRUB device (http,{host}): {line:?}"
    );
    assert!(
        file.starts_with('/'),
        "URL {path:?} becomes file {file:?} on (http,{host}): {line:?}"
    );
    let plain = [format!("http://{host}"), format!("http://{host}:80")];
    assert!(
        plain
            .iter()
            .any(|p| path == format!("{p}{file}") || (file == "/" && path == p)),
        "URL {path:?} is not (http,{host}){file} on port 80: {line:?}"
    );
}

/// Whether a GRUB line loads a kernel or initrd.
fn boots(line: &str) -> bool {
    let first = line.split_whitespace().next().unwrap_or_default();
    matches!(first, "linux" | "linuxefi" | "initrd" | "initrdefi")
}

/// Checks the lines every way out of a GRUB config ends with, which boot the local disk:
/// no kernel, a chainload of a disk's boot loader, and `exit 1` when there is none.
pub fn check_grub_local_disk(tail: &str) {
    assert!(
        tail.ends_with("\nsleep 5\nexit 1\n"),
        "local disk does not end with `exit 1`: {tail:?}"
    );
    assert!(
        !tail.lines().any(boots),
        "local disk boots a kernel: {tail:?}"
    );
    assert!(
        tail.lines()
            .any(|l| l.trim_start() == "chainloader ($root)$loader"),
        "local disk chainloads no boot loader: {tail:?}"
    );
    for c in tail.chars() {
        assert!(
            c == '\n' || !c.is_control(),
            "control character {c:?} in {tail:?}"
        );
    }
}

/// `line` is `echo` with one quoted word that starts with `start`.
fn check_echo(line: &str, start: &str) {
    let said = grub_command(line, "echo");
    assert!(
        said.len() == 1 && said[0].starts_with(start),
        "echo line {line:?} does not say {start:?}"
    );
}

/// Checks `text`, the GRUB config rendered for `profile` with [`GRUB_DEVICE`]. Returns the
/// words of the rendered cmdline (the `linux` words after the kernel) for the caller's own
/// checks; empty for a profile GRUB does not boot.
pub fn check_grub(text: &str, name: &str, mac: Mac, profile: &Profile) -> Vec<String> {
    assert!(
        text.ends_with("exit 1\n"),
        "config does not end with `exit 1`: {text:?}"
    );
    for c in text.chars() {
        assert!(
            c == '\n' || !c.is_control(),
            "control character {c:?} in {text:?}"
        );
    }
    let disk = pxed::grub::local_disk();
    check_grub_local_disk(&disk);
    let body = text
        .strip_suffix(disk.as_str())
        .unwrap_or_else(|| panic!("config does not end by booting the local disk: {text:?}"));
    let lines: Vec<&str> = body.lines().collect();
    let head = [
        format!("# pxed: profile {name} for {mac}"),
        "set timeout=0".to_string(),
    ];
    assert!(
        lines.len() >= 3 && lines[..2] == head,
        "bad config head: {text:?}"
    );
    let supported = pxed::grub::supports(profile);
    if let Profile::Kernel { kernel, initrd, .. } = profile {
        if std::iter::once(kernel)
            .chain(initrd)
            .any(|p| p.starts_with("https://"))
        {
            assert!(
                supported.is_err(),
                "GRUB has no TLS, yet supports {profile:?}"
            );
        }
    }
    match profile {
        Profile::Kernel { kernel, initrd, .. } if supported.is_ok() => {
            let n = usize::from(!initrd.is_empty());
            assert_eq!(
                lines.len(),
                6 + n,
                "kernel config has the wrong lines: {text:?}"
            );
            assert_eq!(
                lines[2],
                format!("echo 'pxed: booting profile {name} for {mac}'"),
                "{text:?}"
            );
            let linux = grub_command(lines[3], "linux");
            check_grub_path(&linux[0], kernel, lines[3]);
            if !initrd.is_empty() {
                let words = grub_command(lines[4], "initrd");
                assert_eq!(words.len(), initrd.len(), "{:?}", lines[4]);
                for (w, path) in words.iter().zip(initrd) {
                    check_grub_path(w, path, lines[4]);
                }
            }
            assert_eq!(lines[4 + n], "boot", "{text:?}");
            check_echo(
                lines[5 + n],
                &format!("pxed: profile {name} failed to boot"),
            );
            let cmdline = linux[1..].to_vec();
            for w in &cmdline {
                assert!(
                    !w.is_empty() && !w.contains(char::is_whitespace),
                    "cmdline word {w:?} in {:?}",
                    lines[3]
                );
            }
            cmdline
        }
        Profile::Local => {
            assert!(supported.is_ok(), "GRUB refuses local profile {name}");
            assert_eq!(
                lines[2..],
                [format!("echo 'pxed: {mac} boots from its local disk'")],
                "bad local config: {text:?}"
            );
            Vec::new()
        }
        _ => {
            match profile {
                // Refused only for a URL, never for files under `boot_dir`.
                Profile::Kernel { kernel, initrd, .. } => assert!(
                    std::iter::once(kernel)
                        .chain(initrd)
                        .any(|p| pxed::profiles::is_url(p)),
                    "kernel profile {name} of boot_dir files refused: {supported:?}"
                ),
                _ => assert!(supported.is_err(), "GRUB supports iPXE profile {name}"),
            }
            assert_eq!(lines.len(), 3, "refusal has the wrong lines: {text:?}");
            let said = grub_command(lines[2], "echo");
            assert!(
                said.len() == 1 && said[0].contains("cannot boot under GRUB"),
                "refusal says {:?}",
                lines[2]
            );
            assert!(!text.lines().any(boots), "refused profile boots: {text:?}");
            Vec::new()
        }
    }
}

/// Checks the configs pxed serves without rendering a profile: for a profile that cannot
/// be rendered, and for an address it knows no machine at.
pub fn check_grub_fallbacks(name: &str) {
    let disk = pxed::grub::local_disk();
    let c = pxed::grub::cannot_render(name);
    let body = c
        .strip_suffix(disk.as_str())
        .expect("cannot_render boots the disk");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 3, "{c:?}");
    assert_eq!(
        lines[0],
        format!("# pxed: profile {name} cannot be rendered")
    );
    assert_eq!(lines[1], "set timeout=0");
    check_echo(
        lines[2],
        &format!("pxed: profile {name} cannot be rendered"),
    );
    let u = pxed::grub::unknown_machine();
    assert!(u.ends_with(disk.as_str()), "{u:?}");
    assert!(!u.lines().any(boots), "{u:?}");
}
