//! QEMU on this host: which binary ([`locate`]), which version ([`query_version`]), which
//! accelerator really works ([`accel`]), and children that never outlive us ([`process`]).

pub mod accel;
pub mod firmware;
pub mod machine;
pub mod process;
pub mod qmp;
pub mod socket;

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Serialize;
use thiserror::Error;

use process::GroupChild;

/// The system emulator bootrig drives.
pub const QEMU_BINARY: &str = "qemu-system-x86_64";
/// The environment variable that names another QEMU binary (a path, or a name looked up on PATH).
pub const QEMU_ENV: &str = "BOOTRIG_QEMU";
/// Oldest QEMU bootrig supports: Debian 12's, whose options and QMP schema bootrig is written for.
pub const MIN_VERSION: QemuVersion = QemuVersion {
    major: 7,
    minor: 2,
    micro: 0,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct QemuVersion {
    pub major: u32,
    pub minor: u32,
    pub micro: u32,
}

impl fmt::Display for QemuVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

#[derive(Debug, Error)]
pub enum LocateError {
    #[error("{QEMU_ENV}={value}: no executable file there")]
    OverrideNotFound { value: String },
    #[error("{QEMU_BINARY} not found on PATH")]
    NotOnPath,
}

#[derive(Debug, Error)]
pub enum VersionError {
    #[error("{qemu}: cannot run it")]
    Spawn {
        qemu: PathBuf,
        source: std::io::Error,
    },
    #[error("{qemu} --version did not finish within {timeout:?}")]
    TimedOut { qemu: PathBuf, timeout: Duration },
    #[error("{qemu} --version failed ({status})")]
    Failed { qemu: PathBuf, status: String },
    #[error("{qemu} --version: expected \"QEMU emulator version X.Y.Z\" on its first line, got {first_line:?}")]
    Unrecognised { qemu: PathBuf, first_line: String },
}

impl QemuVersion {
    /// Parses the first line of `qemu-system-* --version`, e.g.
    /// `QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)`; a missing micro is 0.
    pub fn parse(output: &str) -> Option<Self> {
        let first = output.lines().next()?;
        let rest = first.split("version ").nth(1)?;
        let number = rest.split(|c: char| c.is_whitespace()).next()?;
        let mut parts = number.split('.').map(|p| p.parse::<u32>());
        let major = parts.next()?.ok()?;
        let minor = parts.next()?.ok()?;
        let micro = match parts.next() {
            Some(p) => p.ok()?,
            None => 0,
        };
        Some(Self {
            major,
            minor,
            micro,
        })
    }
}

/// Finds QEMU: `override_value` (the value of `$BOOTRIG_QEMU`) when set, else
/// `qemu-system-x86_64` on `path_var` (a `$PATH`-style list).
pub fn locate(path_var: &OsStr, override_value: Option<&OsStr>) -> Result<PathBuf, LocateError> {
    match override_value {
        Some(value) if !value.is_empty() => {
            let found = if Path::new(value).components().count() > 1 {
                Some(PathBuf::from(value)).filter(|p| is_executable(p))
            } else {
                find_on_path(path_var, value)
            };
            found.ok_or_else(|| LocateError::OverrideNotFound {
                value: value.to_string_lossy().into_owned(),
            })
        }
        _ => find_on_path(path_var, OsStr::new(QEMU_BINARY)).ok_or(LocateError::NotOnPath),
    }
}

/// The first executable `name` in the directories of `path_var`.
pub fn find_on_path(path_var: &OsStr, name: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path_var)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// A regular file (after symlinks) with an execute bit.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Runs `qemu --version`, bounded by `timeout` (a broken wrapper script must not hang doctor).
pub fn query_version(qemu: &Path, timeout: Duration) -> Result<QemuVersion, VersionError> {
    let out = tempfile::tempfile().map_err(|source| VersionError::Spawn {
        qemu: qemu.to_owned(),
        source,
    })?;
    let stdout = out.try_clone().map_err(|source| VersionError::Spawn {
        qemu: qemu.to_owned(),
        source,
    })?;
    let mut child = GroupChild::spawn(
        Command::new(qemu)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::null()),
    )
    .map_err(|source| VersionError::Spawn {
        qemu: qemu.to_owned(),
        source,
    })?;
    let status = match child.wait_timeout(timeout) {
        Ok(Some(status)) => status,
        Ok(None) => {
            return Err(VersionError::TimedOut {
                qemu: qemu.to_owned(),
                timeout,
            })
        }
        Err(source) => {
            return Err(VersionError::Spawn {
                qemu: qemu.to_owned(),
                source,
            })
        }
    };
    if !status.success() {
        return Err(VersionError::Failed {
            qemu: qemu.to_owned(),
            status: status.to_string(),
        });
    }
    let text = read_all(out).unwrap_or_default();
    QemuVersion::parse(&text).ok_or_else(|| VersionError::Unrecognised {
        qemu: qemu.to_owned(),
        first_line: text.lines().next().unwrap_or("").to_owned(),
    })
}

