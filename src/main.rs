//! The `bootrig` command: a thin front over the library. Exit codes are decided in one place
//! (`bootrig::cli::exit_code`): 0 pass, 1 scenario or check failures, 2 usage or input errors.

use std::process::ExitCode;

fn main() -> ExitCode {
    bootrig::cli::main()
}
