//! The faults a test segment can put in the lab's way, each a knob on the DHCP/TFTP server.

use std::net::Ipv4Addr;
use std::path::Path;

use serde::Deserialize;

use super::addr::{ClientId, MacAddr};
use super::config::{ClientMatch, DhcpConfig, Reservation};
use super::lease::{format_lease, Lease};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DhcpFault {
    /// No DHCP server on the segment at all.
    NoServer,
    /// Every DHCPOFFER leaves only after this many seconds (`dhcp-reply-delay`).
    ReplyDelay { seconds: u32 },
    /// The DHCP reply names the boot file, but the TFTP root does not hold it.
    NoBootFile,
    /// The DHCP reply names a next-server where nothing listens (default: the subnet's last
    /// host).
    WrongNextServer { address: Option<Ipv4Addr> },
    /// Every address a guest could get is taken: the pool is one address reserved for another
    /// client, and each reserved address is already leased to that other client.
    ExhaustedRange,
    /// The server is killed and started again (same lease file) after its first DHCPACK.
    RestartMidBoot,
}

/// The client that holds every address in [`DhcpFault::ExhaustedRange`].
pub fn squatter_mac() -> MacAddr {
    MacAddr([0x02, 0x62, 0x6f, 0x6f, 0x74, 0x01])
}

pub fn squatter_client_id() -> ClientId {
    ClientId::ethernet(squatter_mac())
}

/// What a fault changes before dnsmasq starts: the config, and the lease file's first lines.
pub struct Applied {
    pub config: DhcpConfig,
    pub preload_leases: String,
    pub start_server: bool,
}

/// Applies `fault` to `config`; `empty_tftp_root` is a directory that holds nothing.
pub fn apply(
    fault: Option<&DhcpFault>,
    config: &DhcpConfig,
    empty_tftp_root: &Path,
    now_unix: u64,
) -> Applied {
    let mut config = config.clone();
    let mut preload = String::new();
    let mut start_server = true;
    match fault {
        None | Some(DhcpFault::RestartMidBoot) => {}
        Some(DhcpFault::NoServer) => start_server = false,
        Some(DhcpFault::ReplyDelay { seconds }) => config.reply_delay_secs = Some(*seconds),
        Some(DhcpFault::NoBootFile) => {
            if config.tftp_root.is_some() {
                config.tftp_root = Some(empty_tftp_root.to_owned());
            }
        }
        Some(DhcpFault::WrongNextServer { address }) => {
            config.next_server = Some(address.unwrap_or(config.subnet.last_host()));
        }
        Some(DhcpFault::ExhaustedRange) => {
            let held: Vec<Ipv4Addr> = config.reservations.iter().map(|r| r.address).collect();
            if let Some((start, _)) = config.range {
                // One address, reserved for the squatter: nothing left to hand out.
                config.range = Some((start, start));
                if !held.contains(&start) {
                    config.reservations.push(Reservation {
                        client: ClientMatch::ClientId(squatter_client_id()),
                        address: start,
                    });
                }
            }
            for address in held {
                preload.push_str(&format_lease(&Lease {
                    expiry: now_unix + 86_400,
                    mac: squatter_mac().to_string(),
                    ip: address,
                    hostname: None,
                    client_id: Some(squatter_client_id()),
                }));
            }
        }
    }
    Applied {
        config,
        preload_leases: preload,
        start_server,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fault_changes_what_it_says() {
        let mut base = DhcpConfig::default_lab();
        base.tftp_root = Some("/r/boot".into());
        base.boot_file = Some("boot.ipxe".into());
        base.reservations.push(Reservation {
            client: ClientMatch::ClientId(ClientId::ipoib([1; 8])),
            address: Ipv4Addr::new(10, 77, 0, 50),
        });
        let empty = Path::new("/r/empty");
        let a = apply(None, &base, empty, 0);
        assert!(a.start_server && a.config == base && a.preload_leases.is_empty());
        assert!(!apply(Some(&DhcpFault::NoServer), &base, empty, 0).start_server);
        let a = apply(Some(&DhcpFault::ReplyDelay { seconds: 4 }), &base, empty, 0);
        assert_eq!(a.config.reply_delay_secs, Some(4));
        let a = apply(Some(&DhcpFault::NoBootFile), &base, empty, 0);
        assert_eq!(a.config.tftp_root.as_deref(), Some(empty));
        assert_eq!(a.config.boot_file, base.boot_file);
        let a = apply(
            Some(&DhcpFault::WrongNextServer { address: None }),
            &base,
            empty,
            0,
        );
        assert_eq!(a.config.next_server, Some(Ipv4Addr::new(10, 77, 0, 254)));
        let a = apply(Some(&DhcpFault::ExhaustedRange), &base, empty, 100);
        let start = Ipv4Addr::new(10, 77, 0, 10);
        assert_eq!(a.config.range, Some((start, start)));
        assert_eq!(a.config.reservations.len(), 2);
        assert_eq!(
            a.preload_leases,
            "86500 02:62:6f:6f:74:01 10.77.0.50 * 01:02:62:6f:6f:74:01\n"
        );
    }

    #[test]
    fn faults_read_from_toml() {
        let f: DhcpFault = toml::from_str("kind = \"reply-delay\"\nseconds = 5").unwrap();
        assert_eq!(f, DhcpFault::ReplyDelay { seconds: 5 });
        let f: DhcpFault = toml::from_str("kind = \"exhausted-range\"").unwrap();
        assert_eq!(f, DhcpFault::ExhaustedRange);
        assert!(toml::from_str::<DhcpFault>("kind = \"flood\"").is_err());
    }
}
