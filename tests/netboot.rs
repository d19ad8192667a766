//! Real netboots under QEMU (TCG): the NIC's iPXE ROM runs bootrig's script, which fetches the
//! kernel and a real initrd over TFTP (slirp's server) or HTTP (bootrig's), under SeaBIOS and OVMF.
//! Each boot is driven the way `bootrig run` drives one: QEMU paused (-S), console and QMP as
//! socket clients of listeners this test owns, `cont` over QMP once the console is attached.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bootrig::netboot::http::{HttpServer, RequestRecord};
use bootrig::netboot::ipxe::{self, FileSource, ScriptSpec};
use bootrig::netboot::stage;
use bootrig::qemu::accel::Accel;
use bootrig::qemu::firmware::{self, FirmwareFiles};
use bootrig::qemu::machine::{
    FirmwareImage, MachineType, Network, NicModel, NicRom, UserNet, VmSpec,
};
use common::{require, Need};

/// Bound for one boot: TCG boots take 10-25 s here, twice that when tests share the cores.
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
const KERNEL_STARTED_INIT: [&str; 2] = ["Run /init", "Loading, please wait..."];
const NO_ROOT: [&str; 1] = ["VFS: Unable to mount root fs"];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fw {
    Bios,
    Uefi,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Via {
    Tftp,
    Http,
}

struct Case {
    firmware: Fw,
    via: Via,
    nic: NicModel,
    machine: MachineType,
    initrd_arg: bool,
    /// Any of these on the console ends the boot successfully.
    expect: &'static [&'static str],
    /// A staged file removed before the boot, to make a fetch fail.
    remove: Option<&'static str>,
    /// How long to keep reading the console after the expected line.
    linger: Duration,
}

struct Outcome {
    console: String,
    found: Option<&'static str>,
    /// Since QEMU started: the script ran, the kernel printed its banner, `found` appeared.
    script_at: Option<Duration>,
    kernel_at: Option<Duration>,
    found_at: Option<Duration>,
    http_log: Vec<RequestRecord>,
    qmp_events: Vec<String>,
    serial_log: String,
    cmdline: String,
}

fn real_initrd() -> PathBuf {
    let path = common::fixtures_dir().join("mkinitramfs-gzip.img");
    assert!(path.is_file(), "{}: run images/setup first", path.display());
    path
}

