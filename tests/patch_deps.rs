//! `patch::elf` and `patch::dhcp` against the real system: the ELF closure equals what `ldd`
//! prints for real binaries, the generated dhclient.conf is accepted by the real dhclient, and
//! ISC dhclient with `dhclient_files` really gets eth0 its address in a minimal busybox initrd
//! booted in QEMU (TCG, user-mode network).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bootrig::initrd::add::{add, AddMode, AddOptions, Addition};
use bootrig::initrd::codec::Compression;
use bootrig::initrd::cpio::{Entry, Header};
use bootrig::initrd::pack;
use bootrig::patch::dhcp;
use bootrig::patch::elf;
use bootrig::qemu::machine::{MachineType, NicModel};
use bootrig::qemu::process::GroupChild;

mod common;

use common::{require, Need};

const BUSYBOX: &str = "/bin/busybox";

/// The paths `ldd` prints for `binary`: `soname => path` targets and the loader's own line.
fn ldd_paths(binary: &str) -> BTreeSet<PathBuf> {
    let out = Command::new("ldd").arg(binary).output().expect("run ldd");
    assert!(out.status.success(), "ldd {binary}: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once(" => ") {
                Some((_, rest)) => rest,
                None if line.starts_with('/') => line,
                None => return None, // linux-vdso.so.1: in the kernel, not a file
            };
            Some(PathBuf::from(path.split(" (").next().unwrap()))
        })
        .collect()
}

#[test]
fn closure_matches_ldd_for_real_binaries() {
    if !require(&[Need::Program(dhcp::DHCLIENT, "isc-dhcp-client")]) {
        return;
    }
    let binaries = [
        "/sbin/dhclient",
        "/usr/bin/ip",
        "/sbin/ip",
        "/bin/bash",
        "/usr/bin/hostname",
    ];
    for binary in binaries {
        let files = elf::closure(&[PathBuf::from(binary)], Path::new("/")).unwrap();
        assert_eq!(files[0], Path::new(binary), "the binary comes first");
        let ours: BTreeSet<PathBuf> = files[1..].iter().cloned().collect();
        assert_eq!(
            ours.len(),
            files.len() - 1,
            "{binary}: duplicates in {files:?}"
        );
        let theirs = ldd_paths(binary);
        assert!(theirs.len() >= 2, "{binary}: ldd printed {theirs:?}");
        assert_eq!(ours, theirs, "{binary}");
    }
    // All at once: the union, each file once.
    let all: Vec<PathBuf> = binaries.iter().map(PathBuf::from).collect();
    let files = elf::closure(&all, Path::new("/")).unwrap();
    let unique: BTreeSet<_> = files.iter().collect();
    assert_eq!(unique.len(), files.len());
    assert!(files.contains(&PathBuf::from("/lib/x86_64-linux-gnu/libtinfo.so.6")));
}

#[test]
fn static_busybox_is_only_itself() {
    if !require(&[Need::Program(BUSYBOX, "busybox-static")]) {
        return;
    }
    let out = Command::new("ldd").arg(BUSYBOX).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("not a dynamic executable")
            || String::from_utf8_lossy(&out.stderr).contains("not a dynamic executable"),
        "{BUSYBOX} must be busybox-static: run images/setup first"
    );
    assert_eq!(
        elf::closure(&[PathBuf::from(BUSYBOX)], Path::new("/")).unwrap(),
        [PathBuf::from(BUSYBOX)]
    );
}

#[test]
fn script_brings_its_shell_and_libraries() {
    let files = elf::closure(&[PathBuf::from(dhcp::DHCLIENT_SCRIPT)], Path::new("/")).unwrap();
    assert_eq!(files[0], Path::new(dhcp::DHCLIENT_SCRIPT));
    assert_eq!(files[1], Path::new("/bin/sh"));
    let libs: BTreeSet<PathBuf> = files[2..].iter().cloned().collect();
    assert_eq!(libs, ldd_paths("/bin/sh"));
}

