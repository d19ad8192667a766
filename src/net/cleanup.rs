//! Finds what dead runs left — by their markers and by namespace name — and removes it: every
//! process inside the namespace (dnsmasq, QEMU), its links, the namespace, the marker. A
//! segment whose owner still runs is left alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::ip::ip_in;
use super::marker::{self, Marker};
use super::netns;
use super::segment::{kill_all_in, BRIDGE};
use super::NetError;
use crate::host::procs::{self, NsId};

#[derive(Debug, Clone, Serialize)]
pub struct KilledProcess {
    pub pid: u32,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    pub namespace: String,
    pub owner_pid: Option<u32>,
    pub killed: Vec<KilledProcess>,
    pub marker: Option<PathBuf>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    pub namespace: String,
    pub owner_pid: u32,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CleanupReport {
    pub removed: Vec<Removed>,
    /// Segments whose owning run is alive.
    pub kept: Vec<Kept>,
    /// Markers that could not be read (left in place).
    pub unreadable_markers: Vec<String>,
}

impl CleanupReport {
    pub fn errors(&self) -> impl Iterator<Item = &String> {
        self.removed
            .iter()
            .flat_map(|r| &r.errors)
            .chain(&self.unreadable_markers)
    }
}

/// What is known of one namespace: its marker (if any) and whether it is mounted.
struct Candidate {
    marker: Option<(PathBuf, Marker)>,
}

/// Removes every bootrig segment whose owner is not alive.
pub fn cleanup(state_dir: &Path) -> Result<CleanupReport, NetError> {
    let mut report = CleanupReport::default();
    let mut candidates: BTreeMap<String, Candidate> = BTreeMap::new();
    for path in marker::list(state_dir) {
        match marker::read(&path) {
            Ok(m) => {
                candidates.insert(
                    m.namespace.clone(),
                    Candidate {
                        marker: Some((path, m)),
                    },
                );
            }
            Err(e) => report.unreadable_markers.push(crate::error_chain(&e)),
        }
    }
    for name in netns::list_ours() {
        candidates.entry(name).or_insert(Candidate { marker: None });
    }
    for (name, candidate) in candidates {
        let (owner, start) = match &candidate.marker {
            Some((_, m)) => (Some(m.owner_pid), m.owner_start),
            None => (netns::owner_from_name(&name), None),
        };
        if let Some(pid) = owner.filter(|&pid| procs::alive(pid, start)) {
            report.kept.push(Kept {
                namespace: name,
                owner_pid: pid,
            });
            continue;
        }
        let marker = candidate.marker.as_ref().map(|(p, m)| (p.as_path(), m));
        report.removed.push(remove_segment(&name, marker));
    }
    Ok(report)
}

/// Removes one segment whatever its owner: processes in the namespace, links, namespace,
/// marker. Used by [`cleanup`] for dead owners.
pub fn remove_segment(namespace: &str, marker: Option<(&Path, &Marker)>) -> Removed {
    let mut removed = Removed {
        namespace: namespace.to_owned(),
        owner_pid: marker
            .map(|(_, m)| m.owner_pid)
            .or_else(|| netns::owner_from_name(namespace)),
        killed: Vec::new(),
        marker: None,
        errors: Vec::new(),
    };
    let mounted = netns::path_of(namespace).exists();
    // The recorded identity still finds processes of a namespace whose name was unmounted.
    let ns: Option<NsId> =
        NsId::of(&netns::path_of(namespace)).or_else(|| marker.and_then(|(_, m)| m.netns));
    if let Some(ns) = ns {
        let names: Vec<(u32, String)> = procs::in_namespace(ns)
            .into_iter()
            .map(|pid| (pid, procs::comm(pid)))
            .collect();
        let killed = kill_all_in(ns);
        removed.killed = names
            .into_iter()
            .filter(|(pid, _)| killed.contains(pid))
            .map(|(pid, name)| KilledProcess { pid, name })
            .collect();
        let left = procs::in_namespace(ns);
        if !left.is_empty() {
            removed
                .errors
                .push(format!("{namespace}: processes {left:?} survived SIGKILL"));
        }
    }
    if mounted {
        let mut links: Vec<String> = marker.map(|(_, m)| m.taps.clone()).unwrap_or_default();
        links.push(BRIDGE.into());
        for link in links {
            // A link already gone is fine: the namespace's deletion removes the rest.
            let _ = ip_in(namespace, &["link", "del", &link]);
        }
        if let Err(e) = netns::delete(namespace) {
            removed.errors.push(crate::error_chain(&e));
        }
    }
    if let Some((path, _)) = marker {
        match std::fs::remove_file(path) {
            Ok(()) => removed.marker = Some(path.to_owned()),
            Err(e) => removed.errors.push(format!("{}: {e}", path.display())),
        }
    }
    removed
}