/// `None` (after saying why) on a host without QEMU, the fixtures, the ROM or OVMF.
fn boot(name: &str, case: &Case) -> Option<Outcome> {
    let firmware = Need::NetbootFirmware {
        nic: case.nic,
        uefi: case.firmware == Fw::Uefi,
    };
    if !require(&[Need::Qemu, Need::Setup, firmware]) {
        return None;
    }
    let env = common::cache_env();
    let initrd = real_initrd();
    // Unix socket paths must stay under 108 bytes: a short temporary directory.
    let run = common::vm::run_dir("bootrig-netboot-");
    let boot_dir = run.path().join("boot");
    let staged = stage::stage_files(&boot_dir, &env.kernel, &initrd).unwrap();

    let server = (case.via == Via::Http).then(|| HttpServer::start(&boot_dir).unwrap());
    let fetch = match &server {
        Some(s) => FileSource::Http { port: s.port() },
        None => FileSource::Tftp,
    };
    let mut spec = ScriptSpec::new(
        fetch,
        &staged.kernel.name,
        &staged.initrd.name,
        "console=ttyS0,115200 panic=-1 no_timer_check",
    );
    spec.initrd_arg = case.initrd_arg;
    stage::write_script(&boot_dir, &ipxe::render(&spec).unwrap()).unwrap();
    if let Some(name) = case.remove {
        std::fs::remove_file(boot_dir.join(name)).unwrap();
    }

    let files = FirmwareFiles::system();
    let fw = match case.firmware {
        Fw::Bios => FirmwareImage::Bios {
            sercon_port: Some(firmware::write_sercon_port(run.path()).unwrap()),
        },
        Fw::Uefi => {
            let pair = files.ovmf().expect("run images/setup first");
            FirmwareImage::Uefi {
                vars_copy: pair.copy_vars(run.path()).unwrap(),
                code: pair.code,
            }
        }
    };
    // Over HTTP the script comes from bootrig's server too: no TFTP at all.
    let (tftp_root, bootfile) = match fetch {
        FileSource::Tftp | FileSource::TftpAt(_) => {
            (Some(boot_dir.clone()), stage::SCRIPT_NAME.to_owned())
        }
        FileSource::Http { .. } => (None, format!("{}/{}", fetch.base_url(), stage::SCRIPT_NAME)),
    };
    let vm = VmSpec {
        machine: case.machine,
        accel: Accel::Tcg,
        memory_mib: 1024,
        firmware: fw,
        network: Network::User(UserNet {
            nic: case.nic,
            rom: NicRom::QemuDefault,
            bootindex: Some(1),
            tftp_root,
            bootfile: Some(bootfile),
        }),
        serial_socket: run.path().join("serial.sock"),
        serial_log: run.path().join("serial.log"),
        qmp_socket: run.path().join("qmp.sock"),
        start_paused: true,
        direct: None,
        vfio: vec![],
    };
    let mut qemu = common::vm::Vm::start(&vm);
    let started = qemu.started;
    // QEMU is paused until resumed below: every fetch it makes is the guest's.
    if let Some(server) = &server {
        server.set_guest_pid(qemu.id());
    }
    qemu.resume();

    let (mut found, mut found_at, mut script_at, mut kernel_at) = (None, None, None, None);
    let deadline = started + BOOT_TIMEOUT;
    // Each console change: note when the script ran and the kernel started; stop at an expected
    // line.
    qemu.wait_console(deadline.saturating_duration_since(Instant::now()), |text| {
        if script_at.is_none() && text.contains(ipxe::markers::SCRIPT_RUNNING) {
            script_at = Some(started.elapsed());
        }
        if kernel_at.is_none() && text.contains("Linux version") {
            kernel_at = Some(started.elapsed());
        }
        found = case.expect.iter().copied().find(|e| text.contains(e));
        if found.is_some() {
            found_at = Some(started.elapsed());
        }
        found.is_some()
    });
    if found.is_some() {
        // Keep reading for `linger`: the console must not go on to what the test rules out.
        qemu.wait_console(case.linger, |_| false);
    }
    qemu.kill();
    // QEMU is gone: the QMP events it sent are all in.
    let qmp_events = qemu.event_names();
    let cmdline = qemu.cmdline.clone();
    let http_log = server.map(|s| s.log()).unwrap_or_default();
    let console = qemu.console();
    let serial_log = qemu.serial_log();
    let stderr = qemu.stderr();
    let outcome = Outcome {
        console,
        found,
        script_at,
        kernel_at,
        found_at,
        http_log,
        qmp_events,
        serial_log,
        cmdline,
    };
    let secs = |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.1}s", d.as_secs_f64()));
    eprintln!(
        "{name}: script {} kernel {} {:?} {} (QMP events {:?})",
        secs(outcome.script_at),
        secs(outcome.kernel_at),
        outcome.found.unwrap_or("nothing expected"),
        secs(outcome.found_at),
        outcome.qmp_events,
    );
    for r in &outcome.http_log {
        eprintln!("{name}: http {r}");
    }
    if outcome.found.is_none() {
        panic!(
            "{name}: none of {:?} within {BOOT_TIMEOUT:?}\ncommand: {}\nQEMU stderr: {stderr}\nconsole tail:\n{}",
            case.expect,
            outcome.cmdline,
            tail(&outcome.console, 3000)
        );
    }
    Some(outcome)
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// The script ran, every step up to `boot` announced itself, and nothing failed.
fn assert_script_ran(o: &Outcome) {
    for marker in [
        ipxe::markers::SCRIPT_RUNNING,
        ipxe::markers::FETCHING_KERNEL,
        ipxe::markers::FETCHING_INITRD,
        ipxe::markers::BOOTING,
    ] {
        assert!(o.console.contains(marker), "no {marker:?} on the console");
    }
    assert!(!o.console.contains(ipxe::markers::FAILED));
    // QEMU's own log of the console holds what the harness read.
    assert!(o.serial_log.contains(ipxe::markers::BOOTING));
}

fn assert_http_fetched_both(o: &Outcome) {
    for name in [stage::SCRIPT_NAME, stage::KERNEL_NAME, stage::INITRD_NAME] {
        let path = format!("/{name}");
        assert!(
            o.http_log.iter().any(|r| r.method == "GET"
                && r.path == path
                && r.status == 200
                && r.complete
                && r.bytes_sent == r.body_len),
            "{path} not fetched whole: {:?}",
            o.http_log
        );
    }
}

