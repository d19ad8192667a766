//! Ctrl-C, SIGKILL and the build cache, through the real binary: a first Ctrl-C stops a build
//! (in `bootrig run` and `bootrig build`) within seconds and leaves no temporary file; a second
//! one exits at once and still removes them; the KVM probe gives way to Ctrl-C; a cache entry
//! is reused only when its content is what was written; `bootrig cleanup` removes the socket
//! directories and build temporaries of killed runs and keeps live runs' ones.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Bytes in the slow base, random 4-bit values: xz -6 finds many short matches in them and
/// compresses them at 1-2.5 MB/s here (3x slower than random bytes), so the rebuild takes 40 s
/// or more, against the 10 s the tests below give an interrupted build to end.
const BLOB_LEN: usize = 96 << 20;

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// One newc cpio archive holding `files` (regular, 0644) and its trailer.
fn newc(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut entry = |ino: usize, name: &str, mode: u32, data: &[u8]| {
        common::newc_entry(&mut out, ino as u32, name.as_bytes(), mode, data);
    };
    for (i, (name, data)) in files.iter().enumerate() {
        entry(i + 1, name, 0o100644, data);
    }
    entry(0, "TRAILER!!!", 0, &[]);
    out
}

fn crc32(data: &[u8]) -> [u8; 4] {
    let mut h = crc32fast::Hasher::new();
    h.update(data);
    h.finalize().to_le_bytes()
}

fn vli(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// `data` as an xz stream of stored (uncompressed) LZMA2 chunks: as valid as `xz` output and made
/// at memory speed, while re-compressing it is as slow as xz is on random data.
fn xz_stored(data: &[u8]) -> Vec<u8> {
    let flags = [0x00, 0x01]; // check: CRC32
    let mut out = vec![0xFD, b'7', b'z', b'X', b'Z', 0x00];
    out.extend_from_slice(&flags);
    out.extend_from_slice(&crc32(&flags));
    // Block header: size (12 / 4 - 1), flags (one filter), LZMA2 (0x21) with a 1-byte property.
    let mut header = vec![0x02, 0x00, 0x21, 0x01, 0x00, 0x00, 0x00, 0x00];
    let header_crc = crc32(&header);
    header.extend_from_slice(&header_crc);
    out.extend_from_slice(&header);
    let mut lzma2 = 0usize;
    for (i, chunk) in data.chunks(1 << 16).enumerate() {
        // 0x01: stored chunk with a dictionary reset (first), 0x02: stored chunk.
        out.push(if i == 0 { 0x01 } else { 0x02 });
        out.extend_from_slice(&((chunk.len() - 1) as u16).to_be_bytes());
        out.extend_from_slice(chunk);
        lzma2 += 3 + chunk.len();
    }
    out.push(0x00); // end of LZMA2 data
    lzma2 += 1;
    let block_padding = (4 - (header.len() + lzma2) % 4) % 4;
    out.extend(std::iter::repeat_n(0, block_padding));
    out.extend_from_slice(&crc32(data));
    // The index records the block without its padding.
    let unpadded = header.len() + lzma2 + 4;
    let mut index = vec![0x00];
    vli(1, &mut index);
    vli(unpadded as u64, &mut index);
    vli(data.len() as u64, &mut index);
    while index.len() % 4 != 0 {
        index.push(0);
    }
    let index_crc = crc32(&index);
    index.extend_from_slice(&index_crc);
    out.extend_from_slice(&index);
    let mut footer_body = ((index.len() / 4 - 1) as u32).to_le_bytes().to_vec();
    footer_body.extend_from_slice(&flags);
    out.extend_from_slice(&crc32(&footer_body));
    out.extend_from_slice(&footer_body);
    out.extend_from_slice(b"YZ");
    out
}

/// A real initramfs-tools image (xz) with a second xz segment of random nibbles: bootrig's repack
/// decodes it in a moment and then spends tens of seconds re-compressing it with xz.
fn slow_base(dir: &Path) -> PathBuf {
    let real = common::fixtures_dir().join("mkinitramfs-xz.img");
    let mut image = fs::read(&real)
        .unwrap_or_else(|e| panic!("{}: {e}: run images/setup first", real.display()));
    while image.len() % 4 != 0 {
        image.push(0);
    }
    let mut blob = vec![0u8; BLOB_LEN];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for nibbles in blob.chunks_mut(16) {
        // xorshift64, fast; one random nibble a byte.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        for (i, b) in nibbles.iter_mut().enumerate() {
            *b = ((x >> (4 * i)) & 0xF) as u8;
        }
    }
    image.extend_from_slice(&xz_stored(&newc(&[("opt/blob", &blob)])));
    let path = dir.join("base.img");
    fs::write(&path, image).unwrap();
    path
}

