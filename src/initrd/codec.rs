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

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, BufRead, Read, Write};
use std::rc::Rc;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

pub use super::framing::CodecError;
use super::framing::{invalid_data, Counted};
use super::lz4legacy;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Lzma,
    Xz,
    Lz4,
    Zstd,
}

impl Compression {
    pub const ALL: [Compression; 7] = [
        Compression::None,
        Compression::Gzip,
        Compression::Bzip2,
        Compression::Lzma,
        Compression::Xz,
        Compression::Lz4,
        Compression::Zstd,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::Lzma => "lzma",
            Compression::Xz => "xz",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// Whether [`encoder`] can write it.
    pub fn can_write(self) -> bool {
        matches!(
            self,
            Compression::None
                | Compression::Gzip
                | Compression::Xz
                | Compression::Lz4
                | Compression::Zstd
        )
    }

    /// The system command that decompresses it to stdout.
    pub fn tool(self) -> &'static str {
        match self {
            Compression::None => "cat",
            Compression::Gzip => "gzip -dc",
            Compression::Bzip2 => "bzip2 -dc",
            Compression::Lzma => "lzma -dc",
            Compression::Xz => "xz -dc",
            Compression::Lz4 => "lz4 -dc",
            Compression::Zstd => "zstd -dc",
        }
    }

    /// Zero bytes that must follow a segment of this kind before another segment: the kernel
    /// finds the end of a legacy lz4 segment only at zero padding or the end of the image.
    pub fn min_zero_padding_after(self) -> usize {
        match self {
            Compression::Lz4 => lz4legacy::MIN_ZERO_PADDING_AFTER,
            _ => 0,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compression {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let c = match s.trim().to_ascii_lowercase().as_str() {
            "none" | "cpio" | "uncompressed" => Compression::None,
            "gzip" | "gz" => Compression::Gzip,
            "bzip2" | "bz2" => Compression::Bzip2,
            "lzma" => Compression::Lzma,
            "xz" => Compression::Xz,
            "lz4" => Compression::Lz4,
            "zstd" | "zst" => Compression::Zstd,
            _ => {
                return Err(format!(
                    "unknown compression '{s}': expected one of none, gzip (gz), bzip2 (bz2), \
                     lzma, xz, lz4, zstd (zst)"
                ))
            }
        };
        Ok(c)
    }
}

/// What a segment starting with `head` is, as the kernel decides; `None` = unknown magic.
///
/// Compressed formats are matched on their first two bytes like lib/decompress.c does (lzo,
/// 89 4c, is not modelled and reads as unknown). `Compression::None` means uncompressed newc
/// cpio ("070701"/"070702", 6 bytes needed); the kernel only looks for cpio at 4-byte aligned
/// offsets, which is the caller's business.
pub fn detect(head: &[u8]) -> Option<Compression> {
    if head.starts_with(b"070701") || head.starts_with(b"070702") {
        return Some(Compression::None);
    }
    let magic: [u8; 2] = head.get(..2)?.try_into().ok()?;
    match magic {
        [0x1f, 0x8b] | [0x1f, 0x9e] => Some(Compression::Gzip),
        [0x42, 0x5a] => Some(Compression::Bzip2),
        [0x5d, 0x00] => Some(Compression::Lzma),
        [0xfd, 0x37] => Some(Compression::Xz),
        [0x02, 0x21] => Some(Compression::Lz4),
        [0x28, 0xb5] => Some(Compression::Zstd),
        _ => None,
    }
}

fn invalid_input(e: CodecError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e)
}

/// Upper bound on decoder memory (mostly the LZMA dictionary) so a corrupt header cannot ask
/// for gigabytes; real initrds use at most 64 MiB (`xz -9`).
const LZMA_MEMLIMIT: u64 = 1 << 30;
/// ZSTD_WINDOWSIZE_MAX of the kernel's zstd before 5.16 (ZSTD_WINDOWLOG_MAX 27).
pub const ZSTD_KERNEL_MAX_WINDOW_LOG: u32 = 27;

/// A reader of ONE segment's decompressed bytes. It reads `input` only up to the segment's end
/// (see the module docs for what one segment is per codec), so `input` is then positioned on
/// the first byte after it. `Compression::None` passes `input` through to its end (an
/// uncompressed segment's end is found by the cpio layer). Producing more than `cap` bytes is
/// an error. Codec errors are `io::ErrorKind::InvalidData` wrapping a [`CodecError`].
pub fn decoder<'a, R: BufRead + 'a>(c: Compression, input: R, cap: u64) -> Box<dyn Read + 'a> {
    let inner: Box<dyn Read + 'a> = match c {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(StreamDecoder::new(input, GzipMember::new())),
        Compression::Bzip2 => Box::new(StreamDecoder::new(input, Bzip2Stream::new())),
        Compression::Lzma => Box::new(StreamDecoder::new(input, LzmaStream::alone())),
        Compression::Xz => Box::new(StreamDecoder::new(input, LzmaStream::xz())),
        Compression::Lz4 => Box::new(lz4legacy::LegacyReader::new(input)),
        Compression::Zstd => Box::new(StreamDecoder::new(input, ZstdFrame::new())),
    };
    Box::new(Capped {
        inner,
        codec: c.name(),
        cap,
        produced: 0,
    })
}

/// Fails once more than `cap` bytes came out.
struct Capped<'a> {
    inner: Box<dyn Read + 'a>,
    codec: &'static str,
    cap: u64,
    produced: u64,
}

impl Read for Capped<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Ask for at most one byte past the cap: enough to notice it is exceeded.
        let allowed = self.cap.saturating_sub(self.produced).saturating_add(1);
        let len = buf
            .len()
            .min(usize::try_from(allowed).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..len])?;
        self.produced += n as u64;
        if self.produced > self.cap {
            return Err(invalid_data(CodecError::OutputTooLarge {
                codec: self.codec,
                cap: self.cap,
            }));
        }
        Ok(n)
    }
}

