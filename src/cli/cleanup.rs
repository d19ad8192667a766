//! `bootrig cleanup`: removes what killed runs left: their dnsmasq networks (namespaces, taps,
//! dnsmasq and QEMU processes, markers), the directories of their QEMU sockets in the system's
//! temporary directory, and the temporary files of their builds in the build cache. What belongs
//! to runs still alive is kept. Exit 0 when all was removed, 1 when something could not be.

use std::path::PathBuf;

use serde::Serialize;

use super::{print_out, CliResult, Outcome};
use crate::fsutil::{remove_stale_temporaries, Leftovers};
use crate::net::cleanup::{cleanup, CleanupReport};
use crate::qemu::socket::remove_stale_socket_dirs;

#[derive(Debug, clap::Args)]
pub struct CleanupArgs {
    /// Where runs record their network segments.
    #[arg(long, value_name = "DIR", default_value = crate::net::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// The build cache whose dead builds' temporary files are removed [default: $BOOTRIG_CACHE,
    /// else $XDG_CACHE_HOME/bootrig, else ~/.cache/bootrig].
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `bootrig cleanup` did: the network segments' report, and the temporary files and
/// socket directories.
#[derive(Debug, Default, Serialize)]
struct Report {
    #[serde(flatten)]
    network: CleanupReport,
    files: Leftovers,
}

pub fn run(args: CleanupArgs) -> CliResult {
    let network = cleanup(&args.state_dir)?;
    let mut files = Leftovers::default();
    remove_stale_socket_dirs(&std::env::temp_dir(), &mut files);
    let cache = args.cache.unwrap_or_else(crate::build::default_cache_dir);
    for dir in crate::build::cache_temp_dirs(&cache) {
        remove_stale_temporaries(&dir, &mut files);
    }
    let report = Report { network, files };
    let text = super::json_or(args.json, &report, render)?;
    print_out(&text)?;
    let failed = report.network.errors().next().is_some() || !report.files.errors.is_empty();
    Ok(if failed { Outcome::Fail } else { Outcome::Pass })
}

fn render(report: &Report) -> String {
    let mut out = render_network(&report.network);
    for r in &report.files.removed {
        out.push_str(&format!("removed {} ({})\n", r.path.display(), r.why));
    }
    for k in &report.files.kept {
        out.push_str(&format!("kept {} ({})\n", k.path.display(), k.why));
    }
    for e in &report.files.errors {
        out.push_str(&format!("error: {e}\n"));
    }
    if out.is_empty() {
        out.push_str("nothing to clean up\n");
    }
    out
}

fn render_network(report: &CleanupReport) -> String {
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
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::Leftover;
    use crate::net::cleanup::{Kept, KilledProcess, Removed};

    #[test]
    fn renders_removed_kept_and_nothing() {
        assert_eq!(render(&Report::default()), "nothing to clean up\n");
        let network = CleanupReport {
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
        let files = Leftovers {
            removed: vec![Leftover {
                path: "/tmp/bootrig-sock-12-7-abcdef".into(),
                owner_pid: Some(12),
                why: "run 12 is gone".into(),
            }],
            kept: vec![],
            errors: vec!["/c/builds/.bootrig-1-2-x.tmp: permission denied".into()],
        };
        assert_eq!(
            render(&Report { network, files }),
            "removed bootrig-12-0 (run 12 is gone): killed dnsmasq 40\n  error: x failed\nkept bootrig-13-0 (run 13 is alive)\n\
             removed /tmp/bootrig-sock-12-7-abcdef (run 12 is gone)\n\
             error: /c/builds/.bootrig-1-2-x.tmp: permission denied\n"
        );
    }
}
