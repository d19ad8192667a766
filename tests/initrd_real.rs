//! `bootrig initrd` against real distribution initrds made by mkinitramfs and dracut
//! (images/fixtures), checked with the distribution's own readers: lsinitramfs, unmkinitramfs,
//! cpio and each codec's decompressor; and a QEMU boot of patched images.
mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bootrig::qemu::machine::MachineType;

/// Hashes files when made and asserts, when checked, that none changed.
struct Unchanged(Vec<(PathBuf, String)>);

impl Unchanged {
    fn new(paths: &[&Path]) -> Self {
        Unchanged(
            paths
                .iter()
                .map(|p| (p.to_path_buf(), sha256_file(p)))
                .collect(),
        )
    }
    fn check(&self) {
        for (path, hash) in &self.0 {
            assert_eq!(&sha256_file(path), hash, "{} was modified", path.display());
        }
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn ls_set(img: &Path) -> BTreeSet<String> {
    normalise_paths(&bootrig_ok(&["initrd", "ls", s(img)]))
}

/// Lines of `ls --segments` that describe a segment (they start with the segment's index).
fn segment_lines(img: &Path) -> Vec<String> {
    bootrig_ok(&["initrd", "ls", "--segments", s(img)])
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|t| t.trim_end_matches([':', '.']).parse::<u32>().is_ok())
        })
        .map(str::to_string)
        .collect()
}

/// The listing of an image by cpio and the codec's tool alone: the leading uncompressed archives,
/// then the one compressed segment after them.
fn cpio_view(img: &[u8], codec: &str) -> BTreeSet<String> {
    let main = skip_uncompressed(img);
    let mut set = BTreeSet::new();
    let mut pos = 0;
    while pos < main {
        set.extend(cpio_list(&img[pos..main]));
        let t = find(&img[pos..main], b"TRAILER!!!").expect("trailer");
        pos += t + 1;
        while pos < main && !img[pos..].starts_with(b"07070") {
            pos += 1;
        }
    }
    set.extend(cpio_list(&decompress(codec, &img[main..])));
    set
}

fn unmkinitramfs(img: &Path, dir: &Path, early: bool) -> BTreeMap<String, Node> {
    sh(&format!("unmkinitramfs '{}' '{}'", s(img), s(dir)));
    unmkinitramfs_view(dir, early)
}

fn starts_uncompressed(img: &Path) -> bool {
    fs::read(img).expect("read image").starts_with(b"07070")
}

/// The files every patch test adds, and where: a module under the real (not symlinked) usr/lib,
/// a text file under etc, and a new /init.
struct Patch {
    _dir: tempfile::TempDir,
    module: PathBuf,
    module_dest: String,
    text: PathBuf,
    text_dest: String,
    init: PathBuf,
}

const ADDED_TEXT: &str = "BOOTRIG-ADDED-FILE\n";

impl Patch {
    fn new(init_body: &str) -> Patch {
        let env = cache_env();
        let dir = tempfile::tempdir().expect("tempdir");
        let text = dir.path().join("added.txt");
        fs::write(&text, ADDED_TEXT).expect("write");
        let init = dir.path().join("init");
        fs::write(&init, init_body).expect("write");
        make_executable(&init);
        Patch {
            module: module_path(&env, "ib_core"),
            module_dest: format!("usr/lib/modules/{}/extra/ib_core.ko", env.release),
            text,
            text_dest: "etc/bootrig-added.txt".into(),
            init,
            _dir: dir,
        }
    }

    fn args(&self) -> Vec<String> {
        vec![
            "--file".into(),
            format!("{}:/{}", s(&self.module), self.module_dest),
            "--file".into(),
            format!("{}:/{}", s(&self.text), self.text_dest),
            "--init".into(),
            s(&self.init).into(),
        ]
    }

    /// The added paths (without /init, which every image has).
    fn added(&self) -> BTreeSet<String> {
        [self.module_dest.clone(), self.text_dest.clone()].into()
    }

    /// What `ls` of a patched image must show: the original, the additions and their parents.
    fn expected_view(&self, original: &BTreeSet<String>) -> BTreeSet<String> {
        let mut want = original.clone();
        for path in self.added() {
            want.extend(ancestors(&path));
            want.insert(path);
        }
        want
    }

