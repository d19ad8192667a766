//! What the codecs share: their error type and the counted reading of segment framing. Below both
//! `codec` and `lz4legacy` (which `codec` uses), so neither imports the other's internals.

use std::io::{self, BufRead};

/// A decoding or encoding failure. Offsets count compressed bytes from the segment start.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("{codec}: decompressed output exceeds the limit of {cap} bytes")]
    OutputTooLarge { codec: &'static str, cap: u64 },
    /// `source` is the decompression library's own error, when it gave one.
    #[error("{codec}: corrupt data at compressed offset {offset}: {detail}")]
    Corrupt {
        codec: &'static str,
        offset: u64,
        detail: String,
        #[source]
        source: Option<LibraryError>,
    },
    #[error(
        "{codec}: input ends inside the segment at compressed offset {offset} ({detail}); \
         the kernel would report 'decompressor failed'"
    )]
    Truncated {
        codec: &'static str,
        offset: u64,
        detail: String,
        #[source]
        source: Option<LibraryError>,
    },
    #[error(
        "{codec}: {detail} at compressed offset {offset}; the kernel's {kernel_file} rejects this"
    )]
    KernelRejects {
        codec: &'static str,
        offset: u64,
        detail: String,
        kernel_file: &'static str,
    },
    /// The codec's name: this module sits below `codec` and knows no `Compression`.
    #[error("cannot write {0} segments: writable are none, gzip, xz, lz4, zstd")]
    CannotWrite(&'static str),
    #[error("{codec}: compression level {level} is not supported, expected {expected}")]
    BadLevel {
        codec: &'static str,
        level: u32,
        expected: &'static str,
    },
}

/// A decompression library's own error (flate2's, bzip2's), kept as a codec error's source.
pub type LibraryError = Box<dyn std::error::Error + Send + Sync>;

/// A codec error as the `io::Error` a decoder's `Read` returns.
pub(crate) fn invalid_data(e: CodecError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// A `BufRead` that counts what was consumed, for error offsets.
pub(crate) struct Counted<R> {
    pub(crate) inner: R,
    /// Compressed bytes consumed from the segment start.
    pub(crate) offset: u64,
}

impl<R: BufRead> Counted<R> {
    pub(crate) fn new(inner: R) -> Self {
        Counted { inner, offset: 0 }
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.inner.consume(n);
        self.offset += n as u64;
    }

    /// Reads exactly `buf.len()` bytes; an early end is [`CodecError::Truncated`] with the detail
    /// `detail(start, filled)` gives.
    pub(crate) fn read_exact(
        &mut self,
        codec: &'static str,
        buf: &mut [u8],
        detail: impl FnOnce(u64, usize) -> String,
    ) -> io::Result<()> {
        let start = self.offset;
        let mut filled = 0;
        while filled < buf.len() {
            let avail = self.inner.fill_buf()?;
            if avail.is_empty() {
                return Err(invalid_data(CodecError::Truncated {
                    codec,
                    offset: self.offset,
                    source: None,
                    detail: detail(start, filled),
                }));
            }
            let take = avail.len().min(buf.len() - filled);
            buf[filled..filled + take].copy_from_slice(&avail[..take]);
            filled += take;
            self.consume(take);
        }
        Ok(())
    }

    /// Reads exactly `buf.len()` bytes of segment framing (headers, trailers), named `what`.
    pub(crate) fn read_framing(
        &mut self,
        codec: &'static str,
        buf: &mut [u8],
        what: &str,
    ) -> io::Result<()> {
        let len = buf.len();
        self.read_exact(codec, buf, |start, filled| {
            format!("expected the {len}-byte {what} at offset {start}, got {filled}")
        })
    }
}
