//! The dnsmasq test segment against real clients: busybox udhcpc on a probe port (cheap, seconds)
//! and a real QEMU boot (TCG) whose iPXE ROM gets its reserved address over a tap. Needs root
//! (CAP_NET_ADMIN + CAP_SYS_ADMIN), dnsmasq, busybox and QEMU, as CI has after images/setup.

mod common;

use std::io::Read;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bootrig::host::procs;
use bootrig::net::cleanup::{cleanup, remove_segment};
use bootrig::net::log::TftpEvent;
use bootrig::net::marker;
use bootrig::net::netns;
use bootrig::net::{
    ClientId, ClientMatch, DhcpConfig, DhcpFault, DhcpMessage, Reservation, Segment, SegmentSpec,
};
use bootrig::qemu::accel::Accel;
use bootrig::qemu::firmware;
use bootrig::qemu::machine::{
    FirmwareImage, MachineType, Network, NicModel, NicRom, TapNet, VmSpec,
};

/// cleanup() looks at every bootrig namespace on the host: the tests that call it take turns.
static CLEANUP: Mutex<()> = Mutex::new(());

const IPOIB_GUID: [u8; 8] = [0x00, 0x02, 0xc9, 0x03, 0x00, 0x12, 0x34, 0x56];
const RESERVED: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 50);

struct Lab {
    seg: Segment,
    dir: tempfile::TempDir,
}

fn lab(fault: Option<DhcpFault>, tweak: impl FnOnce(&mut DhcpConfig)) -> Lab {
    let dir = tempfile::Builder::new()
        .prefix("bootrig-net-")
        .tempdir_in("/tmp")
        .unwrap();
    let boot = dir.path().join("boot");
    std::fs::create_dir(&boot).unwrap();
    std::fs::write(boot.join("boot.ipxe"), "#!ipxe\necho hello\n").unwrap();
    let mut dhcp = DhcpConfig::default_lab();
    dhcp.reservations.push(Reservation {
        client: ClientMatch::ClientId(ClientId::ipoib(IPOIB_GUID)),
        address: RESERVED,
    });
    dhcp.tftp_root = Some(boot);
    dhcp.boot_file = Some("boot.ipxe".into());
    tweak(&mut dhcp);
    let spec = SegmentSpec {
        state_dir: dir.path().join("state"),
        run_dir: dir.path().to_owned(),
        guests: 1,
        dhcp,
        fault,
    };
    let seg = Segment::create(&spec).unwrap_or_else(|e| panic!("creating the segment: {e}"));
    Lab { seg, dir }
}

/// What a udhcpc run saw: its output (with the env our script printed) and how long it took.
struct Dhcp {
    ok: bool,
    output: String,
    took: Duration,
}

impl Dhcp {
    fn var(&self, name: &str) -> Option<&str> {
        let key = format!("{name}=");
        self.output
            .lines()
            .find_map(|l| l.strip_prefix("ENV "))
            .and_then(|l| l.split(' ').find_map(|w| w.strip_prefix(key.as_str())))
    }
}

