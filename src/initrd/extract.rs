//! Writes the merged view of an image into a directory, refusing anything that a naive
//! extractor would write outside it. The tree is resolved in memory first (the kernel's rules),
//! so nothing on disk is ever followed: the destination must be new or empty, directories are
//! created by us, files with `create_new`, and symlinks last.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{self, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use thiserror::Error;

use super::cpio::Kind;
use super::image::{read_tree, ImageError, ReadOptions};
use super::path;
use super::tree::{DataPolicy, Issue, Node, Tree};

#[derive(Debug, Error)]
pub enum ExtractError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{image}: refusing to extract, nothing was written: {}", list_unsafe(.entries))]
    Unsafe { image: PathBuf, entries: Vec<Issue> },
    #[error("{dir}: not empty; extract into a new or empty directory (bootrig never writes through what is already there)")]
    NotEmpty { dir: PathBuf },
    #[error("{path}")]
    Io { path: PathBuf, source: io::Error },
    /// Writing one entry of the image failed.
    #[error("{image}: entry /{entry} (segment {segment}): {action} {} failed", path.display())]
    Write {
        image: PathBuf,
        entry: String,
        segment: usize,
        /// What was being done: "creating file", "setting the mode of", …
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An extraction failed and undoing it left paths behind.
    #[error(
        "{dest}: the extraction failed, and undoing it could not remove {}; remove them by hand",
        list_left(.left)
    )]
    RollBack {
        dest: PathBuf,
        /// What is still there.
        left: Vec<PathBuf>,
        /// Why the extraction failed.
        #[source]
        source: Box<ExtractError>,
    },
}

fn list_left(left: &[PathBuf]) -> String {
    let shown: Vec<String> = left
        .iter()
        .take(5)
        .map(|p| p.display().to_string())
        .collect();
    let more = left.len().saturating_sub(shown.len());
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!("{}{tail}", shown.join(", "))
}

fn list_unsafe(entries: &[Issue]) -> String {
    let shown: Vec<String> = entries
        .iter()
        .take(5)
        .map(|i| {
            format!(
                "entry \"{}\" in segment {}: {}",
                path::display(&i.name),
                i.segment,
                i.kind.describe()
            )
        })
        .collect();
    let more = entries.len().saturating_sub(shown.len());
    let tail = if more > 0 {
        format!("; and {more} more")
    } else {
        String::new()
    };
    format!("{}{tail}", shown.join("; "))
}

/// What an extraction did.
#[derive(Debug, Default)]
pub struct ExtractReport {
    pub files: usize,
    pub dirs: usize,
    pub symlinks: usize,
    pub specials: usize,
    /// Device nodes not made: we are not root, or `no_devices` was asked.
    pub skipped_devices: Vec<Vec<u8>>,
    /// Device nodes made (as root), with their (major, minor): what can reach the host's
    /// hardware through the extracted tree.
    pub devices: Vec<(Vec<u8>, (u32, u32))>,
    /// Regular files written with their set-uid/set-gid bits, and those bits (`mode & 0o6000`).
    pub setid_files: Vec<(Vec<u8>, u32)>,
    /// Regular files whose set-uid/set-gid bits were cleared (`no_setuid`), and the bits cleared.
    pub cleared_setid: Vec<(Vec<u8>, u32)>,
    /// Entries the kernel would drop, and why.
    pub warnings: Vec<Issue>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractOptions {
    pub read: ReadOptions,
    /// Do not create device nodes, even as root (inspecting an untrusted image).
    pub no_devices: bool,
    /// Clear set-uid/set-gid bits of regular files (inspecting an untrusted image).
    pub no_setuid: bool,
}

const SETID_BITS: u32 = 0o6000;

/// Extracts `image` into `dest` (created if missing; must be empty if present).
pub fn extract(
    image: &Path,
    dest: &Path,
    opts: &ExtractOptions,
) -> Result<ExtractReport, ExtractError> {
    let (tree, _) = read_tree(image, DataPolicy::Full, &opts.read)?;
    let unsafe_entries: Vec<Issue> = tree
        .issues()
        .iter()
        .filter(|i| i.kind.is_unsafe())
        .cloned()
        .collect();
    if !unsafe_entries.is_empty() {
        return Err(ExtractError::Unsafe {
            image: image.to_owned(),
            entries: unsafe_entries,
        });
    }
    let created = prepare_dest(dest)?;
    let mut report = ExtractReport {
        warnings: tree.issues().to_vec(),
        ..Default::default()
    };
    if let Err(e) = write_tree(&tree, image, dest, opts, &mut report) {
        // Leave the destination as it was: absent, or empty.
        let left = roll_back(dest, created);
        if !left.is_empty() {
            return Err(ExtractError::RollBack {
                dest: dest.to_owned(),
                left,
                source: Box::new(e),
            });
        }
        return Err(e);
    }
    Ok(report)
}

/// Checks that `dest` is a new or empty directory, creating it if missing; returns whether it
/// was created.
fn prepare_dest(dest: &Path) -> Result<bool, ExtractError> {
    let io_err = |source| ExtractError::Io {
        path: dest.to_owned(),
        source,
    };
    match fs::read_dir(dest) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ExtractError::NotEmpty {
                    dir: dest.to_owned(),
                });
            }
            Ok(false)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dest).map_err(io_err)?;
            Ok(true)
        }
        Err(e) => Err(io_err(e)),
    }
}

