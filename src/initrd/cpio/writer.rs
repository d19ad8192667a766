//! Streaming writer producing the bytes GNU cpio would (upper-case hex, NUL padding).

use std::io::{self, Write};

use super::header;
use super::{checksum, padding_after, Entry, Format, Kind, MAX_NAME_SIZE};

const NULS: [u8; 4] = [0; 4];

/// Writes entries; wrap unbuffered sinks in a `BufWriter` (each part is one `write_all`).
pub struct Writer<W: Write> {
    inner: W,
    position: u64,
    last_format: Format,
}

impl<W: Write> Writer<W> {
    pub fn new(inner: W) -> Self {
        Self::with_offset(inner, 0)
    }

    /// A writer whose output lands at `offset` of a larger stream: padding aligns to that stream.
    pub fn with_offset(inner: W, offset: u64) -> Self {
        Writer {
            inner,
            position: offset,
            last_format: Format::Newc,
        }
    }

    /// Writes header (entry.header.format's magic; c_namesize from name+NUL, c_filesize from
    /// data.len(); c_check as GNU cpio: for Format::Crc regular files the sum of the data, else
    /// 0), name, NUL, padding, data, padding.
    pub fn write_entry(&mut self, entry: &Entry) -> io::Result<()> {
        let check = if entry.header.format == Format::Crc && entry.kind() == Kind::Regular {
            checksum(&entry.data)
        } else {
            0
        };
        self.write_with_check(entry, check)
    }

    /// Like `write_entry` but writes `header.check` verbatim: reproduces an entry exactly as it
    /// was read, whatever its check field held.
    pub fn write_entry_raw(&mut self, entry: &Entry) -> io::Result<()> {
        self.write_with_check(entry, entry.header.check)
    }

    /// Writes `Entry::trailer()` in the format of the last entry written (as GNU cpio does).
    pub fn write_trailer(&mut self) -> io::Result<()> {
        let mut trailer = Entry::trailer();
        trailer.header.format = self.last_format;
        self.write_entry(&trailer)
    }

    /// Stream offset after the last byte written.
    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn into_inner(self) -> W {
        self.inner
    }

    fn write_with_check(&mut self, entry: &Entry, check: u32) -> io::Result<()> {
        let namesize = entry.name.len() + 1;
        let namesize = u32::try_from(namesize)
            .ok()
            .filter(|&size| size <= MAX_NAME_SIZE)
            .ok_or_else(|| {
                invalid(format!(
                    "cpio name of {} bytes exceeds PATH_MAX {MAX_NAME_SIZE}",
                    namesize
                ))
            })?;
        let filesize = u32::try_from(entry.data.len()).map_err(|_| {
            invalid(format!(
                "cpio file data of {} bytes exceeds 4 GiB - 1",
                entry.data.len()
            ))
        })?;

        let bytes = header::encode(&entry.header, filesize, namesize, check);
        self.put(&bytes)?;
        self.put(&entry.name)?;
        // The name's NUL and the padding after it, as one write.
        let after_name = self.position + 1;
        self.put(&NULS[..1 + padding_after(after_name)])?;
        if !entry.data.is_empty() {
            self.put(&entry.data)?;
            self.put(&NULS[..padding_after(self.position)])?;
        }
        self.last_format = entry.header.format;
        Ok(())
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        if !bytes.is_empty() {
            self.inner.write_all(bytes)?;
            self.position += bytes.len() as u64;
        }
        Ok(())
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}
