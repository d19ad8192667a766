//! The host side of the guest's network beyond QEMU's user mode: a dnsmasq segment in its own
//! namespace, or a tap on a lab bridge; and what the segment's leases say afterwards.

use std::fs;
use std::path::{Path, PathBuf};

use crate::net::bridge::HostTap;
use crate::net::Segment;
use crate::netboot::stage;
use crate::report::model::Finding;
use crate::run::judge::Findings;
use crate::run::target::Target;
use crate::scenario::{Backend, DhcpServer, LeaseExpect, Method};

use super::media::Media;
use super::{io_error, SetupError};

/// A dnsmasq segment for a `dnsmasq` backend (it serves DHCP and TFTP itself, in its own
/// namespace); torn down when dropped.
pub(super) fn segment(
    target: &Target,
    media: &Media,
    dir: &Path,
) -> Result<Option<Segment>, SetupError> {
    match &target.backend {
        Backend::Dnsmasq(server) => Ok(Some(dnsmasq_segment(server, target, media, dir)?)),
        Backend::User | Backend::Bridge(_) => Ok(None),
    }
}

/// A tap on the lab bridge for a `bridge` backend; removed when dropped.
pub(super) fn host_tap(target: &Target) -> Result<Option<HostTap>, SetupError> {
    match &target.backend {
        Backend::Bridge(bridge) => Ok(Some(HostTap::attach(bridge)?)),
        _ => Ok(None),
    }
}

/// The tap QEMU's NIC uses: the segment's, or the bridge's; None for user-mode networking.
pub(super) fn tap_name(segment: Option<&Segment>, host_tap: Option<&HostTap>) -> Option<String> {
    segment
        .and_then(|seg| seg.taps().first().cloned())
        .or_else(|| host_tap.map(|t| t.name().to_string()))
}

/// The run's dnsmasq segment: its TFTP root is the boot directory, its boot file the script.
fn dnsmasq_segment(
    server: &DhcpServer,
    target: &Target,
    media: &Media,
    dir: &Path,
) -> Result<Segment, SetupError> {
    let mut dhcp = server.config().map_err(SetupError::Unsupported)?;
    dhcp.tftp_root = Some(media.boot_dir.clone());
    dhcp.boot_file = match (&server.boot_file, target.boot.method) {
        (Some(file), _) => Some(file.clone()),
        (None, Method::Ipxe) => Some(stage::SCRIPT_NAME.to_string()),
        (None, Method::Direct) => None,
    };
    let run_dir = dir.join("dhcp");
    fs::create_dir_all(&run_dir).map_err(io_error(&run_dir))?;
    Ok(Segment::create(&crate::net::SegmentSpec {
        state_dir: PathBuf::from(crate::net::DEFAULT_STATE_DIR),
        run_dir,
        guests: 1,
        dhcp,
        fault: server.fault.clone(),
    })?)
}

/// Checks the lease `[expect]` asks for, then tears the segment down; both say what went
/// wrong as findings.
pub(super) fn close_segment(seg: Segment, lease: Option<&LeaseExpect>, findings: &mut Findings) {
    if let Some(want) = lease {
        findings.asserted.extend(lease_finding(&seg, want));
    }
    for e in seg.close().errors {
        findings.boot.push(Finding::NetworkTeardown { error: e });
    }
}

/// Removes the bridge tap; what failed is a finding.
pub(super) fn detach_tap(tap: HostTap, findings: &mut Findings) {
    for e in tap.detach() {
        findings.boot.push(Finding::NetworkTeardown { error: e });
    }
}

/// Whether the server leased `want.address` to `want.client_id`; a finding when not.
fn lease_finding(seg: &Segment, want: &LeaseExpect) -> Option<Finding> {
    let leases = match seg.leases() {
        Ok(l) => l,
        Err(e) => {
            return Some(Finding::LeasesUnreadable {
                error: crate::error_chain(&e),
            })
        }
    };
    match crate::net::lease::address_of(&leases, &want.client_id) {
        Some(got) if got == want.address => None,
        Some(got) => Some(Finding::LeaseOther {
            client_id: want.client_id.to_string(),
            got,
            want: want.address.to_string(),
        }),
        None => Some(Finding::LeaseNone {
            client_id: want.client_id.to_string(),
            leases,
        }),
    }
}
