//! Text a person pastes into a shell: the `qemu.cmdline` artifact, the restore command a
//! finding names. Below every stage, so `qemu` and `vfio` quote the same way.

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
        format!("'{}'", word.replace('\'', r"'\''"))
    }
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
}
