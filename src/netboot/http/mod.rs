//! The HTTP server the guest fetches boot files from: GET and HEAD of the files directly in one
//! directory, nothing else. Bound to 127.0.0.1 on a port the OS picks (the guest reaches it as
//! 10.0.2.2 through QEMU user-mode networking), one thread per connection, bodies streamed from
//! disk, one request per connection (`Connection: close`). Every request is logged — when it
//! came, who sent it (the run's QEMU or another local process), what was asked, the status, how
//! many body bytes went out and whether all of them did — which is the run's evidence that the
//! boot files were fetched.
//!
//! Any local process can connect too, so no client may hold the server: at most 8 connections
//! are served at once (the acceptor answers the others 503 itself, without a thread), a request
//! head must arrive whole within 15 s of the connection, and a response must go out within a
//! deadline scaled to its size (30 s plus 4 s a MiB).
//!
//! Hand-written on std::net rather than a crate: the log needs the exact body bytes written and
//! whether a client dropped mid-file, and shutting down in-flight transfers on drop; a general
//! server hides both behind its response API, and this subset of HTTP/1.1 is small. The request
//! head is parsed by httparse (within the limits above, which stay the server's).
//!
//! One concept a file: this one is the server (accepting, bounding, the log); [`request`]
//! reads and parses a request head, [`connection`] answers one connection with a file,
//! [`peer`] finds which process holds a connection's client end, and [`record`] is a log entry.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::{Serialize, Serializer};
use thiserror::Error;

/// How often the acceptor checks for a stop request between connections.
const ACCEPT_POLL: Duration = Duration::from_millis(10);
/// Connections served at once. A guest fetches its script, kernel and initrd one after another;
/// the rest is headroom for retries.
const MAX_CONNECTIONS: usize = 8;
/// The whole request head must arrive within this of the connection: a deadline, not a read
/// timeout, so a byte now and then does not keep a connection.
const HEAD_DEADLINE: Duration = Duration::from_secs(15);
/// A write that makes no progress for this long ends the response.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// A response must be written within this plus its body at [`MIN_RATE`]: far slower than a TCG
/// guest fetches over slirp, so only a client that (nearly) stopped reading is cut.
const RESPONSE_BASE: Duration = Duration::from_secs(30);
/// Bytes per second, see [`RESPONSE_BASE`].
const MIN_RATE: u64 = 256 * 1024;
/// After the response, how long the client's leftover bytes are read before closing, so that
/// closing with them unread does not reset the connection under the response.
const LINGER: Duration = Duration::from_secs(1);
/// A request line longer than this is refused 414 (ours are a few dozen bytes).
const MAX_REQUEST_LINE: usize = 2048;
/// A request head larger than this is refused 431.
const MAX_HEAD: usize = 8192;
/// Body chunk size: large enough for disk and socket efficiency.
const CHUNK: usize = 256 * 1024;
/// Longest request target kept in the log.
const MAX_LOGGED_PATH: usize = 256;
/// Records of connections not shown to be the guest's kept in the log; past that they are only
/// counted, so a local flood cannot grow the log without bound. The guest's are all kept.
const MAX_OTHER_RECORDS: usize = 1000;
/// Processes looked at when finding whether the guest holds a socket (QEMU and what it started).
const MAX_GUEST_TREE: usize = 64;

#[derive(Debug, Error)]
pub enum HttpError {
    #[error("{root}: boot directory is not a readable directory")]
    Root { root: PathBuf, source: io::Error },
    #[error("binding 127.0.0.1:0")]
    Bind(#[source] io::Error),
    #[error("starting the HTTP server thread")]
    Thread(#[source] io::Error),
}

mod connection;
mod peer;
mod record;
mod request;

use connection::{serve_connection, Conn, Outcome};
pub use record::{Peer, RequestRecord};
use request::request_line_parts;

/// The bounds on clients; fixed in use, smaller in tests.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_connections: usize,
    head_deadline: Duration,
    io_timeout: Duration,
    response_base: Duration,
    min_rate: u64,
}

const LIMITS: Limits = Limits {
    max_connections: MAX_CONNECTIONS,
    head_deadline: HEAD_DEADLINE,
    io_timeout: IO_TIMEOUT,
    response_base: RESPONSE_BASE,
    min_rate: MIN_RATE,
};

impl Limits {
    /// When a response of `body_len` bytes begun at `start` must be written by.
    fn response_deadline(&self, start: Instant, body_len: u64) -> Instant {
        // A week at most: keeps the sum representable whatever the file size.
        let secs = (body_len / self.min_rate.max(1)).min(7 * 24 * 3600);
        start + self.response_base + Duration::from_secs(secs)
    }
}

#[derive(Default)]
struct Log {
    records: Vec<RequestRecord>,
    /// Records kept that are not the guest's.
    others: usize,
    /// Records dropped past [`MAX_OTHER_RECORDS`].
    omitted: u64,
}

impl Log {
    fn push(&mut self, record: RequestRecord) {
        if record.from != Peer::Guest {
            if self.others >= MAX_OTHER_RECORDS {
                self.omitted += 1;
                return;
            }
            self.others += 1;
        }
        self.records.push(record);
    }
}

struct Shared {
    root: PathBuf,
    addr: SocketAddr,
    limits: Limits,
    started: Instant,
    stopping: AtomicBool,
    /// The run's QEMU; 0 until named.
    guest_pid: AtomicU32,
    log: Mutex<Log>,
}

/// A running server; dropping it stops it, cutting off transfers still in flight.
pub struct HttpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Serves the files directly in `root` on 127.0.0.1 at a port the OS picks.
    pub fn start(root: &Path) -> Result<Self, HttpError> {
        Self::start_with(root, LIMITS)
    }

