//! Reading the PCI state the kernel exposes: ids, driver, IOMMU group, network interfaces and
//! block devices below a device, SR-IOV counts. Paths hang off [`HostPaths`], so a sysfs tree
//! captured on a lab host (or built by a test) reads exactly like the live one.

use std::io;
use std::path::{Path, PathBuf};

use super::bdf::Bdf;
use super::VfioError;

/// Where sysfs, /dev and /proc are; `/sys`, `/dev` and `/proc` on a live host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    pub sysfs: PathBuf,
    pub dev: PathBuf,
    pub proc: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        Self {
            sysfs: "/sys".into(),
            dev: "/dev".into(),
            proc: "/proc".into(),
        }
    }
}

impl HostPaths {
    pub fn pci_device(&self, bdf: &Bdf) -> PathBuf {
        self.sysfs.join("bus/pci/devices").join(bdf.to_string())
    }
    pub fn pci_driver(&self, driver: &str) -> PathBuf {
        self.sysfs.join("bus/pci/drivers").join(driver)
    }
    pub fn iommu_groups(&self) -> PathBuf {
        self.sysfs.join("kernel/iommu_groups")
    }
    pub fn vfio_container(&self) -> PathBuf {
        self.dev.join("vfio/vfio")
    }
    pub fn vfio_group(&self, group: u32) -> PathBuf {
        self.dev.join("vfio").join(group.to_string())
    }
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> VfioError + '_ {
    move |source| VfioError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A sysfs attribute's text without the trailing newline; `None` when it does not exist.
pub fn read_attr(path: &Path) -> Result<Option<String>, VfioError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim_end().to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path)(e)),
    }
}

/// A hex attribute (`0x15b3`), as `vendor`, `device` and `class` print them.
pub fn read_hex(path: &Path) -> Result<Option<u32>, VfioError> {
    let Some(text) = read_attr(path)? else {
        return Ok(None);
    };
    let digits = text.strip_prefix("0x").unwrap_or(&text);
    u32::from_str_radix(digits, 16)
        .map(Some)
        .map_err(|_| VfioError::Malformed {
            path: path.to_owned(),
            expected: "a hex number like 0x15b3",
            found: text.clone(),
        })
}

/// A decimal attribute (`sriov_numvfs`).
pub fn read_decimal(path: &Path) -> Result<Option<u32>, VfioError> {
    let Some(text) = read_attr(path)? else {
        return Ok(None);
    };
    text.parse().map(Some).map_err(|_| VfioError::Malformed {
        path: path.to_owned(),
        expected: "a decimal number",
        found: text.clone(),
    })
}

/// The last component of a symlink's target (`driver` → `mlx5_core`), `None` without the link.
fn link_name(path: &Path) -> Result<Option<String>, VfioError> {
    match std::fs::read_link(path) {
        Ok(target) => Ok(target.file_name().map(|n| n.to_string_lossy().into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path)(e)),
    }
}

/// The bound driver's name.
pub fn driver(paths: &HostPaths, bdf: &Bdf) -> Result<Option<String>, VfioError> {
    link_name(&paths.pci_device(bdf).join("driver"))
}

/// `driver_override`, `None` when unset (the kernel prints `(null)`).
pub fn driver_override(paths: &HostPaths, bdf: &Bdf) -> Result<Option<String>, VfioError> {
    Ok(read_attr(&paths.pci_device(bdf).join("driver_override"))?
        .filter(|v| !v.is_empty() && v != "(null)"))
}

/// The IOMMU group number, `None` when the device has no `iommu_group` link.
pub fn iommu_group(paths: &HostPaths, bdf: &Bdf) -> Result<Option<u32>, VfioError> {
    let link = paths.pci_device(bdf).join("iommu_group");
    let Some(name) = link_name(&link)? else {
        return Ok(None);
    };
    name.parse().map(Some).map_err(|_| VfioError::Malformed {
        path: link,
        expected: "a link to kernel/iommu_groups/<number>",
        found: name,
    })
}

/// The names in a directory, sorted; empty when it does not exist.
pub fn list_dir(dir: &Path) -> Result<Vec<String>, VfioError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(io_error(dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        names.push(
            entry
                .map_err(io_error(dir))?
                .file_name()
                .to_string_lossy()
                .into_owned(),
        );
    }
    names.sort();
    Ok(names)
}

