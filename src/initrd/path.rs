//! Entry names as the kernel's unpacker sees them: `./usr/bin/sh`, `/usr/bin/sh` and
//! `usr//bin/sh` all name `usr/bin/sh`; `.` is the root. Names are bytes: Linux paths need not
//! be UTF-8.

/// Why a name cannot be extracted safely into a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsafe {
    /// The name is absolute (`/etc/passwd`).
    Absolute,
    /// The name has a `..` component.
    DotDot,
}

/// The components of a stored name, without empty and `.` components. `..` is kept: what it
/// means depends on symlinks on the way, which only the tree knows.
pub fn components(name: &[u8]) -> Vec<&[u8]> {
    name.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect()
}

/// The canonical key of a stored name: components joined by `/`, `.` for the root.
pub fn normalize(name: &[u8]) -> Vec<u8> {
    let parts = components(name);
    if parts.is_empty() {
        return b".".to_vec();
    }
    parts.join(&b'/')
}

/// Whether a stored name, taken literally by a naive extractor, would write outside its
/// directory.
pub fn unsafe_name(name: &[u8]) -> Option<Unsafe> {
    if name.first() == Some(&b'/') {
        return Some(Unsafe::Absolute);
    }
    if components(name).iter().any(|c| *c == b"..") {
        return Some(Unsafe::DotDot);
    }
    None
}

/// The parent of a canonical key (`.` for top-level names).
pub fn parent(key: &[u8]) -> &[u8] {
    match key.iter().rposition(|&b| b == b'/') {
        Some(i) => &key[..i],
        None => b".",
    }
}

/// Joins a canonical directory key and a component.
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir == b"." {
        return name.to_vec();
    }
    let mut out = Vec::with_capacity(dir.len() + 1 + name.len());
    out.extend_from_slice(dir);
    out.push(b'/');
    out.extend_from_slice(name);
    out
}

/// Renders a name for messages and listings (lossy only for non-UTF-8 bytes).
pub fn display(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_the_kernel_sees_names() {
        assert_eq!(normalize(b"./usr/bin/sh"), b"usr/bin/sh");
        assert_eq!(normalize(b"/usr//bin/./sh"), b"usr/bin/sh");
        assert_eq!(normalize(b"."), b".");
        assert_eq!(normalize(b"./"), b".");
        assert_eq!(normalize(b"a/../b"), b"a/../b");
    }

    #[test]
    fn flags_names_that_escape() {
        assert_eq!(unsafe_name(b"/etc/passwd"), Some(Unsafe::Absolute));
        assert_eq!(unsafe_name(b"./a/../../x"), Some(Unsafe::DotDot));
        assert_eq!(unsafe_name(b"a/..b/c"), None);
        assert_eq!(unsafe_name(b"./init"), None);
    }

    #[test]
    fn parent_and_join_invert() {
        assert_eq!(parent(b"usr/lib/modules"), b"usr/lib");
        assert_eq!(parent(b"init"), b".");
        assert_eq!(join(b".", b"init"), b"init");
        assert_eq!(join(b"usr/lib", b"x"), b"usr/lib/x");
    }
}
