//! A kernel's module knowledge: `.ko` files (also `.ko.xz`, `.ko.zst`, `.ko.gz`) and their
//! `.modinfo`, `modules.dep`/`modules.builtin`/`modules.builtin.modinfo`/`modules.softdep`,
//! the kernel release of a bzImage, and the load plan built from them: closure, order,
//! vermagic, parameters, firmware, built-ins and historical module names.
//!
//! Entry point: [`plan()`] with a [`PlanRequest`], returning a [`Plan`].

pub mod builtin;
pub mod compress;
pub mod error;
pub mod hidden;
pub mod history;
pub mod kernel_release;
pub mod modinfo;
pub mod name;
pub mod params;
pub mod plan;
pub mod render;
pub mod suggest;
pub mod tree;

#[cfg(test)]
pub(crate) mod test_elf;

pub use error::KmodError;
pub use plan::{
    plan, ErrorKind, ModuleStatus, Plan, PlanError, PlanRequest, PlanWarning, PlannedModule,
    Reported,
};
pub use render::render;
