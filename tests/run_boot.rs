//! End-to-end `bootrig run`, `check` and `repro`: the real binary boots real scenarios in QEMU
//! (TCG: nested KVM hangs guests here) and the tests read back what a user would: the exit code,
//! summary.json, junit.xml and the artifacts of each boot (console.log, qmp.jsonl, qemu.cmdline,
//! http.log). Also the ways a run ends badly: a wrong module order, a timeout, QEMU killed under
//! bootrig, Ctrl-C, and scenario files that do not parse.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bootrig::console::{self, InsmodResult};
use bootrig::names::Named;
use bootrig::scenario::Scenario;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// A run of the binary, its output kept in files (a full pipe cannot stall it).
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    fn show(&self) -> String {
        format!(
            "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// A bootrig started in the background, from the repository root, with its own build cache.
struct Started {
    child: Child,
    logs: tempfile::TempDir,
    _cache: tempfile::TempDir,
}

fn start(args: &[&str]) -> Started {
    // A fresh build cache: every run really builds its initrds.
    let cache = tempfile::tempdir().expect("cache dir");
    let mut command = Command::new(common::bootrig_bin());
    command.args(args).env("BOOTRIG_CACHE", cache.path());
    spawn_in_root(command, cache)
}

/// Starts `command` from the repository root, in a process group of its own (so a timeout
/// kills whatever it started), its output kept in files.
fn spawn_in_root(mut command: Command, cache: tempfile::TempDir) -> Started {
    use std::os::unix::process::CommandExt;
    let logs = tempfile::tempdir().expect("log dir");
    let stdout = fs::File::create(logs.path().join("stdout")).expect("stdout file");
    let stderr = fs::File::create(logs.path().join("stderr")).expect("stderr file");
    let child = command
        .current_dir(common::repo_root())
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("spawn");
    Started {
        child,
        logs,
        _cache: cache,
    }
}

impl Started {
    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait bootrig")
    }

    /// Waits up to `limit`; a bootrig still running then is killed and the test fails.
    fn wait(mut self, limit: Duration) -> Ran {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.exited() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = nix::sys::signal::killpg(self.pid(), Signal::SIGKILL);
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "bootrig still running after {limit:?}; stderr:\n{}",
                    fs::read_to_string(self.logs.path().join("stderr")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        Ran {
            status,
            stdout: fs::read_to_string(self.logs.path().join("stdout")).unwrap_or_default(),
            stderr: fs::read_to_string(self.logs.path().join("stderr")).unwrap_or_default(),
        }
    }
}

/// Runs bootrig to its end, bounded by `limit`.
fn bootrig(args: &[&str], limit: Duration) -> Ran {
    start(args).wait(limit)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()))
}

/// The scenario with `id` in a report.
fn scenario<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["scenarios"]
        .as_array()
        .expect("scenarios is an array")
        .iter()
        .find(|sc| sc["id"] == id)
        .unwrap_or_else(|| panic!("no scenario {id} in the report:\n{report:#}"))
}

fn ids(report: &Value) -> BTreeSet<String> {
    report["scenarios"]
        .as_array()
        .expect("scenarios is an array")
        .iter()
        .map(|sc| sc["id"].as_str().expect("id is a string").to_string())
        .collect()
}

fn text_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// The console bytes of a boot, as text (lossy: firmware writes a few non-UTF-8 bytes).
fn console_log(dir: &Path) -> String {
    let path = dir.join("console.log");
    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A scenario file for the fetched kernel: `body` is everything after `[kernel]`.
fn write_scenario(dir: &Path, id: &str, body: &str) -> PathBuf {
    let env = common::cache_env();
    let tree = env.kernel.parent().expect("the kernel is in its tree");
    let text = format!(
        "name = \"{id}\"\n[kernel]\nimage = \"{}\"\nmodules = \"{}\"\n{body}",
        env.kernel.display(),
        tree.display()
    );
    fs::create_dir_all(dir).expect("scenario dir");
    let path = dir.join(format!("{id}.toml"));
    fs::write(&path, text).expect("write scenario");
    path
}

/// The virtio NIC's modules in an order the kernel accepts, for `order = "as-is"`.
const VIRTIO: &str = r#""virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci", "failover", "net_failover", "virtio_net""#;

/// A scenario that boots directly (-kernel/-initrd) to a DHCP address: the quickest real boot.
fn direct_boot_body() -> String {
    format!(
        "[initrd]\nbase = \"busybox\"\nload = [{VIRTIO}]\norder = \"as-is\"\n\
         [network]\ninterface = \"eth0\"\ndhcp = \"udhcpc\"\n[boot]\nmethod = \"direct\"\n"
    )
}

/// QEMU processes whose command line mentions `dir` (the run's artifact directory).
fn qemus_mentioning(dir: &Path) -> Vec<Pid> {
    let needle = s(dir);
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // Processes come and go while we look.
        let Ok(raw) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_qemu = args
            .first()
            .and_then(|a| Path::new(a).file_name())
            .is_some_and(|n| n.to_string_lossy().starts_with("qemu-system"));
        if is_qemu && args.iter().any(|a| a.contains(needle)) {
            found.push(Pid::from_raw(pid));
        }
    }
    found
}

