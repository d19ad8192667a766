//! The stanza in real initrds, booted for real: bootrig's busybox base and an initramfs-tools
//! image made by mkinitramfs (images/setup) get the stanza through `initrd::add` (overlay), boot
//! the setup kernel in QEMU (TCG, direct kernel boot, user-mode network), and the serial console
//! must show every planned module loaded in plan order (judged from /proc/modules, not only the
//! stanza's echo) and eth0 with QEMU's DHCP address. Also: flavor detection and placement on
//! every real image images/setup made.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bootrig::initrd::add::{add, AddMode, AddOptions, Addition};
use bootrig::initrd::image::{read_tree, ReadOptions};
use bootrig::initrd::tree::{DataPolicy, Tree};
use bootrig::kmod::{plan, Plan, PlanRequest};
use bootrig::patch::base::write_busybox_base;
use bootrig::patch::detect::detect;
use bootrig::patch::flavor::Flavor;
use bootrig::patch::place::{place, Placement};
use bootrig::patch::stanza::{self, DhcpClient, ModuleLoad, Network, StanzaSpec, Then};
use bootrig::qemu::machine::{MachineType, NicModel};

mod common;

use common::{cache_env as env, require, CacheEnv as Env, Need};

fn fixture(name: &str) -> PathBuf {
    let p = common::fixtures_dir().join(name);
    assert!(
        p.exists(),
        "{}: missing; run images/setup first",
        p.display()
    );
    p
}

fn resolve_plan(e: &Env, modules: &[&str]) -> Plan {
    let p = plan(&PlanRequest {
        kernel: e.kernel.clone(),
        module_dirs: vec![e.modules.clone()],
        modules: modules.iter().map(|s| s.to_string()).collect(),
        resolve: true,
    })
    .unwrap();
    assert!(p.is_loadable(), "plan errors: {:?}", p.errors);
    p
}

/// The plan's modules as loads from /lib/modules/<release>/..., and the additions copying them.
fn modules_in_image(e: &Env, p: &Plan) -> (Vec<ModuleLoad>, Vec<Addition>) {
    let mut loads = Vec::new();
    let mut adds = Vec::new();
    for m in p.load_order() {
        let file = m.file.as_ref().unwrap();
        let rel = file.strip_prefix(&e.modules).unwrap();
        let dest = format!("/lib/modules/{}/{}", e.release, rel.display());
        adds.push(Addition::path(file.clone(), &dest));
        loads.push(ModuleLoad {
            name: m.name.clone(),
            path: dest,
            params: String::new(),
        });
    }
    (loads, adds)
}

fn tree_of(image: &Path) -> Tree {
    read_tree(image, DataPolicy::Full, &ReadOptions::default())
        .unwrap()
        .0
}

/// Patches `base` with the stanza for `modules`, udhcpc on eth0, then power off.
fn patch(e: &Env, base: &Path, out: &Path, p: &Plan, expected: Flavor) {
    let tree = tree_of(base);
    let detected = detect(&tree);
    assert_eq!(detected, expected);
    let (loads, mut additions) = modules_in_image(e, p);
    let script = match detected {
        Flavor::Busybox => stanza::UDHCPC_SCRIPT_DEFAULT_PATH.to_string(),
        _ => {
            additions.push(stanza::udhcpc_script_addition("/etc/bootrig/udhcpc.script"));
            "/etc/bootrig/udhcpc.script".into()
        }
    };
    let text = stanza::render(&StanzaSpec {
        modules: loads,
        network: Network::Dhcp {
            interface: "eth0".into(),
            client: DhcpClient::Udhcpc {
                script,
                client_id: None,
            },
        },
        then: Then::PowerOff,
        tools_dir: None,
        rdma: None,
    })
    .unwrap();
    additions.extend(place(detected, &tree, &text, &Placement::default()).unwrap());
    let opts = AddOptions {
        mode: AddMode::Overlay,
        ..AddOptions::default()
    };
    add(base, out, &additions, &opts).unwrap();
}

/// What the console showed, and how long the boot took.
struct Boot {
    console: String,
    elapsed: Duration,
}

