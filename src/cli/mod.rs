//! The command-line front: parses arguments with clap and calls one library entry point per
//! command. The exit code is decided here and only here: 0 pass, 1 failures found (a plan with
//! errors, a scenario that failed), 2 usage or input errors.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod build;
pub mod cleanup;
pub mod doctor;
pub mod initrd;
pub mod modules;
pub mod report;
pub mod run;
pub mod vfio;

/// What a command found, when it ran to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything checked passed.
    Pass,
    /// The command ran, and what it checked has failures (exit 1).
    Fail,
    /// Stopped by Ctrl-C or SIGTERM before it finished (exit 130, as a shell reports SIGINT).
    Interrupted,
}

/// A usage or input error (exit 2): the message names the file and the fix.
#[derive(Debug)]
pub struct CliError(pub String);

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: std::error::Error> From<E> for CliError {
    fn from(e: E) -> Self {
        // The typed error's Display already names file, offset and fix; keep its causes too.
        CliError(crate::error_chain(&e))
    }
}

pub type CliResult = Result<Outcome, CliError>;

#[derive(Debug, Parser)]
#[command(
    name = "bootrig",
    version,
    about = "End-to-end test harness for diskless network boot on Mellanox/NVIDIA adapters"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read, list, extract, diff and patch initrd images.
    #[command(subcommand)]
    Initrd(initrd::InitrdCommand),
    /// Plan and vet kernel modules for a target kernel.
    #[command(subcommand)]
    Modules(modules::ModulesCommand),
    /// Build a scenario's patched initrd (and plan.json beside it).
    Build(build::BuildArgs),
    /// Netboot each scenario in QEMU (iPXE, BIOS or UEFI), drive its console, judge and report.
    Run(run::RunArgs),
    /// The same with QEMU's direct kernel boot (-kernel/-initrd): a quick check of the initrds.
    Check(run::RunArgs),
    /// Boot a field initrd unchanged and classify what happens.
    Repro(run::ReproArgs),
    /// Remove the network namespaces, taps and processes that killed runs left.
    Cleanup(cleanup::CleanupArgs),
    /// Pass a lab adapter to guests with VFIO: check it, put the host back after a killed run.
    #[command(subcommand)]
    Vfio(vfio::VfioCommand),
    /// Check this host for what bootrig needs, and say how to get what is missing.
    Doctor(doctor::DoctorArgs),
    /// Join and convert run reports.
    #[command(subcommand)]
    Report(report::ReportCommand),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout with exit 0, usage errors to stderr with exit 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    exit_code(run(cli.command))
}

/// Runs one command.
pub fn run(command: Command) -> CliResult {
    match command {
        Command::Initrd(cmd) => initrd::run(cmd),
        Command::Modules(cmd) => modules::run(cmd),
        Command::Build(args) => build::run(args),
        Command::Run(args) => run::run(args),
        Command::Check(args) => run::check(args),
        Command::Repro(args) => run::repro(args),
        Command::Cleanup(args) => cleanup::run(args),
        Command::Vfio(cmd) => vfio::run(cmd),
        Command::Doctor(args) => doctor::run(args),
        Command::Report(cmd) => report::run(cmd),
    }
}

/// The one place that maps a result to the process exit code.
pub fn exit_code(result: CliResult) -> ExitCode {
    match result {
        Ok(Outcome::Pass) => ExitCode::SUCCESS,
        Ok(Outcome::Fail) => ExitCode::from(1),
        Ok(Outcome::Interrupted) => ExitCode::from(130),
        Err(CliError(msg)) => {
            if !msg.is_empty() {
                eprintln!("bootrig: error: {msg}");
            }
            ExitCode::from(2)
        }
    }
}

/// A clap parser for a number of seconds in (0, `max`].
pub fn seconds_up_to(max: f64) -> impl Fn(&str) -> Result<std::time::Duration, String> + Clone {
    move |text| {
        let secs: f64 = text
            .parse()
            .map_err(|_| format!("expected a number of seconds, got {text:?}"))?;
        if !(secs > 0.0 && secs <= max) {
            return Err(format!("expected between 0 and {max} seconds, got {text}"));
        }
        Ok(std::time::Duration::from_secs_f64(secs))
    }
}

/// A report as pretty JSON (with a final newline) or as the text `table` makes.
pub fn json_or<T: serde::Serialize>(
    json: bool,
    report: &T,
    table: impl FnOnce(&T) -> String,
) -> Result<String, CliError> {
    if !json {
        return Ok(table(report));
    }
    let mut text = serde_json::to_string_pretty(report)
        .map_err(|e| CliError(format!("serialising the report: {e}")))?;
    text.push('\n');
    Ok(text)
}

/// Writes to stdout; a closed pipe (`bootrig initrd ls IMG | head`) ends quietly.
pub fn print_out(text: &str) -> Result<(), CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(CliError(format!("writing to stdout: {e}"))),
    }
}
