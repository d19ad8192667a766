//! `bootrig vfio check`: every condition a passthrough needs, one row each, with the fix when
//! it fails. The same report gates [`super::Passthrough::prepare`].

use std::path::PathBuf;

use serde::Serialize;

use super::bdf::Bdf;
use super::host_use;
use super::ids::{self, Function, KnownDevice, MELLANOX_VENDOR};
use super::kernel::Kernel;
use super::memlock::{self, Memlock};
use super::rom::{self, RomInfo};
use super::sysfs::{self, HostPaths};
use super::{VfioError, VFIO_DRIVER};
use crate::names::Named;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr, strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Status {
    Ok,
    /// Works, but worth knowing (a ROM for another device id).
    Warn,
    /// Blocks the passthrough.
    Fail,
    /// Not checked, or not applicable.
    Info,
}

impl Status {
    /// The table's column: the name, but a failure in capitals so it stands out (JSON says
    /// `fail`).
    pub fn label(self) -> &'static str {
        match self {
            Status::Fail => "FAIL",
            other => other.as_str(),
        }
    }
}

#[cfg(test)]
#[test]
fn status_names_are_serdes_and_the_label_shouts_a_failure() {
    crate::names::assert_serde_names::<Status>();
    assert_eq!(Status::Fail.as_str(), "fail");
    assert_eq!(Status::Fail.label(), "FAIL");
    assert_eq!(Status::Warn.label(), "warn");
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckRow {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn row(name: &'static str, status: Status, detail: impl Into<String>) -> CheckRow {
    CheckRow {
        name,
        status,
        detail: detail.into(),
        fix: None,
    }
}

impl CheckRow {
    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// What is checked: the function passed to the guest, or a PF whose VF will be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    #[default]
    Passthrough,
    /// The PF stays on the host: its group and /dev/vfio do not matter, SR-IOV does.
    SriovPf,
}

#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Guest memory; the memlock row is skipped without it.
    pub memory_mib: Option<u32>,
    /// What the run already did about the limit ([`memlock::ensure`]); without it the row only
    /// says what a run would do, changing nothing.
    pub memlock: Option<Memlock>,
    /// A FlexBoot image to load instead of the card's own ROM.
    pub romfile: Option<PathBuf>,
    /// Read the card's own ROM when no romfile is given (writes sysfs `rom`).
    pub read_card_rom: bool,
    pub scope: Scope,
    /// Accept a function of any vendor standing in for a ConnectX (the inventory's `stand_in`):
    /// only the device table is skipped; the group, /dev/vfio, memlock and ROM checks stay.
    pub stand_in: bool,
}

/// A member of the device's IOMMU group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub bdf: Bdf,
    pub driver: Option<String>,
    /// Bridges keep their driver: VFIO accepts them in a user-owned group.
    pub bridge: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Preflight {
    pub device: Bdf,
    pub known: Option<KnownDevice>,
    /// Checked as a stand-in: `vendor:device` of a function that is not a known adapter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stand_in: Option<String>,
    pub driver: Option<String>,
    pub group: Option<u32>,
    pub members: Vec<Member>,
    pub memlock: Option<Memlock>,
    pub rom: Option<RomInfo>,
    pub checks: Vec<CheckRow>,
}

impl Preflight {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    /// The failed rows as "name: detail (fix: …)" lines.
    pub fn failures(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .map(|c| match &c.fix {
                Some(fix) => format!("  {}: {}\n    fix: {fix}", c.name, c.detail),
                None => format!("  {}: {}", c.name, c.detail),
            })
            .collect()
    }

    pub fn into_result(self) -> Result<Self, VfioError> {
        if self.ok() {
            Ok(self)
        } else {
            Err(VfioError::Preflight {
                device: self.device,
                failures: self.failures(),
            })
        }
    }

    /// Members vfio-pci must own (not bridges).
    pub fn to_bind(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| !m.bridge)
    }

    /// The report as an aligned text table.
    pub fn table(&self) -> String {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        let mut out = format!("VFIO preflight for {}\n", self.device);
        for c in &self.checks {
            out.push_str(&format!(
                "  {:<4}  {:<width$}  {}\n",
                c.status.label(),
                c.name,
                c.detail
            ));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("        {:<width$}  fix: {fix}\n", ""));
            }
        }
        out.push_str(if self.ok() {
            "ready for passthrough\n"
        } else {
            "not ready: fix the FAIL rows\n"
        });
        out
    }
}

