//! Typed errors of the cpio layer, each with the stream offset where the bad thing starts.

/// A malformed or unreadable cpio stream.
#[derive(Debug, thiserror::Error)]
#[error("byte {offset} of the cpio stream: {kind}")]
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
    /// Not a `source()`: [`CpioError`] shows its kind in its own message, so the cause is
    /// said here, once.
    #[error("read failed: {0}")]
    Io(std::io::Error),
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
