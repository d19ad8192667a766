//! The lz4 "legacy" frame, the only lz4 framing the kernel's initramfs unpacker reads
//! (lib/decompress_unlz4.c; `lz4 -l` writes it): the magic 02 21 4c 18, then blocks, each a
//! little-endian u32 compressed size followed by one raw lz4 block of at most 8 MiB decompressed.
//!
//! The frame has no end marker. What the kernel does (lib/decompress_unlz4.c, with the 2021 fix
//! "correctly handle zero-padding around initrds"), given the whole rest of the image:
//! - a repeated magic where a block size is expected is skipped, so concatenated legacy streams
//!   are ONE segment;
//! - a block size of 0 (i.e. zero padding) or fewer than 4 bytes left ends the segment; the
//!   zero bytes are not consumed (they are NUL padding the unpacker skips);
//! - anything else is read as a block size. So a legacy lz4 segment must be the last thing in
//!   the image or be followed by at least 4 zero bytes ([`MIN_ZERO_PADDING_AFTER`]).
//!
//! Blocks are independent: the kernel decodes each with `LZ4_decompress_safe` into an 8 MiB
//! buffer, no dictionary from the previous block.

use std::io::{self, BufRead, Read, Write};

use super::framing::{invalid_data, CodecError, Counted};

/// First four bytes of a legacy frame (little-endian 0x184C2102).
pub const MAGIC: [u8; 4] = [0x02, 0x21, 0x4c, 0x18];
const MAGIC_WORD: u32 = 0x184C_2102;
/// Uncompressed size of every block but the last (`LZ4_DEFAULT_UNCOMPRESSED_CHUNK_SIZE`).
pub const BLOCK_SIZE: usize = 8 << 20;
/// Zero bytes needed after a legacy lz4 segment when another segment follows it.
pub const MIN_ZERO_PADDING_AFTER: usize = 4;

/// `LZ4_compressBound`: the largest compressed block the kernel will accept.
pub const fn compress_bound(len: usize) -> usize {
    len + len / 255 + 16
}

const CODEC: &str = "lz4";

/// Writes one legacy-frame lz4 segment: buffers 8 MiB blocks and compresses each independently.
pub struct LegacyWriter<W: Write> {
    out: W,
    block: Vec<u8>,
    compressed: Vec<u8>,
    wrote_magic: bool,
}

impl<W: Write> LegacyWriter<W> {
    pub fn new(out: W) -> Self {
        LegacyWriter {
            out,
            block: Vec::new(),
            compressed: Vec::new(),
            wrote_magic: false,
        }
    }

    fn write_magic(&mut self) -> io::Result<()> {
        if !self.wrote_magic {
            self.out.write_all(&MAGIC)?;
            self.wrote_magic = true;
        }
        Ok(())
    }

    fn emit_block(&mut self) -> io::Result<()> {
        self.write_magic()?;
        if self.block.is_empty() {
            return Ok(());
        }
        self.compressed.resize(
            lz4_flex::block::get_maximum_output_size(self.block.len()),
            0,
        );
        let n = lz4_flex::block::compress_into(&self.block, &mut self.compressed)
            .map_err(|e| io::Error::other(format!("lz4 block compression failed: {e}")))?;
        // n <= get_maximum_output_size(<= 8 MiB), far below u32::MAX.
        let size = n as u32;
        self.out.write_all(&size.to_le_bytes())?;
        self.out.write_all(&self.compressed[..n])?;
        self.block.clear();
        Ok(())
    }

    /// Writes the last (short) block and flushes; returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.emit_block()?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for LegacyWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = BLOCK_SIZE - self.block.len();
        let take = room.min(buf.len());
        self.block.extend_from_slice(&buf[..take]);
        if self.block.len() == BLOCK_SIZE {
            self.emit_block()?;
        }
        Ok(take)
    }

    /// Flushes the underlying writer only: blocks are emitted when full or at `finish`, since
    /// a short block in the middle would still be valid but compress worse.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// What the next four bytes of a legacy frame say.
enum Word {
    Magic,
    /// Zero padding (or the end of the image) ends the segment.
    End,
    BlockSize(usize),
}

/// Reads one legacy lz4 segment the way the kernel consumes it, leaving `input` on the first
/// byte after it (on the zero padding, if any).
///
/// Limitation: `BufRead` cannot un-consume, so a 4-byte word that straddles its buffer boundary
/// is consumed while being read; if it turns out to be the terminating zero word, those 4 zero
/// bytes are consumed too. They are NUL padding the kernel skips either way.
pub struct LegacyReader<R: BufRead> {
    /// Counts compressed bytes consumed from the segment start (for error offsets).
    input: Counted<R>,
    started: bool,
    done: bool,
    compressed: Vec<u8>,
    block: Vec<u8>,
    block_pos: usize,
    block_len: usize,
}