/// Waits until `path` has some bytes, while `run` is still going.
fn wait_for_bytes(run: &mut Started, path: &Path, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        if fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            return;
        }
        if let Some(status) = run.exited() {
            panic!(
                "bootrig ended ({status}) before {} had bytes; stderr:\n{}",
                path.display(),
                fs::read_to_string(run.logs.path().join("stderr")).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{} still empty after {limit:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn parse_junit(path: &Path) -> (usize, usize, usize) {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("{}: not well-formed XML: {e}", path.display()));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites", "{text}");
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    let skipped = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("skipped")))
        .count();
    let failed = cases
        .iter()
        .filter(|c| {
            c.children()
                .any(|n| n.has_tag_name("failure") || n.has_tag_name("error"))
        })
        .count();
    // The counts on the root agree with the cases listed.
    let attr = |name: &str| -> usize {
        root.attribute(name)
            .unwrap_or_else(|| panic!("<testsuites> has no {name}"))
            .parse()
            .unwrap_or_else(|e| panic!("<testsuites {name}>: {e}"))
    };
    assert_eq!(attr("tests"), cases.len(), "{text}");
    assert_eq!(attr("skipped"), skipped, "{text}");
    assert_eq!(attr("failures") + attr("errors"), failed, "{text}");
    (cases.len(), skipped, failed)
}

/// Every module of the plan in /proc/modules, in plan order; the stanza insmod-ed them in that
/// order too, each successfully or found already loaded; and eth0 got QEMU's lease.
fn assert_modules_and_address(dir: &Path, log: &str, whole_plan_in_order: bool) {
    assert_modules_and_address_in(dir, log, whole_plan_in_order, None);
}

/// The same, with eth0's address within `subnet` (a dnsmasq segment's) instead of QEMU's lease.
fn assert_modules_and_address_in(
    dir: &Path,
    log: &str,
    whole_plan_in_order: bool,
    subnet: Option<&str>,
) {
    let evidence = console::parse(log);
    match subnet {
        None => assert_eq!(evidence.address("eth0"), Some("10.0.2.15/24"), "{log}"),
        Some(net) => {
            let addr = evidence
                .address("eth0")
                .unwrap_or_else(|| panic!("no address\n{log}"));
            assert_eq!(
                bootrig::run::judge::within(addr, net),
                Some(true),
                "{addr} not in {net}"
            );
        }
    }
    let plan = read_json(&dir.join("plan.json"));
    let planned: Vec<&str> = plan["modules"]
        .as_array()
        .expect("plan.json modules")
        .iter()
        .map(|m| m["name"].as_str().expect("module name"))
        .collect();
    assert!(!planned.is_empty(), "{}: empty plan", dir.display());
    let stanza: Vec<&str> = evidence.insmods.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        stanza, planned,
        "the stanza's insmods differ from the plan\n{log}"
    );
    for insmod in &evidence.insmods {
        assert!(
            matches!(
                insmod.result,
                InsmodResult::Ran { rc: 0 } | InsmodResult::AlreadyLoaded
            ),
            "{insmod:?}\n{log}"
        );
    }
    let sequence = evidence.load_sequence().expect("a /proc/modules listing");
    let loaded_by_stanza: Vec<&str> = evidence
        .insmods
        .iter()
        .filter(|i| i.result == InsmodResult::Ran { rc: 0 })
        .map(|i| i.name.as_str())
        .collect();
    assert!(!loaded_by_stanza.is_empty(), "{log}");
    let kernel_order: Vec<&str> = sequence
        .iter()
        .copied()
        .filter(|m| loaded_by_stanza.contains(m))
        .collect();
    assert_eq!(
        kernel_order, loaded_by_stanza,
        "/proc/modules order differs from the stanza's\n{log}"
    );
    if whole_plan_in_order {
        let listed: Vec<&str> = sequence
            .iter()
            .copied()
            .filter(|m| planned.contains(m))
            .collect();
        assert_eq!(listed, planned, "/proc/modules vs plan.json\n{log}");
    }
}

/// The guest was started paused and resumed over QMP, and it ended with a SHUTDOWN event.
fn assert_qmp_and_cmdline(dir: &Path) {
    let cmdline = fs::read_to_string(dir.join("qemu.cmdline")).expect("qemu.cmdline");
    assert!(
        cmdline.split_whitespace().any(|w| w == "-S"),
        "{}: no -S in {cmdline}",
        dir.display()
    );
    let qmp = fs::read_to_string(dir.join("qmp.jsonl")).expect("qmp.jsonl");
    let records: Vec<Value> = qmp
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("qmp.jsonl {l:?}: {e}")))
        .collect();
    assert!(
        records
            .iter()
            .any(|r| r["dir"] == "sent" && r["msg"]["execute"] == "cont"),
        "{}: no cont sent\n{qmp}",
        dir.display()
    );
    assert!(
        records
            .iter()
            .any(|r| r["dir"] == "received" && r["msg"]["event"] == "SHUTDOWN"),
        "{}: no SHUTDOWN received\n{qmp}",
        dir.display()
    );
}

/// http.log shows both boot files fetched complete, as many bytes as were staged.
fn assert_http_fetches(dir: &Path) {
    let log = fs::read_to_string(dir.join("http.log")).expect("http.log");
    let records: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("http.log {l:?}: {e}")))
        .collect();
    for file in ["vmlinuz", "initrd.img"] {
        let size = fs::metadata(dir.join("boot").join(file))
            .unwrap_or_else(|e| panic!("boot/{file}: {e}"))
            .len();
        let fetched = records.iter().any(|r| {
            r["path"] == format!("/{file}")
                && r["from"] == "guest"
                && r["status"] == 200
                && r["complete"] == true
                && r["bytes_sent"].as_u64() == Some(size)
        });
        assert!(
            fetched,
            "{}: no complete 200 fetch of {file} ({size} bytes)\n{log}",
            dir.display()
        );
    }
}

