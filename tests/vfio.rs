//! VFIO passthrough up to QEMU's start, against a fake sysfs tree (no adapter on this machine):
//! the preflight and its refusals, binding and restoring through the guard, the adapter lock,
//! SR-IOV, and `restore` after a real SIGKILL of a process holding a passthrough.
//!
//! The fake tree holds the files the real kernel has; [`FakeKernel`] performs every write with
//! the real [`SysfsKernel`] (so its file writes are what is tested) and then does what the
//! kernel would: moves the `driver` link, creates /dev/vfio/<group>, adds or removes VFs.

use std::cell::RefCell;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bootrig::vfio::record::{self, Record};
use bootrig::vfio::{
    preflight, restore_all, Bdf, CheckOptions, HostPaths, Kernel, Passthrough, Request, Scope,
    SriovRequest, Status, SysfsKernel, VfioError,
};

// ---------------------------------------------------------------------------------------------
// The fake host.

struct FakeHost {
    _dir: tempfile::TempDir,
    root: PathBuf,
    paths: HostPaths,
}

fn bdf(text: &str) -> Bdf {
    text.parse().unwrap()
}

impl FakeHost {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::at(dir.path().to_owned(), Some(dir))
    }

    fn at(root: PathBuf, dir: Option<tempfile::TempDir>) -> Self {
        let paths = HostPaths {
            sysfs: root.join("sys"),
            dev: root.join("dev"),
            proc: root.join("proc"),
        };
        let host = Self {
            // The parent of a crash test keeps the dir; the child only uses it.
            _dir: dir.unwrap_or_else(|| tempfile::tempdir().unwrap()),
            root,
            paths,
        };
        host.file("sys/bus/pci/drivers_probe", "");
        host.file(
            "proc/net/route",
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n",
        );
        host.file("proc/mounts", "proc /proc proc rw 0 0\n");
        host
    }

    fn file(&self, rel: &str, text: &str) {
        let path = self.root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// A driver directory with its bind/unbind attributes.
    fn driver(&self, name: &str) {
        self.file(&format!("sys/bus/pci/drivers/{name}/bind"), "");
        self.file(&format!("sys/bus/pci/drivers/{name}/unbind"), "");
    }

    /// The usual lab host: IOMMU on, vfio-pci loaded, /dev/vfio/vfio, the mlx drivers.
    fn lab() -> Self {
        let host = Self::new();
        host.driver("mlx5_core");
        host.driver("mlx4_core");
        host.driver("vfio-pci");
        host.driver("nvme");
        host.file("dev/vfio/vfio", "");
        // An unrelated group so the IOMMU counts as on even before a device is added.
        std::fs::create_dir_all(host.paths.iommu_groups().join("0/devices")).unwrap();
        host
    }

    fn pci(&self, addr: &str, id: &str, class: &str, driver: Option<&str>, group: Option<u32>) {
        let dev = self.paths.pci_device(&bdf(addr));
        let (vendor, device) = id.split_once(':').unwrap();
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::write(dev.join("vendor"), format!("0x{vendor}\n")).unwrap();
        std::fs::write(dev.join("device"), format!("0x{device}\n")).unwrap();
        std::fs::write(dev.join("class"), format!("0x{class}\n")).unwrap();
        std::fs::write(dev.join("driver_override"), "(null)\n").unwrap();
        if let Some(driver) = driver {
            symlink(self.paths.pci_driver(driver), dev.join("driver")).unwrap();
        }
        if let Some(group) = group {
            let gdir = self.paths.iommu_groups().join(group.to_string());
            std::fs::create_dir_all(gdir.join("devices")).unwrap();
            symlink(&gdir, dev.join("iommu_group")).unwrap();
            symlink(&dev, gdir.join("devices").join(addr)).unwrap();
        }
    }

    /// A dual-port ConnectX-6 Dx: both functions in IOMMU group 12.
    fn cx6dx(&self) {
        self.pci(
            "0000:03:00.0",
            "15b3:101d",
            "020000",
            Some("mlx5_core"),
            Some(12),
        );
        self.pci(
            "0000:03:00.1",
            "15b3:101d",
            "020000",
            Some("mlx5_core"),
            Some(12),
        );
    }

    fn netdev(&self, addr: &str, iface: &str) {
        std::fs::create_dir_all(self.paths.pci_device(&bdf(addr)).join("net").join(iface)).unwrap();
    }

    fn default_route(&self, iface: &str) {
        let mut text = std::fs::read_to_string(self.paths.proc.join("net/route")).unwrap();
        text.push_str(&format!(
            "{iface}\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
        ));
        std::fs::write(self.paths.proc.join("net/route"), text).unwrap();
    }

    /// The card's ROM: `rom` reads as this only after "1" is written (the fake kernel copies
    /// `rom.image` in).
    fn card_rom(&self, addr: &str, image: &[u8]) {
        let dev = self.paths.pci_device(&bdf(addr));
        std::fs::write(dev.join("rom"), b"").unwrap();
        std::fs::write(dev.join("rom.image"), image).unwrap();
    }

    fn driver_of(&self, addr: &str) -> Option<String> {
        std::fs::read_link(self.paths.pci_device(&bdf(addr)).join("driver"))
            .ok()
            .map(|t| t.file_name().unwrap().to_string_lossy().into_owned())
    }

    fn override_of(&self, addr: &str) -> String {
        std::fs::read_to_string(self.paths.pci_device(&bdf(addr)).join("driver_override")).unwrap()
    }

    fn state(&self) -> PathBuf {
        self.root.join("state")
    }
}

