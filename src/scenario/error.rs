//! How a scenario is refused: always naming the file, and where the value is in the file, its
//! line and column.

use std::path::{Path, PathBuf};

use thiserror::Error;
use toml::Spanned;

use super::location::line_column;
use super::paths::PathProblem;

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

/// A value the file gives that cannot be used: the byte offset where it is written and what is
/// wrong with it (with the fix). The per-table checks return it; [`Refusal::in_file`] makes it a
/// [`ScenarioError`] with the file's name and the line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal {
    pub at: usize,
    pub message: String,
}

impl Refusal {
    /// Refuses `value`, pointing at where it is written.
    pub fn at<T>(value: &Spanned<T>, message: impl Into<String>) -> Self {
        Self {
            at: value.span().start,
            message: message.into(),
        }
    }

    pub fn in_file(self, text: &str, path: &Path) -> ScenarioError {
        let (line, column) = line_column(text, self.at);
        ScenarioError::Invalid {
            path: path.to_owned(),
            line,
            column,
            message: self.message,
        }
    }
}

/// A toml error as `file:line:column: message`, with a suggestion for a misspelt key or value
/// from the names allowed where it is written.
pub(super) fn syntax_error(text: &str, path: &Path, e: &toml::de::Error) -> ScenarioError {
    // toml gives a span for every error it reports against the text; an error without one
    // (none is known) is at least in this file.
    let (line, column) = match e.span() {
        Some(span) => line_column(text, span.start),
        None => (1, 1),
    };
    let mut message = e.message().trim().to_string();
    if let Some(best) = super::keys::suggestion(&message) {
        message.push_str(&format!("; did you mean `{best}`?"));
    }
    ScenarioError::Syntax {
        path: path.to_owned(),
        line,
        column,
        message,
    }
}