#[test]
fn symlinked_binary_and_soname_are_copied_as_content() {
    // /sbin/ip is a symlink on merged-usr Debian, libc.so.6 always is one.
    let files = elf::closure(&[PathBuf::from("/sbin/ip")], Path::new("/")).unwrap();
    let adds = elf::additions(Path::new("/"), &files).unwrap();
    for a in &adds {
        let bootrig::initrd::add::Source::Path(src) = &a.source else {
            panic!("{a:?}");
        };
        let meta = fs::symlink_metadata(src).unwrap();
        assert!(
            meta.is_file(),
            "{src:?} for {:?} is not a regular file",
            a.dest
        );
        let dest = Path::new(std::str::from_utf8(&a.dest).unwrap());
        assert_eq!(fs::read(src).unwrap(), fs::read(dest).unwrap(), "{dest:?}");
    }
    assert_eq!(adds[0].dest, b"/sbin/ip");
    assert!(adds
        .iter()
        .any(|a| a.dest == b"/lib/x86_64-linux-gnu/libc.so.6"));
}

/// Runs the host's dhclient on `conf` without touching any interface (`-n`, no interface
/// named): it parses the file, reports errors as `<file> line N: ...`, then sets up its fallback
/// socket ("Sending on Socket/fallback") and waits forever, so it is stopped there.
fn dhclient_parse_errors(conf: &str, dir: &Path) -> String {
    let path = dir.join("test.conf");
    fs::write(&path, conf).unwrap();
    let log_path = dir.join("dhclient.log");
    let log = fs::File::create(&log_path).unwrap();
    let mut cmd = Command::new(dhcp::DHCLIENT);
    cmd.args(["-n", "-d", "-cf"])
        .arg(&path)
        .arg("-lf")
        .arg(dir.join("leases"))
        .arg("-pf")
        .arg(dir.join("pid"))
        .args(["-sf", "/bin/true"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    // Killed with its group when dropped.
    let mut child = GroupChild::spawn(&mut cmd).expect("run dhclient (isc-dhcp-client)");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut text = String::new();
    while Instant::now() < deadline {
        text = fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains("Sending on") || child.wait_timeout(Duration::ZERO).unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    let text = fs::read_to_string(&log_path).unwrap_or(text);
    assert!(text.contains("Internet Systems Consortium"), "{text}");
    text.lines()
        .filter(|l| l.contains(" line ") || l.contains("rror"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn generated_conf_is_accepted_by_dhclient() {
    if !require(&[Need::Program(dhcp::DHCLIENT, "isc-dhcp-client")]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let id = dhcp::client_id_from_guid("0002:c903:0000:1039").unwrap();
    let ib0 = dhcp::dhclient_conf("ib0", Some(&id)).unwrap();
    assert!(ib0.contains(
        "send dhcp-client-identifier ff:00:00:00:00:00:02:00:00:02:c9:00:00:02:c9:03:00:00:10:39;"
    ));
    assert_eq!(dhclient_parse_errors(&ib0, dir.path()), "");
    let eth0 = dhcp::dhclient_conf("eth0", None).unwrap();
    assert_eq!(dhclient_parse_errors(&eth0, dir.path()), "");
    // The check can fail: a broken identifier is reported.
    let broken = ib0.replace(&id.to_string(), "ff:zz");
    assert!(dhclient_parse_errors(&broken, dir.path()).contains("line"));
}

#[test]
fn dhclient_files_lists_everything_the_script_needs() {
    if !require(&[Need::Program(dhcp::DHCLIENT, "isc-dhcp-client")]) {
        return;
    }
    let setup = dhcp::dhclient_files(Path::new("/"), "eth0", None).unwrap();
    let dests: BTreeSet<String> = setup
        .additions
        .iter()
        .map(|a| String::from_utf8(a.dest.clone()).unwrap())
        .collect();
    assert_eq!(dests.len(), setup.additions.len(), "one addition per path");
    for want in [
        "/sbin/dhclient",
        "/sbin/dhclient-script",
        "/usr/lib/bootrig/dhclient/ip",
        "/usr/lib/bootrig/dhclient/hostname",
        "/etc/dhcp/dhclient.conf",
        "/var/lib/dhcp/dhclient.leases",
        "/var/state/dhcp",
        "/run",
        "/lib64/ld-linux-x86-64.so.2",
        "/lib/x86_64-linux-gnu/libc.so.6",
    ] {
        assert!(dests.contains(want), "{want} missing from {dests:?}");
    }
    // Never over the base's own tools (a busybox hardlink there would take every applet along).
    for theirs in ["/usr/sbin/ip", "/usr/sbin/hostname", "/bin/ip", "/sbin/ip"] {
        assert!(!dests.contains(theirs), "{theirs} replaced");
    }
    for lib in ldd_paths("/usr/bin/ip") {
        assert!(dests.contains(lib.to_str().unwrap()), "{lib:?} for ip");
    }
    let conf = setup
        .additions
        .iter()
        .find(|a| a.dest == setup.conf.as_bytes())
        .unwrap();
    assert_eq!(
        conf.source,
        bootrig::initrd::add::Source::Bytes(
            dhcp::dhclient_conf("eth0", None).unwrap().into_bytes()
        )
    );
    assert_eq!(setup.base_commands, ["sh", "readlink", "rm", "cat"]);
    let empty = tempfile::tempdir().unwrap();
    let err = dhcp::dhclient_files(empty.path(), "eth0", None).unwrap_err();
    assert!(err.to_string().contains("install isc-dhcp-client"), "{err}");
}

/// `images/cache/env` from `images/setup`: the kernel and its module tree.
fn setup_env() -> (PathBuf, PathBuf) {
    let env = Path::new(env!("CARGO_MANIFEST_DIR")).join("images/cache/env");
    let text = fs::read_to_string(&env)
        .unwrap_or_else(|e| panic!("{}: {e}; run images/setup first", env.display()));
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("{key} missing in {}; run images/setup first", env.display()))
    };
    (get("BOOTRIG_KERNEL"), get("BOOTRIG_MODULES"))
}

/// virtio-net and what it needs, dependencies first (none is built into the Debian kernel:
/// modules.builtin lists none of them).
const VIRTIO_NET: &[&str] = &[
    "kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/virtio/virtio.ko",
    "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
    "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
    "kernel/drivers/virtio/virtio_pci.ko",
    "kernel/net/core/failover.ko",
    "kernel/drivers/net/net_failover.ko",
    "kernel/drivers/net/virtio_net.ko",
];

/// Busybox applets /init and dhclient-script use.
const APPLETS: &[&str] = &[
    "sh", "mount", "mkdir", "insmod", "sleep", "poweroff", "cat", "echo", "readlink", "rm", "sed",
    "chmod", "chown", "ls", "grep", "test", "[", "true",
];

fn init_script(modules: &[String], setup: &dhcp::DhclientSetup) -> String {
    let insmods: String = modules
        .iter()
        .map(|m| format!("insmod {m} || echo \"TEST insmod {m} failed\"\n"))
        .collect();
    format!(
        r#"#!/bin/sh
export PATH=/usr/sbin:/sbin:/bin:/usr/bin:/usr/lib/bootrig/dhclient
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
{insmods}i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
{binary} -v -1 -cf {conf} -lf {leases} -sf {script} -pf /run/dhclient.pid eth0
echo "TEST dhclient rc=$?"
echo "TEST addr $(ip -o -4 addr show dev eth0)"
echo "TEST resolv $(cat /etc/resolv.conf)"
echo "TEST done"
poweroff -f
"#,
        binary = setup.binary,
        conf = setup.conf,
        leases = setup.leases,
        script = setup.script,
    )
}

/// A base image: just `/dev/console`, which the kernel opens for init before anything is mounted.
fn write_base(path: &Path) {
    let dir = |name: &str| Entry {
        header: Header {
            mode: 0o040755,
            nlink: 2,
            ..Header::default()
        },
        name: name.as_bytes().to_vec(),
        data: Vec::new(),
    };
    let console = Entry {
        header: Header {
            mode: 0o020600,
            nlink: 1,
            rdev_major: 5,
            rdev_minor: 1,
            ..Header::default()
        },
        name: b"dev/console".to_vec(),
        data: Vec::new(),
    };
    let archive = pack::archive(&[dir("dev"), console]).unwrap();
    fs::write(path, archive.bytes).unwrap();
}

#[test]
fn dhclient_gets_the_lease_in_a_busybox_initrd() {
    if !require(&[
        Need::Qemu,
        Need::Setup,
        Need::Program(BUSYBOX, "busybox-static"),
        Need::Program(dhcp::DHCLIENT, "isc-dhcp-client"),
    ]) {
        return;
    }
    let (kernel, modules_dir) = setup_env();
    let release = modules_dir
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let builtin = fs::read_to_string(modules_dir.join("modules.builtin")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("base.cpio");
    write_base(&base);

    let setup = dhcp::dhclient_files(Path::new("/"), "eth0", None).unwrap();
    let mut additions: Vec<Addition> = Vec::new();
    additions.push(Addition::path(PathBuf::from(BUSYBOX), "/bin/busybox"));
    for applet in APPLETS {
        additions.push(Addition::symlink(&format!("/bin/{applet}"), "busybox"));
    }
    for command in &setup.base_commands {
        assert!(APPLETS.contains(&command.as_str()), "base lacks {command}");
    }
    for dir in ["/proc", "/sys", "/tmp", "/etc"] {
        additions.push(Addition::dir(dir, 0o755));
    }
    let mut insmods = Vec::new();
    for module in VIRTIO_NET {
        assert!(!builtin.contains(module), "{module} is built in");
        let dest = format!("/lib/modules/{release}/{module}");
        additions.push(Addition::path(modules_dir.join(module), &dest));
        insmods.push(dest);
    }
    additions.extend(setup.additions.iter().cloned());
    // The base has no /etc/fstab, so the if-absent files go in too.
    additions.extend(setup.if_absent.iter().cloned());
    additions.push(Addition::bytes(
        "/init",
        init_script(&insmods, &setup).into_bytes(),
        0o755,
    ));
    let initrd = work.path().join("initrd.img");
    let opts = AddOptions {
        mode: AddMode::Repack,
        compress: Some(Compression::Gzip),
        ..AddOptions::default()
    };
    add(&base, &initrd, &additions, &opts).unwrap();

    let run = common::vm::run_dir("bootrig-patch-deps-");
    let spec = common::vm::direct_spec(
        run.path(),
        MachineType::Pc,
        &kernel,
        &initrd,
        "console=ttyS0 panic=-1 no_timer_check",
        Some(NicModel::VirtioNetPci),
    );
    // Killed (with its process group) when dropped, also if an assertion below panics.
    let mut vm = common::vm::Vm::start(&spec);
    let status = vm.wait_exit(Duration::from_secs(240));
    let elapsed = vm.started.elapsed();
    let log = vm.console().replace('\r', "");
    assert!(
        status.is_some(),
        "QEMU still running after {elapsed:?}:\n{log}"
    );
    eprintln!("boot with dhclient took {elapsed:?}");
    if std::env::var_os("BOOTRIG_SHOW_CONSOLE").is_some() {
        eprintln!("{log}");
    }

    let line = |prefix: &str| {
        log.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in the console:\n{log}"))
            .to_owned()
    };
    assert!(!log.contains("TEST insmod"), "{log}");
    assert!(log.contains("bound to 10.0.2.15"), "{log}");
    assert_eq!(line("TEST dhclient rc="), "TEST dhclient rc=0", "{log}");
    let addr = line("TEST addr ");
    assert!(
        addr.contains("eth0") && addr.contains("inet 10.0.2.15/24"),
        "{addr}\n{log}"
    );
    // The script ran to its end: resolv.conf from the lease's DNS server.
    assert!(
        line("TEST resolv ").contains("nameserver 10.0.2.3"),
        "{log}"
    );
    line("TEST done");
}
