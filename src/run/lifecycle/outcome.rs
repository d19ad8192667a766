//! The boot's outcome: the cause (what the console proves, else how the boot ended), the
//! findings, pass or fail, and the scenario's report around them.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;

use crate::console::driver::{End, ShellOutcome};
use crate::console::{self, ConsoleLine, GuestLine};
use crate::names::Named;
use crate::qemu::accel::Accel;
use crate::report::model::{BootSummary, CauseReport, Finding, Outcome, ScenarioReport};
use crate::run::judge::{self, Findings};
use crate::run::target::Target;
use crate::scenario::{Boot, Method};
use crate::verdict::cause::{classify, Cause, CauseKind};
use crate::verdict::phases::{current, detect, Phase};
use crate::verdict::Expectation;

use super::artifacts::{excerpt, phase_timings};

/// A report for `target` before its boot: an Error until the boot says otherwise.
pub(super) fn blank_report(target: &Target, dir: &Path, accel: Option<Accel>) -> ScenarioReport {
    ScenarioReport {
        id: target.id.clone(),
        name: target.name.clone(),
        file: target
            .file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_default(),
        outcome: Outcome::Error,
        reason: None,
        cause: None,
        expected_failure: target.expect.failure,
        findings: Vec::new(),
        phases: Vec::new(),
        duration_seconds: 0.0,
        boot: BootSummary {
            stand_in: match &target.adapter {
                Some(crate::run::target::AdapterNeed::Found(a)) if a.stand_in => {
                    Some(format!("{} ({})", a.name, a.bdf))
                }
                _ => None,
            },
            nic: match &target.adapter {
                // The adapter is the guest's network: it has no emulated NIC.
                Some(crate::run::target::AdapterNeed::Found(a)) => {
                    BootSummary::passed_nic(&a.name, &a.bdf.to_string(), a.vf.map(|(vf, _)| vf))
                }
                // The lab adapter was not found: the run is skipped before a VM exists.
                Some(_) => "none".into(),
                None => target.boot.nic.as_str().to_string(),
            },
            ..summary(&target.boot, accel)
        },
        console_excerpt: String::new(),
        artifacts: Some(dir.to_owned()),
    }
}

fn summary(boot: &Boot, accel: Option<Accel>) -> BootSummary {
    BootSummary {
        method: boot.method.as_str().into(),
        firmware: boot.firmware.as_str().into(),
        nic: boot.nic.as_str().to_string(),
        fetch: match boot.method {
            Method::Ipxe => boot.fetch.as_str().into(),
            Method::Direct => "-".into(),
        },
        accel: accel.map_or("-", |a| a.as_str()).to_string(),
        stand_in: None,
    }
}

/// How the boot ended, as the judge needs it.
pub(super) struct Ended<'a> {
    pub end: &'a End<Phase>,
    pub lines: &'a [ConsoleLine],
    pub status: Option<ExitStatus>,
    /// QEMU was still running when the drive ended, so its exit status is bootrig's doing.
    pub stopped_by_us: bool,
    /// QMP reported a guest panic.
    pub panicked: bool,
}

/// The cause and what `[expect]` finds in the console and the shell steps' answers.
pub(super) fn examine(
    target: &Target,
    plan: &Expectation,
    ended: &Ended,
    answers: Vec<ShellOutcome>,
) -> (Findings, Option<Cause>) {
    let lines = ended.lines;
    // The boot's own lines: what a guest shell step printed is not the boot's evidence.
    let boot_lines = &lines[..lines
        .iter()
        .position(|l| l.guest() == Some(GuestLine::Shell))
        .unwrap_or(lines.len())];
    let cause = cause_of(
        ended.end,
        boot_lines,
        ended.status,
        ended.stopped_by_us,
        ended.panicked,
    );
    let evidence = console::read(lines);
    // A step that never ran is a step without an answer, not a step that is not there.
    let mut answers = answers.into_iter();
    let shell: Vec<_> = target
        .expect
        .shell
        .iter()
        .map(|step| {
            let got = answers.next().unwrap_or_else(|| ShellOutcome {
                command: step.command.clone(),
                output: None,
                status: None,
            });
            (step.clone(), got)
        })
        .collect();
    let mut findings = judge::findings(&target.expect, plan, boot_lines, &evidence, &shell);
    if target.until.is_some() {
        // A given initrd has no stanza: only the console and the cause speak.
        findings.boot.clear();
    }
    (findings, cause)
}

/// Decides pass or fail and fills the report: outcome, reason, findings, phases, excerpt and
/// cause.
pub(super) fn conclude(
    report: &mut ScenarioReport,
    target: &Target,
    end: &End<Phase>,
    cause: Option<Cause>,
    mut findings: Findings,
    lines: &[ConsoleLine],
) {
    if let End::Fatal(text) = end {
        if cause.is_none() {
            findings
                .boot
                .push(Finding::StoppedAt { line: text.clone() });
        }
    }
    let (pass, why) = judge::decide(
        target.expect.failure,
        cause.as_ref().map(|c| c.kind),
        &findings,
    );
    report.outcome = if *end == End::Interrupted {
        Outcome::Error
    } else if pass {
        Outcome::Pass
    } else {
        Outcome::Fail
    };
    report.reason = if *end == End::Interrupted {
        Some("interrupted: bootrig was asked to stop (Ctrl-C or SIGTERM)".into())
    } else {
        why
    };
    report.findings = findings.all();
    report.phases = phase_timings(lines);
    report.console_excerpt = excerpt(lines, cause.as_ref());
    report.cause = cause.map(|c| CauseReport {
        kind: c.kind,
        summary: c.summary,
        phase: c.phase,
        evidence: c.evidence,
    });
}

