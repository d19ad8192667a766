//! Accepting QEMU's connection on a Unix socket bootrig listens on (its serial console, QMP):
//! bounded, and given up at once when QEMU is gone, since a QEMU that fails on its command line
//! never connects.

use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::thread;
use std::time::{Duration, Instant};

/// How often the listener is polled: short next to QEMU's start-up.
pub const ACCEPT_POLL: Duration = Duration::from_millis(5);

#[derive(Debug)]
pub enum AcceptError {
    /// Nothing connected within the bound.
    TimedOut,
    /// `peer_gone` said so before anything connected.
    PeerGone,
    Io(io::Error),
}

/// Accepts one connection within `timeout`, checking `peer_gone` between polls. The listener and
/// the stream are left blocking.
pub fn accept_bounded(
    listener: &UnixListener,
    timeout: Duration,
    mut peer_gone: impl FnMut() -> bool,
) -> Result<UnixStream, AcceptError> {
    let deadline = Instant::now() + timeout;
    listener.set_nonblocking(true).map_err(AcceptError::Io)?;
    let accepted = loop {
        match listener.accept() {
            Ok((stream, _)) => break Ok(stream),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if peer_gone() {
                    break Err(AcceptError::PeerGone);
                }
                let now = Instant::now();
                if now >= deadline {
                    break Err(AcceptError::TimedOut);
                }
                thread::sleep(ACCEPT_POLL.min(deadline - now));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(AcceptError::Io(e)),
        }
    };
    listener.set_nonblocking(false).map_err(AcceptError::Io)?;
    let stream = accepted?;
    stream.set_nonblocking(false).map_err(AcceptError::Io)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_up_when_the_peer_is_gone_or_time_passes_and_accepts_a_client() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let start = Instant::now();
        assert!(matches!(
            accept_bounded(&listener, Duration::from_secs(5), || true),
            Err(AcceptError::PeerGone)
        ));
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(matches!(
            accept_bounded(&listener, Duration::from_millis(50), || false),
            Err(AcceptError::TimedOut)
        ));
        let _client = UnixStream::connect(&path).unwrap();
        accept_bounded(&listener, Duration::from_secs(1), || false).unwrap();
    }
}
