//! The nested lab (harness/nested-lab): the lab path against a real kernel. Runs the documented
//! command as users do and checks each item from the inner runs' own evidence. Slow (an outer
//! TCG VM running a TCG guest, several minutes): it runs once, and needs root and QEMU; without
//! them it says why and passes as skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::Need;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn find_file(dir: &Path, name: &str) -> PathBuf {
    for entry in walk(dir) {
        if entry.file_name().is_some_and(|n| n == name) {
            return entry;
        }
    }
    panic!("no {name} under {}", dir.display());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_lab_path_runs_end_to_end_in_a_nested_lab() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Root: 9p passthrough of the host's root and VFIO in the outer VM. The e1000e's iPXE ROM is
    // what the inner guest netboots through, read over VFIO.
    if !common::require(&[
        Need::Root,
        Need::Qemu,
        Need::Setup,
        Need::NetbootFirmware {
            nic: bootrig::qemu::machine::NicModel::E1000e,
            uefi: false,
        },
    ]) {
        return;
    }
    // Relative paths, as the README writes the command.
    let out = Path::new("target/nested-lab/test");
    let _ = std::fs::remove_dir_all(repo.join(out));
    let start = Instant::now();
    let run = Command::new("harness/nested-lab")
        .current_dir(repo)
        .args(["--out", "target/nested-lab/test", "--bootrig"])
        .arg(env!("CARGO_BIN_EXE_bootrig"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    eprintln!(
        "{stdout}{}\nnested lab: {:.0} s",
        String::from_utf8_lossy(&run.stderr),
        start.elapsed().as_secs_f64()
    );
    let out = repo.join(out);
    assert!(
        run.status.success(),
        "harness/nested-lab failed; see {}",
        out.display()
    );

    // The pass run's own evidence.
    let pass = out.join("runs/pass");
    let result: serde_json::Value =
        serde_json::from_str(&read(&find_file(&pass, "result.json"))).unwrap();
    assert_eq!(result["outcome"], "pass", "{result:#}");
    assert_eq!(
        result["boot"]["stand_in"], "nic0 (0000:00:03.0)",
        "the run is marked stand-in"
    );
    for phase in result["phases"].as_array().unwrap() {
        eprintln!(
            "inner phase {:<14} at {:>6.1} s, {:>6.1} s",
            phase["name"].as_str().unwrap(),
            phase["at_seconds"].as_f64().unwrap(),
            phase["seconds"].as_f64().unwrap()
        );
    }
    // The guest had the passed function only: the report says so, not an emulated NIC.
    assert_eq!(result["boot"]["nic"], "vfio-pci:nic0@0000:00:03.0");
    // bootrig raised the outer root's 8 MiB locked-memory limit itself (no ulimit in the harness).
    let stderr = read(&out.join("runs/pass.stderr"));
    assert!(
        stderr.contains("vfio: locked-memory soft and hard limits raised from 8192 KiB (hard 8192 KiB) to 1572864 KiB (hard 1572864 KiB)"),
        "{stderr}"
    );
    let table = read(&out.join("runs/pass.stdout"));
    assert!(table.contains("PASS (stand-in)"), "{table}");
    let junit = read(&pass.join("junit.xml"));
    assert!(junit.contains("name=\"bootrig.stand_in\""), "{junit}");
    // QEMU started with the passed function and its own ROM, and no emulated NIC.
    let cmdline = read(&find_file(&pass, "qemu.cmdline"));
    assert!(
        cmdline.contains("vfio-pci,host=0000:00:03.0,rombar=1,bootindex=1"),
        "{cmdline}"
    );
    assert!(!cmdline.contains("-netdev"), "{cmdline}");
    // The inner guest netbooted through the passed device's ROM, from the lab's TFTP root.
    let console = read(&find_file(&pass, "console.txt"));
    assert!(console.contains("iPXE"), "no iPXE banner: {console}");
    assert!(
        console.contains("bootrig: fetching kernel ./vmlinuz"),
        "{console}"
    );
    assert!(console.contains("BOOTRIG insmod e1000e rc=0"), "{console}");
    assert!(console.contains("BOOTRIG addr eth0 10.0.2."), "{console}");
    for staged in ["vmlinuz", "initrd.img", "boot.ipxe"] {
        assert!(
            out.join("tftp/nic0").join(staged).is_file(),
            "{staged} not under boot_root"
        );
    }
    // Preflight on real sysfs, the lock, the record, the binding, and the restore.
    let ev = out.join("evidence");
    let record: serde_json::Value =
        serde_json::from_str(&read(&ev.join("pass-record.json"))).unwrap();
    assert_eq!(record["device"], "0000:00:03.0");
    assert_eq!(record["members"][0]["driver"], "e1000e", "{record:#}");
    let lock: serde_json::Value = serde_json::from_str(&read(&ev.join("pass-lock.json"))).unwrap();
    assert!(lock["pid"].as_u64().is_some(), "{lock:#}");
    assert_eq!(read(&ev.join("pass-driver-during.txt")).trim(), "vfio-pci");
    assert_eq!(read(&ev.join("pass-driver-after.txt")).trim(), "e1000e");

    // The faults, each in the summary the inner script wrote from its own checks.
    let summary = read(&out.join("summary.txt"));
    for check in [
        "outer-topology",
        "pass-run",
        "memlock-raised",
        "pass-restored",
        "lock-contention",
        "kill-leaves-record",
        "vfio-restore",
        "group-refused",
    ] {
        assert!(
            summary.contains(&format!("ok    {check}:")),
            "{check}: {summary}"
        );
    }
    let second = read(&find_file(&out.join("runs/second"), "result.json"));
    assert!(
        second.contains("in use by another bootrig run (pid "),
        "{second}"
    );
    let waiting = read(&out.join("runs/second.stderr"));
    assert_eq!(
        waiting
            .matches("waiting for adapter nic0 (0000:00:03.0), held by pid ")
            .count(),
        1,
        "{waiting}"
    );
    assert_eq!(read(&ev.join("restored-driver.txt")).trim(), "e1000e");
    let blocked = read(&find_file(&out.join("runs/blocked"), "result.json"));
    assert!(
        blocked.contains("carries the host's default route"),
        "{blocked}"
    );
}

#[test]
fn a_path_that_would_break_the_outer_vm_is_refused_before_anything_is_made() {
    if !common::require(&[Need::Root, Need::Qemu, Need::Setup]) {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("lab,1");
    let run = Command::new("harness/nested-lab")
        .current_dir(repo)
        .arg("--out")
        .arg(&out)
        .arg("--bootrig")
        .arg(env!("CARGO_BIN_EXE_bootrig"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(
        stderr.contains("a comma (QEMU's option separator)"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing is made for a refused path");
}
