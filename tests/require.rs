//! `common::require`: a missing need skips the test with its reason on a developer's host, and
//! fails it under `BOOTRIG_REQUIRE_ALL=1`, as CI (.ci/run) sets.

mod common;

use std::process::Command;

use common::{require, Need};

const ABSENT: &str = "images/cache/no-such-fixture.img";

/// Run in a child (see below): one missing need, then a line only reached after a skip.
#[test]
#[ignore = "child process of a_missing_need_skips_with_its_reason_or_fails_under_require_all"]
fn helper_requires_an_absent_fixture() {
    assert!(
        std::env::var_os("BOOTRIG_REQUIRE_HELPER").is_some(),
        "run by its parent test"
    );
    if !require(&[Need::TestFixture(ABSENT)]) {
        println!("returned after the skip");
    }
}

/// This test binary re-run on the helper alone, with `BOOTRIG_REQUIRE_ALL` as given.
fn run_helper(require_all: Option<&str>) -> std::process::Output {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args([
            "--exact",
            "helper_requires_an_absent_fixture",
            "--ignored",
            "--nocapture",
        ])
        .env("BOOTRIG_REQUIRE_HELPER", "1")
        .env_remove(common::require::REQUIRE_ALL);
    if let Some(value) = require_all {
        command.env(common::require::REQUIRE_ALL, value);
    }
    let out = command.output().expect("run the test binary");
    // A helper filtered out or ignored (not run) would pass with none of the lines below.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("running 1 test") && stdout.contains("; 0 ignored;"),
        "the helper did not run: {stdout}"
    );
    out
}

#[test]
fn a_missing_need_skips_with_its_reason_or_fails_under_require_all() {
    let why = format!("{ABSENT} is absent, run ./images/setup --tests");
    for unset in [None, Some("0")] {
        let out = run_helper(unset);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{unset:?}: {stderr}");
        assert!(
            stderr.contains(&format!("skipped: {why}")),
            "{unset:?}: {stderr}"
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("returned after the skip"));
    }
    let out = run_helper(Some("1"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a skip passed under BOOTRIG_REQUIRE_ALL=1"
    );
    assert!(
        stderr.contains(&format!("BOOTRIG_REQUIRE_ALL=1 and {why}")),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("returned after the skip"));
}

#[test]
fn present_needs_pass_without_a_word() {
    assert!(require(&[Need::Program("/bin/sh", "dash")]));
}

/// CI runs the README's command with every skip turned into a failure.
#[test]
fn ci_exports_require_all_before_the_readme_command() {
    let ci = std::fs::read_to_string(common::repo_root().join(".ci/run")).expect(".ci/run");
    let export = ci
        .find("export BOOTRIG_REQUIRE_ALL=1\n")
        .expect(".ci/run exports BOOTRIG_REQUIRE_ALL=1");
    let exec = ci.find("exec bash").expect(".ci/run execs the command");
    assert!(export < exec, "exported after the command runs:\n{ci}");
}
