//! What VFIO passthrough of lab adapters needs: an enabled IOMMU, the vfio-pci module, and
//! the Mellanox/NVIDIA devices themselves. On a machine without such hardware these rows are
//! informational; with Mellanox devices present, a missing piece is a warning.

use serde::Serialize;

use super::{Check, Host, Status};

/// PCI vendor id of Mellanox (NVIDIA networking).
const MELLANOX_VENDOR: &str = "0x15b3";
const PCI_DEVICES: &str = "/sys/bus/pci/devices";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PciDevice {
    /// Domain:bus:device.function, e.g. `0000:03:00.0`.
    pub address: String,
    /// PCI device id, e.g. `0x101d`.
    pub device: String,
    /// The bound driver (`mlx5_core`, `vfio-pci`), if any.
    pub driver: Option<String>,
}

/// How a missing VFIO need weighs: without lab hardware, VFIO gaps are facts, not problems.
pub(super) fn gap(devices: &[PciDevice]) -> Status {
    if devices.is_empty() {
        Status::Info
    } else {
        Status::Warn
    }
}

/// Adds the VFIO rows; returns the Mellanox devices found. What this process may do (root,
/// capabilities) is `caps`'s.
pub(super) fn checks(host: &Host, out: &mut Vec<Check>) -> Vec<PciDevice> {
    let devices = mellanox_devices(host);
    let gap = gap(&devices);
    out.push(iommu(host, gap));
    out.push(vfio_pci(host, gap));
    if devices.is_empty() {
        out.push(Check::new(
            "mellanox",
            Status::Info,
            format!("no PCI devices of vendor {MELLANOX_VENDOR}: VFIO scenarios need lab hardware"),
        ));
    }
    for dev in &devices {
        let driver = dev.driver.as_deref().unwrap_or("no driver bound");
        out.push(Check::new(
            format!("mellanox {}", dev.address),
            Status::Ok,
            format!("device {}, driver {driver}", dev.device),
        ));
    }
    devices
}

fn iommu(host: &Host, gap: Status) -> Check {
    let groups = host.list_dir("/sys/kernel/iommu_groups").len();
    if groups > 0 {
        Check::new("iommu", Status::Ok, format!("{groups} IOMMU groups"))
    } else {
        Check::new(
            "iommu",
            gap,
            "no IOMMU groups in /sys/kernel/iommu_groups: VFIO passthrough is off",
        )
        .fix("enable VT-d/AMD-Vi in the firmware setup and boot with intel_iommu=on iommu=pt")
    }
}

fn vfio_pci(host: &Host, gap: Status) -> Check {
    if host.file("/sys/module/vfio_pci").is_dir() {
        return Check::new("vfio-pci", Status::Ok, "module loaded");
    }
    let Some(release) = host.read_trimmed("/proc/sys/kernel/osrelease") else {
        return Check::new(
            "vfio-pci",
            gap,
            "kernel release unknown (no /proc/sys/kernel/osrelease)",
        );
    };
    let modules = format!("/lib/modules/{release}");
    let listed = |file: &str| {
        std::fs::read_to_string(host.file(&format!("{modules}/{file}")))
            .map(|text| text.lines().any(names_vfio_pci))
            .unwrap_or(false)
    };
    if listed("modules.builtin") {
        Check::new("vfio-pci", Status::Ok, format!("built into {release}"))
    } else if listed("modules.dep") {
        Check::new(
            "vfio-pci",
            Status::Ok,
            format!("available in {modules}, not loaded"),
        )
        .fix("modprobe vfio-pci")
    } else {
        Check::new(
            "vfio-pci",
            gap,
            format!("no vfio-pci module for kernel {release}"),
        )
        .fix("install a kernel with CONFIG_VFIO_PCI (Debian's linux-image-amd64 has it)")
    }
}