/// Runs every check on `device`. Errors reading the host become failed rows; only the report
/// comes back.
pub fn preflight(kernel: &dyn Kernel, device: &Bdf, opts: &CheckOptions) -> Preflight {
    let paths = kernel.paths();
    let mut report = Preflight {
        device: *device,
        known: None,
        stand_in: None,
        driver: None,
        group: None,
        members: Vec::new(),
        memlock: None,
        rom: None,
        checks: Vec::new(),
    };
    let dir = paths.pci_device(device);
    if !dir.is_dir() {
        report.checks.push(
            row(
                "device",
                Status::Fail,
                format!("no PCI device {device} (no {})", dir.display()),
            )
            .fix("find the adapter's address with `lspci -D -d 15b3:`"),
        );
        return report;
    }
    let check = adapter(paths, device, opts.stand_in, &mut report);
    report.checks.push(check);
    if opts.scope == Scope::SriovPf {
        report.checks.push(sriov_row(paths, device));
    } else {
        let check = iommu(paths, device, &mut report);
        report.checks.push(check);
        report.checks.push(vfio_driver(paths));
        if let Some(group) = report.group {
            let check = group_row(paths, group, &mut report);
            report.checks.push(check);
            report.checks.push(permission(paths, &report.members));
        }
        report.checks.push(vfio_dev(paths, report.group));
    }
    let check = memlock_row(opts.memory_mib, opts.memlock, &mut report);
    report.checks.push(check);
    // A VF has no ROM BAR of its own; neither does the VF a PF check is for.
    let is_vf =
        opts.scope == Scope::SriovPf || report.known.is_some_and(|k| k.function == Function::Vf);
    let check = rom_row(kernel, device, opts, is_vf, &mut report);
    report.checks.push(check);
    report
}

fn fail_io(name: &'static str, e: VfioError) -> CheckRow {
    row(
        name,
        Status::Fail,
        format!("reading the host: {}", crate::error_chain(&e)),
    )
}

fn adapter(paths: &HostPaths, device: &Bdf, stand_in: bool, report: &mut Preflight) -> CheckRow {
    let dir = paths.pci_device(device);
    let ids = sysfs::read_hex(&dir.join("vendor")).and_then(|v| {
        Ok((
            v,
            sysfs::read_hex(&dir.join("device"))?,
            sysfs::driver(paths, device)?,
        ))
    });
    let (vendor, id, driver) = match ids {
        Ok((Some(v), Some(d), driver)) => (v, d, driver),
        Ok(_) => {
            return row(
                "adapter",
                Status::Fail,
                format!("{} has no vendor/device files", dir.display()),
            )
        }
        Err(e) => return fail_io("adapter", e),
    };
    report.driver = driver.clone();
    let bound = driver.as_deref().unwrap_or("no driver");
    let known = (vendor == u32::from(MELLANOX_VENDOR))
        .then(|| u16::try_from(id).ok().and_then(ids::lookup))
        .flatten();
    if stand_in && known.is_none() {
        let ids = format!("{vendor:04x}:{id:04x}");
        report.stand_in = Some(ids.clone());
        return row(
            "adapter",
            Status::Ok,
            format!(
                "stand-in {ids} (not a ConnectX: the inventory says stand_in = true), bound to {bound}"
            ),
        );
    }
    if vendor != u32::from(MELLANOX_VENDOR) {
        return row(
            "adapter",
            Status::Fail,
            format!(
                "{device} is {vendor:04x}:{id:04x}, not a Mellanox/NVIDIA adapter (vendor 15b3)"
            ),
        )
        .fix("pass the address of a ConnectX or BlueField function (`lspci -D -d 15b3:`)");
    }
    let Some(known) = known else {
        let names: Vec<&str> = ids::KNOWN_DEVICES.iter().map(|d| d.name).collect();
        return row(
            "adapter",
            Status::Fail,
            format!(
                "device id 15b3:{id:04x} is not one bootrig knows ({})",
                names.join("; ")
            ),
        )
        .fix("use a known adapter; a new id goes into src/vfio/ids.rs with its kernel source");
    };
    report.known = Some(*known);
    row(
        "adapter",
        Status::Ok,
        format!(
            "{} {} (15b3:{id:04x}), host driver {}, bound to {bound}",
            known.name,
            match known.function {
                Function::Pf => "PF",
                Function::Vf => "VF",
            },
            known.driver.as_str()
        ),
    )
}

