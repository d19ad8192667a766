//! `bootrig initrd …` (placeholder: filled by the archive engine work).
use super::{CliError, CliResult};

#[derive(Debug, clap::Subcommand)]
pub enum InitrdCommand {
    /// List the merged view of an initrd.
    Ls,
}

pub fn run(_cmd: InitrdCommand) -> CliResult {
    Err(CliError("initrd: not built yet".into()))
}