/// A FlexBoot-like ROM: one x86 image of 2 × 512 bytes with a PCIR for `15b3:<device>`.
fn rom_image(device: u16) -> Vec<u8> {
    let mut v = vec![0u8; 1024];
    v[..3].copy_from_slice(&[0x55, 0xaa, 2]);
    v[0x18..0x1a].copy_from_slice(&0x1cu16.to_le_bytes());
    v[0x1c..0x20].copy_from_slice(b"PCIR");
    v[0x20..0x22].copy_from_slice(&0x15b3u16.to_le_bytes());
    v[0x22..0x24].copy_from_slice(&device.to_le_bytes());
    v[0x2c..0x2e].copy_from_slice(&2u16.to_le_bytes());
    v[0x31] = 0x80;
    v
}

/// Real writes, then the kernel's effect on the fake tree; every call logged.
struct FakeKernel {
    real: SysfsKernel,
    paths: HostPaths,
    log: RefCell<Vec<String>>,
    /// When set, every change asserts that this record file already exists.
    record_first: Option<PathBuf>,
}

impl FakeKernel {
    fn new(host: &FakeHost) -> Self {
        Self {
            real: SysfsKernel::new(host.paths.clone()),
            paths: host.paths.clone(),
            log: RefCell::new(Vec::new()),
            record_first: Some(host.state()),
        }
    }

    fn note(&self, entry: String) {
        if let Some(state) = &self.record_first {
            if !entry.starts_with("rom") {
                let records = record::list(state).unwrap();
                assert!(!records.is_empty(), "{entry} before any record was written");
            }
        }
        self.log.borrow_mut().push(entry);
    }

    fn link_driver(&self, dev: &Bdf, driver: &str) {
        let link = self.paths.pci_device(dev).join("driver");
        let _ = std::fs::remove_file(&link);
        symlink(self.paths.pci_driver(driver), &link).unwrap();
        if driver == "vfio-pci" {
            // vfio-pci creates the group's character device.
            if let Some(group) = bootrig::vfio::sysfs::iommu_group(&self.paths, dev).unwrap() {
                let node = self.paths.vfio_group(group);
                std::fs::write(node, "").unwrap();
            }
        }
    }

    fn log(&self) -> Vec<String> {
        self.log.borrow().clone()
    }
}

impl Kernel for FakeKernel {
    fn paths(&self) -> &HostPaths {
        &self.paths
    }

    fn set_driver_override(&self, dev: &Bdf, driver: Option<&str>) -> Result<(), VfioError> {
        self.real.set_driver_override(dev, driver)?;
        let file = self.paths.pci_device(dev).join("driver_override");
        // What the kernel prints back.
        std::fs::write(file, format!("{}\n", driver.unwrap_or("(null)"))).unwrap();
        self.note(format!("override {dev} {}", driver.unwrap_or("-")));
        Ok(())
    }

    fn unbind(&self, dev: &Bdf, driver: &str) -> Result<(), VfioError> {
        self.real.unbind(dev, driver)?;
        let unbind = self.paths.pci_driver(driver).join("unbind");
        assert_eq!(std::fs::read_to_string(unbind).unwrap(), dev.to_string());
        std::fs::remove_file(self.paths.pci_device(dev).join("driver")).unwrap();
        self.note(format!("unbind {dev} {driver}"));
        Ok(())
    }

    fn bind(&self, dev: &Bdf, driver: &str) -> Result<(), VfioError> {
        self.real.bind(dev, driver)?;
        self.link_driver(dev, driver);
        self.note(format!("bind {dev} {driver}"));
        Ok(())
    }

    fn probe(&self, dev: &Bdf) -> Result<(), VfioError> {
        self.real.probe(dev)?;
        let probe = self.paths.sysfs.join("bus/pci/drivers_probe");
        assert_eq!(std::fs::read_to_string(probe).unwrap(), dev.to_string());
        let over = bootrig::vfio::sysfs::driver_override(&self.paths, dev).unwrap();
        if let Some(driver) = over {
            if self.paths.pci_driver(&driver).is_dir() {
                self.link_driver(dev, &driver);
            }
        }
        self.note(format!("probe {dev}"));
        Ok(())
    }

