//! One run per adapter: flock(2) on `<state dir>/<bdf>.lock`, with the holder (pid, start time,
//! scenario) written inside for whoever waits. The kernel drops the lock when the holder dies,
//! so a stale file from a killed run never blocks.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::bdf::Bdf;
use super::sysfs::io_error;
use super::VfioError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub started_unix: u64,
    pub scenario: String,
}

impl Holder {
    /// This process, running `scenario`.
    pub fn this_process(scenario: &str) -> Self {
        Self {
            pid: std::process::id(),
            started_unix: now_unix(),
            scenario: scenario.to_owned(),
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let started = UNIX_EPOCH + Duration::from_secs(self.started_unix);
        write!(
            f,
            "pid {} running scenario {:?} since {}",
            self.pid,
            self.scenario,
            humantime::format_rfc3339_seconds(started)
        )
    }
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn lock_path(state_dir: &Path, device: &Bdf) -> PathBuf {
    state_dir.join(format!("{device}.lock"))
}

/// A held adapter lock; released on drop (or by the kernel when the process dies).
#[derive(Debug)]
pub struct DeviceLock {
    file: Flock<File>,
    path: PathBuf,
}

impl Drop for DeviceLock {
    fn drop(&mut self) {
        // Emptied while still held: the next taker writes its name just after its flock, and a
        // waiter reading in between must find no name rather than this finished run's.
        let _ = self.file.set_len(0);
    }
}

impl DeviceLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

const POLL: Duration = Duration::from_millis(50);

/// How long a waiter gives a new holder to write its name before saying it waits on an unknown
/// one (the holder writes right after taking the lock).
const HOLDER_GRACE: Duration = Duration::from_secs(1);

/// Takes the lock of `device`, waiting up to `wait` for another holder to finish. When it has
/// to wait, `on_wait` is called once with the holder (as soon as its name can be read).
pub fn acquire(
    state_dir: &Path,
    device: &Bdf,
    holder: &Holder,
    wait: Duration,
    on_wait: &mut dyn FnMut(Option<&Holder>),
) -> Result<DeviceLock, VfioError> {
    std::fs::create_dir_all(state_dir).map_err(io_error(state_dir))?;
    let path = lock_path(state_dir, device);
    let start = Instant::now();
    let mut file = open(&path)?;
    let mut said = wait.is_zero();
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut locked) => {
                write_holder(&mut locked, holder).map_err(io_error(&path))?;
                return Ok(DeviceLock { file: locked, path });
            }
            Err((back, Errno::EWOULDBLOCK)) => {
                if start.elapsed() >= wait {
                    return Err(VfioError::Locked {
                        device: *device,
                        holder: read_holder(&path),
                        lock: path,
                        waited: start.elapsed(),
                    });
                }
                if !said {
                    let other = read_holder(&path);
                    if other.is_some() || start.elapsed() >= HOLDER_GRACE {
                        on_wait(other.as_ref());
                        said = true;
                    }
                }
                file = back;
                std::thread::sleep(POLL.min(wait.saturating_sub(start.elapsed())));
            }
            Err((_, errno)) => {
                return Err(io_error(&path)(std::io::Error::from(errno)));
            }
        }
    }
}

fn open(path: &Path) -> Result<File, VfioError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_error(path))
}

fn write_holder(file: &mut File, holder: &Holder) -> std::io::Result<()> {
    let json = serde_json::to_vec(holder).map_err(std::io::Error::other)?;
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(&json)?;
    file.sync_data()
}

/// Who holds the lock, as its holder wrote it (`None` while it is being written).
pub fn read_holder(path: &Path) -> Option<Holder> {
    let mut text = String::new();
    File::open(path).ok()?.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_waits_then_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let dev: Bdf = "0000:03:00.0".parse().unwrap();
        let first = Holder::this_process("first");
        let held = acquire(dir.path(), &dev, &first, Duration::ZERO, &mut |_| {
            panic!("nobody holds it yet")
        })
        .unwrap();
        let start = Instant::now();
        let mut told = Vec::new();
        let err = acquire(
            dir.path(),
            &dev,
            &Holder::this_process("second"),
            Duration::from_secs(2),
            &mut |h| told.push((start.elapsed(), h.cloned())),
        )
        .unwrap_err();
        assert!(start.elapsed() >= Duration::from_secs(2));
        // Said once, when the wait started (not when it gave up: half the wait is room for a
        // loaded host), naming the holder.
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(told[0].0 < Duration::from_secs(1), "{told:?}");
        assert_eq!(told[0].1.as_ref(), Some(&first));
        let VfioError::Locked { holder, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(holder.as_ref(), Some(&first));
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("\"first\""), "{text}");
        drop(held);
        // Released: no name left behind for a waiter to mistake for the next holder.
        assert_eq!(read_holder(&lock_path(dir.path(), &dev)), None);
        // The next taker gets it and its own name is inside.
        let second = Holder::this_process("second");
        let held = acquire(dir.path(), &dev, &second, Duration::ZERO, &mut |_| {
            panic!("released: no wait")
        })
        .unwrap();
        assert_eq!(read_holder(held.path()), Some(second));
    }

    #[test]
    fn a_holder_not_yet_named_is_said_unknown_after_a_grace() {
        let dir = tempfile::tempdir().unwrap();
        let dev: Bdf = "0000:03:00.0".parse().unwrap();
        let path = lock_path(dir.path(), &dev);
        // Locked, but the holder's name never written (it died between the two).
        let _held = Flock::lock(open(&path).unwrap(), FlockArg::LockExclusiveNonblock).unwrap();
        let start = Instant::now();
        let mut told = Vec::new();
        let err = acquire(
            dir.path(),
            &dev,
            &Holder::this_process("second"),
            HOLDER_GRACE + Duration::from_millis(200),
            &mut |h| told.push((start.elapsed(), h.cloned())),
        )
        .unwrap_err();
        assert!(
            matches!(err, VfioError::Locked { holder: None, .. }),
            "{err}"
        );
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(told[0].0 >= HOLDER_GRACE && told[0].1.is_none(), "{told:?}");
        // No wait allowed: nothing to say.
        let mut said = false;
        let _ = acquire(
            dir.path(),
            &dev,
            &Holder::this_process("third"),
            Duration::ZERO,
            &mut |_| said = true,
        );
        assert!(!said);
    }
}
