//! The host as doctor sees it: a root prefix for files and sysfs, a PATH for commands, a user and
//! its capabilities. The real host is `/` and the process's own PATH, uid and capabilities; tests build a fake root in a temporary directory.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::qemu;

#[derive(Debug, Clone)]
pub struct Host {
    /// Prefix for every absolute file path doctor reads (`/usr/share/…`, `/sys/…`, `/dev/kvm`).
    pub root: PathBuf,
    /// `$PATH`-style list where commands are looked up.
    pub path_var: OsString,
    /// The value of `$BOOTRIG_QEMU`, when set.
    pub qemu_override: Option<OsString>,
    /// Effective user id (0 = root).
    pub euid: u32,
    /// The effective capability set; `None` when it cannot be read.
    pub caps: Option<u64>,
}

/// Where administrators' tools live; a non-root PATH often lacks them, yet they run fine.
const SBIN_DIRS: [&str; 2] = ["/usr/sbin", "/sbin"];

impl Host {
    /// This machine, seen from `root` (normally `/`), with this process's PATH and user.
    pub fn from_env(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
            path_var: std::env::var_os("PATH").unwrap_or_default(),
            qemu_override: std::env::var_os(qemu::QEMU_ENV),
            euid: nix::unistd::geteuid().as_raw(),
            caps: crate::host::caps::effective().ok(),
        }
    }

    /// `abs` (an absolute path on the host) under the root prefix.
    pub fn file(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    /// A command on PATH, else in the sbin directories under the root prefix.
    pub fn command(&self, name: &str) -> Option<PathBuf> {
        qemu::find_on_path(&self.path_var, OsStr::new(name)).or_else(|| {
            SBIN_DIRS
                .iter()
                .map(|dir| self.file(dir).join(name))
                .find(|p| qemu::is_executable(p))
        })
    }

    /// The names in directory `abs`, sorted; empty when it is missing or unreadable.
    pub fn list_dir(&self, abs: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.file(abs))
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// A small sysfs/procfs text file, trimmed; `None` when missing.
    pub fn read_trimmed(&self, abs: &str) -> Option<String> {
        std::fs::read_to_string(self.file(abs))
            .ok()
            .map(|s| s.trim().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn files_live_under_the_root_prefix() {
        let host = Host {
            root: PathBuf::from("/tmp/fake"),
            path_var: OsString::new(),
            qemu_override: None,
            euid: 1000,
            caps: None,
        };
        assert_eq!(host.file("/dev/kvm"), Path::new("/tmp/fake/dev/kvm"));
    }

    #[test]
    fn commands_fall_back_to_sbin_under_the_root() {
        let root = tempfile::tempdir().unwrap();
        let sbin = root.path().join("usr/sbin");
        std::fs::create_dir_all(&sbin).unwrap();
        let tool = sbin.join("dnsmasq");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let host = Host {
            root: root.path().to_owned(),
            path_var: OsString::new(),
            qemu_override: None,
            euid: 1000,
            caps: None,
        };
        assert_eq!(host.command("dnsmasq"), Some(tool));
        assert_eq!(host.command("dhclient"), None);
    }
}