fn phase_names(sc: &Value) -> Vec<(String, f64)> {
    sc["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .map(|p| {
            (
                text_of(&p["name"]).to_string(),
                p["at_seconds"].as_f64().expect("at_seconds"),
            )
        })
        .collect()
}

/// The README's first command, as the README writes it (the line a newcomer runs on a fresh
/// clone): set up, then `bootrig run scenarios/` with the default `--out`.
fn readme_first_command() -> String {
    let readme = fs::read_to_string(common::repo_root().join("README.md")).expect("README.md");
    readme
        .lines()
        .filter(|l| l.starts_with("    "))
        .map(str::trim)
        .find(|l| l.contains("images/setup") && l.contains("cargo run"))
        .expect("README.md: no indented `./images/setup && cargo run …` command")
        .to_string()
}

/// The README's first command, run verbatim from the repository root (the default `--out`
/// under `runs/`, the shipped `scenarios/`, the accelerator left on auto), passes: every
/// scenario has the outcome its file asks for, with its evidence.
#[test]
fn readme_first_command_passes_the_shipped_suite_with_its_evidence() {
    if !common::require(&[
        common::Need::Root,
        common::Need::Qemu,
        common::Need::Setup,
        common::Need::Dnsmasq,
        common::Need::Program("/bin/busybox", "busybox-static"),
    ]) {
        return;
    }
    let command = readme_first_command();
    assert!(command.contains("run scenarios/"), "{command}");
    let mut bash = Command::new("bash");
    bash.args(["-euo", "pipefail", "-c", &command]);
    let ran = spawn_in_root(bash, tempfile::tempdir().unwrap()).wait(Duration::from_secs(900));
    assert_eq!(ran.code(), Some(0), "`{command}`:\n{}", ran.show());
    // Where the default --out put the evidence: `runs/<UTC time>/`, relative to the root.
    let out = ran
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("bootrig: evidence in "))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no evidence line: {}", ran.show()));
    let runs = common::repo_root().join("runs");
    assert!(
        out.starts_with(&runs) && out.is_dir(),
        "evidence in {} (want a new directory under {})",
        out.display(),
        runs.display()
    );
    eprintln!("README first command: evidence in {}", out.display());
    let report = read_json(&out.join("summary.json"));
    check_shipped_suite(&out, &report);
}

/// Every scenario file of `scenarios/` is in the report once, with the outcome it asks for and
/// the evidence behind it.
fn check_shipped_suite(out: &Path, report: &Value) {
    // Every scenario file is in the report once, with the outcome its file asks for.
    let root = common::repo_root().join("scenarios");
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                files.push(p);
            }
        }
    }
    let want: BTreeSet<String> = files
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(&root).unwrap().with_extension("");
            rel.to_string_lossy().into_owned()
        })
        .collect();
    assert_eq!(ids(report), want, "{report:#}");

    let mut positives = Vec::new();
    let mut skipped = 0;
    for file in &files {
        let id = file
            .strip_prefix(&root)
            .unwrap()
            .with_extension("")
            .to_string_lossy()
            .into_owned();
        let plan = Scenario::load(file).unwrap_or_else(|e| panic!("{e}"));
        let sc = scenario(report, &id);
        let dir = out.join(&id);
        let iface = &plan.network.interface;
        if iface.starts_with("ib") {
            assert!(
                id.starts_with("lab/"),
                "{id} needs an adapter but is not in lab/"
            );
            assert_eq!(sc["outcome"], "skip", "{id}: {sc:#}");
            // Why: the interface, or the adapter the lab inventory must name.
            let why = text_of(&sc["reason"]);
            assert!(
                why.contains(iface.as_str()) || why.contains("lab inventory"),
                "{sc:#}"
            );
            assert!(!dir.join("console.log").exists(), "{id} booted");
            skipped += 1;
            continue;
        }
        assert_eq!(sc["outcome"], "pass", "{id}: {sc:#}");
        assert_qmp_and_cmdline(&dir);
        let log = console_log(&dir);
        assert!(!log.is_empty(), "{id}: empty console.log");
        match &plan.expect.failure {
            Some(kind) => {
                // Expected failures are named for it: negatives and injected network faults.
                let file_name = id.rsplit('/').next().unwrap_or(&id);
                assert!(
                    file_name.starts_with("negative-") || id.starts_with("net/fault-"),
                    "{id}"
                );
                assert_eq!(sc["expected_failure"], kind.as_str(), "{sc:#}");
                assert_eq!(sc["cause"]["kind"], kind.as_str(), "{id}: {sc:#}");
            }
            None => {
                assert!(sc["cause"].is_null(), "{id}: {sc:#}");
                assert_eq!(sc["findings"], serde_json::json!([]), "{id}: {sc:#}");
                assert!(log.contains("BOOTRIG done"), "{id}: no BOOTRIG done\n{log}");
                positives.push(id);
            }
        }
    }
    assert!(skipped >= 1, "no lab scenario was skipped");
    assert!(positives.len() >= 4, "{positives:?}");

    let (tests, junit_skipped, failed) = parse_junit(&out.join("junit.xml"));
    assert_eq!((tests, junit_skipped, failed), (files.len(), skipped, 0));

    // The checks the old build_boot tests made, from the console alone.
    for id in &positives {
        let dir = out.join(id);
        let plan =
            Scenario::load(&root.join(format!("{id}.toml"))).unwrap_or_else(|e| panic!("{e}"));
        let subnet = id
            .starts_with("net/")
            .then(|| plan.expect.address.clone())
            .flatten();
        assert_modules_and_address_in(
            &dir,
            &console_log(&dir),
            id == "mlx4-ipoib-busybox",
            subnet.as_deref(),
        );
    }

    for id in ["mlx4-en-manual-dhclient", "mlx4-ipoib-uefi-e1000e"] {
        assert_http_fetches(&out.join(id));
    }
    let uefi = console_log(&out.join("mlx4-ipoib-uefi-e1000e"));
    assert!(uefi.contains("EFI stub"), "{uefi}");

    // A BIOS iPXE boot goes through every phase, in order.
    let busybox = scenario(report, "mlx4-ipoib-busybox");
    assert_eq!(busybox["boot"]["firmware"], "bios");
    assert_eq!(busybox["boot"]["method"], "ipxe");
    let phases = phase_names(busybox);
    let names: Vec<&str> = phases.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "firmware",
        "ipxe-dhcp",
        "boot-files",
        "modules",
        "address",
        "done",
    ] {
        assert!(names.contains(&want), "no {want} phase: {phases:?}");
    }
    assert!(
        phases.windows(2).all(|w| w[0].1 < w[1].1),
        "phases not in increasing time: {phases:?}"
    );

    // The dhclient scenario's shell steps ran and their answers are on the console.
    // (Its findings, where a failed step would show, were checked empty above.)
    let log = console_log(&out.join("mlx4-en-manual-dhclient"));
    assert!(log.contains("BOOTRIG shell"), "{log}");
    assert!(log.contains("fixed-address 10.0.2.15;"), "{log}");
    assert_eq!(log.matches("BOOTRIG shell-rc=0").count(), 2, "{log}");
}

