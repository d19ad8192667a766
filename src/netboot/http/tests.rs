//! The server against real sockets and processes: limits, refusals, peers and the log.

use super::connection::*;
use super::peer::*;
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
    std::os::unix::fs::symlink(dir.path().join("secret"), dir.path().join("boot/link")).unwrap();
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
fn client_ends_are_found_in_both_tables() {
    use procfs::FromBufReadSI;
    let v4: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let server: SocketAddr = "127.0.0.1:80".parse().unwrap();
    let word = hex_le([127, 0, 0, 1]);
    let mapped = format!("0000000000000000{}{word}", hex_le([0, 0, 0xff, 0xff]));
    let line = |i: u32, local: &str, inode: u64| {
        format!("{i}: {local}:1F90 {word}:0050 01 00000000:00000000 00:00000000 00000000  1000 0 {inode} 1 0 20 4 30 10 -1\n")
    };
    let table = format!(
        "sl local_address rem_address st tx_queue rx_queue tr tm->when retrnsmt uid timeout inode\n{}{}{}",
        line(0, &word, 0),
        line(1, &mapped, 4242),
        line(2, &word, 77),
    );
    let entries =
        procfs::net::TcpNetEntries::from_buf_read(table.as_bytes(), procfs::current_system_info())
            .unwrap()
            .0;
    let found: Vec<_> = entries.iter().map(|e| client_end(e, v4, server)).collect();
    // A TIME_WAIT leftover (inode 0) is skipped; a v4-mapped v6 address is the v4 one.
    assert_eq!(found, vec![None, Some((4242, 1000)), Some((77, 1000))]);
    assert_eq!(client_end(&entries[2], v4, v4), None);
}

/// Four bytes as /proc/net/tcp prints an address word: native-endian u32 in hex.
fn hex_le(bytes: [u8; 4]) -> String {
    format!("{:08X}", u32::from_ne_bytes(bytes))
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
