//! The lab inventory: what a lab host's adapters are (PCI address, port GUID, FlexBoot image),
//! kept apart from the scenarios so one suite runs on every lab host. TOML:
//!
//! ```toml
//! [adapters.hca0]
//! bdf = "0000:81:00.0"            # the PF (or the PF whose VF is passed, with `vf`)
//! guid = "0002:c903:0000:1039"    # port GUID: the IPoIB client-identifier is made from it
//! rom = "/srv/flexboot/FlexBoot-3.7.300_CX6.rom"   # optional: instead of the card's own ROM
//! vf = 0                          # optional: create VFs and pass VF n instead of the PF
//! numvfs = 4                      # VFs to create when `vf` is given [vf + 1]
//! stand_in = true                 # optional: a non-Mellanox function standing in for one
//!
//! [lab]                           # optional, for every adapter
//! boot_root = "/srv/tftp"         # stage boot files under <boot_root>/<adapter>/
//! state_dir = "/run/bootrig/vfio" # locks and records [/run/bootrig/vfio]
//! lock_wait = "10m"               # how long a run waits for another holding its adapter [10m]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::net::addr::Guid;
use crate::vfio::Bdf;

/// How long a run waits for another run holding its adapter, unless `[lab] lock_wait` says.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(600);

/// Where the inventory is looked for when no `--inventory` is given.
pub const INVENTORY_ENV: &str = "BOOTRIG_INVENTORY";
pub const DEFAULT_INVENTORY: &str = "/etc/bootrig/inventory.toml";

#[derive(Debug, Error)]
pub enum InventoryError {
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    #[serde(default)]
    adapters: BTreeMap<String, RawAdapter>,
    #[serde(default)]
    lab: RawLab,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLab {
    boot_root: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    lock_wait: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdapter {
    bdf: String,
    guid: Option<String>,
    rom: Option<PathBuf>,
    vf: Option<u32>,
    numvfs: Option<u32>,
    #[serde(default)]
    stand_in: bool,
}

/// The lab host's settings, the same for each of its adapters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lab {
    /// The lab's TFTP root: each run stages its boot files under `<boot_root>/<adapter>/`.
    pub boot_root: Option<PathBuf>,
    /// Where adapter locks and records live.
    pub state_dir: PathBuf,
    pub lock_wait: Duration,
}

impl Default for Lab {
    fn default() -> Self {
        Self {
            boot_root: None,
            state_dir: PathBuf::from(crate::vfio::DEFAULT_STATE_DIR),
            lock_wait: DEFAULT_LOCK_WAIT,
        }
    }
}

/// One adapter of the lab host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adapter {
    pub name: String,
    pub bdf: Bdf,
    /// The port GUID: the IPoIB client-identifier is made from it.
    pub guid: Option<Guid>,
    pub rom: Option<PathBuf>,
    /// Pass VF `vf` of `numvfs` instead of the PF.
    pub vf: Option<(u32, u32)>,
    /// A function of any vendor standing in for a ConnectX (a nested lab's emulated NIC): the
    /// preflight skips the device table only, and reports mark the run.
    pub stand_in: bool,
    pub lab: Lab,
}

#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub path: PathBuf,
    pub adapters: BTreeMap<String, Adapter>,
}

