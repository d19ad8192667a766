//! The codec against the system's own tools and the kernel's rules, format by format.

use std::io::{self, Read, Write};

use strum::VariantArray;

use crate::names::Named;

use super::super::lz4legacy;
use super::decode::*;
use super::*;
use std::io::Cursor;
use std::process::{Command, Stdio};

/// Deterministic cpio-like data: text with runs plus pseudo-random bytes.
fn sample(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x1234_5678;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        if state % 3 == 0 {
            out.extend_from_slice(b"070701000001ed000081a4 /lib/modules/kernel/drivers/net ");
        } else {
            out.extend_from_slice(&state.to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

fn encode(c: Compression, data: &[u8], level: Option<u32>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = encoder(c, &mut out, level).unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap();
    out
}

/// Decodes one segment from the start of `image`; returns the bytes and where input stopped.
fn decode(c: Compression, image: &[u8], cap: u64) -> io::Result<(Vec<u8>, usize)> {
    let mut cursor = Cursor::new(image);
    let mut out = Vec::new();
    decoder(c, &mut cursor, cap).read_to_end(&mut out)?;
    Ok((out, cursor.position() as usize))
}

fn codec_error(e: &io::Error) -> &CodecError {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<CodecError>())
        .unwrap_or_else(|| panic!("not a CodecError: {e:?}"))
}

/// Runs a system tool with `stdin`, returning stdout; fails the test if it fails.
fn run_tool(cmd: &str, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd} is required (images/setup installs it): {e}"));
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || input.write_all(&data));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Compressed with the system tool that writes what the kernel reads.
fn system_compress(c: Compression, data: &[u8]) -> Vec<u8> {
    match c {
        Compression::None => data.to_vec(),
        Compression::Gzip => run_tool("gzip", &["-6", "-c"], data),
        Compression::Bzip2 => run_tool("bzip2", &["-c"], data),
        Compression::Lzma => run_tool("lzma", &["-c"], data),
        Compression::Xz => run_tool("xz", &["--check=crc32", "-c"], data),
        Compression::Lz4 => run_tool("lz4", &["-l", "-c"], data),
        Compression::Zstd => run_tool("zstd", &["-q", "-c"], data),
    }
}

const COMPRESSED: [Compression; 6] = [
    Compression::Gzip,
    Compression::Bzip2,
    Compression::Lzma,
    Compression::Xz,
    Compression::Lz4,
    Compression::Zstd,
];

#[test]
fn names_parse_back_and_errors_list_choices() {
    for c in Compression::VARIANTS.iter().copied() {
        assert_eq!(c.as_str().parse::<Compression>().unwrap(), c);
        assert_eq!(c.to_string(), c.as_str());
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            format!("\"{}\"", c.as_str())
        );
    }
    assert_eq!("gz".parse::<Compression>().unwrap(), Compression::Gzip);
    assert_eq!("ZST".parse::<Compression>().unwrap(), Compression::Zstd);
    let err = "lzo".parse::<Compression>().unwrap_err();
    assert!(
        err.contains("'lzo'") && err.contains("zstd") && err.contains("gzip"),
        "{err}"
    );
    let writable: Vec<_> = Compression::VARIANTS
        .iter()
        .copied()
        .filter(|c| c.can_write())
        .collect();
    assert_eq!(
        writable,
        [
            Compression::None,
            Compression::Gzip,
            Compression::Xz,
            Compression::Lz4,
            Compression::Zstd
        ]
    );
    assert_eq!(Compression::Xz.tool(), "xz -dc");
    assert_eq!(Compression::None.tool(), "cat");
    assert_eq!(Compression::Lz4.min_zero_padding_after(), 4);
    assert_eq!(Compression::Gzip.min_zero_padding_after(), 0);
}

