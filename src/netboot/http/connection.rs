//! One connection: its request answered with a file from the root (or refused), its outcome
//! logged, and the socket closed gently.

use super::peer::identify;
use super::request::*;
use super::*;

pub(super) fn serve_connection(mut stream: TcpStream, peer: SocketAddr, shared: &Shared) {
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
pub(super) fn linger_close(stream: &mut TcpStream, stopping: &AtomicBool) {
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

pub(super) struct Outcome {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) status: u16,
    pub(super) bytes_sent: u64,
    pub(super) body_len: u64,
    pub(super) complete: bool,
}

impl Outcome {
    /// An error response of `body_len` bytes (none went out for HEAD).
    pub(super) fn error(
        method: String,
        path: String,
        status: u16,
        body_len: u64,
        complete: bool,
    ) -> Self {
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

    pub(super) fn record(
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

/// One connection's socket and the server it belongs to.
pub(super) struct Conn<'a> {
    pub(super) stream: &'a mut TcpStream,
    pub(super) shared: &'a Shared,
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
    pub(super) fn send_error(
        &mut self,
        status: u16,
        method: &str,
        extra: &[(&str, &str)],
    ) -> (u64, bool) {
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

pub(super) fn answer(conn: &mut Conn<'_>, request: &Request) -> Outcome {
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
pub(super) fn stream_body(
    file: &mut File,
    conn: &mut Conn<'_>,
    len: u64,
    deadline: Instant,
) -> u64 {
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
pub(super) fn file_name(target: &str) -> Result<String, u16> {
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

pub(super) fn percent_decode(s: &str) -> Option<String> {
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
pub(super) fn open_served(path: &Path) -> Result<(File, u64), u16> {
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

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
