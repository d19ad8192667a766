//! Accepting QEMU's connection on a Unix socket bootrig listens on (its serial console, QMP):
//! bounded, and given up at once when QEMU is gone, since a QEMU that fails on its command line
//! never connects. Also the private directory the sockets live in, and the removal of those a
//! killed run left.

use std::ffi::OsString;
use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use thiserror::Error;

use crate::fsutil::{owner_tag, Leftover, Leftovers, Owner};
use crate::interrupt::Registered;

/// The socket directory's filesystem cannot hold connectable Unix sockets (9p, as in a nested
/// lab, and some FUSE or network filesystems give ENXIO or EOPNOTSUPP): bare, the errno says
/// "No such device or address", which points nowhere. Carried inside an `io::Error` so the
/// callers' "path: cause" errors keep it.
#[derive(Debug, Error)]
#[error("Unix sockets cannot be made or connected here: {where_} is on a filesystem without Unix socket support (9p, FUSE, NFS); point TMPDIR at a local filesystem such as /tmp or /run")]
pub struct NoUnixSockets {
    /// `$TMPDIR (VALUE)`, or the directory when TMPDIR is not what chose it.
    where_: String,
    #[source]
    source: io::Error,
}

/// `e` as [`NoUnixSockets`] when its errno says the filesystem of `parent` has no Unix socket
/// support; `tmpdir` is `$TMPDIR` as the process sees it. Other errors pass unchanged.
pub fn explain_socket_error(e: io::Error, parent: &Path, tmpdir: Option<OsString>) -> io::Error {
    let unsupported = e.raw_os_error().is_some_and(|n| {
        [Errno::ENXIO, Errno::EOPNOTSUPP, Errno::ECONNREFUSED].contains(&Errno::from_raw(n))
    });
    if !unsupported {
        return e;
    }
    let where_ = match tmpdir {
        Some(value) if Path::new(&value) == parent => {
            format!("$TMPDIR ({})", Path::new(&value).display())
        }
        _ => parent.display().to_string(),
    };
    io::Error::new(e.kind(), NoUnixSockets { where_, source: e })
}

/// Binds and connects a socket in `dir`, the way QEMU and bootrig will: refused on a filesystem
/// that cannot hold one, before QEMU is started with sockets it could never reach.
fn probe_unix_sockets(dir: &Path) -> io::Result<()> {
    let path = dir.join("probe.sock");
    let listener = UnixListener::bind(&path)?;
    let connected = UnixStream::connect(&path).map(drop);
    drop(listener);
    std::fs::remove_file(&path)?;
    connected
}

/// Directories of boots' sockets, in the system's temporary directory:
/// `bootrig-sock-<pid>-<start>-XXXXXX`.
pub const SOCKET_DIR_PREFIX: &str = "bootrig-sock-";

/// A private directory for one boot's Unix sockets (serial console, QMP). Short, in the system's
/// temporary directory rather than the run's: a socket path must fit in 108 bytes. Removed when
/// dropped and on a second Ctrl-C; its name records its owner, so `bootrig cleanup` can remove
/// the one of a killed run ([`remove_stale_socket_dirs`]).
pub struct SocketDir {
    dir: tempfile::TempDir,
    _registered: Registered,
}

impl SocketDir {
    /// A new directory in `std::env::temp_dir()` (`$TMPDIR`, else `/tmp`).
    pub fn create() -> io::Result<Self> {
        Self::create_in(&std::env::temp_dir())
    }