/// Removes what a failed extraction wrote (the error already says what failed); returns the
/// paths it could not remove.
fn roll_back(dest: &Path, created: bool) -> Vec<PathBuf> {
    let mut left = Vec::new();
    if created {
        remove_tree(dest, &mut left);
        return left;
    }
    match fs::read_dir(dest) {
        Ok(entries) => {
            for entry in entries {
                match entry {
                    Ok(entry) => remove_tree(&entry.path(), &mut left),
                    Err(_) => left.push(dest.to_owned()),
                }
            }
        }
        Err(_) => left.push(dest.to_owned()),
    }
    left
}

/// Removes `p`, and everything in it when it is a directory (a symlink is removed, never
/// followed). Each directory is made owner-writable and searchable first: the attribute pass
/// may already have given it the image's mode (0555 is common), which would keep a non-root
/// user from removing its entries. Adds what could not be removed to `left`.
fn remove_tree(p: &Path, left: &mut Vec<PathBuf>) {
    let meta = match fs::symlink_metadata(p) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return,
        Err(_) => {
            left.push(p.to_owned());
            return;
        }
    };
    if !meta.is_dir() {
        if fs::remove_file(p).is_err() {
            left.push(p.to_owned());
        }
        return;
    }
    let mode = meta.permissions().mode();
    if mode & 0o700 != 0o700 {
        // lstat said directory: set_permissions (chmod) cannot be led through a symlink here,
        // as nothing else writes into a destination being rolled back.
        let _ = fs::set_permissions(p, fs::Permissions::from_mode((mode | 0o700) & 0o7777));
    }
    let before = left.len();
    match fs::read_dir(p) {
        Ok(entries) => {
            for entry in entries.flatten() {
                remove_tree(&entry.path(), left);
            }
        }
        Err(_) => left.push(p.to_owned()),
    }
    // A directory whose entries are listed as left is not listed again.
    if fs::remove_dir(p).is_err() && left.len() == before {
        left.push(p.to_owned());
    }
}

/// The error of one entry's write, for `map_err`.
fn write_error(
    image: &Path,
    node: &Node,
    action: &'static str,
    path: &Path,
) -> impl FnOnce(io::Error) -> ExtractError {
    let image = image.to_owned();
    let entry = path::display(&node.path);
    let segment = node.segment;
    let path = path.to_owned();
    move |source| ExtractError::Write {
        image,
        entry,
        segment,
        action,
        path,
        source,
    }
}

