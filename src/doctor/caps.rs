//! What this process may do to the host, by capability rather than by uid: a root in a container
//! may lack a capability, and a non-root service (a CI runner with systemd's
//! AmbientCapabilities) may hold one. One row per capability bootrig uses, saying what needs it
//! and whether the effective set holds it; the capabilities are read by `host::caps`.

use super::{Check, Host, Status};
use crate::host::caps::{self, CAP_DAC_OVERRIDE, CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_SYS_RESOURCE};

/// A capability bootrig uses and what for.
struct Use {
    cap: u32,
    name: &'static str,
    what: &'static str,
    /// Only VFIO passthrough needs it: a gap weighs like the other VFIO rows.
    vfio: bool,
    /// uid 0 does without it (it owns the files the capability would override).
    root_suffices: bool,
    /// What works without it.
    otherwise: &'static str,
}

const USES: [Use; 4] = [
    Use {
        cap: CAP_NET_ADMIN,
        name: "CAP_NET_ADMIN",
        what: "backend = \"dnsmasq\" and bridge backends: bridges, taps and addresses",
        vfio: false,
        root_suffices: false,
        otherwise: "backend = \"user\" works without",
    },
    Use {
        cap: CAP_SYS_ADMIN,
        name: "CAP_SYS_ADMIN",
        what: "backend = \"dnsmasq\": its network namespace (ip netns add mounts it)",
        vfio: false,
        root_suffices: false,
        otherwise: "backend = \"user\" works without",
    },
    Use {
        cap: CAP_SYS_RESOURCE,
        name: "CAP_SYS_RESOURCE",
        what: "VFIO: raising the RLIMIT_MEMLOCK hard limit to guest RAM + 1 GiB",
        vfio: true,
        root_suffices: false,
        otherwise: "not needed when the hard limit already covers it: `ulimit -l unlimited` \
                    before bootrig starts, systemd LimitMEMLOCK=infinity",
    },
    Use {
        cap: CAP_DAC_OVERRIDE,
        name: "CAP_DAC_OVERRIDE",
        what: "VFIO: binding drivers writes root-owned sysfs files (driver_override, bind) and \
               QEMU opens /dev/vfio/N",
        vfio: true,
        root_suffices: true,
        otherwise: "uid 0 does without it",
    },
];

/// Adds the user row and one row per capability; `vfio_gap` is how a missing VFIO need weighs.
pub(super) fn checks(host: &Host, vfio_gap: Status, out: &mut Vec<Check>) {
    out.push(user(host));
    for used in &USES {
        out.push(row(host, used, vfio_gap));
    }
}

fn user(host: &Host) -> Check {
    let who = if host.euid == 0 {
        "running as root (uid 0)".to_owned()
    } else {
        format!("running as uid {}", host.euid)
    };
    Check::new(
        "user",
        Status::Info,
        format!("{who}; what it may do is in the CAP_ rows"),
    )
}

fn row(host: &Host, used: &Use, vfio_gap: Status) -> Check {
    let gap = if used.vfio { vfio_gap } else { Status::Warn };
    let Some(own) = host.caps else {
        return Check::new(
            used.name,
            gap,
            format!(
                "unknown (no CapEff in /proc/self/status); needed for {}",
                used.what
            ),
        );
    };
    if caps::holds(own, used.cap) {
        return Check::new(used.name, Status::Ok, format!("held: {}", used.what));
    }
    if used.root_suffices && host.euid == 0 {
        return Check::new(
            used.name,
            Status::Ok,
            format!("not held, and uid 0 does without it: {}", used.what),
        );
    }
    Check::new(
        used.name,
        gap,
        format!("not held: {} ({})", used.what, used.otherwise),
    )
    .fix(grant(host, used.name))
}

