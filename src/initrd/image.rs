//! An initrd as the kernel reads it: an ordered list of segments (uncompressed newc archives and
//! compressed streams, NUL padding between them), walked front to back. `walk` is the one reader
//! every command uses; `read_tree` builds the merged view on top of it.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;
use thiserror::Error;

use crate::names::Named;

use super::codec::{self, Compression};
use super::cpio::{self, CpioError, Item};
use super::input::Input;
use super::tree::{DataPolicy, Tree};

/// Default cap on the decompressed size of one image: generous for any real initrd, small enough
/// that a decompression bomb fails cleanly instead of filling memory or disk.
pub const DEFAULT_MAX_OUTPUT: u64 = 4 << 30;

#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    /// Cap on the total decompressed bytes of the image.
    pub max_output: u64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            max_output: DEFAULT_MAX_OUTPUT,
        }
    }
}

/// One segment, as found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Segment {
    pub index: usize,
    /// Byte offset of the segment in the image.
    pub offset: u64,
    pub compression: Compression,
    /// Bytes the segment occupies in the image.
    pub stored_len: u64,
    /// Bytes of cpio data it holds.
    pub uncompressed_len: u64,
    /// Entries, trailers included.
    pub entries: usize,
    /// NUL bytes between the previous segment and this one.
    pub padding_before: u64,
}

#[derive(Debug, Error)]
pub enum ImageError {
    #[error("{path}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: empty file: an initrd holds at least one cpio archive")]
    Empty { path: PathBuf },
    #[error(
        "{path}: segment {index} at byte {offset}: unknown magic {found}: expected a newc cpio archive \
         (\"070701\"/\"070702\") or gzip, bzip2, lzma, xz, lz4 (legacy) or zstd data \
         (kernel: \"invalid magic at start of compressed archive\")"
    )]
    UnknownMagic {
        path: PathBuf,
        index: usize,
        offset: u64,
        found: String,
    },
    #[error(
        "{path}: segment {index} at byte {offset}: cpio archive starts at an offset that is not a multiple \
         of 4; the kernel only accepts uncompressed archives on 4-byte boundaries"
    )]
    Unaligned {
        path: PathBuf,
        index: usize,
        offset: u64,
    },
    #[error("{path}: segment {index} ({compression}) at byte {offset}")]
    Cpio {
        path: PathBuf,
        index: usize,
        offset: u64,
        compression: &'static str,
        source: CpioError,
    },
    #[error(
        "{path}: {what} at byte {offset} goes past the --max-size limit of {max} bytes \
         (decompressed data and padding count); if the image really is this large, raise --max-size"
    )]
    TooLarge {
        path: PathBuf,
        offset: u64,
        /// What was being read: "NUL padding", "segment 1 (gzip)".
        what: String,
        max: u64,
    },
    #[error("{path}: segment {index} ({compression}) at byte {offset}")]
    Decode {
        path: PathBuf,
        index: usize,
        offset: u64,
        compression: &'static str,
        /// Boxed: a codec error is large, and every `Result` carrying an `ImageError` pays for it.
        #[source]
        source: Box<codec::CodecError>,
    },
}

/// Where an entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentRef {
    pub index: usize,
    pub offset: u64,
    pub compression: Compression,
}

