//! Edits to the config file from the admin API, made with `toml_edit` so the operator's
//! comments, ordering and formatting survive. The edit functions are pure (text in, text
//! out); [`write_atomically`] (in `edit/atomic.rs`) is the only IO, and callers validate the
//! new text before it.

use toml_edit::{value, Array, DocumentMut, Item, Table};

use crate::mac::Mac;

mod atomic;
pub(crate) use atomic::write_atomically;

/// Why an edit cannot be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum EditError {
    /// The file on disk is not TOML any more.
    #[error("the config file does not parse: {0}")]
    Unparsable(String),
    /// A field of the request body is wrong.
    #[error("{message}")]
    Field {
        /// The body field at fault.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The thing to change does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// A profile that hosts (or `[defaults]`) still use.
    #[error("profile {name} is used by {users}")]
    InUse {
        /// The profile.
        name: String,
        /// Who uses it.
        users: String,
    },
}

fn field(name: &str, message: impl Into<String>) -> EditError {
    EditError::Field {
        field: name.to_string(),
        message: message.into(),
    }
}

fn parse(text: &str) -> Result<DocumentMut, EditError> {
    text.parse::<DocumentMut>()
        .map_err(|e| EditError::Unparsable(e.to_string()))
}

/// The `hosts` key (as written) whose MAC equals `mac`, in any spelling.
fn host_key(doc: &DocumentMut, mac: &Mac) -> Option<String> {
    let hosts = doc.get("hosts")?.as_table_like()?;
    hosts
        .iter()
        .map(|(k, _)| k.to_string())
        .find(|k| k.parse::<Mac>().ok().as_ref() == Some(mac))
}

fn string_of(body: &serde_json::Value, name: &str) -> Result<Option<String>, EditError> {
    match body.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(field(name, format!("`{name}` must be a string"))),
    }
}

fn only_keys(body: &serde_json::Value, allowed: &[&str]) -> Result<(), EditError> {
    let obj = body
        .as_object()
        .ok_or_else(|| field("body", "the body must be a JSON object"))?;
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(field(
                k,
                format!(
                    "unknown field `{k}` (expected one of: {})",
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Sets `[hosts."MAC"]` from a body like
/// `{"profile": "p", "ip": "10.0.0.5", "hostname": "h", "secure_boot": true}`.
/// An existing entry keeps its key spelling, comments and position; a new one is appended.
pub(crate) fn put_host(
    text: &str,
    mac: &Mac,
    body: &serde_json::Value,
) -> Result<String, EditError> {
    only_keys(body, &["profile", "ip", "hostname", "secure_boot"])?;
    let secure_boot = match body.get("secure_boot") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Bool(b)) => Some(*b),
        Some(_) => return Err(field("secure_boot", "`secure_boot` must be true or false")),
    };
    let profile =
        string_of(body, "profile")?.ok_or_else(|| field("profile", "`profile` is required"))?;
    let ip = string_of(body, "ip")?;
    let hostname = string_of(body, "hostname")?;
    let mut doc = parse(text)?;
    let key = host_key(&doc, mac).unwrap_or_else(|| mac.to_string());
    let hosts = doc
        .entry("hosts")
        .or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        })
        .as_table_like_mut()
        .ok_or_else(|| field("hosts", "`hosts` is not a table in the file"))?;
    if hosts.get(&key).is_none() {
        hosts.insert(&key, Item::Table(Table::new()));
    }
    let entry = hosts
        .get_mut(&key)
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| field("hosts", "that host is not a table in the file"))?;
    for (name, v) in [
        ("profile", Some(profile)),
        ("ip", ip),
        ("hostname", hostname),
    ] {
        match v {
            Some(v) => set_keeping_comment(entry, name, v),
            None => {
                entry.remove(name);
            }
        }
    }
    match secure_boot {
        Some(b) => set_keeping_comment(entry, "secure_boot", b),
        None => {
            entry.remove("secure_boot");
        }
    }
    Ok(doc.to_string())
}

/// Sets `key = v`, keeping the comment and spacing around an existing value.
fn set_keeping_comment(
    table: &mut dyn toml_edit::TableLike,
    key: &str,
    v: impl Into<toml_edit::Value>,
) {
    match table.get_mut(key).and_then(Item::as_value_mut) {
        Some(old) => {
            let decor = old.decor().clone();
            *old = v.into();
            *old.decor_mut() = decor;
        }
        None => {
            table.insert(key, value(v.into()));
        }
    }
}

