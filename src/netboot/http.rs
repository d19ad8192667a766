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
//! server hides both behind its response API, and this subset of HTTP/1.1 is small.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
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

/// Who opened a connection.
///
/// Through slirp the guest's connections come from a socket of QEMU's own to 127.0.0.1 (slirp
/// maps 10.0.2.2 to the host's loopback), so the peer address is 127.0.0.1 for the guest and for
/// any local process alike; a per-run address elsewhere in 127/8 would not be reachable by the
/// guest without an extra guestfwd rule. What tells them apart is which process holds the
/// client end: /proc/net/tcp names the client socket's inode and owner, and it is the guest's
/// when the run's QEMU (or a process it started, for a wrapper that does not exec) has that
/// socket open. Looked up as the connection is accepted, while the client end is certainly
/// open (slirp keeps it until the guest closes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Peer {
    /// The run's QEMU, i.e. the guest.
    Guest,
    /// Another local process (or no QEMU was named with [`HttpServer::set_guest_pid`]).
    Foreign,
    /// Not identified: refused at capacity before looking, or the client end was gone already.
    Unchecked,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Peer::Guest => "guest",
            Peer::Foreign => "foreign",
            Peer::Unchecked => "unchecked",
        })
    }
}

/// One request as the server handled it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// When the request head was read, since the server started.
    #[serde(serialize_with = "as_secs")]
    pub at: Duration,
    /// How long answering it took.
    #[serde(serialize_with = "as_secs")]
    pub duration: Duration,
    /// Who sent it: only `guest` records are the guest's fetches.
    pub from: Peer,
    /// The uid owning the client's socket, when it was found.
    pub peer_uid: Option<u32>,
    /// The method as sent, empty when the request line was not one.
    pub method: String,
    /// The request target as sent (truncated to 256 bytes, control characters as `?`).
    pub path: String,
    pub status: u16,
    /// Body bytes handed to the socket.
    pub bytes_sent: u64,
    /// The body length announced in Content-Length (0 for HEAD and errors without a body).
    pub body_len: u64,
    /// The whole response was written.
    pub complete: bool,
}

fn as_secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl fmt::Display for RequestRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>9.3}s {}", self.at.as_secs_f64(), self.from)?;
        if let (Peer::Foreign, Some(uid)) = (self.from, self.peer_uid) {
            write!(f, "(uid {uid})")?;
        }
        write!(
            f,
            " {} {} {} {}/{} bytes {} in {:.3}s",
            self.method,
            self.path,
            self.status,
            self.bytes_sent,
            self.body_len,
            if self.complete {
                "complete"
            } else {
                "INCOMPLETE"
            },
            self.duration.as_secs_f64()
        )
    }
}

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

/// A parsed request line.
struct Request {
    method: String,
    target: String,
}

/// How reading a request head ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeadEnd {
    /// The blank line arrived.
    Complete,
    /// The client closed, the read failed, or the server is stopping.
    Closed,
    /// The head deadline passed.
    TimedOut,
    /// The request line passed [`MAX_REQUEST_LINE`].
    LineTooLong,
    /// The head passed [`MAX_HEAD`].
    HeadTooLong,
}

fn serve_connection(mut stream: TcpStream, peer: SocketAddr, shared: &Shared) {
    let accepted = Instant::now();
    let (from, peer_uid) = identify(peer, shared.addr, shared.guest_pid.load(Ordering::SeqCst));
    // Accepted sockets are blocking on Linux; say so rather than rely on it.
    let _ = stream.set_nonblocking(false);
    let (head, end) = read_head(
        &mut stream,
        accepted + shared.limits.head_deadline,
        &shared.stopping,
    );
    // Connected and sent nothing: not a request, nothing to log — unless it held a slot
    // for the whole deadline.
    if head.is_empty() && end != HeadEnd::TimedOut {
        return;
    }
    let at = shared.started.elapsed();
    let mut conn = Conn {
        stream: &mut stream,
        shared,
    };
    let outcome = match classify(&head, end) {
        Ok(request) => answer(&mut conn, &request),
        Err(status) => {
            let (method, path) = request_line_parts(&head);
            let (body_len, complete) = conn.send_error(status, &method, &[]);
            Outcome::error(method, path, status, body_len, complete)
        }
    };
    let duration = shared.started.elapsed().saturating_sub(at);
    lock_log(shared).push(outcome.record(at, duration, from, peer_uid));
    linger_close(&mut stream, &shared.stopping);
}

/// Ends our side, then reads what the client still sends for a short while: a close with
/// unread bytes would reset the connection, and a client could lose the response to that.
fn linger_close(stream: &mut TcpStream, stopping: &AtomicBool) {
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let until = Instant::now() + LINGER;
    let mut buf = [0u8; 4096];
    let mut drained = 0usize;
    while drained < 64 * 1024 && !stopping.load(Ordering::SeqCst) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}