/// Boots `initrd` with the setup kernel (q35, virtio-net on user-mode networking); returns when
/// QEMU exits (the stanza powers off) or fails after `timeout`. QEMU is killed with its group on
/// drop (also when an assertion unwinds).
fn boot(e: &Env, initrd: &Path, append: &str, timeout: Duration) -> Boot {
    let dir = common::vm::run_dir("bootrig-patch-boot-");
    let spec = common::vm::direct_spec(
        dir.path(),
        MachineType::Q35,
        &e.kernel,
        initrd,
        append,
        Some(NicModel::VirtioNetPci),
    );
    let mut vm = common::vm::Vm::start(&spec);
    let status = vm.wait_exit(timeout);
    let elapsed = vm.started.elapsed();
    if status.is_none() {
        vm.kill();
    }
    let console = vm.console().replace('\r', "");
    assert!(
        status.is_some(),
        "QEMU still running after {timeout:?}; console:\n{console}"
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "QEMU failed ({status:?}): {}\nconsole:\n{console}",
        vm.stderr()
    );
    Boot { console, elapsed }
}

/// Protocol lines, from column 0.
fn protocol(console: &str) -> Vec<&str> {
    console
        .lines()
        .filter_map(|l| l.strip_prefix("BOOTRIG "))
        .collect()
}

/// Module names in the order the kernel loaded them: /proc/modules lists the newest first.
fn proc_modules_load_order(console: &str) -> Vec<String> {
    let block = console
        .split("BOOTRIG modules-begin\n")
        .nth(1)
        .and_then(|rest| rest.split("BOOTRIG modules-end").next())
        .unwrap_or_else(|| panic!("no /proc/modules block; console:\n{console}"));
    let mut names: Vec<String> = block
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect();
    names.reverse();
    names
}

/// The checks both boots share; returns the modules the stanza inserted itself.
fn check_boot(b: &Boot, p: &Plan) -> Vec<String> {
    let c = &b.console;
    let lines = protocol(c);
    assert!(lines.contains(&"begin"), "no BOOTRIG begin; console:\n{c}");
    assert!(lines.contains(&"done"), "no BOOTRIG done; console:\n{c}");
    assert!(
        lines.contains(&"addr eth0 10.0.2.15/24"),
        "eth0 has no DHCP address; console:\n{c}"
    );
    assert!(lines.contains(&"dhcp eth0 udhcpc rc=0"), "console:\n{c}");
    let mut inserted = Vec::new();
    for m in p.load_order() {
        let ok = format!("insmod {} rc=0", m.name);
        let already = format!("insmod {} already-loaded", m.name);
        if lines.contains(&ok.as_str()) {
            inserted.push(m.name.clone());
        } else {
            assert!(
                lines.contains(&already.as_str()),
                "{} neither loaded nor already loaded; console:\n{c}",
                m.name
            );
        }
    }
    // From the kernel's own list: the inserted modules loaded in plan order.
    let loaded = proc_modules_load_order(c);
    let seen: Vec<&String> = loaded.iter().filter(|n| inserted.contains(n)).collect();
    let want: Vec<&String> = inserted.iter().collect();
    assert_eq!(
        seen, want,
        "/proc/modules order differs from the plan; console:\n{c}"
    );
    // Every planned module is in the kernel's list.
    for m in p.load_order() {
        assert!(loaded.contains(&m.name), "{} not in /proc/modules", m.name);
    }
    if std::env::var_os("BOOTRIG_SHOW_CONSOLE").is_some() {
        eprintln!("{c}");
    }
    eprintln!("boot took {:.1} s", b.elapsed.as_secs_f64());
    inserted
}

#[test]
fn busybox_base_loads_the_plan_and_gets_a_dhcp_address() {
    if !require(&[
        Need::Qemu,
        Need::Setup,
        Need::Program("/bin/busybox", "busybox-static"),
    ]) {
        return;
    }
    let e = env();
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.img");
    write_busybox_base(Path::new("/bin/busybox"), &base).unwrap();
    let p = resolve_plan(&e, &["virtio_pci", "virtio_net", "ib_uverbs"]);
    let out = dir.path().join("patched.img");
    patch(&e, &base, &out, &p, Flavor::Busybox);
    let b = boot(
        &e,
        &out,
        "console=ttyS0 panic=-1 no_timer_check",
        Duration::from_secs(120),
    );
    let inserted = check_boot(&b, &p);
    // Nothing else loads modules in the base: the stanza inserted every one.
    let all: Vec<String> = p.load_order().map(|m| m.name.clone()).collect();
    assert_eq!(inserted, all);
    assert!(all.len() >= 8, "plan too small to show order: {all:?}");
}

