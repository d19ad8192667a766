//! One line from QEMU's QMP monitor, classified by its shape alone (event, return, error,
//! greeting). The qapi crate's typed decoding rejects a whole message over one event name or enum
//! value its compiled schema lacks (see the tests below), so the shape is read from the raw JSON
//! and qapi's types are attached only where they parse.

use std::time::Duration;

use serde_json::{Map, Value};

/// When QEMU emitted an event (host wall clock), as QMP states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QmpTimestamp {
    pub seconds: u64,
    pub microseconds: u64,
}

impl QmpTimestamp {
    pub fn as_secs_f64(self) -> f64 {
        self.seconds as f64 + self.microseconds as f64 / 1e6
    }

    fn from_value(value: &Value) -> Option<Self> {
        Some(Self {
            seconds: value.get("seconds")?.as_u64()?,
            microseconds: value.get("microseconds")?.as_u64()?,
        })
    }
}

/// An asynchronous QMP event, kept whole whether or not qapi's schema knows it.
#[derive(Debug, Clone)]
pub struct QmpEvent {
    /// The event name, e.g. `SHUTDOWN`.
    pub name: String,
    /// The event's `data` member verbatim; an empty object when QEMU sent none.
    pub data: Value,
    /// QEMU's own timestamp; None only if QEMU sent none or a malformed one.
    pub timestamp: Option<QmpTimestamp>,
    /// When bootrig read it, measured from the QMP connection.
    pub received: Duration,
    /// The qapi crate's typed form, when its schema knows the event and every value in it.
    pub typed: Option<qapi::qmp::Event>,
}

impl QmpEvent {
    /// `data.reason` (SHUTDOWN, RESET: a ShutdownCause such as `guest-panic` or `host-qmp-quit`).
    pub fn reason(&self) -> Option<&str> {
        self.data.get("reason")?.as_str()
    }

    /// `data.guest` (SHUTDOWN, RESET): whether the guest asked for it.
    pub fn guest_initiated(&self) -> Option<bool> {
        self.data.get("guest")?.as_bool()
    }

    /// `data.action` (GUEST_PANICKED: `pause`, `poweroff` or `run`).
    pub fn panic_action(&self) -> Option<&str> {
        self.data.get("action")?.as_str()
    }
}

/// QEMU's answer to a command that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandFailure {
    /// The QMP error class, kept as text: qapi's `ErrorClass` enum has no catch-all either.
    pub class: String,
    pub desc: String,
}

/// A line from QEMU, by shape.
#[derive(Debug, Clone)]
pub(crate) enum Incoming {
    Greeting,
    /// Boxed: an event with its typed form is far larger than the other variants.
    Event(Box<QmpEvent>),
    Return {
        id: Option<Value>,
        value: Value,
    },
    Error {
        id: Option<Value>,
        failure: CommandFailure,
    },
}

/// Why a line could not be used; the session goes on without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineProblem {
    /// Not JSON; `offset` is the byte in the line where parsing stopped.
    NotJson { offset: usize, error: String },
    /// JSON, but not an object.
    NotAnObject,
    /// An object with none of `event`, `return`, `error`, `QMP`, or with one of the wrong type.
    UnknownShape { keys: Vec<String> },
}

impl std::fmt::Display for LineProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineProblem::NotJson { offset, error } => {
                write!(f, "expected a JSON object, byte {offset}: {error}")
            }
            LineProblem::NotAnObject => write!(f, "expected a JSON object, got another JSON value"),
            LineProblem::UnknownShape { keys } => write!(
                f,
                "expected an object with \"event\", \"return\", \"error\" or \"QMP\", got keys {keys:?}"
            ),
        }
    }
}

/// Classifies one line (without its line ending).
pub(crate) fn classify(line: &[u8], received: Duration) -> Result<Incoming, LineProblem> {
    let value: Value = serde_json::from_slice(line).map_err(|e| LineProblem::NotJson {
        offset: byte_offset(line, e.line(), e.column()),
        error: e.to_string(),
    })?;
    let Value::Object(object) = value else {
        return Err(LineProblem::NotAnObject);
    };
    classify_object(object, received)
}

fn classify_object(
    mut object: Map<String, Value>,
    received: Duration,
) -> Result<Incoming, LineProblem> {
    let unknown = |object: &Map<String, Value>| LineProblem::UnknownShape {
        keys: object.keys().cloned().collect(),
    };
    if object.contains_key("event") {
        let Some(name) = object
            .get("event")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return Err(unknown(&object));
        };
        let timestamp = object.get("timestamp").and_then(QmpTimestamp::from_value);
        // Decoded from a clone: qapi's failure must not cost the raw message.
        let typed = serde_json::from_value(Value::Object(object.clone())).ok();
        let data = object
            .remove("data")
            .unwrap_or_else(|| Value::Object(Map::new()));
        return Ok(Incoming::Event(Box::new(QmpEvent {
            name,
            data,
            timestamp,
            received,
            typed,
        })));
    }
    if let Some(value) = object.remove("return") {
        return Ok(Incoming::Return {
            id: object.remove("id"),
            value,
        });
    }
    if let Some(error) = object.get("error") {
        let text = |key: &str| error.get(key).and_then(Value::as_str).map(str::to_owned);
        let (Some(class), Some(desc)) = (text("class"), text("desc")) else {
            return Err(unknown(&object));
        };
        return Ok(Incoming::Error {
            id: object.remove("id"),
            failure: CommandFailure { class, desc },
        });
    }
    if object.contains_key("QMP") {
        return Ok(Incoming::Greeting);
    }
    Err(unknown(&object))
}

