//! `cargo bench --bench initrd_add`: patching the MODULES=most mkinitramfs gzip image (images/fixtures)
//! with the ten IB modules of the modern list and a changed /init, side by side:
//!   (a) the manual's pipeline in shell: gzip -dc | cpio -id; cp; edit init; find | cpio -o | gzip
//!   (b) bootrig initrd add --mode overlay
//!   (c) bootrig initrd add --mode repack --compress gzip
//!   (d) zcat IMG >/dev/null: reading the input once with the system's gzip
//! Median wall time of several runs (BOOTRIG_BENCH_RUNS, default 5), peak RSS from /usr/bin/time,
//! output sizes, and the ratios issue 3 sets as goals. A benchmark: it reports, it does not fail on
//! a missed goal; it fails only when a step fails or an output lacks the additions.
#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const IB_MODULES: [&str; 10] = [
    "ib_core",
    "ib_cm",
    "ib_uverbs",
    "ib_umad",
    "iw_cm",
    "rdma_cm",
    "rdma_ucm",
    "mlx4_core",
    "mlx4_ib",
    "ib_ipoib",
];
const INIT_LINE: &str = "echo bootrig-bench: patched init";

/// The manual's steps; $1 image, $2 output, $3 work tree, $4 release, the rest module files.
const MANUAL: &str = r#"set -e
img=$1 out=$2 tree=$3 rel=$4 line=$5; shift 5
mkdir "$tree"; cd "$tree"
gzip -dc "$img" | cpio -id --quiet
mkdir -p "lib/modules/$rel/extra"
cp "$@" "lib/modules/$rel/extra/"
sed -i "1a $line" init
find . | cpio -H newc -o --quiet | gzip > "$out"
"#;

struct Sample {
    seconds: f64,
    peak_rss_kib: u64,
}