fn sriov_row(paths: &HostPaths, pf: &Bdf) -> CheckRow {
    match sysfs::sriov_counts(paths, pf) {
        Ok(Some((total, num))) if total > 0 => row(
            "sr-iov",
            Status::Ok,
            format!("{num} of at most {total} VFs enabled"),
        ),
        Ok(_) => row("sr-iov", Status::Fail, format!("{pf} has no SR-IOV VFs (sriov_totalvfs 0 or missing)"))
            .fix("enable SR-IOV in the adapter firmware (mlxconfig SRIOV_EN=1 NUM_OF_VFS=N) and in the BIOS, then reboot"),
        Err(e) => fail_io("sr-iov", e),
    }
}

const IOMMU_FIX: &str = "enable VT-d (Intel) or AMD-Vi in the firmware setup and boot with \
                         intel_iommu=on iommu=pt (AMD: amd_iommu=on)";

fn iommu(paths: &HostPaths, device: &Bdf, report: &mut Preflight) -> CheckRow {
    let groups = match sysfs::list_dir(&paths.iommu_groups()) {
        Ok(g) => g.len(),
        Err(e) => return fail_io("iommu", e),
    };
    if groups == 0 {
        return row(
            "iommu",
            Status::Fail,
            format!(
                "no IOMMU groups in {}: the IOMMU is off",
                paths.iommu_groups().display()
            ),
        )
        .fix(IOMMU_FIX);
    }
    match sysfs::iommu_group(paths, device) {
        Ok(Some(group)) => {
            report.group = Some(group);
            row(
                "iommu",
                Status::Ok,
                format!("{groups} IOMMU groups; {device} is in group {group}"),
            )
        }
        Ok(None) => row(
            "iommu",
            Status::Fail,
            format!("{device} has no iommu_group link although {groups} groups exist"),
        )
        .fix(IOMMU_FIX),
        Err(e) => fail_io("iommu", e),
    }
}

fn vfio_driver(paths: &HostPaths) -> CheckRow {
    let dir = paths.pci_driver(VFIO_DRIVER);
    if dir.is_dir() {
        row("vfio-pci", Status::Ok, "driver registered")
    } else {
        row(
            "vfio-pci",
            Status::Fail,
            format!("no {}: the vfio-pci module is not loaded", dir.display()),
        )
        .fix("modprobe vfio-pci")
    }
}

fn group_row(paths: &HostPaths, group: u32, report: &mut Preflight) -> CheckRow {
    let members = match group_members(paths, group) {
        Ok(m) => m,
        Err(e) => return fail_io("group", e),
    };
    let blockers = match host_blockers(paths, &members) {
        Ok(b) => b,
        Err(e) => return fail_io("group", e),
    };
    let listing: Vec<String> = members
        .iter()
        .map(|m| match (&m.driver, m.bridge) {
            (Some(d), true) => format!("{} (bridge, {d})", m.bdf),
            (None, true) => format!("{} (bridge)", m.bdf),
            (Some(d), false) => format!("{} ({d})", m.bdf),
            (None, false) => format!("{} (no driver)", m.bdf),
        })
        .collect();
    report.members = members;
    if !blockers.is_empty() {
        return row(
            "group",
            Status::Fail,
            format!(
                "IOMMU group {group} holds what the host depends on: {}",
                blockers.join("; ")
            ),
        )
        .fix(
            "every device in the group goes to the guest: pass an adapter (or port) in an IOMMU \
             group of its own — another slot, or a platform with ACS — or move the host's route \
             or filesystem off it",
        );
    }
    row(
        "group",
        Status::Ok,
        format!("IOMMU group {group}: {}", listing.join(", ")),
    )
}

