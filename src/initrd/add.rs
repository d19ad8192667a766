//! Patching an image: the manual's "copy modules in, edit /init, repack" as one checked step.
//!
//! - `overlay` (default) copies every original byte unchanged, verifying each segment on the
//!   way, and appends one compressed segment with the additions; the kernel applies it last, so
//!   it wins. Only the additions are compressed, so this is close to a plain copy.
//! - `repack` writes the merged view with the additions as one compressed archive, like the
//!   manual. Leading uncompressed segments (early microcode, ACPI tables) are kept byte for byte
//!   in front of it: the kernel's early loaders look for them only at the start of the file.
//!
//! Either way, an addition's parent path resolves through the image's symlinks as the kernel
//! resolves it (`/lib/modules/...` lands in `usr/lib/modules/...` when `lib -> usr/lib`), and a
//! directory symlink is never replaced by a directory.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::codec::{self, Compression};
use super::cpio::{self, Entry, Kind};
use super::image::{self, walk, ImageError, ReadOptions, Segment};
use super::input::Input;
use super::pack;
use super::path;
use super::tree::{DataPolicy, IssueKind, Tree};
use crate::fsutil::{AtomicOutput, OutputError};
use crate::names::Named;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum AddMode {
    /// Keep the original bytes and append one segment with the additions.
    Overlay,
    /// Write the merged view and the additions as one archive.
    Repack,
}

/// Where an addition's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file, symlink or directory (taken recursively) on the host.
    Path(PathBuf),
    /// A regular file with this content.
    Bytes(Vec<u8>),
    /// A symlink to this target.
    Symlink(Vec<u8>),
    /// An empty directory.
    Dir,
}

/// One thing to add: `--file SRC:DEST`, or content made by bootrig (init stanzas, configs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addition {
    pub source: Source,
    /// Path inside the image, e.g. `/lib/modules/6.1.0-56-amd64/extra/x.ko`.
    pub dest: Vec<u8>,
    /// Permission bits to set instead of the source's.
    pub mode: Option<u32>,
}

impl Addition {
    /// A host file, symlink or directory at `dest`.
    pub fn path(src: PathBuf, dest: &str) -> Self {
        Self {
            source: Source::Path(src),
            dest: dest.as_bytes().to_vec(),
            mode: None,
        }
    }

    /// A regular file with `data` and permission bits `mode` at `dest`.
    pub fn bytes(dest: &str, data: Vec<u8>, mode: u32) -> Self {
        Self {
            source: Source::Bytes(data),
            dest: dest.as_bytes().to_vec(),
            mode: Some(mode),
        }
    }

    /// A symlink at `dest` pointing to `target`.
    pub fn symlink(dest: &str, target: &str) -> Self {
        Self {
            source: Source::Symlink(target.as_bytes().to_vec()),
            dest: dest.as_bytes().to_vec(),
            mode: None,
        }
    }

    /// An empty directory at `dest`.
    pub fn dir(dest: &str, mode: u32) -> Self {
        Self {
            source: Source::Dir,
            dest: dest.as_bytes().to_vec(),
            mode: Some(mode),
        }
    }

