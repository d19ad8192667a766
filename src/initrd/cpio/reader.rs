//! Streaming reader: one entry at a time, few copies, every malformation a located error.

use std::io::{self, Read};

use super::error::display_name;
use super::header::{self, HEADER_LEN, NAMESIZE_OFFSET};
use super::{
    checksum, padding_after, CpioError, CpioErrorKind, Entry, Format, Kind, MAX_NAME_SIZE,
    SKIPPED_NAME_KEPT,
};

/// Data is read in steps of at most this much, so a hostile `c_filesize` cannot make us reserve
/// 4 GiB before the stream proves it holds that much.
pub(super) const DATA_STEP: u64 = 64 << 20;
const SKIP_BUF_LEN: usize = 256 << 10;

/// Reads entries from a newc stream. Wrap unbuffered sources (files) in a `BufReader`: headers,
/// names and padding are read in small pieces.
///
/// After an error the reader's position is unspecified; stop reading.
pub struct Reader<R: Read> {
    source: Source<R>,
    skip_buf: Vec<u8>,
}

/// One step of a stream: an entry (with its `c_filesize`), or one the kernel skips unread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Entry(Entry, u64),
    Skipped(Skipped),
}

/// An entry `do_header` skips (and goes on after): too long for PATH_MAX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Stream offset of its header.
    pub offset: u64,
    /// The start of its name (all of it when short enough), for messages.
    pub name: Vec<u8>,
    pub reason: SkipReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// `c_namesize` (with the NUL) exceeds PATH_MAX.
    NameTooLong { size: u32 },
    /// A symlink whose target (`c_filesize`) exceeds PATH_MAX.
    TargetTooLong { size: u32 },
}

/// What to do with the data of regular files.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DataMode {
    Keep,
    Drop,
}

impl<R: Read> Reader<R> {
    pub fn new(inner: R) -> Self {
        Self::with_offset(inner, 0)
    }

    /// A reader whose stream already stands at `offset`: alignment and error offsets count from
    /// `offset`'s origin (the kernel keeps counting across consecutive uncompressed archives).
    pub fn with_offset(inner: R, offset: u64) -> Self {
        Reader {
            source: Source {
                inner,
                position: offset,
                lookahead: [0; 4],
                lookahead_start: 0,
                lookahead_end: 0,
            },
            skip_buf: Vec::new(),
        }
    }

