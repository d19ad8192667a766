//! `bootrig check SCENARIO|DIR…`: build, direct-boot and judge each scenario.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};

use super::{print_out, CliError, CliResult, Outcome};
use crate::check::{check_one, scenario_files, CheckOptions, CheckResult};
use crate::fsutil::write_atomic;
use crate::qemu::accel::{choose_auto, Accel};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AccelArg {
    /// KVM if a time-bounded probe shows guests really run, else TCG.
    Auto,
    Kvm,
    Tcg,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Scenario files, or directories of them.
    #[arg(required = true)]
    scenarios: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    accel: AccelArg,
    /// Seconds a boot may take before it is killed and failed.
    #[arg(long, default_value_t = 240)]
    timeout: u64,
    /// Where runs are kept (a timestamped directory per run).
    #[arg(long, default_value = "runs")]
    runs: PathBuf,
    #[arg(long)]
    json: bool,
}

/// Entry point for `bootrig check`.
pub fn run(args: CheckArgs) -> CliResult {
    let files = scenario_files(&args.scenarios)?;
    if files.is_empty() {
        return Err(CliError(
            "no scenario files (*.toml) found in the given paths".into(),
        ));
    }
    let qemu = crate::qemu::locate(
        &std::env::var_os("PATH").unwrap_or_default(),
        std::env::var_os(crate::qemu::QEMU_ENV).as_deref(),
    )?;
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let run_dir = args.runs.join(stamp.to_string());
    std::fs::create_dir_all(&run_dir)
        .map_err(|e| CliError(format!("{}: {e}", run_dir.display())))?;
    let accel = match args.accel {
        AccelArg::Kvm => Accel::Kvm,
        AccelArg::Tcg => Accel::Tcg,
        AccelArg::Auto => choose_auto(&qemu, crate::qemu::accel::DEFAULT_TIMEOUT, &run_dir),
    };
    let opts = CheckOptions {
        qemu,
        accel,
        timeout: Duration::from_secs(args.timeout),
        run_dir: run_dir.clone(),
    };
    let mut results: Vec<CheckResult> = Vec::new();
    for file in &files {
        eprintln!(
            "bootrig: checking {} ({}) …",
            file.display(),
            accel.qemu_name()
        );
        let r = check_one(file, &opts)?;
        eprintln!("{}", line(&r));
        results.push(r);
    }
    let summary = serde_json::to_vec_pretty(&results).map_err(|e| CliError(e.to_string()))?;
    write_atomic(&run_dir.join("summary.json"), &summary, true)?;
    if args.json {
        print_out(&format!("{}\n", String::from_utf8_lossy(&summary)))?;
    } else {
        let passed = results.iter().filter(|r| r.pass).count();
        let mut out = String::new();
        for r in &results {
            out.push_str(&line(r));
            out.push('\n');
        }
        out.push_str(&format!(
            "{passed} of {} passed; evidence in {}\n",
            results.len(),
            run_dir.display()
        ));
        print_out(&out)?;
    }
    Ok(if results.iter().all(|r| r.pass) {
        Outcome::Pass
    } else {
        Outcome::Fail
    })
}

fn line(r: &CheckResult) -> String {
    let status = if r.pass { "PASS" } else { "FAIL" };
    let time = r
        .boot_seconds
        .map(|s| format!(" {s:.1}s"))
        .unwrap_or_default();
    let mut s = format!("{status} {}{time}", r.scenario);
    if let Some(e) = &r.error {
        s.push_str(&format!("\n     {}", e.replace('\n', "\n     ")));
    }
    if let Some(v) = &r.verdict {
        for f in &v.findings {
            s.push_str(&format!("\n     {f}"));
        }
    }
    s
}
