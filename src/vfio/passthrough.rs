//! The passthrough guard: takes the adapter's lock, runs the preflight, records and then makes
//! each change (VFs, vfio-pci bindings), and undoes them all when dropped — after a pass, a
//! failure, Ctrl-C or a QEMU crash alike. A hard kill leaves the record for [`restore_all`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::bdf::Bdf;
use super::bind;
use super::device::{VfioDevice, VfioRom};
use super::kernel::Kernel;
use super::lock::{self, DeviceLock, Holder};
use super::memlock::{self, Memlock};
use super::preflight::{preflight, CheckOptions, Preflight, Scope};
use super::record::{self, Record, SriovRecord};
use super::sysfs;
use super::{VfioError, VFIO_DRIVER};

/// Pass VF `vf` of `numvfs` (created on the PF if needed) instead of the PF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SriovRequest {
    pub numvfs: u32,
    pub vf: u32,
}

#[derive(Debug, Clone)]
pub struct Request {
    /// The adapter function (the PF when `sriov` is set).
    pub device: Bdf,
    /// Named in the lock and the record, for whoever finds them.
    pub scenario: String,
    pub memory_mib: Option<u32>,
    pub romfile: Option<PathBuf>,
    /// Check the card's own ROM when no romfile is given.
    pub read_card_rom: bool,
    pub sriov: Option<SriovRequest>,
    /// Accept a non-ConnectX function standing in for one (see [`CheckOptions::stand_in`]).
    pub stand_in: bool,
    pub state_dir: PathBuf,
    /// How long to wait for another run holding the adapter.
    pub lock_wait: Duration,
    /// How long the kernel gets for each bind, unbind and VF creation.
    pub settle: Duration,
}

impl Request {
    pub fn new(device: Bdf, scenario: &str) -> Self {
        Self {
            device,
            scenario: scenario.to_owned(),
            memory_mib: None,
            romfile: None,
            read_card_rom: true,
            sriov: None,
            stand_in: false,
            state_dir: record::DEFAULT_STATE_DIR.into(),
            lock_wait: Duration::from_secs(600),
            settle: bind::BIND_TIMEOUT,
        }
    }
}

/// What preparing tells its caller as it happens, for the operator.
#[derive(Debug, Clone, Copy)]
pub enum Notice<'a> {
    /// Another run holds the adapter: this one waits up to `wait` (said once, when the wait
    /// starts; `holder` is `None` when the holder never wrote its name).
    Waiting {
        device: Bdf,
        holder: Option<&'a Holder>,
        lock: &'a Path,
        wait: Duration,
    },
    /// This process's locked-memory limit was raised for the guest (`Memlock::Raised`).
    Memlock(&'a Memlock),
}

/// What was changed, undone on drop.
struct Changes<K: Kernel> {
    kernel: K,
    state_dir: PathBuf,
    record: Record,
    settle: Duration,
    lock: Option<DeviceLock>,
    active: bool,
}

impl<K: Kernel> Changes<K> {
    fn path(&self) -> PathBuf {
        record::record_path(&self.state_dir, &self.record.device)
    }

    fn save(&self) -> Result<(), VfioError> {
        record::save(&self.state_dir, &self.record)
    }

    fn restore_now(&mut self) -> Result<(), VfioError> {
        if !self.active {
            return Ok(());
        }
        restore_record(&self.kernel, &self.record, &self.path(), self.settle)?;
        self.active = false;
        self.lock = None;
        Ok(())
    }

