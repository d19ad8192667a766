//! The session over a socket pair with a scripted fake QEMU: framing, pairing by id, events
//! between a command and its answer, malformed and stray lines, and the end of the connection.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;

const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}"#;
const TS: &str = r#""timestamp": {"seconds": 1700000000, "microseconds": 5}"#;

/// What the fake does with one command: lines to send back, then whether to hang up.
struct Act {
    lines: Vec<String>,
    hang_up: bool,
}

fn send(lines: Vec<String>) -> Act {
    Act {
        lines,
        hang_up: false,
    }
}

fn ret(command: &Value, value: Value) -> String {
    json!({"return": value, "id": command["id"]}).to_string()
}

fn event(name: &str, data: &str) -> String {
    format!(r#"{{{TS}, "event": "{name}", "data": {data}}}"#)
}

/// Runs a fake QEMU on `stream`: greeting, then `script` for every command after
/// qmp_capabilities (which it answers itself), until the script hangs up or we do.
fn fake_qemu(
    stream: UnixStream,
    mut script: impl FnMut(&Value) -> Act + Send + 'static,
) -> thread::JoinHandle<Vec<Value>> {
    thread::spawn(move || {
        let mut out = stream.try_clone().unwrap();
        let mut seen = Vec::new();
        writeln!(out, "{GREETING}\r").unwrap();
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let command: Value = serde_json::from_str(&line).unwrap();
            seen.push(command.clone());
            let act = if command["execute"] == "qmp_capabilities" {
                send(vec![ret(&command, json!({}))])
            } else {
                script(&command)
            };
            for line in act.lines {
                // QEMU terminates lines with \r\n.
                if write!(out, "{line}\r\n").is_err() {
                    return seen;
                }
            }
            if act.hang_up {
                break;
            }
        }
        seen
    })
}

fn session(
    script: impl FnMut(&Value) -> Act + Send + 'static,
) -> (
    Qmp,
    Receiver<QmpEvent>,
    thread::JoinHandle<Vec<Value>>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let (ours, theirs) = UnixStream::pair().unwrap();
    let fake = fake_qemu(theirs, script);
    let (qmp, events) =
        Qmp::connect(ours, &dir.path().join("qmp.jsonl"), Duration::from_secs(5)).unwrap();
    (qmp, events, fake, dir)
}

