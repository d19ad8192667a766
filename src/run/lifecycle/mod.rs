//! One boot, end to end: the initrd (built, or given), the boot files, QEMU started paused with
//! its serial console and QMP on sockets bootrig already listens on, resumed once both are
//! connected (so no console byte is lost), driven until it ends, judged, and its evidence kept
//! in the target's artifact directory:
//!
//! `console.log` (raw bytes), `console.qemu.log` (QEMU's own log of the port), `console.txt`
//! (timestamped, ANSI removed), `qemu.cmdline`, `qemu.stderr`, `qmp.jsonl`, `http.log` (HTTP
//! fetches), `boot/` (kernel, initrd, iPXE script), `result.json`; for a built initrd also
//! `plan.json` (the build writes it beside its image, `initrd.built` in the artifact directory)
//! and `build.txt` (the flavor and the build's warnings).
//!
//! Each stage is a module with one job, and `boot_and_judge` calls them in order: `accel`
//! (`auto` resolved once per run), `media` (initrd, boot files, firmware files, iPXE script and
//! HTTP server), `adapter` (VFIO), `net` (dnsmasq segment or bridge tap), `vm` (the pure target
//! → `VmSpec` mapping), `qemu` (sockets, start, stop), `watch` (phases and limits while the
//! console is driven), `artifacts` (the evidence files) and `outcome` (cause, findings,
//! report). What a stage sets up on the host is a guard that undoes it when dropped, so an
//! error return or a panic leaves nothing behind.

mod accel;
mod adapter;
mod artifacts;
mod media;
mod net;
mod outcome;
mod qemu;
mod vm;
mod watch;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::fsutil::write_atomic;
use crate::netboot::{ipxe, stage};
use crate::qemu::accel::Accel;
use crate::qemu::firmware::FirmwareFiles;
use crate::qemu::machine;
use crate::report::model::{Outcome, ScenarioReport};
use crate::report::progress::Stage;
use crate::report::Progress;
use crate::scenario::AccelChoice;

pub use accel::AccelResolver;

use super::target::Target;
use crate::console::driver::{drive, drive_until, End, ShellOutcome};
use crate::console::serial::SerialError;
use crate::interrupt::Interrupt;
use crate::report::model::Finding;
use crate::verdict::phases::Phase;

/// What every boot of a run shares.
pub struct Context<'a> {
    pub qemu: PathBuf,
    pub accel: &'a AccelResolver,
    /// Overrides every scenario's `[boot] accel`.
    pub accel_override: Option<AccelChoice>,
    pub firmware: FirmwareFiles,
    pub interrupt: Interrupt,
    pub progress: &'a Progress,
    /// Where built images are cached; None: bootrig's default.
    pub build_cache: Option<PathBuf>,
    /// The sysfs root hardware checks read.
    pub sysfs: PathBuf,
}