struct Outcome {
    method: String,
    path: String,
    status: u16,
    bytes_sent: u64,
    body_len: u64,
    complete: bool,
}

impl Outcome {
    /// An error response of `body_len` bytes (none went out for HEAD).
    fn error(method: String, path: String, status: u16, body_len: u64, complete: bool) -> Self {
        let head_only = method == "HEAD";
        Self {
            bytes_sent: if complete && !head_only { body_len } else { 0 },
            body_len: if head_only { 0 } else { body_len },
            method,
            path,
            status,
            complete,
        }
    }

    fn record(
        self,
        at: Duration,
        duration: Duration,
        from: Peer,
        peer_uid: Option<u32>,
    ) -> RequestRecord {
        RequestRecord {
            at,
            duration,
            from,
            peer_uid,
            method: self.method,
            path: self.path,
            status: self.status,
            bytes_sent: self.bytes_sent,
            body_len: self.body_len,
            complete: self.complete,
        }
    }
}

/// Reads up to the blank line ending the request head, until `deadline` at the latest.
fn read_head(
    stream: &mut TcpStream,
    deadline: Instant,
    stopping: &AtomicBool,
) -> (Vec<u8>, HeadEnd) {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        if stopping.load(Ordering::SeqCst) {
            return (head, HeadEnd::Closed);
        }
        // Each read waits only for what is left of the deadline.
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (head, HeadEnd::TimedOut);
        }
        if stream.set_read_timeout(Some(left)).is_err() {
            return (head, HeadEnd::Closed);
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => return (head, HeadEnd::Closed),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => return (head, HeadEnd::Closed),
        };
        // The blank line may straddle two reads.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = blank_line_end(&head, from) {
            // The whole head counts, also when the read that ended it crossed the limit.
            let done = if end > MAX_HEAD {
                HeadEnd::HeadTooLong
            } else {
                HeadEnd::Complete
            };
            return (head, done);
        }
        if line_len(&head) > MAX_REQUEST_LINE {
            return (head, HeadEnd::LineTooLong);
        }
        if head.len() > MAX_HEAD {
            return (head, HeadEnd::HeadTooLong);
        }
    }
}

/// Where the head ends (after its blank line), looking from `from` on.
fn blank_line_end(head: &[u8], from: usize) -> Option<usize> {
    let tail = &head[from..];
    let crlf = tail
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    let lf = tail.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    crlf.into_iter().chain(lf).min().map(|end| from + end)
}

/// Length of the first line, or of everything when no line ended yet.
fn line_len(head: &[u8]) -> usize {
    head.iter().position(|&b| b == b'\n').unwrap_or(head.len())
}

/// The request in `head`, or the status refusing it; never 5xx: all of this is client input.
fn classify(head: &[u8], end: HeadEnd) -> Result<Request, u16> {
    if line_len(head) > MAX_REQUEST_LINE {
        // A line that starts like a request line has a target too long; anything else is noise.
        let (method, _) = request_line_parts(head);
        return Err(if method.is_empty() { 400 } else { 414 });
    }
    match end {
        HeadEnd::Complete => parse_request_line(head).ok_or(400),
        HeadEnd::HeadTooLong => Err(431),
        HeadEnd::TimedOut => Err(408),
        HeadEnd::Closed | HeadEnd::LineTooLong => Err(400),
    }
}

/// `METHOD SP target SP HTTP/1.x` on the first line.
fn parse_request_line(head: &[u8]) -> Option<Request> {
    let end = head.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&head[..end])
        .ok()?
        .trim_end_matches('\r');
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let target = parts.next()?;
    let version = parts.next()?;
    if parts.next().is_some()
        || !is_method(method.as_bytes())
        || !matches!(version, "HTTP/1.0" | "HTTP/1.1")
    {
        return None;
    }
    Some(Request {
        method: method.to_owned(),
        target: target.to_owned(),
    })
}

fn is_method(word: &[u8]) -> bool {
    (1..=16).contains(&word.len()) && word.iter().all(|b| b.is_ascii_uppercase())
}

/// The method and target as far as they arrived, for the log of a refused request; empty when
/// the bytes do not start like a request line.
fn request_line_parts(head: &[u8]) -> (String, String) {
    let line = &head[..line_len(head)];
    let mut parts = line.splitn(3, |&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    match parts.next() {
        Some(target) if is_method(method) => {
            let target = target.strip_suffix(b"\r").unwrap_or(target);
            let kept = &target[..target.len().min(MAX_LOGGED_PATH)];
            (
                String::from_utf8_lossy(method).into_owned(),
                loggable(&String::from_utf8_lossy(kept)),
            )
        }
        _ => (String::new(), String::new()),
    }
}

/// Control characters as `?`: the log is read on terminals.
fn loggable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// One connection's socket and the server it belongs to.
struct Conn<'a> {
    stream: &'a mut TcpStream,
    shared: &'a Shared,
}