    /// Next entry. Ok(None) at a clean end of input on an entry boundary (after any NUL padding,
    /// which the kernel skips between entries). TRAILER!!! is returned like any entry; reading
    /// continues after it (the kernel reads concatenated archives). 070702 checks are verified
    /// for regular files.
    /// Entries the kernel skips (names or symlink targets over PATH_MAX) are passed over; see
    /// `next_item` to hear of them.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, CpioError> {
        Ok(self.next_kept(DataMode::Keep)?.map(|(entry, _)| entry))
    }

    /// Like `next_entry`, but the data of regular files is read (and 070702-checked) then
    /// dropped; returns the entry with empty data for regular files, and `c_filesize`.
    pub fn skip_entry(&mut self) -> Result<Option<(Entry, u64)>, CpioError> {
        self.next_kept(DataMode::Drop)
    }

    /// The next entry, or the next one the kernel skips unread. With `keep_data` false, regular
    /// files' data is read and dropped as by `skip_entry`.
    pub fn next_item(&mut self, keep_data: bool) -> Result<Option<Item>, CpioError> {
        let mode = if keep_data {
            DataMode::Keep
        } else {
            DataMode::Drop
        };
        self.read_entry(mode)
    }

    fn next_kept(&mut self, mode: DataMode) -> Result<Option<(Entry, u64)>, CpioError> {
        loop {
            match self.read_entry(mode)? {
                None => return Ok(None),
                Some(Item::Entry(entry, len)) => return Ok(Some((entry, len))),
                Some(Item::Skipped(_)) => {}
            }
        }
    }

    /// Skips NUL padding as the kernel does between entries and returns the next up to 4 bytes
    /// without consuming them; None at the end of input. Lets a caller see, after a trailer,
    /// whether another cpio archive or something else (a compressed segment) follows; such
    /// non-cpio bytes must start 4-aligned too (kernel: "broken padding").
    pub fn peek_after_padding(&mut self) -> Result<Option<&[u8]>, CpioError> {
        if self.source.skip_nuls()? {
            Ok(Some(self.source.peeked()))
        } else {
            Ok(None)
        }
    }

    /// Stream offset of the next unconsumed byte (bytes peeked but not consumed do not count).
    pub fn position(&self) -> u64 {
        self.source.position
    }

    /// The inner reader; bytes held by `peek_after_padding` are lost (see `into_parts`).
    pub fn into_inner(self) -> R {
        self.source.inner
    }

    /// Bytes peeked but not consumed, and the inner reader positioned after them.
    pub fn into_parts(self) -> (Vec<u8>, R) {
        (self.source.peeked().to_vec(), self.source.inner)
    }

    fn read_entry(&mut self, mode: DataMode) -> Result<Option<Item>, CpioError> {
        if !self.source.skip_nuls()? {
            return Ok(None);
        }
        let start = self.source.position;
        let parsed = self.read_header(start)?;
        if parsed.namesize > MAX_NAME_SIZE {
            let size = parsed.namesize;
            return self.skip_rest(start, &parsed, SkipReason::NameTooLong { size });
        }
        let is_symlink = Kind::from_mode(parsed.header.mode) == Kind::Symlink;
        if is_symlink && parsed.filesize > MAX_NAME_SIZE {
            let size = parsed.filesize;
            return self.skip_rest(start, &parsed, SkipReason::TargetTooLong { size });
        }
        let name = self.read_name(start, parsed.namesize)?;
        self.read_padding("padding after the name")?;

        let header = parsed.header;
        let len = u64::from(parsed.filesize);
        let data_start = self.source.position;
        let what = || format!("file data for \"{}\"", display_name(&name));
        let regular = Kind::from_mode(header.mode) == Kind::Regular;
        let verify = header.format == Format::Crc && regular;
        let (data, sum) = if mode == DataMode::Drop && regular {
            (Vec::new(), self.skip_data(len, verify, what)?)
        } else {
            let data = self.read_data(len, what)?;
            let sum = if verify { checksum(&data) } else { 0 };
            (data, sum)
        };
        if verify && sum != header.check {
            return Err(CpioError::new(
                data_start,
                CpioErrorKind::ChecksumMismatch {
                    name: display_name(&name),
                    stored: header.check,
                    computed: sum,
                },
            ));
        }
        self.read_padding("padding after file data")?;
        Ok(Some(Item::Entry(Entry { header, name, data }, len)))
    }

    /// Passes over the rest of an entry as the kernel's SkipIt state does: to the next 4-aligned
    /// offset after name and data, nothing checked but that the bytes are there.
    fn skip_rest(
        &mut self,
        start: u64,
        parsed: &header::Parsed,
        reason: SkipReason,
    ) -> Result<Option<Item>, CpioError> {
        let name_start = self.source.position;
        let namesize = u64::from(parsed.namesize);
        let kept = namesize.min(SKIPPED_NAME_KEPT as u64) as usize;
        let mut name = vec![0u8; kept];
        let got = self.source.read_full(&mut name)?;
        let what = || format!("name (c_namesize of the header at byte {start})");
        if got < kept {
            return Err(truncated(name_start, what(), namesize, got));
        }
        if let Some(end) = name.iter().position(|&b| b == 0) {
            name.truncate(end);
        }
        self.discard(namesize - kept as u64, |done| {
            truncated(name_start, what(), namesize, (kept as u64 + done) as usize)
        })?;
        // The kernel's next_header: N_ALIGN(name_len) + body_len, aligned again.
        let pad_start = self.source.position;
        let pad = padding_after(pad_start) as u64;
        self.discard(pad, |done| {
            truncated(
                pad_start,
                "padding after the name".into(),
                pad,
                done as usize,
            )
        })?;
        let data_start = self.source.position;
        let end = data_start + u64::from(parsed.filesize);
        let data_len = end + padding_after(end) as u64 - data_start;
        let shown = super::error::display_name(&name);
        self.discard(data_len, |done| {
            let what = format!("data and padding of the skipped entry \"{shown}\"");
            truncated(data_start, what, data_len, done as usize)
        })?;
        Ok(Some(Item::Skipped(Skipped {
            offset: start,
            name,
            reason,
        })))
    }

    /// Reads and drops `len` bytes; `short(done)` is the error when the input ends first.
    fn discard(&mut self, len: u64, short: impl Fn(u64) -> CpioError) -> Result<(), CpioError> {
        if self.skip_buf.is_empty() {
            self.skip_buf = vec![0; SKIP_BUF_LEN];
        }
        let mut done = 0u64;
        while done < len {
            let step = (len - done).min(SKIP_BUF_LEN as u64) as usize;
            let got = self.source.read_full(&mut self.skip_buf[..step])?;
            done += got as u64;
            if got < step {
                return Err(short(done));
            }
        }
        Ok(())
    }

    fn read_header(&mut self, start: u64) -> Result<header::Parsed, CpioError> {
        let mut bytes = [0u8; HEADER_LEN];
        let got = self.source.read_full(&mut bytes)?;
        let magic = &bytes[..got.min(6)];
        let format = match header::format_of(magic) {
            Some(format) => format,
            None if got < 6 && (b"070701".starts_with(magic) || b"070702".starts_with(magic)) => {
                return Err(truncated(
                    start,
                    "cpio header".into(),
                    HEADER_LEN as u64,
                    got,
                ));
            }
            None => {
                let found = magic.to_vec();
                return Err(CpioError::new(start, CpioErrorKind::BadMagic { found }));
            }
        };
        if got < HEADER_LEN {
            return Err(truncated(
                start,
                "cpio header".into(),
                HEADER_LEN as u64,
                got,
            ));
        }
        let parsed = header::parse(&bytes, format, start)?;
        let namesize_at = start + NAMESIZE_OFFSET;
        if parsed.namesize == 0 {
            return Err(CpioError::new(namesize_at, CpioErrorKind::EmptyName));
        }
        Ok(parsed)
    }

    /// Reads `c_namesize` bytes and drops the terminating NUL.
    fn read_name(&mut self, header_start: u64, namesize: u32) -> Result<Vec<u8>, CpioError> {
        let start = self.source.position;
        // namesize <= MAX_NAME_SIZE was checked, so this buffer is small.
        let mut name = vec![0u8; namesize as usize];
        let got = self.source.read_full(&mut name)?;
        if got < name.len() {
            let what = format!("name (c_namesize of the header at byte {header_start})");
            return Err(truncated(start, what, u64::from(namesize), got));
        }
        match name.pop() {
            Some(0) => Ok(name),
            last => Err(CpioError::new(
                start + u64::from(namesize) - 1,
                CpioErrorKind::NameNotTerminated {
                    name: display_name(&name),
                    last: last.unwrap_or(0),
                },
            )),
        }
    }

    fn read_padding(&mut self, what: &'static str) -> Result<(), CpioError> {
        let start = self.source.position;
        let mut pad = [0u8; 3];
        let pad = &mut pad[..padding_after(start)];
        let got = self.source.read_full(pad)?;
        if got < pad.len() {
            return Err(truncated(start, what.into(), pad.len() as u64, got));
        }
        match pad.iter().position(|&b| b != 0) {
            None => Ok(()),
            Some(i) => Err(CpioError::new(
                start + i as u64,
                CpioErrorKind::Padding {
                    what,
                    found: pad[i],
                },
            )),
        }
    }

    fn read_data(&mut self, len: u64, what: impl Fn() -> String) -> Result<Vec<u8>, CpioError> {
        let start = self.source.position;
        let mut data = Vec::new();
        while (data.len() as u64) < len {
            let step = (len - data.len() as u64).min(DATA_STEP);
            // step <= DATA_STEP, which fits usize on every target we build for.
            data.reserve_exact(step as usize);
            let got = (&mut self.source)
                .take(step)
                .read_to_end(&mut data)
                .map_err(|e| CpioError::new(start + data.len() as u64, CpioErrorKind::Io(e)))?;
            if (got as u64) < step {
                return Err(truncated(start, what(), len, data.len()));
            }
        }
        Ok(data)
    }

    /// Reads and drops `len` bytes; returns their 070702 sum when `verify`.
    fn skip_data(
        &mut self,
        len: u64,
        verify: bool,
        what: impl Fn() -> String,
    ) -> Result<u32, CpioError> {
        let start = self.source.position;
        if self.skip_buf.is_empty() {
            self.skip_buf = vec![0; SKIP_BUF_LEN];
        }
        let mut sum = 0u32;
        let mut done = 0u64;
        while done < len {
            let step = (len - done).min(SKIP_BUF_LEN as u64) as usize;
            let buf = &mut self.skip_buf[..step];
            let got = self.source.read_full(buf)?;
            if verify {
                sum = sum.wrapping_add(checksum(&buf[..got]));
            }
            done += got as u64;
            if got < step {
                return Err(truncated(start, what(), len, done as usize));
            }
        }
        Ok(sum)
    }
}

