//! The `.modinfo` section of a module: NUL-separated `key=value` strings that `modinfo`,
//! `depmod` and the kernel's loader read (name, depends, vermagic, parm, parmtype, softdep,
//! alias, firmware, license).

use std::path::Path;

use object::{Object, ObjectSection};
use serde::Serialize;

use super::compress::read_module_file;
use super::error::KmodError;

/// One module parameter, from `parm=name:description` and `parmtype=name:type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Parm {
    pub name: String,
    pub description: Option<String>,
    pub ty: Option<String>,
}

/// Soft dependencies (`softdep=pre: a b post: c`): modprobe loads them, insmod does not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SoftDeps {
    pub pre: Vec<String>,
    pub post: Vec<String>,
}

impl SoftDeps {
    /// Parses the text after `softdep=` (or after the module name in `modules.softdep`).
    pub fn parse_into(&mut self, text: &str) {
        let mut target: Option<&mut Vec<String>> = None;
        for word in text.split_whitespace() {
            match word {
                "pre:" => target = Some(&mut self.pre),
                "post:" => target = Some(&mut self.post),
                name => {
                    if let Some(list) = target.as_deref_mut() {
                        list.push(name.to_string());
                    }
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pre.is_empty() && self.post.is_empty()
    }
}

/// What a module says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ModInfo {
    pub name: Option<String>,
    pub depends: Vec<String>,
    pub vermagic: Option<String>,
    pub parms: Vec<Parm>,
    pub softdeps: SoftDeps,
    pub aliases: Vec<String>,
    pub firmware: Vec<String>,
    pub license: Option<String>,
}

impl ModInfo {
    /// The kernel release the module was built for: the first word of vermagic.
    pub fn built_for(&self) -> Option<&str> {
        self.vermagic.as_deref()?.split_whitespace().next()
    }

    /// Parses the raw section content. Entries without `=` are skipped, as the kernel's own
    /// `get_modinfo` only ever looks for `key=`.
    pub fn parse_section(data: &[u8]) -> ModInfo {
        let mut info = ModInfo::default();
        for entry in data.split(|&b| b == 0).filter(|e| !e.is_empty()) {
            let text = String::from_utf8_lossy(entry);
            let Some((key, value)) = text.split_once('=') else {
                continue;
            };
            info.add(key, value);
        }
        info
    }

    fn add(&mut self, key: &str, value: &str) {
        match key {
            "name" => self.name = Some(value.to_string()),
            "depends" => self.depends.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(|d| d.replace('-', "_")),
            ),
            "vermagic" => self.vermagic = Some(value.to_string()),
            "parm" | "parmtype" => {
                let (name, rest) = value.split_once(':').unwrap_or((value, ""));
                let parm = self.parm_mut(name);
                let rest = Some(rest.to_string()).filter(|r| !r.is_empty());
                if key == "parm" {
                    parm.description = rest;
                } else {
                    parm.ty = rest;
                }
            }
            "softdep" => self.softdeps.parse_into(value),
            "alias" => self.aliases.push(value.to_string()),
            "firmware" => self.firmware.push(value.to_string()),
            "license" => self.license = Some(value.to_string()),
            _ => {}
        }
    }

    fn parm_mut(&mut self, name: &str) -> &mut Parm {
        let index = match self.parms.iter().position(|p| p.name == name) {
            Some(i) => i,
            None => {
                self.parms.push(Parm {
                    name: name.to_string(),
                    description: None,
                    ty: None,
                });
                self.parms.len() - 1
            }
        };
        &mut self.parms[index]
    }
}

/// Reads `.modinfo` from a module's ELF bytes; `path` names the file in errors.
pub fn modinfo_from_elf(path: &Path, elf: &[u8]) -> Result<ModInfo, KmodError> {
    let bad = |what: String| KmodError::Elf {
        path: path.to_path_buf(),
        what,
        source: None,
    };
    let unparsed = |what: String, source: object::Error| KmodError::Elf {
        path: path.to_path_buf(),
        what,
        source: Some(source),
    };
    if !elf.starts_with(b"\x7fELF") {
        let found: Vec<String> = elf.iter().take(4).map(|b| format!("{b:02x}")).collect();
        return Err(bad(format!(
            "expected ELF magic 7f 45 4c 46 at byte 0, found [{}]",
            found.join(" ")
        )));
    }
    let file = object::File::parse(elf).map_err(|e| unparsed("malformed ELF".into(), e))?;
    let section = file
        .section_by_name(".modinfo")
        .ok_or_else(|| bad("no .modinfo section (is this a kernel module?)".into()))?;
    let data = section.data().map_err(|e| {
        let at = section
            .file_range()
            .map(|(offset, size)| format!(" (offset {offset}, size {size})"))
            .unwrap_or_default();
        unparsed(
            format!(
                ".modinfo section data out of bounds{at}, file is {} bytes",
                elf.len()
            ),
            e,
        )
    })?;
    Ok(ModInfo::parse_section(data))
}

/// Reads a module file (compressed or not) and returns its `.modinfo`.
pub fn read_modinfo(path: &Path) -> Result<ModInfo, KmodError> {
    let elf = read_module_file(path)?;
    modinfo_from_elf(path, &elf)
}

#[cfg(test)]
mod tests {
    use super::super::compress::{compress, Compression};
    use super::super::test_elf::{modinfo_bytes, synthetic_module};
    use super::*;

