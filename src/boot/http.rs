//! The HTTP server the guest fetches boot files from: GET and HEAD of the files directly in one
//! directory, nothing else. Bound to 127.0.0.1 on a port the OS picks (the guest reaches it as
//! 10.0.2.2 through QEMU user-mode networking), one thread per connection, bodies streamed from
//! disk, one request per connection (`Connection: close`). Every request is logged — when it came,
//! what was asked, the status, how many body bytes went out and whether all of them did — which
//! is the run's evidence that the boot files were fetched.
//!
//! Hand-written on std::net rather than a crate: the log needs the exact body bytes written and
//! whether a client dropped mid-file, and shutting down in-flight transfers on drop; a general
//! server hides both behind its response API, and this subset of HTTP/1.1 is small.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::{Serialize, Serializer};
use thiserror::Error;

/// How often the acceptor checks for a stop request between connections.
const ACCEPT_POLL: Duration = Duration::from_millis(10);
/// A request head larger than this is refused (ours are a few hundred bytes).
const MAX_HEAD: usize = 8192;
/// A client that sends nothing, or accepts nothing, for this long is dropped.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Body chunk size: large enough for disk and socket efficiency.
const CHUNK: usize = 256 * 1024;
/// Longest request target kept in the log.
const MAX_LOGGED_PATH: usize = 256;

