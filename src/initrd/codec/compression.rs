//! The segment formats the kernel reads, by name and by magic.

use std::fmt;
use std::str::FromStr;

use crate::names::Named;

use super::super::lz4legacy;

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
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
        f.write_str(self.as_str())
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

#[cfg(test)]
mod tests {
    use strum::VariantArray;

    use super::*;

    #[test]
    fn names_are_serdes() {
        crate::names::assert_serde_names::<Compression>();
        assert_eq!(Compression::Bzip2.as_str(), "bzip2");
        for c in Compression::VARIANTS {
            assert_eq!(c.as_str().parse::<Compression>(), Ok(*c));
            assert_eq!(c.to_string(), c.as_str());
        }
    }
}
