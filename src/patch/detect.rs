//! Which flavor a base is, from its files, and why.

use crate::initrd::cpio::Kind;
use crate::initrd::path;
use crate::initrd::tree::Tree;
use crate::names::Named;
use crate::patch::flavor::{
    Flavor, FlavorDecision, FlavorError, BUSYBOX_MARKER, DI_STARTUP_DIRS, DRACUT_HOOK,
    DRACUT_HOOK_DIRS,
};
use crate::patch::runnable::why_not_runnable;
use crate::patch::tree_text::{
    contains, dir_key, entry_at, file_data, has_line, is_file, split_lines,
};
use crate::patch::wrap::WRAP_MARKER;
use crate::scenario::FlavorChoice;

/// The flavor the scenario's `[initrd] flavor` asks for in this base: detected for `auto`,
/// else the one named (a forced dracut keeps the systemd variant detection saw).
pub fn decide(choice: FlavorChoice, tree: &Tree, rdinit: Option<&str>) -> FlavorDecision {
    let explained = explain(tree, rdinit);
    let flavor = match choice {
        FlavorChoice::Auto => return explained,
        FlavorChoice::Busybox => Flavor::Busybox,
        FlavorChoice::InitramfsTools => Flavor::InitramfsTools,
        FlavorChoice::Dracut => match explained.flavor {
            f @ (Flavor::Dracut | Flavor::DracutSystemd) => f,
            _ => Flavor::Dracut,
        },
        FlavorChoice::DebianInstaller => Flavor::DebianInstaller,
        FlavorChoice::Generic => Flavor::Generic,
        FlavorChoice::Wrap => Flavor::Wrap,
    };
    FlavorDecision {
        flavor,
        reason: format!("[initrd] flavor = \"{}\" in the scenario", flavor.as_str()),
    }
}

/// The base's flavor, from its files. See the module documentation for the markers.
pub fn detect(tree: &Tree) -> Flavor {
    explain(tree, None).flavor
}

/// [`detect`] with its reason. `rdinit`: the init the kernel is told to run (`rdinit=`, see
/// [`rdinit`]); when it is not /init, only wrapping it puts the stanza where the boot goes.
pub fn explain(tree: &Tree, rdinit: Option<&str>) -> FlavorDecision {
    let found = |flavor: Flavor, reason: String| FlavorDecision { flavor, reason };
    if let Some(rd) = rdinit {
        let rd_key = path::normalize(rd.as_bytes());
        let same = rd_key == b"init"
            || matches!(
                (tree.lookup(&rd_key), tree.lookup(b"init")),
                (Some((a, _)), Some((b, _))) if a == b
            );
        if !same {
            return found(
                Flavor::Wrap,
                format!(
                    "rdinit=/{} in [boot] append: the kernel runs it instead of /init, so it is wrapped",
                    path::display(&rd_key)
                ),
            );
        }
    }
    let init = init_text(tree);
    if let Some(text) = &init {
        if has_line(text, BUSYBOX_MARKER) {
            return found(
                Flavor::Busybox,
                format!("/init has the line {BUSYBOX_MARKER:?} (bootrig's busybox base)"),
            );
        }
    }
    if let Some(dir) = dracut_hook_dir(tree) {
        let systemd = init_is_systemd(tree);
        return found(
            if systemd {
                Flavor::DracutSystemd
            } else {
                Flavor::Dracut
            },
            format!(
                "dracut hooks in /{dir}{}",
                if systemd { "; /init is systemd" } else { "" }
            ),
        );
    }
    if is_file(tree, b"scripts/functions")
        && init
            .as_deref()
            .is_some_and(|t| contains(t, b"/scripts/init-premount"))
    {
        return found(
            Flavor::InitramfsTools,
            "/scripts/functions, and /init runs /scripts/init-premount (initramfs-tools)".into(),
        );
    }
    if let Some(dir) = di_startup_dir(tree) {
        return found(
            Flavor::DebianInstaller,
            format!("/{dir} (the Debian installer's startup scripts)"),
        );
    }
    match classify(tree, b"init") {
        InitKind::Missing => found(Flavor::Generic, "no /init in the image".into()),
        InitKind::Unresolved { why } => found(Flavor::Generic, format!("no /init to run: {why}")),
        InitKind::Shell { what, line } => found(
            Flavor::Generic,
            format!("{what} is a shell script ({line}): the stanza goes into it"),
        ),
        InitKind::Other { what, why } => found(
            Flavor::Wrap,
            format!("{what} is {why}, not a shell script: wrapped"),
        ),
        InitKind::Wrapped { what } => {
            found(Flavor::Wrap, format!("{what} is bootrig's wrapper already"))
        }
    }
}

