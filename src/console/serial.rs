//! The guest's serial console on a Unix socket bootrig listens on before QEMU starts, so no byte
//! is lost. A pump thread owns the socket's read half: it keeps the raw bytes (`console.log`),
//! cuts them into timestamped lines, and feeds an expect session (rexpect) that drives the boot:
//! waiting for markers with a bound, and typing commands into a guest shell.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rexpect::reader::{ReadUntil, Regex};
use rexpect::session::{spawn_stream, StreamSession};
use thiserror::Error;

use super::protocol::{self, needles};
use super::transcript::ConsoleLine;
use crate::qemu::socket::AcceptError;

/// How long one expect call blocks before the caller gets to look at deadlines and QEMU.
pub const TICK: Duration = Duration::from_millis(500);
/// How long [`SerialConsole::finish`] waits for the console's end of file.
const FINISH_BOUND: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum SerialError {
    #[error("{path}")]
    Socket { path: String, source: io::Error },
    #[error("QEMU did not connect to the serial console socket {path} within {waited:?}")]
    NoConnection { path: String, waited: Duration },
    #[error("QEMU exited before it connected to the serial console socket {path}")]
    QemuGone { path: String },
    #[error("reading the guest console")]
    Read(#[source] rexpect::error::Error),
    #[error("writing to the guest console")]
    Write(#[source] rexpect::error::Error),
    #[error("console pattern {pattern:?}: {message}")]
    Pattern { pattern: String, message: String },
}

/// Accepts one connection on `listener`, giving up after `timeout` or as soon as `alive` says
/// the peer process is gone (QEMU that fails on its command line never connects).
pub fn accept_bounded(
    listener: &UnixListener,
    path: &Path,
    timeout: Duration,
    mut alive: impl FnMut() -> bool,
) -> Result<UnixStream, SerialError> {
    let name = path.display().to_string();
    crate::qemu::socket::accept_bounded(listener, timeout, || !alive()).map_err(|e| match e {
        AcceptError::PeerGone => SerialError::QemuGone { path: name },
        AcceptError::TimedOut => SerialError::NoConnection {
            path: name,
            waited: timeout,
        },
        AcceptError::Io(source) => SerialError::Socket { path: name, source },
    })
}

/// Lines completed so far, and the unfinished tail.
#[derive(Default)]
struct Lines {
    complete: Vec<ConsoleLine>,
    partial: Vec<u8>,
    /// When the unfinished line's first byte came: a line is dated by when it began, since a
    /// progress line ("Probing EDD... ") may wait seconds for its end.
    partial_at: Option<Duration>,
    bytes: u64,
}

impl Lines {
    fn push_bytes(&mut self, bytes: &[u8], at: Duration) {
        self.bytes += bytes.len() as u64;
        for &b in bytes {
            self.partial_at.get_or_insert(at);
            if b == b'\n' {
                self.end_line(at);
            } else {
                self.partial.push(b);
            }
        }
    }

    fn end_line(&mut self, now: Duration) {
        let mut text = String::from_utf8_lossy(&self.partial).into_owned();
        while text.ends_with('\r') {
            text.pop();
        }
        let at = self.partial_at.take().unwrap_or(now);
        self.complete.push(ConsoleLine::new(at, text));
        self.partial.clear();
    }
}

/// What one wait on the console found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Needle `index` matched this text.
    Match { index: usize, text: String },
    /// Nothing yet: the wait's bound passed.
    Nothing,
    /// The console closed (QEMU exited).
    Closed,
}

/// A connected serial console.
pub struct SerialConsole {
    t0: Instant,
    lines: Arc<Mutex<Lines>>,
    session: StreamSession<UnixStream>,
    pump: Option<JoinHandle<()>>,
    /// Kept to cut the connection if QEMU never closes it.
    socket: UnixStream,
}

impl SerialConsole {
    /// Starts reading `stream`; line times count from `t0` (the moment the guest is resumed).
    pub fn start(stream: UnixStream, mut raw_log: File, t0: Instant) -> io::Result<Self> {
        let mut reader = stream.try_clone()?;
        let socket = stream.try_clone()?;
        // The expect session reads its own copy of the bytes from this pair.
        let (mut feed, expect_side) = UnixStream::pair()?;
        let lines = Arc::new(Mutex::new(Lines::default()));
        let sink = Arc::clone(&lines);
        let pump = std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                let n = match reader.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let at = t0.elapsed();
                // The raw log is evidence; a full disk must not stop the boot being judged.
                let _ = raw_log.write_all(&chunk[..n]);
                if let Ok(mut l) = sink.lock() {
                    l.push_bytes(&chunk[..n], at);
                }
                let _ = feed.write_all(&chunk[..n]);
            }
            let _ = raw_log.flush();
            if let Ok(mut l) = sink.lock() {
                if l.partial_at.is_some() {
                    let at = t0.elapsed();
                    l.end_line(at);
                }
            }
            // Dropping `feed` ends the expect session's stream: it sees EOF.
        });
        let session = spawn_stream(expect_side, stream, Some(TICK.as_millis() as u64));
        Ok(Self {
            t0,
            lines,
            session,
            pump: Some(pump),
            socket,
        })
    }

    /// Time since the guest was resumed.
    pub fn elapsed(&self) -> Duration {
        self.t0.elapsed()
    }

    /// The complete lines so far.
    pub fn lines(&self) -> Vec<ConsoleLine> {
        self.lines
            .lock()
            .map(|l| l.complete.clone())
            .unwrap_or_default()
    }

    /// The complete lines and the one still being written, if any: where the boot is now (a
    /// kernel's "Probing EDD... " line waits seconds for its end).
    pub fn lines_so_far(&self) -> Vec<ConsoleLine> {
        self.lines
            .lock()
            .map(|l| {
                let mut lines = l.complete.clone();
                if let Some(at) = l.partial_at {
                    let text = String::from_utf8_lossy(&l.partial).into_owned();
                    lines.push(ConsoleLine::new(at, text));
                }
                lines
            })
            .unwrap_or_default()
    }

    /// Waits up to `wait` (rounded up to [`TICK`]s) for any of `needles`.
    pub fn expect_any(&mut self, needles: &[Regex], wait: Duration) -> Result<Seen, SerialError> {
        // A wait past what an Instant holds is a wait without end (None).
        let until = Instant::now().checked_add(wait);
        loop {
            // No EOF needle: with EOF in the list, rexpect prefers it over a match already in
            // the buffer. EOF with no match comes back as an error instead.
            let any: Vec<ReadUntil> = needles.iter().cloned().map(ReadUntil::Regex).collect();
            match self.session.exp_any(any) {
                Ok((_, text)) => {
                    return Ok(match needles.iter().position(|r| r.is_match(&text)) {
                        Some(index) => Seen::Match { index, text },
                        None => Seen::Nothing,
                    });
                }
                Err(rexpect::error::Error::EOF { .. }) => return Ok(Seen::Closed),
                Err(rexpect::error::Error::Timeout { .. }) => {
                    if until.is_some_and(|u| Instant::now() >= u) {
                        return Ok(Seen::Nothing);
                    }
                }
                Err(e) => return Err(SerialError::Read(e)),
            }
        }
    }

    /// Types `line` and a newline into the guest console.
    pub fn send_line(&mut self, line: &str) -> Result<(), SerialError> {
        self.session.send_line(line).map_err(SerialError::Write)?;
        self.session.flush().map_err(SerialError::Write)
    }

    /// Waits for the console to close (QEMU gone) and returns every line.
    pub fn finish(mut self) -> Vec<ConsoleLine> {
        if let Some(pump) = self.pump.take() {
            // QEMU is gone or killed, so EOF is due; a peer stuck in the kernel must not hang
            // the run: after a bound, cut the socket.
            let until = Instant::now() + FINISH_BOUND;
            while !pump.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            if !pump.is_finished() {
                let _ = self.socket.shutdown(std::net::Shutdown::Both);
            }
            let _ = pump.join();
        }
        self.lines()
    }

    /// Bytes the console has sent so far.
    pub fn bytes(&self) -> u64 {
        self.lines.lock().map(|l| l.bytes).unwrap_or(0)
    }
}

