//! QEMU's life for one boot: the sockets it connects to, started paused, connected, resumed
//! once the console reader is in place (so no console byte is lost), and stopped.

use std::fs::{self, File};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use crate::console::serial::{accept_bounded, SerialConsole};
use crate::console::ConsoleLine;
use crate::net::Segment;
use crate::netboot::http::HttpServer;
use crate::qemu::process::GroupChild;
use crate::qemu::qmp::{Qmp, QmpEvent};
use crate::qemu::socket::SocketDir;

use super::{io_error, Context, SetupError};

/// How long QEMU may take to connect its sockets after it starts.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a clean QMP `quit` may take before QEMU is killed.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);

/// The serial and QMP sockets bootrig listens on before QEMU starts; removed when dropped.
pub(super) struct Sockets {
    // Fields drop in order: the listeners close before their directory goes.
    qmp: UnixListener,
    serial: UnixListener,
    serial_path: PathBuf,
    qmp_path: PathBuf,
    _dir: SocketDir,
}

impl Sockets {
    pub(super) fn bind() -> Result<Self, SetupError> {
        // A short private directory: a Unix socket path must fit in 108 bytes.
        let dir = SocketDir::create().map_err(io_error(&std::env::temp_dir()))?;
        let serial_path = dir.path().join("serial.sock");
        let qmp_path = dir.path().join("qmp.sock");
        let serial = UnixListener::bind(&serial_path).map_err(io_error(&serial_path))?;
        let qmp = UnixListener::bind(&qmp_path).map_err(io_error(&qmp_path))?;
        Ok(Self {
            qmp,
            serial,
            serial_path,
            qmp_path,
            _dir: dir,
        })
    }

    pub(super) fn serial_path(&self) -> &Path {
        &self.serial_path
    }

    pub(super) fn qmp_path(&self) -> &Path {
        &self.qmp_path
    }
}

/// QEMU running the guest, its console read and its QMP connected. Dropping it kills QEMU.
pub(super) struct Qemu {
    // Fields drop in order: the console and QMP let go before QEMU is killed.
    pub console: SerialConsole,
    qmp: Qmp,
    child: GroupChild,
}

/// How QEMU ended.
pub(super) struct Stopped {
    pub lines: Vec<ConsoleLine>,
    pub status: Option<ExitStatus>,
    /// QEMU was still running when the drive ended, so its exit status is bootrig's doing.
    pub stopped_by_us: bool,
    /// Reaped, or killed when dropped (with the boot's other guards).
    _child: GroupChild,
}

impl Qemu {
    /// Starts QEMU paused with `args` (QEMU's stderr to `dir/qemu.stderr`), in the segment's
    /// namespace if there is one, accepts its serial console (raw bytes to `dir/console.log`)
    /// and QMP (to `dir/qmp.jsonl`), and resumes the guest. Also returns QMP's events.
    pub(super) fn start(
        ctx: &Context,
        dir: &Path,
        args: &[String],
        sockets: &Sockets,
        segment: Option<&mut Segment>,
        http: Option<&HttpServer>,
    ) -> Result<(Self, Receiver<QmpEvent>), SetupError> {
        let stderr_path = dir.join("qemu.stderr");
        let stderr = File::create(&stderr_path).map_err(io_error(&stderr_path))?;
        let mut command = Command::new(&ctx.qemu);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        if let Some(seg) = &segment {
            // QEMU joins the segment's namespace, where its tap is; its sockets are paths,
            // which work across namespaces.
            seg.enter_on_spawn(&mut command)?;
        }
        let mut child = GroupChild::spawn(&mut command).map_err(|source| SetupError::Spawn {
            qemu: ctx.qemu.clone(),
            source,
        })?;
        if let Some(seg) = segment {
            seg.register_qemu(child.id())?;
        }
        // Before the guest runs (it starts paused): what QEMU fetches is the guest's, the
        // rest foreign.
        if let Some(server) = http {
            server.set_guest_pid(child.id());
        }
        let qemu_start = |child: &mut GroupChild, what: String| {
            let _ = child.kill();
            let text = fs::read_to_string(&stderr_path).unwrap_or_default();
            SetupError::QemuStart {
                detail: format!("{what}; QEMU said: {}", text.trim()),
            }
        };

        // QEMU connects the serial chardev first (it is first on the command line), then QMP.
        let serial = match accept_bounded(
            &sockets.serial,
            &sockets.serial_path,
            CONNECT_TIMEOUT,
            || matches!(child.wait_timeout(Duration::ZERO), Ok(None)),
        ) {
            Ok(s) => s,
            Err(e) => return Err(qemu_start(&mut child, crate::error_chain(&e))),
        };
        let qmp_log = dir.join("qmp.jsonl");
        let (mut qmp, events) = match Qmp::accept(&sockets.qmp, &qmp_log, CONNECT_TIMEOUT, || {
            !matches!(child.wait_timeout(Duration::ZERO), Ok(None))
        }) {
            Ok(pair) => pair,
            Err(e) => return Err(qemu_start(&mut child, crate::error_chain(&e))),
        };
        let raw_path = dir.join("console.log");
        let raw = File::create(&raw_path).map_err(io_error(&raw_path))?;
        let t0 = Instant::now();
        let console =
            SerialConsole::start(serial, raw, t0).map_err(io_error(&sockets.serial_path))?;
        if let Err(e) = qmp.cont() {
            return Err(qemu_start(
                &mut child,
                format!("resuming the guest: {}", crate::error_chain(&e)),
            ));
        }
        Ok((
            Self {
                console,
                qmp,
                child,
            },
            events,
        ))
    }

    /// Stops QEMU: politely over QMP, then for sure; and reads the console to its end.
    pub(super) fn stop(mut self) -> Stopped {
        // The run state first, for qmp.jsonl: a guest stopped by a panic or an error shows
        // there.
        let stopped_by_us = matches!(self.child.wait_timeout(Duration::ZERO), Ok(None));
        if stopped_by_us {
            self.qmp.set_command_timeout(QUIT_TIMEOUT);
            let _ = self.qmp.query_status();
            let _ = self.qmp.quit(QUIT_TIMEOUT);
            if !matches!(self.child.wait_timeout(QUIT_TIMEOUT), Ok(Some(_))) {
                let _ = self.child.kill();
            }
        }
        let status = self.child.wait_timeout(QUIT_TIMEOUT).ok().flatten();
        drop(self.qmp);
        let lines = self.console.finish();
        Stopped {
            lines,
            status,
            stopped_by_us,
            _child: self.child,
        }
    }
}