#[test]
fn detect_uses_the_kernels_two_byte_magics() {
    let cases: [(&[u8], Option<Compression>); 12] = [
        (b"070701000", Some(Compression::None)),
        (b"070702000", Some(Compression::None)),
        (b"070707000", None),
        (&[0x1f, 0x8b, 0x08], Some(Compression::Gzip)),
        (&[0x1f, 0x9e], Some(Compression::Gzip)),
        (b"BZh9", Some(Compression::Bzip2)),
        (&[0x5d, 0x00, 0x00, 0x80], Some(Compression::Lzma)),
        (&XZ_MAGIC, Some(Compression::Xz)),
        (&lz4legacy::MAGIC, Some(Compression::Lz4)),
        (&[0x28, 0xb5, 0x2f, 0xfd], Some(Compression::Zstd)),
        (&[0x89, 0x4c, 0x5a, 0x4f], None),
        (&[0x1f], None),
    ];
    for (head, want) in cases {
        assert_eq!(detect(head), want, "{head:02x?}");
    }
    assert_eq!(detect(b""), None);
}

#[test]
fn every_writable_codec_round_trips() {
    let data = sample(300_000);
    for c in Compression::VARIANTS
        .iter()
        .copied()
        .filter(|c| c.can_write())
    {
        let packed = encode(c, &data, None);
        if c != Compression::None {
            assert_eq!(detect(&packed), Some(c));
        }
        let (out, end) = decode(c, &packed, u64::MAX).unwrap();
        assert_eq!(out, data, "{c}");
        assert_eq!(end, packed.len(), "{c}");
        let (empty, _) = decode(c, &encode(c, b"", None), u64::MAX).unwrap();
        assert!(empty.is_empty(), "{c}");
    }
}

#[test]
fn decoders_stop_exactly_at_the_segment_end() {
    let data = sample(50_000);
    for c in COMPRESSED {
        let segment = system_compress(c, &data);
        let next = system_compress(c, b"second segment");
        let mut trailers: Vec<Vec<u8>> = vec![
            vec![0; 4],
            vec![0; 512],
            [vec![0; 4], b"07070100000000".to_vec()].concat(),
            [vec![0; 8], next.clone()].concat(),
        ];
        if c != Compression::Lz4 {
            // Only lz4 legacy needs zero padding to find its end.
            trailers.push(b"GARBAGE!".to_vec());
            trailers.push(b"07070100000000".to_vec());
            trailers.push(next.clone());
        }
        for trailer in trailers {
            let image = [segment.clone(), trailer.clone()].concat();
            let (out, end) = decode(c, &image, u64::MAX)
                .unwrap_or_else(|e| panic!("{c} + {:02x?}: {e}", &trailer[..4]));
            assert_eq!(out, data, "{c}");
            assert_eq!(end, segment.len(), "{c} followed by {:02x?}", &trailer[..4]);
        }
        // A 3-byte BufReader splits every header, block and word across refills.
        let image = [segment.clone(), vec![0; 16], b"07070100".to_vec()].concat();
        let mut reader = io::BufReader::with_capacity(3, Cursor::new(&image));
        let mut out = Vec::new();
        decoder(c, &mut reader, u64::MAX)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data, "{c} through a tiny buffer");
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert!(
            rest.ends_with(b"07070100") && rest.len() >= 24 - 4,
            "{c}: {}",
            rest.len()
        );
    }
}

#[test]
fn lz4_followed_by_lz4_is_one_segment_like_the_kernel() {
    let image = [
        system_compress(Compression::Lz4, b"one "),
        encode(Compression::Lz4, b"two", None),
    ]
    .concat();
    let (out, end) = decode(Compression::Lz4, &image, u64::MAX).unwrap();
    assert_eq!((out.as_slice(), end), (&b"one two"[..], image.len()));
}

#[test]
fn multi_member_gzip_reads_one_member_per_segment() {
    let image = [
        system_compress(Compression::Gzip, b"first"),
        system_compress(Compression::Gzip, b"second"),
    ]
    .concat();
    let (first, end) = decode(Compression::Gzip, &image, u64::MAX).unwrap();
    assert_eq!(first, b"first");
    let (second, _) = decode(Compression::Gzip, &image[end..], u64::MAX).unwrap();
    assert_eq!(second, b"second");
}