/// A scenario file in `dir`, its base given relative to it.
fn scenario(dir: &Path, name: &str, initrd: &str, boot: &str) -> PathBuf {
    let k = common::repo_root().join("images/cache/current");
    assert!(
        k.join("vmlinuz").exists(),
        "no kernel in images/cache: run images/setup first"
    );
    let text = format!(
        "name = \"{name}\"\n[kernel]\nimage = \"{}\"\nmodules = \"{}\"\n[initrd]\n{initrd}\n\
         [network]\ninterface = \"eth0\"\ndhcp = \"udhcpc\"\n[boot]\nmethod = \"direct\"\n{boot}\n",
        k.join("vmlinuz").display(),
        k.display()
    );
    let path = dir.join(format!("{name}.toml"));
    fs::write(&path, text).unwrap();
    path
}

const SLOW_INITRD: &str =
    "base = \"base.img\"\nmode = \"repack\"\nload = [\"virtio_net\"]\norder = \"resolve\"";
const QUICK_INITRD: &str = "base = \"busybox\"\nload = [\"virtio_net\"]\norder = \"resolve\"";

/// A bootrig started in the background in `cwd`, its output in files.
struct Started {
    child: Child,
    logs: tempfile::TempDir,
}

fn start(args: &[&str], cwd: &Path, env: &[(&str, &Path)]) -> Started {
    let logs = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(common::bootrig_bin());
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(fs::File::create(logs.path().join("stdout")).unwrap())
        .stderr(fs::File::create(logs.path().join("stderr")).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Started {
        child: cmd.spawn().expect("spawn bootrig"),
        logs,
    }
}

impl Started {
    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).expect("signal bootrig");
    }

    fn stderr(&self) -> String {
        fs::read_to_string(self.logs.path().join("stderr")).unwrap_or_default()
    }

    fn stdout(&self) -> String {
        fs::read_to_string(self.logs.path().join("stdout")).unwrap_or_default()
    }

    /// Polls `found` until it gives something, failing if bootrig ends first or `limit` passes.
    fn wait_for<T>(
        &mut self,
        what: &str,
        limit: Duration,
        mut found: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(t) = found() {
                return t;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "bootrig ended ({status}) before {what}; stderr:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {limit:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `limit` for the exit; a bootrig still running then is killed and the test fails.
    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "bootrig still running after {limit:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file or directory under `dir` whose name starts with `prefix`.
fn named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let path = e.path();
        if e.file_name().to_string_lossy().starts_with(prefix) {
            found.push(path.clone());
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(named(&path, prefix));
        }
    }
    found
}

/// Files in the cache's builds/ with extension `ext`.
fn entries(cache: &Path, ext: &str) -> Vec<PathBuf> {
    let Ok(dir) = fs::read_dir(cache.join("builds")) else {
        return Vec::new();
    };
    dir.flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect()
}

