//! Where in a scenario file's text a byte offset is, and where the text stops being UTF-8.

use std::path::Path;

use super::error::ScenarioError;

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

/// The text of a scenario file, or where it stops being UTF-8.
pub(super) fn utf8<'a>(bytes: &'a [u8], path: &Path) -> Result<&'a str, ScenarioError> {
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
        ScenarioError::NotUtf8 {
            path: path.to_owned(),
            line,
            column,
            offset,
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
