//! Round-trip properties, behaviour at archive seams, and a bounded mutation sweep.

use super::*;
use proptest::prelude::*;

fn write_all(entries: &[Entry]) -> Vec<u8> {
    let mut writer = Writer::new(Vec::new());
    for entry in entries {
        writer.write_entry(entry).unwrap();
    }
    writer.into_inner()
}

/// The check `write_entry` stores, so expected entries can be compared with what is read back.
fn with_written_check(mut entry: Entry) -> Entry {
    entry.header.check = if entry.header.format == Format::Crc && entry.kind() == Kind::Regular {
        checksum(&entry.data)
    } else {
        0
    };
    entry
}

fn entry(format: Format, mode: u32, name: &[u8], data: &[u8]) -> Entry {
    with_written_check(Entry {
        header: Header {
            format,
            ino: 700 + name.len() as u32,
            mode,
            uid: 1000,
            gid: 100,
            nlink: 1,
            mtime: 1_234_567_891,
            dev_major: 8,
            dev_minor: 3,
            ..Header::default()
        },
        name: name.to_vec(),
        data: data.to_vec(),
    })
}

const TYPE_BITS: [u32; 8] = [
    0o100000, 0o040000, 0o120000, 0o020000, 0o060000, 0o010000, 0o140000, 0,
];

fn arb_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..48),
        "[ ./a-zA-Z0-9_äöü日本語-]{1,40}".prop_map(String::into_bytes),
        Just(b"./usr/lib/modules/6.1.0/kernel/a b/c\xff\xfe.ko".to_vec()),
    ]
}

fn arb_data(type_bits: u32) -> BoxedStrategy<Vec<u8>> {
    match type_bits {
        0o100000 => prop_oneof![
            4 => prop::collection::vec(any::<u8>(), 0..300),
            1 => (1usize..200_000, any::<u8>()).prop_map(|(len, seed)| {
                (0..len).map(|i| (i as u8).wrapping_mul(seed) ^ (i >> 8) as u8).collect()
            }),
        ]
        .boxed(),
        0o120000 => prop::collection::vec(1u8..=255, 1..100).boxed(),
        // Devices, directories and the like carry no data, but "as stored" means any.
        _ => prop_oneof![9 => Just(Vec::new()), 1 => prop::collection::vec(any::<u8>(), 1..9)]
            .boxed(),
    }
}

prop_compose! {
    fn arb_header(type_bits: u32)(format in prop_oneof![Just(Format::Newc), Just(Format::Crc)],
        perm in 0u32..0o10000, ino in any::<u32>(), uid in any::<u32>(), gid in any::<u32>(),
        nlink in any::<u32>(), mtime in any::<u32>(), dev in any::<(u32, u32)>(),
        rdev in any::<(u32, u32)>()) -> Header {
        Header { format, ino, mode: type_bits | perm, uid, gid, nlink, mtime, dev_major: dev.0,
            dev_minor: dev.1, rdev_major: rdev.0, rdev_minor: rdev.1, check: 0 }
    }
}

/// One entry, or a GNU-style hardlink group: same ino and nlink, data on the last link only.
fn arb_group() -> impl Strategy<Value = Vec<Entry>> {
    prop::sample::select(TYPE_BITS.to_vec())
        .prop_flat_map(|bits| (arb_header(bits), arb_name(), arb_data(bits), 1usize..4))
        .prop_map(|(header, name, data, links)| {
            (0..links)
                .map(|i| {
                    let mut header = header.clone();
                    if links > 1 {
                        header.nlink = links as u32;
                    }
                    let mut name = name.clone();
                    if i > 0 {
                        name.extend_from_slice(format!(".link{i}").as_bytes());
                    }
                    let data = if i + 1 == links {
                        data.clone()
                    } else {
                        Vec::new()
                    };
                    with_written_check(Entry { header, name, data })
                })
                .collect()
        })
}