    fn set_sriov_numvfs(&self, pf: &Bdf, count: u32) -> Result<(), VfioError> {
        let dir = self.paths.pci_device(pf);
        let current: u32 = std::fs::read_to_string(dir.join("sriov_numvfs"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        if current != 0 && count != 0 {
            // The kernel's answer to changing a non-zero count directly.
            return Err(VfioError::Write {
                path: dir.join("sriov_numvfs"),
                value: count.to_string(),
                source: std::io::Error::from_raw_os_error(16),
            });
        }
        self.real.set_sriov_numvfs(pf, count)?;
        for i in 0..current.max(count) {
            let vf = Bdf {
                function: pf.function + 2 + i as u8,
                ..*pf
            };
            let vdir = self.paths.pci_device(&vf);
            let group = 100 + i;
            let gdir = self.paths.iommu_groups().join(group.to_string());
            let link = dir.join(format!("virtfn{i}"));
            if i < count {
                std::fs::create_dir_all(&vdir).unwrap();
                std::fs::write(vdir.join("vendor"), "0x15b3\n").unwrap();
                std::fs::write(vdir.join("device"), "0x101e\n").unwrap();
                std::fs::write(vdir.join("class"), "0x020000\n").unwrap();
                std::fs::write(vdir.join("driver_override"), "(null)\n").unwrap();
                std::fs::create_dir_all(gdir.join("devices")).unwrap();
                symlink(&gdir, vdir.join("iommu_group")).unwrap();
                symlink(&vdir, gdir.join("devices").join(vf.to_string())).unwrap();
                symlink(&vdir, &link).unwrap();
                // sriov_drivers_autoprobe: the PF's driver takes the new VF.
                symlink(self.paths.pci_driver("mlx5_core"), vdir.join("driver")).unwrap();
            } else {
                std::fs::remove_dir_all(&vdir).unwrap();
                std::fs::remove_dir_all(&gdir).unwrap();
                std::fs::remove_file(&link).unwrap();
                let _ = std::fs::remove_file(self.paths.vfio_group(group));
            }
        }
        self.note(format!("numvfs {pf} {count}"));
        Ok(())
    }

    fn set_rom_enabled(&self, dev: &Bdf, enabled: bool) -> Result<(), VfioError> {
        self.real.set_rom_enabled(dev, enabled)?;
        let dir = self.paths.pci_device(dev);
        assert_eq!(
            std::fs::read_to_string(dir.join("rom")).unwrap(),
            if enabled { "1" } else { "0" }
        );
        if enabled {
            std::fs::copy(dir.join("rom.image"), dir.join("rom")).unwrap();
        }
        self.note(format!("rom {dev} {}", u8::from(enabled)));
        Ok(())
    }
}

fn request(host: &FakeHost, device: &str, scenario: &str) -> Request {
    let mut req = Request::new(bdf(device), scenario);
    req.state_dir = host.state();
    req.settle = Duration::from_millis(500);
    req.lock_wait = Duration::ZERO;
    req
}

fn check(host: &FakeHost, device: &str, opts: &CheckOptions) -> bootrig::vfio::Preflight {
    let kernel = FakeKernel {
        record_first: None,
        ..FakeKernel::new(host)
    };
    preflight(&kernel, &bdf(device), opts)
}

fn find<'a>(report: &'a bootrig::vfio::Preflight, name: &str) -> &'a bootrig::vfio::CheckRow {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} row in\n{}", report.table()))
}