impl Conn<'_> {
    /// Writes as much of `bytes` as the client takes before `deadline`, no single write waiting
    /// longer than the I/O timeout; returns how many went out.
    fn write_by(&mut self, bytes: &[u8], deadline: Instant) -> usize {
        let mut done = 0;
        while done < bytes.len() && !self.shared.stopping.load(Ordering::SeqCst) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let wait = left.min(self.shared.limits.io_timeout);
            if self.stream.set_write_timeout(Some(wait)).is_err() {
                break;
            }
            match self.stream.write(&bytes[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A timeout without progress, a reset, or a full buffer when refusing.
                Err(_) => break,
            }
        }
        done
    }

    /// Sends a short text error; returns (body length, fully written).
    fn send_error(&mut self, status: u16, method: &str, extra: &[(&str, &str)]) -> (u64, bool) {
        let reason = match status {
            400 => "Bad Request",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            414 => "URI Too Long",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            _ => "Internal Server Error",
        };
        let body = format!("{status} {reason}\n");
        let mut response = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\nServer: bootrig\r\n",
            body.len()
        );
        for (name, value) in extra {
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        response.push_str("\r\n");
        if method != "HEAD" {
            response.push_str(&body);
        }
        let deadline = self
            .shared
            .limits
            .response_deadline(Instant::now(), response.len() as u64);
        let complete = self.write_by(response.as_bytes(), deadline) == response.len();
        (body.len() as u64, complete)
    }
}

fn answer(conn: &mut Conn<'_>, request: &Request) -> Outcome {
    let logged_path = loggable(&truncate(&request.target, MAX_LOGGED_PATH));
    let outcome = |status, bytes_sent, body_len, complete| Outcome {
        method: request.method.clone(),
        path: logged_path.clone(),
        status,
        bytes_sent,
        body_len,
        complete,
    };
    let head_only = request.method == "HEAD";
    if request.method != "GET" && !head_only {
        let (len, complete) = conn.send_error(405, &request.method, &[("Allow", "GET, HEAD")]);
        return Outcome::error(request.method.clone(), logged_path, 405, len, complete);
    }
    let file = match file_name(&request.target) {
        Err(status) => None.ok_or(status),
        Ok(name) => open_served(&conn.shared.root.join(name)),
    };
    let (mut file, len) = match file {
        Ok(found) => found,
        Err(status) => {
            let (len, complete) = conn.send_error(status, &request.method, &[]);
            return Outcome::error(request.method.clone(), logged_path, status, len, complete);
        }
    };
    let deadline = conn
        .shared
        .limits
        .response_deadline(Instant::now(), if head_only { 0 } else { len });
    let header = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\nConnection: close\r\nServer: bootrig\r\n\r\n"
    );
    if conn.write_by(header.as_bytes(), deadline) < header.len() {
        return outcome(200, 0, if head_only { 0 } else { len }, false);
    }
    if head_only {
        return outcome(200, 0, 0, true);
    }
    let sent = stream_body(&mut file, conn, len, deadline);
    outcome(200, sent, len, sent == len)
}

/// Copies `len` bytes of `file` to the socket before `deadline`; returns how many were written.
fn stream_body(file: &mut File, conn: &mut Conn<'_>, len: u64, deadline: Instant) -> u64 {
    let mut buf = vec![0u8; CHUNK];
    let mut sent = 0u64;
    while sent < len {
        let n = match file.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Never send more than announced, even if the file grew meanwhile.
        let n = n.min(usize::try_from(len - sent).unwrap_or(usize::MAX));
        let written = conn.write_by(&buf[..n], deadline);
        sent += written as u64;
        if written < n {
            break;
        }
    }
    sent
}

/// The file name a target asks for, or the status refusing it: only names directly in the root,
/// after percent-decoding, are served.
fn file_name(target: &str) -> Result<String, u16> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let Some(rest) = path.strip_prefix('/') else {
        return Err(400);
    };
    let name = percent_decode(rest).ok_or(400u16)?;
    let forbidden = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\\')
        || name.contains('\0');
    if forbidden {
        return Err(403);
    }
    Ok(name)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Opens a regular file without following a symlink (nothing may lead out of the root).
