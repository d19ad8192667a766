//! Helpers for the per-table tests: a minimal scenario to add a table to, and the assertion
//! that a refusal names the file and the line and column of the value it refuses.

use std::path::Path;

use super::location::line_column;
use super::Scenario;

/// The smallest scenario: required tables only, paths not checked by `parse`.
pub const MINIMAL: &str = "name = \"t\"\n[kernel]\nimage = \"/k\"\nmodules = \"/m\"\n[initrd]\n";

/// `MINIMAL` with `more` after it (a table or keys of `[initrd]`).
pub fn with(more: &str) -> String {
    format!("{MINIMAL}{more}\n")
}

/// Parses `text` as `dir/s.toml`; the scenario.
pub fn parsed(text: &str) -> Scenario {
    Scenario::parse(text, Path::new("dir/s.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Asserts `text` is refused at the first occurrence of `at` in it, naming the file, saying
/// `says`; returns the message.
pub fn refused_at(text: &str, at: &str, says: &str) -> String {
    let offset = text
        .find(at)
        .unwrap_or_else(|| panic!("{at:?} is not in the test's text"));
    let (line, column) = line_column(text, offset);
    let e = match Scenario::parse(text, Path::new("dir/s.toml")) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    };
    let place = format!("dir/s.toml:{line}:{column}: ");
    assert!(e.starts_with(&place), "want {place}…\n got {e}\n{text}");
    assert!(e.contains(says), "want …{says}…\n got {e}");
    e
}
