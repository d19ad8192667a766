//! `bootrig modules …` (placeholder: filled by the module planner work).
use super::{CliError, CliResult};

#[derive(Debug, clap::Subcommand)]
pub enum ModulesCommand {
    /// Print the load plan for MODULE… on a kernel.
    Plan,
}

pub fn run(_cmd: ModulesCommand) -> CliResult {
    Err(CliError("modules plan: not built yet".into()))
}
