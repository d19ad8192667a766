//! `bootrig doctor` (placeholder: filled by the doctor work).
use super::{CliError, CliResult};

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {}

pub fn run(_args: DoctorArgs) -> CliResult {
    Err(CliError("doctor: not built yet".into()))
}