/// What an init is, for [`explain`].
pub(crate) enum InitKind {
    Missing,
    /// A symlink that leads nowhere: `why` says where it points.
    Unresolved {
        why: String,
    },
    Shell {
        what: String,
        line: String,
    },
    /// Anything else the kernel may run: `why` says what ("an ELF binary").
    Other {
        what: String,
        why: String,
    },
    Wrapped {
        what: String,
    },
}

pub(crate) fn classify(tree: &Tree, init: &[u8]) -> InitKind {
    let shown = format!("/{}", path::display(&path::normalize(init)));
    let Some((key, node)) = tree.lookup(init) else {
        return match why_not_runnable(tree, init) {
            Some(why) => InitKind::Unresolved { why },
            None => InitKind::Missing,
        };
    };
    let what = match entry_at(tree, init) {
        Some((_, link)) if link.kind == Kind::Symlink => format!(
            "{shown} (a symlink to {}, resolving to /{})",
            path::display(&link.target),
            path::display(&key)
        ),
        _ => shown,
    };
    if node.kind != Kind::Regular {
        return InitKind::Other {
            what,
            why: format!("a {:?}", node.kind).to_lowercase(),
        };
    }
    let Some(data) = tree.inode(node).and_then(|i| i.data.as_deref()) else {
        // Too big for the tree to keep: no script is.
        return InitKind::Other {
            what,
            why: "a large file".into(),
        };
    };
    if has_line(data, WRAP_MARKER) {
        return InitKind::Wrapped { what };
    }
    if data.starts_with(b"\x7fELF") {
        return InitKind::Other {
            what,
            why: "an ELF binary".into(),
        };
    }
    let Some(rest) = data.strip_prefix(b"#!") else {
        return InitKind::Other {
            what,
            why: "neither a #! script nor an ELF binary".into(),
        };
    };
    let line = String::from_utf8_lossy(split_lines(rest).first().copied().unwrap_or_default())
        .trim()
        .to_string();
    if is_shell_line(&line) {
        InitKind::Shell {
            what,
            line: format!("#!{line}"),
        }
    } else {
        InitKind::Other {
            what,
            why: format!("a script for #!{line}"),
        }
    }
}

/// Whether a `#!` line (without the `#!`) runs a POSIX-ish shell the generic flavor can edit.
fn is_shell_line(line: &str) -> bool {
    const SHELLS: [&str; 7] = ["sh", "ash", "dash", "bash", "ksh", "mksh", "hush"];
    let mut words = line.split_ascii_whitespace();
    let base = |w: &str| w.rsplit('/').next().unwrap_or(w).to_string();
    let mut program = words.next().map(base);
    // `#!/usr/bin/env sh`, `#!/bin/busybox sh`: the shell is the next word.
    if matches!(program.as_deref(), Some("env" | "busybox")) {
        program = words.next().map(base);
    }
    program.is_some_and(|p| SHELLS.contains(&p.as_str()))
}

/// `rdinit=` from a kernel command line: the init the kernel runs from the initramfs instead of
/// /init (None: /init). The kernel's rules: parameters end at `--` (the rest is init's), the last
/// one wins, a value may be double-quoted. An empty one is refused: the kernel then finds no file
/// "" to run and mounts a root instead of running any init of the initramfs.
pub fn rdinit(append: &str) -> Result<Option<String>, FlavorError> {
    let mut found = None;
    for word in append.split_ascii_whitespace() {
        if word == "--" {
            break;
        }
        if let Some(value) = word.strip_prefix("rdinit=") {
            found = Some(value.trim_matches('"'));
        }
    }
    match found {
        Some("") => Err(FlavorError::EmptyRdinit),
        found => Ok(found.map(str::to_string)),
    }
}

pub(crate) fn init_text(tree: &Tree) -> Option<Vec<u8>> {
    let (key, node) = tree.lookup(b"init")?;
    file_data(tree, &key, node).ok().map(<[u8]>::to_vec)
}

/// systemd as /init: a symlink (possibly through others) to a file named `systemd`.
pub(crate) fn init_is_systemd(tree: &Tree) -> bool {
    tree.lookup(b"init")
        .is_some_and(|(key, _)| key.ends_with(b"/systemd") || key == b"systemd")
}

