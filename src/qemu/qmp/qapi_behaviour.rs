//! What the qapi crate (0.15, schema of QEMU ~9.1) does with messages its compiled schema does
//! not know. These tests pin the facts bootrig's own line classification (message.rs) is built
//! around; if a qapi upgrade changes them, they fail and say so.

use std::io::Cursor;

use qapi::qmp::{self, Event, QmpMessageAny};
use serde_json::json;

const TS: &str = r#""timestamp": {"seconds": 1, "microseconds": 2}"#;

fn line(body: &str) -> String {
    format!("{{{TS}, {body}}}")
}

#[test]
fn unknown_event_name_is_a_decode_error() {
    let unknown = line(r#""event": "FROM_THE_FUTURE", "data": {}"#);
    let err = serde_json::from_str::<Event>(&unknown).unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown variant `FROM_THE_FUTURE`"),
        "{err}"
    );
    // The message enum the crate's own client reads with is untagged: no variant matches.
    let err = serde_json::from_str::<QmpMessageAny>(&unknown).unwrap_err();
    assert!(
        err.to_string().contains("did not match any variant"),
        "{err}"
    );
}

#[test]
fn unknown_field_in_known_event_is_ignored() {
    let extra = line(
        r#""event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown", "new-field": 1}"#,
    );
    match serde_json::from_str::<Event>(&extra).unwrap() {
        Event::SHUTDOWN { data, .. } => {
            assert!(data.guest);
            assert_eq!(data.reason, qmp::ShutdownCause::guest_shutdown);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_enum_value_or_missing_field_in_known_event_is_a_decode_error() {
    let new_reason =
        line(r#""event": "SHUTDOWN", "data": {"guest": true, "reason": "host-future"}"#);
    let err = serde_json::from_str::<Event>(&new_reason).unwrap_err();
    assert!(err.to_string().contains("host-future"), "{err}");
    let missing = line(r#""event": "SHUTDOWN", "data": {"guest": true}"#);
    assert!(serde_json::from_str::<Event>(&missing).is_err());
}

#[test]
fn unknown_enum_value_in_a_return_is_a_decode_error() {
    let status = json!({"return": {"running": false, "status": "hibernating"}});
    let err = serde_json::from_value::<qapi::qmp::QmpMessage<qmp::StatusInfo>>(status).unwrap_err();
    assert!(
        err.to_string().contains("did not match any variant"),
        "{err}"
    );
    let err = serde_json::from_value::<qmp::StatusInfo>(
        json!({"running": false, "status": "hibernating"}),
    )
    .unwrap_err();
    assert!(err.to_string().contains("hibernating"), "{err}");
}

/// The crate's synchronous client: an unknown event between a command and its return fails the
/// command, and the return it never read answers the *next* command. The session is lost.
#[test]
fn crate_sync_client_desynchronises_on_an_unknown_event() {
    let from_qemu = [
        line(r#""event": "FROM_THE_FUTURE""#),
        r#"{"return": {"running": true, "singlestep": false, "status": "running"}}"#.to_owned(),
        r#"{"return": {}}"#.to_owned(),
    ]
    .join("\n")
        + "\n";
    let stream = qapi::Stream::new(Cursor::new(from_qemu.into_bytes()), Vec::<u8>::new());
    let mut client = qapi::Qmp::new(stream);
    let first = client.execute(&qmp::query_status {});
    assert!(matches!(first, Err(qapi::ExecuteError::Io(_))), "{first:?}");
    // `cont` returns Empty, and the stale StatusInfo object is accepted as Empty: a silent
    // pairing of the wrong answer with the wrong command.
    assert!(client.execute(&qmp::cont {}).is_ok());
    let third = client.execute(&qmp::system_reset {});
    assert!(
        third.is_ok(),
        "the stale `cont` return answers system_reset"
    );
    assert!(client.execute(&qmp::stop {}).is_err(), "stream exhausted");
}
