//! The report for people: an aligned table (check, status, detail, fix) and a verdict line.

use super::{Report, Status};
use crate::names::Named;

/// Detail text wraps at this width so the fix column stays on screen.
const DETAIL_WIDTH: usize = 64;

pub fn table(report: &Report) -> String {
    let name_width = report
        .checks
        .iter()
        .map(|c| c.name.len())
        .chain(["CHECK".len()])
        .max()
        .unwrap_or(0);
    let status_width = "missing!".len();
    let mut out = String::new();
    let mut row = |name: &str, status: &str, detail: &str, fix: &str| {
        let line =
            format!("{name:<name_width$}  {status:<status_width$}  {detail:<DETAIL_WIDTH$}  {fix}");
        out.push_str(line.trim_end());
        out.push('\n');
    };
    row("CHECK", "STATUS", "DETAIL", "FIX");
    for check in &report.checks {
        let status = if check.required && check.status != Status::Ok {
            format!("{}!", check.status.as_str())
        } else {
            check.status.as_str().to_owned()
        };
        let lines = wrap(&check.detail, DETAIL_WIDTH);
        let fix = check.fix.as_deref().unwrap_or("");
        for (i, line) in lines.iter().enumerate() {
            if i == 0 {
                row(&check.name, &status, line, fix);
            } else {
                row("", "", line, "");
            }
        }
    }
    out.push('\n');
    let blockers: Vec<&str> = report.blockers().map(|c| c.name.as_str()).collect();
    if blockers.is_empty() {
        out.push_str(
            "ready: the default path (QEMU + TCG, SeaBIOS, iPXE ROMs, cpio tooling) is all here",
        );
    } else {
        out.push_str(&format!(
            "not ready: required checks failed (marked !): {}",
            blockers.join(", ")
        ));
    }
    if let Some(accel) = report.accel {
        out.push_str(&format!("; accel auto = {accel}"));
    }
    out.push('\n');
    out
}

/// Splits `text` into lines of at most `width` characters at spaces (longer words stay whole).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::super::{Check, Report};
    use super::*;

    #[test]
    fn wraps_at_spaces_and_keeps_long_words() {
        assert_eq!(wrap("aa bb cc", 5), vec!["aa bb", "cc"]);
        assert_eq!(wrap("abcdefgh x", 4), vec!["abcdefgh", "x"]);
        assert_eq!(wrap("", 4), vec![""]);
    }

    #[test]
    fn table_marks_blockers_and_ends_with_the_verdict() {
        let report = Report {
            ready: false,
            accel: None,
            checks: vec![
                Check::new("seabios", Status::Missing, "none")
                    .required()
                    .fix("apt-get install seabios"),
                Check::new("dracut", Status::Missing, "not found")
                    .fix("apt-get install dracut-core"),
            ],
            mellanox_devices: vec![],
        };
        let text = table(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("CHECK"), "{text}");
        assert!(lines[1].starts_with("seabios  missing!  none"), "{text}");
        assert!(lines[1].ends_with("apt-get install seabios"), "{text}");
        assert!(
            lines[2].starts_with("dracut   missing   not found"),
            "{text}"
        );
        assert_eq!(
            lines.last(),
            Some(&"not ready: required checks failed (marked !): seabios")
        );
    }
}
