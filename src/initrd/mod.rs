//! Initrd images: ordered segments of (compressed) newc cpio archives, read and written the way
//! the kernel's `init/initramfs.c` unpacks them.
//!
//! Layers, bottom up: `codec` (segment compression), `cpio` (newc entries), `input` (raw bytes
//! with offsets), `image` (the segment walk), `tree` (the merged view the kernel leaves), then the
//! operations: `extract`, `diff`, `add`.

pub mod add;
pub mod codec;
pub mod cpio;
pub mod diff;
pub mod extract;
mod framing;
pub mod image;
pub mod input;
pub mod lz4legacy;
pub mod pack;
pub mod path;
pub mod tree;
