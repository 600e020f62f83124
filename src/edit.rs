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
        message: String,
    },
    /// The thing to change does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// A profile that hosts (or `[defaults]`) still use.
    #[error("profile {name} is used by {users}")]
    InUse {
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

// `put_host` writes this to `[hosts."MAC"]`. Its doc comments are the OpenAPI document's.
/// `PUT /api/v1/hosts/{mac}` body. `profile` is required; any other key that is omitted or
/// `null` is removed from the host's entry in the TOML file.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
pub(crate) struct HostBody {
    // An `Option`, so that a body without it is refused naming `profile`, not the body.
    /// Required: the profile the host boots.
    #[schema(required = true)]
    pub(crate) profile: Option<String>,
    pub(crate) ip: Option<String>,
    pub(crate) hostname: Option<String>,
    /// Omitted or `null`: the host takes `[defaults] secure_boot`.
    pub(crate) secure_boot: Option<bool>,
}

/// Sets `[hosts."MAC"]` from `body`. An existing entry keeps its key spelling, comments and
/// position; a new one is appended.
pub(crate) fn put_host(text: &str, mac: &Mac, body: &HostBody) -> Result<String, EditError> {
    let profile = body
        .profile
        .clone()
        .ok_or_else(|| field("profile", "`profile` is required"))?;
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
        ("ip", body.ip.clone()),
        ("hostname", body.hostname.clone()),
    ] {
        match v {
            Some(v) => set_keeping_comment(entry, name, v),
            None => {
                entry.remove(name);
            }
        }
    }
    match body.secure_boot {
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

// `put_profile` writes these keys; `config::parse` then checks them as it checks the file.
// The API's answers (`admin::views::ProfileView`) reuse this type, flattened. Its doc
// comments are the OpenAPI document's.
/// `PUT /api/v1/profiles/{name}` body: the keys of exactly one profile kind, as in the TOML
/// file: `kernel` (with `initrd` and `cmdline`), `script`, `chain`, or `action = "local"`.
#[derive(Debug, Default, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ProfileBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) kernel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) initrd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cmdline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) script: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) chain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) action: Option<String>,
}

/// Sets `[profiles.NAME]` to `body`'s keys. An existing table keeps its comments.
pub(crate) fn put_profile(text: &str, name: &str, body: &ProfileBody) -> Result<String, EditError> {
    // The same rule as `config::parse`, checked first so the error names the body field.
    crate::config::check_profile_name(name).map_err(|m| field("name", m))?;
    let mut t = Table::new();
    if let Some(v) = &body.kernel {
        t.insert("kernel", value(v));
    }
    if let Some(items) = &body.initrd {
        t.insert("initrd", value(items.iter().collect::<Array>()));
    }
    for (key, v) in [
        ("cmdline", &body.cmdline),
        ("script", &body.script),
        ("chain", &body.chain),
        ("action", &body.action),
    ] {
        if let Some(v) = v {
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

    fn host(v: serde_json::Value) -> HostBody {
        serde_json::from_value(v).unwrap()
    }

    fn profile(v: serde_json::Value) -> ProfileBody {
        serde_json::from_value(v).unwrap()
    }

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
            &host(json!({"profile": "disk", "hostname": "worker-0"})),
        )
        .unwrap();
        let text = put_host(
            &text,
            &mac("52-54-00-00-00-07"),
            &host(json!({"profile": "installer", "ip": "10.123.0.7"})),
        )
        .unwrap();
        let text = put_profile(&text, "rescue", &profile(json!({"kernel": "rescue/vmlinuz", "initrd": ["rescue/initrd.img"], "cmdline": "console=ttyS0 rescue"}))).unwrap();
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
            &put_profile(&before, "spare", &profile(json!({"action": "local"}))).unwrap(),
            "spare",
        )
        .unwrap();
        assert_eq!(ok, before);
        assert!(
            matches!(put_host(&before, &mac("de:00:00:00:00:de"), &host(json!({}))), Err(EditError::Field { field, .. }) if field == "profile")
        );
        let sb = put_host(
            &before,
            &mac("de:00:00:00:00:5b"),
            &host(json!({"profile": "disk", "secure_boot": true})),
        )
        .unwrap();
        assert!(
            sb.ends_with("[hosts.\"de:00:00:00:00:5b\"]\nprofile = \"disk\"\nsecure_boot = true\n"),
            "{sb}"
        );
        let off = put_host(
            &sb,
            &mac("de:00:00:00:00:5b"),
            &host(json!({"profile": "disk"})),
        )
        .unwrap();
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
                &profile(json!({"kernel": "r/vmlinuz", "cmdline": cmdline})),
            )
            .unwrap();
            match crate::config::parse(Path::new("pxed.toml"), &text) {
                Err(crate::config::ConfigError::Invalid { key, .. }) => {
                    assert_eq!(key, "profiles.rescue.cmdline", "{cmdline:?}")
                }
                other => panic!("{cmdline:?} accepted: {other:?}"),
            }
        }
        let text = put_profile(
            &before,
            "rescue",
            &profile(json!({"chain": "http://x/a\nshell"})),
        )
        .unwrap();
        assert!(crate::config::parse(Path::new("pxed.toml"), &text).is_err());
        for name in ["menu\nshell\n#", "a b", "", &"x".repeat(65)] {
            assert!(
                matches!(put_profile(&before, name, &profile(json!({"action": "local"}))), Err(EditError::Field { field, .. }) if field == "name"),
                "{name:?}"
            );
        }
        assert!(put_profile(
            &before,
            "fedora-40.x_1",
            &profile(json!({"action": "local"}))
        )
        .is_ok());
    }
}
