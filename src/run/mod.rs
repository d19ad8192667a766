//! `bootrig run`: netboot each scenario in QEMU, drive its serial console, and judge it.

pub mod serial;
