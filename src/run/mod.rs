//! `bootrig run`: netboot each scenario in QEMU, drive its serial console, judge it, and report.
//!
//! `suite` finds and shards the scenario files and runs them on workers; `lifecycle` runs one
//! boot as stages (initrd, boot files, adapter, network, QEMU, console, artifacts, outcome),
//! driving the console with `crate::console`; `judge` holds `[expect]` against the evidence;
//! `target` says what one boot is about; `inventory` reads the lab's adapters; `outdir` claims
//! the output directory.

pub mod inventory;
pub mod judge;
pub mod lifecycle;
pub mod outdir;
pub mod suite;
pub mod target;

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use thiserror::Error;

use crate::qemu::firmware::FirmwareFiles;
use crate::report::model::{RunReport, ScenarioReport, SCHEMA};
use crate::report::{Progress, Shard};
use crate::scenario::{AccelChoice, Method, Scenario, ScenarioError};

use crate::interrupt::Interrupt;
use lifecycle::{AccelResolver, Context};
use suite::{Job, SuiteError};
use target::Target;

#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Suite(#[from] SuiteError),
    /// Every scenario that does not parse, so one run shows all the typos.
    #[error("{}", .0.iter().map(|e| crate::error_chain(e)).collect::<Vec<_>>().join("\n"))]
    Scenarios(Vec<ScenarioError>),
    #[error("{path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("installing the Ctrl-C handler")]
    Signals(#[source] std::io::Error),
    #[error(transparent)]
    Inventory(#[from] inventory::InventoryError),
    #[error(transparent)]
    OutDir(#[from] outdir::OutDirError),
}

/// How a run goes, whatever the scenarios say.
pub struct RunOptions {
    pub qemu: PathBuf,
    /// The run's artifact directory: one subdirectory per scenario id.
    pub out: PathBuf,
    pub jobs: usize,
    pub shard: Option<Shard>,
    pub accel: Option<AccelChoice>,
    /// Forces every scenario's boot method (`bootrig check` boots directly).
    pub method: Option<Method>,
    pub build_cache: Option<PathBuf>,
    pub sysfs: PathBuf,
    /// The lab inventory (`--inventory`); None: `$BOOTRIG_INVENTORY` or /etc/bootrig.
    pub inventory: Option<PathBuf>,
}

/// Runs the scenario files under `paths`. Scenario files that do not parse stop the run before
/// any boot (an input error); everything after that is a per-scenario outcome.
pub fn run_suite(
    paths: &[PathBuf],
    opts: &RunOptions,
    progress: &Progress,
) -> Result<RunReport, RunError> {
    let jobs = suite::select(suite::discover(paths)?, opts.shard);
    let mut targets = Vec::new();
    let mut errors = Vec::new();
    for job in &jobs {
        match Scenario::load(&job.file) {
            Ok(s) => targets.push(scenario_target(job, s, opts)),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(RunError::Scenarios(errors));
    }
    if targets.iter().any(|t| t.adapter.is_some()) {
        let path = inventory::Inventory::default_path(opts.inventory.as_deref());
        let inventory = inventory::Inventory::load(&path)?;
        for t in &mut targets {
            resolve_adapter(t, &inventory);
        }
    }
    run_targets(&targets, opts, progress)
}

fn scenario_target(job: &Job, scenario: Scenario, opts: &RunOptions) -> Target {
    let mut t = Target::from_scenario(&job.id, scenario);
    if let Some(method) = opts.method {
        t.boot.method = method;
        t.boot.ipxe_initrd_arg = true;
    }
    t
}

/// Looks the target's adapter up; the inventory's port GUID makes the client-identifier when
/// the scenario gives none.
fn resolve_adapter(t: &mut Target, inventory: &inventory::Inventory) {
    t.adapter = t.adapter.take().map(|a| a.resolve(inventory));
    if let (Some(target::AdapterNeed::Found(a)), target::InitrdSource::Build(s)) =
        (&t.adapter, &mut t.initrd)
    {
        if s.network.guid.is_none() && s.network.client_id.is_none() {
            s.network.guid = a.guid.map(|g| g.to_string());
        }
    }
}

/// Runs prepared targets on `opts.jobs` workers and reports them.
pub fn run_targets(
    targets: &[Target],
    opts: &RunOptions,
    progress: &Progress,
) -> Result<RunReport, RunError> {
    let started_at = SystemTime::now();
    let started = Instant::now();
    outdir::claim(&opts.out, &crate::report::rfc3339_utc(started_at))?;
    let interrupt = Interrupt::install().map_err(RunError::Signals)?;
    let accel = AccelResolver::new(&opts.qemu, &opts.out);
    let ctx = Context {
        qemu: opts.qemu.clone(),
        accel: &accel,
        accel_override: opts.accel,
        firmware: FirmwareFiles::system(),
        interrupt: interrupt.clone(),
        progress,
        build_cache: opts.build_cache.clone(),
        sysfs: opts.sysfs.clone(),
    };
    let jobs: Vec<Job> = targets
        .iter()
        .map(|t| Job {
            id: t.id.clone(),
            file: t.file.clone().unwrap_or_default(),
        })
        .collect();
    // Jobs were made from targets one to one, in order.
    let run_one = |i: usize, job: &Job| -> ScenarioReport {
        lifecycle::run_target(&targets[i], &artifact_dir(&opts.out, &job.id), &ctx)
    };
    let scenarios = suite::run_all(&jobs, opts.jobs, &interrupt, &run_one);
    progress.clear();
    Ok(RunReport {
        schema: SCHEMA,
        bootrig_version: env!("CARGO_PKG_VERSION").to_string(),
        started: crate::report::rfc3339_utc(started_at),
        host: hostname(),
        shard: opts.shard,
        scenarios,
        duration_seconds: started.elapsed().as_secs_f64(),
    })
}

/// `out/<id>`, with the id's `/` kept as subdirectories.
pub fn artifact_dir(out: &Path, id: &str) -> PathBuf {
    out.join(id)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}
