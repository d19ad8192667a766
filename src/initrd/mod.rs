//! Initrd images: ordered segments of (compressed) newc cpio archives, read and written the way
//! the kernel's `init/initramfs.c` unpacks them.

pub mod codec;
pub mod cpio;
pub mod lz4legacy;