/// How to get a capability: root normally has them all; a root without one is confined (a
/// container's bounding set), which the operator widens.
fn grant(host: &Host, name: &str) -> String {
    let short = name.trim_start_matches("CAP_");
    if host.euid == 0 {
        format!("this root is confined: grant {name} (docker/podman --cap-add {short}; systemd: AmbientCapabilities={name})")
    } else {
        format!("run bootrig as root, or grant it (systemd: AmbientCapabilities={name})")
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    fn run(fake: &FakeHost, vfio_gap: Status) -> Vec<Check> {
        let mut out = Vec::new();
        checks(&fake.host, vfio_gap, &mut out);
        out
    }

    #[test]
    fn a_non_root_without_capabilities_is_told_each_one_and_what_needs_it() {
        let fake = FakeHost::empty();
        let out = run(&fake, Status::Info);
        assert_eq!(
            find(&out, "user").detail,
            "running as uid 1000; what it may do is in the CAP_ rows"
        );
        let net = find(&out, "CAP_NET_ADMIN");
        assert_eq!(net.status, Status::Warn);
        assert!(
            net.detail.starts_with("not held: backend = \"dnsmasq\""),
            "{}",
            net.detail
        );
        assert!(
            net.detail.contains("backend = \"user\" works without"),
            "{}",
            net.detail
        );
        assert_eq!(
            net.fix.as_deref(),
            Some("run bootrig as root, or grant it (systemd: AmbientCapabilities=CAP_NET_ADMIN)")
        );
        assert_eq!(find(&out, "CAP_SYS_ADMIN").status, Status::Warn);
        // Without lab hardware, VFIO needs are facts, not problems.
        assert_eq!(find(&out, "CAP_SYS_RESOURCE").status, Status::Info);
        assert_eq!(find(&out, "CAP_DAC_OVERRIDE").status, Status::Info);
        assert!(out.iter().all(|c| !c.required));
        let out = run(&fake, Status::Warn);
        assert_eq!(find(&out, "CAP_SYS_RESOURCE").status, Status::Warn);
    }

    #[test]
    fn held_capabilities_are_ok_and_root_owns_the_vfio_files() {
        let mut fake = FakeHost::empty();
        fake.host.caps = Some(1 << CAP_NET_ADMIN | 1 << CAP_SYS_ADMIN);
        let out = run(&fake, Status::Warn);
        assert_eq!(find(&out, "CAP_NET_ADMIN").status, Status::Ok);
        assert_eq!(find(&out, "CAP_SYS_ADMIN").status, Status::Ok);
        assert_eq!(find(&out, "CAP_SYS_RESOURCE").status, Status::Warn);
        assert_eq!(find(&out, "CAP_DAC_OVERRIDE").status, Status::Warn);
        // A container's root: uid 0 without CAP_DAC_OVERRIDE still owns sysfs and /dev/vfio.
        fake.host.euid = 0;
        let out = run(&fake, Status::Warn);
        assert_eq!(find(&out, "CAP_DAC_OVERRIDE").status, Status::Ok);
        assert_eq!(find(&out, "CAP_SYS_RESOURCE").status, Status::Warn);
        assert_eq!(
            find(&out, "user").detail,
            "running as root (uid 0); what it may do is in the CAP_ rows"
        );
    }

    #[test]
    fn unreadable_capabilities_say_so() {
        let mut fake = FakeHost::empty();
        fake.host.caps = None;
        let out = run(&fake, Status::Info);
        let net = find(&out, "CAP_NET_ADMIN");
        assert_eq!(net.status, Status::Warn);
        assert!(net.detail.starts_with("unknown"), "{}", net.detail);
    }

    #[test]
    fn this_process_is_read_from_its_effective_set() {
        let host = Host::from_env(std::path::Path::new("/"));
        let own = host.caps.expect("this process's CapEff");
        let mut out = Vec::new();
        checks(&host, Status::Warn, &mut out);
        let ok = |name| find(&out, name).status == Status::Ok;
        assert_eq!(ok("CAP_NET_ADMIN"), caps::holds(own, CAP_NET_ADMIN));
        assert_eq!(ok("CAP_SYS_RESOURCE"), caps::holds(own, CAP_SYS_RESOURCE));
    }
}
