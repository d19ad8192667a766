//! Which local process holds a connection's client end, from /proc: the socket's inode from
//! /proc/net/tcp{,6}, then the guest's process tree searched for it.

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
pub(super) fn client_socket(peer: SocketAddr, server: SocketAddr) -> Option<(u64, u32)> {
    // A dual-stack client's socket is in tcp6, with v4-mapped addresses.
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 10
                || proc_net_addr(fields[1]) != Some(peer)
                || proc_net_addr(fields[2]) != Some(server)
            {
                continue;
            }
            let (Ok(uid), Ok(inode)) = (fields[7].parse(), fields[9].parse::<u64>()) else {
                continue;
            };
            // Inode 0: a TIME_WAIT leftover of an earlier connection on the same ports.
            if inode != 0 {
                return Some((inode, uid));
            }
        }
    }
    None
}

/// An address as /proc/net/tcp{,6} prints it: the address as native-endian 32-bit words in hex,
/// a colon, the port in hex. A v4-mapped v6 address is given as the v4 one.
pub(super) fn proc_net_addr(field: &str) -> Option<SocketAddr> {
    let (addr, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = addr.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            let v6 = Ipv6Addr::from(bytes);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Whether `root` or a process it started (breadth first, [`MAX_GUEST_TREE`] at most) has
/// socket `inode` open.
pub(super) fn held_by_tree(root: u32, inode: u64) -> bool {
    let wanted = format!("socket:[{inode}]");
    let mut queue = std::collections::VecDeque::from([root]);
    let mut looked = 0;
    while let Some(pid) = queue.pop_front() {
        looked += 1;
        if looked > MAX_GUEST_TREE {
            break;
        }
        if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            let held = fds.flatten().any(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|target| target.as_os_str() == wanted.as_str())
            });
            if held {
                return true;
            }
        }
        // Children are listed per thread.
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for task in tasks.flatten() {
                if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
                    queue.extend(
                        list.split_whitespace()
                            .filter_map(|p| p.parse::<u32>().ok()),
                    );
                }
            }
        }
    }
    false
}