/// Several archives, each closed by a trailer, separated by NUL words (as concatenated initrds).
fn arb_archives() -> impl Strategy<Value = (Vec<Vec<Entry>>, Vec<usize>)> {
    let archive = prop::collection::vec(arb_group(), 0..8)
        .prop_map(|groups| groups.into_iter().flatten().collect::<Vec<_>>());
    (
        prop::collection::vec(archive, 1..3),
        prop::collection::vec(0usize..3, 3),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn write_then_read_is_identity((archives, nul_words) in arb_archives()) {
        let mut writer = Writer::new(Vec::new());
        let mut expected = Vec::new();
        for (archive, words) in archives.iter().zip(nul_words) {
            for entry in archive {
                writer.write_entry(entry).unwrap();
                expected.push(entry.clone());
            }
            writer.write_trailer().unwrap();
            let mut trailer = Entry::trailer();
            trailer.header.format = archive.last().map_or(Format::Newc, |e| e.header.format);
            expected.push(trailer);
            prop_assert_eq!(writer.position() % 4, 0);
            let mut bytes = writer.into_inner();
            bytes.extend(std::iter::repeat_n(0, 4 * words));
            let position = bytes.len() as u64;
            writer = Writer::with_offset(bytes, position);
        }
        let bytes = writer.into_inner();
        prop_assert_eq!(&read_all(&bytes).unwrap(), &expected);

        // skip_entry agrees, minus regular files' data; byte-at-a-time input changes nothing.
        let mut reader = Reader::new(OneByte(&bytes));
        for want in &expected {
            let (got, len) = reader.skip_entry().unwrap().unwrap();
            prop_assert_eq!(len, want.data.len() as u64);
            let mut want = want.clone();
            if want.kind() == Kind::Regular {
                want.data.clear();
            }
            prop_assert_eq!(got, want);
        }
        prop_assert!(reader.skip_entry().unwrap().is_none());
        prop_assert_eq!(reader.position(), bytes.len() as u64);
    }

    #[test]
    fn raw_write_keeps_any_unverified_check(check in 1u32.., bits in prop::sample::select(TYPE_BITS[1..].to_vec())) {
        let mut original = entry(Format::Crc, bits | 0o644, b"x", b"");
        original.header.check = check;
        let mut writer = Writer::new(Vec::new());
        writer.write_entry_raw(&original).unwrap();
        let bytes = writer.into_inner();
        prop_assert_eq!(read_all(&bytes).unwrap(), vec![original]);
    }
}

/// A reader that hands out one byte per call, to exercise every partial-read path.
struct OneByte<'a>(&'a [u8]);

