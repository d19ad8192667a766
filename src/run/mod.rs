//! `bootrig run`: netboot each scenario in QEMU, drive its serial console, and judge it.

pub mod drive;
pub mod interrupt;
pub mod judge;
pub mod serial;
pub mod suite;
pub mod target;
pub mod boot;
