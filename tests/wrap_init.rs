//! The wrap flavor, booted: inits bootrig cannot edit get a wrapper /init that runs the stanza
//! and then execs them as PID 1.
//!
//! Bases: (a) Debian's tiny-initramfs as `mktirfs` makes it (images/fixtures; /init is a static C
//! binary); (b) busybox init with an /etc/inittab, /init a hardlink of /bin/busybox, made here
//! with `cpio -o -H newc` from the host's static busybox; (c) an init at /sbin/myinit run by
//! `rdinit=/sbin/myinit` in `[boot] append`, /init a decoy that must not run (and busybox `env` as
//! the init, by `rdinit=/bin/env`, to show the environment the original gets).
//!
//! Each is run the user's way: scenario files in a directory of their own under target/, paths
//! relative to the file, `bootrig check DIR` from the repository root (test mode: the stanza
//! powers off when done, the verdict comes from summary.json). Then (d) each is built without
//! test mode (`bootrig build`, the stanza lets the boot go on) and booted with QEMU directly: the
//! original init must print its own line after `BOOTRIG done`.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bootrig::qemu::machine::{MachineType, NicModel};
use common::{require, Need};
use serde_json::Value;

const TINY: &str = "images/cache/initrds/tiny-initramfs/initrd.img";

/// The line busybox init's inittab prints, and the decoy's.
const INITTAB_LINE: &str = "bootrig-test: busybox init ran its inittab";
const MYINIT_LINE: &str = "bootrig-test: rdinit myinit ran as PID 1";
const DECOY_LINE: &str = "bootrig-test: WRONG /init ran";
/// tiny-initramfs's own message when the command line names no root.
const TINY_LINE: &str = "initramfs: No root filesystem (root=) specified";

struct Case {
    id: &'static str,
    /// `base =` relative to the suite directory.
    base: &'static str,
    load: &'static str,
    append: &'static str,
    /// What plan.json's flavor_reason starts with.
    reason: &'static str,
    /// The original init's own line.
    line: &'static str,
}

const CASES: &[Case] = &[
    Case {
        id: "tiny-initramfs",
        base: "",
        load: r#"["virtio_pci", "virtio_net", "mlx4_core", "mlx4_en"]"#,
        append: "",
        reason: "/init is an ELF binary, not a shell script: wrapped",
        line: TINY_LINE,
    },
    Case {
        id: "busybox-init",
        base: "busybox-init.img",
        load: r#"["virtio_pci", "virtio_net"]"#,
        append: "",
        reason: "/init is an ELF binary, not a shell script: wrapped",
        line: INITTAB_LINE,
    },
    Case {
        id: "rdinit",
        base: "rdinit.img",
        load: r#"["virtio_pci", "virtio_net"]"#,
        append: "rdinit=/sbin/myinit",
        reason: "rdinit=/sbin/myinit in [boot] append: the kernel runs it instead of /init",
        line: MYINIT_LINE,
    },
    // The original sees the kernel's environment and nothing of the wrapper's: busybox env as
    // init prints it (HOME and TERM from the kernel, bootrig_probe from the command line).
    Case {
        id: "rdinit-env",
        base: "rdinit.img",
        load: r#"["virtio_pci", "virtio_net"]"#,
        append: "rdinit=/bin/env bootrig_probe=1",
        reason: "rdinit=/bin/env in [boot] append: the kernel runs it instead of /init",
        line: "bootrig_probe=1",
    },
];

fn scenario(up: &str, c: &Case) -> String {
    let base = if c.base.is_empty() {
        format!("{up}{TINY}")
    } else {
        c.base.to_string()
    };
    format!(
        r#"name = "wrap: {id}"

[kernel]
image = "{up}images/cache/current/vmlinuz"
modules = "{up}images/cache/current"

[initrd]
base = "{base}"
load = {load}
order = "resolve"

[network]
interface = "eth0"
dhcp = "udhcpc"

[boot]
method = "direct"
nic = "virtio-net-pci"
append = "{append}"

[expect]
address = "10.0.2.0/24"
timeout = "300s"
"#,
        id = c.id,
        load = c.load,
        append = c.append,
    )
}

