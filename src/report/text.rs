//! Console text made fit for XML 1.0: serial consoles carry ANSI colour sequences, carriage
//! returns, NULs and other C0 controls that XML 1.0 forbids even as character references, and
//! one of them makes a whole JUnit file unreadable to Jenkins or GitLab. Sequences are removed
//! (by `console::text`, the one reader of terminal control);
//! any other forbidden character becomes a visible stand-in (␛, ␀, …) so the text still says
//! what the guest sent.

use crate::console::text::strip_escapes;

/// Character data for an XML element.
pub fn xml_text(text: &str) -> String {
    escape(text, false)
}

/// An attribute value (to go between double quotes); line ends and tabs survive as references.
pub fn xml_attr(text: &str) -> String {
    escape(text, true)
}

fn escape(text: &str, attr: bool) -> String {
    let text = strip_escapes(text);
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
    fn sequences_go_and_a_lone_escape_is_shown() {
        assert_eq!(xml_text("\x1b[1;31mFAIL\x1b[0m ok"), "FAIL ok");
        // A cut-short sequence does not eat the next line.
        assert_eq!(xml_text("a\x1b[31\nnext"), "a\nnext");
        assert_eq!(xml_text("end\x1b"), "end\u{241b}");
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