fn open_served(path: &Path) -> Result<(File, u64), u16> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| -> u16 {
            match e.raw_os_error() {
                // A name longer than the file system allows names no file here.
                Some(nix::libc::ENOENT | nix::libc::ENOTDIR | nix::libc::ENAMETOOLONG) => 404,
                Some(nix::libc::ELOOP | nix::libc::EACCES) => 403,
                _ => 500,
            }
        })?;
    let meta = file.metadata().map_err(|_| 500u16)?;
    if !meta.is_file() {
        return Err(403);
    }
    Ok((file, meta.len()))
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Who holds the client end of a connection from `peer` to `server`, and the uid owning it.
/// Unchecked when the socket is not in the kernel's tables any more.
fn identify(peer: SocketAddr, server: SocketAddr, guest_pid: u32) -> (Peer, Option<u32>) {
    let Some((inode, uid)) = client_socket(peer, server) else {
        return (Peer::Unchecked, None);
    };
    let guest = guest_pid != 0 && held_by_tree(guest_pid, inode);
    (if guest { Peer::Guest } else { Peer::Foreign }, Some(uid))
}

/// The inode and owner of the socket whose local end is `peer` and remote end `server`.
fn client_socket(peer: SocketAddr, server: SocketAddr) -> Option<(u64, u32)> {
    // A dual-stack client's socket is in tcp6, with v4-mapped addresses.
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 10
                || proc_net_addr(fields[1]) != Some(peer)
                || proc_net_addr(fields[2]) != Some(server)
            {
                continue;
            }
            let (Ok(uid), Ok(inode)) = (fields[7].parse(), fields[9].parse::<u64>()) else {
                continue;
            };
            // Inode 0: a TIME_WAIT leftover of an earlier connection on the same ports.
            if inode != 0 {
                return Some((inode, uid));
            }
        }
    }
    None
}

