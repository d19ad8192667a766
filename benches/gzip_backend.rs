//! Pick the gzip backend by measurement: level-6 compression and decompression of a ~150 MB
//! cpio-like buffer (the real module tree of the cached kernel, concatenated) with flate2's
//! zlib-rs backend (bootrig's streaming writer and every reader, through `initrd::codec`),
//! libdeflate (`codec::gzip_member`: what bootrig uses for gzip it writes from memory),
//! miniz_oxide used directly, the system `gzip`, and `gzip_members_parallel` on 2 threads.
//!
//! The parallel run splits the buffer at 8 MiB boundaries, which is fine for timing; a real
//! repack splits on entry boundaries (see `gzip_members_parallel`).
//!
//! Run: `cargo bench --bench gzip_backend` (needs images/setup to have filled images/cache).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bootrig::initrd::codec::{self, Compression};

const TARGET_BYTES: usize = 150 << 20;
const LEVEL: u32 = 6;
const CHUNK: usize = 8 << 20;

fn modules_dir() -> PathBuf {
    let env_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("images/cache/env");
    let env = std::fs::read_to_string(&env_file).unwrap_or_else(|e| {
        panic!("{}: {e}: run images/setup first", env_file.display());
    });
    env.lines()
        .find_map(|l| l.strip_prefix("BOOTRIG_MODULES="))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "{} lacks BOOTRIG_MODULES: run images/setup first",
                env_file.display()
            )
        })
}

/// Files under `dir`, sorted so the input is the same on every run.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            files_under(&path, out);
        } else if meta.is_file() {
            out.push(path);
        }
    }
}

fn load_input() -> Vec<u8> {
    let mut files = Vec::new();
    files_under(&modules_dir(), &mut files);
    let mut buf = Vec::with_capacity(TARGET_BYTES);
    for file in files {
        if buf.len() >= TARGET_BYTES {
            break;
        }
        std::fs::File::open(&file)
            .unwrap()
            .read_to_end(&mut buf)
            .unwrap();
    }
    buf.truncate(TARGET_BYTES);
    buf
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

fn system(cmd: &str, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    let mut input = child.stdin.take().unwrap();
    std::thread::scope(|s| {
        s.spawn(move || input.write_all(stdin).unwrap());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{cmd} {args:?} failed");
        out.stdout
    })
}

fn decode_members(packed: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = packed;
    while !rest.is_empty() {
        let mut cursor = std::io::Cursor::new(rest);
        codec::decoder(Compression::Gzip, &mut cursor, u64::MAX)
            .read_to_end(&mut out)
            .unwrap();
        rest = &rest[cursor.position() as usize..];
    }
    out
}

fn miniz_gzip(data: &[u8]) -> Vec<u8> {
    // Raw deflate plus the CRC32 a gzip trailer needs, so the work matches a gzip member.
    let mut crc = flate2::Crc::new();
    crc.update(data);
    let mut out = vec![0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff];
    out.extend(miniz_oxide::deflate::compress_to_vec(data, LEVEL as u8));
    out.extend(crc.sum().to_le_bytes());
    out.extend(crc.amount().to_le_bytes());
    out
}

fn miniz_gunzip(packed: &[u8]) -> Vec<u8> {
    let body = &packed[10..packed.len() - 8];
    let out = miniz_oxide::inflate::decompress_to_vec(body).unwrap();
    let mut crc = flate2::Crc::new();
    crc.update(&out);
    assert_eq!(
        crc.sum().to_le_bytes(),
        packed[packed.len() - 8..packed.len() - 4]
    );
    out
}

struct Row {
    name: &'static str,
    compressed: usize,
    compress: Duration,
    decompress: Duration,
}

fn main() {
    let input = load_input();
    let mb = input.len() as f64 / 1e6;
    println!(
        "input: {:.1} MB of module files from {}",
        mb,
        modules_dir().display()
    );
    let mut rows = Vec::new();

    let (packed, compress) = timed(|| {
        let mut out = Vec::new();
        let mut w = codec::encoder(Compression::Gzip, &mut out, Some(LEVEL)).unwrap();
        w.write_all(&input).unwrap();
        w.finish().unwrap();
        out
    });
    let (plain, decompress) = timed(|| decode_members(&packed));
    assert!(plain == input, "flate2 round trip");
    rows.push(Row {
        name: "flate2 (zlib-rs)",
        compressed: packed.len(),
        compress,
        decompress,
    });

    let (packed, compress) = timed(|| codec::gzip_member(&input, LEVEL).unwrap());
    let (plain, decompress) = timed(|| decode_members(&packed));
    assert!(plain == input, "libdeflate round trip");
    rows.push(Row {
        name: "libdeflate",
        compressed: packed.len(),
        compress,
        decompress,
    });

    let (packed, compress) = timed(|| miniz_gzip(&input));
    let (plain, decompress) = timed(|| miniz_gunzip(&packed));
    assert!(plain == input, "miniz_oxide round trip");
    rows.push(Row {
        name: "miniz_oxide",
        compressed: packed.len(),
        compress,
        decompress,
    });

    let (packed, compress) = timed(|| system("gzip", &["-6", "-c"], &input));
    let (plain, decompress) = timed(|| system("gzip", &["-dc"], &packed));
    assert!(plain == input, "system gzip round trip");
    rows.push(Row {
        name: "system gzip",
        compressed: packed.len(),
        compress,
        decompress,
    });

    let chunks: Vec<&[u8]> = input.chunks(CHUNK).collect();
    let (packed, compress) = timed(|| {
        let mut out = Vec::new();
        codec::gzip_members_parallel(&chunks, LEVEL, 2, &mut out).unwrap();
        out
    });
    let (plain, decompress) = timed(|| decode_members(&packed));
    assert!(plain == input, "parallel members round trip");
    rows.push(Row {
        name: "members_parallel x2",
        compressed: packed.len(),
        compress,
        decompress,
    });

    println!(
        "{:<22} {:>10} {:>8} {:>10} {:>10} {:>10}",
        "backend (level 6)", "compress s", "MB/s", "ratio", "decomp s", "MB/s"
    );
    for r in rows {
        println!(
            "{:<22} {:>10.2} {:>8.1} {:>10.3} {:>10.2} {:>10.1}",
            r.name,
            r.compress.as_secs_f64(),
            mb / r.compress.as_secs_f64(),
            r.compressed as f64 / input.len() as f64,
            r.decompress.as_secs_f64(),
            mb / r.decompress.as_secs_f64(),
        );
    }
    println!(
        "(members_parallel decompression is sequential, member by member, through initrd::codec)"
    );
}