/// busybox udhcpc on `iface` inside the segment, `tries` DISCOVERs `every` seconds apart.
fn udhcpc(lab: &Lab, iface: &str, client_id: Option<&ClientId>, tries: u32, every: u32) -> Dhcp {
    let script = lab.dir.path().join("udhcpc.sh");
    if !script.exists() {
        std::fs::write(
            &script,
            "#!/bin/sh\n[ \"$1\" = bound ] && echo \"ENV ip=$ip siaddr=$siaddr boot_file=$boot_file serverid=$serverid\"\nexit 0\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut cmd = Command::new("busybox");
    cmd.args(["udhcpc", "-i", iface, "-n", "-q", "-f"])
        .args(["-t", &tries.to_string(), "-T", &every.to_string()])
        .arg("-s")
        .arg(&script);
    if let Some(id) = client_id {
        cmd.args(["-x", &format!("0x3d:{}", id.to_plain_hex())]);
    }
    lab.seg.enter_on_spawn(&mut cmd).unwrap();
    let started = Instant::now();
    let out = cmd.output().expect("busybox: run images/setup first");
    Dhcp {
        ok: out.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        took: started.elapsed(),
    }
}

fn in_ns(lab: &Lab, program: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(program);
    cmd.args(args);
    lab.seg.enter_on_spawn(&mut cmd).unwrap();
    cmd.output().unwrap()
}

fn ns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

#[test]
fn the_ipoib_client_id_gets_its_reservation_and_others_the_pool() {
    if !common::require(&[
        common::Need::Root,
        common::Need::Dnsmasq,
        common::Need::Program("/bin/busybox", "busybox-static"),
    ]) {
        return;
    }
    let mut lab = lab(None, |_| {});
    let probe = lab.seg.add_probe_port().unwrap();
    let ipoib = ClientId::ipoib(IPOIB_GUID);

    let got = udhcpc(&lab, &probe, Some(&ipoib), 3, 2);
    assert!(got.ok, "udhcpc failed:\n{}", got.output);
    assert_eq!(got.var("ip"), Some("10.77.0.50"), "{}", got.output);
    assert_eq!(got.var("serverid"), Some("10.77.0.1"));
    assert_eq!(got.var("siaddr"), Some("10.77.0.1"));
    assert_eq!(got.var("boot_file"), Some("boot.ipxe"));

    // A client without that id is not given the reserved address.
    let other = ClientId::new(vec![0x00, 0x6f, 0x74, 0x68, 0x65, 0x72]).unwrap();
    let pool = udhcpc(&lab, &probe, Some(&other), 3, 2);
    assert!(pool.ok, "{}", pool.output);
    let pool_ip: Ipv4Addr = pool.var("ip").unwrap().parse().unwrap();
    assert!(
        (Ipv4Addr::new(10, 77, 0, 10)..=Ipv4Addr::new(10, 77, 0, 99)).contains(&pool_ip),
        "{pool_ip}"
    );

    let leases = lab.seg.leases().unwrap();
    assert_eq!(
        bootrig::net::lease::address_of(&leases, &ipoib),
        Some(RESERVED)
    );
    assert_eq!(
        bootrig::net::lease::address_of(&leases, &other),
        Some(pool_ip)
    );
    let log = lab.seg.dhcp_log().unwrap();
    assert!(log.acked_with_tag(RESERVED, "res0"), "{log:#?}");
    assert!(!log.acked_with_tag(pool_ip, "res0"));
    assert_eq!(log.starts, 1);

    // The evidence is there, and the config says what was asked.
    let config = std::fs::read_to_string(&lab.seg.files().config).unwrap();
    assert!(config.contains(&format!("dhcp-host=id:{ipoib},set:res0,10.77.0.50")));

    // Isolation: dnsmasq runs in the segment's namespace, the host has no route into it.
    let dnsmasq = lab.seg.dnsmasq_pid().unwrap();
    let seg_ns = procs::NsId::of(&lab.seg.netns_path()).unwrap();
    assert_eq!(
        procs::NsId::of(Path::new(&format!("/proc/{dnsmasq}/ns/net"))),
        Some(seg_ns)
    );
    assert_ne!(
        procs::NsId::of(Path::new("/proc/self/ns/net")),
        Some(seg_ns)
    );
    let host_routes = Command::new("ip").args(["route"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&host_routes.stdout).contains("10.77.0."));
    let routes = in_ns(&lab, "ip", &["route"]);
    let routes = String::from_utf8_lossy(&routes.stdout);
    assert!(!routes.contains("default"), "{routes}");

    // Teardown on drop: no namespace, no dnsmasq, no marker.
    let name = lab.seg.namespace().to_owned();
    let marker_path = marker::path_for(&lab.dir.path().join("state"), &name);
    assert!(marker_path.exists());
    let Lab { seg, dir } = lab;
    drop(seg);
    assert!(!ns_exists(&name));
    assert!(!procs::alive(dnsmasq, None));
    assert!(!marker_path.exists());
    drop(dir);
}

#[test]
fn no_server_means_no_answer() {
    if !common::require(&[
        common::Need::Root,
        common::Need::Dnsmasq,
        common::Need::Program("/bin/busybox", "busybox-static"),
    ]) {
        return;
    }
    let mut lab = lab(Some(DhcpFault::NoServer), |_| {});
    let probe = lab.seg.add_probe_port().unwrap();
    assert_eq!(lab.seg.dnsmasq_pid(), None);
    let got = udhcpc(&lab, &probe, None, 2, 1);
    assert!(!got.ok, "{}", got.output);
    assert!(got.output.contains("no lease"), "{}", got.output);
    // The config is still written, as evidence of what would have served.
    assert!(lab.seg.files().config.exists());
}

#[test]
fn reply_delay_holds_the_offer_back() {
    if !common::require(&[
        common::Need::Root,
        common::Need::Dnsmasq,
        common::Need::Program("/bin/busybox", "busybox-static"),
    ]) {
        return;
    }
    let mut lab = lab(Some(DhcpFault::ReplyDelay { seconds: 3 }), |_| {});
    let probe = lab.seg.add_probe_port().unwrap();
    let got = udhcpc(&lab, &probe, None, 4, 5);
    assert!(got.ok, "{}", got.output);
    assert!(got.took >= Duration::from_secs(3), "{:?}", got.took);
    let config = std::fs::read_to_string(&lab.seg.files().config).unwrap();
    assert!(config.contains("\ndhcp-reply-delay=3\n"));
    eprintln!("reply delay 3 s: lease after {:?}", got.took);
}

#[test]
fn wrong_next_server_is_offered() {
    if !common::require(&[
        common::Need::Root,
        common::Need::Dnsmasq,
        common::Need::Program("/bin/busybox", "busybox-static"),
    ]) {
        return;
    }
    let mut lab = lab(Some(DhcpFault::WrongNextServer { address: None }), |_| {});
    let probe = lab.seg.add_probe_port().unwrap();
    let got = udhcpc(&lab, &probe, None, 3, 2);
    assert!(got.ok, "{}", got.output);
    assert_eq!(got.var("siaddr"), Some("10.77.0.254"), "{}", got.output);
    assert_eq!(got.var("serverid"), Some("10.77.0.1"));
}

#[test]
fn exhausted_range_answers_no_address() {
    if !common::require(&[
        common::Need::Root,
        common::Need::Dnsmasq,
        common::Need::Program("/bin/busybox", "busybox-static"),
    ]) {
        return;
    }
    let mut lab = lab(Some(DhcpFault::ExhaustedRange), |_| {});
    let probe = lab.seg.add_probe_port().unwrap();
    // Neither the reserved IPoIB client (its address is leased to another) nor a stranger.
    for id in [
        ClientId::ipoib(IPOIB_GUID),
        ClientId::new(vec![0, 1, 2]).unwrap(),
    ] {
        let got = udhcpc(&lab, &probe, Some(&id), 2, 1);
        assert!(!got.ok, "{id}: {}", got.output);
    }
    let log = lab.seg.dhcp_log().unwrap();
    assert!(log.of(DhcpMessage::Offer).next().is_none(), "{log:#?}");
    let refused = log
        .of(DhcpMessage::Discover)
        .filter(|e| e.note.contains("no address available"))
        .count();
    assert!(refused >= 2, "{log:#?}");
}

#[test]
fn no_boot_file_on_the_tftp_server() {
    if !common::require(&[
        common::Need::Root,
        common::Need::Dnsmasq,
        common::Need::Program("/bin/busybox", "busybox-static"),
    ]) {
        return;
    }
    let mut lab = lab(Some(DhcpFault::NoBootFile), |_| {});
    let probe = lab.seg.add_probe_port().unwrap();
    let got = udhcpc(&lab, &probe, None, 3, 2);
    assert!(got.ok, "{}", got.output);
    // DHCP still names the file …
    assert_eq!(got.var("boot_file"), Some("boot.ipxe"));
    // … which the TFTP server does not have.
    let ip = got.var("ip").unwrap().to_owned();
    let ns = lab.seg.namespace().to_owned();
    assert!(Command::new("ip")
        .args(["-n", &ns, "addr", "add", &format!("{ip}/24"), "dev", &probe])
        .status()
        .unwrap()
        .success());
    let fetch = in_ns(
        &lab,
        "busybox",
        &[
            "tftp",
            "-g",
            "-r",
            "boot.ipxe",
            "-l",
            "/dev/null",
            "10.77.0.1",
        ],
    );
    assert!(!fetch.status.success());
    let stderr = String::from_utf8_lossy(&fetch.stderr);
    assert!(stderr.contains("not found"), "{stderr}");
    let log = lab.seg.dhcp_log().unwrap();
    assert!(
        log.tftp
            .iter()
            .any(|e| matches!(e, TftpEvent::NotFound { file, .. } if file.ends_with("boot.ipxe"))),
        "{log:#?}"
    );
}

#[test]
fn server_restarts_mid_boot_and_keeps_its_leases() {
    if !common::require(&[
        common::Need::Root,
        common::Need::Dnsmasq,
        common::Need::Program("/bin/busybox", "busybox-static"),
    ]) {
        return;
    }
    let mut lab = lab(Some(DhcpFault::RestartMidBoot), |_| {});
    let probe = lab.seg.add_probe_port().unwrap();
    let ipoib = ClientId::ipoib(IPOIB_GUID);
    assert!(!lab.seg.poll_fault().unwrap(), "no ACK yet: no restart");
    let first_pid = lab.seg.dnsmasq_pid().unwrap();
    let got = udhcpc(&lab, &probe, Some(&ipoib), 3, 2);
    assert!(got.ok, "{}", got.output);
    assert!(lab.seg.poll_fault().unwrap());
    assert!(!lab.seg.poll_fault().unwrap(), "restarts once");
    let second_pid = lab.seg.dnsmasq_pid().unwrap();
    assert_ne!(first_pid, second_pid);
    assert!(!procs::alive(first_pid, None));
    let again = udhcpc(&lab, &probe, Some(&ipoib), 3, 2);
    assert!(again.ok, "{}", again.output);
    assert_eq!(again.var("ip"), Some("10.77.0.50"));
    let log = lab.seg.dhcp_log().unwrap();
    assert_eq!(log.starts, 2, "{log:#?}");
    assert_eq!(log.of(DhcpMessage::Ack).count(), 2);
    assert_eq!(
        bootrig::net::lease::address_of(&lab.seg.leases().unwrap(), &ipoib),
        Some(RESERVED)
    );
}

#[test]
fn a_bad_config_fails_before_anything_is_left_behind() {
    if !common::require(&[
        common::Need::Root,
        common::Need::Dnsmasq,
        common::Need::Program("/bin/busybox", "busybox-static"),
    ]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut dhcp = DhcpConfig::default_lab();
    dhcp.lease_secs = 10;
    let spec = SegmentSpec {
        state_dir: dir.path().join("state"),
        run_dir: dir.path().to_owned(),
        guests: 2,
        dhcp,
        fault: None,
    };
    let err = Segment::create(&spec)
        .err()
        .expect("a 10 s lease is refused");
    assert!(err.to_string().contains("minimum"), "{err}");
    assert!(marker::list(&dir.path().join("state")).is_empty());
}

/// Spawns `sleep 300` in the segment, standing for a QEMU: its own process group and no death
/// signal, so only cleanup can end it.
fn orphan_sleep(netns_path: &Path) -> u32 {
    let mut cmd = Command::new("sleep");
    cmd.arg("300")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .process_group(0);
    netns::enter_on_spawn(&mut cmd, netns_path).unwrap();
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    // Reaped once cleanup kills it, so no zombie is left.
    std::thread::spawn(move || child.wait());
    pid
}

fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while procs::alive(pid, None) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    !procs::alive(pid, None)
}

/// A run (a helper process: this test binary again) makes a segment and a process in it, then
/// is killed; `cleanup` finds it by its marker and removes everything.
#[test]
fn cleanup_removes_what_a_killed_run_left() {
    if !common::require(&[
        common::Need::Root,
        common::Need::Dnsmasq,
        common::Need::Program("/bin/busybox", "busybox-static"),
    ]) {
        return;
    }
    if let Some(state) = std::env::var_os("BOOTRIG_NET_HELPER_STATE") {
        let state = PathBuf::from(state);
        let mut dhcp = DhcpConfig::default_lab();
        dhcp.tftp_root = None;
        let spec = SegmentSpec {
            state_dir: state.clone(),
            run_dir: state.join("run"),
            guests: 1,
            dhcp,
            fault: None,
        };
        std::fs::create_dir_all(&spec.run_dir).unwrap();
        let mut seg = Segment::create(&spec).unwrap();
        let sleep = orphan_sleep(&seg.netns_path());
        seg.register_qemu(sleep).unwrap();
        println!(
            "segment {} {} {}",
            seg.namespace(),
            seg.dnsmasq_pid().unwrap(),
            sleep
        );
        std::mem::forget(seg);
        std::thread::sleep(Duration::from_secs(300));
        return;
    }
    let _turn = CLEANUP.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "cleanup_removes_what_a_killed_run_left",
            "--nocapture",
        ])
        .env("BOOTRIG_NET_HELPER_STATE", &state)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = helper.stdout.take().unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 256];
    let (name, dnsmasq, sleep) = loop {
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "helper ended early: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        if let Some(line) = text
            .lines()
            .find(|l| l.starts_with("segment ") && text.contains(&format!("{l}\n")))
        {
            let f: Vec<&str> = line.split(' ').collect();
            break (
                f[1].to_owned(),
                f[2].parse::<u32>().unwrap(),
                f[3].parse::<u32>().unwrap(),
            );
        }
    };
    helper.kill().unwrap();
    helper.wait().unwrap();
    // The killed run's dnsmasq dies with it (PR_SET_PDEATHSIG); its namespace, taps, marker and
    // the orphaned "QEMU" stay until cleanup.
    assert!(wait_gone(dnsmasq), "dnsmasq outlived its run");
    assert!(procs::alive(sleep, None));
    assert!(ns_exists(&name));
    let marker_path = marker::path_for(&state, &name);
    assert!(marker_path.exists());
    assert_eq!(marker::read(&marker_path).unwrap().qemu_pids, vec![sleep]);

    let started = Instant::now();
    let report = cleanup(&state).unwrap();
    eprintln!("cleanup took {:?}: {report:?}", started.elapsed());
    let removed = report
        .removed
        .iter()
        .find(|r| r.namespace == name)
        .unwrap_or_else(|| panic!("{name} not removed: {report:?}"));
    assert!(removed
        .killed
        .iter()
        .any(|k| k.pid == sleep && k.name == "sleep"));
    assert!(removed.errors.is_empty(), "{:?}", removed.errors);
    assert!(wait_gone(sleep));
    assert!(!ns_exists(&name));
    assert!(!marker_path.exists());
    // A second pass finds nothing of it.
    let again = cleanup(&state).unwrap();
    assert!(again.removed.iter().all(|r| r.namespace != name));
}

