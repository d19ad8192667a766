//! The one reader of terminal control in console text. Serial consoles carry ANSI/ECMA-48
//! escape sequences (iPXE's colours, OVMF's mode set and screen clears), backspaces (iPXE
//! erases its "Press Ctrl-B" prompt with `\b \b`) and carriage returns (SeaBIOS blanks its
//! prompt with `\r` and spaces). Two uses, one grammar of escape sequences:
//!
//! - [`clean_line`]: one console line as a terminal shows it — what `console.txt`, the
//!   verdict, the excerpt and a person's `[expect] console` pattern see.
//! - [`strip_escapes`]: any text (a report field, several lines) without escape sequences,
//!   everything else kept, for the report's renderers, which make the rest visible.
//!
//! Decision: a line is rendered on a one-line cursor model, as a terminal would: a carriage
//! return moves to column 0 and later text overwrites (the tail of longer earlier text stays:
//! `"abc\rX"` shows `"Xbc"`), a backspace moves one column left (at the end of the text it
//! also erases: blank cells at a line's end are no text), `ESC [ K` erases. The earlier
//! cleaner threw everything before a carriage return away, which lost the tail a terminal
//! shows; the recorded consoles in tests/data/consoles render the same either way (a test
//! checks it). Cursor movement other than these, and screen-level control, are removed without
//! effect: a console line is not a screen.

use std::borrow::Cow;

const ESC: char = '\u{1b}';

/// One escape sequence starting at an ESC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sequence {
    /// `ESC [ params intermediates final`.
    Csi { params_end: usize, last: char },
    /// OSC, DCS, SOS, PM, APC: a string ended by BEL or `ESC \`.
    String,
    /// `ESC intermediates final`: charset selection, resets.
    Short,
}

/// The sequence at the start of `text` (which starts with ESC) and its length in bytes; None
/// for a lone ESC (followed by a space, a non-ASCII character or nothing).
///
/// A sequence cut short (by a line end, another ESC, or a byte its grammar does not allow)
/// ends before that byte: the byte stays text, so a stray ESC never eats the next line.
fn sequence(text: &str) -> Option<(Sequence, usize)> {
    let bytes = text.as_bytes();
    debug_assert_eq!(bytes.first(), Some(&0x1b));
    let introducer = *bytes.get(1)?;
    match introducer {
        b'[' => {
            // Parameters and intermediates (0x20-0x3f), then one final byte (0x40-0x7e).
            let mut i = 2;
            while i < bytes.len() && (0x20..=0x3f).contains(&bytes[i]) {
                i += 1;
            }
            let params_end = i;
            let last = match bytes.get(i) {
                Some(&b) if (0x40..=0x7e).contains(&b) => {
                    i += 1;
                    b as char
                }
                _ => '\0',
            };
            Some((Sequence::Csi { params_end, last }, i))
        }
        b']' | b'P' | b'X' | b'^' | b'_' => {
            let mut i = 2;
            while i < bytes.len() {
                match bytes[i] {
                    0x07 => return Some((Sequence::String, i + 1)),
                    b'\n' | b'\r' => break,
                    0x1b => {
                        let end = if bytes.get(i + 1) == Some(&b'\\') {
                            i + 2
                        } else {
                            i + 1
                        };
                        return Some((Sequence::String, end));
                    }
                    _ => i += 1,
                }
            }
            Some((Sequence::String, i))
        }
        0x21..=0x7e => {
            // Intermediates (0x20-0x2f), then a final byte (0x30-0x7e).
            let mut i = 1;
            while i < bytes.len() && (0x20..=0x2f).contains(&bytes[i]) {
                i += 1;
            }
            if matches!(bytes.get(i), Some(0x30..=0x7e)) {
                i += 1;
            }
            Some((Sequence::Short, i))
        }
        _ => None,
    }
}

