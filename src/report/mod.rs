//! The Report stage, the end of `bootrig run`: plain data in ([`model`]), files and terminal
//! output out — JSON ([`json`]), JUnit XML ([`junit`]), the final table ([`table`]), live
//! progress ([`progress`]); plus `--shard K/N` selection ([`shard`]) and joining shard reports
//! ([`merge`]). Nothing here depends on other bootrig modules' types except `fsutil`.

pub mod json;
pub mod junit;
pub mod merge;
pub mod model;
pub mod progress;
pub mod shard;
pub mod table;
pub mod text;
pub mod time;

pub use json::{read_report, write_report, ReportFileError};
pub use junit::{to_junit_xml, write_junit};
pub use merge::{merge, MergeError, Merged};
pub use model::{
    BootSummary, CauseReport, Finding, Outcome, PhaseTiming, RunReport, ScenarioReport, Shard,
    Totals, SCHEMA,
};
pub use progress::Progress;
pub use shard::{shard_of, ShardParseError};
pub use table::render_table;
pub use time::rfc3339_utc;
