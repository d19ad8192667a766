//! The raw bytes of an initrd as the segment walker sees them: a buffered reader that knows its
//! offset in the file and can peek ahead across its buffer boundary.

use std::io::{self, BufRead, Read};

const CAPACITY: usize = 1 << 20;

pub struct Input<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    offset: u64,
    eof: bool,
}

impl<R: Read> Input<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            buf: vec![0; CAPACITY],
            start: 0,
            end: 0,
            offset: 0,
            eof: false,
        }
    }

    /// Offset in the file of the next byte to be consumed.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next `n` bytes without consuming them (fewer only at end of input).
    pub fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        let n = n.min(self.buf.len());
        while self.end - self.start < n && !self.eof {
            if self.buf.len() - self.start < n {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let got = read_retrying(&mut self.inner, &mut self.buf[self.end..])?;
            if got == 0 {
                self.eof = true;
            }
            self.end += got;
        }
        let have = (self.end - self.start).min(n);
        Ok(&self.buf[self.start..self.start + have])
    }

    /// Consumes a run of NUL bytes (the kernel skips them between segments); returns how many.
    /// Stops once more than `limit` were consumed, so endless zeros (`/dev/zero`) end: a result
    /// above `limit` means the run went on past it.
    pub fn skip_nuls(&mut self, limit: u64) -> io::Result<u64> {
        let mut skipped = 0;
        loop {
            if skipped > limit {
                return Ok(skipped);
            }
            let buf = self.fill_buf()?;
            if buf.is_empty() {
                return Ok(skipped);
            }
            let zeros = buf.iter().take_while(|&&b| b == 0).count();
            let whole = zeros == buf.len();
            self.consume(zeros);
            skipped += zeros as u64;
            if !whole {
                return Ok(skipped);
            }
        }
    }

    /// Consumes everything left; returns its length.
    pub fn drain(&mut self) -> io::Result<u64> {
        let mut total = 0;
        loop {
            let n = self.fill_buf()?.len();
            if n == 0 {
                return Ok(total);
            }
            self.consume(n);
            total += n as u64;
        }
    }
}

fn read_retrying<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

impl<R: Read> Read for Input<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let buf = self.fill_buf()?;
            let n = buf.len().min(out.len());
            out[..n].copy_from_slice(&buf[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for Input<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.start == self.end && !self.eof {
            self.start = 0;
            self.end = read_retrying(&mut self.inner, &mut self.buf)?;
            if self.end == 0 {
                self.eof = true;
            }
        }
        Ok(&self.buf[self.start..self.end])
    }

    fn consume(&mut self, amt: usize) {
        let amt = amt.min(self.end - self.start);
        self.start += amt;
        self.offset += amt as u64;
    }
}