#[test]
fn check_boots_directly_and_passes() {
    if !common::require(common::BUSYBOX_BOOT) {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let ran = bootrig(
        &[
            "check",
            "scenarios/mlx4-ipoib-busybox.toml",
            "--accel",
            "tcg",
            "--out",
            s(out.path()),
        ],
        Duration::from_secs(240),
    );
    assert_eq!(ran.code(), Some(0), "{}", ran.show());
    let report = read_json(&out.path().join("summary.json"));
    let sc = scenario(&report, "mlx4-ipoib-busybox");
    assert_eq!(sc["outcome"], "pass", "{sc:#}");
    assert_eq!(sc["boot"]["method"], "direct", "{sc:#}");
    let dir = out.path().join("mlx4-ipoib-busybox");
    let cmdline = fs::read_to_string(dir.join("qemu.cmdline")).unwrap();
    assert!(
        cmdline.split_whitespace().any(|w| w == "-kernel"),
        "{cmdline}"
    );
    assert!(!cmdline.contains("bootfile"), "{cmdline}");
    assert_modules_and_address(&dir, &console_log(&dir), true);
}

#[test]
fn strict_wrong_order_stops_the_build_naming_both_modules() {
    if !common::require(common::BUSYBOX_BOOT) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let file = write_scenario(
        &work.path().join("scenarios"),
        "swapped",
        "[initrd]\nbase = \"busybox\"\nload = [\"ib_ipoib\", \"ib_core\", \"ib_cm\"]\norder = \"strict\"\n[network]\ninterface = \"eth0\"\n",
    );
    let out = work.path().join("out");
    let ran = bootrig(
        &["run", s(&file), "--accel", "tcg", "--out", s(&out)],
        Duration::from_secs(120),
    );
    assert_eq!(ran.code(), Some(1), "{}", ran.show());
    let report = read_json(&out.join("summary.json"));
    let sc = scenario(&report, "swapped");
    assert_eq!(sc["outcome"], "error", "{sc:#}");
    let reason = text_of(&sc["reason"]);
    assert!(
        reason.contains("ib_ipoib") && reason.contains("ib_cm") && reason.contains("loaded after"),
        "{reason}"
    );
    assert!(!out.join("swapped/console.log").exists(), "it booted");
    assert!(
        !out.join("swapped/qemu.cmdline").exists(),
        "QEMU was set up"
    );
}

#[test]
fn unknown_module_parameter_is_classified() {
    if !common::require(common::BUSYBOX_BOOT) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let file = write_scenario(
        work.path(),
        "bogus-param",
        &format!(
            "[initrd]\nbase = \"busybox\"\nload = [{VIRTIO}, \"mlx4_core bogus_param=1\"]\norder = \"as-is\"\n\
             [network]\ninterface = \"eth0\"\ndhcp = \"udhcpc\"\n[boot]\nmethod = \"direct\"\n\
             [expect]\nfailure = \"unknown-parameter\"\n"
        ),
    );
    let out = work.path().join("out");
    let ran = bootrig(
        &["run", s(&file), "--accel", "tcg", "--out", s(&out)],
        Duration::from_secs(180),
    );
    let report = read_json(&out.join("summary.json"));
    let sc = scenario(&report, "bogus-param");
    assert_eq!(ran.code(), Some(0), "{}\n{sc:#}", ran.show());
    assert_eq!(sc["outcome"], "pass", "{sc:#}");
    assert_eq!(sc["cause"]["kind"], "unknown-parameter", "{sc:#}");
    let evidence = sc["cause"]["evidence"].to_string();
    assert!(evidence.contains("bogus_param"), "{sc:#}");
    assert!(
        text_of(&sc["cause"]["summary"]).contains("mlx4_core"),
        "{sc:#}"
    );
}

#[test]
fn timeouts_name_the_phase() {
    if !common::require(common::BUSYBOX_BOOT) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let scenarios = work.path().join("scenarios");
    let ipxe = "[initrd]\nbase = \"busybox\"\nload = [\"virtio_pci\", \"virtio_net\"]\norder = \"resolve\"\n\
                [network]\ninterface = \"eth0\"\ndhcp = \"udhcpc\"\n\
                [boot]\nfirmware = \"bios\"\nmethod = \"ipxe\"\nfetch = \"tftp\"\n";
    write_scenario(
        &scenarios,
        "whole-timeout",
        &format!("{ipxe}[expect]\ntimeout = \"4s\"\nfailure = \"timeout\"\n"),
    );
    // Under UEFI, OVMF's iPXE takes 3.5-6 s under TCG here to fetch the boot files: a 1 s limit
    // always runs out in that phase. (Under BIOS the next phase's first line, "Probing EDD ...
    // ok", ends only when the kernel's console starts, so boot-files lasts until init live.)
    write_scenario(
        &scenarios,
        "phase-timeout",
        &format!(
            "{}[expect]\nfailure = \"timeout\"\n[expect.phases]\nboot-files = \"1s\"\n",
            ipxe.replace("firmware = \"bios\"", "firmware = \"uefi\"")
        ),
    );
    let out = work.path().join("out");
    let ran = bootrig(
        &[
            "run",
            s(&scenarios),
            "-j",
            "2",
            "--accel",
            "tcg",
            "--out",
            s(&out),
        ],
        Duration::from_secs(240),
    );
    let report = read_json(&out.join("summary.json"));
    assert_eq!(ran.code(), Some(0), "{}\n{report:#}", ran.show());

    let whole = scenario(&report, "whole-timeout");
    assert_eq!(whole["outcome"], "pass", "{whole:#}");
    assert_eq!(whole["cause"]["kind"], "timeout", "{whole:#}");
    let phase = text_of(&whole["cause"]["phase"]);
    assert!(
        ["firmware", "ipxe-dhcp"].contains(&phase),
        "4 s ran out in {phase}: {whole:#}"
    );
    // It stopped at the limit: no later phase began (iPXE's DHCP alone takes about 5 s).
    assert!(
        phase_names(whole)
            .iter()
            .all(|(name, _)| ["firmware", "ipxe-dhcp"].contains(&name.as_str())),
        "{whole:#}"
    );
    assert!(
        !console_log(&out.join("whole-timeout")).contains("BOOTRIG begin"),
        "the boot went on past the limit"
    );

    let per_phase = scenario(&report, "phase-timeout");
    assert_eq!(per_phase["outcome"], "pass", "{per_phase:#}");
    assert_eq!(per_phase["cause"]["kind"], "timeout", "{per_phase:#}");
    assert_eq!(per_phase["cause"]["phase"], "boot-files", "{per_phase:#}");
    assert!(
        text_of(&per_phase["cause"]["summary"]).contains("boot-files"),
        "{per_phase:#}"
    );
    let names: Vec<String> = phase_names(per_phase).into_iter().map(|p| p.0).collect();
    assert_eq!(
        names.last().map(String::as_str),
        Some("boot-files"),
        "{names:?}"
    );
    assert!(names.contains(&"ipxe-dhcp".to_string()), "{names:?}");
}

fn repro_args<'a>(env: &'a common::CacheEnv, initrd: &'a Path, out: &'a Path) -> Vec<&'a str> {
    vec![
        "repro",
        "--kernel",
        s(&env.kernel),
        "--initrd",
        s(initrd),
        "--method",
        "direct",
        "--timeout",
        "90s",
        "--accel",
        "tcg",
        "--out",
        s(out),
    ]
}

