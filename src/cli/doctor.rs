//! `bootrig doctor`: checks the host and prints a table (or JSON with `--json`). Exit 0 when the
//! default path's requirements are all here, 1 when one is missing, 2 on a usage error.

use std::path::PathBuf;
use std::time::Duration;

use super::{print_out, CliResult, Outcome};
use crate::doctor::{self, Host, Options};

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Bound for each accelerator probe, in seconds.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_seconds)]
    pub probe_timeout: Duration,
    /// Read files and sysfs under DIR instead of / (for tests; commands still come from PATH).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    super::seconds_up_to(600.0)(text)
}

pub fn run(args: DoctorArgs) -> CliResult {
    let host = Host::from_env(&args.root);
    let options = Options {
        probe_timeout: args.probe_timeout,
    };
    let report = doctor::run(&host, &options)?;
    let text = super::json_or(args.json, &report, doctor::table)?;
    print_out(&text)?;
    Ok(if report.ready {
        Outcome::Pass
    } else {
        Outcome::Fail
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_timeout_accepts_fractions_and_rejects_nonsense() {
        assert_eq!(parse_seconds("2.5"), Ok(Duration::from_millis(2500)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("NaN").is_err());
        assert!(parse_seconds("five").unwrap_err().contains("\"five\""));
    }
}
