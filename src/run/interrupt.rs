//! Ctrl-C and SIGTERM during a run. The first signal asks every scenario to stop: each kills its
//! QEMU, keeps what the console showed and is reported as interrupted, and the reports are still
//! written. A second signal ends bootrig at once; its QEMUs die with it (PR_SET_PDEATHSIG, see
//! `qemu::process`).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};

/// Exit status after a second signal: 128 + SIGINT, as shells report an interrupted command.
const SECOND_SIGNAL_EXIT: i32 = 130;

/// Whether a stop was asked for. Cheap to clone and to poll.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// A flag no signal sets (tests, library callers with their own handling).
    pub fn never() -> Self {
        Self::default()
    }

    /// Sets the flag on SIGINT and SIGTERM; a second one exits the process.
    pub fn install() -> io::Result<Self> {
        let flag = Arc::new(AtomicBool::new(false));
        for signal in [SIGINT, SIGTERM] {
            // Registered first, so it sees the flag as the previous signal left it.
            signal_hook::flag::register_conditional_shutdown(
                signal,
                SECOND_SIGNAL_EXIT,
                Arc::clone(&flag),
            )?;
            signal_hook::flag::register(signal, Arc::clone(&flag))?;
        }
        Ok(Self(flag))
    }

    pub fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Asks for a stop without a signal.
    pub fn request(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag() {
        let a = Interrupt::never();
        let b = a.clone();
        assert!(!b.requested());
        a.request();
        assert!(b.requested());
    }
}
