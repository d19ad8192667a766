//! A run's test network: its own namespace holding a bridge with the server address, one tap
//! per guest, and dnsmasq bound to the bridge. Nothing routes out of the namespace and nothing
//! in it listens outside. Dropping the [`Segment`] tears all of it down (also while unwinding,
//! and after Ctrl-C once the runner returns); `bootrig cleanup` removes what a killed run left.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use super::config::{self, DhcpConfig, DnsmasqFiles};
use super::dnsmasq::Dnsmasq;
use super::fault::{self, DhcpFault};
use super::ip::ip_in;
use super::lease::{parse_leases, Lease};
use super::log::{parse_log, DhcpLog, DhcpMessage};
use super::marker::{self, Marker};
use super::netns;
use super::NetError;
use crate::host::procs::{self, NsId};

/// The bridge inside every segment's namespace (names are per namespace, so fixed ones do).
pub const BRIDGE: &str = "br0";
/// The bridge's IPv6 address in a unique-local prefix, for router advertisements only.
pub const RA_PREFIX_ADDR: &str = "fd77::1/64";

#[derive(Debug, Clone)]
pub struct SegmentSpec {
    /// Where the marker goes ([`marker::DEFAULT_STATE_DIR`] in production).
    pub state_dir: PathBuf,
    /// The run's evidence directory: dnsmasq's config, leases, log, pid and stderr.
    pub run_dir: PathBuf,
    /// One tap per guest: `tap0`, `tap1`, …
    pub guests: usize,
    pub dhcp: DhcpConfig,
    pub fault: Option<DhcpFault>,
}

pub struct Segment {
    namespace: String,
    netns: Option<NsId>,
    taps: Vec<String>,
    probes: Vec<String>,
    dnsmasq: Option<Dnsmasq>,
    files: DnsmasqFiles,
    server: Ipv4Addr,
    state_dir: PathBuf,
    marker: Marker,
    marker_path: Option<PathBuf>,
    fault: Option<DhcpFault>,
    restarted: bool,
    closed: bool,
}

/// What teardown removed, and what went wrong on the way (teardown goes on regardless).
#[derive(Debug, Default)]
pub struct Teardown {
    pub killed: Vec<u32>,
    pub errors: Vec<String>,
}

impl Segment {
    /// Builds the segment and starts its server. Any failure part-way removes what was made.
    pub fn create(spec: &SegmentSpec) -> Result<Self, NetError> {
        crate::host::caps::require_segment_caps()?;
        let namespace = netns::fresh_name();
        let files = DnsmasqFiles::in_dir(&spec.run_dir);
        let owner_pid = std::process::id();
        let mut segment = Segment {
            namespace: namespace.clone(),
            netns: None,
            taps: Vec::new(),
            probes: Vec::new(),
            dnsmasq: None,
            files,
            server: spec.dhcp.subnet.server(),
            state_dir: spec.state_dir.clone(),
            marker: Marker {
                namespace: namespace.clone(),
                netns: None,
                owner_pid,
                owner_start: procs::start_ticks(owner_pid),
                bridge: BRIDGE.into(),
                taps: Vec::new(),
                dnsmasq_pid: None,
                qemu_pids: Vec::new(),
                run_dir: spec.run_dir.clone(),
            },
            marker_path: None,
            fault: spec.fault.clone(),
            restarted: false,
            closed: false,
        };
        // The marker first: a run killed during set-up still leaves a trace for cleanup.
        segment.marker_path = Some(marker::write(&spec.state_dir, &segment.marker)?);
        segment.netns = Some(netns::create(&namespace)?);
        segment.marker.netns = segment.netns;
        segment.save_marker()?;
        segment.build_links(spec)?;
        segment.start_server(spec)?;
        Ok(segment)
    }

    fn build_links(&mut self, spec: &SegmentSpec) -> Result<(), NetError> {
        let ns = self.namespace.clone();
        let subnet = spec.dhcp.subnet;
        let cidr = format!("{}/{}", subnet.server(), subnet.prefix());
        // No forwarding delay: a new port (QEMU's tap) would otherwise drop the firmware's first
        // DHCP packets for 15 s (the bridge's default listening and learning time).
        ip_in(
            &ns,
            &[
                "link",
                "add",
                BRIDGE,
                "type",
                "bridge",
                "forward_delay",
                "0",
            ],
        )?;
        ip_in(&ns, &["addr", "add", &cidr, "dev", BRIDGE])?;
        // An IPv6 prefix for router advertisements (see config::render): iPXE configures IPv6
        // alongside DHCP and waits for a router as long as none answers.
        ip_in(
            &ns,
            &["addr", "add", RA_PREFIX_ADDR, "dev", BRIDGE, "nodad"],
        )?;
        ip_in(&ns, &["link", "set", BRIDGE, "up"])?;
        for index in 0..spec.guests {
            let tap = format!("tap{index}");
            ip_in(&ns, &["tuntap", "add", "dev", &tap, "mode", "tap"])?;
            self.taps.push(tap.clone());
            ip_in(&ns, &["link", "set", &tap, "master", BRIDGE])?;
            ip_in(&ns, &["link", "set", &tap, "up"])?;
        }
        self.marker.taps = self.taps.clone();
        self.save_marker()
    }