fn truncated(offset: u64, what: String, expected: u64, available: usize) -> CpioError {
    let available = available as u64;
    CpioError::new(
        offset,
        CpioErrorKind::Truncated {
            what,
            expected,
            available,
        },
    )
}

/// The inner reader with position counting and a lookahead of at most 4 bytes (one aligned word,
/// read while skipping NUL padding).
struct Source<R> {
    inner: R,
    position: u64,
    lookahead: [u8; 4],
    lookahead_start: usize,
    lookahead_end: usize,
}

impl<R: Read> Source<R> {
    fn peeked(&self) -> &[u8] {
        &self.lookahead[self.lookahead_start..self.lookahead_end]
    }

    /// Consumes NUL bytes; true if a non-NUL byte follows (then it starts the lookahead), false at
    /// the end of input. A non-NUL byte after NULs must be 4-aligned, as the kernel demands.
    fn skip_nuls(&mut self) -> Result<bool, CpioError> {
        loop {
            if self.lookahead_start == self.lookahead_end {
                // Bytes go to the lookahead unconsumed: the position moves only as they leave it.
                let want = 4 - (self.position % 4) as usize;
                let mut word = [0u8; 4];
                let mut got = 0;
                while got < want {
                    match self.inner.read(&mut word[got..want]) {
                        Ok(0) => break,
                        Ok(n) => got += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            return Err(CpioError::new(
                                self.position + got as u64,
                                CpioErrorKind::Io(e),
                            ))
                        }
                    }
                }
                if got == 0 {
                    return Ok(false);
                }
                self.lookahead = word;
                self.lookahead_start = 0;
                self.lookahead_end = got;
            }
            while self.lookahead_start < self.lookahead_end {
                if self.lookahead[self.lookahead_start] != 0 {
                    return self.check_aligned().map(|()| true);
                }
                self.lookahead_start += 1;
                self.position += 1;
            }
        }
    }

    fn check_aligned(&self) -> Result<(), CpioError> {
        if self.position % 4 == 0 {
            return Ok(());
        }
        let found = self.lookahead[self.lookahead_start];
        let what = "padding up to a 4-aligned header (kernel: \"broken padding\")";
        Err(CpioError::new(
            self.position,
            CpioErrorKind::Padding { what, found },
        ))
    }

    /// Fills `buf` unless the input ends first; returns how many bytes were read.
    fn read_full(&mut self, buf: &mut [u8]) -> Result<usize, CpioError> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CpioError::new(self.position, CpioErrorKind::Io(e))),
            }
        }
        Ok(filled)
    }
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = if self.lookahead_start < self.lookahead_end {
            let held = self.peeked();
            let n = held.len().min(buf.len());
            buf[..n].copy_from_slice(&held[..n]);
            self.lookahead_start += n;
            n
        } else {
            self.inner.read(buf)?
        };
        self.position += n as u64;
        Ok(n)
    }
}
