//! Whether the kernel can execute an init in the image. An init it cannot run fails the real
//! boot (the kernel panics, or mounts a root instead) even though `bootrig check`, whose test
//! mode powers off before the hand-over, would pass: so the wrap and generic flavors refuse it.

use crate::initrd::cpio::Kind;
use crate::initrd::path;
use crate::initrd::tree::{Tree, WalkEnd};
use crate::patch::tree_text::split_lines;

/// ELF machines an x86-64 kernel runs (i386 through IA32 emulation).
const EM_386: u16 = 3;
const EM_X86_64: u16 = 62;

/// Why the kernel could not execute the file at `p` (symlinks followed), with the fix; None when
/// it could, or when nothing is at `p` (the caller says that).
pub fn why_not_runnable(tree: &Tree, p: &[u8]) -> Option<String> {
    let walk = tree.walk(p);
    walk.first()?;
    // A symlink that resolves to nothing: where it leads, and that it is missing or loops.
    let first = || format!("/{}", path::display(&path::normalize(p)));
    let (key, node) = match walk.end {
        WalkEnd::Found(key, node) => (key, node),
        WalkEnd::Missing(to) => {
            return Some(format!(
                "{} is a symlink to /{}, which is missing",
                first(),
                path::display(&to)
            ))
        }
        WalkEnd::Loop(at) => {
            return Some(format!(
                "{} is a symlink loop (through /{})",
                first(),
                path::display(&at)
            ))
        }
    };
    let shown = format!("/{}", path::display(&key));
    if node.kind != Kind::Regular {
        return Some(format!(
            "{shown} is a {}, not a file",
            format!("{:?}", node.kind).to_lowercase()
        ));
    }
    if node.mode & 0o111 == 0 {
        return Some(format!(
            "{shown} has mode {:04o}, not executable; make it executable in the base (chmod +x)",
            node.mode & 0o7777
        ));
    }
    if tree.size(node) == 0 {
        return Some(format!("{shown} is empty (0 bytes)"));
    }
    // Content the tree did not keep (a large binary) is not looked into.
    let data = tree.inode(node).and_then(|i| i.data.as_deref())?;
    if let Some(rest) = data.strip_prefix(b"#!") {
        return script_problem(tree, &shown, rest);
    }
    if data.starts_with(b"\x7fELF") {
        return elf_problem(&shown, data);
    }
    Some(format!(
        "{shown} is neither a #! script nor an ELF binary: the kernel has no format to run it"
    ))
}

fn script_problem(tree: &Tree, shown: &str, rest: &[u8]) -> Option<String> {
    let line = split_lines(rest).first().copied().unwrap_or_default();
    if line.ends_with(b"\r") {
        return Some(format!(
            "{shown} has CRLF line endings: the kernel looks for the interpreter {:?}, carriage return included; convert it (dos2unix)",
            String::from_utf8_lossy(line.trim_ascii_start())
        ));
    }
    let interpreter = line
        .trim_ascii()
        .split(|b| b.is_ascii_whitespace())
        .next()?;
    if interpreter.is_empty() || tree.lookup(interpreter).is_some() {
        return None;
    }
    Some(format!(
        "its interpreter {} (the #! line of {shown}) is not in the image; add it to the base or use a shell the image has",
        String::from_utf8_lossy(interpreter)
    ))
}

fn elf_problem(shown: &str, data: &[u8]) -> Option<String> {
    let bytes = [*data.get(18)?, *data.get(19)?];
    let machine = match data.get(5) {
        Some(2) => u16::from_be_bytes(bytes),
        _ => u16::from_le_bytes(bytes),
    };
    if matches!(machine, EM_386 | EM_X86_64) {
        return None;
    }
    Some(format!(
        "{shown} is an ELF binary for machine {machine} ({}), not x86-64; use the base built for this kernel's architecture",
        machine_name(machine)
    ))
}

fn machine_name(machine: u16) -> &'static str {
    match machine {
        8 => "MIPS",
        20 => "PowerPC",
        21 => "PowerPC64",
        22 => "s390",
        40 => "ARM",
        183 => "AArch64",
        243 => "RISC-V",
        _ => "another architecture",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::test_trees::{tree, ELF};

    fn why(entries: &[(&str, &str, &str)]) -> Option<String> {
        why_not_runnable(&tree(entries), b"init")
    }

    #[test]
    fn runnable_inits_pass() {
        assert_eq!(why(&[("init", "x", ELF)]), None);
        assert_eq!(
            why(&[
                ("bin", "d", ""),
                ("bin/sh", "x", ELF),
                ("init", "x", "#!/bin/sh\n")
            ]),
            None
        );
        assert_eq!(
            why(&[("sbin", "d", "")]),
            None,
            "missing: the caller's to say"
        );
    }

    #[test]
    fn what_the_kernel_cannot_run_is_named() {
        let w = why(&[("init", "l", "sbin/init")]).unwrap();
        assert_eq!(w, "/init is a symlink to /sbin/init, which is missing");
        let w = why(&[("init", "l", "init2"), ("init2", "l", "/init")]).unwrap();
        assert!(w.starts_with("/init is a symlink loop"), "{w}");
        let w = why(&[("init", "x", "")]).unwrap();
        assert_eq!(w, "/init is empty (0 bytes)");
        let w = why(&[("init", "f", ELF)]).unwrap();
        assert!(w.contains("has mode 0644, not executable"), "{w}");
        let mut arm = ELF.as_bytes().to_vec();
        arm.resize(20, 0);
        arm[18] = 40;
        let w = why(&[("init", "x", std::str::from_utf8(&arm).unwrap())]).unwrap();
        assert!(w.contains("machine 40 (ARM), not x86-64"), "{w}");
        let w = why(&[
            ("bin", "d", ""),
            ("bin/sh", "x", ELF),
            ("init", "x", "#!/bin/sh\r\n"),
        ])
        .unwrap();
        assert!(w.contains("CRLF line endings"), "{w}");
        let w = why(&[("init", "x", "#!/bin/bash\nexec sh\n")]).unwrap();
        assert!(w.contains("its interpreter /bin/bash"), "{w}");
        let w = why(&[("init", "x", "just text")]).unwrap();
        assert!(w.contains("neither a #! script nor an ELF binary"), "{w}");
    }
}