    fn start_with(root: &Path, limits: Limits) -> Result<Self, HttpError> {
        std::fs::read_dir(root).map_err(|source| HttpError::Root {
            root: root.to_owned(),
            source,
        })?;
        let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(HttpError::Bind)?;
        // Non-blocking accept so the acceptor can notice a stop request.
        listener.set_nonblocking(true).map_err(HttpError::Bind)?;
        let addr = listener.local_addr().map_err(HttpError::Bind)?;
        let shared = Arc::new(Shared {
            root: root.to_owned(),
            addr,
            limits,
            started: Instant::now(),
            stopping: AtomicBool::new(false),
            guest_pid: AtomicU32::new(0),
            log: Mutex::new(Log::default()),
        });
        let for_thread = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name("bootrig-http".into())
            .spawn(move || accept_loop(listener, for_thread))
            .map_err(HttpError::Thread)?;
        Ok(Self {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Names the run's QEMU: connections whose client end it (or a process it started) holds
    /// are the guest's, all others `foreign`. Call before the guest runs.
    pub fn set_guest_pid(&self, pid: u32) {
        self.shared.guest_pid.store(pid, Ordering::SeqCst);
    }

    /// The requests answered so far, in the order they finished.
    pub fn log(&self) -> Vec<RequestRecord> {
        lock_log(&self.shared).records.clone()
    }

    /// Records of non-guest connections dropped from the log once it held 1000 of them.
    pub fn omitted(&self) -> u64 {
        lock_log(&self.shared).omitted
    }

    /// Whether the guest's GET of `/name` was answered 200 with its whole body.
    pub fn fetched_complete(&self, name: &str) -> bool {
        let path = format!("/{name}");
        lock_log(&self.shared).records.iter().any(|r| {
            r.from == Peer::Guest
                && r.method == "GET"
                && r.path == path
                && r.status == 200
                && r.complete
        })
    }

    /// Stops accepting, cuts off transfers in flight and waits for every thread; the log stays.
    pub fn stop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            // The acceptor only ends by returning; a panic in it is already reported.
            let _ = acceptor.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock_log(shared: &Shared) -> std::sync::MutexGuard<'_, Log> {
    // A connection thread that panicked mid-push leaves a valid log behind.
    shared.log.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Named by port so that a server's threads can be counted (names are cut at 15 bytes).
    let name = format!("http-conn:{}", shared.addr.port());
    let mut connections: Vec<(TcpStream, JoinHandle<()>)> = Vec::new();
    while !shared.stopping.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, peer)) => {
                let (done, live): (Vec<_>, Vec<_>) = connections
                    .into_iter()
                    .partition(|(_, join)| join.is_finished());
                connections = live;
                for (_, join) in done {
                    let _ = join.join();
                }
                if connections.len() >= shared.limits.max_connections {
                    refuse(stream, &shared);
                    continue;
                }
                let Ok(handle) = stream.try_clone() else {
                    continue;
                };
                let for_thread = Arc::clone(&shared);
                match thread::Builder::new()
                    .name(name.clone())
                    .spawn(move || serve_connection(stream, peer, &for_thread))
                {
                    Ok(join) => connections.push((handle, join)),
                    // Out of threads: the client sees the connection close.
                    Err(_) => {
                        let _ = handle.shutdown(Shutdown::Both);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(ACCEPT_POLL),
            // ECONNABORTED and the like concern one client; keep serving the others.
            Err(_) => thread::sleep(ACCEPT_POLL),
        }
    }
    for (stream, _) in &connections {
        let _ = stream.shutdown(Shutdown::Both);
    }
    for (_, join) in connections {
        let _ = join.join();
    }
}

/// At capacity: 503 from the acceptor itself, written without waiting, and closed. The peer is
/// not looked up (that costs a read of /proc/net/tcp, which a flood would multiply).
fn refuse(mut stream: TcpStream, shared: &Shared) {
    let started = Instant::now();
    let at = shared.started.elapsed();
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    // Whatever part of the request already arrived: for the log, and so that closing with it
    // unread does not reset the connection under the 503.
    let mut buf = [0u8; 2048];
    let got = stream.read(&mut buf).unwrap_or(0);
    let (method, path) = request_line_parts(&buf[..got]);
    let mut conn = Conn {
        stream: &mut stream,
        shared,
    };
    let (body_len, complete) = conn.send_error(503, &method, &[("Retry-After", "1")]);
    let _ = stream.shutdown(Shutdown::Write);
    let outcome = Outcome::error(method, path, 503, body_len, complete);
    lock_log(shared).push(outcome.record(at, started.elapsed(), Peer::Unchecked, None));
}

#[cfg(test)]
mod tests;