#[test]
fn initramfs_tools_premount_hook_loads_the_plan_and_gets_a_dhcp_address() {
    if !require(&[Need::Qemu, Need::Setup]) {
        return;
    }
    let e = env();
    let dir = tempfile::tempdir().unwrap();
    let base = fixture("mkinitramfs-gzip.img");
    // virtio_net is in the image's /conf/modules: load_modules has loaded it (and its
    // dependencies) before init-premount, so the stanza must report it already loaded.
    let p = resolve_plan(&e, &["virtio_net", "ib_uverbs", "ib_cm", "ib_umad"]);
    let out = dir.path().join("patched.img");
    patch(&e, &base, &out, &p, Flavor::InitramfsTools);
    // net.ifnames=0: the image's udev would rename eth0 (99-default.link).
    let b = boot(
        &e,
        &out,
        "console=ttyS0 panic=-1 no_timer_check net.ifnames=0",
        Duration::from_secs(180),
    );
    let inserted = check_boot(&b, &p);
    assert_eq!(inserted, ["ib_core", "ib_uverbs", "ib_cm", "ib_umad"]);
    assert!(protocol(&b.console).contains(&"insmod virtio_net already-loaded"));
    // The hook ran inside initramfs-tools' init-premount phase.
    let begin = b.console.find("Running /scripts/init-premount").unwrap();
    assert!(begin < b.console.find("BOOTRIG begin").unwrap());
}

/// Every image images/setup made: detected as what made it, and placed where it runs.
#[test]
fn real_images_detect_and_place() {
    if !require(&[Need::Setup]) {
        return;
    }
    let manifest = std::fs::read_to_string(common::fixtures_dir().join("manifest"))
        .expect("images/cache/initrds/manifest missing: run images/setup first");
    let mut checked = 0;
    for line in manifest.lines().filter(|l| !l.starts_with('#')) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (tool, file) = (cols[1], cols[4]);
        let tree = tree_of(&fixture(file));
        let detected = detect(&tree);
        let adds = place(detected, &tree, "true\n", &Placement::default()).unwrap();
        let dests: Vec<String> = adds
            .iter()
            .map(|a| String::from_utf8_lossy(&a.dest).into_owned())
            .collect();
        match tool {
            "mkinitramfs" => {
                assert_eq!(detected, Flavor::InitramfsTools, "{file}");
                assert_eq!(
                    dests,
                    [
                        "/scripts/init-premount/bootrig",
                        "/scripts/init-premount/ORDER"
                    ],
                    "{file}"
                );
            }
            "dracut" => {
                // Built with dracut-core on a host without systemd: /init is dracut's shell
                // script, not systemd.
                assert!(tree.get(b"usr/lib/systemd/systemd").is_none(), "{file}");
                assert_eq!(detected, Flavor::Dracut, "{file}");
                assert_eq!(
                    dests,
                    ["/usr/lib/dracut/hooks/cmdline/90-bootrig.sh"],
                    "{file}"
                );
            }
            other => panic!("{file}: unknown tool {other} in the manifest"),
        }
        // Forced to generic, the default anchor lands after /proc and /sys are mounted, at top
        // level, before the hand-over.
        let generic = place(Flavor::Generic, &tree, "# STANZA\n", &Placement::default()).unwrap();
        let bootrig::initrd::add::Source::Bytes(init) = &generic[0].source else {
            panic!("generic placement is not new /init content");
        };
        let init = String::from_utf8_lossy(init);
        let at = init.find("# STANZA\n").unwrap();
        let before = &init[..at];
        assert!(
            before.contains("mount -t proc") && before.contains("mount -t sysfs"),
            "{file}"
        );
        assert!(
            !before.contains("switch_root") && !before.contains("exec run-init"),
            "{file}"
        );
        let after_lines: Vec<&str> = before.lines().rev().take(1).collect();
        match tool {
            "mkinitramfs" => assert!(after_lines[0].starts_with("mount -t proc"), "{file}"),
            _ => assert_eq!(after_lines[0], "fi", "{file}: inside an if block"),
        }
        checked += 1;
    }
    assert!(checked >= 2, "manifest lists no images");
}
