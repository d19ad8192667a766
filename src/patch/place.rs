//! Where each flavor runs the stanza, as additions to the base.

use regex::bytes::Regex;

use crate::initrd::add::Addition;
use crate::initrd::cpio::Kind;
use crate::initrd::path;
use crate::initrd::tree::{Node, Tree};
use crate::patch::detect::{di_startup_dir, dracut_hook_dir};
use crate::patch::flavor::*;
use crate::patch::runnable::why_not_runnable;
use crate::patch::shell_lexer as shell;
use crate::patch::tree_text::{contains, dir_key, file_data, split_lines, trim};
use crate::patch::wrap::place_wrap;

/// The initramfs-tools `init-premount` hook, the dracut hook and the d-i startup script: each
/// runs the stanza at its [`HOOK_MARKER`] line.
const INITRAMFS_TOOLS_HOOK_TEMPLATE: &str = include_str!("../../harness/initramfs-tools-hook.sh");
const DRACUT_HOOK_TEMPLATE: &str = include_str!("../../harness/dracut-hook.sh");
const DI_STARTUP_TEMPLATE: &str = include_str!("../../harness/debian-installer-startup.sh");

/// The hook templates a flavor's placement fills in: part of a build's cache key, so an edited
/// template is never served from a stale entry.
pub const HOOK_TEMPLATES: [&str; 3] = [
    INITRAMFS_TOOLS_HOOK_TEMPLATE,
    DRACUT_HOOK_TEMPLATE,
    DI_STARTUP_TEMPLATE,
];
/// The line of a hook template the stanza replaces.
const HOOK_MARKER: &str = "# BOOTRIG-HOOK-STANZA";

/// `template` with its [`HOOK_MARKER`] line replaced by `stanza`.
fn with_stanza(template: &str, stanza: &str) -> Vec<u8> {
    fill_template(template, |line| {
        (line == HOOK_MARKER).then(|| stanza.to_string())
    })
}

