//! The human table at the end of a run: one aligned row per scenario, the why of each failure
//! beneath its row, then the one-line summary. Colour only when asked (the caller knows whether
//! its stream is a terminal).

use std::fmt::Write as _;

use super::model::{Outcome, RunReport, ScenarioReport};
use super::text::strip_ansi;

const HEADERS: [&str; 5] = ["SCENARIO", "OUTCOME", "CAUSE", "TIME", "PHASE"];
/// Longest note printed under a row; the JSON and JUnit files have the rest.
const NOTE_MAX: usize = 160;

/// The table and the summary line, each line ending in `\n`.
pub fn render_table(report: &RunReport, colour: bool) -> String {
    let rows: Vec<[String; 5]> = report.scenarios.iter().map(row).collect();
    let mut widths = HEADERS.map(|h| h.chars().count());
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    push_row(&mut out, &HEADERS.map(str::to_owned), &widths, None);
    for (r, s) in rows.iter().zip(&report.scenarios) {
        push_row(&mut out, r, &widths, colour.then_some(s.outcome));
        if let Some(note) = note(s) {
            let _ = writeln!(out, "    {note}");
        }
    }
    out.push_str(&report.totals().summary_line());
    out.push('\n');
    out
}

fn row(s: &ScenarioReport) -> [String; 5] {
    let cause = s.cause.as_ref();
    [
        one_line(&s.id),
        s.outcome.label().to_owned(),
        cause.map_or("-".to_owned(), |c| one_line(&c.kind)),
        format!("{:.1}s", s.duration_seconds.max(0.0)),
        cause
            .and_then(|c| c.phase.as_deref())
            .map_or("-".to_owned(), one_line),
    ]
}

/// Cells padded to their column; the outcome cell is coloured after padding so escape codes do
/// not count towards its width.
fn push_row(out: &mut String, cells: &[String; 5], widths: &[usize; 5], colour: Option<Outcome>) {
    let mut line = String::new();
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        let last = i + 1 == cells.len();
        let padded = if last {
            cell.clone()
        } else {
            format!("{cell:<width$}  ")
        };
        match (i, colour) {
            (1, Some(o)) => {
                let _ = write!(line, "{}{padded}\x1b[0m", sgr(o));
            }
            _ => line.push_str(&padded),
        }
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

fn sgr(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Pass => "\x1b[32m",
        Outcome::Fail => "\x1b[31m",
        Outcome::Skip => "\x1b[33m",
        Outcome::Error => "\x1b[1;31m",
    }
}

/// Why a scenario did not pass, in one line.
fn note(s: &ScenarioReport) -> Option<String> {
    if s.outcome == Outcome::Pass {
        return None;
    }
    let text = s
        .cause
        .as_ref()
        .map(|c| c.summary.clone())
        .or_else(|| s.reason.clone())
        .or_else(|| s.findings.first().cloned())?;
    let text = one_line(&text);
    Some(if text.chars().count() > NOTE_MAX {
        let cut: String = text.chars().take(NOTE_MAX - 1).collect();
        format!("{cut}…")
    } else {
        text
    })
}

/// Terminal-safe single line: escape sequences removed, controls and line ends as spaces.
fn one_line(text: &str) -> String {
    strip_ansi(text)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::super::model::sample::{run, scenario};
    use super::*;

    fn report() -> RunReport {
        run(vec![
            scenario("short.toml", Outcome::Pass),
            scenario("a/much/longer/scenario.toml", Outcome::Fail),
            scenario("skip.toml", Outcome::Skip),
        ])
    }

    #[test]
    fn rows_are_aligned_with_causes_and_a_summary() {
        let text = render_table(&report(), false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "SCENARIO                     OUTCOME  CAUSE           TIME   PHASE"
        );
        assert_eq!(
            lines[1],
            "short.toml                   PASS     -               12.5s  -"
        );
        assert_eq!(
            lines[2],
            "a/much/longer/scenario.toml  FAIL     unknown-symbol  12.5s  modules"
        );
        assert_eq!(lines[3], "    mlx4_ib: Unknown symbol ib_register_device");
        assert!(lines[4].starts_with("skip.toml                    SKIP     -"));
        assert_eq!(lines[5], "    needs KVM");
        assert_eq!(
            lines.last().copied(),
            Some("1 passed, 1 failed, 1 skipped, 0 errors in 42.0 s")
        );
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn colour_does_not_shift_columns() {
        let plain = render_table(&report(), false);
        let coloured = render_table(&report(), true);
        assert!(coloured.contains("\x1b[31mFAIL     \x1b[0m"), "{coloured}");
        assert_eq!(strip_ansi(&coloured), plain);
    }

    #[test]
    fn hostile_text_stays_on_one_line() {
        let mut r = report();
        r.scenarios[1].cause.as_mut().unwrap().summary =
            format!("\x1b[31mline one\nline two\r{}", "x".repeat(400));
        let text = render_table(&r, false);
        let note = text.lines().nth(3).unwrap();
        assert!(note.starts_with("    line one line two xxx"), "{note}");
        assert_eq!(note.chars().count(), 4 + NOTE_MAX);
        assert!(note.ends_with('…'));
        assert_eq!(text.lines().count(), 7);
    }
}