/// The devices in an IOMMU group, as sysfs names them (PCI addresses, or other bus names).
pub fn group_devices(paths: &HostPaths, group: u32) -> Result<Vec<String>, VfioError> {
    list_dir(&paths.iommu_groups().join(group.to_string()).join("devices"))
}

/// Network interfaces of a device (its `net/` directory).
pub fn net_interfaces(paths: &HostPaths, bdf: &Bdf) -> Result<Vec<String>, VfioError> {
    list_dir(&paths.pci_device(bdf).join("net"))
}

/// Is a PCI-to-PCI or CardBus bridge (class 0x0604/0x0607): VFIO lets a bridge keep its driver.
pub fn is_bridge(paths: &HostPaths, bdf: &Bdf) -> Result<bool, VfioError> {
    let class = read_hex(&paths.pci_device(bdf).join("class"))?;
    Ok(class.is_some_and(|c| matches!(c >> 8, 0x0604 | 0x0607)))
}

/// Block devices (disks and partitions) anywhere below a PCI device, e.g. `nvme0n1`,
/// `nvme0n1p2`, `sda1`: a directory whose `subsystem` link ends in `block`. Symlinks are not
/// followed (sysfs links loop), and the walk is bounded in depth.
pub fn block_devices(paths: &HostPaths, bdf: &Bdf) -> Result<Vec<String>, VfioError> {
    let mut found = Vec::new();
    walk_blocks(&paths.pci_device(bdf), 0, &mut found)?;
    found.sort();
    found.dedup();
    Ok(found)
}

// ata1/host0/target0:0:0/0:0:0:0/block/sda/sda1 is 7 below the device; leave room.
const MAX_BLOCK_DEPTH: usize = 10;

fn walk_blocks(dir: &Path, depth: usize, found: &mut Vec<String>) -> Result<(), VfioError> {
    if depth > MAX_BLOCK_DEPTH {
        return Ok(());
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // A device can vanish under us; what is gone holds no mount.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_error(dir))?;
        let is_dir = entry.file_type().map_err(io_error(dir))?.is_dir();
        if !is_dir {
            continue;
        }
        let path = entry.path();
        if link_name(&path.join("subsystem"))?.as_deref() == Some("block") {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
        walk_blocks(&path, depth + 1, found)?;
    }
    Ok(())
}

/// Block devices stacked on these (device-mapper, md), from `class/block/<name>/holders`,
/// with each holder's device-mapper name (`dm/name`) when it has one.
pub fn holders(paths: &HostPaths, names: &[String]) -> Result<Vec<String>, VfioError> {
    let mut out: Vec<String> = Vec::new();
    let mut queue: Vec<String> = names.to_vec();
    while let Some(name) = queue.pop() {
        let class = paths.sysfs.join("class/block").join(&name);
        for holder in list_dir(&class.join("holders"))? {
            if out.contains(&holder) || out.len() > 256 {
                continue;
            }
            if let Some(dm) = read_attr(
                &paths
                    .sysfs
                    .join("class/block")
                    .join(&holder)
                    .join("dm/name"),
            )? {
                out.push(format!("mapper/{dm}"));
            }
            out.push(holder.clone());
            queue.push(holder);
        }
    }
    Ok(out)
}

/// SR-IOV: `sriov_totalvfs` and `sriov_numvfs`, `None` for a device without SR-IOV.
pub fn sriov_counts(paths: &HostPaths, pf: &Bdf) -> Result<Option<(u32, u32)>, VfioError> {
    let dir = paths.pci_device(pf);
    let total = read_decimal(&dir.join("sriov_totalvfs"))?;
    let num = read_decimal(&dir.join("sriov_numvfs"))?;
    Ok(total.zip(num))
}

/// The PCI address of VF `index` (the PF's `virtfn<index>` link), if it exists.
pub fn virtfn(paths: &HostPaths, pf: &Bdf, index: u32) -> Result<Option<Bdf>, VfioError> {
    let link = paths.pci_device(pf).join(format!("virtfn{index}"));
    let Some(name) = link_name(&link)? else {
        return Ok(None);
    };
    name.parse().map(Some).map_err(|_| VfioError::Malformed {
        path: link,
        expected: "a link to a PCI device",
        found: name,
    })
}
