//! Regression tests for issue 12's archive-engine defects: hardlinks written through as the
//! kernel does (and `add` never changing a path the user did not name), endless NUL input bounded
//! by `--max-size`, privileged entries listed (and optionally dropped) on extraction, and names or
//! symlink targets over PATH_MAX skipped as `init/initramfs.c` skips them.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bootrig::initrd::add::{add, AddMode, AddOptions, AddReport, Addition};
use bootrig::initrd::codec;
use bootrig::initrd::cpio::{self, Entry, Item, Kind, SkipReason};
use bootrig::initrd::extract::{extract, ExtractError, ExtractOptions};
use bootrig::initrd::image::{read_tree, read_tree_from, ImageError, ReadOptions};
use bootrig::initrd::tree::{DataPolicy, IssueKind, Tree};
use proptest::prelude::*;

// ---- helpers ----------------------------------------------------------------------------------

fn entry(name: &str, mode: u32, data: &[u8]) -> Entry {
    let mut e = Entry::new(name, mode, data.to_vec());
    e.header.nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
    e
}

fn dir(name: &str) -> Entry {
    entry(name, 0o040755, b"")
}

/// A hardlink as GNU cpio writes it: every name carries nlink and ino, the data rides on the last.
fn hardlink(name: &str, ino: u32, nlink: u32, data: &[u8]) -> Entry {
    let mut e = entry(name, 0o100755, data);
    e.header.ino = ino;
    e.header.nlink = nlink;
    e
}

/// One newc archive (with its trailer) of `entries`, written by the crate's own writer.
fn archive(entries: &[Entry]) -> Vec<u8> {
    let mut w = cpio::Writer::new(Vec::new());
    for e in entries {
        w.write_entry(e).unwrap();
    }
    w.write_trailer().unwrap();
    w.into_inner()
}

fn gzip(entries: &[Entry]) -> Vec<u8> {
    codec::gzip_member(&archive(entries), 6).unwrap()
}

/// An initramfs-tools-like image: busybox is one inode with three names, stored GNU-cpio style.
fn busybox_entries() -> Vec<Entry> {
    vec![
        dir("."),
        dir("usr"),
        dir("usr/bin"),
        dir("usr/sbin"),
        hardlink("usr/bin/busybox", 7, 3, b""),
        hardlink("usr/bin/sh", 7, 3, b""),
        hardlink("usr/sbin/ip", 7, 3, b"BUSYBOX"),
        entry("init", 0o100755, b"#!/bin/sh\nexec /sbin/init\n"),
    ]
}

/// A newc header and name written by hand, so sizes the writer refuses can be made.
fn raw_entry(out: &mut Vec<u8>, name: &[u8], mode: u32, data: &[u8]) {
    common::newc_entry(out, 0, name, mode, data);
}

fn trailer(out: &mut Vec<u8>) {
    raw_entry(out, b"TRAILER!!!", 0, b"");
}

/// Runs bootrig in `cwd` (paths relative to it, as a user types them); a run that outlives
/// two minutes is killed and fails the test instead of hanging it.
fn bootrig_in(cwd: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bootrig"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bootrig");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            child.kill().unwrap();
            panic!("bootrig {args:?} did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn content(t: &Tree, p: &str) -> Vec<u8> {
    let node = t.get(p.as_bytes()).unwrap_or_else(|| panic!("{p} missing"));
    t.inode(node).and_then(|i| i.data.clone()).unwrap()
}

fn full_tree(img: &Path) -> Tree {
    read_tree(img, DataPolicy::Full, &ReadOptions::default())
        .unwrap()
        .0
}

/// Path -> everything observable about it (content for files).
type View = BTreeMap<String, (Kind, u32, u32, u32, u32, Vec<u8>, Vec<u8>)>;

