//! One request as the run's log keeps it, and who sent it.

use super::*;
use crate::names::Named;

/// Who opened a connection.
///
/// Through slirp the guest's connections come from a socket of QEMU's own to 127.0.0.1 (slirp
/// maps 10.0.2.2 to the host's loopback), so the peer address is 127.0.0.1 for the guest and for
/// any local process alike; a per-run address elsewhere in 127/8 would not be reachable by the
/// guest without an extra guestfwd rule. What tells them apart is which process holds the
/// client end: /proc/net/tcp names the client socket's inode and owner, and it is the guest's
/// when the run's QEMU (or a process it started, for a wrapper that does not exec) has that
/// socket open. Looked up as the connection is accepted, while the client end is certainly
/// open (slirp keeps it until the guest closes).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr, strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Peer {
    /// The run's QEMU, i.e. the guest.
    Guest,
    /// Another local process (or no QEMU was named with [`HttpServer::set_guest_pid`]).
    Foreign,
    /// Not identified: refused at capacity before looking, or the client end was gone already.
    Unchecked,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request as the server handled it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// When the request head was read, since the server started.
    #[serde(serialize_with = "as_secs")]
    pub at: Duration,
    /// How long answering it took.
    #[serde(serialize_with = "as_secs")]
    pub duration: Duration,
    /// Who sent it: only `guest` records are the guest's fetches.
    pub from: Peer,
    /// The uid owning the client's socket, when it was found.
    pub peer_uid: Option<u32>,
    /// The method as sent, empty when the request line was not one.
    pub method: String,
    /// The request target as sent (truncated to 256 bytes, control characters as `?`).
    pub path: String,
    pub status: u16,
    /// Body bytes handed to the socket.
    pub bytes_sent: u64,
    /// The body length announced in Content-Length (0 for HEAD and errors without a body).
    pub body_len: u64,
    /// The whole response was written.
    pub complete: bool,
}

pub(super) fn as_secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl fmt::Display for RequestRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>9.3}s {}", self.at.as_secs_f64(), self.from)?;
        if let (Peer::Foreign, Some(uid)) = (self.from, self.peer_uid) {
            write!(f, "(uid {uid})")?;
        }
        write!(
            f,
            " {} {} {} {}/{} bytes {} in {:.3}s",
            self.method,
            self.path,
            self.status,
            self.bytes_sent,
            self.body_len,
            if self.complete {
                "complete"
            } else {
                "INCOMPLETE"
            },
            self.duration.as_secs_f64()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_shown_as_serde_names_them() {
        crate::names::assert_serde_names::<Peer>();
        let shown: Vec<String> = <Peer as strum::VariantArray>::VARIANTS
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(shown, ["guest", "foreign", "unchecked"]);
    }
}