/// One call into a streaming decompressor.
struct Step {
    consumed: usize,
    produced: usize,
    finished: bool,
}

/// A decompressor failure `consumed` bytes into the input it was given.
struct Failed {
    consumed: usize,
    detail: String,
}

/// A streaming decompressor for one segment, with optional framing it checks itself.
trait Inflate {
    fn codec(&self) -> &'static str;

    /// Reads and checks what precedes the compressed stream.
    fn preamble<R: BufRead>(&mut self, _input: &mut Counted<R>) -> io::Result<()> {
        Ok(())
    }

    fn step(&mut self, input: &[u8], output: &mut [u8]) -> Result<Step, Failed>;

    /// Reads and checks what follows the compressed stream.
    fn trailer<R: BufRead>(&mut self, _input: &mut Counted<R>) -> io::Result<()> {
        Ok(())
    }
}

enum Stage {
    Preamble,
    Body,
    Done,
}

/// Drives an [`Inflate`] over a `BufRead`, consuming exactly what it used.
struct StreamDecoder<R, I> {
    input: Counted<R>,
    inflater: I,
    stage: Stage,
    stalls: u32,
}

impl<R: BufRead, I: Inflate> StreamDecoder<R, I> {
    fn new(input: R, inflater: I) -> Self {
        StreamDecoder {
            input: Counted::new(input),
            inflater,
            stage: Stage::Preamble,
            stalls: 0,
        }
    }
}

/// Calls without progress tolerated before declaring the decoder stuck (each library may
/// need a call or two to drain internal state).
const MAX_STALLS: u32 = 16;

impl<R: BufRead, I: Inflate> Read for StreamDecoder<R, I> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if let Stage::Preamble = self.stage {
            self.inflater.preamble(&mut self.input)?;
            self.stage = Stage::Body;
        }
        if let Stage::Done = self.stage {
            return Ok(0);
        }
        loop {
            let at = self.input.offset;
            let avail = self.input.inner.fill_buf()?;
            let eof = avail.is_empty();
            let step = match self.inflater.step(avail, buf) {
                Ok(step) => step,
                Err(failed) => {
                    let offset = at + failed.consumed as u64;
                    let e = if eof {
                        CodecError::Truncated {
                            codec: self.inflater.codec(),
                            offset,
                            detail: failed.detail,
                        }
                    } else {
                        CodecError::Corrupt {
                            codec: self.inflater.codec(),
                            offset,
                            detail: format!(
                                "{}; the kernel would report 'decompressor failed'",
                                failed.detail
                            ),
                        }
                    };
                    return Err(invalid_data(e));
                }
            };
            self.input.consume(step.consumed);
            if step.finished {
                self.inflater.trailer(&mut self.input)?;
                self.stage = Stage::Done;
                return Ok(step.produced);
            }
            if step.produced > 0 {
                self.stalls = 0;
                return Ok(step.produced);
            }
            if eof {
                return Err(invalid_data(CodecError::Truncated {
                    codec: self.inflater.codec(),
                    offset: self.input.offset,
                    detail: "the compressed stream has not ended".into(),
                }));
            }
            if step.consumed == 0 {
                self.stalls += 1;
                if self.stalls > MAX_STALLS {
                    return Err(invalid_data(CodecError::Corrupt {
                        codec: self.inflater.codec(),
                        offset: self.input.offset,
                        detail: "the decompressor makes no progress".into(),
                    }));
                }
            } else {
                self.stalls = 0;
            }
        }
    }
}

// gzip header flags (RFC 1952).
const GZIP_FHCRC: u8 = 0x02;
const GZIP_FEXTRA: u8 = 0x04;
const GZIP_FNAME: u8 = 0x08;
const GZIP_FCOMMENT: u8 = 0x10;
const GZIP_RESERVED: u8 = 0xe0;

/// One gzip member: the header subset lib/decompress_inflate.c parses, raw deflate, trailer.
struct GzipMember {
    inflate: flate2::Decompress,
    // crc32fast, not flate2::Crc: with the zlib-rs backend flate2's CRC is zlib-rs's portable
    // braid loop, measured at 12% of an overlay's time; crc32fast uses PCLMULQDQ.
    crc: crc32fast::Hasher,
    len: u32,
}

impl GzipMember {
    fn new() -> Self {
        GzipMember {
            inflate: flate2::Decompress::new(false),
            crc: crc32fast::Hasher::new(),
            len: 0,
        }
    }
}

const INFLATE_FILE: &str = "lib/decompress_inflate.c";