/// Found by name alone (no marker): a namespace of a dead pid, with a dnsmasq-like daemon and a
/// process in it; and a forgotten live segment removed with its dnsmasq.
#[test]
fn cleanup_by_name_and_remove_segment_kill_what_runs_inside() {
    if !common::require(&[
        common::Need::Root,
        common::Need::Dnsmasq,
        common::Need::Program("/bin/busybox", "busybox-static"),
    ]) {
        return;
    }
    let _turn = CLEANUP.lock().unwrap_or_else(|e| e.into_inner());
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let name = format!("bootrig-{dead_pid}-99");
    assert!(Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .unwrap()
        .success());
    assert!(Command::new("ip")
        .args(["-n", &name, "tuntap", "add", "dev", "tap0", "mode", "tap"])
        .status()
        .unwrap()
        .success());
    let sleep = orphan_sleep(&netns::path_of(&name));
    let empty_state = tempfile::tempdir().unwrap();
    let report = cleanup(empty_state.path()).unwrap();
    let removed = report
        .removed
        .iter()
        .find(|r| r.namespace == name)
        .unwrap_or_else(|| panic!("{name} not removed: {report:?}"));
    assert_eq!(removed.owner_pid, Some(dead_pid));
    assert!(removed.killed.iter().any(|k| k.pid == sleep));
    assert!(wait_gone(sleep));
    assert!(!ns_exists(&name));

    // A live run's segment is kept by cleanup …
    let lab = lab(None, |_| {});
    let name = lab.seg.namespace().to_owned();
    let report = cleanup(&lab.dir.path().join("state")).unwrap();
    assert!(
        report.kept.iter().any(|k| k.namespace == name),
        "{report:?}"
    );
    assert!(ns_exists(&name));
    // … and a forgotten one (no Drop ran) is removed on demand, dnsmasq and all.
    let dnsmasq = lab.seg.dnsmasq_pid().unwrap();
    let sleep = orphan_sleep(&lab.seg.netns_path());
    let marker_path = marker::path_for(&lab.dir.path().join("state"), &name);
    let Lab { seg, dir } = lab;
    std::mem::forget(seg);
    let m = marker::read(&marker_path).unwrap();
    let removed = remove_segment(&name, Some((&marker_path, &m)));
    let killed: Vec<&str> = removed.killed.iter().map(|k| k.name.as_str()).collect();
    assert!(
        killed.contains(&"dnsmasq") && killed.contains(&"sleep"),
        "{killed:?}"
    );
    assert!(!procs::alive(dnsmasq, None));
    assert!(wait_gone(sleep));
    assert!(!ns_exists(&name));
    assert!(!marker_path.exists());
    drop(dir);
}