fn card_rom_opts() -> CheckOptions {
    CheckOptions {
        read_card_rom: true,
        ..CheckOptions::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Preflight.

#[test]
fn a_known_adapter_passes_every_check() {
    let host = FakeHost::lab();
    host.cx6dx();
    host.pci(
        "0000:00:1f.6",
        "8086:15bb",
        "020000",
        Some("e1000e"),
        Some(5),
    );
    host.netdev("0000:00:1f.6", "eno1");
    host.default_route("eno1");
    host.card_rom("0000:03:00.0", &rom_image(0x101d));
    let kernel = FakeKernel {
        record_first: None,
        ..FakeKernel::new(&host)
    };
    let report = preflight(&kernel, &bdf("0000:03:00.0"), &card_rom_opts());
    assert!(report.ok(), "{}", report.table());
    assert_eq!(
        find(&report, "adapter").detail,
        "ConnectX-6 Dx PF (15b3:101d), host driver mlx5_core, bound to mlx5_core"
    );
    assert_eq!(
        find(&report, "group").detail,
        "IOMMU group 12: 0000:03:00.0 (mlx5_core), 0000:03:00.1 (mlx5_core)"
    );
    assert_eq!(report.group, Some(12));
    assert_eq!(find(&report, "memlock").status, Status::Info);
    assert_eq!(
        find(&report, "rom").detail,
        "ROM of the card: 1 KiB, 1 image: x86 BIOS (15b3:101d)"
    );
    // The ROM was enabled for the read and hidden again.
    assert_eq!(
        kernel.log(),
        vec!["rom 0000:03:00.0 1", "rom 0000:03:00.0 0"]
    );
    assert!(report.table().ends_with("ready for passthrough\n"));
}

#[test]
fn an_unknown_device_id_or_vendor_is_refused() {
    let host = FakeHost::lab();
    // Connect-IB is mlx5 but not in bootrig's table.
    host.pci(
        "0000:05:00.0",
        "15b3:1011",
        "020700",
        Some("mlx5_core"),
        Some(3),
    );
    host.pci("0000:06:00.0", "8086:1572", "020000", Some("i40e"), Some(4));
    let report = check(&host, "0000:05:00.0", &CheckOptions::default());
    let row = find(&report, "adapter");
    assert_eq!(row.status, Status::Fail);
    assert!(
        row.detail
            .starts_with("device id 15b3:1011 is not one bootrig knows (ConnectX-3;"),
        "{}",
        row.detail
    );
    assert!(row.fix.as_deref().unwrap().contains("src/vfio/ids.rs"));
    let report = check(&host, "0000:06:00.0", &CheckOptions::default());
    assert!(find(&report, "adapter")
        .detail
        .contains("8086:1572, not a Mellanox"));
    assert!(!report.ok());
    let report = check(&host, "0000:07:00.0", &CheckOptions::default());
    assert_eq!(find(&report, "device").status, Status::Fail);
    let err = report.into_result().unwrap_err().to_string();
    assert!(err.contains("lspci -D -d 15b3:"), "{err}");
}

/// An emulated e1000e standing in for a ConnectX (the nested lab's): its own Intel iPXE ROM.
fn stand_in_host() -> FakeHost {
    let host = FakeHost::lab();
    host.driver("e1000e");
    host.pci(
        "0000:00:03.0",
        "8086:10d3",
        "020000",
        Some("e1000e"),
        Some(2),
    );
    let mut rom = rom_image(0x10d3);
    rom[0x20..0x22].copy_from_slice(&0x8086u16.to_le_bytes());
    host.card_rom("0000:00:03.0", &rom);
    host
}

#[test]
fn a_stand_in_of_any_vendor_skips_only_the_device_table() {
    let host = stand_in_host();
    let plain = check(&host, "0000:00:03.0", &card_rom_opts());
    assert!(find(&plain, "adapter")
        .detail
        .contains("8086:10d3, not a Mellanox"));
    assert!(!plain.ok(), "stand-in is never the default");
    assert_eq!(plain.stand_in, None);

    let opts = CheckOptions {
        stand_in: true,
        ..card_rom_opts()
    };
    let report = check(&host, "0000:00:03.0", &opts);
    let adapter = find(&report, "adapter");
    assert_eq!(adapter.status, Status::Ok);
    assert!(
        adapter
            .detail
            .starts_with("stand-in 8086:10d3 (not a ConnectX")
            && adapter.detail.ends_with("bound to e1000e"),
        "{}",
        adapter.detail
    );
    assert_eq!(report.stand_in.as_deref(), Some("8086:10d3"));
    // The ROM is read (the run boots through it) and the vendor's own ROM is fine.
    let rom = find(&report, "rom");
    assert_eq!(rom.status, Status::Ok, "{}", rom.detail);
    assert!(rom.detail.contains("(8086:10d3)"), "{}", rom.detail);
    for name in ["iommu", "vfio-pci", "group", "/dev/vfio"] {
        assert_eq!(find(&report, name).status, Status::Ok, "{name}");
    }
    assert!(report.ok(), "{}", report.table());

    // Every other check stays: a group member carrying the host's route still refuses it.
    host.pci(
        "0000:00:03.1",
        "8086:10d3",
        "020000",
        Some("e1000e"),
        Some(2),
    );
    host.netdev("0000:00:03.1", "eth1");
    host.default_route("eth1");
    let report = check(&host, "0000:00:03.0", &opts);
    let group = find(&report, "group");
    assert_eq!(group.status, Status::Fail);
    assert!(
        group
            .detail
            .contains("0000:00:03.1 carries the host's default route (interface eth1)"),
        "{}",
        group.detail
    );
}

#[test]
fn a_stand_in_is_bound_and_put_back_like_an_adapter() {
    let host = stand_in_host();
    let mut req = request(&host, "0000:00:03.0", "nested-lab");
    let err = Passthrough::prepare(FakeKernel::new(&host), &req)
        .err()
        .expect("a non-ConnectX without stand_in is refused");
    assert!(err.to_string().contains("not a Mellanox"), "{err}");
    assert_eq!(host.driver_of("0000:00:03.0").as_deref(), Some("e1000e"));

    req.stand_in = true;
    let pass = Passthrough::prepare(FakeKernel::new(&host), &req).unwrap();
    assert_eq!(pass.preflight().stand_in.as_deref(), Some("8086:10d3"));
    assert_eq!(host.driver_of("0000:00:03.0").as_deref(), Some("vfio-pci"));
    pass.restore().unwrap();
    assert_eq!(host.driver_of("0000:00:03.0").as_deref(), Some("e1000e"));
}

#[test]
fn no_iommu_is_refused_with_the_kernel_parameters_to_set() {
    let host = FakeHost::new();
    host.driver("mlx4_core");
    host.driver("vfio-pci");
    host.file("dev/vfio/vfio", "");
    host.pci(
        "0000:03:00.0",
        "15b3:1007",
        "020000",
        Some("mlx4_core"),
        None,
    );
    let report = check(&host, "0000:03:00.0", &CheckOptions::default());
    let row = find(&report, "iommu");
    assert_eq!(row.status, Status::Fail);
    assert!(row.detail.contains("no IOMMU groups"), "{}", row.detail);
    assert!(row.fix.as_deref().unwrap().contains("intel_iommu=on"));
    assert!(find(&report, "adapter")
        .detail
        .starts_with("ConnectX-3 Pro PF"));
}

#[test]
fn a_group_member_with_the_default_route_is_refused_by_name() {
    let host = FakeHost::lab();
    host.cx6dx();
    host.netdev("0000:03:00.0", "enp3s0f0np0");
    host.netdev("0000:03:00.1", "enp3s0f1np1");
    host.default_route("enp3s0f1np1");
    let report = check(&host, "0000:03:00.0", &CheckOptions::default());
    let row = find(&report, "group");
    assert_eq!(row.status, Status::Fail, "{}", report.table());
    assert_eq!(
        row.detail,
        "IOMMU group 12 holds what the host depends on: 0000:03:00.1 carries the host's \
         default route (interface enp3s0f1np1)"
    );
    assert!(row
        .fix
        .as_deref()
        .unwrap()
        .contains("IOMMU group of its own"));
    // Nothing happens: prepare refuses before any change.
    let err = Passthrough::prepare(FakeKernel::new(&host), &request(&host, "0000:03:00.0", "t"))
        .err()
        .unwrap();
    assert!(matches!(err, VfioError::Preflight { .. }), "{err}");
    assert_eq!(host.driver_of("0000:03:00.1").as_deref(), Some("mlx5_core"));
    assert!(record::list(&host.state()).unwrap().is_empty());
}

#[test]
fn a_mounted_disk_controller_in_the_group_is_refused() {
    let host = FakeHost::lab();
    host.cx6dx();
    host.pci(
        "0000:02:00.0",
        "144d:a808",
        "010802",
        Some("nvme"),
        Some(12),
    );
    // nvme/nvme0/nvme0n1/nvme0n1p2, each block dir with its subsystem link.
    let class_block = host.paths.sysfs.join("class/block");
    std::fs::create_dir_all(&class_block).unwrap();
    let disk = host
        .paths
        .pci_device(&bdf("0000:02:00.0"))
        .join("nvme/nvme0/nvme0n1");
    let part = disk.join("nvme0n1p2");
    std::fs::create_dir_all(&part).unwrap();
    symlink(&class_block, disk.join("subsystem")).unwrap();
    symlink(&class_block, part.join("subsystem")).unwrap();
    host.file(
        "proc/mounts",
        "/dev/nvme0n1p2 / ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n",
    );
    let report = check(&host, "0000:03:00.0", &CheckOptions::default());
    let row = find(&report, "group");
    assert_eq!(row.status, Status::Fail);
    assert!(
        row.detail
            .ends_with("0000:02:00.0 is the controller of /dev/nvme0n1p2 mounted on /"),
        "{}",
        row.detail
    );
}

#[test]
fn missing_vfio_pci_and_dev_vfio_say_modprobe() {
    let host = FakeHost::new();
    host.driver("mlx5_core");
    std::fs::create_dir_all(host.paths.iommu_groups().join("0/devices")).unwrap();
    host.cx6dx();
    let report = check(&host, "0000:03:00.0", &CheckOptions::default());
    assert_eq!(
        find(&report, "vfio-pci").fix.as_deref(),
        Some("modprobe vfio-pci")
    );
    assert_eq!(find(&report, "/dev/vfio").status, Status::Fail);
    assert!(find(&report, "/dev/vfio")
        .fix
        .as_deref()
        .unwrap()
        .starts_with("modprobe vfio-pci"));
}

#[test]
fn rom_files_and_card_roms_are_checked() {
    let host = FakeHost::lab();
    host.cx6dx();
    let good = host.root.join("flexboot.rom");
    std::fs::write(&good, rom_image(0x1017)).unwrap();
    let opts = CheckOptions {
        romfile: Some(good.clone()),
        ..CheckOptions::default()
    };
    let row = find(&check(&host, "0000:03:00.0", &opts), "rom").clone();
    assert_eq!(row.status, Status::Ok);
    assert!(
        row.detail
            .contains("flexboot.rom: 1 KiB, 1 image: x86 BIOS (15b3:1017)"),
        "{}",
        row.detail
    );

    let bad = host.root.join("not-a-rom.bin");
    std::fs::write(&bad, b"MZ\x90\x00").unwrap();
    let opts = CheckOptions {
        romfile: Some(bad),
        ..CheckOptions::default()
    };
    let row = find(&check(&host, "0000:03:00.0", &opts), "rom").clone();
    assert_eq!(row.status, Status::Fail);
    assert!(
        row.detail
            .contains("no 0x55AA option ROM signature at byte 0"),
        "{}",
        row.detail
    );

    // A card whose flash holds no ROM reads as 0xff.
    host.card_rom("0000:03:00.0", &[0xff; 512]);
    let row = find(&check(&host, "0000:03:00.0", &card_rom_opts()), "rom").clone();
    assert_eq!(row.status, Status::Fail);
    assert!(row.fix.as_deref().unwrap().contains("mlxconfig"));
    // No rom attribute at all.
    let row = find(&check(&host, "0000:03:00.1", &card_rom_opts()), "rom").clone();
    assert!(
        row.detail.contains("exposes no option ROM"),
        "{}",
        row.detail
    );
}

// ---------------------------------------------------------------------------------------------
// Binding and restoring.

#[test]
fn the_guard_binds_the_group_and_its_drop_puts_it_back() {
    let host = FakeHost::lab();
    host.cx6dx();
    host.card_rom("0000:03:00.0", &rom_image(0x101d));
    let mut req = request(&host, "0000:03:00.0", "lab-cx6dx-flexboot");
    req.read_card_rom = true;
    let pass = Passthrough::prepare(FakeKernel::new(&host), &req).unwrap();
    assert_eq!(pass.device(), bdf("0000:03:00.0"));
    assert_eq!(pass.group(), 12);
    for f in ["0000:03:00.0", "0000:03:00.1"] {
        assert_eq!(host.driver_of(f).as_deref(), Some("vfio-pci"));
        assert_eq!(host.override_of(f), "vfio-pci\n");
    }
    assert!(host.paths.vfio_group(12).exists());
    let rec = record::load(&pass.record_path()).unwrap();
    assert_eq!(rec.scenario, "lab-cx6dx-flexboot");
    assert_eq!(rec.pid, std::process::id());
    assert_eq!(rec.members.len(), 2);
    assert!(rec
        .members
        .iter()
        .all(|m| m.driver.as_deref() == Some("mlx5_core") && m.driver_override.is_none()));
    assert_eq!(
        pass.qemu_device(bootrig::qemu::machine::VfioRom::Device, Some(1))
            .host,
        bdf("0000:03:00.0")
    );
    let record_path = pass.record_path();
    drop(pass);
    for f in ["0000:03:00.0", "0000:03:00.1"] {
        assert_eq!(host.driver_of(f).as_deref(), Some("mlx5_core"));
        assert_eq!(host.override_of(f), "(null)\n");
    }
    assert!(!record_path.exists());
    // The lock went with it.
    let pass = Passthrough::prepare(FakeKernel::new(&host), &req).unwrap();
    pass.restore().unwrap();
    assert_eq!(host.driver_of("0000:03:00.0").as_deref(), Some("mlx5_core"));
}

#[test]
fn bind_and_restore_write_sysfs_in_order() {
    let host = FakeHost::lab();
    host.pci(
        "0000:04:00.0",
        "15b3:1003",
        "020000",
        Some("mlx4_core"),
        Some(7),
    );
    let kernel = FakeKernel::new(&host);
    let log = std::rc::Rc::new(RefCell::new(Vec::new()));
    struct Shared(FakeKernel, std::rc::Rc<RefCell<Vec<String>>>);
    impl Kernel for Shared {
        fn paths(&self) -> &HostPaths {
            self.0.paths()
        }
        fn set_driver_override(&self, d: &Bdf, v: Option<&str>) -> Result<(), VfioError> {
            let r = self.0.set_driver_override(d, v);
            *self.1.borrow_mut() = self.0.log();
            r
        }
        fn unbind(&self, d: &Bdf, v: &str) -> Result<(), VfioError> {
            let r = self.0.unbind(d, v);
            *self.1.borrow_mut() = self.0.log();
            r
        }
        fn bind(&self, d: &Bdf, v: &str) -> Result<(), VfioError> {
            let r = self.0.bind(d, v);
            *self.1.borrow_mut() = self.0.log();
            r
        }
        fn probe(&self, d: &Bdf) -> Result<(), VfioError> {
            let r = self.0.probe(d);
            *self.1.borrow_mut() = self.0.log();
            r
        }
        fn set_sriov_numvfs(&self, d: &Bdf, n: u32) -> Result<(), VfioError> {
            self.0.set_sriov_numvfs(d, n)
        }
        fn set_rom_enabled(&self, d: &Bdf, e: bool) -> Result<(), VfioError> {
            self.0.set_rom_enabled(d, e)
        }
    }
    let req = request(&host, "0000:04:00.0", "cx3");
    let mut req = req;
    req.read_card_rom = false;
    let pass = Passthrough::prepare(Shared(kernel, log.clone()), &req).unwrap();
    pass.restore().unwrap();
    assert_eq!(
        *log.borrow(),
        vec![
            "override 0000:04:00.0 vfio-pci",
            "unbind 0000:04:00.0 mlx4_core",
            "probe 0000:04:00.0",
            "override 0000:04:00.0 -",
            "unbind 0000:04:00.0 vfio-pci",
            "bind 0000:04:00.0 mlx4_core",
        ]
    );
    assert_eq!(host.driver_of("0000:04:00.0").as_deref(), Some("mlx4_core"));
}

#[test]
fn a_failure_half_way_undoes_what_was_done() {
    let host = FakeHost::lab();
    host.cx6dx();
    // The second function's driver cannot unbind (its unbind attribute is missing).
    host.driver("mlx5_other");
    std::fs::remove_file(host.paths.pci_driver("mlx5_other").join("unbind")).unwrap();
    let link = host.paths.pci_device(&bdf("0000:03:00.1")).join("driver");
    std::fs::remove_file(&link).unwrap();
    symlink(host.paths.pci_driver("mlx5_other"), &link).unwrap();
    let mut req = request(&host, "0000:03:00.0", "t");
    req.read_card_rom = false;
    let err = Passthrough::prepare(FakeKernel::new(&host), &req)
        .err()
        .unwrap();
    assert!(err.to_string().contains("mlx5_other/unbind"), "{err}");
    assert_eq!(host.driver_of("0000:03:00.0").as_deref(), Some("mlx5_core"));
    assert_eq!(host.override_of("0000:03:00.0"), "(null)\n");
    // The second function got as far as its override; that is undone too.
    assert_eq!(host.override_of("0000:03:00.1"), "(null)\n");
    assert!(record::list(&host.state()).unwrap().is_empty());
}

#[test]
fn a_second_run_waits_for_the_adapter_then_names_the_holder() {
    let host = FakeHost::lab();
    host.cx6dx();
    let mut req = request(&host, "0000:03:00.0", "first-scenario");
    req.read_card_rom = false;
    let first = Passthrough::prepare(FakeKernel::new(&host), &req).unwrap();
    let mut second = req.clone();
    second.scenario = "second-scenario".into();
    second.lock_wait = Duration::from_millis(400);
    let start = Instant::now();
    let err = Passthrough::prepare(FakeKernel::new(&host), &second)
        .err()
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(400));
    let VfioError::Locked { holder, .. } = &err else {
        panic!("{err}");
    };
    let holder = holder.as_ref().unwrap();
    assert_eq!(
        (holder.pid, holder.scenario.as_str()),
        (std::process::id(), "first-scenario")
    );
    assert!(err.to_string().contains("\"first-scenario\""), "{err}");
    // The waiting run changed nothing.
    assert_eq!(host.driver_of("0000:03:00.1").as_deref(), Some("vfio-pci"));
    drop(first);
    let second = Passthrough::prepare(FakeKernel::new(&host), &second).unwrap();
    second.restore().unwrap();
}

#[test]
fn sriov_passes_a_vf_and_puts_the_count_back() {
    let host = FakeHost::lab();
    host.cx6dx();
    let pf = host.paths.pci_device(&bdf("0000:03:00.0"));
    std::fs::write(pf.join("sriov_totalvfs"), "8\n").unwrap();
    std::fs::write(pf.join("sriov_numvfs"), "0\n").unwrap();
    // One VF exists already (set up before the run: no record involved).
    SysfsKernelThatMoves::new(&host)
        .set_sriov_numvfs(&bdf("0000:03:00.0"), 1)
        .unwrap();
    let kernel = FakeKernel::new(&host);
    // The PF is the host's own port: fine, it stays on the host.
    host.netdev("0000:03:00.0", "enp3s0f0np0");
    host.default_route("enp3s0f0np0");
    let mut req = request(&host, "0000:03:00.0", "sriov");
    req.sriov = Some(SriovRequest { numvfs: 4, vf: 2 });
    let pass = Passthrough::prepare(kernel, &req).unwrap();
    // VF n is the PF's virtfn<n>: 0000:03:00.4 here.
    assert_eq!(pass.device(), bdf("0000:03:00.4"));
    assert_eq!(pass.group(), 102);
    assert_eq!(host.driver_of("0000:03:00.4").as_deref(), Some("vfio-pci"));
    assert_eq!(host.driver_of("0000:03:00.0").as_deref(), Some("mlx5_core"));
    let rec = record::load(&pass.record_path()).unwrap();
    assert_eq!(rec.sriov.as_ref().map(|s| s.numvfs), Some(1));
    assert_eq!(rec.members.len(), 1);
    drop(pass);
    assert_eq!(
        std::fs::read_to_string(pf.join("sriov_numvfs")).unwrap(),
        "1"
    );
    assert!(pf.join("virtfn0").exists() && !pf.join("virtfn1").exists());

    let mut too_many = req.clone();
    too_many.sriov = Some(SriovRequest { numvfs: 9, vf: 0 });
    let err = Passthrough::prepare(FakeKernel::new(&host), &too_many)
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("sriov_totalvfs allows 1 to 8"),
        "{err}"
    );
    let report = check(
        &host,
        "0000:03:00.0",
        &CheckOptions {
            scope: Scope::SriovPf,
            ..CheckOptions::default()
        },
    );
    assert!(report.ok(), "{}", report.table());
    assert_eq!(find(&report, "sr-iov").detail, "1 of at most 8 VFs enabled");
}