/// A newc archive of `dir` by the distribution's cpio (hardlinks as cpio writes them), gzipped.
fn pack_dir(dir: &Path, out: &Path) {
    let script = format!(
        "cd '{}' && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -n >'{}'",
        dir.display(),
        out.display()
    );
    common::sh(&script);
}

/// A staging tree with the host's static busybox at /bin/busybox and applet links.
fn busybox_tree(dir: &Path) {
    for d in ["bin", "sbin", "etc", "dev", "proc", "sys"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox missing: run images/setup (busybox-static)"
    );
    fs::copy(busybox, dir.join("bin/busybox")).unwrap();
    for (link, target) in [
        ("bin/sh", "busybox"),
        ("bin/echo", "busybox"),
        ("bin/env", "busybox"),
        ("sbin/poweroff", "../bin/busybox"),
    ] {
        std::os::unix::fs::symlink(target, dir.join(link)).unwrap();
    }
}

/// (b): /init is busybox itself (a hardlink, as busybox-based images often have it), so busybox
/// runs as init and reads /etc/inittab. No /dev/console: the kernel starts init without a
/// console, as it does for tiny-initramfs.
fn make_busybox_init(out: &Path) {
    let stage = tempfile::tempdir().unwrap();
    let dir = stage.path();
    busybox_tree(dir);
    fs::hard_link(dir.join("bin/busybox"), dir.join("init")).unwrap();
    fs::write(
        dir.join("etc/inittab"),
        format!("::sysinit:/bin/echo {INITTAB_LINE}\n::sysinit:/sbin/poweroff -f\n"),
    )
    .unwrap();
    pack_dir(dir, out);
}

/// (c): the init is /sbin/myinit (what rdinit= names); /init is a decoy.
fn make_rdinit(out: &Path) {
    let stage = tempfile::tempdir().unwrap();
    let dir = stage.path();
    busybox_tree(dir);
    let script = |path: &str, text: String| {
        fs::write(dir.join(path), text).unwrap();
        Command::new("chmod")
            .args(["755", dir.join(path).to_str().unwrap()])
            .status()
            .unwrap();
    };
    script(
        "sbin/myinit",
        "#!/bin/sh\necho \"bootrig-test: rdinit myinit ran as PID $$\"\nexec /sbin/poweroff -f\n"
            .into(),
    );
    script(
        "init",
        format!("#!/bin/sh\necho \"{DECOY_LINE}\"\nexec /sbin/poweroff -f\n"),
    );
    pack_dir(dir, out);
}

/// Boots `initrd` with the setup kernel (q35, virtio-net on user-mode networking); returns the
/// console when QEMU exits (the original init powers off or panics: panic=-1, -no-reboot).
fn boot(kernel: &Path, initrd: &Path, append: &str, timeout: Duration) -> String {
    let dir = common::vm::run_dir("bootrig-wrap-init-");
    let spec = common::vm::direct_spec(
        dir.path(),
        MachineType::Q35,
        kernel,
        initrd,
        append,
        Some(NicModel::VirtioNetPci),
    );
    let mut vm = common::vm::Vm::start(&spec);
    let status = vm.wait_exit(timeout);
    if status.is_none() {
        vm.kill();
    }
    let console = vm.console().replace('\r', "");
    assert!(
        status.is_some(),
        "QEMU still running after {timeout:?}; console:\n{console}"
    );
    console
}