impl Inventory {
    /// The inventory at `path`; a missing file is an empty inventory (scenarios needing an
    /// adapter are then skipped, saying where the inventory was looked for).
    pub fn load(path: &Path) -> Result<Self, InventoryError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self {
                    path: path.to_owned(),
                    adapters: BTreeMap::new(),
                })
            }
            Err(source) => {
                return Err(InventoryError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, InventoryError> {
        let invalid = |message: String| InventoryError::Invalid {
            path: path.to_owned(),
            message,
        };
        let raw: RawInventory = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        // Relative paths in the file are relative to the file, made absolute here so nothing
        // later depends on the working directory (dnsmasq and QEMU change theirs).
        // `lab.toml`'s parent is "", which absolute() refuses: it is the working directory.
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let base =
            std::path::absolute(dir).map_err(|e| invalid(format!("{}: {e}", dir.display())))?;
        let lab = lab(raw.lab, &base).map_err(invalid)?;
        let mut adapters = BTreeMap::new();
        for (name, a) in raw.adapters {
            let bdf: Bdf = a
                .bdf
                .parse()
                .map_err(|e| invalid(format!("[adapters.{name}] bdf = {:?}: {e}", a.bdf)))?;
            let guid = a
                .guid
                .as_deref()
                .map(str::parse::<Guid>)
                .transpose()
                .map_err(|e| invalid(format!("[adapters.{name}] guid: {e}")))?;
            let vf = match (a.vf, a.numvfs) {
                (Some(vf), numvfs) => Some((vf, numvfs.unwrap_or(vf + 1))),
                (None, None) => None,
                (None, Some(_)) => {
                    return Err(invalid(format!(
                        "[adapters.{name}] numvfs without vf: say which VF to pass"
                    )))
                }
            };
            if let Some((vf, numvfs)) = vf {
                if vf >= numvfs {
                    return Err(invalid(format!(
                        "[adapters.{name}] vf = {vf} needs numvfs > {vf}"
                    )));
                }
            }
            adapters.insert(
                name.clone(),
                Adapter {
                    name,
                    bdf,
                    guid,
                    rom: a.rom.map(|rom| base.join(rom)),
                    vf,
                    stand_in: a.stand_in,
                    lab: lab.clone(),
                },
            );
        }
        Ok(Self {
            path: path.to_owned(),
            adapters,
        })
    }

    /// `--inventory`, else `$BOOTRIG_INVENTORY`, else /etc/bootrig/inventory.toml.
    pub fn default_path(given: Option<&Path>) -> PathBuf {
        given
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os(INVENTORY_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_INVENTORY))
    }
}