/// A customer's dracut initrd booted without `root=`: dracut gives up and opens its emergency
/// shell, which waits forever; the run ends there (well before the timeout) with the reason.
#[test]
fn repro_of_a_dracut_initrd_without_root_is_an_emergency_shell() {
    if !common::require(common::BUSYBOX_BOOT) {
        return;
    }
    let env = common::cache_env();
    let initrd = common::fixture("dracut-gzip").path;
    let out = tempfile::tempdir().unwrap();
    let mut args = repro_args(&env, &initrd, out.path());
    // Long enough that a run ending at the timeout cannot pass for one that ended at the shell.
    let timeout = args.iter().position(|a| *a == "90s").unwrap();
    args[timeout] = "600s";
    let ran = bootrig(&args, Duration::from_secs(400));
    let report = read_json(&out.path().join("summary.json"));
    assert_eq!(ran.code(), Some(1), "{}\n{report:#}", ran.show());
    let sc = scenario(&report, "repro");
    assert_eq!(sc["cause"]["kind"], "emergency-shell", "{sc:#}");
    assert!(text_of(&sc["cause"]["summary"]).contains("root="), "{sc:#}");
}

#[test]
fn repro_of_a_field_initrd_whose_init_fails_is_a_kernel_panic() {
    if !common::require(common::BUSYBOX_BOOT) {
        return;
    }
    let env = common::cache_env();
    let initrd = common::fixture("mkinitramfs-gzip").path;
    let out = tempfile::tempdir().unwrap();
    let mut args = repro_args(&env, &initrd, out.path());
    // An init that exits at once: the kernel panics "Attempted to kill init!".
    args.extend(["--append", "rdinit=/bin/false"]);
    let ran = bootrig(&args, Duration::from_secs(180));
    let report = read_json(&out.path().join("summary.json"));
    assert_eq!(ran.code(), Some(1), "{}\n{report:#}", ran.show());
    let sc = scenario(&report, "repro");
    assert_eq!(sc["outcome"], "fail", "{sc:#}");
    assert_eq!(sc["cause"]["kind"], "kernel-panic", "{sc:#}");
    assert!(
        sc["cause"]["evidence"]
            .to_string()
            .contains("Attempted to kill init"),
        "{sc:#}"
    );
    // Booted unchanged: the staged initrd is the given one, byte for byte.
    assert_eq!(
        common::sha256_file(&out.path().join("repro/boot/initrd.img")),
        common::sha256_file(&initrd)
    );
}

