//! Bounded mutation test of the image reader (stable Rust has no cargo-fuzz; `fuzz/` holds the
//! libFuzzer target for machines with nightly). Small real images made by the system's own
//! tools (cpio, gzip, xz, zstd, lz4 -l, bzip2, lzma) are corrupted thousands of ways: bit flips,
//! truncations, zeroed and maxed header fields inside compressed and uncompressed archives,
//! spliced segments. Every case must end in a tree or a typed error, never a panic.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bootrig::initrd::codec::{self, Compression};
use bootrig::initrd::image::{read_tree_from, ImageError, ReadOptions};
use bootrig::initrd::tree::DataPolicy;

/// Deterministic xorshift: the same cases on every run, so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn sh(script: &str, dir: &Path) -> Vec<u8> {
    let out = Command::new("bash")
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .stderr(Stdio::inherit())
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{script} failed; run images/setup first (cpio, xz, zstd, lz4, bzip2)"
    );
    out.stdout
}

/// A small real tree archived by GNU cpio, and images of it in every codec the kernel reads.
fn real_images() -> Vec<(String, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("usr/lib/modules")).unwrap();
    std::fs::create_dir_all(root.join("scripts/init-top")).unwrap();
    std::fs::write(
        root.join("init"),
        "#!/bin/sh\nmount -t proc proc /proc\nexec /sbin/init\n",
    )
    .unwrap();
    let blob: Vec<u8> = (0..20000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(root.join("usr/lib/modules/blob.ko"), &blob).unwrap();
    std::fs::write(root.join("scripts/init-top/ORDER"), "x\n").unwrap();
    std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
    std::fs::hard_link(root.join("init"), root.join("init.hard")).unwrap();
    let newc = sh(
        "cd root && find . | LC_ALL=C sort | cpio --quiet -o -H newc",
        dir.path(),
    );
    let crc = sh(
        "cd root && find . | LC_ALL=C sort | cpio --quiet -o -H crc",
        dir.path(),
    );
    std::fs::write(dir.path().join("a.cpio"), &newc).unwrap();
    let mut images = vec![
        ("newc".to_string(), newc.clone()),
        ("crc".to_string(), crc.clone()),
    ];
    for (name, tool) in [
        ("gzip", "gzip -9c"),
        ("xz", "xz --check=crc32 -c"),
        ("zstd", "zstd -q -c"),
        ("lz4", "lz4 -l -q -c"),
        ("bzip2", "bzip2 -c"),
        ("lzma", "lzma -c"),
    ] {
        images.push((name.to_string(), sh(&format!("{tool} a.cpio"), dir.path())));
    }
    // Early uncompressed segment + padding + compressed main, as dracut and mkinitramfs write.
    let mut early = crc.clone();
    early.resize(early.len().div_ceil(512) * 512, 0);
    early.extend_from_slice(&images[2].1);
    images.push(("early+gzip".to_string(), early));
    let mut two = images[2].1.clone();
    two.extend_from_slice(&images[4].1);
    images.push(("gzip+zstd".to_string(), two));
    images
}

fn read(bytes: &[u8]) -> Result<usize, ImageError> {
    let opts = ReadOptions {
        max_output: 16 << 20,
    };
    read_tree_from(bytes, Path::new("mutant.img"), DataPolicy::Full, &opts).map(|(t, _)| t.len())
}

fn must_not_panic(label: &str, bytes: &[u8]) -> Result<usize, ImageError> {
    match std::panic::catch_unwind(|| read(bytes)) {
        Ok(r) => {
            if let Err(e) = &r {
                let msg = e.to_string();
                assert!(
                    msg.starts_with("mutant.img"),
                    "{label}: error does not name the file: {msg}"
                );
            }
            r
        }
        Err(_) => panic!("{label}: reader panicked"),
    }
}

/// Offsets of newc headers in an uncompressed archive.
fn header_offsets(cpio: &[u8]) -> Vec<usize> {
    cpio.windows(6)
        .enumerate()
        .filter(|(i, w)| i % 4 == 0 && (*w == b"070701" || *w == b"070702"))
        .map(|(i, _)| i)
        .collect()
}

/// Zeroes or maxes one 8-digit header field of one header.
fn corrupt_field(cpio: &mut [u8], rng: &mut Rng) {
    let heads = header_offsets(cpio);
    if heads.is_empty() {
        return;
    }
    let at = heads[rng.below(heads.len())] + 6 + 8 * rng.below(13);
    let value: &[u8; 8] = match rng.below(4) {
        0 => b"00000000",
        1 => b"FFFFFFFF",
        2 => b"0000zz00",
        _ => b"7FFFFFFF",
    };
    cpio[at..at + 8].copy_from_slice(value);
}

fn recompress(c: Compression, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::new();
    let mut enc = codec::encoder(c, &mut out, None).unwrap();
    enc.write_all(data).unwrap();
    enc.finish().unwrap();
    out
}

