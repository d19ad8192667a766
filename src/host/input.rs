//! Input files a user names (initrd images, kernel images, module files) are regular files. A
//! FIFO, a character device (`/dev/zero`, `/dev/urandom`) or a directory would block a read or
//! never end it; each is refused with what it is and the fix.
//!
//! The check is on the opened handle (`metadata()` of the `File`), so what is checked is what is
//! read. The open itself is non-blocking: opening a FIFO for reading waits for a writer, which
//! would hang before any check could run. Once the file is known to be regular the flag is
//! cleared (it means nothing for a regular file, but the handle is then an ordinary one).

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use thiserror::Error;

/// An input that is not a regular file: the cause under an `io::Error` of kind `InvalidInput`,
/// so every reader's existing "path: cause" error carries it unchanged.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("is a {kind}, not a file: name a regular file")]
pub struct NotAFile {
    /// "FIFO", "character device", "directory", …
    pub kind: &'static str,
}

/// What a file type is, in the words of the refusal; `None` for a regular file.
pub fn not_regular(kind: std::fs::FileType) -> Option<&'static str> {
    if kind.is_file() {
        None
    } else if kind.is_fifo() {
        Some("FIFO")
    } else if kind.is_char_device() {
        Some("character device")
    } else if kind.is_block_device() {
        Some("block device")
    } else if kind.is_dir() {
        Some("directory")
    } else if kind.is_socket() {
        Some("socket")
    } else {
        Some("special file")
    }
}

/// Opens `path` for reading if it is a regular file; otherwise fails with [`NotAFile`] inside an
/// `io::Error` (see [`not_a_file`]). Symlinks are followed, as every reader followed them.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(path)?;
    if let Some(kind) = not_regular(file.metadata()?.file_type()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            NotAFile { kind },
        ));
    }
    fcntl(file.as_raw_fd(), FcntlArg::F_SETFL(OFlag::empty())).map_err(io::Error::from)?;
    Ok(file)
}

/// The whole content of the regular file `path` (`std::fs::read`, refusing what is not a file).
pub fn read_regular(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The [`NotAFile`] an error from [`open_regular`] carries, if it is one.
pub fn not_a_file(e: &io::Error) -> Option<&NotAFile> {
    e.get_ref()?.downcast_ref::<NotAFile>()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn a_regular_file_opens_and_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("initrd.img");
        std::fs::write(&path, b"070701").unwrap();
        assert_eq!(read_regular(&path).unwrap(), b"070701");
        let link = dir.path().join("link.img");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert_eq!(read_regular(&link).unwrap(), b"070701");
    }

    #[test]
    fn a_fifo_a_device_and_a_directory_are_refused_promptly() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let started = Instant::now();
        for (path, kind) in [
            (fifo.as_path(), "FIFO"),
            (Path::new("/dev/zero"), "character device"),
            (dir.path(), "directory"),
        ] {
            let e = read_regular(path).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            assert_eq!(not_a_file(&e), Some(&NotAFile { kind }));
            assert!(
                e.to_string()
                    .starts_with(&format!("is a {kind}, not a file")),
                "{e}"
            );
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        let missing = open_regular(&dir.path().join("missing")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        assert_eq!(not_a_file(&missing), None);
    }
}
