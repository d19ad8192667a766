//! Output files written atomically: a temporary file beside the target, renamed into place only
//! when complete, so a crash or a failed write never leaves a half-written output or clobbers
//! an existing one. Temporary files are named after the process that owns them
//! (`.bootrig-<pid>-<start>-XXXXXX.tmp`) so `bootrig cleanup` can tell a dead run's leftovers
//! from a live one's, and are registered so a second Ctrl-C, which ends bootrig without running
//! destructors, still removes them ([`crate::interrupt::Registered`]).

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use thiserror::Error;

use crate::interrupt::{Interrupt, Interrupted, Registered};

/// Temporary files (and, in the system's temporary directory, socket directories) of bootrig.
pub const TEMP_PREFIX: &str = ".bootrig-";

/// A leftover whose name records no owner (written by an older bootrig) counts as abandoned once
/// unchanged this long: an output being written changes every few seconds.
pub const UNOWNED_AGE: Duration = Duration::from_secs(3600);

#[derive(Debug, Error)]
pub enum OutputError {
    #[error("{path}: already exists; pass --force to replace it")]
    Exists { path: PathBuf },
    #[error("{path}")]
    Io { path: PathBuf, source: io::Error },
}

/// `<pid>-<start>`: this process, exactly (a reused pid has another start time).
pub fn owner_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let pid = std::process::id();
        let start = crate::host::procs::start_ticks(pid).unwrap_or(0);
        format!("{pid}-{start}")
    })
}

/// The owner recorded at the start of `rest` (`<pid>-<start>-…`), if any.
pub fn parse_owner(rest: &str) -> Option<(u32, u64)> {
    let mut parts = rest.splitn(3, '-');
    let pid = parts.next()?.parse().ok()?;
    let start = parts.next()?.parse().ok()?;
    parts.next()?;
    Some((pid, start))
}

/// Whether the process a name records still runs (and is the same process; a start of 0 was
/// unknown when the name was made, so only the pid is compared).
pub fn owner_alive(pid: u32, start: u64) -> bool {
    crate::host::procs::alive(pid, (start != 0).then_some(start))
}

thread_local! {
    /// The interrupt that outputs created on this thread obey (see [`with_interrupt`]).
    static SCOPE: RefCell<Option<Interrupt>> = const { RefCell::new(None) };
}

/// Runs `f` with every [`AtomicOutput`] it creates on this thread obeying `interrupt`: their
/// writes fail with [`Interrupted`] once it is set, and the output is never committed. This reaches
/// outputs made deep inside library code (`initrd::add`) without an interrupt parameter there.
pub fn with_interrupt<T>(interrupt: &Interrupt, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<Interrupt>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            SCOPE.with(|s| *s.borrow_mut() = previous);
        }
    }
    let _restore = Restore(SCOPE.with(|s| s.borrow_mut().replace(interrupt.clone())));
    f()
}

fn scoped_interrupt() -> Option<Interrupt> {
    SCOPE.with(|s| s.borrow().clone())
}

/// A file being written; it appears at its path only on [`AtomicOutput::commit`].
pub struct AtomicOutput {
    path: PathBuf,
    force: bool,
    tmp: tempfile::NamedTempFile,
    interrupt: Option<Interrupt>,
    _registered: Registered,
}

/// A buffered writer over an output's temporary file that fails with [`Interrupted`] once the
/// output's interrupt is set (checked on every write, not every buffer flush: a slow compressor
/// may take seconds to fill a buffer).
pub struct OutputWriter<'a> {
    inner: BufWriter<&'a mut File>,
    interrupt: Option<Interrupt>,
}

