//! The host side of a `backend = "dnsmasq"` network: per run, an isolated network namespace
//! with a bridge, one tap per guest and a dnsmasq DHCP/TFTP server configured as a lab's
//! (reservations by client-identifier, as labs reserve IPoIB addresses), faults on demand,
//! readers for its lease file and log, teardown on drop and cleanup after a killed run.
//!
//! QEMU's user-mode DHCP answers anyone and ignores the client-identifier; this one does not.

pub mod addr;
pub mod bridge;
pub mod cleanup;
pub mod config;
pub mod dnsmasq;
pub mod fault;
pub mod ip;
pub mod lease;
pub mod log;
pub mod marker;
pub mod netns;
pub mod segment;

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

pub use addr::{ClientId, Ipv4Subnet, MacAddr};
pub use config::{ClientMatch, DhcpConfig, Reservation};
pub use fault::DhcpFault;
pub use lease::Lease;
pub use log::{DhcpEvent, DhcpLog, DhcpMessage};
pub use marker::DEFAULT_STATE_DIR;
pub use segment::{Segment, SegmentSpec};

#[derive(Debug, Error)]
pub enum NetError {
    #[error("host bridge {bridge:?} does not exist or is not a bridge (ip -d link show {bridge}); give the lab bridge's name, or use backend = \"dnsmasq\"")]
    NoBridge { bridge: String },
    #[error(transparent)]
    Caps(#[from] crate::host::caps::CapError),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("starting {program} ({hint})")]
    Spawn {
        program: String,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("dnsmasq exited during start-up ({status}) with config {}: {output}", config.display())]
    DnsmasqStart {
        status: String,
        output: String,
        config: PathBuf,
    },
    #[error("dnsmasq did not write its pid file {} within {timeout:?}", pid_file.display())]
    DnsmasqTimeout {
        pid_file: PathBuf,
        timeout: Duration,
    },
    #[error("{}", path.display())]
    Leases {
        path: PathBuf,
        source: lease::LeaseError,
    },
    #[error("marker {}: cannot parse it", path.display())]
    Marker {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}
