//! The QMP client against the real QEMU (TCG): lifecycle of a paused machine, a guest panic
//! reported through pvpanic, a guest panic without a pvpanic driver, and QEMU killed mid-session.

mod common;

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use bootrig::initrd::cpio::Entry;
use bootrig::initrd::pack;
use bootrig::qemu::process::GroupChild;
use bootrig::qemu::qmp::{Qmp, QmpError, QmpEvent};

/// A TCG boot to a kernel panic takes 3-10 s here; leave room for a loaded CI machine.
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

struct Machine {
    qemu: GroupChild,
    qmp: Qmp,
    events: Receiver<QmpEvent>,
    dir: tempfile::TempDir,
}

impl Machine {
    fn console(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("console.txt")).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.txt")).unwrap_or_default()
    }

    /// Waits for the event `name`, returning it and every event before it.
    fn wait_event(&self, name: &str, timeout: Duration) -> (QmpEvent, Vec<QmpEvent>) {
        let deadline = Instant::now() + timeout;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) if e.name == name => return (e, before),
                Ok(e) => before.push(e),
                Err(err) => panic!(
                    "no {name} event ({err}); events so far: {:?}\nconsole tail:\n{}\nstderr:\n{}",
                    before.iter().map(|e| &e.name).collect::<Vec<_>>(),
                    tail(&self.console()),
                    self.stderr()
                ),
            }
        }
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Starts QEMU paused (`-S`) as a QMP client of a socket we listen on, and accepts it.
fn start(extra: &[&str]) -> Machine {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("qmp.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let stderr = std::fs::File::create(dir.path().join("stderr.txt")).unwrap();
    let mut command = Command::new("qemu-system-x86_64");
    command
        .args(["-S", "-nodefaults", "-display", "none"])
        .args(["-machine", "q35,accel=tcg", "-m", "256"])
        .arg("-chardev")
        .arg(format!("socket,id=qmp,path={},server=off", sock.display()))
        .args(["-mon", "chardev=qmp,mode=control"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    let mut qemu =
        GroupChild::spawn(&mut command).expect("qemu-system-x86_64: run images/setup first");
    let (qmp, events) = Qmp::accept(
        &listener,
        &dir.path().join("qmp.jsonl"),
        Duration::from_secs(30),
        || !matches!(qemu.wait_timeout(Duration::ZERO), Ok(None)),
    )
    .unwrap_or_else(|e| {
        let stderr = std::fs::read_to_string(dir.path().join("stderr.txt")).unwrap_or_default();
        panic!("{e}\nQEMU stderr:\n{stderr}")
    });
    Machine {
        qemu,
        qmp,
        events,
        dir,
    }
}

fn journal_names(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("qmp.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|r| {
            let msg = &r["msg"];
            msg["execute"]
                .as_str()
                .or_else(|| msg["event"].as_str())
                .map(|s| format!("{}:{s}", r["dir"].as_str().unwrap_or("?")))
        })
        .collect()
}

#[test]
fn paused_machine_continues_and_quits() {
    if !common::require(&[common::Need::Qemu]) {
        return;
    }
    let start_time = Instant::now();
    let mut m = start(&[]);
    let version = &m.qmp.greeting().version.qemu;
    assert!((version.major, version.minor) >= (7, 2), "{version:?}");
    let status = m.qmp.query_status().unwrap();
    assert!(!status.running);
    assert_eq!(status.status, "prelaunch");
    m.qmp.cont().unwrap();
    m.wait_event("RESUME", Duration::from_secs(10));
    let status = m.qmp.query_status().unwrap();
    assert!(status.running);
    assert_eq!(status.typed(), Some(qapi::qmp::RunState::running));
    m.qmp.quit(Duration::from_secs(10)).unwrap();
    let (shutdown, _) = m.wait_event("SHUTDOWN", Duration::from_secs(10));
    assert_eq!(shutdown.reason(), Some("host-qmp-quit"));
    assert!(
        shutdown.typed.is_some(),
        "QEMU 7.2's SHUTDOWN fits qapi's schema"
    );
    assert!(m.events.recv().is_err(), "events close with the connection");
    let exit = m.qemu.wait_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(exit.and_then(|s| s.code()), Some(0), "QEMU exits cleanly");
    assert!(m.qmp.anomalies().is_empty(), "{:?}", m.qmp.anomalies());
    assert_eq!(
        journal_names(m.dir.path()),
        [
            "sent:qmp_capabilities",
            "sent:query-status",
            "sent:cont",
            "received:RESUME",
            "sent:query-status",
            "sent:quit",
            "received:SHUTDOWN"
        ]
    );
    eprintln!("lifecycle: {:?}", start_time.elapsed());
}

fn busybox() -> PathBuf {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    bootrig::qemu::find_on_path(&path_var, "busybox".as_ref())
        .expect("busybox (busybox-static): run images/setup first")
}

/// An initrd whose /init loads the pvpanic driver (a module in Debian's kernel, so it cannot
/// work without userspace) and crashes the kernel through sysrq.
fn pvpanic_initrd(dir: &Path) -> PathBuf {
    let env = common::cache_env();
    let pvpanic = env.modules.join("kernel/drivers/misc/pvpanic");
    let module = |name: &str| {
        let path = pvpanic.join(name);
        std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e}: run images/setup first", path.display()))
    };
    let init = "#!/bin/busybox sh\n\
        /bin/busybox mount -t devtmpfs dev /dev\n\
        exec >/dev/console 2>&1\n\
        /bin/busybox mount -t proc proc /proc\n\
        /bin/busybox insmod /pvpanic.ko\n\
        /bin/busybox insmod /pvpanic-mmio.ko\n\
        echo bootrig-test: pvpanic loaded\n\
        echo c > /proc/sysrq-trigger\n";
    let entries = [
        Entry::new("bin", 0o40755, Vec::new()),
        Entry::new("dev", 0o40755, Vec::new()),
        Entry::new("proc", 0o40755, Vec::new()),
        Entry::new("bin/busybox", 0o100755, std::fs::read(busybox()).unwrap()),
        Entry::new("init", 0o100755, init.as_bytes().to_vec()),
        Entry::new("pvpanic.ko", 0o100644, module("pvpanic.ko")),
        Entry::new("pvpanic-mmio.ko", 0o100644, module("pvpanic-mmio.ko")),
    ];
    let path = dir.join("pvpanic.cpio");
    std::fs::write(&path, pack::archive(&entries).unwrap().bytes).unwrap();
    path
}

#[test]
fn guest_panic_reaches_qmp_through_pvpanic() {
    if !common::require(common::BUSYBOX_BOOT) {
        return;
    }
    let start_time = Instant::now();
    let env = common::cache_env();
    let work = tempfile::tempdir().unwrap();
    let initrd = pvpanic_initrd(work.path());
    let kernel = env.kernel.to_str().unwrap().to_owned();
    let initrd = initrd.to_str().unwrap().to_owned();
    let dir_console = work.path().join("console.txt");
    let serial = format!("file:{}", dir_console.display());
    let mut m = start(&[
        "-kernel",
        &kernel,
        "-initrd",
        &initrd,
        "-append",
        "console=ttyS0 panic=0",
        "-device",
        "pvpanic",
        "-action",
        "panic=pause",
        "-serial",
        &serial,
    ]);
    m.qmp.cont().unwrap();
    let (panicked, before) = m.wait_event("GUEST_PANICKED", BOOT_TIMEOUT);
    assert_eq!(panicked.panic_action(), Some("pause"));
    assert!(
        matches!(
            panicked.typed,
            Some(qapi::qmp::Event::GUEST_PANICKED { .. })
        ),
        "{panicked:?}"
    );
    assert!(before.iter().any(|e| e.name == "RESUME"));
    assert_eq!(m.qmp.query_status().unwrap().status, "guest-panicked");
    let console = std::fs::read_to_string(&dir_console).unwrap();
    assert!(
        console.contains("bootrig-test: pvpanic loaded"),
        "{}",
        tail(&console)
    );
    assert!(
        console.contains("Kernel panic - not syncing: sysrq triggered crash"),
        "{}",
        tail(&console)
    );
    m.qmp.quit(Duration::from_secs(10)).unwrap();
    assert!(m
        .qemu
        .wait_timeout(Duration::from_secs(10))
        .unwrap()
        .is_some());
    eprintln!(
        "pvpanic: GUEST_PANICKED {:?} after connect, test {:?}",
        panicked.received,
        start_time.elapsed()
    );
}

/// No initrd: the kernel panics at "VFS: Unable to mount root fs". Debian builds the pvpanic
/// driver as a module, so nothing tells QEMU; `panic=-1` makes the kernel reboot at once,
/// which QMP reports as a guest RESET.
#[test]
fn root_fs_panic_without_pvpanic_driver_shows_as_guest_reset() {
    if !common::require(&[common::Need::Qemu, common::Need::Setup]) {
        return;
    }
    let start_time = Instant::now();
    let env = common::cache_env();
    let kernel = env.kernel.to_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let console_path = dir.path().join("console.txt");
    let serial = format!("file:{}", console_path.display());
    let mut m = start(&[
        "-kernel",
        &kernel,
        "-append",
        "console=ttyS0 panic=-1 no_timer_check",
        "-device",
        "pvpanic",
        "-action",
        "reboot=shutdown",
        "-serial",
        &serial,
    ]);
    m.qmp.cont().unwrap();
    let (shutdown, before) = m.wait_event("SHUTDOWN", BOOT_TIMEOUT);
    assert_eq!(shutdown.reason(), Some("guest-reset"), "{shutdown:?}");
    assert_eq!(shutdown.guest_initiated(), Some(true));
    assert!(
        !before.iter().any(|e| e.name == "GUEST_PANICKED"),
        "pvpanic reported a panic without its driver: {before:?}"
    );
    let console = std::fs::read_to_string(&console_path).unwrap();
    assert!(
        console.contains("VFS: Unable to mount root fs"),
        "{}",
        tail(&console)
    );
    assert!(m
        .qemu
        .wait_timeout(Duration::from_secs(10))
        .unwrap()
        .is_some());
    assert!(m.events.recv().is_err());
    eprintln!("root fs panic: {:?}", start_time.elapsed());
}

#[test]
fn qemu_killed_mid_session_fails_commands_promptly() {
    if !common::require(&[common::Need::Qemu]) {
        return;
    }
    let mut m = start(&[]);
    m.qmp.cont().unwrap();
    m.wait_event("RESUME", Duration::from_secs(10));
    // GroupChild::kill sends SIGKILL to QEMU's process group.
    m.qemu.kill().unwrap();
    let start_time = Instant::now();
    let err = m.qmp.query_status().unwrap_err();
    assert!(
        matches!(
            err,
            QmpError::Closed {
                command: "query-status",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        start_time.elapsed() < Duration::from_secs(2),
        "{:?}",
        start_time.elapsed()
    );
    // Events close: nothing after RESUME, then the channel ends.
    let rest: Vec<String> = m.events.iter().map(|e| e.name).collect();
    assert!(rest.is_empty(), "{rest:?}");
    assert!(m.qmp.is_closed());
    eprintln!("killed: error after {:?}", start_time.elapsed());
}

/// Which events this host's QEMU can emit that qapi's compiled schema does not know (those
/// arrive with `typed: None`); the ones bootrig relies on must be known.
#[test]
fn host_qemu_events_versus_qapi_schema() {
    if !common::require(&[common::Need::Qemu]) {
        return;
    }
    let mut m = start(&[]);
    let schema = m
        .qmp
        .execute_value(&qapi::qmp::query_qmp_schema {}, Duration::from_secs(10))
        .unwrap();
    let events: Vec<&str> = schema
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["meta-type"] == "event")
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(events.len() > 30, "{events:?}");
    let unknown_to_qapi: Vec<&str> = events
        .iter()
        .copied()
        .filter(|name| {
            let probe = serde_json::json!({
                "event": name, "data": {}, "timestamp": {"seconds": 0, "microseconds": 0}
            });
            // A known event with missing data fields fails differently from an unknown name.
            serde_json::from_value::<qapi::qmp::Event>(probe)
                .err()
                .is_some_and(|e| e.to_string().contains("unknown variant"))
        })
        .collect();
    eprintln!(
        "host QEMU emits {} event kinds; unknown to qapi: {unknown_to_qapi:?}",
        events.len()
    );
    for needed in ["SHUTDOWN", "RESET", "STOP", "RESUME", "GUEST_PANICKED"] {
        assert!(events.contains(&needed), "{needed} not in QEMU's schema");
        assert!(
            !unknown_to_qapi.contains(&needed),
            "{needed} unknown to qapi"
        );
    }
    m.qmp.quit(Duration::from_secs(10)).unwrap();
}