impl Write for OutputWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.interrupt.as_ref().is_some_and(Interrupt::requested) {
            return Err(Interrupted::io_error());
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl AtomicOutput {
    /// Starts writing `path`. Without `force`, an existing `path` is an error now and at commit.
    pub fn create(path: &Path, force: bool) -> Result<Self, OutputError> {
        if !force && path.symlink_metadata().is_ok() {
            return Err(OutputError::Exists {
                path: path.to_owned(),
            });
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{TEMP_PREFIX}{}-", owner_tag()))
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|source| OutputError::Io {
                path: path.to_owned(),
                source,
            })?;
        let registered = Registered::new(tmp.path());
        Ok(Self {
            path: path.to_owned(),
            force,
            tmp,
            interrupt: scoped_interrupt(),
            _registered: registered,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A buffered writer over the temporary file.
    pub fn writer(&mut self) -> OutputWriter<'_> {
        OutputWriter {
            interrupt: self.interrupt.clone(),
            inner: BufWriter::with_capacity(1 << 20, self.tmp.as_file_mut()),
        }
    }

    pub fn file(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// Flushes to disk and renames into place. Refused once the output's interrupt is set: what
    /// was written may have been cut short.
    pub fn commit(mut self) -> Result<(), OutputError> {
        let path = self.path.clone();
        let io_err = |source| OutputError::Io {
            path: path.clone(),
            source,
        };
        if self.interrupt.as_ref().is_some_and(Interrupt::requested) {
            return Err(io_err(Interrupted::io_error()));
        }
        self.tmp.as_file_mut().flush().map_err(io_err)?;
        self.tmp.as_file().sync_all().map_err(io_err)?;
        // Outputs are ordinary files for the user, not 0600 temporaries.
        set_default_mode(self.tmp.as_file()).map_err(io_err)?;
        if self.force {
            self.tmp.persist(&path).map_err(|e| io_err(e.error))?;
        } else {
            self.tmp.persist_noclobber(&path).map_err(|e| {
                if e.error.kind() == io::ErrorKind::AlreadyExists {
                    OutputError::Exists { path: path.clone() }
                } else {
                    io_err(e.error)
                }
            })?;
        }
        Ok(())
    }
}

fn set_default_mode(file: &File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let umask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    nix::sys::stat::umask(umask);
    let mode = 0o644 & !umask.bits();
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8], force: bool) -> Result<(), OutputError> {
    let mut out = AtomicOutput::create(path, force)?;
    out.file()
        .write_all(bytes)
        .map_err(|source| OutputError::Io {
            path: path.to_owned(),
            source,
        })?;
    out.commit()
}

/// A dead run's temporary file or directory that `bootrig cleanup` found.
#[derive(Debug, Clone, Serialize)]
pub struct Leftover {
    pub path: PathBuf,
    /// The run that made it, when its name records one.
    pub owner_pid: Option<u32>,
    /// Why it was removed, or kept.
    pub why: String,
}

/// What `bootrig cleanup` did with temporary files and directories.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Leftovers {
    pub removed: Vec<Leftover>,
    /// Those of runs still alive.
    pub kept: Vec<Leftover>,
    pub errors: Vec<String>,
}

/// Who owns a leftover, from what its name records after its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Alive(u32),
    Gone(u32),
    /// The name records no owner (an older bootrig's).
    Unrecorded,
}

impl Owner {
    pub fn of(rest: &str) -> Self {
        match parse_owner(rest) {
            Some((pid, start)) if owner_alive(pid, start) => Owner::Alive(pid),
            Some((pid, _)) => Owner::Gone(pid),
            None => Owner::Unrecorded,
        }
    }