/// A `modules.dep`/`modules.builtin` line whose module path is vfio-pci (any compression).
fn names_vfio_pci(line: &str) -> bool {
    let path = line.split(':').next().unwrap_or("");
    let file = path.rsplit('/').next().unwrap_or("");
    file.strip_prefix("vfio-pci.ko")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

fn mellanox_devices(host: &Host) -> Vec<PciDevice> {
    host.list_dir(PCI_DEVICES)
        .into_iter()
        .filter(|address| {
            host.read_trimmed(&format!("{PCI_DEVICES}/{address}/vendor"))
                .is_some_and(|v| v.eq_ignore_ascii_case(MELLANOX_VENDOR))
        })
        .map(|address| {
            let dir = format!("{PCI_DEVICES}/{address}");
            PciDevice {
                device: host
                    .read_trimmed(&format!("{dir}/device"))
                    .unwrap_or_else(|| "unknown".to_owned()),
                driver: std::fs::read_link(host.file(&format!("{dir}/driver")))
                    .ok()
                    .and_then(|target| Some(target.file_name()?.to_string_lossy().into_owned())),
                address,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    fn run(fake: &FakeHost) -> (Vec<Check>, Vec<PciDevice>) {
        let mut out = Vec::new();
        let devices = checks(&fake.host, &mut out);
        (out, devices)
    }

    fn pci(fake: &FakeHost, address: &str, vendor: &str, device: &str, driver: Option<&str>) {
        let dir = format!("{PCI_DEVICES}/{address}");
        fake.file(&format!("{dir}/vendor"), format!("{vendor}\n").as_bytes());
        fake.file(&format!("{dir}/device"), format!("{device}\n").as_bytes());
        if let Some(driver) = driver {
            let target = fake.host.file(&format!("/sys/bus/pci/drivers/{driver}"));
            std::fs::create_dir_all(&target).unwrap();
            std::os::unix::fs::symlink(target, fake.host.file(&format!("{dir}/driver"))).unwrap();
        }
    }

    #[test]
    fn without_hardware_vfio_rows_are_informational() {
        let (out, devices) = run(&FakeHost::empty());
        assert!(devices.is_empty());
        assert_eq!(find(&out, "iommu").status, Status::Info);
        assert_eq!(find(&out, "vfio-pci").status, Status::Info);
        assert_eq!(find(&out, "mellanox").status, Status::Info);
        assert!(out.iter().all(|c| !c.required));
    }

    #[test]
    fn mellanox_devices_are_listed_and_gaps_become_warnings() {
        let fake = FakeHost::empty();
        pci(&fake, "0000:03:00.0", "0x15b3", "0x101d", Some("mlx5_core"));
        pci(&fake, "0000:03:00.1", "0x15b3", "0x101e", None);
        pci(&fake, "0000:00:02.0", "0x8086", "0x1234", Some("i915"));
        let (out, devices) = run(&fake);
        assert_eq!(
            devices,
            vec![
                PciDevice {
                    address: "0000:03:00.0".into(),
                    device: "0x101d".into(),
                    driver: Some("mlx5_core".into()),
                },
                PciDevice {
                    address: "0000:03:00.1".into(),
                    device: "0x101e".into(),
                    driver: None,
                },
            ]
        );
        assert_eq!(
            find(&out, "mellanox 0000:03:00.0").detail,
            "device 0x101d, driver mlx5_core"
        );
        assert_eq!(
            find(&out, "mellanox 0000:03:00.1").detail,
            "device 0x101e, driver no driver bound"
        );
        assert_eq!(find(&out, "iommu").status, Status::Warn);
        assert_eq!(find(&out, "vfio-pci").status, Status::Warn);
    }

    #[test]
    fn iommu_groups_and_vfio_pci_module_are_found() {
        let fake = FakeHost::empty();
        fake.file("/sys/kernel/iommu_groups/0/type", b"DMA\n");
        fake.file("/sys/kernel/iommu_groups/1/type", b"DMA\n");
        fake.file("/proc/sys/kernel/osrelease", b"6.1.0-56-amd64\n");
        fake.file(
            "/lib/modules/6.1.0-56-amd64/modules.dep",
            b"kernel/drivers/vfio/pci/vfio-pci-core.ko: kernel/drivers/vfio/vfio.ko\n\
              kernel/drivers/vfio/pci/vfio-pci.ko.xz: kernel/drivers/vfio/pci/vfio-pci-core.ko\n",
        );
        let (out, _) = run(&fake);
        assert_eq!(find(&out, "iommu").detail, "2 IOMMU groups");
        let vfio = find(&out, "vfio-pci");
        assert_eq!(vfio.status, Status::Ok);
        assert_eq!(vfio.fix.as_deref(), Some("modprobe vfio-pci"));
    }

    #[test]
    fn module_names_match_exactly() {
        assert!(names_vfio_pci("kernel/drivers/vfio/pci/vfio-pci.ko:"));
        assert!(names_vfio_pci(
            "kernel/drivers/vfio/pci/vfio-pci.ko.zst: a.ko"
        ));
        assert!(!names_vfio_pci("kernel/drivers/vfio/pci/vfio-pci-core.ko:"));
        assert!(!names_vfio_pci(""));
    }

    #[test]
    fn the_real_kernel_tree_from_setup_has_vfio_pci() {
        let env = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/images/cache/env"))
            .expect("run images/setup first");
        let release = env
            .lines()
            .find_map(|l| l.strip_prefix("BOOTRIG_KERNEL_RELEASE="))
            .expect("BOOTRIG_KERNEL_RELEASE in images/cache/env");
        let modules = env
            .lines()
            .find_map(|l| l.strip_prefix("BOOTRIG_MODULES="))
            .expect("BOOTRIG_MODULES in images/cache/env");
        let dep = std::fs::read_to_string(format!("{modules}/modules.dep")).unwrap();
        assert!(
            dep.lines().any(names_vfio_pci),
            "no vfio-pci in {release}'s modules.dep"
        );
    }
}
