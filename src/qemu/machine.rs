//! The QEMU command line of a bootrig VM, as a pure function of [`VmSpec`]: one small function per
//! concern, a comment per flag. Nothing here touches the host; [`super::firmware`] finds the
//! files, the run starts the process.
//!
//! The console and QMP are chardev socket *clients*: the harness listens on both Unix sockets
//! before QEMU starts, QEMU connects, and `-S` keeps the guest paused until the harness, with the
//! console already attached, resumes it over QMP — so not a byte of early console output is lost.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::accel::Accel;
use crate::names::Named;

/// Defined here, where its QEMU name is, and used as is by scenarios (`machine = "q35"`) and the
/// command line: one enum from the TOML to the `-machine` flag.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    ValueEnum,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum MachineType {
    /// i440fx + PIIX: legacy PCI.
    Pc,
    /// Q35 + ICH9: PCIe, what lab servers look like.
    Q35,
}

/// An emulated NIC bootrig can netboot through (each has an iPXE ROM in ipxe-qemu). Scenarios
/// (`nic = "e1000e"`) and `bootrig repro --nic` name it by its QEMU device name: its
/// [`Named::as_str`] is the `-device` driver name.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    ValueEnum,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum NicModel {
    #[value(name = "virtio-net-pci")]
    VirtioNetPci,
    #[value(name = "e1000e")]
    E1000e,
    #[value(name = "e1000")]
    E1000,
}

impl NicModel {
    /// The `<stem>` of ipxe-qemu's `efi-<stem>.rom` / `pxe-<stem>.rom` for this NIC.
    pub fn rom_stem(self) -> &'static str {
        match self {
            NicModel::VirtioNetPci => "virtio",
            NicModel::E1000e => "e1000e",
            NicModel::E1000 => "e1000",
        }
    }
}

impl fmt::Display for NicModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("NIC model {0:?}: expected one of {names}", names = nic_names())]
pub struct UnknownNic(pub String);

/// The NIC models' names, as [`UnknownNic`] lists them.
fn nic_names() -> String {
    <NicModel as strum::VariantArray>::VARIANTS
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for NicModel {
    type Err = UnknownNic;
    fn from_str(s: &str) -> Result<Self, UnknownNic> {
        NicModel::from_name(s).ok_or_else(|| UnknownNic(s.to_owned()))
    }
}

/// The firmware the VM starts in, as files found on this host: what the scenario's choice
/// (`scenario::Firmware`, `bios` or `uefi`) becomes in `run::lifecycle::media::firmware`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirmwareImage {
    /// QEMU's default SeaBIOS. `sercon_port` is a file holding the 16-bit little-endian I/O port
    /// of the serial port SeaBIOS should mirror its text console to (0x3f8, see
    /// [`super::firmware::write_sercon_port`]): without it SeaBIOS and the iPXE ROM print only
    /// to a VGA the VM does not have.
    Bios { sercon_port: Option<PathBuf> },
    /// OVMF: the read-only code image and this run's own copy of the variable store.
    Uefi { code: PathBuf, vars_copy: PathBuf },
}

/// The option ROM of the NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NicRom {
    /// QEMU's own choice (ipxe-qemu's `efi-<model>.rom`). QEMU patches the PCI ids of a default
    /// ROM to the device's: efi-virtio.rom says 1af4:1041 (modern virtio) while virtio-net-pci
    /// on the root bus is 1af4:1000, and SeaBIOS skips a ROM whose ids do not match.
    QemuDefault,
    /// This ROM file, loaded as is (no id patching).
    File(PathBuf),
    /// No ROM: the NIC cannot netboot (direct-boot runs).
    Disabled,
}

/// User-mode networking: no host state; slirp's DHCP leases 10.0.2.15/24 and the host is
/// 10.0.2.2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserNet {
    pub nic: NicModel,
    pub rom: NicRom,
    /// Boot priority of the NIC (`bootindex`); `None` leaves it out of the boot order.
    pub bootindex: Option<u32>,
    /// Root of slirp's built-in TFTP server.
    pub tftp_root: Option<PathBuf>,
    /// The DHCP boot file name the ROM fetches: a name under `tftp_root` or a full URL.
    pub bootfile: Option<String>,
}

