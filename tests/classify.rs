//! Phases and causes read from real consoles: QEMU boots captured on this host (TCG), one per
//! failure class and a few passing ones; tests/data/consoles/README.md says how each was made.
//! The files are raw serial output (CRLF, ANSI sequences); times are synthetic (100 ms a line).

use std::path::PathBuf;
use std::time::Duration;

use bootrig::console::ConsoleLine;
use bootrig::verdict::cause::{classify, Cause, CauseKind, Detail, DhcpSide};
use bootrig::verdict::phases::{current, detect, durations, Phase};
use strum::VariantArray;

fn console(name: &str) -> Vec<ConsoleLine> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests/data/consoles", name]
        .iter()
        .collect();
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    String::from_utf8_lossy(&bytes)
        .split('\n')
        .enumerate()
        .map(|(i, line)| {
            ConsoleLine::new(
                Duration::from_millis(100 * i as u64),
                line.strip_suffix('\r').unwrap_or(line).to_string(),
            )
        })
        .collect()
}

fn lines(text: &str) -> Vec<ConsoleLine> {
    text.lines()
        .map(|t| ConsoleLine::new(Duration::ZERO, t.to_string()))
        .collect()
}

fn cause(name: &str) -> Cause {
    classify(&console(name)).unwrap_or_else(|| panic!("{name}: no cause found"))
}

fn phases(name: &str) -> Vec<Phase> {
    detect(&console(name)).iter().map(|m| m.phase).collect()
}

fn module_detail(c: &Cause) -> (&str, &[String]) {
    match &c.detail {
        Some(Detail::Module { module, names }) => (module, names),
        other => panic!("expected a module detail, got {other:?}"),
    }
}

#[test]
fn unknown_symbol_names_the_module_and_its_symbols() {
    let c = cause("unknown-symbol.log");
    assert_eq!(c.kind, CauseKind::UnknownSymbol);
    assert_eq!(c.phase, Some(Phase::Modules));
    let (module, symbols) = module_detail(&c);
    assert_eq!(module, "mlx4_en");
    assert_eq!(symbols[0], "mlx4_test_async");
    assert!(symbols.len() > 20, "{symbols:?}");
    assert_eq!(c.evidence[0], "BOOTRIG insmod mlx4_en rc=2");
    assert_eq!(
        c.evidence[1],
        "insmod: can't insert '/lib/modules/6.1.0-56-amd64/kernel/drivers/net/ethernet/mellanox/mlx4/mlx4_en.ko': unknown symbol in module, or unknown parameter"
    );
    assert_eq!(
        c.evidence[2],
        "[    2.231932] mlx4_en: Unknown symbol mlx4_test_async (err -2)"
    );
    assert_eq!(c.evidence.len(), 2 + 5, "{:#?}", c.evidence);
}

#[test]
fn vermagic_mismatch_quotes_both_magics() {
    let c = cause("vermagic-mismatch.log");
    assert_eq!(c.kind, CauseKind::VermagicMismatch);
    assert_eq!(c.phase, Some(Phase::Modules));
    assert_eq!(module_detail(&c).0, "mlx4_en");
    assert!(
        c.summary
            .contains("\"7.2.1-56-amd64 SMP mod_unload modversions \"")
            && c.summary
                .contains("\"6.1.0-56-amd64 SMP preempt mod_unload modversions \""),
        "{}",
        c.summary
    );
    assert_eq!(c.evidence[0], "BOOTRIG insmod mlx4_en rc=8");
    assert!(c.evidence[1].ends_with("mlx4_en.ko': invalid module format"));
    assert!(c.evidence[2].contains("mlx4_en: version magic '7.2.1-56-amd64"));
}

#[test]
fn a_signature_that_does_not_verify_is_an_invalid_module() {
    let c = cause("invalid-module-format.log");
    assert_eq!(c.kind, CauseKind::InvalidModuleFormat);
    assert_eq!(c.phase, Some(Phase::Modules));
    assert_eq!(module_detail(&c).0, "mlx4_en");
    assert_eq!(
        c.evidence,
        [
            "BOOTRIG insmod mlx4_en rc=129",
            "insmod: can't insert '/lib/modules/6.1.0-56-amd64/kernel/drivers/net/ethernet/mellanox/mlx4/mlx4_en.ko': Key was rejected by service"
        ]
    );
    assert!(c.summary.contains("signature"), "{}", c.summary);
}

#[test]
fn a_bad_parameter_value_is_an_invalid_parameter() {
    let c = cause("invalid-parameter.log");
    assert_eq!(c.kind, CauseKind::InvalidParameter);
    assert_eq!(c.phase, Some(Phase::Modules));
    let (module, params) = module_detail(&c);
    assert_eq!(
        (module, params),
        ("mlx4_core", &["debug_level".to_string()][..])
    );
    assert_eq!(c.evidence.len(), 4, "{:#?}", c.evidence);
    assert_eq!(c.evidence[0], "BOOTRIG insmod mlx4_core rc=22");
    assert!(c.evidence[1].ends_with("mlx4_core.ko': Invalid argument"));
    assert!(c.evidence[2].ends_with("mlx4_core: `abc' invalid for parameter `debug_level'"));
}

