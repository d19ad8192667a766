//! Messages that say what the user needs (issue 12): where in the scenario file, what was found,
//! and the fix. Each test runs the real binary from a temp directory laid out as users lay out
//! theirs (`scenarios/x.toml`, paths relative to it) and reads what it prints. No test boots: a
//! stand-in QEMU records whether anything tried to start it.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The kernel tree `images/setup` makes; the tests that plan modules need it.
fn kernel_tree() -> PathBuf {
    let tree = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("images/cache/current");
    assert!(
        tree.join("vmlinuz").is_file(),
        "no kernel in images/cache: run images/setup first"
    );
    tree
}

/// A temp dir with `scenarios/` and a stand-in QEMU that leaves a marker if it is ever run.
struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("scenarios")).unwrap();
        let qemu = dir.path().join("fake-qemu");
        std::fs::write(
            &qemu,
            format!(
                "#!/bin/sh\ntouch '{}'\nexit 1\n",
                dir.path().join("qemu-ran").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&qemu, std::fs::Permissions::from_mode(0o755)).unwrap();
        Work { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The root as the binary sees it (symlinks resolved), for "resolved to" paths.
    fn real_root(&self) -> PathBuf {
        self.root().canonicalize().unwrap()
    }

    fn scenario(&self, name: &str, text: impl AsRef<[u8]>) {
        std::fs::write(self.root().join("scenarios").join(name), text).unwrap();
    }

    /// `bootrig ARGS` in the work dir, with its own build cache and the stand-in QEMU.
    fn bootrig(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_bootrig"))
            .args(args)
            .current_dir(self.root())
            .env("BOOTRIG_QEMU", self.root().join("fake-qemu"))
            .env("BOOTRIG_CACHE", self.root().join("cache"))
            .output()
            .unwrap()
    }

    fn qemu_ran(&self) -> bool {
        self.root().join("qemu-ran").exists()
    }
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The shipped scenario, as a user copies it: relative paths into `images/cache`.
fn shipped(name: &str) -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios")
            .join(name),
    )
    .unwrap()
}