impl<R: BufRead> LegacyReader<R> {
    pub fn new(input: R) -> Self {
        LegacyReader {
            input: Counted::new(input),
            started: false,
            done: false,
            compressed: Vec::new(),
            block: Vec::new(),
            block_pos: 0,
            block_len: 0,
        }
    }

    /// Compressed bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.input.offset
    }

    fn consume(&mut self, n: usize) {
        self.input.consume(n);
    }

    /// Looks at the next 4 bytes, consuming them unless they end the segment.
    fn next_word(&mut self) -> io::Result<Word> {
        let at = self.input.offset;
        let mut word = [0u8; 4];
        let mut have = 0;
        // Fast path: the whole word is buffered, so zero padding is left unconsumed.
        let buffered = self.input.inner.fill_buf()?;
        if buffered.len() >= 4 {
            word.copy_from_slice(&buffered[..4]);
            let value = u32::from_le_bytes(word);
            if value == 0 {
                return Ok(Word::End);
            }
            self.consume(4);
            return classify(value, at);
        }
        while have < 4 {
            let buffered = self.input.inner.fill_buf()?;
            if buffered.is_empty() {
                break;
            }
            let take = buffered.len().min(4 - have);
            word[have..have + take].copy_from_slice(&buffered[..take]);
            have += take;
            self.consume(take);
        }
        if have < 4 {
            // Fewer than 4 bytes left: the kernel ends the segment ("empty or end-of-file").
            // Non-zero leftovers would then fail its magic check.
            if word[..have].iter().any(|&b| b != 0) {
                return Err(invalid_data(CodecError::Corrupt {
                    codec: CODEC,
                    offset: at,
                    source: None,
                    detail: format!(
                        "{have} stray non-zero byte(s) at the end of the image after the lz4 \
                         segment; the kernel would report 'invalid magic at start of compressed archive'"
                    ),
                }));
            }
            return Ok(Word::End);
        }
        let value = u32::from_le_bytes(word);
        if value == 0 {
            return Ok(Word::End);
        }
        classify(value, at)
    }

    /// Decodes the next block into `self.block`; returns false at the segment end.
    fn next_block(&mut self) -> io::Result<bool> {
        if !self.started {
            let at = self.input.offset;
            let mut magic = [0u8; 4];
            read_exact(&mut self.input, &mut magic)?;
            if magic != MAGIC {
                return Err(invalid_data(CodecError::Corrupt {
                    codec: CODEC,
                    offset: at,
                    source: None,
                    detail: format!(
                        "expected the legacy lz4 magic 02 21 4c 18, found {magic:02x?}; the kernel \
                         would report 'invalid header' (only `lz4 -l` legacy frames are accepted)"
                    ),
                }));
            }
            self.started = true;
        }
        loop {
            match self.next_word()? {
                Word::Magic => continue,
                Word::End => return Ok(false),
                Word::BlockSize(size) => {
                    let at = self.input.offset;
                    let mut compressed = std::mem::take(&mut self.compressed);
                    compressed.resize(size, 0);
                    let read = read_exact(&mut self.input, &mut compressed);
                    self.compressed = compressed;
                    read?;
                    self.block.resize(BLOCK_SIZE, 0);
                    let n = lz4_flex::block::decompress_into(&self.compressed, &mut self.block)
                        .map_err(|e| {
                            invalid_data(CodecError::Corrupt {
                                codec: CODEC,
                                offset: at,
                                source: None,
                                detail: format!(
                                    "block of {size} bytes does not decode to at most 8 MiB ({e}); \
                                     the kernel would report 'Decoding failed'"
                                ),
                            })
                        })?;
                    self.block_pos = 0;
                    self.block_len = n;
                    if n > 0 {
                        return Ok(true);
                    }
                }
            }
        }
    }
}

fn classify(value: u32, at: u64) -> io::Result<Word> {
    if value == MAGIC_WORD {
        return Ok(Word::Magic);
    }
    let size = value as usize;
    if size > compress_bound(BLOCK_SIZE) {
        return Err(invalid_data(CodecError::Corrupt {
            codec: CODEC,
            offset: at,
            source: None,
            detail: format!(
                "block size {size} exceeds the legacy-frame bound {}; the kernel reads on past the \
                 segment here: a legacy lz4 segment must end the image or be followed by at least \
                 {MIN_ZERO_PADDING_AFTER} zero bytes",
                compress_bound(BLOCK_SIZE)
            ),
        }));
    }
    Ok(Word::BlockSize(size))
}

