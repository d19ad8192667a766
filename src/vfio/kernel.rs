//! The sysfs writes that change the host: driver binding, SR-IOV VF counts, ROM exposure. They
//! go through [`Kernel`] because their effect is the kernel's (the `driver` link moves, VFs
//! appear): [`SysfsKernel`] writes the files; a test wraps it and emulates the effect on a fake
//! tree.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::bdf::Bdf;
use super::sysfs::HostPaths;
use super::VfioError;

pub trait Kernel {
    /// Where reads of the resulting state go.
    fn paths(&self) -> &HostPaths;
    /// `driver_override`: `Some(driver)` makes only that driver match; `None` clears it.
    fn set_driver_override(&self, dev: &Bdf, driver: Option<&str>) -> Result<(), VfioError>;
    /// `drivers/<driver>/unbind`.
    fn unbind(&self, dev: &Bdf, driver: &str) -> Result<(), VfioError>;
    /// `drivers/<driver>/bind`.
    fn bind(&self, dev: &Bdf, driver: &str) -> Result<(), VfioError>;
    /// `bus/pci/drivers_probe`: the kernel binds the matching driver (the override, if set).
    fn probe(&self, dev: &Bdf) -> Result<(), VfioError>;
    /// `sriov_numvfs`.
    fn set_sriov_numvfs(&self, pf: &Bdf, count: u32) -> Result<(), VfioError>;
    /// `rom`: "1" makes the option ROM readable, "0" hides it again.
    fn set_rom_enabled(&self, dev: &Bdf, enabled: bool) -> Result<(), VfioError>;
}

/// The live kernel (or any sysfs tree): each call is one write to one existing attribute.
#[derive(Debug, Clone)]
pub struct SysfsKernel {
    paths: HostPaths,
}

impl SysfsKernel {
    pub fn new(paths: HostPaths) -> Self {
        Self { paths }
    }
}

/// Writes `value` to an existing attribute (sysfs files are never created).
pub fn write_attr(path: &Path, value: &str) -> Result<(), VfioError> {
    let fail = |source| VfioError::Write {
        path: path.to_owned(),
        value: value.trim_end().to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(fail)?;
    // One write call: sysfs takes each write(2) as one store.
    file.write_all(value.as_bytes()).map_err(fail)
}

impl SysfsKernel {
    fn driver_file(&self, driver: &str, file: &str) -> PathBuf {
        self.paths.pci_driver(driver).join(file)
    }
}

impl Kernel for SysfsKernel {
    fn paths(&self) -> &HostPaths {
        &self.paths
    }

    fn set_driver_override(&self, dev: &Bdf, driver: Option<&str>) -> Result<(), VfioError> {
        // A lone newline clears the override.
        let value = driver.map_or_else(|| "\n".to_owned(), str::to_owned);
        write_attr(&self.paths.pci_device(dev).join("driver_override"), &value)
    }

    fn unbind(&self, dev: &Bdf, driver: &str) -> Result<(), VfioError> {
        write_attr(&self.driver_file(driver, "unbind"), &dev.to_string())
    }

    fn bind(&self, dev: &Bdf, driver: &str) -> Result<(), VfioError> {
        write_attr(&self.driver_file(driver, "bind"), &dev.to_string())
    }

    fn probe(&self, dev: &Bdf) -> Result<(), VfioError> {
        write_attr(
            &self.paths.sysfs.join("bus/pci/drivers_probe"),
            &dev.to_string(),
        )
    }

    fn set_sriov_numvfs(&self, pf: &Bdf, count: u32) -> Result<(), VfioError> {
        write_attr(
            &self.paths.pci_device(pf).join("sriov_numvfs"),
            &count.to_string(),
        )
    }

    fn set_rom_enabled(&self, dev: &Bdf, enabled: bool) -> Result<(), VfioError> {
        write_attr(
            &self.paths.pci_device(dev).join("rom"),
            if enabled { "1" } else { "0" },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_go_to_existing_attributes_only() {
        let dir = tempfile::tempdir().unwrap();
        let paths = HostPaths {
            sysfs: dir.path().to_owned(),
            ..HostPaths::default()
        };
        let bdf: Bdf = "0000:03:00.0".parse().unwrap();
        let dev = paths.pci_device(&bdf);
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::write(dev.join("driver_override"), "(null)\n").unwrap();
        std::fs::create_dir_all(paths.pci_driver("mlx5_core")).unwrap();
        let kernel = SysfsKernel::new(paths.clone());

        kernel.set_driver_override(&bdf, Some("vfio-pci")).unwrap();
        assert_eq!(
            std::fs::read_to_string(dev.join("driver_override")).unwrap(),
            "vfio-pci"
        );
        kernel.set_driver_override(&bdf, None).unwrap();
        assert_eq!(
            std::fs::read_to_string(dev.join("driver_override")).unwrap(),
            "\n"
        );

        // No unbind attribute in the fake driver dir: a typed error naming file and value.
        let err = kernel.unbind(&bdf, "mlx5_core").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("mlx5_core/unbind") && text.contains("0000:03:00.0"),
            "{text}"
        );
        assert!(!paths.pci_driver("mlx5_core").join("unbind").exists());
    }
}
