//! Boot files where a lab's own TFTP server serves them (`[lab] boot_root` in the inventory):
//! each run stages its kernel, initrd and iPXE script under `<boot_root>/<adapter>/`, where the
//! lab points the adapter's DHCP entry (`<adapter>/boot.ipxe`). The script fetches relative to
//! its own location, so the lab's layout is the lab's business. Each file is replaced atomically
//! (a temporary name, then a rename): a ROM fetching mid-run sees the old file or the new one,
//! never half of one. The script goes last, so it never names files older than itself. Runs on
//! one adapter never stage at once: the caller holds the adapter's lock.

use std::fs::File;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::ipxe::{self, ScriptSpec};
use super::stage::{INITRD_NAME, KERNEL_NAME, SCRIPT_NAME};

/// The script's URL base: its own directory.
pub const RELATIVE_BASE: &str = ".";

#[derive(Debug, Error)]
pub enum LabRootError {
    #[error(
        "adapter name {name:?} cannot name a directory under boot_root: {reason} at byte {offset} \
         (rename the inventory's [adapters.NAME] to letters, digits, '.', '_', '-')"
    )]
    BadName {
        name: String,
        offset: usize,
        reason: &'static str,
    },
    #[error("creating the adapter's boot directory {path} (is [lab] boot_root the lab TFTP root, writable by bootrig?)")]
    Dir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("staging {from} as {to}")]
    Place {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("rendering the lab's iPXE script")]
    Script(#[source] ipxe::ScriptError),
}

/// What was staged, for the run's evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabStaged {
    pub dir: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub script: PathBuf,
    /// The script's path relative to boot_root: the DHCP boot file name the lab sets.
    pub boot_file: String,
}

/// Stages `kernel`, `initrd` and the script for `spec` under `<boot_root>/<adapter>/`,
/// replacing what an earlier run left there.
pub fn stage(
    boot_root: &Path,
    adapter: &str,
    kernel: &Path,
    initrd: &Path,
    spec: &ScriptSpec,
) -> Result<LabStaged, LabRootError> {
    check_name(adapter)?;
    let script = ipxe::render_at(spec, RELATIVE_BASE).map_err(LabRootError::Script)?;
    let dir = boot_root.join(adapter);
    std::fs::create_dir_all(&dir)
        // Whatever the umask: a tftpd that is not root must enter it.
        .and_then(|()| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)))
        .map_err(|source| LabRootError::Dir {
            path: dir.clone(),
            source,
        })?;
    let staged = LabStaged {
        kernel: replace_with_file(kernel, &dir.join(KERNEL_NAME))?,
        initrd: replace_with_file(initrd, &dir.join(INITRD_NAME))?,
        script: replace_with_bytes(script.as_bytes(), &dir.join(SCRIPT_NAME))?,
        boot_file: format!("{adapter}/{SCRIPT_NAME}"),
        dir,
    };
    Ok(staged)
}

fn check_name(name: &str) -> Result<(), LabRootError> {
    // One directory under the TFTP root: at most NAME_MAX bytes.
    ipxe::plain_component(name, 255).map_err(|(offset, reason)| LabRootError::BadName {
        name: name.to_owned(),
        offset,
        reason,
    })
}

/// A temporary name beside `dest`, unique to this process.
fn temp_beside(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    dest.with_file_name(format!(".{name}.bootrig-{}", std::process::id()))
}

/// Puts `source` at `dest` by a hard link (same file system: no copy of a large initrd) or a
/// copy, under a temporary name renamed over `dest`. The input is never modified.
fn replace_with_file(source: &Path, dest: &Path) -> Result<PathBuf, LabRootError> {
    let place = |e| LabRootError::Place {
        from: source.to_owned(),
        to: dest.to_owned(),
        source: e,
    };
    let tmp = temp_beside(dest);
    remove_stale(&tmp).map_err(place)?;
    // A lab's TFTP server seldom runs as root (tftpd-hpa drops to its own user): a link keeps
    // the source's mode, so a file others cannot read (a 0600 /boot/vmlinuz) is copied as 0644.
    let readable_by_others = std::fs::metadata(source)
        .map(|m| m.permissions().mode() & 0o004 != 0)
        .map_err(place)?;
    let linked = if readable_by_others {
        match std::fs::hard_link(source, &tmp) {
            // Another file system, links refused (protected_hardlinks), or none (some shares).
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(nix::libc::EXDEV | nix::libc::EPERM | nix::libc::EOPNOTSUPP)
                ) =>
            {
                copy_synced(source, &tmp)
            }
            linked => linked,
        }
    } else {
        copy_synced(source, &tmp)
    };
    linked
        .and_then(|()| std::fs::rename(&tmp, dest))
        // When dest is already a link to the same file (the same kernel as the last run),
        // rename(2) succeeds and does nothing: the temporary name stays and goes here.
        .and_then(|()| remove_stale(&tmp))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            place(e)
        })?;
    Ok(dest.to_owned())
}

fn replace_with_bytes(bytes: &[u8], dest: &Path) -> Result<PathBuf, LabRootError> {
    let place = |e| LabRootError::Place {
        from: PathBuf::from("(the rendered script)"),
        to: dest.to_owned(),
        source: e,
    };
    let tmp = temp_beside(dest);
    remove_stale(&tmp).map_err(place)?;
    let written = File::create(&tmp)
        .and_then(|mut f| {
            io::Write::write_all(&mut f, bytes)?;
            f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, dest));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        place(e)
    })?;
    Ok(dest.to_owned())
}

