//! Hot reload on file change: watches the config file's directory (editors save by writing
//! a new file and renaming it over the old one, which a watch on the file itself would miss)
//! and reloads when the file's contents change. Contents are compared by hash, so touching
//! the file, or pxed writing back exactly what it loaded, does not reload.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Quiet time after the last event before reloading, so a save that is several writes
/// reloads once.
const SETTLE: Duration = Duration::from_millis(250);

/// Why the watch could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {dir} for changes to the config: {source}")]
pub struct WatchError {
    /// The watched directory.
    dir: PathBuf,
    /// The error.
    source: notify::Error,
}

/// The hash the watcher compares file contents by.
pub fn digest_bytes(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

fn digest(path: &Path) -> Option<u64> {
    std::fs::read(path).ok().map(|b| digest_bytes(&b))
}

/// Watches `file` and calls `reload` when its contents change, until `cancel` fires.
/// `own_write` returns the hash of what pxed itself last wrote there, which is not reloaded.
pub fn spawn(
    file: PathBuf,
    reload: impl Fn() + Send + 'static,
    own_write: impl Fn() -> Option<u64> + Send + 'static,
    cancel: CancellationToken,
) -> Result<(), WatchError> {
    // Not canonicalised: a Kubernetes ConfigMap mount is a symlink into a directory that is
    // replaced on every update, so the watch must stay on the directory the path names.
    let file = std::path::absolute(&file).unwrap_or(file);
    let dir = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let name = file.file_name().map(|n| n.to_os_string());
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if ev
                .paths
                .iter()
                .any(|p| p.file_name().map(|n| n.to_os_string()) == name)
            {
                let _ = tx.send(());
            }
        }
    })
    .map_err(|source| WatchError {
        dir: dir.clone(),
        source,
    })?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|source| WatchError {
            dir: dir.clone(),
            source,
        })?;
    let mut last = digest(&file);
    tokio::spawn(async move {
        // The watcher lives as long as this task.
        let _watcher = watcher;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                ev = rx.recv() => if ev.is_none() { return },
            }
            // Let the save finish: wait until no event for SETTLE.
            while let Ok(Some(())) = tokio::time::timeout(SETTLE, rx.recv()).await {}
            let now = digest(&file);
            if now.is_none() {
                warn!(file = %file.display(), "config file is gone; keeping the live config");
                continue;
            }
            if now == last {
                debug!(file = %file.display(), "config file touched but unchanged");
                continue;
            }
            if now == own_write() {
                debug!(file = %file.display(), "config file written by pxed itself; already live");
                last = now;
                continue;
            }
            last = now;
            reload();
        }
    });
    Ok(())
}
