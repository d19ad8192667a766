//! The wrap flavor: bootrig's wrapper takes the init's place and execs the original.

use crate::initrd::add::{Addition, Source};
use crate::initrd::cpio::Kind;
use crate::initrd::path;
use crate::initrd::tree::Tree;
use crate::patch::detect::{classify, InitKind};
use crate::patch::flavor::FlavorError;
use crate::patch::place::{fill_template, Placement};
use crate::patch::runnable::why_not_runnable;
use crate::patch::tree_text::{entry_at, file_data};
use crate::patch::BUSYBOX_IN_IMAGE;
use crate::shell::single_quote;

/// bootrig's wrapper init, with the stanza at [`WRAP_MARKER`].
pub const WRAP_INIT: &str = include_str!("../../harness/wrap-init.sh");
/// The line of the wrapper where the stanza goes.
pub const WRAP_MARKER: &str = "# BOOTRIG-WRAP-STANZA";
/// Where the wrap flavor moves the original init: this directory and the init's own path
/// (`/usr/lib/bootrig/original/init`, `/usr/lib/bootrig/original/sbin/myinit`).
pub const WRAP_ORIGINAL_DIR: &str = "/usr/lib/bootrig/original";

/// Wraps the init the kernel runs (/init, or `placement.init` from `rdinit=`).
///
/// The kernel's unpacker (init/initramfs.c) writes an entry over an existing path of the same
/// type through the existing inode (O_TRUNC), so a wrapper written straight over a /init that is
/// a hardlink (busybox init, an initramfs-tools busybox) would overwrite every name of that
/// inode. So: the original is copied to a new path (content, or the symlink with its target made
/// absolute so it resolves the same from there), a symlink is written at the init's path first
/// (another type: the kernel unlinks the old entry), then the wrapper as a new file.
pub(crate) fn place_wrap(
    tree: &Tree,
    stanza: &str,
    placement: &Placement,
) -> Result<Vec<Addition>, FlavorError> {
    let init = placement.init.as_deref().unwrap_or("/init");
    let shown = format!("/{}", path::display(&path::normalize(init.as_bytes())));
    let cannot = |why: String| FlavorError::CannotWrap {
        init: shown.clone(),
        why,
    };
    let (key, node) = entry_at(tree, init.as_bytes()).ok_or_else(|| FlavorError::Missing {
        what: shown.clone(),
        fix: if placement.init.is_some() {
            "the kernel runs rdinit= only if the image has it (else it mounts a root itself); fix rdinit= in [boot] append"
        } else {
            "the kernel runs /init from an initramfs; is this an initrd?"
        },
    })?;
    if let InitKind::Wrapped { .. } = classify(tree, &key) {
        return Err(cannot(
            "it is bootrig's wrapper already (this image was built by bootrig): build from the original base image".into(),
        ));
    }
    // The saved original must run, or the wrapper hands the boot to nothing.
    if node.kind == Kind::Regular || node.kind == Kind::Symlink {
        if let Some(why) = why_not_runnable(tree, &key) {
            return Err(FlavorError::CannotRun { init: shown, why });
        }
    }
    let moved = format!("{WRAP_ORIGINAL_DIR}/{}", path::display(&key));
    let mut adds = Vec::new();
    match node.kind {
        Kind::Regular => {
            let data = file_data(tree, &key, node)?;
            adds.push(Addition::bytes(&moved, data.to_vec(), node.mode & 0o7777));
        }
        Kind::Symlink => {
            let target = if node.target.first() == Some(&b'/') {
                node.target.clone()
            } else {
                let mut abs = b"/".to_vec();
                abs.extend(path::join(path::parent(&key), &node.target));
                abs
            };
            adds.push(Addition {
                source: Source::Symlink(target),
                dest: moved.clone().into_bytes(),
                mode: None,
            });
        }
        other => {
            return Err(cannot(format!(
                "it is a {}, not a file the kernel can run",
                format!("{other:?}").to_lowercase()
            )))
        }
    }
    let dest = format!("/{}", path::display(&key));
    adds.push(Addition::symlink(&dest, &moved));
    adds.push(Addition::bytes(&dest, wrapper(&moved, stanza), 0o755));
    // udhcpc runs its script by its #!/bin/sh line; an image without a shell (tiny-initramfs)
    // gets bootrig's busybox there.
    if tree.lookup(b"bin/sh").is_none() {
        adds.push(Addition::symlink("/bin/sh", BUSYBOX_IN_IMAGE));
    }
    Ok(adds)
}

