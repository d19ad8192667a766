//! The QMP client `bootrig run` drives QEMU with. QEMU connects to bootrig
//! (`-chardev socket,id=qmp,path=SOCK,server=off -mon chardev=qmp,mode=control`), so bootrig
//! listens first and [`Qmp::accept`]s with a bounded wait. Commands are the qapi crate's typed
//! structs; a reader thread pairs answers with commands by `id` and delivers events on a channel.
//! Lines are classified from raw JSON (see `message`): the qapi crate fails a whole message over
//! one event name or enum value its schema lacks, and one such message must not lose a session.
//! Every message in both directions goes to `qmp.jsonl` (see `journal`).

mod journal;
mod message;
mod reader;

#[cfg(test)]
mod fake_qemu_tests;
#[cfg(test)]
mod qapi_behaviour;

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use qapi::qmp;
use serde_json::Value;
use thiserror::Error;

pub use message::{CommandFailure, LineProblem, QmpEvent, QmpTimestamp};
pub use reader::{AnomalyKind, QmpAnomaly, MAX_LINE};

use super::socket::{accept_bounded, AcceptError, ACCEPT_POLL};
use journal::{Direction, Journal};
use reader::{Reader, Reply, Shared};

/// Per-command wait unless [`Qmp::set_command_timeout`] says otherwise: QMP answers in
/// milliseconds even under TCG; seconds mean QEMU is stuck.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum QmpError {
    #[error("{path}: cannot create the QMP log")]
    Journal { path: PathBuf, source: io::Error },
    #[error("waiting for QEMU to connect to the QMP socket")]
    Listener(#[source] io::Error),
    #[error("QEMU did not connect to the QMP socket within {timeout:?}")]
    AcceptTimedOut { timeout: Duration },
    #[error("QEMU exited before connecting to the QMP socket")]
    ExitedBeforeConnecting,
    /// `problem` says what went wrong or what bootrig was doing; `source` is the socket's or
    /// the JSON parser's error when there is one.
    #[error("QMP greeting: {problem}")]
    Greeting {
        problem: String,
        #[source]
        source: Option<GreetingCause>,
    },
    /// `source` is the reader's error when the connection ended on one rather than at EOF.
    #[error("{command}: QEMU closed the QMP connection")]
    Closed {
        command: &'static str,
        #[source]
        source: Option<Arc<io::Error>>,
    },
    #[error("{command}: no answer from QEMU within {timeout:?}")]
    TimedOut {
        command: &'static str,
        timeout: Duration,
    },
    #[error("{command}: QEMU answered {}: {}", failure.class, failure.desc)]
    Failed {
        command: &'static str,
        failure: CommandFailure,
    },
    #[error(
        "{command}: the answer {value} does not match {}",
        expected.unwrap_or("qapi's schema")
    )]
    Decode {
        command: &'static str,
        /// What bootrig expected, when it read the answer itself rather than through qapi.
        expected: Option<&'static str>,
        /// The answer as QEMU sent it, for callers that can use it untyped.
        value: Value,
        #[source]
        source: Option<serde_json::Error>,
    },
    #[error("{command}: cannot encode the command")]
    Encode {
        command: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{command}: writing to the QMP socket")]
    Write {
        command: &'static str,
        source: io::Error,
    },
    #[error("QEMU did not close the QMP connection within {timeout:?} of `quit`")]
    QuitTimedOut { timeout: Duration },
}

/// Why a QMP greeting failed underneath: the socket, or the first line's JSON.
#[derive(Debug, Error)]
pub enum GreetingCause {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl QmpError {
    fn greeting(problem: impl Into<String>, source: impl Into<GreetingCause>) -> Self {
        QmpError::Greeting {
            problem: problem.into(),
            source: Some(source.into()),
        }
    }
}

/// `query-status`, read from the raw answer so a run state newer than qapi's schema still shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStatus {
    pub running: bool,
    /// The QEMU run state, e.g. `prelaunch`, `running`, `paused`, `guest-panicked`.
    pub status: String,
}

impl RunStatus {
    /// The run state as qapi's enum, when its schema knows it.
    pub fn typed(&self) -> Option<qmp::RunState> {
        self.status.parse().ok()
    }
}

/// A QMP session with one QEMU. Dropping it shuts the socket and joins the reader thread.
pub struct Qmp {
    writer: UnixStream,
    journal: Arc<Journal>,
    shared: Arc<Shared>,
    reader: Option<JoinHandle<()>>,
    greeting: qmp::QMP,
    connected: Instant,
    next_id: u64,
    command_timeout: Duration,
}