impl Inflate for GzipMember {
    fn codec(&self) -> &'static str {
        "gzip"
    }

    fn preamble<R: BufRead>(&mut self, input: &mut Counted<R>) -> io::Result<()> {
        let mut header = [0u8; 10];
        input.read_framing(self.codec(), &mut header, "gzip header")?;
        if header[..3] != [0x1f, 0x8b, 0x08] {
            return Err(invalid_data(CodecError::KernelRejects {
                codec: self.codec(),
                offset: 0,
                detail: format!(
                    "header starts {:02x?}, not 1f 8b 08 (gzip with deflate): 'Not a gzip file'",
                    &header[..3]
                ),
                kernel_file: INFLATE_FILE,
            }));
        }
        let flags = header[3];
        let unsupported = flags & (GZIP_FHCRC | GZIP_FEXTRA | GZIP_FCOMMENT | GZIP_RESERVED);
        if unsupported != 0 {
            return Err(invalid_data(CodecError::KernelRejects {
                codec: self.codec(),
                offset: 3,
                detail: format!(
                    "header flags {flags:#04x} ask for a field other than the file name \
                     (FHCRC 0x02, FEXTRA 0x04, FCOMMENT 0x10 or reserved bits); the kernel skips \
                     only the name and would inflate the rest as data"
                ),
                kernel_file: INFLATE_FILE,
            }));
        }
        if flags & GZIP_FNAME != 0 {
            let mut byte = [0u8; 1];
            loop {
                input.read_framing(self.codec(), &mut byte, "NUL-terminated file name")?;
                if byte[0] == 0 {
                    break;
                }
            }
        }
        Ok(())
    }

    fn step(&mut self, input: &[u8], output: &mut [u8]) -> Result<Step, Failed> {
        let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
        let status = self
            .inflate
            .decompress(input, output, flate2::FlushDecompress::None)
            .map_err(|e| Failed {
                consumed: (self.inflate.total_in() - in0) as usize,
                detail: e.to_string(),
            });
        let consumed = (self.inflate.total_in() - in0) as usize;
        let produced = (self.inflate.total_out() - out0) as usize;
        let status = status?;
        self.crc.update(&output[..produced]);
        // ISIZE is the length modulo 2^32 (RFC 1952).
        self.len = self.len.wrapping_add(produced as u32);
        Ok(Step {
            consumed,
            produced,
            finished: status == flate2::Status::StreamEnd,
        })
    }

    /// The kernel skips these 8 bytes unchecked; a mismatch still means the member is damaged.
    fn trailer<R: BufRead>(&mut self, input: &mut Counted<R>) -> io::Result<()> {
        let at = input.offset;
        let mut trailer = [0u8; 8];
        input.read_framing(self.codec(), &mut trailer, "gzip trailer (CRC32, ISIZE)")?;
        let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let isize = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        if crc != self.crc.clone().finalize() || isize != self.len {
            return Err(invalid_data(CodecError::Corrupt {
                codec: self.codec(),
                offset: at,
                detail: format!(
                    "trailer says CRC32 {crc:#010x} / {isize} bytes, the data has {:#010x} / {} \
                     (the kernel does not check the trailer and would unpack the damaged data)",
                    self.crc.clone().finalize(),
                    self.len
                ),
            }));
        }
        Ok(())
    }
}

struct Bzip2Stream(bzip2::Decompress);

impl Bzip2Stream {
    fn new() -> Self {
        Bzip2Stream(bzip2::Decompress::new(false))
    }
}

impl Inflate for Bzip2Stream {
    fn codec(&self) -> &'static str {
        "bzip2"
    }

    fn step(&mut self, input: &[u8], output: &mut [u8]) -> Result<Step, Failed> {
        let (in0, out0) = (self.0.total_in(), self.0.total_out());
        let status = self.0.decompress(input, output);
        let consumed = (self.0.total_in() - in0) as usize;
        let produced = (self.0.total_out() - out0) as usize;
        let detail = match status {
            Ok(bzip2::Status::StreamEnd) => {
                return Ok(Step {
                    consumed,
                    produced,
                    finished: true,
                })
            }
            Ok(bzip2::Status::MemNeeded) => "out of memory".to_string(),
            Ok(_) => {
                return Ok(Step {
                    consumed,
                    produced,
                    finished: false,
                })
            }
            Err(bzip2::Error::DataMagic) => "no bzip2 stream header (BZh1..BZh9)".to_string(),
            Err(e) => format!("{e}"),
        };
        Err(Failed { consumed, detail })
    }
}

/// liblzma decoding one .xz stream or one .lzma (alone) stream.
struct LzmaStream {
    stream: Result<liblzma::stream::Stream, liblzma::stream::Error>,
    xz: bool,
}

impl LzmaStream {
    fn xz() -> Self {
        // flags 0: no LZMA_CONCATENATED, so decoding stops after one stream like the kernel's.
        LzmaStream {
            stream: liblzma::stream::Stream::new_stream_decoder(LZMA_MEMLIMIT, 0),
            xz: true,
        }
    }

    fn alone() -> Self {
        LzmaStream {
            stream: liblzma::stream::Stream::new_lzma_decoder(LZMA_MEMLIMIT),
            xz: false,
        }
    }
}

const XZ_FILE: &str = "lib/xz/xz_dec_stream.c";
const XZ_MAGIC: [u8; 6] = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
/// xz Stream Header: magic, 2 flag bytes, CRC32 of the flags.
const XZ_HEADER_LEN: usize = 12;

fn lzma_error_detail(e: &liblzma::stream::Error) -> String {
    use liblzma::stream::Error as E;
    match e {
        E::Data => "compressed data is corrupt".into(),
        E::Format => "not in the expected format (bad magic or header)".into(),
        E::Options => "header asks for unsupported options".into(),
        E::MemLimit => format!("decoding needs more than {LZMA_MEMLIMIT} bytes of memory"),
        E::Mem => "out of memory".into(),
        other => format!("{other:?}"),
    }
}

