//! Reading a module file whole, decompressing `.ko.xz`, `.ko.zst` and `.ko.gz` the way
//! `kmod` does: the format comes from the file name, and the magic must agree with it.

use std::io::Read;
use std::path::Path;

use super::error::KmodError;
use crate::names::Named;

/// Decompressed modules larger than this are refused (the largest in-tree module is ~30 MiB);
/// it bounds what a corrupt or hostile file can make us allocate.
const MAX_MODULE_BYTES: u64 = 512 << 20;

/// How a module file is stored.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, strum::IntoStaticStr, strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Compression {
    None,
    Xz,
    Zstd,
    Gzip,
}

impl Compression {
    /// From the file name, as kmod decides.
    pub fn from_path(path: &Path) -> Compression {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".ko.xz") {
            Compression::Xz
        } else if name.ends_with(".ko.zst") {
            Compression::Zstd
        } else if name.ends_with(".ko.gz") {
            Compression::Gzip
        } else {
            Compression::None
        }
    }

    fn magic(self) -> &'static [u8] {
        match self {
            Compression::None => b"",
            Compression::Xz => b"\xfd7zXZ\x00",
            Compression::Zstd => b"\x28\xb5\x2f\xfd",
            Compression::Gzip => b"\x1f\x8b",
        }
    }
}

/// The module's ELF bytes: the file itself, or its decompressed content.
pub fn read_module_file(path: &Path) -> Result<Vec<u8>, KmodError> {
    let raw = crate::host::input::read_regular(path).map_err(|e| KmodError::io(path, e))?;
    decompress(path, Compression::from_path(path), raw)
}

/// Decompresses `raw` as `format`; `path` only names the file in errors.
pub fn decompress(path: &Path, format: Compression, raw: Vec<u8>) -> Result<Vec<u8>, KmodError> {
    if format == Compression::None {
        return Ok(raw);
    }
    let refuse = |problem: String| KmodError::Decompress {
        path: path.to_path_buf(),
        format: format.as_str(),
        problem: Some(problem),
        source: None,
    };
    let fail = |source: std::io::Error| KmodError::Decompress {
        path: path.to_path_buf(),
        format: format.as_str(),
        problem: None,
        source: Some(source),
    };
    if !raw.starts_with(format.magic()) {
        let found: Vec<String> = raw.iter().take(6).map(|b| format!("{b:02x}")).collect();
        return Err(refuse(format!(
            "expected {} magic at byte 0, found [{}]",
            format.as_str(),
            found.join(" ")
        )));
    }
    let reader: Box<dyn Read + '_> = match format {
        Compression::Xz => Box::new(liblzma::read::XzDecoder::new(raw.as_slice())),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(raw.as_slice()).map_err(fail)?)
        }
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(raw.as_slice())),
        Compression::None => return Ok(raw),
    };
    let mut out = Vec::with_capacity(raw.len().saturating_mul(3));
    reader
        .take(MAX_MODULE_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(fail)?;
    if out.len() as u64 > MAX_MODULE_BYTES {
        return Err(refuse(format!(
            "decompresses to more than {MAX_MODULE_BYTES} bytes"
        )));
    }
    Ok(out)
}

/// Compresses `data` as `format` (tests and benchmarks build compressed trees with it).
pub fn compress(format: Compression, data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    match format {
        Compression::None => Ok(data.to_vec()),
        Compression::Xz => {
            let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 6);
            enc.write_all(data)?;
            enc.finish()
        }
        Compression::Zstd => zstd::stream::encode_all(data, 3),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(data)?;
            enc.finish()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    use strum::VariantArray;

    /// The compressed formats.
    fn compressed() -> impl Iterator<Item = Compression> {
        Compression::VARIANTS
            .iter()
            .copied()
            .filter(|c| *c != Compression::None)
    }

    #[test]
    fn names_are_serdes() {
        crate::names::assert_serde_names::<Compression>();
        assert_eq!(Compression::Zstd.as_str(), "zstd");
    }

    #[test]
    fn format_comes_from_the_name() {
        let f = |n: &str| Compression::from_path(&PathBuf::from(n));
        assert_eq!(f("a/b.ko"), Compression::None);
        assert_eq!(f("b.ko.xz"), Compression::Xz);
        assert_eq!(f("b.ko.zst"), Compression::Zstd);
        assert_eq!(f("b.ko.gz"), Compression::Gzip);
    }

    #[test]
    fn round_trips_each_format() {
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        for format in compressed() {
            let packed = compress(format, &data).unwrap();
            assert_ne!(packed, data);
            let back = decompress(Path::new("x"), format, packed).unwrap();
            assert_eq!(back, data, "{format:?}");
        }
    }

    #[test]
    fn wrong_magic_names_the_file_and_the_format() {
        let err = decompress(
            Path::new("m.ko.xz"),
            Compression::Xz,
            b"\x7fELF....".to_vec(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("m.ko.xz") && err.contains("xz magic at byte 0"),
            "{err}"
        );
    }

    #[test]
    fn truncated_streams_are_errors_not_panics() {
        let data = vec![7u8; 10_000];
        for format in compressed() {
            let packed = compress(format, &data).unwrap();
            for cut in [format.magic().len(), packed.len() / 2, packed.len() - 1] {
                let res = decompress(Path::new("t"), format, packed[..cut].to_vec());
                assert!(res.is_err(), "{format:?} cut at {cut} decoded");
            }
        }
    }

    #[test]
    fn a_decoder_error_is_the_source_and_said_once() {
        let data = vec![7u8; 10_000];
        for format in compressed() {
            let packed = compress(format, &data).unwrap();
            let cut = packed[..packed.len() / 2].to_vec();
            let err = decompress(Path::new("t.ko"), format, cut).unwrap_err();
            let cause = std::error::Error::source(&err)
                .unwrap_or_else(|| panic!("{format:?}: no source in {err}"))
                .to_string();
            let chain = crate::error_chain(&err);
            assert_eq!(chain.matches(&cause).count(), 1, "{chain}");
            assert!(
                chain.starts_with(&format!("t.ko: cannot decompress ({})", format.as_str())),
                "{chain}"
            );
        }
    }
}