    /// Asserts an extracted patched tree is `original` with the additions and the new /init.
    fn assert_applied(
        &self,
        what: &str,
        original: &BTreeMap<String, Node>,
        got: &BTreeMap<String, Node>,
    ) {
        let digest = |p: &Path| sha256_file(p);
        for (path, src) in [
            (&self.module_dest, &self.module),
            (&self.text_dest, &self.text),
        ]
        .into_iter()
        .chain([(&"init".to_string(), &self.init)])
        {
            match got.get(path.as_str()) {
                Some(Node::File { sha256, .. }) => {
                    assert_eq!(sha256, &digest(src), "{what}: {path} has other content")
                }
                other => panic!("{what}: {path} is {other:?}, want a regular file"),
            }
        }
        let mut rest = got.clone();
        let mut want = original.clone();
        for path in self.added().iter().chain([&"init".to_string()]) {
            rest.remove(path);
            want.remove(path);
            for a in ancestors(path) {
                if !original.contains_key(&a) {
                    assert!(
                        matches!(rest.remove(&a), Some(Node::Dir { .. })),
                        "{what}: {a} is not a directory"
                    );
                }
            }
        }
        assert_same_tree(&format!("{what} (all but the additions)"), &want, &rest);
    }
}

/// As a user would: an init script is executable before it goes in.
fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn new_init_body(marker: &str) -> String {
    format!("#!/bin/sh\necho {marker}\nexec /bin/sh\n")
}

#[test]
fn ls_equals_lsinitramfs_and_cpio() {
    if !common::require(&[common::Need::TestFixtures]) {
        return;
    }
    for fx in fixtures() {
        let unchanged = Unchanged::new(&[&fx.path]);
        let ours = ls_set(&fx.path);
        let theirs = normalise_paths(
            &String::from_utf8(sh(&format!("lsinitramfs '{}'", s(&fx.path)))).expect("utf8"),
        );
        assert_eq!(
            ours, theirs,
            "{}: bootrig ls differs from lsinitramfs",
            fx.name
        );
        let img = fs::read(&fx.path).expect("read");
        assert_eq!(
            ours,
            cpio_view(&img, &fx.compress),
            "{}: bootrig ls differs from cpio -t",
            fx.name
        );
        assert!(ours.contains("init"), "{}: no init in {ours:?}", fx.name);

        let segments = segment_lines(&fx.path);
        let want = if fx.early { 2 } else { 1 };
        assert_eq!(
            segments.len(),
            want,
            "{}: --segments gave {segments:?}",
            fx.name
        );
        assert!(
            segments.last().expect("a segment").contains(&fx.compress),
            "{}: last segment line {segments:?} does not name {}",
            fx.name,
            fx.compress
        );
        let long = bootrig_ok(&["initrd", "ls", "--long", s(&fx.path)]);
        assert!(
            long.lines()
                .any(|l| l.contains("lib") && l.contains("usr/lib")),
            "{}: --long shows no lib -> usr/lib target",
            fx.name
        );
        unchanged.check();
    }
}

#[test]
fn extract_equals_unmkinitramfs() {
    if !common::require(&[common::Need::TestFixtures]) {
        return;
    }
    for fx in small_fixtures() {
        let unchanged = Unchanged::new(&[&fx.path]);
        let tmp = tempfile::tempdir().expect("tempdir");
        let ours = tmp.path().join("ours");
        let theirs = tmp.path().join("theirs");
        bootrig_ok(&["initrd", "extract", s(&fx.path), s(&ours)]);
        let want = unmkinitramfs(&fx.path, &theirs, fx.early);
        assert!(
            want.len() > 100,
            "{}: unmkinitramfs wrote only {} paths",
            fx.name,
            want.len()
        );
        assert_same_tree(
            &format!("{}: bootrig extract vs unmkinitramfs", fx.name),
            &want,
            &snapshot(&ours),
        );
        unchanged.check();
    }
}