/// Removes `[hosts."MAC"]`.
pub(crate) fn delete_host(text: &str, mac: &Mac) -> Result<String, EditError> {
    let mut doc = parse(text)?;
    let key = host_key(&doc, mac).ok_or_else(|| EditError::NotFound(format!("host {mac}")))?;
    if let Some(hosts) = doc.get_mut("hosts").and_then(Item::as_table_like_mut) {
        hosts.remove(&key);
    }
    Ok(doc.to_string())
}

/// Sets `[profiles.NAME]` from a body with exactly the keys of one profile kind:
/// `kernel`/`initrd`/`cmdline`, `script`, `chain`, or `action`.
pub(crate) fn put_profile(
    text: &str,
    name: &str,
    body: &serde_json::Value,
) -> Result<String, EditError> {
    only_keys(
        body,
        &["kernel", "initrd", "cmdline", "script", "chain", "action"],
    )?;
    // The same rule as `config::parse`, checked first so the error names the body field.
    crate::config::check_profile_name(name).map_err(|m| field("name", m))?;
    let mut t = Table::new();
    if let Some(v) = string_of(body, "kernel")? {
        t.insert("kernel", value(v));
    }
    match body.get("initrd") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Array(items)) => {
            let mut a = Array::new();
            for i in items {
                let s = i
                    .as_str()
                    .ok_or_else(|| field("initrd", "`initrd` must be a list of strings"))?;
                a.push(s);
            }
            t.insert("initrd", value(a));
        }
        Some(_) => return Err(field("initrd", "`initrd` must be a list of strings")),
    }
    for key in ["cmdline", "script", "chain", "action"] {
        if let Some(v) = string_of(body, key)? {
            t.insert(key, value(v));
        }
    }
    let mut doc = parse(text)?;
    let profiles = doc
        .entry("profiles")
        .or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        })
        .as_table_like_mut()
        .ok_or_else(|| field("profiles", "`profiles` is not a table in the file"))?;
    match profiles.get_mut(name).and_then(Item::as_table_like_mut) {
        // Keep the existing table (and its comments); replace its keys.
        Some(existing) => {
            let old: Vec<String> = existing.iter().map(|(k, _)| k.to_string()).collect();
            for k in old {
                if !t.contains_key(&k) {
                    existing.remove(&k);
                }
            }
            for (k, v) in t.iter() {
                existing.insert(k, v.clone());
            }
        }
        None => {
            profiles.insert(name, Item::Table(t));
        }
    }
    Ok(doc.to_string())
}

