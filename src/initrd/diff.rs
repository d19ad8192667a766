//! What differs between two images' merged views: added, removed and changed paths (content hash,
//! type, mode, owner, link target, device number), and a unified diff of changed small text files
//! such as `/init`. This is how a support engineer compares a customer's failing initrd with a
//! good one. Modification times are left out unless asked: every rebuild changes them.

use std::path::Path;

use serde::Serialize;

use super::cpio::Kind;
use super::image::{read_tree, ImageError, ReadOptions};
use super::path;
use super::tree::{DataPolicy, Node, Tree};

/// Files up to this size keep their content for the unified diff.
pub const DEFAULT_TEXT_LIMIT: u64 = 256 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct DiffOptions {
    pub read: ReadOptions,
    pub text_limit: u64,
    pub compare_mtime: bool,
}

impl Default for DiffOptions {
    fn default() -> Self {
        Self {
            read: ReadOptions::default(),
            text_limit: DEFAULT_TEXT_LIMIT,
            compare_mtime: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "change", rename_all = "lowercase")]
pub enum Change {
    Added {
        path: String,
        kind: String,
    },
    Removed {
        path: String,
        kind: String,
    },
    Changed {
        path: String,
        differences: Vec<Difference>,
    },
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "field", rename_all = "lowercase")]
pub enum Difference {
    Kind {
        a: String,
        b: String,
    },
    Content {
        a_sha256: String,
        b_sha256: String,
        a_size: u64,
        b_size: u64,
    },
    Mode {
        a: u32,
        b: u32,
    },
    Owner {
        a: (u32, u32),
        b: (u32, u32),
    },
    Target {
        a: String,
        b: String,
    },
    Device {
        a: (u32, u32),
        b: (u32, u32),
    },
    Mtime {
        a: u32,
        b: u32,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct TextDiff {
    pub path: String,
    pub unified: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub changes: Vec<Change>,
    pub text_diffs: Vec<TextDiff>,
    /// Entries of either image the kernel skips or cannot create (over-long names, …), each
    /// naming its image: they are absent from both views, so they appear in no change.
    pub warnings: Vec<String>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Human-readable report: one line per change, then the unified diffs.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let (mut added, mut removed, mut changed) = (0, 0, 0);
        for change in &self.changes {
            match change {
                Change::Added { path, kind } => {
                    added += 1;
                    out.push_str(&format!("added    {path} ({kind})\n"));
                }
                Change::Removed { path, kind } => {
                    removed += 1;
                    out.push_str(&format!("removed  {path} ({kind})\n"));
                }
                Change::Changed { path, differences } => {
                    changed += 1;
                    let what: Vec<String> = differences.iter().map(describe).collect();
                    out.push_str(&format!("changed  {path}: {}\n", what.join(", ")));
                }
            }
        }
        out.push_str(&format!(
            "{added} added, {removed} removed, {changed} changed\n"
        ));
        for text in &self.text_diffs {
            out.push('\n');
            out.push_str(&text.unified);
            if !text.unified.ends_with('\n') {
                out.push('\n');
            }
        }
        out
    }
}

fn describe(d: &Difference) -> String {
    match d {
        Difference::Kind { a, b } => format!("type {a} -> {b}"),
        Difference::Content {
            a_sha256,
            b_sha256,
            a_size,
            b_size,
        } => {
            format!(
                "content sha256 {}… -> {}…, {a_size} -> {b_size} bytes",
                &a_sha256[..12],
                &b_sha256[..12]
            )
        }
        Difference::Mode { a, b } => format!("mode {a:04o} -> {b:04o}"),
        Difference::Owner { a, b } => format!("owner {}:{} -> {}:{}", a.0, a.1, b.0, b.1),
        Difference::Target { a, b } => format!("target {a} -> {b}"),
        Difference::Device { a, b } => format!("device {}:{} -> {}:{}", a.0, a.1, b.0, b.1),
        Difference::Mtime { a, b } => format!("mtime {a} -> {b}"),
    }
}

pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Regular => "file",
        Kind::Directory => "directory",
        Kind::Symlink => "symlink",
        Kind::CharDevice => "char device",
        Kind::BlockDevice => "block device",
        Kind::Fifo => "fifo",
        Kind::Socket => "socket",
        Kind::Unknown => "unknown",
    }
}

