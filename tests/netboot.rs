//! Real netboots under QEMU (TCG): the NIC's iPXE ROM runs bootrig's script, which fetches the
//! kernel and a real initrd over TFTP (slirp's server) or HTTP (bootrig's), under SeaBIOS and OVMF.
//! Each boot is driven the way `bootrig run` drives one: QEMU paused (-S), console and QMP as
//! socket clients of listeners this test owns, `cont` over QMP once the console is attached.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bootrig::boot::http::{HttpServer, RequestRecord};
use bootrig::boot::ipxe::{self, Fetch, ScriptSpec};
use bootrig::boot::stage;
use bootrig::qemu::accel::Accel;
use bootrig::qemu::firmware::{self, FirmwareFiles};
use bootrig::qemu::machine::{
    shell_words, Firmware, MachineType, Network, NicModel, NicRom, UserNet, VmSpec,
};
use bootrig::qemu::process::GroupChild;

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

fn qemu() -> PathBuf {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    bootrig::qemu::locate(
        &path_var,
        std::env::var_os(bootrig::qemu::QEMU_ENV).as_deref(),
    )
    .expect("qemu-system-x86_64: run images/setup first")
}

fn real_initrd() -> PathBuf {
    let path = common::fixtures_dir().join("mkinitramfs-gzip.img");
    assert!(path.is_file(), "{}: run images/setup first", path.display());
    path
}

/// Waits for QEMU to connect to `listener`, while QEMU is alive.
fn accept(listener: &UnixListener, child: &mut GroupChild, what: &str) -> UnixStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                return stream;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("accepting the {what} connection: {e}"),
        }
        if let Some(status) = child.wait_timeout(Duration::from_millis(20)).unwrap() {
            panic!("QEMU exited ({status}) before connecting its {what} socket");
        }
        assert!(Instant::now() < deadline, "QEMU never connected its {what}");
    }
}

/// Handshake, then `cont`; QMP events keep arriving on the returned reader.
fn qmp_resume(stream: UnixStream) -> BufReader<UnixStream> {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("\"QMP\""), "QMP greeting: {line}");
    for command in ["qmp_capabilities", "cont"] {
        writeln!(writer, "{{\"execute\":\"{command}\"}}").unwrap();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line.contains("\"return\"") {
                break;
            }
            assert!(!line.contains("\"error\""), "{command}: {line}");
        }
    }
    reader
}

fn boot(name: &str, case: &Case) -> Outcome {
    let env = common::cache_env();
    let initrd = real_initrd();
    // Unix socket paths must stay under 108 bytes: a short temporary directory.
    let run = tempfile::Builder::new()
        .prefix("bootrig-netboot-")
        .tempdir_in("/tmp")
        .unwrap();
    let boot_dir = run.path().join("boot");
    let staged = stage::stage_files(&boot_dir, &env.kernel, &initrd).unwrap();

    let server = (case.via == Via::Http).then(|| HttpServer::start(&boot_dir).unwrap());
    let fetch = match &server {
        Some(s) => Fetch::Http { port: s.port() },
        None => Fetch::Tftp,
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
    files.ipxe_rom(case.nic).expect("run images/setup first");
    let fw = match case.firmware {
        Fw::Bios => Firmware::Bios {
            sercon_port: Some(firmware::write_sercon_port(run.path()).unwrap()),
        },
        Fw::Uefi => {
            let pair = files.ovmf().expect("run images/setup first");
            Firmware::Uefi {
                vars_copy: pair.copy_vars(run.path()).unwrap(),
                code: pair.code,
            }
        }
    };
    // Over HTTP the script comes from bootrig's server too: no TFTP at all.
    let (tftp_root, bootfile) = match fetch {
        Fetch::Tftp | Fetch::TftpAt(_) => (Some(boot_dir.clone()), stage::SCRIPT_NAME.to_owned()),
        Fetch::Http { .. } => (None, format!("{}/{}", fetch.base_url(), stage::SCRIPT_NAME)),
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
    let serial_listener = UnixListener::bind(&vm.serial_socket).unwrap();
    let qmp_listener = UnixListener::bind(&vm.qmp_socket).unwrap();
    let qemu = qemu();
    let args = vm.args().unwrap();
    let cmdline =
        shell_words(std::iter::once(qemu.to_string_lossy().into_owned()).chain(args.clone()));
    let stderr_path = run.path().join("qemu.stderr");
    let started = Instant::now();
    let mut child = GroupChild::spawn(
        Command::new(&qemu)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).unwrap()),
    )
    .unwrap();
    // QEMU is paused until resumed below: every fetch it makes is the guest's.
    if let Some(server) = &server {
        server.set_guest_pid(child.id());
    }
    let mut serial = accept(&serial_listener, &mut child, "serial");
    let qmp = accept(&qmp_listener, &mut child, "QMP");
    let mut qmp = qmp_resume(qmp);

    serial
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 65536];
    let (mut found, mut found_at, mut script_at, mut kernel_at) = (None, None, None, None);
    let deadline = started + BOOT_TIMEOUT;
    while found.is_none() && Instant::now() < deadline {
        match serial.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("reading the console: {e}"),
        }
        let text = String::from_utf8_lossy(&bytes);
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
    }
    let linger_until = Instant::now() + case.linger;
    while found.is_some() && Instant::now() < linger_until {
        match serial.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
    }
    child.kill().unwrap();
    // QEMU is gone: what is left on the QMP socket are the events it sent.
    qmp.get_ref()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut qmp_events = Vec::new();
    let mut line = String::new();
    while qmp.read_line(&mut line).unwrap_or(0) > 0 {
        if let Some(event) = line.split("\"event\": \"").nth(1) {
            qmp_events.push(event.split('"').next().unwrap_or("").to_owned());
        }
        line.clear();
    }
    let http_log = server.map(|s| s.log()).unwrap_or_default();
    let console = String::from_utf8_lossy(&bytes).into_owned();
    let serial_log = std::fs::read_to_string(&vm.serial_log).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
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
    outcome
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
    let o = boot(
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
    );
    assert_script_ran(&o);
    assert!(o.console.contains("tftp://10.0.2.2/initrd.img"));
}

#[test]
fn uefi_http_e1000e() {
    let o = boot(
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
    );
    assert_script_ran(&o);
    assert_http_fetched_both(&o);
    assert!(o
        .console
        .contains("EFI stub: Loaded initrd from command line option"));
}

#[test]
fn bios_http_e1000() {
    let o = boot(
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
    );
    assert_script_ran(&o);
    assert_http_fetched_both(&o);
}

#[test]
fn uefi_tftp_virtio() {
    let o = boot(
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
    );
    assert_script_ran(&o);
}

/// The classic UEFI mistake: no `initrd=` on the command line, so the EFI stub never loads the
/// initrd iPXE fetched and the kernel finds no root file system.
#[test]
fn uefi_without_initrd_arg_boots_without_initrd() {
    let o = boot(
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
    );
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
    let o = boot(
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
    );
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