/// An init the kernel cannot execute (here a config file of the initramfs, mode 0644): the
/// kernel says so, falls back to the initrd's /bin/sh as init, which waits forever; the run
/// ends at the kernel's line (it used to wait for the timeout and call it one).
#[test]
fn repro_of_an_init_the_kernel_cannot_execute_ends_at_its_line() {
    if !common::require(common::BUSYBOX_BOOT) {
        return;
    }
    let env = common::cache_env();
    let initrd = common::fixture("mkinitramfs-gzip").path;
    let out = tempfile::tempdir().unwrap();
    let mut args = repro_args(&env, &initrd, out.path());
    // Long enough that a run ending at the timeout cannot pass for one that ended at the line.
    let timeout = args.iter().position(|a| *a == "90s").unwrap();
    args[timeout] = "600s";
    args.extend(["--append", "rdinit=/conf/initramfs.conf"]);
    let ran = bootrig(&args, Duration::from_secs(400));
    let report = read_json(&out.path().join("summary.json"));
    assert_eq!(ran.code(), Some(1), "{}\n{report:#}", ran.show());
    let sc = scenario(&report, "repro");
    assert_eq!(sc["cause"]["kind"], "init-not-executable", "{sc:#}");
    assert_eq!(sc["cause"]["phase"], "kernel", "{sc:#}");
    assert!(
        sc["cause"]["evidence"]
            .to_string()
            .contains("Failed to execute /conf/initramfs.conf (error -13)"),
        "{sc:#}"
    );
    assert!(sc["duration_seconds"].as_f64().unwrap() < 300.0, "{sc:#}");
}

#[test]
fn repro_until_a_console_line_passes() {
    if !common::require(common::BUSYBOX_BOOT) {
        return;
    }
    let env = common::cache_env();
    let initrd = common::fixture("mkinitramfs-gzip").path;
    let out = tempfile::tempdir().unwrap();
    let mut args = repro_args(&env, &initrd, out.path());
    args.extend(["--until", "Loading, please wait"]);
    let ran = bootrig(&args, Duration::from_secs(180));
    let report = read_json(&out.path().join("summary.json"));
    assert_eq!(ran.code(), Some(0), "{}\n{report:#}", ran.show());
    let sc = scenario(&report, "repro");
    assert_eq!(sc["outcome"], "pass", "{sc:#}");
    assert!(sc["cause"].is_null(), "{sc:#}");
    let log = console_log(&out.path().join("repro"));
    assert!(log.contains("Loading, please wait"), "{log}");
}

#[test]
fn qemu_killed_under_bootrig_is_qemu_crashed() {
    if !common::require(common::BUSYBOX_BOOT) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let file = write_scenario(work.path(), "crash-me", &direct_boot_body());
    let out = work.path().join("out");
    let mut run = start(&["run", s(&file), "--accel", "tcg", "--out", s(&out)]);
    wait_for_bytes(
        &mut run,
        &out.join("crash-me/console.log"),
        Duration::from_secs(120),
    );
    let qemus = qemus_mentioning(&out);
    assert_eq!(
        qemus.len(),
        1,
        "QEMUs mentioning {}: {qemus:?}",
        out.display()
    );
    kill(qemus[0], Signal::SIGKILL).expect("kill QEMU");
    let ran = run.wait(Duration::from_secs(60));
    let report = read_json(&out.join("summary.json"));
    assert_eq!(ran.code(), Some(1), "{}\n{report:#}", ran.show());
    let sc = scenario(&report, "crash-me");
    assert_eq!(sc["outcome"], "fail", "{sc:#}");
    assert_eq!(sc["cause"]["kind"], "qemu-crashed", "{sc:#}");
    assert!(
        text_of(&sc["cause"]["summary"]).contains("SIGKILL"),
        "{sc:#}"
    );
}

