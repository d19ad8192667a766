//! Writing one segment the kernel's decompressors accept, streamed.

use std::io::{self, Write};

use crate::names::Named;

use super::super::lz4legacy;
use super::{invalid_input, CodecError, Compression};

/// A writer producing one segment; `finish` completes it (trailer/footer) and flushes.
pub trait SegmentWriter: Write {
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// An encoder plus how to complete it.
struct Segment<E, F> {
    encoder: E,
    complete: F,
}

impl<E: Write, F> Write for Segment<E, F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.encoder.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.encoder.flush()
    }
}

impl<E: Write, F: FnOnce(E) -> io::Result<()>> SegmentWriter for Segment<E, F> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        let segment = *self;
        (segment.complete)(segment.encoder)
    }
}

fn segment<'a, E, F>(encoder: E, complete: F) -> Box<dyn SegmentWriter + 'a>
where
    E: Write + 'a,
    F: FnOnce(E) -> io::Result<()> + 'a,
{
    Box::new(Segment { encoder, complete })
}

pub(super) fn check_level(
    codec: &'static str,
    level: u32,
    range: std::ops::RangeInclusive<u32>,
    expected: &'static str,
) -> io::Result<u32> {
    if range.contains(&level) {
        Ok(level)
    } else {
        Err(invalid_input(CodecError::BadLevel {
            codec,
            level,
            expected,
        }))
    }
}

/// A writer of one segment that the kernel's decompressor accepts: gzip one member (no name
/// field), xz with CRC32 check and LZMA2 only, lz4 legacy frame, one zstd frame with a content
/// checksum and a window of at most 2^27 (the default for every level up to 22).
/// `level`: `None` = gzip 6, xz 6, zstd 3, lz4 fast (the only lz4 level offered).
pub fn encoder<'a, W: Write + 'a>(
    c: Compression,
    out: W,
    level: Option<u32>,
) -> io::Result<Box<dyn SegmentWriter + 'a>> {
    match c {
        Compression::None => Ok(segment(out, |mut w: W| w.flush())),
        Compression::Gzip => {
            let level = check_level("gzip", level.unwrap_or(6), 0..=9, "0..=9")?;
            let gz = flate2::write::GzEncoder::new(out, flate2::Compression::new(level));
            Ok(segment(gz, |gz: flate2::write::GzEncoder<W>| {
                gz.finish()?.flush()
            }))
        }
        Compression::Xz => {
            let level = check_level("xz", level.unwrap_or(6), 0..=9, "0..=9")?;
            let stream =
                liblzma::stream::Stream::new_easy_encoder(level, liblzma::stream::Check::Crc32)
                    .map_err(|e| io::Error::other(format!("xz encoder setup failed: {e:?}")))?;
            let xz = liblzma::write::XzEncoder::new_stream(out, stream);
            Ok(segment(xz, |xz: liblzma::write::XzEncoder<W>| {
                xz.finish()?.flush()
            }))
        }
        Compression::Zstd => {
            let level = check_level("zstd", level.unwrap_or(3), 1..=22, "1..=22")?;
            // 1..=22 fits i32.
            let mut zst = zstd::stream::write::Encoder::new(out, level as i32)?;
            zst.include_checksum(true)?;
            Ok(segment(
                zst,
                |zst: zstd::stream::write::Encoder<'static, W>| zst.finish()?.flush(),
            ))
        }
        Compression::Lz4 => {
            if let Some(level) = level {
                check_level(
                    "lz4",
                    level,
                    1..=1,
                    "1 (lz4_flex has only the fast compressor)",
                )?;
            }
            let lz4 = lz4legacy::LegacyWriter::new(out);
            Ok(segment(lz4, |lz4: lz4legacy::LegacyWriter<W>| {
                lz4.finish().map(drop)
            }))
        }
        Compression::Bzip2 | Compression::Lzma => {
            Err(invalid_input(CodecError::CannotWrite(c.as_str())))
        }
    }
}