#[test]
fn repack_is_read_by_cpio_and_unmkinitramfs() {
    if !common::require(&[common::Need::TestFixtures]) {
        return;
    }
    let patch = Patch::new(&new_init_body("BOOTRIG-MARKER"));
    for fx in small_fixtures() {
        let unchanged = Unchanged::new(&[&fx.path, &patch.module, &patch.text, &patch.init]);
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = tmp.path().join("out.img");
        let mut args: Vec<String> = [
            "initrd",
            "add",
            s(&fx.path),
            "-o",
            s(&out),
            "--mode",
            "repack",
            "--compress",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.push(fx.compress.clone());
        args.extend(patch.args());
        bootrig_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());

        let original = ls_set(&fx.path);
        let want = patch.expected_view(&original);
        let data = fs::read(&out).expect("read out");
        assert_eq!(
            cpio_view(&data, &fx.compress),
            want,
            "{}: cpio -t of the repacked image",
            fx.name
        );
        assert_eq!(
            ls_set(&out),
            want,
            "{}: bootrig ls of the repacked image",
            fx.name
        );

        let before = unmkinitramfs(&fx.path, &tmp.path().join("before"), fx.early);
        let after = unmkinitramfs(&out, &tmp.path().join("after"), starts_uncompressed(&out));
        patch.assert_applied(
            &format!("{}: unmkinitramfs of repack", fx.name),
            &before,
            &after,
        );
        unchanged.check();
    }
}

#[test]
fn overlay_keeps_original_bytes_and_appends_one_readable_segment() {
    if !common::require(&[common::Need::TestFixtures]) {
        return;
    }
    let patch = Patch::new(&new_init_body("BOOTRIG-MARKER"));
    for fx in small_fixtures() {
        let unchanged = Unchanged::new(&[&fx.path, &patch.module, &patch.text, &patch.init]);
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = tmp.path().join("out.img");
        let mut args: Vec<String> = [
            "initrd",
            "add",
            s(&fx.path),
            "-o",
            s(&out),
            "--mode",
            "overlay",
            "--compress",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.push(fx.compress.clone());
        args.extend(patch.args());
        bootrig_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());

        let original = fs::read(&fx.path).expect("read");
        let data = fs::read(&out).expect("read out");
        assert!(
            data.len() > original.len(),
            "{}: overlay output not longer",
            fx.name
        );
        assert!(
            data[..original.len()] == original[..],
            "{}: original bytes are not a prefix",
            fx.name
        );
        // The kernel allows zero padding between segments.
        let appended = &data[original.len()..];
        let start = appended
            .iter()
            .position(|&b| b != 0)
            .expect("an appended segment");
        let listing = cpio_list(&decompress(&fx.compress, &appended[start..]));
        let mut allowed: BTreeSet<String> =
            patch.added().iter().flat_map(|p| ancestors(p)).collect();
        allowed.extend(patch.added());
        allowed.insert("init".into());
        for path in patch.added().iter().chain([&"init".to_string()]) {
            assert!(
                listing.contains(path),
                "{}: appended segment lacks {path}: {listing:?}",
                fx.name
            );
        }
        assert!(
            listing.is_subset(&allowed),
            "{}: appended segment has more: {listing:?}",
            fx.name
        );

        let segments = segment_lines(&out);
        assert_eq!(
            segments.len(),
            segment_lines(&fx.path).len() + 1,
            "{}: {segments:?}",
            fx.name
        );
        let want = patch.expected_view(&ls_set(&fx.path));
        assert_eq!(
            ls_set(&out),
            want,
            "{}: bootrig ls of the overlay output",
            fx.name
        );

        // The merged view bootrig extracts = unmkinitramfs of the original + the additions.
        let before = unmkinitramfs(&fx.path, &tmp.path().join("before"), fx.early);
        let ours = tmp.path().join("ours");
        bootrig_ok(&["initrd", "extract", s(&out), s(&ours)]);
        patch.assert_applied(
            &format!("{}: bootrig extract of overlay", fx.name),
            &before,
            &snapshot(&ours),
        );
        unchanged.check();
    }
}