/// Setting a boot up failed: the scenario could not be run as written (an Error outcome).
#[derive(Debug, Error)]
pub enum SetupError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Build(#[from] crate::build::BuildError),
    #[error(transparent)]
    Stage(#[from] stage::StageError),
    #[error(transparent)]
    Script(#[from] ipxe::ScriptError),
    #[error(transparent)]
    Http(#[from] crate::netboot::http::HttpError),
    #[error(transparent)]
    Firmware(#[from] crate::qemu::firmware::FirmwareError),
    #[error(transparent)]
    Machine(#[from] machine::MachineError),
    #[error(transparent)]
    Output(#[from] crate::fsutil::OutputError),
    #[error("starting {qemu}")]
    Spawn {
        qemu: PathBuf,
        source: std::io::Error,
    },
    #[error("QEMU did not start: {detail}")]
    QemuStart { detail: String },
    #[error("--until {pattern:?}: {message}")]
    Until { pattern: String, message: String },
    #[error("interrupted before the boot started")]
    Interrupted,
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Vfio(#[from] crate::vfio::VfioError),
    #[error(transparent)]
    LabRoot(#[from] crate::netboot::lab_root::LabRootError),
}

fn regex_until(pattern: &str) -> Result<regex::Regex, SetupError> {
    regex::Regex::new(pattern).map_err(|e| SetupError::Until {
        pattern: pattern.to_string(),
        message: e.to_string(),
    })
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SetupError + '_ {
    move |source| SetupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Runs one target with its artifacts in `dir`, and reports it. Never fails: a setup problem
/// is an Error outcome naming it.
pub fn run_target(target: &Target, dir: &Path, ctx: &Context) -> ScenarioReport {
    let started = Instant::now();
    ctx.progress.started(&target.id);
    let mut report = match target.skip_reason(&ctx.sysfs) {
        // No accelerator probe for a boot that will not happen.
        Some(reason) => {
            let mut report = outcome::blank_report(target, dir, None);
            report.outcome = Outcome::Skip;
            report.reason = Some(reason);
            report
        }
        None => {
            let accel = ctx.accel.resolve(
                ctx.accel_override.unwrap_or(target.boot.accel),
                &ctx.interrupt,
            );
            let mut report = outcome::blank_report(target, dir, Some(accel));
            if let Err(e) = boot_and_judge(target, dir, ctx, accel, &mut report) {
                report.outcome = Outcome::Error;
                report.reason = Some(crate::error_chain(&e));
            }
            report
        }
    };
    report.duration_seconds = started.elapsed().as_secs_f64();
    if let Ok(json) = serde_json::to_vec_pretty(&report) {
        // The report is also returned; a failed write loses only this copy.
        let _ = fs::create_dir_all(dir);
        let _ = write_atomic(&dir.join("result.json"), &json, true);
    }
    ctx.progress.finished(&report);
    report
}

fn boot_and_judge(
    target: &Target,
    dir: &Path,
    ctx: &Context,
    accel: Accel,
    report: &mut ScenarioReport,
) -> Result<(), SetupError> {
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let until = target.until.as_deref().map(regex_until).transpose()?;
    ctx.progress.stage(&target.id, Stage::Build, Duration::ZERO);
    let media = media::prepare(target, dir, ctx)?;
    // Guards, dropped in reverse on an error return: QEMU is killed, the HTTP server stopped,
    // the network taken down, the adapter given back, the sockets removed.
    let sockets = qemu::Sockets::bind()?;
    let passthrough = adapter::bind(target, ctx)?;
    let mut segment = net::segment(target, &media, dir)?;
    let host_tap = net::host_tap(target)?;
    let netboot = media::netboot(target, &media, segment.as_ref())?;
    let vm = vm::spec(
        target,
        vm::VmInputs {
            accel,
            firmware: media::firmware(target.boot.firmware, ctx, dir)?,
            kernel: &media.kernel,
            initrd: &media.initrd,
            rom_dhcp: netboot.dhcp.clone(),
            tap: net::tap_name(segment.as_ref(), host_tap.as_ref()),
            vfio_host: passthrough.as_ref().map(|p| p.device()),
            serial_socket: sockets.serial_path(),
            qmp_socket: sockets.qmp_path(),
            dir,
        },
    );
    let args = artifacts::qemu_args(dir, &ctx.qemu, &vm)?;
    if ctx.interrupt.requested() {
        return Err(SetupError::Interrupted);
    }
    let (mut qemu, events) = qemu::Qemu::start(
        ctx,
        dir,
        &args,
        &sockets,
        segment.as_mut(),
        netboot.http.as_ref(),
    )?;

    let mut watch = watch::BootWatch::new(target, ctx, events, segment.as_mut());
    let driven = drive_console(target, ctx, until.as_ref(), &mut qemu, &mut watch);
    let stopped = qemu.stop();
    let watched = watch.finish();
    if let Some(server) = netboot.http {
        artifacts::http_log(dir, server)?;
    }
    artifacts::console_txt(dir, &stopped.lines)?;

    let (end, answers) = match driven {
        Ok(pair) => pair,
        Err(e) => (
            End::Fatal(format!("console: {}", crate::error_chain(&e))),
            Vec::new(),
        ),
    };
    let ended = outcome::Ended {
        end: &end,
        lines: &stopped.lines,
        status: stopped.status,
        stopped_by_us: stopped.stopped_by_us,
        panicked: watched.panicked,
    };
    let (mut findings, cause) = outcome::examine(target, &media.plan, &ended, answers);
    if let Some(e) = watched.restart_error {
        findings.boot.push(Finding::RestartFault { error: e });
    }
    // Teardown in this order, each failure a finding.
    if let Some(seg) = segment {
        net::close_segment(seg, target.expect.lease.as_ref(), &mut findings);
    }
    if let Some(p) = passthrough {
        adapter::restore(p, &mut findings);
    }
    if let Some(tap) = host_tap {
        net::detach_tap(tap, &mut findings);
    }
    outcome::conclude(report, target, &end, cause, findings, &stopped.lines);
    Ok(())
}

/// Drives the console to the stanza's end (answering its shell steps), or to `until`.
fn drive_console(
    target: &Target,
    ctx: &Context,
    until: Option<&regex::Regex>,
    qemu: &mut qemu::Qemu,
    watch: &mut watch::BootWatch,
) -> Result<(End<Phase>, Vec<ShellOutcome>), SerialError> {
    match until {
        Some(needle) => drive_until(
            &mut qemu.console,
            watch,
            target.expect.timeout,
            needle,
            &ctx.interrupt,
        )
        .map(|end| (end, Vec::new())),
        None => drive(
            &mut qemu.console,
            watch,
            target.expect.timeout,
            &target.expect.shell,
            &ctx.interrupt,
        ),
    }
}
