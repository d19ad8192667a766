//! One `[[expect.shell]]` step: the driver's vocabulary, which a scenario names. It lives here,
//! not in `scenario`, so `console` imports nothing that imports `console` (scenario names a
//! `verdict` cause, and `verdict` reads console lines).

use serde::{Deserialize, Serialize};

/// One command for a shell in the guest, and what its output must show.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellStep {
    pub command: String,
    /// Regular expressions that must all match the command's output.
    #[serde(default)]
    pub patterns: Vec<String>,
    /// Expected exit status [0].
    #[serde(default)]
    pub status: i32,
}
