//! Segment compression: detecting, reading and writing one compressed initrd segment the way
//! the kernel's initramfs unpacker (init/initramfs.c `unpack_to_rootfs`) and its decompressors
//! (lib/decompress*.c) see it.
//!
//! What the kernel does, per decompressor, when it is handed the rest of the image and reports
//! how many bytes it consumed (the next segment starts there, after skipping NUL padding):
//! - lib/decompress.c picks the decompressor by the first TWO bytes only.
//! - gzip, lib/decompress_inflate.c: exactly one member. It requires 1f 8b 08 (so the 1f 9e
//!   magic that decompress.c routes to it is refused: "Not a gzip file"), skips a FNAME but no
//!   other optional header field, and skips the 8-byte trailer without checking it.
//! - bzip2, lib/decompress_bunzip2.c: one stream, CRC checked.
//! - lzma, lib/decompress_unlzma.c: one .lzma (alone) stream, ends at the header's size or at
//!   the end marker.
//! - xz, lib/decompress_unxz.c + lib/xz/xz_dec_stream.c: one stream; only check types none and
//!   CRC32 (anything else, including xz's default CRC64, is XZ_OPTIONS_ERROR: "Input was encoded
//!   with settings that are not supported"); LZMA2 plus the arch's BCJ filter only.
//! - lz4, lib/decompress_unlz4.c: the legacy frame, see [`super::lz4legacy`].
//! - zstd, lib/decompress_unzstd.c: exactly one frame per call; windows above 128 MiB refused
//!   (ZSTD_WINDOWSIZE_MAX = 1 << 27 in the 5.9–5.15 kernel zstd; libzstd's default decoder limit
//!   ZSTD_WINDOWLOG_LIMIT_DEFAULT is the same 27), content checksum checked if present.
//!
//! One concept a file: [`compression`] names the formats and detects them by magic, [`decode`]
//! reads one segment as the kernel does, [`encode`] writes one the kernel accepts,
//! [`gzip_members`] compresses whole buffers (in parallel, or head plus precompressed tail) with
//! libdeflate, and [`counting`] counts what a decoder consumed.

use std::io;

pub use super::framing::CodecError;

pub mod compression;
pub mod counting;
pub mod decode;
pub mod encode;
pub mod gzip_members;

pub use compression::{detect, Compression};
pub use counting::{ConsumedCounter, CountingReader};
pub use decode::{decoder, ZSTD_KERNEL_MAX_WINDOW_LOG};
pub use encode::{encoder, SegmentWriter};
pub use gzip_members::{
    deflate_tail, gzip_member, gzip_member_with_tail, gzip_members_parallel, DeflatedTail,
};

pub(crate) fn invalid_input(e: CodecError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e)
}

#[cfg(test)]
mod tests;
