//! Reading a request head within its limits and parsing its request line; all of it is client
//! input, so every refusal is a 4xx.

use super::*;

/// A parsed request line.
pub(super) struct Request {
    pub(super) method: String,
    pub(super) target: String,
}

/// How reading a request head ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HeadEnd {
    /// The blank line arrived.
    Complete,
    /// The client closed, the read failed, or the server is stopping.
    Closed,
    /// The head deadline passed.
    TimedOut,
    /// The request line passed [`MAX_REQUEST_LINE`].
    LineTooLong,
    /// The head passed [`MAX_HEAD`].
    HeadTooLong,
}

/// Reads up to the blank line ending the request head, until `deadline` at the latest.
pub(super) fn read_head(
    stream: &mut TcpStream,
    deadline: Instant,
    stopping: &AtomicBool,
) -> (Vec<u8>, HeadEnd) {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        if stopping.load(Ordering::SeqCst) {
            return (head, HeadEnd::Closed);
        }
        // Each read waits only for what is left of the deadline.
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (head, HeadEnd::TimedOut);
        }
        if stream.set_read_timeout(Some(left)).is_err() {
            return (head, HeadEnd::Closed);
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => return (head, HeadEnd::Closed),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => return (head, HeadEnd::Closed),
        };
        // The blank line may straddle two reads.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = blank_line_end(&head, from) {
            // The whole head counts, also when the read that ended it crossed the limit.
            let done = if end > MAX_HEAD {
                HeadEnd::HeadTooLong
            } else {
                HeadEnd::Complete
            };
            return (head, done);
        }
        if line_len(&head) > MAX_REQUEST_LINE {
            return (head, HeadEnd::LineTooLong);
        }
        if head.len() > MAX_HEAD {
            return (head, HeadEnd::HeadTooLong);
        }
    }
}

/// Where the head ends (after its blank line), looking from `from` on.
pub(super) fn blank_line_end(head: &[u8], from: usize) -> Option<usize> {
    let tail = &head[from..];
    let crlf = tail
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    let lf = tail.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    crlf.into_iter().chain(lf).min().map(|end| from + end)
}

/// Length of the first line, or of everything when no line ended yet.
pub(super) fn line_len(head: &[u8]) -> usize {
    head.iter().position(|&b| b == b'\n').unwrap_or(head.len())
}

/// The request in `head`, or the status refusing it; never 5xx: all of this is client input.
pub(super) fn classify(head: &[u8], end: HeadEnd) -> Result<Request, u16> {
    if line_len(head) > MAX_REQUEST_LINE {
        // A line that starts like a request line has a target too long; anything else is noise.
        let (method, _) = request_line_parts(head);
        return Err(if method.is_empty() { 400 } else { 414 });
    }
    match end {
        HeadEnd::Complete => parse_request_line(head),
        HeadEnd::HeadTooLong => Err(431),
        HeadEnd::TimedOut => Err(408),
        HeadEnd::Closed | HeadEnd::LineTooLong => Err(400),
    }
}

/// Header lines a head may have; more is 431, as for a head over [`MAX_HEAD`].
const MAX_HEADERS: usize = 64;

/// The request of a complete head, parsed by httparse: `METHOD SP target SP HTTP/1.0|1.1`, then
/// well-formed header lines (their values are not used). The method must also look like one
/// ([`is_method`]); which methods are served is [`super::connection`]'s business.
pub(super) fn parse_request_line(head: &[u8]) -> Result<Request, u16> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => return Err(431),
        Ok(httparse::Status::Partial) | Err(_) => return Err(400),
    }
    match (request.method, request.path) {
        (Some(method), Some(target)) if is_method(method.as_bytes()) => Ok(Request {
            method: method.to_owned(),
            target: target.to_owned(),
        }),
        _ => Err(400),
    }
}

pub(super) fn is_method(word: &[u8]) -> bool {
    (1..=16).contains(&word.len()) && word.iter().all(|b| b.is_ascii_uppercase())
}

/// The method and target as far as they arrived, for the log of a refused request; empty when
/// the bytes do not start like a request line.
pub(super) fn request_line_parts(head: &[u8]) -> (String, String) {
    let line = &head[..line_len(head)];
    let mut parts = line.splitn(3, |&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    match parts.next() {
        Some(target) if is_method(method) => {
            let target = target.strip_suffix(b"\r").unwrap_or(target);
            let kept = &target[..target.len().min(MAX_LOGGED_PATH)];
            (
                String::from_utf8_lossy(method).into_owned(),
                loggable(&String::from_utf8_lossy(kept)),
            )
        }
        _ => (String::new(), String::new()),
    }
}

/// Control characters as `?`: the log is read on terminals.
pub(super) fn loggable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(head: &str) -> Result<(String, String), u16> {
        parse_request_line(head.as_bytes()).map(|r| (r.method, r.target))
    }

    #[test]
    fn request_lines_are_parsed_and_malformed_ones_refused() {
        let ok = |m: &str, t: &str| Ok((m.to_owned(), t.to_owned()));
        assert_eq!(
            parsed("GET /vmlinuz HTTP/1.1\r\nHost: x\r\n\r\n"),
            ok("GET", "/vmlinuz")
        );
        assert_eq!(parsed("HEAD /a HTTP/1.0\n\n"), ok("HEAD", "/a"));
        // A method-looking word is parsed (405 is the connection's answer); others are not.
        assert_eq!(parsed("BREW /pot HTTP/1.1\r\n\r\n"), ok("BREW", "/pot"));
        for bad in [
            "get /a HTTP/1.1\r\n\r\n",
            "GET /a HTTP/2.0\r\n\r\n",
            "GET  /a HTTP/1.1\r\n\r\n",
            "GET /a\r\n\r\n",
            "GET /a HTTP/1.1\r\nno colon here\r\n\r\n",
            "GET /a HTTP/1.1\r\n",
        ] {
            assert_eq!(parsed(bad), Err(400), "{bad:?}");
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(parsed(&format!("GET /a HTTP/1.1\r\n{many}\r\n")), Err(431));
    }
}
