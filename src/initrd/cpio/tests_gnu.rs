//! Interop with GNU cpio (installed by images/setup): its archives read back to the tree's lstat,
//! re-encode byte for byte, and our archives list and extract with it.

use super::*;
use nix::sys::stat::{major, minor, Mode};
use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

/// Runs GNU cpio in `dir` with `stdin`; returns stdout, failing loudly when cpio is missing.
fn gnu_cpio(dir: &Path, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new("cpio")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run GNU cpio ({e}): run images/setup first"));
    // Large inputs would fill the pipe while cpio waits for us to read: feed from a thread.
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let feeder = std::thread::spawn(move || input.write_all(&stdin));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "cpio {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn set_mtime(path: &Path, secs: u64) {
    let file = fs::File::options()
        .write(true)
        .open(path)
        .or_else(|_| fs::File::open(path))
        .unwrap();
    file.set_modified(UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

/// A tree with every kind cpio -o archives for a non-root user, plus odd modes, names and times.
fn build_tree(root: &Path) -> Vec<&'static str> {
    fs::create_dir(root.join("sub dir")).unwrap();
    fs::set_permissions(root.join("sub dir"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::write(root.join("hello.txt"), b"hello\n").unwrap();
    set_mtime(&root.join("hello.txt"), 1);
    fs::write(
        root.join("sub dir/ü ñ.bin"),
        (0..1001u32).map(|i| (i * 7) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    set_mtime(&root.join("sub dir/ü ñ.bin"), 0xFFFF_FFF0);
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(root.join("su"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("su"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::write(root.join("sg"), b"x").unwrap();
    fs::set_permissions(root.join("sg"), fs::Permissions::from_mode(0o2711)).unwrap();
    symlink("hello.txt", root.join("link")).unwrap();
    symlink("/nonexistent/target with space", root.join("dangling")).unwrap();
    nix::unistd::mkfifo(&root.join("fifo"), Mode::from_bits_truncate(0o640)).unwrap();
    fs::create_dir(root.join("hl")).unwrap();
    fs::write(root.join("hl/a"), b"shared data").unwrap();
    fs::hard_link(root.join("hl/a"), root.join("hl/b")).unwrap();
    fs::hard_link(root.join("hl/a"), root.join("hl/c")).unwrap();
    set_mtime(&root.join("hl"), 1_000_000_007);
    vec![
        ".",
        "dangling",
        "empty",
        "fifo",
        "hello.txt",
        "hl",
        "hl/a",
        "hl/b",
        "hl/c",
        "link",
        "sg",
        "su",
        "sub dir",
        "sub dir/ü ñ.bin",
    ]
}

fn name_list(names: &[&str]) -> Vec<u8> {
    names
        .iter()
        .flat_map(|n| format!("{n}\n").into_bytes())
        .collect()
}

/// Compares what GNU cpio stored for each path with the path's lstat.
fn assert_matches_tree(root: &Path, entries: &[Entry], format: Format) {
    let mut data_links: HashMap<u64, usize> = HashMap::new();
    for entry in entries.iter().filter(|e| !e.is_trailer()) {
        let name = std::str::from_utf8(&entry.name).unwrap();
        let path = root.join(name);
        let meta = fs::symlink_metadata(&path).unwrap();
        let h = &entry.header;
        assert_eq!(h.format, format, "{name}");
        assert_eq!(h.mode, meta.mode(), "{name}");
        assert_eq!((h.uid, h.gid), (meta.uid(), meta.gid()), "{name}");
        assert_eq!(u64::from(h.nlink), meta.nlink(), "{name}");
        assert_eq!(i64::from(h.mtime), meta.mtime(), "{name}");
        assert_eq!(u64::from(h.ino), meta.ino() & 0xFFFF_FFFF, "{name}");
        assert_eq!(
            (u64::from(h.dev_major), u64::from(h.dev_minor)),
            (major(meta.dev()), minor(meta.dev())),
            "{name}"
        );
        assert_eq!((h.rdev_major, h.rdev_minor), (0, 0), "{name}");
        match entry.kind() {
            Kind::Regular if meta.nlink() > 1 && entry.data.is_empty() => {}
            Kind::Regular => {
                assert_eq!(entry.data, fs::read(&path).unwrap(), "{name}");
                *data_links.entry(meta.ino()).or_default() += 1;
            }
            Kind::Symlink => {
                assert_eq!(
                    entry.data,
                    fs::read_link(&path)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes()
                );
            }
            Kind::Directory | Kind::Fifo => assert!(entry.data.is_empty(), "{name}"),
            other => panic!("{name}: unexpected kind {other:?}"),
        }
        let expected_check = match (format, entry.kind()) {
            (Format::Crc, Kind::Regular) => checksum(&entry.data),
            _ => 0,
        };
        assert_eq!(h.check, expected_check, "{name}");
    }
    // The hardlink group carries its data once, on its last link (GNU cpio's newc convention).
    let hl_ino = fs::metadata(root.join("hl/a")).unwrap().ino();
    assert_eq!(data_links[&hl_ino], 1);
    let links: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.name.starts_with(b"hl/"))
        .collect();
    assert_eq!(links.len(), 3);
    assert!(links
        .iter()
        .all(|e| e.header.ino as u64 == hl_ino & 0xFFFF_FFFF && e.header.nlink == 3));
    assert_eq!(links[2].data, b"shared data");
    assert!(links[..2].iter().all(|e| e.data.is_empty()));
}

#[test]
fn reads_gnu_cpio_archives_and_reencodes_them_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    fs::create_dir(&root).unwrap();
    let names = build_tree(&root);
    set_mtime(&root, 86_400);
    for (format, flag) in [(Format::Newc, "newc"), (Format::Crc, "crc")] {
        let archive = gnu_cpio(&root, &["-o", "--quiet", "-H", flag], &name_list(&names));
        let entries = read_all(&archive).unwrap();
        assert_eq!(entries.len(), names.len() + 1, "{flag}");
        // GNU cpio defers hardlinks to the end of their group, so compare names as sets.
        let mut stored: Vec<&[u8]> = entries.iter().map(|e| e.name.as_slice()).collect();
        let mut wanted: Vec<&[u8]> = names
            .iter()
            .map(|n| n.as_bytes())
            .chain([TRAILER])
            .collect();
        assert_eq!(stored.last(), Some(&TRAILER));
        stored.sort();
        wanted.sort();
        assert_eq!(stored, wanted);
        assert_eq!(
            entries.last().unwrap().header,
            Header {
                format,
                nlink: 1,
                ..Header::default()
            }
        );
        assert_matches_tree(&root, &entries, format);

        let mut writer = Writer::new(Vec::new());
        for entry in &entries {
            writer.write_entry(entry).unwrap();
        }
        let ours = writer.into_inner();
        // GNU cpio pads the archive to its 512-byte block with NULs; the rest must be identical.
        assert_eq!(archive.len() % 512, 0);
        assert_eq!(&archive[..ours.len()], &ours[..], "{flag}");
        assert!(archive[ours.len()..].iter().all(|&b| b == 0));
    }
}

fn our_entry(format: Format, mode: u32, name: &str, data: &[u8], ino: u32, nlink: u32) -> Entry {
    Entry {
        header: Header {
            format,
            ino,
            mode,
            uid: 0,
            gid: 0,
            nlink,
            mtime: 1_600_000_000 + ino,
            ..Header::default()
        },
        name: name.as_bytes().to_vec(),
        data: data.to_vec(),
    }
}

fn our_archive(format: Format, with_devices: bool) -> Vec<u8> {
    let mut entries = vec![
        our_entry(format, 0o40755, "root", b"", 1, 2),
        our_entry(format, 0o40700, "root/sub dir", b"", 2, 2),
        our_entry(
            format,
            0o100644,
            "root/sub dir/ü ñ.txt",
            b"odd name\n",
            3,
            1,
        ),
        our_entry(format, 0o104755, "root/su", b"#!/bin/sh\nexit 0\n", 4, 1),
        our_entry(format, 0o100600, "root/empty", b"", 5, 1),
        our_entry(
            format,
            0o120777,
            "root/link",
            b"sub dir/\xc3\xbc \xc3\xb1.txt",
            6,
            1,
        ),
        our_entry(format, 0o10644, "root/fifo", b"", 7, 1),
        our_entry(format, 0o100644, "root/hl1", b"", 8, 2),
        our_entry(format, 0o100644, "root/hl2", b"linked\n", 8, 2),
    ];
    if with_devices {
        let mut console = our_entry(format, 0o20600, "root/console", b"", 9, 1);
        (console.header.rdev_major, console.header.rdev_minor) = (5, 1);
        let mut disk = our_entry(format, 0o60660, "root/sda7", b"", 10, 1);
        (disk.header.rdev_major, disk.header.rdev_minor) = (8, 7);
        entries.extend([console, disk]);
    }
    let mut writer = Writer::new(Vec::new());
    for entry in &entries {
        writer.write_entry(entry).unwrap();
    }
    writer.write_trailer().unwrap();
    writer.into_inner()
}

#[test]
fn gnu_cpio_lists_our_archives_with_devices() {
    let tmp = tempfile::tempdir().unwrap();
    for format in [Format::Newc, Format::Crc] {
        let listing = gnu_cpio(tmp.path(), &["-itv", "--quiet"], &our_archive(format, true));
        let listing = String::from_utf8(listing).unwrap();
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 11, "{listing}");
        let line_of = |name: &str| *lines.iter().find(|l| l.ends_with(name)).unwrap();
        let console: Vec<&str> = line_of("root/console").split_whitespace().collect();
        assert_eq!(
            &console[..6],
            ["crw-------", "1", "root", "root", "5,", "1"],
            "{listing}"
        );
        let disk: Vec<&str> = line_of("root/sda7").split_whitespace().collect();
        assert_eq!(
            &disk[..6],
            ["brw-rw----", "1", "root", "root", "8,", "7"],
            "{listing}"
        );
        assert!(line_of("root/su").starts_with("-rwsr-xr-x"), "{listing}");
        assert!(line_of("root/fifo").starts_with("prw-r--r--"), "{listing}");
        assert!(
            line_of("root/link -> sub dir/ü ñ.txt").starts_with("lrwxrwxrwx"),
            "{listing}"
        );
        assert!(line_of("root/hl2").contains(" 7 "), "{listing}");
        // And our reader agrees with what we wrote, devices included.
        let ours = read_all(&our_archive(format, true)).unwrap();
        assert_eq!(
            (ours[9].header.rdev_major, ours[9].header.rdev_minor),
            (5, 1)
        );
        assert_eq!(ours[10].kind(), Kind::BlockDevice);
    }
}

#[test]
fn gnu_cpio_extracts_our_archives_identically() {
    for format in [Format::Newc, Format::Crc] {
        let tmp = tempfile::tempdir().unwrap();
        gnu_cpio(
            tmp.path(),
            &["-idm", "--quiet"],
            &our_archive(format, false),
        );
        let root = tmp.path().join("root");
        let read = |p: &str| fs::read(root.join(p)).unwrap();
        let meta = |p: &str| fs::symlink_metadata(root.join(p)).unwrap();
        assert_eq!(read("sub dir/ü ñ.txt"), b"odd name\n");
        assert_eq!(read("su"), b"#!/bin/sh\nexit 0\n");
        assert_eq!(read("empty"), b"");
        assert_eq!(read("hl1"), b"linked\n");
        assert_eq!(meta("hl1").ino(), meta("hl2").ino());
        assert_eq!(meta("hl1").nlink(), 2);
        assert_eq!(meta("su").mode(), 0o104755);
        assert_eq!(meta("sub dir/ü ñ.txt").mode(), 0o100644);
        assert_eq!(meta("fifo").mode(), 0o10644);
        assert_eq!(meta("su").mtime(), 1_600_000_004);
        assert_eq!(meta("sub dir/ü ñ.txt").mtime(), 1_600_000_003);
        assert_eq!(
            fs::read_link(root.join("link")).unwrap(),
            Path::new("sub dir/ü ñ.txt")
        );
        assert_eq!(read("link"), b"odd name\n");
    }
}
