//! One dnsmasq process inside the segment's namespace: started in the foreground (so bootrig
//! holds its pid and it dies with bootrig, see [`GroupChild`]), ready once it has written its
//! pid file (after binding its sockets), stopped and started again with the same files.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::config::DnsmasqFiles;
use super::netns;
use super::NetError;
use crate::qemu::process::GroupChild;

/// Bound for dnsmasq's start-up (it takes milliseconds).
const READY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Dnsmasq {
    child: GroupChild,
}

impl Dnsmasq {
    /// Starts dnsmasq in the namespace at `netns_path` with the config already written to
    /// `files.config`.
    pub fn start(netns_path: &Path, files: &DnsmasqFiles) -> Result<Self, NetError> {
        let _ = std::fs::remove_file(&files.pid);
        let stderr = std::fs::File::create(&files.stderr).map_err(|source| NetError::Io {
            path: files.stderr.clone(),
            source,
        })?;
        let mut command = Command::new("dnsmasq");
        command
            .arg("--keep-in-foreground")
            .arg(format!("--conf-file={}", files.config.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        netns::enter_on_spawn(&mut command, netns_path)?;
        let child = GroupChild::spawn(&mut command).map_err(|source| NetError::Spawn {
            program: "dnsmasq".into(),
            source,
            hint: "install dnsmasq (images/setup does)",
        })?;
        let mut server = Self { child };
        server.wait_ready(files)?;
        Ok(server)
    }

    fn wait_ready(&mut self, files: &DnsmasqFiles) -> Result<(), NetError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let pid = self.child.id().to_string();
        loop {
            let written = std::fs::read_to_string(&files.pid).unwrap_or_default();
            if written.trim() == pid {
                return Ok(());
            }
            if let Some(status) =
                self.child
                    .wait_timeout(Duration::from_millis(10))
                    .map_err(|source| NetError::Io {
                        path: files.pid.clone(),
                        source,
                    })?
            {
                let stderr = std::fs::read_to_string(&files.stderr).unwrap_or_default();
                let log = std::fs::read_to_string(&files.log).unwrap_or_default();
                return Err(NetError::DnsmasqStart {
                    status: status.to_string(),
                    output: format!("{}{}", stderr.trim(), tail_lines(&log, 5)),
                    config: files.config.clone(),
                });
            }
            if Instant::now() >= deadline {
                return Err(NetError::DnsmasqTimeout {
                    pid_file: files.pid.clone(),
                    timeout: READY_TIMEOUT,
                });
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it (SIGKILL, like a crash or power cut) and reaps it.
    pub fn stop(mut self) {
        let _ = self.child.kill();
    }
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(n)..];
    if tail.is_empty() {
        String::new()
    } else {
        format!("\n{}", tail.join("\n"))
    }
}