/// `text` without escape sequences; line ends, other controls and lone ESCs are kept (the
/// caller shows them, e.g. as ␛ in XML).
pub fn strip_escapes(text: &str) -> Cow<'_, str> {
    if !text.contains(ESC) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(ESC) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match sequence(rest) {
            Some((_, len)) => rest = &rest[len..],
            None => {
                out.push(ESC);
                rest = &rest[ESC.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// One console line (without its line end) as a terminal shows it: escape sequences removed,
/// carriage returns and backspaces applied, `ESC [ K` erasing, other controls but tab dropped.
/// Trailing blanks are kept: they are what the guest printed.
pub fn clean_line(raw: &str) -> String {
    let mut cells: Vec<char> = Vec::with_capacity(raw.len());
    let mut cursor = 0usize;
    let mut rest = raw;
    while let Some(c) = rest.chars().next() {
        let mut len = c.len_utf8();
        match c {
            ESC => {
                if let Some((seq, n)) = sequence(rest) {
                    len = n;
                    if let Sequence::Csi { params_end, last } = seq {
                        if last == 'K' {
                            erase_in_line(&mut cells, cursor, &rest[2..params_end]);
                        }
                    }
                }
            }
            '\r' => cursor = 0,
            '\x08' => {
                // At the end of the text a backspace erases what it backs over (`\b \b` is
                // how iPXE erases; an erased cell at the end is no text); inside the text (after
                // a carriage return) it only moves the cursor, as on a terminal.
                if cursor == cells.len() {
                    cells.pop();
                }
                cursor = cursor.saturating_sub(1);
            }
            '\t' => put(&mut cells, &mut cursor, c),
            c if c.is_control() => {}
            c => put(&mut cells, &mut cursor, c),
        }
        rest = &rest[len..];
    }
    cells.into_iter().collect()
}

/// Writes `c` at the cursor (overwriting) and moves right.
fn put(cells: &mut Vec<char>, cursor: &mut usize, c: char) {
    match cells.get_mut(*cursor) {
        Some(cell) => *cell = c,
        None => cells.push(c),
    }
    *cursor += 1;
}

/// `ESC [ Ps K`: 0 (or none) erases from the cursor to the end, 1 from the start to the
/// cursor, 2 the whole line. The cursor does not move.
fn erase_in_line(cells: &mut Vec<char>, cursor: usize, params: &str) {
    match params {
        "" | "0" => cells.truncate(cursor),
        "1" => {
            let end = (cursor + 1).min(cells.len());
            cells[..end].iter_mut().for_each(|c| *c = ' ');
        }
        "2" => cells.iter_mut().for_each(|c| *c = ' '),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sequences_are_removed_from_a_line() {
        assert_eq!(
            clean_line("\x1b[2J\x1b[01;01H\x1b[=3h\x1b[1m\x1b[37m\x1b[40miPXE 1.0.0+\x1b[0m -- x"),
            "iPXE 1.0.0+ -- x"
        );
        assert_eq!(clean_line("\x1b]0;title\x07after\x1b(B!"), "after!");
        assert_eq!(clean_line("\x1b]0;title\x1b\\after"), "after");
        assert_eq!(clean_line("\x1bPq#0;2\x1b\\dcs"), "dcs");
        assert_eq!(clean_line("\x1b[?25l\x1b[2Jscreen\x1bc"), "screen");
    }

    #[test]
    fn backspaces_and_carriage_returns_act_as_on_a_terminal() {
        assert_eq!(
            clean_line("Press Ctrl-B\x08 \x08\x08 \x08net0: up"),
            "Press Ctrlnet0: up"
        );
        assert_eq!(clean_line("line\r\r"), "line");
        assert_eq!(clean_line(" 10%\r 20%"), " 20%");
        // What a terminal shows: the tail of the longer text stays.
        assert_eq!(clean_line("abc\rX"), "Xbc");
        // SeaBIOS blanks its prompt with spaces.
        assert_eq!(
            clean_line("Press Ctrl-B...\r                 "),
            " ".repeat(17)
        );
        // Unless the program erases the rest of the line, as progress displays do.
        assert_eq!(clean_line("abc\rX\x1b[K"), "X");
        assert_eq!(clean_line("abc\x1b[2K\rX"), "X  ");
        assert_eq!(clean_line("abcd\rxx\x1b[1K"), "   d");
        // Backing over the end erases; inside the text it only moves.
        assert_eq!(clean_line("abc\x08"), "ab");
        assert_eq!(clean_line("abc\r\x08x\x08\x08y"), "ybc");
        assert_eq!(clean_line("\x08\x08x\x00\ty\x7f"), "x\ty");
    }

    #[test]
    fn cut_short_sequences_do_not_panic_or_eat_text() {
        assert_eq!(clean_line("a\x1b"), "a");
        assert_eq!(clean_line("a\x1b["), "a");
        assert_eq!(clean_line("a\x1b[31\u{e9}b"), "a\u{e9}b");
        assert_eq!(strip_escapes("a\x1b[31\nnext"), "a\nnext");
        assert_eq!(strip_escapes("a\x1b]0;tit\nnext"), "a\nnext");
        assert_eq!(strip_escapes("end\x1b"), "end\x1b");
        assert_eq!(strip_escapes("x\x1b\u{e9}y"), "x\x1b\u{e9}y");
        assert_eq!(strip_escapes("x\x1b y"), "x\x1b y");
    }

    #[test]
    fn strip_escapes_keeps_everything_else_and_borrows_when_it_can() {
        assert_eq!(strip_escapes("\x1b[1;31mFAIL\x1b[0m ok"), "FAIL ok");
        assert_eq!(strip_escapes("\x1b(Bplain\x1bc"), "plain");
        assert_eq!(strip_escapes("a\r\n\x08\x1b[2Jb"), "a\r\n\x08b");
        assert!(matches!(strip_escapes("plain text"), Cow::Borrowed(_)));
    }

    /// The cleaner before this module (verdict::cause::strip_ansi), kept as the reference the
    /// recorded consoles are compared with.
    fn previous_cleaner(text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\x1b' => match chars.next() {
                    Some('[') => {
                        for c in chars.by_ref() {
                            if ('\x40'..='\x7e').contains(&c) {
                                break;
                            }
                        }
                    }
                    Some(']') => {
                        while let Some(c) = chars.next() {
                            if c == '\x07' {
                                break;
                            }
                            if c == '\x1b' && chars.peek() == Some(&'\\') {
                                chars.next();
                                break;
                            }
                        }
                    }
                    Some('\x20'..='\x2f') => {
                        chars.next();
                    }
                    _ => {}
                },
                '\x08' => {
                    out.pop();
                }
                '\r' => {
                    if chars.peek().is_some_and(|c| *c != '\r' && *c != '\n') {
                        out.clear();
                    }
                }
                '\t' => out.push(c),
                c if c.is_control() => {}
                c => out.push(c),
            }
        }
        out
    }

    /// console.txt and every verdict over the recorded consoles stay what they were.
    #[test]
    fn recorded_consoles_clean_as_before() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/consoles");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "log") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            for raw in String::from_utf8_lossy(&bytes).split('\n') {
                let raw = raw.trim_end_matches('\r');
                assert_eq!(
                    clean_line(raw),
                    previous_cleaner(raw),
                    "{}: {raw:?}",
                    path.display()
                );
                checked += 1;
            }
        }
        assert!(checked > 1000, "only {checked} lines");
    }

    proptest! {
        #[test]
        fn clean_lines_hold_no_control_but_tab(raw in "[a-z \\x00-\\x1f\\x7f\\[\\]();?=0-9KmJH\\\\é]{0,60}") {
            let clean = clean_line(&raw);
            prop_assert!(!clean.chars().any(|c| c.is_control() && c != '\t'), "{:?}", clean);
            // Never longer than the printable characters sent.
            let printable = raw.chars().filter(|c| !c.is_control() || *c == '\t').count();
            prop_assert!(clean.chars().count() <= printable);
        }

        #[test]
        fn plain_text_passes_untouched(text in "[ -~é\\t]{0,80}") {
            prop_assert_eq!(&clean_line(&text), &text);
            prop_assert_eq!(strip_escapes(&text).into_owned(), text);
        }

        #[test]
        fn stripping_keeps_line_structure(
            raw in "[a-z \\n\\r\\x07\\x08\\x1b\\[\\]();0-9mK\\\\]{0,80}"
        ) {
            let once = strip_escapes(&raw).into_owned();
            prop_assert_eq!(once.matches('\n').count(), raw.matches('\n').count());
            // A sequence never spans lines, so stripping line by line is the same.
            let by_line: Vec<String> = raw.split('\n').map(|l| strip_escapes(l).into_owned()).collect();
            prop_assert_eq!(&by_line.join("\n"), &once);
            let twice = strip_escapes(&once).into_owned();
            prop_assert_eq!(twice.matches('\n').count(), once.matches('\n').count());
        }
    }
}
