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
pub mod net;
pub mod patch;
pub mod qemu;
pub mod report;
pub mod run;
pub mod scenario;
pub mod verdict;
pub mod vfio;

/// An error and its causes, joined with ": ". Each layer's message says what it was doing and
/// leaves its cause to `source()`, so every cause appears once.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        msg.push_str(": ");
        msg.push_str(&cause.to_string());
        source = cause.source();
    }
    msg
}
