//! The per-run boot directory the guest fetches from (QEMU's TFTP root, the HTTP server's root):
//! the kernel and initrd under fixed names, and the iPXE script. Inputs are never modified: a
//! file is hard-linked when it lives on the same file system (no copy of a 60 MB initrd), else
//! copied through a temporary file so a half-copied file never appears under its name.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::fsutil::{self, AtomicOutput, OutputError};

pub const KERNEL_NAME: &str = "vmlinuz";
pub const INITRD_NAME: &str = "initrd.img";
pub const SCRIPT_NAME: &str = "boot.ipxe";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    Hardlinked,
    Copied,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedFile {
    /// The name in the boot directory, as the script and the guest use it.
    pub name: String,
    pub path: PathBuf,
    pub source: PathBuf,
    pub size: u64,
    pub placement: Placement,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedBoot {
    pub dir: PathBuf,
    pub kernel: StagedFile,
    pub initrd: StagedFile,
}

#[derive(Debug, Error)]
pub enum StageError {
    #[error("{path}: cannot create the boot directory")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("{path}: {what} input is not a readable regular file")]
    Input {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{path}: {what} input is not a regular file")]
    NotAFile { what: &'static str, path: PathBuf },
    #[error("{path}: already staged (each run needs a fresh boot directory)")]
    Exists { path: PathBuf },
    #[error("{to}: staging {from}")]
    Place {
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// Puts `kernel` and `initrd` into `dir` (created if needed) as [`KERNEL_NAME`] and
/// [`INITRD_NAME`].
pub fn stage_files(dir: &Path, kernel: &Path, initrd: &Path) -> Result<StagedBoot, StageError> {
    std::fs::create_dir_all(dir).map_err(|source| StageError::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    Ok(StagedBoot {
        dir: dir.to_owned(),
        kernel: place("kernel", kernel, dir, KERNEL_NAME)?,
        initrd: place("initrd", initrd, dir, INITRD_NAME)?,
    })
}

/// Writes the iPXE script into `dir` as [`SCRIPT_NAME`], atomically; returns its path.
pub fn write_script(dir: &Path, script: &str) -> Result<PathBuf, StageError> {
    let path = dir.join(SCRIPT_NAME);
    fsutil::write_atomic(&path, script.as_bytes(), false).map_err(|e| match e {
        OutputError::Exists { path } => StageError::Exists { path },
        other => StageError::Output(other),
    })?;
    Ok(path)
}

fn place(
    what: &'static str,
    source: &Path,
    dir: &Path,
    name: &str,
) -> Result<StagedFile, StageError> {
    let input_err = |e| StageError::Input {
        what,
        path: source.to_owned(),
        source: e,
    };
    let meta = std::fs::metadata(source).map_err(input_err)?;
    if !meta.is_file() {
        return Err(StageError::NotAFile {
            what,
            path: source.to_owned(),
        });
    }
    // Readable now, so a failure later is about the destination.
    File::open(source).map_err(input_err)?;
    let dest = dir.join(name);
    if dest.symlink_metadata().is_ok() {
        return Err(StageError::Exists { path: dest });
    }
    let placement = match std::fs::hard_link(source, &dest) {
        Ok(()) => Placement::Hardlinked,
        // Another file system (EXDEV), or links refused (protected_hardlinks, EPERM): copy.
        Err(e) if matches!(e.raw_os_error(), Some(nix::libc::EXDEV | nix::libc::EPERM)) => {
            copy(source, &dest)?;
            Placement::Copied
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(StageError::Exists { path: dest })
        }
        Err(e) => {
            return Err(StageError::Place {
                from: source.to_owned(),
                to: dest,
                source: e,
            })
        }
    };
    Ok(StagedFile {
        name: name.to_owned(),
        path: dest,
        source: source.to_owned(),
        size: meta.len(),
        placement,
    })
}

fn copy(source: &Path, dest: &Path) -> Result<(), StageError> {
    let place_err = |e| StageError::Place {
        from: source.to_owned(),
        to: dest.to_owned(),
        source: e,
    };
    let mut input = File::open(source).map_err(place_err)?;
    let mut out = AtomicOutput::create(dest, false)?;
    io::copy(&mut input, &mut out.writer()).map_err(place_err)?;
    out.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn inputs(dir: &Path) -> (PathBuf, PathBuf) {
        let kernel = dir.join("bzImage-6.1");
        let initrd = dir.join("scenario.img");
        std::fs::write(&kernel, b"kernel bytes").unwrap();
        std::fs::write(&initrd, vec![7u8; 100_000]).unwrap();
        (kernel, initrd)
    }

    #[test]
    fn same_file_system_inputs_are_hard_linked_under_fixed_names() {
        let tmp = tempfile::tempdir().unwrap();
        let (kernel, initrd) = inputs(tmp.path());
        let boot = tmp.path().join("run/boot");
        let staged = stage_files(&boot, &kernel, &initrd).unwrap();
        assert_eq!(staged.kernel.name, "vmlinuz");
        assert_eq!(staged.initrd.name, "initrd.img");
        assert_eq!(staged.kernel.placement, Placement::Hardlinked);
        assert_eq!(staged.initrd.size, 100_000);
        let a = std::fs::metadata(&kernel).unwrap();
        let b = std::fs::metadata(boot.join("vmlinuz")).unwrap();
        assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()));
        assert_eq!(std::fs::read(&kernel).unwrap(), b"kernel bytes");
    }

    #[test]
    fn other_file_system_inputs_are_copied() {
        // /dev/shm is a tmpfs; the build directory is on a disk.
        let src = tempfile::tempdir_in("/dev/shm").unwrap();
        // The repository's target/ (on the disk), made if the build put its output elsewhere
        // (CARGO_TARGET_DIR): the directory only has to be off the tmpfs.
        let on_disk = concat!(env!("CARGO_MANIFEST_DIR"), "/target");
        std::fs::create_dir_all(on_disk).unwrap();
        let dst = tempfile::tempdir_in(on_disk).unwrap();
        let (kernel, initrd) = inputs(src.path());
        let same_fs = std::fs::metadata(src.path()).unwrap().dev()
            == std::fs::metadata(dst.path()).unwrap().dev();
        let staged = stage_files(dst.path(), &kernel, &initrd).unwrap();
        let expected = if same_fs {
            Placement::Hardlinked
        } else {
            Placement::Copied
        };
        assert_eq!(staged.initrd.placement, expected);
        assert_eq!(
            std::fs::read(&staged.initrd.path).unwrap(),
            std::fs::read(&initrd).unwrap()
        );
        assert!(!same_fs, "/dev/shm and target/ share a file system here");
    }

    #[test]
    fn script_is_written_once_and_staging_twice_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (kernel, initrd) = inputs(tmp.path());
        let boot = tmp.path().join("boot");
        stage_files(&boot, &kernel, &initrd).unwrap();
        let script = write_script(&boot, "#!ipxe\nboot\n").unwrap();
        assert_eq!(script, boot.join("boot.ipxe"));
        assert_eq!(std::fs::read_to_string(&script).unwrap(), "#!ipxe\nboot\n");
        assert!(matches!(
            write_script(&boot, "#!ipxe\n"),
            Err(StageError::Exists { .. })
        ));
        assert!(matches!(
            stage_files(&boot, &kernel, &initrd),
            Err(StageError::Exists { .. })
        ));
    }

    #[test]
    fn missing_or_odd_inputs_name_themselves() {
        let tmp = tempfile::tempdir().unwrap();
        let (kernel, _) = inputs(tmp.path());
        let boot = tmp.path().join("boot");
        let err = stage_files(&boot, &kernel, &tmp.path().join("nope.img")).unwrap_err();
        assert!(
            matches!(&err, StageError::Input { what: "initrd", .. }),
            "{err}"
        );
        assert!(err.to_string().contains("nope.img"));
        let err = stage_files(&tmp.path().join("b2"), tmp.path(), &kernel).unwrap_err();
        assert!(matches!(err, StageError::NotAFile { what: "kernel", .. }));
    }
}