/// A real guest: SeaBIOS runs the virtio-net iPXE ROM on the segment's tap, which gets the
/// address reserved for its client-identifier from dnsmasq, fetches the boot script over
/// dnsmasq's TFTP and prints what it was given.
#[test]
fn qemu_guest_on_the_tap_gets_its_reserved_address() {
    if !common::require(&[
        common::Need::Root,
        common::Need::Dnsmasq,
        common::Need::Qemu,
        common::Need::Setup,
        common::Need::NetbootFirmware {
            nic: NicModel::VirtioNetPci,
            uefi: false,
        },
    ]) {
        return;
    }
    let mac = "52:54:00:77:00:0a";
    let client_id = ClientId::ethernet(mac.parse().unwrap());
    let lab = lab(None, |dhcp| {
        dhcp.reservations = vec![Reservation {
            client: ClientMatch::ClientId(client_id.clone()),
            address: RESERVED,
        }];
    });
    std::fs::write(
        lab.dir.path().join("boot/boot.ipxe"),
        "#!ipxe\necho BOOTRIG-NET ip=${net0/ip} next=${next-server} file=${filename}\n",
    )
    .unwrap();
    let run = lab.dir.path();
    let vm = VmSpec {
        machine: MachineType::Q35,
        accel: Accel::Tcg,
        memory_mib: 256,
        firmware: FirmwareImage::Bios {
            sercon_port: Some(firmware::write_sercon_port(run).unwrap()),
        },
        network: Network::Tap(TapNet {
            nic: NicModel::VirtioNetPci,
            rom: NicRom::QemuDefault,
            bootindex: Some(1),
            ifname: lab.seg.taps()[0].clone(),
            mac: Some(mac.into()),
        }),
        serial_socket: run.join("serial.sock"),
        serial_log: run.join("serial.log"),
        qmp_socket: run.join("qmp.sock"),
        start_paused: false,
        direct: None,
        vfio: vec![],
    };
    let mut qemu = common::vm::Vm::start_with(&vm, |cmd| {
        lab.seg
            .enter_on_spawn(cmd)
            .expect("enter the segment's namespace");
    });
    let want = "BOOTRIG-NET ip=10.77.0.50 next=10.77.0.1 file=boot.ipxe";
    qemu.wait_console(Duration::from_secs(180), |console| console.contains(want));
    let took = qemu.started.elapsed();
    qemu.kill();
    let console = qemu.console();
    assert!(console.contains(want), "console:\n{console}");
    eprintln!("iPXE on the tap: reserved address and boot script after {took:?}");
    let leases = lab.seg.leases().unwrap();
    assert_eq!(
        bootrig::net::lease::address_of(&leases, &client_id),
        Some(RESERVED),
        "{leases:?}"
    );
    let log = lab.seg.dhcp_log().unwrap();
    assert!(log.acked_with_tag(RESERVED, "res0"), "{log:#?}");
    assert!(log
        .tftp
        .iter()
        .any(|e| matches!(e, TftpEvent::Sent { file, to, .. } if file.ends_with("boot.ipxe") && to == "10.77.0.50")));
}
