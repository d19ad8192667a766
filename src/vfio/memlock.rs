//! The locked-memory limit: VFIO pins all guest RAM (plus QEMU's own DMA-able buffers), and
//! QEMU inherits bootrig's RLIMIT_MEMLOCK. A run raises its own limit to the need before the
//! preflight, as libvirt does for its VFIO guests: the soft limit within the hard one, and as
//! root the hard one too. `bootrig vfio check` only says what a run would do.

use std::sync::Mutex;

use nix::errno::Errno;
use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
use serde::Serialize;

use super::VfioError;

/// Beyond guest RAM: libvirt adds 1 GiB for VFIO guests (ROM BARs, vIOMMU and ring buffers).
pub const MARGIN_MIB: u64 = 1024;

/// Bytes to lock for a guest of `memory_mib`.
pub fn needed_bytes(memory_mib: u32) -> u64 {
    (u64::from(memory_mib) + MARGIN_MIB) << 20
}

/// RLIMIT_MEMLOCK in bytes; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

impl Limits {
    pub fn current() -> Result<Self, VfioError> {
        let (soft, hard) = getrlimit(Resource::RLIMIT_MEMLOCK).map_err(VfioError::Rlimit)?;
        let finite = |v| (v != RLIM_INFINITY).then_some(v);
        Ok(Self {
            soft: finite(soft),
            hard: finite(hard),
        })
    }
}

fn covers(limit: Option<u64>, need: u64) -> bool {
    limit.is_none_or(|l| l >= need)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Memlock {
    /// The soft limit already covers the need.
    Enough { limits: Limits, need: u64 },
    /// Below the need; a run raises it to `to` (what `bootrig vfio check` reports).
    WouldRaise {
        limits: Limits,
        to: Limits,
        need: u64,
    },
    /// This process's limit was raised from `from` to `to`.
    Raised { from: Limits, to: Limits, need: u64 },
    /// The hard limit is below the need and this process may not raise it: the operator's to
    /// lift.
    TooLow { limits: Limits, need: u64 },
}

/// What to do with these limits: `may_raise_hard` when the process may raise its hard limit
/// (CAP_SYS_RESOURCE, which root normally holds). Never lowers a limit.
pub fn plan(limits: Limits, need: u64, may_raise_hard: bool) -> Memlock {
    if covers(limits.soft, need) {
        Memlock::Enough { limits, need }
    } else if covers(limits.hard, need) {
        let to = Limits {
            soft: Some(need),
            hard: limits.hard,
        };
        Memlock::WouldRaise { limits, to, need }
    } else if may_raise_hard {
        let to = Limits {
            soft: Some(need),
            hard: Some(need),
        };
        Memlock::WouldRaise { limits, to, need }
    } else {
        Memlock::TooLow { limits, need }
    }
}

/// Whether this process may raise its hard limits: from the effective capabilities, not the
/// uid (a container's root may lack CAP_SYS_RESOURCE). Unreadable counts as no.
fn may_raise_hard() -> bool {
    crate::host::caps::own_holds(crate::host::caps::CAP_SYS_RESOURCE)
}

/// What a run would do with this process's limit, changing nothing (`bootrig vfio check`).
pub fn check(need: u64) -> Result<Memlock, VfioError> {
    Ok(plan(Limits::current()?, need, may_raise_hard()))
}

/// Parallel runs raise the one process limit: one at a time, so none lowers another's.
static RAISING: Mutex<()> = Mutex::new(());

/// Raises this process's limit to `need` where needed and allowed (before the preflight, which
/// then finds it enough), and says what it did.
pub fn ensure(need: u64) -> Result<Memlock, VfioError> {
    // A poisoned lock guards no data: the limit itself is re-read below.
    let _one = RAISING.lock().unwrap_or_else(|e| e.into_inner());
    let limits = Limits::current()?;
    let planned = plan(limits, need, may_raise_hard());
    let Memlock::WouldRaise { to, .. } = planned else {
        return Ok(planned);
    };
    let raw = |l: Option<u64>| l.unwrap_or(RLIM_INFINITY);
    match setrlimit(Resource::RLIMIT_MEMLOCK, raw(to.soft), raw(to.hard)) {
        Ok(()) => Ok(Memlock::Raised {
            from: limits,
            to,
            need,
        }),
        // Refused after all (the capability read wrongly?): the operator's to lift.
        Err(Errno::EPERM) => Ok(Memlock::TooLow { limits, need }),
        Err(e) => Err(VfioError::Rlimit(e)),
    }
}

fn kib(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "unlimited".to_owned(), |b| format!("{} KiB", b >> 10))
}

/// "soft limit" / "hard limit" / "soft and hard limits": which of `from` became `to`.
fn which(from: &Limits, to: &Limits) -> &'static str {
    match (from.soft != to.soft, from.hard != to.hard) {
        (_, false) => "soft limit",
        (false, true) => "hard limit",
        (true, true) => "soft and hard limits",
    }
}