impl std::io::Read for OneByte<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((&b, rest)), Some(slot)) => {
                *slot = b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

#[test]
fn writes_what_gnu_cpio_writes_for_a_file_and_trailer() {
    let mut writer = Writer::new(Vec::new());
    writer
        .write_entry(&entry(Format::Crc, 0o100644, b"f", b"hi\n"))
        .unwrap();
    writer.write_trailer().unwrap();
    let bytes = writer.into_inner();
    let expected_header = b"070702000002BD000081A4000003E80000006400000001499602D30000000300000008000000030000000000000000000000020000\
00DB";
    assert_eq!(&bytes[..110], &expected_header[..]);
    assert_eq!(&bytes[110..116], b"f\0hi\n\0");
    // Trailer in the last entry's format, nlink 1, at offset 116, padded to 4.
    assert_eq!(&bytes[116..122], b"070702");
    assert_eq!(&bytes[116 + 38..116 + 46], b"00000001");
    assert_eq!(&bytes[116 + 110..], b"TRAILER!!!\0\0\0\0");
    assert_eq!(bytes.len() % 4, 0);
}

#[test]
fn nul_runs_between_and_after_archives_are_skipped() {
    let one = write_all(&[entry(Format::Newc, 0o40755, b"d", b""), Entry::trailer()]);
    let mut bytes = one.clone();
    bytes.extend([0; 512]);
    bytes.extend(&one);
    bytes.extend([0; 7]); // an unaligned NUL tail still ends cleanly, as in the kernel
    let entries = read_all(&bytes).unwrap();
    assert_eq!(entries.len(), 4);
    assert!(entries[1].is_trailer() && entries[3].is_trailer());
}

#[test]
fn misaligned_header_after_nuls_is_broken_padding() {
    let one = write_all(&[Entry::trailer()]);
    let mut bytes = one.clone();
    bytes.extend([0; 2]);
    bytes.extend(&one);
    let err = read_all(&bytes).unwrap_err();
    assert_eq!(err.offset, one.len() as u64 + 2);
    assert!(matches!(
        err.kind,
        CpioErrorKind::Padding { found: b'0', .. }
    ));
    assert!(err.to_string().contains("broken padding"), "{err}");
}

#[test]
fn peek_after_trailer_shows_a_following_compressed_segment() {
    let mut bytes = write_all(&[
        entry(Format::Newc, 0o100600, b"early/ucode", b"x"),
        Entry::trailer(),
    ]);
    let cpio_len = bytes.len();
    bytes.extend([0; 8]);
    bytes.extend([0x1f, 0x8b, 0x08, 0x00, 0xaa, 0xbb]);
    let mut reader = Reader::new(&bytes[..]);
    assert!(!reader.next_entry().unwrap().unwrap().is_trailer());
    assert!(reader.next_entry().unwrap().unwrap().is_trailer());
    assert_eq!(
        reader.peek_after_padding().unwrap(),
        Some(&[0x1f, 0x8b, 0x08, 0x00][..])
    );
    assert_eq!(reader.position(), cpio_len as u64 + 8);
    let (held, rest) = reader.into_parts();
    assert_eq!(
        [held.as_slice(), rest].concat(),
        [0x1f, 0x8b, 0x08, 0x00, 0xaa, 0xbb]
    );

    let mut at_end = Reader::new(&bytes[..cpio_len + 3]);
    while at_end.next_entry().unwrap().is_some() {}
    assert_eq!(at_end.peek_after_padding().unwrap(), None);
}

#[test]
fn old_portable_magic_names_the_kernel_message() {
    let mut bytes = write_all(&[Entry::trailer()]);
    bytes[..6].copy_from_slice(b"070707");
    let err = read_all(&bytes).unwrap_err();
    assert_eq!(err.offset, 0);
    assert!(err.to_string().contains("found \"070707\""), "{err}");
    assert!(err.to_string().contains("use -H newc option"), "{err}");
    let err = read_all(b"\x1f\x8b\x08\x00").unwrap_err();
    assert!(
        err.to_string()
            .contains("expected magic 070701 or 070702, found \"\\x1f\\x8b\\x08\\x00\""),
        "{err}"
    );
}

#[test]
fn checksum_mismatch_names_entry_and_data_offset() {
    let mut bytes = write_all(&[entry(Format::Crc, 0o100644, b"etc/x", b"abc")]);
    let data_at = bytes.len() - 4;
    bytes[data_at] = b'A';
    let err = read_all(&bytes).unwrap_err();
    assert_eq!(err.offset, data_at as u64);
    let CpioErrorKind::ChecksumMismatch {
        name,
        stored,
        computed,
    } = &err.kind
    else {
        panic!("{err}")
    };
    assert_eq!((name.as_str(), *stored, *computed), ("etc/x", 0x126, 0x106));
    // skip_entry verifies too.
    assert_eq!(
        Reader::new(&bytes[..]).skip_entry().unwrap_err().offset,
        data_at as u64
    );
}

#[test]
fn nul_padded_names_keep_their_bytes_and_still_end_an_archive() {
    let mut trailer = Entry::trailer();
    trailer.name.extend([0, 0, 0]);
    let entries = read_all(&write_all(&[trailer.clone()])).unwrap();
    assert_eq!(entries[0].name, trailer.name);
    assert_eq!(entries[0].c_name(), TRAILER);
    assert!(entries[0].is_trailer());
}

#[test]
fn writer_refuses_names_the_reader_would_reject() {
    let mut writer = Writer::new(Vec::new());
    let long = entry(Format::Newc, 0o100644, &[b'a'; 4096], b"");
    assert_eq!(
        writer.write_entry(&long).unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
    assert_eq!(writer.position(), 0);
    let longest = entry(Format::Newc, 0o100644, &[b'a'; 4095], b"");
    writer.write_entry(&longest).unwrap();
    assert_eq!(read_all(&writer.into_inner()).unwrap(), vec![longest]);
}

#[test]
fn data_larger_than_one_read_step_round_trips_and_verifies() {
    let len = (reader::DATA_STEP + 5) as usize;
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let big = entry(Format::Crc, 0o100644, b"big", &data);
    let bytes = write_all(std::slice::from_ref(&big));
    assert_eq!(read_all(&bytes).unwrap(), vec![big.clone()]);
    let (skipped, skipped_len) = Reader::new(&bytes[..]).skip_entry().unwrap().unwrap();
    assert_eq!((skipped.data.len(), skipped_len), (0, len as u64));
    let err = read_all(&bytes[..bytes.len() - 9]).unwrap_err();
    assert_eq!(err.offset, 116);
    assert!(
        err.to_string().contains(&format!(
            "truncated: expected {len} bytes of file data for \"big\", stream ends after {}",
            len - 6
        )),
        "{err}"
    );
}

/// Where each part of each entry starts, as written.
struct Layout {
    header: u64,
    name: u64,
    name_pad: u64,
    data: u64,
    data_pad: u64,
    end: u64,
    verified: bool,
}

fn mutation_base() -> (Vec<u8>, Vec<Layout>, Vec<std::ops::Range<u64>>) {
    let entries = [
        entry(Format::Newc, 0o40755, b".", b""),
        entry(Format::Newc, 0o104755, b"./bin/su", b"\x7fELF setuid"),
        entry(Format::Newc, 0o120777, b"bin/sh", b"busybox"),
        entry(Format::Newc, 0o20620, b"dev/tty1", b""),
        entry(
            Format::Crc,
            0o100644,
            b"etc/hosts",
            b"127.0.0.1 localhost\n",
        ),
        entry(Format::Crc, 0o10644, b"run/fifo", b""),
        Entry::trailer(),
    ];
    let mut writer = Writer::new(Vec::new());
    let mut layouts = Vec::new();
    let mut nul_runs = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let header = writer.position();
        writer.write_entry(entry).unwrap();
        let name = header + 110;
        let name_pad = name + entry.name.len() as u64 + 1;
        let data = (name_pad + 3) & !3;
        let data_pad = data + entry.data.len() as u64;
        let verified = entry.header.format == Format::Crc && entry.kind() == Kind::Regular;
        layouts.push(Layout {
            header,
            name,
            name_pad,
            data,
            data_pad,
            end: writer.position(),
            verified,
        });
        if i == 2 {
            // A NUL run between archives, as between concatenated initrd segments.
            let mut bytes = writer.into_inner();
            let start = bytes.len() as u64;
            bytes.extend([0; 8]);
            nul_runs.push(start..start + 8);
            writer = Writer::with_offset(bytes, start + 8);
        }
    }
    (writer.into_inner(), layouts, nul_runs)
}

/// Reads `bytes` with both entry paths; both must agree on the outcome and neither may panic.
fn read_both_ways(bytes: &[u8]) -> Result<usize, CpioError> {
    let full = read_all(bytes);
    let mut reader = Reader::new(bytes);
    let mut skipped = 0;
    let skip = loop {
        match reader.skip_entry() {
            Ok(Some(_)) => skipped += 1,
            Ok(None) => break Ok(skipped),
            Err(e) => break Err(e),
        }
    };
    match (&full, &skip) {
        (Ok(entries), Ok(count)) => assert_eq!(entries.len(), *count),
        (Err(a), Err(b)) => assert_eq!((a.offset, a.to_string()), (b.offset, b.to_string())),
        _ => panic!("read_all {full:?} disagrees with skip_entry {skip:?}"),
    }
    full.map(|entries| entries.len())
}

#[test]
fn every_truncation_is_ok_on_a_boundary_else_located() {
    let (bytes, layouts, nul_runs) = mutation_base();
    let mut cases = 0;
    for cut in 0..=bytes.len() as u64 {
        let result = read_both_ways(&bytes[..cut as usize]);
        cases += 1;
        let on_boundary = layouts.iter().any(|l| l.header == cut || l.end == cut)
            || nul_runs.iter().any(|r| r.contains(&cut));
        if on_boundary {
            assert!(result.is_ok(), "cut {cut}: {result:?}");
            continue;
        }
        let layout = layouts
            .iter()
            .find(|l| l.header < cut && cut < l.end)
            .unwrap();
        let part_start = [
            layout.header,
            layout.name,
            layout.name_pad,
            layout.data,
            layout.data_pad,
        ]
        .into_iter()
        .filter(|&start| start <= cut)
        .max()
        .unwrap();
        let err = result.unwrap_err();
        assert!(
            matches!(err.kind, CpioErrorKind::Truncated { .. }),
            "cut {cut}: {err}"
        );
        assert_eq!(err.offset, part_start, "cut {cut}: {err}");
    }
    assert_eq!(cases, bytes.len() + 1);
}

#[test]
fn every_single_bit_flip_is_ok_or_a_located_error() {
    let (bytes, layouts, nul_runs) = mutation_base();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for at in 0..bytes.len() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut mutated = bytes.clone();
        mutated[at] ^= 1 << (seed % 8);
        let result = read_both_ways(&mutated);
        let at = at as u64;
        if nul_runs.iter().any(|r| r.contains(&at)) {
            assert_eq!(result.unwrap_err().offset, at);
            continue;
        }
        let l = layouts
            .iter()
            .find(|l| l.header <= at && at < l.end)
            .unwrap();
        if at < l.header + 6 {
            let err = result.unwrap_err();
            assert!(
                matches!(err.kind, CpioErrorKind::BadMagic { .. }),
                "{at}: {err}"
            );
            assert_eq!(err.offset, l.header);
        } else if at < l.name {
            // A digit that stays hex may shift later parts: anything but a panic is fine then.
            if !(mutated[at as usize] as char).is_ascii_hexdigit() {
                let err = result.unwrap_err();
                let field_start = l.header + 6 + (at - l.header - 6) / 8 * 8;
                assert!(
                    matches!(err.kind, CpioErrorKind::BadField { .. }),
                    "{at}: {err}"
                );
                assert_eq!(err.offset, field_start);
            }
        } else if at < l.name_pad - 1 {
            assert!(result.is_ok(), "{at}: {result:?}");
        } else if at == l.name_pad - 1 {
            let err = result.unwrap_err();
            assert!(
                matches!(err.kind, CpioErrorKind::NameNotTerminated { .. }),
                "{at}: {err}"
            );
            assert_eq!(err.offset, at);
        } else if at < l.data || at >= l.data_pad {
            let err = result.unwrap_err();
            assert!(
                matches!(err.kind, CpioErrorKind::Padding { .. }),
                "{at}: {err}"
            );
            assert_eq!(err.offset, at);
        } else if l.verified {
            let err = result.unwrap_err();
            assert!(
                matches!(err.kind, CpioErrorKind::ChecksumMismatch { .. }),
                "{at}: {err}"
            );
            assert_eq!(err.offset, l.data);
        } else {
            assert!(result.is_ok(), "{at}: {result:?}");
        }
    }
}