#[test]
fn gzip_with_a_file_name_is_accepted_like_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("initrd.cpio");
    std::fs::write(&path, b"named payload").unwrap();
    let packed = run_tool("gzip", &["-c", path.to_str().unwrap()], b"");
    assert_eq!(packed[3] & GZIP_FNAME, GZIP_FNAME, "gzip stored the name");
    let (out, end) = decode(Compression::Gzip, &packed, u64::MAX).unwrap();
    assert_eq!((out.as_slice(), end), (&b"named payload"[..], packed.len()));
}

#[test]
fn gzip_headers_the_kernel_cannot_parse_are_rejected() {
    let mut extra = encode(Compression::Gzip, b"data", None);
    extra[3] |= GZIP_FEXTRA;
    let err = decode(Compression::Gzip, &extra, u64::MAX).unwrap_err();
    assert!(
        matches!(
            codec_error(&err),
            CodecError::KernelRejects { offset: 3, .. }
        ),
        "{err}"
    );
    let mut pack = encode(Compression::Gzip, b"data", None);
    pack[1] = 0x9e;
    assert_eq!(detect(&pack), Some(Compression::Gzip));
    let err = decode(Compression::Gzip, &pack, u64::MAX).unwrap_err();
    assert!(err.to_string().contains("Not a gzip file"), "{err}");
    let mut bad_crc = encode(Compression::Gzip, b"data", None);
    let at = bad_crc.len() - 8;
    bad_crc[at] ^= 1;
    let err = decode(Compression::Gzip, &bad_crc, u64::MAX).unwrap_err();
    assert!(
        matches!(codec_error(&err), CodecError::Corrupt { offset, .. } if *offset == at as u64),
        "{err}"
    );
}

#[test]
fn we_decode_what_the_system_tools_write() {
    let data = sample(200_000);
    for c in COMPRESSED {
        let packed = system_compress(c, &data);
        assert_eq!(detect(&packed), Some(c));
        let (out, end) = decode(c, &packed, u64::MAX).unwrap();
        assert_eq!(out, data, "{c}");
        assert_eq!(end, packed.len(), "{c}");
    }
}

#[test]
fn xz_checks_the_kernel_lacks_are_rejected() {
    for (check, name) in [("crc64", "CRC64"), ("sha256", "SHA-256")] {
        let packed = run_tool("xz", &[&format!("--check={check}"), "-c"], b"data");
        let err = decode(Compression::Xz, &packed, u64::MAX).unwrap_err();
        assert!(
            matches!(
                codec_error(&err),
                CodecError::KernelRejects { offset: 6, .. }
            ),
            "{err}"
        );
        assert!(err.to_string().contains(name), "{err}");
        assert!(err.to_string().contains("--check=crc32"), "{err}");
    }
    let none = run_tool("xz", &["--check=none", "-c"], b"data");
    assert_eq!(decode(Compression::Xz, &none, u64::MAX).unwrap().0, b"data");
}

