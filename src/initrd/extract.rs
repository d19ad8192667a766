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
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
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
    /// Device nodes not made because we are not root.
    pub skipped_devices: Vec<Vec<u8>>,
    /// Entries the kernel would drop, and why.
    pub warnings: Vec<Issue>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractOptions {
    pub read: ReadOptions,
}

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
    prepare_dest(dest)?;
    let mut report = ExtractReport {
        warnings: tree.issues().to_vec(),
        ..Default::default()
    };
    write_tree(&tree, dest, &mut report)?;
    Ok(report)
}

fn prepare_dest(dest: &Path) -> Result<(), ExtractError> {
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
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir_all(dest).map_err(io_err),
        Err(e) => Err(io_err(e)),
    }
}

fn write_tree(tree: &Tree, dest: &Path, report: &mut ExtractReport) -> Result<(), ExtractError> {
    let is_root = nix::unistd::geteuid().is_root();
    let target = |node: &Node| dest.join(OsStr::from_bytes(&node.path));
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
            .map_err(|source| ExtractError::Io {
                path: p.clone(),
                source,
            })?;
        report.dirs += 1;
    }
    for node in tree.nodes() {
        let p = target(node);
        let io_err = |source| ExtractError::Io {
            path: p.clone(),
            source,
        };
        match node.kind {
            Kind::Regular => {
                let Some(inode_index) = node.inode else {
                    continue;
                };
                if first_path_of_inode.len() <= inode_index {
                    first_path_of_inode.resize(inode_index + 1, None);
                }
                if let Some(first) = &first_path_of_inode[inode_index] {
                    fs::hard_link(first, &p).map_err(io_err)?;
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
                        .map_err(io_err)?;
                    f.write_all(data).map_err(io_err)?;
                    first_path_of_inode[inode_index] = Some(p.clone());
                }
                report.files += 1;
            }
            Kind::Fifo => {
                nix::unistd::mkfifo(&p, Mode::from_bits_truncate(0o600))
                    .map_err(|e| io_err(e.into()))?;
                report.specials += 1;
            }
            Kind::CharDevice | Kind::BlockDevice | Kind::Socket => {
                if !is_root && node.kind != Kind::Socket {
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
                    .map_err(|e| io_err(e.into()))?;
                report.specials += 1;
            }
            _ => {}
        }
    }
    for node in tree.nodes().filter(|n| n.kind == Kind::Symlink) {
        let p = target(node);
        std::os::unix::fs::symlink(OsStr::from_bytes(&node.target), &p).map_err(|source| {
            ExtractError::Io {
                path: p.clone(),
                source,
            }
        })?;
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
        let io_err = |source| ExtractError::Io {
            path: p.clone(),
            source,
        };
        if is_root {
            std::os::unix::fs::lchown(&p, Some(node.uid), Some(node.gid)).map_err(io_err)?;
        }
        if node.kind != Kind::Symlink {
            fs::set_permissions(&p, fs::Permissions::from_mode(node.mode & 0o7777))
                .map_err(io_err)?;
        }
        let t = TimeSpec::new(i64::from(node.mtime), 0);
        stat::utimensat(None, &p, &t, &t, UtimensatFlags::NoFollowSymlink)
            .map_err(|e| io_err(e.into()))?;
    }
    Ok(())
}
