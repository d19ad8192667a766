//! A named network namespace made with `ip netns add` (a bind mount at /run/netns/NAME), and the
//! hook that starts a child process inside it.
//!
//! Why `ip netns` rather than unshare(2) + our own bind mount: iproute2 already makes /run/netns
//! a shared mount so the namespace survives and is visible across mount namespaces, operators can
//! inspect it with `ip netns list` / `ip -n NAME …` while a run is alive, and every later step
//! (bridge, taps, addresses) uses `ip -n NAME` anyway. The cost is one fork/exec per step.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::ip::ip;
use super::NetError;
use crate::host::procs::NsId;

/// Where `ip netns add` mounts namespaces.
pub const NETNS_DIR: &str = "/run/netns";
/// Every namespace bootrig makes is named `bootrig-<owner pid>-<n>`.
pub const NAME_PREFIX: &str = "bootrig-";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh namespace name for this process: `bootrig-<pid>-<n>`.
pub fn fresh_name() -> String {
    format!(
        "{NAME_PREFIX}{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The owner pid a namespace name records, if it is one of bootrig's.
pub fn owner_from_name(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    let (pid, n) = rest.split_once('-')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

pub fn path_of(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Creates the namespace and brings its loopback up.
pub fn create(name: &str) -> Result<NsId, NetError> {
    ip(&["netns", "add", name])?;
    super::ip::ip_in(name, &["link", "set", "lo", "up"])?;
    NsId::of(&path_of(name)).ok_or_else(|| NetError::Io {
        path: path_of(name),
        source: io::Error::from(io::ErrorKind::NotFound),
    })
}

/// Unmounts and removes the namespace (it is freed once no process is left in it).
pub fn delete(name: &str) -> Result<(), NetError> {
    ip(&["netns", "delete", name])
}

/// Bootrig's namespaces that exist now, by name.
pub fn list_ours() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| owner_from_name(n).is_some())
        .collect();
    names.sort();
    names
}

/// Makes `command`'s child join the namespace at `netns_path` before it execs. Other pre_exec
/// hooks (such as [`crate::qemu::process::GroupChild::spawn`]'s) may be added too. The namespace
/// file is opened now (close-on-exec), so a missing namespace is an error here, not in the child.
pub fn enter_on_spawn(command: &mut Command, netns_path: &Path) -> Result<(), NetError> {
    let ns = File::open(netns_path).map_err(|source| NetError::Io {
        path: netns_path.to_owned(),
        source,
    })?;
    // SAFETY: the closure runs between fork and exec and calls only setns(2), a plain
    // system call (async-signal-safe); the File it owns lives as long as the Command.
    unsafe {
        command.pre_exec(move || {
            use nix::libc;
            if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_owner() {
        let a = fresh_name();
        let b = fresh_name();
        assert_ne!(a, b);
        assert_eq!(owner_from_name(&a), Some(std::process::id()));
        assert_eq!(owner_from_name("bootrig-12-3"), Some(12));
        assert_eq!(owner_from_name("bootrig-12"), None);
        assert_eq!(owner_from_name("bootrig-x-3"), None);
        assert_eq!(owner_from_name("other-12-3"), None);
    }
}
