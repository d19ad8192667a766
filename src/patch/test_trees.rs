//! In-memory trees and helpers the `patch` tests share.

use crate::initrd::add::{Addition, Source};
use crate::initrd::cpio::Entry;
use crate::initrd::path;
use crate::initrd::tree::{DataPolicy, Tree};

/// A tree from (path, kind, content): "d" directory, "f" file, "l" symlink (content = target).
pub(crate) fn tree(entries: &[(&str, &str, &str)]) -> Tree {
    let mut t = Tree::new(DataPolicy::Full);
    for (name, kind, content) in entries {
        let mode = match *kind {
            "d" => 0o040755,
            "l" => 0o120777,
            "x" => 0o100755,
            _ => 0o100644,
        };
        let mut entry = Entry::new(name.as_bytes(), mode, content.as_bytes().to_vec());
        entry.header.nlink = 1;
        t.apply(0, entry, content.len() as u64);
    }
    t
}

pub(crate) fn bytes_of(a: &Addition) -> String {
    match &a.source {
        Source::Bytes(b) => String::from_utf8(b.clone()).unwrap(),
        other => panic!("expected bytes, got {other:?}"),
    }
}

pub(crate) const STANZA: &str = "# >>> bootrig stanza\n(\nbootrig_begin\n)\n# <<< bootrig stanza\n";

/// Applies additions to `t` as the kernel applies the entries `add` writes for them.
pub(crate) fn apply(t: &mut Tree, adds: &[Addition]) {
    for a in adds {
        // `add` creates missing parents the same way.
        let comps = path::components(&a.dest);
        for i in 1..comps.len() {
            let dir = comps[..i].join(&b'/');
            if t.get(&dir).is_none() {
                t.apply(1, Entry::new(dir, 0o040755, Vec::new()), 0);
            }
        }
        let (mode, data) = match &a.source {
            Source::Bytes(b) => (0o100000 | a.mode.unwrap_or(0o644), b.clone()),
            Source::Symlink(target) => (0o120777, target.clone()),
            other => panic!("unexpected addition {other:?}"),
        };
        let mut e = Entry::new(a.dest.clone(), mode, data.clone());
        e.header.ino = 9000;
        t.apply(1, e, data.len() as u64);
    }
}

pub(crate) fn data_at(t: &Tree, p: &[u8]) -> Vec<u8> {
    let (_, node) = t
        .lookup(p)
        .unwrap_or_else(|| panic!("{} missing", path::display(p)));
    t.inode(node).unwrap().data.clone().unwrap()
}

pub(crate) const ELF: &str = "\x7fELF\x02\x01\x01 static init";

pub(crate) fn systemd_dracut(wanted: bool, condition_dir: &str) -> Tree {
    let unit = format!("[Unit]\nConditionPathExists=/usr/lib/initrd-release\nConditionDirectoryNotEmpty=|{condition_dir}/cmdline\n[Service]\nExecStart=-/bin/dracut-cmdline\n");
    let mut entries: Vec<(&str, &str, String)> = vec![
        ("usr", "d", String::new()),
        ("usr/lib", "d", String::new()),
        ("lib", "l", "usr/lib".into()),
        ("usr/lib/dracut", "d", String::new()),
        ("usr/lib/dracut/hooks", "d", String::new()),
        ("usr/lib/dracut/hooks/cmdline", "d", String::new()),
        ("usr/lib/systemd", "d", String::new()),
        ("usr/lib/systemd/systemd", "x", "\x7fELF".into()),
        ("usr/lib/systemd/system", "d", String::new()),
        ("usr/lib/systemd/system/dracut-cmdline.service", "f", unit),
        ("init", "l", "usr/lib/systemd/systemd".into()),
    ];
    if wanted {
        entries.push((
            "usr/lib/systemd/system/initrd.target.wants",
            "d",
            String::new(),
        ));
        entries.push((
            "usr/lib/systemd/system/initrd.target.wants/dracut-cmdline.service",
            "l",
            "../dracut-cmdline.service".into(),
        ));
    }
    let borrowed: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|(a, b, c)| (*a, *b, c.as_str()))
        .collect();
    tree(&borrowed)
}