/// `bootrig initrd diff A B`, which exits 1 when the images differ and 0 when not, like diff(1).
fn diff_images(a: &Path, b: &Path, want_code: i32) -> String {
    let out = bootrig(&["initrd", "diff", s(a), s(b)]);
    assert_eq!(
        out.status.code(),
        Some(want_code),
        "bootrig initrd diff {} {}: {}",
        a.display(),
        b.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("diff output is UTF-8")
}

#[test]
fn diff_shows_exactly_the_additions_and_the_init_change() {
    if !common::require(&[common::Need::TestFixtures]) {
        return;
    }
    let patch = Patch::new(&new_init_body("BOOTRIG-DIFF-MARKER"));
    for name in ["mkinitramfs-gzip", "dracut-early-gzip"] {
        let fx = fixture(name);
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = tmp.path().join("out.img");
        let mut args: Vec<String> = ["initrd", "add", s(&fx.path), "-o", s(&out)]
            .iter()
            .map(|a| a.to_string())
            .collect();
        args.extend(patch.args());
        bootrig_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let unchanged = Unchanged::new(&[&fx.path, &out]);
        let diff = diff_images(&fx.path, &out, 1);
        unchanged.check();

        // The unified diff of /init: the new line added, an old line removed.
        let old = unmkinitramfs(&fx.path, &tmp.path().join("old"), fx.early);
        assert!(
            old.contains_key("init"),
            "{name}: unmkinitramfs shows no init"
        );
        let old_init = fs::read_to_string(tmp.path().join("old").join(if fx.early {
            "main/init"
        } else {
            "init"
        }))
        .expect("old init");
        assert!(
            diff.lines().any(|l| l == "+echo BOOTRIG-DIFF-MARKER"),
            "{name}: no +line in:\n{diff}"
        );
        let removed = old_init
            .lines()
            .find(|l| !l.trim().is_empty() && *l != "#!/bin/sh")
            .expect("init line");
        assert!(
            diff.lines().any(|l| l == format!("-{removed}")),
            "{name}: no -{removed} in:\n{diff}"
        );
        assert!(
            diff.lines().any(|l| l.starts_with("@@")),
            "{name}: no hunk header in:\n{diff}"
        );

        // Outside the unified diff, the paths named are exactly the changes.
        let known: BTreeSet<String> = ls_set(&out);
        let named: BTreeSet<String> = diff
            .lines()
            .filter(|l| !(l.starts_with(['+', '-', ' ', '@']) || l.is_empty()))
            .flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .map(|t| {
                t.trim_matches([':', ',', '\'', '"', '(', ')'])
                    .trim_start_matches("./")
                    .trim_start_matches('/')
                    .to_string()
            })
            .filter(|t| known.contains(t))
            .collect();
        let mut changed = patch.added();
        changed.insert("init".into());
        let original = ls_set(&fx.path);
        let new_dirs: BTreeSet<String> = patch
            .added()
            .iter()
            .flat_map(|p| ancestors(p))
            .filter(|a| !original.contains(a))
            .collect();
        for path in &changed {
            assert!(
                named.contains(path),
                "{name}: diff does not name {path}:\n{diff}"
            );
        }
        let extra: Vec<&String> = named
            .iter()
            .filter(|p| !changed.contains(*p) && !new_dirs.contains(*p))
            .collect();
        assert!(
            extra.is_empty(),
            "{name}: diff names unchanged paths {extra:?}:\n{diff}"
        );

        let same = diff_images(&fx.path, &fx.path, 0);
        assert!(
            !same.contains("init"),
            "{name}: diff of an image with itself names init:\n{same}"
        );
    }
}

#[test]
fn merged_usr_additions_go_through_the_lib_symlink() {
    if !common::require(&[common::Need::TestFixtures]) {
        return;
    }
    let env = cache_env();
    let module = module_path(&env, "ib_core");
    let dest = format!("/lib/modules/{}/extra/x.ko", env.release);
    let real = format!("usr/lib/modules/{}/extra/x.ko", env.release);
    for name in ["mkinitramfs-gzip", "dracut-gzip"] {
        let fx = fixture(name);
        for mode in ["overlay", "repack"] {
            let what = format!("{name} --mode {mode}");
            let tmp = tempfile::tempdir().expect("tempdir");
            let out = tmp.path().join("out.img");
            let file = format!("{}:{dest}", s(&module));
            bootrig_ok(&[
                "initrd",
                "add",
                s(&fx.path),
                "-o",
                s(&out),
                "--mode",
                mode,
                "--compress",
                "gzip",
                "--file",
                &file,
            ]);

            let data = fs::read(&out).expect("read");
            let original_len = fs::metadata(&fx.path).expect("stat").len() as usize;
            let segment = if mode == "overlay" {
                let appended = &data[original_len..];
                let start = appended.iter().position(|&b| b != 0).expect("appended");
                &appended[start..]
            } else {
                &data[skip_uncompressed(&data)..]
            };
            let listing = cpio_list(&decompress("gzip", segment));
            assert!(
                listing.contains(&real),
                "{what}: no {real} in the new archive"
            );
            assert!(
                !listing.iter().any(|p| p.starts_with("lib/")),
                "{what}: entries under lib/ would replace or bypass the symlink: {:?}",
                listing
                    .iter()
                    .filter(|p| p.starts_with("lib/"))
                    .collect::<Vec<_>>()
            );
            let ours = tmp.path().join("ours");
            bootrig_ok(&["initrd", "extract", s(&out), s(&ours)]);
            let lib = fs::symlink_metadata(ours.join("lib")).expect("lib");
            assert!(
                lib.file_type().is_symlink(),
                "{what}: lib is no longer a symlink"
            );
            assert_eq!(
                fs::read_link(ours.join("lib")).expect("readlink"),
                Path::new("usr/lib"),
                "{what}"
            );
            assert_eq!(
                sha256_file(&ours.join(&real)),
                sha256_file(&module),
                "{what}: content"
            );
            if mode == "repack" {
                let view = unmkinitramfs(&out, &tmp.path().join("theirs"), false);
                assert!(
                    matches!(view.get("lib"), Some(Node::Symlink { .. })),
                    "{what}: unmkinitramfs lib"
                );
                assert!(
                    matches!(view.get(&real), Some(Node::File { .. })),
                    "{what}: unmkinitramfs {real}"
                );
            }
        }
    }
}

/// A newc archive from (name, mode, data) entries, written here so the test does not depend on
/// the engine's writer.
fn newc(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let trailer: (&str, u32, &[u8]) = ("TRAILER!!!", 0, b"");
    for (ino, (name, mode, data)) in entries.iter().chain([&trailer]).enumerate() {
        common::newc_entry(&mut out, ino as u32 + 1, name.as_bytes(), *mode, data);
    }
    out
}

#[test]
fn extract_refuses_entries_that_escape() {
    if !common::require(&[common::Need::TestFixtures]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).expect("mkdir");
    let abs_target = format!("{}", outside.display());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            newc(&[
                ("ok", 0o100644, b"fine\n"),
                ("../evil", 0o100644, b"evil\n"),
            ]),
            "../evil",
        ),
        (
            "absolute",
            newc(&[(&format!("{abs_target}/abs"), 0o100644, b"evil\n")]),
            "abs",
        ),
        (
            "symlink-relative",
            newc(&[
                ("link", 0o120777, b"../outside"),
                ("link/evil", 0o100644, b"evil\n"),
            ]),
            "link",
        ),
        (
            "symlink-absolute",
            newc(&[
                ("dir", 0o040755, b""),
                ("dir/link", 0o120777, abs_target.as_bytes()),
                ("dir/link/evil", 0o100644, b"evil\n"),
            ]),
            "link",
        ),
    ];
    for (what, archive, entry) in cases {
        // Once uncompressed and once gzip'd: both are valid initrds.
        for (suffix, bytes) in [
            ("cpio", archive.clone()),
            ("gz", pipe("gzip", &["-c"], &archive)),
        ] {
            let img = tmp.path().join(format!("{what}.{suffix}"));
            fs::write(&img, &bytes).expect("write");
            let unchanged = Unchanged::new(&[&img]);
            let dir = tmp.path().join(format!("x-{what}-{suffix}"));
            let out = bootrig(&["initrd", "extract", s(&img), s(&dir)]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            // First what matters most: nothing landed outside DIR.
            assert_eq!(
                fs::read_dir(&outside).expect("ls").count(),
                0,
                "{what}.{suffix}: wrote outside"
            );
            assert!(
                !tmp.path().join("evil").exists(),
                "{what}.{suffix}: wrote ../evil"
            );
            assert!(
                !out.status.success(),
                "{what}.{suffix}: extract succeeded; the issue asks for a refusal with an error \
                 naming the entry. stderr: {stderr}"
            );
            assert!(
                stderr.contains(entry),
                "{what}.{suffix}: error does not name {entry}: {stderr}"
            );
            unchanged.check();
        }
    }
    let names: BTreeSet<String> = fs::read_dir(tmp.path())
        .expect("ls")
        .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n == "outside" || n.starts_with("x-") || n.contains('.')),
        "unexpected files beside the targets: {names:?}"
    );
}

