//! Hot reload on file change. Three ways a config file changes, and all three are seen:
//! - an editor writes a new file and renames it over the old one (an event on the name);
//! - a plain write in place (a modify event on the name, or on the file a symlink points to);
//! - a Kubernetes ConfigMap update: the kubelet writes a new `..<timestamp>` directory, points
//!   `..data_tmp` at it, renames `..data_tmp` over `..data` and removes the old directory. The
//!   config's own name (`pxed.toml -> ..data/pxed.toml`) sees no event at all, so every `..`
//!   entry of the directory counts too.
//!
//! The watch is on the directory the path names (not canonicalised: the swap replaces what it
//! resolves to) plus the directory the path currently resolves into, re-resolved after every
//! change. Contents are compared by hash, so touching the file, an unrelated event, or pxed
//! writing back exactly what it loaded, does not reload.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Quiet time after the last event before reloading, so a save that is several writes
/// reloads once.
const SETTLE: Duration = Duration::from_millis(250);

/// The longest a stream of events can delay a reload.
const MAX_SETTLE: Duration = Duration::from_secs(2);

/// Why the watch could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {dir} for changes to the config: {source}")]
pub(crate) struct WatchError {
    /// The watched directory.
    dir: PathBuf,
    source: notify::Error,
}

/// The hash the watcher compares file contents by.
pub(crate) fn digest_bytes(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

fn digest(path: &Path) -> Option<u64> {
    std::fs::read(path).ok().map(|b| digest_bytes(&b))
}

/// Whether an event only read something: opened it, read it, or closed it unwritten.
fn is_read(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => false,
        EventKind::Access(_) => true,
        _ => false,
    }
}

/// Whether an event on `path` may have changed the config at `file`, which currently
/// resolves to `target`. Pure.
pub(crate) fn concerns(path: &Path, file: &Path, target: Option<&Path>) -> bool {
    let name = path.file_name();
    if name.is_some() && name == file.file_name() {
        return true;
    }
    // The kubelet's atomic writer: `..data`, `..data_tmp`, `..<timestamp>` next to the file.
    let hidden = name
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(".."));
    if hidden && path.parent() == file.parent() {
        return true;
    }
    target.is_some_and(|t| t == path)
}

/// The directory of what `file` resolves to, when that is not `file`'s own directory.
fn target_dir(file: &Path) -> (Option<PathBuf>, Option<PathBuf>) {
    let target = std::fs::canonicalize(file).ok();
    let named = file.parent().and_then(|d| std::fs::canonicalize(d).ok());
    let dir = target
        .as_ref()
        .and_then(|t| t.parent())
        .filter(|d| Some(*d) != named.as_deref())
        .map(Path::to_path_buf);
    (target, dir)
}

/// Watches `file` and calls `reload` when its contents change, until `cancel` fires.
/// `own_write` returns the hash of what pxed itself last wrote there, which is not reloaded.
pub(crate) fn spawn(
    file: PathBuf,
    reload: impl Fn() + Send + 'static,
    own_write: impl Fn() -> Option<u64> + Send + 'static,
    cancel: CancellationToken,
) -> Result<(), WatchError> {
    let file = std::path::absolute(&file).unwrap_or(file);
    let dir = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<PathBuf>>();
    let mut watched = Watched::new(file, watch_dir(&dir, tx)?);
    tokio::spawn(async move {
        loop {
            let paths = tokio::select! {
                _ = cancel.cancelled() => return,
                ev = rx.recv() => match ev { Some(p) => p, None => return },
            };
            if !watched.concerned_by(&paths) {
                continue;
            }
            if !settle(&mut rx).await {
                return;
            }
            if watched.changed(&own_write) {
                reload();
            }
        }
    });
    Ok(())
}

