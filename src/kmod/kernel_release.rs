//! The kernel release of a bzImage (`vmlinuz`), read from its real-mode setup header
//! (Documentation/arch/x86/boot.rst): "HdrS" at 0x202, and at 0x20E a pointer, relative to
//! 0x200, to a NUL-terminated version string whose first word is the release
//! ("6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1 SMP ...").

use std::io::Read;
use std::path::Path;

use super::error::KmodError;

const HEADER_MAGIC_AT: usize = 0x202;
const VERSION_POINTER_AT: usize = 0x20E;
const VERSION_BASE: usize = 0x200;
/// The version string lives in the setup code, which is at most 64 KiB (setup_sects ≤ 127).
const SETUP_LIMIT: u64 = 0x10000;
const MAX_VERSION_LEN: usize = 256;

/// Reads the release string of the kernel at `path`.
pub fn read_kernel_release(path: &Path) -> Result<String, KmodError> {
    let unreadable = |source| KmodError::KernelUnreadable {
        path: path.to_path_buf(),
        source,
    };
    let file = crate::host::input::open_regular(path).map_err(unreadable)?;
    let mut head = Vec::new();
    file.take(SETUP_LIMIT)
        .read_to_end(&mut head)
        .map_err(unreadable)?;
    kernel_release_from_header(&head).map_err(|what| KmodError::KernelImage {
        path: path.to_path_buf(),
        what,
    })
}

/// Parses the release from the first bytes of a bzImage.
pub fn kernel_release_from_header(head: &[u8]) -> Result<String, String> {
    let magic = head
        .get(HEADER_MAGIC_AT..HEADER_MAGIC_AT + 4)
        .ok_or_else(|| format!("file is {} bytes, too short for a setup header", head.len()))?;
    if magic != b"HdrS" {
        return Err(format!(
            "expected \"HdrS\" at byte {HEADER_MAGIC_AT:#x}, found {:?}",
            String::from_utf8_lossy(magic)
        ));
    }
    let pointer_bytes = head
        .get(VERSION_POINTER_AT..VERSION_POINTER_AT + 2)
        .ok_or_else(|| {
            format!("file ends before the kernel_version field at {VERSION_POINTER_AT:#x}")
        })?;
    let pointer = u16::from_le_bytes([pointer_bytes[0], pointer_bytes[1]]) as usize;
    if pointer == 0 {
        return Err(format!(
            "kernel_version pointer at {VERSION_POINTER_AT:#x} is 0 (no version string)"
        ));
    }
    let start = pointer + VERSION_BASE;
    let rest = head.get(start..).filter(|r| !r.is_empty()).ok_or_else(|| {
        format!(
            "kernel_version pointer at {VERSION_POINTER_AT:#x} points to byte {start:#x}, past the setup code ({} bytes read)",
            head.len()
        )
    })?;
    let window = &rest[..rest.len().min(MAX_VERSION_LEN)];
    let end = window.iter().position(|&b| b == 0).ok_or_else(|| {
        format!("version string at byte {start:#x} is not NUL-terminated within {MAX_VERSION_LEN} bytes")
    })?;
    let text = std::str::from_utf8(&window[..end])
        .map_err(|_| format!("version string at byte {start:#x} is not text"))?;
    text.split_whitespace()
        .next()
        .map(str::to_string)
        .ok_or_else(|| format!("version string at byte {start:#x} is empty"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(version: &[u8], pointer: u16) -> Vec<u8> {
        let mut img = vec![0u8; 0x1000];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x20E..0x210].copy_from_slice(&pointer.to_le_bytes());
        let at = pointer as usize + 0x200;
        img[at..at + version.len()].copy_from_slice(version);
        img
    }

    #[test]
    fn reads_the_first_word() {
        let img = image(b"6.1.0-56-amd64 (debian) #1 SMP\0", 0x300);
        assert_eq!(kernel_release_from_header(&img).unwrap(), "6.1.0-56-amd64");
    }

    #[test]
    fn errors_name_the_offset() {
        let mut img = image(b"x\0", 0x300);
        img[0x202] = b'X';
        assert!(kernel_release_from_header(&img)
            .unwrap_err()
            .contains("0x202"));
        assert!(kernel_release_from_header(&img[..0x100])
            .unwrap_err()
            .contains("too short"));
        let zero = image(b"\0", 0);
        assert!(kernel_release_from_header(&zero)
            .unwrap_err()
            .contains("is 0"));
        let far = image(b"", 0x300);
        let far = {
            let mut f = far;
            f[0x20E..0x210].copy_from_slice(&0xff00u16.to_le_bytes());
            f
        };
        assert!(kernel_release_from_header(&far)
            .unwrap_err()
            .contains("past the setup code"));
        let unterminated = {
            let mut u = image(b"", 0x300);
            for b in &mut u[0x500..] {
                *b = b'a';
            }
            u
        };
        assert!(kernel_release_from_header(&unterminated)
            .unwrap_err()
            .contains("NUL-terminated"));
        assert!(kernel_release_from_header(&image(b"  \0", 0x300))
            .unwrap_err()
            .contains("empty"));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let img = image(b"6.1.0 x\0", 0x300);
        for cut in 0..0x520 {
            let _ = kernel_release_from_header(&img[..cut]);
        }
        assert!(kernel_release_from_header(&img[..0x200]).is_err());
    }

    #[test]
    fn missing_file_names_it() {
        let err = read_kernel_release(Path::new("/nonexistent/vmlinuz"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/vmlinuz"), "{err}");
    }
}
