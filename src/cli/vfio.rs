//! `bootrig vfio check BDF` (the passthrough preflight, as a table or JSON) and
//! `bootrig vfio restore` (replays the records a killed run left). Both read sysfs, /dev and
//! /proc under configurable roots, so a tree captured on a lab host can be checked anywhere.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{print_out, CliResult, Outcome};
use crate::vfio::{self, Bdf, CheckOptions, HostPaths, Scope, SysfsKernel};

#[derive(Debug, Subcommand)]
pub enum VfioCommand {
    /// Check that an adapter can be passed to a guest; each failed check says how to fix it.
    Check(CheckArgs),
    /// Put back every device a killed run left bound to vfio-pci (idempotent).
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub struct RootArgs {
    /// Read (and on restore, write) sysfs under DIR.
    #[arg(long, value_name = "DIR", default_value = "/sys")]
    pub sysfs_root: PathBuf,
    /// Look for /dev/vfio under DIR.
    #[arg(long, value_name = "DIR", default_value = "/dev")]
    pub dev_root: PathBuf,
    /// Read net/route and mounts under DIR.
    #[arg(long, value_name = "DIR", default_value = "/proc")]
    pub proc_root: PathBuf,
}

impl RootArgs {
    fn paths(&self) -> HostPaths {
        HostPaths {
            sysfs: self.sysfs_root.clone(),
            dev: self.dev_root.clone(),
            proc: self.proc_root.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The adapter function, e.g. 0000:03:00.0 (`lspci -D -d 15b3:`).
    #[arg(value_name = "BDF")]
    pub device: Bdf,
    #[command(flatten)]
    pub roots: RootArgs,
    /// Guest memory: checks (and raises, where allowed) the locked-memory limit.
    #[arg(long, value_name = "MIB")]
    pub memory: Option<u32>,
    /// A FlexBoot image to boot from instead of the card's own ROM.
    #[arg(long, value_name = "FILE")]
    pub romfile: Option<PathBuf>,
    /// Do not read the card's ROM (reading writes sysfs `rom` to enable it for a moment).
    #[arg(long)]
    pub no_card_rom: bool,
    /// Check a PF whose SR-IOV VF will be passed (its own group stays on the host).
    #[arg(long)]
    pub sriov_pf: bool,
    /// Accept a function of any vendor standing in for a ConnectX (as the inventory's
    /// `stand_in = true`): every other check stays.
    #[arg(long)]
    pub stand_in: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Where runs keep their records and locks.
    #[arg(long, value_name = "DIR", default_value = vfio::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    #[command(flatten)]
    pub roots: RootArgs,
    /// How long the kernel gets for each rebind, in seconds.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_seconds)]
    pub settle: Duration,
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    super::seconds_up_to(3600.0)(text)
}

/// Entry point for `bootrig vfio …`.
pub fn run(command: VfioCommand) -> CliResult {
    match command {
        VfioCommand::Check(args) => check(args),
        VfioCommand::Restore(args) => restore(args),
    }
}

fn check(args: CheckArgs) -> CliResult {
    let kernel = SysfsKernel::new(args.roots.paths());
    let opts = CheckOptions {
        memory_mib: args.memory,
        // Only reports: what a run would do with the limit.
        memlock: None,
        romfile: args.romfile,
        read_card_rom: !args.no_card_rom,
        scope: if args.sriov_pf {
            Scope::SriovPf
        } else {
            Scope::Passthrough
        },
        stand_in: args.stand_in,
    };
    let report = vfio::preflight(&kernel, &args.device, &opts);
    let text = super::json_or(args.json, &report, |r| r.table())?;
    print_out(&text)?;
    Ok(if report.ok() {
        Outcome::Pass
    } else {
        Outcome::Fail
    })
}

fn restore(args: RestoreArgs) -> CliResult {
    let kernel = SysfsKernel::new(args.roots.paths());
    let outcomes = vfio::restore_all(&kernel, &args.state_dir, args.settle)?;
    let mut text = String::new();
    let mut failed = false;
    if outcomes.is_empty() {
        text.push_str(&format!(
            "nothing to restore: no records in {}\n",
            args.state_dir.display()
        ));
    }
    for outcome in &outcomes {
        let device = outcome
            .device
            .map_or_else(|| outcome.record.display().to_string(), |d| d.to_string());
        match &outcome.result {
            Ok(()) => text.push_str(&format!("restored {device}\n")),
            Err(e) => {
                failed = true;
                text.push_str(&format!(
                    "not restored {device}: {}\n",
                    crate::error_chain(&e)
                ));
            }
        }
    }
    print_out(&text)?;
    Ok(if failed { Outcome::Fail } else { Outcome::Pass })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: VfioCommand,
    }

    #[test]
    fn arguments_parse_with_defaults_and_reject_bad_addresses() {
        let cli = Cli::try_parse_from(["vfio", "check", "03:00.0", "--memory", "2048"]).unwrap();
        let VfioCommand::Check(args) = cli.command else {
            panic!("not check");
        };
        assert_eq!(args.device.to_string(), "0000:03:00.0");
        assert_eq!(args.memory, Some(2048));
        assert_eq!(args.roots.paths(), HostPaths::default());
        let err = Cli::try_parse_from(["vfio", "check", "03:00"]).unwrap_err();
        assert!(err.to_string().contains("0000:03:00.0"), "{err}");

        let cli = Cli::try_parse_from(["vfio", "restore", "--state-dir", "/tmp/s"]).unwrap();
        let VfioCommand::Restore(args) = cli.command else {
            panic!("not restore");
        };
        assert_eq!(args.state_dir, PathBuf::from("/tmp/s"));
        assert_eq!(args.settle, Duration::from_secs(30));
        assert!(Cli::try_parse_from(["vfio", "restore", "--settle", "0"]).is_err());
    }

    #[test]
    fn restore_with_no_records_passes_and_a_missing_device_fails_check() {
        let dir = tempfile::tempdir().unwrap();
        let roots = || RootArgs {
            sysfs_root: dir.path().join("sys"),
            dev_root: dir.path().join("dev"),
            proc_root: dir.path().join("proc"),
        };
        let outcome = restore(RestoreArgs {
            state_dir: dir.path().join("state"),
            roots: roots(),
            settle: Duration::from_secs(1),
        })
        .unwrap();
        assert_eq!(outcome, Outcome::Pass);
        let outcome = check(CheckArgs {
            device: "0000:03:00.0".parse().unwrap(),
            roots: roots(),
            memory: None,
            romfile: None,
            no_card_rom: false,
            sriov_pf: false,
            stand_in: false,
            json: true,
        })
        .unwrap();
        assert_eq!(outcome, Outcome::Fail);
    }
}
