//! `[rdma] soft_roce`: the planner adds the crc32 provider rdma_rxe needs and no metadata names,
//! and the shipped Soft-RoCE scenarios boot: the busybox one passes every rdma check, the
//! negative (strict order, no crc32_generic) fails with rdma-no-device.

mod common;

use std::process::{Command, Stdio};

use bootrig::kmod::{plan, PlanRequest};

fn tree() -> std::path::PathBuf {
    common::repo_root().join("images/cache/current")
}

#[test]
fn resolve_adds_crc32_generic_before_rdma_rxe_and_strict_warns() {
    if !common::require(&[common::Need::Setup]) {
        return;
    }
    let release = std::fs::read_dir(tree().join("lib/modules"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let req = |modules: &[&str], resolve| PlanRequest {
        kernel: tree().join("vmlinuz"),
        module_dirs: vec![release.clone()],
        modules: modules.iter().map(|m| m.to_string()).collect(),
        resolve,
    };
    let p = plan(&req(&["rdma_rxe"], true)).unwrap();
    let order: Vec<&str> = p.load_order().map(|m| m.name.as_str()).collect();
    let crc = order.iter().position(|m| *m == "crc32_generic").unwrap();
    assert!(crc < order.iter().position(|m| *m == "rdma_rxe").unwrap());
    assert!(p
        .warnings
        .iter()
        .any(|w| w.message.contains("no metadata declares")));
    let strict = plan(&req(&["rdma_rxe"], false)).unwrap();
    assert!(
        strict
            .warnings
            .iter()
            .any(|w| w.message.contains("add `crc32_generic` before `rdma_rxe`")),
        "{:?}",
        strict.warnings
    );
}

#[test]
fn shipped_soft_roce_busybox_passes_and_the_negative_fails_with_its_cause() {
    if !common::require(common::BUSYBOX_BOOT) {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(common::bootrig_bin())
        .current_dir(common::repo_root())
        .args(["check", "-j", "1", "--accel", "tcg", "--out"])
        .arg(out.path())
        .args([
            "scenarios/rdma/soft-roce-busybox.toml",
            "scenarios/rdma/negative-soft-roce-no-crc32.toml",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let console =
        std::fs::read_to_string(out.path().join("soft-roce-busybox/console.log")).unwrap();
    for line in [
        "BOOTRIG rdma rxe0 port 1 ACTIVE link_layer=Ethernet",
        "BOOTRIG rdma rxe0 test verbs ibv_rc_pingpong rc=0",
        "BOOTRIG rdma rxe0 test cm rping rc=0",
    ] {
        assert!(console.contains(line), "{line} missing:\n{console}");
    }
    let negative =
        std::fs::read_to_string(out.path().join("negative-soft-roce-no-crc32/result.json"))
            .unwrap();
    assert!(negative.contains("rdma-no-device") && negative.contains("failed to init crc32"));
}
