//! `bootrig run SCENARIO|DIR…`: netboot each scenario and judge it; `bootrig check` is the same
//! with QEMU's direct kernel boot; `bootrig repro` boots a field initrd unchanged.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::Args;

use super::{print_out, CliError, CliResult, Outcome};
use crate::report::model::RunReport;
use crate::report::{render_table, write_junit, write_report, Progress, Shard};
use crate::run::{run_suite, run_targets, RunOptions};
use crate::scenario::{AccelChoice, Boot, Expect, Fetch, Firmware, MachineType, Method, NicModel};

/// Where results go and how the run is spread; shared by run, check and repro.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Artifact directory (default: runs/<UTC timestamp>): one subdirectory per scenario, plus
    /// summary.json and junit.xml.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Also write the JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Also write the JSON report here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Overrides every scenario's accelerator.
    #[arg(long, value_enum)]
    accel: Option<AccelChoice>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario files, or directories of them (searched recursively).
    #[arg(required = true)]
    scenarios: Vec<PathBuf>,
    /// Scenarios run at once, each fully isolated (default: the number of cores).
    #[arg(short = 'j', long)]
    jobs: Option<usize>,
    /// Run only shard K of N (1-based): a stable split by scenario id, for parallel CI jobs.
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    /// The lab inventory naming this host's adapters (default: $BOOTRIG_INVENTORY, else
    /// /etc/bootrig/inventory.toml).
    #[arg(long, value_name = "FILE")]
    inventory: Option<PathBuf>,
    #[command(flatten)]
    output: OutputArgs,
}

/// Entry point for `bootrig run`.
pub fn run(args: RunArgs) -> CliResult {
    suite(args, None)
}

/// Entry point for `bootrig check`: the suite with direct kernel boots.
pub fn check(args: RunArgs) -> CliResult {
    suite(args, Some(Method::Direct))
}

fn suite(args: RunArgs, method: Option<Method>) -> CliResult {
    let mut opts = options(&args.output, args.jobs, args.shard, method)?;
    opts.inventory = args.inventory.clone();
    let progress = Progress::stderr();
    let held = hold_interrupt()?;
    let report = match run_suite(&args.scenarios, &opts, &progress) {
        Ok(report) => report,
        Err(e) => {
            // Nothing ran (scenario files that do not parse): no empty run directory is left.
            if args.output.out.is_none() {
                let _ = std::fs::remove_dir(&opts.out);
            }
            return Err(e.into());
        }
    };
    let result = finish(&report, &opts.out, &args.output);
    drop(held);
    result
}

/// Keeps a Ctrl-C listener alive until the reports are written: the run's own listener ends
/// with the run, and a signal with no listener left exits at once (status 130), which would
/// lose the reports of a run that already finished.
fn hold_interrupt() -> Result<crate::interrupt::Interrupt, CliError> {
    crate::interrupt::Interrupt::install()
        .map_err(|e| CliError::step("installing the Ctrl-C handler", e))
}

#[derive(Debug, Args)]
pub struct ReproArgs {
    /// The kernel image.
    #[arg(long)]
    kernel: PathBuf,
    /// The initrd, booted unchanged.
    #[arg(long)]
    initrd: PathBuf,
    #[arg(long, value_enum, default_value_t = Firmware::Bios)]
    firmware: Firmware,
    #[arg(long, value_enum, default_value_t = Method::Ipxe)]
    method: Method,
    #[arg(long, value_enum, default_value_t = NicModel::VirtioNetPci)]
    nic: NicModel,
    #[arg(long, value_enum, default_value_t = Fetch::Tftp)]
    fetch: Fetch,
    /// Kernel command line after bootrig's console arguments (the field's, e.g. "ip=dhcp").
    #[arg(long, default_value = "")]
    append: String,
    /// A console line (regular expression) meaning the boot got where it should.
    #[arg(long, default_value_t = format!("login:|{}", crate::console::protocol::DONE_LINE))]
    until: String,
    /// How long the whole boot may take.
    #[arg(long, default_value = "180s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Guest memory in MiB (a large distribution initrd unpacks into RAM).
    #[arg(long, default_value_t = 2048)]
    memory: u32,
    #[command(flatten)]
    output: OutputArgs,
}

