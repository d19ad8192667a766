//! The human table at the end of a run: one aligned row per scenario, the why of each failure
//! beneath its row (all of it, wrapped: the culprit is often at the end of a long message), then
//! the one-line summary. Colour only when asked (the caller knows whether its stream is a
//! terminal).

use std::fmt::Write as _;

use super::model::{Outcome, RunReport, ScenarioReport};
use crate::console::text::strip_escapes;
use crate::names::Named;

const HEADERS: [&str; 5] = ["SCENARIO", "OUTCOME", "CAUSE", "TIME", "PHASE"];
/// Longest line of a note; longer lines wrap, at a space when there is one.
const NOTE_WIDTH: usize = 100;
/// Most note lines under one row: enough for any message bootrig writes (a whole module plan),
/// a bound for a guest's endless line. A longer note keeps its start and end (where an error's
/// context and its culprit are) and says where the middle is.
const NOTE_LINES: usize = 200;

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
        if s.boot.nic_is_passed() {
            let _ = writeln!(out, "    guest NIC: {}", one_line(&s.boot.nic));
        }
        if let Some(adapter) = &s.boot.stand_in {
            let _ = writeln!(
                out,
                "    stand-in adapter {}: not a ConnectX; proves the lab path only",
                one_line(adapter)
            );
        }
        for line in note(s) {
            let _ = writeln!(out, "    {line}");
        }
    }
    out.push_str(&report.totals().summary_line());
    out.push('\n');
    out
}