fn view(t: &Tree) -> View {
    t.nodes()
        .map(|n| {
            let data = t.inode(n).and_then(|i| i.data.clone()).unwrap_or_default();
            (
                String::from_utf8_lossy(&n.path).into_owned(),
                (
                    n.kind,
                    n.mode,
                    n.uid,
                    n.gid,
                    n.mtime,
                    n.target.clone(),
                    data,
                ),
            )
        })
        .collect()
}

fn add_opts(mode: AddMode) -> AddOptions {
    AddOptions {
        mode,
        dir_mtime: 0,
        ..AddOptions::default()
    }
}

// ---- 1. hardlinks ------------------------------------------------------------------------------

/// The kernel's do_name opens an existing regular file with O_TRUNC and writes through its inode
/// (then fchown/fchmod/utime act on the inode), so every hardlink of busybox becomes the new file.
/// GNU `cpio -idu` would unlink the old name first and change only usr/sbin/ip: the merged view
/// follows the kernel, which is what boots.
#[test]
fn an_overlay_file_over_a_busybox_hardlink_changes_every_link_in_ls() {
    let dir = tempfile::tempdir().unwrap();
    let mut img = gzip(&busybox_entries());
    img.extend(gzip(&[entry("usr/sbin/ip", 0o100700, b"IP")]));
    fs::write(dir.path().join("initrd.img"), &img).unwrap();

    let t = full_tree(&dir.path().join("initrd.img"));
    for p in ["usr/bin/busybox", "usr/bin/sh", "usr/sbin/ip"] {
        assert_eq!(content(&t, p), b"IP", "{p}");
        assert_eq!(t.get(p.as_bytes()).unwrap().mode, 0o100700, "{p}");
    }
    let out = bootrig_in(dir.path(), &["initrd", "ls", "-l", "initrd.img"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sh = stdout(&out)
        .lines()
        .find(|l| l.ends_with(" usr/bin/sh"))
        .unwrap()
        .to_string();
    assert!(sh.starts_with("-rwx------"), "{sh}");
    assert_eq!(sh.split_whitespace().nth(3), Some("2"), "{sh}");
}

/// `add` gives a destination that shares its inode a fresh one (overlay: a symlink entry first,
/// which the kernel's clean_path unlinks the old name for; repack: the link broken in the view),
/// so busybox and /bin/sh keep their content, and says so.
#[test]
fn add_over_a_hardlinked_path_changes_only_that_path() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("initrd.img");
    let original = gzip(&busybox_entries());
    fs::write(&img, &original).unwrap();
    for mode in [AddMode::Overlay, AddMode::Repack] {
        let out = dir.path().join(format!("{mode:?}.img"));
        let report: AddReport = add(
            &img,
            &out,
            &[Addition::bytes("/usr/sbin/ip", b"REAL-IP".to_vec(), 0o755)],
            &add_opts(mode),
        )
        .unwrap();
        let t = full_tree(&out);
        assert_eq!(content(&t, "usr/sbin/ip"), b"REAL-IP", "{mode:?}");
        assert_eq!(content(&t, "usr/bin/sh"), b"BUSYBOX", "{mode:?}");
        assert_eq!(content(&t, "usr/bin/busybox"), b"BUSYBOX", "{mode:?}");
        assert_eq!(t.other_links(b"usr/bin/sh"), [&b"usr/bin/busybox"[..]]);
        assert_eq!(report.written, ["usr/sbin/ip"]);
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
        let w = &report.warnings[0];
        assert!(
            w.contains("/usr/sbin/ip")
                && w.contains("2 other path(s)")
                && w.contains("/usr/bin/sh"),
            "{w}"
        );
        if mode == AddMode::Overlay {
            assert_eq!(&fs::read(&out).unwrap()[..original.len()], &original[..]);
        }
    }
    assert_eq!(fs::read(&img).unwrap(), original);

    // The CLI prints the warning.
    fs::write(dir.path().join("ip"), b"REAL-IP").unwrap();
    let out = bootrig_in(
        dir.path(),
        &[
            "initrd",
            "add",
            "initrd.img",
            "-o",
            "cli.img",
            "--file",
            "ip:/usr/sbin/ip",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("bootrig: warning: /usr/sbin/ip was a hardlink shared with 2 other path(s)"),
        "{}",
        stderr(&out)
    );
}

/// An addition over an unlinked file, or over a file in a later segment, needs no fresh inode.
#[test]
fn add_over_a_single_name_file_warns_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("initrd.img");
    fs::write(&img, gzip(&busybox_entries())).unwrap();
    let out = dir.path().join("out.img");
    let report = add(
        &img,
        &out,
        &[Addition::bytes("/init", b"new".to_vec(), 0o755)],
        &add_opts(AddMode::Overlay),
    )
    .unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(content(&full_tree(&out), "init"), b"new");
}

/// The real thing: initramfs-tools stores busybox applets as hardlinks of one inode.
#[test]
fn real_mkinitramfs_image_keeps_busybox_when_ip_is_added() {
    if !common::require(&[common::Need::Setup]) {
        return;
    }
    let img =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("images/cache/initrds/mkinitramfs-gzip.img");
    let policy = DataPolicy::Digest { keep_up_to: 0 };
    let digest = |t: &Tree, p: &str| {
        t.get(p.as_bytes())
            .and_then(|n| t.inode(n))
            .and_then(|i| i.digest)
    };
    let (before, _) = read_tree(&img, policy, &ReadOptions::default()).unwrap();
    let busybox = digest(&before, "usr/bin/busybox").expect("usr/bin/busybox in the image");
    assert_eq!(digest(&before, "usr/bin/sh"), Some(busybox));
    let shared = digest(&before, "usr/sbin/ip") == Some(busybox);
    eprintln!("usr/sbin/ip is a busybox link in this image: {shared}");

    let dir = tempfile::tempdir().unwrap();
    for mode in [AddMode::Overlay, AddMode::Repack] {
        let out = dir.path().join(format!("{mode:?}.img"));
        let report = add(
            &img,
            &out,
            &[Addition::bytes(
                "/usr/sbin/ip",
                b"the real ip".to_vec(),
                0o755,
            )],
            &add_opts(mode),
        )
        .unwrap();
        let (after, _) = read_tree(&out, policy, &ReadOptions::default()).unwrap();
        assert_eq!(digest(&after, "usr/bin/sh"), Some(busybox), "{mode:?}");
        assert_eq!(digest(&after, "usr/bin/busybox"), Some(busybox), "{mode:?}");
        assert_ne!(digest(&after, "usr/sbin/ip"), Some(busybox), "{mode:?}");
        assert_eq!(
            report.warnings.len(),
            usize::from(shared),
            "{:?}",
            report.warnings
        );
    }
}

/// init/initramfs.c remembers a hardlink group's first name (find_link) before it opens the
/// file; when that open fails (here: no parent directory), the other members link() to a name
/// that does not exist and fail too. None of the three boots, so none is listed or extracted.
#[test]
fn a_hardlink_group_whose_first_name_cannot_be_created_is_absent_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let entries = vec![
        dir("."),
        dir("bin"),
        hardlink("missing/busybox", 7, 3, b""),
        hardlink("bin/sh", 7, 3, b""),
        hardlink("bin/ip", 7, 3, b"BUSYBOX"),
        entry("init", 0o100755, b"#!/bin/sh\n"),
    ];
    fs::write(tmp.path().join("initrd.img"), gzip(&entries)).unwrap();

    let t = full_tree(&tmp.path().join("initrd.img"));
    let paths: Vec<_> = t.nodes().map(|n| n.path.clone()).collect();
    assert_eq!(paths, [&b"."[..], b"bin", b"init"]);

    let out = bootrig_in(tmp.path(), &["initrd", "ls", "initrd.img"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = stdout(&out);
    assert!(
        !listed.contains("busybox") && !listed.contains("bin/sh") && !listed.contains("bin/ip"),
        "{listed}"
    );
    let err = stderr(&out);
    assert!(
        err.contains("parent directory missing does not exist"),
        "{err}"
    );
    for name in ["bin/sh", "bin/ip"] {
        assert!(
            err.contains(&format!(
                "entry \"{name}\" in segment 0: hardlink of missing/busybox"
            )),
            "{err}"
        );
    }

    let out = bootrig_in(tmp.path(), &["initrd", "extract", "initrd.img", "x"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut made: Vec<_> = fs::read_dir(tmp.path().join("x/bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    made.sort();
    assert!(made.is_empty(), "{made:?}");
    assert!(!tmp.path().join("x/missing").exists());
}

// ---- 2. endless NUL input ----------------------------------------------------------------------

fn read_limited(r: impl Read, max: u64) -> Result<Tree, ImageError> {
    read_tree_from(
        r,
        Path::new("zeros.img"),
        DataPolicy::SizeOnly,
        &ReadOptions { max_output: max },
    )
    .map(|(t, _)| t)
}

#[test]
fn endless_zeros_end_at_max_size_with_an_error_naming_it() {
    let err = read_limited(io::repeat(0), 1000).err().unwrap();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            ImageError::TooLarge {
                offset: 0,
                max: 1000,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("zeros.img") && msg.contains("--max-size") && msg.contains("byte 0"),
        "{msg}"
    );

    // After a good segment too: the padding starts where the segment ends.
    let seg = gzip(&busybox_entries());
    let err = read_limited(io::Cursor::new(seg.clone()).chain(io::repeat(0)), 10_000)
        .err()
        .unwrap();
    assert!(
        matches!(err, ImageError::TooLarge { offset, .. } if offset == seg.len() as u64),
        "{err}"
    );

    // A segment that decompresses past the limit names it the same way.
    let big = gzip(&[entry("big", 0o100644, &vec![7u8; 20_000])]);
    let err = read_limited(io::Cursor::new(big), 5_000).err().unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains("segment 0 (gzip)") && msg.contains("--max-size"),
        "{msg}"
    );
}

/// Zeros served lazily, counted; an error past `cap`, so a reader that ignores the budget fails
/// here instead of pulling gigabytes.
struct LazyZeros {
    served: std::rc::Rc<std::cell::Cell<u64>>,
    cap: u64,
}

impl Read for LazyZeros {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.served.get() >= self.cap {
            return Err(io::Error::other(
                "read past the cap: the budget was not applied",
            ));
        }
        let n = buf.len().min((self.cap - self.served.get()) as usize);
        buf[..n].fill(0);
        self.served.set(self.served.get() + n as u64);
        Ok(n)
    }
}

/// One uncompressed entry declaring 3 GiB of data, with a 1 MiB budget: the reader stops at the
/// budget (data kept or not), and the error names --max-size, the image and the entry's offset.
#[test]
fn a_huge_uncompressed_entry_stops_at_max_size_before_its_data_is_read() {
    let budget = 1 << 20;
    for policy in [DataPolicy::Full, DataPolicy::SizeOnly] {
        let mut head = Vec::new();
        raw_entry(&mut head, b"small", 0o100644, b"ok");
        let at = head.len() as u64;
        raw_entry(&mut head, b"huge", 0o100644, b"");
        // c_filesize is the 7th field after the magic.
        let field = at as usize + 6 + 6 * 8;
        head[field..field + 8].copy_from_slice(b"C0000000");
        let served = std::rc::Rc::new(std::cell::Cell::new(0));
        let zeros = LazyZeros {
            served: served.clone(),
            cap: 64 << 20,
        };
        let err = read_tree_from(
            io::Cursor::new(head).chain(zeros),
            Path::new("huge.img"),
            policy,
            &ReadOptions { max_output: budget },
        )
        .err()
        .unwrap();
        let msg = err.to_string();
        assert!(
            matches!(err, ImageError::TooLarge { offset, max, .. } if offset == at && max == budget),
            "{policy:?}: {msg}"
        );
        assert!(
            msg.contains("huge.img")
                && msg.contains("--max-size")
                && msg.contains(&format!("byte {at}")),
            "{msg}"
        );
        assert!(
            served.get() <= budget,
            "{policy:?}: {} bytes of data read",
            served.get()
        );
    }
}

/// A device or a FIFO is no image: refused at once with what it is (before, `/dev/zero` read
/// zeros up to --max-size and a FIFO blocked in open until a writer came).
#[test]
fn ls_of_a_device_or_a_fifo_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("initrd.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    for (path, kind) in [
        (Path::new("/dev/zero"), "character device"),
        (fifo.as_path(), "FIFO"),
        (dir.path(), "directory"),
    ] {
        let start = Instant::now();
        let out = bootrig_in(Path::new("/"), &["initrd", "ls", path.to_str().unwrap()]);
        assert!(start.elapsed() < Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{}: is a {kind}, not a file", path.display())),
            "{err}"
        );
    }
}

// ---- 3. privileged entries on extraction -------------------------------------------------------

fn privileged_image(dir: &Path) -> PathBuf {
    let mut null = entry("dev/null", 0o020666, b"");
    null.header.rdev_major = 1;
    null.header.rdev_minor = 3;
    let img = dir.join("priv.img");
    fs::write(
        &img,
        gzip(&[
            dir_entry("dev"),
            null,
            dir_entry("bin"),
            entry("bin/su", 0o104755, b"su"),
            entry("bin/wall", 0o102755, b"wall"),
            entry("bin/ls", 0o100755, b"ls"),
        ]),
    )
    .unwrap();
    img
}

fn dir_entry(name: &str) -> Entry {
    dir(name)
}

fn mode_of(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn extract_lists_device_nodes_and_setid_files_it_creates() {
    let dir = tempfile::tempdir().unwrap();
    let img = privileged_image(dir.path());
    let out = dir.path().join("out");
    let report = extract(&img, &out, &ExtractOptions::default()).unwrap();
    assert_eq!(
        report.setid_files,
        [(b"bin/su".to_vec(), 0o4000), (b"bin/wall".to_vec(), 0o2000)]
    );
    assert_eq!(mode_of(&out.join("bin/su")), 0o4755);
    assert_eq!(mode_of(&out.join("bin/wall")), 0o2755);
    if is_root() {
        assert_eq!(report.devices, [(b"dev/null".to_vec(), (1, 3))]);
        assert!(fs::symlink_metadata(out.join("dev/null"))
            .unwrap()
            .file_type()
            .is_char_device());
    } else {
        eprintln!("not root: device nodes are skipped, not created");
        assert_eq!(report.skipped_devices, [b"dev/null".to_vec()]);
    }

    let cli = bootrig_in(dir.path(), &["initrd", "extract", "priv.img", "cli"]);
    assert!(cli.status.success(), "{}", stderr(&cli));
    let err = stderr(&cli);
    assert!(
        err.contains("2 set-uid/set-gid file(s) created (pass --no-setuid to clear the bits): bin/su (set-uid), bin/wall (set-gid)"),
        "{err}"
    );
    if is_root() {
        assert!(
            err.contains(
                "1 device node(s) created (pass --no-devices to skip them): dev/null (1:3)"
            ),
            "{err}"
        );
    }
}

#[test]
fn no_devices_and_no_setuid_drop_the_privileges_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let img = privileged_image(dir.path());
    let out = dir.path().join("out");
    let opts = ExtractOptions {
        no_devices: true,
        no_setuid: true,
        ..ExtractOptions::default()
    };
    let report = extract(&img, &out, &opts).unwrap();
    assert_eq!(report.skipped_devices, [b"dev/null".to_vec()]);
    assert!(report.devices.is_empty() && report.setid_files.is_empty());
    assert_eq!(
        report.cleared_setid,
        [(b"bin/su".to_vec(), 0o4000), (b"bin/wall".to_vec(), 0o2000)]
    );
    assert!(fs::symlink_metadata(out.join("dev/null")).is_err());
    assert_eq!(mode_of(&out.join("bin/su")), 0o755);
    assert_eq!(mode_of(&out.join("bin/wall")), 0o755);
    assert_eq!(fs::read(out.join("bin/su")).unwrap(), b"su");

    let cli = bootrig_in(
        dir.path(),
        &[
            "initrd",
            "extract",
            "--no-devices",
            "--no-setuid",
            "priv.img",
            "cli",
        ],
    );
    assert!(cli.status.success(), "{}", stderr(&cli));
    let err = stderr(&cli);
    assert!(
        err.contains("1 device node(s) not created (--no-devices): dev/null"),
        "{err}"
    );
    assert!(
        err.contains(
            "2 set-uid/set-gid bit(s) cleared (--no-setuid): bin/su (set-uid), bin/wall (set-gid)"
        ),
        "{err}"
    );
    assert_eq!(mode_of(&dir.path().join("cli/bin/su")), 0o755);
    assert!(fs::symlink_metadata(dir.path().join("cli/dev/null")).is_err());
}

// ---- 4. over-long names and symlink targets ----------------------------------------------------

/// An uncompressed image: bin/, a symlink whose target is 70,000 bytes (over PATH_MAX: the kernel's
/// do_header skips it), then bin/after. Returns the image and the skipped entry's offset.
fn long_target_image() -> (Vec<u8>, u64) {
    let mut img = Vec::new();
    raw_entry(&mut img, b"bin", 0o040755, b"");
    raw_entry(&mut img, b"bin/busybox", 0o100755, b"BB");
    let at = img.len() as u64;
    raw_entry(&mut img, b"bin/ls", 0o120777, &vec![b'a'; 70_000]);
    raw_entry(&mut img, b"bin/after", 0o100644, b"after");
    trailer(&mut img);
    (img, at)
}

#[test]
fn a_symlink_target_over_path_max_is_skipped_in_ls_extract_diff_and_add() {
    let dir = tempfile::tempdir().unwrap();
    let (img, at) = long_target_image();
    fs::write(dir.path().join("long.img"), &img).unwrap();
    let warning = format!(
        "entry \"bin/ls\" in segment 0: entry at byte {at} of the segment's cpio stream: symlink target of 70000 bytes exceeds PATH_MAX 4096: the kernel skips this entry"
    );

    let ls = bootrig_in(dir.path(), &["initrd", "ls", "long.img"]);
    assert!(ls.status.success(), "{}", stderr(&ls));
    assert_eq!(stdout(&ls), "bin\nbin/busybox\nbin/after\n");
    assert!(stderr(&ls).contains(&warning), "{}", stderr(&ls));

    let ex = bootrig_in(dir.path(), &["initrd", "extract", "long.img", "out"]);
    assert!(ex.status.success(), "{}", stderr(&ex));
    assert!(stderr(&ex).contains(&warning), "{}", stderr(&ex));
    assert_eq!(
        fs::read(dir.path().join("out/bin/after")).unwrap(),
        b"after"
    );
    assert!(fs::symlink_metadata(dir.path().join("out/bin/ls")).is_err());

    let mut same = Vec::new();
    raw_entry(&mut same, b"bin", 0o040755, b"");
    raw_entry(&mut same, b"bin/busybox", 0o100755, b"BB");
    raw_entry(&mut same, b"bin/after", 0o100644, b"after");
    trailer(&mut same);
    fs::write(dir.path().join("same.img"), &same).unwrap();
    let diff = bootrig_in(dir.path(), &["initrd", "diff", "same.img", "long.img"]);
    assert!(diff.status.success(), "{}{}", stdout(&diff), stderr(&diff));
    assert!(
        stderr(&diff).contains(&format!("long.img: {warning}")),
        "{}",
        stderr(&diff)
    );

    let report = add(
        &dir.path().join("long.img"),
        &dir.path().join("added.img"),
        &[Addition::bytes("/bin/new", b"n".to_vec(), 0o644)],
        &add_opts(AddMode::Overlay),
    )
    .unwrap();
    assert!(
        report.warnings.iter().any(|w| w.contains(&warning)),
        "{:?}",
        report.warnings
    );
    let t = full_tree(&dir.path().join("added.img"));
    assert_eq!(content(&t, "bin/new"), b"n");
    assert!(t.get(b"bin/ls").is_none());
}

/// do_header skips a name over PATH_MAX to next_header = N_ALIGN(name_len) + body_len, aligned:
/// the entry after it is read whatever the name and data lengths do to the padding.
#[test]
fn a_name_over_path_max_is_skipped_and_the_next_entry_read() {
    for name_len in 4096..=4100usize {
        for data_len in 0..=3usize {
            let mut img = Vec::new();
            raw_entry(&mut img, b"first", 0o100644, b"1");
            let at = img.len() as u64;
            raw_entry(
                &mut img,
                &vec![b'n'; name_len],
                0o100644,
                &vec![b'd'; data_len],
            );
            raw_entry(&mut img, b"next", 0o100644, b"2");
            trailer(&mut img);
            let t = read_limited(io::Cursor::new(img.clone()), 1 << 20).unwrap();
            let names: Vec<_> = t.nodes().map(|n| n.path.clone()).collect();
            assert_eq!(
                names,
                [b"first".to_vec(), b"next".to_vec()],
                "{name_len}/{data_len}"
            );
            assert_eq!(
                t.issues()[0].kind,
                IssueKind::NameTooLong {
                    size: name_len as u32 + 1,
                    offset: at
                }
            );
            // Only the start of the name is kept for messages.
            assert_eq!(t.issues()[0].name, vec![b'n'; 64]);

            let mut r = cpio::Reader::new(&img[..]);
            r.next_item(true).unwrap();
            let Some(Item::Skipped(s)) = r.next_item(true).unwrap() else {
                panic!("not skipped")
            };
            assert_eq!(
                s.reason,
                SkipReason::NameTooLong {
                    size: name_len as u32 + 1
                }
            );
        }
    }
    // The boundary: a name size of 4096 with its NUL is read (4095 bytes, components of 255).
    let name: Vec<u8> = (0..16)
        .map(|_| "c".repeat(255))
        .collect::<Vec<_>>()
        .join("/")
        .into_bytes()[..4095]
        .to_vec();
    let mut img = Vec::new();
    raw_entry(&mut img, &name, 0o100644, b"");
    let mut r = cpio::Reader::new(&img[..]);
    assert!(matches!(r.next_item(true).unwrap(), Some(Item::Entry(e, 0)) if e.name == name));

    // CLI: the warning names the offset, and ls goes on.
    let dir = tempfile::tempdir().unwrap();
    let mut img = Vec::new();
    raw_entry(&mut img, &vec![b'x'; 5000], 0o100644, b"");
    raw_entry(&mut img, b"init", 0o100755, b"#!/bin/sh\n");
    trailer(&mut img);
    fs::write(dir.path().join("name.img"), &img).unwrap();
    let ls = bootrig_in(dir.path(), &["initrd", "ls", "name.img"]);
    assert!(ls.status.success(), "{}", stderr(&ls));
    assert_eq!(stdout(&ls), "init\n");
    assert!(
        stderr(&ls).contains("entry at byte 0 of the segment's cpio stream: name of 5001 bytes (with its NUL) exceeds PATH_MAX 4096: the kernel skips this entry"),
        "{}",
        stderr(&ls)
    );
}

/// An OS error left in extraction (here the host's PATH_MAX, reached under a long destination)
/// names the image, the entry and the destination path, and leaves no half-written destination.
#[test]
fn an_extract_os_error_names_image_entry_and_destination() {
    let dir = tempfile::tempdir().unwrap();
    let comp = "c".repeat(254);
    let mut entries = vec![dir_entry(".")];
    let mut p = String::new();
    for _ in 0..16 {
        if !p.is_empty() {
            p.push('/');
        }
        p.push_str(&comp);
        entries.push(dir_entry(&p));
    }
    entries.push(entry("init", 0o100755, b"x"));
    fs::write(dir.path().join("deep.img"), gzip(&entries)).unwrap();
    let dest = "a-destination-with-a-rather-long-name";
    let out = bootrig_in(dir.path(), &["initrd", "extract", "deep.img", dest]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("deep.img: entry /cccc"), "{err}");
    assert!(
        err.contains(&format!("creating directory {dest}/cccc")),
        "{err}"
    );
    assert!(err.contains("File name too long"), "{err}");
    assert!(
        !dir.path().join(dest).exists(),
        "the destination is rolled back"
    );

    // The library error carries the same parts.
    let e = extract(
        &dir.path().join("deep.img"),
        &dir.path().join(dest),
        &ExtractOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&e, ExtractError::Write { entry, .. } if entry.len() > 4000),
        "{e}"
    );
}

// ---- property: add changes only the named path -------------------------------------------------

#[derive(Debug, Clone)]
struct Group {
    links: usize,
    data: Vec<u8>,
    mode: u32,
}

fn groups() -> impl Strategy<Value = Vec<Group>> {
    prop::collection::vec(
        (
            1usize..4,
            prop::collection::vec(any::<u8>(), 0..64),
            0u32..0o7777,
        )
            .prop_map(|(links, data, mode)| Group { links, data, mode }),
        1..8,
    )
}

/// Files in two directories; groups of 2 or more names are GNU-cpio hardlinks.
fn group_entries(groups: &[Group]) -> (Vec<Entry>, Vec<String>) {
    let mut entries = vec![dir("."), dir("a"), dir("b")];
    let mut files = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        for k in 0..group.links {
            let name = format!("{}/f{g}-{k}", if k % 2 == 0 { "a" } else { "b" });
            let last = k + 1 == group.links;
            let mut e = hardlink(
                &name,
                100 + g as u32,
                group.links as u32,
                if last { &group.data } else { b"" },
            );
            e.header.mode = 0o100000 | group.mode;
            e.header.mtime = 1000 + g as u32;
            entries.push(e);
            files.push(name);
        }
    }
    (entries, files)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn add_changes_only_the_named_path(
        groups in groups(),
        pick in any::<prop::sample::Index>(),
        data in prop::collection::vec(any::<u8>(), 0..64),
        repack in any::<bool>(),
    ) {
        let (entries, files) = group_entries(&groups);
        let target = pick.get(&files).clone();
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("img");
        fs::write(&img, gzip(&entries)).unwrap();
        let out = dir.path().join("out");
        let mode = if repack { AddMode::Repack } else { AddMode::Overlay };
        let report = add(
            &img,
            &out,
            &[Addition::bytes(&format!("/{target}"), data.clone(), 0o600)],
            &add_opts(mode),
        ).unwrap();
        let before = view(&full_tree(&img));
        let after = view(&full_tree(&out));
        prop_assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>());
        for (p, was) in &before {
            if *p == target {
                let now = &after[p];
                prop_assert_eq!(&now.6, &data);
                prop_assert_eq!(now.1, 0o100600);
            } else {
                prop_assert_eq!(&after[p], was, "{} changed", p);
            }
        }
        let group = groups.iter().enumerate().find(|(g, _)| target.contains(&format!("f{g}-"))).unwrap().1;
        prop_assert_eq!(report.warnings.len(), usize::from(group.links > 1));
    }
}