/// The canonical key of the first of the image's dracut hook directories that has the hook.
pub(crate) fn dracut_hook_dir(tree: &Tree) -> Option<String> {
    DRACUT_HOOK_DIRS
        .iter()
        .find(|d| dir_key(tree, format!("{d}/{DRACUT_HOOK}").as_bytes()).is_some())
        .and_then(|d| dir_key(tree, d.as_bytes()))
}

pub(crate) fn di_startup_dir(tree: &Tree) -> Option<String> {
    DI_STARTUP_DIRS
        .into_iter()
        .find_map(|d| dir_key(tree, d.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::flavor::Flavor;
    use crate::patch::test_trees::*;

    #[test]
    fn auto_wraps_an_init_that_is_not_a_shell_script_and_says_why() {
        let elf = tree(&[("init", "x", ELF)]);
        let d = explain(&elf, None);
        assert_eq!(d.flavor, Flavor::Wrap);
        assert_eq!(
            d.reason,
            "/init is an ELF binary, not a shell script: wrapped"
        );
        let python = tree(&[("init", "x", "#!/usr/bin/python3 -u\nprint()\n")]);
        let d = explain(&python, None);
        assert_eq!(d.flavor, Flavor::Wrap);
        assert!(
            d.reason.contains("a script for #!/usr/bin/python3 -u"),
            "{}",
            d.reason
        );
        // systemd as /init without dracut's hooks: wrapped, and the reason names the link.
        let systemd = tree(&[
            ("usr", "d", ""),
            ("usr/lib", "d", ""),
            ("usr/lib/systemd", "d", ""),
            ("usr/lib/systemd/systemd", "x", ELF),
            ("init", "l", "usr/lib/systemd/systemd"),
        ]);
        let d = explain(&systemd, None);
        assert_eq!(d.flavor, Flavor::Wrap);
        assert!(
            d.reason.starts_with("/init (a symlink to usr/lib/systemd/systemd, resolving to /usr/lib/systemd/systemd) is an ELF binary"),
            "{}",
            d.reason
        );
        // Shells stay generic, however they are named.
        for line in [
            "#!/bin/sh",
            "#!/bin/busybox sh",
            "#!/usr/bin/env bash",
            "#! /bin/ash -e",
        ] {
            let t = tree(&[("init", "x", &format!("{line}\nmount -t proc p /proc\n"))]);
            let d = explain(&t, None);
            assert_eq!(d.flavor, Flavor::Generic, "{line}");
            assert!(d.reason.contains("is a shell script"), "{}", d.reason);
        }
        // The other flavors keep their markers first: systemd with dracut hooks is dracut.
        assert_eq!(
            explain(&systemd_dracut(true, "/lib/dracut/hooks"), None).flavor,
            Flavor::DracutSystemd
        );
    }

    #[test]
    fn an_empty_rdinit_is_seen() {
        let empty = |append| matches!(rdinit(append), Err(FlavorError::EmptyRdinit));
        assert!(empty("quiet rdinit= console=ttyS0"));
        assert!(empty("rdinit=/init rdinit=\"\""));
        assert!(!empty("rdinit= rdinit=/init"));
        assert!(!empty("quiet -- rdinit="));
        assert!(!empty(""));
    }

    #[test]
    fn rdinit_follows_the_kernels_rules() {
        let rdinit = |append| rdinit(append).ok().flatten();
        assert_eq!(
            rdinit("console=ttyS0 rdinit=/sbin/myinit"),
            Some("/sbin/myinit".into())
        );
        assert_eq!(rdinit("rdinit=/a quiet rdinit=\"/b\""), Some("/b".into()));
        assert_eq!(rdinit("quiet -- rdinit=/for-init"), None);
        assert_eq!(rdinit("rdinit= quiet"), None);
        assert_eq!(rdinit(""), None);
        // rdinit= naming another init than /init: only a wrapper there runs the stanza, even
        // when /init is bootrig's busybox base.
        let base = include_str!("../../harness/busybox-init.sh");
        let t = tree(&[
            ("init", "x", base),
            ("sbin", "d", ""),
            ("sbin/myinit", "x", "#!/bin/sh\nexec sh\n"),
            ("sbin/init", "l", "../init"),
        ]);
        let d = explain(&t, Some("/sbin/myinit"));
        assert_eq!(d.flavor, Flavor::Wrap);
        assert!(
            d.reason.starts_with("rdinit=/sbin/myinit in [boot] append"),
            "{}",
            d.reason
        );
        // rdinit= naming /init itself, or a link to it, changes nothing.
        assert_eq!(explain(&t, Some("/init")).flavor, Flavor::Busybox);
        assert_eq!(explain(&t, Some("/sbin/init")).flavor, Flavor::Busybox);
    }
}
