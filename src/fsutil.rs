//! Output files written atomically: a temporary file beside the target, renamed into place only
//! when complete, so a crash or a failed write never leaves a half-written output or clobbers
//! an existing one.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum OutputError {
    #[error("{path}: already exists; pass --force to replace it")]
    Exists { path: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// A file being written; it appears at its path only on [`AtomicOutput::commit`].
pub struct AtomicOutput {
    path: PathBuf,
    force: bool,
    tmp: tempfile::NamedTempFile,
}

impl AtomicOutput {
    /// Starts writing `path`. Without `force`, an existing `path` is an error now and at commit.
    pub fn create(path: &Path, force: bool) -> Result<Self, OutputError> {
        if !force && path.symlink_metadata().is_ok() {
            return Err(OutputError::Exists {
                path: path.to_owned(),
            });
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".bootrig-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|source| OutputError::Io {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            path: path.to_owned(),
            force,
            tmp,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A buffered writer over the temporary file.
    pub fn writer(&mut self) -> BufWriter<&mut File> {
        BufWriter::with_capacity(1 << 20, self.tmp.as_file_mut())
    }

    pub fn file(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// Flushes to disk and renames into place.
    pub fn commit(mut self) -> Result<(), OutputError> {
        let path = self.path.clone();
        let io_err = |source| OutputError::Io {
            path: path.clone(),
            source,
        };
        self.tmp.as_file_mut().flush().map_err(io_err)?;
        self.tmp.as_file().sync_all().map_err(io_err)?;
        // Outputs are ordinary files for the user, not 0600 temporaries.
        set_default_mode(self.tmp.as_file()).map_err(io_err)?;
        if self.force {
            self.tmp.persist(&path).map_err(|e| io_err(e.error))?;
        } else {
            self.tmp.persist_noclobber(&path).map_err(|e| {
                if e.error.kind() == io::ErrorKind::AlreadyExists {
                    OutputError::Exists { path: path.clone() }
                } else {
                    io_err(e.error)
                }
            })?;
        }
        Ok(())
    }
}

fn set_default_mode(file: &File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let umask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    nix::sys::stat::umask(umask);
    let mode = 0o644 & !umask.bits();
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8], force: bool) -> Result<(), OutputError> {
    let mut out = AtomicOutput::create(path, force)?;
    out.file()
        .write_all(bytes)
        .map_err(|source| OutputError::Io {
            path: path.to_owned(),
            source,
        })?;
    out.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_existing_without_force_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.img");
        std::fs::write(&p, b"original").unwrap();
        let err = write_atomic(&p, b"new", false).unwrap_err();
        assert!(matches!(err, OutputError::Exists { .. }), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), b"original");
        write_atomic(&p, b"new", true).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
    }

    #[test]
    fn uncommitted_output_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.img");
        {
            let mut out = AtomicOutput::create(&p, false).unwrap();
            out.file().write_all(b"partial").unwrap();
        }
        assert!(!p.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
