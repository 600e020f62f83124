//! Checks on single values, and the warnings about files missing under `boot_dir`.

use std::path::{Component, Path};

use super::locate::{dotted, invalid, line_col, span_of};
use super::{Config, ConfigError, Warning};
use crate::profiles::{self, Profile};

/// Refuses absolute paths and any `..`, so a configured file can never leave `boot_dir`.
pub fn check_relative(p: &str) -> Result<(), String> {
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

pub(super) fn valid_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
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
