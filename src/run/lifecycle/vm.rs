//! The VM a boot runs: a pure mapping of the target and what the earlier stages made (firmware
//! files, boot files, network, adapter, sockets) to a [`VmSpec`]. No I/O and no clock, so its
//! QEMU command line is golden-tested here.

use std::path::Path;

use crate::qemu::accel::Accel;
use crate::qemu::machine::{
    self, DirectKernel, Network, NicRom, TapNet, UserNet, VfioDevice, VfioRom, VmSpec,
};
use crate::run::target::{AdapterNeed, Target};
use crate::scenario::Method;
use crate::vfio::Bdf;

use super::media::RomDhcp;

/// What the earlier stages made, for [`spec`].
pub(super) struct VmInputs<'a> {
    pub accel: Accel,
    pub firmware: machine::FirmwareImage,
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
    let nic = boot.nic;
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
        machine: boot.machine,
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

#[cfg(test)]
mod tests {
    //! Golden command lines: the whole argv QEMU gets for representative targets, so a change
    //! in the mapping (or in `VmSpec::args`) shows as a diff here.

    use super::*;
    use crate::run::inventory::Adapter;
    use crate::scenario::Scenario;

    /// A scenario with `network` lines added to its `[network]` and `rest` after it.
    fn target(network: &str, rest: &str) -> Target {
        let text = format!(
            "name = \"t\"\n[kernel]\nimage = \"k\"\nmodules = \"m\"\n[initrd]\nload = []\n\
             [network]\ninterface = \"eth0\"\ndhcp = \"udhcpc\"\n{network}{rest}"
        );
        Target::from_scenario("t", Scenario::parse(&text, Path::new("/s/t.toml")).unwrap())
    }

    fn bios() -> machine::FirmwareImage {
        machine::FirmwareImage::Bios {
            sercon_port: Some("/out/t/sercon-port".into()),
        }
    }

