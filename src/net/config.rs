//! The DHCP/TFTP server of a test segment as a typed value, rendered to a dnsmasq config file
//! (kept in the run directory as evidence). Only what a lab's server does for diskless boot:
//! a range, reservations by MAC or client-identifier, TFTP, the boot file and next-server.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::addr::{ClientId, Ipv4Subnet, MacAddr};

/// dnsmasq refuses shorter leases (its minimum is two minutes).
pub const MIN_LEASE_SECS: u32 = 120;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMatch {
    Mac(MacAddr),
    ClientId(ClientId),
}

/// A fixed address for one client, as a lab reserves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub client: ClientMatch,
    pub address: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpConfig {
    pub subnet: Ipv4Subnet,
    /// The dynamic pool; `None` serves reserved clients only (dnsmasq's `static` mode).
    pub range: Option<(Ipv4Addr, Ipv4Addr)>,
    pub lease_secs: u32,
    pub reservations: Vec<Reservation>,
    /// TFTP server root; `None` runs no TFTP server.
    pub tftp_root: Option<PathBuf>,
    /// The DHCP boot file name (`file` field): a name under the TFTP root or a URL.
    pub boot_file: Option<String>,
    /// The `siaddr` offered; `None` is the server itself.
    pub next_server: Option<Ipv4Addr>,
    /// Seconds dnsmasq waits before each DHCPOFFER (`dhcp-reply-delay`).
    pub reply_delay_secs: Option<u32>,
    /// dnsmasq pings an address before offering it (up to 3 s); off by default, since the
    /// namespace holds only bootrig's own guests.
    pub ping_check: bool,
}

impl DhcpConfig {
    /// 10.77.0.0/24: server .1, pool .10-.99, one-hour leases, nothing reserved.
    pub fn default_lab() -> Self {
        // Invariant: a literal valid subnet.
        let subnet = Ipv4Subnet::new(Ipv4Addr::new(10, 77, 0, 0), 24)
            .unwrap_or_else(|_| unreachable!("10.77.0.0/24 is a valid subnet"));
        Self {
            subnet,
            range: Some((Ipv4Addr::new(10, 77, 0, 10), Ipv4Addr::new(10, 77, 0, 99))),
            lease_secs: 3600,
            reservations: Vec::new(),
            tftp_root: None,
            boot_file: None,
            next_server: None,
            reply_delay_secs: None,
            ping_check: false,
        }
    }
}

/// The files one dnsmasq instance reads and writes, all in the run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsmasqFiles {
    pub config: PathBuf,
    pub leases: PathBuf,
    pub log: PathBuf,
    pub pid: PathBuf,
    pub stderr: PathBuf,
}

