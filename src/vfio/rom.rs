//! PCI option ROMs (the card's FlexBoot, or a FlexBoot image file): the 0x55AA signature, the
//! "PCIR" data structure of each image in the chain, and the size.

use std::path::Path;

use serde::Serialize;
use thiserror::Error;

use super::bdf::Bdf;
use super::kernel::Kernel;
use super::VfioError;

/// The PCI spec's largest expansion ROM BAR.
pub const MAX_ROM_BYTES: usize = 16 << 20;
const MAX_IMAGES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RomImage {
    /// Byte offset of the image in the ROM.
    pub offset: usize,
    pub vendor: u16,
    pub device: u16,
    /// 0 x86 BIOS, 3 UEFI (PCI Firmware spec code types).
    pub code_type: u8,
    pub length: usize,
}

impl RomImage {
    pub fn kind(&self) -> &'static str {
        match self.code_type {
            0 => "x86 BIOS",
            1 => "Open Firmware",
            2 => "PA-RISC",
            3 => "UEFI",
            _ => "unknown code type",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RomInfo {
    pub size: usize,
    pub images: Vec<RomImage>,
}

impl RomInfo {
    /// "2 images: x86 BIOS, UEFI (15b3:1003)".
    pub fn summary(&self) -> String {
        let kinds: Vec<&str> = self.images.iter().map(RomImage::kind).collect();
        let ids = self
            .images
            .first()
            .map(|i| format!(" ({:04x}:{:04x})", i.vendor, i.device))
            .unwrap_or_default();
        format!(
            "{} KiB, {} image{}: {}{ids}",
            self.size.div_ceil(1024),
            self.images.len(),
            if self.images.len() == 1 { "" } else { "s" },
            kinds.join(", ")
        )
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RomError {
    #[error("option ROM is empty")]
    Empty,
    #[error("option ROM is {0} bytes: larger than the 16 MiB a ROM BAR can map")]
    TooLarge(usize),
    #[error("no 0x55AA option ROM signature at byte {offset} (found {found:02x?})")]
    NoSignature { offset: usize, found: Vec<u8> },
    #[error("image at byte {image}: no \"PCIR\" data structure at byte {offset}")]
    NoPcir { image: usize, offset: usize },
    #[error("image at byte {image}: length {length} runs past the end of the {size}-byte ROM")]
    Truncated {
        image: usize,
        length: usize,
        size: usize,
    },
    #[error("more than {MAX_IMAGES} images chained in the ROM")]
    TooManyImages,
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

/// Walks the image chain of a ROM.
pub fn parse(bytes: &[u8]) -> Result<RomInfo, RomError> {
    if bytes.is_empty() {
        return Err(RomError::Empty);
    }
    if bytes.len() > MAX_ROM_BYTES {
        return Err(RomError::TooLarge(bytes.len()));
    }
    let mut images = Vec::new();
    let mut offset = 0;
    loop {
        if images.len() == MAX_IMAGES {
            return Err(RomError::TooManyImages);
        }
        if bytes.get(offset..offset + 2) != Some(&[0x55, 0xaa]) {
            return Err(RomError::NoSignature {
                offset,
                found: bytes[offset.min(bytes.len())..(offset + 2).min(bytes.len())].to_vec(),
            });
        }
        let pcir = offset
            + usize::from(u16_at(bytes, offset + 0x18).ok_or(RomError::NoPcir {
                image: offset,
                offset: offset + 0x18,
            })?);
        if bytes.get(pcir..pcir + 4) != Some(b"PCIR") || bytes.len() < pcir + 0x16 {
            return Err(RomError::NoPcir {
                image: offset,
                offset: pcir,
            });
        }
        // Checked above: the structure's 0x16 bytes are all there.
        let field16 = |at: usize| u16::from_le_bytes([bytes[pcir + at], bytes[pcir + at + 1]]);
        let length = usize::from(field16(0x10)) * 512;
        if length == 0 || offset + length > bytes.len() {
            return Err(RomError::Truncated {
                image: offset,
                length,
                size: bytes.len(),
            });
        }
        images.push(RomImage {
            offset,
            vendor: field16(0x04),
            device: field16(0x06),
            code_type: bytes[pcir + 0x14],
            length,
        });
        let last = bytes[pcir + 0x15] & 0x80 != 0;
        offset += length;
        if last || offset >= bytes.len() {
            break;
        }
    }
    Ok(RomInfo {
        size: bytes.len(),
        images,
    })
}

/// Reads a ROM image file.
pub fn read_file(path: &Path) -> Result<Vec<u8>, VfioError> {
    let meta = std::fs::metadata(path).map_err(super::sysfs::io_error(path))?;
    if meta.len() > MAX_ROM_BYTES as u64 {
        return Err(VfioError::Rom {
            what: path.display().to_string(),
            source: RomError::TooLarge(usize::try_from(meta.len()).unwrap_or(usize::MAX)),
        });
    }
    std::fs::read(path).map_err(super::sysfs::io_error(path))
}

/// Reads the card's own ROM through sysfs: enable, read, disable (also when the read fails).
pub fn read_device_rom(kernel: &dyn Kernel, dev: &Bdf) -> Result<Vec<u8>, VfioError> {
    let path = kernel.paths().pci_device(dev).join("rom");
    kernel.set_rom_enabled(dev, true)?;
    let read = std::fs::read(&path).map_err(super::sysfs::io_error(&path));
    let disable = kernel.set_rom_enabled(dev, false);
    let bytes = read?;
    disable?;
    Ok(bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A ROM image of `blocks` × 512 bytes with a PCIR at 0x1c.
    pub fn image(vendor: u16, device: u16, code_type: u8, blocks: u16, last: bool) -> Vec<u8> {
        let mut v = vec![0u8; usize::from(blocks) * 512];
        v[0] = 0x55;
        v[1] = 0xaa;
        v[2] = blocks as u8;
        v[0x18..0x1a].copy_from_slice(&0x1cu16.to_le_bytes());
        let p = 0x1c;
        v[p..p + 4].copy_from_slice(b"PCIR");
        v[p + 4..p + 6].copy_from_slice(&vendor.to_le_bytes());
        v[p + 6..p + 8].copy_from_slice(&device.to_le_bytes());
        v[p + 0x10..p + 0x12].copy_from_slice(&blocks.to_le_bytes());
        v[p + 0x14] = code_type;
        v[p + 0x15] = if last { 0x80 } else { 0 };
        v
    }

    #[test]
    fn a_bios_plus_uefi_chain_is_listed() {
        let mut rom = image(0x15b3, 0x1003, 0, 2, false);
        rom.extend(image(0x15b3, 0x1003, 3, 4, true));
        let info = parse(&rom).unwrap();
        assert_eq!(info.images.len(), 2);
        assert_eq!(info.images[1].offset, 1024);
        assert_eq!(
            info.summary(),
            "3 KiB, 2 images: x86 BIOS, UEFI (15b3:1003)"
        );
        // Padding after the last image is allowed (ROM BARs are powers of two).
        rom.extend(vec![0xff; 1024]);
        assert_eq!(parse(&rom).unwrap().images.len(), 2);
    }

    #[test]
    fn malformed_roms_are_typed_errors_with_offsets() {
        assert_eq!(parse(&[]), Err(RomError::Empty));
        assert_eq!(
            parse(&[0x4d, 0x5a, 0]),
            Err(RomError::NoSignature {
                offset: 0,
                found: vec![0x4d, 0x5a]
            })
        );
        let mut rom = image(0x15b3, 0x1003, 0, 2, true);
        rom[0x1c] = b'X';
        assert_eq!(
            parse(&rom),
            Err(RomError::NoPcir {
                image: 0,
                offset: 0x1c
            })
        );
        let rom = image(0x15b3, 0x1003, 0, 2, true);
        assert!(matches!(
            parse(&rom[..600]),
            Err(RomError::Truncated { length: 1024, .. })
        ));
        let mut chain = image(0x15b3, 0x1003, 0, 1, false);
        chain.extend([0x55, 0x00]);
        assert_eq!(
            parse(&chain),
            Err(RomError::NoSignature {
                offset: 512,
                found: vec![0x55, 0]
            })
        );
        // A PCIR pointer past the end.
        let mut rom = image(0x15b3, 0x1003, 0, 1, true);
        rom[0x18..0x1a].copy_from_slice(&0xfff0u16.to_le_bytes());
        assert!(matches!(parse(&rom), Err(RomError::NoPcir { .. })));
        assert_eq!(
            parse(&[0x55]),
            Err(RomError::NoSignature {
                offset: 0,
                found: vec![0x55]
            })
        );
    }

    #[test]
    fn oversized_roms_are_refused() {
        assert_eq!(
            parse(&vec![0u8; MAX_ROM_BYTES + 1]),
            Err(RomError::TooLarge(MAX_ROM_BYTES + 1))
        );
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            let _ = parse(&bytes);
        }
    }
}
