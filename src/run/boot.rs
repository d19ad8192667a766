//! One boot, end to end: the initrd (built, or given), the boot files, QEMU started paused with
//! its serial console and QMP on sockets bootrig already listens on, resumed once both are
//! connected (so no console byte is lost), driven until it ends, judged, and its evidence kept
//! in the target's artifact directory:
//!
//! `console.log` (raw bytes), `console.qemu.log` (QEMU's own log of the port), `console.txt`
//! (timestamped, ANSI removed), `qemu.cmdline`, `qemu.stderr`, `qmp.jsonl`, `http.log` (HTTP
//! fetches), `boot/` (kernel, initrd, iPXE script, plan.json), `result.json`.

use std::fs::{self, File};
use std::os::unix::net::UnixListener;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::boot::http::HttpServer;
use crate::boot::{ipxe, stage};
use crate::build::{build, BuildOptions};
use crate::console::{self, ConsoleLine};
use crate::fsutil::write_atomic;
use crate::net::Segment;
use crate::patch::stanza::Then;
use crate::qemu::accel::{self, Accel};
use crate::qemu::firmware::{write_sercon_port, FirmwareFiles};
use crate::qemu::machine::{
    self, DirectKernel, MachineType, Network, NicModel, NicRom, TapNet, UserNet, VmSpec,
};
use crate::qemu::machine::{VfioDevice, VfioRom};
use crate::qemu::process::GroupChild;
use crate::qemu::qmp::{Qmp, QmpEvent};
use crate::report::model::{BootSummary, CauseReport, Outcome, PhaseTiming, ScenarioReport};
use crate::report::Progress;
use crate::scenario::{
    AccelChoice, Backend, Boot, DhcpServer, Fetch, Firmware, LeaseExpect, Method, Nic,
};
use crate::verdict::cause::{classify, strip_ansi, Cause, CauseKind};
use crate::verdict::phases::{current, detect, durations, Phase};
use crate::verdict::Expectation;
use crate::vfio::{Passthrough, Request as VfioRequest, SysfsKernel};

use super::drive::{drive, End, ShellOutcome, Watch};
use super::interrupt::Interrupt;
use super::judge;
use super::serial::{accept_bounded, SerialConsole};
use super::target::{AdapterNeed, InitrdSource, Target};

/// How long QEMU may take to connect its sockets after it starts.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a clean QMP `quit` may take before QEMU is killed.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Console lines kept in a report around the cause, or at the end.
const EXCERPT_LINES: usize = 60;

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

/// Resolves `auto` once per run: the KVM probe takes a few seconds and its answer does not
/// change between scenarios.
pub struct AccelResolver {
    qemu: PathBuf,
    workdir: PathBuf,
    auto: OnceLock<Accel>,
}

impl AccelResolver {
    pub fn new(qemu: &Path, workdir: &Path) -> Self {
        Self {
            qemu: qemu.to_owned(),
            workdir: workdir.to_owned(),
            auto: OnceLock::new(),
        }
    }

    pub fn resolve(&self, choice: AccelChoice, interrupt: &Interrupt) -> Accel {
        match choice {
            AccelChoice::Tcg => Accel::Tcg,
            AccelChoice::Kvm => Accel::Kvm,
            AccelChoice::Auto => *self.auto.get_or_init(|| {
                accel::choose_auto(&self.qemu, accel::DEFAULT_TIMEOUT, &self.workdir, interrupt)
            }),
        }
    }
}

