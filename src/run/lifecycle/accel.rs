//! The accelerator a boot runs under: `auto` resolved once per run.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::interrupt::Interrupt;
use crate::qemu::accel::{self, Accel};
use crate::scenario::AccelChoice;

/// Resolves `auto` once per run: the KVM probe takes a few seconds and its answer does not
/// change between scenarios.
pub struct AccelResolver {
    qemu: PathBuf,
    workdir: PathBuf,
    auto: OnceLock<Accel>,
}

impl AccelResolver {
    pub fn new(qemu: &Path, workdir: &Path) -> Self {
        Self {
            qemu: qemu.to_owned(),
            workdir: workdir.to_owned(),
            auto: OnceLock::new(),
        }
    }

    pub fn resolve(&self, choice: AccelChoice, interrupt: &Interrupt) -> Accel {
        match choice {
            AccelChoice::Tcg => Accel::Tcg,
            AccelChoice::Kvm => Accel::Kvm,
            AccelChoice::Auto => *self.auto.get_or_init(|| {
                accel::choose_auto(&self.qemu, accel::DEFAULT_TIMEOUT, &self.workdir, interrupt)
            }),
        }
    }
}