#[test]
fn an_ignored_parameter_is_an_unknown_parameter() {
    let c = cause("unknown-parameter.log");
    assert_eq!(c.kind, CauseKind::UnknownParameter);
    let (module, params) = module_detail(&c);
    assert_eq!(
        (module, params),
        ("mlx4_core", &["bogus_param".to_string()][..])
    );
    assert_eq!(c.evidence.len(), 1);
    assert!(c.evidence[0].ends_with("mlx4_core: unknown parameter 'bogus_param' ignored"));
}

#[test]
fn the_stanza_hides_an_ignored_parameter() {
    // insmod succeeds, so the stanza prints no kernel log, and its console log level hides
    // the kernel's warning: the boot passes and nothing names the parameter.
    let lines = console("unknown-parameter-hidden.log");
    assert_eq!(classify(&lines), None);
    assert!(!lines.iter().any(|l| l.text.contains("bogus_param")));
    assert_eq!(current(&detect(&lines)), Phase::Done);
}

#[test]
fn no_initrd_is_initrd_not_loaded_not_a_plain_panic() {
    let c = cause("initrd-not-loaded.log");
    assert_eq!(c.kind, CauseKind::InitrdNotLoaded);
    assert_eq!(c.phase, Some(Phase::Kernel));
    assert_eq!(c.evidence.len(), 2, "{:#?}", c.evidence);
    assert!(c.evidence[0].ends_with("No filesystem could mount root, tried:"));
    assert!(c.evidence[1].ends_with(
        "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)"
    ));
}

#[test]
fn an_init_the_kernel_cannot_execute_is_its_own_cause() {
    // /init not executable; the kernel falls back to busybox's /bin/sh, which waits forever.
    let c = cause("init-not-executable.log");
    assert_eq!(c.kind, CauseKind::InitNotExecutable);
    assert_eq!(c.phase, Some(Phase::Kernel));
    assert_eq!(c.evidence.len(), 2, "{:#?}", c.evidence);
    assert!(c.evidence[0].ends_with("Run /init as init process"));
    assert!(c.evidence[1].ends_with("Failed to execute /init (error -13)"));
    assert!(
        c.summary.contains("/init (error -13, EACCES"),
        "{}",
        c.summary
    );
    assert!(c.summary.contains("not executable"), "{}", c.summary);
    // A script whose interpreter is missing, and nothing to fall back to: the panic that
    // follows is its consequence, not initrd-not-loaded.
    let c = cause("init-not-executable-panic.log");
    assert_eq!(c.kind, CauseKind::InitNotExecutable);
    assert_eq!(c.evidence.len(), 3, "{:#?}", c.evidence);
    assert!(c.evidence[1].ends_with("Failed to execute /init (error -2)"));
    assert!(c.evidence[2].contains("Kernel panic - not syncing: No working init found."));
    assert!(c.summary.contains("interpreter"), "{}", c.summary);
}

#[test]
fn init_exiting_is_a_kernel_panic_in_init() {
    let c = cause("kernel-panic.log");
    assert_eq!(c.kind, CauseKind::KernelPanic);
    assert_eq!(c.phase, Some(Phase::Init));
    assert_eq!(
        c.summary,
        "kernel panic: Attempted to kill init! exitcode=0x00000100"
    );
    assert_eq!(c.evidence.len(), 1);
}

#[test]
fn guest_dhcp_clients_without_an_offer() {
    for (file, client, first) in [
        (
            "no-dhcp-offer-udhcpc.log",
            "udhcpc",
            "udhcpc: no lease, failing",
        ),
        (
            "no-dhcp-offer-dhclient.log",
            "dhclient",
            "No DHCPOFFERS received.",
        ),
    ] {
        let c = cause(file);
        assert_eq!(c.kind, CauseKind::NoDhcpOffer, "{file}");
        assert_eq!(c.phase, Some(Phase::Address), "{file}");
        assert_eq!(
            c.detail,
            Some(Detail::Dhcp {
                by: DhcpSide::Guest,
                client: client.into()
            })
        );
        assert_eq!(c.evidence[0], first, "{file}");
        assert!(c.evidence[1].starts_with(&format!("BOOTRIG dhcp eth0 {client} rc=")));
        assert_eq!(c.evidence[2], "BOOTRIG addr eth0 none");
    }
}

#[test]
fn ipxe_without_an_offer_is_a_firmware_no_dhcp_offer() {
    for file in [
        "no-dhcp-offer-ipxe-seabios.log",
        "no-dhcp-offer-ipxe-ovmf.log",
    ] {
        let c = cause(file);
        assert_eq!(c.kind, CauseKind::NoDhcpOffer, "{file}");
        assert_eq!(c.phase, Some(Phase::IpxeDhcp), "{file}");
        assert_eq!(
            c.detail,
            Some(Detail::Dhcp {
                by: DhcpSide::Firmware,
                client: "ipxe".into()
            })
        );
        if file.contains("seabios") {
            assert_eq!(c.evidence[1], "succeeded (http://ipxe.org/040ee119)");
        }
        assert!(
            c.evidence[0].starts_with("Configuring (net0 52:54:00:12:34:56)"),
            "{file}: {:?}",
            c.evidence
        );
    }
}