/// A watcher on `dir` that sends the paths of each event to `tx` (none when it must look
/// again at everything).
fn watch_dir(
    dir: &Path,
    tx: mpsc::UnboundedSender<Vec<PathBuf>>,
) -> Result<RecommendedWatcher, WatchError> {
    let error = |source| WatchError {
        dir: dir.to_path_buf(),
        source,
    };
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        match res {
            // Reads (pxed's own among them: every digest opens the file) change nothing, and
            // would wake the watcher again after each look, forever.
            Ok(ev) if is_read(&ev.kind) => {}
            // A lost event (queue overflow) or an error: look again, concerning any path.
            Ok(ev) if ev.need_rescan() || ev.paths.is_empty() => {
                let _ = tx.send(Vec::new());
            }
            Ok(ev) => {
                let _ = tx.send(ev.paths);
            }
            Err(_) => {
                let _ = tx.send(Vec::new());
            }
        }
    })
    .map_err(error)?;
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(error)?;
    Ok(watcher)
}

/// Lets a save finish: waits until no event has come for `SETTLE`, at most `MAX_SETTLE`.
/// False when the watcher is gone.
async fn settle(rx: &mut mpsc::UnboundedReceiver<Vec<PathBuf>>) -> bool {
    let deadline = tokio::time::Instant::now() + MAX_SETTLE;
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(SETTLE, rx.recv()).await {
            Ok(Some(_)) => continue,
            Ok(None) => return false,
            Err(_) => break,
        }
    }
    true
}

/// The config file under watch, what it resolved to, and the hash of what was last loaded.
struct Watched {
    file: PathBuf,
    watcher: RecommendedWatcher,
    target: Option<PathBuf>,
    /// The second watched directory (see [`target_dir`]).
    extra: Option<PathBuf>,
    last: Option<u64>,
}

impl Watched {
    fn new(file: PathBuf, mut watcher: RecommendedWatcher) -> Self {
        let (target, extra) = target_dir(&file);
        follow(&mut watcher, None, extra.as_deref());
        let last = digest(&file);
        Watched {
            file,
            watcher,
            target,
            extra,
            last,
        }
    }

    fn concerned_by(&self, paths: &[PathBuf]) -> bool {
        paths.is_empty()
            || paths
                .iter()
                .any(|p| concerns(p, &self.file, self.target.as_deref()))
    }

    /// Re-resolves the file, and says whether its contents differ from what is live.
    fn changed(&mut self, own_write: &impl Fn() -> Option<u64>) -> bool {
        let file = &self.file;
        let (target, extra) = target_dir(file);
        if extra != self.extra {
            follow(&mut self.watcher, self.extra.as_deref(), extra.as_deref());
            self.extra = extra;
        }
        self.target = target;
        let now = digest(file);
        if now.is_none() {
            warn!(file = %file.display(), "config file is gone; keeping the live config");
            return false;
        }
        if now == self.last {
            debug!(file = %file.display(), "config file touched but unchanged");
            return false;
        }
        self.last = now;
        if now == own_write() {
            debug!(file = %file.display(), "config file written by pxed itself; already live");
            return false;
        }
        true
    }
}

/// Moves the second watch from the directory the file resolved into before to the one it
/// resolves into now. A removed directory has already lost its watch.
fn follow(watcher: &mut RecommendedWatcher, old: Option<&Path>, new: Option<&Path>) {
    if let Some(old) = old {
        let _ = watcher.unwatch(old);
    }
    if let Some(new) = new {
        if let Err(e) = watcher.watch(new, RecursiveMode::NonRecursive) {
            warn!(dir = %new.display(), error = %e, "cannot watch the directory the config resolves into; in-place edits there are not seen");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::concerns;
    use std::path::Path;

    #[test]
    fn events_that_can_change_the_config_are_recognised() {
        let file = Path::new("/etc/pxed/pxed.toml");
        let target = Path::new("/etc/pxed/..2026_11_25_01_02_03.123/pxed.toml");
        let yes = [
            "/etc/pxed/pxed.toml",
            "/etc/pxed/..data",
            "/etc/pxed/..data_tmp",
            "/etc/pxed/..2026_11_25_01_02_03.123",
            "/etc/pxed/..2026_11_25_01_02_03.123/pxed.toml",
        ];
        for p in yes {
            assert!(concerns(Path::new(p), file, Some(target)), "{p}");
        }
        let no = [
            "/etc/pxed/admin.token",
            "/etc/pxed/leases.db-wal",
            "/etc/other/..data",
            "/etc/pxed/..2026_11_25_01_02_03.123/other.toml",
        ];
        for p in no {
            assert!(!concerns(Path::new(p), file, Some(target)), "{p}");
        }
    }
}
