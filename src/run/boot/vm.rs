//! The VM a boot runs: a pure mapping of the target and what the earlier stages made (firmware
//! files, boot files, network, adapter, sockets) to a [`VmSpec`]. No I/O and no clock, so its
//! QEMU command line is golden-tested here.

use std::path::Path;

use crate::qemu::accel::Accel;
use crate::qemu::machine::{
    self, DirectKernel, MachineType, Network, NicModel, NicRom, TapNet, UserNet, VfioDevice,
    VfioRom, VmSpec,
};
use crate::run::target::{AdapterNeed, Target};
use crate::scenario::{Method, Nic};
use crate::vfio::Bdf;

use super::media::RomDhcp;

/// What the earlier stages made, for [`spec`].
pub(super) struct VmInputs<'a> {
    pub accel: Accel,
    pub firmware: machine::Firmware,
    /// The staged kernel and initrd (a direct boot hands them to QEMU).
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    /// What the ROM's DHCP gets, for an iPXE boot on QEMU's user-mode network.
    pub rom_dhcp: Option<RomDhcp>,
    /// The host tap the NIC uses (dnsmasq segment or bridge); None: user-mode networking.
    pub tap: Option<String>,
    /// The adapter bound to vfio-pci, which replaces the emulated NIC.
    pub vfio_host: Option<Bdf>,
    pub serial_socket: &'a Path,
    pub qmp_socket: &'a Path,
    /// The target's artifact directory (QEMU's own console log goes there).
    pub dir: &'a Path,
}

/// The VM for `target`, started paused (bootrig resumes it once its sockets are connected).
pub(super) fn spec(target: &Target, inputs: VmInputs) -> VmSpec {
    let boot = &target.boot;
    let nic = match boot.nic {
        Nic::VirtioNetPci => NicModel::VirtioNetPci,
        Nic::E1000e => NicModel::E1000e,
        Nic::E1000 => NicModel::E1000,
    };
    let (tftp_root, bootfile) = match inputs.rom_dhcp {
        Some(d) => (d.tftp_root, Some(d.bootfile)),
        None => (None, None),
    };
    let (rom, bootindex, direct) = match boot.method {
        // QEMU's own default ROM: it patches the PCI ids to the device's, which SeaBIOS checks.
        Method::Ipxe => (NicRom::QemuDefault, Some(1), None),
        Method::Direct => (
            NicRom::Disabled,
            None,
            Some(DirectKernel {
                kernel: inputs.kernel.to_owned(),
                initrd: inputs.initrd.to_owned(),
                append: target.cmdline(),
            }),
        ),
    };
    let vfio = vfio_devices(target, inputs.vfio_host);
    let network = if !vfio.is_empty() {
        // The adapter is the guest's network: no emulated NIC.
        Network::None
    } else {
        match inputs.tap {
            Some(ifname) => Network::Tap(TapNet {
                nic,
                rom,
                bootindex,
                ifname,
                mac: None,
            }),
            None => Network::User(UserNet {
                nic,
                rom,
                bootindex,
                tftp_root,
                bootfile,
            }),
        }
    };
    VmSpec {
        machine: match boot.machine {
            crate::scenario::MachineType::Q35 => MachineType::Q35,
            crate::scenario::MachineType::Pc => MachineType::Pc,
        },
        accel: inputs.accel,
        memory_mib: boot.memory_mib,
        firmware: inputs.firmware,
        network,
        serial_socket: inputs.serial_socket.to_owned(),
        serial_log: inputs.dir.join("console.qemu.log"),
        qmp_socket: inputs.qmp_socket.to_owned(),
        start_paused: true,
        direct,
        vfio,
    }
}

/// The passed-through adapter, netbooting with its ROM on an iPXE boot.
fn vfio_devices(target: &Target, host: Option<Bdf>) -> Vec<VfioDevice> {
    match (host, &target.adapter) {
        (Some(host), Some(AdapterNeed::Found(adapter))) => {
            let rom = match (&target.boot.method, &adapter.rom) {
                (Method::Direct, _) => VfioRom::Disabled,
                (Method::Ipxe, Some(file)) => VfioRom::File(file.clone()),
                // The card's own FlexBoot does the netboot.
                (Method::Ipxe, None) => VfioRom::Device,
            };
            let bootindex = (target.boot.method == Method::Ipxe).then_some(1);
            vec![VfioDevice {
                host,
                rom,
                bootindex,
            }]
        }
        _ => Vec::new(),
    }
}
