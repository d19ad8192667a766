//! The Report stage end to end: shard reports written as files, read back, merged into JSON and
//! JUnit by `bootrig report merge`, the JUnit parsed by a strict XML parser.
//!
//! The CLI tests need `bootrig report` wired into src/cli/mod.rs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use bootrig::report::progress::Stage;
use bootrig::report::{
    read_report, render_table, to_junit_xml, write_report, BootSummary, CauseReport, Outcome,
    PhaseTiming, Progress, RunReport, ScenarioReport, Shard, SCHEMA,
};
use bootrig::verdict::cause::CauseKind;
use bootrig::verdict::phases::Phase;

fn scenario(id: &str, outcome: Outcome) -> ScenarioReport {
    ScenarioReport {
        id: id.to_owned(),
        name: id.trim_end_matches(".toml").to_owned(),
        file: format!("scenarios/{id}"),
        outcome,
        reason: (outcome == Outcome::Skip).then(|| "needs a real ConnectX-3".to_owned()),
        cause: (outcome == Outcome::Fail).then(|| CauseReport {
            kind: CauseKind::InitrdNotLoaded,
            summary: "the kernel found no initramfs".to_owned(),
            phase: Some(Phase::Kernel),
            evidence: vec![
                "\x1b[31mKernel panic - not syncing: VFS: Unable to mount root fs\x1b[0m"
                    .to_owned(),
            ],
        }),
        expected_failure: None,
        findings: Vec::new(),
        phases: vec![PhaseTiming {
            name: Phase::Kernel,
            at_seconds: 1.0,
            seconds: 3.5,
        }],
        duration_seconds: 9.25,
        boot: BootSummary {
            method: "pxe".to_owned(),
            firmware: "bios".to_owned(),
            nic: "e1000".to_owned(),
            fetch: "http".to_owned(),
            accel: "tcg".to_owned(),
            stand_in: None,
        },
        console_excerpt: "SeaBIOS\r\n\x1b[2J\x1b[01;01HiPXE\0 booting\u{7}\n".to_owned(),
        artifacts: Some(PathBuf::from(format!("runs/1/{id}"))),
    }
}

fn shard_report(index: u32, total: u32, scenarios: Vec<ScenarioReport>) -> RunReport {
    RunReport {
        schema: SCHEMA,
        bootrig_version: env!("CARGO_PKG_VERSION").to_owned(),
        started: format!("2024-05-01T12:00:0{index}Z"),
        host: format!("runner-{index}"),
        shard: Some(Shard { index, total }),
        scenarios,
        duration_seconds: 20.0,
    }
}

fn bootrig(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bootrig"))
        .args(args)
        .output()
        .expect("run bootrig")
}

fn os(p: &Path) -> &std::ffi::OsStr {
    p.as_os_str()
}

/// Two shard files in `dir`: shard 1 has a pass and a failure, shard 2 a skip and an error.
fn two_shards(dir: &Path) -> (PathBuf, PathBuf) {
    let one = dir.join("shard1.json");
    let two = dir.join("shard2.json");
    let r1 = shard_report(
        1,
        2,
        vec![
            scenario("b/pass.toml", Outcome::Pass),
            scenario("a/fail.toml", Outcome::Fail),
        ],
    );
    let r2 = shard_report(
        2,
        2,
        vec![
            scenario("c/skip.toml", Outcome::Skip),
            scenario("d/error.toml", Outcome::Error),
        ],
    );
    write_report(&one, &r1, false).unwrap();
    write_report(&two, &r2, false).unwrap();
    assert_eq!(read_report(&one).unwrap(), r1);
    (one, two)
}

#[test]
fn junit_of_a_nasty_console_parses_with_the_right_counts() {
    let r = shard_report(
        1,
        1,
        vec![
            scenario("a.toml", Outcome::Fail),
            scenario("b.toml", Outcome::Pass),
        ],
    );
    let xml = to_junit_xml(&r);
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("tests"), Some("2"));
    assert_eq!(suite.attribute("failures"), Some("1"));
    assert_eq!(suite.attribute("name"), Some("bootrig shard 1/1"));
    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    let body = failure.text().unwrap();
    assert!(body.contains("Kernel panic - not syncing: VFS"), "{body}");
    assert!(body.contains("iPXE\u{2400} booting\u{2407}"), "{body:?}");
    assert!(!xml.contains('\x1b') && !xml.contains('\0'));
}

