//! Where the firmware files QEMU boots with live on Debian-like hosts (the one list doctor checks
//! too): SeaBIOS, OVMF's code + variable-store pair, and ipxe-qemu's NIC option ROMs. Also the
//! per-run files made from them: a private copy of the OVMF variable store (the template is never
//! written to) and the SeaBIOS serial-console port file.

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::machine::{NicModel, SERCON_PORT};
use crate::fsutil::{self, OutputError};

/// SeaBIOS images, preferred first.
pub const SEABIOS_PATHS: [&str; 2] = [
    "/usr/share/seabios/bios-256k.bin",
    "/usr/share/seabios/bios.bin",
];
/// OVMF code + variable-store templates, Debian 12's 4 MiB pair first.
pub const OVMF_PAIRS: [(&str, &str); 2] = [
    (
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.fd",
    ),
    (
        "/usr/share/OVMF/OVMF_CODE.fd",
        "/usr/share/OVMF/OVMF_VARS.fd",
    ),
];
/// ipxe-qemu's ROMs: `efi-<stem>.rom` (combined BIOS + UEFI, QEMU's default) and `pxe-<stem>.rom`.
pub const IPXE_DIR: &str = "/usr/lib/ipxe/qemu";

pub const SEABIOS_PACKAGE: &str = "seabios";
pub const OVMF_PACKAGE: &str = "ovmf";
pub const IPXE_PACKAGE: &str = "ipxe-qemu";

/// Name of the per-run copy of the OVMF variable store.
pub const VARS_COPY_NAME: &str = "OVMF_VARS.fd";
/// Name of the SeaBIOS serial-console port file.
pub const SERCON_FILE_NAME: &str = "sercon-port";

