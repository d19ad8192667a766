//! The Debian package a lab host installs, end to end: `cargo deb --no-build` around this test
//! run's own binary (bootrig is not compiled twice), `apt-get install ./bootrig_*.deb` so its
//! Depends resolve (to what images/setup already installed: nothing else may change), the installed
//! `bootrig doctor` and a shipped scenario run from a directory outside the repository with the
//! repository hidden under an empty tmpfs, then `apt-get purge`.

mod common;

use common::require::cargo_deb;
use common::Need;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

const INSTALLED: &str = "/usr/bin/bootrig";
const EXAMPLES: &str = "/usr/share/doc/bootrig/examples";
/// Boots over iPXE (the ROMs, SeaBIOS, TFTP): most of the Depends at work, on the busybox base.
const SCENARIO: &str = "mlx4-ipoib-busybox";

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", show(&out));
    out
}

fn show(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every installed package with its version: what installing bootrig must leave alone.
fn installed_packages() -> BTreeSet<String> {
    let out = run(Command::new("dpkg-query").args([
        "-W",
        "-f",
        "${db:Status-Abbrev} ${binary:Package} ${Version}\\n",
    ]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("ii "))
        .map(str::to_owned)
        .collect()
}

fn apt_get(args: &[&str]) -> Output {
    run(Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// Purges the package when the test ends, failed or not: a lab host (or CI) is left as it was.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = Command::new("apt-get")
            .args(["purge", "-y", "-qq", "bootrig"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output();
    }
}

/// `cargo deb --no-build` with this run's binary staged as `<target-dir>/release/bootrig`, where
/// cargo-deb looks for the `target/release/bootrig` asset (its own CARGO_TARGET_DIR: cargo's
/// build directory of this test run stays untouched and unlocked).
fn build_deb(work: &Path) -> PathBuf {
    let staged = work.join("target/release");
    fs::create_dir_all(&staged).unwrap();
    fs::copy(env!("CARGO_BIN_EXE_bootrig"), staged.join("bootrig")).unwrap();
    let out_dir = work.join("deb");
    let cargo_deb = cargo_deb().expect("checked by require");
    run(Command::new(cargo_deb)
        .arg("deb")
        .arg("--no-build")
        .arg("--fast")
        .arg("--manifest-path")
        .arg(common::repo_root().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", work.join("target"))
        .arg("--output")
        .arg(&out_dir));
    let debs: Vec<PathBuf> = fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    let deb = debs.into_iter().next().unwrap();
    let name = deb.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("bootrig_") && name.ends_with("_amd64.deb"),
        "{name}"
    );
    deb
}

/// Runs `argv` in `dir` in a private mount namespace where the repository is an empty read-only
/// tmpfs: whatever the installed bootrig needs from the repository fails to be found.
fn hidden_repo(dir: &Path, argv: &[&str]) -> Output {
    Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o ro bootrig-hidden "$0" && cd "$1" && shift && exec "$@""#)
        .arg(common::repo_root())
        .arg(dir)
        .args(argv)
        .stdin(Stdio::null())
        .output()
        .expect("spawn unshare")
}

/// The scenario as the package ships it, under `site/scenarios/`, with the kernel and module tree
/// images/setup fetched laid out at `site/images/cache/current`, where its relative paths point
/// (the tree hard-linked where it can be, else copied: inputs, not part of bootrig).
fn lay_out_site(site: &Path) -> PathBuf {
    let env = common::cache_env();
    let scenarios = site.join("scenarios");
    fs::create_dir_all(&scenarios).unwrap();
    let file = scenarios.join(format!("{SCENARIO}.toml"));
    fs::copy(
        Path::new(EXAMPLES).join(format!("scenarios/{SCENARIO}.toml")),
        &file,
    )
    .unwrap();
    let current = site.join("images/cache/current");
    let modules = current.join("lib/modules");
    fs::create_dir_all(&modules).unwrap();
    fs::copy(&env.kernel, current.join("vmlinuz")).unwrap();
    let linked = Command::new("cp")
        .arg("-al")
        .arg(&env.modules)
        .arg(&modules)
        .status()
        .unwrap();
    if !linked.success() {
        let _ = fs::remove_dir_all(modules.join(&env.release));
        run(Command::new("cp").arg("-a").arg(&env.modules).arg(&modules));
    }
    file
}

/// The packages `images/setup` installs for the main job (its `packages=(…)` and `packages+=(…)`
/// before the `--tests` block), in the order written.
fn setup_main_packages(setup: &str) -> Vec<String> {
    let main = setup
        .split("if [ \"$scope\" = tests ]")
        .next()
        .unwrap_or_default();
    let mut names = Vec::new();
    for (i, _) in main.match_indices("packages") {
        let rest = &main[i..];
        let Some(open) = ["packages=(", "packages+=("]
            .iter()
            .find_map(|p| rest.strip_prefix(p))
        else {
            continue;
        };
        let list = &open[..open.find(')').expect("packages list closes")];
        let words = list
            .lines()
            .flat_map(|l| l.split('#').next().unwrap_or_default().split_whitespace());
        names.extend(words.map(str::to_owned));
    }
    names
}

#[test]
fn depends_are_what_images_setup_installs_for_the_main_job() {
    let root = common::repo_root();
    let setup = fs::read_to_string(root.join("images/setup")).unwrap();
    let setup = setup_main_packages(&setup);
    assert!(
        setup.iter().any(|p| p == "qemu-system-x86") && setup.iter().any(|p| p == "rdma-core"),
        "{setup:?}"
    );
    let manifest: toml::Value =
        toml::from_str(&fs::read_to_string(root.join("Cargo.toml")).unwrap()).unwrap();
    let depends = manifest["package"]["metadata"]["deb"]["depends"]
        .as_str()
        .expect("[package.metadata.deb] depends");
    let depends: Vec<&str> = depends.split(',').map(str::trim).collect();
    assert_eq!(depends[0], "$auto", "the binary's own libraries first");
    assert_eq!(
        depends[1..],
        setup.iter().map(String::as_str).collect::<Vec<_>>()[..],
        "Cargo.toml's deb depends and images/setup's main packages differ"
    );
}

#[test]
fn package_installs_runs_doctor_and_a_scenario_without_the_repository_then_purges() {
    if !common::require(&[
        Need::Root,
        Need::Qemu,
        Need::Setup,
        Need::Dnsmasq,
        Need::Program("/usr/bin/unshare", "util-linux"),
        Need::CargoDeb,
    ]) {
        return;
    }
    let start = Instant::now();
    let before = installed_packages();
    assert!(
        !before.iter().any(|p| p.starts_with("ii  bootrig ")),
        "bootrig is installed already (dpkg); this test installs and purges its own: apt-get purge bootrig"
    );
    let work = tempfile::tempdir().unwrap();
    let root = common::repo_root().canonicalize().unwrap();
    assert!(
        !work.path().canonicalize().unwrap().starts_with(&root),
        "TMPDIR is inside the repository"
    );

    let deb = build_deb(work.path());
    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let listing = String::from_utf8_lossy(&listing.stdout);
    for want in [
        "./usr/bin/bootrig",
        "./usr/share/doc/bootrig/examples/lab-inventory.example.toml",
        "./usr/share/doc/bootrig/examples/scenarios/mlx4-ipoib-busybox.toml",
        "./usr/share/doc/bootrig/examples/scenarios/rdma/soft-roce-busybox.toml",
    ] {
        assert!(listing.contains(want), "no {want} in\n{listing}");
    }
    let built = start.elapsed();

    let _purge = Purge;
    // `./` makes apt take the file; its Depends come from the archive (all already installed).
    apt_get(&[
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        &deb.to_string_lossy(),
    ]);
    let after = installed_packages();
    let added: Vec<&String> = after.difference(&before).collect();
    let changed: Vec<&String> = before.difference(&after).collect();
    assert!(
        added.len() == 1 && added[0].starts_with("ii  bootrig ") && changed.is_empty(),
        "installing changed other packages: added {added:?}, removed or changed {changed:?}"
    );
    let installed = start.elapsed();

    let doctor = hidden_repo(
        work.path(),
        &[INSTALLED, "doctor", "--json", "--probe-timeout", "2"],
    );
    assert_eq!(doctor.status.code(), Some(0), "{}", show(&doctor));
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout).expect("doctor JSON");
    assert_eq!(report["ready"], true, "{report:#}");

    let site = work.path().join("site");
    let file = lay_out_site(&site);
    let scenario = file
        .strip_prefix(&site)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let ran = hidden_repo(&site, &[INSTALLED, "run", &scenario, "--out", "out"]);
    assert_eq!(ran.status.code(), Some(0), "{}", show(&ran));
    let summary: serde_json::Value =
        serde_json::from_slice(&fs::read(site.join("out/summary.json")).unwrap()).unwrap();
    let scenarios = summary["scenarios"].as_array().expect("scenarios array");
    assert_eq!(scenarios.len(), 1, "{summary:#}");
    assert_eq!(scenarios[0]["id"], SCENARIO, "{summary:#}");
    assert_eq!(scenarios[0]["outcome"], "pass", "{summary:#}");
    let ran_at = start.elapsed();

    apt_get(&["purge", "-y", "-qq", "bootrig"]);
    assert!(
        !Path::new(INSTALLED).exists(),
        "{INSTALLED} is left after purge"
    );
    assert!(
        !Path::new(EXAMPLES).exists(),
        "{EXAMPLES} is left after purge"
    );
    assert_eq!(
        installed_packages(),
        before,
        "purge left the package set changed"
    );
    eprintln!(
        "deb_package: built {built:?}, installed {:?}, doctor+scenario {:?}, total {:?}",
        installed - built,
        ran_at - installed,
        start.elapsed()
    );
}
