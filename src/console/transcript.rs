//! The console as lines: each line once as the guest sent it and once as a terminal shows it,
//! cleaned when the line is made, so no reader cleans it again (or differently).

use std::time::Duration;

use serde::Serialize;

use super::protocol::GuestLine;
use super::text::clean_line;

/// One console line and when it began, measured from the moment the guest was started (QEMU
/// resumed). Every stage after the console reads these: phases, causes, reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsoleLine {
    #[serde(serialize_with = "seconds")]
    pub at: Duration,
    /// The line without its end (`\r\n` or `\n`), as the guest sent it (escape sequences,
    /// backspaces and carriage returns kept).
    pub text: String,
    /// `text` as a terminal shows it ([`clean_line`]).
    #[serde(skip)]
    clean: String,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl ConsoleLine {
    pub fn new(at: Duration, text: String) -> Self {
        let clean = clean_line(&text);
        Self { at, text, clean }
    }

    /// The line as a terminal shows it: what console.txt, the verdict and patterns read.
    pub fn clean(&self) -> &str {
        &self.clean
    }

    /// The protocol line this is, if it is one.
    pub fn guest(&self) -> Option<GuestLine<'_>> {
        GuestLine::parse(&self.clean)
    }
}

/// Lines from a transcript's text (split at `\n`, a `\r` before it dropped), all at time zero.
pub fn lines_of(transcript: &str) -> Vec<ConsoleLine> {
    transcript
        .lines()
        .map(|l| ConsoleLine::new(Duration::ZERO, l.trim_end_matches('\r').to_string()))
        .collect()
}

/// `console.txt`: each line's time and its cleaned text.
pub fn timestamped(lines: &[ConsoleLine]) -> String {
    let mut s = String::new();
    for l in lines {
        s.push_str(&format!("[{:9.3}] {}\n", l.at.as_secs_f64(), l.clean()));
    }
    s
}

/// Console lines from text, one per line, for tests: timed 100 ms apart.
#[cfg(test)]
pub(crate) fn test_lines<S: AsRef<str>>(texts: &[S]) -> Vec<ConsoleLine> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| ConsoleLine::new(Duration::from_millis(100 * i as u64), t.as_ref().into()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_cleaned_once_when_made_and_keeps_its_raw_text() {
        let l = ConsoleLine::new(
            Duration::from_millis(1500),
            "\x1b[1mBOOTRIG done\x1b[0m".into(),
        );
        assert_eq!(l.clean(), "BOOTRIG done");
        assert_eq!(l.text, "\x1b[1mBOOTRIG done\x1b[0m");
        assert_eq!(l.guest(), Some(GuestLine::Done));
        assert_eq!(timestamped(&[l]), "[    1.500] BOOTRIG done\n");
    }

    #[test]
    fn lines_of_drops_line_ends() {
        let l = lines_of("a\r\nb\n\nc");
        let texts: Vec<&str> = l.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["a", "b", "", "c"]);
    }
}
