//! Which local process holds a connection's client end, from /proc: the socket's inode from
//! /proc/net/tcp{,6}, then the guest's process tree searched for it.

use procfs::net::TcpNetEntry;
use procfs::process::{FDTarget, Process};

use super::*;

/// Who holds the client end of a connection from `peer` to `server`, and the uid owning it.
/// Unchecked when the socket is not in the kernel's tables any more.
pub(super) fn identify(
    peer: SocketAddr,
    server: SocketAddr,
    guest_pid: u32,
) -> (Peer, Option<u32>) {
    let Some((inode, uid)) = client_socket(peer, server) else {
        return (Peer::Unchecked, None);
    };
    let guest = guest_pid != 0 && held_by_tree(guest_pid, inode);
    (if guest { Peer::Guest } else { Peer::Foreign }, Some(uid))
}

/// The inode and owner of the socket whose local end is `peer` and remote end `server`.
fn client_socket(peer: SocketAddr, server: SocketAddr) -> Option<(u64, u32)> {
    // A dual-stack client's socket is in tcp6, with v4-mapped addresses.
    [procfs::net::tcp(), procfs::net::tcp6()]
        .into_iter()
        .flatten()
        .flatten()
        .find_map(|entry| client_end(&entry, peer, server))
}

/// The inode and uid of `entry` when it is the client end from `peer` to `server`.
pub(super) fn client_end(
    entry: &TcpNetEntry,
    peer: SocketAddr,
    server: SocketAddr,
) -> Option<(u64, u32)> {
    let ends = (
        unmapped(entry.local_address),
        unmapped(entry.remote_address),
    );
    // Inode 0: a TIME_WAIT leftover of an earlier connection on the same ports.
    (ends == (peer, server) && entry.inode != 0).then_some((entry.inode, entry.uid))
}

/// A v4-mapped v6 address (a dual-stack socket in tcp6) as the v4 one.
fn unmapped(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => v6
            .ip()
            .to_ipv4_mapped()
            .map_or(addr, |v4| SocketAddr::new(IpAddr::V4(v4), v6.port())),
        v4 => v4,
    }
}

/// Whether `root` or a process it started (breadth first, [`MAX_GUEST_TREE`] at most) has
/// socket `inode` open.
fn held_by_tree(root: u32, inode: u64) -> bool {
    let mut queue = std::collections::VecDeque::from([root]);
    let mut looked = 0;
    while let Some(pid) = queue.pop_front() {
        looked += 1;
        if looked > MAX_GUEST_TREE {
            break;
        }
        let Ok(process) = i32::try_from(pid)
            .map_err(drop)
            .and_then(|p| Process::new(p).map_err(drop))
        else {
            continue;
        };
        let held = process.fd().is_ok_and(|mut fds| {
            fds.any(|fd| fd.is_ok_and(|fd| matches!(fd.target, FDTarget::Socket(i) if i == inode)))
        });
        if held {
            return true;
        }
        // Children are listed per thread.
        for task in process.tasks().into_iter().flatten().flatten() {
            queue.extend(task.children().unwrap_or_default());
        }
    }
    false
}
