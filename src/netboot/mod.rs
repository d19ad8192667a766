//! Network boot of a kernel and initrd through the iPXE ROM of an emulated NIC: the per-run boot
//! directory ([`stage`]), the iPXE script ([`ipxe`]) and the HTTP server the guest may fetch
//! from ([`http`]). The QEMU side (firmware, command line) is in [`crate::qemu`].

pub mod http;
pub mod ipxe;
pub mod lab_root;
pub mod stage;
