//! Text padded to a column by hand. `format!("{cell:<width$}")` panics when `width` is above
//! `u16::MAX` ("Formatting argument out of range"), and a column's width comes from user data (a
//! scenario id, a module name): every table bootrig prints pads through here instead.

/// `cell` followed by spaces up to `width` characters (nothing added when it is already wider).
pub fn pad_right(cell: &str, width: usize) -> String {
    let mut out = cell.to_owned();
    out.extend(std::iter::repeat_n(
        ' ',
        width.saturating_sub(cell.chars().count()),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_by_characters_and_never_panics_on_a_wide_column() {
        assert_eq!(pad_right("ab", 4), "ab  ");
        assert_eq!(pad_right("abcdef", 4), "abcdef");
        assert_eq!(pad_right("é", 3), "é  ");
        let wide = "x".repeat(70_000);
        assert_eq!(pad_right(&wide, 70_002).len(), 70_002);
    }
}