/// The cause: what the console proves first; otherwise what ended the boot. `stopped_by_us`:
/// QEMU was still running when the drive ended, so its exit status is bootrig's doing.
fn cause_of(
    end: &End<Phase>,
    lines: &[ConsoleLine],
    status: Option<ExitStatus>,
    stopped_by_us: bool,
    panicked: bool,
) -> Option<Cause> {
    if let Some(c) = classify(lines) {
        return Some(c);
    }
    let phase = current(&detect(lines));
    if panicked || *end == End::Panicked {
        return Some(Cause {
            kind: CauseKind::KernelPanic,
            phase: Some(phase),
            summary: "QEMU reported a guest panic (pvpanic)".into(),
            evidence: lines
                .iter()
                .rev()
                .take(5)
                .rev()
                .map(|l| l.clean().to_string())
                .collect(),
            detail: None,
        });
    }
    match end {
        End::TimedOut { phase: p, .. } => Some(Cause::timeout(p.unwrap_or(phase), lines)),
        _ if stopped_by_us => None,
        End::Closed | End::Fatal(_) => match status {
            Some(s) if s.signal().is_some() => Some(Cause::qemu_crashed(s.signal()?, lines)),
            Some(s) if s.code() != Some(0) => Some(Cause::qemu_exited(s.code()?, lines)),
            // QEMU exited 0 before the stanza finished: the guest rebooted or powered off early.
            Some(s) if *end == End::Closed && !console::read(lines).done => {
                Some(Cause::qemu_exited(s.code().unwrap_or(0), lines))
            }
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn lines(text: &str) -> Vec<ConsoleLine> {
        crate::console::test_lines(&text.lines().collect::<Vec<_>>())
    }

    fn exited(code: i32) -> Option<ExitStatus> {
        Some(ExitStatus::from_raw(code << 8))
    }

    fn killed(signal: i32) -> Option<ExitStatus> {
        Some(ExitStatus::from_raw(signal))
    }

    const BOOTING: &str =
        "iPXE initialising devices...ok\nbootrig: booting kernel\nBOOTRIG begin\n";

    fn kind(c: Option<Cause>) -> Option<&'static str> {
        c.map(|c| c.kind.as_str())
    }

    #[test]
    fn the_console_wins_over_how_the_boot_ended() {
        let l = lines("BOOTRIG begin\n[ 1.0] mlx4_en: Unknown symbol mlx4_foo (err -2)\nBOOTRIG insmod mlx4_en rc=1\n");
        let end = End::TimedOut {
            phase: Some(Phase::Modules),
            limit: Duration::from_secs(1),
            whole: true,
        };
        assert_eq!(
            kind(cause_of(&end, &l, None, true, false)),
            Some("unknown-symbol")
        );
    }

    #[test]
    fn who_stopped_qemu_decides_between_crash_and_nothing() {
        let l = lines(BOOTING);
        // QEMU died on its own, by a signal or an error code: its cause.
        assert_eq!(
            kind(cause_of(&End::Closed, &l, killed(9), false, false)),
            Some("qemu-crashed")
        );
        assert_eq!(
            kind(cause_of(&End::Closed, &l, exited(1), false, false)),
            Some("qemu-exited")
        );
        // It exited 0 before the stanza finished: the guest went away early.
        assert_eq!(
            kind(cause_of(&End::Closed, &l, exited(0), false, false)),
            Some("qemu-exited")
        );
        // bootrig stopped it (quit, then a kill when it hung): not the boot's failure.
        assert_eq!(
            kind(cause_of(&End::Finished, &l, killed(9), true, false)),
            None
        );
        assert_eq!(
            kind(cause_of(&End::Closed, &l, killed(9), true, false)),
            None
        );
        // After the stanza finished, a clean exit is no failure.
        let done = lines(&format!("{BOOTING}BOOTRIG done\n"));
        assert_eq!(
            kind(cause_of(&End::Closed, &done, exited(0), false, false)),
            None
        );
    }

    #[test]
    fn a_pvpanic_is_a_kernel_panic_even_when_qemu_then_exits_cleanly() {
        let l = lines(BOOTING);
        let c = cause_of(&End::Closed, &l, exited(0), false, true).unwrap();
        assert_eq!(c.kind, CauseKind::KernelPanic);
        assert!(c.summary.contains("pvpanic"), "{}", c.summary);
        assert_eq!(
            kind(cause_of(&End::Panicked, &l, None, true, false)),
            Some("kernel-panic")
        );
    }

    #[test]
    fn a_timeout_names_the_phase_the_driver_saw() {
        let l = lines(BOOTING);
        let end = End::TimedOut {
            phase: Some(Phase::IpxeDhcp),
            limit: Duration::from_secs(90),
            whole: false,
        };
        let c = cause_of(&end, &l, None, true, false).unwrap();
        assert_eq!(c.kind, CauseKind::Timeout);
        assert_eq!(c.phase, Some(Phase::IpxeDhcp));
    }
}