#[test]
fn zeroed_and_maxed_header_fields_are_ok_or_located() {
    let (bytes, layouts, _) = mutation_base();
    let mut cases = 0;
    for l in &layouts {
        for field in 0..13u64 {
            for fill in [b"00000000", b"FFFFFFFF"] {
                let at = l.header + 6 + field * 8;
                let mut mutated = bytes.clone();
                mutated[at as usize..at as usize + 8].copy_from_slice(fill);
                let unchanged = mutated == bytes;
                let result = read_both_ways(&mutated);
                cases += 1;
                let maxed = fill == b"FFFFFFFF";
                match field {
                    _ if unchanged => assert!(result.is_ok()),
                    // c_filesize: maxed runs off the end; zeroed makes the data a bad header.
                    6 => assert!(result.unwrap_err().offset >= l.data),
                    // c_namesize: zeroed is empty; maxed is over PATH_MAX, so the entry is
                    // skipped as the kernel does, and the skip runs off the end of the name.
                    11 => {
                        let err = result.unwrap_err();
                        if maxed {
                            assert_eq!(err.offset, l.header + 110);
                            assert!(
                                matches!(err.kind, CpioErrorKind::Truncated { expected, .. } if expected == u64::from(u32::MAX)),
                                "{err}"
                            );
                        } else {
                            assert_eq!(err.offset, at);
                            assert!(matches!(err.kind, CpioErrorKind::EmptyName), "{err}");
                        }
                    }
                    12 if l.verified => assert_eq!(result.unwrap_err().offset, l.data),
                    // Mode turns the checked file into another kind: the check is then not verified.
                    _ => assert!(result.is_ok(), "field {field} at {at}: {result:?}"),
                }
            }
        }
    }
    assert_eq!(cases, layouts.len() * 26);
}

#[test]
fn random_garbage_never_panics() {
    let mut seed = 42u64;
    let (base, _, _) = mutation_base();
    for round in 0..2000 {
        let mut bytes = base.clone();
        for _ in 0..1 + round % 6 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = (seed >> 33) as usize % bytes.len();
            bytes[at] = match seed % 4 {
                0 => b'F',
                1 => 0,
                2 => b'0' + (seed >> 20) as u8 % 10,
                _ => (seed >> 40) as u8,
            };
        }
        let cut = if round % 3 == 0 {
            (seed >> 17) as usize % bytes.len()
        } else {
            bytes.len()
        };
        if let Err(err) = read_both_ways(&bytes[..cut]) {
            assert!(err.offset <= cut as u64, "{err}");
            assert!(!err.to_string().is_empty());
        }
    }
}
