//! Direct kernel boot (`-kernel`/`-initrd`, no firmware netboot): the fast path for checking a
//! built initrd. The command line is a pure function of the boot description, one small function
//! per concern with a comment per flag; running it keeps the whole console transcript.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use thiserror::Error;

use super::accel::Accel;
use super::process::GroupChild;

#[derive(Debug, Clone)]
pub struct DirectBoot {
    pub qemu: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// Extra kernel command line, after bootrig's own console arguments.
    pub append: String,
    pub accel: Accel,
    pub memory_mib: u32,
    /// QEMU NIC model on a user-mode network (its built-in DHCP server answers 10.0.2.15/24).
    pub nic: Option<String>,
    pub timeout: Duration,
}

#[derive(Debug, Error)]
pub enum BootError {
    #[error("starting {qemu}: {source}")]
    Spawn {
        qemu: PathBuf,
        source: std::io::Error,
    },
    #[error("waiting for QEMU: {0}")]
    Wait(std::io::Error),
}

/// How a boot ended, with everything the console printed.
#[derive(Debug, Clone)]
pub struct BootRun {
    pub transcript: String,
    /// QEMU's exit code; None when bootrig killed it at the timeout.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub elapsed: Duration,
    pub stderr: String,
}

impl DirectBoot {
    pub fn new(qemu: &Path, kernel: &Path, initrd: &Path) -> Self {
        Self {
            qemu: qemu.to_owned(),
            kernel: kernel.to_owned(),
            initrd: initrd.to_owned(),
            append: String::new(),
            accel: Accel::Tcg,
            memory_mib: 1024,
            nic: Some("virtio-net-pci".into()),
            timeout: Duration::from_secs(180),
        }
    }

    /// The full argument list.
    pub fn args(&self) -> Vec<String> {
        let mut a = Vec::new();
        a.extend(machine_args(self.accel, self.memory_mib));
        a.extend(console_args());
        a.extend(kernel_args(&self.kernel, &self.initrd, &self.append));
        a.extend(network_args(self.nic.as_deref()));
        a
    }

    /// Boots and waits for QEMU to exit (the guest powers off) or the timeout.
    pub fn run(&self) -> Result<BootRun, BootError> {
        let mut cmd = Command::new(&self.qemu);
        cmd.args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = GroupChild::spawn(&mut cmd).map_err(|source| BootError::Spawn {
            qemu: self.qemu.clone(),
            source,
        })?;
        let out = collect(child.take_stdout());
        let err = collect(child.take_stderr());
        let status = child.wait_timeout(self.timeout).map_err(BootError::Wait)?;
        let (exit_code, timed_out) = match status {
            Some(s) => (s.code(), false),
            None => {
                child.kill().map_err(BootError::Wait)?;
                (None, true)
            }
        };
        let transcript = finish(out);
        let stderr = finish(err);
        Ok(BootRun {
            transcript,
            exit_code,
            timed_out,
            elapsed: started.elapsed(),
            stderr,
        })
    }
}

/// A thread reading a pipe into a shared buffer.
type Collector = (std::thread::JoinHandle<()>, Arc<Mutex<Vec<u8>>>);

/// Reads a pipe to its end on a thread.
fn collect<R: Read + Send + 'static>(pipe: Option<R>) -> Option<Collector> {
    let mut pipe = pipe?;
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&buf);
    let handle = std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            if let Ok(mut b) = sink.lock() {
                b.extend_from_slice(&chunk[..n]);
            }
        }
    });
    Some((handle, buf))
}

fn finish(c: Option<Collector>) -> String {
    let Some((handle, buf)) = c else {
        return String::new();
    };
    // The pipe closes when QEMU (and its group) is gone, so the reader ends.
    let _ = handle.join();
    let bytes = buf.lock().map(|b| b.clone()).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn machine_args(accel: Accel, memory_mib: u32) -> Vec<String> {
    vec![
        // q35 is what lab servers look like (PCIe); the accelerator was probed, never assumed.
        "-machine".into(),
        format!("q35,accel={}", accel.qemu_name()),
        "-m".into(),
        memory_mib.to_string(),
        // No default devices: every device on the command line is one bootrig chose.
        "-nodefaults".into(),
        // A guest reboot (panic=-1) ends QEMU instead of looping.
        "-no-reboot".into(),
    ]
}

fn console_args() -> Vec<String> {
    vec![
        "-display".into(),
        "none".into(),
        // The guest's ttyS0 is QEMU's stdout: the transcript.
        "-serial".into(),
        "stdio".into(),
        "-monitor".into(),
        "none".into(),
    ]
}

fn kernel_args(kernel: &Path, initrd: &Path, append: &str) -> Vec<String> {
    let mut cmdline = String::from("console=ttyS0,115200 panic=-1");
    if !append.is_empty() {
        cmdline.push(' ');
        cmdline.push_str(append);
    }
    vec![
        "-kernel".into(),
        kernel.display().to_string(),
        "-initrd".into(),
        initrd.display().to_string(),
        "-append".into(),
        cmdline,
    ]
}

fn network_args(nic: Option<&str>) -> Vec<String> {
    match nic {
        // User-mode networking: no host state, traffic stays inside QEMU; its DHCP server leases
        // 10.0.2.15/24.
        Some(model) => vec![
            "-netdev".into(),
            "user,id=net0".into(),
            "-device".into(),
            format!("{model},netdev=net0"),
        ],
        None => vec!["-nic".into(), "none".into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_stable() {
        let mut b = DirectBoot::new(
            Path::new("/usr/bin/qemu-system-x86_64"),
            Path::new("/k"),
            Path::new("/i"),
        );
        b.append = "quiet".into();
        assert_eq!(
            b.args().join(" "),
            "-machine q35,accel=tcg -m 1024 -nodefaults -no-reboot -display none -serial stdio -monitor none \
             -kernel /k -initrd /i -append console=ttyS0,115200 panic=-1 quiet \
             -netdev user,id=net0 -device virtio-net-pci,netdev=net0"
        );
    }
}
