//! Suggestions for a misspelt key or value, from the names allowed where it is written.
//!
//! serde's "unknown field `lod`, expected one of `base`, `load`, …" lists exactly the keys of
//! the table the unknown key is in (and "unknown variant" the values of that key), so the
//! suggestion is taken from that list. A hand-kept list of every key of every table, as there
//! was, suggested `[expect] address` for a misspelt `[network]` key.

/// The nearest allowed name to the unknown one in a serde "unknown field"/"unknown variant"
/// message, if one is near.
pub(super) fn suggestion(message: &str) -> Option<&str> {
    let rest = ["unknown field `", "unknown variant `"]
        .iter()
        .find_map(|p| message.strip_prefix(p))?;
    let (unknown, allowed) = rest.split_once('`')?;
    // After the unknown name: ", expected one of `a`, `b`" — the names are every other piece.
    let names: Vec<&str> = allowed.split('`').skip(1).step_by(2).collect();
    crate::kmod::suggest::nearest(unknown, &names)
        .first()
        .copied()
        .filter(|best| *best != unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suggestion_comes_from_the_names_serde_lists() {
        assert_eq!(
            suggestion("unknown field `lod`, expected one of `base`, `load`, `order`"),
            Some("load")
        );
        assert_eq!(
            suggestion("unknown variant `efi`, expected `bios` or `uefi`"),
            Some("uefi")
        );
        // `address` is a key of another table: not offered here.
        assert_eq!(
            suggestion("unknown field `adress`, expected one of `interface`, `dhcp`"),
            None
        );
        assert_eq!(suggestion("invalid type: integer `3`"), None);
        assert_eq!(suggestion("unknown field `x`, there are no fields"), None);
    }
}