#[test]
fn thousands_of_corrupt_images_give_trees_or_typed_errors() {
    let images = real_images();
    for (name, bytes) in &images {
        assert!(
            read(bytes).is_ok(),
            "pristine {name} must read: {:?}",
            read(bytes).err()
        );
    }
    let newc = images[0].1.clone();
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut cases = 0;
    let mut errors = 0;
    for round in 0..300 {
        for (name, bytes) in &images {
            let mut m = bytes.clone();
            let label = format!("{name} round {round}");
            match rng.below(5) {
                0 => {
                    for _ in 0..=rng.below(8) {
                        let i = rng.below(m.len());
                        m[i] ^= 1 << rng.below(8);
                    }
                }
                1 => m.truncate(rng.below(m.len())),
                2 => {
                    let other = &images[rng.below(images.len())].1;
                    let from = rng.below(other.len());
                    let to = (from + rng.below(4096)).min(other.len());
                    let at = rng.below(m.len());
                    m.splice(at..at, other[from..to].iter().copied());
                }
                3 => {
                    let at = rng.below(m.len());
                    let end = (at + rng.below(64)).min(m.len());
                    for b in &mut m[at..end] {
                        *b = if round % 2 == 0 { 0 } else { 0xff };
                    }
                }
                _ => {
                    // A valid stream around a corrupt archive: exercises the cpio checks inside
                    // every codec.
                    let mut cpio = newc.clone();
                    corrupt_field(&mut cpio, &mut rng);
                    let c = [
                        Compression::None,
                        Compression::Gzip,
                        Compression::Xz,
                        Compression::Zstd,
                        Compression::Lz4,
                    ][rng.below(5)];
                    m = recompress(c, &cpio);
                }
            }
            cases += 1;
            if must_not_panic(&label, &m).is_err() {
                errors += 1;
            }
        }
    }
    assert!(cases >= 3000, "{cases}");
    // Most corruptions must be caught; a reader that accepts everything would fail here.
    assert!(
        errors > cases / 2,
        "only {errors} of {cases} corrupt images were rejected"
    );
}

#[test]
fn truncated_compressed_segments_are_errors() {
    for (name, bytes) in real_images() {
        if !["gzip", "xz", "zstd", "bzip2", "lzma"].contains(&name.as_str()) {
            continue;
        }
        for cut in (1..bytes.len() - 1).step_by(97) {
            let r = must_not_panic(&format!("{name} cut at {cut}"), &bytes[..cut]);
            assert!(
                r.is_err(),
                "{name} truncated at {cut} of {} was accepted",
                bytes.len()
            );
        }
    }
}

/// The distribution images images/fixtures made with mkinitramfs and dracut, corrupted: the
/// reader must stay typed on full-size real archives too (a few hundred cases: each one
/// decompresses megabytes).
#[test]
fn corrupt_distribution_images_give_trees_or_typed_errors() {
    if !common::require(&[common::Need::TestFixtures]) {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("images/cache/initrds");
    let manifest = std::fs::read_to_string(dir.join("manifest"))
        .expect("no fixture images: run images/setup first");
    let mut rng = Rng(0x2545f4914f6cdd1d);
    let mut cases = 0;
    for line in manifest.lines().filter(|l| !l.starts_with('#')) {
        let file = line.split('\t').next_back().unwrap();
        if file.contains("most") {
            continue; // the 37 MB benchmark image: same codecs, only slower
        }
        let bytes = std::fs::read(dir.join(file)).unwrap();
        assert!(read_big(&bytes).is_ok(), "pristine {file} must read");
        for round in 0..24 {
            let mut m = bytes.clone();
            match round % 4 {
                0 => {
                    let i = rng.below(m.len());
                    m[i] ^= 1 << rng.below(8);
                }
                1 => m.truncate(rng.below(m.len())),
                2 => {
                    let at = rng.below(m.len());
                    let from = rng.below(bytes.len());
                    let to = (from + 1 + rng.below(65536)).min(bytes.len());
                    m.splice(at..at, bytes[from..to].iter().copied());
                }
                _ => {
                    let at = rng.below(m.len());
                    let end = (at + 4 + rng.below(512)).min(m.len());
                    m[at..end].fill(if round % 8 == 3 { 0 } else { 0xff });
                }
            }
            cases += 1;
            let label = format!("{file} round {round}");
            if let Err(e) = std::panic::catch_unwind(|| read_big(&m))
                .unwrap_or_else(|_| panic!("{label}: reader panicked"))
            {
                assert!(e.to_string().starts_with("mutant.img"), "{label}: {e}");
            }
        }
    }
    assert!(cases >= 150, "{cases}");
}

fn read_big(bytes: &[u8]) -> Result<usize, ImageError> {
    let opts = ReadOptions {
        max_output: 512 << 20,
    };
    read_tree_from(bytes, Path::new("mutant.img"), DataPolicy::SizeOnly, &opts)
        .map(|(t, _)| t.len())
}
