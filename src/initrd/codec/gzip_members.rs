//! Gzip members compressed whole from memory with libdeflate: many chunks in parallel, or a head
//! joined to a tail compressed ahead of it.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use super::encode::check_level;

/// Compresses each chunk as its own gzip member on its own thread (at most `threads` at once)
/// and writes the members in order. The kernel unpacks each member as a segment, and
/// `gzip -dc` reads their concatenation.
///
/// Each chunk must end on an entry boundary: after every compressed segment init/initramfs.c
/// requires its cpio parser to be in the Reset state ("junk at the end of compressed archive"),
/// which it reaches after every entry (the trailer is optional since 2.6.10, "INITRAMFS: allow no
/// trailer"). Its hard-link table lives until a TRAILER!!!, not per segment, so links may span
/// members. `tests/initrd_real.rs` boots such a split repack in QEMU.
pub fn gzip_members_parallel(
    chunks: &[&[u8]],
    level: u32,
    threads: usize,
    out: &mut dyn Write,
) -> io::Result<()> {
    let level = check_level("gzip", level, 0..=9, "0..=9")?;
    let workers = threads.clamp(1, chunks.len().max(1));
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, io::Result<Vec<u8>>)>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(chunk) = chunks.get(i) else { break };
                let member = gzip_member(chunk, level);
                if tx.send((i, member)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        // Members finish out of order; write each as soon as all before it are written.
        let mut pending = BTreeMap::new();
        let mut written = 0;
        for (i, member) in rx {
            pending.insert(i, member);
            while let Some(member) = pending.remove(&written) {
                out.write_all(&member?)?;
                written += 1;
            }
        }
        out.flush()
    })
}

/// libdeflate at a gzip level (0..=9; libdeflate's own go to 12, unused here).
fn libdeflate_compressor(level: u32) -> io::Result<libdeflater::Compressor> {
    let level = check_level("gzip", level, 0..=9, "0..=9")?;
    let lvl = libdeflater::CompressionLvl::new(level as i32).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("gzip level {level}: {e:?}"),
        )
    })?;
    Ok(libdeflater::Compressor::new(lvl))
}

/// One gzip member of `data`, compressed whole with libdeflate: for data already in memory it
/// gives zlib -9-class ratio at better than zlib -6 speed (measured on the 132 MB cpio of a
/// MODULES=most image: see README "Performance"). Streaming writes use flate2.
pub fn gzip_member(data: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let mut compressor = libdeflate_compressor(level)?;
    let mut out = vec![0u8; compressor.gzip_compress_bound(data.len())];
    let n = compressor
        .gzip_compress(data, &mut out)
        .map_err(|e| io::Error::other(format!("gzip: {e:?}")))?;
    out.truncate(n);
    Ok(out)
}

/// The final part of a deflate stream, compressed ahead of the part that goes before it.
pub struct DeflatedTail {
    /// Raw deflate blocks, the last one final.
    pub deflate: Vec<u8>,
    pub crc: crc32fast::Hasher,
    pub len: u64,
}

/// Compresses `data` as the final part of a deflate stream (libdeflate, raw deflate).
pub fn deflate_tail(data: &[u8], level: u32) -> io::Result<DeflatedTail> {
    let mut compressor = libdeflate_compressor(level)?;
    let mut out = vec![0u8; compressor.deflate_compress_bound(data.len())];
    let n = compressor
        .deflate_compress(data, &mut out)
        .map_err(|e| io::Error::other(format!("deflate: {e:?}")))?;
    out.truncate(n);
    let mut crc = crc32fast::Hasher::new();
    crc.update(data);
    Ok(DeflatedTail {
        deflate: out,
        crc,
        len: data.len() as u64,
    })
}

/// One gzip member holding `head` then the data of `tail`: `head` is deflated ending in a sync
/// flush (a non-final empty stored block, byte-aligned), so the tail's blocks continue the same
/// stream, as pigz joins its parts. Lets a caller compress the bulk before it knows the head.
pub fn gzip_member_with_tail(head: &[u8], tail: &DeflatedTail, level: u32) -> io::Result<Vec<u8>> {
    let level = check_level("gzip", level, 0..=9, "0..=9")?;
    // RFC 1952 header: no flags (the kernel accepts only FNAME), mtime 0, OS Unix.
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
    enc.write_all(head)?;
    // flush() is a sync flush; never finish(): that would end the stream before the tail.
    enc.flush()?;
    out.extend_from_slice(enc.get_ref());
    out.extend_from_slice(&tail.deflate);
    let mut crc = crc32fast::Hasher::new();
    crc.update(head);
    crc.combine(&tail.crc);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    // ISIZE: the length modulo 2^32.
    out.extend_from_slice(&((head.len() as u64 + tail.len) as u32).to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::{decoder, Compression};
    use super::*;
    use std::io::Read;

    #[test]
    fn head_and_precompressed_tail_make_one_member() {
        let head: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let tail_data: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(7919) >> 5) as u8)
            .collect();
        let tail = deflate_tail(&tail_data, 6).unwrap();
        let member = gzip_member_with_tail(&head, &tail, 6).unwrap();
        let mut expected = head.clone();
        expected.extend_from_slice(&tail_data);
        // Our decoder reads it as one segment and checks CRC and ISIZE.
        let mut input = &member[..];
        let mut got = Vec::new();
        decoder(Compression::Gzip, &mut input, u64::MAX)
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, expected);
        assert!(input.is_empty(), "one member, consumed whole");
        // And so does gzip(1).
        let mut child = std::process::Command::new("gzip")
            .args(["-dc"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&member).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, expected);
    }

    #[test]
    fn empty_head_is_fine() {
        let tail = deflate_tail(b"tail only", 1).unwrap();
        let member = gzip_member_with_tail(b"", &tail, 1).unwrap();
        let mut got = Vec::new();
        decoder(Compression::Gzip, &member[..], u64::MAX)
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, b"tail only");
    }
}
