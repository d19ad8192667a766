//! The reader thread: owns the read half of the QMP socket, journals every line, hands each
//! command's answer to the caller waiting for it (paired by `id`), and sends events on a channel.
//! At end of stream it fails every pending command and closes the channel.

use std::collections::HashMap;
use std::io::{self, BufRead};
use std::sync::mpsc::{Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::journal::{Direction, Journal};
use super::message::{classify, CommandFailure, Incoming, LineProblem, QmpEvent};

/// Longer than any QMP answer (query-qmp-schema is ~200 KiB); a longer line is not QMP.
pub const MAX_LINE: usize = 16 << 20;

/// An answer for a waiting `execute`.
#[derive(Debug)]
pub(crate) enum Reply {
    Return(Value),
    Error(CommandFailure),
}

/// Something QEMU sent that fit no request; kept for the caller's report, never fatal.
#[derive(Debug, Clone, PartialEq)]
pub struct QmpAnomaly {
    /// When it was read, from the QMP connection.
    pub received: Duration,
    pub kind: AnomalyKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AnomalyKind {
    /// A line that is not a QMP message (the line itself is in qmp.jsonl).
    Malformed { line: String, problem: LineProblem },
    /// A line longer than [`MAX_LINE`] bytes, skipped.
    Oversized { bytes: usize },
    /// A greeting after the first line.
    UnexpectedGreeting,
    /// An answer no command is waiting for (e.g. one that arrived after its command timed out).
    StrayResponse { id: Option<Value> },
    /// qmp.jsonl could not be written (the session itself goes on).
    Journal { error: String },
}

/// Why the connection ended.
#[derive(Debug, Clone)]
pub(crate) enum Closed {
    EndOfStream,
    /// Shared: every command still waiting reports it.
    ReadError(Arc<io::Error>),
}

impl Closed {
    /// The error a command gets once the connection has ended this way.
    pub(crate) fn error(&self, command: &'static str) -> super::QmpError {
        super::QmpError::Closed {
            command,
            source: match self {
                Closed::EndOfStream => None,
                Closed::ReadError(e) => Some(Arc::clone(e)),
            },
        }
    }
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) pending: HashMap<u64, SyncSender<Reply>>,
    pub(crate) closed: Option<Closed>,
    pub(crate) anomalies: Vec<QmpAnomaly>,
}

/// State shared by the caller and the reader thread; `closed_changed` signals the end.
#[derive(Default)]
pub(crate) struct Shared {
    state: Mutex<State>,
    closed_changed: Condvar,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something did, the maps are still coherent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn note(&self, received: Duration, kind: AnomalyKind) {
        self.lock().anomalies.push(QmpAnomaly { received, kind });
    }

    /// Waits until the reader has seen the end of the stream; false at the deadline.
    pub(crate) fn wait_closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while state.closed.is_none() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = match self.closed_changed.wait_timeout(state, deadline - now) {
                Ok((guard, _)) => guard,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }
}

pub(crate) struct Reader<R> {
    pub(crate) input: R,
    pub(crate) journal: Arc<Journal>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) events: Sender<QmpEvent>,
    pub(crate) connected: Instant,
}

impl<R: BufRead> Reader<R> {
    /// Runs until end of stream or a read error.
    pub(crate) fn run(mut self) {
        let mut line = Vec::new();
        let closed = loop {
            match read_line(&mut self.input, &mut line) {
                Ok(Line::End) => break Closed::EndOfStream,
                Ok(Line::Oversized(bytes)) => {
                    self.shared
                        .note(self.connected.elapsed(), AnomalyKind::Oversized { bytes });
                }
                Ok(Line::Complete) => self.handle(trim_line_ending(&line)),
                Err(e) => break Closed::ReadError(Arc::new(e)),
            }
        };
        let mut state = self.shared.lock();
        state.closed = Some(closed);
        // Dropping the senders wakes every waiting `execute` with "closed".
        state.pending.clear();
        drop(state);
        self.shared.closed_changed.notify_all();
        // `self.events` drops here: the events channel closes.
    }

    fn handle(&mut self, line: &[u8]) {
        if line.is_empty() {
            return;
        }
        let at = self.connected.elapsed();
        let classified = classify(line, at);
        let is_json = !matches!(classified, Err(LineProblem::NotJson { .. }));
        if let Err(e) = self.journal.record(Direction::Received, at, line, is_json) {
            self.shared.note(
                at,
                AnomalyKind::Journal {
                    error: e.to_string(),
                },
            );
        }
        match classified {
            Ok(Incoming::Event(event)) => {
                // A dropped receiver only means nobody watches events any more.
                let _ = self.events.send(*event);
            }
            Ok(Incoming::Return { id, value }) => self.answer(at, id, Reply::Return(value)),
            Ok(Incoming::Error { id, failure }) => self.answer(at, id, Reply::Error(failure)),
            Ok(Incoming::Greeting) => self.shared.note(at, AnomalyKind::UnexpectedGreeting),
            Err(problem) => self.shared.note(
                at,
                AnomalyKind::Malformed {
                    line: String::from_utf8_lossy(line).into_owned(),
                    problem,
                },
            ),
        }
    }

