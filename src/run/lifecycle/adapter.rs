//! A lab adapter passed through with VFIO: bound to vfio-pci for the boot, its drivers put
//! back after it (or when the guard is dropped, on an error return or a panic).

use crate::report::model::Finding;
use crate::report::Progress;
use crate::run::inventory::Adapter;
use crate::run::judge::Findings;
use crate::run::target::{AdapterNeed, Target};
use crate::vfio::{Notice, Passthrough, Request as VfioRequest, SysfsKernel};

use super::{Context, SetupError};

/// Binds the target's adapter (and its IOMMU group) to vfio-pci, if it has one.
pub(super) fn bind(
    target: &Target,
    ctx: &Context,
) -> Result<Option<Passthrough<SysfsKernel>>, SetupError> {
    match &target.adapter {
        Some(AdapterNeed::Found(adapter)) => Ok(Some(bind_adapter(adapter, target, ctx.progress)?)),
        _ => Ok(None),
    }
}

/// What the operator is told as a progress line, as it happens: a wait for another run's
/// adapter would otherwise be silent for up to `lock_wait`.
fn notice_line(adapter: &Adapter, notice: Notice) -> String {
    match notice {
        Notice::Waiting {
            holder, lock, wait, ..
        } => {
            let whom = holder.map_or_else(
                || format!("a run that has not written its name in {}", lock.display()),
                |h| h.to_string(),
            );
            format!(
                "waiting for adapter {} ({}), held by {whom}; giving up after {}",
                adapter.name,
                adapter.bdf,
                humantime::format_duration(wait)
            )
        }
        Notice::Memlock(m) => format!("vfio: {}", m.detail()),
    }
}

/// Binds the adapter (and its IOMMU group) to vfio-pci after the preflight, for this boot.
fn bind_adapter(
    adapter: &Adapter,
    target: &Target,
    progress: &Progress,
) -> Result<Passthrough<SysfsKernel>, SetupError> {
    let mut req = VfioRequest::new(adapter.bdf, &target.id);
    req.memory_mib = Some(target.boot.memory_mib);
    req.romfile = adapter.rom.clone();
    req.stand_in = adapter.stand_in;
    req.state_dir = adapter.lab.state_dir.clone();
    req.lock_wait = adapter.lab.lock_wait;
    req.sriov = adapter
        .vf
        .map(|(vf, numvfs)| crate::vfio::SriovRequest { numvfs, vf });
    Ok(Passthrough::prepare_noting(
        SysfsKernel::new(crate::vfio::HostPaths::default()),
        &req,
        &mut |notice| progress.note(&target.id, &notice_line(adapter, notice)),
    )?)
}

/// Puts the adapter's drivers back now; a failure is a finding naming the way out.
pub(super) fn restore(passthrough: Passthrough<SysfsKernel>, findings: &mut Findings) {
    let hint = crate::vfio::record::restore_command(passthrough.state_dir());
    if let Err(e) = passthrough.restore() {
        findings.boot.push(Finding::AdapterRestore {
            error: crate::error_chain(&e),
            restore: hint,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::run::inventory::Lab;
    use crate::vfio::memlock::{Limits, Memlock};
    use crate::vfio::Holder;

    fn nic0() -> Adapter {
        Adapter {
            name: "nic0".into(),
            bdf: "0000:00:03.0".parse().unwrap(),
            guid: None,
            rom: None,
            vf: None,
            stand_in: true,
            lab: Lab::default(),
        }
    }

    #[test]
    fn a_wait_for_the_adapter_names_the_holder_and_the_limit() {
        let holder = Holder {
            pid: 4242,
            started_unix: 1_700_000_000,
            scenario: "nic0-killed".into(),
        };
        let lock = PathBuf::from("/run/bootrig/vfio/0000:00:03.0.lock");
        let waiting = |holder| Notice::Waiting {
            device: nic0().bdf,
            holder,
            lock: &lock,
            wait: Duration::from_secs(600),
        };
        assert_eq!(
            notice_line(&nic0(), waiting(Some(&holder))),
            "waiting for adapter nic0 (0000:00:03.0), held by pid 4242 running scenario \
             \"nic0-killed\" since 2023-11-14T22:13:20Z; giving up after 10m"
        );
        let unknown = notice_line(&nic0(), waiting(None));
        assert!(
            unknown.contains("held by a run that has not written its name in /run/bootrig/vfio/0000:00:03.0.lock"),
            "{unknown}"
        );
    }

    #[test]
    fn the_wait_is_a_progress_line_once_when_it_starts() {
        let dir = tempfile::tempdir().unwrap();
        let mut adapter = nic0();
        adapter.lab.state_dir = dir.path().to_owned();
        let first = Holder::this_process("first");
        let _held = crate::vfio::lock::acquire(
            dir.path(),
            &adapter.bdf,
            &first,
            Duration::ZERO,
            &mut |_| {},
        )
        .unwrap();
        let out = SharedBuf::default();
        let progress = Progress::new(Box::new(out.clone()), false, 200);
        let mut req = VfioRequest::new(adapter.bdf, "second");
        req.state_dir = dir.path().to_owned();
        req.lock_wait = Duration::from_millis(300);
        // No sysfs needed: the run gives up at the lock, before any check.
        let err = Passthrough::prepare_noting(
            SysfsKernel::new(crate::vfio::HostPaths {
                sysfs: dir.path().join("sys"),
                dev: dir.path().join("dev"),
                proc: dir.path().join("proc"),
            }),
            &req,
            &mut |n| progress.note("second", &notice_line(&adapter, n)),
        )
        .err()
        .unwrap();
        assert!(
            err.to_string().contains("in use by another bootrig run"),
            "{err}"
        );
        let text = out.text();
        let want = format!(
            "second waiting for adapter nic0 (0000:00:03.0), held by pid {} running \
             scenario \"first\"",
            std::process::id()
        );
        assert_eq!(text.matches(&want).count(), 1, "{text}");
    }

    #[derive(Clone, Default)]
    struct SharedBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for SharedBuf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl SharedBuf {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    #[test]
    fn a_raised_memlock_is_said() {
        let from = Limits {
            soft: Some(8 << 20),
            hard: Some(8 << 20),
        };
        let to = Limits {
            soft: Some(1536 << 20),
            hard: Some(1536 << 20),
        };
        let line = notice_line(
            &nic0(),
            Notice::Memlock(&Memlock::Raised {
                from,
                to,
                need: 1536 << 20,
            }),
        );
        assert!(
            line.starts_with("vfio: locked-memory soft and hard limits raised from 8192 KiB"),
            "{line}"
        );
    }
}
