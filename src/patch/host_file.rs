//! Files `build` and `patch` read from the host (the base, modules, binaries, their libraries,
//! busybox, dhclient-script) must be regular files: a device such as `/dev/zero` or a FIFO has
//! no end, and reading one would grow the build without bound.

use std::fs;
use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum HostFileError {
    #[error("{path}: {what} is a {kind}, not a regular file; bootrig copies only regular files from the host (name the file itself)")]
    NotRegular {
        path: PathBuf,
        what: &'static str,
        kind: &'static str,
    },
}

/// Refuses `path` (through symlinks) when it is there and not a regular file; `what` says what
/// it is for. A path that cannot be looked at is left to the read that follows, whose error
/// says why.
pub fn check_regular(path: &Path, what: &'static str) -> Result<(), HostFileError> {
    let Ok(meta) = fs::metadata(path) else {
        return Ok(());
    };
    match crate::host::input::not_regular(meta.file_type()) {
        None => Ok(()),
        Some(kind) => Err(HostFileError::NotRegular {
            path: path.to_owned(),
            what,
            kind,
        }),
    }
}

/// A host file's bytes, opened once and checked on the handle (no look, then a blocking open
/// of what may by then be a FIFO): a file that is not regular is [`HostFileError::NotRegular`];
/// any other failure is the `io::Error`, for the caller to say what it was reading.
pub fn read(path: &Path, what: &'static str) -> Result<std::io::Result<Vec<u8>>, HostFileError> {
    match crate::host::input::read_regular(path) {
        Ok(data) => Ok(Ok(data)),
        Err(e) => match crate::host::input::not_a_file(&e) {
            Some(not) => Err(HostFileError::NotRegular {
                path: path.to_owned(),
                what,
                kind: not.kind,
            }),
            None => Ok(Err(e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_refuses_what_is_not_a_file_on_the_opened_handle() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(matches!(
            read(&fifo, "a binary"),
            Err(HostFileError::NotRegular { kind: "FIFO", .. })
        ));
        assert!(matches!(
            read(Path::new("/dev/zero"), "a binary"),
            Err(HostFileError::NotRegular {
                kind: "character device",
                ..
            })
        ));
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        assert_eq!(read(&file, "a binary").unwrap().unwrap(), b"x");
        let missing = read(&dir.path().join("missing"), "a binary").unwrap();
        assert_eq!(missing.unwrap_err().kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn devices_fifos_and_directories_are_refused_with_the_path() {
        let err = check_regular(Path::new("/dev/zero"), "a binary").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/dev/zero: a binary is a character device, not a regular file; bootrig copies only regular files from the host (name the file itself)"
        );
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            check_regular(dir.path(), "a module"),
            Err(HostFileError::NotRegular {
                kind: "directory",
                ..
            })
        ));
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(matches!(
            check_regular(&fifo, "a module"),
            Err(HostFileError::NotRegular { kind: "FIFO", .. })
        ));
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        check_regular(&file, "a module").unwrap();
        check_regular(&dir.path().join("missing"), "a module").unwrap();
    }
}