#[derive(Debug, Error)]
pub enum FirmwareError {
    #[error("{what}: none of {}; install {package} (apt-get install {package}, or run images/setup)", list(.looked_for))]
    Missing {
        what: &'static str,
        looked_for: Vec<PathBuf>,
        package: &'static str,
    },
    #[error("{code}: OVMF code without its variable store {vars}; reinstall {OVMF_PACKAGE}")]
    OvmfVarsMissing { code: PathBuf, vars: PathBuf },
    #[error("{from} -> {to}: copying the OVMF variable store")]
    CopyVars {
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
    #[error(transparent)]
    Output(#[from] OutputError),
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// OVMF's code image and the variable-store template that goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvmfPair {
    pub code: PathBuf,
    pub vars_template: PathBuf,
}

impl OvmfPair {
    /// Copies the variable-store template into `dir` as [`VARS_COPY_NAME`], writable, for one run.
    pub fn copy_vars(&self, dir: &Path) -> Result<PathBuf, FirmwareError> {
        let to = dir.join(VARS_COPY_NAME);
        let bytes =
            std::fs::read(&self.vars_template).map_err(|source| FirmwareError::CopyVars {
                from: self.vars_template.clone(),
                to: to.clone(),
                source,
            })?;
        // Written fresh (0644 from the umask), so a read-only template does not make a
        // read-only copy that QEMU's pflash would refuse.
        fsutil::write_atomic(&to, &bytes, false)?;
        Ok(to)
    }
}

/// Firmware files as seen from a root directory (`/` on the host; a fake tree in tests).
#[derive(Debug, Clone)]
pub struct FirmwareFiles {
    root: PathBuf,
}

impl FirmwareFiles {
    pub fn system() -> Self {
        Self::under(Path::new("/"))
    }

    pub fn under(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    fn file(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    pub fn seabios(&self) -> Result<PathBuf, FirmwareError> {
        let candidates: Vec<PathBuf> = SEABIOS_PATHS.iter().map(|p| self.file(p)).collect();
        candidates
            .iter()
            .find(|p| p.is_file())
            .cloned()
            .ok_or(FirmwareError::Missing {
                what: "SeaBIOS",
                looked_for: candidates,
                package: SEABIOS_PACKAGE,
            })
    }

    /// The first complete OVMF pair; a code image without its variable store is named as such.
    pub fn ovmf(&self) -> Result<OvmfPair, FirmwareError> {
        let pairs: Vec<OvmfPair> = OVMF_PAIRS
            .iter()
            .map(|(code, vars)| OvmfPair {
                code: self.file(code),
                vars_template: self.file(vars),
            })
            .collect();
        if let Some(pair) = pairs
            .iter()
            .find(|p| p.code.is_file() && p.vars_template.is_file())
        {
            return Ok(pair.clone());
        }
        if let Some(half) = pairs.iter().find(|p| p.code.is_file()) {
            return Err(FirmwareError::OvmfVarsMissing {
                code: half.code.clone(),
                vars: half.vars_template.clone(),
            });
        }
        Err(FirmwareError::Missing {
            what: "OVMF (UEFI firmware)",
            looked_for: pairs.into_iter().map(|p| p.code).collect(),
            package: OVMF_PACKAGE,
        })
    }

    /// The combined BIOS + UEFI iPXE ROM of `nic` (`efi-<stem>.rom`): the one QEMU loads by
    /// default, so its presence is what a netboot needs.
    pub fn ipxe_rom(&self, nic: NicModel) -> Result<PathBuf, FirmwareError> {
        let rom = self.file(&format!("{IPXE_DIR}/efi-{}.rom", nic.rom_stem()));
        if rom.is_file() {
            Ok(rom)
        } else {
            Err(FirmwareError::Missing {
                what: "iPXE ROM",
                looked_for: vec![rom],
                package: IPXE_PACKAGE,
            })
        }
    }
}

/// Writes the SeaBIOS serial-console port file into `dir`: [`SERCON_PORT`] as 2 little-endian
/// bytes (SeaBIOS reads `etc/sercon-port` as a binary integer).
pub fn write_sercon_port(dir: &Path) -> Result<PathBuf, FirmwareError> {
    let path = dir.join(SERCON_FILE_NAME);
    fsutil::write_atomic(&path, &SERCON_PORT.to_le_bytes(), false)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(files: &[&str]) -> (tempfile::TempDir, FirmwareFiles) {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let p = dir.path().join(f.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, f.as_bytes()).unwrap();
        }
        let fw = FirmwareFiles::under(dir.path());
        (dir, fw)
    }

    #[test]
    fn missing_files_name_themselves_and_their_package() {
        let (_d, fw) = fake(&[]);
        let err = fw.seabios().unwrap_err().to_string();
        assert!(
            err.contains("bios-256k.bin") && err.contains("install seabios"),
            "{err}"
        );
        let err = fw.ovmf().unwrap_err().to_string();
        assert!(
            err.contains("OVMF_CODE_4M.fd") && err.contains("install ovmf"),
            "{err}"
        );
        let err = fw.ipxe_rom(NicModel::VirtioNetPci).unwrap_err().to_string();
        assert!(
            err.contains("efi-virtio.rom") && err.contains("install ipxe-qemu"),
            "{err}"
        );
    }

    #[test]
    fn prefers_the_4m_pair_and_falls_back() {
        let (d, fw) = fake(&[
            "/usr/share/OVMF/OVMF_CODE.fd",
            "/usr/share/OVMF/OVMF_VARS.fd",
            "/usr/share/OVMF/OVMF_CODE_4M.fd",
        ]);
        // The 4M code lacks its variable store: the complete legacy pair is used.
        assert_eq!(
            fw.ovmf().unwrap().code,
            d.path().join("usr/share/OVMF/OVMF_CODE.fd")
        );
        std::fs::write(d.path().join("usr/share/OVMF/OVMF_VARS_4M.fd"), b"v").unwrap();
        assert_eq!(
            fw.ovmf().unwrap().vars_template,
            d.path().join("usr/share/OVMF/OVMF_VARS_4M.fd")
        );
    }

    #[test]
    fn code_without_any_vars_is_its_own_error() {
        let (_d, fw) = fake(&["/usr/share/OVMF/OVMF_CODE_4M.fd"]);
        let err = fw.ovmf().unwrap_err();
        assert!(matches!(err, FirmwareError::OvmfVarsMissing { .. }));
        assert!(err.to_string().contains("OVMF_VARS_4M.fd"), "{err}");
    }

    #[test]
    fn vars_copy_is_private_and_writable_and_the_template_untouched() {
        use std::os::unix::fs::PermissionsExt;
        let (d, fw) = fake(&[
            "/usr/share/OVMF/OVMF_CODE_4M.fd",
            "/usr/share/OVMF/OVMF_VARS_4M.fd",
        ]);
        let pair = fw.ovmf().unwrap();
        std::fs::set_permissions(&pair.vars_template, std::fs::Permissions::from_mode(0o444))
            .unwrap();
        let run = d.path().join("run");
        std::fs::create_dir(&run).unwrap();
        let copy = pair.copy_vars(&run).unwrap();
        assert_eq!(copy, run.join("OVMF_VARS.fd"));
        std::fs::write(&copy, b"guest wrote this").unwrap();
        assert_eq!(
            std::fs::read(&pair.vars_template).unwrap(),
            b"/usr/share/OVMF/OVMF_VARS_4M.fd"
        );
        // A second copy into the same run directory is refused, not overwritten.
        assert!(pair.copy_vars(&run).is_err());
    }

    #[test]
    fn sercon_port_file_is_com1_little_endian() {
        let d = tempfile::tempdir().unwrap();
        let p = write_sercon_port(d.path()).unwrap();
        assert_eq!(std::fs::read(p).unwrap(), [0xf8, 0x03]);
    }
}
