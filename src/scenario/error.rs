//! How a scenario is refused: always naming the file, and where the value is in the file, its
//! line and column.

use std::path::{Path, PathBuf};

use super::location::{toml_error, Located, NotUtf8At};
use super::paths::PathProblem;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ScenarioError {
    #[error("{path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not the shape of a scenario: TOML syntax, an unknown key, a wrong type.
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A value of the right type that cannot be used, at the value.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// Scenario files are TOML, which is UTF-8; the first byte that is not.
    #[error("{path}:{line}:{column}: byte 0x{byte:02x} at byte offset {offset} is not UTF-8{hint}; save it as UTF-8")]
    NotUtf8 {
        path: PathBuf,
        line: usize,
        column: usize,
        offset: usize,
        byte: u8,
        /// What the bytes look like, when that helps (a UTF-16 byte order mark).
        hint: &'static str,
    },
    /// Files and directories the scenario names that are not there: every one, each at its key.
    #[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Paths(Vec<PathProblem>),
}

pub(super) use super::location::Refusal;

impl Refusal {
    pub fn in_file(self, text: &str, path: &Path) -> ScenarioError {
        let Located {
            line,
            column,
            message,
        } = self.located(text);
        ScenarioError::Invalid {
            path: path.to_owned(),
            line,
            column,
            message,
        }
    }
}

/// A toml error as `file:line:column: message`, with a suggestion for a misspelt key or value
/// from the names allowed where it is written.
pub(super) fn syntax_error(text: &str, path: &Path, e: &toml::de::Error) -> ScenarioError {
    let Located {
        line,
        column,
        message,
    } = toml_error(text, e);
    ScenarioError::Syntax {
        path: path.to_owned(),
        line,
        column,
        message,
    }
}

/// Where a scenario file stops being UTF-8.
pub(super) fn not_utf8(at: NotUtf8At, path: &Path) -> ScenarioError {
    ScenarioError::NotUtf8 {
        path: path.to_owned(),
        line: at.line,
        column: at.column,
        offset: at.offset,
        byte: at.byte,
        hint: at.hint,
    }
}
