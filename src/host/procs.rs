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

/// The process's /proc/PID/stat, parsed by procfs (the command name may hold spaces and
/// parentheses).
fn stat(pid: u32) -> Option<procfs::process::Stat> {
    procfs::process::Process::new(i32::try_from(pid).ok()?)
        .ok()?
        .stat()
        .ok()
}

/// The process's start time in clock ticks since boot (field 22 of /proc/PID/stat).
pub fn start_ticks(pid: u32) -> Option<u64> {
    Some(stat(pid)?.starttime)
}

/// Whether `pid` runs (a zombie does not); with `start`, also that it is the same process.
pub fn alive(pid: u32, start: Option<u64>) -> bool {
    stat(pid).is_some_and(|stat| {
        !matches!(stat.state, 'Z' | 'X') && start.is_none_or(|ticks| stat.starttime == ticks)
    })
}

/// The short command name (/proc/PID/comm).
pub fn comm(pid: u32) -> String {
    stat(pid).map(|stat| stat.comm).unwrap_or_default()
}

/// Every live process whose network namespace is `ns`, except this one.
pub fn in_namespace(ns: NsId) -> Vec<u32> {
    let me = std::process::id();
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = all
        .filter_map(|p| u32::try_from(p.ok()?.pid).ok())
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
    fn a_name_with_spaces_and_parentheses_is_read_whole() {
        // comm is the executed file's name: a link named like that to sleep(1).
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("x) (y z");
        let sleep = ["/bin/sleep", "/usr/bin/sleep"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap();
        std::os::unix::fs::symlink(sleep, &link).unwrap();
        let mut child = std::process::Command::new(&link).arg("30").spawn().unwrap();
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while comm(pid) != "x) (y z" && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let name = comm(pid);
        let start = start_ticks(pid);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(name, "x) (y z");
        assert!(start.is_some());
        assert!(!alive(pid, None));
    }

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