/// A stand-in QEMU that writes `marker` (when its arguments mention `when`) and then hangs.
fn hanging_qemu(dir: &Path, when: &str, marker: &Path) -> PathBuf {
    let path = dir.join("qemu-system-x86_64");
    fs::write(
        &path,
        format!(
            "#!/bin/sh\ncase \"$*\" in *{when}*) : > '{}';; esac\nexec sleep 120\n",
            marker.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn ctrl_c_stops_a_run_during_its_build_and_still_reports() {
    if !common::require(&[common::Need::Qemu, common::Need::Setup]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("scenarios");
    fs::create_dir(&dir).unwrap();
    slow_base(&dir);
    scenario(&dir, "slow", SLOW_INITRD, "");
    let cache = work.path().join("cache");
    let out = work.path().join("out");
    let mut run = start(
        &["run", "scenarios", "--accel", "tcg", "--out", "out"],
        work.path(),
        &[("BOOTRIG_CACHE", &cache)],
    );
    // The build's output exists once it is compressing: the long part.
    run.wait_for("a build temporary file", Duration::from_secs(180), || {
        named(&cache.join("builds"), ".bootrig-").pop()
    });
    std::thread::sleep(Duration::from_secs(1));
    run.signal(Signal::SIGINT);
    let stopped = Instant::now();
    // An uninterrupted build takes tens of CPU seconds more; the stop takes about one.
    let status = run.wait(Duration::from_secs(60));
    let took = stopped.elapsed();
    assert_eq!(status.code(), Some(1), "{}", run.stderr());
    assert!(
        entries(&cache, "img").is_empty(),
        "the build finished: {:?}",
        entries(&cache, "img")
    );
    assert!(took < Duration::from_secs(10), "took {took:?} after SIGINT");
    let left = [named(&cache, ".bootrig-"), named(&out, ".bootrig-")].concat();
    assert!(left.is_empty(), "temporary files left: {left:?}");
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let sc = &summary["scenarios"][0];
    assert_eq!(sc["outcome"], "error", "{sc:#}");
    assert!(
        sc["reason"].as_str().unwrap_or("").contains("interrupted"),
        "{sc:#}"
    );
    assert!(out.join("junit.xml").is_file());
}

#[test]
fn ctrl_c_stops_bootrig_build_and_a_second_signal_exits_at_once_leaving_nothing() {
    if !common::require(&[common::Need::Setup]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    slow_base(work.path());
    scenario(work.path(), "slow", SLOW_INITRD, "");
    let cache = work.path().join("cache");
    let args = ["build", "slow.toml", "-o", "out.img", "--test-mode"];
    let wait_for_tmp = |b: &mut Started| {
        b.wait_for("a build temporary file", Duration::from_secs(180), || {
            named(&cache.join("builds"), ".bootrig-").pop()
        })
    };

    // One signal: the build stops with a message, nothing written.
    let mut b = start(&args, work.path(), &[("BOOTRIG_CACHE", &cache)]);
    wait_for_tmp(&mut b);
    b.signal(Signal::SIGINT);
    let stopped = Instant::now();
    let status = b.wait(Duration::from_secs(60));
    let took = stopped.elapsed();
    let left = named(work.path(), ".bootrig-");
    assert!(left.is_empty(), "temporary files left: {left:?}");
    assert!(!work.path().join("out.img").exists());
    assert!(entries(&cache, "img").is_empty());
    assert!(took < Duration::from_secs(10), "took {took:?} after SIGINT");
    // As a shell reports a command ended by SIGINT: not 2, which says the input was wrong.
    assert_eq!(status.code(), Some(130), "{}", b.stderr());
    assert!(
        b.stderr().contains("stopped before it finished"),
        "{}",
        b.stderr()
    );

    // Two signals (different ones: two SIGINTs may merge into one): exit 130 at once, no litter.
    let mut b = start(&args, work.path(), &[("BOOTRIG_CACHE", &cache)]);
    wait_for_tmp(&mut b);
    b.signal(Signal::SIGINT);
    b.signal(Signal::SIGTERM);
    let status = b.wait(Duration::from_secs(60));
    assert!(!status.success(), "{}", b.stderr());
    let left = named(work.path(), ".bootrig-");
    assert!(left.is_empty(), "temporary files left: {left:?}");
    assert!(!work.path().join("out.img").exists());
}

/// The second-signal exit path itself: a temporary file nothing removes on the first signal (the
/// writer does not look at the flag) is still removed by the exit. Runs in a child process.
#[test]
fn second_signal_exit_removes_registered_temporary_files() {
    const CHILD: &str = "BOOTRIG_TEST_SIGNAL_CHILD";
    if let Some(dir) = std::env::var_os(CHILD) {
        let _interrupt = bootrig::interrupt::Interrupt::install().unwrap();
        let mut out =
            bootrig::fsutil::AtomicOutput::create(&Path::new(&dir).join("x.img"), false).unwrap();
        out.file().write_all(b"partial").unwrap();
        fs::write(Path::new(&dir).join("ready"), "").unwrap();
        std::thread::sleep(Duration::from_secs(60));
        std::process::exit(3);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "second_signal_exit_removes_registered_temporary_files",
            "--test-threads=1",
        ])
        .env(CHILD, dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir.path().join("ready").exists() {
        assert!(Instant::now() < deadline, "the child never got ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(named(dir.path(), ".bootrig-").len(), 1);
    let pid = Pid::from_raw(child.id() as i32);
    kill(pid, Signal::SIGINT).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    kill(pid, Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let left = named(dir.path(), ".bootrig-");
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[test]
fn a_changed_or_incomplete_cache_entry_is_rebuilt_not_reused() {
    if !common::require(&[common::Need::Setup]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    scenario(work.path(), "quick", QUICK_INITRD, "");
    let cache = work.path().join("cache");
    let build = |out: &str| {
        let mut b = start(
            &["build", "quick.toml", "-o", out, "--test-mode"],
            work.path(),
            &[("BOOTRIG_CACHE", &cache)],
        );
        let status = b.wait(Duration::from_secs(120));
        assert!(status.success(), "{}", b.stderr());
        (b.stdout(), b.stderr())
    };
    build("a.img");
    let a = fs::read(work.path().join("a.img")).unwrap();

    for img in entries(&cache, "img") {
        fs::write(img, "garbage").unwrap();
    }
    let (stdout, stderr) = build("b.img");
    assert!(stdout.contains(": built ("), "{stdout}");
    assert!(stderr.contains("changed or damaged"), "{stderr}");
    assert_eq!(fs::read(work.path().join("b.img")).unwrap(), a);

    for flavor in entries(&cache, "flavor") {
        fs::remove_file(flavor).unwrap();
    }
    let (stdout, stderr) = build("c.img");
    assert!(
        stdout.contains(": built (") && !stdout.contains("flavor ,"),
        "{stdout}"
    );
    assert!(stderr.contains(".flavor is missing"), "{stderr}");

    for sum in entries(&cache, "sha256") {
        fs::remove_file(sum).unwrap();
    }
    let (stdout, stderr) = build("d.img");
    assert!(stdout.contains(": built ("), "{stdout}");
    assert!(stderr.contains(".sha256 is missing"), "{stderr}");

    let (stdout, stderr) = build("e.img");
    assert!(stdout.contains("reused from cache"), "{stdout}");
    assert!(!stderr.contains("warning"), "{stderr}");
    assert_eq!(fs::read(work.path().join("e.img")).unwrap(), a);
}

#[test]
fn cleanup_removes_a_killed_runs_sockets_and_temporaries_and_keeps_live_ones() {
    if !common::require(&[common::Need::Qemu, common::Need::Setup]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let tmp = work.path().join("tmp");
    let cache = work.path().join("cache");
    let builds = cache.join("builds");
    fs::create_dir_all(&tmp).unwrap();
    fs::create_dir_all(&builds).unwrap();
    scenario(work.path(), "hang", QUICK_INITRD, "");
    let started = work.path().join("qemu-started");
    let qemu = hanging_qemu(work.path(), "", &started);
    let mut run = start(
        &["run", "hang.toml", "--accel", "tcg", "--out", "out"],
        work.path(),
        &[
            ("BOOTRIG_CACHE", &cache),
            ("TMPDIR", &tmp),
            ("BOOTRIG_QEMU", &qemu),
        ],
    );
    let sockets = run.wait_for("QEMU started", Duration::from_secs(120), || {
        started
            .exists()
            .then(|| named(&tmp, "bootrig-"))
            .filter(|d| !d.is_empty())
    });
    run.signal(Signal::SIGKILL);
    run.wait(Duration::from_secs(30));
    assert!(sockets.iter().all(|d| d.exists()), "{sockets:?}");

    // A dead build's temporary file, and a live one's (this test process's).
    let dead_tmp = builds.join(".bootrig-4194305-1-abcdef.tmp");
    let live_tmp = builds.join(format!(
        ".bootrig-{}-abcdef.tmp",
        bootrig::fsutil::owner_tag()
    ));
    fs::write(&dead_tmp, "partial").unwrap();
    fs::write(&live_tmp, "partial").unwrap();

    let state = work.path().join("state");
    let mut cleanup = start(
        &["cleanup", "--state-dir", s(&state)],
        work.path(),
        &[("TMPDIR", &tmp), ("BOOTRIG_CACHE", &cache)],
    );
    let status = cleanup.wait(Duration::from_secs(60));
    let stdout = cleanup.stdout();
    assert!(status.success(), "{stdout}\n{}", cleanup.stderr());
    for d in &sockets {
        assert!(!d.exists(), "{} left\n{stdout}", d.display());
        assert!(
            stdout.contains(&format!("removed {}", d.display())),
            "{stdout}"
        );
    }
    assert!(!dead_tmp.exists(), "{stdout}");
    assert!(stdout.contains("run 4194305 is gone"), "{stdout}");
    assert!(live_tmp.exists(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "kept {} (run {} is alive)",
            live_tmp.display(),
            std::process::id()
        )),
        "{stdout}"
    );
}

#[test]
fn ctrl_c_during_the_kvm_probe_ends_the_run_promptly() {
    if !common::require(&[common::Need::Qemu, common::Need::Setup]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    // accel = "auto" (the default): the run first probes KVM, here with a QEMU that hangs.
    scenario(work.path(), "auto", QUICK_INITRD, "");
    let probing = work.path().join("probing");
    let qemu = hanging_qemu(work.path(), "kvm", &probing);
    let cache = work.path().join("cache");
    let mut run = start(
        &["run", "auto.toml", "--out", "out"],
        work.path(),
        &[("BOOTRIG_CACHE", &cache), ("BOOTRIG_QEMU", &qemu)],
    );
    run.wait_for("the KVM probe", Duration::from_secs(60), || {
        probing.exists().then_some(())
    });
    run.signal(Signal::SIGINT);
    let stopped = Instant::now();
    let status = run.wait(Duration::from_secs(60));
    let took = stopped.elapsed();
    // The probe's own bound is 5 s; a probe that ignores Ctrl-C ends only then.
    assert!(
        took < Duration::from_millis(3500),
        "took {took:?} after SIGINT"
    );
    assert_eq!(status.code(), Some(1), "{}", run.stderr());
    let summary = fs::read_to_string(work.path().join("out/summary.json")).unwrap();
    assert!(summary.contains("interrupted"), "{summary}");
}