/// A tap device of the run's test segment (see `crate::net`): QEMU must be started inside the
/// segment's network namespace, where the tap lives, and the segment's dnsmasq answers DHCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapNet {
    pub nic: NicModel,
    pub rom: NicRom,
    pub bootindex: Option<u32>,
    /// The tap's name inside the namespace.
    pub ifname: String,
    /// The NIC's MAC (`aa:bb:cc:dd:ee:ff`); `None` is QEMU's default 52:54:00:12:34:56, which
    /// guests sharing one bridge must not all use.
    pub mac: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    None,
    User(UserNet),
    Tap(TapNet),
}

// Defined in vfio, which the VM description builds on (vfio never imports qemu).
pub use crate::shell::shell_words;
pub use crate::vfio::device::{VfioDevice, VfioRom};

/// `-kernel`/`-initrd`/`-append`: the firmware hands over to the kernel directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectKernel {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub append: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    pub machine: MachineType,
    pub accel: Accel,
    pub memory_mib: u32,
    pub firmware: FirmwareImage,
    pub network: Network,
    /// Host adapters passed through with VFIO (with one, `network` is usually [`Network::None`]).
    pub vfio: Vec<VfioDevice>,
    /// Unix socket the harness listens on for the guest's serial console.
    pub serial_socket: PathBuf,
    /// QEMU's own log of everything the console printed.
    pub serial_log: PathBuf,
    /// Unix socket the harness listens on for QMP.
    pub qmp_socket: PathBuf,
    /// `-S`: start paused until QMP `cont`.
    pub start_paused: bool,
    pub direct: Option<DirectKernel>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MachineError {
    #[error("{what} path {path:?} is not UTF-8; QEMU options are built as text")]
    NonUtf8Path { what: &'static str, path: PathBuf },
    #[error("DHCP boot file name {0:?}: expected 1-127 printable ASCII characters")]
    BadBootfile(String),
    #[error("tap name {0:?}: expected 1-15 characters of [A-Za-z0-9_.-]")]
    BadTapName(String),
    #[error("MAC address {0:?}: expected six colon-separated hex pairs such as 52:54:00:12:34:56")]
    BadMac(String),
}

/// The chardev ids the harness and QMP commands refer to.
pub const SERIAL_CHARDEV: &str = "serial0";
pub const QMP_CHARDEV: &str = "qmp";
pub const NETDEV_ID: &str = "net0";
/// The serial port SeaBIOS mirrors its console to: COM1, the guest's ttyS0.
pub const SERCON_PORT: u16 = 0x3f8;

impl VmSpec {
    /// The argument list (without the QEMU binary).
    pub fn args(&self) -> Result<Vec<String>, MachineError> {
        let mut a = Vec::new();
        a.extend(machine_args(self.machine, self.accel, self.memory_mib));
        a.extend(isolation_args());
        a.extend(firmware_args(&self.firmware)?);
        a.extend(serial_args(&self.serial_socket, &self.serial_log)?);
        a.extend(qmp_args(&self.qmp_socket)?);
        a.extend(panic_args());
        a.extend(network_args(&self.network)?);
        for device in &self.vfio {
            a.extend(vfio_args(device)?);
        }
        if let Some(direct) = &self.direct {
            a.extend(direct_kernel_args(direct)?);
        }
        if self.start_paused {
            // Start with the CPUs stopped; the harness sends QMP `cont` once it reads the console.
            a.push("-S".into());
        }
        Ok(a)
    }
}

fn machine_args(machine: MachineType, accel: Accel, memory_mib: u32) -> Vec<String> {
    vec![
        "-machine".into(),
        machine.as_str().into(),
        // The accelerator the probe proved usable, never assumed.
        "-accel".into(),
        accel.as_str().into(),
        "-m".into(),
        memory_mib.to_string(),
    ]
}

fn isolation_args() -> Vec<String> {
    vec![
        // No default devices (VGA, default NIC, monitor, serial): every device is one bootrig chose.
        "-nodefaults".into(),
        // A guest reboot (panic=-1, a failed boot) ends QEMU instead of booting again.
        "-no-reboot".into(),
        // No window; the console is the serial socket.
        "-display".into(),
        "none".into(),
    ]
}

fn firmware_args(firmware: &FirmwareImage) -> Result<Vec<String>, MachineError> {
    Ok(match firmware {
        // SeaBIOS is QEMU's default firmware.
        FirmwareImage::Bios { sercon_port: None } => vec![],
        FirmwareImage::Bios {
            sercon_port: Some(port_file),
        } => vec![
            // SeaBIOS reads its serial-console port from this fw_cfg file (QEMU warns that the
            // name lacks "opt/"; SeaBIOS looks for exactly this one).
            "-fw_cfg".into(),
            format!(
                "name=etc/sercon-port,file={}",
                opt_path("sercon port", port_file)?
            ),
        ],
        FirmwareImage::Uefi { code, vars_copy } => vec![
            // OVMF code, never written.
            "-drive".into(),
            format!(
                "if=pflash,format=raw,unit=0,file={},readonly=on",
                opt_path("OVMF code", code)?
            ),
            // This run's own variable store (UEFI writes boot entries there).
            "-drive".into(),
            format!(
                "if=pflash,format=raw,unit=1,file={}",
                opt_path("OVMF variables", vars_copy)?
            ),
        ],
    })
}

fn serial_args(socket: &Path, log: &Path) -> Result<Vec<String>, MachineError> {
    Ok(vec![
        // Connect to the harness's socket (server=off: QEMU is the client); QEMU also writes
        // everything to its own log file, replaced per run.
        "-chardev".into(),
        format!(
            "socket,id={SERIAL_CHARDEV},path={},server=off,logfile={},logappend=off",
            opt_path("serial socket", socket)?,
            opt_path("serial log", log)?
        ),
        // COM1 (the guest's ttyS0) is that chardev.
        "-serial".into(),
        format!("chardev:{SERIAL_CHARDEV}"),
    ])
}

fn qmp_args(socket: &Path) -> Result<Vec<String>, MachineError> {
    Ok(vec![
        // QMP over a second harness socket.
        "-chardev".into(),
        format!(
            "socket,id={QMP_CHARDEV},path={},server=off",
            opt_path("QMP socket", socket)?
        ),
        "-mon".into(),
        format!("chardev={QMP_CHARDEV},mode=control"),
    ])
}

fn panic_args() -> Vec<String> {
    vec![
        // ISA pvpanic: a guest kernel panic becomes a GUEST_PANICKED QMP event.
        "-device".into(),
        "pvpanic".into(),
    ]
}

fn network_args(network: &Network) -> Result<Vec<String>, MachineError> {
    match network {
        // No NIC at all.
        Network::None => Ok(vec![]),
        Network::User(net) => user_net_args(net),
        Network::Tap(tap) => tap_net_args(tap),
    }
}

fn user_net_args(net: &UserNet) -> Result<Vec<String>, MachineError> {
    let mut netdev = format!("user,id={NETDEV_ID}");
    if let Some(root) = &net.tftp_root {
        // slirp's TFTP server serves this directory at 10.0.2.2.
        netdev.push_str(&format!(",tftp={}", opt_path("TFTP root", root)?));
    }
    if let Some(bootfile) = &net.bootfile {
        // The file name slirp's DHCP offers; the iPXE ROM fetches and runs it.
        let valid = !bootfile.is_empty()
            && bootfile.len() < 128
            && bootfile.bytes().all(|b| b.is_ascii_graphic());
        if !valid {
            return Err(MachineError::BadBootfile(bootfile.clone()));
        }
        netdev.push_str(&format!(",bootfile={}", bootfile.replace(',', ",,")));
    }
    let device = nic_device_arg(net.nic, &net.rom, net.bootindex, None)?;
    Ok(vec!["-netdev".into(), netdev, "-device".into(), device])
}

fn tap_net_args(tap: &TapNet) -> Result<Vec<String>, MachineError> {
    let name_ok = (1..=15).contains(&tap.ifname.len())
        && tap
            .ifname
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !name_ok {
        return Err(MachineError::BadTapName(tap.ifname.clone()));
    }
    // The existing tap in QEMU's own namespace; no helper scripts (the segment configured it).
    let netdev = format!(
        "tap,id={NETDEV_ID},ifname={},script=no,downscript=no",
        tap.ifname
    );
    let device = nic_device_arg(tap.nic, &tap.rom, tap.bootindex, tap.mac.as_deref())?;
    Ok(vec!["-netdev".into(), netdev, "-device".into(), device])
}

/// `<nic>,netdev=net0[,mac=…][,bootindex=N][,romfile=…]`.
fn nic_device_arg(
    nic: NicModel,
    rom: &NicRom,
    bootindex: Option<u32>,
    mac: Option<&str>,
) -> Result<String, MachineError> {
    let mut device = format!("{},netdev={NETDEV_ID}", nic.as_str());
    if let Some(mac) = mac {
        let parts: Vec<&str> = mac.split(':').collect();
        let valid = parts.len() == 6
            && parts
                .iter()
                .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
        if !valid {
            return Err(MachineError::BadMac(mac.to_owned()));
        }
        device.push_str(&format!(",mac={mac}"));
    }
    if let Some(index) = bootindex {
        // Boot from this NIC first (SeaBIOS and OVMF both honour bootindex).
        device.push_str(&format!(",bootindex={index}"));
    }
    match rom {
        NicRom::QemuDefault => {}
        NicRom::File(rom) => device.push_str(&format!(",romfile={}", opt_path("NIC ROM", rom)?)),
        // An empty romfile means no ROM BAR at all.
        NicRom::Disabled => device.push_str(",romfile="),
    }
    Ok(device)
}

fn vfio_args(device: &VfioDevice) -> Result<Vec<String>, MachineError> {
    // The host function, bound to vfio-pci beforehand (src/vfio).
    let mut opt = format!("vfio-pci,host={}", device.host);
    match &device.rom {
        // The card's own FlexBoot through its ROM BAR.
        VfioRom::Device => opt.push_str(",rombar=1"),
        // QEMU exposes this image as the ROM BAR instead of the card's.
        VfioRom::File(rom) => opt.push_str(&format!(",romfile={}", opt_path("VFIO ROM", rom)?)),
        VfioRom::Disabled => opt.push_str(",rombar=0"),
    }
    if let Some(index) = device.bootindex {
        // Boot through the adapter's ROM first.
        opt.push_str(&format!(",bootindex={index}"));
    }
    Ok(vec!["-device".into(), opt])
}

fn direct_kernel_args(direct: &DirectKernel) -> Result<Vec<String>, MachineError> {
    // -kernel, -initrd and -append take plain values (no option parsing), so no comma escaping.
    Ok(vec![
        "-kernel".into(),
        utf8("kernel", &direct.kernel)?.to_owned(),
        "-initrd".into(),
        utf8("initrd", &direct.initrd)?.to_owned(),
        "-append".into(),
        direct.append.clone(),
    ])
}

fn utf8<'a>(what: &'static str, path: &'a Path) -> Result<&'a str, MachineError> {
    path.to_str().ok_or_else(|| MachineError::NonUtf8Path {
        what,
        path: path.to_owned(),
    })
}

/// A path as the value inside a QEMU `key=value,…` option: a comma is written twice.
fn opt_path(what: &'static str, path: &Path) -> Result<String, MachineError> {
    Ok(utf8(what, path)?.replace(',', ",,"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_serdes_and_qemus() {
        crate::names::assert_serde_names::<MachineType>();
        crate::names::assert_serde_names::<NicModel>();
        // The scenario's name is QEMU's `-device` and `-machine` value, and clap's.
        assert_eq!(NicModel::VirtioNetPci.as_str(), "virtio-net-pci");
        assert_eq!(NicModel::E1000e.as_str(), "e1000e");
        assert_eq!(MachineType::Q35.as_str(), "q35");
        for &nic in <NicModel as strum::VariantArray>::VARIANTS {
            let value = nic.to_possible_value().unwrap();
            assert_eq!(value.get_name(), nic.as_str());
        }
        for &m in <MachineType as strum::VariantArray>::VARIANTS {
            assert_eq!(m.to_possible_value().unwrap().get_name(), m.as_str());
        }
    }

    fn netboot_spec(firmware: FirmwareImage, nic: NicModel) -> VmSpec {
        VmSpec {
            machine: MachineType::Q35,
            accel: Accel::Tcg,
            memory_mib: 1024,
            firmware,
            network: Network::User(UserNet {
                nic,
                rom: NicRom::QemuDefault,
                bootindex: Some(1),
                tftp_root: Some("/run/r1/boot".into()),
                bootfile: Some("boot.ipxe".into()),
            }),
            serial_socket: "/run/r1/serial.sock".into(),
            serial_log: "/run/r1/serial.log".into(),
            qmp_socket: "/run/r1/qmp.sock".into(),
            start_paused: true,
            direct: None,
            vfio: vec![],
        }
    }

    const COMMON: [&str; 18] = [
        "-machine",
        "q35",
        "-accel",
        "tcg",
        "-m",
        "1024",
        "-nodefaults",
        "-no-reboot",
        "-display",
        "none",
        "-chardev",
        "socket,id=serial0,path=/run/r1/serial.sock,server=off,logfile=/run/r1/serial.log,logappend=off",
        "-serial",
        "chardev:serial0",
        "-chardev",
        "socket,id=qmp,path=/run/r1/qmp.sock,server=off",
        "-mon",
        "chardev=qmp,mode=control",
    ];

    fn golden(firmware: &[&str], tail: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = COMMON[..10].iter().map(|s| s.to_string()).collect();
        v.extend(firmware.iter().map(|s| s.to_string()));
        v.extend(COMMON[10..].iter().map(|s| s.to_string()));
        v.extend(["-device", "pvpanic"].map(String::from));
        v.extend(tail.iter().map(|s| s.to_string()));
        v
    }

    #[test]
    fn uefi_netboot_over_tftp() {
        let spec = netboot_spec(
            FirmwareImage::Uefi {
                code: "/usr/share/OVMF/OVMF_CODE_4M.fd".into(),
                vars_copy: "/run/r1/OVMF_VARS.fd".into(),
            },
            NicModel::VirtioNetPci,
        );
        assert_eq!(
            spec.args().unwrap(),
            golden(
                &[
                    "-drive",
                    "if=pflash,format=raw,unit=0,file=/usr/share/OVMF/OVMF_CODE_4M.fd,readonly=on",
                    "-drive",
                    "if=pflash,format=raw,unit=1,file=/run/r1/OVMF_VARS.fd",
                ],
                &[
                    "-netdev",
                    "user,id=net0,tftp=/run/r1/boot,bootfile=boot.ipxe",
                    "-device",
                    "virtio-net-pci,netdev=net0,bootindex=1",
                    "-S",
                ]
            )
        );
    }

    #[test]
    fn bios_netboot_over_http_on_pc_with_an_explicit_rom() {
        let mut spec = netboot_spec(
            FirmwareImage::Bios {
                sercon_port: Some("/run/r1/sercon-port".into()),
            },
            NicModel::E1000,
        );
        spec.machine = MachineType::Pc;
        spec.accel = Accel::Kvm;
        spec.memory_mib = 2048;
        spec.start_paused = false;
        if let Network::User(net) = &mut spec.network {
            net.tftp_root = None;
            net.bootfile = Some("http://10.0.2.2:40123/boot.ipxe".into());
            net.rom = NicRom::File("/usr/lib/ipxe/qemu/efi-e1000.rom".into());
        }
        let mut expected = golden(
            &["-fw_cfg", "name=etc/sercon-port,file=/run/r1/sercon-port"],
            &[
                "-netdev",
                "user,id=net0,bootfile=http://10.0.2.2:40123/boot.ipxe",
                "-device",
                "e1000,netdev=net0,bootindex=1,romfile=/usr/lib/ipxe/qemu/efi-e1000.rom",
            ],
        );
        expected.splice(
            0..6,
            ["-machine", "pc", "-accel", "kvm", "-m", "2048"].map(String::from),
        );
        assert_eq!(spec.args().unwrap(), expected);
    }

    #[test]
    fn direct_boot_without_rom_or_without_nic() {
        let mut spec = netboot_spec(FirmwareImage::Bios { sercon_port: None }, NicModel::E1000e);
        spec.network = Network::User(UserNet {
            nic: NicModel::E1000e,
            rom: NicRom::Disabled,
            bootindex: None,
            tftp_root: None,
            bootfile: None,
        });
        spec.direct = Some(DirectKernel {
            kernel: "/k/vmlinuz".into(),
            initrd: "/k/initrd,1.img".into(),
            append: "console=ttyS0,115200 panic=-1".into(),
        });
        let tail = [
            "-netdev",
            "user,id=net0",
            "-device",
            "e1000e,netdev=net0,romfile=",
            "-kernel",
            "/k/vmlinuz",
            "-initrd",
            "/k/initrd,1.img",
            "-append",
            "console=ttyS0,115200 panic=-1",
            "-S",
        ];
        assert_eq!(spec.args().unwrap(), golden(&[], &tail));
        spec.network = Network::None;
        assert_eq!(spec.args().unwrap(), golden(&[], &tail[4..]));
    }

    #[test]
    fn tap_network_in_the_segment() {
        let mut spec = netboot_spec(
            FirmwareImage::Bios { sercon_port: None },
            NicModel::VirtioNetPci,
        );
        spec.network = Network::Tap(TapNet {
            nic: NicModel::VirtioNetPci,
            rom: NicRom::File("/usr/lib/ipxe/qemu/pxe-virtio.rom".into()),
            bootindex: Some(1),
            ifname: "tap0".into(),
            mac: Some("52:54:00:77:00:0a".into()),
        });
        let tail = [
            "-netdev",
            "tap,id=net0,ifname=tap0,script=no,downscript=no",
            "-device",
            "virtio-net-pci,netdev=net0,mac=52:54:00:77:00:0a,bootindex=1,romfile=/usr/lib/ipxe/qemu/pxe-virtio.rom",
            "-S",
        ];
        assert_eq!(spec.args().unwrap(), golden(&[], &tail));
        spec.network = Network::Tap(TapNet {
            nic: NicModel::E1000,
            rom: NicRom::Disabled,
            bootindex: None,
            ifname: "tap1".into(),
            mac: None,
        });
        let args = spec.args().unwrap();
        assert!(args.contains(&"e1000,netdev=net0,romfile=".to_string()));
        for (ifname, mac, want) in [
            ("tap,x", None, MachineError::BadTapName("tap,x".into())),
            (
                "a-sixteen-chars!",
                None,
                MachineError::BadTapName("a-sixteen-chars!".into()),
            ),
            (
                "tap0",
                Some("52:54:00:77:00"),
                MachineError::BadMac("52:54:00:77:00".into()),
            ),
            (
                "tap0",
                Some("52:54:00:77:00:0g"),
                MachineError::BadMac("52:54:00:77:00:0g".into()),
            ),
        ] {
            spec.network = Network::Tap(TapNet {
                nic: NicModel::E1000,
                rom: NicRom::Disabled,
                bootindex: None,
                ifname: ifname.into(),
                mac: mac.map(String::from),
            });
            assert_eq!(spec.args(), Err(want));
        }
    }

    #[test]
    fn vfio_adapter_replaces_the_emulated_nic() {
        let mut spec = netboot_spec(FirmwareImage::Bios { sercon_port: None }, NicModel::E1000);
        spec.network = Network::None;
        spec.vfio = vec![VfioDevice {
            host: "0000:03:00.0".parse().unwrap(),
            rom: VfioRom::Device,
            bootindex: Some(1),
        }];
        assert_eq!(
            spec.args().unwrap(),
            golden(
                &[],
                &[
                    "-device",
                    "vfio-pci,host=0000:03:00.0,rombar=1,bootindex=1",
                    "-S"
                ]
            )
        );
        spec.vfio = vec![
            VfioDevice {
                host: "af:00.2".parse().unwrap(),
                rom: VfioRom::File("/lab/roms/FlexBoot,3.7.rom".into()),
                bootindex: Some(2),
            },
            VfioDevice {
                host: "0000:af:00.3".parse().unwrap(),
                rom: VfioRom::Disabled,
                bootindex: None,
            },
        ];
        assert_eq!(
            spec.args().unwrap(),
            golden(
                &[],
                &[
                    "-device",
                    "vfio-pci,host=0000:af:00.2,romfile=/lab/roms/FlexBoot,,3.7.rom,bootindex=2",
                    "-device",
                    "vfio-pci,host=0000:af:00.3,rombar=0",
                    "-S",
                ]
            )
        );
    }

    #[test]
    fn commas_in_option_paths_are_doubled() {
        let mut spec = netboot_spec(FirmwareImage::Bios { sercon_port: None }, NicModel::E1000);
        spec.serial_socket = "/tmp/a,b/serial.sock".into();
        if let Network::User(net) = &mut spec.network {
            net.tftp_root = Some("/tmp/x,tftp=/etc".into());
        }
        let args = spec.args().unwrap();
        assert!(
            args.contains(&"user,id=net0,tftp=/tmp/x,,tftp=/etc,bootfile=boot.ipxe".to_string())
        );
        assert!(args
            .iter()
            .any(|a| a.starts_with("socket,id=serial0,path=/tmp/a,,b/serial.sock,")));
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        use std::os::unix::ffi::OsStrExt;
        let mut spec = netboot_spec(FirmwareImage::Bios { sercon_port: None }, NicModel::E1000);
        spec.qmp_socket = PathBuf::from(std::ffi::OsStr::from_bytes(b"/tmp/\xff.sock"));
        assert!(matches!(
            spec.args(),
            Err(MachineError::NonUtf8Path {
                what: "QMP socket",
                ..
            })
        ));
        let mut spec = netboot_spec(FirmwareImage::Bios { sercon_port: None }, NicModel::E1000);
        spec.vfio = vec![VfioDevice {
            host: "0000:03:00.0".parse().unwrap(),
            rom: VfioRom::File(PathBuf::from(std::ffi::OsStr::from_bytes(b"/r/\xfe.rom"))),
            bootindex: None,
        }];
        assert!(matches!(
            spec.args(),
            Err(MachineError::NonUtf8Path {
                what: "VFIO ROM",
                ..
            })
        ));
        let mut spec = netboot_spec(FirmwareImage::Bios { sercon_port: None }, NicModel::E1000);
        if let Network::User(net) = &mut spec.network {
            net.bootfile = Some("boot file".into());
        }
        assert_eq!(
            spec.args(),
            Err(MachineError::BadBootfile("boot file".into()))
        );
    }

    #[test]
    fn nic_models_parse_and_name_their_roms() {
        assert_eq!(
            "virtio-net-pci".parse::<NicModel>(),
            Ok(NicModel::VirtioNetPci)
        );
        assert_eq!(NicModel::VirtioNetPci.rom_stem(), "virtio");
        assert_eq!(
            "e1000e".parse::<NicModel>().map(NicModel::rom_stem),
            Ok("e1000e")
        );
        let err = "rtl8139".parse::<NicModel>().unwrap_err();
        assert!(err.to_string().contains("\"rtl8139\""), "{err}");
        // The list is NicModel::VARIANTS', in their order, as before.
        assert_eq!(
            err.to_string(),
            "NIC model \"rtl8139\": expected one of virtio-net-pci, e1000e, e1000"
        );
    }
}
