//! The shipped GitLab pipeline (`ci/gitlab/bootrig.gitlab-ci.yml`) run by a real GitLab CI
//! implementation, gitlab-ci-local, with the shell executor: a lab's `.gitlab-ci.yml` that includes
//! the file byte for byte and sets `parallel: 2` the way the file's header says, over
//! tests/data/gitlab-pipeline (two passing direct boots, one failing for a product reason). Asserted
//! from the files gitlab-ci-local leaves (artifacts, job logs) and its exit status.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::Need;
use serde_json::Value;

const PIPELINE: &str = "ci/gitlab/bootrig.gitlab-ci.yml";
const SCENARIOS: &str = "tests/data/gitlab-pipeline";

/// What a lab writes: the shipped file included unchanged, the shard count overridden.
const LAB_CI: &str = "include:\n  - local: ci/gitlab/bootrig.gitlab-ci.yml\n\
                      bootrig-shards:\n  parallel: 2\n";

/// Each scenario id with the shard (of 2) it belongs to and whether it passes.
const EXPECTED: [(&str, u32, &str); 3] = [
    ("swapped-order", 1, "fail"),
    ("udhcpc-resolved", 2, "pass"),
    ("virtio-as-is", 1, "pass"),
];

/// Two shards of at most two direct boots each (8-30 s under TCG here); generous for a loaded host.
const LIMIT: Duration = Duration::from_secs(600);

/// What the gitlab-ci-local run left.
struct Pipeline {
    status: ExitStatus,
    /// Its stdout and stderr.
    stdout: String,
    /// The temporary git repository the pipeline ran in.
    repo: tempfile::TempDir,
}

fn git(repo: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "user.name=bootrig test",
            "-c",
            "user.email=test@bootrig.invalid",
        ])
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A git repository holding the lab's `.gitlab-ci.yml` and a byte-for-byte copy of the pipeline.
fn lab_repo() -> tempfile::TempDir {
    let repo = tempfile::tempdir().expect("repo dir");
    fs::create_dir_all(repo.path().join("ci/gitlab")).unwrap();
    fs::copy(
        common::repo_root().join(PIPELINE),
        repo.path().join(PIPELINE),
    )
    .expect("copy the pipeline");
    fs::write(repo.path().join(".gitlab-ci.yml"), LAB_CI).unwrap();
    git(repo.path(), &["init", "-q"]);
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "lab"]);
    repo
}