/// `[lab]`, checked; relative paths are relative to `base`, the inventory file's directory.
fn lab(raw: RawLab, base: &Path) -> Result<Lab, String> {
    let mut lab = Lab::default();
    if let Some(root) = raw.boot_root {
        if root.as_os_str().is_empty() {
            return Err("[lab] boot_root is empty: give the lab TFTP server's root".into());
        }
        lab.boot_root = Some(base.join(root));
    }
    if let Some(dir) = raw.state_dir {
        if dir.as_os_str().is_empty() {
            return Err(
                "[lab] state_dir is empty: give a directory (default /run/bootrig/vfio)".into(),
            );
        }
        lab.state_dir = base.join(dir);
    }
    if let Some(wait) = raw.lock_wait {
        lab.lock_wait = humantime::parse_duration(&wait).map_err(|e| {
            format!("[lab] lock_wait = {wait:?}: {e} (write a duration such as \"90s\" or \"10m\")")
        })?;
    }
    Ok(lab)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = r#"
[adapters.hca0]
bdf = "0000:81:00.0"
guid = "0002:c903:0000:1039"
rom = "/srv/flexboot/FlexBoot.rom"

[adapters.vf-pool]
bdf = "82:00.0"
vf = 2
"#;

    #[test]
    fn adapters_are_read_and_checked() {
        let inv = Inventory::parse(LAB, Path::new("lab.toml")).unwrap();
        let hca = &inv.adapters["hca0"];
        assert_eq!(hca.bdf.to_string(), "0000:81:00.0");
        assert_eq!(
            hca.guid.map(|g| g.to_string()).as_deref(),
            Some("0002:c903:0000:1039")
        );
        assert_eq!(inv.adapters["vf-pool"].vf, Some((2, 3)));
        for (bad, says) in [
            (LAB.replace("0000:81:00.0", "81:00"), "bdf"),
            (LAB.replace("0002:c903:0000:1039", "zz"), "guid"),
            (LAB.replace("vf = 2", "numvfs = 2"), "numvfs without vf"),
            (LAB.replace("vf = 2", "vf = 2\nnumvfs = 2"), "numvfs > 2"),
            (LAB.replace("rom =", "romfile ="), "unknown field"),
        ] {
            let e = Inventory::parse(&bad, Path::new("lab.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("lab.toml: ") && e.contains(says), "{e}");
        }
    }

    #[test]
    fn a_bad_guid_names_the_file_the_adapter_the_byte_and_the_fix() {
        // Any form Guid reads is accepted, and kept as the GUID itself.
        let dense = Inventory::parse(
            &LAB.replace("0002:c903:0000:1039", "0002C90300001039"),
            Path::new("lab.toml"),
        )
        .unwrap();
        assert_eq!(
            dense.adapters["hca0"].guid,
            Some(crate::net::addr::Guid([0, 2, 0xc9, 3, 0, 0, 0x10, 0x39]))
        );
        let e = Inventory::parse(
            &LAB.replace("0002:c903:0000:1039", "0002:c903:0000:10z9"),
            Path::new("lab/inventory.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("lab/inventory.toml: [adapters.hca0] guid: "),
            "{e}"
        );
        assert!(e.contains("\"0002:c903:0000:10z9\" at byte 17"), "{e}");
        assert!(e.contains("write it as 0002:c903:0000:1039"), "{e}");
    }

    #[test]
    fn stand_in_and_lab_settings_are_read_relative_to_the_inventory() {
        let text = format!(
            "{LAB}\n[adapters.nic0]\nbdf = \"00:03.0\"\nstand_in = true\nrom = \"roms/e1000e.rom\"\n\n[lab]\n\
             boot_root = \"tftp\"\nstate_dir = \"/var/lib/bootrig\"\nlock_wait = \"90s\"\n"
        );
        let inv = Inventory::parse(&text, Path::new("lab/inventory.toml")).unwrap();
        let nic = &inv.adapters["nic0"];
        assert!(nic.stand_in);
        assert!(
            !inv.adapters["hca0"].stand_in,
            "stand-in is never the default"
        );
        // Relative to the file and absolute: dnsmasq and QEMU do not share bootrig's cwd.
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(nic.rom, Some(cwd.join("lab/roms/e1000e.rom")));
        assert_eq!(
            inv.adapters["hca0"].rom,
            Some(PathBuf::from("/srv/flexboot/FlexBoot.rom"))
        );
        for a in inv.adapters.values() {
            assert_eq!(a.lab.boot_root, Some(cwd.join("lab/tftp")));
            assert_eq!(a.lab.state_dir, PathBuf::from("/var/lib/bootrig"));
            assert_eq!(a.lab.lock_wait, Duration::from_secs(90));
        }
        // A bare file name: relative to the working directory, still made absolute.
        let bare = Inventory::parse(&text, Path::new("inventory.toml")).unwrap();
        assert_eq!(bare.adapters["nic0"].rom, Some(cwd.join("roms/e1000e.rom")));
        assert_eq!(bare.adapters["nic0"].lab.boot_root, Some(cwd.join("tftp")));
        let plain = Inventory::parse(LAB, Path::new("lab.toml")).unwrap();
        assert_eq!(plain.adapters["hca0"].lab, Lab::default());
        assert_eq!(
            plain.adapters["hca0"].lab.state_dir,
            PathBuf::from("/run/bootrig/vfio")
        );
        for (bad, says) in [
            ("[lab]\nlock_wait = \"soon\"\n", "lock_wait = \"soon\""),
            ("[lab]\nboot_root = \"\"\n", "boot_root is empty"),
            ("[lab]\ntftp_root = \"/srv\"\n", "unknown field"),
            (
                "[adapters.x]\nbdf = \"00:03.0\"\nstand_in = \"yes\"\n",
                "stand_in",
            ),
        ] {
            let e = Inventory::parse(bad, Path::new("lab.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("lab.toml: ") && e.contains(says), "{e}");
        }
    }

    #[test]
    fn a_missing_inventory_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let inv = Inventory::load(&dir.path().join("none.toml")).unwrap();
        assert!(inv.adapters.is_empty());
    }
}
