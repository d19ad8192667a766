//! The on-disk record of what a passthrough changed, written atomically before each change so
//! that `bootrig vfio restore` can put the host back after a hard kill.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::bdf::Bdf;
use super::sysfs::{io_error, list_dir};
use super::VfioError;

/// Where records and locks live unless configured.
pub const DEFAULT_STATE_DIR: &str = "/run/bootrig/vfio";
const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    /// The adapter function the run asked for (the lock's key; the PF when passing a VF).
    pub device: Bdf,
    pub pid: u32,
    pub started_unix: u64,
    pub scenario: String,
    /// Group members moved to vfio-pci, with what they had before.
    pub members: Vec<MemberRecord>,
    /// The VF count to put back, when the run changed it.
    pub sriov: Option<SriovRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub bdf: Bdf,
    /// The driver bound before (`None`: none was).
    pub driver: Option<String>,
    /// `driver_override` before (`None`: unset).
    pub driver_override: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SriovRecord {
    pub pf: Bdf,
    pub numvfs: u32,
}

impl Record {
    pub fn new(device: Bdf, scenario: &str) -> Self {
        Self {
            version: VERSION,
            device,
            pid: std::process::id(),
            started_unix: super::lock::now_unix(),
            scenario: scenario.to_owned(),
            members: Vec::new(),
            sriov: None,
        }
    }

    /// True when nothing was changed yet (nothing to restore).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.sriov.is_none()
    }
}

pub fn record_path(state_dir: &Path, device: &Bdf) -> PathBuf {
    state_dir.join(format!("{device}.json"))
}

/// The command that replays the records in `state_dir`, as a person would paste it:
/// `--state-dir` only when not the default (restore would not look elsewhere), quoted for sh.
pub fn restore_command(state_dir: &Path) -> String {
    if state_dir == Path::new(DEFAULT_STATE_DIR) {
        return "bootrig vfio restore".to_string();
    }
    format!(
        "bootrig vfio restore --state-dir {}",
        crate::shell::shell_quote(&state_dir.display().to_string())
    )
}

/// Writes the record (temporary file + rename: never half-written).
pub fn save(state_dir: &Path, record: &Record) -> Result<(), VfioError> {
    std::fs::create_dir_all(state_dir).map_err(io_error(state_dir))?;
    let path = record_path(state_dir, &record.device);
    let mut json = serde_json::to_vec_pretty(record).map_err(|source| VfioError::BadRecord {
        path: path.clone(),
        source,
    })?;
    json.push(b'\n');
    crate::fsutil::write_atomic(&path, &json, true)?;
    Ok(())
}

pub fn load(path: &Path) -> Result<Record, VfioError> {
    let text = std::fs::read(path).map_err(io_error(path))?;
    let record: Record = serde_json::from_slice(&text).map_err(|source| VfioError::BadRecord {
        path: path.to_owned(),
        source,
    })?;
    if record.version != VERSION {
        return Err(VfioError::Malformed {
            path: path.to_owned(),
            expected: "a version 1 record",
            found: format!("version {}", record.version),
        });
    }
    Ok(record)
}

pub fn remove(path: &Path) -> Result<(), VfioError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(path)(e)),
        _ => Ok(()),
    }
}

/// Every record in the state dir (`<bdf>.json`), sorted.
pub fn list(state_dir: &Path) -> Result<Vec<PathBuf>, VfioError> {
    Ok(list_dir(state_dir)?
        .into_iter()
        .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
        .map(|n| state_dir.join(n))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restore_command_names_a_state_dir_that_is_not_the_default() {
        assert_eq!(
            restore_command(Path::new(DEFAULT_STATE_DIR)),
            "bootrig vfio restore"
        );
        assert_eq!(
            restore_command(Path::new("/srv/lab/state")),
            "bootrig vfio restore --state-dir /srv/lab/state"
        );
        assert_eq!(
            restore_command(Path::new("/srv/lab's state")),
            r"bootrig vfio restore --state-dir '/srv/lab'\''s state'"
        );
    }

    #[test]
    fn records_round_trip_and_bad_ones_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let mut rec = Record::new("0000:03:00.0".parse().unwrap(), "lab-cx6");
        assert!(rec.is_empty());
        rec.members.push(MemberRecord {
            bdf: "0000:03:00.0".parse().unwrap(),
            driver: Some("mlx5_core".into()),
            driver_override: None,
        });
        rec.sriov = Some(SriovRecord {
            pf: "0000:03:00.0".parse().unwrap(),
            numvfs: 0,
        });
        save(&state, &rec).unwrap();
        let path = record_path(&state, &rec.device);
        assert_eq!(path.file_name().unwrap(), "0000:03:00.0.json");
        assert_eq!(load(&path).unwrap(), rec);
        assert_eq!(list(&state).unwrap(), vec![path.clone()]);

        std::fs::write(&path, b"{\"version\": 1, \"device\": \"zz\"").unwrap();
        let err = load(&path).unwrap_err();
        assert!(matches!(err, VfioError::BadRecord { .. }), "{err}");
        assert!(err.to_string().contains("0000:03:00.0.json"), "{err}");
        remove(&path).unwrap();
        remove(&path).unwrap();
        assert!(list(&state).unwrap().is_empty());
    }
}
