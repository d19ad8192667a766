//! The one QEMU launcher of the tests: a [`VmSpec`] (the command line `bootrig run` builds), QEMU
//! as a [`GroupChild`] (killed with its group on drop, also when an assertion unwinds), the
//! console and QMP as socket clients of listeners made here before QEMU starts — as a run drives
//! a boot — and bounded waits on the console.

use std::io::Read;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bootrig::qemu::accel::Accel;
use bootrig::qemu::machine::{
    shell_words, DirectKernel, FirmwareImage, MachineType, Network, NicModel, NicRom, UserNet,
    VmSpec,
};
use bootrig::qemu::process::GroupChild;
use bootrig::qemu::qmp::{Qmp, QmpEvent};

/// How long QEMU may take to connect its sockets (it does so before the guest starts).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// The QEMU binary the tests run: `$BOOTRIG_QEMU`, else qemu-system-x86_64 on PATH.
pub fn qemu_binary() -> Option<PathBuf> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    bootrig::qemu::locate(
        &path_var,
        std::env::var_os(bootrig::qemu::QEMU_ENV).as_deref(),
    )
    .ok()
}

/// A short private directory for a VM's sockets and logs: a Unix socket path must fit in 108
/// bytes, which a tempdir under target/ may not.
pub fn run_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("a directory in /tmp")
}

/// A direct kernel boot (TCG, no NIC ROM: the NIC only carries the guest's DHCP) with the
/// sockets and logs in `dir`; `nic` None is no NIC at all.
pub fn direct_spec(
    dir: &Path,
    machine: MachineType,
    kernel: &Path,
    initrd: &Path,
    append: &str,
    nic: Option<NicModel>,
) -> VmSpec {
    VmSpec {
        machine,
        accel: Accel::Tcg,
        memory_mib: 512,
        firmware: FirmwareImage::Bios { sercon_port: None },
        network: match nic {
            Some(nic) => Network::User(UserNet {
                nic,
                rom: NicRom::Disabled,
                bootindex: None,
                tftp_root: None,
                bootfile: None,
            }),
            None => Network::None,
        },
        vfio: vec![],
        serial_socket: dir.join("serial.sock"),
        serial_log: dir.join("serial.log"),
        qmp_socket: dir.join("qmp.sock"),
        start_paused: false,
        direct: Some(DirectKernel {
            kernel: kernel.to_owned(),
            initrd: initrd.to_owned(),
            append: append.to_owned(),
        }),
    }
}

/// What the console reader has seen so far.
#[derive(Default)]
struct Console {
    bytes: Vec<u8>,
    /// QEMU closed the socket (it exited): nothing more will come.
    closed: bool,
}

type SharedConsole = Arc<(Mutex<Console>, Condvar)>;

/// A running QEMU. Dropping it kills QEMU's process group.
pub struct Vm {
    // First, so it is dropped (QEMU killed) before the QMP session is shut.
    child: GroupChild,
    pub qmp: Qmp,
    pub events: Receiver<QmpEvent>,
    console: SharedConsole,
    /// The command as a shell line, for failure messages.
    pub cmdline: String,
    pub started: Instant,
    stderr: PathBuf,
    serial_log: PathBuf,
}

impl Vm {
    /// Starts `spec` (the guest stays paused with `start_paused` until [`Vm::resume`]).
    pub fn start(spec: &VmSpec) -> Vm {
        Self::start_with(spec, |_| {})
    }