#[test]
fn ipxe_missing_boot_file() {
    for file in [
        "boot-file-not-found-seabios.log",
        "boot-file-not-found-ovmf.log",
    ] {
        let c = cause(file);
        assert_eq!(c.kind, CauseKind::BootFileNotFound, "{file}");
        assert_eq!(c.phase, Some(Phase::BootFiles), "{file}");
        assert_eq!(
            c.detail,
            Some(Detail::BootFile {
                url: "tftp://10.0.2.2/missing.ipxe".into()
            }),
            "{file}"
        );
        assert!(
            c.evidence[0].contains("No such file or directory"),
            "{file}"
        );
    }
}

#[test]
fn passing_boots_have_no_cause_and_every_phase_in_order() {
    let cases: [(&str, &[Phase]); 4] = [
        // bootrig check: loglevel=4, so no kernel line before init.
        (
            "pass-direct.log",
            &[Phase::Init, Phase::Modules, Phase::Address, Phase::Done],
        ),
        (
            "unknown-parameter-hidden.log",
            &[
                Phase::Kernel,
                Phase::Init,
                Phase::Modules,
                Phase::Address,
                Phase::Done,
            ],
        ),
        ("pass-seabios-ipxe.log", Phase::VARIANTS),
        ("pass-ovmf-ipxe.log", Phase::VARIANTS),
    ];
    for (file, expected) in cases {
        let lines = console(file);
        assert_eq!(classify(&lines), None, "{file}");
        assert_eq!(phases(file), expected, "{file}");
        let marks = detect(&lines);
        assert!(marks
            .windows(2)
            .all(|w| w[0].line < w[1].line && w[0].at < w[1].at));
        let end = lines.last().map(|l| l.at).unwrap_or_default();
        let spans = durations(&marks, end);
        let total: Duration = spans.iter().map(|s| s.duration).sum();
        assert_eq!(total, end - marks[0].at, "{file}");
    }
}

#[test]
fn failed_boots_stop_in_the_phase_that_failed() {
    for (file, phase) in [
        ("unknown-symbol.log", Phase::Done),
        ("initrd-not-loaded.log", Phase::Kernel),
        ("kernel-panic.log", Phase::Init),
        ("boot-file-not-found-seabios.log", Phase::BootFiles),
        ("no-dhcp-offer-ipxe-seabios.log", Phase::IpxeDhcp),
    ] {
        assert_eq!(current(&detect(&console(file))), phase, "{file}");
    }
}

#[test]
fn timeouts_and_exits_come_from_the_orchestrator() {
    let lines = console("no-dhcp-offer-ipxe-seabios.log");
    let phase = current(&detect(&lines));
    let t = Cause::timeout(phase, &lines);
    assert_eq!(
        (t.kind, t.phase),
        (CauseKind::Timeout, Some(Phase::IpxeDhcp))
    );
    assert!(!t.evidence.is_empty() && t.evidence.iter().all(|l| !l.contains('\x1b')));
    let e = Cause::qemu_exited(1, &console("kernel-panic.log"));
    assert_eq!(
        (e.kind, e.phase),
        (CauseKind::QemuExited, Some(Phase::Init))
    );
}

#[test]
fn ipxe_with_only_ipv6_and_no_dhcpv4_offer_is_a_firmware_no_dhcp_offer() {
    let c = cause("no-dhcp-offer-ipxe-ipv6-only.log");
    assert_eq!(c.kind, CauseKind::NoDhcpOffer);
    assert!(
        c.evidence[0].starts_with("Nothing to boot:"),
        "{:?}",
        c.evidence
    );
    // A boot that got its IPv4 address and then found no file is not a missing offer.
    let got_ipv4 = lines(
        "net0: 10.77.0.111/255.255.255.0 gw 10.77.0.1\nNothing to boot: No such file or directory (http://ipxe.org/2d03e13b)\n",
    );
    assert_ne!(
        classify(&got_ipv4).map(|c| c.kind),
        Some(CauseKind::NoDhcpOffer)
    );
}

#[test]
fn ipxe_fetch_timing_out_at_a_wrong_next_server_is_boot_file_not_found() {
    let c = cause("boot-file-timeout-wrong-next-server.log");
    assert_eq!(c.kind, CauseKind::BootFileNotFound);
    assert_eq!(
        c.detail,
        Some(Detail::BootFile {
            url: "tftp://10.77.0.254/boot.ipxe".into()
        })
    );
    assert!(c.summary.contains("no answer"), "{}", c.summary);
}

#[test]
#[ignore = "prints every console's cause, for review: cargo test --test classify -- --ignored --nocapture"]
fn print_causes() {
    let dir: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests/data/consoles"]
        .iter()
        .collect();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    for name in names {
        let lines = console(&name);
        println!("{name}: phases {:?}", phases(&name));
        println!(
            "{}",
            serde_json::to_string_pretty(&classify(&lines)).unwrap()
        );
    }
}
