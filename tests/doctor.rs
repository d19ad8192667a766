//! `bootrig doctor` end to end: the binary on this host (set up by images/setup) and on an empty
//! fake root, checking exit codes, the table and the JSON.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn bootrig(args: &[&str], path_var: Option<&std::ffi::OsStr>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bootrig"));
    cmd.args(args).env_remove("BOOTRIG_QEMU");
    if let Some(path) = path_var {
        cmd.env("PATH", path);
    }
    cmd.output().expect("run bootrig")
}

#[test]
fn this_host_is_ready_and_json_says_why() {
    if !common::require(&[
        common::Need::Root,
        common::Need::Qemu,
        common::Need::Setup,
        common::Need::Dnsmasq,
    ]) {
        return;
    }
    let start = Instant::now();
    let out = bootrig(&["doctor", "--json", "--probe-timeout", "2"], None);
    // --version, a TCG probe and a KVM probe, each bounded by 2 s.
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "run images/setup first:\n{stdout}"
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(report["ready"], true);
    let checks = report["checks"].as_array().unwrap();
    let status = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))["status"]
            .clone()
    };
    assert_eq!(status("accel tcg"), "ok");
    assert_eq!(status("seabios"), "ok");
    assert_eq!(status("ipxe virtio"), "ok");
    assert_eq!(status("cpio"), "ok");
    // The dnsmasq backend's, which the network tests use as this root.
    assert_eq!(status("CAP_NET_ADMIN"), "ok");
    assert_eq!(status("CAP_SYS_ADMIN"), "ok");
    let accel = report["accel"].as_str().unwrap();
    assert!(accel == "kvm" || accel == "tcg", "{accel}");
    assert!(report["mellanox_devices"].is_array());
}

#[test]
fn an_empty_host_exits_1_and_says_what_to_install() {
    let root = tempfile::tempdir().unwrap();
    let empty_path = root.path().join("no-bin");
    let out = bootrig(
        &["doctor", "--root", root.path().to_str().unwrap()],
        Some(empty_path.as_os_str()),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let seabios = stdout
        .lines()
        .find(|l| l.starts_with("seabios "))
        .unwrap_or_else(|| panic!("no seabios row:\n{stdout}"));
    assert!(seabios.contains("missing!"), "{seabios}");
    assert!(
        seabios.contains("apt-get install seabios (or run images/setup)"),
        "{seabios}"
    );
    let verdict = stdout.lines().last().unwrap();
    assert!(
        verdict.starts_with("not ready: required checks failed"),
        "{verdict}"
    );
    for name in ["qemu", "seabios", "ipxe virtio", "cpio"] {
        assert!(verdict.contains(name), "{name} not in {verdict}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let out = bootrig(&["doctor", "--probe-timeout", "soon"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected a number of seconds"));
    let out = bootrig(&["doctor", "--no-such-flag"], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn doctor_names_the_capabilities_this_process_lacks() {
    // A root confined like a container's: CAP_NET_ADMIN and CAP_SYS_ADMIN out of the bounding
    // set, so the doctor process run by setpriv lacks them though its uid is 0.
    if !common::require(&[
        common::Need::Root,
        common::Need::Program("/usr/bin/setpriv", "util-linux"),
    ]) {
        return;
    }
    let out = Command::new("setpriv")
        .args(["--bounding-set", "-net_admin,-sys_admin"])
        .arg(env!("CARGO_BIN_EXE_bootrig"))
        .args(["doctor", "--json", "--probe-timeout", "2"])
        .env_remove("BOOTRIG_QEMU")
        .output()
        .expect("run setpriv");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    let check = |name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))
            .clone()
    };
    for name in ["CAP_NET_ADMIN", "CAP_SYS_ADMIN"] {
        let row = check(name);
        assert_eq!(row["status"], "warn", "{row:#}");
        assert!(
            row["detail"]
                .as_str()
                .unwrap()
                .contains("backend = \"dnsmasq\""),
            "{row:#}"
        );
        assert!(
            row["fix"]
                .as_str()
                .unwrap()
                .contains("this root is confined"),
            "{row:#}"
        );
    }
    // uid 0 still owns VFIO's sysfs files and device nodes.
    assert_eq!(check("CAP_DAC_OVERRIDE")["status"], "ok");
    assert!(check("user")["detail"].as_str().unwrap().contains("uid 0"));
    // Capabilities do not decide readiness: the default path (user networking) needs none.
    assert!(!check("CAP_NET_ADMIN")["required"].as_bool().unwrap());
}
