//! The report as pretty JSON: written atomically with its totals (recomputed from the scenarios,
//! so they can never disagree), read back with errors that name the file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::model::{RunReport, Totals, SCHEMA};
use crate::fsutil::{write_atomic, OutputError};

#[derive(Debug, Error)]
pub enum ReportFileError {
    #[error("{path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a bootrig run report: {message} (line {line}, column {column})")]
    Parse {
        path: PathBuf,
        message: String,
        line: usize,
        column: usize,
    },
    #[error("{path}: not a bootrig run report: no `schema` field")]
    NoSchema { path: PathBuf },
    #[error(
        "{path}: report schema {found}, this bootrig reads schema {expected}; \
         use the bootrig version that wrote it"
    )]
    Schema {
        path: PathBuf,
        found: u64,
        expected: u32,
    },
    #[error(transparent)]
    Write(#[from] OutputError),
}

/// What goes to disk: the report plus its derived totals (ignored on reading).
#[derive(Serialize)]
struct OnDisk<'a> {
    #[serde(flatten)]
    report: &'a RunReport,
    totals: Totals,
}

/// The report as pretty JSON, with a `totals` object and a final newline.
pub fn to_json(report: &RunReport) -> String {
    let on_disk = OnDisk {
        report,
        totals: report.totals(),
    };
    // Plain structs of strings, numbers and vectors: serialising cannot fail (serde_json fails
    // only for non-string map keys or a failing Serialize impl, neither of which exists here).
    let mut text = serde_json::to_string_pretty(&on_disk).unwrap_or_default();
    text.push('\n');
    text
}

/// Writes the report to `path` atomically (see [`crate::fsutil::write_atomic`]).
pub fn write_report(path: &Path, report: &RunReport, force: bool) -> Result<(), ReportFileError> {
    write_atomic(path, to_json(report).as_bytes(), force)?;
    Ok(())
}

/// Reads a report written by [`write_report`], refusing any other schema version.
pub fn read_report(path: &Path) -> Result<RunReport, ReportFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_report(path, &text)
}

/// [`read_report`] on text already read; `path` only names it in errors.
pub fn parse_report(path: &Path, text: &str) -> Result<RunReport, ReportFileError> {
    let parse_err = |e: serde_json::Error| ReportFileError::Parse {
        path: path.to_owned(),
        message: strip_position(&e.to_string()),
        line: e.line(),
        column: e.column(),
    };
    // The version first, so a newer layout is reported as such rather than as a missing field.
    #[derive(Deserialize)]
    struct Version {
        schema: Option<serde_json::Value>,
    }
    let version: Version = serde_json::from_str(text).map_err(parse_err)?;
    match version.schema {
        None => {
            return Err(ReportFileError::NoSchema {
                path: path.to_owned(),
            })
        }
        Some(v) if v.as_u64() == Some(u64::from(SCHEMA)) => {}
        Some(v) => {
            return match v.as_u64() {
                Some(found) => Err(ReportFileError::Schema {
                    path: path.to_owned(),
                    found,
                    expected: SCHEMA,
                }),
                None => Err(ReportFileError::Parse {
                    path: path.to_owned(),
                    message: format!("`schema` is {v}, expected a number"),
                    line: 1,
                    column: 1,
                }),
            };
        }
    }
    serde_json::from_str(text).map_err(parse_err)
}

/// serde_json appends " at line L column C"; the error carries those separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::sample::{run, scenario};
    use super::super::model::{Outcome, Shard};
    use super::*;

    #[test]
    fn round_trips_through_a_file_with_totals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        let mut r = run(vec![
            scenario("a.toml", Outcome::Pass),
            scenario("b.toml", Outcome::Fail),
        ]);
        r.shard = Some(Shard { index: 1, total: 2 });
        r.scenarios[1].console_excerpt = "\x1b[31mred\x1b[0m\0".into();
        write_report(&path, &r, false).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["totals"]["failed"], 1);
        assert_eq!(value["totals"]["passed"], 1);
        assert_eq!(value["scenarios"][1]["outcome"], "fail");
        assert_eq!(read_report(&path).unwrap(), r);
        // Not replaced without force.
        assert!(matches!(
            write_report(&path, &r, false),
            Err(ReportFileError::Write(OutputError::Exists { .. }))
        ));
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let p = Path::new("shard1.json");
        let e = parse_report(p, "{\"schema\": 1, \"host\": 3}").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("shard1.json: not a bootrig run report: "),
            "{msg}"
        );
        assert!(msg.contains("line 1"), "{msg}");

        let e = parse_report(p, "{\"schema\": 99}").unwrap_err();
        assert!(
            matches!(e, ReportFileError::Schema { found: 99, .. }),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("schema 99, this bootrig reads schema 1"),
            "{e}"
        );

        let e = parse_report(p, "{\"scenarios\": []}").unwrap_err();
        assert!(matches!(e, ReportFileError::NoSchema { .. }), "{e}");

        let e = parse_report(p, "[1, 2").unwrap_err();
        assert!(matches!(e, ReportFileError::Parse { .. }), "{e}");

        let e = parse_report(p, "{\"schema\": \"1\"}").unwrap_err();
        assert!(e.to_string().contains("expected a number"), "{e}");

        let e = read_report(Path::new("/nonexistent/r.json")).unwrap_err();
        let text = crate::error_chain(&e);
        assert!(text.starts_with("/nonexistent/r.json: "), "{text}");
    }

    #[test]
    fn missing_optional_fields_read_as_none() {
        let r = run(vec![scenario("a.toml", Outcome::Pass)]);
        let mut v: serde_json::Value = serde_json::from_str(&to_json(&r)).unwrap();
        let obj = v.as_object_mut().unwrap();
        obj.remove("shard");
        let back = parse_report(Path::new("x"), &v.to_string()).unwrap();
        assert_eq!(back.shard, None);
    }
}