#[test]
fn existing_output_needs_force() {
    if !common::require(&[common::Need::TestFixtures]) {
        return;
    }
    let fx = fixture("mkinitramfs-gzip");
    let patch = Patch::new(&new_init_body("BOOTRIG-MARKER"));
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("out.img");
    fs::write(&out, b"keep me").expect("write");
    let unchanged = Unchanged::new(&[&fx.path]);
    for mode in ["overlay", "repack"] {
        let mut args: Vec<String> = ["initrd", "add", s(&fx.path), "-o", s(&out), "--mode", mode]
            .iter()
            .map(|a| a.to_string())
            .collect();
        args.extend(patch.args());
        let refused = bootrig(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(
            !refused.status.success(),
            "{mode}: an existing OUT was overwritten without --force"
        );
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("--force"),
            "{mode}: error does not say --force"
        );
        assert_eq!(
            fs::read(&out).expect("read"),
            b"keep me",
            "{mode}: OUT changed"
        );
    }
    let mut args: Vec<String> = ["initrd", "add", s(&fx.path), "-o", s(&out), "--force"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    args.extend(patch.args());
    bootrig_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        ls_set(&out).contains(&patch.text_dest),
        "--force output lacks the addition"
    );
    // No temporary files left beside OUT.
    assert_eq!(
        fs::read_dir(tmp.path()).expect("ls").count(),
        1,
        "files left beside OUT"
    );
    unchanged.check();
}

