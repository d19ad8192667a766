//! A child process in its own process group that is killed, group and all, when dropped — also
//! while unwinding from a panic — so no QEMU outlives the code that started it.

use std::io;
use std::process::{Child, Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// How often a bounded wait looks at the child: short next to QEMU's start-up time.
const POLL: Duration = Duration::from_millis(5);

/// A running child that leads its own process group.
pub struct GroupChild {
    child: Child,
    /// Set once the child is reaped: its pid (and group id) may then belong to someone else.
    status: Option<ExitStatus>,
}

impl GroupChild {
    /// Spawns `command` as the leader of a new process group. The child also gets SIGKILL when
    /// bootrig dies (PR_SET_PDEATHSIG): its own group is out of reach of the terminal's Ctrl-C,
    /// and a killed bootrig runs no Drop, so this is what keeps a QEMU from outliving it.
    pub fn spawn(command: &mut Command) -> io::Result<Self> {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
        let parent = nix::unistd::getpid();
        // SAFETY: the closure runs between fork and exec and calls only prctl, getppid and
        // _exit, which are async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                use nix::libc;
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if libc::getppid() != parent.as_raw() {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let mut attempts = 0;
        let child = loop {
            match command.spawn() {
                // ETXTBSY: a just-written executable is still open in a child another thread is
                // forking; it closes on that child's exec, so retrying shortly succeeds.
                Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) && attempts < 20 => {
                    attempts += 1;
                    thread::sleep(POLL);
                }
                other => break other?,
            }
        };
        Ok(Self {
            child,
            status: None,
        })
    }

    /// The child's stdout pipe, if it was piped (once).
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// The child's stderr pipe, if it was piped (once).
    pub fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.stderr.take()
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for the child to exit. `Ok(None)` means it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let deadline = Instant::now() + timeout;
        loop {
            if self.has_exited()? {
                return self.reap().map(Some);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            thread::sleep(POLL.min(deadline - now));
        }
    }

    /// Kills the whole group and reaps the leader.
    pub fn kill(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        self.kill_group();
        self.reap()
    }

    /// Whether the leader has exited, without reaping it: the unreaped zombie keeps the group
    /// id reserved, so the group can still be swept safely afterwards.
    fn has_exited(&self) -> io::Result<bool> {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT | WaitPidFlag::WNOHANG;
        match waitid(Id::Pid(self.pid()), flags) {
            Ok(WaitStatus::StillAlive) => Ok(false),
            Ok(_) => Ok(true),
            Err(errno) => Err(io::Error::from(errno)),
        }
    }

    /// Sweeps any process the leader left in its group, then reaps the leader.
    fn reap(&mut self) -> io::Result<ExitStatus> {
        self.kill_group();
        let status = self.child.wait()?;
        self.status = Some(status);
        Ok(status)
    }

    fn kill_group(&self) {
        // ESRCH (the group is already empty) is the normal case after a clean exit.
        let _ = killpg(self.pid(), Signal::SIGKILL);
    }

    fn pid(&self) -> Pid {
        // A pid always fits in pid_t; std hands it out as u32.
        Pid::from_raw(self.child.id() as i32)
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: u32) -> bool {
        // Signal 0 checks existence; a reaped child is gone, an unreaped zombie would still count.
        nix::sys::signal::kill(Pid::from_raw(pid as i32), None).is_ok()
    }

    /// A helper process (this test binary, re-run) starts a grandchild through GroupChild, then
    /// is killed as Ctrl-C would kill it; the grandchild must not survive it.
    #[test]
    fn child_dies_with_bootrig_on_a_signal() {
        if std::env::var_os("BOOTRIG_PDEATH_HELPER").is_some() {
            let child = GroupChild::spawn(Command::new("sleep").arg("300")).unwrap();
            println!("grandchild {}", child.id());
            std::mem::forget(child); // no Drop: only the kernel's death signal can help
            thread::sleep(Duration::from_secs(300));
            return;
        }
        let mut helper = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "qemu::process::tests::child_dies_with_bootrig_on_a_signal",
                "--nocapture",
            ])
            .env("BOOTRIG_PDEATH_HELPER", "1")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(helper.stdout.take().unwrap());
        let mut line = String::new();
        let grandchild = loop {
            line.clear();
            assert!(
                std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0,
                "helper ended early"
            );
            if let Some(pid) = line.trim().strip_prefix("grandchild ") {
                break pid.parse::<u32>().unwrap();
            }
        };
        assert!(alive(grandchild));
        nix::sys::signal::kill(Pid::from_raw(helper.id() as i32), Signal::SIGINT).unwrap();
        helper.wait().unwrap();
        // Generous: the loop ends as soon as the grandchild is gone, and a loaded machine may take
        // seconds to schedule its death; a grandchild that survives never ends it early.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        // The grandchild is reparented and reaped by init (or is a zombie until then).
        while alive_not_zombie(grandchild) && std::time::Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !alive_not_zombie(grandchild),
            "the grandchild outlived its parent"
        );
    }

    fn alive_not_zombie(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => !stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z')),
            Err(_) => false,
        }
    }

    #[test]
    fn bounded_wait_returns_exit_status() {
        let mut child = GroupChild::spawn(Command::new("sh").args(["-c", "exit 3"])).unwrap();
        let status = child.wait_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(status.and_then(|s| s.code()), Some(3));
    }

    #[test]
    fn bounded_wait_times_out_and_kill_ends_the_group() {
        // The shell's own child (sleep) is in the same group and must die with it.
        let mut child =
            GroupChild::spawn(Command::new("sh").args(["-c", "sleep 300 & wait"])).unwrap();
        let start = Instant::now();
        let bound = Duration::from_millis(200);
        // `None` means it returned while the child still ran (it lives 300 s): the bound was
        // honoured with no wall-clock upper limit to flake on a loaded machine.
        assert!(child.wait_timeout(bound).unwrap().is_none());
        assert!(
            start.elapsed() >= bound,
            "returned early: {:?}",
            start.elapsed()
        );
        let pgid = child.id();
        child.kill().unwrap();
        // The orphaned `sleep` was killed too; init reaps it shortly, then the group is empty.
        // Generous, since the loop ends as soon as the group is empty.
        let gone = Instant::now() + Duration::from_secs(60);
        while killpg(Pid::from_raw(pgid as i32), None).is_ok() && Instant::now() < gone {
            thread::sleep(POLL);
        }
        let members = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
            .filter(|stat| {
                // Field 5 of /proc/<pid>/stat (after the parenthesised name) is the pgrp.
                let after_name = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
                after_name.split(' ').nth(2) == Some(&pgid.to_string())
                    && after_name.split(' ').next() != Some("Z")
            })
            .count();
        assert_eq!(members, 0, "live processes left in group {pgid}");
    }

    #[test]
    fn drop_kills_even_when_unwinding() {
        let mut pid = 0;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let child = GroupChild::spawn(Command::new("sleep").arg("30")).unwrap();
            pid = child.id();
            panic!("test panic while the child runs");
        }));
        assert!(result.is_err());
        assert_ne!(pid, 0);
        assert!(!alive(pid), "child {pid} survived the panic");
    }
}