fn read_exact<R: BufRead>(input: &mut Counted<R>, buf: &mut [u8]) -> io::Result<()> {
    let len = buf.len();
    input.read_exact(CODEC, buf, |start, filled| {
        format!("needed {len} bytes from offset {start}, the input ended after {filled}")
    })
}

impl<R: BufRead> Read for LegacyReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.block_pos == self.block_len {
            if self.done {
                return Ok(0);
            }
            if !self.next_block()? {
                self.done = true;
                return Ok(0);
            }
        }
        let n = buf.len().min(self.block_len - self.block_pos);
        buf[..n].copy_from_slice(&self.block[self.block_pos..self.block_pos + n]);
        self.block_pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(data: &[u8]) -> Vec<u8> {
        let mut w = LegacyWriter::new(Vec::new());
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    fn decode_all(input: &[u8]) -> io::Result<(Vec<u8>, usize)> {
        let mut cursor = io::Cursor::new(input);
        let mut out = Vec::new();
        LegacyReader::new(&mut cursor).read_to_end(&mut out)?;
        Ok((out, cursor.position() as usize))
    }

    #[test]
    fn empty_input_is_just_the_magic() {
        assert_eq!(compress(b""), MAGIC.to_vec());
        assert_eq!(decode_all(&MAGIC).unwrap(), (Vec::new(), 4));
    }

    #[test]
    fn blocks_split_at_8_mib() {
        let data: Vec<u8> = (0..BLOCK_SIZE + 1000).map(|i| (i % 251) as u8).collect();
        let packed = compress(&data);
        let first = u32::from_le_bytes(packed[4..8].try_into().unwrap()) as usize;
        let second_at = 8 + first;
        let second = u32::from_le_bytes(packed[second_at..second_at + 4].try_into().unwrap());
        assert_eq!(
            second_at + 4 + second as usize,
            packed.len(),
            "exactly two blocks"
        );
        assert_eq!(decode_all(&packed).unwrap(), (data, packed.len()));
    }

    #[test]
    fn concatenated_streams_are_one_segment_like_the_kernel() {
        let mut both = compress(b"first ");
        both.extend(compress(b"second"));
        assert_eq!(
            decode_all(&both).unwrap(),
            (b"first second".to_vec(), both.len())
        );
    }

    #[test]
    fn stops_on_zero_padding_without_consuming_it() {
        let mut image = compress(b"payload");
        let end = image.len();
        image.extend([0u8; 8]);
        image.extend(b"070701");
        assert_eq!(decode_all(&image).unwrap(), (b"payload".to_vec(), end));
    }

    #[test]
    fn short_zero_tail_ends_the_segment() {
        let mut image = compress(b"payload");
        image.extend([0u8; 2]);
        let (out, _) = decode_all(&image).unwrap();
        assert_eq!(out, b"payload");
    }

    #[test]
    fn unpadded_following_segment_is_an_error_naming_the_rule() {
        let mut image = compress(b"payload");
        let end = image.len();
        image.extend(b"070701000000");
        let err = decode_all(&image).unwrap_err();
        let codec = err.get_ref().unwrap().downcast_ref::<CodecError>().unwrap();
        assert!(
            matches!(codec, CodecError::Corrupt { offset, .. } if *offset == end as u64),
            "{codec}"
        );
        assert!(err.to_string().contains("zero bytes"), "{err}");
    }

    #[test]
    fn truncated_block_is_typed() {
        let packed = compress(&[7u8; 10_000]);
        let err = decode_all(&packed[..packed.len() - 3]).unwrap_err();
        let codec = err.get_ref().unwrap().downcast_ref::<CodecError>().unwrap();
        assert!(matches!(codec, CodecError::Truncated { .. }), "{codec}");
    }

    #[test]
    fn straddling_peek_consumes_only_padding() {
        let mut image = compress(b"payload");
        let end = image.len();
        image.extend([0u8; 4]);
        image.extend(b"070701");
        // A 1-byte buffer forces every peek to straddle.
        let mut reader = io::BufReader::with_capacity(1, io::Cursor::new(&image));
        let mut out = Vec::new();
        LegacyReader::new(&mut reader)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"payload");
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert!(rest.len() >= image.len() - end - 4 && rest.ends_with(b"070701"));
        assert!(rest[..rest.len() - 6].iter().all(|&b| b == 0));
    }
}