/// Boots the fetched kernel directly with `initrd` and returns the console once every marker has
/// shown (or QEMU ended, or 90 s passed).
fn boot(initrd: &Path, markers: &[&str]) -> String {
    let env = cache_env();
    let dir = vm::run_dir("bootrig-initrd-real-");
    let spec = vm::direct_spec(
        dir.path(),
        MachineType::Pc,
        &env.kernel,
        initrd,
        "console=ttyS0 panic=-1 no_timer_check rdinit=/init",
        None,
    );
    // Killed with its process group when the test ends, however it ends.
    let vm = vm::Vm::start(&spec);
    vm.wait_console(Duration::from_secs(90), |console| {
        markers
            .iter()
            .all(|m| console.lines().any(|l| l.trim_end() == *m))
    });
    vm.console()
}

fn boot_patched(mode: &str) {
    if !require(&[Need::Qemu, Need::Setup]) {
        return;
    }
    let fx = fixture("mkinitramfs-gzip");
    let tmp = tempfile::tempdir().expect("tempdir");
    let marker = format!("BOOTRIG-MARKER-{mode}");
    let init = tmp.path().join("init");
    // The script reads files added beside it (one through the lib -> usr/lib link), then powers off.
    fs::write(
        &init,
        format!(
            "#!/bin/sh\necho {marker}\ncat /etc/bootrig-added.txt\ncat /usr/lib/bootrig-via-lib.txt\n\
             mkdir -p /proc\nmount -t proc proc /proc\necho o > /proc/sysrq-trigger\nsleep 30\n"
        ),
    )
    .expect("write");
    make_executable(&init);
    let text = tmp.path().join("added.txt");
    fs::write(&text, ADDED_TEXT).expect("write");
    let via_lib = tmp.path().join("via-lib.txt");
    fs::write(&via_lib, "BOOTRIG-VIA-LIB\n").expect("write");
    let out = tmp.path().join("out.img");
    let files = [
        format!("{}:/etc/bootrig-added.txt", s(&text)),
        format!("{}:/lib/bootrig-via-lib.txt", s(&via_lib)),
    ];
    bootrig_ok(&[
        "initrd",
        "add",
        s(&fx.path),
        "-o",
        s(&out),
        "--mode",
        mode,
        "--compress",
        "gzip",
        "--file",
        &files[0],
        "--file",
        &files[1],
        "--init",
        s(&init),
    ]);
    let markers = [marker.as_str(), ADDED_TEXT.trim_end(), "BOOTRIG-VIA-LIB"];
    let console = boot(&out, &markers);
    for m in markers {
        assert!(
            console.lines().any(|l| l.trim_end() == m),
            "{mode}: no {m} on the console; last lines:\n{}",
            console
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[test]
fn qemu_boots_overlay_output_with_additions_in_effect() {
    boot_patched("overlay");
}

#[test]
fn qemu_boots_repack_output_with_additions_in_effect() {
    boot_patched("repack");
}

/// The fixtures are what the manifest says, by the distribution's tools alone (this also checks
/// the helpers the other tests compare with).
#[test]
fn fixtures_are_what_the_manifest_says() {
    if !common::require(&[common::Need::TestFixtures]) {
        return;
    }
    let magic = |codec: &str| -> &'static [u8] {
        match codec {
            "gzip" => &[0x1f, 0x8b],
            "zstd" => &[0x28, 0xb5, 0x2f, 0xfd],
            "xz" => &[0xfd, b'7', b'z', b'X', b'Z', 0],
            "lz4" => &[0x02, 0x21, 0x4c, 0x18],
            other => panic!("unknown codec {other}"),
        }
    };
    let names: BTreeSet<String> = fixtures().into_iter().map(|f| f.name).collect();
    for want in [
        "mkinitramfs-gzip",
        "mkinitramfs-zstd",
        "mkinitramfs-xz",
        "mkinitramfs-lz4",
        "dracut-gzip",
    ] {
        assert!(names.contains(want), "no {want} fixture");
    }
    for fx in fixtures() {
        let img = fs::read(&fx.path).expect("read");
        let main = skip_uncompressed(&img);
        assert_eq!(
            main > 0,
            fx.early,
            "{}: uncompressed first segment",
            fx.name
        );
        assert!(
            img[main..].starts_with(magic(&fx.compress)),
            "{}: main segment is not {}",
            fx.name,
            fx.compress
        );
        let listing = sh(&format!("lsinitramfs '{}'", s(&fx.path)));
        let theirs = normalise_paths(&String::from_utf8(listing).expect("utf8"));
        assert_eq!(
            cpio_view(&img, &fx.compress),
            theirs,
            "{}: cpio -t vs lsinitramfs",
            fx.name
        );
        let long =
            String::from_utf8(sh(&format!("lsinitramfs -l '{}'", s(&fx.path)))).expect("utf8");
        assert!(
            long.lines().any(|l| l.ends_with(" lib -> usr/lib")),
            "{}: not merged-usr",
            fx.name
        );
        if fx.early {
            assert!(
                theirs.contains("kernel/firmware/acpi/bootrig.aml"),
                "{}: no ACPI table",
                fx.name
            );
            let tmp = tempfile::tempdir().expect("tempdir");
            let view = unmkinitramfs(&fx.path, &tmp.path().join("u"), true);
            assert!(
                view.contains_key("early_cpio") && view.contains_key("init"),
                "{}: merged view",
                fx.name
            );
        }
    }
    // MODULES=most, whatever kernel setup fetched: properties, not one day's sizes. It carries
    // the InfiniBand core and the Mellanox drivers the list image leaves out (not the ULPs such
    // as ib_ipoib: "most" is hardware drivers), so it is the bigger.
    let most = fixture("mkinitramfs-most-gzip");
    let small = fixture("mkinitramfs-gzip");
    let listing = String::from_utf8(sh(&format!("lsinitramfs '{}'", s(&most.path)))).expect("utf8");
    for module in ["mlx5_ib.ko", "mlx4_ib.ko", "ib_core.ko", "mlx5_core.ko"] {
        assert!(
            listing.lines().any(|l| l.contains(module)),
            "MODULES=most image of kernel {} has no {module}",
            cache_env().release
        );
    }
    let size = |f: &common::Fixture| fs::metadata(&f.path).expect("stat").len();
    assert!(
        size(&most) > 2 * size(&small),
        "MODULES=most image ({} bytes) is not much bigger than the MODULES=list one ({} bytes)",
        size(&most),
        size(&small)
    );
    eprintln!(
        "fixtures of kernel {}: MODULES=most image {} bytes",
        cache_env().release,
        size(&most)
    );
}
