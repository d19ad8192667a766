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

/// An error and its causes, each once: what a person needs to act on it.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = cause.source();
    }
    msg
}
pub mod vfio;
