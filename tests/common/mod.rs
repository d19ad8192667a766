//! Shared helpers for the integration tests and the benchmark: the fetched kernel (images/cache/env),
//! the fixture initrds images/fixtures made, running `bootrig` and the distribution's own tools, and
//! snapshots of extracted trees to compare byte for byte.
// Each test crate uses a different part of this module.
#![allow(dead_code)]

pub mod require;
pub mod vm;

// Not every test crate checks needs.
#[allow(unused_imports)]
pub use require::{require, Need, BUSYBOX_BOOT};

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What images/setup wrote to images/cache/env.
#[derive(Debug, Clone)]
pub struct CacheEnv {
    pub release: String,
    pub kernel: PathBuf,
    pub modules: PathBuf,
}

pub fn cache_env() -> CacheEnv {
    let path = repo_root().join("images/cache/env");
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}: run images/setup first", path.display()));
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            vars.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let get = |k: &str| {
        vars.get(k)
            .cloned()
            .unwrap_or_else(|| panic!("{}: no {k}: run images/setup first", path.display()))
    };
    CacheEnv {
        release: get("BOOTRIG_KERNEL_RELEASE"),
        kernel: PathBuf::from(get("BOOTRIG_KERNEL")),
        modules: PathBuf::from(get("BOOTRIG_MODULES")),
    }
}

/// One image of images/cache/initrds/manifest.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub name: String,
    pub tool: String,
    /// gzip, zstd, xz or lz4: the codec of the main segment.
    pub compress: String,
    /// An uncompressed newc segment comes first.
    pub early: bool,
    pub path: PathBuf,
}

pub fn fixtures_dir() -> PathBuf {
    repo_root().join("images/cache/initrds")
}

pub fn fixtures() -> Vec<Fixture> {
    cache_env();
    let dir = fixtures_dir();
    let manifest = dir.join("manifest");
    let text = fs::read_to_string(&manifest).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: run images/setup first (it runs images/fixtures)",
            manifest.display()
        )
    });
    let list: Vec<Fixture> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(
                f.len(),
                5,
                "manifest line {l:?}: want 5 tab-separated fields"
            );
            let path = dir.join(f[4]);
            assert!(
                path.is_file(),
                "{} missing: run images/fixtures",
                path.display()
            );
            Fixture {
                name: f[0].into(),
                tool: f[1].into(),
                compress: f[2].into(),
                early: f[3] == "yes",
                path,
            }
        })
        .collect();
    assert!(!list.is_empty(), "{}: no images", manifest.display());
    list
}

pub fn fixture(name: &str) -> Fixture {
    fixtures()
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no fixture {name} in the manifest: run images/fixtures"))
}

/// The small images (all but the MODULES=most benchmark one).
pub fn small_fixtures() -> Vec<Fixture> {
    fixtures()
        .into_iter()
        .filter(|f| !f.name.contains("-most-"))
        .collect()
}

pub fn bootrig_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bootrig"))
}

