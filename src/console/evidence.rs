//! The evidence a boot's console holds: what the stanza's protocol lines
//! ([`super::protocol`]) said, in order, with the kernel's `/proc/modules` listing and what
//! the kernel logged during failed insmods. Kernel messages may interleave; only protocol lines
//! and the blocks they open count.

use serde::Serialize;

use super::protocol::{GuestLine, InsmodResult, Rdma};
use super::transcript::{lines_of, ConsoleLine};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Insmod {
    pub name: String,
    #[serde(flatten)]
    pub result: InsmodResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DhcpRun {
    pub interface: String,
    pub client: String,
    pub rc: i32,
}

/// One line of `/proc/modules`: `name size refcount deps state address`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcModule {
    pub name: String,
    pub size: u64,
    pub used_by: Vec<String>,
    pub state: String,
}

/// Everything the protocol said, in the order it said it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub begun: bool,
    pub insmods: Vec<Insmod>,
    /// `/proc/modules` as printed (most recently loaded first, as the kernel lists it).
    pub proc_modules: Option<Vec<ProcModule>>,
    /// Interface and its IPv4 address with prefix (None: the stanza found none).
    pub addrs: Vec<(String, Option<String>)>,
    pub done: bool,
    /// DHCP client runs: interface, client, exit status.
    pub dhcp: Vec<DhcpRun>,
    /// Interfaces the stanza waited for and never saw.
    pub missing_interfaces: Vec<String>,
    /// What the kernel logged during each failed insmod (module, lines).
    pub kernel_logs: Vec<(String, Vec<String>)>,
    /// The stanza opened a shell on the console for the harness.
    pub shell: bool,
    /// Protocol lines that did not parse (kept for the report, never ignored silently).
    pub garbled: Vec<String>,
    /// Soft-RoCE: `rdma link add` runs (device, interface, exit status).
    pub rdma_links: Vec<(String, String, i32)>,
    /// RDMA devices the stanza looked for after `rdma link add` and did not find.
    pub rdma_missing: Vec<String>,
    pub rdma_ports: Vec<RdmaPort>,
    pub rdma_tests: Vec<RdmaTest>,
}

/// `BOOTRIG rdma rxe0 port 1 ACTIVE link_layer=Ethernet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RdmaPort {
    pub device: String,
    pub port: u32,
    /// As the kernel names it: `ACTIVE`, `DOWN`, `INIT`…
    pub state: String,
    pub link_layer: String,
}

/// `BOOTRIG rdma rxe0 test verbs ibv_rc_pingpong rc=0 timeout=20`, or `… test verbs skipped
/// no-address`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RdmaTest {
    pub device: String,
    /// `devinfo`, `verbs`, `cm` (as `[expect] rdma` names them).
    pub check: String,
    /// The program, or None when the test was skipped.
    pub tool: Option<String>,
    pub rc: Option<i32>,
    /// The bound it ran under, in seconds.
    pub timeout_secs: Option<u32>,
    /// Why it was skipped.
    pub skipped: Option<String>,
}

impl RdmaTest {
    /// Killed by its bound: GNU timeout exits 124, busybox's leaves the child's SIGTERM (143).
    pub fn timed_out(&self) -> bool {
        matches!(self.rc, Some(124 | 143))
    }
}

/// Reads the protocol out of a console transcript's text (for tests and tools that hold the
/// text, not the lines).
pub fn parse(transcript: &str) -> Evidence {
    read(&lines_of(transcript))
}

/// Reads the protocol out of the console lines.
pub fn read(lines: &[ConsoleLine]) -> Evidence {
    let mut ev = Evidence::default();
    let mut in_modules: Option<Vec<ProcModule>> = None;
    let mut in_kernel_log: Option<(String, Vec<String>)> = None;
    for line in lines {
        let guest = line.guest();
        if let Some((_, logged)) = in_kernel_log.as_mut() {
            if guest == Some(GuestLine::KernelLogEnd) {
                ev.kernel_logs.extend(in_kernel_log.take());
            } else {
                logged.push(line.clean().to_string());
            }
            continue;
        }
        if let Some(mods) = in_modules.as_mut() {
            if guest == Some(GuestLine::ModulesEnd) {
                ev.proc_modules = in_modules.take();
            } else if let Some(m) = parse_proc_module(line.clean()) {
                mods.push(m);
            }
            continue;
        }
        let Some(guest) = guest else {
            continue;
        };
        match guest {
            GuestLine::Begin => ev.begun = true,
            GuestLine::Done => ev.done = true,
            GuestLine::ModulesBegin => in_modules = Some(Vec::new()),
            GuestLine::Insmod { module, result } => ev.insmods.push(Insmod {
                name: module.to_string(),
                result,
            }),
            GuestLine::KernelLogBegin { module } => {
                in_kernel_log = Some((module.to_string(), Vec::new()))
            }
            GuestLine::Dhcp {
                interface,
                client,
                rc,
            } => ev.dhcp.push(DhcpRun {
                interface: interface.to_string(),
                client: client.to_string(),
                rc,
            }),
            GuestLine::InterfaceMissing { interface } => {
                ev.missing_interfaces.push(interface.to_string())
            }
            GuestLine::Shell => ev.shell = true,
            GuestLine::Addr { interface, cidr } => ev
                .addrs
                .push((interface.to_string(), cidr.map(str::to_string))),
            GuestLine::Rdma { device, event } => read_rdma(device, event, &mut ev),
            // Read where they matter: InfiniBand port states by verdict::cause, a shell
            // command's status by the console driver.
            GuestLine::IbPort { .. }
            | GuestLine::Static { .. }
            | GuestLine::ShellRc(_)
            | GuestLine::PoweroffFailed
            | GuestLine::KernelLogEnd
            | GuestLine::ModulesEnd => {}
            GuestLine::Garbled => ev.garbled.push(line.clean().to_string()),
        }
    }
    ev
}