/// The group's devices; a non-PCI member cannot be handed to vfio-pci and is an error.
fn group_members(paths: &HostPaths, group: u32) -> Result<Vec<Member>, VfioError> {
    let mut members = Vec::new();
    for name in sysfs::group_devices(paths, group)? {
        let bdf: Bdf = name.parse().map_err(|_| VfioError::Malformed {
            path: paths.iommu_groups().join(group.to_string()).join("devices"),
            expected: "PCI devices only (vfio-pci binds PCI functions)",
            found: name.clone(),
        })?;
        members.push(Member {
            bdf,
            driver: sysfs::driver(paths, &bdf)?,
            bridge: sysfs::is_bridge(paths, &bdf)?,
        });
    }
    Ok(members)
}

/// "0000:03:00.1 carries the default route (enp3s0f1)" for each member the host needs.
fn host_blockers(paths: &HostPaths, members: &[Member]) -> Result<Vec<String>, VfioError> {
    let routes = host_use::default_route_interfaces(&paths.proc)?;
    let mounts = host_use::mounts(&paths.proc)?;
    let mut out = Vec::new();
    for m in members.iter().filter(|m| !m.bridge) {
        for iface in sysfs::net_interfaces(paths, &m.bdf)? {
            if routes.contains(&iface) {
                out.push(format!(
                    "{} carries the host's default route (interface {iface})",
                    m.bdf
                ));
            }
        }
        let mut blocks = sysfs::block_devices(paths, &m.bdf)?;
        blocks.extend(sysfs::holders(paths, &blocks)?);
        for mount in host_use::mounted_from(&mounts, &blocks) {
            out.push(format!(
                "{} is the controller of {} mounted on {}",
                m.bdf, mount.source, mount.target
            ));
        }
    }
    Ok(out)
}

fn permission(paths: &HostPaths, members: &[Member]) -> CheckRow {
    use nix::unistd::{access, AccessFlags};
    for m in members.iter().filter(|m| !m.bridge) {
        let file = paths.pci_device(&m.bdf).join("driver_override");
        if let Err(e) = access(&file, AccessFlags::W_OK) {
            return row(
                "permission",
                Status::Fail,
                format!("cannot write {}: {e}", file.display()),
            )
            .fix("run bootrig as root (binding drivers writes sysfs)");
        }
    }
    row(
        "permission",
        Status::Ok,
        "driver_override writable for every member",
    )
}

fn vfio_dev(paths: &HostPaths, group: Option<u32>) -> CheckRow {
    let container = paths.vfio_container();
    if !container.exists() {
        return row(
            "/dev/vfio",
            Status::Fail,
            format!("no {}", container.display()),
        )
        .fix("modprobe vfio-pci (it creates /dev/vfio/vfio)");
    }
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&container)
    {
        return row(
            "/dev/vfio",
            Status::Fail,
            format!("cannot open {}: {e}", container.display()),
        )
        .fix("run bootrig as root");
    }
    let Some(group) = group else {
        return row(
            "/dev/vfio",
            Status::Info,
            format!("{} usable; no group yet", container.display()),
        );
    };
    let node = paths.vfio_group(group);
    if !node.exists() {
        return row(
            "/dev/vfio",
            Status::Ok,
            format!(
                "{} usable; {} appears once the group is bound to vfio-pci",
                container.display(),
                node.display()
            ),
        );
    }
    // VFIO lets one process hold a group: busy means another QEMU (or run) has it.
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&node)
    {
        Ok(_) => row(
            "/dev/vfio",
            Status::Ok,
            format!("{} and {} usable", container.display(), node.display()),
        ),
        Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => row(
            "/dev/vfio",
            Status::Fail,
            format!(
                "{} is open in another process (a QEMU still running?)",
                node.display()
            ),
        )
        .fix(format!(
            "find it with `fuser -v {}` and stop it",
            node.display()
        )),
        Err(e) => row(
            "/dev/vfio",
            Status::Fail,
            format!("cannot open {}: {e}", node.display()),
        )
        .fix("run bootrig as root"),
    }
}

