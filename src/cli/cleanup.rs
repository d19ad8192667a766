//! `bootrig cleanup`: removes what killed runs left of their dnsmasq networks (namespaces, taps,
//! dnsmasq and QEMU processes, markers). Segments of runs still alive are kept. Exit 0 when all
//! was removed, 1 when something could not be.

use std::path::PathBuf;

use super::{print_out, CliResult, Outcome};
use crate::net::cleanup::{cleanup, CleanupReport};

#[derive(Debug, clap::Args)]
pub struct CleanupArgs {
    /// Where runs record their network segments.
    #[arg(long, value_name = "DIR", default_value = crate::net::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: CleanupArgs) -> CliResult {
    let report = cleanup(&args.state_dir)?;
    let text = super::json_or(args.json, &report, render)?;
    print_out(&text)?;
    Ok(if report.errors().next().is_none() {
        Outcome::Pass
    } else {
        Outcome::Fail
    })
}

fn render(report: &CleanupReport) -> String {
    let mut out = String::new();
    for r in &report.removed {
        let killed: Vec<String> = r
            .killed
            .iter()
            .map(|k| format!("{} {}", k.name, k.pid))
            .collect();
        let owner = r.owner_pid.map_or("unknown".into(), |p| p.to_string());
        out.push_str(&format!(
            "removed {} (run {owner} is gone){}\n",
            r.namespace,
            if killed.is_empty() {
                String::new()
            } else {
                format!(": killed {}", killed.join(", "))
            }
        ));
        for e in &r.errors {
            out.push_str(&format!("  error: {e}\n"));
        }
    }
    for k in &report.kept {
        out.push_str(&format!(
            "kept {} (run {} is alive)\n",
            k.namespace, k.owner_pid
        ));
    }
    for e in &report.unreadable_markers {
        out.push_str(&format!("unreadable marker: {e}\n"));
    }
    if out.is_empty() {
        out.push_str("nothing to clean up\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::cleanup::{Kept, KilledProcess, Removed};

    #[test]
    fn renders_removed_kept_and_nothing() {
        assert_eq!(render(&CleanupReport::default()), "nothing to clean up\n");
        let report = CleanupReport {
            removed: vec![Removed {
                namespace: "bootrig-12-0".into(),
                owner_pid: Some(12),
                killed: vec![KilledProcess {
                    pid: 40,
                    name: "dnsmasq".into(),
                }],
                marker: None,
                errors: vec!["x failed".into()],
            }],
            kept: vec![Kept {
                namespace: "bootrig-13-0".into(),
                owner_pid: 13,
            }],
            unreadable_markers: vec![],
        };
        assert_eq!(
            render(&report),
            "removed bootrig-12-0 (run 12 is gone): killed dnsmasq 40\n  error: x failed\nkept bootrig-13-0 (run 13 is alive)\n"
        );
    }
}