// ---------------------------------------------------------------------------------------------
// A hard kill, then `restore`.

const CRASH_ROOT: &str = "BOOTRIG_VFIO_CRASH_ROOT";

/// Run by `restore_replays_the_record_a_killed_run_left`: binds, then dies by SIGKILL.
#[test]
#[ignore = "child process of restore_replays_the_record_a_killed_run_left"]
fn child_binds_then_is_killed() {
    let root = PathBuf::from(std::env::var(CRASH_ROOT).expect("run by its parent test"));
    let host = FakeHost::at(root, None);
    let mut req = request(&host, "0000:03:00.0", "crashing-run");
    req.read_card_rom = false;
    let pass = Passthrough::prepare(FakeKernel::new(&host), &req).unwrap();
    assert!(pass.record_path().exists());
    nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL).unwrap();
    unreachable!("SIGKILL");
}

fn run_child(test: &str, envs: &[(&str, &Path)], shell_prefix: &str) -> std::process::Output {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "{shell_prefix} exec \"$0\" --exact {test} --ignored --nocapture --test-threads 1"
        ))
        .arg(exe);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn restore_replays_the_record_a_killed_run_left() {
    let host = FakeHost::lab();
    host.cx6dx();
    let out = run_child(
        "child_binds_then_is_killed",
        &[(CRASH_ROOT, &host.root)],
        "",
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(9),
        "child: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The killed run left the devices on vfio-pci and its record on disk.
    assert_eq!(host.driver_of("0000:03:00.0").as_deref(), Some("vfio-pci"));
    let records = record::list(&host.state()).unwrap();
    assert_eq!(records.len(), 1);
    let left: Record = record::load(&records[0]).unwrap();
    assert_eq!(left.scenario, "crashing-run");
    assert_ne!(left.pid, std::process::id());

    let kernel = SysfsKernelThatMoves::new(&host);
    let outcomes = restore_all(&kernel, &host.state(), Duration::from_millis(500)).unwrap();
    assert_eq!(outcomes.len(), 1);
    assert!(outcomes[0].result.is_ok(), "{:?}", outcomes[0].result);
    assert_eq!(outcomes[0].device, Some(bdf("0000:03:00.0")));
    for f in ["0000:03:00.0", "0000:03:00.1"] {
        assert_eq!(host.driver_of(f).as_deref(), Some("mlx5_core"));
        assert_eq!(host.override_of(f), "(null)\n");
    }
    assert!(record::list(&host.state()).unwrap().is_empty());
    // Idempotent: nothing left, nothing done; replaying the old record changes nothing either.
    assert!(
        restore_all(&kernel, &host.state(), Duration::from_millis(500))
            .unwrap()
            .is_empty()
    );
    let before = kernel.0.log().len();
    bootrig::vfio::passthrough::restore_record(
        &kernel,
        &left,
        &records[0],
        Duration::from_millis(500),
    )
    .unwrap();
    assert_eq!(kernel.0.log().len(), before, "{:?}", kernel.0.log());
}

/// The fake kernel without the record-first assertion (restore runs after the record exists).
struct SysfsKernelThatMoves(FakeKernel);

impl SysfsKernelThatMoves {
    fn new(host: &FakeHost) -> Self {
        Self(FakeKernel {
            record_first: None,
            ..FakeKernel::new(host)
        })
    }
}

impl Kernel for SysfsKernelThatMoves {
    fn paths(&self) -> &HostPaths {
        self.0.paths()
    }
    fn set_driver_override(&self, d: &Bdf, v: Option<&str>) -> Result<(), VfioError> {
        self.0.set_driver_override(d, v)
    }
    fn unbind(&self, d: &Bdf, v: &str) -> Result<(), VfioError> {
        self.0.unbind(d, v)
    }
    fn bind(&self, d: &Bdf, v: &str) -> Result<(), VfioError> {
        self.0.bind(d, v)
    }
    fn probe(&self, d: &Bdf) -> Result<(), VfioError> {
        self.0.probe(d)
    }
    fn set_sriov_numvfs(&self, d: &Bdf, n: u32) -> Result<(), VfioError> {
        self.0.set_sriov_numvfs(d, n)
    }
    fn set_rom_enabled(&self, d: &Bdf, e: bool) -> Result<(), VfioError> {
        self.0.set_rom_enabled(d, e)
    }
}

#[test]
fn restore_leaves_a_live_runs_adapter_alone() {
    let host = FakeHost::lab();
    host.cx6dx();
    let mut req = request(&host, "0000:03:00.0", "live-run");
    req.read_card_rom = false;
    let pass = Passthrough::prepare(FakeKernel::new(&host), &req).unwrap();
    let kernel = SysfsKernelThatMoves::new(&host);
    let outcomes = restore_all(&kernel, &host.state(), Duration::from_millis(500)).unwrap();
    assert_eq!(outcomes.len(), 1);
    let err = outcomes[0].result.as_ref().unwrap_err();
    assert!(matches!(err, VfioError::Locked { .. }), "{err}");
    assert!(kernel.0.log().is_empty());
    assert_eq!(host.driver_of("0000:03:00.0").as_deref(), Some("vfio-pci"));
    pass.restore().unwrap();
    // A garbled record is reported and kept.
    std::fs::create_dir_all(host.state()).unwrap();
    std::fs::write(host.state().join("0000:09:00.0.json"), "{").unwrap();
    let outcomes = restore_all(&kernel, &host.state(), Duration::from_millis(500)).unwrap();
    assert!(matches!(
        outcomes[0].result,
        Err(VfioError::BadRecord { .. })
    ));
    assert!(host.state().join("0000:09:00.0.json").exists());
}

// ---------------------------------------------------------------------------------------------
// The locked-memory limit, in child processes with their own limits (as root too: bootrig
// raises the soft limit only up to the hard one).

const MEMLOCK_EXPECT: &str = "BOOTRIG_VFIO_MEMLOCK_EXPECT";

#[test]
#[ignore = "child process of the memlock tests"]
fn child_checks_memlock() {
    let expect = std::env::var(MEMLOCK_EXPECT).expect("run by its parent test");
    let host = FakeHost::lab();
    host.cx6dx();
    let opts = CheckOptions {
        memory_mib: Some(512),
        ..CheckOptions::default()
    };
    let report = check(&host, "0000:03:00.0", &opts);
    let row = find(&report, "memlock");
    let (soft, _) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_MEMLOCK).unwrap();
    // Root with CAP_SYS_RESOURCE (a VM, most CI hosts) may raise its hard limit, so a run would
    // raise it; a container's root without it may not, so the guest's need is refused.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let may_raise_hard =
        bootrig::host::caps::effective_caps(&status).is_some_and(|caps| caps & (1 << 24) != 0);
    match expect.as_str() {
        "refused" if may_raise_hard => {
            assert_eq!(row.status, Status::Ok, "{}", report.table());
            assert!(
                row.detail.contains(
                    "(hard 1024 KiB) is below the 1572864 KiB VFIO pins; bootrig run raises its \
                     soft and hard limits to 1572864 KiB (hard 1572864 KiB)"
                ),
                "{}",
                row.detail
            );
            assert!(row.fix.is_none(), "{:?}", row.fix);
            assert_eq!(soft, 1024 * 1024);
        }
        "refused" => {
            assert_eq!(row.status, Status::Fail, "{}", report.table());
            assert!(
                row.detail
                    .contains("(hard 1024 KiB) is below the 1572864 KiB"),
                "{}",
                row.detail
            );
            let fix = row.fix.as_deref().unwrap();
            assert!(
                fix.contains("ulimit -l 1572864") && fix.contains("LimitMEMLOCK=1610612736"),
                "{fix}"
            );
            assert_eq!(soft, 1024 * 1024);
        }
        "raised" => {
            // A guest needs more than this host's hard limit allows (and raising a hard limit
            // needs CAP_SYS_RESOURCE, which this container lacks even as root): the real
            // getrlimit/setrlimit path is exercised with a need just within the hard limit.
            assert_eq!(soft, 64 * 1024);
            let (_, hard) =
                nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_MEMLOCK)
                    .unwrap();
            let need = hard.min(4 << 20);
            assert!(need > 64 * 1024, "hard limit {hard}");
            let outcome = bootrig::vfio::memlock::ensure(need).unwrap();
            assert!(
                matches!(outcome, bootrig::vfio::memlock::Memlock::Raised { .. }),
                "{outcome:?}"
            );
            assert!(
                outcome
                    .detail()
                    .starts_with("locked-memory soft limit raised from 64 KiB (hard "),
                "{}",
                outcome.detail()
            );
            let (soft, _) =
                nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_MEMLOCK)
                    .unwrap();
            assert_eq!(soft, need);
            // The guest's own need: a run would raise the hard limit with the capability, and
            // is refused without it (the row says what to set).
            let want = if may_raise_hard {
                Status::Ok
            } else {
                Status::Fail
            };
            assert_eq!(row.status, want, "{}", row.detail);
        }
        other => panic!("unknown expectation {other}"),
    }
    println!("CHILD-CHECKED {expect}");
}

fn memlock_child(expect: &str, ulimits: &str) {
    let out = run_child(
        "child_checks_memlock",
        &[(MEMLOCK_EXPECT, Path::new(expect))],
        ulimits,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&format!("CHILD-CHECKED {expect}")),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn memlock_below_a_hard_limit_too_low_is_refused_with_what_to_set() {
    memlock_child("refused", "ulimit -l 1024 &&");
}

#[test]
fn memlock_soft_limit_is_raised_up_to_the_hard_limit() {
    memlock_child("raised", "ulimit -S -l 64 &&");
}
