//! The console stage: the guest's serial console read into timestamped lines, each cleaned once
//! ([`text`], [`transcript`]); the guest protocol bootrig's stanza speaks ([`protocol`]) and
//! the evidence read from it ([`evidence`]); what other programs print when they give up
//! ([`fatal`]); and the expect-style driving of a boot
//! ([`serial`], [`driver`]). Later stages (verdict, report) consume its typed lines; none of
//! them parses `BOOTRIG …` or terminal control itself.

pub mod driver;
pub mod evidence;
pub mod fatal;
pub mod protocol;
pub mod serial;
pub mod shell_step;
pub mod text;
pub mod transcript;

pub use evidence::{parse, read, DhcpRun, Evidence, Insmod, ProcModule, RdmaPort, RdmaTest};
pub use protocol::{GuestLine, InsmodResult};
pub use shell_step::ShellStep;
pub use transcript::ConsoleLine;

#[cfg(test)]
pub(crate) use transcript::test_lines;
