//! shellcheck on every shell file bootrig ships: the guest-side scripts under `harness/` (embedded
//! with `include_str!`, run by busybox ash, dash or bash) and the host setup scripts in `images/`.
//! A file is shell by its `#!` line, its `# shellcheck shell=` header or a `.sh` name, so a new
//! script is checked without being listed here.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{repo_root, require, Need};

const SHELLCHECK: &str = "/usr/bin/shellcheck";

/// The shells shellcheck knows, as a `#!` line names them (`#!/bin/sh`, `#!/usr/bin/env bash`,
/// `#!/usr/lib/bootrig/busybox sh`).
const SHELLS: [&str; 4] = ["sh", "bash", "dash", "ash"];

/// True when `text` is a shell script by its first lines.
fn is_shell(name: &Path, text: &str) -> bool {
    if name.extension().is_some_and(|e| e == "sh") {
        return true;
    }
    let mut lines = text.lines();
    let shebang = lines.next().unwrap_or("");
    let by_shebang = shebang.strip_prefix("#!").is_some_and(|command| {
        command.split_whitespace().any(|word| {
            let program = word.rsplit('/').next().unwrap_or(word);
            SHELLS.contains(&program)
        })
    });
    // shellcheck reads the directive before the first command; a header is near the top.
    by_shebang
        || std::iter::once(shebang)
            .chain(lines.take(4))
            .any(|l| l.trim_start().starts_with("# shellcheck shell="))
}

/// The shell files under `harness/` (all levels) and directly in `images/` (not `images/cache`,
/// which holds the fetched kernel), relative to the repository root, sorted.
fn shell_files() -> Vec<PathBuf> {
    let root = repo_root();
    let mut found = Vec::new();
    let mut dirs = vec![
        (PathBuf::from("harness"), true),
        (PathBuf::from("images"), false),
    ];
    while let Some((dir, recurse)) = dirs.pop() {
        let entries =
            fs::read_dir(root.join(&dir)).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            let rel = dir.join(entry.file_name());
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                if recurse {
                    dirs.push((rel, true));
                }
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            // Binary files are not scripts; a lossy read keeps them from failing the walk.
            let text =
                String::from_utf8_lossy(&fs::read(root.join(&rel)).expect("read")).into_owned();
            if is_shell(&rel, &text) {
                found.push(rel);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn the_walk_finds_the_shell_files_and_only_those() {
    let found = shell_files();
    for want in [
        "harness/busybox-init.sh",
        "harness/nested-lab",
        "harness/nested-lab-inner.sh",
        "harness/stanza.sh",
        "harness/udhcpc.script",
        "harness/wrap-init.sh",
        "images/fixtures",
        "images/setup",
    ] {
        assert!(
            found.contains(&PathBuf::from(want)),
            "{want} not found in {found:?}"
        );
    }
    for not in [
        "harness/ipxe/netboot.ipxe",
        "harness/kvm-probe.S",
        "harness/lab-inventory.example.toml",
    ] {
        assert!(
            !found.contains(&PathBuf::from(not)),
            "{not} taken for shell"
        );
    }
}

#[test]
fn shebangs_and_headers_decide_what_is_shell() {
    let plain = Path::new("x");
    assert!(is_shell(plain, "#!/bin/sh\n"));
    assert!(is_shell(plain, "#!/usr/bin/env bash\nset -e\n"));
    assert!(is_shell(plain, "#!/usr/lib/bootrig/busybox sh\n"));
    assert!(is_shell(plain, "# sourced\n# shellcheck shell=sh\n"));
    assert!(is_shell(Path::new("a.sh"), "echo\n"));
    assert!(!is_shell(plain, "#!ipxe\necho sh\n"));
    assert!(!is_shell(plain, "#!/usr/bin/python3\n"));
    assert!(!is_shell(plain, "a\nb\nc\nd\ne\n# shellcheck shell=sh\n"));
}

/// Every finding fails the test, style notes included: a finding that is intended carries a
/// `# shellcheck disable=SCxxxx` with its reason in the file.
#[test]
fn shell_files_pass_shellcheck() {
    if !require(&[Need::TestProgram(SHELLCHECK, "shellcheck")]) {
        return;
    }
    let mut failures = Vec::new();
    for file in shell_files() {
        // Relative to the root, so the findings name the file as the repository does.
        let out = Command::new(SHELLCHECK)
            .args(["--format=gcc", "--"])
            .arg(&file)
            .current_dir(repo_root())
            .output()
            .expect("run shellcheck");
        // shellcheck exits 1 when it has findings, more when it could not check the file.
        match out.status.code() {
            Some(0) => {}
            Some(1) => failures.push(format!(
                "{}:\n{}",
                file.display(),
                String::from_utf8_lossy(&out.stdout).trim_end()
            )),
            _ => failures.push(format!(
                "{}: shellcheck failed ({}): {}",
                file.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim_end()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "shellcheck findings (fix them, or disable one with its reason):\n{}",
        failures.join("\n\n")
    );
}
