//! POSIX shell quoting, the one home for it. Below every stage, so `qemu`, `vfio`, `patch` and
//! `console` quote the same way.
//!
//! Two forms of the same single-quoting: [`shell_quote`] leaves a plain word bare, for text a
//! person reads and pastes (the `qemu.cmdline` artifact, the restore command a finding names);
//! [`single_quote`] quotes every word, for the scripts bootrig writes into the guest (the stanza,
//! the wrapper) and the lines it types into the guest shell: always quoting means no word's
//! meaning depends on which characters count as plain, and the images bootrig builds keep the
//! bytes they have always had.

/// The words as one shell line: words that need it are single-quoted, so the line can be pasted
/// into a shell as is.
pub fn shell_words<S: AsRef<str>>(words: impl IntoIterator<Item = S>) -> String {
    words
        .into_iter()
        .map(|w| shell_quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One word, single-quoted unless it is plain.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.,/:=@+%".contains(&b));
    if plain {
        word.to_owned()
    } else {
        single_quote(word)
    }
}

/// One word, always single-quoted for POSIX sh: everything literal, `'` as `'\''`.
pub fn single_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_quotes_only_what_needs_it() {
        assert_eq!(
            shell_words([
                "qemu-system-x86_64",
                "-append",
                "console=ttyS0,115200 panic=-1",
                "-device",
                "e1000,romfile=",
                "",
                "it's",
                "$HOME",
            ]),
            r"qemu-system-x86_64 -append 'console=ttyS0,115200 panic=-1' -device e1000,romfile= '' 'it'\''s' '$HOME'"
        );
    }

    #[test]
    fn single_quote_quotes_every_word() {
        assert_eq!(single_quote("eth0"), "'eth0'");
        assert_eq!(single_quote(""), "''");
        assert_eq!(single_quote("a'b $(x) `y`"), r"'a'\''b $(x) `y`'");
    }
}
