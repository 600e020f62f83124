//! One-shot boots: `PUT /api/v1/hosts/{mac}/next-boot` makes the machine's next network boot
//! use another profile once. The one-shot is spent when its iPXE script is served: that is
//! the moment the machine has committed to booting it. Later boots use the host's own profile
//! again. One-shots survive restarts in `state_dir/next-boot.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::mac::Mac;

/// A one-shot store failure.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub(crate) struct NextBootError {
    /// The state file.
    pub path: PathBuf,
    pub message: String,
}

/// Pending one-shot boots, MAC → profile name, mirrored to a file on every change.
#[derive(Debug)]
pub(crate) struct NextBoots {
    /// `state_dir/next-boot.json`.
    path: PathBuf,
    pending: Mutex<BTreeMap<Mac, String>>,
}

impl NextBoots {
    /// Loads the one-shots saved in `state_dir` (none if the file does not exist).
    pub(crate) fn load(state_dir: &Path) -> Result<NextBoots, NextBootError> {
        let path = state_dir.join("next-boot.json");
        let err = |message: String| NextBootError {
            path: path.clone(),
            message,
        };
        let pending = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let raw: BTreeMap<String, String> =
                    serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
                raw.into_iter()
                    .map(|(k, v)| {
                        k.parse::<Mac>()
                            .map(|m| (m, v))
                            .map_err(|e| err(e.to_string()))
                    })
                    .collect::<Result<_, _>>()?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(err(e.to_string())),
        };
        Ok(NextBoots {
            path,
            pending: Mutex::new(pending),
        })
    }

    #[cfg(test)]
    /// An empty set that is never saved (tests).
    pub(crate) fn in_memory() -> NextBoots {
        NextBoots {
            path: PathBuf::new(),
            pending: Mutex::new(BTreeMap::new()),
        }
    }

    fn save(&self, pending: &BTreeMap<Mac, String>) -> Result<(), NextBootError> {
        if self.path.as_os_str().is_empty() {
            return Ok(());
        }
        let raw: BTreeMap<String, &String> =
            pending.iter().map(|(m, p)| (m.to_string(), p)).collect();
        let text = serde_json::to_string_pretty(&raw).unwrap_or_default();
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        crate::edit::write_atomically(&self.path, &text).map_err(|e| NextBootError {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }

    /// The pending one-shot of a MAC.
    pub(crate) fn get(&self, mac: &Mac) -> Option<String> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(mac)
            .cloned()
    }

    /// Sets a one-shot; on disk before this returns.
    pub(crate) fn set(&self, mac: Mac, profile: String) -> Result<(), NextBootError> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let before = p.insert(mac, profile);
        if let Err(e) = self.save(&p) {
            match before {
                Some(b) => p.insert(mac, b),
                None => p.remove(&mac),
            };
            return Err(e);
        }
        Ok(())
    }

    /// Spends the one-shot of `mac` if it still names `profile`: one set again between the
    /// moment a script was rendered and this call is kept, not lost. Returns whether it
    /// was spent.
    pub(crate) fn spend(&self, mac: &Mac, profile: &str) -> Result<bool, NextBootError> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.get(mac).map(String::as_str) != Some(profile) {
            return Ok(false);
        }
        p.remove(mac);
        self.save(&p)?;
        Ok(true)
    }

    /// Cancels or spends a one-shot; returns the profile it named.
    pub(crate) fn take(&self, mac: &Mac) -> Result<Option<String>, NextBootError> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(profile) = p.remove(mac) else {
            return Ok(None);
        };
        self.save(&p)?;
        Ok(Some(profile))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shots_survive_a_restart_and_are_spent_once() {
        let dir = tempfile::tempdir().unwrap();
        let mac: Mac = "de:00:00:00:00:de".parse().unwrap();
        let n = NextBoots::load(dir.path()).unwrap();
        assert_eq!(n.get(&mac), None);
        n.set(mac, "installer".into()).unwrap();
        drop(n);
        let n = NextBoots::load(dir.path()).unwrap();
        assert_eq!(n.get(&mac).as_deref(), Some("installer"));
        assert_eq!(n.take(&mac).unwrap().as_deref(), Some("installer"));
        assert_eq!(n.take(&mac).unwrap(), None);
        let n = NextBoots::load(dir.path()).unwrap();
        assert_eq!(n.get(&mac), None, "spent one-shot came back");
    }

    #[test]
    fn a_one_shot_set_again_while_a_script_is_served_is_not_lost() {
        let n = NextBoots::in_memory();
        let mac: Mac = "de:00:00:00:00:de".parse().unwrap();
        n.set(mac, "installer".into()).unwrap();
        let served = n.get(&mac).unwrap();
        // An operator sets another one-shot before the script handler spends the first.
        n.set(mac, "rescue".into()).unwrap();
        assert!(!n.spend(&mac, &served).unwrap());
        assert_eq!(n.get(&mac).as_deref(), Some("rescue"));
        assert!(n.spend(&mac, "rescue").unwrap());
        assert_eq!(n.get(&mac), None);
    }
}