/// Removes `[profiles.NAME]`, unless a host or `[defaults]` uses it.
pub(crate) fn delete_profile(text: &str, name: &str) -> Result<String, EditError> {
    let mut doc = parse(text)?;
    let mut users = Vec::new();
    if let Some(hosts) = doc.get("hosts").and_then(Item::as_table_like) {
        for (k, h) in hosts.iter() {
            if h.get("profile").and_then(Item::as_str) == Some(name) {
                users.push(format!("hosts.\"{k}\""));
            }
        }
    }
    if doc
        .get("defaults")
        .and_then(|d| d.get("profile"))
        .and_then(Item::as_str)
        == Some(name)
    {
        users.push("defaults.profile".to_string());
    }
    if !users.is_empty() {
        return Err(EditError::InUse {
            name: name.to_string(),
            users: users.join(", "),
        });
    }
    let profiles = doc
        .get_mut("profiles")
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| EditError::NotFound(format!("profile {name}")))?;
    if profiles.remove(name).is_none() {
        return Err(EditError::NotFound(format!("profile {name}")));
    }
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn golden(name: &str) -> String {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/golden")
                .join(name),
        )
        .unwrap()
    }

    fn mac(s: &str) -> Mac {
        s.parse().unwrap()
    }

    /// The golden-file test: edits keep every comment, the key order and the formatting.
    #[test]
    fn edits_keep_the_comments_of_a_commented_config() {
        let before = golden("commented.toml");
        let text = put_host(
            &before,
            &mac("DE:00:00:00:00:DE"),
            &json!({"profile": "disk", "hostname": "worker-0"}),
        )
        .unwrap();
        let text = put_host(
            &text,
            &mac("52-54-00-00-00-07"),
            &json!({"profile": "installer", "ip": "10.123.0.7"}),
        )
        .unwrap();
        let text = put_profile(&text, "rescue", &json!({"kernel": "rescue/vmlinuz", "initrd": ["rescue/initrd.img"], "cmdline": "console=ttyS0 rescue"})).unwrap();
        let text = delete_host(&text, &mac("de:00:00:00:00:df")).unwrap();
        let want =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/commented-after-edit.toml");
        if std::env::var_os("PXED_BLESS").is_some() {
            std::fs::write(&want, &text).unwrap(); // review the diff before committing it
        }
        assert_eq!(text, golden("commented-after-edit.toml"));
        crate::config::parse(Path::new("golden.toml"), &text).expect("the edited file is valid");
    }

    #[test]
    fn profile_in_use_cannot_be_deleted_and_bodies_are_checked() {
        let before = golden("commented.toml");
        assert!(matches!(
            delete_profile(&before, "installer"),
            Err(EditError::InUse { .. })
        ));
        assert!(matches!(
            delete_profile(&before, "nope"),
            Err(EditError::NotFound(_))
        ));
        let ok = delete_profile(
            &put_profile(&before, "spare", &json!({"action": "local"})).unwrap(),
            "spare",
        )
        .unwrap();
        assert_eq!(ok, before);
        assert_eq!(
            put_host(&before, &mac("de:00:00:00:00:de"), &json!({"profile": 5})),
            Err(field("profile", "`profile` must be a string"))
        );
        assert!(matches!(
            put_host(&before, &mac("de:00:00:00:00:de"), &json!({"profile": "x", "colour": "red"})),
            Err(EditError::Field { field, .. }) if field == "colour"
        ));
        assert!(
            matches!(put_host(&before, &mac("de:00:00:00:00:de"), &json!({})), Err(EditError::Field { field, .. }) if field == "profile")
        );
        assert_eq!(
            put_host(
                &before,
                &mac("de:00:00:00:00:de"),
                &json!({"profile": "x", "secure_boot": "yes"})
            ),
            Err(field("secure_boot", "`secure_boot` must be true or false"))
        );
        let sb = put_host(
            &before,
            &mac("de:00:00:00:00:5b"),
            &json!({"profile": "disk", "secure_boot": true}),
        )
        .unwrap();
        assert!(
            sb.ends_with("[hosts.\"de:00:00:00:00:5b\"]\nprofile = \"disk\"\nsecure_boot = true\n"),
            "{sb}"
        );
        let off = put_host(&sb, &mac("de:00:00:00:00:5b"), &json!({"profile": "disk"})).unwrap();
        assert!(!off.contains("secure_boot"), "{off}");
        assert!(matches!(
            delete_host(&before, &mac("02:00:00:00:00:01")),
            Err(EditError::NotFound(_))
        ));
    }

    /// An admin edit goes through `config::parse` before it is written: a cmdline or a name
    /// that would add an iPXE command is refused, with the key named.
    #[test]
    fn an_edit_cannot_inject_ipxe_commands() {
        let before = golden("commented.toml");
        for cmdline in [
            "console=ttyS0\nchain http://x/",
            "console=ttyS0 || shell",
            "x ; chain http://x/",
            "quiet #",
        ] {
            let text = put_profile(
                &before,
                "rescue",
                &json!({"kernel": "r/vmlinuz", "cmdline": cmdline}),
            )
            .unwrap();
            match crate::config::parse(Path::new("pxed.toml"), &text) {
                Err(crate::config::ConfigError::Invalid { key, .. }) => {
                    assert_eq!(key, "profiles.rescue.cmdline", "{cmdline:?}")
                }
                other => panic!("{cmdline:?} accepted: {other:?}"),
            }
        }
        let text = put_profile(&before, "rescue", &json!({"chain": "http://x/a\nshell"})).unwrap();
        assert!(crate::config::parse(Path::new("pxed.toml"), &text).is_err());
        for name in ["menu\nshell\n#", "a b", "", &"x".repeat(65)] {
            assert!(
                matches!(put_profile(&before, name, &json!({"action": "local"})), Err(EditError::Field { field, .. }) if field == "name"),
                "{name:?}"
            );
        }
        assert!(put_profile(&before, "fedora-40.x_1", &json!({"action": "local"})).is_ok());
    }
}