    fn start_server(&mut self, spec: &SegmentSpec) -> Result<(), NetError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| NetError::Io { path, source }
        };
        let empty_root = spec.run_dir.join("tftp-empty");
        std::fs::create_dir_all(&empty_root).map_err(io(&empty_root))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let applied = fault::apply(spec.fault.as_ref(), &spec.dhcp, &empty_root, now);
        let text = config::render(&applied.config, BRIDGE, &self.files)?;
        std::fs::write(&self.files.config, text).map_err(io(&self.files.config))?;
        std::fs::write(&self.files.leases, &applied.preload_leases)
            .map_err(io(&self.files.leases))?;
        if applied.start_server {
            self.start_dnsmasq()?;
        }
        Ok(())
    }

    fn start_dnsmasq(&mut self) -> Result<(), NetError> {
        let server = Dnsmasq::start(&self.netns_path(), &self.files)?;
        self.marker.dnsmasq_pid = Some(server.pid());
        self.dnsmasq = Some(server);
        self.save_marker()
    }

    fn save_marker(&mut self) -> Result<(), NetError> {
        self.marker_path = Some(marker::write(&self.state_dir, &self.marker)?);
        Ok(())
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// /run/netns/NAME: what [`Segment::enter_on_spawn`] joins.
    pub fn netns_path(&self) -> PathBuf {
        netns::path_of(&self.namespace)
    }

    /// The taps, one per guest, in order: give guest N `Network::Tap` with `taps()[N]`.
    pub fn taps(&self) -> &[String] {
        &self.taps
    }

    pub fn server_address(&self) -> Ipv4Addr {
        self.server
    }

    pub fn files(&self) -> &DnsmasqFiles {
        &self.files
    }

    pub fn dnsmasq_pid(&self) -> Option<u32> {
        self.dnsmasq.as_ref().map(Dnsmasq::pid)
    }

    /// Makes `command`'s child (QEMU) start inside this segment's namespace, where its taps are.
    pub fn enter_on_spawn(&self, command: &mut Command) -> Result<(), NetError> {
        netns::enter_on_spawn(command, &self.netns_path())
    }

    /// Records a QEMU started in the segment, so cleanup after a crash knows it.
    pub fn register_qemu(&mut self, pid: u32) -> Result<(), NetError> {
        self.marker.qemu_pids.push(pid);
        self.save_marker()
    }

    /// A veth pair with one end on the bridge: the other end (returned, `probeN`) lets a DHCP
    /// client run in the namespace, e.g. to check the server before a boot, or in tests.
    pub fn add_probe_port(&mut self) -> Result<String, NetError> {
        let index = self.probes.len();
        let (probe, peer) = (format!("probe{index}"), format!("probe{index}br"));
        let ns = self.namespace.clone();
        ip_in(
            &ns,
            &["link", "add", &probe, "type", "veth", "peer", "name", &peer],
        )?;
        self.probes.push(probe.clone());
        ip_in(&ns, &["link", "set", &peer, "master", BRIDGE])?;
        ip_in(&ns, &["link", "set", &peer, "up"])?;
        ip_in(&ns, &["link", "set", &probe, "up"])?;
        Ok(probe)
    }

    /// Kills dnsmasq and starts it again with the same config and lease file.
    pub fn restart_dhcp(&mut self) -> Result<(), NetError> {
        if let Some(old) = self.dnsmasq.take() {
            old.stop();
        }
        self.start_dnsmasq()
    }

    /// Lets a timed fault act; the runner calls this while it waits on the console. Returns
    /// true when it acted ([`DhcpFault::RestartMidBoot`]: after the first DHCPACK).
    pub fn poll_fault(&mut self) -> Result<bool, NetError> {
        if self.fault != Some(DhcpFault::RestartMidBoot) || self.restarted {
            return Ok(false);
        }
        if self.dhcp_log()?.of(DhcpMessage::Ack).next().is_none() {
            return Ok(false);
        }
        self.restarted = true;
        self.restart_dhcp()?;
        Ok(true)
    }

    pub fn leases(&self) -> Result<Vec<Lease>, NetError> {
        let text = read_optional(&self.files.leases)?;
        parse_leases(&text).map_err(|e| NetError::Leases {
            path: self.files.leases.clone(),
            source: e,
        })
    }

    pub fn dhcp_log(&self) -> Result<DhcpLog, NetError> {
        Ok(parse_log(&read_optional(&self.files.log)?))
    }

    /// Tears down now, reporting what failed (dropping does the same, silently).
    pub fn close(mut self) -> Teardown {
        self.teardown()
    }

    fn teardown(&mut self) -> Teardown {
        let mut report = Teardown::default();
        if self.closed {
            return report;
        }
        self.closed = true;
        if let Some(server) = self.dnsmasq.take() {
            server.stop();
        }
        // Whatever else runs in the namespace (a QEMU the runner did not stop) goes too.
        if let Some(ns) = self.netns {
            report.killed = kill_all_in(ns);
        }
        for link in self
            .taps
            .iter()
            .chain(&self.probes)
            .map(String::as_str)
            .chain([BRIDGE])
        {
            if self.netns.is_some() {
                if let Err(e) = ip_in(&self.namespace, &["link", "del", link]) {
                    report.errors.push(crate::error_chain(&e));
                }
            }
        }
        if self.netns.is_some() {
            if let Err(e) = netns::delete(&self.namespace) {
                report.errors.push(crate::error_chain(&e));
            }
        }
        if let Some(path) = &self.marker_path {
            if let Err(e) = std::fs::remove_file(path) {
                report.errors.push(format!("{}: {e}", path.display()));
            }
        }
        report
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

fn read_optional(path: &Path) -> Result<String, NetError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(NetError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// SIGKILLs every process in namespace `ns` and waits (bounded) until none is left.
pub fn kill_all_in(ns: NsId) -> Vec<u32> {
    let mut killed = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let pids = procs::in_namespace(ns);
        if pids.is_empty() || std::time::Instant::now() >= deadline {
            return killed;
        }
        for pid in pids {
            // The pid was just seen in the namespace; ESRCH means it already went.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            if !killed.contains(&pid) {
                killed.push(pid);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