#[test]
fn zstd_windows_over_128_mib_are_rejected() {
    let packed = run_tool("zstd", &["-q", "--long=28", "-c"], &sample(1000));
    let err = decode(Compression::Zstd, &packed, u64::MAX).unwrap_err();
    assert!(
        matches!(codec_error(&err), CodecError::Corrupt { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("128 MiB"), "{err}");
}

/// Window size from a zstd frame header (RFC 8878 3.1.1.1).
fn zstd_window_size(frame: &[u8]) -> u64 {
    let descriptor = frame[4];
    let single_segment = descriptor & 0x20 != 0;
    if !single_segment {
        let wd = frame[5];
        let base = 1u64 << (10 + (wd >> 3));
        return base + (base / 8) * u64::from(wd & 7);
    }
    let did_len = [0, 1, 2, 4][usize::from(descriptor & 3)];
    let fcs_len = [1, 2, 4, 8][usize::from(descriptor >> 6)];
    let at = 5 + did_len;
    let mut fcs = [0u8; 8];
    fcs[..fcs_len].copy_from_slice(&frame[at..at + fcs_len]);
    u64::from_le_bytes(fcs) + if fcs_len == 2 { 256 } else { 0 }
}

#[test]
fn system_tools_decode_what_we_write() {
    let data = sample(400_000);
    let dir = tempfile::tempdir().unwrap();
    for c in [
        Compression::Gzip,
        Compression::Xz,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let packed = encode(c, &data, None);
        let (tool, args) = c.tool().split_once(' ').unwrap();
        assert_eq!(run_tool(tool, &[args], &packed), data, "{c}");
    }
    // xz: CRC32 check, one stream, LZMA2 only.
    let path = dir.path().join("seg.xz");
    std::fs::write(&path, encode(Compression::Xz, &data, None)).unwrap();
    let listing = String::from_utf8(run_tool(
        "xz",
        &["--robot", "-lvv", path.to_str().unwrap()],
        b"",
    ))
    .unwrap();
    let stream_lines: Vec<_> = listing
        .lines()
        .filter(|l| l.starts_with("stream\t"))
        .collect();
    assert_eq!(stream_lines.len(), 1, "{listing}");
    assert!(stream_lines[0].contains("\tCRC32\t"), "{listing}");
    for block in listing.lines().filter(|l| l.starts_with("block\t")) {
        assert!(block.ends_with("--lzma2=dict=8MiB"), "LZMA2 only: {block}");
    }
    // zstd: exactly one frame, window within the kernel limit, at the default and at 19.
    for level in [None, Some(19)] {
        let packed = encode(Compression::Zstd, &data, level);
        assert_eq!(
            zstd::zstd_safe::find_frame_compressed_size(&packed).unwrap(),
            packed.len(),
            "one frame"
        );
        let window = zstd_window_size(&packed);
        assert!(
            window <= 1 << ZSTD_KERNEL_MAX_WINDOW_LOG,
            "{level:?}: {window}"
        );
        let path = dir.path().join("seg.zst");
        std::fs::write(&path, &packed).unwrap();
        let listing =
            String::from_utf8(run_tool("zstd", &["-lv", path.to_str().unwrap()], b"")).unwrap();
        assert!(listing.contains("# Zstandard Frames: 1"), "{listing}");
    }
    // gzip: exactly one member with no optional header fields.
    let packed = encode(Compression::Gzip, &data, None);
    assert_eq!(&packed[..4], &[0x1f, 0x8b, 0x08, 0x00]);
}

#[test]
fn cap_is_enforced_for_every_codec() {
    let data = vec![b'x'; 1 << 20];
    for c in Compression::VARIANTS.iter().copied() {
        let packed = if c.can_write() {
            encode(c, &data, None)
        } else {
            system_compress(c, &data)
        };
        let err = decode(c, &packed, 1000).unwrap_err();
        assert!(
            matches!(
                codec_error(&err),
                CodecError::OutputTooLarge { cap: 1000, .. }
            ),
            "{c}: {err}"
        );
        let (out, _) = decode(c, &packed, data.len() as u64).unwrap();
        assert_eq!(
            out.len(),
            data.len(),
            "{c}: a cap equal to the size is fine"
        );
    }
}

/// Codecs whose integrity check guarantees a damaged stream never decodes to other data.
fn has_integrity_check(c: Compression) -> bool {
    matches!(
        c,
        Compression::Gzip | Compression::Bzip2 | Compression::Xz | Compression::Zstd
    )
}

#[test]
fn mutated_streams_give_typed_errors_never_panics() {
    let data = sample(20_000);
    for c in COMPRESSED {
        let packed = system_compress(c, &data);
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut errors = 0;
        for round in 0..300 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut mutated = packed.clone();
            if round % 3 == 0 {
                mutated.truncate((state as usize) % packed.len());
            } else {
                let at = (state as usize) % packed.len();
                mutated[at] ^= 1 << ((state >> 32) % 8);
            }
            match decode(c, &mutated, 4 * data.len() as u64) {
                Ok((out, _)) => {
                    if has_integrity_check(c) {
                        assert_eq!(out, data, "{c} round {round}: damage went unnoticed");
                    }
                    if round % 3 == 0 && c != Compression::Lz4 {
                        panic!("{c}: a truncated stream decoded (round {round})");
                    }
                }
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{c}: {e}");
                    let _ = codec_error(&e);
                    errors += 1;
                }
            }
        }
        assert!(errors > 100, "{c}: only {errors} of 300 mutations detected");
    }
}