fn memlock_row(memory_mib: Option<u32>, done: Option<Memlock>, report: &mut Preflight) -> CheckRow {
    let Some(mib) = memory_mib else {
        return row(
            "memlock",
            Status::Info,
            "not checked: give the guest memory (--memory MIB)",
        );
    };
    let outcome = match done {
        Some(done) => Ok(done),
        None => memlock::check(memlock::needed_bytes(mib)),
    };
    match outcome {
        Ok(outcome) => {
            report.memlock = Some(outcome);
            let r = row(
                "memlock",
                if outcome.is_ok() {
                    Status::Ok
                } else {
                    Status::Fail
                },
                outcome.detail(),
            );
            match outcome.fix() {
                Some(fix) => r.fix(fix),
                None => r,
            }
        }
        Err(e) => row("memlock", Status::Fail, crate::error_chain(&e)),
    }
}

fn rom_row(
    kernel: &dyn Kernel,
    device: &Bdf,
    opts: &CheckOptions,
    is_vf: bool,
    report: &mut Preflight,
) -> CheckRow {
    let (what, bytes) = if let Some(file) = &opts.romfile {
        (file.display().to_string(), rom::read_file(file))
    } else if is_vf {
        return row("rom", Status::Info, "a VF has no option ROM of its own: to boot through FlexBoot give a romfile (FlexBoot image)");
    } else if !opts.read_card_rom {
        return row("rom", Status::Info, "the card's own ROM was not read");
    } else if report.known.is_none() && report.stand_in.is_none() {
        // Enabling the ROM of a device bootrig does not know is not bootrig's to do; a
        // stand-in's is read, as its run boots through it.
        return row("rom", Status::Info, "not read: not a known adapter");
    } else if !kernel.paths().pci_device(device).join("rom").exists() {
        return row(
            "rom",
            Status::Fail,
            format!("{device} exposes no option ROM (no sysfs rom file)"),
        )
        .fix("give a FlexBoot image as romfile");
    } else {
        (
            "of the card".to_owned(),
            rom::read_device_rom(kernel, device),
        )
    };
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => return row("rom", Status::Fail, crate::error_chain(&e)),
    };
    match rom::parse(&bytes) {
        Ok(info) => {
            let mellanox = info.images.iter().all(|i| i.vendor == MELLANOX_VENDOR);
            // A stand-in boots through its own vendor's ROM (an e1000e's iPXE is Intel's).
            let stand_in_own = report.stand_in.as_deref().is_some_and(|ids| {
                info.images
                    .iter()
                    .all(|i| ids.starts_with(&format!("{:04x}:", i.vendor)))
            });
            let summary = format!("ROM {what}: {}", info.summary());
            report.rom = Some(info);
            if mellanox || stand_in_own {
                row("rom", Status::Ok, summary)
            } else {
                row(
                    "rom",
                    Status::Warn,
                    format!("{summary}; not a Mellanox (15b3) ROM: is it FlexBoot?"),
                )
            }
        }
        Err(e) => {
            let fix = if opts.romfile.is_some() {
                "give a FlexBoot image (it starts with 55 aa)"
            } else {
                "enable the expansion ROM in the adapter's firmware configuration (mlxconfig), \
                 or give a FlexBoot image as romfile"
            };
            row(
                "rom",
                Status::Fail,
                format!("ROM {what}: {}", crate::error_chain(&e)),
            )
            .fix(fix)
        }
    }
}
