//! Console text made fit for XML 1.0: serial consoles carry ANSI colour sequences, carriage
//! returns, NULs and other C0 controls that XML 1.0 forbids even as character references, and
//! one of them makes a whole JUnit file unreadable to Jenkins or GitLab. Sequences are removed;
//! any other forbidden character becomes a visible stand-in (␛, ␀, …) so the text still says
//! what the guest sent.

use std::borrow::Cow;

const ESC: char = '\u{1b}';

/// `text` without ANSI escape sequences (CSI such as colours, OSC titles, two-byte ESC forms).
/// A sequence cut short by a line end or the end of the text ends there; the line survives.
pub fn strip_ansi(text: &str) -> Cow<'_, str> {
    if !text.contains(ESC) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != ESC {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('[') => {
                chars.next();
                // Parameters and intermediates, then one final byte.
                while let Some(&p) = chars.peek() {
                    if ('\u{20}'..='\u{3f}').contains(&p) {
                        chars.next();
                    } else {
                        if ('\u{40}'..='\u{7e}').contains(&p) {
                            chars.next();
                        }
                        break;
                    }
                }
            }
            Some(']') => {
                chars.next();
                // Up to BEL or ESC \ (string terminator); a line end means it was cut short.
                while let Some(&p) = chars.peek() {
                    match p {
                        '\u{7}' => {
                            chars.next();
                            break;
                        }
                        '\n' | '\r' => break,
                        ESC => {
                            chars.next();
                            if chars.peek() == Some(&'\\') {
                                chars.next();
                            }
                            break;
                        }
                        _ => {
                            chars.next();
                        }
                    }
                }
            }
            Some(&p) if ('\u{21}'..='\u{7e}').contains(&p) => {
                // ESC, intermediates (0x20-0x2f), final (0x30-0x7e): charset selection, resets. A
                // space right after ESC is taken as text: a stray ESC must not eat the next word.
                while let Some(&i) = chars.peek() {
                    if ('\u{20}'..='\u{2f}').contains(&i) {
                        chars.next();
                    } else {
                        if ('\u{30}'..='\u{7e}').contains(&i) {
                            chars.next();
                        }
                        break;
                    }
                }
            }
            // A lone ESC: kept, and shown as ␛ by the XML escaping.
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Character data for an XML element.
pub fn xml_text(text: &str) -> String {
    escape(text, false)
}

/// An attribute value (to go between double quotes); line ends and tabs survive as references.
pub fn xml_attr(text: &str) -> String {
    escape(text, true)
}

fn escape(text: &str, attr: bool) -> String {
    let text = strip_ansi(text);
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attr => out.push_str("&quot;"),
            '\n' if attr => out.push_str("&#10;"),
            '\t' if attr => out.push_str("&#9;"),
            // A parser would turn a raw CR into LF; the reference keeps it.
            '\r' => out.push_str("&#13;"),
            '\n' | '\t' => out.push(c),
            '\u{0}'..='\u{1f}' => out.push(control_picture(c)),
            '\u{7f}' => out.push('\u{2421}'),
            // Noncharacters outside XML 1.0's Char production.
            '\u{fffe}' | '\u{ffff}' => out.push('\u{fffd}'),
            _ => out.push(c),
        }
    }
    out
}

/// The Unicode "control picture" for a C0 control: NUL → ␀, ESC → ␛.
fn control_picture(c: char) -> char {
    // U+2400..U+241F mirror U+0000..U+001F one to one, so the sum is always a valid char.
    char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_colour_title_and_charset_sequences() {
        assert_eq!(strip_ansi("\x1b[1;31mFAIL\x1b[0m ok"), "FAIL ok");
        assert_eq!(strip_ansi("\x1b]0;title\x07after"), "after");
        assert_eq!(strip_ansi("\x1b]0;title\x1b\\after"), "after");
        assert_eq!(strip_ansi("\x1b(Bplain\x1bc"), "plain");
        assert_eq!(strip_ansi("\x1b[?25l\x1b[2Jscreen"), "screen");
    }

    #[test]
    fn cut_short_sequences_do_not_eat_the_next_line() {
        assert_eq!(strip_ansi("a\x1b[31\nnext"), "a\nnext");
        assert_eq!(strip_ansi("a\x1b]0;tit\nnext"), "a\nnext");
        assert_eq!(strip_ansi("end\x1b"), "end\x1b");
        assert_eq!(strip_ansi("x\x1b\u{e9}y"), "x\x1b\u{e9}y");
    }

    #[test]
    fn borrows_when_nothing_to_strip() {
        assert!(matches!(strip_ansi("plain text"), Cow::Borrowed(_)));
    }

    #[test]
    fn escapes_markup_and_replaces_forbidden_characters() {
        assert_eq!(xml_text("a<b>&c\"d"), "a&lt;b&gt;&amp;c\"d");
        assert_eq!(xml_attr("a\"b\nc\td"), "a&quot;b&#10;c&#9;d");
        assert_eq!(
            xml_text("nul\0 bell\x07 cr\r lf\n"),
            "nul\u{2400} bell\u{2407} cr&#13; lf\n"
        );
        assert_eq!(xml_text("lone\x1b esc"), "lone\u{241b} esc");
        assert_eq!(
            xml_text("\u{fffe}\u{ffff}\u{7f}"),
            "\u{fffd}\u{fffd}\u{2421}"
        );
        assert_eq!(xml_text("]]>"), "]]&gt;");
    }
}