    fn sample() -> Vec<u8> {
        modinfo_bytes(&[
            "license=Dual BSD/GPL",
            "parm=send_queue_size:Number of descriptors in send queue",
            "parmtype=send_queue_size:int",
            "parmtype=debug_level:int",
            "alias=rtnl-link-ipoib",
            "depends=ib_core,ib-cm",
            "softdep=pre: mlx_compat post: extra",
            "firmware=demo/fw.bin",
            "name=ib_ipoib",
            "vermagic=6.1.0-56-amd64 SMP preempt mod_unload modversions ",
        ])
    }

    #[test]
    fn parses_every_field_of_a_synthetic_module() {
        let elf = synthetic_module(&sample());
        let info = modinfo_from_elf(Path::new("syn.ko"), &elf).unwrap();
        assert_eq!(info.name.as_deref(), Some("ib_ipoib"));
        assert_eq!(info.depends, vec!["ib_core", "ib_cm"]);
        assert_eq!(info.built_for(), Some("6.1.0-56-amd64"));
        assert_eq!(info.license.as_deref(), Some("Dual BSD/GPL"));
        assert_eq!(info.aliases, vec!["rtnl-link-ipoib"]);
        assert_eq!(info.firmware, vec!["demo/fw.bin"]);
        assert_eq!(info.softdeps.pre, vec!["mlx_compat"]);
        assert_eq!(info.softdeps.post, vec!["extra"]);
        let names: Vec<&str> = info.parms.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["send_queue_size", "debug_level"]);
        assert_eq!(info.parms[0].ty.as_deref(), Some("int"));
        assert!(info.parms[1].description.is_none());
    }

    #[test]
    fn empty_depends_means_no_dependencies() {
        let info = ModInfo::parse_section(b"depends=\0name=x\0\0\0junk-without-equals\0");
        assert!(info.depends.is_empty());
        assert_eq!(info.name.as_deref(), Some("x"));
    }

    #[test]
    fn compressed_synthetic_modules_read_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let elf = synthetic_module(&sample());
        let plain = dir.path().join("m.ko");
        std::fs::write(&plain, &elf).unwrap();
        let expected = read_modinfo(&plain).unwrap();
        for (format, ext) in [
            (Compression::Xz, "ko.xz"),
            (Compression::Zstd, "ko.zst"),
            (Compression::Gzip, "ko.gz"),
        ] {
            let path = dir.path().join(format!("m.{ext}"));
            std::fs::write(&path, compress(format, &elf).unwrap()).unwrap();
            assert_eq!(read_modinfo(&path).unwrap(), expected, "{ext}");
        }
    }

    #[test]
    fn not_elf_is_a_clear_error_with_the_offset() {
        let err = modinfo_from_elf(Path::new("bad.ko"), b"MZ\x90\x00rest")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.ko") && err.contains("at byte 0"), "{err}");
    }

    #[test]
    fn elf_without_modinfo_is_named() {
        let elf = super::super::test_elf::elf_with_sections(&[(".text", b"\x90\x90")]);
        let err = modinfo_from_elf(Path::new("plain.o"), &elf)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no .modinfo section"), "{err}");
    }

    #[test]
    fn truncated_elf_is_an_error() {
        let elf = synthetic_module(&sample());
        for cut in [4, 20, 63, 64, elf.len() / 2, elf.len() - 1] {
            let res = modinfo_from_elf(Path::new("cut.ko"), &elf[..cut]);
            assert!(res.is_err(), "cut at {cut} parsed");
        }
    }

    #[test]
    fn a_parser_error_is_the_source_said_once() {
        let elf = synthetic_module(&sample());
        let err = modinfo_from_elf(Path::new("cut.ko"), &elf[..20]).unwrap_err();
        let cause = std::error::Error::source(&err)
            .unwrap_or_else(|| panic!("no parser error under {err}"))
            .to_string();
        let chain = crate::error_chain(&err);
        assert_eq!(chain.matches(&cause).count(), 1, "{chain}");
        assert!(
            chain.starts_with("cut.ko: not a kernel module: malformed ELF: "),
            "{chain}"
        );
    }

    #[test]
    fn section_pointing_past_the_end_reports_its_offset() {
        let mut elf = synthetic_module(&sample());
        // Section header 1 (.modinfo) starts at e_shoff + 64; sh_offset is at +24.
        let shoff = u64::from_le_bytes(elf[0x28..0x30].try_into().unwrap()) as usize;
        let at = shoff + 64 + 24;
        elf[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let err = modinfo_from_elf(Path::new("far.ko"), &elf)
            .unwrap_err()
            .to_string();
        assert!(err.contains("far.ko"), "{err}");
    }

    /// Bounded mutation test: every single-byte and truncation variant of a synthetic module
    /// parses to Ok or a typed error, never a panic.
    #[test]
    fn mutations_never_panic() {
        let elf = synthetic_module(&sample());
        let mut cases = 0usize;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // Every byte of the headers flipped to a few interesting values.
        let header_end = 64.min(elf.len());
        let shoff = u64::from_le_bytes(elf[0x28..0x30].try_into().unwrap()) as usize;
        let ranges = [0..header_end, shoff..elf.len()];
        for range in ranges {
            for i in range {
                for value in [0x00u8, 0xff, 0x7f, 0x01, 0x80] {
                    let mut m = elf.clone();
                    m[i] = value;
                    let _ = modinfo_from_elf(Path::new("mut.ko"), &m);
                    cases += 1;
                }
            }
        }
        // Random multi-byte mutations anywhere.
        for _ in 0..3000 {
            let mut m = elf.clone();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % m.len();
                m[i] = next() as u8;
            }
            let cut = if next() % 5 == 0 {
                (next() as usize) % m.len()
            } else {
                m.len()
            };
            let _ = modinfo_from_elf(Path::new("mut.ko"), &m[..cut]);
            cases += 1;
        }
        assert!(cases > 3000, "only {cases} cases ran");
    }
}
