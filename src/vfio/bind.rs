//! Moving one PCI function to vfio-pci and back, each step a sysfs write through [`Kernel`],
//! each result checked on the `driver` link.

use std::time::{Duration, Instant};

use super::bdf::Bdf;
use super::kernel::Kernel;
use super::record::MemberRecord;
use super::sysfs::{self, HostPaths};
use super::{VfioError, VFIO_DRIVER};

/// How long the kernel gets by default to (un)bind a driver: mlx5 teardown takes seconds.
pub const BIND_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);

/// What the function has now, for the record written before it changes.
pub fn snapshot(paths: &HostPaths, dev: &Bdf) -> Result<MemberRecord, VfioError> {
    Ok(MemberRecord {
        bdf: *dev,
        driver: sysfs::driver(paths, dev)?,
        driver_override: sysfs::driver_override(paths, dev)?,
    })
}

/// driver_override = vfio-pci, unbind from the current driver, drivers_probe; then waits for
/// the `driver` link to name vfio-pci.
pub fn to_vfio(kernel: &dyn Kernel, dev: &Bdf, timeout: Duration) -> Result<(), VfioError> {
    let current = sysfs::driver(kernel.paths(), dev)?;
    if current.as_deref() == Some(VFIO_DRIVER) {
        return Ok(());
    }
    kernel.set_driver_override(dev, Some(VFIO_DRIVER))?;
    if let Some(driver) = &current {
        kernel.unbind(dev, driver)?;
    }
    kernel.probe(dev)?;
    wait_for_driver(kernel.paths(), dev, Some(VFIO_DRIVER), timeout)
}

/// Puts one function back as the record says: the old driver_override, off vfio-pci, bound to
/// its old driver. Done steps are skipped, so replaying a record is harmless; a function that
/// no longer exists (a VF removed with its PF's VFs) is back by definition.
pub fn restore(
    kernel: &dyn Kernel,
    member: &MemberRecord,
    timeout: Duration,
) -> Result<(), VfioError> {
    let dev = &member.bdf;
    let paths = kernel.paths();
    if !paths.pci_device(dev).is_dir() {
        return Ok(());
    }
    if sysfs::driver_override(paths, dev)? != member.driver_override {
        kernel.set_driver_override(dev, member.driver_override.as_deref())?;
    }
    let current = sysfs::driver(paths, dev)?;
    if current == member.driver {
        return Ok(());
    }
    match current.as_deref() {
        Some(VFIO_DRIVER) => kernel.unbind(dev, VFIO_DRIVER)?,
        None => {}
        // Someone else bound it meanwhile: not bootrig's to undo.
        Some(other) => {
            return Err(VfioError::NotBound {
                device: *dev,
                expected: member.driver.clone().unwrap_or_else(|| "none".into()),
                found: Some(other.to_owned()),
                waited: Duration::ZERO,
                fix: Some("it was rebound outside bootrig; left as it is".into()),
            })
        }
    }
    let Some(original) = &member.driver else {
        return wait_for_driver(paths, dev, None, timeout);
    };
    if !paths.pci_driver(original).is_dir() {
        return Err(VfioError::NotBound {
            device: *dev,
            expected: original.clone(),
            found: None,
            waited: Duration::ZERO,
            fix: Some(format!(
                "the {original} driver is not loaded: modprobe {original}"
            )),
        });
    }
    kernel.bind(dev, original)?;
    wait_for_driver(paths, dev, Some(original), timeout)
}

/// Polls the `driver` link until it names `expected` (`None`: no driver).
pub fn wait_for_driver(
    paths: &HostPaths,
    dev: &Bdf,
    expected: Option<&str>,
    timeout: Duration,
) -> Result<(), VfioError> {
    let start = Instant::now();
    loop {
        let found = sysfs::driver(paths, dev)?;
        if found.as_deref() == expected {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(VfioError::NotBound {
                device: *dev,
                expected: expected.unwrap_or("none").to_owned(),
                found,
                waited: start.elapsed(),
                fix: (expected == Some(VFIO_DRIVER))
                    .then(|| "check `dmesg` for vfio-pci errors; is vfio-pci loaded?".to_owned()),
            });
        }
        std::thread::sleep(POLL);
    }
}
