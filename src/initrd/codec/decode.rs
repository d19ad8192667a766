//! Reading one segment: a decoder per format that stops where the kernel's does and checks
//! what it checks (see the module docs of [`super`]).

use std::io::{self, BufRead, Read};

use crate::names::Named;

use super::super::framing::{invalid_data, Counted, LibraryError};
use super::super::lz4legacy;
use super::{CodecError, Compression};

/// Upper bound on decoder memory (mostly the LZMA dictionary) so a corrupt header cannot ask
/// for gigabytes; real initrds use at most 64 MiB (`xz -9`).
pub(super) const LZMA_MEMLIMIT: u64 = 1 << 30;
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
        codec: c.as_str(),
        cap,
        produced: 0,
    })
}

/// Fails once more than `cap` bytes came out.
pub(super) struct Capped<'a> {
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
pub(super) struct Step {
    consumed: usize,
    produced: usize,
    finished: bool,
}

/// A decompressor failure `consumed` bytes into the input it was given.
pub(super) struct Failed {
    consumed: usize,
    detail: String,
    /// The library's own error, when it gave one (said after `detail`, not inside it).
    source: Option<LibraryError>,
}

/// A streaming decompressor for one segment, with optional framing it checks itself.
pub(super) trait Inflate {
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
pub(super) struct StreamDecoder<R, I> {
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
pub(super) const MAX_STALLS: u32 = 16;

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
                            source: failed.source,
                            detail: failed.detail,
                        }
                    } else {
                        CodecError::Corrupt {
                            codec: self.inflater.codec(),
                            offset,
                            source: failed.source,
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
                    source: None,
                    detail: "the compressed stream has not ended".into(),
                }));
            }
            if step.consumed == 0 {
                self.stalls += 1;
                if self.stalls > MAX_STALLS {
                    return Err(invalid_data(CodecError::Corrupt {
                        codec: self.inflater.codec(),
                        offset: self.input.offset,
                        source: None,
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
pub(super) const GZIP_FHCRC: u8 = 0x02;
pub(super) const GZIP_FEXTRA: u8 = 0x04;
pub(super) const GZIP_FNAME: u8 = 0x08;
pub(super) const GZIP_FCOMMENT: u8 = 0x10;
pub(super) const GZIP_RESERVED: u8 = 0xe0;

/// One gzip member: the header subset lib/decompress_inflate.c parses, raw deflate, trailer.
pub(super) struct GzipMember {
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

pub(super) const INFLATE_FILE: &str = "lib/decompress_inflate.c";

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
                detail: "inflate rejects the deflate data".into(),
                source: Some(Box::new(e)),
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
                source: None,
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

pub(super) struct Bzip2Stream(bzip2::Decompress);

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
        let (detail, source) = match status {
            Ok(bzip2::Status::StreamEnd) => {
                return Ok(Step {
                    consumed,
                    produced,
                    finished: true,
                })
            }
            Ok(bzip2::Status::MemNeeded) => ("out of memory".to_string(), None),
            Ok(_) => {
                return Ok(Step {
                    consumed,
                    produced,
                    finished: false,
                })
            }
            Err(bzip2::Error::DataMagic) => {
                ("no bzip2 stream header (BZh1..BZh9)".to_string(), None)
            }
            Err(e) => (
                "libbz2 rejects the data".to_string(),
                Some(Box::new(e) as LibraryError),
            ),
        };
        Err(Failed {
            consumed,
            detail,
            source,
        })
    }
}

/// liblzma decoding one .xz stream or one .lzma (alone) stream.
pub(super) struct LzmaStream {
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

pub(super) const XZ_FILE: &str = "lib/xz/xz_dec_stream.c";
pub(super) const XZ_MAGIC: [u8; 6] = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
/// xz Stream Header: magic, 2 flag bytes, CRC32 of the flags.
pub(super) const XZ_HEADER_LEN: usize = 12;

pub(super) fn lzma_error_detail(e: &liblzma::stream::Error) -> String {
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
                    source: None,
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
                source: None,
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
                        source: None,
                        detail: lzma_error_detail(&e),
                    })
                })?;
            let used = (stream.total_in() - before) as usize;
            if used == 0 {
                return Err(invalid_data(CodecError::Corrupt {
                    codec,
                    offset: fed as u64,
                    source: None,
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
                    source: None,
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
                source: None,
            }),
        }
    }
}

/// One zstd frame.
pub(super) struct ZstdFrame(zstd::zstd_safe::DCtx<'static>);

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
                Err(Failed {
                    consumed,
                    detail,
                    source: None,
                })
            }
        }
    }
}
