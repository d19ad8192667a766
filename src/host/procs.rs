//! Processes as /proc shows them: alive or not (a zombie is not), their start time (so a
//! recycled pid is not taken for the one recorded), and which network namespace they are in.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A namespace's identity: the device and inode of its nsfs file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NsId {
    pub dev: u64,
    pub ino: u64,
}

impl NsId {
    /// The namespace `path` refers to (/run/netns/NAME or /proc/PID/ns/net).
    pub fn of(path: &Path) -> Option<NsId> {
        let meta = std::fs::metadata(path).ok()?;
        Some(NsId {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

/// Fields after the parenthesised command name of /proc/PID/stat (the name may hold spaces).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    Some(rest.split(' ').map(str::to_owned).collect())
}

/// The process's start time in clock ticks since boot (field 22 of /proc/PID/stat).
pub fn start_ticks(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Whether `pid` runs (a zombie does not); with `start`, also that it is the same process.
pub fn alive(pid: u32, start: Option<u64>) -> bool {
    let Some(fields) = stat_fields(pid) else {
        return false;
    };
    let running = fields
        .first()
        .is_some_and(|state| state != "Z" && state != "X");
    let same = match start {
        Some(ticks) => fields.get(19).and_then(|t| t.parse::<u64>().ok()) == Some(ticks),
        None => true,
    };
    running && same
}

/// The short command name (/proc/PID/comm).
pub fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Every live process whose network namespace is `ns`, except this one.
pub fn in_namespace(ns: NsId) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| NsId::of(Path::new(&format!("/proc/{pid}/ns/net"))) == Some(ns))
        .filter(|&pid| alive(pid, None))
        .collect();
    pids.sort_unstable();
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_with_its_own_start_time() {
        let me = std::process::id();
        let start = start_ticks(me).unwrap();
        assert!(alive(me, Some(start)));
        assert!(!alive(me, Some(start + 1)));
        assert!(!alive(u32::MAX, None));
        let mine = NsId::of(Path::new("/proc/self/ns/net")).unwrap();
        // Threads share the namespace, so this process's parent (same host namespace) is there.
        let parent = std::os::unix::process::parent_id();
        assert!(in_namespace(mine).contains(&parent));
        assert!(!in_namespace(mine).contains(&me));
    }
}