    /// Parses `SRC:DEST` (split at the last `:`, since image paths have none in practice).
    pub fn parse(spec: &str) -> Result<Self, AddError> {
        match spec.rsplit_once(':') {
            Some((src, dest)) if !src.is_empty() && !dest.is_empty() => {
                Ok(Self::path(PathBuf::from(src), dest))
            }
            _ => Err(AddError::Spec {
                spec: spec.to_owned(),
            }),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AddOptions {
    pub mode: AddMode,
    /// None: the compression of the image's main segment when bootrig can write it, else gzip.
    pub compress: Option<Compression>,
    pub level: Option<u32>,
    pub force: bool,
    pub read: ReadOptions,
    /// Threads for repack's gzip members.
    pub threads: usize,
    /// mtime of directories bootrig creates (default: SOURCE_DATE_EPOCH, else 0) so that the same
    /// inputs give the same output.
    pub dir_mtime: u32,
}

impl Default for AddOptions {
    fn default() -> Self {
        Self {
            mode: AddMode::Overlay,
            compress: None,
            level: None,
            force: false,
            read: ReadOptions::default(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            dir_mtime: std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
        }
    }
}

#[derive(Debug, Error)]
pub enum AddError {
    #[error("--file {spec:?}: expected SRC:DEST, e.g. ./mlx5_core.ko:/lib/modules/6.1.0-56-amd64/extra/mlx5_core.ko")]
    Spec { spec: String },
    #[error("{path}: reading an addition's source (it must exist and be readable)")]
    Source { path: PathBuf, source: io::Error },
    #[error("{path}: a {kind} cannot be added; add regular files, symlinks or directories")]
    SourceType { path: PathBuf, kind: &'static str },
    #[error("destination {dest:?}: {why}")]
    Dest { dest: String, why: String },
    #[error("{image}: changed while bootrig was reading it; run again when nothing writes to it")]
    Changed { image: PathBuf },
    #[error("{image}: the output would replace the input; write to another file")]
    SameFile { image: PathBuf },
    #[error("--compress {0}: bootrig reads {0} but does not write it; choose gzip, zstd, xz, lz4 or none")]
    CannotWrite(&'static str),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// What `add` did.
#[derive(Debug, Clone)]
pub struct AddReport {
    /// Segments of the input.
    pub input_segments: Vec<Segment>,
    /// Paths written into the image (as the kernel will resolve them), in order.
    pub written: Vec<String>,
    /// Notes for the user: paths redirected through symlinks, replaced nodes.
    pub notes: Vec<String>,
    /// Things the user should act on: an addition that broke a hardlink (the other names keep
    /// the old content), entries of the input the kernel skips. Callers print them.
    pub warnings: Vec<String>,
    pub compression: Compression,
    pub output_len: u64,
}

/// Adds `additions` to `image`, writing `out` atomically.
pub fn add(
    image: &Path,
    out: &Path,
    additions: &[Addition],
    opts: &AddOptions,
) -> Result<AddReport, AddError> {
    if let Some(c) = opts.compress {
        if !c.can_write() {
            return Err(AddError::CannotWrite(c.as_str()));
        }
    }
    refuse_same_file(image, out)?;
    let sources = load_sources(additions, opts.dir_mtime)?;
    match opts.mode {
        AddMode::Overlay => overlay(image, out, &sources, opts),
        AddMode::Repack => repack(image, out, &sources, opts),
    }
}

fn refuse_same_file(image: &Path, out: &Path) -> Result<(), AddError> {
    if let (Ok(a), Ok(b)) = (fs::metadata(image), fs::metadata(out)) {
        if a.dev() == b.dev() && a.ino() == b.ino() {
            return Err(AddError::SameFile {
                image: image.to_owned(),
            });
        }
    }
    Ok(())
}

/// An addition's entries: its destination, then (for a directory) everything under it.
struct SourceEntry {
    dest: Vec<u8>,
    entry: Entry,
}

fn load_sources(additions: &[Addition], dir_mtime: u32) -> Result<Vec<SourceEntry>, AddError> {
    let mut out = Vec::new();
    for a in additions {
        let comps = path::components(&a.dest);
        if comps.is_empty() || comps.contains(&&b".."[..]) {
            return Err(AddError::Dest {
                dest: path::display(&a.dest),
                why: "must name a path inside the image without '..' (e.g. /lib/modules/<release>/extra/x.ko)".into(),
            });
        }
        let dest = path::normalize(&a.dest);
        let mode = |default: u32| a.mode.unwrap_or(default) & 0o7777;
        match &a.source {
            Source::Path(src) => load_one(src, dest, a.mode, dir_mtime, &mut out)?,
            Source::Bytes(data) => out.push(SourceEntry {
                dest,
                entry: new_entry(0o100000 | mode(0o644), dir_mtime, data.clone()),
            }),
            Source::Symlink(target) => out.push(SourceEntry {
                dest,
                entry: new_entry(0o120777, dir_mtime, target.clone()),
            }),
            Source::Dir => out.push(SourceEntry {
                dest,
                entry: new_entry(0o040000 | mode(0o755), dir_mtime, Vec::new()),
            }),
        }
    }
    Ok(out)
}

fn load_one(
    src: &Path,
    dest: Vec<u8>,
    mode: Option<u32>,
    dir_mtime: u32,
    out: &mut Vec<SourceEntry>,
) -> Result<(), AddError> {
    let err = |source| AddError::Source {
        path: src.to_owned(),
        source,
    };
    let meta = fs::symlink_metadata(src).map_err(err)?;
    let ft = meta.file_type();
    let perm = mode.unwrap_or(meta.permissions().mode() & 0o7777);
    let mtime = u32::try_from(meta.mtime()).unwrap_or(dir_mtime);
    if ft.is_file() {
        let data = crate::host::input::read_regular(src).map_err(err)?;
        out.push(SourceEntry {
            dest,
            entry: new_entry(0o100000 | perm, mtime, data),
        });
    } else if ft.is_symlink() {
        let target = fs::read_link(src).map_err(err)?;
        out.push(SourceEntry {
            dest,
            entry: new_entry(0o120777, mtime, target.as_os_str().as_bytes().to_vec()),
        });
    } else if ft.is_dir() {
        out.push(SourceEntry {
            dest: dest.clone(),
            entry: new_entry(0o040000 | perm, mtime, Vec::new()),
        });
        let mut children: Vec<_> = fs::read_dir(src)
            .map_err(err)?
            .collect::<Result<_, _>>()
            .map_err(err)?;
        // Sorted so that the same tree always gives the same archive.
        children.sort_by_key(|c| c.file_name());
        for child in children {
            let name = child.file_name();
            load_one(
                &child.path(),
                path::join(&dest, name.as_bytes()),
                None,
                dir_mtime,
                out,
            )?;
        }
    } else {
        return Err(AddError::SourceType {
            path: src.to_owned(),
            kind: "device, fifo or socket",
        });
    }
    Ok(())
}

fn new_entry(mode: u32, mtime: u32, data: Vec<u8>) -> Entry {
    let mut e = Entry::new(Vec::new(), mode, data);
    e.header.mtime = mtime;
    e
}

/// Resolves each source's destination against `tree` as the kernel will, creating missing parent
/// directories, applies the entries to `tree`, and returns the entries to write.
///
/// A regular file added where the image has a regular file with other hardlinks gets a fresh
/// inode: the kernel would open the existing one with O_TRUNC and write through it, changing
/// every other name (busybox, `/bin/sh` and `/init`'s interpreter with it). A symlink entry
/// written first makes the kernel unlink the old name (`clean_path`: another type), so the file
/// entry then creates a new inode; the tree (and so repack) sees the same.
fn place(
    tree: &mut Tree,
    sources: &[SourceEntry],
    dir_mtime: u32,
    remarks: &mut Remarks,
) -> Result<Vec<Entry>, AddError> {
    let notes = &mut remarks.notes;
    let mut entries = Vec::new();
    let segment = usize::MAX;
    for source in sources {
        let comps = path::components(&source.dest);
        let Some((last, parents)) = comps.split_last() else {
            continue;
        };
        let shown = path::display(&source.dest);
        let dest_err = |why: String| AddError::Dest {
            dest: format!("/{shown}"),
            why,
        };
        // Create missing parents where the kernel would look for them.
        let parent = loop {
            match tree.resolve_dir(parents).0 {
                Ok(dir) => break dir,
                Err(IssueKind::ParentMissing { dir }) => {
                    let mut e = new_entry(0o040755, dir_mtime, Vec::new());
                    e.name = dir.clone();
                    tree.apply(segment, e.clone(), 0);
                    if tree.get(&dir).is_none() {
                        return Err(dest_err(format!(
                            "cannot create directory {}",
                            path::display(&dir)
                        )));
                    }
                    entries.push(e);
                }
                Err(IssueKind::NotADirectory { what }) => {
                    return Err(dest_err(format!(
                        "{} is not a directory in the image",
                        path::display(&what)
                    )))
                }
                Err(other) => return Err(dest_err(other.describe())),
            }
        };
        let key = path::join(&parent, last);
        if key != source.dest {
            notes.push(format!(
                "/{shown} written as /{} (through the image's symlinks)",
                path::display(&key)
            ));
        }
        let kind = source.entry.kind();
        if let Some(existing) = tree.get(&key) {
            match (existing.kind, kind) {
                (Kind::Directory, Kind::Directory) => {}
                (Kind::Directory, _) => return Err(dest_err("is a directory in the image".into())),
                (Kind::Symlink, Kind::Directory) => {
                    // Never replace a directory symlink: the children go through it instead.
                    if tree.resolve_dir(&path::components(&key)).0.is_ok() {
                        notes.push(format!(
                            "/{} is a symlink to a directory in the image: kept, the addition's contents go through it",
                            path::display(&key)
                        ));
                        continue;
                    }
                    return Err(dest_err(
                        "is a symlink in the image that does not lead to a directory".into(),
                    ));
                }
                (Kind::Symlink, _) => notes.push(format!(
                    "/{} was a symlink to {}: replaced",
                    path::display(&key),
                    path::display(&existing.target)
                )),
                (Kind::Regular, Kind::Regular) => {
                    let others = tree.other_links(&key);
                    if !others.is_empty() {
                        remarks.warnings.push(hardlink_warning(&key, &others));
                        let mut unlink = new_entry(0o120777, dir_mtime, UNLINK_TARGET.to_vec());
                        unlink.name = key.clone();
                        tree.apply(segment, unlink.clone(), UNLINK_TARGET.len() as u64);
                        entries.push(unlink);
                    }
                }
                _ => {}
            }
        }
        let mut entry = source.entry.clone();
        entry.name = key;
        let size = entry.data.len() as u64;
        tree.apply(segment, entry.clone(), size);
        entries.push(entry);
    }
    Ok(entries)
}

/// Target of the symlink written to unlink a hardlinked name before a fresh file replaces it;
/// it never survives the next entry, so only someone reading the archive sees it.
const UNLINK_TARGET: &[u8] = b"bootrig-unlinks-this-hardlink";

/// What `place` has to tell the user.
#[derive(Default)]
struct Remarks {
    notes: Vec<String>,
    warnings: Vec<String>,
}

fn hardlink_warning(key: &[u8], others: &[&[u8]]) -> String {
    const SHOWN: usize = 3;
    let mut names: Vec<String> = others
        .iter()
        .take(SHOWN)
        .map(|p| format!("/{}", path::display(p)))
        .collect();
    if others.len() > SHOWN {
        names.push(format!("and {} more", others.len() - SHOWN));
    }
    format!(
        "/{} was a hardlink shared with {} other path(s) ({}): written as a new file; those {} \
         keep the old content (the kernel would otherwise have written through the shared inode \
         and changed them all)",
        path::display(key),
        others.len(),
        names.join(", "),
        others.len()
    )
}

/// The paths written, once each (a hardlink-breaking symlink shares its file's name).
fn written_paths(entries: &[Entry]) -> Vec<String> {
    let mut paths: Vec<String> = entries.iter().map(|e| path::display(&e.name)).collect();
    paths.dedup();
    paths
}

/// The input's entries the kernel skips or cannot create, as warnings.
fn issue_warnings(tree: &Tree) -> Vec<String> {
    tree.issues()
        .iter()
        .map(|i| {
            format!(
                "input entry \"{}\" in segment {}: {}",
                path::display(&i.name),
                i.segment,
                i.kind.describe()
            )
        })
        .collect()
}

/// Compresses one in-memory archive as one segment.
fn write_segment(
    compression: Compression,
    data: &[u8],
    level: Option<u32>,
    out: &mut dyn Write,
) -> io::Result<()> {
    if compression == Compression::Gzip {
        return out.write_all(&codec::gzip_member(data, level.unwrap_or(6))?);
    }
    let mut enc = codec::encoder(compression, out, level)?;
    enc.write_all(data)?;
    enc.finish()
}

fn default_compression(segments: &[Segment]) -> Compression {
    segments
        .iter()
        .rev()
        .map(|s| s.compression)
        .find(|c| *c != Compression::None)
        .filter(|c| c.can_write())
        .unwrap_or(Compression::Gzip)
}

fn overlay(
    image: &Path,
    out: &Path,
    sources: &[SourceEntry],
    opts: &AddOptions,
) -> Result<AddReport, AddError> {
    let mut output = AtomicOutput::create(out, opts.force)?;
    let out_err = |source| OutputError::Io {
        path: out.to_owned(),
        source,
    };
    // The original bytes are copied on a second thread (copy_file_range: no user-space copy)
    // while this one verifies the image and reads its structure.
    let mut copy_from = image::open(image)?;
    let mut copy_to = output.file().try_clone().map_err(out_err)?;
    let copier = std::thread::spawn(move || io::copy(&mut copy_from, &mut copy_to));
    let mut tree = Tree::new(DataPolicy::SizeOnly);
    let mut input = Input::new(image::open(image)?);
    let level = opts.level.unwrap_or(6);
    let may_speculate = opts.compress.is_none_or(|c| c == Compression::Gzip);
    let mut speculation: Option<Speculation> = None;
    let mut seen = 0usize;
    let walked = walk(&mut input, image, &opts.read, false, |seg, item| {
        tree.apply_item(seg.index, item);
        seen += 1;
        if seen == SPECULATE_AFTER && may_speculate {
            speculation = Speculation::start(&tree, sources, opts.dir_mtime, level);
        }
    });
    let copied = copier
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the copying thread panicked")))
        .map_err(out_err)?;
    let segments = walked?;
    if copied != input.offset() {
        return Err(AddError::Changed {
            image: image.to_owned(),
        });
    }
    let mut remarks = Remarks {
        warnings: issue_warnings(&tree),
        ..Remarks::default()
    };
    let entries = place(&mut tree, sources, opts.dir_mtime, &mut remarks)?;
    let compression = opts
        .compress
        .unwrap_or_else(|| default_compression(&segments));
    let mut writer = output.writer();
    let padding = padding_after(&segments, copied);
    writer.write_all(&vec![0u8; padding]).map_err(out_err)?;
    let (dirs, files) = split_dirs(&entries);
    let precompressed = match speculation {
        Some(s) if compression == Compression::Gzip => s.finish(&files),
        _ => None,
    };
    match precompressed {
        Some(tail) => {
            let head = pack::entries_bytes(&dirs, 1).map_err(out_err)?;
            let member = codec::gzip_member_with_tail(&head, &tail, level).map_err(out_err)?;
            writer.write_all(&member).map_err(out_err)?;
        }
        None => {
            let archive = pack::archive(&entries).map_err(out_err)?;
            write_segment(compression, &archive.bytes, opts.level, &mut writer).map_err(out_err)?;
        }
    }
    writer.flush().map_err(out_err)?;
    drop(writer);
    let output_len = output.file().metadata().map_err(out_err)?.len();
    output.commit()?;
    Ok(AddReport {
        input_segments: segments,
        written: written_paths(&entries),
        notes: remarks.notes,
        warnings: remarks.warnings,
        compression,
        output_len,
    })
}

/// Entries seen before an overlay guesses where its additions will land. Top-level symlinks
/// (`lib -> usr/lib`) come first in distribution images; later ones only cost the guess.
const SPECULATE_AFTER: usize = 64;

/// Inode numbers of the precompressed part, apart from the directories written before it.
const TAIL_FIRST_INO: u32 = 1 << 20;

/// The overlay segment's bulk compressed on another core while the image is still being
/// verified: the non-directory additions placed against the tree seen so far. Only where they
/// land depends on the image (its symlinks), not on which parent directories exist, so the guess
/// is checked against the final placement and used only when identical.
struct Speculation {
    files: Vec<Entry>,
    handle: std::thread::JoinHandle<io::Result<codec::DeflatedTail>>,
}

impl Speculation {
    fn start(tree: &Tree, sources: &[SourceEntry], dir_mtime: u32, level: u32) -> Option<Self> {
        let mut guess = tree.clone();
        let entries = place(&mut guess, sources, dir_mtime, &mut Remarks::default()).ok()?;
        let (_, files) = split_dirs(&entries);
        let mut bytes = pack::entries_bytes(&files, TAIL_FIRST_INO).ok()?;
        let mut trailer = cpio::Writer::new(Vec::new());
        trailer.write_trailer().ok()?;
        bytes.extend_from_slice(&trailer.into_inner());
        let handle = std::thread::spawn(move || codec::deflate_tail(&bytes, level));
        Some(Self { files, handle })
    }

    /// The precompressed tail, when the guess matches the real placement.
    fn finish(self, files: &[Entry]) -> Option<codec::DeflatedTail> {
        let tail = self.handle.join().ok()?.ok()?;
        (self.files == files).then_some(tail)
    }
}

/// Directory entries first (they are small and depend on what the image has), the rest after.
fn split_dirs(entries: &[Entry]) -> (Vec<Entry>, Vec<Entry>) {
    entries
        .iter()
        .cloned()
        .partition(|e| e.kind() == Kind::Directory)
}

/// NUL bytes to put between the original image and the appended segment. The kernel skips NULs
/// between segments; a 4-byte boundary keeps uncompressed archives valid, and a legacy-lz4
/// segment has no end marker, so the kernel's unlz4 needs zeros after it to stop
/// (lib/decompress_unlz4.c).
fn padding_after(segments: &[Segment], len: u64) -> usize {
    let align = ((4 - len % 4) % 4) as usize;
    let lz4_last = segments
        .last()
        .is_some_and(|s| s.compression == Compression::Lz4);
    if lz4_last {
        align + 4
    } else {
        align
    }
}

fn repack(
    image: &Path,
    out: &Path,
    sources: &[SourceEntry],
    opts: &AddOptions,
) -> Result<AddReport, AddError> {
    // Leading uncompressed segments are kept verbatim when a compressed segment follows them.
    let mut early = Tree::new(DataPolicy::Full);
    let mut main = Tree::new(DataPolicy::Full);
    let mut in_early = true;
    let mut input = Input::new(image::open(image)?);
    let segments = walk(&mut input, image, &opts.read, true, |seg, item| {
        in_early &= seg.compression == Compression::None;
        if in_early {
            early.apply_item(seg.index, item);
        } else {
            main.apply_item(seg.index, item);
        }
    })?;
    let mut warnings = issue_warnings(&early);
    warnings.extend(issue_warnings(&main));
    let (prefix_len, mut tree) = match segments.iter().find(|s| s.compression != Compression::None)
    {
        Some(first) => (first.offset - first.padding_before, main),
        None => (0, early),
    };
    let mut remarks = Remarks {
        warnings,
        ..Remarks::default()
    };
    let added = place(&mut tree, sources, opts.dir_mtime, &mut remarks)?;
    let compression = opts
        .compress
        .unwrap_or_else(|| default_compression(&segments));
    let archive = pack::archive(&pack::tree_entries(&tree)).map_err(|source| OutputError::Io {
        path: out.to_owned(),
        source,
    })?;

    let mut output = AtomicOutput::create(out, opts.force)?;
    let out_err = |source| OutputError::Io {
        path: out.to_owned(),
        source,
    };
    {
        let mut writer = output.writer();
        if prefix_len > 0 {
            let mut prefix = image::open(image)?.take(prefix_len);
            io::copy(&mut prefix, &mut writer).map_err(out_err)?;
            let pad = ((4 - prefix_len % 4) % 4) as usize;
            writer.write_all(&vec![0u8; pad]).map_err(out_err)?;
        }
        if compression == Compression::Gzip && opts.threads > 1 {
            let chunks = archive.split(opts.threads);
            codec::gzip_members_parallel(
                &chunks,
                opts.level.unwrap_or(6),
                opts.threads,
                &mut writer,
            )
            .map_err(out_err)?;
        } else {
            write_segment(compression, &archive.bytes, opts.level, &mut writer).map_err(out_err)?;
        }
        writer.flush().map_err(out_err)?;
    }
    let output_len = output.file().metadata().map_err(out_err)?.len();
    output.commit()?;
    Ok(AddReport {
        input_segments: segments,
        written: written_paths(&added),
        notes: remarks.notes,
        warnings: remarks.warnings,
        compression,
        output_len,
    })
}
