//! Where in a TOML file's text a value is, and where the text stops being UTF-8: shared by the
//! scenario and the lab inventory (`run::inventory`), so both refuse at `file:line:column`
//! alike, suggest a misspelt key, and hint at UTF-16.

use toml::Spanned;

/// The 1-based line and column (in characters) of byte `offset` of `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    // A span never ends inside a character; if one did, count from the character's start.
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A value a TOML file gives that cannot be used: the byte offset where it is written and what
/// is wrong with it (with the fix). The scenario's per-table checks and the inventory return it;
/// each reader makes it its own error with the file's name, line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub at: usize,
    pub message: String,
}

impl Refusal {
    /// Refuses `value`, pointing at where it is written.
    pub fn at<T>(value: &Spanned<T>, message: impl Into<String>) -> Self {
        Self {
            at: value.span().start,
            message: message.into(),
        }
    }

    /// Where in `text` it is, and what is wrong.
    pub fn located(self, text: &str) -> Located {
        let (line, column) = line_column(text, self.at);
        Located {
            line,
            column,
            message: self.message,
        }
    }
}

/// What is wrong at a line and column of a TOML file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Located {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A toml error (syntax, an unknown key, a wrong type) where it is, with a suggestion for a
/// misspelt key or value from the names allowed where it is written.
pub(crate) fn toml_error(text: &str, e: &toml::de::Error) -> Located {
    // toml gives a span for every error it reports against the text; an error without one
    // (none is known) is at least in this file.
    let (line, column) = match e.span() {
        Some(span) => line_column(text, span.start),
        None => (1, 1),
    };
    let mut message = e.message().trim().to_string();
    if let Some(best) = super::keys::suggestion(&message) {
        message.push_str(&format!("; did you mean `{best}`?"));
    }
    Located {
        line,
        column,
        message,
    }
}

/// Where a file stops being UTF-8 (TOML is UTF-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotUtf8At {
    pub line: usize,
    pub column: usize,
    pub offset: usize,
    pub byte: u8,
    /// What the bytes look like, when that helps (a UTF-16 byte order mark), or "".
    pub hint: &'static str,
}

/// The text of a TOML file, or where it stops being UTF-8.
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, NotUtf8At> {
    std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        // The bytes before `offset` are valid UTF-8, by `valid_up_to`'s definition.
        let before = std::str::from_utf8(&bytes[..offset]).unwrap_or_default();
        let (line, column) = line_column(before, offset);
        let hint = if bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]) {
            " (the file starts with a UTF-16 byte order mark)"
        } else {
            ""
        };
        NotUtf8At {
            line,
            column,
            offset,
            // `from_utf8` failed at `offset`, so there is a byte there.
            byte: bytes[offset],
            hint,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_count_characters_from_one() {
        let text = "a = 1\nb = \"ü\"x\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // After `b = "ü` (ü is two bytes): column 7 in characters.
        assert_eq!(line_column(text, 13), (2, 7));
        assert_eq!(line_column(text, 12), (2, 6), "inside ü: its start");
        assert_eq!(line_column(text, 999), (3, 1), "past the end: the end");
    }
}