    fn inputs(firmware: machine::FirmwareImage) -> VmInputs<'static> {
        VmInputs {
            accel: Accel::Tcg,
            firmware,
            kernel: Path::new("/out/t/boot/vmlinuz"),
            initrd: Path::new("/out/t/boot/initrd.img"),
            rom_dhcp: None,
            tap: None,
            vfio_host: None,
            serial_socket: Path::new("/tmp/s/serial.sock"),
            qmp_socket: Path::new("/tmp/s/qmp.sock"),
            dir: Path::new("/out/t"),
        }
    }

    fn argv(target: &Target, inputs: VmInputs) -> Vec<String> {
        spec(target, inputs).args().unwrap()
    }

    /// The whole argv: what every VM gets around `firmware` and `devices` (network, adapter,
    /// direct kernel).
    fn golden(machine: &str, memory: &str, firmware: &[&str], devices: &[&str]) -> Vec<String> {
        let head = [
            "-machine",
            machine,
            "-accel",
            "tcg",
            "-m",
            memory,
            "-nodefaults",
            "-no-reboot",
            "-display",
            "none",
        ];
        let sockets = [
            "-chardev",
            "socket,id=serial0,path=/tmp/s/serial.sock,server=off,logfile=/out/t/console.qemu.log,logappend=off",
            "-serial",
            "chardev:serial0",
            "-chardev",
            "socket,id=qmp,path=/tmp/s/qmp.sock,server=off",
            "-mon",
            "chardev=qmp,mode=control",
            "-device",
            "pvpanic",
        ];
        head.iter()
            .chain(firmware)
            .chain(&sockets)
            .chain(devices)
            .chain(&["-S"])
            .map(|w| w.to_string())
            .collect()
    }

    const SERCON: [&str; 2] = ["-fw_cfg", "name=etc/sercon-port,file=/out/t/sercon-port"];
    const DIRECT: [&str; 6] = [
        "-kernel",
        "/out/t/boot/vmlinuz",
        "-initrd",
        "/out/t/boot/initrd.img",
        "-append",
        "console=ttyS0,115200 panic=-1 no_timer_check loglevel=4 net.ifnames=0",
    ];

    fn found_adapter(rom: Option<&str>) -> Option<AdapterNeed> {
        Some(AdapterNeed::Found(Adapter {
            name: "cx3".into(),
            bdf: "0000:81:00.0".parse().unwrap(),
            guid: None,
            rom: rom.map(Into::into),
            vf: None,
            stand_in: false,
            lab: Default::default(),
        }))
    }

    #[test]
    fn bios_ipxe_on_user_networking_serves_the_script_over_qemus_tftp() {
        let t = target("", "[boot]\nnic = \"e1000\"\n");
        let mut i = inputs(bios());
        i.rom_dhcp = Some(RomDhcp {
            tftp_root: Some("/out/t/boot".into()),
            bootfile: "boot.ipxe".into(),
        });
        let devices = [
            "-netdev",
            "user,id=net0,tftp=/out/t/boot,bootfile=boot.ipxe",
            "-device",
            "e1000,netdev=net0,bootindex=1",
        ];
        assert_eq!(argv(&t, i), golden("q35", "1024", &SERCON, &devices));
    }

    #[test]
    fn an_http_fetch_hands_the_rom_the_scripts_url_and_no_tftp_root() {
        let t = target("", "[boot]\nfetch = \"http\"\n");
        let mut i = inputs(bios());
        i.rom_dhcp = Some(RomDhcp {
            tftp_root: None,
            bootfile: "http://10.0.2.2:4567/boot.ipxe".into(),
        });
        let devices = [
            "-netdev",
            "user,id=net0,bootfile=http://10.0.2.2:4567/boot.ipxe",
            "-device",
            "virtio-net-pci,netdev=net0,bootindex=1",
        ];
        assert_eq!(argv(&t, i), golden("q35", "1024", &SERCON, &devices));
    }

    #[test]
    fn uefi_direct_boot_hands_qemu_the_kernel_and_takes_the_nic_rom_away() {
        let t = target(
            "",
            "[boot]\nfirmware = \"uefi\"\nmethod = \"direct\"\nmachine = \"pc\"\nmemory = 2048\n",
        );
        let i = inputs(machine::FirmwareImage::Uefi {
            code: "/usr/share/OVMF/OVMF_CODE.fd".into(),
            vars_copy: "/out/t/OVMF_VARS.fd".into(),
        });
        let firmware = [
            "-drive",
            "if=pflash,format=raw,unit=0,file=/usr/share/OVMF/OVMF_CODE.fd,readonly=on",
            "-drive",
            "if=pflash,format=raw,unit=1,file=/out/t/OVMF_VARS.fd",
        ];
        let mut devices = vec![
            "-netdev",
            "user,id=net0",
            "-device",
            "virtio-net-pci,netdev=net0,romfile=",
        ];
        devices.extend(DIRECT);
        assert_eq!(argv(&t, i), golden("pc", "2048", &firmware, &devices));
    }

    #[test]
    fn a_dnsmasq_segment_puts_the_nic_on_its_tap() {
        let t = target(
            "backend = \"dnsmasq\"\n",
            "[network.dhcp_server]\nrange = [\"10.77.0.100\", \"10.77.0.150\"]\n",
        );
        let mut i = inputs(bios());
        // dnsmasq's DHCP names the script: the ROM gets nothing from QEMU.
        i.tap = Some("brt1-0".into());
        let devices = [
            "-netdev",
            "tap,id=net0,ifname=brt1-0,script=no,downscript=no",
            "-device",
            "virtio-net-pci,netdev=net0,bootindex=1",
        ];
        assert_eq!(argv(&t, i), golden("q35", "1024", &SERCON, &devices));
    }

    #[test]
    fn a_vfio_adapter_replaces_the_emulated_nic_and_netboots_with_its_rom() {
        let mut t = target("", "");
        let with_host = || {
            let mut i = inputs(bios());
            i.vfio_host = Some("0000:81:00.1".parse().unwrap());
            i
        };
        t.adapter = found_adapter(Some("/lab/flexboot.rom"));
        let devices = [
            "-device",
            "vfio-pci,host=0000:81:00.1,romfile=/lab/flexboot.rom,bootindex=1",
        ];
        assert_eq!(
            argv(&t, with_host()),
            golden("q35", "1024", &SERCON, &devices)
        );
        // No ROM file in the inventory: the card's own FlexBoot.
        t.adapter = found_adapter(None);
        let devices = ["-device", "vfio-pci,host=0000:81:00.1,rombar=1,bootindex=1"];
        assert_eq!(
            argv(&t, with_host()),
            golden("q35", "1024", &SERCON, &devices)
        );
        // A direct boot: no ROM, no boot order.
        t.boot.method = Method::Direct;
        let mut devices = vec!["-device", "vfio-pci,host=0000:81:00.1,rombar=0"];
        devices.extend(DIRECT);
        assert_eq!(
            argv(&t, with_host()),
            golden("q35", "1024", &SERCON, &devices)
        );
    }
}