#[test]
fn bios_tftp_virtio() {
    let Some(o) = boot(
        "bios/tftp/virtio-net-pci",
        &Case {
            firmware: Fw::Bios,
            via: Via::Tftp,
            nic: NicModel::VirtioNetPci,
            machine: MachineType::Pc,
            initrd_arg: true,
            expect: &KERNEL_STARTED_INIT,
            remove: None,
            linger: Duration::ZERO,
        },
    ) else {
        return;
    };
    assert_script_ran(&o);
    assert!(o.console.contains("tftp://10.0.2.2/initrd.img"));
}

#[test]
fn uefi_http_e1000e() {
    let Some(o) = boot(
        "uefi/http/e1000e",
        &Case {
            firmware: Fw::Uefi,
            via: Via::Http,
            nic: NicModel::E1000e,
            machine: MachineType::Q35,
            initrd_arg: true,
            expect: &KERNEL_STARTED_INIT,
            remove: None,
            linger: Duration::ZERO,
        },
    ) else {
        return;
    };
    assert_script_ran(&o);
    assert_http_fetched_both(&o);
    assert!(o
        .console
        .contains("EFI stub: Loaded initrd from command line option"));
}

#[test]
fn bios_http_e1000() {
    let Some(o) = boot(
        "bios/http/e1000",
        &Case {
            firmware: Fw::Bios,
            via: Via::Http,
            nic: NicModel::E1000,
            machine: MachineType::Q35,
            initrd_arg: true,
            expect: &KERNEL_STARTED_INIT,
            remove: None,
            linger: Duration::ZERO,
        },
    ) else {
        return;
    };
    assert_script_ran(&o);
    assert_http_fetched_both(&o);
}

#[test]
fn uefi_tftp_virtio() {
    let Some(o) = boot(
        "uefi/tftp/virtio-net-pci",
        &Case {
            firmware: Fw::Uefi,
            via: Via::Tftp,
            nic: NicModel::VirtioNetPci,
            machine: MachineType::Q35,
            initrd_arg: true,
            expect: &KERNEL_STARTED_INIT,
            remove: None,
            linger: Duration::ZERO,
        },
    ) else {
        return;
    };
    assert_script_ran(&o);
}

/// The classic UEFI mistake: no `initrd=` on the command line, so the EFI stub never loads the
/// initrd iPXE fetched and the kernel finds no root file system.
#[test]
fn uefi_without_initrd_arg_boots_without_initrd() {
    let Some(o) = boot(
        "uefi/tftp/virtio-net-pci, no initrd=",
        &Case {
            firmware: Fw::Uefi,
            via: Via::Tftp,
            nic: NicModel::VirtioNetPci,
            machine: MachineType::Q35,
            initrd_arg: false,
            expect: &NO_ROOT,
            remove: None,
            linger: Duration::ZERO,
        },
    ) else {
        return;
    };
    assert_script_ran(&o);
    assert!(!o.console.contains("EFI stub: Loaded initrd"));
    for started in KERNEL_STARTED_INIT {
        assert!(!o.console.contains(started), "{started}");
    }
}

/// A fetch that fails (the initrd is missing: HTTP 404) says so on the console and stops there:
/// no kernel starts, and the firmware does not go on to other boot devices.
#[test]
fn failed_fetch_stops_with_a_clear_line() {
    let Some(o) = boot(
        "bios/http/virtio-net-pci, initrd missing",
        &Case {
            firmware: Fw::Bios,
            via: Via::Http,
            nic: NicModel::VirtioNetPci,
            machine: MachineType::Pc,
            initrd_arg: true,
            expect: &[ipxe::markers::FAILED],
            remove: Some(stage::INITRD_NAME),
            linger: Duration::from_secs(3),
        },
    ) else {
        return;
    };
    assert!(o.console.contains(ipxe::markers::FETCHING_INITRD));
    assert!(!o.console.contains(ipxe::markers::BOOTING));
    let after = o.console.split(ipxe::markers::FAILED).nth(1).unwrap();
    assert!(
        !after.contains("Linux version") && !after.contains("Booting from"),
        "{after}"
    );
    assert!(o
        .http_log
        .iter()
        .any(|r| r.path == "/initrd.img" && r.status == 404));
}