impl Qmp {
    /// Waits up to `timeout` for QEMU to connect to `listener`, then reads the greeting and
    /// negotiates capabilities. `qemu_exited` is polled meanwhile so a QEMU that dies before
    /// connecting is reported at once rather than at the timeout. Every message is logged to
    /// `log_path` (created, or truncated). Returns the session and its events.
    pub fn accept(
        listener: &UnixListener,
        log_path: &Path,
        timeout: Duration,
        qemu_exited: impl FnMut() -> bool,
    ) -> Result<(Qmp, Receiver<QmpEvent>), QmpError> {
        let deadline = Instant::now() + timeout;
        let stream = accept_bounded(listener, timeout, qemu_exited).map_err(|e| match e {
            AcceptError::PeerGone => QmpError::ExitedBeforeConnecting,
            AcceptError::TimedOut => QmpError::AcceptTimedOut { timeout },
            AcceptError::Io(e) => QmpError::Listener(e),
        })?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        Self::connect(stream, log_path, remaining.max(ACCEPT_POLL))
    }

    /// Starts a session on an already connected stream: greeting within `timeout`, then
    /// capability negotiation.
    pub fn connect(
        stream: UnixStream,
        log_path: &Path,
        timeout: Duration,
    ) -> Result<(Qmp, Receiver<QmpEvent>), QmpError> {
        let connected = Instant::now();
        let journal = Arc::new(
            Journal::create(log_path).map_err(|source| QmpError::Journal {
                path: log_path.to_owned(),
                source,
            })?,
        );
        let read_half = stream
            .try_clone()
            .map_err(|e| QmpError::greeting("cloning the socket for the reader", e))?;
        let mut input = BufReader::new(read_half);
        let greeting = read_greeting(&mut input, &journal, connected, timeout)?;
        // The reader thread blocks indefinitely; its end comes from EOF or our shutdown.
        input
            .get_ref()
            .set_read_timeout(None)
            .map_err(|e| QmpError::greeting("clearing the socket's read timeout", e))?;
        let shared = Arc::new(Shared::default());
        let (events_tx, events) = mpsc::channel();
        let reader = Reader {
            input,
            journal: Arc::clone(&journal),
            shared: Arc::clone(&shared),
            events: events_tx,
            connected,
        };
        let handle = thread::Builder::new()
            .name("qmp-reader".into())
            .spawn(move || reader.run())
            .map_err(|e| QmpError::greeting("starting the reader thread", e))?;
        let mut qmp = Qmp {
            writer: stream,
            journal,
            shared,
            reader: Some(handle),
            greeting,
            connected,
            next_id: 1,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
        };
        qmp.execute_within(&qmp::qmp_capabilities { enable: None }, timeout)?;
        Ok((qmp, events))
    }

    /// QEMU's greeting: its version and the capabilities it offered.
    pub fn greeting(&self) -> &qmp::QMP {
        &self.greeting
    }

    /// Time since the connection was accepted (the clock of qmp.jsonl and `QmpEvent::received`).
    pub fn elapsed(&self) -> Duration {
        self.connected.elapsed()
    }

    pub fn set_command_timeout(&mut self, timeout: Duration) {
        self.command_timeout = timeout;
    }

    /// Messages that fit no request, so far (malformed lines, stray answers...).
    pub fn anomalies(&self) -> Vec<QmpAnomaly> {
        self.shared.lock().anomalies.clone()
    }

