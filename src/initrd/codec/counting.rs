//! Counting the compressed bytes a decoder consumed while it owns the input.

use std::cell::Cell;
use std::io::{self, BufRead, Read};
use std::rc::Rc;

/// Shared count of bytes consumed, for callers that need a segment's compressed length while
/// a decoder owns the input.
#[derive(Clone, Default)]
pub struct ConsumedCounter(Rc<Cell<u64>>);

impl ConsumedCounter {
    pub fn get(&self) -> u64 {
        self.0.get()
    }

    /// Wraps `input` so that everything consumed through it is counted here.
    pub fn wrap<R: BufRead>(&self, input: R) -> CountingReader<R> {
        CountingReader {
            inner: input,
            count: self.clone(),
        }
    }
}

/// See [`ConsumedCounter::wrap`].
pub struct CountingReader<R> {
    inner: R,
    count: ConsumedCounter,
}

impl<R: BufRead> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.0.set(self.count.0.get() + n as u64);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for CountingReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.inner.consume(amt);
        self.count.0.set(self.count.0.get() + amt as u64);
    }
}
