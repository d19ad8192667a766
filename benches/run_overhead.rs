//! `cargo bench --bench run_overhead`: what bootrig costs on top of the boot itself.
//!
//! 1. One scenario (scenarios/mlx4-ipoib-busybox.toml: SeaBIOS, iPXE, TFTP, TCG), interleaved:
//!    `bootrig run` (process start to exit: build-cache lookup, staging, QEMU paused and resumed
//!    over QMP, console driving, judging, reports) versus the very QEMU command that run used
//!    (its `qemu.cmdline`, the same boot files) started by hand with the console on stdio, timed
//!    to the same console line (`BOOTRIG done`). Medians; overhead = (bootrig - hand) / bootrig.
//! 2. The shipped suite (`scenarios/`) with `-j 1` versus `-j 2`.
//!
//! Needs images/setup. Accelerator TCG throughout (nested KVM hangs guests on these machines).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SCENARIO: &str = "scenarios/mlx4-ipoib-busybox.toml";
const ROUNDS: usize = 5;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bootrig(args: &[&str], out: &Path) -> (Duration, bool) {
    let start = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_bootrig"))
        .args(args)
        .args(["--accel", "tcg", "--out"])
        .arg(out)
        .current_dir(root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("running bootrig");
    (start.elapsed(), status.success())
}

/// Splits `qemu.cmdline` as `qemu::machine::shell_words` wrote it (plain words, or words in
/// single quotes with `'\''` for a quote).
fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.trim_end().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if quoted => quoted = false,
            '\'' => {
                quoted = true;
                in_word = true;
            }
            '\\' if !quoted => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            ' ' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The run's QEMU command as a person would start it: console on stdio, no QMP, not paused.
fn by_hand(cmdline: &str) -> Vec<String> {
    let words = split_words(cmdline);
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        let next = words.get(i + 1).map(String::as_str).unwrap_or("");
        if w == "-S" {
            i += 1;
            continue;
        }
        if w == "-chardev" && next.starts_with("socket,id=serial0") {
            out.extend(["-chardev".into(), "stdio,id=serial0".into()]);
            i += 2;
            continue;
        }
        if (w == "-chardev" && next.starts_with("socket,id=qmp")) || w == "-mon" {
            i += 2;
            continue;
        }
        out.push(w.clone());
        i += 1;
    }
    out
}

/// Starts QEMU and times it to the console line `BOOTRIG done`.
fn hand_run(words: &[String]) -> Duration {
    let start = Instant::now();
    let mut child = Command::new(&words[0])
        .args(&words[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting QEMU");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut took = None;
    for line in BufReader::new(stdout).split(b'\n') {
        let Ok(line) = line else { break };
        if String::from_utf8_lossy(&line).trim_end() == "BOOTRIG done" {
            took = Some(start.elapsed());
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    took.expect("the hand-run QEMU never printed BOOTRIG done")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    assert!(
        root().join("images/cache/current/vmlinuz").exists(),
        "run images/setup first"
    );
    // The splitter reads what qemu::machine::shell_words writes.
    assert_eq!(
        split_words("/q -a 'x y' 'it'\\''s' -S\n"),
        ["/q", "-a", "x y", "it's", "-S"]
    );
    let work = tempfile::tempdir().expect("tempdir");
    // Warm-up: fills the build cache, as any run after the first finds it.
    let (_, ok) = bootrig(&["run", SCENARIO], &work.path().join("warm"));
    assert!(ok, "warm-up run failed");

    let mut ours = Vec::new();
    let mut hand = Vec::new();
    for round in 0..ROUNDS {
        let out = work.path().join(format!("run{round}"));
        let (took, ok) = bootrig(&["run", SCENARIO], &out);
        assert!(ok, "bootrig run failed: see {}", out.display());
        ours.push(took);
        let cmdline = std::fs::read_to_string(out.join("mlx4-ipoib-busybox/qemu.cmdline"))
            .expect("qemu.cmdline");
        hand.push(hand_run(&by_hand(&cmdline)));
    }
    let (a, b) = (median(ours.clone()), median(hand.clone()));
    let overhead = (a.as_secs_f64() - b.as_secs_f64()) / a.as_secs_f64() * 100.0;
    println!("one scenario ({SCENARIO}), {ROUNDS} rounds interleaved, medians:");
    println!(
        "  bootrig run (process wall time)       {:7.3} s   {ours:.2?}",
        a.as_secs_f64()
    );
    println!(
        "  same QEMU command by hand, to 'done'  {:7.3} s   {hand:.2?}",
        b.as_secs_f64()
    );
    println!("  bootrig overhead                      {overhead:6.1} % of wall time (goal < 5 %)");

    let (j1, ok1) = bootrig(&["run", "scenarios", "-j", "1"], &work.path().join("j1"));
    let (j2, ok2) = bootrig(&["run", "scenarios", "-j", "2"], &work.path().join("j2"));
    assert!(ok1 && ok2, "the shipped suite failed");
    println!(
        "shipped suite (scenarios/), {} cores:",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("  -j 1  {:7.1} s", j1.as_secs_f64());
    println!(
        "  -j 2  {:7.1} s   ({:.2}x)",
        j2.as_secs_f64(),
        j1.as_secs_f64() / j2.as_secs_f64()
    );
}