impl Memlock {
    pub fn is_ok(&self) -> bool {
        !matches!(self, Memlock::TooLow { .. })
    }

    pub fn detail(&self) -> String {
        match self {
            Memlock::Enough { limits, need } => format!(
                "locked-memory limit {} covers the {} KiB VFIO pins",
                kib(limits.soft),
                need >> 10
            ),
            Memlock::WouldRaise { limits, to, need } => format!(
                "locked-memory limit {} (hard {}) is below the {} KiB VFIO pins; \
                 bootrig run raises its {} to {} (hard {})",
                kib(limits.soft),
                kib(limits.hard),
                need >> 10,
                which(limits, to),
                kib(to.soft),
                kib(to.hard)
            ),
            Memlock::Raised { from, to, need } => format!(
                "locked-memory {} raised from {} (hard {}) to {} (hard {}) for the {} KiB \
                 VFIO pins",
                which(from, to),
                kib(from.soft),
                kib(from.hard),
                kib(to.soft),
                kib(to.hard),
                need >> 10
            ),
            Memlock::TooLow { limits, need } => format!(
                "locked-memory limit {} (hard {}) is below the {} KiB VFIO pins \
                 (guest memory + {MARGIN_MIB} MiB), and this process may not raise its hard limit",
                kib(limits.soft),
                kib(limits.hard),
                need >> 10
            ),
        }
    }

    /// What the operator sets, for a limit too low.
    pub fn fix(&self) -> Option<String> {
        let Memlock::TooLow { need, .. } = self else {
            return None;
        };
        let kib = need.div_ceil(1024);
        Some(format!(
            "run bootrig as root (with CAP_SYS_RESOURCE), or raise the hard limit before starting \
             it: `ulimit -l {kib}` (as root) or `ulimit -l unlimited`; for a systemd service set \
             LimitMEMLOCK={need} (or infinity); for a login session, a `memlock` line in \
             /etc/security/limits.conf"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn need_is_guest_memory_plus_margin() {
        assert_eq!(needed_bytes(1024), 2048 * MIB);
        assert_eq!(needed_bytes(0), 1024 * MIB);
    }

    #[test]
    fn plan_raises_within_the_hard_limit_and_as_root_the_hard_limit_too() {
        let need = 2048 * MIB;
        let lim = |soft, hard| Limits { soft, hard };
        for root in [false, true] {
            assert!(matches!(
                plan(lim(None, None), need, root),
                Memlock::Enough { .. }
            ));
            assert!(matches!(
                plan(lim(Some(need), Some(need)), need, root),
                Memlock::Enough { .. }
            ));
            // A soft limit above the need is never lowered.
            assert!(matches!(
                plan(lim(Some(2 * need), None), need, root),
                Memlock::Enough { .. }
            ));
            // Within the hard limit: the soft one only, the hard one kept.
            let Memlock::WouldRaise { to, .. } = plan(lim(Some(8 << 20), None), need, root) else {
                panic!("soft within an unlimited hard limit is raised");
            };
            assert_eq!(to, lim(Some(need), None));
            let Memlock::WouldRaise { to, .. } =
                plan(lim(Some(8 << 20), Some(4096 * MIB)), need, root)
            else {
                panic!("soft within the hard limit is raised");
            };
            assert_eq!(to, lim(Some(need), Some(4096 * MIB)));
        }
        // The outer VM's root: hard 8 MiB. Root raises both to the need, as libvirt does.
        let low = lim(Some(8 << 20), Some(8 << 20));
        let root = plan(low, need, true);
        let Memlock::WouldRaise { to, .. } = root else {
            panic!("root raises the hard limit: {root:?}");
        };
        assert_eq!(to, lim(Some(need), Some(need)));
        assert!(root.is_ok() && root.fix().is_none());
        assert!(
            root.detail().ends_with(
                "bootrig run raises its soft and hard limits to 2097152 KiB (hard 2097152 KiB)"
            ),
            "{}",
            root.detail()
        );
        let raised = Memlock::Raised {
            from: low,
            to,
            need,
        };
        assert_eq!(
            raised.detail(),
            "locked-memory soft and hard limits raised from 8192 KiB (hard 8192 KiB) to \
             2097152 KiB (hard 2097152 KiB) for the 2097152 KiB VFIO pins"
        );
        // Not root: refused, saying what to set.
        let user = plan(low, need, false);
        assert!(!user.is_ok());
        assert!(
            user.detail().contains("8192 KiB (hard 8192 KiB)"),
            "{}",
            user.detail()
        );
        let fix = user.fix().unwrap();
        assert!(
            fix.contains("ulimit -l 2097152") && fix.contains("LimitMEMLOCK=2147483648"),
            "{fix}"
        );
        assert_eq!(plan(lim(None, None), need, false).fix(), None);
    }
}