fn read_all(mut file: std::fs::File) -> std::io::Result<String> {
    use std::io::{Read, Seek};
    file.rewind()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn parses_debian_version_line() {
        let v = QemuVersion::parse(
            "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022",
        )
        .unwrap();
        assert_eq!(v.to_string(), "7.2.22");
        assert!(v >= MIN_VERSION);
    }

    #[test]
    fn parses_versions_without_micro_or_suffix_and_orders_them() {
        let old = QemuVersion::parse("QEMU emulator version 6.2\n").unwrap();
        assert_eq!(old.to_string(), "6.2.0");
        assert!(old < MIN_VERSION);
        let dev = QemuVersion::parse("QEMU emulator version 9.1.50 (v9.1.0-123-gabc)").unwrap();
        assert!(dev > MIN_VERSION);
        assert_eq!(dev.minor, 1);
    }

    #[test]
    fn rejects_what_is_not_a_version_line() {
        assert_eq!(QemuVersion::parse(""), None);
        assert_eq!(QemuVersion::parse("qemu: unknown option"), None);
        assert_eq!(QemuVersion::parse("QEMU emulator version x.y"), None);
    }

    fn fake_exe(dir: &Path, name: &str, script: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn locate_prefers_override_and_reports_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let on_path = fake_exe(dir.path(), QEMU_BINARY, "#!/bin/sh\n");
        let other = fake_exe(dir.path(), "my-qemu", "#!/bin/sh\n");
        let path_var = dir.path().as_os_str();
        assert_eq!(locate(path_var, None).unwrap(), on_path);
        assert_eq!(locate(path_var, Some(other.as_os_str())).unwrap(), other);
        assert_eq!(
            locate(path_var, Some(OsStr::new("my-qemu"))).unwrap(),
            other
        );
        let err = locate(path_var, Some(OsStr::new("/nonexistent/qemu"))).unwrap_err();
        assert!(err.to_string().contains("BOOTRIG_QEMU=/nonexistent/qemu"));
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            locate(empty.path().as_os_str(), None),
            Err(LocateError::NotOnPath)
        ));
    }

    #[test]
    fn version_query_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let hang = fake_exe(dir.path(), "hang", "#!/bin/sh\nsleep 30\n");
        let start = std::time::Instant::now();
        let err = query_version(&hang, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, VersionError::TimedOut { .. }), "{err}");
        // The fake sleeps 30 s: well under that means the 300 ms bound cut it short, even on a
        // loaded host.
        assert!(start.elapsed() < Duration::from_secs(20));
        let junk = fake_exe(dir.path(), "junk", "#!/bin/sh\necho hello\n");
        let err = query_version(&junk, Duration::from_secs(5)).unwrap_err();
        assert!(err.to_string().contains("\"hello\""), "{err}");
    }
}