    pub fn pid(self) -> Option<u32> {
        match self {
            Owner::Alive(pid) | Owner::Gone(pid) => Some(pid),
            Owner::Unrecorded => None,
        }
    }
}

/// Removes the temporary files dead runs left in `dir` (the build cache's `builds/` and `bases/`):
/// those whose owner is gone, and those recording no owner that have not changed for
/// [`UNOWNED_AGE`]. A missing `dir` has none.
pub fn remove_stale_temporaries(dir: &Path, out: &mut Leftovers) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return,
        Err(e) => {
            out.errors.push(format!("{}: {e}", dir.display()));
            return;
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else {
            continue;
        };
        let path = entry.path();
        let Ok(meta) = path.symlink_metadata() else {
            continue; // removed meanwhile
        };
        if !meta.is_file() {
            continue;
        }
        let owner = Owner::of(rest);
        let why = match owner {
            Owner::Alive(pid) => {
                out.kept.push(Leftover {
                    path,
                    owner_pid: Some(pid),
                    why: format!("run {pid} is alive"),
                });
                continue;
            }
            Owner::Gone(pid) => format!("run {pid} is gone"),
            Owner::Unrecorded => {
                let age = meta
                    .modified()
                    .ok()
                    .and_then(|m| SystemTime::now().duration_since(m).ok())
                    .unwrap_or_default();
                if age < UNOWNED_AGE {
                    continue;
                }
                format!(
                    "no owner recorded, unchanged for {} min",
                    age.as_secs() / 60
                )
            }
        };
        match std::fs::remove_file(&path) {
            Ok(()) => out.removed.push(Leftover {
                path,
                owner_pid: owner.pid(),
                why,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => out.errors.push(format!("{}: {e}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_existing_without_force_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.img");
        std::fs::write(&p, b"original").unwrap();
        let err = write_atomic(&p, b"new", false).unwrap_err();
        assert!(matches!(err, OutputError::Exists { .. }), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), b"original");
        write_atomic(&p, b"new", true).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
    }

    #[test]
    fn an_interrupt_in_scope_stops_writes_and_refuses_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.img");
        let stop = Interrupt::never();
        let err = with_interrupt(&stop, || {
            let mut out = AtomicOutput::create(&p, false).unwrap();
            let mut w = out.writer();
            w.write_all(b"before").unwrap();
            stop.request();
            let e = w.write_all(b"after").unwrap_err();
            assert!(Interrupted::is(&e), "{e}");
            drop(w);
            out.commit().unwrap_err()
        });
        let text = crate::error_chain(&err);
        assert!(text.contains("interrupted"), "{text}");
        assert!(!p.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // Outside the scope the interrupt does not reach new outputs.
        write_atomic(&p, b"x", false).unwrap();
    }

    #[test]
    fn temporaries_name_their_owner_and_are_registered_while_open() {
        let dir = tempfile::tempdir().unwrap();
        let out = AtomicOutput::create(&dir.path().join("out.img"), false).unwrap();
        let tmp = out.tmp.path().to_owned();
        let name = tmp.file_name().unwrap().to_str().unwrap();
        let rest = name.strip_prefix(TEMP_PREFIX).unwrap();
        assert_eq!(Owner::of(rest), Owner::Alive(std::process::id()));
        assert!(crate::interrupt::is_registered(&tmp));
        drop(out);
        assert!(!crate::interrupt::is_registered(&tmp));
        assert!(!tmp.exists());
    }

    #[test]
    fn stale_temporaries_of_gone_runs_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join(".bootrig-4194305-1-abcdef.tmp");
        let live = dir
            .path()
            .join(format!(".bootrig-{}-abcdef.tmp", owner_tag()));
        // An older bootrig's name, fresh: could be a live run's.
        let unowned = dir.path().join(".bootrig-Xy12ab.tmp");
        let entry = dir.path().join("0123.img");
        for f in [&gone, &live, &unowned, &entry] {
            std::fs::write(f, b"x").unwrap();
        }
        let mut out = Leftovers::default();
        remove_stale_temporaries(dir.path(), &mut out);
        assert_eq!(out.removed.len(), 1, "{out:?}");
        assert_eq!(out.removed[0].path, gone);
        assert_eq!(out.removed[0].owner_pid, Some(4194305));
        assert_eq!(out.kept.len(), 1, "{out:?}");
        assert_eq!(out.kept[0].path, live);
        assert!(live.exists() && unowned.exists() && entry.exists());
        assert!(!gone.exists());

        let old = SystemTime::now() - UNOWNED_AGE - Duration::from_secs(60);
        File::options()
            .write(true)
            .open(&unowned)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let mut out = Leftovers::default();
        remove_stale_temporaries(dir.path(), &mut out);
        assert_eq!(out.removed.len(), 1, "{out:?}");
        assert_eq!(out.removed[0].owner_pid, None);
        assert!(!unowned.exists());
        remove_stale_temporaries(&dir.path().join("missing"), &mut out);
        assert!(out.errors.is_empty());
    }

    #[test]
    fn owners_parse_only_from_bootrigs_names() {
        assert_eq!(parse_owner("12-345-abcdef.tmp"), Some((12, 345)));
        assert_eq!(parse_owner("Xy12ab.tmp"), None);
        assert_eq!(parse_owner("base-Xy12ab"), None);
        assert_eq!(parse_owner("12-345"), None);
    }

    #[test]
    fn uncommitted_output_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.img");
        {
            let mut out = AtomicOutput::create(&p, false).unwrap();
            out.file().write_all(b"partial").unwrap();
        }
        assert!(!p.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
