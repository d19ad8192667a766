//! `bootrig doctor`: checks this host for what bootrig needs and says how to get what is missing.
//! Each area (QEMU and accelerators, firmware, tools, VFIO) is one module producing [`Check`]
//! rows; [`Report::ready`] is true when every row the default path needs (QEMU + TCG, SeaBIOS,
//! iPXE ROMs, cpio tooling) is ok.

mod emulator;
mod firmware;
mod host;
mod render;
mod tools;
mod vfio;

use std::time::Duration;

use serde::Serialize;
use thiserror::Error;

pub use host::Host;
pub use render::table;
pub use vfio::PciDevice;

use crate::qemu::accel::Accel;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Missing,
    Warn,
    /// Neither good nor bad: e.g. no lab hardware on a developer machine.
    Info,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Missing => "missing",
            Status::Warn => "warn",
            Status::Info => "info",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    /// Needed for the default path; a required check that is not ok makes doctor exit 1.
    pub required: bool,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn new(name: impl Into<String>, status: Status, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status,
            required: false,
            detail: detail.into(),
            fix: None,
        }
    }
    fn required(mut self) -> Self {
        self.required = true;
        self
    }
    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// How to get a Debian package, the way every fix is phrased.
fn install(package: &str) -> String {
    format!("apt-get install {package} (or run images/setup)")
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// Everything the default path needs is here.
    pub ready: bool,
    /// What `accel = "auto"` picks on this host; `None` when QEMU is missing.
    pub accel: Option<Accel>,
    pub checks: Vec<Check>,
    pub mellanox_devices: Vec<PciDevice>,
}

impl Report {
    /// The required checks that are not ok.
    pub fn blockers(&self) -> impl Iterator<Item = &Check> {
        self.checks
            .iter()
            .filter(|c| c.required && c.status != Status::Ok)
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Bound for each accelerator probe.
    pub probe_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            probe_timeout: crate::qemu::accel::DEFAULT_TIMEOUT,
        }
    }
}

#[derive(Debug, Error)]
pub enum DoctorError {
    #[error("cannot create a temporary directory for the accelerator probe")]
    Workdir(#[source] std::io::Error),
}

/// Runs every check against `host`.
pub fn run(host: &Host, options: &Options) -> Result<Report, DoctorError> {
    let workdir = tempfile::Builder::new()
        .prefix("bootrig-doctor-")
        .tempdir()
        .map_err(DoctorError::Workdir)?;
    let mut checks = Vec::new();
    let accel = emulator::checks(host, options.probe_timeout, workdir.path(), &mut checks);
    firmware::checks(host, &mut checks);
    tools::checks(host, &mut checks);
    let mellanox_devices = vfio::checks(host, &mut checks);
    let mut report = Report {
        ready: false,
        accel,
        checks,
        mellanox_devices,
    };
    let ready = report.blockers().next().is_none();
    report.ready = ready;
    Ok(report)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Fake hosts for the unit tests.
    use super::*;
    use std::ffi::OsString;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    pub struct FakeHost {
        pub dir: tempfile::TempDir,
        pub host: Host,
    }

    impl FakeHost {
        /// An empty root, an empty PATH (its `bin` directory), not root.
        pub fn empty() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let bin = dir.path().join("path-bin");
            std::fs::create_dir(&bin).unwrap();
            let host = Host {
                root: dir.path().join("root"),
                path_var: OsString::from(&bin),
                qemu_override: None,
                euid: 1000,
            };
            std::fs::create_dir(&host.root).unwrap();
            Self { dir, host }
        }

        pub fn bin(&self) -> PathBuf {
            self.dir.path().join("path-bin")
        }

        /// Creates `abs` under the fake root with `content`.
        pub fn file(&self, abs: &str, content: &[u8]) -> PathBuf {
            let path = self.host.file(abs);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content).unwrap();
            path
        }

        /// Puts an executable script `name` on the fake PATH.
        pub fn script(&self, name: &str, body: &str) -> PathBuf {
            let path = self.bin().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path
        }

        /// Puts the real command `name` (found on this process's PATH) on the fake PATH.
        pub fn link_real(&self, name: &str) {
            let real = crate::qemu::find_on_path(
                &std::env::var_os("PATH").unwrap_or_default(),
                name.as_ref(),
            )
            .or_else(|| {
                ["/usr/sbin", "/sbin"]
                    .iter()
                    .map(|d| Path::new(d).join(name))
                    .find(|p| p.exists())
            })
            .unwrap_or_else(|| panic!("{name} not on this host: run images/setup first"));
            std::os::unix::fs::symlink(real, self.bin().join(name)).unwrap();
        }
    }

    pub fn find<'a>(checks: &'a [Check], name: &str) -> &'a Check {
        checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no check named {name:?} in {checks:#?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn an_empty_host_is_not_ready_and_says_what_to_install() {
        let fake = FakeHost::empty();
        let report = run(&fake.host, &Options::default()).unwrap();
        assert!(!report.ready);
        assert_eq!(report.accel, None);
        let blockers: Vec<&str> = report.blockers().map(|c| c.name.as_str()).collect();
        for name in [
            "qemu",
            "accel tcg",
            "seabios",
            "ipxe virtio",
            "cpio",
            "gzip",
        ] {
            assert!(blockers.contains(&name), "{name} not among {blockers:?}");
        }
        let seabios = find(&report.checks, "seabios");
        assert_eq!(seabios.status, Status::Missing);
        let fix = seabios.fix.as_deref().unwrap();
        assert!(
            fix.contains("seabios") && fix.contains("images/setup"),
            "{fix}"
        );
    }

    #[test]
    fn a_complete_fake_host_with_real_qemu_is_ready() {
        let fake = FakeHost::empty();
        fake.file("/usr/share/seabios/bios-256k.bin", b"x");
        fake.file("/usr/lib/ipxe/qemu/pxe-virtio.rom", b"x");
        fake.file("/usr/lib/ipxe/qemu/efi-virtio.rom", b"x");
        for tool in ["qemu-system-x86_64", "cpio", "gzip"] {
            fake.link_real(tool);
        }
        let options = Options {
            probe_timeout: Duration::from_secs(5),
        };
        let report = run(&fake.host, &options).unwrap();
        let blockers: Vec<&Check> = report.blockers().collect();
        assert!(report.ready, "{blockers:#?}");
        // No /dev/kvm in the fake root: KVM is not even probed, auto means TCG.
        assert_eq!(report.accel, Some(Accel::Tcg));
        assert_eq!(find(&report.checks, "ovmf").status, Status::Missing);
        assert!(!find(&report.checks, "ovmf").required);
    }

    #[test]
    fn this_host_is_ready_and_the_kvm_probe_is_bounded() {
        let host = Host::from_env(std::path::Path::new("/"));
        let options = Options {
            probe_timeout: Duration::from_secs(2),
        };
        let start = std::time::Instant::now();
        let report = run(&host, &options).unwrap();
        // Two probes and a --version, each bounded by 2 s.
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "{:?}",
            start.elapsed()
        );
        let blockers: Vec<&Check> = report.blockers().collect();
        assert!(report.ready, "run images/setup first: {blockers:#?}");
        assert_eq!(find(&report.checks, "accel tcg").status, Status::Ok);
        assert!(report.accel.is_some());
    }
}