impl Inflate for LzmaStream {
    fn codec(&self) -> &'static str {
        if self.xz {
            "xz"
        } else {
            "lzma"
        }
    }

    /// For xz, checks the Stream Header like the kernel's dec_stream_header, then feeds it on.
    fn preamble<R: BufRead>(&mut self, input: &mut Counted<R>) -> io::Result<()> {
        let codec = self.codec();
        let stream = match &mut self.stream {
            Ok(stream) => stream,
            Err(e) => {
                return Err(invalid_data(CodecError::Corrupt {
                    codec,
                    offset: 0,
                    detail: format!("cannot start liblzma: {}", lzma_error_detail(e)),
                }))
            }
        };
        if !self.xz {
            return Ok(());
        }
        let mut header = [0u8; XZ_HEADER_LEN];
        input.read_framing(codec, &mut header, "xz stream header")?;
        if header[..6] != XZ_MAGIC {
            return Err(invalid_data(CodecError::Corrupt {
                codec,
                offset: 0,
                detail: format!(
                    "expected the xz magic fd 37 7a 58 5a 00, found {:02x?}",
                    &header[..6]
                ),
            }));
        }
        let check = header[7];
        if header[6] != 0 || check > 1 {
            let name = match check {
                4 => "CRC64 (xz's default)".to_string(),
                10 => "SHA-256".to_string(),
                other => format!("type {other}"),
            };
            return Err(invalid_data(CodecError::KernelRejects {
                codec,
                offset: 6,
                detail: format!(
                    "integrity check {name}: the kernel's XZ decoder supports only CRC32 and \
                     none ('Input was encoded with settings that are not supported'); \
                     recompress with xz --check=crc32"
                ),
                kernel_file: XZ_FILE,
            }));
        }
        let mut fed = 0;
        let mut no_output = [0u8; 0];
        while fed < XZ_HEADER_LEN {
            let before = stream.total_in();
            stream
                .process(&header[fed..], &mut no_output, liblzma::stream::Action::Run)
                .map_err(|e| {
                    invalid_data(CodecError::Corrupt {
                        codec,
                        offset: fed as u64,
                        detail: lzma_error_detail(&e),
                    })
                })?;
            let used = (stream.total_in() - before) as usize;
            if used == 0 {
                return Err(invalid_data(CodecError::Corrupt {
                    codec,
                    offset: fed as u64,
                    detail: "liblzma did not accept the stream header".into(),
                }));
            }
            fed += used;
        }
        Ok(())
    }

    fn step(&mut self, input: &[u8], output: &mut [u8]) -> Result<Step, Failed> {
        let stream = match &mut self.stream {
            Ok(stream) => stream,
            Err(e) => {
                return Err(Failed {
                    consumed: 0,
                    detail: lzma_error_detail(e),
                })
            }
        };
        let (in0, out0) = (stream.total_in(), stream.total_out());
        let status = stream.process(input, output, liblzma::stream::Action::Run);
        let consumed = (stream.total_in() - in0) as usize;
        let produced = (stream.total_out() - out0) as usize;
        match status {
            Ok(status) => Ok(Step {
                consumed,
                produced,
                // MemNeeded is LZMA_BUF_ERROR (no progress): handled as a stall by the caller.
                finished: status == liblzma::stream::Status::StreamEnd,
            }),
            Err(e) => Err(Failed {
                consumed,
                detail: lzma_error_detail(&e),
            }),
        }
    }
}

/// One zstd frame.
struct ZstdFrame(zstd::zstd_safe::DCtx<'static>);

impl ZstdFrame {
    fn new() -> Self {
        let mut dctx = zstd::zstd_safe::DCtx::create();
        // Same limit as libzstd's default; set explicitly because it is the kernel's too.
        let _ = dctx.set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(
            ZSTD_KERNEL_MAX_WINDOW_LOG,
        ));
        ZstdFrame(dctx)
    }
}

impl Inflate for ZstdFrame {
    fn codec(&self) -> &'static str {
        "zstd"
    }

    fn step(&mut self, input: &[u8], output: &mut [u8]) -> Result<Step, Failed> {
        let mut inb = zstd::zstd_safe::InBuffer::around(input);
        let mut outb = zstd::zstd_safe::OutBuffer::around(output);
        let result = self.0.decompress_stream(&mut outb, &mut inb);
        let (consumed, produced) = (inb.pos(), outb.pos());
        match result {
            Ok(hint) => Ok(Step {
                consumed,
                produced,
                // 0: the frame is complete and fully flushed.
                finished: hint == 0,
            }),
            Err(code) => {
                let name = zstd::zstd_safe::get_error_name(code);
                let detail = if name.contains("too much memory") || name.contains("indow") {
                    format!(
                        "{name}: the frame's window exceeds 128 MiB, which kernels before 5.16 \
                         refuse ('ZSTD-compressed data has too large a window size')"
                    )
                } else {
                    name.to_string()
                };
                Err(Failed { consumed, detail })
            }
        }
    }
}

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

fn check_level(
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
            Err(invalid_input(CodecError::CannotWrite(c.name())))
        }
    }
}

/// Compresses each chunk as its own gzip member on its own thread (at most `threads` at once)
/// and writes the members in order. The kernel unpacks each member as a segment, and
/// `gzip -dc` reads their concatenation.
///
/// Each chunk must end on an entry boundary: after every compressed segment init/initramfs.c
/// requires its cpio parser to be in the Reset state ("junk at the end of compressed archive"),
/// which it reaches after every entry (the trailer is optional since 2.6.10, "INITRAMFS: allow no
/// trailer"). Its hard-link table lives until a TRAILER!!!, not per segment, so links may span
/// members. `tests/initrd_real.rs` boots such a split repack in QEMU.
pub fn gzip_members_parallel(
    chunks: &[&[u8]],
    level: u32,
    threads: usize,
    out: &mut dyn Write,
) -> io::Result<()> {
    let level = check_level("gzip", level, 0..=9, "0..=9")?;
    let workers = threads.clamp(1, chunks.len().max(1));
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, io::Result<Vec<u8>>)>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(chunk) = chunks.get(i) else { break };
                let member = gzip_member(chunk, level);
                if tx.send((i, member)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        // Members finish out of order; write each as soon as all before it are written.
        let mut pending = BTreeMap::new();
        let mut written = 0;
        for (i, member) in rx {
            pending.insert(i, member);
            while let Some(member) = pending.remove(&written) {
                out.write_all(&member?)?;
                written += 1;
            }
        }
        out.flush()
    })
}

/// libdeflate at a gzip level (0..=9; libdeflate's own go to 12, unused here).
fn libdeflate_compressor(level: u32) -> io::Result<libdeflater::Compressor> {
    let level = check_level("gzip", level, 0..=9, "0..=9")?;
    let lvl = libdeflater::CompressionLvl::new(level as i32).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("gzip level {level}: {e:?}"),
        )
    })?;
    Ok(libdeflater::Compressor::new(lvl))
}

/// One gzip member of `data`, compressed whole with libdeflate: for data already in memory it
/// gives zlib -9-class ratio at better than zlib -6 speed (measured on the 132 MB cpio of a
/// MODULES=most image: see README "Performance"). Streaming writes use flate2.
pub fn gzip_member(data: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let mut compressor = libdeflate_compressor(level)?;
    let mut out = vec![0u8; compressor.gzip_compress_bound(data.len())];
    let n = compressor
        .gzip_compress(data, &mut out)
        .map_err(|e| io::Error::other(format!("gzip: {e:?}")))?;
    out.truncate(n);
    Ok(out)
}

