//! What the VM is given of a passed-through adapter: its host function and option ROM. Here, below
//! `qemu`, so that `vfio` needs nothing of `qemu`; `qemu::machine` turns it into `-device vfio-pci`.

use std::path::PathBuf;

use super::Bdf;

/// The option ROM of a passed-through adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VfioRom {
    /// The card's own ROM (its FlexBoot), read through the ROM BAR (`rombar=1`).
    Device,
    /// This image (a FlexBoot build) instead of the card's.
    File(PathBuf),
    /// No ROM BAR: the adapter cannot netboot (direct-boot runs).
    Disabled,
}

/// A host PCI function handed to the guest with VFIO (`-device vfio-pci`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfioDevice {
    pub host: Bdf,
    pub rom: VfioRom,
    /// Boot priority (`bootindex`); `None` leaves it out of the boot order.
    pub bootindex: Option<u32>,
}