fn copy_synced(source: &Path, dest: &Path) -> io::Result<()> {
    let mut input = File::open(source)?;
    let mut out = File::create(dest)?;
    io::copy(&mut input, &mut out)?;
    out.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    out.sync_all()
}

/// A temporary file a killed run of this pid left (pids are reused).
fn remove_stale(tmp: &Path) -> io::Result<()> {
    match std::fs::remove_file(tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netboot::ipxe::FileSource;

    fn spec() -> ScriptSpec {
        ScriptSpec::new(
            FileSource::Tftp,
            KERNEL_NAME,
            INITRD_NAME,
            "console=ttyS0,115200 panic=-1",
        )
    }

    #[test]
    fn files_go_under_the_adapter_and_the_script_fetches_beside_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let kernel = tmp.path().join("bzImage");
        let initrd = tmp.path().join("scenario.img");
        std::fs::write(&kernel, b"kernel one").unwrap();
        std::fs::write(&initrd, b"initrd one").unwrap();
        let root = tmp.path().join("srv/tftp");
        let staged = stage(&root, "nic0", &kernel, &initrd, &spec()).unwrap();
        assert_eq!(staged.dir, root.join("nic0"));
        assert_eq!(staged.boot_file, "nic0/boot.ipxe");
        assert_eq!(
            std::fs::read(root.join("nic0/vmlinuz")).unwrap(),
            b"kernel one"
        );
        let script = std::fs::read_to_string(root.join("nic0/boot.ipxe")).unwrap();
        assert!(
            script.contains("kernel ./vmlinuz initrd=initrd.img console=ttyS0,115200"),
            "{script}"
        );
        assert!(
            script.contains("initrd --name initrd.img ./initrd.img"),
            "{script}"
        );
        assert!(!script.contains("tftp://"), "{script}");

        // The next run replaces them: new bytes under the same names, nothing else left behind,
        // and the inputs untouched.
        std::fs::write(&kernel, b"kernel two, longer").unwrap();
        let other = tmp.path().join("other.img");
        std::fs::write(&other, b"initrd two").unwrap();
        stage(&root, "nic0", &kernel, &other, &spec()).unwrap();
        assert_eq!(
            std::fs::read(root.join("nic0/vmlinuz")).unwrap(),
            b"kernel two, longer"
        );
        assert_eq!(
            std::fs::read(root.join("nic0/initrd.img")).unwrap(),
            b"initrd two"
        );
        assert_eq!(std::fs::read(&initrd).unwrap(), b"initrd one");
        let mut names: Vec<String> = std::fs::read_dir(root.join("nic0"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["boot.ipxe", "initrd.img", "vmlinuz"]);
    }

    #[test]
    fn a_kernel_others_cannot_read_is_copied_readable_and_left_as_it_was() {
        let tmp = tempfile::tempdir().unwrap();
        let kernel = tmp.path().join("vmlinuz-6.1");
        let initrd = tmp.path().join("scenario.img");
        std::fs::write(&kernel, b"kernel").unwrap();
        std::fs::write(&initrd, b"initrd").unwrap();
        std::fs::set_permissions(&kernel, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&initrd, std::fs::Permissions::from_mode(0o644)).unwrap();
        let root = tmp.path().join("tftp");
        // As a hardened umask (077) would have made it (the umask itself is process-wide: not
        // changed in a test that runs beside others).
        std::fs::create_dir_all(root.join("nic0")).unwrap();
        std::fs::set_permissions(root.join("nic0"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        stage(&root, "nic0", &kernel, &initrd, &spec()).unwrap();
        let staged = std::fs::metadata(root.join("nic0/vmlinuz")).unwrap();
        assert_eq!(staged.permissions().mode() & 0o777, 0o644);
        let source = std::fs::metadata(&kernel).unwrap();
        assert_eq!(source.permissions().mode() & 0o777, 0o600);
        use std::os::unix::fs::MetadataExt;
        assert_ne!(staged.ino(), source.ino(), "a copy, not a link");
        // The directory and the script too, whatever the umask.
        let mode = |p: &str| {
            std::fs::metadata(root.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("nic0"), 0o755);
        assert_eq!(mode("nic0/boot.ipxe"), 0o644);
        // A readable initrd is still linked: no copy of a large file.
        let linked = std::fs::metadata(root.join("nic0/initrd.img")).unwrap();
        assert_eq!(linked.ino(), std::fs::metadata(&initrd).unwrap().ino());
    }

    #[test]
    fn an_adapter_name_that_is_not_one_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let kernel = tmp.path().join("k");
        std::fs::write(&kernel, b"k").unwrap();
        for (name, offset) in [("../etc", 0), ("hca/0", 3), ("", 0)] {
            let err = stage(tmp.path(), name, &kernel, &kernel, &spec()).unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(&err, LabRootError::BadName { offset: o, .. } if *o == offset),
                "{name}: {text}"
            );
            assert!(text.contains("[adapters.NAME]"), "{text}");
        }
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_input_names_itself_and_leaves_no_temporary_file() {
        let tmp = tempfile::tempdir().unwrap();
        let kernel = tmp.path().join("k");
        std::fs::write(&kernel, b"k").unwrap();
        let root = tmp.path().join("tftp");
        let err = stage(
            &root,
            "nic0",
            &kernel,
            &tmp.path().join("gone.img"),
            &spec(),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with(&format!(
            "staging {} as {}",
            tmp.path().join("gone.img").display(),
            root.join("nic0/initrd.img").display()
        )));
        let names: Vec<_> = std::fs::read_dir(root.join("nic0"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["vmlinuz"]);
    }
}
