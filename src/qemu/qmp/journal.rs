//! `qmp.jsonl`: every QMP message in both directions, one JSON object per line:
//! `{"t": <seconds since connect>, "dir": "sent"|"received", "msg": <the message verbatim>}`,
//! or `"raw": "<text>"` instead of `msg` for a line that is not JSON.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use crate::names::Named;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, strum::IntoStaticStr, strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub(crate) enum Direction {
    Sent,
    Received,
}

/// Shared by the writing caller and the reader thread; each record is one `write_all` under the
/// lock, unbuffered, so the file is complete up to the last message even if bootrig is killed.
pub(crate) struct Journal {
    file: Mutex<File>,
}

impl Journal {
    pub(crate) fn create(path: &Path) -> io::Result<Self> {
        Ok(Self {
            file: Mutex::new(File::create(path)?),
        })
    }

    /// Records `line` (without its line ending). `is_json` says the caller parsed it as JSON,
    /// so it can be embedded byte for byte; anything else is embedded as a JSON string.
    pub(crate) fn record(
        &self,
        direction: Direction,
        at: Duration,
        line: &[u8],
        is_json: bool,
    ) -> io::Result<()> {
        let mut record = format!(
            "{{\"t\":{:.6},\"dir\":\"{}\",",
            at.as_secs_f64(),
            direction.as_str()
        )
        .into_bytes();
        if is_json {
            record.extend_from_slice(b"\"msg\":");
            record.extend_from_slice(line);
        } else {
            record.extend_from_slice(b"\"raw\":");
            let text = String::from_utf8_lossy(line);
            // Serialising a str cannot fail.
            record.extend(serde_json::to_vec(&*text).unwrap_or_default());
        }
        record.extend_from_slice(b"}\n");
        // A poisoned lock only means another thread panicked mid-write; the file is still usable.
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(&record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn direction_names_are_serdes() {
        crate::names::assert_serde_names::<Direction>();
        assert_eq!(Direction::Received.as_str(), "received");
    }

    #[test]
    fn records_are_one_json_object_per_line_with_messages_verbatim() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.jsonl");
        let journal = Journal::create(&path).unwrap();
        let msg = br#"{"execute": "cont", "id": 1}"#;
        journal
            .record(Direction::Sent, Duration::from_millis(1500), msg, true)
            .unwrap();
        journal
            .record(
                Direction::Received,
                Duration::ZERO,
                b"not \"json\" \xff",
                false,
            )
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].contains(r#""msg":{"execute": "cont", "id": 1}"#),
            "{}",
            lines[0]
        );
        let first: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["dir"], "sent");
        assert_eq!(first["t"].as_f64(), Some(1.5));
        let second: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(second["dir"], "received");
        assert_eq!(second["raw"], "not \"json\" \u{fffd}");
    }
}
