//! `backend = { bridge = "NAME" }`: the guest on an existing host bridge (a lab's network with
//! its own DHCP server). bootrig adds one tap to the bridge for the run and removes it after;
//! the bridge itself is the lab's and is never changed.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use super::ip::ip;
use super::NetError;

/// Taps this process made, for unique names.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A tap on a host bridge, removed on drop.
pub struct HostTap {
    name: String,
    removed: bool,
}

impl HostTap {
    /// Makes a tap (`brt<pid>-<n>`, within the 15-byte interface name limit) and enslaves it to
    /// `bridge`, which must exist and be a bridge.
    pub fn attach(bridge: &str) -> Result<Self, NetError> {
        Self::attach_under(Path::new("/sys"), bridge)
    }

    fn attach_under(sysfs: &Path, bridge: &str) -> Result<Self, NetError> {
        if !sysfs.join("class/net").join(bridge).join("bridge").is_dir() {
            return Err(NetError::NoBridge {
                bridge: bridge.to_string(),
            });
        }
        crate::host::caps::require_segment_caps()?;
        let name = tap_name(std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        ip(&["tuntap", "add", "dev", &name, "mode", "tap"])?;
        let tap = Self {
            name,
            removed: false,
        };
        // On failure the drop removes the tap again.
        ip(&["link", "set", "dev", &tap.name, "master", bridge])?;
        ip(&["link", "set", "dev", &tap.name, "up"])?;
        Ok(tap)
    }

    /// The tap's name, for QEMU's `-netdev tap,ifname=`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Removes the tap; what went wrong, if anything.
    pub fn detach(mut self) -> Vec<String> {
        self.removed = true;
        match ip(&["link", "del", "dev", &self.name]) {
            Ok(()) => Vec::new(),
            Err(e) => vec![crate::error_chain(&e)],
        }
    }
}

impl Drop for HostTap {
    fn drop(&mut self) {
        if !self.removed {
            let _ = ip(&["link", "del", "dev", &self.name]);
        }
    }
}

/// `brt<pid>-<n>`, cut to the kernel's 15 bytes (IFNAMSIZ - 1).
fn tap_name(pid: u32, n: u32) -> String {
    let mut name = format!("brt{pid}-{n}");
    name.truncate(15);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_limit_and_differ() {
        assert_eq!(tap_name(4242, 0), "brt4242-0");
        assert!(tap_name(4_194_304, 4_000_000_000).len() <= 15);
        assert_ne!(tap_name(1, 1), tap_name(1, 2));
    }

    #[test]
    fn a_missing_or_non_bridge_interface_is_refused_before_anything_is_made() {
        let sysfs = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(sysfs.path().join("class/net/eth0")).unwrap();
        for name in ["br-lab", "eth0"] {
            let e = HostTap::attach_under(sysfs.path(), name).err().unwrap();
            assert!(e.to_string().contains(name), "{e}");
            assert!(e.to_string().contains("bridge"), "{e}");
        }
    }
}
