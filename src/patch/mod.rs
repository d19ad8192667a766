//! Turns a plan into additions for a base initrd: the init stanza placed for the base's flavor,
//! the binaries it needs with their libraries, the DHCP client and its files.

pub mod base;
pub mod dhcp;
pub mod elf;
pub mod flavor;
pub mod stanza;
