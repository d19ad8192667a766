//! The `qemu` layer against this host's real QEMU and firmware: the version check, the netboot
//! files images/setup installs, and the accelerator probe. They live here rather than beside the
//! code so that a host without QEMU says why they skip (`common::require`), and CI, which sets
//! `BOOTRIG_REQUIRE_ALL=1`, fails instead.

mod common;

use std::time::{Duration, Instant};

use bootrig::qemu::accel::{probe, Accel, ProbeOutcome, Stage};
use bootrig::qemu::firmware::FirmwareFiles;
use bootrig::qemu::machine::NicModel;
use bootrig::qemu::{query_version, MIN_VERSION};
use common::require::Need;
use strum::VariantArray;

#[test]
fn real_qemu_version_is_supported() {
    if !common::require(&[Need::Qemu]) {
        return;
    }
    let qemu = common::vm::qemu_binary().unwrap();
    let version = query_version(&qemu, Duration::from_secs(30)).unwrap();
    assert!(version >= MIN_VERSION, "{version}");
}

#[test]
fn this_host_has_every_netboot_file() {
    let needs: Vec<Need> = NicModel::VARIANTS
        .iter()
        .map(|&nic| Need::NetbootFirmware { nic, uefi: true })
        .collect();
    if !common::require(&needs) {
        return;
    }
    let fw = FirmwareFiles::system();
    fw.seabios().unwrap();
    let pair = fw.ovmf().unwrap();
    assert!(pair.code.ends_with("OVMF_CODE_4M.fd"), "{pair:?}");
    for &nic in NicModel::VARIANTS {
        fw.ipxe_rom(nic).unwrap();
    }
}

#[test]
fn tcg_runs_the_probe_payload_to_the_end() {
    if !common::require(&[Need::Qemu]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Generous for a loaded 2-core host: the payload is a few instructions.
    let result = probe(
        &common::vm::qemu_binary().unwrap(),
        Accel::Tcg,
        Duration::from_secs(60),
        dir.path(),
    );
    assert!(result.usable(), "{}", result.summary());
    assert_eq!(result.console, b"RPLC");
    assert_eq!(result.reached, Some(Stage::LoopDone));
}

#[test]
fn kvm_probe_ends_within_its_bound_whatever_kvm_does() {
    if !common::require(&[Need::Qemu]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bound = Duration::from_secs(2);
    let start = Instant::now();
    let result = probe(
        &common::vm::qemu_binary().unwrap(),
        Accel::Kvm,
        bound,
        dir.path(),
    );
    // A hanging KVM guest never ends on its own, so any finite margin tells a bounded probe
    // from an unbounded one; 30 s leaves room for the kill and reap on a loaded host.
    assert!(
        start.elapsed() < bound + Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    match &result.outcome {
        ProbeOutcome::Usable => assert_eq!(result.console, b"RPLC"),
        ProbeOutcome::Hung { timeout } => assert_eq!(*timeout, bound),
        ProbeOutcome::Exited { .. } => assert_ne!(result.reached, Some(Stage::LoopDone)),
        ProbeOutcome::NotStarted(err) => panic!("{err}"),
        ProbeOutcome::Interrupted => panic!("nothing interrupted this probe"),
    }
}