fn journal(dir: &tempfile::TempDir) -> Vec<Value> {
    std::fs::read_to_string(dir.path().join("qmp.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn handshake_commands_and_journal() {
    let (mut qmp, _events, fake, dir) = session(|c| match c["execute"].as_str() {
        Some("query-status") => send(vec![ret(
            c,
            json!({"running": false, "singlestep": false, "status": "prelaunch"}),
        )]),
        _ => send(vec![ret(c, json!({}))]),
    });
    assert_eq!(qmp.greeting().version.qemu.major, 7);
    let status = qmp.query_status().unwrap();
    assert_eq!(
        status,
        RunStatus {
            running: false,
            status: "prelaunch".into()
        }
    );
    assert_eq!(status.typed(), Some(qmp::RunState::prelaunch));
    qmp.cont().unwrap();
    drop(qmp);
    let seen = fake.join().unwrap();
    let names: Vec<&str> = seen.iter().filter_map(|c| c["execute"].as_str()).collect();
    assert_eq!(names, ["qmp_capabilities", "query-status", "cont"]);
    let ids: Vec<u64> = seen.iter().filter_map(|c| c["id"].as_u64()).collect();
    assert_eq!(ids, [1, 2, 3]);

    let records = journal(&dir);
    let dirs: Vec<&str> = records.iter().filter_map(|r| r["dir"].as_str()).collect();
    assert_eq!(
        dirs,
        ["received", "sent", "received", "sent", "received", "sent", "received"]
    );
    assert_eq!(records[0]["msg"]["QMP"]["capabilities"][0], "oob");
    assert_eq!(records[3]["msg"]["execute"], "query-status");
    assert_eq!(records[4]["msg"]["return"]["status"], "prelaunch");
    let times: Vec<f64> = records.iter().map(|r| r["t"].as_f64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

#[test]
fn unknown_event_between_command_and_answer_reaches_both_sides() {
    let (mut qmp, events, _fake, _dir) = session(|c| {
        send(vec![
            event("FROM_THE_FUTURE", r#"{"x": 1}"#),
            event("RESUME", "{}"),
            ret(c, json!({})),
        ])
    });
    qmp.cont().unwrap();
    let first = events.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(first.name, "FROM_THE_FUTURE");
    assert_eq!(first.data, json!({"x": 1}));
    assert!(first.typed.is_none());
    assert_eq!(
        first.timestamp,
        Some(QmpTimestamp {
            seconds: 1_700_000_000,
            microseconds: 5
        })
    );
    let second = events.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(second.name, "RESUME");
    assert!(matches!(second.typed, Some(qmp::Event::RESUME { .. })));
    assert!(second.received >= first.received);
    assert!(qmp.anomalies().is_empty(), "{:?}", qmp.anomalies());
}

#[test]
fn malformed_line_is_logged_and_reported_and_the_session_goes_on() {
    let (mut qmp, _events, _fake, dir) = session(|c| match c["execute"].as_str() {
        Some("stop") => send(vec![
            "{\"return\": oops".into(),
            "[1]".into(),
            ret(c, json!({})),
        ]),
        _ => send(vec![ret(c, json!({}))]),
    });
    qmp.stop().unwrap();
    qmp.cont().unwrap();
    let anomalies = qmp.anomalies();
    assert_eq!(anomalies.len(), 2, "{anomalies:?}");
    match &anomalies[0].kind {
        AnomalyKind::Malformed {
            line,
            problem: LineProblem::NotJson { offset, .. },
        } => {
            assert_eq!(line, "{\"return\": oops");
            assert_eq!(*offset, 11);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        anomalies[1].kind,
        AnomalyKind::Malformed {
            problem: LineProblem::NotAnObject,
            ..
        }
    ));
    let records = journal(&dir);
    assert!(records.iter().any(|r| r["raw"] == "{\"return\": oops"));
    assert!(records.iter().any(|r| r["msg"] == json!([1])));
}

#[test]
fn answers_pair_by_id_even_out_of_order() {
    // The fake holds its answer to the first query-status until the second arrives, then
    // answers the second first; the late first answer is a stray, not the second's answer.
    let mut held: Option<Value> = None;
    let (mut qmp, _events, _fake, _dir) = session(move |c| {
        if c["execute"] != "query-status" {
            return send(vec![ret(c, json!({}))]);
        }
        match held.take() {
            None => {
                held = Some(c.clone());
                send(vec![])
            }
            Some(first) => send(vec![
                ret(c, json!({"running": true, "status": "running"})),
                ret(&first, json!({"running": false, "status": "paused"})),
            ]),
        }
    });
    qmp.set_command_timeout(Duration::from_millis(200));
    let err = qmp.query_status().unwrap_err();
    assert!(
        matches!(
            err,
            QmpError::TimedOut {
                command: "query-status",
                ..
            }
        ),
        "{err}"
    );
    qmp.set_command_timeout(Duration::from_secs(5));
    assert_eq!(qmp.query_status().unwrap().status, "running");
    // The stray answer is read after the one we waited for; a later command flushes it.
    qmp.cont().unwrap();
    let anomalies = qmp.anomalies();
    assert_eq!(
        anomalies.iter().map(|a| &a.kind).collect::<Vec<_>>(),
        [&AnomalyKind::StrayResponse { id: Some(json!(2)) }]
    );
}

#[test]
fn failures_and_undecodable_answers_are_typed() {
    let (mut qmp, _events, _fake, _dir) = session(|c| match c["execute"].as_str() {
        Some("system_reset") => send(vec![
            json!({"error": {"class": "GenericError", "desc": "nope"}, "id": c["id"]}).to_string(),
        ]),
        Some("query-status") => send(vec![ret(
            c,
            json!({"running": false, "status": "hibernating"}),
        )]),
        _ => send(vec![ret(c, json!({}))]),
    });
    match qmp.system_reset().unwrap_err() {
        QmpError::Failed { command, failure } => {
            assert_eq!(command, "system_reset");
            assert_eq!(failure.class, "GenericError");
            assert_eq!(failure.desc, "nope");
        }
        other => panic!("{other}"),
    }
    // The typed path names the mismatch and keeps the answer; the raw path reads it.
    let err = qmp.execute(&qmp::query_status {}).unwrap_err();
    assert_cause_once(&err);
    match err {
        QmpError::Decode {
            value,
            source: Some(error),
            ..
        } => {
            assert_eq!(value["status"], "hibernating");
            assert!(error.to_string().contains("hibernating"), "{error}");
        }
        other => panic!("{other}"),
    }
    let status = qmp.query_status().unwrap();
    assert_eq!(status.status, "hibernating");
    assert_eq!(status.typed(), None);
}

#[test]
fn hang_up_mid_command_fails_it_promptly_and_closes_events() {
    let (mut qmp, events, _fake, _dir) = session(|c| match c["execute"].as_str() {
        Some("stop") => Act {
            lines: vec![event("STOP", "{}")],
            hang_up: true,
        },
        _ => send(vec![ret(c, json!({}))]),
    });
    let start = Instant::now();
    let err = qmp.stop().unwrap_err();
    assert!(
        matches!(
            err,
            QmpError::Closed {
                command: "stop",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("QEMU closed the QMP connection"));
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(events.recv().unwrap().name, "STOP");
    assert!(events.recv().is_err(), "the events channel must close");
    assert!(qmp.is_closed());
    assert!(matches!(
        qmp.cont().unwrap_err(),
        QmpError::Closed {
            command: "cont",
            ..
        }
    ));
}

#[test]
fn quit_waits_for_qemu_to_hang_up() {
    let (mut qmp, events, _fake, _dir) = session(|c| Act {
        lines: vec![
            ret(c, json!({})),
            event("SHUTDOWN", r#"{"guest": false, "reason": "host-qmp-quit"}"#),
        ],
        hang_up: c["execute"] == "quit",
    });
    qmp.quit(Duration::from_secs(5)).unwrap();
    assert!(qmp.is_closed());
    let shutdown = events.recv().unwrap();
    assert_eq!(shutdown.reason(), Some("host-qmp-quit"));
    assert_eq!(shutdown.guest_initiated(), Some(false));
}

#[test]
fn quit_times_out_when_qemu_stays() {
    let (mut qmp, _events, _fake, _dir) = session(|c| send(vec![ret(c, json!({}))]));
    let start = Instant::now();
    let err = qmp.quit(Duration::from_millis(300)).unwrap_err();
    assert!(matches!(err, QmpError::QuitTimedOut { .. }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn dropping_the_session_does_not_wait_for_qemu() {
    let (qmp, events, _fake, _dir) = session(|c| send(vec![ret(c, json!({}))]));
    let start = Instant::now();
    drop(qmp);
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(events.recv().is_err());
}

#[test]
fn bad_or_missing_greetings_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("qmp.jsonl");
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    writeln!(theirs, r#"{{"hello": "world"}}"#).unwrap();
    let err = Qmp::connect(ours, &log, Duration::from_secs(5))
        .err()
        .unwrap();
    assert_cause_once(&err);
    match err {
        QmpError::Greeting { problem, .. } => assert!(problem.contains("hello"), "{problem}"),
        other => panic!("{other}"),
    }
    let (ours, _silent) = UnixStream::pair().unwrap();
    let start = Instant::now();
    match Qmp::connect(ours, &log, Duration::from_millis(200))
        .err()
        .unwrap()
    {
        QmpError::Greeting { problem, .. } => assert!(problem.contains("none within"), "{problem}"),
        other => panic!("{other}"),
    }
    assert!(start.elapsed() < Duration::from_secs(2));
    let (ours, theirs) = UnixStream::pair().unwrap();
    drop(theirs);
    match Qmp::connect(ours, &log, Duration::from_secs(5))
        .err()
        .unwrap()
    {
        QmpError::Greeting { problem, .. } => assert!(problem.contains("closed"), "{problem}"),
        other => panic!("{other}"),
    }
}

#[test]
fn accept_is_bounded_and_notices_an_exited_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("qmp.jsonl");
    let listener = UnixListener::bind(dir.path().join("qmp.sock")).unwrap();
    let start = Instant::now();
    let err = Qmp::accept(&listener, &log, Duration::from_millis(200), || false)
        .err()
        .unwrap();
    assert!(matches!(err, QmpError::AcceptTimedOut { .. }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(2));

    let mut polls = 0;
    let err = Qmp::accept(&listener, &log, Duration::from_secs(30), || {
        polls += 1;
        polls > 3
    })
    .err()
    .unwrap();
    assert!(matches!(err, QmpError::ExitedBeforeConnecting), "{err}");
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[test]
fn accept_takes_a_connecting_client() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("qmp.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let client = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        let stream = UnixStream::connect(sock).unwrap();
        fake_qemu(stream, |c| send(vec![ret(c, json!({}))]))
            .join()
            .unwrap()
    });
    let (mut qmp, _events) = Qmp::accept(
        &listener,
        &dir.path().join("qmp.jsonl"),
        Duration::from_secs(5),
        || false,
    )
    .unwrap();
    qmp.cont().unwrap();
    drop(qmp);
    assert_eq!(client.join().unwrap().len(), 2);
}

/// `err` has a source, and `error_chain` says it exactly once.
fn assert_cause_once(err: &QmpError) {
    let cause = std::error::Error::source(err)
        .unwrap_or_else(|| panic!("no source: {err}"))
        .to_string();
    let chain = crate::error_chain(err);
    assert_eq!(chain.matches(&cause).count(), 1, "{chain}");
}

#[test]
fn an_encode_error_keeps_serde_as_its_source() {
    let source = serde_json::from_str::<u8>("x").unwrap_err();
    let err = QmpError::Encode {
        command: "stop",
        source,
    };
    assert_cause_once(&err);
    assert!(
        crate::error_chain(&err).starts_with("stop: cannot encode the command: "),
        "{err}"
    );
}