#[derive(Debug, Error)]
pub enum HttpError {
    #[error("{root}: boot directory is not a readable directory: {source}")]
    Root { root: PathBuf, source: io::Error },
    #[error("binding 127.0.0.1:0: {0}")]
    Bind(io::Error),
    #[error("starting the HTTP server thread: {0}")]
    Thread(io::Error),
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
    pub method: String,
    /// The request target as sent (truncated to 256 bytes).
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
        write!(
            f,
            "{:>9.3}s {} {} {} {}/{} bytes {} in {:.3}s",
            self.at.as_secs_f64(),
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

struct Shared {
    root: PathBuf,
    started: Instant,
    stopping: AtomicBool,
    log: Mutex<Vec<RequestRecord>>,
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
            started: Instant::now(),
            stopping: AtomicBool::new(false),
            log: Mutex::new(Vec::new()),
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

    /// The requests answered so far, in the order they finished.
    pub fn log(&self) -> Vec<RequestRecord> {
        lock_log(&self.shared).clone()
    }

    /// Whether a GET of `/name` was answered 200 with its whole body.
    pub fn fetched_complete(&self, name: &str) -> bool {
        let path = format!("/{name}");
        lock_log(&self.shared)
            .iter()
            .any(|r| r.method == "GET" && r.path == path && r.status == 200 && r.complete)
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

fn lock_log(shared: &Shared) -> std::sync::MutexGuard<'_, Vec<RequestRecord>> {
    // A connection thread that panicked mid-push leaves a valid Vec behind.
    shared.log.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections: Vec<(TcpStream, JoinHandle<()>)> = Vec::new();
    while !shared.stopping.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                connections.retain(|(_, h)| !h.is_finished());
                let Ok(handle) = stream.try_clone() else {
                    continue;
                };
                let for_thread = Arc::clone(&shared);
                match thread::Builder::new()
                    .name("bootrig-http-conn".into())
                    .spawn(move || serve_connection(stream, &for_thread))
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

/// A parsed request line.
struct Request {
    method: String,
    target: String,
}

fn serve_connection(mut stream: TcpStream, shared: &Shared) {
    // Accepted sockets are blocking on Linux; say so rather than rely on it.
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let head = match read_head(&mut stream) {
        Ok(Some(head)) => head,
        // Connected and sent nothing: not a request, nothing to log.
        Ok(None) | Err(_) => return,
    };
    let at = shared.started.elapsed();
    let record = match parse_request_line(&head) {
        Some(request) => answer(&mut stream, shared, &request),
        None => {
            let (status, body_len, complete) = send_error(&mut stream, 400, "GET", &[]);
            Outcome {
                method: String::new(),
                path: String::new(),
                status,
                bytes_sent: if complete { body_len } else { 0 },
                body_len,
                complete,
            }
        }
    };
    let done = RequestRecord {
        at,
        duration: shared.started.elapsed().saturating_sub(at),
        method: record.method,
        path: record.path,
        status: record.status,
        bytes_sent: record.bytes_sent,
        body_len: record.body_len,
        complete: record.complete,
    };
    lock_log(shared).push(done);
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

/// Reads up to the blank line ending the request head. `None` when the client sent nothing.
fn read_head(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok((!head.is_empty()).then_some(head));
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD {
            return Ok(Some(head));
        }
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
        || method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !matches!(version, "HTTP/1.0" | "HTTP/1.1")
    {
        return None;
    }
    Some(Request {
        method: method.to_owned(),
        target: target.to_owned(),
    })
}

fn answer(stream: &mut TcpStream, shared: &Shared, request: &Request) -> Outcome {
    let logged_path = truncate(&request.target, MAX_LOGGED_PATH);
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
        let (status, len, complete) = send_error(
            stream,
            405,
            &request.method,
            &[("Allow", "GET, HEAD".to_owned())],
        );
        return outcome(status, if complete { len } else { 0 }, len, complete);
    }
    let file = match file_name(&request.target) {
        Err(status) => None.ok_or(status),
        Ok(name) => open_served(&shared.root.join(name)),
    };
    let (mut file, len) = match file {
        Ok(found) => found,
        Err(status) => {
            let (status, len, complete) = send_error(stream, status, &request.method, &[]);
            let sent = if complete && !head_only { len } else { 0 };
            return outcome(status, sent, if head_only { 0 } else { len }, complete);
        }
    };
    let header = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\nConnection: close\r\nServer: bootrig\r\n\r\n"
    );
    if stream.write_all(header.as_bytes()).is_err() {
        return outcome(200, 0, if head_only { 0 } else { len }, false);
    }
    if head_only {
        return outcome(200, 0, 0, true);
    }
    let sent = stream_body(&mut file, stream, len, &shared.stopping);
    outcome(200, sent, len, sent == len)
}

/// Copies `len` bytes of `file` to the socket; returns how many were written.
fn stream_body(file: &mut File, stream: &mut TcpStream, len: u64, stopping: &AtomicBool) -> u64 {
    let mut buf = vec![0u8; CHUNK];
    let mut sent = 0u64;
    while sent < len && !stopping.load(Ordering::SeqCst) {
        let n = match file.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Never send more than announced, even if the file grew meanwhile.
        let n = n.min(usize::try_from(len - sent).unwrap_or(usize::MAX));
        if stream.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n as u64;
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
                Some(nix::libc::ENOENT | nix::libc::ENOTDIR) => 404,
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

/// Sends a short text error; returns (status, body length, fully written).
fn send_error(
    stream: &mut TcpStream,
    status: u16,
    method: &str,
    extra: &[(&str, String)],
) -> (u16, u64, bool) {
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
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
    let complete = stream.write_all(response.as_bytes()).is_ok();
    (status, body.len() as u64, complete)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn server_with_files() -> (tempfile::TempDir, HttpServer) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("boot");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("vmlinuz"), b"kernel!").unwrap();
        std::fs::write(dir.path().join("secret"), b"outside").unwrap();
        let server = HttpServer::start(&root).unwrap();
        (dir, server)
    }

    /// Sends `request` raw and returns the whole response.
    fn exchange(server: &HttpServer, request: &str) -> String {
        let mut s = TcpStream::connect(server.addr()).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    fn get(server: &HttpServer, target: &str) -> String {
        exchange(
            server,
            &format!("GET {target} HTTP/1.1\r\nHost: 10.0.2.2\r\nUser-Agent: iPXE/1.0.0\r\n\r\n"),
        )
    }

    /// Waits for the log to hold `n` records (they are pushed after the socket is written).
    fn log_of(server: &HttpServer, n: usize) -> Vec<RequestRecord> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = server.log();
            if log.len() >= n || Instant::now() > deadline {
                return log;
            }
            thread::sleep(Duration::from_millis(5));
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
        assert!(server.fetched_complete("vmlinuz"));
        assert!(!server.fetched_complete("initrd.img"));
        assert!(
            r.to_string()
                .contains("GET /vmlinuz 200 7/7 bytes complete"),
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

    #[test]
    fn client_leaving_mid_file_is_logged_incomplete() {
        let dir = tempfile::tempdir().unwrap();
        let size = 32 << 20;
        std::fs::write(dir.path().join("initrd.img"), vec![0x5au8; size]).unwrap();
        let server = HttpServer::start(dir.path()).unwrap();
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
        let server = HttpServer::start(dir.path()).unwrap();
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
        let log = lock_log(&shared).clone();
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
            method: "GET".into(),
            path: "/vmlinuz".into(),
            status: 200,
            bytes_sent: 7,
            body_len: 7,
            complete: true,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            json.starts_with(r#"{"at":1.5,"duration":0.25,"method":"GET""#),
            "{json}"
        );
    }
}