#[test]
fn ctrl_c_stops_the_run_and_still_reports() {
    if !common::require(common::BUSYBOX_BOOT) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let scenarios = work.path().join("scenarios");
    write_scenario(&scenarios, "a-first", &direct_boot_body());
    write_scenario(&scenarios, "b-second", &direct_boot_body());
    let out = work.path().join("out");
    let mut run = start(&[
        "run",
        s(&scenarios),
        "-j",
        "1",
        "--accel",
        "tcg",
        "--out",
        s(&out),
    ]);
    wait_for_bytes(
        &mut run,
        &out.join("a-first/console.log"),
        Duration::from_secs(120),
    );
    kill(run.pid(), Signal::SIGINT).expect("SIGINT bootrig");
    let ran = run.wait(Duration::from_secs(60));
    let report = read_json(&out.join("summary.json"));
    assert_eq!(ran.code(), Some(1), "{}\n{report:#}", ran.show());
    let first = scenario(&report, "a-first");
    assert_eq!(first["outcome"], "error", "{first:#}");
    assert!(
        text_of(&first["reason"]).contains("interrupted"),
        "{first:#}"
    );
    let second = scenario(&report, "b-second");
    assert_eq!(second["outcome"], "error", "{second:#}");
    assert!(
        text_of(&second["reason"]).starts_with("not run"),
        "{second:#}"
    );
    assert!(
        !out.join("b-second/console.log").exists(),
        "b-second booted"
    );
    assert!(out.join("junit.xml").is_file());

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = qemus_mentioning(&out);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "QEMU still running after Ctrl-C: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn scenarios_that_do_not_parse_stop_the_run_before_any_boot() {
    if !common::require(common::BUSYBOX_BOOT) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("scenarios");
    // Line 7, column 1: `lod` (after name, [kernel] and its two keys, [initrd], base).
    let typo = write_scenario(
        &dir,
        "typo",
        "[initrd]\nbase = \"busybox\"\nlod = [\"virtio_net\"]\n",
    );
    let out = work.path().join("out");
    let ran = bootrig(
        &["run", s(&typo), "--accel", "tcg", "--out", s(&out)],
        Duration::from_secs(60),
    );
    assert_eq!(ran.code(), Some(2), "{}", ran.show());
    let at = format!("{}:7:1:", typo.display());
    assert!(ran.stderr.contains(&at), "want {at}\n{}", ran.show());
    assert!(ran.stderr.contains("did you mean `load`"), "{}", ran.show());
    assert!(!out.join("typo").exists(), "a directory was made for typo");
    assert!(!out.join("summary.json").exists());

    let kind = write_scenario(
        &dir,
        "bad-kind",
        "[initrd]\nbase = \"busybox\"\n[expect]\nfailure = \"unknown-symbols\"\n",
    );
    let ran = bootrig(
        &["run", s(&kind), "--accel", "tcg", "--out", s(&out)],
        Duration::from_secs(60),
    );
    assert_eq!(ran.code(), Some(2), "{}", ran.show());
    assert!(ran.stderr.contains(s(&kind)), "{}", ran.show());
    assert!(
        ran.stderr.contains("did you mean \"unknown-symbol\""),
        "{}",
        ran.show()
    );
    assert!(!out.join("bad-kind").exists());

    // Both at once: one run shows every file that does not parse.
    let ran = bootrig(
        &["run", s(&dir), "--accel", "tcg", "--out", s(&out)],
        Duration::from_secs(60),
    );
    assert_eq!(ran.code(), Some(2), "{}", ran.show());
    assert!(
        ran.stderr.contains(&at) && ran.stderr.contains("unknown-symbols"),
        "{}",
        ran.show()
    );
    assert!(!out.exists(), "the run made {}", out.display());
}