#[test]
fn build_names_a_missing_kernel_at_its_key_with_the_fix() {
    let w = Work::new();
    // A checkout where images/setup has not run yet: the script is there, the cache is not.
    std::fs::create_dir_all(w.root().join("images")).unwrap();
    std::fs::write(w.root().join("images/setup"), "#!/bin/sh\n").unwrap();
    w.scenario("x.toml", shipped("mlx4-ipoib-busybox.toml"));
    let o = w.bootrig(&["build", "scenarios/x.toml", "-o", "out/x.img"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = stderr(&o);
    let root = w.real_root();
    let kernel = format!(
        "scenarios/x.toml:9:9: [kernel] image = \"../images/cache/current/vmlinuz\": no such file (resolved to {}/images/cache/current/vmlinuz; {}/images/cache does not exist); run ./images/setup or fix the path",
        root.display(),
        root.display()
    );
    assert!(err.contains(&kernel), "want {kernel}\n{}", show(&o));
    let modules = format!(
        "scenarios/x.toml:10:11: [kernel] modules = \"../images/cache/current\": no such directory (resolved to {}/images/cache/current;",
        root.display()
    );
    assert!(err.contains(&modules), "want {modules}\n{}", show(&o));
    assert!(!w.root().join("out").exists());
}

/// A device or a FIFO named as an input file is refused when the scenario is checked, before
/// anything reads it (`/dev/urandom` as base read without end; a FIFO blocked in open).
#[test]
fn a_device_or_a_fifo_as_an_input_file_is_refused_at_its_key() {
    let w = Work::new();
    let fifo = w.root().join("vmlinuz.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let modules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("images/cache/current");
    let base = shipped("mlx4-ipoib-busybox.toml")
        .replace("../images/cache/current", modules.to_str().unwrap());
    let cases = [
        (
            base.replace("base = \"busybox\"", "base = \"/dev/urandom\""),
            "[initrd] base = \"/dev/urandom\": is a character device, not a file",
        ),
        (
            base.replacen(
                &format!("image = \"{}/vmlinuz\"", modules.display()),
                &format!("image = \"{}\"", fifo.display()),
                1,
            ),
            "is a FIFO, not a file",
        ),
    ];
    for (text, want) in cases {
        w.scenario("x.toml", &text);
        let start = std::time::Instant::now();
        let o = w.bootrig(&["build", "scenarios/x.toml", "-o", "out/x.img"]);
        assert!(start.elapsed() < std::time::Duration::from_secs(60));
        assert_eq!(o.status.code(), Some(2), "{}", show(&o));
        assert!(stderr(&o).contains(want), "want {want}\n{}", show(&o));
    }
    assert!(!w.root().join("out").exists());
}

#[test]
fn a_scenario_that_is_not_utf8_names_line_column_and_byte_offset() {
    let w = Work::new();
    let text = shipped("mlx4-ipoib-busybox.toml").replace(
        "name = \"mlx4 IPoIB stack",
        "name = \"mlx4 IPoIB stack (caf\u{e9})",
    );
    // Saved as Latin-1: é is the one byte 0xe9.
    let latin1: Vec<u8> = text
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect();
    let offset = latin1.iter().position(|&b| b == 0xe9).unwrap();
    let line = latin1[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
    let column = offset - latin1[..offset].iter().rposition(|&b| b == b'\n').unwrap();
    w.scenario("latin1.toml", &latin1);
    let want = format!(
        "scenarios/latin1.toml:{line}:{column}: byte 0xe9 at byte offset {offset} is not UTF-8; save it as UTF-8"
    );
    for args in [
        &["build", "scenarios/latin1.toml", "-o", "out/x.img"][..],
        &["run", "scenarios", "--accel", "tcg", "--out", "out"][..],
    ] {
        let o = w.bootrig(args);
        assert_eq!(o.status.code(), Some(2), "{}", show(&o));
        assert!(stderr(&o).contains(&want), "want {want}\n{}", show(&o));
        assert!(!w.root().join("out").exists());
    }
    assert!(!w.qemu_ran());
}

/// All scenario files are read before any boot; one naming a file that is not there stops the
/// run with exit 2 at that file's key, as a typo does, and nothing boots.
#[test]
fn run_stops_before_any_boot_when_a_scenario_names_a_missing_file() {
    if !common::require(&[common::Need::Setup]) {
        return;
    }
    let w = Work::new();
    let tree = kernel_tree();
    let good = format!(
        "name = \"good\"\n[kernel]\nimage = \"{}\"\nmodules = \"{}\"\n[initrd]\nload = [\"virtio_net\"]\norder = \"resolve\"\n",
        tree.join("vmlinuz").display(),
        tree.display()
    );
    w.scenario("good.toml", &good);
    let bad = good
        .replace("name = \"good\"", "name = \"bad\"")
        .replace(
            "[initrd]\n",
            "[initrd]\nbase = \"../initrds/field.img\"\nbinaries = [\"/usr/sbin/ip\", \"/opt/nonexistent-bootrig/tool\"]\n",
        );
    w.scenario("bad.toml", &bad);
    std::fs::create_dir_all(w.root().join("initrds")).unwrap();
    let o = w.bootrig(&["run", "scenarios", "--accel", "tcg", "--out", "out"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = stderr(&o);
    let base = format!(
        "scenarios/bad.toml:6:8: [initrd] base = \"../initrds/field.img\": no such file (resolved to {}/initrds/field.img); fix the path (relative paths are from the scenario file's directory)",
        w.real_root().display()
    );
    assert!(err.contains(&base), "want {base}\n{}", show(&o));
    let binary = "scenarios/bad.toml:7:29: [initrd] binaries: \"/opt/nonexistent-bootrig/tool\": no such file (/opt/nonexistent-bootrig does not exist); install it on this host, or fix the path";
    assert!(err.contains(binary), "want {binary}\n{}", show(&o));
    assert!(!err.contains("good.toml"), "{}", show(&o));
    assert!(!w.root().join("out").exists(), "the run started");
    assert!(!w.qemu_ran());
}

/// A scenario that misspells a module and already resolves: `bootrig run RUNS` the build, which
/// stops on the plan; the table under the row must show the name, the trees and the suggestion.
fn run_with_a_misspelt_module(w: &Work) -> Output {
    let text = shipped("mlx4-ipoib-busybox.toml").replace("\"mlx4_core\", ", "\"mlx4_cor\", ");
    let tree = kernel_tree();
    let text = text
        .replace(
            "\"../images/cache/current/vmlinuz\"",
            &format!("\"{}\"", tree.join("vmlinuz").display()),
        )
        .replace(
            "\"../images/cache/current\"",
            &format!("\"{}\"", tree.display()),
        );
    assert!(text.contains("order = \"resolve\""));
    w.scenario("typo.toml", &text);
    w.bootrig(&[
        "run",
        "scenarios/typo.toml",
        "--accel",
        "tcg",
        "--out",
        "out",
    ])
}

/// The note under the failed row, its wrapped lines joined back.
fn note(table: &str) -> String {
    table
        .lines()
        .skip_while(|l| !l.starts_with("typo"))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn unknown_module_in_a_run_is_named_in_the_table() {
    if !common::require(&[common::Need::Qemu, common::Need::Setup]) {
        return;
    }
    let w = Work::new();
    let o = run_with_a_misspelt_module(&w);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    let note = note(&table);
    let release = std::fs::read_link(kernel_tree())
        .map(|t| t.display().to_string())
        .unwrap_or_default();
    for want in [
        "error: `mlx4_cor` is not a module of this kernel: not in the module tree ",
        &format!("/lib/modules/{release}, and not built in; did you mean `mlx4_core`"),
        "plan: NOT loadable",
    ] {
        assert!(note.contains(want), "want {want:?}\n{}", show(&o));
    }
    assert!(!w.qemu_ran());
}

/// Needs the build.rs change described in the wt-msgs report: `BuildError::Plan` suggests
/// `order = "resolve"` only when `Plan::resolve_would_help()`.
#[test]
fn unknown_module_with_resolve_set_is_not_told_to_resolve() {
    if !common::require(&[common::Need::Setup]) {
        return;
    }
    let w = Work::new();
    let o = run_with_a_misspelt_module(&w);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let note = note(&String::from_utf8_lossy(&o.stdout));
    assert!(note.contains("`mlx4_cor` is not a module"), "{}", show(&o));
    assert!(!note.contains("order = \"resolve\""), "{}", show(&o));
}

#[test]
fn build_of_an_unknown_module_names_trees_and_names_without_ordering_advice() {
    if !common::require(&[common::Need::Setup]) {
        return;
    }
    let w = Work::new();
    let tree = kernel_tree();
    w.scenario(
        "typo.toml",
        format!(
            "name = \"typo\"\n[kernel]\nimage = \"{}\"\nmodules = \"{}\"\n[initrd]\nload = [\"ib_ipoi\"]\norder = \"resolve\"\n",
            tree.join("vmlinuz").display(),
            tree.display()
        ),
    );
    let o = w.bootrig(&["build", "scenarios/typo.toml", "-o", "out/x.img"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = stderr(&o);
    assert!(
        err.contains("`ib_ipoi` is not a module of this kernel: not in the module tree ")
            && err.contains("did you mean `ib_ipoib`"),
        "{}",
        show(&o)
    );
    assert!(
        !err.contains("order = \"resolve\"") && !err.contains("--resolve"),
        "{}",
        show(&o)
    );
}

/// The shipped scenarios name files that exist once images/setup has run: the checks at load
/// refuse none of them.
#[test]
fn shipped_scenarios_load() {
    if !common::require(&[common::Need::Setup]) {
        return;
    }
    kernel_tree();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut dirs = vec![root];
    let mut loaded = 0;
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                bootrig::scenario::Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                loaded += 1;
            }
        }
    }
    assert!(loaded >= 10, "{loaded}");
}

/// Each layer of an error says what it was doing and leaves its cause to `source()`: no message
/// contains its source's, and the printed chain names no cause twice.
fn assert_causes_once(e: &dyn std::error::Error) -> String {
    let mut layer = e;
    while let Some(cause) = layer.source() {
        let (outer, inner) = (layer.to_string(), cause.to_string());
        assert!(
            !outer.contains(&inner),
            "{outer:?} repeats its cause {inner:?}"
        );
        layer = cause;
    }
    let chain = bootrig::error_chain(e);
    assert_no_segment_twice(&chain);
    chain
}

fn assert_no_segment_twice(text: &str) {
    let segments: Vec<&str> = text
        .split(": ")
        .map(str::trim)
        .filter(|s| s.len() >= 6)
        .collect();
    for (i, s) in segments.iter().enumerate() {
        assert!(!segments[i + 1..].contains(s), "{s:?} twice in {text:?}");
    }
}

/// An uncompressed newc archive holding only its trailer: the smallest valid initrd.
fn empty_cpio() -> Vec<u8> {
    let name = b"TRAILER!!!\0";
    let mut out = format!("070701{:08x}", 0).into_bytes();
    for field in [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, name.len(), 0] {
        out.extend_from_slice(format!("{field:08x}").as_bytes());
    }
    out.extend_from_slice(name);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out
}

#[test]
fn real_error_chains_say_each_cause_once() {
    let w = Work::new();
    // A corrupt initrd: a gzip header, then bytes that are no deflate stream.
    let mut corrupt = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    corrupt.extend_from_slice(&[0xff; 64]);
    std::fs::write(w.root().join("corrupt.img"), &corrupt).unwrap();
    std::fs::write(w.root().join("empty.img"), empty_cpio()).unwrap();
    let typo = shipped("mlx4-ipoib-busybox.toml").replacen("[kernel]", "[kernal]", 1);
    w.scenario("typo.toml", typo);

    // The library's chains, layer by layer (these repeated their cause before).
    let opts = bootrig::initrd::image::ReadOptions::default();
    let policy = bootrig::initrd::tree::DataPolicy::SizeOnly;
    let read = |p: &str| bootrig::initrd::image::read_tree(&w.root().join(p), policy, &opts);
    let chain = assert_causes_once(&read("missing.img").unwrap_err());
    assert!(
        chain.ends_with("missing.img: No such file or directory (os error 2)"),
        "{chain}"
    );
    let chain = assert_causes_once(&read("corrupt.img").unwrap_err());
    assert!(
        chain.contains("corrupt.img: segment 0 (gzip) at byte 0: ")
            && chain.contains("gzip: corrupt data at compressed offset 11: "),
        "{chain}"
    );
    let e = bootrig::scenario::Scenario::load(&w.root().join("scenarios/nope.toml")).unwrap_err();
    assert_causes_once(&e);

    // What users see, with the paths they gave.
    for (args, names) in [
        (&["initrd", "ls", "missing.img"][..], "missing.img"),
        (&["initrd", "ls", "corrupt.img"][..], "corrupt.img"),
        (
            &[
                "initrd",
                "add",
                "empty.img",
                "--file",
                "mlx4_core.ko:/lib/modules/mlx4_core.ko",
                "-o",
                "out.img",
            ][..],
            "mlx4_core.ko",
        ),
        (
            &["build", "scenarios/typo.toml", "-o", "out/x.img"][..],
            "scenarios/typo.toml",
        ),
        (
            &["build", "scenarios/nope.toml", "-o", "out/x.img"][..],
            "scenarios/nope.toml",
        ),
    ] {
        let o = w.bootrig(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}\n{}", show(&o));
        let err = stderr(&o);
        let line = err
            .lines()
            .find(|l| l.starts_with("bootrig: error: "))
            .unwrap_or_else(|| panic!("{args:?}: no error line\n{}", show(&o)));
        assert!(line.contains(names), "{args:?}: {line}");
        assert_no_segment_twice(line);
    }
    assert!(!w.root().join("out.img").exists());
}
