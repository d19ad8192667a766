//! The 110-byte newc header: magic and 13 fields of 8 ASCII hex digits.

use super::{CpioError, CpioErrorKind, Format, Header};

pub(crate) const HEADER_LEN: usize = 110;
const MAGIC_LEN: usize = 6;
const FIELD_LEN: usize = 8;

/// Field names as in cpio(5), in header order.
const FIELD_NAMES: [&str; 13] = [
    "c_ino",
    "c_mode",
    "c_uid",
    "c_gid",
    "c_nlink",
    "c_mtime",
    "c_filesize",
    "c_devmajor",
    "c_devminor",
    "c_rdevmajor",
    "c_rdevminor",
    "c_namesize",
    "c_check",
];

/// Offset of `c_namesize` within a header (for errors about it).
pub(crate) const NAMESIZE_OFFSET: u64 = (MAGIC_LEN + 11 * FIELD_LEN) as u64;

/// A parsed header with the two sizes that the `Entry` derives from its name and data.
pub(crate) struct Parsed {
    pub header: Header,
    pub filesize: u32,
    pub namesize: u32,
}

/// The format whose magic starts `bytes`, if any.
pub(crate) fn format_of(bytes: &[u8]) -> Option<Format> {
    [Format::Newc, Format::Crc]
        .into_iter()
        .find(|format| bytes.starts_with(format.magic()))
}

/// Parses a header whose magic was already checked; `start` is its stream offset, for errors.
pub(crate) fn parse(
    bytes: &[u8; HEADER_LEN],
    format: Format,
    start: u64,
) -> Result<Parsed, CpioError> {
    let mut fields = [0u32; 13];
    for (i, field) in fields.iter_mut().enumerate() {
        let at = MAGIC_LEN + i * FIELD_LEN;
        let text = &bytes[at..at + FIELD_LEN];
        *field = parse_hex(text).ok_or_else(|| {
            CpioError::new(
                start + at as u64,
                CpioErrorKind::BadField {
                    field: FIELD_NAMES[i],
                    text: String::from_utf8_lossy(text).into_owned(),
                },
            )
        })?;
    }
    let [ino, mode, uid, gid, nlink, mtime, filesize, dev_major, dev_minor, rdev_major, rdev_minor, namesize, check] =
        fields;
    Ok(Parsed {
        header: Header {
            format,
            ino,
            mode,
            uid,
            gid,
            nlink,
            mtime,
            dev_major,
            dev_minor,
            rdev_major,
            rdev_minor,
            check,
        },
        filesize,
        namesize,
    })
}

/// Exactly 8 hex digits, either case (GNU cpio and the kernel's gen_init_cpio write upper case).
fn parse_hex(text: &[u8]) -> Option<u32> {
    text.iter().try_fold(0u32, |value, &digit| {
        let nibble = (digit as char).to_digit(16)?;
        Some(value << 4 | nibble)
    })
}

/// Encodes a header in upper-case hex, as GNU cpio does.
pub(crate) fn encode(
    header: &Header,
    filesize: u32,
    namesize: u32,
    check: u32,
) -> [u8; HEADER_LEN] {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let fields = [
        header.ino,
        header.mode,
        header.uid,
        header.gid,
        header.nlink,
        header.mtime,
        filesize,
        header.dev_major,
        header.dev_minor,
        header.rdev_major,
        header.rdev_minor,
        namesize,
        check,
    ];
    let mut out = [0u8; HEADER_LEN];
    out[..MAGIC_LEN].copy_from_slice(header.format.magic());
    for (i, value) in fields.into_iter().enumerate() {
        let at = MAGIC_LEN + i * FIELD_LEN;
        for (j, slot) in out[at..at + FIELD_LEN].iter_mut().enumerate() {
            let shift = 4 * (FIELD_LEN - 1 - j);
            *slot = DIGITS[(value >> shift) as usize & 0xf];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_parse_is_identity() {
        let header = Header {
            format: Format::Crc,
            ino: 0xDEADBEEF,
            mode: 0o104755,
            uid: 1,
            gid: 2,
            nlink: 3,
            mtime: 0xFFFFFFFF,
            dev_major: 8,
            dev_minor: 1,
            rdev_major: 0,
            rdev_minor: 0,
            check: 0x1234,
        };
        let bytes = encode(&header, 77, 5, header.check);
        assert_eq!(&bytes[..14], b"070702DEADBEEF");
        let parsed = parse(&bytes, Format::Crc, 0).unwrap();
        assert_eq!(parsed.header, header);
        assert_eq!((parsed.filesize, parsed.namesize), (77, 5));
    }

    #[test]
    fn lower_case_hex_is_accepted_and_junk_is_located() {
        let mut bytes = encode(&Header::default(), 0, 1, 0);
        bytes[6..14].copy_from_slice(b"abcdef01");
        assert_eq!(
            parse(&bytes, Format::Newc, 0).unwrap().header.ino,
            0xabcdef01
        );
        bytes[6 + 6 * 8 + 3] = b'g';
        let err = parse(&bytes, Format::Newc, 1000).err().unwrap();
        assert_eq!(err.offset, 1000 + 6 + 6 * 8);
        assert!(
            err.to_string()
                .contains("c_filesize is not 8 hex digits: \"000g0000\""),
            "{err}"
        );
    }

    #[test]
    fn plus_sign_and_space_are_not_hex() {
        for bad in [b"+0000000", b" 0000000", b"0x000000"] {
            assert_eq!(parse_hex(bad), None);
        }
    }
}