    /// Pairs an answer with its command by id. QEMU omits the id only when it could not parse
    /// the request at all; then the single outstanding command, if there is one, gets it.
    fn answer(&self, at: Duration, id: Option<Value>, reply: Reply) {
        let mut state = self.shared.lock();
        let waiter = match id.as_ref() {
            Some(id) => id.as_u64().and_then(|n| state.pending.remove(&n)),
            None if state.pending.len() == 1 => {
                let only = state.pending.keys().next().copied();
                only.and_then(|n| state.pending.remove(&n))
            }
            None => None,
        };
        match waiter {
            // The waiter may have timed out between our lookup and this send; it then drops
            // its receiver and the answer is lost, which is what a timeout means.
            Some(waiter) => {
                let _ = waiter.send(reply);
            }
            None => state.anomalies.push(QmpAnomaly {
                received: at,
                kind: AnomalyKind::StrayResponse { id },
            }),
        }
    }
}

enum Line {
    Complete,
    Oversized(usize),
    End,
}

/// Reads one `\n`-terminated line into `buf`, bounded by [`MAX_LINE`]; a final line without
/// `\n` at end of stream still counts.
fn read_line<R: BufRead>(input: &mut R, buf: &mut Vec<u8>) -> io::Result<Line> {
    buf.clear();
    let limit = MAX_LINE as u64 + 1;
    let n = io::Read::take(&mut *input, limit).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(Line::End);
    }
    if buf.last() == Some(&b'\n') || n < limit as usize {
        return Ok(Line::Complete);
    }
    // Too long: skip to the end of this line.
    let mut skipped = n;
    loop {
        let available = input.fill_buf()?;
        if available.is_empty() {
            return Ok(Line::Oversized(skipped));
        }
        match available.iter().position(|&b| b == b'\n') {
            Some(i) => {
                input.consume(i + 1);
                return Ok(Line::Oversized(skipped + i + 1));
            }
            None => {
                let len = available.len();
                input.consume(len);
                skipped += len;
            }
        }
    }
}

/// QEMU ends QMP lines with `\r\n`.
fn trim_line_ending(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A socket whose read fails.
    struct Broken;

    impl io::Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("connection wedged"))
        }
    }

    #[test]
    fn a_read_error_is_the_closed_commands_source_said_once() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::create(&dir.path().join("qmp.jsonl")).unwrap());
        let shared = Arc::new(Shared::default());
        let (events, _rx) = std::sync::mpsc::channel();
        Reader {
            input: std::io::BufReader::new(Broken),
            journal,
            shared: Arc::clone(&shared),
            events,
            connected: Instant::now(),
        }
        .run();
        let closed = shared.lock().closed.clone().unwrap();
        let err = closed.error("stop");
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert_eq!(cause, "connection wedged");
        let chain = crate::error_chain(&err);
        assert_eq!(chain.matches(&cause).count(), 1, "{chain}");
        assert!(
            chain.starts_with("stop: QEMU closed the QMP connection"),
            "{chain}"
        );
        assert!(Closed::EndOfStream
            .error("stop")
            .to_string()
            .ends_with("connection"));
    }

    #[test]
    fn lines_are_read_with_or_without_a_final_newline_and_trimmed() {
        let mut input = Cursor::new(b"{\"a\":1}\r\n{\"b\":2}".to_vec());
        let mut buf = Vec::new();
        assert!(matches!(
            read_line(&mut input, &mut buf).unwrap(),
            Line::Complete
        ));
        assert_eq!(trim_line_ending(&buf), b"{\"a\":1}");
        assert!(matches!(
            read_line(&mut input, &mut buf).unwrap(),
            Line::Complete
        ));
        assert_eq!(trim_line_ending(&buf), b"{\"b\":2}");
        assert!(matches!(
            read_line(&mut input, &mut buf).unwrap(),
            Line::End
        ));
    }

    #[test]
    fn an_oversized_line_is_skipped_and_the_next_one_read() {
        let mut data = vec![b'x'; MAX_LINE + 10];
        data.extend_from_slice(b"\n{}\n");
        let mut input = std::io::BufReader::new(Cursor::new(data));
        let mut buf = Vec::new();
        match read_line(&mut input, &mut buf).unwrap() {
            Line::Oversized(n) => assert_eq!(n, MAX_LINE + 11),
            _ => panic!("expected an oversized line"),
        }
        assert!(matches!(
            read_line(&mut input, &mut buf).unwrap(),
            Line::Complete
        ));
        assert_eq!(buf, b"{}\n");
    }
}
