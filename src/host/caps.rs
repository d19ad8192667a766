//! This process's effective capabilities, read from /proc/self/status, not the uid: a root inside
//! a container may lack them, a non-root may hold them. A test segment needs CAP_SYS_ADMIN
//! (`ip netns add` bind-mounts the namespace) and CAP_NET_ADMIN (bridges, taps, addresses); a
//! run that raises its hard memlock limit needs CAP_SYS_RESOURCE.

use thiserror::Error;

pub const CAP_DAC_OVERRIDE: u32 = 1;
pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_SYS_RESOURCE: u32 = 24;

const STATUS: &str = "/proc/self/status";

#[derive(Debug, Error)]
pub enum CapError {
    #[error("backend = \"dnsmasq\" builds a network namespace with a bridge, taps and a DHCP server, which needs {missing} (this process lacks it: run as root or grant it); without it use backend = \"user\" (QEMU's user-mode network, which cannot check client-identifier reservations)")]
    Missing { missing: String },
    #[error("reading {STATUS}")]
    Unreadable(#[source] std::io::Error),
    #[error("{STATUS} has no parsable CapEff line")]
    NoCapEff,
}

/// The effective capability bits from the text of /proc/PID/status.
pub fn effective_caps(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Whether the capability set `caps` holds capability number `cap`.
pub fn holds(caps: u64, cap: u32) -> bool {
    caps & (1 << cap) != 0
}

/// The capabilities a segment needs that `caps` lacks, by name.
pub fn missing_for_segment(caps: u64) -> Vec<&'static str> {
    [
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
        (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
    ]
    .into_iter()
    .filter(|(bit, _)| !holds(caps, *bit))
    .map(|(_, name)| name)
    .collect()
}

/// This process's effective capability bits.
pub fn effective() -> Result<u64, CapError> {
    let status = std::fs::read_to_string(STATUS).map_err(CapError::Unreadable)?;
    effective_caps(&status).ok_or(CapError::NoCapEff)
}

/// Whether this process holds capability `cap`; unreadable counts as no.
pub fn own_holds(cap: u32) -> bool {
    effective().is_ok_and(|caps| holds(caps, cap))
}

/// Fails with the alternative named when this process cannot build a segment.
pub fn require_segment_caps() -> Result<(), CapError> {
    let caps = effective()?;
    let missing = missing_for_segment(caps);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CapError::Missing {
            missing: missing.join(" and "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cap_eff_and_names_what_is_missing() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t0000000000001000\n";
        let caps = effective_caps(status).unwrap();
        assert_eq!(caps, 1 << CAP_NET_ADMIN);
        assert!(holds(caps, CAP_NET_ADMIN) && !holds(caps, CAP_SYS_ADMIN));
        // This machine's root: everything but CAP_SYS_RESOURCE (a container's bounding set).
        assert!(!holds(0x1fffeffffff, CAP_SYS_RESOURCE) && holds(0x1fffeffffff, CAP_DAC_OVERRIDE));
        assert_eq!(missing_for_segment(caps), vec!["CAP_SYS_ADMIN"]);
        assert_eq!(missing_for_segment(0x1fffeffffff), Vec::<&str>::new());
        assert_eq!(
            missing_for_segment(0),
            vec!["CAP_NET_ADMIN", "CAP_SYS_ADMIN"]
        );
        assert_eq!(effective_caps("CapEff:\tzz\n"), None);
        assert_eq!(effective_caps(""), None);
    }

    #[test]
    fn the_error_names_the_user_backend() {
        let e = CapError::Missing {
            missing: "CAP_NET_ADMIN".into(),
        };
        assert!(e.to_string().contains("backend = \"user\""), "{e}");
    }

    #[test]
    fn this_process_reads_its_own_caps() {
        let status = std::fs::read_to_string(STATUS).unwrap();
        assert_eq!(effective_caps(&status), Some(effective().unwrap()));
        let own = effective().unwrap();
        assert_eq!(own_holds(CAP_NET_ADMIN), holds(own, CAP_NET_ADMIN));
        assert_eq!(holds(own, CAP_NET_ADMIN), own & 0x1000 != 0);
    }
}