/// Walks the segments of `input`, handing each entry (or entry the kernel skips) to
/// `visit(segment, item)`; a skipped entry's offset counts from its segment's start. With
/// `keep_data` false, regular files' data is read and dropped (the entry's data is empty).
/// Returns the segments found. Decompressed bytes, uncompressed segments and NUL padding all
/// count against `opts.max_output`, so no input, however long, is read without end.
pub fn walk<R: Read>(
    input: &mut Input<R>,
    image: &Path,
    opts: &ReadOptions,
    keep_data: bool,
    mut visit: impl FnMut(SegmentRef, Item),
) -> Result<Vec<Segment>, ImageError> {
    let mut segments = Vec::new();
    let mut budget = opts.max_output;
    let io_err = |source| ImageError::Io {
        path: image.to_owned(),
        source,
    };
    let too_large = |offset, what: String| ImageError::TooLarge {
        path: image.to_owned(),
        offset,
        what,
        max: opts.max_output,
    };
    loop {
        let padding_start = input.offset();
        let padding_before = input.skip_nuls(budget).map_err(io_err)?;
        if padding_before > budget {
            return Err(too_large(padding_start, "NUL padding".into()));
        }
        budget -= padding_before;
        let offset = input.offset();
        let head = input.peek(6).map_err(io_err)?.to_vec();
        if head.is_empty() {
            break;
        }
        let index = segments.len();
        let Some(compression) = codec::detect(&head) else {
            return Err(ImageError::UnknownMagic {
                path: image.to_owned(),
                index,
                offset,
                found: show_magic(&head),
            });
        };
        let seg = SegmentRef {
            index,
            offset,
            compression,
        };
        let mut entries = 0;
        let uncompressed_len;
        if compression == Compression::None {
            if offset % 4 != 0 {
                return Err(ImageError::Unaligned {
                    path: image.to_owned(),
                    index,
                    offset,
                });
            }
            // The kernel takes entries while the next byte is a '0' on a 4-byte boundary; anything
            // else (NULs, a compressed stream) starts the next segment. A fresh reader per entry
            // keeps the alignment base at the entry, which is 4-aligned in the file.
            loop {
                let entry_start = input.offset();
                // At most one byte past the budget is read: an entry whose c_filesize goes past
                // it (up to 4 GiB, held in memory when data is kept) stops there, not after.
                let limit = budget.saturating_add(1);
                let mut reader = cpio::Reader::new((&mut *input).take(limit));
                let next = reader.next_item(keep_data);
                let pos = reader.position();
                if reader.into_inner().limit() == 0 || pos > budget {
                    let what = format!("segment {index} (uncompressed): entry");
                    return Err(too_large(entry_start, what));
                }
                match next {
                    Ok(Some(item)) => {
                        entries += 1;
                        budget -= pos;
                        visit(seg, with_offset(item, entry_start - offset));
                    }
                    Ok(None) => break,
                    Err(mut source) => {
                        // Offsets in a segment's errors count from the segment's start.
                        source.offset += entry_start - offset;
                        return Err(ImageError::Cpio {
                            path: image.to_owned(),
                            index,
                            offset,
                            compression: compression.as_str(),
                            source,
                        });
                    }
                }
                let next = input.peek(1).map_err(io_err)?;
                if next != b"0" || input.offset() % 4 != 0 {
                    break;
                }
            }
            uncompressed_len = input.offset() - offset;
        } else {
            // The cpio reader asks for headers a hundred bytes at a time; a buffer between keeps
            // the decompressor on its fast path (large output windows).
            let decoder = io::BufReader::with_capacity(
                256 << 10,
                codec::decoder(compression, &mut *input, budget),
            );
            let mut reader = cpio::Reader::new(decoder);
            loop {
                match reader.next_item(keep_data) {
                    Ok(Some(item)) => {
                        entries += 1;
                        visit(seg, item);
                    }
                    Ok(None) => break,
                    Err(source) => {
                        if output_too_large(&source) {
                            let what = format!("segment {index} ({})", compression.as_str());
                            return Err(too_large(offset, what));
                        }
                        return Err(compressed_error(image, index, offset, compression, source));
                    }
                }
            }
            uncompressed_len = reader.position();
            budget = budget.saturating_sub(uncompressed_len);
        }
        segments.push(Segment {
            index,
            offset,
            compression,
            stored_len: input.offset() - offset,
            uncompressed_len,
            entries,
            padding_before,
        });
    }
    if segments.is_empty() {
        return Err(ImageError::Empty {
            path: image.to_owned(),
        });
    }
    Ok(segments)
}

