//! The locked-memory limit: VFIO pins all guest RAM (plus QEMU's own DMA-able buffers), and
//! QEMU inherits bootrig's RLIMIT_MEMLOCK. The soft limit is raised up to the hard limit where
//! that suffices; a hard limit below the need is the operator's to lift.

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
    /// The soft limit was raised to `need` (the hard limit allowed it).
    Raised { from: Limits, need: u64 },
    /// The hard limit is below the need: only the operator can lift it.
    TooLow { limits: Limits, need: u64 },
}

/// What to do with these limits.
pub fn plan(limits: Limits, need: u64) -> Memlock {
    if covers(limits.soft, need) {
        Memlock::Enough { limits, need }
    } else if covers(limits.hard, need) {
        Memlock::Raised { from: limits, need }
    } else {
        Memlock::TooLow { limits, need }
    }
}

/// Checks this process's limit and raises the soft limit where the hard limit allows.
pub fn ensure(need: u64) -> Result<Memlock, VfioError> {
    let limits = Limits::current()?;
    let outcome = plan(limits, need);
    if let Memlock::Raised { .. } = outcome {
        let hard = limits.hard.unwrap_or(RLIM_INFINITY);
        setrlimit(Resource::RLIMIT_MEMLOCK, need, hard).map_err(VfioError::Rlimit)?;
    }
    Ok(outcome)
}

fn kib(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "unlimited".to_owned(), |b| format!("{} KiB", b >> 10))
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
            Memlock::Raised { from, need } => format!(
                "locked-memory soft limit raised from {} to {} KiB (hard limit {})",
                kib(from.soft),
                need >> 10,
                kib(from.hard)
            ),
            Memlock::TooLow { limits, need } => format!(
                "locked-memory limit {} (hard {}) is below the {} KiB VFIO pins \
                 (guest memory + {MARGIN_MIB} MiB)",
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
            "raise the hard limit before starting bootrig: `ulimit -l {kib}` (as root) or \
             `ulimit -l unlimited`; for a systemd service set LimitMEMLOCK={need} (or infinity); \
             for a login session, a `memlock` line in /etc/security/limits.conf"
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
    fn plan_raises_within_the_hard_limit_only() {
        let need = 2048 * MIB;
        let lim = |soft, hard| Limits { soft, hard };
        assert!(matches!(
            plan(lim(None, None), need),
            Memlock::Enough { .. }
        ));
        assert!(matches!(
            plan(lim(Some(need), Some(need)), need),
            Memlock::Enough { .. }
        ));
        assert!(matches!(
            plan(lim(Some(8 << 20), None), need),
            Memlock::Raised { .. }
        ));
        assert!(matches!(
            plan(lim(Some(8 << 20), Some(4096 * MIB)), need),
            Memlock::Raised { .. }
        ));
        let low = plan(lim(Some(8 << 20), Some(8 << 20)), need);
        assert!(!low.is_ok());
        assert!(
            low.detail().contains("8192 KiB (hard 8192 KiB)"),
            "{}",
            low.detail()
        );
        let fix = low.fix().unwrap();
        assert!(
            fix.contains("ulimit -l 2097152") && fix.contains("LimitMEMLOCK=2147483648"),
            "{fix}"
        );
        assert_eq!(plan(lim(None, None), need).fix(), None);
    }
}