/// Setting a boot up failed: the scenario could not be run as written (an Error outcome).
#[derive(Debug, Error)]
pub enum SetupError {
    #[error("{path}: {source}")]
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
    Http(#[from] crate::boot::http::HttpError),
    #[error(transparent)]
    Firmware(#[from] crate::qemu::firmware::FirmwareError),
    #[error(transparent)]
    Machine(#[from] machine::MachineError),
    #[error(transparent)]
    Output(#[from] crate::fsutil::OutputError),
    #[error("starting {qemu}: {source}")]
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
    LabRoot(#[from] crate::boot::lab_root::LabRootError),
}

/// Binds the adapter (and its IOMMU group) to vfio-pci after the preflight, for this boot.
fn bind_adapter(
    adapter: &crate::run::inventory::Adapter,
    target: &Target,
) -> Result<Passthrough<SysfsKernel>, SetupError> {
    let mut req = VfioRequest::new(adapter.bdf, &target.id);
    req.memory_mib = Some(target.boot.memory_mib);
    req.romfile = adapter.rom.clone();
    req.stand_in = adapter.stand_in;
    req.state_dir = adapter.lab.state_dir.clone();
    req.lock_wait = adapter.lab.lock_wait;
    req.sriov = adapter
        .vf
        .map(|(vf, numvfs)| crate::vfio::SriovRequest { numvfs, vf });
    Ok(Passthrough::prepare(
        SysfsKernel::new(crate::vfio::HostPaths::default()),
        &req,
    )?)
}

/// The run's dnsmasq segment: its TFTP root is the boot directory, its boot file the script.
fn dnsmasq_segment(
    server: &DhcpServer,
    target: &Target,
    media: &Media,
    dir: &Path,
) -> Result<Segment, SetupError> {
    let mut dhcp = server.config().map_err(SetupError::Unsupported)?;
    dhcp.tftp_root = Some(media.boot_dir.clone());
    dhcp.boot_file = match (&server.boot_file, target.boot.method) {
        (Some(file), _) => Some(file.clone()),
        (None, Method::Ipxe) => Some(stage::SCRIPT_NAME.to_string()),
        (None, Method::Direct) => None,
    };
    let run_dir = dir.join("dhcp");
    fs::create_dir_all(&run_dir).map_err(io_error(&run_dir))?;
    Ok(Segment::create(&crate::net::SegmentSpec {
        state_dir: PathBuf::from(crate::net::DEFAULT_STATE_DIR),
        run_dir,
        guests: 1,
        dhcp,
        fault: server.fault.clone(),
    })?)
}

/// Whether the server leased `want.address` to `want.client_id`; a finding when not.
fn lease_finding(seg: &Segment, want: &LeaseExpect) -> Option<String> {
    let id: crate::net::addr::ClientId = match want.client_id.parse() {
        Ok(id) => id,
        Err(e) => {
            return Some(format!(
                "[expect] lease client_id {:?}: {e}",
                want.client_id
            ))
        }
    };
    let leases = match seg.leases() {
        Ok(l) => l,
        Err(e) => return Some(format!("reading the DHCP server's leases: {e}")),
    };
    match crate::net::lease::address_of(&leases, &id) {
        Some(got) if got.to_string() == want.address => None,
        Some(got) => Some(format!(
            "the DHCP server leased {got} to client-identifier {}, not {}",
            want.client_id, want.address
        )),
        None => Some(format!(
            "the DHCP server leased nothing to client-identifier {} (leases: {})",
            want.client_id,
            leases
                .iter()
                .map(|l| format!(
                    "{} {}",
                    l.ip,
                    l.client_id
                        .as_ref()
                        .map_or("-".to_string(), |c| c.to_string())
                ))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
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
            let mut report = blank_report(target, dir, None);
            report.outcome = Outcome::Skip;
            report.reason = Some(reason);
            report
        }
        None => {
            let accel = ctx.accel.resolve(
                ctx.accel_override.unwrap_or(target.boot.accel),
                &ctx.interrupt,
            );
            let mut report = blank_report(target, dir, Some(accel));
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

fn blank_report(target: &Target, dir: &Path, accel: Option<Accel>) -> ScenarioReport {
    ScenarioReport {
        id: target.id.clone(),
        name: target.name.clone(),
        file: target
            .file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_default(),
        outcome: Outcome::Error,
        reason: None,
        cause: None,
        expected_failure: target.expect.failure.clone(),
        findings: Vec::new(),
        phases: Vec::new(),
        duration_seconds: 0.0,
        boot: BootSummary {
            stand_in: match &target.adapter {
                Some(AdapterNeed::Found(a)) if a.stand_in => {
                    Some(format!("{} ({})", a.name, a.bdf))
                }
                _ => None,
            },
            ..summary(&target.boot, accel)
        },
        console_excerpt: String::new(),
        artifacts: Some(dir.to_owned()),
    }
}

fn summary(boot: &Boot, accel: Option<Accel>) -> BootSummary {
    let name = |v: &dyn erased::Kebab| v.kebab();
    BootSummary {
        method: name(&boot.method),
        firmware: name(&boot.firmware),
        nic: boot.nic.device().to_string(),
        fetch: match boot.method {
            Method::Ipxe => name(&boot.fetch),
            Method::Direct => "-".into(),
        },
        accel: accel.map_or("-", |a| a.qemu_name()).to_string(),
        stand_in: None,
    }
}

mod erased {
    /// A scenario enum's kebab-case name, as the scenario file spells it.
    pub trait Kebab {
        fn kebab(&self) -> String;
    }
    impl<T: serde::Serialize> Kebab for T {
        fn kebab(&self) -> String {
            serde_json::to_value(self)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        }
    }
}

/// The files a boot needs, in `dir/boot`.
struct Media {
    boot_dir: PathBuf,
    kernel: PathBuf,
    initrd: PathBuf,
    /// What the plan expects of the boot (no modules for a given initrd).
    plan: Expectation,
}

fn prepare_media(target: &Target, dir: &Path, ctx: &Context) -> Result<Media, SetupError> {
    let boot_dir = dir.join("boot");
    fs::create_dir_all(&boot_dir).map_err(io_error(&boot_dir))?;
    let (initrd_source, plan) = match &target.initrd {
        InitrdSource::Build(scenario) => {
            let built_at = dir.join("initrd.built");
            let mut opts = BuildOptions::new(&built_at);
            opts.force = true;
            opts.interrupt = ctx.interrupt.clone();
            opts.then = if target.expect.shell.is_empty() {
                Then::PowerOff
            } else {
                Then::Shell
            };
            if let Some(cache) = &ctx.build_cache {
                opts.cache_dir = cache.clone();
            }
            let built = build(scenario, &opts)?;
            // What the build decided and warned about, beside plan.json: a rebuilt cache entry
            // or a hardlink broken in the base is evidence a reader of the run wants.
            let mut text = format!("flavor {} ({})\n", built.flavor, built.flavor_reason);
            for w in &built.warnings {
                text.push_str(&format!("warning: {w}\n"));
            }
            let log = dir.join("build.txt");
            fs::write(&log, text).map_err(io_error(&log))?;
            let mut plan = built.expectation;
            plan.interface = target.interface.clone();
            (built.image, plan)
        }
        InitrdSource::Given(path) => (path.clone(), Expectation::default()),
    };
    let staged = stage::stage_files(&boot_dir, &target.kernel, &initrd_source)?;
    if let InitrdSource::Build(_) = target.initrd {
        // Staged (linked or copied); the build's own output is not needed twice.
        let _ = fs::remove_file(&initrd_source);
    }
    Ok(Media {
        boot_dir,
        kernel: staged.kernel.path,
        initrd: staged.initrd.path,
        plan,
    })
}

fn boot_and_judge(
    target: &Target,
    dir: &Path,
    ctx: &Context,
    accel: Accel,
    report: &mut ScenarioReport,
) -> Result<(), SetupError> {
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let until = match &target.until {
        Some(p) => Some(regex_until(p)?),
        None => None,
    };
    ctx.progress.phase(&target.id, "build", Duration::ZERO);
    let media = prepare_media(target, dir, ctx)?;
    let boot = &target.boot;

    // Sockets live in a short private directory: a Unix socket path must fit in 108 bytes.
    let sockets =
        crate::qemu::socket::SocketDir::create().map_err(io_error(&std::env::temp_dir()))?;
    let serial_path = sockets.path().join("serial.sock");
    let qmp_path = sockets.path().join("qmp.sock");
    let serial_listener = UnixListener::bind(&serial_path).map_err(io_error(&serial_path))?;
    let qmp_listener = UnixListener::bind(&qmp_path).map_err(io_error(&qmp_path))?;

    // A lab adapter: bound to vfio-pci now, its drivers put back when `passthrough` is dropped
    // (also on an error return or a panic).
    let passthrough = match &target.adapter {
        Some(AdapterNeed::Found(adapter)) => Some(bind_adapter(adapter, target)?),
        _ => None,
    };
    let vfio: Vec<VfioDevice> = match (&passthrough, &target.adapter) {
        (Some(p), Some(AdapterNeed::Found(adapter))) => {
            let rom = match (&target.boot.method, &adapter.rom) {
                (Method::Direct, _) => VfioRom::Disabled,
                (Method::Ipxe, Some(file)) => VfioRom::File(file.clone()),
                // The card's own FlexBoot does the netboot.
                (Method::Ipxe, None) => VfioRom::Device,
            };
            let bootindex = (target.boot.method == Method::Ipxe).then_some(1);
            vec![p.qemu_device(rom, bootindex)]
        }
        _ => Vec::new(),
    };

    // A dnsmasq segment serves DHCP and TFTP itself, in its own namespace.
    let mut segment = match &target.backend {
        Backend::Dnsmasq(server) => Some(dnsmasq_segment(server, target, &media, dir)?),
        Backend::User | Backend::Bridge(_) => None,
    };
    let host_tap = match &target.backend {
        Backend::Bridge(bridge) => Some(crate::net::bridge::HostTap::attach(bridge)?),
        _ => None,
    };

    let mut http = None;
    // What the ROM's DHCP gets: the TFTP root and boot file name, or the script's URL.
    let mut netboot = None;
    if boot.method == Method::Ipxe {
        let fetch = match (boot.fetch, &segment) {
            (Fetch::Tftp, Some(seg)) => ipxe::Fetch::TftpAt(seg.server_address()),
            (Fetch::Tftp, None) => ipxe::Fetch::Tftp,
            (Fetch::Http, Some(_)) | (Fetch::Http, None) if !matches!(target.backend, Backend::User) => {
                return Err(SetupError::Unsupported(
                    "fetch = \"http\" needs backend = \"user\" (bootrig's HTTP server listens on host loopback); use fetch = \"tftp\"".into(),
                ))
            }
            (Fetch::Http, _) => {
                let server = HttpServer::start(&media.boot_dir)?;
                let port = server.port();
                http = Some(server);
                ipxe::Fetch::Http { port }
            }
        };
        let mut spec = ipxe::ScriptSpec::new(
            fetch,
            stage::KERNEL_NAME,
            stage::INITRD_NAME,
            &target.cmdline(),
        );
        spec.initrd_arg = boot.ipxe_initrd_arg;
        stage::write_script(&media.boot_dir, &ipxe::render(&spec)?)?;
        if let (Some(_), Some(AdapterNeed::Found(adapter))) = (&passthrough, &target.adapter) {
            if let Some(root) = &adapter.lab.boot_root {
                // The lab's TFTP serves the adapter's DHCP boot file; the lock covers these.
                crate::boot::lab_root::stage(
                    root,
                    &adapter.name,
                    &media.boot_dir.join(stage::KERNEL_NAME),
                    &media.boot_dir.join(stage::INITRD_NAME),
                    &spec,
                )?;
            }
        }
        netboot = Some(match fetch {
            // The ROM takes a URL as boot file: the script comes over HTTP too, and the log
            // shows its fetch.
            ipxe::Fetch::Http { .. } => {
                (None, format!("{}/{}", fetch.base_url(), stage::SCRIPT_NAME))
            }
            ipxe::Fetch::Tftp => (Some(media.boot_dir.clone()), stage::SCRIPT_NAME.to_string()),
            // dnsmasq's DHCP names the script; QEMU's user-mode net serves nothing.
            ipxe::Fetch::TftpAt(_) => (None, stage::SCRIPT_NAME.to_string()),
        });
    }
    let tap = segment
        .as_ref()
        .and_then(|seg| seg.taps().first().cloned())
        .or_else(|| host_tap.as_ref().map(|t| t.name().to_string()));

    let mut vm = vm_spec(
        target,
        &media,
        ctx,
        accel,
        dir,
        netboot,
        tap,
        &serial_path,
        &qmp_path,
    )?;
    if !vfio.is_empty() {
        // The adapter is the guest's network: no emulated NIC.
        vm.network = Network::None;
        vm.vfio = vfio;
    }
    let args = vm.args()?;
    let mut words = vec![ctx.qemu.display().to_string()];
    words.extend(args.iter().cloned());
    write_atomic(
        &dir.join("qemu.cmdline"),
        (machine::shell_words(&words) + "\n").as_bytes(),
        true,
    )?;

    if ctx.interrupt.requested() {
        return Err(SetupError::Interrupted);
    }
    let stderr_path = dir.join("qemu.stderr");
    let stderr = File::create(&stderr_path).map_err(io_error(&stderr_path))?;
    let mut command = Command::new(&ctx.qemu);
    command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    if let Some(seg) = &segment {
        // QEMU joins the segment's namespace, where its tap is; its sockets are paths, which
        // work across namespaces.
        seg.enter_on_spawn(&mut command)?;
    }
    let mut child = GroupChild::spawn(&mut command).map_err(|source| SetupError::Spawn {
        qemu: ctx.qemu.clone(),
        source,
    })?;
    if let Some(seg) = segment.as_mut() {
        seg.register_qemu(child.id())?;
    }
    // Before the guest runs (it starts paused): what QEMU fetches is the guest's, the rest foreign.
    if let Some(server) = &http {
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
    let serial = match accept_bounded(&serial_listener, &serial_path, CONNECT_TIMEOUT, || {
        matches!(child.wait_timeout(Duration::ZERO), Ok(None))
    }) {
        Ok(s) => s,
        Err(e) => return Err(qemu_start(&mut child, e.to_string())),
    };
    let qmp_log = dir.join("qmp.jsonl");
    let (mut qmp, events) = match Qmp::accept(&qmp_listener, &qmp_log, CONNECT_TIMEOUT, || {
        !matches!(child.wait_timeout(Duration::ZERO), Ok(None))
    }) {
        Ok(pair) => pair,
        Err(e) => return Err(qemu_start(&mut child, e.to_string())),
    };
    let raw_path = dir.join("console.log");
    let raw = File::create(&raw_path).map_err(io_error(&raw_path))?;
    let t0 = Instant::now();
    let mut console = SerialConsole::start(serial, raw, t0).map_err(io_error(&serial_path))?;
    if let Err(e) = qmp.cont() {
        return Err(qemu_start(&mut child, format!("resuming the guest: {e}")));
    }

    let mut watch = BootWatch::new(target, ctx, events, segment.as_mut());
    let driven = match &until {
        Some(needle) => super::drive::drive_until(
            &mut console,
            &mut watch,
            target.expect.timeout,
            needle,
            &ctx.interrupt,
        )
        .map(|end| (end, Vec::new())),
        None => drive(
            &mut console,
            &mut watch,
            target.expect.timeout,
            &target.expect.shell,
            &ctx.interrupt,
        ),
    };

    // Stop QEMU: politely over QMP, then for sure. The run state first, for qmp.jsonl: a guest
    // stopped by a panic or an error shows there.
    let stopped_by_us = matches!(child.wait_timeout(Duration::ZERO), Ok(None));
    if stopped_by_us {
        qmp.set_command_timeout(QUIT_TIMEOUT);
        let _ = qmp.query_status();
        let _ = qmp.quit(QUIT_TIMEOUT);
        if !matches!(child.wait_timeout(QUIT_TIMEOUT), Ok(Some(_))) {
            let _ = child.kill();
        }
    }
    let status = child.wait_timeout(QUIT_TIMEOUT).ok().flatten();
    drop(qmp);
    let lines = console.finish();
    watch.drain();
    let panicked = watch.panicked;
    let restart_error = watch.restart_error.take();
    drop(watch);
    if let Some(mut server) = http {
        server.stop();
        let log: Vec<String> = server
            .log()
            .iter()
            .filter_map(|r| serde_json::to_string(r).ok())
            .collect();
        write_atomic(
            &dir.join("http.log"),
            (log.join("\n") + "\n").as_bytes(),
            true,
        )?;
    }
    // What a person reads: escape sequences and overwritten text removed, once for both uses.
    let clean: Vec<String> = lines.iter().map(|l| strip_ansi(&l.text)).collect();
    write_atomic(
        &dir.join("console.txt"),
        timestamped(&lines, &clean).as_bytes(),
        true,
    )?;

    let (end, answers) = match driven {
        Ok(pair) => pair,
        Err(e) => (End::Fatal(format!("console: {e}")), Vec::new()),
    };
    // The boot's own lines: what a guest shell step printed is not the boot's evidence.
    let boot_lines = &lines[..lines
        .iter()
        .position(|l| l.text.trim_end() == "BOOTRIG shell")
        .unwrap_or(lines.len())];
    let cause = cause_of(&end, boot_lines, status, stopped_by_us, panicked);
    let evidence = console::parse(&lines_text(&lines));
    // A step that never ran is a step without an answer, not a step that is not there.
    let mut answers = answers.into_iter();
    let shell: Vec<_> = target
        .expect
        .shell
        .iter()
        .map(|step| {
            let got = answers.next().unwrap_or_else(|| ShellOutcome {
                command: step.command.clone(),
                output: None,
                status: None,
            });
            (step.clone(), got)
        })
        .collect();
    let mut findings = judge::findings(&target.expect, &media.plan, boot_lines, &evidence, &shell);
    if target.until.is_some() {
        // A given initrd has no stanza: only the console and the cause speak.
        findings.boot.clear();
    }
    if let Some(e) = restart_error {
        findings
            .boot
            .push(format!("the restart-mid-boot fault failed: {e}"));
    }
    if let Some(seg) = segment {
        if let Some(want) = &target.expect.lease {
            findings.asserted.extend(lease_finding(&seg, want));
        }
        for e in seg.close().errors {
            findings.boot.push(format!("network teardown: {e}"));
        }
    }
    if let Some(p) = passthrough {
        if let Err(e) = p.restore() {
            findings.boot.push(format!(
                "putting the adapter's drivers back: {e} (run bootrig vfio restore)"
            ));
        }
    }
    if let Some(tap) = host_tap {
        for e in tap.detach() {
            findings.boot.push(format!("network teardown: {e}"));
        }
    }
    if let End::Fatal(text) = &end {
        if cause.is_none() {
            findings.boot.push(format!("the boot stopped at {text:?}"));
        }
    }
    let cause_id = cause.as_ref().map(|c| c.kind.id());
    let (pass, why) = judge::decide(target.expect.failure.as_deref(), cause_id, &findings);
    report.outcome = if end == End::Interrupted {
        Outcome::Error
    } else if pass {
        Outcome::Pass
    } else {
        Outcome::Fail
    };
    report.reason = if end == End::Interrupted {
        Some("interrupted: bootrig was asked to stop (Ctrl-C or SIGTERM)".into())
    } else {
        why
    };
    report.findings = findings.all();
    report.phases = phase_timings(&lines);
    report.console_excerpt = excerpt(&clean, cause.as_ref());
    report.cause = cause.map(|c| CauseReport {
        kind: c.kind.id().to_string(),
        summary: c.summary,
        phase: c.phase.map(|p| p.name().to_string()),
        evidence: c.evidence,
    });
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn vm_spec(
    target: &Target,
    media: &Media,
    ctx: &Context,
    accel: Accel,
    dir: &Path,
    netboot: Option<(Option<PathBuf>, String)>,
    tap: Option<String>,
    serial: &Path,
    qmp: &Path,
) -> Result<VmSpec, SetupError> {
    let boot = &target.boot;
    let firmware = match boot.firmware {
        // SeaBIOS mirrors its console (and the iPXE ROM's) to the serial port only when told.
        Firmware::Bios => machine::Firmware::Bios {
            sercon_port: Some(write_sercon_port(dir)?),
        },
        Firmware::Uefi => {
            let pair = ctx.firmware.ovmf()?;
            let vars_copy = pair.copy_vars(dir)?;
            machine::Firmware::Uefi {
                code: pair.code,
                vars_copy,
            }
        }
    };
    let nic = match boot.nic {
        Nic::VirtioNetPci => NicModel::VirtioNetPci,
        Nic::E1000e => NicModel::E1000e,
        Nic::E1000 => NicModel::E1000,
    };
    let (tftp_root, bootfile) = match netboot {
        Some((root, file)) => (root, Some(file)),
        None => (None, None),
    };
    let (rom, bootindex, direct) = match boot.method {
        // QEMU's own default ROM: it patches the PCI ids to the device's, which SeaBIOS checks.
        Method::Ipxe => (NicRom::QemuDefault, Some(1), None),
        Method::Direct => (
            NicRom::Disabled,
            None,
            Some(DirectKernel {
                kernel: media.kernel.clone(),
                initrd: media.initrd.clone(),
                append: target.cmdline(),
            }),
        ),
    };
    Ok(VmSpec {
        machine: match boot.machine {
            crate::scenario::MachineType::Q35 => MachineType::Q35,
            crate::scenario::MachineType::Pc => MachineType::Pc,
        },
        accel,
        memory_mib: boot.memory_mib,
        firmware,
        network: match tap {
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
        },
        serial_socket: serial.to_owned(),
        serial_log: dir.join("console.qemu.log"),
        qmp_socket: qmp.to_owned(),
        start_paused: true,
        direct,
        vfio: vec![],
    })
}

/// The boot's phases and limits for the driver, QMP events, and live progress.
struct BootWatch<'a> {
    id: String,
    /// The dnsmasq segment, whose faults act while the boot runs.
    segment: Option<&'a mut Segment>,
    /// A `restart-mid-boot` fault not yet done.
    restart_pending: bool,
    restart_error: Option<String>,
    progress: &'a Progress,
    events: Receiver<QmpEvent>,
    limits: Vec<(String, Duration)>,
    panicked: bool,
    /// The phase last reported: progress gets a line per change, a tick otherwise.
    shown: Option<String>,
}

/// Phases in which the kernel runs: the boot files are fetched.
const KERNEL_OR_LATER: &[&str] = &["kernel", "init", "modules", "address", "done"];

/// Phase limits when a scenario gives none: iPXE's own DHCP retries take under a minute, so a
/// longer silence there is a network with no DHCP server.
const DEFAULT_PHASE_LIMITS: &[(&str, Duration)] = &[("ipxe-dhcp", Duration::from_secs(90))];

impl<'a> BootWatch<'a> {
    fn new(
        target: &Target,
        ctx: &'a Context,
        events: Receiver<QmpEvent>,
        segment: Option<&'a mut Segment>,
    ) -> Self {
        let mut limits: Vec<(String, Duration)> = DEFAULT_PHASE_LIMITS
            .iter()
            .map(|(p, d)| (p.to_string(), *d))
            .collect();
        for (phase, limit) in &target.expect.phase_timeouts {
            limits.retain(|(p, _)| p != phase);
            limits.push((phase.clone(), *limit));
        }
        let restart_pending = matches!(
            &target.backend,
            Backend::Dnsmasq(DhcpServer {
                fault: Some(crate::net::DhcpFault::RestartMidBoot),
                ..
            })
        );
        Self {
            id: target.id.clone(),
            segment,
            restart_pending,
            restart_error: None,
            progress: ctx.progress,
            events,
            limits,
            panicked: false,
            shown: None,
        }
    }

    fn drain(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            if event.name == "GUEST_PANICKED" {
                self.panicked = true;
            }
        }
    }
}

impl Watch for BootWatch<'_> {
    fn phase(&mut self, lines: &[ConsoleLine]) -> Option<(String, Duration)> {
        detect(lines)
            .last()
            .map(|m| (m.phase.name().to_string(), m.at))
    }

    fn phase_limit(&self, phase: &str) -> Option<Duration> {
        self.limits
            .iter()
            .find(|(p, _)| p == phase)
            .map(|(_, d)| *d)
    }

    fn guest_panicked(&mut self) -> bool {
        self.drain();
        self.panicked
    }

    fn progress(&mut self, phase: Option<&str>, elapsed: Duration) {
        let phase = phase.unwrap_or("starting");
        if self.restart_pending && KERNEL_OR_LATER.contains(&phase) {
            // The restart fault lands between the firmware's DHCP and the guest's: once the
            // kernel runs, no TFTP transfer is in flight, and the guest's DHCP is yet to come.
            if let Some(seg) = self.segment.as_mut() {
                self.restart_pending = false;
                if let Err(e) = seg.restart_dhcp() {
                    self.restart_error = Some(e.to_string());
                }
            }
        }
        if self.shown.as_deref() == Some(phase) {
            self.progress.tick();
        } else {
            self.progress.phase(&self.id, phase, elapsed);
            self.shown = Some(phase.to_string());
        }
    }
}

/// The cause: what the console proves first; otherwise what ended the boot. `stopped_by_us`:
/// QEMU was still running when the drive ended, so its exit status is bootrig's doing.
fn cause_of(
    end: &End,
    lines: &[ConsoleLine],
    status: Option<std::process::ExitStatus>,
    stopped_by_us: bool,
    panicked: bool,
) -> Option<Cause> {
    if let Some(c) = classify(lines) {
        return Some(c);
    }
    let phase = current(&detect(lines));
    if panicked || *end == End::Panicked {
        return Some(Cause {
            kind: CauseKind::KernelPanic,
            phase: Some(phase),
            summary: "QEMU reported a guest panic (pvpanic)".into(),
            evidence: lines
                .iter()
                .rev()
                .take(5)
                .rev()
                .map(|l| strip_ansi(&l.text))
                .collect(),
            detail: None,
        });
    }
    match end {
        End::TimedOut { phase: p, .. } => {
            let phase = p
                .as_deref()
                .and_then(|name| Phase::ALL.iter().copied().find(|x| x.name() == name))
                .unwrap_or(phase);
            Some(Cause::timeout(phase, lines))
        }
        _ if stopped_by_us => None,
        End::Closed | End::Fatal(_) => match status {
            Some(s) if s.signal().is_some() => Some(Cause::qemu_crashed(s.signal()?, lines)),
            Some(s) if s.code() != Some(0) => Some(Cause::qemu_exited(s.code()?, lines)),
            // QEMU exited 0 before the stanza finished: the guest rebooted or powered off early.
            Some(s) if *end == End::Closed && !console::parse(&lines_text(lines)).done => {
                Some(Cause::qemu_exited(s.code().unwrap_or(0), lines))
            }
            _ => None,
        },
        _ => None,
    }
}

fn lines_text(lines: &[ConsoleLine]) -> String {
    let mut s = String::new();
    for l in lines {
        s.push_str(&l.text);
        s.push('\n');
    }
    s
}

/// `console.txt`: each line's time and its cleaned text.
fn timestamped(lines: &[ConsoleLine], clean: &[String]) -> String {
    let mut s = String::new();
    for (l, text) in lines.iter().zip(clean) {
        s.push_str(&format!("[{:9.3}] {text}\n", l.at.as_secs_f64()));
    }
    s
}

fn phase_timings(lines: &[ConsoleLine]) -> Vec<PhaseTiming> {
    let end = lines.last().map(|l| l.at).unwrap_or_default();
    durations(&detect(lines), end)
        .into_iter()
        .map(|span| PhaseTiming {
            name: span.phase.name().to_string(),
            at_seconds: span.start.as_secs_f64(),
            seconds: span.duration.as_secs_f64(),
        })
        .collect()
}

/// The lines around the cause's first evidence line, or the last lines.
fn excerpt(clean: &[String], cause: Option<&Cause>) -> String {
    let anchor = cause
        .and_then(|c| c.evidence.first())
        .and_then(|first| clean.iter().position(|l| l.contains(first.trim())));
    let (from, to) = match anchor {
        Some(i) => (
            i.saturating_sub(EXCERPT_LINES / 2),
            (i + EXCERPT_LINES / 2).min(clean.len()),
        ),
        None => (clean.len().saturating_sub(EXCERPT_LINES), clean.len()),
    };
    clean[from..to].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::ExitStatus;

    fn lines(text: &str) -> Vec<ConsoleLine> {
        crate::console::test_lines(&text.lines().collect::<Vec<_>>())
    }

    fn exited(code: i32) -> Option<ExitStatus> {
        Some(ExitStatus::from_raw(code << 8))
    }

    fn killed(signal: i32) -> Option<ExitStatus> {
        Some(ExitStatus::from_raw(signal))
    }

    const BOOTING: &str =
        "iPXE initialising devices...ok\nbootrig: booting kernel\nBOOTRIG begin\n";

    fn kind(c: Option<Cause>) -> Option<&'static str> {
        c.map(|c| c.kind.id())
    }

    #[test]
    fn the_console_wins_over_how_the_boot_ended() {
        let l = lines("BOOTRIG begin\n[ 1.0] mlx4_en: Unknown symbol mlx4_foo (err -2)\nBOOTRIG insmod mlx4_en rc=1\n");
        let end = End::TimedOut {
            phase: Some("modules".into()),
            limit: Duration::from_secs(1),
            whole: true,
        };
        assert_eq!(
            kind(cause_of(&end, &l, None, true, false)),
            Some("unknown-symbol")
        );
    }

    #[test]
    fn who_stopped_qemu_decides_between_crash_and_nothing() {
        let l = lines(BOOTING);
        // QEMU died on its own, by a signal or an error code: its cause.
        assert_eq!(
            kind(cause_of(&End::Closed, &l, killed(9), false, false)),
            Some("qemu-crashed")
        );
        assert_eq!(
            kind(cause_of(&End::Closed, &l, exited(1), false, false)),
            Some("qemu-exited")
        );
        // It exited 0 before the stanza finished: the guest went away early.
        assert_eq!(
            kind(cause_of(&End::Closed, &l, exited(0), false, false)),
            Some("qemu-exited")
        );
        // bootrig stopped it (quit, then a kill when it hung): not the boot's failure.
        assert_eq!(
            kind(cause_of(&End::Finished, &l, killed(9), true, false)),
            None
        );
        assert_eq!(
            kind(cause_of(&End::Closed, &l, killed(9), true, false)),
            None
        );
        // After the stanza finished, a clean exit is no failure.
        let done = lines(&format!("{BOOTING}BOOTRIG done\n"));
        assert_eq!(
            kind(cause_of(&End::Closed, &done, exited(0), false, false)),
            None
        );
    }

    #[test]
    fn a_pvpanic_is_a_kernel_panic_even_when_qemu_then_exits_cleanly() {
        let l = lines(BOOTING);
        let c = cause_of(&End::Closed, &l, exited(0), false, true).unwrap();
        assert_eq!(c.kind, CauseKind::KernelPanic);
        assert!(c.summary.contains("pvpanic"), "{}", c.summary);
        assert_eq!(
            kind(cause_of(&End::Panicked, &l, None, true, false)),
            Some("kernel-panic")
        );
    }

    #[test]
    fn a_timeout_names_the_phase_the_driver_saw() {
        let l = lines(BOOTING);
        let end = End::TimedOut {
            phase: Some("ipxe-dhcp".into()),
            limit: Duration::from_secs(90),
            whole: false,
        };
        let c = cause_of(&end, &l, None, true, false).unwrap();
        assert_eq!(c.kind, CauseKind::Timeout);
        assert_eq!(c.phase, Some(Phase::IpxeDhcp));
    }

    #[test]
    fn the_excerpt_is_centred_on_the_first_evidence_line() {
        let mut text = String::new();
        for i in 0..200 {
            text.push_str(&format!("line {i}\n"));
            if i == 50 {
                text.push_str("\u{1b}[1mKernel panic - not syncing: VFS\n");
            }
        }
        let l = lines(&text);
        let cause = Cause {
            kind: CauseKind::KernelPanic,
            phase: None,
            summary: String::new(),
            evidence: vec!["Kernel panic - not syncing: VFS".into()],
            detail: None,
        };
        let clean: Vec<String> = l.iter().map(|l| strip_ansi(&l.text)).collect();
        let ex = excerpt(&clean, Some(&cause));
        assert!(ex.contains("line 30") && ex.contains("line 70"), "{ex}");
        assert!(!ex.contains("line 150"), "{ex}");
        assert!(
            ex.contains("\nKernel panic"),
            "escape sequences are removed: {ex}"
        );
    }
}