fn read_rdma(device: &str, event: Rdma, ev: &mut Evidence) {
    let device = device.to_string();
    match event {
        Rdma::LinkAdd { netdev, rc } => ev.rdma_links.push((device, netdev.to_string(), rc)),
        Rdma::Missing => ev.rdma_missing.push(device),
        Rdma::Port {
            port,
            state,
            link_layer,
        } => ev.rdma_ports.push(RdmaPort {
            device,
            port,
            state: state.to_string(),
            link_layer: link_layer.to_string(),
        }),
        Rdma::Gid => {}
        Rdma::TestSkipped { check, why } => ev.rdma_tests.push(RdmaTest {
            device,
            check: check.to_string(),
            tool: None,
            rc: None,
            timeout_secs: None,
            skipped: Some(why.to_string()),
        }),
        Rdma::Test {
            check,
            tool,
            rc,
            timeout_secs,
        } => ev.rdma_tests.push(RdmaTest {
            device,
            check: check.to_string(),
            tool: Some(tool.to_string()),
            rc: Some(rc),
            timeout_secs: Some(timeout_secs),
            skipped: None,
        }),
    }
}

fn parse_proc_module(line: &str) -> Option<ProcModule> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 5 {
        return None;
    }
    let size = f[1].parse().ok()?;
    f[2].parse::<i64>().ok()?;
    let used_by = match f[3] {
        "-" => Vec::new(),
        list => list
            .split(',')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    };
    Some(ProcModule {
        name: f[0].to_string(),
        size,
        used_by,
        state: f[4].to_string(),
    })
}

impl Evidence {
    /// Module names in the order the kernel loaded them (oldest first).
    pub fn load_sequence(&self) -> Option<Vec<&str>> {
        self.proc_modules
            .as_ref()
            .map(|m| m.iter().rev().map(|p| p.name.as_str()).collect())
    }

    /// The IPv4 address the stanza saw on `iface`.
    pub fn address(&self, iface: &str) -> Option<&str> {
        self.addrs
            .iter()
            .rev()
            .find(|(i, _)| i == iface)
            .and_then(|(_, a)| a.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRANSCRIPT: &str = "\
[    1.234] Run /init as init process\r
BOOTRIG begin\r
BOOTRIG insmod failover rc=0\r
[    2.0] virtio_net virtio0 eth0: renamed\r
BOOTRIG insmod virtio_net already-loaded\r
BOOTRIG insmod ib_core rc=1\r
insmod: can't insert 'ib_core.ko': unknown symbol in module, or unknown parameter\r
BOOTRIG kernel-log-begin ib_core\r
[    2.1] ib_core: Unknown symbol foo (err -2)\r
BOOTRIG kernel-log-end ib_core\r
BOOTRIG modules-begin\r
ib_core 434176 0 - Live 0xffffffffc0100000\r
net_failover 24576 1 virtio_net, Live 0xffffffffc00f0000\r
failover 16384 1 net_failover, Live 0xffffffffc00e0000\r
BOOTRIG modules-end\r
BOOTRIG dhcp eth0 udhcpc rc=0\r
BOOTRIG addr eth0 10.0.2.15/24\r
BOOTRIG interface ib0 missing\r
BOOTRIG addr ib0 none\r
BOOTRIG done\r
";

    #[test]
    fn reads_every_part_of_the_protocol() {
        let ev = parse(TRANSCRIPT);
        assert!(ev.begun && ev.done);
        assert_eq!(ev.insmods.len(), 3);
        assert_eq!(ev.insmods[1].result, InsmodResult::AlreadyLoaded);
        assert_eq!(ev.insmods[2].result, InsmodResult::Ran { rc: 1 });
        assert_eq!(
            ev.load_sequence().unwrap(),
            ["failover", "net_failover", "ib_core"]
        );
        assert_eq!(ev.proc_modules.as_ref().unwrap()[1].used_by, ["virtio_net"]);
        assert_eq!(ev.address("eth0"), Some("10.0.2.15/24"));
        assert_eq!(ev.address("ib0"), None);
        assert!(ev.garbled.is_empty(), "{:?}", ev.garbled);
        assert_eq!(
            ev.kernel_logs,
            [(
                "ib_core".to_string(),
                vec!["[    2.1] ib_core: Unknown symbol foo (err -2)".to_string()]
            )]
        );
        assert_eq!(ev.dhcp[0].rc, 0);
        assert_eq!(ev.missing_interfaces, ["ib0"]);
    }

    #[test]
    fn missing_end_markers_leave_evidence_absent() {
        let cut = &TRANSCRIPT[..TRANSCRIPT.find("BOOTRIG modules-end").unwrap()];
        let ev = parse(cut);
        assert!(ev.proc_modules.is_none());
        assert!(!ev.done);
        assert!(parse("BOOTRIG insmod x rc=abc\n").garbled.len() == 1);
    }
}