/// Whether the decompressor stopped at the output cap (its error reaches the cpio reader as
/// the `io::Error` of a read).
fn output_too_large(err: &CpioError) -> bool {
    let cpio::CpioErrorKind::Io(io) = &err.kind else {
        return false;
    };
    io.get_ref()
        .and_then(|inner| inner.downcast_ref::<codec::CodecError>())
        .is_some_and(|c| matches!(c, codec::CodecError::OutputTooLarge { .. }))
}

/// An item whose offset counts from `base` further on.
fn with_offset(item: Item, base: u64) -> Item {
    match item {
        Item::Skipped(mut skipped) => {
            skipped.offset += base;
            Item::Skipped(skipped)
        }
        entry => entry,
    }
}

/// A cpio error inside a compressed segment is either the decompressor's (corrupt or truncated
/// stream, output cap) or the archive's own.
fn compressed_error(
    image: &Path,
    index: usize,
    offset: u64,
    compression: Compression,
    source: CpioError,
) -> ImageError {
    let source = match take_codec_error(source) {
        Ok(codec_err) => {
            return ImageError::Decode {
                path: image.to_owned(),
                index,
                offset,
                compression: compression.as_str(),
                source: Box::new(codec_err),
            }
        }
        Err(source) => source,
    };
    ImageError::Cpio {
        path: image.to_owned(),
        index,
        offset,
        compression: compression.as_str(),
        source,
    }
}

/// The decoder's [`codec::CodecError`], when the cpio reader failed on one (it arrives as the
/// read's `io::Error`); otherwise the cpio error back.
fn take_codec_error(source: CpioError) -> Result<codec::CodecError, CpioError> {
    let CpioError { offset, kind } = source;
    match kind {
        cpio::CpioErrorKind::Io(io) => io
            .downcast::<codec::CodecError>()
            .map_err(|io| CpioError::new(offset, cpio::CpioErrorKind::Io(io))),
        kind => Err(CpioError::new(offset, kind)),
    }
}

fn show_magic(head: &[u8]) -> String {
    let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
    format!("{} (\"{}\")", hex.join(" "), head.escape_ascii())
}

/// Opens an image file for reading; refuses what is not a regular file (a FIFO, `/dev/zero`).
pub fn open(path: &Path) -> Result<File, ImageError> {
    crate::host::input::open_regular(path).map_err(|source| ImageError::Io {
        path: path.to_owned(),
        source,
    })
}

/// The merged view and the segments of an image file.
pub fn read_tree(
    path: &Path,
    policy: DataPolicy,
    opts: &ReadOptions,
) -> Result<(Tree, Vec<Segment>), ImageError> {
    read_tree_from(open(path)?, path, policy, opts)
}

/// The merged view and the segments of an image read from `reader`; `name` is for messages.
pub fn read_tree_from<R: Read>(
    reader: R,
    name: &Path,
    policy: DataPolicy,
    opts: &ReadOptions,
) -> Result<(Tree, Vec<Segment>), ImageError> {
    let path = name;
    let mut input = Input::new(reader);
    let mut tree = Tree::new(policy);
    let segments = walk(&mut input, path, opts, policy.needs_data(), |seg, item| {
        tree.apply_item(seg.index, item)
    })?;
    Ok((tree, segments))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_segment_keeps_the_codec_error_as_its_source_said_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corrupt.img");
        let mut corrupt = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        corrupt.extend_from_slice(&[0xff; 64]);
        std::fs::write(&path, &corrupt).unwrap();
        let err = read_tree(&path, DataPolicy::SizeOnly, &ReadOptions::default()).unwrap_err();
        assert!(matches!(err, ImageError::Decode { index: 0, .. }), "{err}");
        let codec = std::error::Error::source(&err).expect("the codec error is the source");
        assert!(codec.is::<Box<codec::CodecError>>(), "{codec}");
        let chain = crate::error_chain(&err);
        assert_eq!(chain.matches(&codec.to_string()).count(), 1, "{chain}");
        assert!(
            chain.starts_with(&format!(
                "{}: segment 0 (gzip) at byte 0: gzip: ",
                path.display()
            )),
            "{chain}"
        );
    }
}
