//! bootrig: an end-to-end test harness for diskless network boot on Mellanox/NVIDIA adapters.
//!
//! Data flows one way: scenario → plan → initrd → boot → console → verdict → report. Each module
//! owns one concern; see `../shared/DESIGN.md` and README.md.

pub mod boot;
pub mod build;
pub mod cli;
pub mod console;
pub mod doctor;
pub mod fsutil;
pub mod initrd;
pub mod kmod;
pub mod patch;
pub mod qemu;
pub mod report;
pub mod run;
pub mod scenario;
pub mod verdict;
pub mod vfio;
