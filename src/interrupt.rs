//! Ctrl-C and SIGTERM. The first signal asks every piece of work that holds an [`Interrupt`] to
//! stop: a boot kills its QEMU and is reported as interrupted, a build stops at its next read or
//! write and removes what it had written, the accelerator probe kills its QEMU; the reports are
//! still written. A second signal ends bootrig at once; its QEMUs die with it (PR_SET_PDEATHSIG,
//! see `qemu::process`), and the temporary files it had open are removed first
//! ([`Registered`], [`remove_registered`]), since no destructor runs on that path. The registry
//! lives here, with the path that empties it; `fsutil` and `qemu::socket` register into it.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use thiserror::Error;

/// Exit status after a second signal: 128 + SIGINT, as shells report an interrupted command.
const SECOND_SIGNAL_EXIT: i32 = 130;

/// Whether a stop was asked for. Cheap to clone and to poll.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

/// Work stopped because a stop was asked for.
#[derive(Debug, Clone, Copy, Error, PartialEq, Eq)]
#[error("interrupted: bootrig was asked to stop (Ctrl-C or SIGTERM)")]
pub struct Interrupted;

impl Interrupted {
    /// As an I/O error, for code that stops inside a `Read` or `Write`. Not of kind
    /// `ErrorKind::Interrupted`: `read_exact` and `write_all` retry those.
    pub fn io_error() -> io::Error {
        io::Error::other(Interrupted)
    }

    /// Whether `e` is (or wraps) [`Interrupted::io_error`].
    pub fn is(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<Interrupted>())
    }
}

/// The signal thread and the flags it sets. One thread per process, however many times
/// [`Interrupt::install`] is called (each run of the library installs its own flag).
struct Watch {
    started: bool,
    flags: Vec<Weak<AtomicBool>>,
}

static WATCH: Mutex<Watch> = Mutex::new(Watch {
    started: false,
    flags: Vec::new(),
});

fn watch_state() -> MutexGuard<'static, Watch> {
    // The state stays consistent whatever a panicking holder was doing: it only pushes and prunes.
    WATCH.lock().unwrap_or_else(|e| e.into_inner())
}

impl Interrupt {
    /// A flag no signal sets (tests, library callers with their own handling).
    pub fn never() -> Self {
        Self::default()
    }

    /// A flag that SIGINT and SIGTERM set; a signal when it is already set (or when no flag is
    /// alive any more) removes the registered temporary files and exits the process with 130.
    pub fn install() -> io::Result<Self> {
        let flag = Arc::new(AtomicBool::new(false));
        let mut state = watch_state();
        if !state.started {
            let signals = Signals::new([SIGINT, SIGTERM])?;
            std::thread::Builder::new()
                .name("bootrig-signals".into())
                .spawn(move || watch(signals))?;
            state.started = true;
        }
        state.flags.retain(|f| f.strong_count() > 0);
        state.flags.push(Arc::downgrade(&flag));
        Ok(Self(flag))
    }

    pub fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Asks for a stop without a signal.
    pub fn request(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// `Err(Interrupted)` once a stop was asked for: for `?` between steps of long work.
    pub fn check(&self) -> Result<(), Interrupted> {
        if self.requested() {
            Err(Interrupted)
        } else {
            Ok(())
        }
    }
}

/// A reader that fails with [`Interrupted`] once `interrupt` is set, so that long reads (hashing
/// and decoding images) stop within one read of a request.
pub struct InterruptibleRead<R> {
    inner: R,
    interrupt: Interrupt,
}

impl<R> InterruptibleRead<R> {
    pub fn new(inner: R, interrupt: &Interrupt) -> Self {
        Self {
            inner,
            interrupt: interrupt.clone(),
        }
    }
}

impl<R: io::Read> io::Read for InterruptibleRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.interrupt.requested() {
            return Err(Interrupted::io_error());
        }
        self.inner.read(buf)
    }
}

/// Paths to remove if bootrig exits without unwinding (a second signal).
static REGISTERED: Mutex<BTreeMap<u64, PathBuf>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn registered() -> MutexGuard<'static, BTreeMap<u64, PathBuf>> {
    // A map of paths is consistent whatever a panicking holder was doing.
    REGISTERED.lock().unwrap_or_else(|e| e.into_inner())
}

/// A temporary file or directory that [`remove_registered`] removes while this guard lives.
/// Dropping the guard only forgets the path; its owner removes or renames it.
#[derive(Debug)]
pub struct Registered(u64);

impl Registered {
    pub fn new(path: &Path) -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        registered().insert(id, path.to_owned());
        Self(id)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        registered().remove(&self.0);
    }
}

/// Whether `path` is registered (tests of the modules that register).
#[cfg(test)]
pub(crate) fn is_registered(path: &Path) -> bool {
    registered().values().any(|p| p == path)
}

/// Removes every registered temporary file and directory: the exit path of a second signal.
pub fn remove_registered() {
    for path in registered().values() {
        // Best effort on the way out: a path already renamed into place or removed is fine.
        let _ = match path.symlink_metadata() {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
            _ => std::fs::remove_file(path),
        };
    }
}

/// The signal thread: ordinary code (not a signal handler), so it may lock and unlink.
fn watch(mut signals: Signals) {
    for _ in signals.forever() {
        let flags: Vec<Arc<AtomicBool>> = watch_state()
            .flags
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        // Every live flag is set (no short-circuit); any already set means this is the second.
        let second = flags
            .iter()
            .fold(false, |seen, f| f.swap(true, Ordering::SeqCst) | seen);
        // Nobody left to stop gracefully: end as the default action would, minus the litter.
        if second || flags.is_empty() {
            remove_registered();
            std::process::exit(SECOND_SIGNAL_EXIT);
        }
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
        assert_eq!(b.check(), Ok(()));
        a.request();
        assert!(b.requested());
        assert_eq!(b.check(), Err(Interrupted));
    }

    #[test]
    fn the_io_form_is_recognised_and_not_retried() {
        let e = Interrupted::io_error();
        assert!(Interrupted::is(&e));
        assert_ne!(e.kind(), io::ErrorKind::Interrupted);
        assert!(!Interrupted::is(&io::Error::other("disk full")));
    }

    #[test]
    fn reads_stop_once_interrupted() {
        use std::io::Read;
        let stop = Interrupt::never();
        let mut r = InterruptibleRead::new(&b"abcdef"[..], &stop);
        let mut buf = [0u8; 3];
        assert_eq!(r.read(&mut buf).unwrap(), 3);
        stop.request();
        assert!(Interrupted::is(&r.read(&mut buf).unwrap_err()));
    }
}
