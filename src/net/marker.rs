//! The record a run leaves in the state directory while its segment exists
//! (`<state dir>/<namespace>.json`), so `bootrig cleanup` can tell what a dead run made.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::NetError;
use crate::host::procs::NsId;

/// Where runs record their segments by default.
pub const DEFAULT_STATE_DIR: &str = "/run/bootrig/net";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub namespace: String,
    /// The namespace's identity, so its processes are found even once its name is unmounted.
    pub netns: Option<NsId>,
    pub owner_pid: u32,
    /// The owner's start time (clock ticks since boot): a recycled pid is not the owner.
    pub owner_start: Option<u64>,
    pub bridge: String,
    pub taps: Vec<String>,
    pub dnsmasq_pid: Option<u32>,
    pub qemu_pids: Vec<u32>,
    pub run_dir: PathBuf,
}

pub fn path_for(state_dir: &Path, namespace: &str) -> PathBuf {
    state_dir.join(format!("{namespace}.json"))
}

/// Writes the marker whole (temporary file, then rename): a reader never sees half of one.
pub fn write(state_dir: &Path, marker: &Marker) -> Result<PathBuf, NetError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| NetError::Io { path, source }
    };
    std::fs::create_dir_all(state_dir).map_err(io(state_dir))?;
    let path = path_for(state_dir, &marker.namespace);
    let tmp = path.with_extension("json.tmp");
    // Serialising plain data to a string cannot fail.
    let text = serde_json::to_string_pretty(marker).unwrap_or_default();
    std::fs::write(&tmp, text + "\n").map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(path)
}

pub fn read(path: &Path) -> Result<Marker, NetError> {
    let text = std::fs::read_to_string(path).map_err(|source| NetError::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| NetError::Marker {
        path: path.to_owned(),
        source,
    })
}

/// Every `*.json` in the state directory (none when it does not exist).
pub fn list(state_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(state_dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let marker = Marker {
            namespace: "bootrig-1-0".into(),
            netns: Some(NsId {
                dev: 4,
                ino: 4026532000,
            }),
            owner_pid: 1,
            owner_start: Some(5),
            bridge: "br0".into(),
            taps: vec!["tap0".into()],
            dnsmasq_pid: Some(7),
            qemu_pids: vec![9],
            run_dir: "/tmp/r".into(),
        };
        let path = write(dir.path(), &marker).unwrap();
        assert_eq!(path, dir.path().join("bootrig-1-0.json"));
        assert_eq!(read(&path).unwrap(), marker);
        assert_eq!(list(dir.path()), vec![path]);
        let bad = dir.path().join("bootrig-2-0.json");
        std::fs::write(&bad, "{\"namespace\": 3").unwrap();
        let e = read(&bad).unwrap_err();
        assert!(e.to_string().contains("bootrig-2-0.json"), "{e}");
    }

    #[test]
    fn a_bad_marker_keeps_the_json_error_as_its_source_once() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bootrig-3-0.json");
        std::fs::write(&bad, "{\"namespace\": 3").unwrap();
        let e = read(&bad).unwrap_err();
        let cause = std::error::Error::source(&e)
            .expect("the serde error is the source")
            .to_string();
        let chain = crate::error_chain(&e);
        assert_eq!(chain.matches(&cause).count(), 1, "{chain}");
        assert!(chain.starts_with("marker "), "{chain}");
    }
}