pub fn bootrig(args: &[&str]) -> Output {
    Command::new(bootrig_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("spawn bootrig")
}

/// Runs bootrig and returns its stdout; panics with its stderr when it fails.
pub fn bootrig_ok(args: &[&str]) -> String {
    let out = bootrig(args);
    assert!(
        out.status.success(),
        "bootrig {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("bootrig stdout is UTF-8")
}

/// Runs a shell command line; panics with its stderr when it fails.
pub fn sh(script: &str) -> Vec<u8> {
    let out = Command::new("sh")
        .args(["-c", script])
        .stdin(Stdio::null())
        .output()
        .expect("spawn sh");
    assert!(
        out.status.success(),
        "`{script}` failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Feeds `input` to `program args` and returns its stdout; panics when it fails.
pub fn pipe(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin piped");
    let data = input.to_vec();
    // A writer thread so a full stdout pipe cannot deadlock us.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer thread");
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The system tool that decompresses `codec` to stdout.
pub fn decompressor(codec: &str) -> (&'static str, &'static [&'static str]) {
    match codec {
        "gzip" => ("gzip", &["-dc"]),
        "zstd" => ("zstd", &["-dcq"]),
        "xz" => ("xz", &["-dc"]),
        "lz4" => ("lz4", &["-dc"]),
        other => panic!("no decompressor for {other}"),
    }
}

pub fn decompress(codec: &str, data: &[u8]) -> Vec<u8> {
    let (prog, args) = decompressor(codec);
    pipe(prog, args, data)
}

/// `cpio -t` of an uncompressed newc archive (the first one in `data`).
pub fn cpio_list(data: &[u8]) -> BTreeSet<String> {
    let out = pipe("cpio", &["-t", "--quiet"], data);
    normalise_paths(&String::from_utf8(out).expect("cpio -t output is UTF-8"))
}

/// One path a line, as a set, with "./" and "/" prefixes and the root itself removed: `ls`,
/// `lsinitramfs` and `cpio -t` all name the root differently (".", or not at all).
pub fn normalise_paths(listing: &str) -> BTreeSet<String> {
    listing
        .lines()
        .map(|l| {
            l.trim_start_matches("./")
                .trim_start_matches('/')
                .to_string()
        })
        .filter(|l| !l.is_empty() && l != ".")
        .collect()
}

/// Byte offset just past the leading uncompressed newc archives (and the zero padding after them),
/// found the way unmkinitramfs does: by the end of each archive's TRAILER!!! entry.
pub fn skip_uncompressed(data: &[u8]) -> usize {
    let mut pos = 0;
    while data[pos..].starts_with(b"07070") {
        let rest = &data[pos..];
        let t = find(rest, b"TRAILER!!!").expect("uncompressed archive has a TRAILER!!!");
        // The trailer's header is 110 bytes before its name; its name ends NUL, padded to 4.
        let end = t + b"TRAILER!!!\0".len();
        pos += (end + 3) & !3;
        while pos < data.len() && data[pos] == 0 {
            pos += 1;
        }
    }
    pos
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn sha256_file(path: &Path) -> String {
    let data = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    hex(&Sha256::digest(&data))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What one path of an extracted tree is, for comparisons byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir {
        mode: u32,
        uid: u32,
        gid: u32,
    },
    File {
        mode: u32,
        uid: u32,
        gid: u32,
        size: u64,
        sha256: String,
    },
    Symlink {
        target: PathBuf,
        uid: u32,
        gid: u32,
    },
    Special {
        mode: u32,
        rdev: u64,
    },
}

/// Every path under `root` (relative, without the root itself), not following symlinks.
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut map = BTreeMap::new();
    walk(root, root, &mut map);
    map
}

fn walk(root: &Path, dir: &Path, map: &mut BTreeMap<String, Node>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.expect("read_dir entry");
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .into_owned();
        let md = fs::symlink_metadata(&path).expect("lstat");
        let ft = md.file_type();
        let node = if ft.is_symlink() {
            Node::Symlink {
                target: fs::read_link(&path).expect("readlink"),
                uid: md.uid(),
                gid: md.gid(),
            }
        } else if ft.is_dir() {
            walk(root, &path, map);
            Node::Dir {
                mode: md.mode(),
                uid: md.uid(),
                gid: md.gid(),
            }
        } else if ft.is_file() {
            Node::File {
                mode: md.mode(),
                uid: md.uid(),
                gid: md.gid(),
                size: md.len(),
                sha256: sha256_file(&path),
            }
        } else {
            assert!(
                ft.is_char_device() || ft.is_block_device() || ft.is_fifo() || ft.is_socket(),
                "{rel}: unknown file type"
            );
            Node::Special {
                mode: md.mode(),
                rdev: md.rdev(),
            }
        };
        map.insert(rel, node);
    }
}

/// The merged view of what `unmkinitramfs IMG DIR` wrote: with more than one segment it puts the
/// early ones under early/, early2/, … and the rest under main/; later segments override earlier.
pub fn unmkinitramfs_view(dir: &Path, early: bool) -> BTreeMap<String, Node> {
    if !early {
        return snapshot(dir);
    }
    let mut parts: Vec<String> = fs::read_dir(dir)
        .expect("read unmkinitramfs dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        parts.iter().any(|p| p == "early") && parts.iter().any(|p| p == "main"),
        "unmkinitramfs wrote {parts:?}, want early/ and main/"
    );
    // early, early2, early3, …, then main.
    let rank = |p: &str| match p {
        "main" => u32::MAX,
        "early" => 1,
        other => other
            .strip_prefix("early")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected unmkinitramfs part {other}")),
    };
    parts.sort_by_key(|p| rank(p));
    let mut merged = BTreeMap::new();
    for part in parts {
        merged.extend(snapshot(&dir.join(part)));
    }
    merged
}

/// Asserts two snapshots are equal, listing the first differences readably.
pub fn assert_same_tree(what: &str, want: &BTreeMap<String, Node>, got: &BTreeMap<String, Node>) {
    let mut problems = Vec::new();
    for (path, node) in want {
        match got.get(path) {
            None => problems.push(format!("missing {path}: {node:?}")),
            Some(other) if other != node => {
                problems.push(format!("differs {path}: want {node:?}, got {other:?}"))
            }
            Some(_) => {}
        }
    }
    for path in got.keys().filter(|p| !want.contains_key(*p)) {
        problems.push(format!("extra {path}: {:?}", got[path]));
    }
    assert!(
        problems.is_empty(),
        "{what}: {} differences, first ones:\n{}",
        problems.len(),
        problems
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The path of module `name` (e.g. "ib_core") in the fetched kernel's tree, from modules.dep.
pub fn module_path(env: &CacheEnv, name: &str) -> PathBuf {
    let dep = fs::read_to_string(env.modules.join("modules.dep")).expect("modules.dep");
    let file = format!("/{name}.ko");
    let rel = dep
        .lines()
        .filter_map(|l| l.split_once(':').map(|(m, _)| m))
        .find(|m| {
            m.ends_with(&file)
                || m.ends_with(&format!("{file}.xz"))
                || m.ends_with(&format!("{file}.zst"))
        })
        .unwrap_or_else(|| panic!("module {name} not in modules.dep"));
    env.modules.join(rel)
}

/// The ancestors of a relative path ("a/b/c" -> "a", "a/b").
pub fn ancestors(path: &str) -> Vec<String> {
    let parts: Vec<&str> = path.split('/').collect();
    (1..parts.len()).map(|n| parts[..n].join("/")).collect()
}

/// A directory for scenario files inside the repository (under the git-ignored `target/`), so
/// their paths can be relative like a user's.
pub struct RepoSuite {
    pub dir: tempfile::TempDir,
    /// The directory relative to the repository root, as a user would type it.
    pub rel: PathBuf,
    /// `../` as many times as leads from the directory back to the root.
    pub up: String,
}

pub fn repo_suite(prefix: &str) -> RepoSuite {
    let root = repo_root();
    let target = root.join("target");
    fs::create_dir_all(&target).expect("target/");
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&target)
        .expect("suite dir");
    let rel = dir
        .path()
        .strip_prefix(&root)
        .expect("under root")
        .to_owned();
    let up = "../".repeat(rel.components().count());
    RepoSuite { dir, rel, up }
}

/// What `bootrig check` made of a suite: its summary.json, stdout and exit status.
pub struct Checked {
    pub report: serde_json::Value,
    pub stdout: String,
    pub status: std::process::ExitStatus,
    /// Holds `run/`, the run's `--out`.
    pub out: tempfile::TempDir,
}

impl Checked {
    pub fn run_dir(&self) -> PathBuf {
        self.out.path().join("run")
    }

    /// The report's entry for scenario `id`.
    pub fn scenario(&self, id: &str) -> &serde_json::Value {
        self.report["scenarios"]
            .as_array()
            .expect("scenarios")
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("{id} not in the report\n{}", self.stdout))
    }
}

/// `bootrig check SUITE -j 2 --accel tcg` from the repository root, with a fresh build cache,
/// the suite given by its relative path as a user types it.
pub fn check_suite(suite: &RepoSuite) -> Checked {
    let out = tempfile::tempdir().expect("out");
    let cache = tempfile::tempdir().expect("cache");
    let ran = Command::new(bootrig_bin())
        .args([
            "check",
            suite.rel.to_str().expect("UTF-8"),
            "-j",
            "2",
            "--accel",
            "tcg",
        ])
        .arg("--out")
        .arg(out.path().join("run"))
        .current_dir(repo_root())
        .env("BOOTRIG_CACHE", cache.path())
        .output()
        .expect("run bootrig");
    let stdout = String::from_utf8_lossy(&ran.stdout).into_owned();
    let summary = fs::read(out.path().join("run/summary.json")).unwrap_or_else(|e| {
        panic!(
            "no summary.json ({e}): exit {:?}\n{stdout}\n{}",
            ran.status,
            String::from_utf8_lossy(&ran.stderr)
        )
    });
    Checked {
        report: serde_json::from_slice(&summary).expect("summary.json"),
        stdout,
        status: ran.status,
        out,
    }
}

/// One newc entry written by hand (nlink 1, owner 0), so the tests do not depend on the engine's
/// writer and can make what it refuses; entries start 4-aligned and end padded.
pub fn newc_entry(out: &mut Vec<u8>, ino: u32, name: &[u8], mode: u32, data: &[u8]) {
    assert_eq!(out.len() % 4, 0, "entries start 4-aligned");
    let fields = [
        ino,
        mode,
        0,
        0,
        1,
        0,
        data.len() as u32,
        0,
        0,
        0,
        0,
        name.len() as u32 + 1,
        0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    out.extend_from_slice(name);
    out.push(0);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out.extend_from_slice(data);
    while out.len() % 4 != 0 {
        out.push(0);
    }
}
