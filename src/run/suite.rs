//! A suite: the scenario files a run was pointed at, each with a stable id, picked for a shard,
//! and run by a pool of workers. Results come back in suite order whatever finished first; a
//! stop request leaves the scenarios not yet started reported as skipped, never silently lost.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use thiserror::Error;

use crate::report::model::{BootSummary, Outcome, ScenarioReport};
use crate::report::Shard;

use crate::interrupt::Interrupt;

/// One scenario file of the suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Path relative to the directory it was found under, without `.toml`: stable across hosts
    /// and checkouts, so shards and merged reports agree.
    pub id: String,
    pub file: PathBuf,
}

#[derive(Debug, Error)]
pub enum SuiteError {
    #[error("{path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no such file or directory (give scenario files or directories of them)")]
    Missing { path: PathBuf },
    #[error("no scenario files (*.toml) under {}", paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    Empty { paths: Vec<PathBuf> },
    #[error("scenario id {id:?} is given twice: {first} and {second}")]
    Duplicate {
        id: String,
        first: PathBuf,
        second: PathBuf,
    },
}

/// The scenario files under `paths`: files as given (id: the file stem), directories walked
/// recursively for `*.toml` (id: the path below the directory). Sorted by id.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<Job>, SuiteError> {
    let mut jobs = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found)?;
            for file in found {
                let rel = file.strip_prefix(p).unwrap_or(&file);
                jobs.push(Job {
                    id: id_of(rel),
                    file,
                });
            }
        } else if p.exists() {
            let name = Path::new(p.file_name().unwrap_or(p.as_os_str()));
            jobs.push(Job {
                id: id_of(name),
                file: p.clone(),
            });
        } else {
            return Err(SuiteError::Missing { path: p.clone() });
        }
    }
    if jobs.is_empty() {
        return Err(SuiteError::Empty {
            paths: paths.to_vec(),
        });
    }
    jobs.sort_by(|a, b| a.id.cmp(&b.id));
    for pair in jobs.windows(2) {
        if pair[0].id == pair[1].id {
            return Err(SuiteError::Duplicate {
                id: pair[0].id.clone(),
                first: pair[0].file.clone(),
                second: pair[1].file.clone(),
            });
        }
    }
    Ok(jobs)
}

fn id_of(rel: &Path) -> String {
    let text = rel.with_extension("").to_string_lossy().into_owned();
    text.replace(std::path::MAIN_SEPARATOR, "/")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SuiteError> {
    let entries = std::fs::read_dir(dir).map_err(|source| SuiteError::Read {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| SuiteError::Read {
            path: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        // The entry's own type: a symlinked directory is not followed (a link loop would recurse
        // forever); a symlinked scenario file is read.
        let own_type = entry.file_type().map_err(|source| SuiteError::Read {
            path: path.clone(),
            source,
        })?;
        if own_type.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|x| x == "toml") {
            out.push(path);
        }
    }
    Ok(())
}

/// The jobs of one shard (all of them without a shard).
pub fn select(jobs: Vec<Job>, shard: Option<Shard>) -> Vec<Job> {
    match shard {
        Some(s) => s.select(jobs, |j| j.id.as_str()),
        None => jobs,
    }
}

/// Runs `run_one(index, job)` over `jobs` with `workers` threads. Reports come back in `jobs`
/// order.
pub fn run_all(
    jobs: &[Job],
    workers: usize,
    interrupt: &Interrupt,
    run_one: &(dyn Fn(usize, &Job) -> ScenarioReport + Sync),
) -> Vec<ScenarioReport> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<ScenarioReport>>> = Mutex::new(vec![None; jobs.len()]);
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, jobs.len().max(1)) {
            scope.spawn(|| loop {
                if interrupt.requested() {
                    break;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(job) = jobs.get(i) else { break };
                let report = run_one(i, job);
                if let Ok(mut r) = results.lock() {
                    r[i] = Some(report);
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results
        .into_iter()
        .zip(jobs)
        .map(|(r, job)| r.unwrap_or_else(|| not_run(job)))
        .collect()
}

/// The report of a scenario a stop request kept from starting.
fn not_run(job: &Job) -> ScenarioReport {
    ScenarioReport {
        id: job.id.clone(),
        name: job.id.clone(),
        file: job.file.display().to_string(),
        // An error, not a skip: an interrupted run must not look like a passing one.
        outcome: Outcome::Error,
        reason: Some("not run: the run was interrupted before it started".into()),
        cause: None,
        expected_failure: None,
        findings: Vec::new(),
        phases: Vec::new(),
        duration_seconds: 0.0,
        boot: BootSummary::default(),
        console_excerpt: String::new(),
        artifacts: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.toml", "a.toml", "lab/c.toml", "notes.txt"] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        dir
    }

    #[test]
    fn discovery_walks_directories_and_names_ids_by_relative_path() {
        let dir = tree();
        let jobs = discover(&[dir.path().to_owned()]).unwrap();
        let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "lab/c"]);
        let one = discover(&[dir.path().join("lab/c.toml")]).unwrap();
        assert_eq!(one[0].id, "c");
        let twice = discover(&[dir.path().join("a.toml"), dir.path().to_owned()]).unwrap_err();
        assert!(twice.to_string().contains("given twice"), "{twice}");
        let missing = discover(&[dir.path().join("nope.toml")]).unwrap_err();
        assert!(missing.to_string().contains("nope.toml"), "{missing}");
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            discover(&[empty.path().to_owned()]),
            Err(SuiteError::Empty { .. })
        ));
    }

    #[test]
    fn workers_keep_suite_order_and_an_interrupt_skips_the_rest() {
        let jobs: Vec<Job> = (0..6)
            .map(|i| Job {
                id: format!("s{i}"),
                file: PathBuf::from(format!("s{i}.toml")),
            })
            .collect();
        let run = |_: usize, job: &Job| {
            // Later jobs finish first.
            let n: u64 = job.id[1..].parse().unwrap();
            std::thread::sleep(Duration::from_millis(60 - n * 10));
            let mut r = not_run(job);
            r.outcome = Outcome::Pass;
            r
        };
        let out = run_all(&jobs, 3, &Interrupt::never(), &run);
        let ids: Vec<&str> = out.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["s0", "s1", "s2", "s3", "s4", "s5"]);
        assert!(out.iter().all(|r| r.outcome == Outcome::Pass));

        let stop = Interrupt::never();
        let stopper = |_: usize, job: &Job| {
            stop.request();
            let mut r = not_run(job);
            r.outcome = Outcome::Pass;
            r
        };
        let out = run_all(&jobs, 1, &stop, &stopper);
        assert_eq!(out[0].outcome, Outcome::Pass);
        assert!(out[1..].iter().all(|r| r.outcome == Outcome::Error));
        assert!(out[1].reason.as_deref().unwrap().contains("interrupted"));
    }
}