#[test]
fn shards_split_the_suite_and_merge_back() {
    if !common::require(common::BUSYBOX_BOOT) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let scenarios = work.path().join("scenarios");
    let body = "[initrd]\nbase = \"busybox\"\nload = [\"ib_ipoib\"]\norder = \"resolve\"\n\
                [network]\ninterface = \"ib0\"\ndhcp = \"udhcpc\"\n";
    let all: BTreeSet<String> = ["ib-a", "ib-b", "ib-c", "ib-d"]
        .iter()
        .map(|id| {
            write_scenario(&scenarios, id, body);
            id.to_string()
        })
        .collect();
    let mut seen = Vec::new();
    for k in 1..=2 {
        let out = work.path().join(format!("shard{k}"));
        let shard = format!("{k}/2");
        let ran = bootrig(
            &[
                "run",
                s(&scenarios),
                "--shard",
                &shard,
                "--accel",
                "tcg",
                "--out",
                s(&out),
            ],
            Duration::from_secs(60),
        );
        assert_eq!(ran.code(), Some(0), "{}", ran.show());
        let report = read_json(&out.join("summary.json"));
        assert_eq!(report["shard"]["index"], k, "{report:#}");
        assert_eq!(report["shard"]["total"], 2, "{report:#}");
        for sc in report["scenarios"].as_array().unwrap() {
            assert_eq!(sc["outcome"], "skip", "{sc:#}");
        }
        seen.push(ids(&report));
    }
    assert!(seen[0].is_disjoint(&seen[1]), "{seen:?}");
    let union: BTreeSet<String> = seen[0].union(&seen[1]).cloned().collect();
    assert_eq!(union, all);

    let merged = work.path().join("merged.json");
    let junit = work.path().join("merged.xml");
    let ran = bootrig(
        &[
            "report",
            "merge",
            s(&merged),
            "--junit",
            s(&junit),
            s(&work.path().join("shard1/summary.json")),
            s(&work.path().join("shard2/summary.json")),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(ran.code(), Some(0), "{}", ran.show());
    let report = read_json(&merged);
    assert_eq!(ids(&report), all, "{report:#}");
    assert_eq!(parse_junit(&junit), (4, 4, 0));
}

/// Processes whose command line mentions `needle` (any program: QEMU, dnsmasq).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        let Ok(raw) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        // Zombies keep no command line; a reaped-late dnsmasq is not a leftover.
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

fn netns_list() -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Issue 7: a run killed mid-boot leaves its namespace, tap and dnsmasq (and QEMU, were it not
/// killed with bootrig); `bootrig cleanup` finds them by bootrig's marker and removes them all.
#[test]
fn cleanup_removes_what_a_killed_dnsmasq_run_left() {
    if !common::require(&[
        common::Need::Root,
        common::Need::Dnsmasq,
        common::Need::Qemu,
        common::Need::Setup,
        common::Need::Program("/bin/busybox", "busybox-static"),
    ]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let body = "[initrd]\nbase = \"busybox\"\nload = [\"e1000\"]\norder = \"resolve\"\n\
                [network]\ninterface = \"eth0\"\ndhcp = \"udhcpc\"\nbackend = \"dnsmasq\"\n\
                [boot]\nnic = \"e1000\"\n";
    let file = write_scenario(work.path(), "killed", body);
    let out = work.path().join("out");
    let mut run = start(&["run", s(&file), "--accel", "tcg", "--out", s(&out)]);
    let prefix = format!("bootrig-{}-", run.child.id());
    wait_for_bytes(
        &mut run,
        &out.join("killed/console.log"),
        Duration::from_secs(120),
    );
    assert!(netns_list().contains(&prefix), "{}", netns_list());
    assert!(!processes_mentioning(s(&out.join("killed/dhcp"))).is_empty());
    kill(run.pid(), Signal::SIGKILL).expect("SIGKILL bootrig");
    let _ = run.wait(Duration::from_secs(30));
    // What the dead run left: its namespace (and the marker saying it is bootrig's).
    assert!(netns_list().contains(&prefix), "{}", netns_list());

    let ran = bootrig(&["cleanup"], Duration::from_secs(60));
    assert_eq!(ran.code(), Some(0), "{}", ran.show());
    assert!(!netns_list().contains(&prefix), "{}", netns_list());
    let left = processes_mentioning(s(&out));
    assert!(left.is_empty(), "still running: {left:?}");
    // A second cleanup finds nothing of this run.
    let again = bootrig(&["cleanup"], Duration::from_secs(60));
    assert!(!again.stdout.contains(&prefix), "{}", again.show());
}

/// A namespace standing for a lab host, with its bridge; removed on drop.
struct LabHost(String);

impl Drop for LabHost {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

fn ip(args: &[&str]) {
    let st = std::process::Command::new("ip")
        .args(args)
        .status()
        .expect("ip");
    assert!(st.success(), "ip {args:?}");
}

/// `backend = { bridge = NAME }`: the guest's tap joins an existing bridge and leaves it
/// afterwards. Run inside a namespace standing for a lab host, so the host's own network is
/// never touched.
#[test]
fn bridge_backend_puts_the_guest_on_the_lab_bridge_and_takes_the_tap_away() {
    if !common::require(&[
        common::Need::Root,
        common::Need::Dnsmasq,
        common::Need::Qemu,
        common::Need::Setup,
        common::Need::Program("/bin/busybox", "busybox-static"),
    ]) {
        return;
    }
    let lab = LabHost(format!("labhost-{}", std::process::id()));
    ip(&["netns", "add", &lab.0]);
    ip(&["-n", &lab.0, "link", "add", "brlab", "type", "bridge"]);
    ip(&["-n", &lab.0, "link", "set", "brlab", "up"]);
    let work = tempfile::tempdir().unwrap();
    let body = format!(
        "[initrd]\nbase = \"busybox\"\nload = [{VIRTIO}]\norder = \"as-is\"\n\
         [network]\ninterface = \"eth0\"\nstatic = \"192.0.2.10/24\"\nbackend = {{ bridge = \"brlab\" }}\n\
         [boot]\nmethod = \"direct\"\n[expect]\naddress = \"192.0.2.0/24\"\n"
    );
    let file = write_scenario(work.path(), "on-bridge", &body);
    let out = work.path().join("out");
    let ran = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.0])
        .arg(env!("CARGO_BIN_EXE_bootrig"))
        .args(["run", s(&file), "--accel", "tcg", "--out", s(&out)])
        .env("BOOTRIG_CACHE", work.path().join("cache"))
        .output()
        .expect("run bootrig in the lab namespace");
    let report = read_json(&out.join("summary.json"));
    assert_eq!(
        ran.status.code(),
        Some(0),
        "{}\n{report:#}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let cmdline = fs::read_to_string(out.join("on-bridge/qemu.cmdline")).unwrap();
    assert!(
        cmdline.contains("-netdev tap,id=net0,ifname=brt"),
        "{cmdline}"
    );
    let links = std::process::Command::new("ip")
        .args(["-n", &lab.0, "-o", "link"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(links.contains("brlab"), "{links}");
    assert!(
        !links.contains("brt"),
        "the run's tap is still there: {links}"
    );
}
