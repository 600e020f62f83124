//! The boot directory: the one tree TFTP and HTTP may read. Every requested path is
//! resolved here, and nothing that leaves `boot_dir` — by `..`, an absolute path or a
//! symlink — is ever opened.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Why a requested path is refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PathError {
    /// Empty, NUL, or otherwise not a file name.
    #[error("invalid path `{0}`")]
    Invalid(String),
    /// Climbs out of `boot_dir` through `..` or a symlink.
    #[error("path `{0}` leaves boot_dir")]
    Escapes(String),
    /// Nothing there.
    #[error("no such file `{0}`")]
    NotFound(String),
    /// A directory or device rather than a regular file.
    #[error("`{0}` is not a regular file")]
    NotAFile(String),
    /// Any other filesystem error.
    #[error("`{path}`: {source}")]
    Io {
        /// The requested path.
        path: String,
        source: io::Error,
    },
}

/// A canonicalised boot directory.
#[derive(Debug, Clone)]
pub(crate) struct BootDir {
    /// `boot_dir` with every symlink resolved, the prefix every served file must have.
    root: PathBuf,
}

impl BootDir {
    /// Resolves `boot_dir` itself; fails if it does not exist.
    pub(crate) fn new(path: &Path) -> io::Result<BootDir> {
        Ok(BootDir {
            root: path.canonicalize()?,
        })
    }

    /// Maps a client's path (TFTP file name or decoded URL path) to a regular file inside
    /// the boot directory. Leading `/` are ignored and `\` counts as `/` (some PXE ROMs
    /// send DOS-style names).
    pub(crate) fn resolve(&self, requested: &str) -> Result<PathBuf, PathError> {
        let rel = lexical(requested)?;
        let joined = self.root.join(&rel);
        let real = match joined.canonicalize() {
            Ok(p) => p,
            // A name too long for the filesystem, or a file used as a directory, names
            // nothing there either.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound
                        | io::ErrorKind::NotADirectory
                        | io::ErrorKind::InvalidFilename
                ) =>
            {
                return Err(PathError::NotFound(requested.into()))
            }
            Err(source) => {
                return Err(PathError::Io {
                    path: requested.into(),
                    source,
                })
            }
        };
        if !real.starts_with(&self.root) {
            return Err(PathError::Escapes(requested.into()));
        }
        let meta = std::fs::metadata(&real).map_err(|source| PathError::Io {
            path: requested.into(),
            source,
        })?;
        if !meta.is_file() {
            return Err(PathError::NotAFile(requested.into()));
        }
        Ok(real)
    }
}

/// Resolves `requested` inside `boot_dir` (canonicalised on every call, so a config reload
/// that changes `boot_dir` takes effect at once).
pub(crate) fn resolve_in(boot_dir: &Path, requested: &str) -> Result<PathBuf, PathError> {
    let root = BootDir::new(boot_dir).map_err(|source| PathError::Io {
        path: boot_dir.display().to_string(),
        source,
    })?;
    root.resolve(requested)
}

/// Checks a requested path without touching the filesystem: relative, no `..`, no NUL.
pub(crate) fn lexical(requested: &str) -> Result<PathBuf, PathError> {
    let cleaned = requested.replace('\\', "/");
    let trimmed = cleaned.trim_start_matches('/');
    if trimmed.is_empty() || trimmed.contains('\0') {
        return Err(PathError::Invalid(requested.into()));
    }
    let mut out = PathBuf::new();
    for c in Path::new(trimmed).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(PathError::Escapes(requested.into()))
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(PathError::Invalid(requested.into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, BootDir) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("boot");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("ipxe.efi"), b"efi").unwrap();
        std::fs::write(root.join("sub/vmlinuz"), b"k").unwrap();
        std::fs::write(t.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(t.path().join("secret"), root.join("escape")).unwrap();
        std::os::unix::fs::symlink(root.join("sub/vmlinuz"), root.join("inside")).unwrap();
        let b = BootDir::new(&root).unwrap();
        (t, b)
    }

    #[test]
    fn serves_files_inside() {
        let (_t, b) = tree();
        assert!(b.resolve("ipxe.efi").unwrap().ends_with("ipxe.efi"));
        assert!(b.resolve("/sub/vmlinuz").is_ok());
        assert!(b.resolve("\\sub\\vmlinuz").is_ok());
        assert!(b.resolve("./sub/./vmlinuz").is_ok());
        assert!(
            b.resolve("inside").is_ok(),
            "a symlink that stays inside is fine"
        );
    }

    #[test]
    fn refuses_everything_that_leaves() {
        let (_t, b) = tree();
        assert!(matches!(b.resolve("../secret"), Err(PathError::Escapes(_))));
        assert!(matches!(
            b.resolve("sub/../../secret"),
            Err(PathError::Escapes(_))
        ));
        assert!(matches!(
            b.resolve("..\\secret"),
            Err(PathError::Escapes(_))
        ));
        assert!(matches!(b.resolve("escape"), Err(PathError::Escapes(_))));
        assert!(matches!(b.resolve(""), Err(PathError::Invalid(_))));
        assert!(matches!(b.resolve("/"), Err(PathError::Invalid(_))));
        assert!(matches!(b.resolve("a\0b"), Err(PathError::Invalid(_))));
        assert!(matches!(b.resolve("sub"), Err(PathError::NotAFile(_))));
        assert!(matches!(b.resolve("nope"), Err(PathError::NotFound(_))));
        assert!(matches!(
            b.resolve("ipxe.efi/x"),
            Err(PathError::NotFound(_))
        ));
        let long = "a".repeat(60_000);
        assert!(matches!(b.resolve(&long), Err(PathError::NotFound(_))));
    }
}