#[test]
fn truncation_is_reported_as_truncated() {
    let data = sample(20_000);
    for c in COMPRESSED {
        let packed = system_compress(c, &data);
        let err = decode(c, &packed[..packed.len() / 2], u64::MAX).unwrap_err();
        assert!(
            matches!(codec_error(&err), CodecError::Truncated { .. }),
            "{c}: {err}"
        );
    }
}

#[test]
fn encoder_refuses_what_it_cannot_write() {
    for c in [Compression::Bzip2, Compression::Lzma] {
        let err = encoder(c, Vec::new(), None).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(matches!(codec_error(&err), CodecError::CannotWrite(x) if *x == c.as_str()));
    }
    for (c, level) in [
        (Compression::Gzip, 10),
        (Compression::Xz, 10),
        (Compression::Zstd, 0),
        (Compression::Zstd, 23),
        (Compression::Lz4, 9),
    ] {
        let err = encoder(c, Vec::new(), Some(level)).err().unwrap();
        assert!(
            matches!(codec_error(&err), CodecError::BadLevel { level: l, .. } if *l == level),
            "{c} {level}"
        );
    }
}

#[test]
fn parallel_gzip_members_concatenate_in_order() {
    let data = sample(1_000_000);
    let chunks: Vec<&[u8]> = data.chunks(150_000).collect();
    for threads in [1, 2, 16] {
        let mut out = Vec::new();
        gzip_members_parallel(&chunks, 6, threads, &mut out).unwrap();
        assert_eq!(run_tool("gzip", &["-dc"], &out), data, "{threads} threads");
        let mut at = 0;
        for chunk in &chunks {
            let (member, used) = decode(Compression::Gzip, &out[at..], u64::MAX).unwrap();
            assert_eq!(&member, chunk);
            at += used;
        }
        assert_eq!(at, out.len());
    }
    let mut empty = Vec::new();
    gzip_members_parallel(&[], 6, 2, &mut empty).unwrap();
    assert!(empty.is_empty());
    let err = gzip_members_parallel(&chunks, 11, 2, &mut Vec::new()).unwrap_err();
    assert!(matches!(
        codec_error(&err),
        CodecError::BadLevel { level: 11, .. }
    ));
}

#[test]
fn consumed_counter_tracks_segment_length() {
    let segment = encode(Compression::Zstd, b"counted", None);
    let image = [segment.clone(), vec![0; 4]].concat();
    let counter = ConsumedCounter::default();
    let mut out = Vec::new();
    decoder(
        Compression::Zstd,
        counter.wrap(Cursor::new(&image)),
        u64::MAX,
    )
    .read_to_end(&mut out)
    .unwrap();
    assert_eq!(
        (out.as_slice(), counter.get()),
        (&b"counted"[..], segment.len() as u64)
    );
}

/// `err`'s codec error has the library's error as its source, and `error_chain` says it once.
fn assert_library_cause_once(err: &io::Error) {
    let codec = codec_error(err);
    let cause = std::error::Error::source(codec)
        .unwrap_or_else(|| panic!("no library error under {codec}"))
        .to_string();
    let chain = crate::error_chain(err);
    assert_eq!(chain.matches(&cause).count(), 1, "{chain}");
}

#[test]
fn a_library_error_is_the_codec_errors_source_said_once() {
    // A gzip header, then bytes that are no deflate stream: flate2's error.
    let mut gzip = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    gzip.extend_from_slice(&[0xff; 64]);
    let err = decode(Compression::Gzip, &gzip, u64::MAX).unwrap_err();
    assert!(
        matches!(codec_error(&err), CodecError::Corrupt { offset: 11, .. }),
        "{err}"
    );
    assert_library_cause_once(&err);
    // A bzip2 stream with a damaged block: libbz2's error.
    let mut bz = Vec::new();
    {
        let mut w = bzip2::write::BzEncoder::new(&mut bz, bzip2::Compression::best());
        w.write_all(&sample(20_000)).unwrap();
        w.finish().unwrap();
    }
    bz[20] ^= 0x55;
    let err = decode(Compression::Bzip2, &bz, u64::MAX).unwrap_err();
    assert_library_cause_once(&err);
}