#[test]
fn wrapped_inits_run_the_stanza_then_the_original_init() {
    if !require(&[
        Need::Qemu,
        Need::Setup,
        Need::TestFixture(TINY),
        Need::Program("/bin/busybox", "busybox-static"),
    ]) {
        return;
    }
    let root = common::repo_root();
    let env = common::cache_env();
    let suite = common::repo_suite("wrap-init-");
    let (suite_rel, up) = (suite.rel.clone(), suite.up.clone());
    make_busybox_init(&suite.dir.path().join("busybox-init.img"));
    make_rdinit(&suite.dir.path().join("rdinit.img"));
    for c in CASES {
        fs::write(
            suite.dir.path().join(format!("{}.toml", c.id)),
            scenario(&up, c),
        )
        .unwrap();
    }

    // (a)-(c), test mode: `bootrig check`.
    let checked = common::check_suite(&suite);
    for c in CASES {
        let sc = checked.scenario(c.id);
        assert_eq!(
            sc["outcome"], "pass",
            "{}: {} {}\n{}",
            c.id, sc["cause"], sc["findings"], sc["console_excerpt"]
        );
        let dir = checked.run_dir().join(c.id);
        let console = fs::read_to_string(dir.join("console.txt")).unwrap();
        for want in ["BOOTRIG addr eth0 10.0.2.15/24", "BOOTRIG done"] {
            assert!(console.contains(want), "{}: no {want:?}:\n{console}", c.id);
        }
        let plan: Value =
            serde_json::from_slice(&fs::read(dir.join("plan.json")).unwrap()).unwrap();
        assert_eq!(plan["flavor"], "wrap", "{}", c.id);
        let reason = plan["flavor_reason"].as_str().unwrap();
        assert!(reason.starts_with(c.reason), "{}: {reason}", c.id);
    }
    assert!(checked.status.success(), "{}", checked.stdout);

    // (d) without test mode: the original init runs after the stanza, as PID 1.
    let cache = tempfile::tempdir().unwrap();
    let built = tempfile::tempdir_in(root.join("target")).unwrap();
    let built_rel = built.path().strip_prefix(&root).unwrap();
    for c in CASES {
        let image = built_rel.join(format!("{}.img", c.id));
        let scenario_file = suite_rel.join(format!("{}.toml", c.id));
        let run = Command::new(common::bootrig_bin())
            .arg("build")
            .arg(&scenario_file)
            .arg("-o")
            .arg(&image)
            .current_dir(&root)
            .env("BOOTRIG_CACHE", cache.path())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success(),
            "{}: bootrig build: {}",
            c.id,
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(
            said.contains(&format!("flavor wrap ({}", c.reason)),
            "{}: {said}",
            c.id
        );
        let append = format!("console=ttyS0 panic=-1 no_timer_check {}", c.append);
        let console = boot(
            &env.kernel,
            &root.join(&image),
            append.trim(),
            Duration::from_secs(240),
        );
        if std::env::var_os("BOOTRIG_SHOW_CONSOLE").is_some() {
            eprintln!("--- {} ---\n{console}", c.id);
        }
        let done = console
            .find("BOOTRIG done")
            .unwrap_or_else(|| panic!("{}: no BOOTRIG done:\n{console}", c.id));
        // After the stanza's last line (the kernel's own log names the command line earlier).
        assert!(
            console[done..].lines().any(|l| l == c.line),
            "{}: the original init never said {:?} after BOOTRIG done:\n{console}",
            c.id,
            c.line
        );
        assert!(
            console.contains("BOOTRIG addr eth0 10.0.2.15/24"),
            "{}:\n{console}",
            c.id
        );
        assert!(!console.contains(DECOY_LINE), "{}:\n{console}", c.id);
        if c.id == "rdinit-env" {
            let mut seen: Vec<&str> = console[done..]
                .lines()
                .filter(|l| {
                    l.split_once('=').is_some_and(|(k, _)| {
                        !k.is_empty() && k.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
                    })
                })
                .collect();
            seen.sort();
            assert_eq!(
                seen,
                ["HOME=/", "TERM=linux", "bootrig_probe=1"],
                "{console}"
            );
        }
    }
}