/// The final part of a deflate stream, compressed ahead of the part that goes before it.
pub struct DeflatedTail {
    /// Raw deflate blocks, the last one final.
    pub deflate: Vec<u8>,
    pub crc: crc32fast::Hasher,
    pub len: u64,
}

/// Compresses `data` as the final part of a deflate stream (libdeflate, raw deflate).
pub fn deflate_tail(data: &[u8], level: u32) -> io::Result<DeflatedTail> {
    let mut compressor = libdeflate_compressor(level)?;
    let mut out = vec![0u8; compressor.deflate_compress_bound(data.len())];
    let n = compressor
        .deflate_compress(data, &mut out)
        .map_err(|e| io::Error::other(format!("deflate: {e:?}")))?;
    out.truncate(n);
    let mut crc = crc32fast::Hasher::new();
    crc.update(data);
    Ok(DeflatedTail {
        deflate: out,
        crc,
        len: data.len() as u64,
    })
}

/// One gzip member holding `head` then the data of `tail`: `head` is deflated ending in a sync
/// flush (a non-final empty stored block, byte-aligned), so the tail's blocks continue the same
/// stream, as pigz joins its parts. Lets a caller compress the bulk before it knows the head.
pub fn gzip_member_with_tail(head: &[u8], tail: &DeflatedTail, level: u32) -> io::Result<Vec<u8>> {
    let level = check_level("gzip", level, 0..=9, "0..=9")?;
    // RFC 1952 header: no flags (the kernel accepts only FNAME), mtime 0, OS Unix.
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
    enc.write_all(head)?;
    // flush() is a sync flush; never finish(): that would end the stream before the tail.
    enc.flush()?;
    out.extend_from_slice(enc.get_ref());
    out.extend_from_slice(&tail.deflate);
    let mut crc = crc32fast::Hasher::new();
    crc.update(head);
    crc.combine(&tail.crc);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    // ISIZE: the length modulo 2^32.
    out.extend_from_slice(&((head.len() as u64 + tail.len) as u32).to_le_bytes());
    Ok(out)
}

/// Shared count of bytes consumed, for callers that need a segment's compressed length while
/// a decoder owns the input.
#[derive(Clone, Default)]
pub struct ConsumedCounter(Rc<Cell<u64>>);

impl ConsumedCounter {
    pub fn get(&self) -> u64 {
        self.0.get()
    }

    /// Wraps `input` so that everything consumed through it is counted here.
    pub fn wrap<R: BufRead>(&self, input: R) -> CountingReader<R> {
        CountingReader {
            inner: input,
            count: self.clone(),
        }
    }
}

/// See [`ConsumedCounter::wrap`].
pub struct CountingReader<R> {
    inner: R,
    count: ConsumedCounter,
}

impl<R: BufRead> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.0.set(self.count.0.get() + n as u64);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for CountingReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.inner.consume(amt);
        self.count.0.set(self.count.0.get() + amt as u64);
    }
}

