//! Checks on single values, the refusal of private files under `boot_dir`, and the warnings
//! about files missing under `boot_dir`.

use std::path::{Component, Path, PathBuf};

use super::locate::{dotted, invalid, line_col, span_of};
use super::{Config, ConfigError, Warning};
use crate::profiles::{self, Profile};

/// Refuses absolute paths and any `..`, so a configured file can never leave `boot_dir`.
pub(crate) fn check_relative(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("must not be empty".into());
    }
    if p.contains('\0') {
        return Err("must not contain NUL".into());
    }
    let path = Path::new(p);
    for c in path.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(format!("`{p}` escapes boot_dir through `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("`{p}` must be relative to boot_dir"))
            }
        }
    }
    Ok(())
}

/// Longest profile name, so names stay readable in logs, URLs and script comments.
const MAX_PROFILE_NAME: usize = 64;

/// Profile names are `[A-Za-z0-9._-]{1,64}`: a name is printed into the rendered iPXE script
/// (a comment and an `echo`) and into admin API URLs, so it may hold nothing that ends a line,
/// starts a comment or separates iPXE commands.
pub(crate) fn check_profile_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_PROFILE_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "profile names are 1 to {MAX_PROFILE_NAME} letters, digits, `.`, `_` and `-`"
        ))
    }
}

/// For a value that is one word of an iPXE script line (a kernel, initrd or chain URL, a
/// script or first-stage path): iPXE splits a line on whitespace and has no quoting, so a
/// space or newline would add arguments or whole commands, and a word that starts with `#`
/// comments out the rest of the line (pxed's `|| goto failed` included).
pub(crate) fn check_token(value: &str) -> Result<(), String> {
    check_no_control(value)?;
    if value.chars().any(char::is_whitespace) {
        return Err("must not contain whitespace: it is a single word of the iPXE script".into());
    }
    if value.starts_with('#') {
        return Err("must not start with `#`: iPXE would read it as a comment".into());
    }
    Ok(())
}

/// For a kernel command line, which is several words of the iPXE `kernel` line: none of them
/// may end the command (`||`, `&&`, `;`) or start a comment (`#`), and no control character
/// may end the line. `${...}` stays allowed on purpose: operators pass iPXE settings such as
/// `${net0/mac}` to the kernel, and iPXE expands a setting inside the word it is in; it
/// cannot add a command terminator, which iPXE finds before it expands settings.
pub(crate) fn check_cmdline(value: &str) -> Result<(), String> {
    check_no_control(value)?;
    for word in value.split_whitespace() {
        if matches!(word, "||" | "&&" | ";") {
            return Err(format!(
                "`{word}` would end the iPXE `kernel` command and start another one"
            ));
        }
        if word.starts_with('#') {
            return Err(format!(
                "`{word}` starts with `#`, which makes iPXE ignore the rest of the line"
            ));
        }
    }
    Ok(())
}