/// A scenario id past a format width's bound (u16::MAX) used to panic the table after the
/// merged files were written (exit 101).
#[test]
fn merge_of_a_very_long_scenario_id_prints_its_table() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!("{}.toml", "s".repeat(70_000));
    let input = dir.path().join("one.json");
    let r = shard_report(1, 1, vec![scenario(&long, Outcome::Pass)]);
    write_report(&input, &r, false).unwrap();
    let out = dir.path().join("merged.json");
    let o = bootrig(&["report".as_ref(), "merge".as_ref(), os(&out), os(&input)]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let row = stdout.lines().nth(1).unwrap_or_default();
    assert!(
        row.starts_with(&format!("{long}  PASS")),
        "{}",
        &row[..200.min(row.len())]
    );
}

#[test]
fn merge_joins_shards_into_json_and_junit() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = two_shards(dir.path());
    let out = dir.path().join("merged.json");
    let xml = dir.path().join("merged.xml");
    let o = bootrig(&[
        "report".as_ref(),
        "merge".as_ref(),
        os(&out),
        "--junit".as_ref(),
        os(&xml),
        os(&one),
        os(&two),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    // Failures in the merged runs do not fail the merge itself.
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.ends_with("1 passed, 1 failed, 1 skipped, 1 errors in 21.0 s\n"),
        "{stdout}"
    );
    assert!(stdout.contains("a/fail.toml") && stdout.contains("initrd-not-loaded"));

    let merged = read_report(&out).unwrap();
    let ids: Vec<&str> = merged.scenarios.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        ["a/fail.toml", "b/pass.toml", "c/skip.toml", "d/error.toml"]
    );
    assert_eq!(merged.shard, None);
    assert_eq!(merged.started, "2024-05-01T12:00:01Z");
    assert_eq!(merged.host, "runner-1, runner-2");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(json["totals"]["tests"], 4);
    assert_eq!(json["totals"]["errors"], 1);

    let text = std::fs::read_to_string(&xml).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    for (attr, want) in [
        ("name", "bootrig"),
        ("tests", "4"),
        ("failures", "1"),
        ("errors", "1"),
        ("skipped", "1"),
        ("time", "21.000"),
    ] {
        assert_eq!(suite.attribute(attr), Some(want), "{attr}");
    }
    assert_eq!(
        suite
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .count(),
        4
    );

    // Existing outputs are kept without --force; --gate turns failures into exit 1.
    let again = bootrig(&["report".as_ref(), "merge".as_ref(), os(&out), os(&one)]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("pass --force"));
    let gated = bootrig(&[
        "report".as_ref(),
        "merge".as_ref(),
        "--force".as_ref(),
        "--gate".as_ref(),
        os(&out),
        os(&one),
        os(&two),
    ]);
    assert_eq!(gated.status.code(), Some(1));
}

#[test]
fn merge_refuses_duplicates_and_bad_files_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (one, _two) = two_shards(dir.path());
    let copy = dir.path().join("copy.json");
    let mut r = read_report(&one).unwrap();
    r.shard = None;
    write_report(&copy, &r, false).unwrap();
    let out = dir.path().join("out.json");
    let o = bootrig(&[
        "report".as_ref(),
        "merge".as_ref(),
        os(&out),
        os(&one),
        os(&copy),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("scenario \"b/pass.toml\" is in both") && stderr.contains("copy.json"),
        "{stderr}"
    );
    assert!(!out.exists());

    let future = dir.path().join("future.json");
    std::fs::write(&future, "{\"schema\": 2, \"scenarios\": []}").unwrap();
    let o = bootrig(&["report".as_ref(), "merge".as_ref(), os(&out), os(&future)]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr.contains("future.json: report schema 2"), "{stderr}");
}

#[test]
fn table_and_progress_from_the_library() {
    let r = shard_report(
        1,
        1,
        vec![
            scenario("x.toml", Outcome::Pass),
            scenario("y.toml", Outcome::Fail),
        ],
    );
    let table = render_table(&r, false);
    assert!(
        table.contains("y.toml    FAIL     initrd-not-loaded  9.2s  kernel\n"),
        "{table}"
    );
    assert!(table.ends_with("1 passed, 1 failed, 0 skipped, 0 errors in 20.0 s\n"));

    let log = tempfile::NamedTempFile::new().unwrap();
    let progress = Progress::new(Box::new(log.reopen().unwrap()), false, 80);
    progress.started("y.toml");
    progress.stage("y.toml", Stage::Boot(Phase::Kernel), Duration::from_secs(1));
    progress.finished(&r.scenarios[1]);
    let text = std::fs::read_to_string(log.path()).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.ends_with("] FAIL y.toml 9.2s (initrd-not-loaded)\n"),
        "{text}"
    );
}
