//! VFIO passthrough of a lab ConnectX/BlueField adapter: the preflight checks (device table,
//! IOMMU group, what the host depends on, /dev/vfio, memlock, ROM), binding the group to
//! vfio-pci with an on-disk record and a per-adapter lock, and putting the host back — by the
//! [`Passthrough`] guard's drop, or by `bootrig vfio restore` after a hard kill.
//!
//! Everything reads a [`HostPaths`] tree (sysfs, /dev, /proc) and changes the host only through
//! [`Kernel`], so a sysfs tree captured on a lab host, or built by a test, works like the live
//! one.

pub mod bdf;
pub mod bind;
pub mod device;
pub mod host_use;
pub mod ids;
pub mod kernel;
pub mod lock;
pub mod memlock;
pub mod passthrough;
pub mod preflight;
pub mod record;
pub mod rom;
pub mod sysfs;

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

pub use bdf::{BadBdf, Bdf};
pub use kernel::{Kernel, SysfsKernel};
pub use lock::Holder;
pub use passthrough::{restore_all, Notice, Passthrough, Request, RestoreOutcome, SriovRequest};
pub use preflight::{preflight, CheckOptions, CheckRow, Preflight, Scope, Status};
pub use record::DEFAULT_STATE_DIR;
pub use sysfs::HostPaths;

/// The driver VFIO passthrough binds.
pub const VFIO_DRIVER: &str = "vfio-pci";

#[derive(Debug, Error)]
pub enum VfioError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {value:?} to {path}")]
    Write {
        path: PathBuf,
        value: String,
        source: std::io::Error,
    },
    #[error("{path}: expected {expected}, found {found:?}")]
    Malformed {
        path: PathBuf,
        expected: &'static str,
        found: String,
    },
    #[error("reading or setting RLIMIT_MEMLOCK")]
    Rlimit(#[source] nix::Error),
    #[error("option ROM {what}")]
    Rom { what: String, source: rom::RomError },
    #[error("{device} cannot be passed through:\n{}", .failures.join("\n"))]
    Preflight {
        device: Bdf,
        /// One line per failed check, each with its fix.
        failures: Vec<String>,
    },
    #[error(
        "{device} is in use by another bootrig run ({}); waited {waited:?} for {lock}",
        holder.as_ref().map_or_else(|| "holder unknown".to_owned(), |h| h.to_string())
    )]
    Locked {
        device: Bdf,
        holder: Option<Holder>,
        lock: PathBuf,
        waited: Duration,
    },
    #[error("writing the VFIO record")]
    SaveRecord(#[from] crate::fsutil::OutputError),
    #[error("VFIO record {path}")]
    BadRecord {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "{device}: expected driver {expected} after {waited:?}, found {}{}",
        found.as_deref().unwrap_or("none"),
        fix.as_deref().map(|f| format!(" ({f})")).unwrap_or_default()
    )]
    NotBound {
        device: Bdf,
        expected: String,
        found: Option<String>,
        waited: Duration,
        fix: Option<String>,
    },
    #[error("{path} did not appear within {waited:?} after binding the group to vfio-pci")]
    NoGroupNode { path: PathBuf, waited: Duration },
    #[error("SR-IOV on {pf}: {message}")]
    Sriov { pf: Bdf, message: String },
    #[error(
        "restoring {device} is incomplete; the record {record} stays for `{}`:\n{}",
        record::restore_command(.record.parent().unwrap_or(std::path::Path::new(""))),
        .failures.join("\n")
    )]
    Restore {
        device: Bdf,
        record: PathBuf,
        failures: Vec<String>,
    },
}