fn row(s: &ScenarioReport) -> [String; 5] {
    let cause = s.cause.as_ref();
    let outcome = match s.boot.stand_in {
        Some(_) => format!("{} (stand-in)", s.outcome.label()),
        None => s.outcome.label().to_owned(),
    };
    [
        one_line(&s.id),
        outcome,
        cause.map_or("-".to_owned(), |c| c.kind.as_str().to_owned()),
        format!("{:.1}s", s.duration_seconds.max(0.0)),
        cause
            .and_then(|c| c.phase)
            .map_or("-".to_owned(), |p| p.as_str().to_owned()),
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
            crate::columns::pad_right(cell, *width + 2)
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

/// Why a scenario did not pass: its lines, each terminal-safe and wrapped, keeping their own
/// indentation (a plan's numbered rows); continuation lines are indented two more spaces.
fn note(s: &ScenarioReport) -> Vec<String> {
    if s.outcome == Outcome::Pass {
        return Vec::new();
    }
    let Some(text) = s
        .cause
        .as_ref()
        .map(|c| c.summary.clone())
        .or_else(|| s.reason.clone())
        .or_else(|| s.findings.first().map(|f| f.to_string()))
    else {
        return Vec::new();
    };
    let mut lines: Vec<String> = Vec::new();
    for line in text.split('\n') {
        let clean = one_line(line);
        if clean.is_empty() {
            continue;
        }
        let indent = line
            .chars()
            .take_while(|&c| c == ' ')
            .count()
            .min(NOTE_WIDTH / 4);
        let pad = " ".repeat(indent);
        let mut pieces = wrap(&clean, NOTE_WIDTH - indent).into_iter();
        lines.extend(pieces.next().map(|p| format!("{pad}{p}")));
        lines.extend(pieces.map(|p| format!("{pad}  {p}")));
    }
    if lines.len() > NOTE_LINES {
        let head = NOTE_LINES / 2;
        let tail = NOTE_LINES - head - 1;
        let left_out = lines.len() - head - tail;
        let whole = match &s.artifacts {
            Some(dir) => format!("{}", dir.join("result.json").display()),
            None => "the JSON report".to_owned(),
        };
        lines.splice(
            head..lines.len() - tail,
            [format!(
                "[… {left_out} lines left out; the whole text is in {whole}]"
            )],
        );
    }
    lines
}

/// `line` in pieces of at most `width` characters, broken at the last space that fits (the
/// space dropped), or mid-word when a word is longer than `width`.
fn wrap(line: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest: Vec<char> = line.chars().collect();
    while rest.len() > width {
        let cut = rest[..=width]
            .iter()
            .rposition(|&c| c == ' ')
            .filter(|&at| at > 0);
        let (piece, skip) = match cut {
            Some(at) => (at, at + 1),
            None => (width, width),
        };
        out.push(
            rest[..piece]
                .iter()
                .collect::<String>()
                .trim_end()
                .to_owned(),
        );
        rest.drain(..skip);
    }
    out.push(rest.into_iter().collect());
    out
}

/// Terminal-safe single line: escape sequences removed, controls and line ends as spaces.
fn one_line(text: &str) -> String {
    strip_escapes(text)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

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
        assert_eq!(strip_escapes(&coloured), plain);
    }

    #[test]
    fn hostile_text_stays_inside_its_note() {
        let mut r = report();
        r.scenarios[1].cause.as_mut().unwrap().summary =
            format!("\x1b[31mline one\nline two\r{}", "x".repeat(250));
        let text = render_table(&r, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[3], "    line one");
        assert_eq!(lines[4], "    line two");
        assert_eq!(lines[5], format!("      {}", "x".repeat(NOTE_WIDTH)));
        assert_eq!(lines[6], format!("      {}", "x".repeat(NOTE_WIDTH)));
        assert_eq!(
            lines[7],
            format!("      {}", "x".repeat(250 - 2 * NOTE_WIDTH))
        );
        assert!(lines[8].starts_with("skip.toml"), "{text}");
        assert!(!text.contains('\x1b') && !text.contains('\r'));
    }

    /// The planner's message for a misspelt module, as `bootrig run` reports a build that stops
    /// on it: the name and its suggestion come after the plan's header, past any fixed cut.
    #[test]
    fn a_long_message_keeps_the_culprit() {
        let mut r = report();
        let s = &mut r.scenarios[1];
        s.outcome = Outcome::Error;
        s.cause = None;
        let error = crate::kmod::PlanError::UnknownModule {
            module: "mlx4_cor".into(),
            suggestions: vec!["mlx4_core".into(), "mlx5_core".into()],
            searched: vec![PathBuf::from(
                "/home/user/bootrig/scenarios/../images/cache/current/lib/modules/6.1.0-48-amd64",
            )],
        };
        s.reason = Some(
            [
                "/home/user/bootrig/scenarios/mlx4-ipoib-busybox.toml: the module plan has errors; nothing was built:",
                "kernel 6.1.0-48-amd64 (/home/user/bootrig/scenarios/../images/cache/current/vmlinuz)",
                "layer 0: /home/user/bootrig/scenarios/../images/cache/current/lib/modules/6.1.0-48-amd64 (4213 modules, modules.dep)",
                "order: resolved (closure of the list, dependencies first)",
                "  1. mlx4_cor  error: unknown_module",
                &format!("error: {error}"),
                "plan: NOT loadable: 1 error(s), 0 warning(s)",
            ]
            .join("\n"),
        );
        let text = render_table(&r, false);
        let note = note_lines(&text);
        let joined = note.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
        assert!(
            joined.contains("error: `mlx4_cor` is not a module"),
            "{text}"
        );
        assert!(
            joined.contains("did you mean `mlx4_core`, `mlx5_core`?"),
            "{text}"
        );
        assert!(joined.contains("plan: NOT loadable"), "{text}");
        assert!(
            note.iter().all(|l| l.chars().count() <= 6 + NOTE_WIDTH),
            "{text}"
        );
    }

    /// A column wider than a format width may be (u16::MAX) is padded all the same.
    #[test]
    fn a_scenario_id_of_any_length_is_padded() {
        let mut r = report();
        let long = format!("{}.toml", "a".repeat(70_000));
        r.scenarios[0].id = long.clone();
        let text = render_table(&r, false);
        let lines: Vec<&str> = text.lines().collect();
        let column = long.len() + 2;
        assert_eq!(lines[0].find("OUTCOME"), Some(column));
        assert_eq!(lines[1].find("PASS"), Some(column));
        assert!(lines[1].starts_with(&long));
        assert_eq!(lines[2].find("FAIL"), Some(column));
    }

    /// The indented note lines under the second scenario's row.
    fn note_lines(text: &str) -> Vec<&str> {
        text.lines()
            .skip(3)
            .take_while(|l| l.starts_with("    "))
            .collect()
    }

    #[test]
    fn a_very_long_note_keeps_its_start_and_end() {
        let mut r = report();
        let lines: Vec<String> = (1..=300).map(|i| format!("line {i}")).collect();
        r.scenarios[1].cause.as_mut().unwrap().summary = lines.join("\n");
        let text = render_table(&r, false);
        let note = note_lines(&text);
        assert_eq!(note.len(), NOTE_LINES);
        assert_eq!(note[0], "    line 1");
        assert_eq!(
            note[NOTE_LINES / 2],
            "    [… 101 lines left out; the whole text is in runs/1/x/result.json]"
        );
        assert_eq!(note[NOTE_LINES - 1], "    line 300");
    }
}
