//! The boot's evidence as files and report fields: `qemu.cmdline`, `http.log`, `console.txt`,
//! the phase timings and the console excerpt.

use std::path::Path;

use crate::console::transcript::timestamped;
use crate::console::ConsoleLine;
use crate::fsutil::write_atomic;
use crate::netboot::http::HttpServer;
use crate::qemu::machine::{self, VmSpec};
use crate::report::model::PhaseTiming;
use crate::verdict::cause::Cause;
use crate::verdict::phases::{detect, durations};

use super::SetupError;

/// Console lines kept in a report around the cause, or at the end.
const EXCERPT_LINES: usize = 60;

/// QEMU's arguments for `vm`, after writing the whole command line to `dir/qemu.cmdline`.
pub(super) fn qemu_args(dir: &Path, qemu: &Path, vm: &VmSpec) -> Result<Vec<String>, SetupError> {
    let args = vm.args()?;
    let mut words = vec![qemu.display().to_string()];
    words.extend(args.iter().cloned());
    write_atomic(
        &dir.join("qemu.cmdline"),
        (machine::shell_words(&words) + "\n").as_bytes(),
        true,
    )?;
    Ok(args)
}

/// Stops the HTTP server and writes its fetches to `dir/http.log`, one JSON record a line.
pub(super) fn http_log(dir: &Path, mut server: HttpServer) -> Result<(), SetupError> {
    server.stop();
    let log: Vec<String> = server
        .log()
        .iter()
        .filter_map(|r| serde_json::to_string(r).ok())
        .collect();
    write_atomic(
        &dir.join("http.log"),
        (log.join("\n") + "\n").as_bytes(),
        true,
    )?;
    Ok(())
}

/// Writes `dir/console.txt`: what a person reads, each line timed and as a terminal shows it.
pub(super) fn console_txt(dir: &Path, lines: &[ConsoleLine]) -> Result<(), SetupError> {
    write_atomic(
        &dir.join("console.txt"),
        timestamped(lines).as_bytes(),
        true,
    )?;
    Ok(())
}

pub(super) fn phase_timings(lines: &[ConsoleLine]) -> Vec<PhaseTiming> {
    let end = lines.last().map(|l| l.at).unwrap_or_default();
    durations(&detect(lines), end)
        .into_iter()
        .map(|span| PhaseTiming {
            name: span.phase,
            at_seconds: span.start.as_secs_f64(),
            seconds: span.duration.as_secs_f64(),
        })
        .collect()
}

/// The lines around the cause's first evidence line, or the last lines.
pub(super) fn excerpt(lines: &[ConsoleLine], cause: Option<&Cause>) -> String {
    let clean: Vec<&str> = lines.iter().map(ConsoleLine::clean).collect();
    let anchor = cause
        .and_then(|c| c.evidence.first())
        .and_then(|first| clean.iter().position(|l| l.contains(first.trim())));
    let (from, to) = match anchor {
        Some(i) => (
            i.saturating_sub(EXCERPT_LINES / 2),
            (i + EXCERPT_LINES / 2).min(clean.len()),
        ),
        None => (clean.len().saturating_sub(EXCERPT_LINES), clean.len()),
    };
    clean[from..to].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::cause::CauseKind;

    fn lines(text: &str) -> Vec<ConsoleLine> {
        crate::console::test_lines(&text.lines().collect::<Vec<_>>())
    }

    #[test]
    fn the_excerpt_is_centred_on_the_first_evidence_line() {
        let mut text = String::new();
        for i in 0..200 {
            text.push_str(&format!("line {i}\n"));
            if i == 50 {
                text.push_str("\u{1b}[1mKernel panic - not syncing: VFS\n");
            }
        }
        let l = lines(&text);
        let cause = Cause {
            kind: CauseKind::KernelPanic,
            phase: None,
            summary: String::new(),
            evidence: vec!["Kernel panic - not syncing: VFS".into()],
            detail: None,
        };
        let ex = excerpt(&l, Some(&cause));
        assert!(ex.contains("line 30") && ex.contains("line 70"), "{ex}");
        assert!(!ex.contains("line 150"), "{ex}");
        assert!(
            ex.contains("\nKernel panic"),
            "escape sequences are removed: {ex}"
        );
    }
}