    /// Creates `numvfs` VFs on `pf` (recording the old count first); returns VF `vf`.
    fn create_vfs(&mut self, pf: &Bdf, req: SriovRequest) -> Result<Bdf, VfioError> {
        let paths = self.kernel.paths();
        let sriov_err = |message: String| VfioError::Sriov { pf: *pf, message };
        let (total, current) = sysfs::sriov_counts(paths, pf)?
            .ok_or_else(|| sriov_err("no sriov_totalvfs: the device has no SR-IOV".into()))?;
        if req.numvfs == 0 || req.numvfs > total {
            return Err(sriov_err(format!(
                "asked for {} VFs; sriov_totalvfs allows 1 to {total}",
                req.numvfs
            )));
        }
        if req.vf >= req.numvfs {
            return Err(sriov_err(format!(
                "VF {} does not exist among {} VFs (they count from 0)",
                req.vf, req.numvfs
            )));
        }
        if current != req.numvfs {
            self.record.sriov = Some(SriovRecord {
                pf: *pf,
                numvfs: current,
            });
            self.save()?;
            // The kernel refuses to change a non-zero count except through 0.
            if current != 0 {
                self.kernel.set_sriov_numvfs(pf, 0)?;
            }
            self.kernel.set_sriov_numvfs(pf, req.numvfs)?;
        }
        let start = Instant::now();
        loop {
            let paths = self.kernel.paths();
            if let Some(vf) = sysfs::virtfn(paths, pf, req.vf)? {
                if paths.pci_device(&vf).is_dir() {
                    return Ok(vf);
                }
            }
            if start.elapsed() >= self.settle {
                return Err(sriov_err(format!(
                    "virtfn{} did not appear within {:?} of setting sriov_numvfs to {}",
                    req.vf, self.settle, req.numvfs
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl<K: Kernel> Drop for Changes<K> {
    fn drop(&mut self) {
        if let Err(e) = self.restore_now() {
            // Drop cannot return it; the record stays, and the error names the restore command.
            eprintln!("bootrig: vfio: {}", crate::error_chain(&e));
        }
    }
}

/// A device bound to vfio-pci for one run; the host is put back when this is dropped.
pub struct Passthrough<K: Kernel> {
    changes: Changes<K>,
    device: Bdf,
    group: u32,
    preflight: Preflight,
}

impl<K: Kernel> Passthrough<K> {
    /// Locks the adapter (waiting up to `lock_wait`), replays a record left by a killed run,
    /// checks, records, creates VFs if asked, and binds the passed function's IOMMU group to
    /// vfio-pci. On error, whatever was already changed is undone before returning.
    pub fn prepare(kernel: K, req: &Request) -> Result<Self, VfioError> {
        Self::prepare_noting(kernel, req, &mut |_| {})
    }

    /// [`Self::prepare`], telling `notice` when it waits for the adapter and when it raises the
    /// locked-memory limit (before the preflight, which then finds it enough).
    pub fn prepare_noting(
        kernel: K,
        req: &Request,
        notice: &mut dyn FnMut(Notice),
    ) -> Result<Self, VfioError> {
        let holder = Holder::this_process(&req.scenario);
        let lock_file = lock::lock_path(&req.state_dir, &req.device);
        let lock = lock::acquire(
            &req.state_dir,
            &req.device,
            &holder,
            req.lock_wait,
            &mut |other| {
                notice(Notice::Waiting {
                    device: req.device,
                    holder: other,
                    lock: &lock_file,
                    wait: req.lock_wait,
                })
            },
        )?;
        let path = record::record_path(&req.state_dir, &req.device);
        if path.exists() {
            let left = record::load(&path)?;
            restore_record(&kernel, &left, &path, req.settle)?;
        }
        let memlock = req
            .memory_mib
            .map(|mib| memlock::ensure(memlock::needed_bytes(mib)))
            .transpose()?;
        if let Some(raised @ Memlock::Raised { .. }) = &memlock {
            notice(Notice::Memlock(raised));
        }
        let opts = CheckOptions {
            memory_mib: req.memory_mib,
            memlock,
            romfile: req.romfile.clone(),
            read_card_rom: req.read_card_rom,
            scope: if req.sriov.is_some() {
                Scope::SriovPf
            } else {
                Scope::Passthrough
            },
            stand_in: req.stand_in,
        };
        let first = preflight(&kernel, &req.device, &opts).into_result()?;
        let mut changes = Changes {
            kernel,
            state_dir: req.state_dir.clone(),
            record: Record::new(req.device, &req.scenario),
            settle: req.settle,
            lock: Some(lock),
            active: true,
        };
        changes.save()?;
        let checked = match req.sriov {
            None => first,
            Some(sriov) => {
                let vf = changes.create_vfs(&req.device, sriov)?;
                let vf_opts = CheckOptions {
                    // The limit was raised for this process before the PF's check.
                    memory_mib: None,
                    memlock: None,
                    romfile: req.romfile.clone(),
                    read_card_rom: false,
                    scope: Scope::Passthrough,
                    stand_in: req.stand_in,
                };
                preflight(&changes.kernel, &vf, &vf_opts).into_result()?
            }
        };
        let group = checked.group.ok_or_else(|| VfioError::Preflight {
            device: checked.device,
            failures: vec!["  iommu: no IOMMU group".into()],
        })?;
        for member in checked.to_bind() {
            if member.driver.as_deref() != Some(VFIO_DRIVER) {
                let before = bind::snapshot(changes.kernel.paths(), &member.bdf)?;
                changes.record.members.push(before);
            }
        }
        changes.save()?;
        for i in 0..changes.record.members.len() {
            let dev = changes.record.members[i].bdf;
            bind::to_vfio(&changes.kernel, &dev, req.settle)?;
        }
        let node = changes.kernel.paths().vfio_group(group);
        let start = Instant::now();
        while !node.exists() {
            if start.elapsed() >= req.settle {
                return Err(VfioError::NoGroupNode {
                    path: node,
                    waited: start.elapsed(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self {
            device: checked.device,
            group,
            preflight: checked,
            changes,
        })
    }

    /// The function handed to the guest (the VF when SR-IOV was asked for).
    pub fn device(&self) -> Bdf {
        self.device
    }

    /// Where the lock and the record live (`bootrig vfio restore --state-dir` reads it).
    pub fn state_dir(&self) -> &std::path::Path {
        &self.changes.state_dir
    }

    pub fn group(&self) -> u32 {
        self.group
    }

    /// The passed function's preflight (ROM found, members, memlock).
    pub fn preflight(&self) -> &Preflight {
        &self.preflight
    }

    pub fn record_path(&self) -> PathBuf {
        self.changes.path()
    }

    /// The `-device vfio-pci,…` description of the passed function.
    pub fn qemu_device(&self, rom: VfioRom, bootindex: Option<u32>) -> VfioDevice {
        VfioDevice {
            host: self.device,
            rom,
            bootindex,
        }
    }

    /// Puts the host back now and says how it went (dropping does the same, quietly).
    pub fn restore(mut self) -> Result<(), VfioError> {
        self.changes.restore_now()
    }
}

/// Replays a record: every member back to its driver, the VF count back; the record file goes
/// only when all of it worked.
pub fn restore_record(
    kernel: &dyn Kernel,
    record: &Record,
    path: &Path,
    settle: Duration,
) -> Result<(), VfioError> {
    let mut failures = Vec::new();
    for member in record.members.iter().rev() {
        if let Err(e) = bind::restore(kernel, member, settle) {
            failures.push(format!("  {}: {}", member.bdf, crate::error_chain(&e)));
        }
    }
    if let Some(sriov) = &record.sriov {
        if let Err(e) = restore_numvfs(kernel, sriov) {
            failures.push(format!(
                "  {} sriov_numvfs: {}",
                sriov.pf,
                crate::error_chain(&e)
            ));
        }
    }
    if failures.is_empty() {
        record::remove(path)
    } else {
        Err(VfioError::Restore {
            device: record.device,
            record: path.to_owned(),
            failures,
        })
    }
}

fn restore_numvfs(kernel: &dyn Kernel, sriov: &SriovRecord) -> Result<(), VfioError> {
    let Some((_, current)) = sysfs::sriov_counts(kernel.paths(), &sriov.pf)? else {
        return Ok(());
    };
    if current == sriov.numvfs {
        return Ok(());
    }
    if current != 0 && sriov.numvfs != 0 {
        kernel.set_sriov_numvfs(&sriov.pf, 0)?;
    }
    kernel.set_sriov_numvfs(&sriov.pf, sriov.numvfs)
}

/// What `bootrig vfio restore` did with one record.
#[derive(Debug)]
pub struct RestoreOutcome {
    pub record: PathBuf,
    pub device: Option<Bdf>,
    pub result: Result<(), VfioError>,
}

/// Replays every record in `state_dir` whose adapter no live run holds.
pub fn restore_all(
    kernel: &dyn Kernel,
    state_dir: &Path,
    settle: Duration,
) -> Result<Vec<RestoreOutcome>, VfioError> {
    let mut out = Vec::new();
    for path in record::list(state_dir)? {
        let rec = match record::load(&path) {
            Ok(rec) => rec,
            Err(e) => {
                out.push(RestoreOutcome {
                    record: path,
                    device: None,
                    result: Err(e),
                });
                continue;
            }
        };
        let holder = Holder::this_process("bootrig vfio restore");
        // A live run holds the lock: its own guard restores; do not pull the device from it.
        let result = lock::acquire(state_dir, &rec.device, &holder, Duration::ZERO, &mut |_| {})
            .and_then(|_lock| restore_record(kernel, &rec, &path, settle));
        out.push(RestoreOutcome {
            record: path,
            device: Some(rec.device),
            result,
        });
    }
    Ok(out)
}
