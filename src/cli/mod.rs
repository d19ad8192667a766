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

/// Why a command stopped without an [`Outcome`] (exit 2; failures found, exit 1, and a stop
/// asked for, exit 130, are outcomes: the command ran and reported them).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A usage or input error the command found itself (exit 2): names the file and the fix.
    #[error("{0}")]
    Usage(String),
    /// A usage or input error from the library (exit 2), printed with each of its causes once.
    #[error("{}", crate::error_chain(.0.as_ref()))]
    Input(Box<dyn std::error::Error + 'static>),
    /// A step of the command itself failed (exit 2): what it was doing, then each cause once.
    #[error("{doing}: {}", crate::error_chain(.cause.as_ref()))]
    Step {
        doing: String,
        cause: Box<dyn std::error::Error + 'static>,
    },
}

impl CliError {
    /// A [`CliError::Step`]: `doing` says what the command was doing when `cause` stopped it.
    pub fn step(doing: impl Into<String>, cause: impl std::error::Error + 'static) -> Self {
        CliError::Step {
            doing: doing.into(),
            cause: Box::new(cause),
        }
    }
}

/// The library errors a command passes on with `?` (a blanket impl would include `CliError`).
macro_rules! input_errors {
    ($($ty:ty),* $(,)?) => {
        $(impl From<$ty> for CliError {
            fn from(e: $ty) -> Self {
                CliError::Input(Box::new(e))
            }
        })*
    };
}

input_errors!(
    crate::build::BuildError,
    crate::doctor::DoctorError,
    crate::fsutil::OutputError,
    crate::initrd::add::AddError,
    crate::initrd::extract::ExtractError,
    crate::initrd::image::ImageError,
    crate::kmod::KmodError,
    crate::net::NetError,
    crate::qemu::LocateError,
    crate::report::json::ReportFileError,
    crate::report::merge::MergeError,
    crate::run::RunError,
    crate::scenario::ScenarioError,
    crate::vfio::VfioError,
);

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
        Err(e) => {
            let msg = e.to_string();
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
        .map_err(|e| CliError::step("serialising the report", e))?;
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
        Err(e) => Err(CliError::step("writing to stdout", e)),
    }
}