    /// As [`Vm::start`], with `prepare` adjusting the command first (e.g. entering a namespace).
    pub fn start_with(spec: &VmSpec, prepare: impl FnOnce(&mut Command)) -> Vm {
        let qemu = qemu_binary().expect("qemu-system-x86_64: check with common::require first");
        let dir = spec
            .serial_socket
            .parent()
            .expect("the serial socket is in a directory");
        let stderr = dir.join("qemu.stderr");
        let serial_listener = UnixListener::bind(&spec.serial_socket)
            .unwrap_or_else(|e| panic!("{}: {e}", spec.serial_socket.display()));
        let qmp_listener = UnixListener::bind(&spec.qmp_socket)
            .unwrap_or_else(|e| panic!("{}: {e}", spec.qmp_socket.display()));
        let args = spec.args().expect("a valid VmSpec");
        let cmdline =
            shell_words(std::iter::once(qemu.to_string_lossy().into_owned()).chain(args.clone()));
        let mut command = Command::new(&qemu);
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("qemu.stderr"));
        prepare(&mut command);
        let started = Instant::now();
        let mut child = GroupChild::spawn(&mut command)
            .unwrap_or_else(|e| panic!("{}: {e}\ncommand: {cmdline}", qemu.display()));
        let gone = |child: &mut GroupChild| !matches!(child.wait_timeout(Duration::ZERO), Ok(None));
        let serial =
            bootrig::qemu::socket::accept_bounded(&serial_listener, CONNECT_TIMEOUT, || {
                gone(&mut child)
            })
            .unwrap_or_else(|e| {
                panic!(
                    "QEMU never connected its console ({e:?})\ncommand: {cmdline}\nQEMU stderr: {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                )
            });
        let (qmp, events) = Qmp::accept(
            &qmp_listener,
            &dir.join("qmp.jsonl"),
            CONNECT_TIMEOUT,
            || gone(&mut child),
        )
        .unwrap_or_else(|e| {
            panic!(
                "QMP: {e}\ncommand: {cmdline}\nQEMU stderr: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            )
        });
        let console: SharedConsole = Arc::default();
        let shared = console.clone();
        std::thread::spawn(move || read_console(serial, &shared));
        Vm {
            child,
            qmp,
            events,
            console,
            cmdline,
            started,
            stderr,
            serial_log: spec.serial_log.clone(),
        }
    }

    /// QMP `cont`: the guest of a `start_paused` spec starts, the console already attached.
    pub fn resume(&mut self) {
        self.qmp.cont().expect("QMP cont");
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Everything the console printed so far, as text.
    pub fn console(&self) -> String {
        let (lock, _) = &*self.console;
        let console = lock.lock().expect("console lock");
        String::from_utf8_lossy(&console.bytes).into_owned()
    }

    /// Waits up to `timeout` for `done` to hold on the console text; false if it never did
    /// (timed out, or QEMU ended first).
    pub fn wait_console(&self, timeout: Duration, mut done: impl FnMut(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let (lock, cvar) = &*self.console;
        let mut console = lock.lock().expect("console lock");
        loop {
            if done(&String::from_utf8_lossy(&console.bytes)) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if console.closed || left.is_zero() {
                return false;
            }
            console = cvar.wait_timeout(console, left).expect("console lock").0;
        }
    }

    /// Waits up to `timeout` for QEMU to exit, then for the console to be read to its end.
    /// `None`: still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status = self.child.wait_timeout(timeout).expect("wait for QEMU")?;
        // QEMU is gone, so its end of the console socket is closed: the reader sees EOF at once.
        self.wait_console(Duration::from_secs(30), |_| false);
        Some(status)
    }

    /// Kills QEMU's process group now.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill QEMU");
    }

    /// What QEMU wrote to stderr.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// QEMU's own log of the console (the chardev's logfile).
    pub fn serial_log(&self) -> String {
        std::fs::read_to_string(&self.serial_log).unwrap_or_default()
    }

    /// The names of the QMP events received so far.
    pub fn event_names(&self) -> Vec<String> {
        self.events.try_iter().map(|e| e.name).collect()
    }
}

fn read_console(mut serial: std::os::unix::net::UnixStream, shared: &SharedConsole) {
    let (lock, cvar) = &**shared;
    let mut chunk = [0u8; 65536];
    loop {
        let n = match serial.read(&mut chunk) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // A read error ends the console as EOF does; the waits then report what was read.
            read => read.unwrap_or(0),
        };
        let mut console = lock.lock().expect("console lock");
        if n == 0 {
            console.closed = true;
            cvar.notify_all();
            return;
        }
        console.bytes.extend_from_slice(&chunk[..n]);
        cvar.notify_all();
    }
}
