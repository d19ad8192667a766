//! newc cpio (placeholder).