/// A needle for [`SerialConsole::expect_any`].
pub fn needle(pattern: &str) -> Result<Regex, SerialError> {
    Regex::new(pattern).map_err(|e| SerialError::Pattern {
        pattern: pattern.to_string(),
        message: e.to_string(),
    })
}

/// Runs one command in the guest shell the stanza opened ([`protocol::SHELL_PROMPT`]) and
/// returns its output and exit status, or None when the console closed or `wait` passed first.
pub fn shell_command(
    console: &mut SerialConsole,
    command: &str,
    wait: Duration,
) -> Result<Option<(String, i32)>, SerialError> {
    let start = console.lines().len();
    console.send_line(&protocol::shell_command(command))?;
    let marker = needle(needles::SHELL_RC)?;
    match console.expect_any(std::slice::from_ref(&marker), wait)? {
        Seen::Match { text, .. } => {
            let rc = marker
                .captures(&text)
                .and_then(|c| c.get(1))
                .and_then(|m| m.as_str().parse().ok())
                .unwrap_or(-1);
            // Let the pump finish the marker's line, then take what the command printed.
            let deadline = Instant::now() + Duration::from_secs(2);
            let output = loop {
                let lines = console.lines();
                if let Some(end) = lines
                    .iter()
                    .skip(start)
                    .position(|l| marker.is_match(&format!("{}\n", l.text)))
                {
                    break command_output(&lines[start..start + end]);
                }
                if Instant::now() > deadline {
                    break String::new();
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            Ok(Some((output, rc)))
        }
        Seen::Nothing | Seen::Closed => Ok(None),
    }
}

/// The command's output: the lines after the echoed command line (the last line showing the
/// unexpanded status echo, which also covers a command the line editor wrapped).
fn command_output(lines: &[ConsoleLine]) -> String {
    let skip = lines
        .iter()
        .rposition(|l| protocol::is_shell_command_echo(&l.text))
        .map_or(0, |i| i + 1);
    lines[skip..]
        .iter()
        .map(ConsoleLine::clean)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    fn console_pair() -> (SerialConsole, UnixStream, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let (ours, guest) = UnixStream::pair().unwrap();
        let log = File::create(dir.path().join("console.log")).unwrap();
        let c = SerialConsole::start(ours, log, Instant::now()).unwrap();
        (c, guest, dir)
    }

    /// Dating is tested on [`Lines`] with given times: a test that measures the pump thread's
    /// clock would depend on the scheduler of a loaded machine.
    #[test]
    fn a_line_is_dated_by_its_first_byte() {
        let mut l = Lines::default();
        l.push_bytes(b"SeaBIOS (version 1.16)\r\nhalf", Duration::from_secs(1));
        l.push_bytes(b" a line\r\nno newline", Duration::from_secs(5));
        l.end_line(Duration::from_secs(6));
        let got: Vec<(u64, &str)> = l
            .complete
            .iter()
            .map(|c| (c.at.as_secs(), c.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (1, "SeaBIOS (version 1.16)"),
                // Begun with the first write, ended with the second.
                (1, "half a line"),
                (5, "no newline")
            ]
        );
        assert_eq!(l.bytes, 47);
    }

    #[test]
    fn lines_are_cut_in_order_and_logged_raw() {
        let (c, mut guest, dir) = console_pair();
        guest.write_all(b"SeaBIOS (version 1.16)\r\nhalf").unwrap();
        guest
            .write_all(b" a line\r\nno newline at the end")
            .unwrap();
        drop(guest);
        let lines = c.finish();
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "SeaBIOS (version 1.16)",
                "half a line",
                "no newline at the end"
            ]
        );
        // Times never go backwards, whatever the scheduler did.
        assert!(lines.windows(2).all(|w| w[0].at <= w[1].at), "{lines:?}");
        let raw = std::fs::read(dir.path().join("console.log")).unwrap();
        assert_eq!(
            raw,
            b"SeaBIOS (version 1.16)\r\nhalf a line\r\nno newline at the end"
        );
    }

    #[test]
    fn expect_reports_which_needle_nothing_and_closed() {
        let (mut c, mut guest, _dir) = console_pair();
        let needles = [
            needle("BOOTRIG done").unwrap(),
            needle("Kernel panic").unwrap(),
        ];
        assert_eq!(
            c.expect_any(&needles, Duration::from_millis(100)).unwrap(),
            Seen::Nothing
        );
        guest
            .write_all(b"x\r\nKernel panic - not syncing: VFS\r\n")
            .unwrap();
        match c.expect_any(&needles, Duration::from_secs(5)).unwrap() {
            Seen::Match { index, text } => {
                assert_eq!(index, 1);
                assert_eq!(text, "Kernel panic");
            }
            other => panic!("{other:?}"),
        }
        drop(guest);
        assert_eq!(
            c.expect_any(&needles, Duration::from_secs(5)).unwrap(),
            Seen::Closed
        );
    }

    #[test]
    fn accept_gives_up_when_the_peer_dies_or_time_passes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let e = accept_bounded(&listener, &path, Duration::from_secs(5), || false).unwrap_err();
        assert!(matches!(e, SerialError::QemuGone { .. }), "{e}");
        let e = accept_bounded(&listener, &path, Duration::from_millis(50), || true).unwrap_err();
        assert!(e.to_string().contains("within"), "{e}");
        let _client = UnixStream::connect(&path).unwrap();
        accept_bounded(&listener, &path, Duration::from_secs(1), || true).unwrap();
    }

    /// A fake guest shell: echoes the command line as a tty does, runs `echo`, prints the marker.
    #[test]
    fn shell_command_returns_output_and_status() {
        let (mut c, guest, _dir) = console_pair();
        let mut writer = guest.try_clone().unwrap();
        let shell = std::thread::spawn(move || {
            let mut reader = io::BufReader::new(guest);
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            writer
                .write_all(format!("BOOTRIG-SHELL# {line}\r\n").as_bytes())
                .unwrap();
            writer.write_all(b"6.1.0-56-amd64\r\n").unwrap();
            // The status arrives in two pieces: "1" and then "27".
            writer.write_all(b"BOOTRIG shell-rc=1").unwrap();
            std::thread::sleep(Duration::from_millis(600));
            writer.write_all(b"27\r\n").unwrap();
            line.to_string()
        });
        let (out, rc) = shell_command(&mut c, "uname -r # it's", Duration::from_secs(5))
            .unwrap()
            .unwrap();
        assert_eq!(rc, 127);
        assert_eq!(out, "6.1.0-56-amd64");
        assert_eq!(
            shell.join().unwrap(),
            "eval 'uname -r # it'\\''s'; echo \"BOOTRIG shell-rc=$?\""
        );
    }
}