/// A `{{ var }}` template as the words iPXE could see once it is rendered with every value
/// empty: each placeholder is dropped. Rendered values are percent-encoded to
/// `[A-Za-z0-9._:/%-]` (see [`crate::profiles::render_template`]), so a value can only make a
/// word longer; with every value empty a word is at its most dangerous (`{{ip}}||` is `||`).
/// An unclosed `{{` is kept as written; `check_template` refuses it anyway.
pub(crate) fn without_placeholders(tpl: &str) -> String {
    let mut out = String::with_capacity(tpl.len());
    let mut rest = tpl;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        out.push_str(&rest[..start]);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// Refuses any control character: a newline or carriage return ends the iPXE script line and
/// starts a new command; tab, DEL and the rest have no business in a path or command line.
pub(crate) fn check_no_control(value: &str) -> Result<(), String> {
    match value.chars().find(|c| c.is_control()) {
        None => Ok(()),
        Some(c) => Err(format!(
            "must not contain control characters ({}): a newline would start a new iPXE command",
            c.escape_default()
        )),
    }
}

pub(super) fn valid_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// `path` with `.` dropped and `..` applied to the component before it (never above `/`),
/// without asking the filesystem: the pure half of "is this inside `boot_dir`?".
pub(crate) fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if out.file_name().is_some() {
                    out.pop();
                } else if !out.has_root() {
                    out.push(c);
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Why `path` (the value of `key`) must not be where it is, if it is `boot_dir` or inside it:
/// TFTP and HTTP serve every file under `boot_dir` to anyone on the boot network, so a lease
/// database or an admin token there would be handed out. Both paths are compared component by
/// component, after [`lexical`]; a relative path is not judged here (see [`private_paths`]).
pub(crate) fn served_by_boot_dir(key: &str, path: &Path, boot_dir: &Path) -> Option<String> {
    if !path.is_absolute() || !boot_dir.is_absolute() {
        return None;
    }
    let (p, boot) = (lexical(path), lexical(boot_dir));
    if !p.starts_with(&boot) {
        return None;
    }
    let place = if p == boot {
        "is boot_dir itself".to_string()
    } else {
        format!("is inside boot_dir {}", boot_dir.display())
    };
    Some(format!(
        "{} {place}, so TFTP and HTTP would serve {} to anyone",
        path.display(),
        served_what(key)
    ))
}

fn served_what(key: &str) -> &'static str {
    if key == "admin.token_file" {
        "the admin token"
    } else {
        "the leases and one-shot boots kept there"
    }
}

/// `path` with every symlink resolved as far as it exists: the deepest existing ancestor is
/// canonicalised and the rest appended, so a `state_dir` that pxed has yet to create is still
/// judged by where its parent really is.
fn resolved(path: &Path) -> Option<PathBuf> {
    if let Ok(real) = path.canonicalize() {
        return Some(real);
    }
    let path = lexical(&std::path::absolute(path).ok()?);
    let mut rest = Vec::new();
    let mut at = path.as_path();
    loop {
        if let Ok(real) = at.canonicalize() {
            let mut out = real;
            out.extend(rest.iter().rev());
            return Some(lexical(&out));
        }
        rest.push(at.file_name()?.to_os_string());
        at = at.parent()?;
    }
}

/// The filesystem half of [`served_by_boot_dir`], run by `load`: the same refusal once symlinks
/// are resolved (a `state_dir` reached through a link into `boot_dir`, a `token_file` that is
/// a link to a file in it), and relative paths judged from the working directory.
pub(super) fn private_paths(c: &Config, text: &str) -> Result<(), ConfigError> {
    let Some(boot) = resolved(&c.server.boot_dir) else {
        return Ok(());
    };
    let candidates = [
        (["server", "state_dir"], Some(&c.server.state_dir)),
        (["admin", "token_file"], c.admin.token_file.as_ref()),
    ];
    for (path, value) in candidates {
        let Some(value) = value else { continue };
        let Some(real) = resolved(value) else {
            continue;
        };
        if real.starts_with(&boot) {
            let key = dotted(&path);
            let message = format!(
                "{} resolves to {}, inside boot_dir {} (resolved: {}), so TFTP and HTTP would serve {} to anyone",
                value.display(),
                real.display(),
                c.server.boot_dir.display(),
                boot.display(),
                served_what(&key)
            );
            return Err(invalid(&c.source, text, span_of(text, &path), key, message));
        }
    }
    Ok(())
}

/// Warns about boot files named by the config that are not under `boot_dir`.
pub(super) fn missing_files(c: &Config, text: &str) -> Vec<Warning> {
    let mut out = Vec::new();
    let mut check = |path: Vec<String>, file: &str| {
        if profiles::is_url(file) {
            return;
        }
        let full = c.server.boot_dir.join(file);
        if !full.is_file() {
            let refs: Vec<&str> = path.iter().map(String::as_str).collect();
            out.push(Warning {
                key: dotted(&refs),
                line: span_of(text, &refs).map(|s| line_col(text, s.start).0),
                message: format!("file {} does not exist", full.display()),
            });
        }
    };
    if !c.server.boot_dir.is_dir() {
        return vec![Warning {
            key: "server.boot_dir".into(),
            line: span_of(text, &["server", "boot_dir"]).map(|s| line_col(text, s.start).0),
            message: format!("{} is not a directory", c.server.boot_dir.display()),
        }];
    }
    let fs = &c.first_stage;
    for (k, v) in [("bios", &fs.bios), ("efi_x64", &fs.efi_x64)] {
        check(vec!["first_stage".into(), k.into()], v);
    }
    // Secure Boot hosts need the signed shim and the GRUB it loads from its directory.
    if c.default_secure_boot || c.hosts.values().any(|h| h.secure_boot == Some(true)) {
        let grub = match c.first_stage.secure_boot_x64.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/grubx64.efi"),
            None => "grubx64.efi".to_string(),
        };
        for v in [&fs.secure_boot_x64, &grub] {
            check(vec!["first_stage".into(), "secure_boot_x64".into()], v);
        }
    }
    for (name, p) in &c.profiles {
        match p {
            Profile::Kernel { kernel, initrd, .. } => {
                check(
                    vec!["profiles".into(), name.clone(), "kernel".into()],
                    kernel,
                );
                for i in initrd {
                    check(vec!["profiles".into(), name.clone(), "initrd".into()], i);
                }
            }
            Profile::Script { script } => check(
                vec!["profiles".into(), name.clone(), "script".into()],
                script,
            ),
            Profile::Chain { .. } | Profile::Local => {}
        }
    }
    out
}

/// Refuses script templates (that exist) which use unknown variables.
pub(super) fn check_script_templates(c: &Config, text: &str) -> Result<Vec<Warning>, ConfigError> {
    for (name, p) in &c.profiles {
        if let Profile::Script { script } = p {
            if let Ok(body) = std::fs::read_to_string(c.server.boot_dir.join(script)) {
                profiles::check_template(&body).map_err(|e| {
                    let path = ["profiles", name.as_str(), "script"];
                    invalid(
                        &c.source,
                        text,
                        span_of(text, &path),
                        dotted(&path),
                        format!("{script}: {e}"),
                    )
                })?;
            }
        }
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests;