/// Runs `argv` under /usr/bin/time for its peak RSS (wait4's ru_maxrss covers the whole tree).
fn measure(argv: &[String], work: &Path) -> Sample {
    let rss_file = work.join("rss");
    let stderr_file = work.join("stderr");
    // bootrig's notes (one per addition) would bury the table: keep them for a failure.
    let stderr = fs::File::create(&stderr_file).expect("create stderr file");
    let start = Instant::now();
    let status = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .status()
        .expect("spawn /usr/bin/time (package `time`)");
    let seconds = start.elapsed().as_secs_f64();
    assert!(
        status.success(),
        "{argv:?} failed: {status}\n{}",
        fs::read_to_string(&stderr_file).unwrap_or_default()
    );
    let rss = fs::read_to_string(&rss_file).expect("time -o output");
    let peak_rss_kib = rss
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RSS in {rss:?}"));
    Sample {
        seconds,
        peak_rss_kib,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

struct Step {
    label: &'static str,
    argv: Vec<String>,
    output: Option<PathBuf>,
    samples: Vec<Sample>,
}

fn main() {
    let env = cache_env();
    let fx = fixture("mkinitramfs-most-gzip");
    let runs: usize = std::env::var("BOOTRIG_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = tmp.path();
    let img = fx.path.to_str().expect("UTF-8 path").to_string();
    let modules: Vec<PathBuf> = IB_MODULES.iter().map(|m| module_path(&env, m)).collect();

    // The same edited /init for every contender: the image's own, one line added after the shebang.
    let old_init = sh(&format!(
        "gzip -dc '{img}' | cpio -i --quiet --to-stdout init"
    ));
    let old_init = String::from_utf8(old_init).expect("init is text");
    let (shebang, rest) = old_init.split_once('\n').expect("init has lines");
    let new_init = work.join("init.new");
    fs::write(&new_init, format!("{shebang}\n{INIT_LINE}\n{rest}")).expect("write init");

    let bin = bootrig_bin().to_str().expect("UTF-8 path").to_string();
    let out = |name: &str| work.join(name);
    let add_args = |mode: &str, extra: &[&str], output: &Path| {
        let mut a = vec![
            bin.clone(),
            "initrd".into(),
            "add".into(),
            img.clone(),
            "-o".into(),
        ];
        a.push(output.to_str().expect("utf8").into());
        a.extend(["--mode".into(), mode.into()]);
        a.extend(extra.iter().map(|s| s.to_string()));
        for m in &modules {
            let name = m.file_name().expect("file name").to_str().expect("utf8");
            a.extend([
                "--file".into(),
                format!("{}:/lib/modules/{}/extra/{name}", m.display(), env.release),
            ]);
        }
        a.extend(["--init".into(), new_init.to_str().expect("utf8").into()]);
        a
    };
    let mut manual = vec![
        "bash".to_string(),
        "-c".into(),
        MANUAL.into(),
        "manual".into(),
        img.clone(),
        out("manual.img").to_str().expect("utf8").into(),
        work.join("tree").to_str().expect("utf8").into(),
        env.release.clone(),
        INIT_LINE.into(),
    ];
    manual.extend(
        modules
            .iter()
            .map(|m| m.to_str().expect("utf8").to_string()),
    );
    let mut steps = vec![
        Step {
            label: "(a) manual pipeline",
            argv: manual,
            output: Some(out("manual.img")),
            samples: vec![],
        },
        Step {
            label: "(b) bootrig overlay",
            argv: add_args("overlay", &[], &out("overlay.img")),
            output: Some(out("overlay.img")),
            samples: vec![],
        },
        Step {
            label: "(c) bootrig repack gzip",
            argv: add_args("repack", &["--compress", "gzip"], &out("repack.img")),
            output: Some(out("repack.img")),
            samples: vec![],
        },
        Step {
            label: "(d) zcat IMG >/dev/null",
            argv: vec!["sh".into(), "-c".into(), format!("zcat '{img}' >/dev/null")],
            output: None,
            samples: vec![],
        },
    ];

    println!(
        "initrd_add: {} ({} bytes), kernel {}, {} runs each, {} modules + /init",
        fx.path.display(),
        fs::metadata(&fx.path).expect("stat").len(),
        env.release,
        runs,
        modules.len()
    );
    // Warm the page cache so the first contender is not charged for the disk.
    sh(&format!("cat '{img}' >/dev/null"));
    for _ in 0..runs {
        for step in &mut steps {
            if let Some(o) = &step.output {
                let _ = fs::remove_file(o);
            }
            let _ = fs::remove_dir_all(work.join("tree"));
            step.samples.push(measure(&step.argv, work));
        }
    }
    let _ = fs::remove_dir_all(work.join("tree"));

    // The outputs must carry the additions, or the timings mean nothing.
    let want = format!("usr/lib/modules/{}/extra/mlx4_ib.ko", env.release);
    let manual_list = String::from_utf8(sh(&format!(
        "gzip -dc '{}' | cpio -t --quiet",
        out("manual.img").display()
    )))
    .expect("utf8");
    assert!(
        normalise_paths(&manual_list).contains(&want),
        "manual output lacks {want}"
    );
    for name in ["overlay.img", "repack.img"] {
        let listing = bootrig_ok(&["initrd", "ls", out(name).to_str().expect("utf8")]);
        assert!(
            normalise_paths(&listing).contains(&want),
            "{name} lacks {want}"
        );
    }

    println!();
    println!(
        "{:<26} {:>10} {:>10} {:>14} {:>14}",
        "step", "median s", "min s", "peak RSS MiB", "output bytes"
    );
    let mut med = Vec::new();
    let mut rss = Vec::new();
    let mut size = Vec::new();
    for step in &steps {
        let times: Vec<f64> = step.samples.iter().map(|s| s.seconds).collect();
        let min = times.iter().cloned().fold(f64::INFINITY, f64::min);
        let m = median(times);
        let peak = step
            .samples
            .iter()
            .map(|s| s.peak_rss_kib)
            .max()
            .unwrap_or(0) as f64
            / 1024.0;
        let bytes = step
            .output
            .as_ref()
            .map(|o| fs::metadata(o).expect("output").len());
        println!(
            "{:<26} {:>10.3} {:>10.3} {:>14.1} {:>14}",
            step.label,
            m,
            min,
            peak,
            bytes.map(|b| b.to_string()).unwrap_or_else(|| "-".into())
        );
        med.push(m);
        rss.push(peak);
        size.push(bytes.unwrap_or(0) as f64);
    }
    let (a, b, c, d) = (med[0], med[1], med[2], med[3]);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!();
    println!("goals (issue 3):");
    println!(
        "  overlay / zcat time      = {:>8.3}  (goal <= 0.5)   {}",
        b / d,
        verdict(b / d <= 0.5)
    );
    println!(
        "  manual / overlay time    = {:>8.1}x (goal >= 25x)   {}",
        a / b,
        verdict(a / b >= 25.0)
    );
    println!(
        "  manual / repack time     = {:>8.1}x (goal >= 4x)    {}",
        a / c,
        verdict(a / c >= 4.0)
    );
    let size_diff = (size[2] - size[0]) / size[0] * 100.0;
    println!(
        "  repack size vs manual    = {:>+8.2}% (goal within 1%) {}",
        size_diff,
        verdict(size_diff.abs() <= 1.0)
    );
    println!(
        "  overlay peak RSS         = {:>8.1} MiB (goal < 64)  {}",
        rss[1],
        verdict(rss[1] < 64.0)
    );
}
