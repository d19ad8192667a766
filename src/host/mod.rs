//! This host as bootrig's stages see it: processes (`procs`), this process's capabilities
//! (`caps`) and the one check that a user-named input is a regular file (`input`). Below every
//! stage: it imports nothing from the rest of bootrig, so any module may use it.

pub mod caps;
pub mod input;
pub mod procs;
