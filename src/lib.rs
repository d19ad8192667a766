//! bootrig: an end-to-end test harness for diskless network boot on Mellanox/NVIDIA adapters.
//!
//! Data flows one way, and the modules below are listed in that order: scenario → plan (`kmod`)
//! → initrd (`initrd`, `patch`, `build`) → boot (`netboot`, `net`, `vfio`, `qemu`) → `console`
//! → `verdict` → `report`. Each stage takes the value the stage before it made; none calls back
//! into one that ran before it (a module may name another's vocabulary type: the scenario names a
//! NIC model from `qemu`). `run` orchestrates the stages for each scenario, `cli` and `doctor`
//! sit on top, and `host`, `fsutil`, `interrupt`, `shell` and [`error_chain`] sit below everything.
//! docs/ARCHITECTURE.md describes each module and the seams between them.

// What to do: scenario files, checked before anything is built.
pub mod scenario;

// The plan: a kernel's modules, their closure and load order.
pub mod kmod;

// The initrd: the archive engine, the additions for a base's flavor, and the build.
pub mod build;
pub mod initrd;
pub mod patch;

// The boot: the files a netboot fetches and their servers, the host's networks, lab adapters
// through VFIO, and QEMU itself.
pub mod net;
pub mod netboot;
pub mod qemu;
pub mod vfio;

// The console: the guest protocol, the transcript and the driver.
pub mod console;

// The verdict: causes, phases and checks from the evidence.
pub mod verdict;

// The report: table, JSON, JUnit, progress.
pub mod report;

// On top: one scenario's boot end to end and the suite (`run`), the command line, host checks.
pub mod cli;
pub mod doctor;
pub mod run;

// Below everything: host processes, capabilities and input files, atomic output files,
// Ctrl-C/SIGTERM, enum names, shell quoting.
pub mod columns;
pub mod fsutil;
pub mod host;
pub mod interrupt;
pub mod names;
pub mod shell;

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