/// Compares the merged views of two image files.
pub fn diff_images(a: &Path, b: &Path, opts: &DiffOptions) -> Result<Diff, ImageError> {
    let policy = DataPolicy::Digest {
        keep_up_to: opts.text_limit,
    };
    let (ta, _) = read_tree(a, policy, &opts.read)?;
    let (tb, _) = read_tree(b, policy, &opts.read)?;
    let mut diff = diff_trees(&ta, &tb, opts);
    for (image, tree) in [(a, &ta), (b, &tb)] {
        diff.warnings.extend(tree.issues().iter().map(|i| {
            format!(
                "{}: entry \"{}\" in segment {}: {}",
                image.display(),
                path::display(&i.name),
                i.segment,
                i.kind.describe()
            )
        }));
    }
    Ok(diff)
}

/// Compares two merged views (trees read with a digest policy).
pub fn diff_trees(a: &Tree, b: &Tree, opts: &DiffOptions) -> Diff {
    let mut changes = Vec::new();
    let mut text_diffs = Vec::new();
    for na in a.nodes() {
        let shown = path::display(&na.path);
        match b.get(&na.path) {
            None => changes.push(Change::Removed {
                path: shown,
                kind: kind_name(na.kind).into(),
            }),
            Some(nb) => {
                let differences = compare(a, na, b, nb, opts);
                if differences
                    .iter()
                    .any(|d| matches!(d, Difference::Content { .. }))
                {
                    if let Some(unified) = unified_text_diff(a, na, b, nb) {
                        text_diffs.push(TextDiff {
                            path: shown.clone(),
                            unified,
                        });
                    }
                }
                if !differences.is_empty() {
                    changes.push(Change::Changed {
                        path: shown,
                        differences,
                    });
                }
            }
        }
    }
    for nb in b.nodes() {
        if a.get(&nb.path).is_none() {
            changes.push(Change::Added {
                path: path::display(&nb.path),
                kind: kind_name(nb.kind).into(),
            });
        }
    }
    Diff {
        changes,
        text_diffs,
        warnings: Vec::new(),
    }
}

fn compare(a: &Tree, na: &Node, b: &Tree, nb: &Node, opts: &DiffOptions) -> Vec<Difference> {
    let mut out = Vec::new();
    if na.kind != nb.kind {
        out.push(Difference::Kind {
            a: kind_name(na.kind).into(),
            b: kind_name(nb.kind).into(),
        });
        return out;
    }
    if na.kind == Kind::Regular {
        let (ia, ib) = (a.inode(na), b.inode(nb));
        let digest =
            |i: Option<&super::tree::Inode>| i.and_then(|i| i.digest).map(hex).unwrap_or_default();
        let (da, db) = (digest(ia), digest(ib));
        let (sa, sb) = (a.size(na), b.size(nb));
        if da != db || sa != sb {
            out.push(Difference::Content {
                a_sha256: da,
                b_sha256: db,
                a_size: sa,
                b_size: sb,
            });
        }
    }
    if na.mode & 0o7777 != nb.mode & 0o7777 {
        out.push(Difference::Mode {
            a: na.mode & 0o7777,
            b: nb.mode & 0o7777,
        });
    }
    if (na.uid, na.gid) != (nb.uid, nb.gid) {
        out.push(Difference::Owner {
            a: (na.uid, na.gid),
            b: (nb.uid, nb.gid),
        });
    }
    if na.target != nb.target {
        out.push(Difference::Target {
            a: path::display(&na.target),
            b: path::display(&nb.target),
        });
    }
    if matches!(na.kind, Kind::CharDevice | Kind::BlockDevice) && na.rdev != nb.rdev {
        out.push(Difference::Device {
            a: na.rdev,
            b: nb.rdev,
        });
    }
    if opts.compare_mtime && na.mtime != nb.mtime {
        out.push(Difference::Mtime {
            a: na.mtime,
            b: nb.mtime,
        });
    }
    out
}

fn unified_text_diff(a: &Tree, na: &Node, b: &Tree, nb: &Node) -> Option<String> {
    let text = |t: &Tree, n: &Node| -> Option<String> {
        let data = t.inode(n)?.data.as_deref()?;
        if data.contains(&0) {
            return None;
        }
        String::from_utf8(data.to_vec()).ok()
    };
    let (ta, tb) = (text(a, na)?, text(b, nb)?);
    let shown = path::display(&na.path);
    let diff = similar::TextDiff::from_lines(&ta, &tb);
    Some(
        diff.unified_diff()
            .context_radius(3)
            .header(&format!("a/{shown}"), &format!("b/{shown}"))
            .to_string(),
    )
}

fn hex(bytes: [u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