/// Whether [`place`] for the wrap flavor needs content the tree did not keep: the original
/// init (at `rdinit`, else /init) is a regular file read without its data.
pub fn wrap_needs_data(tree: &Tree, rdinit: Option<&str>) -> bool {
    entry_at(tree, rdinit.unwrap_or("/init").as_bytes()).is_some_and(|(_, node)| {
        node.kind == Kind::Regular && tree.inode(node).and_then(|i| i.data.as_ref()).is_none()
    })
}

/// The wrapper for the original moved to `original`, with `stanza` after the marker line, and
/// bootrig's busybox ([`BUSYBOX_IN_IMAGE`]) on its `#!` line and in `bootrig_busybox=`.
fn wrapper(original: &str, stanza: &str) -> Vec<u8> {
    // BUSYBOX_IN_IMAGE is plain (no character the shell treats specially, see the tests): it
    // goes in unquoted, as a #! line must have it.
    fill_template(WRAP_INIT, |line| {
        if line.starts_with("#!") {
            Some(format!("#!{BUSYBOX_IN_IMAGE} sh"))
        } else if line.starts_with("bootrig_busybox=") {
            Some(format!("bootrig_busybox={BUSYBOX_IN_IMAGE}"))
        } else if line.starts_with("bootrig_original=") {
            Some(format!("bootrig_original={}", single_quote(original)))
        } else if line.trim() == WRAP_MARKER {
            // The marker stays: it tells a later build that this is bootrig's wrapper.
            Some(format!("{line}\n{stanza}"))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::initrd::add::Source;
    use crate::initrd::cpio::Entry;
    use crate::initrd::path;
    use crate::initrd::tree::DataPolicy;
    use crate::patch::detect::{detect, explain};
    use crate::patch::flavor::Flavor;
    use crate::patch::flavor::FlavorError;
    use crate::patch::place::{place, Placement};
    use crate::patch::test_trees::*;

    /// busybox init as /init is often a hardlink of /bin/busybox: the kernel would write a
    /// wrapper entry of the same type through that inode (O_TRUNC) and busybox would be gone.
    #[test]
    fn wrap_moves_a_hardlinked_init_aside_and_leaves_its_other_names_alone() {
        let mut t = Tree::new(DataPolicy::Full);
        for (name, mode) in [
            ("bin", 0o040755),
            ("bin/busybox", 0o100755),
            ("init", 0o100750),
        ] {
            let data = if mode == 0o040755 {
                Vec::new()
            } else {
                ELF.as_bytes().to_vec()
            };
            let mut e = Entry::new(name, mode, Vec::new());
            if mode != 0o040755 {
                e.header.nlink = 2;
                e.header.ino = 7;
            }
            // newc gives the content with the last name of the inode.
            if name == "init" {
                e.data = data.clone();
            }
            let len = e.data.len() as u64;
            t.apply(0, e, len);
        }
        assert_eq!(data_at(&t, b"bin/busybox"), ELF.as_bytes());
        assert_eq!(detect(&t), Flavor::Wrap);
        let adds = place(Flavor::Wrap, &t, STANZA, &Placement::default()).unwrap();
        let dests: Vec<String> = adds.iter().map(|a| path::display(&a.dest)).collect();
        assert_eq!(
            dests,
            [
                "/usr/lib/bootrig/original/init",
                "/init",
                "/init",
                "/bin/sh"
            ]
        );
        assert_eq!(adds[0].mode, Some(0o750), "the original keeps its mode");
        assert!(
            matches!(&adds[1].source, Source::Symlink(_)),
            "another type first"
        );
        assert_eq!(
            adds[3].source,
            Source::Symlink(BUSYBOX_IN_IMAGE.as_bytes().to_vec())
        );
        let mut after = t.clone();
        apply(&mut after, &adds);
        assert_eq!(data_at(&after, b"bin/busybox"), ELF.as_bytes());
        assert_eq!(
            data_at(&after, b"usr/lib/bootrig/original/init"),
            ELF.as_bytes()
        );
        let wrapper = String::from_utf8(data_at(&after, b"init")).unwrap();
        assert!(wrapper.contains(STANZA), "{wrapper}");
        assert!(wrapper.contains("\nbootrig_original='/usr/lib/bootrig/original/init'\n"));
        assert_eq!(after.get(b"init").unwrap().mode & 0o7777, 0o755);
        // What the symlink prevents: the wrapper written straight over /init lands in busybox.
        let mut naive = t.clone();
        apply(&mut naive, &adds[2..3]);
        assert_ne!(data_at(&naive, b"bin/busybox"), ELF.as_bytes());
    }

    #[test]
    fn wrap_keeps_a_symlinked_inits_target_and_honours_rdinit() {
        let t = tree(&[
            ("bin", "d", ""),
            ("bin/sh", "x", "#!shell"),
            ("bin/busybox", "x", ELF),
            ("sbin", "d", ""),
            ("sbin/init", "l", "../bin/busybox"),
            ("sbin/myinit", "l", "../bin/busybox"),
            ("init", "l", "sbin/init"),
        ]);
        let adds = place(Flavor::Wrap, &t, STANZA, &Placement::default()).unwrap();
        assert_eq!(adds.len(), 3, "the image has /bin/sh: none added");
        assert_eq!(adds[0].dest, b"/usr/lib/bootrig/original/init");
        assert_eq!(adds[0].source, Source::Symlink(b"/sbin/init".to_vec()));
        let placement = Placement {
            init: Some("/sbin/myinit".into()),
            ..Placement::default()
        };
        let adds = place(Flavor::Wrap, &t, STANZA, &placement).unwrap();
        let dests: Vec<String> = adds.iter().map(|a| path::display(&a.dest)).collect();
        assert_eq!(
            dests,
            [
                "/usr/lib/bootrig/original/sbin/myinit",
                "/sbin/myinit",
                "/sbin/myinit"
            ]
        );
        // Relative to where the link was, made absolute so it resolves the same from its new place.
        assert_eq!(
            adds[0].source,
            Source::Symlink(b"/sbin/../bin/busybox".to_vec())
        );
        let mut after = t.clone();
        apply(&mut after, &adds);
        assert_eq!(
            data_at(&after, b"usr/lib/bootrig/original/sbin/myinit"),
            ELF.as_bytes()
        );
        assert!(String::from_utf8(data_at(&after, b"sbin/myinit"))
            .unwrap()
            .contains(STANZA));
        // /init is left alone.
        assert_eq!(after.get(b"init").unwrap().target, b"sbin/init");
    }

    #[test]
    fn wrap_refuses_what_it_cannot_wrap() {
        let t = tree(&[("init", "x", ELF), ("sbin", "d", "")]);
        let missing = Placement {
            init: Some("/sbin/myinit".into()),
            ..Placement::default()
        };
        let err = place(Flavor::Wrap, &t, STANZA, &missing).unwrap_err();
        assert!(
            err.to_string().contains("fix rdinit= in [boot] append"),
            "{err}"
        );
        let dir = Placement {
            init: Some("/sbin".into()),
            ..Placement::default()
        };
        let err = place(Flavor::Wrap, &t, STANZA, &dir).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/sbin: cannot wrap it: it is a directory, not a file the kernel can run"
        );
        // An image bootrig already wrapped: detected, and refused rather than wrapped twice.
        let adds = place(Flavor::Wrap, &t, STANZA, &Placement::default()).unwrap();
        let mut wrapped = t.clone();
        apply(&mut wrapped, &adds);
        let d = explain(&wrapped, None);
        assert_eq!(d.flavor, Flavor::Wrap);
        assert!(
            d.reason.contains("bootrig's wrapper already"),
            "{}",
            d.reason
        );
        let err = place(Flavor::Wrap, &wrapped, STANZA, &Placement::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("build from the original base image"),
            "{err}"
        );
        // Content the tree did not keep is asked for, not guessed.
        let mut sized = Tree::new(DataPolicy::SizeOnly);
        let mut e = Entry::new("init", 0o100755, Vec::new());
        e.header.nlink = 1;
        sized.apply(0, e, 5 << 20);
        assert!(wrap_needs_data(&sized, None));
        assert!(!wrap_needs_data(&t, None));
        assert!(matches!(
            place(Flavor::Wrap, &sized, STANZA, &Placement::default()),
            Err(FlavorError::NoData { .. })
        ));
    }

    /// A wrapper that saves an original the kernel cannot run hands the boot to nothing: refused,
    /// whether wrap was asked for or picked by auto.
    #[test]
    fn wrap_refuses_an_original_that_cannot_run() {
        let mut arm = ELF.as_bytes().to_vec();
        arm.resize(20, 0);
        arm[18] = 40;
        let arm = String::from_utf8(arm).unwrap();
        type Entries<'a> = Vec<(&'a str, &'a str, &'a str)>;
        let cases: [(Entries, &str); 5] = [
            (
                vec![("init", "l", "sbin/init")],
                "symlink to /sbin/init, which is missing",
            ),
            (
                vec![("init", "l", "init2"), ("init2", "l", "init")],
                "symlink loop",
            ),
            (vec![("init", "x", "")], "empty (0 bytes)"),
            (vec![("init", "f", ELF)], "mode 0644, not executable"),
            (vec![("init", "x", &arm)], "machine 40 (ARM), not x86-64"),
        ];
        for (entries, want) in cases {
            let t = tree(&entries);
            let err = place(Flavor::Wrap, &t, STANZA, &Placement::default()).unwrap_err();
            assert!(matches!(err, FlavorError::CannotRun { .. }), "{err}");
            assert!(err.to_string().contains(want), "{want}: {err}");
            // What auto picks for these fails the same way.
            let flavor = explain(&t, None).flavor;
            assert!(
                place(flavor, &t, STANZA, &Placement::default()).is_err(),
                "{want}"
            );
        }
    }

    #[test]
    fn wrapper_template_runs_under_the_shipped_busybox_and_parses() {
        let lines: Vec<&str> = WRAP_INIT.lines().collect();
        for prefix in ["#!", "bootrig_busybox=", "bootrig_original="] {
            assert_eq!(
                lines.iter().filter(|l| l.starts_with(prefix)).count(),
                1,
                "{prefix}"
            );
        }
        assert!(lines[0].starts_with("#!"));
        assert_eq!(lines.iter().filter(|l| l.trim() == WRAP_MARKER).count(), 1);
        // The in-image paths live in their constants only: the wrapper gets them from there.
        assert!(!WRAP_INIT.contains("/usr/lib/bootrig/"), "{WRAP_INIT}");
        assert!(BUSYBOX_IN_IMAGE
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b)));
        let text = String::from_utf8(wrapper("/usr/lib/bootrig/original/it's", STANZA)).unwrap();
        assert!(text.starts_with(&format!("#!{BUSYBOX_IN_IMAGE} sh\n")));
        assert!(text.contains(&format!("\nbootrig_busybox={BUSYBOX_IN_IMAGE}\n")));
        assert!(!text.contains("@BOOTRIG_"), "{text}");
        assert!(text.contains("bootrig_original='/usr/lib/bootrig/original/it'\\''s'\n"));
        assert!(text.contains(&format!("\n{WRAP_MARKER}\n{STANZA}")));
        for shell in [&["/bin/busybox", "sh", "-n"][..], &["/bin/sh", "-n"]] {
            let out = std::process::Command::new(shell[0])
                .args(&shell[1..])
                .arg("/dev/stdin")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut c| {
                    use std::io::Write;
                    c.stdin.take().unwrap().write_all(text.as_bytes())?;
                    c.wait_with_output()
                })
                .unwrap_or_else(|e| panic!("{shell:?}: {e}: run images/setup (busybox-static)"));
            assert!(
                out.status.success(),
                "{shell:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Not PID 1 (run again later, in a chroot): the wrapper is the original at once, with the
    /// arguments and the argv[0] it was called with (busybox picks its applet by that name).
    #[test]
    fn wrapper_not_pid1_execs_the_original_as_called() {
        let dir = tempfile::tempdir().unwrap();
        let original = dir.path().join("original");
        std::os::unix::fs::symlink("/bin/busybox", &original).unwrap();
        let text = wrapper(original.to_str().unwrap(), "echo STANZA-RAN\n");
        // Named `echo`: the original, busybox, runs its echo applet when argv[0] is kept.
        let script = dir.path().join("echo");
        std::fs::write(&script, text).unwrap();
        let out = std::process::Command::new("/bin/busybox")
            .arg("sh")
            .arg(&script)
            .args(["one", "two words"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "one two words\n");
    }
}