    /// Whether QEMU has closed the connection.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed.is_some()
    }

    /// Runs `command` and decodes its answer as qapi's `C::Ok`.
    pub fn execute<C: qapi::Command>(&mut self, command: &C) -> Result<C::Ok, QmpError> {
        self.execute_within(command, self.command_timeout)
    }

    /// [`Qmp::execute`] with its own timeout.
    pub fn execute_within<C: qapi::Command>(
        &mut self,
        command: &C,
        timeout: Duration,
    ) -> Result<C::Ok, QmpError> {
        let value = self.execute_value(command, timeout)?;
        serde_json::from_value(value.clone()).map_err(|e| QmpError::Decode {
            command: C::NAME,
            expected: None,
            value,
            source: Some(e),
        })
    }

    /// Runs `command` and returns its answer untyped, for answers qapi's schema may not fit.
    pub fn execute_value<C: qapi::Command>(
        &mut self,
        command: &C,
        timeout: Duration,
    ) -> Result<Value, QmpError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(&qapi::Execute::<&C, u64>::with_id(command, id))
            .map_err(|source| QmpError::Encode {
                command: C::NAME,
                source,
            })?;
        let (reply_tx, reply) = mpsc::sync_channel(1);
        {
            let mut state = self.shared.lock();
            if let Some(closed) = &state.closed {
                return Err(closed.error(C::NAME));
            }
            state.pending.insert(id, reply_tx);
        }
        if let Err(e) = self
            .journal
            .record(Direction::Sent, self.connected.elapsed(), &line, true)
        {
            self.shared.note(
                self.connected.elapsed(),
                AnomalyKind::Journal {
                    error: e.to_string(),
                },
            );
        }
        line.push(b'\n');
        if let Err(source) = self.write_line(&line, timeout) {
            self.shared.lock().pending.remove(&id);
            return Err(if is_disconnect(&source) {
                self.closed(C::NAME)
            } else {
                QmpError::Write {
                    command: C::NAME,
                    source,
                }
            });
        }
        match reply.recv_timeout(timeout) {
            Ok(Reply::Return(value)) => Ok(value),
            Ok(Reply::Error(failure)) => Err(QmpError::Failed {
                command: C::NAME,
                failure,
            }),
            Err(RecvTimeoutError::Timeout) => {
                self.shared.lock().pending.remove(&id);
                Err(QmpError::TimedOut {
                    command: C::NAME,
                    timeout,
                })
            }
            Err(RecvTimeoutError::Disconnected) => Err(self.closed(C::NAME)),
        }
    }

    /// [`QmpError::Closed`] for `command`, with the reader's error if it has ended on one.
    fn closed(&self, command: &'static str) -> QmpError {
        match &self.shared.lock().closed {
            Some(closed) => closed.error(command),
            None => QmpError::Closed {
                command,
                source: None,
            },
        }
    }

    fn write_line(&mut self, line: &[u8], timeout: Duration) -> io::Result<()> {
        // A zero timeout means "none" to the socket; QMP commands are never that urgent.
        self.writer
            .set_write_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        self.writer.write_all(line)?;
        self.writer.flush()
    }

    /// Starts (or resumes) the guest: leaves `-S`'s prelaunch state.
    pub fn cont(&mut self) -> Result<(), QmpError> {
        self.execute(&qmp::cont {}).map(drop)
    }

    pub fn stop(&mut self) -> Result<(), QmpError> {
        self.execute(&qmp::stop {}).map(drop)
    }

    pub fn system_reset(&mut self) -> Result<(), QmpError> {
        self.execute(&qmp::system_reset {}).map(drop)
    }

    pub fn query_status(&mut self) -> Result<RunStatus, QmpError> {
        let command = qmp::query_status {};
        let value = self.execute_value(&command, self.command_timeout)?;
        let running = value.get("running").and_then(Value::as_bool);
        let status = value.get("status").and_then(Value::as_str);
        match (running, status) {
            (Some(running), Some(status)) => Ok(RunStatus {
                running,
                status: status.to_owned(),
            }),
            _ => Err(QmpError::Decode {
                command: <qmp::query_status as qapi::Command>::NAME,
                expected: Some("boolean \"running\" and string \"status\""),
                value,
                source: None,
            }),
        }
    }

    /// Asks QEMU to exit and waits until it has closed the connection (QEMU may close it before
    /// its answer is read; that counts as done). The caller still reaps the process.
    pub fn quit(&mut self, timeout: Duration) -> Result<(), QmpError> {
        let start = Instant::now();
        match self.execute_within(&qmp::quit {}, timeout) {
            Ok(_) | Err(QmpError::Closed { .. }) => {}
            Err(e) => return Err(e),
        }
        let remaining = timeout.saturating_sub(start.elapsed());
        if self.shared.wait_closed(remaining) {
            Ok(())
        } else {
            Err(QmpError::QuitTimedOut { timeout })
        }
    }
}

impl Drop for Qmp {
    fn drop(&mut self) {
        // Shutting the socket ends the reader's blocking read; the join then cannot hang.
        let _ = self.writer.shutdown(std::net::Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// The first line: `{"QMP": {"version": ..., "capabilities": [...]}}`, within `timeout`.
fn read_greeting(
    input: &mut BufReader<UnixStream>,
    journal: &Journal,
    connected: Instant,
    timeout: Duration,
) -> Result<qmp::QMP, QmpError> {
    let problem = |problem: String| QmpError::Greeting {
        problem,
        source: None,
    };
    input
        .get_ref()
        .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
        .map_err(|e| QmpError::greeting("setting the socket's read timeout", e))?;
    let mut line = Vec::new();
    match io::Read::take(&mut *input, MAX_LINE as u64).read_until(b'\n', &mut line) {
        Ok(0) => return Err(problem("QEMU closed the connection before greeting".into())),
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            return Err(problem(format!("none within {timeout:?}")))
        }
        Err(e) => return Err(QmpError::greeting("reading it", e)),
    }
    let line = line.trim_ascii_end();
    let parsed = serde_json::from_slice::<qmp::QapiCapabilities>(line);
    // Journal failures at this point are reported by the caller's later writes, if they persist.
    let is_json = serde_json::from_slice::<Value>(line).is_ok();
    let _ = journal.record(Direction::Received, connected.elapsed(), line, is_json);
    parsed.map(|caps| caps.QMP).map_err(|e| {
        QmpError::greeting(
            format!(
                "expected {{\"QMP\": {{\"version\": ..., \"capabilities\": [...]}}}}, \
                 byte {} of {}",
                e.column().saturating_sub(1),
                String::from_utf8_lossy(line)
            ),
            e,
        )
    })
}

fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
    )
}
