//! `bootrig report merge OUT.json [--junit OUT.xml] IN.json…`: joins shard reports into one.
//! The merge itself succeeding exits 0 even when the merged scenarios failed (it is a file
//! operation, and CI usually gates on the shards' own exit codes); `--gate` makes it exit 1
//! when any scenario failed or errored, for pipelines that gate on the merged result.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{print_out, CliError, CliResult, Outcome};
use crate::report::{merge, read_report, render_table, write_junit, write_report};

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Join the JSON reports of several shards (or runs) into one, with a JUnit file if asked.
    Merge(MergeArgs),
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The merged JSON report to write.
    #[arg(value_name = "OUT.json")]
    out: PathBuf,
    /// The reports to join (`summary.json` of each shard run).
    #[arg(required = true, value_name = "IN.json")]
    inputs: Vec<PathBuf>,
    /// Also write the merged report as JUnit XML.
    #[arg(long, value_name = "OUT.xml")]
    junit: Option<PathBuf>,
    /// Replace OUT.json / OUT.xml if they exist.
    #[arg(long)]
    force: bool,
    /// Exit 1 when a merged scenario failed or errored (default: 0 whenever the merge worked).
    #[arg(long)]
    gate: bool,
}

/// Entry point for `bootrig report …`.
pub fn run(command: ReportCommand) -> CliResult {
    match command {
        ReportCommand::Merge(args) => run_merge(args),
    }
}

fn run_merge(args: MergeArgs) -> CliResult {
    let mut inputs = Vec::with_capacity(args.inputs.len());
    for path in &args.inputs {
        inputs.push((path.clone(), read_report(path)?));
    }
    let merged = merge(inputs)?;
    if !merged.missing_shards.is_empty() {
        let list: Vec<String> = merged.missing_shards.iter().map(u32::to_string).collect();
        eprintln!(
            "bootrig: warning: no report for shard(s) {} of the split; the merge is incomplete",
            list.join(", ")
        );
    }
    // Both files are checked for clobbering before either is written.
    if !args.force {
        for path in std::iter::once(&args.out).chain(args.junit.as_ref()) {
            if path.symlink_metadata().is_ok() {
                return Err(CliError::Usage(format!(
                    "{}: already exists; pass --force to replace it",
                    path.display()
                )));
            }
        }
    }
    write_report(&args.out, &merged.report, args.force)?;
    if let Some(junit) = &args.junit {
        write_junit(junit, &merged.report, args.force)?;
    }
    let colour = std::io::stdout().is_terminal();
    print_out(&render_table(&merged.report, colour))?;
    let totals = merged.report.totals();
    Ok(if args.gate && !totals.all_passed() {
        Outcome::Fail
    } else {
        Outcome::Pass
    })
}
