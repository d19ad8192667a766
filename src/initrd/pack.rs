//! Turning entries or a merged tree back into a newc archive: the writing half of `repack` and
//! of overlay segments.

use std::io;

use super::cpio::{self, Entry, Format, Header, Kind};
use super::tree::Tree;

/// A serialized newc archive and the offsets where its entries start (for splitting into gzip
/// members on entry boundaries).
pub struct Archive {
    pub bytes: Vec<u8>,
    /// Offset of each entry, and of the trailer last.
    pub boundaries: Vec<usize>,
}

/// Serializes `entries` and a trailer. Entries with inode 0 get fresh inode numbers (above any
/// given ones would be safer, but callers give either all or none).
pub fn archive(entries: &[Entry]) -> io::Result<Archive> {
    let mut writer = cpio::Writer::new(Vec::new());
    let mut boundaries = Vec::with_capacity(entries.len() + 1);
    let mut next_ino = entries
        .iter()
        .map(|e| e.header.ino)
        .max()
        .unwrap_or(0)
        .saturating_add(1);
    for e in entries {
        boundaries.push(writer.position() as usize);
        let mut e = e.clone();
        if e.header.ino == 0 {
            e.header.ino = next_ino;
            next_ino += 1;
        }
        writer.write_entry(&e)?;
    }
    boundaries.push(writer.position() as usize);
    writer.write_trailer()?;
    Ok(Archive {
        bytes: writer.into_inner(),
        boundaries,
    })
}

/// Serializes `entries` without a trailer, numbering inodes from `first_ino` (a part of an
/// archive that another part completes).
pub fn entries_bytes(entries: &[Entry], first_ino: u32) -> io::Result<Vec<u8>> {
    let mut writer = cpio::Writer::new(Vec::new());
    let mut next_ino = first_ino;
    for e in entries {
        let mut e = e.clone();
        if e.header.ino == 0 {
            e.header.ino = next_ino;
            next_ino = next_ino.saturating_add(1);
        }
        writer.write_entry(&e)?;
    }
    Ok(writer.into_inner())
}

fn is_hardlinked(counts: &[u32], inode: Option<usize>) -> bool {
    inode.is_some_and(|i| counts[i] > 1)
}

/// The tree's live nodes as entries, parents first (first-appearance order guarantees it).
/// Hardlinked files share an inode number and carry their data on the last name, as GNU cpio
/// writes them.
pub fn tree_entries(tree: &Tree) -> Vec<Entry> {
    let counts = tree.link_counts();
    let mut remaining = counts.clone();
    let mut inos: Vec<u32> = vec![0; counts.len()];
    let mut next_ino = 1u32;
    let mut entries = Vec::with_capacity(tree.len());
    for node in tree.nodes() {
        let ino = match node.inode {
            Some(i) if inos[i] != 0 => inos[i],
            Some(i) => {
                inos[i] = next_ino;
                next_ino += 1;
                inos[i]
            }
            None => {
                next_ino += 1;
                next_ino - 1
            }
        };
        let data = match (node.kind, node.inode) {
            (Kind::Regular, Some(i)) => {
                remaining[i] -= 1;
                let last = remaining[i] == 0;
                if last {
                    tree.inode(node)
                        .and_then(|n| n.data.clone())
                        .unwrap_or_default()
                } else {
                    Vec::new()
                }
            }
            (Kind::Symlink, _) => node.target.clone(),
            _ => Vec::new(),
        };
        let nlink = match node.kind {
            Kind::Directory => 2,
            _ if is_hardlinked(&counts, node.inode) => node.inode.map_or(1, |i| counts[i]),
            _ => 1,
        };
        entries.push(Entry {
            header: Header {
                format: Format::Newc,
                ino,
                mode: node.mode,
                uid: node.uid,
                gid: node.gid,
                nlink,
                mtime: node.mtime,
                dev_major: 0,
                dev_minor: 0,
                rdev_major: node.rdev.0,
                rdev_minor: node.rdev.1,
                check: 0,
            },
            name: node.path.clone(),
            data,
        });
    }
    entries
}

/// Splits an archive into about `parts` chunks of similar size, each ending on an entry boundary
/// (the kernel requires each gzip member to end between entries).
impl Archive {
    pub fn split(&self, parts: usize) -> Vec<&[u8]> {
        split_at_boundaries(self, parts)
    }
}

fn split_at_boundaries(archive: &Archive, parts: usize) -> Vec<&[u8]> {
    let total = archive.bytes.len();
    let parts = parts.max(1);
    let mut chunks = Vec::with_capacity(parts);
    let mut start = 0;
    for k in 1..parts {
        let goal = total * k / parts;
        let cut = archive
            .boundaries
            .iter()
            .copied()
            .find(|&b| b >= goal && b > start)
            .unwrap_or(total);
        if cut >= total {
            break;
        }
        chunks.push(&archive.bytes[start..cut]);
        start = cut;
    }
    chunks.push(&archive.bytes[start..]);
    chunks
}