impl DnsmasqFiles {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            config: dir.join("dnsmasq.conf"),
            leases: dir.join("dnsmasq.leases"),
            log: dir.join("dnsmasq.log"),
            pid: dir.join("dnsmasq.pid"),
            stderr: dir.join("dnsmasq.stderr"),
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{what} {address} is not a host address of {subnet}")]
    OutsideSubnet {
        what: &'static str,
        address: Ipv4Addr,
        subnet: Ipv4Subnet,
    },
    #[error("DHCP range {start} - {end}: the start is past the end")]
    RangeReversed { start: Ipv4Addr, end: Ipv4Addr },
    #[error("DHCP range {start} - {end} holds the server's own address {server}")]
    RangeHoldsServer {
        start: Ipv4Addr,
        end: Ipv4Addr,
        server: Ipv4Addr,
    },
    #[error("lease time {0} s: dnsmasq's minimum is {MIN_LEASE_SECS} s")]
    LeaseTooShort(u32),
    #[error("boot file {0:?}: expected 1-127 printable ASCII characters without ','")]
    BadBootFile(String),
    #[error(
        "{what} path {path:?}: expected UTF-8 without ',' or a line break (dnsmasq config syntax)"
    )]
    BadPath { what: &'static str, path: PathBuf },
    #[error("{what} path {path:?} is relative: dnsmasq changes its working directory, give an absolute path")]
    RelativePath { what: &'static str, path: PathBuf },
    #[error("a next-server needs a boot file (dnsmasq sets it with dhcp-boot=FILE,,ADDRESS)")]
    NextServerWithoutBootFile,
    #[error("interface name {0:?}: expected 1-15 characters of [A-Za-z0-9_.-]")]
    BadInterface(String),
    #[error("reservation {index}: address {address} is also reserved by reservation {other}")]
    DuplicateAddress {
        index: usize,
        other: usize,
        address: Ipv4Addr,
    },
}

/// A Linux interface name (IFNAMSIZ is 16 with the NUL).
pub fn valid_ifname(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn config_path<'a>(what: &'static str, path: &'a Path) -> Result<&'a str, ConfigError> {
    // dnsmasq changes its working directory at start-up: a relative path would name another file.
    if !path.is_absolute() {
        return Err(ConfigError::RelativePath {
            what,
            path: path.to_owned(),
        });
    }
    path.to_str()
        .filter(|s| !s.contains([',', '\n', '\r']))
        .ok_or_else(|| ConfigError::BadPath {
            what,
            path: path.to_owned(),
        })
}

/// The tag each reservation sets: the log's `tags:` line then shows which reservation matched.
pub fn reservation_tag(index: usize) -> String {
    format!("res{index}")
}

/// Checks the config against its subnet and renders it for the bridge `interface`.
pub fn render(
    cfg: &DhcpConfig,
    interface: &str,
    files: &DnsmasqFiles,
) -> Result<String, ConfigError> {
    let subnet = cfg.subnet;
    let in_subnet = |what, address: Ipv4Addr| {
        if subnet.contains_host(address) {
            Ok(())
        } else {
            Err(ConfigError::OutsideSubnet {
                what,
                address,
                subnet,
            })
        }
    };
    if !valid_ifname(interface) {
        return Err(ConfigError::BadInterface(interface.to_owned()));
    }
    if cfg.lease_secs < MIN_LEASE_SECS {
        return Err(ConfigError::LeaseTooShort(cfg.lease_secs));
    }
    let server = subnet.server();
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line("# Generated by bootrig for one run; kept as evidence.".into());
    // No DNS, no /etc/resolv.conf, no /etc/hosts: a DHCP/TFTP server only.
    line("port=0".into());
    line("no-resolv".into());
    line("no-hosts".into());
    // Only the segment's bridge, bound exclusively: nothing listens on any other interface.
    line(format!("interface={interface}"));
    line("bind-interfaces".into());
    line("except-interface=lo".into());
    // Stay root: the run directory (leases, log, TFTP root) may be private to root.
    line("user=root".into());
    line("group=root".into());
    // The only server on the segment: NAK foreign leases at once instead of staying silent.
    line("dhcp-authoritative".into());
    // PXE clients (the iPXE ROM sends vendor class PXEClient) are told to skip boot-server
    // discovery and take the boot file as given; otherwise iPXE waits some 15 s for a
    // ProxyDHCP answer nobody sends.
    line("dhcp-option=vendor:PXEClient,6,2b".into());
    // Router advertisements on the bridge's IPv6 prefix: the iPXE ROM configures IPv6 too and
    // otherwise waits some 15 s for a router before it goes on.
    line("enable-ra".into());
    line("dhcp-range=::,constructor:br0,ra-only".into());
    let netmask = subnet.netmask();
    match cfg.range {
        Some((start, end)) => {
            in_subnet("DHCP range start", start)?;
            in_subnet("DHCP range end", end)?;
            if start > end {
                return Err(ConfigError::RangeReversed { start, end });
            }
            if (start..=end).contains(&server) {
                return Err(ConfigError::RangeHoldsServer { start, end, server });
            }
            line(format!(
                "dhcp-range={start},{end},{netmask},{}",
                cfg.lease_secs
            ));
        }
        None => line(format!(
            "dhcp-range={},static,{netmask},{}",
            subnet.network(),
            cfg.lease_secs
        )),
    }
    for (index, r) in cfg.reservations.iter().enumerate() {
        in_subnet("reserved address", r.address)?;
        if let Some(other) = cfg.reservations[..index]
            .iter()
            .position(|o| o.address == r.address)
        {
            return Err(ConfigError::DuplicateAddress {
                index,
                other,
                address: r.address,
            });
        }
        let who = match &r.client {
            ClientMatch::Mac(mac) => mac.to_string(),
            ClientMatch::ClientId(id) => format!("id:{id}"),
        };
        line(format!(
            "dhcp-host={who},set:{},{}",
            reservation_tag(index),
            r.address
        ));
    }
    line(format!(
        "dhcp-leasefile={}",
        config_path("lease file", &files.leases)?
    ));
    if let Some(secs) = cfg.reply_delay_secs {
        line(format!("dhcp-reply-delay={secs}"));
    }
    if !cfg.ping_check {
        line("no-ping".into());
    }
    if let Some(root) = &cfg.tftp_root {
        line("enable-tftp".into());
        line(format!("tftp-root={}", config_path("TFTP root", root)?));
    }
    if let Some(next) = cfg.next_server {
        in_subnet("next-server", next)?;
    }
    match (&cfg.boot_file, cfg.next_server) {
        (Some(file), next) => {
            let valid = !file.is_empty()
                && file.len() < 128
                && file.bytes().all(|b| b.is_ascii_graphic() && b != b',');
            if !valid {
                return Err(ConfigError::BadBootFile(file.clone()));
            }
            // dhcp-boot=FILE,SERVERNAME,SERVERADDRESS: no server name.
            match next {
                Some(next) => line(format!("dhcp-boot={file},,{next}")),
                None => line(format!("dhcp-boot={file}")),
            }
        }
        // dnsmasq sets siaddr only through dhcp-boot.
        (None, Some(_)) => return Err(ConfigError::NextServerWithoutBootFile),
        (None, None) => {}
    }
    line(format!("log-facility={}", config_path("log", &files.log)?));
    // Every option sent and the tags matched, per transaction.
    line("log-dhcp".into());
    line(format!("pid-file={}", config_path("pid file", &files.pid)?));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> DnsmasqFiles {
        DnsmasqFiles::in_dir(Path::new("/run/r1"))
    }

    #[test]
    fn golden_lab_config() {
        let mut cfg = DhcpConfig::default_lab();
        cfg.reservations = vec![
            Reservation {
                client: ClientMatch::ClientId(ClientId::ipoib([
                    0, 2, 0xc9, 3, 0, 0x12, 0x34, 0x56,
                ])),
                address: Ipv4Addr::new(10, 77, 0, 50),
            },
            Reservation {
                client: ClientMatch::Mac("52:54:00:12:34:56".parse().unwrap()),
                address: Ipv4Addr::new(10, 77, 0, 51),
            },
        ];
        cfg.tftp_root = Some("/run/r1/boot".into());
        cfg.boot_file = Some("boot.ipxe".into());
        cfg.reply_delay_secs = Some(5);
        assert_eq!(
            render(&cfg, "br0", &files()).unwrap(),
            "# Generated by bootrig for one run; kept as evidence.
port=0
no-resolv
no-hosts
interface=br0
bind-interfaces
except-interface=lo
user=root
group=root
dhcp-authoritative
dhcp-option=vendor:PXEClient,6,2b
enable-ra
dhcp-range=::,constructor:br0,ra-only
dhcp-range=10.77.0.10,10.77.0.99,255.255.255.0,3600
dhcp-host=id:ff:00:00:00:00:00:02:00:00:02:c9:00:00:02:c9:03:00:12:34:56,set:res0,10.77.0.50
dhcp-host=52:54:00:12:34:56,set:res1,10.77.0.51
dhcp-leasefile=/run/r1/dnsmasq.leases
dhcp-reply-delay=5
no-ping
enable-tftp
tftp-root=/run/r1/boot
dhcp-boot=boot.ipxe
log-facility=/run/r1/dnsmasq.log
log-dhcp
pid-file=/run/r1/dnsmasq.pid
"
        );
    }

    #[test]
    fn static_pool_and_next_server() {
        let mut cfg = DhcpConfig::default_lab();
        cfg.range = None;
        cfg.boot_file = Some("boot.ipxe".into());
        cfg.next_server = Some(Ipv4Addr::new(10, 77, 0, 254));
        cfg.ping_check = true;
        let text = render(&cfg, "br0", &files()).unwrap();
        assert!(text.contains("\ndhcp-range=10.77.0.0,static,255.255.255.0,3600\n"));
        assert!(text.contains("\ndhcp-boot=boot.ipxe,,10.77.0.254\n"));
        assert!(!text.contains("no-ping"));
        assert!(!text.contains("tftp"));
    }

    #[test]
    fn inconsistent_configs_are_typed_errors() {
        let base = DhcpConfig::default_lab();
        let mut c = base.clone();
        c.range = Some((Ipv4Addr::new(10, 77, 0, 20), Ipv4Addr::new(10, 77, 0, 10)));
        assert!(matches!(
            render(&c, "br0", &files()),
            Err(ConfigError::RangeReversed { .. })
        ));
        c.range = Some((Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 10)));
        assert!(matches!(
            render(&c, "br0", &files()),
            Err(ConfigError::RangeHoldsServer { .. })
        ));
        let mut c = base.clone();
        c.reservations.push(Reservation {
            client: ClientMatch::Mac(MacAddr([2, 0, 0, 0, 0, 1])),
            address: Ipv4Addr::new(10, 78, 0, 5),
        });
        let e = render(&c, "br0", &files()).unwrap_err();
        assert!(e.to_string().contains("10.78.0.5"), "{e}");
        let mut c = base.clone();
        c.lease_secs = 60;
        assert_eq!(
            render(&c, "br0", &files()),
            Err(ConfigError::LeaseTooShort(60))
        );
        let mut c = base.clone();
        c.boot_file = Some("a,b".into());
        assert!(matches!(
            render(&c, "br0", &files()),
            Err(ConfigError::BadBootFile(_))
        ));
        let mut c = base.clone();
        c.tftp_root = Some("/tmp/a\nport=53".into());
        assert!(matches!(
            render(&c, "br0", &files()),
            Err(ConfigError::BadPath { .. })
        ));
        let mut c = base.clone();
        c.tftp_root = Some("runs/x/boot".into());
        assert!(matches!(
            render(&c, "br0", &files()),
            Err(ConfigError::RelativePath { .. })
        ));
        assert!(matches!(
            render(
                &base,
                "br0",
                &DnsmasqFiles::in_dir(Path::new("runs/x/dhcp"))
            ),
            Err(ConfigError::RelativePath { .. })
        ));
        assert!(matches!(
            render(&base, "a-very-long-interface", &files()),
            Err(ConfigError::BadInterface(_))
        ));
        let mut c = base;
        let r = Reservation {
            client: ClientMatch::Mac(MacAddr([2, 0, 0, 0, 0, 1])),
            address: Ipv4Addr::new(10, 77, 0, 5),
        };
        c.reservations = vec![r.clone(), r];
        assert!(matches!(
            render(&c, "br0", &files()),
            Err(ConfigError::DuplicateAddress {
                index: 1,
                other: 0,
                ..
            })
        ));
    }
}
