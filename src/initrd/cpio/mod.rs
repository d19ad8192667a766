//! newc cpio archives ("070701", and "070702" with its byte-sum check), read and written with the
//! fidelity of the kernel's `init/initramfs.c` and GNU cpio.
//!
//! Hand-written rather than the `cpio` crate (0.4): that crate decodes names as UTF-8 (rejecting
//! high-byte names) and strips their trailing NULs, never verifies 070702 checks, reports bare
//! `io::Error`s without byte offsets and skips no NUL padding between archives. The format is
//! small; owning it lets every malformed input become a typed error with the offset where it starts.
//!
//! Layout of one entry: a 110-byte ASCII header (magic + 13 fields of 8 hex digits), the name and
//! its NUL, NUL padding to a multiple of 4, the data, NUL padding to a multiple of 4. Alignment is
//! relative to the start of the stream (the kernel's `this_header`, reset per decompressed stream).

mod error;
mod header;
mod reader;
mod writer;

#[cfg(test)]
mod tests_gnu;
#[cfg(test)]
mod tests_roundtrip;

pub use error::{CpioError, CpioErrorKind};
pub use reader::{Item, Reader, SkipReason, Skipped};
pub use writer::Writer;

/// The name of the entry that ends an archive.
pub const TRAILER: &[u8] = b"TRAILER!!!";

/// PATH_MAX: the longest name size (with its NUL), and the longest symlink target, the kernel's
/// `do_header` accepts; it skips entries with longer ones and goes on.
pub const MAX_NAME_SIZE: u32 = 4096;

/// Bytes of a skipped entry's name kept for messages.
const SKIPPED_NAME_KEPT: usize = 64;

const S_IFMT: u32 = 0o170000;

/// Which of the two newc magics an entry carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Format {
    /// "070701": `c_check` is unused (GNU cpio writes 0).
    #[default]
    Newc,
    /// "070702": `c_check` of a regular file is the sum of its data bytes, modulo 2^32.
    Crc,
}

impl Format {
    /// The six magic bytes that start a header of this format.
    pub fn magic(self) -> &'static [u8; 6] {
        match self {
            Format::Newc => b"070701",
            Format::Crc => b"070702",
        }
    }
}

/// Header fields as stored, except `c_filesize` and `c_namesize`, which follow from the entry's
/// data and name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub format: Format,
    pub ino: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub rdev_major: u32,
    pub rdev_minor: u32,
    pub check: u32,
}

/// File type, from `mode & 0o170000`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Regular,
    Directory,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
    Unknown,
}

impl Kind {
    /// The kind encoded in a full st_mode value.
    pub fn from_mode(mode: u32) -> Kind {
        match mode & S_IFMT {
            0o100000 => Kind::Regular,
            0o040000 => Kind::Directory,
            0o120000 => Kind::Symlink,
            0o020000 => Kind::CharDevice,
            0o060000 => Kind::BlockDevice,
            0o010000 => Kind::Fifo,
            0o140000 => Kind::Socket,
            _ => Kind::Unknown,
        }
    }
}

/// One archive member, raw: hardlinks are separate entries sharing `ino` (GNU cpio stores the
/// data on the last link only), a symlink's data is its target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub header: Header,
    /// As stored, without the terminating NUL; e.g. `b"./usr/bin/sh"` or `b"usr/bin/sh"`.
    pub name: Vec<u8>,
    pub data: Vec<u8>,
}

impl Entry {
    pub fn kind(&self) -> Kind {
        Kind::from_mode(self.header.mode)
    }

    /// The name up to its first NUL: what the kernel (a C string) sees. Differs from `name` only
    /// for names padded with extra NULs inside `c_namesize`.
    pub fn c_name(&self) -> &[u8] {
        match self.name.iter().position(|&b| b == 0) {
            Some(end) => &self.name[..end],
            None => &self.name,
        }
    }

    /// Whether this is an end-of-archive marker (compared as the kernel and GNU cpio do: by name).
    pub fn is_trailer(&self) -> bool {
        self.c_name() == TRAILER
    }

    /// A new-format entry owned by root with mtime 0: nlink 2 for a directory, else 1.
    pub fn new(name: impl Into<Vec<u8>>, mode: u32, data: Vec<u8>) -> Entry {
        let nlink = if Kind::from_mode(mode) == Kind::Directory {
            2
        } else {
            1
        };
        Entry {
            header: Header {
                mode,
                nlink,
                ..Header::default()
            },
            name: name.into(),
            data,
        }
    }

    /// The trailer GNU cpio writes: nlink 1, everything else 0, format "070701".
    pub fn trailer() -> Entry {
        Entry {
            header: Header {
                nlink: 1,
                ..Header::default()
            },
            name: TRAILER.to_vec(),
            data: Vec::new(),
        }
    }
}

/// The 070702 check of `data`: the sum of its bytes, modulo 2^32 (kernel `io_csum`).
pub fn checksum(data: &[u8]) -> u32 {
    // Wrapping u32 adds of widened bytes: LLVM vectorises this loop.
    data.iter()
        .fold(0u32, |sum, &b| sum.wrapping_add(u32::from(b)))
}

/// All entries of an in-memory archive, trailers included, up to the end of `bytes`.
pub fn read_all(bytes: &[u8]) -> Result<Vec<Entry>, CpioError> {
    let mut reader = Reader::new(bytes);
    let mut entries = Vec::new();
    while let Some(entry) = reader.next_entry()? {
        entries.push(entry);
    }
    Ok(entries)
}

/// Bytes of NUL padding that bring `offset` to a multiple of 4.
fn padding_after(offset: u64) -> usize {
    // The result is < 4, so the cast cannot truncate.
    ((4 - (offset % 4)) % 4) as usize
}
