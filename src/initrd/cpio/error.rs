//! Typed errors of the cpio layer, each with the stream offset where the bad thing starts.

/// A malformed or unreadable cpio stream.
#[derive(Debug)]
pub struct CpioError {
    /// Offset (from the start of the stream) where the offending part begins.
    pub offset: u64,
    pub kind: CpioErrorKind,
}

impl CpioError {
    pub(crate) fn new(offset: u64, kind: CpioErrorKind) -> CpioError {
        CpioError { offset, kind }
    }
}

/// "byte N of the cpio stream: <kind>": the kind is said here, so the chain continues with the
/// kind's own cause (a read's `io::Error`), not with the kind a second time.
impl std::fmt::Display for CpioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "byte {} of the cpio stream: {}", self.offset, self.kind)
    }
}

impl std::error::Error for CpioError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.kind)
    }
}

/// What was wrong, and what was expected instead.
#[derive(Debug, thiserror::Error)]
pub enum CpioErrorKind {
    /// Up to 6 bytes where a header magic was expected.
    #[error("expected magic 070701 or 070702, found \"{}\" ({})", found.escape_ascii(), magic_hint(found))]
    BadMagic { found: Vec<u8> },
    #[error("header field {field} is not 8 hex digits: \"{}\"", text.escape_default())]
    BadField { field: &'static str, text: String },
    #[error(
        "name size 0: expected at least 1 for the terminating NUL (the kernel skips such an entry)"
    )]
    EmptyName,
    #[error("name \"{}\" is not NUL-terminated: expected byte 0 at its end, found 0x{last:02x} (kernel: \"malformed archive\")", name.escape_default())]
    NameNotTerminated { name: String, last: u8 },
    #[error("truncated: expected {expected} bytes of {what}, stream ends after {available}")]
    Truncated {
        what: String,
        expected: u64,
        available: u64,
    },
    #[error("070702 check of \"{}\" is {stored:08X} but its data sums to {computed:08X} (kernel: \"bad data checksum\")", name.escape_default())]
    ChecksumMismatch {
        name: String,
        stored: u32,
        computed: u32,
    },
    #[error("expected NUL {what}, found byte 0x{found:02x}")]
    Padding { what: &'static str, found: u8 },
    /// [`CpioError`]'s source is this kind's source: the read's error, said once.
    #[error("read failed")]
    Io(#[source] std::io::Error),
}

fn magic_hint(found: &[u8]) -> &'static str {
    if found == b"070707" {
        "old portable format; kernel: \"incorrect cpio method used: use -H newc option\""
    } else {
        "kernel: \"no cpio magic\""
    }
}

/// A name for messages: lossy UTF-8 is fine there, the raw bytes stay in the `Entry`.
pub(crate) fn display_name(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

#[cfg(test)]
mod tests {
    use std::io::{self, Read};

    use super::super::reader::Reader;

    /// A stream that fails after its first bytes, like a disk read error.
    struct Failing(&'static [u8]);

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::other("disk on fire"));
            }
            let n = self.0.len().min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_read_error_is_the_chain_end_said_once() {
        let err = Reader::new(Failing(b"0707")).next_entry().unwrap_err();
        let chain = crate::error_chain(&err);
        assert!(
            chain.starts_with("byte ") && chain.ends_with("read failed: disk on fire"),
            "{chain}"
        );
        assert_eq!(chain.matches("disk on fire").count(), 1, "{chain}");
        assert_eq!(chain.matches("read failed").count(), 1, "{chain}");
    }
}