/// A harness template filled in: each line for which `replace` gives text is replaced by it (a
/// newline added when it has none), every other line kept.
pub(crate) fn fill_template(
    template: &str,
    mut replace: impl FnMut(&str) -> Option<String>,
) -> Vec<u8> {
    let mut out = String::new();
    for line in template.lines() {
        match replace(line) {
            Some(text) => {
                out.push_str(&text);
                if !text.ends_with('\n') {
                    out.push('\n');
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.into_bytes()
}

/// How to place the stanza in a generic /init.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// Insert after the first line matching this regex (and after the shell block that line
    /// opens). None: after the lines mounting /proc and /sys.
    pub anchor: Option<String>,
    /// What the kernel runs: `rdinit=` from the scenario's `[boot] append` (see [`rdinit`]).
    /// None: /init. The wrap flavor wraps this path.
    pub init: Option<String>,
}

/// The additions that put `stanza` where `flavor` runs it.
pub fn place(
    flavor: Flavor,
    tree: &Tree,
    stanza: &str,
    placement: &Placement,
) -> Result<Vec<Addition>, FlavorError> {
    match flavor {
        Flavor::Busybox => place_busybox(tree, stanza),
        Flavor::InitramfsTools => place_initramfs_tools(tree, stanza),
        Flavor::Dracut => place_dracut(tree, stanza, false),
        Flavor::DracutSystemd => place_dracut(tree, stanza, true),
        Flavor::DebianInstaller => place_debian_installer(tree, stanza),
        Flavor::Generic => place_generic(tree, stanza, placement),
        Flavor::Wrap => place_wrap(tree, stanza, placement),
    }
}

fn place_busybox(tree: &Tree, stanza: &str) -> Result<Vec<Addition>, FlavorError> {
    let (key, node, text) = init_script(tree)?;
    let lines = split_lines(text);
    let at = lines
        .iter()
        .position(|l| trim(l) == BUSYBOX_MARKER.as_bytes())
        .ok_or(FlavorError::NoMarker {
            marker: BUSYBOX_MARKER,
        })?;
    Ok(vec![rewrite(&key, node, &lines, at + 1, stanza)])
}

fn place_initramfs_tools(tree: &Tree, stanza: &str) -> Result<Vec<Addition>, FlavorError> {
    let (_, _, init) = init_script(tree)?;
    if !contains(init, b"run_scripts /scripts/init-premount") {
        return Err(FlavorError::NotRun {
            what: "scripts/init-premount".into(),
            why: "no `run_scripts /scripts/init-premount` line; use the generic flavor with an anchor".into(),
        });
    }
    let hook = with_stanza(INITRAMFS_TOOLS_HOOK_TEMPLATE, stanza);
    // run_scripts sources ORDER (a missing ORDER would end /init); mkinitramfs writes one line
    // to run each hook and one to pick up what it left in /conf/param.conf.
    let run = format!("/{INITRAMFS_TOOLS_HOOK} \"$@\"");
    let mut order = match tree.lookup(INITRAMFS_TOOLS_ORDER.as_bytes()) {
        Some((key, node)) => file_data(tree, &key, node)?.to_vec(),
        None => Vec::new(),
    };
    if !split_lines(&order)
        .iter()
        .any(|l| trim(l) == run.as_bytes())
    {
        if !order.is_empty() && !order.ends_with(b"\n") {
            order.push(b'\n');
        }
        order.extend_from_slice(run.as_bytes());
        order.extend_from_slice(b"\n[ -e /conf/param.conf ] && . /conf/param.conf\n");
    }
    Ok(vec![
        Addition::bytes(&format!("/{INITRAMFS_TOOLS_HOOK}"), hook, 0o755),
        Addition::bytes(&format!("/{INITRAMFS_TOOLS_ORDER}"), order, 0o644),
    ])
}

fn place_dracut(tree: &Tree, stanza: &str, systemd: bool) -> Result<Vec<Addition>, FlavorError> {
    let mut hook_dir = dracut_hook_dir(tree).ok_or_else(|| FlavorError::Missing {
        what: format!("dracut hooks directory ({})", DRACUT_HOOK_DIRS.join(", ")),
        fix: "is this a dracut image? detect the flavor instead of forcing dracut",
    })?;
    if systemd {
        // The hook only runs if the unit exists, is pulled in, and its condition points here.
        if let Some(dir) = dracut_systemd_hook_dir(tree)? {
            hook_dir = dir;
        }
    }
    let dest = format!("/{hook_dir}/{DRACUT_HOOK}/{DRACUT_HOOK_FILE}");
    let body = with_stanza(DRACUT_HOOK_TEMPLATE, stanza);
    Ok(vec![Addition::bytes(&dest, body, 0o755)])
}

/// For systemd dracut: checks that `dracut-cmdline.service` runs, and returns the hook
/// directory its `ConditionDirectoryNotEmpty=|` names (None when it names none).
fn dracut_systemd_hook_dir(tree: &Tree) -> Result<Option<String>, FlavorError> {
    let unit_name = format!("dracut-{DRACUT_HOOK}.service");
    let unit_dirs = [
        "etc/systemd/system",
        "usr/lib/systemd/system",
        "lib/systemd/system",
    ];
    let unit = unit_dirs
        .iter()
        .find_map(|d| tree.lookup(format!("{d}/{unit_name}").as_bytes()))
        .ok_or_else(|| FlavorError::NotRun {
            what: format!("the dracut {DRACUT_HOOK} hook"),
            why: format!("no {unit_name} in {}; rebuild the image with dracut's systemd module (98dracut-systemd)", unit_dirs.join(", ")),
        })?;
    let wanted = unit_dirs.iter().any(|d| {
        ["initrd.target.wants", "sysinit.target.wants"]
            .iter()
            .any(|w| {
                tree.lookup(format!("{d}/{w}/{unit_name}").as_bytes())
                    .is_some()
            })
    });
    if !wanted {
        return Err(FlavorError::NotRun {
            what: unit_name,
            why: "it is not in initrd.target.wants or sysinit.target.wants, so systemd never starts it".into(),
        });
    }
    let text = file_data(tree, &unit.0, unit.1)?;
    let condition = split_lines(text).into_iter().find_map(|l| {
        let rest = trim(l).strip_prefix(b"ConditionDirectoryNotEmpty=")?;
        let dir = rest.strip_prefix(b"|").unwrap_or(rest);
        let dir = std::str::from_utf8(dir).ok()?;
        let dir = dir.trim().trim_end_matches('/');
        let dir = dir.strip_suffix(&format!("/{DRACUT_HOOK}"))?;
        Some(
            dir_key(tree, dir.as_bytes())
                .unwrap_or_else(|| path::display(&path::normalize(dir.as_bytes()))),
        )
    });
    Ok(condition)
}

fn place_debian_installer(tree: &Tree, stanza: &str) -> Result<Vec<Addition>, FlavorError> {
    let dir = di_startup_dir(tree).ok_or_else(|| FlavorError::Missing {
        what: format!("d-i startup directory ({})", DI_STARTUP_DIRS.join(", ")),
        fix: "is this a Debian installer initrd? detect the flavor instead of forcing debian-installer",
    })?;
    let body = with_stanza(DI_STARTUP_TEMPLATE, stanza);
    Ok(vec![Addition::bytes(
        &format!("/{dir}/{DI_STARTUP_FILE}"),
        body,
        0o755,
    )])
}

fn place_generic(
    tree: &Tree,
    stanza: &str,
    placement: &Placement,
) -> Result<Vec<Addition>, FlavorError> {
    let (key, node, text) = init_script(tree)?;
    // The edited /init keeps the original's mode and #! line: it must run as it is.
    if let Some(why) = why_not_runnable(tree, b"init") {
        return Err(FlavorError::CannotRun {
            init: "/init".into(),
            why,
        });
    }
    let shown = path::display(&key);
    let lines = split_lines(text);
    let blocks = shell::scan(&lines);
    let anchor_line = match &placement.anchor {
        Some(pattern) => {
            let re = Regex::new(pattern).map_err(|source| FlavorError::BadAnchor {
                anchor: pattern.clone(),
                source,
            })?;
            (0..lines.len())
                .find(|&i| !blocks.ignored[i] && re.is_match(lines[i]))
                .ok_or_else(|| FlavorError::NoAnchor {
                    anchor: format!("anchor {pattern:?}"),
                    path: shown.clone(),
                })?
        }
        None => default_anchor(&lines, &blocks).ok_or_else(|| FlavorError::NoAnchor {
            anchor: "default anchor (lines mounting /proc and /sys)".into(),
            path: shown.clone(),
        })?,
    };
    if let Some(function) = &blocks.function[anchor_line] {
        return Err(FlavorError::AnchorInFunction {
            path: shown,
            line: anchor_line + 1,
            function: function.clone(),
        });
    }
    // After the anchor line, at the first point back at top level.
    let insert = (anchor_line..lines.len())
        .find(|&i| blocks.top_level_after[i])
        .map(|i| i + 1)
        .ok_or(FlavorError::Unclosed {
            path: shown.clone(),
            line: anchor_line + 1,
        })?;
    if let Some(handoff) = (0..insert).find(|&i| blocks.handoff[i]) {
        return Err(FlavorError::AfterHandOff {
            path: shown,
            line: anchor_line + 1,
            handoff: handoff + 1,
            text: String::from_utf8_lossy(trim(lines[handoff])).into_owned(),
        });
    }
    Ok(vec![rewrite(&key, node, &lines, insert, stanza)])
}

/// The line after which both /proc and /sys have been mounted.
fn default_anchor(lines: &[&[u8]], blocks: &shell::Blocks) -> Option<usize> {
    // `mount ... /proc`, `/bin/mount -t sysfs sysfs /sys`, `busybox mount ...`.
    let mount = |target: &str| {
        Regex::new(&format!(
            r"(^|[\s;&|!(])(\S*/)?mount\s[^#]*\s{target}/?(\s|;|$)"
        ))
    };
    // Both patterns are constant and valid.
    let (Ok(proc_re), Ok(sys_re)) = (mount("/proc"), mount("/sys")) else {
        return None;
    };
    let find = |re: &Regex| {
        (0..lines.len())
            .find(|&i| !blocks.ignored[i] && blocks.function[i].is_none() && re.is_match(lines[i]))
    };
    Some(find(&proc_re)?.max(find(&sys_re)?))
}

/// `lines` with `stanza` inserted before line `at`, as an addition replacing `key`.
fn rewrite(key: &[u8], node: &Node, lines: &[&[u8]], at: usize, stanza: &str) -> Addition {
    let mut out = Vec::new();
    for line in &lines[..at] {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.extend_from_slice(stanza.as_bytes());
    if !stanza.ends_with('\n') {
        out.push(b'\n');
    }
    for line in &lines[at..] {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    let mode = node.mode & 0o7777;
    Addition::bytes(&format!("/{}", path::display(key)), out, mode)
}

/// /init as a shell script: its canonical key, node and content.
fn init_script(tree: &Tree) -> Result<(Vec<u8>, &Node, &[u8]), FlavorError> {
    let Some((key, node)) = tree.lookup(b"init") else {
        return Err(match why_not_runnable(tree, b"init") {
            // A symlink that leads nowhere.
            Some(why) => FlavorError::CannotRun {
                init: "/init".into(),
                why,
            },
            None => FlavorError::Missing {
                what: "/init".into(),
                fix: "the kernel runs /init from an initramfs; is this an initrd?",
            },
        });
    };
    if node.kind != Kind::Regular {
        return Err(FlavorError::NotAScript {
            path: path::display(&key),
            why: "not a regular file",
        });
    }
    let data = file_data(tree, &key, node)?;
    if !data.starts_with(b"#!") {
        return Err(FlavorError::NotAScript {
            path: path::display(&key),
            why: if data.starts_with(b"\x7fELF") {
                "an ELF binary"
            } else {
                "no #! line"
            },
        });
    }
    Ok((key, node, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::initrd::cpio::Entry;
    use crate::initrd::path;
    use crate::initrd::tree::DataPolicy;
    use crate::patch::detect::{detect, explain};
    use crate::patch::flavor::Flavor;
    use crate::patch::place::{place, Placement};
    use crate::patch::test_trees::*;

    fn generic(init: &str, anchor: Option<&str>) -> Result<String, FlavorError> {
        // The shell its #! line names: an /init without one is refused.
        let t = tree(&[("bin", "d", ""), ("bin/sh", "x", ELF), ("init", "x", init)]);
        assert_eq!(detect(&t), Flavor::Generic);
        let adds = place(
            Flavor::Generic,
            &t,
            STANZA,
            &Placement {
                anchor: anchor.map(String::from),
                init: None,
            },
        )?;
        assert_eq!(adds.len(), 1);
        assert_eq!(adds[0].dest, b"/init");
        assert_eq!(adds[0].mode, Some(0o755));
        Ok(bytes_of(&adds[0]))
    }

    #[test]
    fn hook_templates_run_the_stanza_once_and_name_their_hook() {
        for template in [
            INITRAMFS_TOOLS_HOOK_TEMPLATE,
            DRACUT_HOOK_TEMPLATE,
            DI_STARTUP_TEMPLATE,
        ] {
            assert!(template.starts_with("#!/bin/sh\n"));
            assert_eq!(template.lines().filter(|l| *l == HOOK_MARKER).count(), 1);
            let out = String::from_utf8(with_stanza(template, STANZA)).unwrap();
            assert!(out.contains(STANZA) && !out.contains(HOOK_MARKER), "{out}");
        }
        assert!(DRACUT_HOOK_TEMPLATE.contains(&format!("dracut's {DRACUT_HOOK} hook")));
    }

    /// An /init the kernel cannot execute is refused, not edited (the test-mode check would pass
    /// it, the real boot would panic).
    #[test]
    fn generic_refuses_an_init_the_kernel_cannot_run() {
        let sh = [("bin", "d", ""), ("bin/sh", "x", ELF)];
        let mounts = "mount -t proc proc /proc\nmount -t sysfs sysfs /sys\n";
        let cases = [
            ("x", format!("#!/bin/sh\r\n{mounts}"), "CRLF line endings"),
            (
                "x",
                format!("#!/bin/bash\n{mounts}"),
                "its interpreter /bin/bash",
            ),
            (
                "f",
                format!("#!/bin/sh\n{mounts}"),
                "has mode 0644, not executable",
            ),
        ];
        for (kind, init, want) in cases {
            let mut entries = sh.to_vec();
            entries.push(("init", kind, &init));
            let t = tree(&entries);
            let err = place(Flavor::Generic, &t, STANZA, &Placement::default()).unwrap_err();
            assert!(matches!(err, FlavorError::CannotRun { .. }), "{err}");
            assert!(err.to_string().contains(want), "{want}: {err}");
        }
        let dangling = tree(&[("init", "l", "sbin/init")]);
        let d = explain(&dangling, None);
        assert_eq!(d.flavor, Flavor::Generic);
        assert_eq!(
            d.reason,
            "no /init to run: /init is a symlink to /sbin/init, which is missing"
        );
        let err = place(Flavor::Generic, &dangling, STANZA, &Placement::default()).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("/init is a symlink to /sbin/init, which is missing"),
            "{err}"
        );
    }

    #[test]
    fn busybox_base_goes_at_the_marker() {
        let init = include_str!("../../harness/busybox-init.sh");
        // The shell its #! line names: an /init without one is refused.
        let t = tree(&[("bin", "d", ""), ("bin/sh", "x", ELF), ("init", "x", init)]);
        assert_eq!(detect(&t), Flavor::Busybox);
        let adds = place(Flavor::Busybox, &t, STANZA, &Placement::default()).unwrap();
        let out = bytes_of(&adds[0]);
        let marker = out.find(BUSYBOX_MARKER).unwrap();
        let stanza = out.find(STANZA).unwrap();
        assert_eq!(stanza, marker + BUSYBOX_MARKER.len() + 1);
        assert!(out.find("mount -t devtmpfs").unwrap() < stanza);
        assert!(out.find("setsid cttyhack sh").unwrap() > stanza);
        // Forcing busybox on another init is an error, not a guess.
        let other = tree(&[("init", "x", "#!/bin/sh\nexec /sbin/init\n")]);
        assert!(matches!(
            place(Flavor::Busybox, &other, STANZA, &Placement::default()),
            Err(FlavorError::NoMarker { .. })
        ));
    }

    #[test]
    fn generic_default_goes_after_proc_and_sys_mounts() {
        let init = "#!/bin/sh\n# mount /proc and /sys first\nmount -t proc proc /proc\necho hi\nmount -t sysfs sysfs /sys\nmount -t devtmpfs dev /dev\nexec switch_root /root /sbin/init\n";
        let out = generic(init, None).unwrap();
        let expected = init.replace(
            "mount -t sysfs sysfs /sys\n",
            &format!("mount -t sysfs sysfs /sys\n{STANZA}"),
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn generic_skips_to_the_end_of_the_enclosing_block() {
        // dracut's own /init guards its mounts like this.
        let init = "#!/bin/sh\nif [ ! -d /proc/self ]; then\n    if ! mount -t proc -o nosuid proc /proc > /dev/null; then\n        echo \"Cannot mount proc\"\n        exit 1\n    fi\nfi\nif [ ! -d /sys/kernel ]; then\n    if ! mount -t sysfs -o nosuid sysfs /sys > /dev/null; then\n        exit 1\n    fi\nfi\necho after\n";
        let out = generic(init, None).unwrap();
        assert!(
            out.contains(&format!("    fi\nfi\n{STANZA}echo after\n")),
            "{out}"
        );
    }

    #[test]
    fn generic_user_anchor_and_continuation_lines() {
        let init = "#!/bin/sh\nmount -t proc proc /proc\nmount -t sysfs sysfs /sys\nudevadm trigger &&\n  udevadm settle\nexec switch_root /root /sbin/init\n";
        let out = generic(init, Some(r"^udevadm trigger")).unwrap();
        assert!(out.contains(&format!("  udevadm settle\n{STANZA}exec switch_root")));
    }

    #[test]
    fn generic_without_anchor_match_is_an_error_not_an_append() {
        let init = "#!/bin/sh\necho no mounts here\nexec /sbin/init\n";
        let err = generic(init, None).unwrap_err();
        assert!(matches!(err, FlavorError::NoAnchor { .. }), "{err}");
        assert!(err.to_string().contains("nothing was appended"));
        let err = generic(init, Some("^never$")).unwrap_err();
        assert!(matches!(err, FlavorError::NoAnchor { .. }), "{err}");
        assert!(matches!(
            generic(init, Some("(")).unwrap_err(),
            FlavorError::BadAnchor { .. }
        ));
    }

    #[test]
    fn generic_refuses_places_where_the_stanza_would_not_run() {
        // After the hand-over.
        let init = "#!/bin/sh\nmount -t proc proc /proc\nexec switch_root /root /sbin/init\nmount -t sysfs sysfs /sys\n";
        assert!(matches!(
            generic(init, None).unwrap_err(),
            FlavorError::AfterHandOff { handoff: 3, .. }
        ));
        // Inside a function body (its mounts do not count for the default anchor either).
        let init = "#!/bin/sh\nsetup() {\n  mount -t proc proc /proc\n  mount -t sysfs sysfs /sys\n}\nsetup\nexec run-init /root /sbin/init\n";
        assert!(matches!(
            generic(init, None).unwrap_err(),
            FlavorError::NoAnchor { .. }
        ));
        let err = generic(init, Some("mount -t sysfs")).unwrap_err();
        assert!(
            matches!(&err, FlavorError::AnchorInFunction { function, line: 4, .. } if function == "setup"),
            "{err}"
        );
        // A redirection-only exec is not a hand-over; a here-document is not code.
        let init = "#!/bin/sh\nexec >/dev/console 2>&1\ncat <<EOF\nmount -t proc proc /proc\nEOF\nmount -t proc proc /proc\nmount -t sysfs sysfs /sys\n";
        let out = generic(init, None).unwrap();
        assert!(out.ends_with(&format!("mount -t sysfs sysfs /sys\n{STANZA}")));
    }

    #[test]
    fn generic_refuses_a_binary_or_symlinked_systemd_init() {
        let t = tree(&[
            ("usr", "d", ""),
            ("usr/lib", "d", ""),
            ("usr/lib/systemd", "d", ""),
            ("usr/lib/systemd/systemd", "x", "\x7fELF\x02\x01"),
            ("init", "l", "usr/lib/systemd/systemd"),
        ]);
        let err = place(Flavor::Generic, &t, STANZA, &Placement::default()).unwrap_err();
        assert!(
            matches!(&err, FlavorError::NotAScript { path, why: "an ELF binary" } if path == "usr/lib/systemd/systemd"),
            "{err}"
        );
        let empty = tree(&[("etc", "d", "")]);
        assert!(matches!(
            place(Flavor::Generic, &empty, STANZA, &Placement::default()),
            Err(FlavorError::Missing { .. })
        ));
    }

    fn initramfs_tools_tree(order: Option<&str>) -> Tree {
        let init = "#!/bin/sh\nmount -t proc proc /proc\nrun_scripts /scripts/init-top\nrun_scripts /scripts/init-premount\n";
        let mut entries = vec![
            ("init", "x", init),
            ("scripts", "d", ""),
            ("scripts/functions", "f", "run_scripts() { :; }\n"),
        ];
        if let Some(order) = order {
            entries.push(("scripts/init-premount", "d", ""));
            entries.push(("scripts/init-premount/ORDER", "f", order));
        }
        tree(&entries)
    }

    #[test]
    fn initramfs_tools_gets_a_premount_hook_and_an_order_line() {
        let t = initramfs_tools_tree(None);
        assert_eq!(detect(&t), Flavor::InitramfsTools);
        let adds = place(Flavor::InitramfsTools, &t, STANZA, &Placement::default()).unwrap();
        assert_eq!(adds[0].dest, b"/scripts/init-premount/bootrig");
        assert_eq!(adds[0].mode, Some(0o755));
        let hook = bytes_of(&adds[0]);
        assert!(hook.starts_with("#!/bin/sh\n"));
        assert!(hook.contains("prereqs)\n\tprereqs\n\texit 0"));
        assert!(hook.contains(STANZA));
        assert_eq!(adds[1].dest, b"/scripts/init-premount/ORDER");
        assert_eq!(
            bytes_of(&adds[1]),
            "/scripts/init-premount/bootrig \"$@\"\n[ -e /conf/param.conf ] && . /conf/param.conf\n"
        );
        // An existing ORDER keeps its hooks first and is not extended twice.
        let existing =
            "/scripts/init-premount/plymouth \"$@\"\n[ -e /conf/param.conf ] && . /conf/param.conf";
        let t = initramfs_tools_tree(Some(existing));
        let order =
            bytes_of(&place(Flavor::InitramfsTools, &t, STANZA, &Placement::default()).unwrap()[1]);
        assert!(order.starts_with(&format!(
            "{existing}\n/scripts/init-premount/bootrig \"$@\"\n"
        )));
        let t = initramfs_tools_tree(Some(&order));
        let again =
            bytes_of(&place(Flavor::InitramfsTools, &t, STANZA, &Placement::default()).unwrap()[1]);
        assert_eq!(again, order);
    }

    #[test]
    fn dracut_hook_dir_follows_the_image() {
        for dir in DRACUT_HOOK_DIRS {
            let mut entries = vec![("init", "x", "#!/bin/sh\nsource_hook cmdline\n")];
            let parts: Vec<&str> = dir.split('/').collect();
            let mut prefixes = Vec::new();
            for i in 1..=parts.len() {
                prefixes.push(parts[..i].join("/"));
            }
            prefixes.push(format!("{dir}/cmdline"));
            let owned: Vec<(String, &str, &str)> =
                prefixes.into_iter().map(|p| (p, "d", "")).collect();
            for (p, k, c) in &owned {
                entries.push((p.as_str(), k, c));
            }
            let t = tree(&entries);
            assert_eq!(detect(&t), Flavor::Dracut, "{dir}");
            let adds = place(detect(&t), &t, STANZA, &Placement::default()).unwrap();
            assert_eq!(
                path::display(&adds[0].dest),
                format!("/{dir}/cmdline/90-bootrig.sh")
            );
            assert!(bytes_of(&adds[0]).contains(STANZA));
        }
    }

    #[test]
    fn systemd_dracut_uses_the_units_hook_dir_and_never_edits_init() {
        let t = systemd_dracut(true, "/lib/dracut/hooks");
        assert_eq!(detect(&t), Flavor::DracutSystemd);
        let adds = place(detect(&t), &t, STANZA, &Placement::default()).unwrap();
        assert_eq!(adds.len(), 1);
        assert_eq!(adds[0].dest, b"/usr/lib/dracut/hooks/cmdline/90-bootrig.sh");
        // dracut-ng's unit names /var/lib/dracut/hooks: the hook must go where it looks.
        let t = systemd_dracut(true, "/var/lib/dracut/hooks");
        let adds = place(detect(&t), &t, STANZA, &Placement::default()).unwrap();
        assert_eq!(adds[0].dest, b"/var/lib/dracut/hooks/cmdline/90-bootrig.sh");
        let t = systemd_dracut(false, "/lib/dracut/hooks");
        let err = place(detect(&t), &t, STANZA, &Placement::default()).unwrap_err();
        assert!(err.to_string().contains("initrd.target.wants"), "{err}");
    }

    /// Shaped like d-i's initrd (rootskel): /init, busybox init with /etc/inittab running
    /// /sbin/debian-installer-startup over lib/debian-installer-startup.d.
    #[test]
    fn debian_installer_startup_script() {
        for merged_usr in [false, true] {
            let mut entries = vec![
                ("init", "x", "#!/bin/sh -e\nmount /proc\nexec /sbin/init\n"),
                ("etc", "d", ""),
                ("etc/inittab", "f", "::sysinit:/sbin/reopen-console /sbin/debian-installer-startup\n::respawn:/sbin/reopen-console /sbin/debian-installer\n"),
                ("sbin", "d", ""),
                ("sbin/debian-installer-startup", "x", "#!/bin/sh\n"),
            ];
            if merged_usr {
                entries.extend([
                    ("usr", "d", ""),
                    ("usr/lib", "d", ""),
                    ("lib", "l", "usr/lib"),
                    ("usr/lib/debian-installer-startup.d", "d", ""),
                    (
                        "usr/lib/debian-installer-startup.d/S10syslog",
                        "x",
                        "#!/bin/sh\n",
                    ),
                ]);
            } else {
                entries.extend([
                    ("lib", "d", ""),
                    ("lib/debian-installer-startup.d", "d", ""),
                    (
                        "lib/debian-installer-startup.d/S10syslog",
                        "x",
                        "#!/bin/sh\n",
                    ),
                ]);
            }
            let t = tree(&entries);
            assert_eq!(detect(&t), Flavor::DebianInstaller);
            let adds = place(detect(&t), &t, STANZA, &Placement::default()).unwrap();
            let want = if merged_usr {
                "/usr/lib/debian-installer-startup.d/S09bootrig"
            } else {
                "/lib/debian-installer-startup.d/S09bootrig"
            };
            assert_eq!(path::display(&adds[0].dest), want);
            assert_eq!(adds[0].mode, Some(0o755));
            let body = bytes_of(&adds[0]);
            assert!(body.starts_with("#!/bin/sh\n") && body.contains(STANZA));
        }
    }

    #[test]
    fn no_data_is_a_clear_error() {
        let mut t = Tree::new(DataPolicy::SizeOnly);
        let mut e = Entry::trailer();
        e.name = b"init".to_vec();
        e.header.mode = 0o100755;
        t.apply(0, e, 10);
        assert!(matches!(
            place(Flavor::Generic, &t, STANZA, &Placement::default()),
            Err(FlavorError::NoData { .. })
        ));
    }
}