/// Entry point for `bootrig repro`.
pub fn repro(args: ReproArgs) -> CliResult {
    for (what, path) in [("--kernel", &args.kernel), ("--initrd", &args.initrd)] {
        if !path.is_file() {
            return Err(CliError::Usage(format!(
                "{what} {}: no such file",
                path.display()
            )));
        }
    }
    crate::console::serial::needle(&args.until).map_err(|e| CliError::step("--until", e))?;
    let opts = options(&args.output, Some(1), None, None)?;
    let name = args
        .initrd
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "initrd".into());
    let target = crate::run::target::Target {
        id: "repro".into(),
        name: format!("repro: {name}"),
        file: None,
        kernel: absolute("--kernel", &args.kernel)?,
        initrd: crate::run::target::InitrdSource::Given(absolute("--initrd", &args.initrd)?),
        boot: Boot {
            firmware: args.firmware,
            method: args.method,
            nic: args.nic,
            fetch: args.fetch,
            accel: AccelChoice::Auto,
            machine: MachineType::Q35,
            memory_mib: args.memory,
            append: args.append.clone(),
            ipxe_initrd_arg: true,
        },
        expect: Expect {
            modules_in_order: false,
            address: None,
            failure: None,
            timeout: args.timeout,
            phase_timeouts: Vec::new(),
            console: Vec::new(),
            not_console: Vec::new(),
            shell: Vec::new(),
            lease: None,
            rdma: Vec::new(),
        },
        interface: None,
        backend: crate::scenario::Backend::User,
        adapter: None,
        append: args.append.clone(),
        until: Some(args.until.clone()),
    };
    let progress = Progress::stderr();
    let held = hold_interrupt()?;
    let report = run_targets(&[target], &opts, &progress)?;
    let result = finish(&report, &opts.out, &args.output);
    drop(held);
    result
}

fn options(
    output: &OutputArgs,
    jobs: Option<usize>,
    shard: Option<Shard>,
    method: Option<Method>,
) -> Result<RunOptions, CliError> {
    let qemu = crate::qemu::locate(
        &std::env::var_os("PATH").unwrap_or_default(),
        std::env::var_os(crate::qemu::QEMU_ENV).as_deref(),
    )?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = match jobs {
        Some(0) => return Err(CliError::Usage("-j 0: give at least one job".into())),
        Some(n) => n,
        None => cores,
    };
    if jobs > cores {
        // Each TCG guest keeps a core busy: more of them than cores slows every boot, and the
        // phase limits then fail boots that are merely slow.
        eprintln!(
            "bootrig: warning: -j {jobs} on {cores} cores: boots will share cores and may hit their time limits"
        );
    }
    let out = match &output.out {
        Some(dir) => dir.clone(),
        None => fresh_dir(&Path::new("runs").join(stamp()))?,
    };
    // Absolute from here on: dnsmasq changes its working directory at start-up, and every path
    // bootrig hands another program (QEMU, dnsmasq, dhclient, ip) must mean the same file there.
    let out = absolute("--out", &out)?;
    Ok(RunOptions {
        qemu,
        out,
        jobs,
        shard,
        accel: output.accel,
        method,
        build_cache: None,
        sysfs: PathBuf::from("/sys"),
        inventory: None,
    })
}

/// `path` made absolute against the working directory, for programs that run elsewhere.
fn absolute(flag: &str, path: &Path) -> Result<PathBuf, CliError> {
    std::path::absolute(path).map_err(|e| CliError::step(format!("{flag} {}", path.display()), e))
}

/// Creates `base`, or `base-2`, `base-3`… if it exists: two runs started in one second (parallel
/// CI jobs in one checkout) each get a directory of their own, made atomically.
fn fresh_dir(base: &Path) -> Result<PathBuf, CliError> {
    let fail = |dir: &Path, e: std::io::Error| CliError::step(dir.display().to_string(), e);
    if let Some(parent) = base.parent() {
        std::fs::create_dir_all(parent).map_err(|e| fail(parent, e))?;
    }
    let mut dir = base.to_path_buf();
    let mut n = 1;
    loop {
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                n += 1;
                dir = PathBuf::from(format!("{}-{n}", base.display()));
            }
            Err(e) => return Err(fail(&dir, e)),
        }
    }
}

/// `20261126T014512Z`: sorts by time and is a valid file name everywhere.
fn stamp() -> String {
    crate::report::rfc3339_utc(SystemTime::now()).replace([':', '-'], "")
}

/// Writes the reports, prints the table, and maps the outcome to the exit code.
fn finish(report: &RunReport, out: &Path, output: &OutputArgs) -> CliResult {
    write_report(&out.join("summary.json"), report, true)?;
    write_junit(&out.join("junit.xml"), report, true)?;
    if let Some(path) = &output.json {
        write_report(path, report, true)?;
    }
    if let Some(path) = &output.junit {
        write_junit(path, report, true)?;
    }
    let colour = std::io::stdout().is_terminal();
    print_out(&render_table(report, colour))?;
    eprintln!("bootrig: evidence in {}", out.display());
    Ok(if report.totals().all_passed() {
        Outcome::Pass
    } else {
        Outcome::Fail
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_started_in_one_second_get_directories_of_their_own() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("runs/20261206T000000Z");
        let dirs: Vec<PathBuf> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..8)
                .map(|_| s.spawn(|| fresh_dir(&base).unwrap()))
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let unique: std::collections::BTreeSet<&PathBuf> = dirs.iter().collect();
        assert_eq!(unique.len(), 8, "{dirs:?}");
        assert!(dirs.iter().all(|d| d.is_dir()));
        assert!(dirs.contains(&base));
        assert!(dirs.contains(&tmp.path().join("runs/20261206T000000Z-8")));
    }
}