/// An address as /proc/net/tcp{,6} prints it: the address as native-endian 32-bit words in hex,
/// a colon, the port in hex. A v4-mapped v6 address is given as the v4 one.
fn proc_net_addr(field: &str) -> Option<SocketAddr> {
    let (addr, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = addr.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            let v6 = Ipv6Addr::from(bytes);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Whether `root` or a process it started (breadth first, [`MAX_GUEST_TREE`] at most) has
/// socket `inode` open.
fn held_by_tree(root: u32, inode: u64) -> bool {
    let wanted = format!("socket:[{inode}]");
    let mut queue = std::collections::VecDeque::from([root]);
    let mut looked = 0;
    while let Some(pid) = queue.pop_front() {
        looked += 1;
        if looked > MAX_GUEST_TREE {
            break;
        }
        if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            let held = fds.flatten().any(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|target| target.as_os_str() == wanted.as_str())
            });
            if held {
                return true;
            }
        }
        // Children are listed per thread.
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for task in tasks.flatten() {
                if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
                    queue.extend(
                        list.split_whitespace()
                            .filter_map(|p| p.parse::<u32>().ok()),
                    );
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command, Stdio};

    /// Limits small enough for tests to reach, generous enough not to flake on a loaded machine.
    const TEST_LIMITS: Limits = Limits {
        max_connections: 4,
        head_deadline: Duration::from_secs(60),
        io_timeout: Duration::from_secs(60),
        response_base: Duration::from_secs(60),
        min_rate: MIN_RATE,
    };

    /// A server whose guest is this test process, so the tests' own requests are the guest's.
    fn start_as_guest(root: &Path, limits: Limits) -> HttpServer {
        let server = HttpServer::start_with(root, limits).unwrap();
        server.set_guest_pid(std::process::id());
        server
    }

    fn server_with_files() -> (tempfile::TempDir, HttpServer) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("boot");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("vmlinuz"), b"kernel!").unwrap();
        std::fs::write(dir.path().join("secret"), b"outside").unwrap();
        let server = start_as_guest(&root, LIMITS);
        (dir, server)
    }

    /// Sends `request` raw and returns the whole response (what arrived before a reset too).
    fn exchange_at(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s.write_all(request).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    fn exchange(server: &HttpServer, request: &str) -> String {
        exchange_at(server.addr(), request.as_bytes())
    }

    fn get(server: &HttpServer, target: &str) -> String {
        exchange(
            server,
            &format!("GET {target} HTTP/1.1\r\nHost: 10.0.2.2\r\nUser-Agent: iPXE/1.0.0\r\n\r\n"),
        )
    }

    /// Waits for the log to hold `n` records (they are pushed after the socket is written).
    fn log_of(server: &HttpServer, n: usize) -> Vec<RequestRecord> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = server.log();
            if log.len() >= n || Instant::now() > deadline {
                return log;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The threads of this process serving connections for `server`.
    fn connection_threads(server: &HttpServer) -> usize {
        let name = format!("http-conn:{}", server.port());
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|comm| comm.trim_end() == name)
            })
            .count()
    }

    /// A process that is not this one and holds no socket: the guest in tests of foreign lines.
    struct Sleeper(Child);

    impl Sleeper {
        fn start() -> Self {
            Self(Command::new("sleep").arg("60").spawn().unwrap())
        }
    }

    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn serves_a_file_with_its_length_and_logs_it() {
        let (_dir, server) = server_with_files();
        assert!(server.addr().ip().is_loopback());
        assert_ne!(server.port(), 0);
        let response = get(&server, "/vmlinuz");
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains("\r\nContent-Length: 7\r\n"));
        assert!(response.ends_with("\r\n\r\nkernel!"));
        let log = log_of(&server, 1);
        assert_eq!(log.len(), 1);
        let r = &log[0];
        assert_eq!(
            (
                r.method.as_str(),
                r.path.as_str(),
                r.status,
                r.bytes_sent,
                r.body_len,
                r.complete
            ),
            ("GET", "/vmlinuz", 200, 7, 7, true)
        );
        assert_eq!(r.from, Peer::Guest);
        assert!(server.fetched_complete("vmlinuz"));
        assert!(!server.fetched_complete("initrd.img"));
        assert!(
            r.to_string()
                .contains("guest GET /vmlinuz 200 7/7 bytes complete"),
            "{r}"
        );
    }

    #[test]
    fn head_announces_the_length_without_a_body() {
        let (_dir, server) = server_with_files();
        let response = exchange(&server, "HEAD /vmlinuz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(response.contains("Content-Length: 7\r\n"));
        assert!(response.ends_with("\r\n\r\n"), "{response:?}");
        let r = &log_of(&server, 1)[0];
        assert_eq!((r.status, r.bytes_sent, r.complete), (200, 0, true));
        assert!(!server.fetched_complete("vmlinuz"), "a HEAD is not a fetch");
    }

    #[test]
    fn missing_file_is_404() {
        let (_dir, server) = server_with_files();
        let response = get(&server, "/initrd.img");
        assert!(
            response.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{response}"
        );
        let r = &log_of(&server, 1)[0];
        assert_eq!((r.status, r.path.as_str()), (404, "/initrd.img"));
    }

    #[test]
    fn traversal_and_subpaths_are_refused() {
        let (dir, server) = server_with_files();
        std::fs::create_dir(dir.path().join("boot/sub")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), dir.path().join("boot/link"))
            .unwrap();
        for target in [
            "/../secret",
            "/%2e%2e/secret",
            "/%2E%2E%2Fsecret",
            "/..",
            "/sub/../../secret",
            "//etc/passwd",
            "/",
            "/link",
            "/sub",
            "/a%00b",
        ] {
            let response = get(&server, target);
            assert!(
                response.starts_with("HTTP/1.1 403 Forbidden\r\n"),
                "{target}: {response}"
            );
            assert!(!response.contains("outside"));
        }
        for target in ["secret", "/%zz", "http://10.0.2.2/vmlinuz"] {
            let response = get(&server, target);
            assert!(
                response.starts_with("HTTP/1.1 400 "),
                "{target}: {response}"
            );
        }
        // A query string does not change which file is served.
        assert!(get(&server, "/vmlinuz?x=/../secret").ends_with("kernel!"));
    }

    #[test]
    fn other_methods_are_405_and_garbage_is_400() {
        let (_dir, server) = server_with_files();
        let response = exchange(
            &server,
            "POST /vmlinuz HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(response.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(response.contains("\r\nAllow: GET, HEAD\r\n"));
        let response = exchange(&server, "hello there\r\n\r\n");
        assert!(response.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        let response = exchange(&server, "GET /vmlinuz HTTP/2.0\r\n\r\n");
        assert!(response.starts_with("HTTP/1.1 400 "));
        let log = log_of(&server, 3);
        let statuses: Vec<u16> = log.iter().map(|r| r.status).collect();
        assert_eq!(statuses.len(), 3);
        assert!(statuses.contains(&405) && statuses.iter().filter(|&&s| s == 400).count() == 2);
        // A connection that sends nothing is not a request.
        drop(TcpStream::connect(server.addr()).unwrap());
        thread::sleep(Duration::from_millis(100));
        assert_eq!(server.log().len(), 3);
    }

    /// Defect: a 9,000-byte target was opened as a file name and answered 500.
    #[test]
    fn overlong_requests_are_refused_as_client_errors() {
        let (_dir, server) = server_with_files();
        let name = "a".repeat(9000);
        let response = get(&server, &format!("/{name}"));
        assert!(
            response.starts_with("HTTP/1.1 414 URI Too Long\r\n"),
            "{}",
            truncate(&response, 200)
        );
        // Too long for a file name, short enough for a request line: no such file.
        let response = get(&server, &format!("/{}", "b".repeat(1000)));
        assert!(response.starts_with("HTTP/1.1 404 "), "{response}");
        let response = exchange(
            &server,
            &format!(
                "GET /vmlinuz HTTP/1.1\r\nX-Filler: {}\r\n\r\n",
                "c".repeat(9000)
            ),
        );
        assert!(
            response.starts_with("HTTP/1.1 431 "),
            "{}",
            truncate(&response, 200)
        );
        let response = exchange_at(server.addr(), &[0xffu8; 9000]);
        assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
        let log = log_of(&server, 4);
        let mut statuses: Vec<u16> = log.iter().map(|r| r.status).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [400, 404, 414, 431]);
        let long = log.iter().find(|r| r.status == 414).unwrap();
        assert_eq!(long.method, "GET");
        assert_eq!(long.path.len(), MAX_LOGGED_PATH);
        assert!(long.path.starts_with("/aaa"));
    }

    /// Defect: every connection got a thread, ~1,400 of them under 2,000 slow clients.
    #[test]
    fn connections_beyond_the_cap_get_503_without_a_thread() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("vmlinuz"), b"kernel!").unwrap();
        let server = start_as_guest(dir.path(), TEST_LIMITS);
        let cap = TEST_LIMITS.max_connections;
        // Slow clients: half a request line each, then nothing.
        let mut slow = Vec::new();
        for _ in 0..40 {
            let mut s = TcpStream::connect(server.addr()).unwrap();
            s.write_all(b"GET /vml").unwrap();
            slow.push(s);
        }
        // The acceptor has seen them all once 40 - cap have been refused.
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.log().len() < 40 - cap && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        // Threads name themselves once they run: wait for the cap's worth, never more.
        let mut threads = connection_threads(&server);
        while threads < cap && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
            threads = connection_threads(&server);
        }
        assert_eq!(threads, cap, "connection threads for 40 slow clients");
        let log = server.log();
        assert_eq!(log.len(), 40 - cap);
        assert!(log
            .iter()
            .all(|r| r.status == 503 && r.from == Peer::Unchecked));
        // The refused clients were answered and closed, the others kept waiting for the rest.
        let mut closed = 0;
        for s in &mut slow {
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let mut out = Vec::new();
            let still_open = s.read_to_end(&mut out).is_err_and(|e| {
                matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                )
            });
            let text = String::from_utf8_lossy(&out);
            assert!(
                out.is_empty() || text.starts_with("HTTP/1.1 503 "),
                "{text}"
            );
            closed += usize::from(!still_open);
        }
        assert_eq!(closed, 40 - cap);
        // One more is refused while the slow ones hold every slot.
        let response = get(&server, "/vmlinuz");
        assert!(response.starts_with("HTTP/1.1 503 "), "{response}");
        assert!(response.contains("\r\nRetry-After: 1\r\n"));
        // Once they leave, a slot is free again.
        drop(slow);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut response = get(&server, "/vmlinuz");
        while response.starts_with("HTTP/1.1 503 ") && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
            response = get(&server, "/vmlinuz");
        }
        assert!(response.ends_with("kernel!"), "{response}");
        assert!(server.fetched_complete("vmlinuz"));
    }

    /// Defect: a client sending a byte every 29 s kept its thread until 8 KB had arrived (the
    /// read timeout restarted with every byte).
    #[test]
    fn slow_loris_is_cut_at_the_head_deadline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("vmlinuz"), b"kernel!").unwrap();
        let limits = Limits {
            head_deadline: Duration::from_secs(1),
            ..TEST_LIMITS
        };
        let server = start_as_guest(dir.path(), limits);
        let mut loris = TcpStream::connect(server.addr()).unwrap();
        loris
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        loris.write_all(b"GET /vmlinuz HTTP/1.1\r\n").unwrap();
        let started = Instant::now();
        let mut answer = Vec::new();
        let mut served_meanwhile = false;
        // A header byte every 100 ms, far under any per-read timeout, until the server hangs up.
        let closed = loop {
            if started.elapsed() > Duration::from_secs(40) {
                break false;
            }
            if loris.write_all(b"X").is_err() {
                break true;
            }
            let mut buf = [0u8; 1024];
            match loris.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => break true,
            }
            if !served_meanwhile {
                served_meanwhile = get(&server, "/vmlinuz").ends_with("kernel!");
            }
        };
        assert!(closed, "still connected after {:?}", started.elapsed());
        assert!(served_meanwhile, "a normal client was not served meanwhile");
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 408 "),
            "{text}"
        );
        let log = log_of(&server, 2);
        let cut = log.iter().find(|r| r.status == 408).expect("no 408 logged");
        assert_eq!(
            (cut.method.as_str(), cut.path.as_str()),
            ("GET", "/vmlinuz")
        );
    }

    /// A client that takes the body a trickle at a time, or not at all, is cut at the response
    /// deadline and the per-write timeout rather than holding its thread.
    #[test]
    fn a_client_that_stops_reading_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let size: u64 = 64 << 20;
        std::fs::write(dir.path().join("initrd.img"), vec![7u8; size as usize]).unwrap();
        // The trickle: a deadline of 1 s whatever the size; writes may wait a minute.
        let limits = Limits {
            response_base: Duration::from_secs(1),
            min_rate: u64::MAX,
            ..TEST_LIMITS
        };
        let server = start_as_guest(dir.path(), limits);
        let mut trickle = TcpStream::connect(server.addr()).unwrap();
        trickle
            .write_all(b"GET /initrd.img HTTP/1.1\r\n\r\n")
            .unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 4096];
        while server.log().is_empty() && started.elapsed() < Duration::from_secs(40) {
            let _ = trickle.read(&mut buf);
            thread::sleep(Duration::from_millis(20));
        }
        let log = server.log();
        assert_eq!(log.len(), 1, "the trickling client still holds its thread");
        assert!(!log[0].complete && log[0].bytes_sent < size, "{}", log[0]);

        // The stalled: never reads; the body deadline is long, but a write waits 1 s at most.
        let limits = Limits {
            io_timeout: Duration::from_secs(1),
            ..TEST_LIMITS
        };
        let server = start_as_guest(dir.path(), limits);
        let mut stalled = TcpStream::connect(server.addr()).unwrap();
        stalled
            .write_all(b"GET /initrd.img HTTP/1.1\r\n\r\n")
            .unwrap();
        // Well under the old 30 s write timeout, well over the 1 s one.
        let started = Instant::now();
        while server.log().is_empty() && started.elapsed() < Duration::from_secs(20) {
            thread::sleep(Duration::from_millis(20));
        }
        let log = server.log();
        assert_eq!(log.len(), 1, "the stalled client still holds its thread");
        assert!(!log[0].complete && log[0].bytes_sent < size, "{}", log[0]);
        drop(stalled);
    }

    /// Defect: any local process could add lines to http.log that read as the guest's fetches.
    #[test]
    fn requests_from_other_processes_are_marked_foreign() {
        let (_dir, server) = server_with_files();
        // The guest is another process: this one's requests are foreign.
        let guest = Sleeper::start();
        server.set_guest_pid(guest.0.id());
        assert!(get(&server, "/vmlinuz").ends_with("kernel!"));
        let log = log_of(&server, 1);
        let r = &log[0];
        assert_eq!((r.from, r.status, r.complete), (Peer::Foreign, 200, true));
        assert_eq!(r.peer_uid, Some(nix::unistd::getuid().as_raw()));
        assert!(
            r.to_string().contains(&format!(
                "foreign(uid {}) GET /vmlinuz",
                nix::unistd::getuid()
            )),
            "{r}"
        );
        let json = serde_json::to_string(r).unwrap();
        assert!(json.contains(r#""from":"foreign""#), "{json}");
        assert!(
            !server.fetched_complete("vmlinuz"),
            "a foreign fetch counted as the guest's"
        );
        // No guest named at all: nobody is the guest.
        let unnamed = HttpServer::start(&server.shared.root).unwrap();
        assert!(get(&unnamed, "/vmlinuz").ends_with("kernel!"));
        assert_eq!(log_of(&unnamed, 1)[0].from, Peer::Foreign);
        // Named as the guest, the same process's next request is the guest's.
        server.set_guest_pid(std::process::id());
        assert!(get(&server, "/vmlinuz").ends_with("kernel!"));
        let log = log_of(&server, 2);
        assert_eq!(log[1].from, Peer::Guest);
        assert!(server.fetched_complete("vmlinuz"));
    }

    const CLIENT_HELPER: &str = "BOOTRIG_HTTP_CLIENT_HELPER";

    /// QEMU started through a wrapper that does not exec: the guest's socket is held by a child
    /// of the named process. Here the named process is `sh`, and its child (this test binary,
    /// re-run) does the fetch.
    #[test]
    fn a_process_started_by_the_guest_counts_as_the_guest() {
        if let Some(addr) = std::env::var_os(CLIENT_HELPER) {
            let addr: SocketAddr = addr.to_str().unwrap().parse().unwrap();
            // Wait until the server knows the guest.
            let mut go = String::new();
            io::stdin().read_line(&mut go).unwrap();
            let response = exchange_at(addr, b"GET /vmlinuz HTTP/1.1\r\n\r\n");
            assert!(response.ends_with("kernel!"), "{response}");
            return;
        }
        let (_dir, server) = server_with_files();
        let mut wrapper = Command::new("sh")
            .args(["-c", r#""$0" --exact "$1" --nocapture >/dev/null; exit $?"#])
            .arg(std::env::current_exe().unwrap())
            .arg("netboot::http::tests::a_process_started_by_the_guest_counts_as_the_guest")
            .env(CLIENT_HELPER, server.addr().to_string())
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        server.set_guest_pid(wrapper.id());
        wrapper.stdin.take().unwrap().write_all(b"go\n").unwrap();
        assert!(
            wrapper.wait().unwrap().success(),
            "the helper client failed"
        );
        let log = log_of(&server, 1);
        assert_eq!(log.len(), 1);
        assert_eq!(
            (log[0].from, log[0].status),
            (Peer::Guest, 200),
            "{}",
            log[0]
        );
        // Meanwhile this process is not the guest.
        assert!(get(&server, "/vmlinuz").ends_with("kernel!"));
        assert_eq!(log_of(&server, 2)[1].from, Peer::Foreign);
    }

    #[test]
    fn proc_net_addresses_parse_in_both_tables() {
        let v4: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let word = u32::from_ne_bytes([127, 0, 0, 1]);
        assert_eq!(proc_net_addr(&format!("{word:08X}:1F90")), Some(v4));
        let mapped = u32::from_ne_bytes([0, 0, 0xff, 0xff]);
        assert_eq!(
            proc_net_addr(&format!("0000000000000000{mapped:08X}{word:08X}:1F90")),
            Some(v4)
        );
        assert_eq!(proc_net_addr("0100007F"), None);
        assert_eq!(proc_net_addr("zz:1F90"), None);
    }

    #[test]
    fn client_leaving_mid_file_is_logged_incomplete() {
        let dir = tempfile::tempdir().unwrap();
        let size = 32 << 20;
        std::fs::write(dir.path().join("initrd.img"), vec![0x5au8; size]).unwrap();
        let server = start_as_guest(dir.path(), LIMITS);
        let mut s = TcpStream::connect(server.addr()).unwrap();
        s.write_all(b"GET /initrd.img HTTP/1.1\r\n\r\n").unwrap();
        let mut first = vec![0u8; 65536];
        s.read_exact(&mut first).unwrap();
        drop(s);
        let r = &log_of(&server, 1)[0];
        assert_eq!((r.status, r.body_len), (200, size as u64));
        assert!(!r.complete);
        assert!(r.bytes_sent < size as u64, "{r}");
        assert!(r.to_string().contains("INCOMPLETE"));
        assert!(!server.fetched_complete("initrd.img"));
    }

    #[test]
    fn large_file_arrives_whole() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(9 << 20) + 123).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("initrd.img"), &data).unwrap();
        let server = start_as_guest(dir.path(), LIMITS);
        let mut s = TcpStream::connect(server.addr()).unwrap();
        s.write_all(b"GET /initrd.img HTTP/1.1\r\n\r\n").unwrap();
        let mut bytes = Vec::new();
        s.read_to_end(&mut bytes).unwrap();
        let body_at = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert!(bytes[body_at..] == data[..]);
        assert!(server.fetched_complete("initrd.img"));
    }

    #[test]
    fn drop_stops_listening_and_cuts_off_a_stalled_transfer() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big"), vec![1u8; 64 << 20]).unwrap();
        let server = HttpServer::start(dir.path()).unwrap();
        let addr = server.addr();
        // A client that asks and then never reads: the server blocks writing to it.
        let mut stalled = TcpStream::connect(addr).unwrap();
        stalled.write_all(b"GET /big HTTP/1.1\r\n\r\n").unwrap();
        thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        let shared = Arc::clone(&server.shared);
        drop(server);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert!(TcpStream::connect(addr).is_err(), "still listening");
        let log = lock_log(&shared).records.clone();
        assert_eq!(log.len(), 1);
        assert!(!log[0].complete && log[0].bytes_sent < 64 << 20);
    }

    #[test]
    fn missing_root_is_an_error() {
        let err = HttpServer::start(Path::new("/nonexistent/boot"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("/nonexistent/boot"), "{err}");
    }

    #[test]
    fn log_serialises_times_as_seconds() {
        let r = RequestRecord {
            at: Duration::from_millis(1500),
            duration: Duration::from_millis(250),
            from: Peer::Guest,
            peer_uid: Some(1000),
            method: "GET".into(),
            path: "/vmlinuz".into(),
            status: 200,
            bytes_sent: 7,
            body_len: 7,
            complete: true,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            json.starts_with(
                r#"{"at":1.5,"duration":0.25,"from":"guest","peer_uid":1000,"method":"GET""#
            ),
            "{json}"
        );
    }

    #[test]
    fn the_log_keeps_every_guest_record_but_caps_the_others() {
        let record = |from| RequestRecord {
            at: Duration::ZERO,
            duration: Duration::ZERO,
            from,
            peer_uid: None,
            method: "GET".into(),
            path: "/x".into(),
            status: 503,
            bytes_sent: 0,
            body_len: 0,
            complete: true,
        };
        let mut log = Log::default();
        for _ in 0..MAX_OTHER_RECORDS + 5 {
            log.push(record(Peer::Foreign));
        }
        log.push(record(Peer::Guest));
        assert_eq!(log.records.len(), MAX_OTHER_RECORDS + 1);
        assert_eq!(log.omitted, 5);
        assert_eq!(log.records.last().unwrap().from, Peer::Guest);
    }
}