fn write_tree(
    tree: &Tree,
    image: &Path,
    dest: &Path,
    opts: &ExtractOptions,
    report: &mut ExtractReport,
) -> Result<(), ExtractError> {
    let is_root = nix::unistd::geteuid().is_root();
    let target = |node: &Node| dest.join(OsStr::from_bytes(&node.path));
    let failed =
        |node: &Node, action: &'static str, path: &Path| write_error(image, node, action, path);
    let mut first_path_of_inode: Vec<Option<PathBuf>> = Vec::new();
    // Directories first (owner-writable until the end), then content, then symlinks last so no
    // write can go through one.
    for node in tree
        .nodes()
        .filter(|n| n.kind == Kind::Directory && n.path != b".")
    {
        let p = target(node);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&p)
            .map_err(failed(node, "creating directory", &p))?;
        report.dirs += 1;
    }
    for node in tree.nodes() {
        let p = target(node);
        match node.kind {
            Kind::Regular => {
                let Some(inode_index) = node.inode else {
                    continue;
                };
                if first_path_of_inode.len() <= inode_index {
                    first_path_of_inode.resize(inode_index + 1, None);
                }
                if let Some(first) = &first_path_of_inode[inode_index] {
                    fs::hard_link(first, &p).map_err(failed(node, "creating hardlink", &p))?;
                } else {
                    let data = tree
                        .inode(node)
                        .and_then(|i| i.data.as_deref())
                        .unwrap_or(&[]);
                    let mut f = OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .custom_flags(nix::libc::O_NOFOLLOW)
                        .open(&p)
                        .map_err(failed(node, "creating file", &p))?;
                    f.write_all(data)
                        .map_err(failed(node, "writing file", &p))?;
                    first_path_of_inode[inode_index] = Some(p.clone());
                }
                report.files += 1;
                let setid = node.mode & SETID_BITS;
                if setid != 0 {
                    if opts.no_setuid {
                        report.cleared_setid.push((node.path.clone(), setid));
                    } else {
                        report.setid_files.push((node.path.clone(), setid));
                    }
                }
            }
            Kind::Fifo => {
                nix::unistd::mkfifo(&p, Mode::from_bits_truncate(0o600))
                    .map_err(|e| failed(node, "creating fifo", &p)(e.into()))?;
                report.specials += 1;
            }
            Kind::CharDevice | Kind::BlockDevice | Kind::Socket => {
                let device = node.kind != Kind::Socket;
                if device && (!is_root || opts.no_devices) {
                    report.skipped_devices.push(node.path.clone());
                    continue;
                }
                let sflag = match node.kind {
                    Kind::CharDevice => SFlag::S_IFCHR,
                    Kind::BlockDevice => SFlag::S_IFBLK,
                    _ => SFlag::S_IFSOCK,
                };
                let dev = nix::sys::stat::makedev(u64::from(node.rdev.0), u64::from(node.rdev.1));
                stat::mknod(&p, sflag, Mode::from_bits_truncate(0o600), dev)
                    .map_err(|e| failed(node, "creating device node", &p)(e.into()))?;
                if device {
                    report.devices.push((node.path.clone(), node.rdev));
                }
                report.specials += 1;
            }
            _ => {}
        }
    }
    for node in tree.nodes().filter(|n| n.kind == Kind::Symlink) {
        let p = target(node);
        std::os::unix::fs::symlink(OsStr::from_bytes(&node.target), &p).map_err(failed(
            node,
            "creating symlink",
            &p,
        ))?;
        report.symlinks += 1;
    }
    // Attributes: ownership only as root; modes; mtimes, directories deepest first so creating
    // children does not bump a parent's mtime afterwards.
    let mut nodes: Vec<&Node> = tree.nodes().filter(|n| n.path != b".").collect();
    nodes.sort_by_key(|n| std::cmp::Reverse(n.path.iter().filter(|&&b| b == b'/').count()));
    for node in nodes {
        let p = target(node);
        if report.skipped_devices.contains(&node.path) {
            continue;
        }
        if is_root {
            std::os::unix::fs::lchown(&p, Some(node.uid), Some(node.gid)).map_err(failed(
                node,
                "setting the owner of",
                &p,
            ))?;
        }
        if node.kind != Kind::Symlink {
            let mut mode = node.mode & 0o7777;
            if opts.no_setuid && node.kind == Kind::Regular {
                mode &= !SETID_BITS;
            }
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(failed(
                node,
                "setting the mode of",
                &p,
            ))?;
        }
        #[cfg(test)]
        tests::fail_point(node).map_err(failed(node, "setting the mtime of", &p))?;
        let t = TimeSpec::new(i64::from(node.mtime), 0);
        stat::utimensat(None, &p, &t, &t, UtimensatFlags::NoFollowSymlink)
            .map_err(|e| failed(node, "setting the mtime of", &p)(e.into()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::os::unix::fs::MetadataExt;

    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, setresgid, setresuid, ForkResult, Gid, Uid};

    use super::*;
    use crate::initrd::cpio::{Entry, Writer};

    thread_local! {
        /// The entry whose mtime step fails (a failure after modes were applied).
        static FAIL_AT: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
    }

    /// The failure seam of `write_tree`'s attribute pass.
    pub(super) fn fail_point(node: &Node) -> Result<(), io::Error> {
        FAIL_AT.with(|f| match f.borrow().as_deref() {
            Some(at) if at == node.path.as_slice() => Err(io::Error::other("injected failure")),
            _ => Ok(()),
        })
    }

    fn image(dir: &Path) -> PathBuf {
        let mut w = Writer::new(Vec::new());
        let ro = |name: &str| Entry::new(name, 0o040555, Vec::new());
        for e in [
            Entry::new(".", 0o040755, Vec::new()),
            Entry::new("a", 0o040755, Vec::new()),
            ro("a/ro"),
            Entry::new("a/ro/f1", 0o100444, b"1".to_vec()),
            Entry::new("a/ro/f2", 0o100644, b"2".to_vec()),
            ro("a/ro/sub"),
            Entry::new("a/ro/sub/g", 0o100644, b"g".to_vec()),
        ] {
            w.write_entry(&e).unwrap();
        }
        w.write_trailer().unwrap();
        let p = dir.join("ro.img");
        fs::write(&p, w.into_inner()).unwrap();
        p
    }

    /// What the unprivileged part checks; `Err` says what went wrong.
    fn unprivileged(dir: &Path, root_owned: &Path) -> Result<(), String> {
        // The failure comes at "a", after a/ro and a/ro/sub were given their 0555.
        FAIL_AT.with(|f| *f.borrow_mut() = Some(b"a".to_vec()));
        let out = dir.join("out");
        let err = extract(&dir.join("ro.img"), &out, &ExtractOptions::default())
            .err()
            .ok_or("the extraction did not fail")?;
        if !matches!(
            &err,
            ExtractError::Write {
                action: "setting the mtime of",
                ..
            }
        ) {
            return Err(format!("unexpected error: {err}"));
        }
        if out.exists() {
            return Err(format!("{} left behind after: {err}", out.display()));
        }
        // A path the user cannot remove at all is named in the error.
        let left = roll_back(root_owned.parent().unwrap(), false);
        if left != [root_owned.join("file")] {
            return Err(format!("left: {left:?}"));
        }
        let msg = ExtractError::RollBack {
            dest: dir.to_owned(),
            left,
            source: Box::new(err),
        }
        .to_string();
        if !msg.contains("locked/file") || !msg.contains("remove them by hand") {
            return Err(msg);
        }
        Ok(())
    }

    #[test]
    fn a_failure_after_modes_were_applied_rolls_back_read_only_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        image(dir);
        // dest2/locked/file: what the unprivileged child cannot remove (checked as root only).
        let dest2 = dir.join("dest2");
        let locked = dest2.join("locked");
        fs::create_dir_all(&locked).unwrap();
        fs::write(locked.join("file"), b"x").unwrap();
        if !nix::unistd::geteuid().is_root() {
            fs::remove_dir_all(&dest2).unwrap();
            FAIL_AT.with(|f| *f.borrow_mut() = Some(b"a".to_vec()));
            let out = dir.join("out");
            assert!(extract(&dir.join("ro.img"), &out, &ExtractOptions::default()).is_err());
            assert!(!out.exists());
            return;
        }
        // Root ignores directory modes: run the extraction as nobody, in a forked child.
        let nobody = 65534;
        for p in [dir, &dir.join("ro.img"), &dest2] {
            std::os::unix::fs::lchown(p, Some(nobody), Some(nobody)).unwrap();
        }
        assert_eq!(fs::metadata(&locked).unwrap().uid(), 0);
        // SAFETY: the child runs only this thread's code and leaves with _exit.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                let code = std::panic::catch_unwind(|| {
                    let id = (Gid::from_raw(nobody), Uid::from_raw(nobody));
                    setresgid(id.0, id.0, id.0).map_err(|e| e.to_string())?;
                    setresuid(id.1, id.1, id.1).map_err(|e| e.to_string())?;
                    unprivileged(dir, &locked)
                });
                let code = match code {
                    Ok(Ok(())) => 0,
                    Ok(Err(msg)) => {
                        // Not eprintln!: the harness's capture of it stays in the child.
                        let _ = writeln!(io::stderr(), "child: {msg}");
                        1
                    }
                    Err(_) => 2,
                };
                // SAFETY: ends the child without running the parent's test harness.
                unsafe { nix::libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                let status = waitpid(child, None).unwrap();
                assert_eq!(
                    status,
                    WaitStatus::Exited(child, 0),
                    "see the child's stderr"
                );
            }
        }
    }
}
