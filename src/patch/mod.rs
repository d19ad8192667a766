//! Turns a plan into additions for a base initrd: the init stanza placed for the base's flavor,
//! the binaries it needs with their libraries, the DHCP client and its files.

pub mod assemble;
pub mod base;
pub mod detect;
pub mod dhcp;
pub mod elf;
pub mod flavor;
pub mod host_file;
pub mod place;
mod runnable;
mod shell_lexer;
pub mod stanza;
#[cfg(test)]
mod test_trees;
mod tree_text;
pub mod wrap;

pub use assemble::{patch, PatchError, PatchPlan, Patched};

/// The static busybox bootrig ships into every image it patches, with applet links in
/// [`TOOLS_DIR`] that the stanza puts first on PATH: the stanza never depends on the tools a base
/// happens to have (dracut images have no `ip`, `udhcpc` or `poweroff`). The wrapper init runs
/// under it too (its `#!` line).
pub const BUSYBOX_IN_IMAGE: &str = "/usr/lib/bootrig/busybox";
pub const TOOLS_DIR: &str = "/usr/lib/bootrig/bin";
/// bootrig's udhcpc script, apart from any the base has.
pub const UDHCPC_SCRIPT_IN_IMAGE: &str = "/usr/lib/bootrig/udhcpc.script";