#[cfg(test)]
mod tail_tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn head_and_precompressed_tail_make_one_member() {
        let head: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let tail_data: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(7919) >> 5) as u8)
            .collect();
        let tail = deflate_tail(&tail_data, 6).unwrap();
        let member = gzip_member_with_tail(&head, &tail, 6).unwrap();
        let mut expected = head.clone();
        expected.extend_from_slice(&tail_data);
        // Our decoder reads it as one segment and checks CRC and ISIZE.
        let mut input = &member[..];
        let mut got = Vec::new();
        decoder(Compression::Gzip, &mut input, u64::MAX)
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, expected);
        assert!(input.is_empty(), "one member, consumed whole");
        // And so does gzip(1).
        let mut child = std::process::Command::new("gzip")
            .args(["-dc"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&member).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, expected);
    }

    #[test]
    fn empty_head_is_fine() {
        let tail = deflate_tail(b"tail only", 1).unwrap();
        let member = gzip_member_with_tail(b"", &tail, 1).unwrap();
        let mut got = Vec::new();
        decoder(Compression::Gzip, &member[..], u64::MAX)
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, b"tail only");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::process::{Command, Stdio};

    /// Deterministic cpio-like data: text with runs plus pseudo-random bytes.
    fn sample(len: usize) -> Vec<u8> {
        let mut state: u32 = 0x1234_5678;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            if state % 3 == 0 {
                out.extend_from_slice(b"070701000001ed000081a4 /lib/modules/kernel/drivers/net ");
            } else {
                out.extend_from_slice(&state.to_le_bytes());
            }
        }
        out.truncate(len);
        out
    }

    fn encode(c: Compression, data: &[u8], level: Option<u32>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = encoder(c, &mut out, level).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap();
        out
    }

    /// Decodes one segment from the start of `image`; returns the bytes and where input stopped.
    fn decode(c: Compression, image: &[u8], cap: u64) -> io::Result<(Vec<u8>, usize)> {
        let mut cursor = Cursor::new(image);
        let mut out = Vec::new();
        decoder(c, &mut cursor, cap).read_to_end(&mut out)?;
        Ok((out, cursor.position() as usize))
    }

    fn codec_error(e: &io::Error) -> &CodecError {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<CodecError>())
            .unwrap_or_else(|| panic!("not a CodecError: {e:?}"))
    }

    /// Runs a system tool with `stdin`, returning stdout; fails the test if it fails.
    fn run_tool(cmd: &str, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        let mut child = Command::new(cmd)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd} is required (images/setup installs it): {e}"));
        let mut input = child.stdin.take().unwrap();
        let data = stdin.to_vec();
        let feeder = std::thread::spawn(move || input.write_all(&data));
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        assert!(
            out.status.success(),
            "{cmd} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Compressed with the system tool that writes what the kernel reads.
    fn system_compress(c: Compression, data: &[u8]) -> Vec<u8> {
        match c {
            Compression::None => data.to_vec(),
            Compression::Gzip => run_tool("gzip", &["-6", "-c"], data),
            Compression::Bzip2 => run_tool("bzip2", &["-c"], data),
            Compression::Lzma => run_tool("lzma", &["-c"], data),
            Compression::Xz => run_tool("xz", &["--check=crc32", "-c"], data),
            Compression::Lz4 => run_tool("lz4", &["-l", "-c"], data),
            Compression::Zstd => run_tool("zstd", &["-q", "-c"], data),
        }
    }

    const COMPRESSED: [Compression; 6] = [
        Compression::Gzip,
        Compression::Bzip2,
        Compression::Lzma,
        Compression::Xz,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn names_parse_back_and_errors_list_choices() {
        for c in Compression::ALL {
            assert_eq!(c.name().parse::<Compression>().unwrap(), c);
            assert_eq!(c.to_string(), c.name());
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.name())
            );
        }
        assert_eq!("gz".parse::<Compression>().unwrap(), Compression::Gzip);
        assert_eq!("ZST".parse::<Compression>().unwrap(), Compression::Zstd);
        let err = "lzo".parse::<Compression>().unwrap_err();
        assert!(
            err.contains("'lzo'") && err.contains("zstd") && err.contains("gzip"),
            "{err}"
        );
        let writable: Vec<_> = Compression::ALL
            .into_iter()
            .filter(|c| c.can_write())
            .collect();
        assert_eq!(
            writable,
            [
                Compression::None,
                Compression::Gzip,
                Compression::Xz,
                Compression::Lz4,
                Compression::Zstd
            ]
        );
        assert_eq!(Compression::Xz.tool(), "xz -dc");
        assert_eq!(Compression::None.tool(), "cat");
        assert_eq!(Compression::Lz4.min_zero_padding_after(), 4);
        assert_eq!(Compression::Gzip.min_zero_padding_after(), 0);
    }

    #[test]
    fn detect_uses_the_kernels_two_byte_magics() {
        let cases: [(&[u8], Option<Compression>); 12] = [
            (b"070701000", Some(Compression::None)),
            (b"070702000", Some(Compression::None)),
            (b"070707000", None),
            (&[0x1f, 0x8b, 0x08], Some(Compression::Gzip)),
            (&[0x1f, 0x9e], Some(Compression::Gzip)),
            (b"BZh9", Some(Compression::Bzip2)),
            (&[0x5d, 0x00, 0x00, 0x80], Some(Compression::Lzma)),
            (&XZ_MAGIC, Some(Compression::Xz)),
            (&lz4legacy::MAGIC, Some(Compression::Lz4)),
            (&[0x28, 0xb5, 0x2f, 0xfd], Some(Compression::Zstd)),
            (&[0x89, 0x4c, 0x5a, 0x4f], None),
            (&[0x1f], None),
        ];
        for (head, want) in cases {
            assert_eq!(detect(head), want, "{head:02x?}");
        }
        assert_eq!(detect(b""), None);
    }

    #[test]
    fn every_writable_codec_round_trips() {
        let data = sample(300_000);
        for c in Compression::ALL.into_iter().filter(|c| c.can_write()) {
            let packed = encode(c, &data, None);
            if c != Compression::None {
                assert_eq!(detect(&packed), Some(c));
            }
            let (out, end) = decode(c, &packed, u64::MAX).unwrap();
            assert_eq!(out, data, "{c}");
            assert_eq!(end, packed.len(), "{c}");
            let (empty, _) = decode(c, &encode(c, b"", None), u64::MAX).unwrap();
            assert!(empty.is_empty(), "{c}");
        }
    }

    #[test]
    fn decoders_stop_exactly_at_the_segment_end() {
        let data = sample(50_000);
        for c in COMPRESSED {
            let segment = system_compress(c, &data);
            let next = system_compress(c, b"second segment");
            let mut trailers: Vec<Vec<u8>> = vec![
                vec![0; 4],
                vec![0; 512],
                [vec![0; 4], b"07070100000000".to_vec()].concat(),
                [vec![0; 8], next.clone()].concat(),
            ];
            if c != Compression::Lz4 {
                // Only lz4 legacy needs zero padding to find its end.
                trailers.push(b"GARBAGE!".to_vec());
                trailers.push(b"07070100000000".to_vec());
                trailers.push(next.clone());
            }
            for trailer in trailers {
                let image = [segment.clone(), trailer.clone()].concat();
                let (out, end) = decode(c, &image, u64::MAX)
                    .unwrap_or_else(|e| panic!("{c} + {:02x?}: {e}", &trailer[..4]));
                assert_eq!(out, data, "{c}");
                assert_eq!(end, segment.len(), "{c} followed by {:02x?}", &trailer[..4]);
            }
            // A 3-byte BufReader splits every header, block and word across refills.
            let image = [segment.clone(), vec![0; 16], b"07070100".to_vec()].concat();
            let mut reader = io::BufReader::with_capacity(3, Cursor::new(&image));
            let mut out = Vec::new();
            decoder(c, &mut reader, u64::MAX)
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, data, "{c} through a tiny buffer");
            let mut rest = Vec::new();
            reader.read_to_end(&mut rest).unwrap();
            assert!(
                rest.ends_with(b"07070100") && rest.len() >= 24 - 4,
                "{c}: {}",
                rest.len()
            );
        }
    }

    #[test]
    fn lz4_followed_by_lz4_is_one_segment_like_the_kernel() {
        let image = [
            system_compress(Compression::Lz4, b"one "),
            encode(Compression::Lz4, b"two", None),
        ]
        .concat();
        let (out, end) = decode(Compression::Lz4, &image, u64::MAX).unwrap();
        assert_eq!((out.as_slice(), end), (&b"one two"[..], image.len()));
    }

    #[test]
    fn multi_member_gzip_reads_one_member_per_segment() {
        let image = [
            system_compress(Compression::Gzip, b"first"),
            system_compress(Compression::Gzip, b"second"),
        ]
        .concat();
        let (first, end) = decode(Compression::Gzip, &image, u64::MAX).unwrap();
        assert_eq!(first, b"first");
        let (second, _) = decode(Compression::Gzip, &image[end..], u64::MAX).unwrap();
        assert_eq!(second, b"second");
    }

    #[test]
    fn gzip_with_a_file_name_is_accepted_like_the_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("initrd.cpio");
        std::fs::write(&path, b"named payload").unwrap();
        let packed = run_tool("gzip", &["-c", path.to_str().unwrap()], b"");
        assert_eq!(packed[3] & GZIP_FNAME, GZIP_FNAME, "gzip stored the name");
        let (out, end) = decode(Compression::Gzip, &packed, u64::MAX).unwrap();
        assert_eq!((out.as_slice(), end), (&b"named payload"[..], packed.len()));
    }

    #[test]
    fn gzip_headers_the_kernel_cannot_parse_are_rejected() {
        let mut extra = encode(Compression::Gzip, b"data", None);
        extra[3] |= GZIP_FEXTRA;
        let err = decode(Compression::Gzip, &extra, u64::MAX).unwrap_err();
        assert!(
            matches!(
                codec_error(&err),
                CodecError::KernelRejects { offset: 3, .. }
            ),
            "{err}"
        );
        let mut pack = encode(Compression::Gzip, b"data", None);
        pack[1] = 0x9e;
        assert_eq!(detect(&pack), Some(Compression::Gzip));
        let err = decode(Compression::Gzip, &pack, u64::MAX).unwrap_err();
        assert!(err.to_string().contains("Not a gzip file"), "{err}");
        let mut bad_crc = encode(Compression::Gzip, b"data", None);
        let at = bad_crc.len() - 8;
        bad_crc[at] ^= 1;
        let err = decode(Compression::Gzip, &bad_crc, u64::MAX).unwrap_err();
        assert!(
            matches!(codec_error(&err), CodecError::Corrupt { offset, .. } if *offset == at as u64),
            "{err}"
        );
    }

    #[test]
    fn we_decode_what_the_system_tools_write() {
        let data = sample(200_000);
        for c in COMPRESSED {
            let packed = system_compress(c, &data);
            assert_eq!(detect(&packed), Some(c));
            let (out, end) = decode(c, &packed, u64::MAX).unwrap();
            assert_eq!(out, data, "{c}");
            assert_eq!(end, packed.len(), "{c}");
        }
    }

    #[test]
    fn xz_checks_the_kernel_lacks_are_rejected() {
        for (check, name) in [("crc64", "CRC64"), ("sha256", "SHA-256")] {
            let packed = run_tool("xz", &[&format!("--check={check}"), "-c"], b"data");
            let err = decode(Compression::Xz, &packed, u64::MAX).unwrap_err();
            assert!(
                matches!(
                    codec_error(&err),
                    CodecError::KernelRejects { offset: 6, .. }
                ),
                "{err}"
            );
            assert!(err.to_string().contains(name), "{err}");
            assert!(err.to_string().contains("--check=crc32"), "{err}");
        }
        let none = run_tool("xz", &["--check=none", "-c"], b"data");
        assert_eq!(decode(Compression::Xz, &none, u64::MAX).unwrap().0, b"data");
    }

    #[test]
    fn zstd_windows_over_128_mib_are_rejected() {
        let packed = run_tool("zstd", &["-q", "--long=28", "-c"], &sample(1000));
        let err = decode(Compression::Zstd, &packed, u64::MAX).unwrap_err();
        assert!(
            matches!(codec_error(&err), CodecError::Corrupt { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("128 MiB"), "{err}");
    }

    /// Window size from a zstd frame header (RFC 8878 3.1.1.1).
    fn zstd_window_size(frame: &[u8]) -> u64 {
        let descriptor = frame[4];
        let single_segment = descriptor & 0x20 != 0;
        if !single_segment {
            let wd = frame[5];
            let base = 1u64 << (10 + (wd >> 3));
            return base + (base / 8) * u64::from(wd & 7);
        }
        let did_len = [0, 1, 2, 4][usize::from(descriptor & 3)];
        let fcs_len = [1, 2, 4, 8][usize::from(descriptor >> 6)];
        let at = 5 + did_len;
        let mut fcs = [0u8; 8];
        fcs[..fcs_len].copy_from_slice(&frame[at..at + fcs_len]);
        u64::from_le_bytes(fcs) + if fcs_len == 2 { 256 } else { 0 }
    }

    #[test]
    fn system_tools_decode_what_we_write() {
        let data = sample(400_000);
        let dir = tempfile::tempdir().unwrap();
        for c in [
            Compression::Gzip,
            Compression::Xz,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let packed = encode(c, &data, None);
            let (tool, args) = c.tool().split_once(' ').unwrap();
            assert_eq!(run_tool(tool, &[args], &packed), data, "{c}");
        }
        // xz: CRC32 check, one stream, LZMA2 only.
        let path = dir.path().join("seg.xz");
        std::fs::write(&path, encode(Compression::Xz, &data, None)).unwrap();
        let listing = String::from_utf8(run_tool(
            "xz",
            &["--robot", "-lvv", path.to_str().unwrap()],
            b"",
        ))
        .unwrap();
        let stream_lines: Vec<_> = listing
            .lines()
            .filter(|l| l.starts_with("stream\t"))
            .collect();
        assert_eq!(stream_lines.len(), 1, "{listing}");
        assert!(stream_lines[0].contains("\tCRC32\t"), "{listing}");
        for block in listing.lines().filter(|l| l.starts_with("block\t")) {
            assert!(block.ends_with("--lzma2=dict=8MiB"), "LZMA2 only: {block}");
        }
        // zstd: exactly one frame, window within the kernel limit, at the default and at 19.
        for level in [None, Some(19)] {
            let packed = encode(Compression::Zstd, &data, level);
            assert_eq!(
                zstd::zstd_safe::find_frame_compressed_size(&packed).unwrap(),
                packed.len(),
                "one frame"
            );
            let window = zstd_window_size(&packed);
            assert!(
                window <= 1 << ZSTD_KERNEL_MAX_WINDOW_LOG,
                "{level:?}: {window}"
            );
            let path = dir.path().join("seg.zst");
            std::fs::write(&path, &packed).unwrap();
            let listing =
                String::from_utf8(run_tool("zstd", &["-lv", path.to_str().unwrap()], b"")).unwrap();
            assert!(listing.contains("# Zstandard Frames: 1"), "{listing}");
        }
        // gzip: exactly one member with no optional header fields.
        let packed = encode(Compression::Gzip, &data, None);
        assert_eq!(&packed[..4], &[0x1f, 0x8b, 0x08, 0x00]);
    }

    #[test]
    fn cap_is_enforced_for_every_codec() {
        let data = vec![b'x'; 1 << 20];
        for c in Compression::ALL {
            let packed = if c.can_write() {
                encode(c, &data, None)
            } else {
                system_compress(c, &data)
            };
            let err = decode(c, &packed, 1000).unwrap_err();
            assert!(
                matches!(
                    codec_error(&err),
                    CodecError::OutputTooLarge { cap: 1000, .. }
                ),
                "{c}: {err}"
            );
            let (out, _) = decode(c, &packed, data.len() as u64).unwrap();
            assert_eq!(
                out.len(),
                data.len(),
                "{c}: a cap equal to the size is fine"
            );
        }
    }

    /// Codecs whose integrity check guarantees a damaged stream never decodes to other data.
    fn has_integrity_check(c: Compression) -> bool {
        matches!(
            c,
            Compression::Gzip | Compression::Bzip2 | Compression::Xz | Compression::Zstd
        )
    }

    #[test]
    fn mutated_streams_give_typed_errors_never_panics() {
        let data = sample(20_000);
        for c in COMPRESSED {
            let packed = system_compress(c, &data);
            let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
            let mut errors = 0;
            for round in 0..300 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let mut mutated = packed.clone();
                if round % 3 == 0 {
                    mutated.truncate((state as usize) % packed.len());
                } else {
                    let at = (state as usize) % packed.len();
                    mutated[at] ^= 1 << ((state >> 32) % 8);
                }
                match decode(c, &mutated, 4 * data.len() as u64) {
                    Ok((out, _)) => {
                        if has_integrity_check(c) {
                            assert_eq!(out, data, "{c} round {round}: damage went unnoticed");
                        }
                        if round % 3 == 0 && c != Compression::Lz4 {
                            panic!("{c}: a truncated stream decoded (round {round})");
                        }
                    }
                    Err(e) => {
                        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{c}: {e}");
                        let _ = codec_error(&e);
                        errors += 1;
                    }
                }
            }
            assert!(errors > 100, "{c}: only {errors} of 300 mutations detected");
        }
    }

    #[test]
    fn truncation_is_reported_as_truncated() {
        let data = sample(20_000);
        for c in COMPRESSED {
            let packed = system_compress(c, &data);
            let err = decode(c, &packed[..packed.len() / 2], u64::MAX).unwrap_err();
            assert!(
                matches!(codec_error(&err), CodecError::Truncated { .. }),
                "{c}: {err}"
            );
        }
    }

    #[test]
    fn encoder_refuses_what_it_cannot_write() {
        for c in [Compression::Bzip2, Compression::Lzma] {
            let err = encoder(c, Vec::new(), None).err().unwrap();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert!(matches!(codec_error(&err), CodecError::CannotWrite(x) if *x == c.name()));
        }
        for (c, level) in [
            (Compression::Gzip, 10),
            (Compression::Xz, 10),
            (Compression::Zstd, 0),
            (Compression::Zstd, 23),
            (Compression::Lz4, 9),
        ] {
            let err = encoder(c, Vec::new(), Some(level)).err().unwrap();
            assert!(
                matches!(codec_error(&err), CodecError::BadLevel { level: l, .. } if *l == level),
                "{c} {level}"
            );
        }
    }

    #[test]
    fn parallel_gzip_members_concatenate_in_order() {
        let data = sample(1_000_000);
        let chunks: Vec<&[u8]> = data.chunks(150_000).collect();
        for threads in [1, 2, 16] {
            let mut out = Vec::new();
            gzip_members_parallel(&chunks, 6, threads, &mut out).unwrap();
            assert_eq!(run_tool("gzip", &["-dc"], &out), data, "{threads} threads");
            let mut at = 0;
            for chunk in &chunks {
                let (member, used) = decode(Compression::Gzip, &out[at..], u64::MAX).unwrap();
                assert_eq!(&member, chunk);
                at += used;
            }
            assert_eq!(at, out.len());
        }
        let mut empty = Vec::new();
        gzip_members_parallel(&[], 6, 2, &mut empty).unwrap();
        assert!(empty.is_empty());
        let err = gzip_members_parallel(&chunks, 11, 2, &mut Vec::new()).unwrap_err();
        assert!(matches!(
            codec_error(&err),
            CodecError::BadLevel { level: 11, .. }
        ));
    }

    #[test]
    fn consumed_counter_tracks_segment_length() {
        let segment = encode(Compression::Zstd, b"counted", None);
        let image = [segment.clone(), vec![0; 4]].concat();
        let counter = ConsumedCounter::default();
        let mut out = Vec::new();
        decoder(
            Compression::Zstd,
            counter.wrap(Cursor::new(&image)),
            u64::MAX,
        )
        .read_to_end(&mut out)
        .unwrap();
        assert_eq!(
            (out.as_slice(), counter.get()),
            (&b"counted"[..], segment.len() as u64)
        );
    }
}
