//! `bootrig check`: build each scenario in test mode, boot it with QEMU's direct kernel boot on a
//! user-mode network, and judge the console. The quick end-to-end loop before a netboot run: it
//! proves the initrd loads its modules in plan order and gets an address, with the evidence kept
//! in a run directory (console log, QEMU command line, plan, result).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use thiserror::Error;

use crate::build::{build, BuildError, BuildOptions};
use crate::console;
use crate::fsutil::{write_atomic, OutputError};
use crate::patch::stanza::Then;
use crate::qemu::accel::Accel;
use crate::qemu::direct::{BootError, DirectBoot};
use crate::scenario::{Scenario, ScenarioError};
use crate::verdict::{judge, Finding, Verdict};

#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub qemu: PathBuf,
    pub accel: Accel,
    pub timeout: Duration,
    /// Run directory: one subdirectory per scenario.
    pub run_dir: PathBuf,
}

#[derive(Debug, Error)]
pub enum CheckError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Boot(#[from] BootError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The outcome of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub scenario: String,
    pub file: PathBuf,
    pub pass: bool,
    /// Why it failed before any boot (plan errors, bad input), if it did.
    pub error: Option<String>,
    pub verdict: Option<Verdict>,
    pub boot_seconds: Option<f64>,
    pub timed_out: bool,
    pub artifacts: PathBuf,
}

/// Builds, boots and judges one scenario file. Errors of the scenario itself (bad plan, missing
/// input) are a failed result, not an error, so one bad scenario does not stop the others.
pub fn check_one(file: &Path, opts: &CheckOptions) -> Result<CheckResult, CheckError> {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "scenario".into());
    let dir = opts.run_dir.join(&stem);
    fs::create_dir_all(&dir).map_err(|source| CheckError::Io {
        path: dir.clone(),
        source,
    })?;
    let failed = |name: String, error: String| CheckResult {
        scenario: name,
        file: file.to_owned(),
        pass: false,
        error: Some(error),
        verdict: None,
        boot_seconds: None,
        timed_out: false,
        artifacts: dir.clone(),
    };
    let scenario = match Scenario::load(file) {
        Ok(s) => s,
        Err(e) => return Ok(failed(stem, e.to_string())),
    };
    let image = dir.join("initrd.img");
    let mut bopts = BuildOptions::new(&image);
    bopts.force = true;
    bopts.then = Then::PowerOff;
    let built = match build(&scenario, &bopts) {
        Ok(b) => b,
        Err(e) => return Ok(failed(scenario.name.clone(), e.to_string())),
    };
    let mut boot = DirectBoot::new(&opts.qemu, &scenario.kernel.image, &image);
    boot.accel = opts.accel;
    boot.timeout = opts.timeout;
    // Kernel chatter on the console can split protocol lines; keep it to warnings. Classic
    // interface names: udev in distribution images would rename eth0 (99-default.link).
    boot.append = "loglevel=4 net.ifnames=0".into();
    write_atomic(
        &dir.join("qemu.cmdline"),
        shell_words(&boot).as_bytes(),
        true,
    )?;
    let run = boot.run()?;
    write_atomic(&dir.join("console.log"), run.transcript.as_bytes(), true)?;
    let evidence = console::parse(&run.transcript);
    let mut verdict = judge(&evidence, &built.expectation);
    if run.timed_out && verdict.pass {
        verdict.pass = false;
        verdict.findings.push(Finding::StanzaNotFinished);
    }
    let result = CheckResult {
        scenario: scenario.name.clone(),
        file: file.to_owned(),
        pass: verdict.pass,
        error: None,
        verdict: Some(verdict),
        boot_seconds: Some(run.elapsed.as_secs_f64()),
        timed_out: run.timed_out,
        artifacts: dir.clone(),
    };
    let json = serde_json::to_vec_pretty(&result).unwrap_or_default();
    write_atomic(&dir.join("result.json"), &json, true)?;
    Ok(result)
}

fn shell_words(boot: &DirectBoot) -> String {
    let mut words = vec![boot.qemu.display().to_string()];
    words.extend(boot.args().into_iter().map(
        |a| {
            if a.contains(' ') {
                format!("'{a}'")
            } else {
                a
            }
        },
    ));
    words.join(" ") + "\n"
}

/// Scenario files named by `paths`: files as given, directories by their `*.toml`, sorted.
pub fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CheckError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = fs::read_dir(p)
                .map_err(|source| CheckError::Io {
                    path: p.clone(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "toml"))
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}