/// Runs the whole pipeline, bounded by `LIMIT`, in a process group killed on a timeout.
fn run_pipeline(repo: tempfile::TempDir, cache: &Path) -> Pipeline {
    use std::os::unix::process::CommandExt;
    let scenarios = common::repo_root().join(SCENARIOS);
    let variables = [
        format!("BOOTRIG={}", env!("CARGO_BIN_EXE_bootrig")),
        format!("BOOTRIG_SCENARIOS={}", scenarios.display()),
        "BOOTRIG_ARGS=--accel tcg".to_owned(),
        format!("BOOTRIG_CACHE={}", cache.display()),
    ];
    let stdout_path = repo.path().join("gitlab-ci-local.out");
    let mut command = Command::new("gitlab-ci-local");
    // gitlab-ci-local refuses an absolute --cwd: it runs in the repository instead.
    command
        .current_dir(repo.path())
        // Its own home: no variables from the user's ~/.gitlab-ci-local.
        .arg("--home")
        .arg(repo.path().join("home"))
        // Each job in its own build directory, artifacts passed by `needs:`, as on a real runner.
        .arg("--shell-isolation")
        .arg("--no-color");
    for v in &variables {
        command.arg("--variable").arg(v);
    }
    let output = fs::File::create(&stdout_path).unwrap();
    let mut child = command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(output.try_clone().unwrap())
        .stderr(output)
        .spawn()
        .expect("spawn gitlab-ci-local");
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for gitlab-ci-local") {
            break status;
        }
        if Instant::now() > deadline {
            let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            panic!(
                "gitlab-ci-local still running after {LIMIT:?}:\n{}",
                fs::read_to_string(&stdout_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    Pipeline {
        status,
        stdout: fs::read_to_string(&stdout_path).unwrap_or_default(),
        repo,
    }
}

impl Pipeline {
    fn state(&self) -> PathBuf {
        self.repo.path().join(".gitlab-ci-local")
    }

    /// The artifact directories of the jobs whose (mangled) name starts with `job`.
    fn artifacts(&self, job: &str) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = fs::read_dir(self.state().join("artifacts"))
            .expect("gitlab-ci-local's artifacts directory")
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(job))
            .collect();
        dirs.sort();
        dirs
    }

    /// The log of the job whose (mangled) name starts with `job` and which contains `needle`.
    fn log(&self, job: &str, needle: &str) -> String {
        fs::read_dir(self.state().join("output"))
            .expect("gitlab-ci-local's job logs")
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(job))
            .map(|p| fs::read_to_string(p).unwrap())
            .find(|text| text.contains(needle))
            .unwrap_or_else(|| panic!("no {job} log mentions {needle:?}\n{}", self.stdout))
    }

    /// The outcome gitlab-ci-local printed for a job in its closing summary (`PASS`/`FAIL`).
    fn job_outcome(&self, job: &str) -> &str {
        self.stdout
            .lines()
            .map(str::trim)
            .find_map(|l| {
                let (outcome, name) = l.split_once(char::is_whitespace)?;
                (name.trim() == job && ["PASS", "FAIL", "WARN"].contains(&outcome))
                    .then_some(outcome)
            })
            .unwrap_or_else(|| panic!("no outcome for {job:?} in:\n{}", self.stdout))
    }
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()))
}

/// scenario id → outcome, failing on an id listed twice.
fn outcomes(report: &Value) -> BTreeMap<String, String> {
    let mut seen = BTreeMap::new();
    for sc in report["scenarios"].as_array().expect("scenarios array") {
        let id = sc["id"].as_str().expect("id").to_owned();
        let outcome = sc["outcome"].as_str().expect("outcome").to_owned();
        assert!(
            seen.insert(id.clone(), outcome).is_none(),
            "{id} twice in {report:#}"
        );
    }
    seen
}

#[test]
fn the_split_of_the_scenario_directory_is_the_one_the_test_expects() {
    // Shard membership is a hash of the id: if it changed, the pipeline test would still pass
    // with one shard empty, proving less. Checked without booting.
    for (id, shard, _) in EXPECTED {
        assert_eq!(bootrig::report::shard_of(id, 2), shard, "{id}");
        assert!(common::repo_root()
            .join(SCENARIOS)
            .join(format!("{id}.toml"))
            .is_file());
    }
}