    /// A new directory in `parent`, checked to hold connectable Unix sockets.
    pub fn create_in(parent: &Path) -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{SOCKET_DIR_PREFIX}{}-", owner_tag()))
            .tempdir_in(parent)?;
        let registered = Registered::new(dir.path());
        probe_unix_sockets(dir.path())
            .map_err(|e| explain_socket_error(e, parent, std::env::var_os("TMPDIR")))?;
        Ok(Self {
            dir,
            _registered: registered,
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes the socket directories in `parent` whose owning run is gone; keeps live runs' ones.
pub fn remove_stale_socket_dirs(parent: &Path, out: &mut Leftovers) {
    let entries = match std::fs::read_dir(parent) {
        Ok(entries) => entries,
        Err(e) => {
            out.errors.push(format!("{}: {e}", parent.display()));
            return;
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SOCKET_DIR_PREFIX))
        else {
            continue;
        };
        let path: PathBuf = entry.path();
        // Only real directories: a symlink planted in a shared /tmp is not followed.
        if !path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            continue;
        }
        match Owner::of(rest) {
            Owner::Alive(pid) => out.kept.push(Leftover {
                path,
                owner_pid: Some(pid),
                why: format!("run {pid} is alive"),
            }),
            Owner::Gone(pid) => match std::fs::remove_dir_all(&path) {
                Ok(()) => out.removed.push(Leftover {
                    path,
                    owner_pid: Some(pid),
                    why: format!("run {pid} is gone"),
                }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => out.errors.push(format!("{}: {e}", path.display())),
            },
            // Not a name bootrig makes.
            Owner::Unrecorded => {}
        }
    }
}

/// How often the listener is polled: short next to QEMU's start-up.
pub const ACCEPT_POLL: Duration = Duration::from_millis(5);

#[derive(Debug)]
pub enum AcceptError {
    /// Nothing connected within the bound.
    TimedOut,
    /// `peer_gone` said so before anything connected.
    PeerGone,
    Io(io::Error),
}

/// Accepts one connection within `timeout`, checking `peer_gone` between polls. The listener and
/// the stream are left blocking.
pub fn accept_bounded(
    listener: &UnixListener,
    timeout: Duration,
    mut peer_gone: impl FnMut() -> bool,
) -> Result<UnixStream, AcceptError> {
    let deadline = Instant::now() + timeout;
    listener.set_nonblocking(true).map_err(AcceptError::Io)?;
    let accepted = loop {
        match listener.accept() {
            Ok((stream, _)) => break Ok(stream),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if peer_gone() {
                    break Err(AcceptError::PeerGone);
                }
                let now = Instant::now();
                if now >= deadline {
                    break Err(AcceptError::TimedOut);
                }
                thread::sleep(ACCEPT_POLL.min(deadline - now));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(AcceptError::Io(e)),
        }
    };
    listener.set_nonblocking(false).map_err(AcceptError::Io)?;
    let stream = accepted?;
    stream.set_nonblocking(false).map_err(AcceptError::Io)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filesystem_without_unix_sockets_names_tmpdir_and_the_fix() {
        let enxio = || io::Error::from_raw_os_error(Errno::ENXIO as i32);
        let e = explain_socket_error(
            enxio(),
            Path::new("/mnt/9p/tmp"),
            Some("/mnt/9p/tmp".into()),
        );
        let chain = crate::error_chain(&e);
        assert!(
            chain.starts_with(
                "Unix sockets cannot be made or connected here: $TMPDIR (/mnt/9p/tmp) is on a \
                 filesystem without Unix socket support"
            ),
            "{chain}"
        );
        assert!(chain.contains("point TMPDIR at a local filesystem such as /tmp or /run"));
        assert!(
            chain.ends_with("No such device or address (os error 6)"),
            "{chain}"
        );
        assert_eq!(chain.matches("os error").count(), 1, "{chain}");
        // Not chosen by TMPDIR: the directory is named; EOPNOTSUPP is the same story.
        let eopnotsupp = io::Error::from_raw_os_error(Errno::EOPNOTSUPP as i32);
        let e = explain_socket_error(eopnotsupp, Path::new("/tmp"), None);
        assert!(e.to_string().contains(": /tmp is on a filesystem"), "{e}");
        // Any other error is left as it was.
        let denied = io::Error::from_raw_os_error(Errno::EACCES as i32);
        let e = explain_socket_error(denied, Path::new("/tmp"), None);
        assert_eq!(e.raw_os_error(), Some(Errno::EACCES as i32));
        // A filesystem that holds sockets passes the probe and keeps nothing of it.
        let tmp = tempfile::tempdir().unwrap();
        let dir = SocketDir::create_in(tmp.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn socket_dirs_of_gone_runs_are_removed_and_live_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let live = SocketDir::create_in(tmp.path()).unwrap();
        let name = live
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(name.starts_with(&format!("bootrig-sock-{}-", std::process::id())));
        UnixListener::bind(live.path().join("serial.sock")).unwrap();
        // A pid that cannot exist (above pid_max), and one whose start time is not this one's.
        let gone = tmp.path().join("bootrig-sock-4194305-1-abcdef");
        let reused = tmp
            .path()
            .join(format!("bootrig-sock-{}-1-abcdef", std::process::id()));
        for d in [&gone, &reused] {
            std::fs::create_dir(d).unwrap();
            UnixListener::bind(d.join("qmp.sock")).unwrap();
        }
        let other = tmp.path().join("bootrig-sock-notours");
        std::fs::create_dir(&other).unwrap();

        let mut out = Leftovers::default();
        remove_stale_socket_dirs(tmp.path(), &mut out);
        let mut removed: Vec<&Path> = out.removed.iter().map(|l| l.path.as_path()).collect();
        removed.sort();
        let mut want = [gone.as_path(), reused.as_path()];
        want.sort();
        assert_eq!(removed, want, "{out:?}");
        assert_eq!(out.kept.len(), 1, "{out:?}");
        assert_eq!(out.kept[0].path, live.path());
        assert!(out.errors.is_empty(), "{out:?}");
        assert!(live.path().join("serial.sock").exists());
        assert!(other.exists());

        let path = live.path().to_owned();
        drop(live);
        assert!(!path.exists());
    }

    #[test]
    fn gives_up_when_the_peer_is_gone_or_time_passes_and_accepts_a_client() {
        // Events, not wall-clock upper bounds (they flake on a loaded machine): how often
        // `peer_gone` was asked, and lower bounds, which a monotonic clock always honours.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let mut asked = 0;
        let gone = accept_bounded(&listener, Duration::from_secs(600), || {
            asked += 1;
            true
        });
        assert!(matches!(gone, Err(AcceptError::PeerGone)), "{gone:?}");
        // Given up at the first look, not after polling on towards the bound.
        assert_eq!(asked, 1);

        let mut asked = 0;
        let start = Instant::now();
        let bound = Duration::from_millis(50);
        let timed_out = accept_bounded(&listener, bound, || {
            asked += 1;
            false
        });
        assert!(
            matches!(timed_out, Err(AcceptError::TimedOut)),
            "{timed_out:?}"
        );
        assert!(
            start.elapsed() >= bound,
            "gave up early: {:?}",
            start.elapsed()
        );
        assert!(asked >= 1, "peer_gone never checked while waiting");

        // A client already queued is accepted on the first try: peer_gone is never asked (the
        // generous bound costs nothing when it holds).
        let _client = UnixStream::connect(&path).unwrap();
        let mut asked = 0;
        accept_bounded(&listener, Duration::from_secs(600), || {
            asked += 1;
            true
        })
        .unwrap();
        assert_eq!(asked, 0);
    }
}