/// serde_json reports 1-based line and column (bytes within the line); QMP lines have no
/// newline inside, but count across any so the offset stays right.
fn byte_offset(text: &[u8], line: usize, column: usize) -> usize {
    let line_start = text
        .split_inclusive(|&b| b == b'\n')
        .take(line.saturating_sub(1))
        .map(<[u8]>::len)
        .sum::<usize>();
    (line_start + column.saturating_sub(1)).min(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_millis(7);

    fn event(line: &str) -> QmpEvent {
        match classify(line.as_bytes(), T).unwrap() {
            Incoming::Event(e) => *e,
            other => panic!("not an event: {other:?}"),
        }
    }

    #[test]
    fn known_event_keeps_raw_and_typed_forms() {
        let e = event(
            r#"{"timestamp": {"seconds": 1700000000, "microseconds": 250000}, "event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-panic"}}"#,
        );
        assert_eq!(e.name, "SHUTDOWN");
        assert_eq!(e.reason(), Some("guest-panic"));
        assert_eq!(e.guest_initiated(), Some(true));
        assert_eq!(e.received, T);
        let ts = e.timestamp.unwrap();
        assert_eq!((ts.seconds, ts.microseconds), (1_700_000_000, 250_000));
        assert!((ts.as_secs_f64() - 1_700_000_000.25).abs() < 1e-6);
        match e.typed {
            Some(qapi::qmp::Event::SHUTDOWN { data, .. }) => {
                assert_eq!(data.reason, qapi::qmp::ShutdownCause::guest_panic);
            }
            other => panic!("typed: {other:?}"),
        }
    }

    #[test]
    fn event_without_data_gets_an_empty_object() {
        let e = event(r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}"#);
        assert_eq!(e.data, serde_json::json!({}));
        assert!(matches!(e.typed, Some(qapi::qmp::Event::STOP { .. })));
    }

    #[test]
    fn unknown_event_is_kept_raw() {
        let e = event(
            r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "FROM_THE_FUTURE", "data": {"x": [1]}}"#,
        );
        assert_eq!(e.name, "FROM_THE_FUTURE");
        assert_eq!(e.data, serde_json::json!({"x": [1]}));
        assert!(e.typed.is_none());
    }

    #[test]
    fn unknown_enum_value_in_known_event_is_kept_raw() {
        let e = event(
            r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-from-the-future"}}"#,
        );
        assert_eq!(e.reason(), Some("host-from-the-future"));
        assert!(e.typed.is_none());
    }

    #[test]
    fn returns_and_errors_with_and_without_ids() {
        match classify(br#"{"return": {}, "id": 4}"#, T).unwrap() {
            Incoming::Return { id, value } => {
                assert_eq!(id, Some(Value::from(4)));
                assert_eq!(value, serde_json::json!({}));
            }
            other => panic!("{other:?}"),
        }
        match classify(
            br#"{"error": {"class": "SomeFutureClass", "desc": "no"}}"#,
            T,
        )
        .unwrap()
        {
            Incoming::Error { id, failure } => {
                assert_eq!(id, None);
                assert_eq!(failure.class, "SomeFutureClass");
                assert_eq!(failure.desc, "no");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify(br#"{"QMP": {"version": {}}}"#, T).unwrap(),
            Incoming::Greeting
        ));
    }

    #[test]
    fn malformed_lines_are_typed_problems_with_offsets() {
        match classify(br#"{"return": {}, oops}"#, T).unwrap_err() {
            LineProblem::NotJson { offset, .. } => assert_eq!(offset, 15),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            classify(b"[1, 2]", T).unwrap_err(),
            LineProblem::NotAnObject
        );
        let problem = classify(br#"{"hello": 1}"#, T).unwrap_err();
        assert_eq!(
            problem,
            LineProblem::UnknownShape {
                keys: vec!["hello".into()]
            }
        );
        assert!(problem.to_string().contains("hello"), "{problem}");
        assert!(matches!(
            classify(br#"{"event": 5}"#, T).unwrap_err(),
            LineProblem::UnknownShape { .. }
        ));
        assert!(matches!(
            classify(br#"{"error": "text"}"#, T).unwrap_err(),
            LineProblem::UnknownShape { .. }
        ));
        assert!(matches!(
            classify(b"\xff\xfe", T).unwrap_err(),
            LineProblem::NotJson { offset: 0, .. }
        ));
    }
}