#[test]
fn the_shipped_pipeline_runs_every_shard_and_merges_even_when_one_fails() {
    if !common::require(&[
        Need::Qemu,
        Need::Setup,
        Need::Program("/bin/busybox", "busybox-static"),
        Need::TestCommand("git", "apt-get install git"),
        // gitlab-ci-local copies a job's files with rsync.
        Need::TestProgram("/usr/bin/rsync", "rsync"),
        Need::TestCommand("gitlab-ci-local", "npm install -g gitlab-ci-local@4.60"),
    ]) {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let pipeline = run_pipeline(lab_repo(), cache.path());
    eprintln!("pipeline: {:?}", started.elapsed());
    let out = &pipeline.stdout;

    // A failed scenario fails its shard's job, so the pipeline fails...
    assert_eq!(pipeline.status.code(), Some(1), "{out}");
    assert_eq!(
        pipeline.job_outcome("bootrig-shards: [1/2]"),
        "FAIL",
        "{out}"
    );
    assert_eq!(
        pipeline.job_outcome("bootrig-shards: [2/2]"),
        "PASS",
        "{out}"
    );
    // ...and the merge job still runs and publishes.
    assert_eq!(pipeline.job_outcome("bootrig-merge"), "PASS", "{out}");

    // Every shard ran its own scenarios and kept its output as artifacts.
    let shards = pipeline.artifacts("bootrig-shards");
    assert_eq!(shards.len(), 2, "{shards:?}\n{out}");
    for k in 1..=2u32 {
        let dir = shards
            .iter()
            .map(|d| d.join(format!("bootrig-out/shard-{k}")))
            .find(|d| d.is_dir())
            .unwrap_or_else(|| panic!("no artifacts of shard {k} in {shards:?}\n{out}"));
        let report = read_json(&dir.join("summary.json"));
        assert_eq!(report["shard"]["index"], k, "{report:#}");
        assert_eq!(report["shard"]["total"], 2, "{report:#}");
        let want: BTreeMap<String, String> = EXPECTED
            .iter()
            .filter(|(_, shard, _)| *shard == k)
            .map(|(id, _, outcome)| (id.to_string(), outcome.to_string()))
            .collect();
        assert_eq!(outcomes(&report), want, "shard {k}");
        for id in want.keys() {
            assert!(dir.join(id).join("result.json").is_file(), "{id}");
        }
        let junit = fs::read_to_string(dir.join("junit.xml")).unwrap();
        roxmltree::Document::parse(&junit).expect("shard JUnit is XML");
    }
    // The failing scenario's shard log says why it failed.
    let log = pipeline.log("bootrig-shards", "swapped-order");
    assert!(log.contains("unknown-symbol"), "{log}");

    // The merged report holds each scenario exactly once, with its outcome.
    let merged = pipeline.artifacts("bootrig-merge");
    assert_eq!(merged.len(), 1, "{merged:?}");
    let merged = merged[0].join("bootrig-merged");
    let report = read_json(&merged.join("summary.json"));
    let want: BTreeMap<String, String> = EXPECTED
        .iter()
        .map(|(id, _, outcome)| (id.to_string(), outcome.to_string()))
        .collect();
    assert_eq!(outcomes(&report), want, "{report:#}");
    let junit = fs::read_to_string(merged.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).expect("merged JUnit is XML");
    let mut cases: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .filter_map(|n| n.attribute("name"))
        .collect();
    cases.sort();
    let ids: Vec<&str> = want.keys().map(String::as_str).collect();
    assert_eq!(cases, ids, "{junit}");
    let failures = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .count();
    assert_eq!(failures, 1, "{junit}");
    // BOOTRIG_CACHE reached bootrig through the pipeline: its builds are there.
    let cached = fs::read_dir(cache.path()).unwrap().count();
    assert!(
        cached > 0,
        "nothing in BOOTRIG_CACHE {}",
        cache.path().display()
    );
    let merge_log = pipeline.log("bootrig-merge", "report merge");
    assert!(merge_log.contains("2 passed, 1 failed"), "{merge_log}");
}

#[test]
fn the_runner_sample_is_a_shell_runner_one_job_at_a_time_passing_bootrigs_variables() {
    let path = common::repo_root().join("ci/gitlab/runner-config.toml");
    let text = fs::read_to_string(&path).unwrap();
    let config: toml::Value = toml::from_str(&text).expect("runner-config.toml is TOML");
    assert_eq!(config["concurrent"].as_integer(), Some(1));
    let runners = config["runners"].as_array().expect("[[runners]]");
    assert_eq!(runners.len(), 1);
    let runner = &runners[0];
    assert_eq!(runner["executor"].as_str(), Some("shell"));
    assert_eq!(runner["limit"].as_integer(), Some(1));
    let environment: Vec<&str> = runner["environment"]
        .as_array()
        .expect("environment")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for variable in ["BOOTRIG_INVENTORY=", "BOOTRIG_CACHE="] {
        assert!(
            environment.iter().any(|e| e.starts_with(variable)),
            "{environment:?}"
        );
    }
    // The tag the pipeline's jobs ask for is the one the sample registers.
    let pipeline = fs::read_to_string(common::repo_root().join(PIPELINE)).unwrap();
    assert!(pipeline.contains("tags: [bootrig-lab]"), "{pipeline}");
    assert!(text.contains("--tag-list bootrig-lab"), "{text}");
}
