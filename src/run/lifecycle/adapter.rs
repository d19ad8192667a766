//! A lab adapter passed through with VFIO: bound to vfio-pci for the boot, its drivers put
//! back after it (or when the guard is dropped, on an error return or a panic).

use crate::report::model::Finding;
use crate::run::inventory::Adapter;
use crate::run::judge::Findings;
use crate::run::target::{AdapterNeed, Target};
use crate::vfio::{Passthrough, Request as VfioRequest, SysfsKernel};

use super::SetupError;

/// Binds the target's adapter (and its IOMMU group) to vfio-pci, if it has one.
pub(super) fn bind(target: &Target) -> Result<Option<Passthrough<SysfsKernel>>, SetupError> {
    match &target.adapter {
        Some(AdapterNeed::Found(adapter)) => Ok(Some(bind_adapter(adapter, target)?)),
        _ => Ok(None),
    }
}

/// Binds the adapter (and its IOMMU group) to vfio-pci after the preflight, for this boot.
fn bind_adapter(
    adapter: &Adapter,
    target: &Target,
) -> Result<Passthrough<SysfsKernel>, SetupError> {
    let mut req = VfioRequest::new(adapter.bdf, &target.id);
    req.memory_mib = Some(target.boot.memory_mib);
    req.romfile = adapter.rom.clone();
    req.stand_in = adapter.stand_in;
    req.state_dir = adapter.lab.state_dir.clone();
    req.lock_wait = adapter.lab.lock_wait;
    req.sriov = adapter
        .vf
        .map(|(vf, numvfs)| crate::vfio::SriovRequest { numvfs, vf });
    Ok(Passthrough::prepare(
        SysfsKernel::new(crate::vfio::HostPaths::default()),
        &req,
    )?)
}

/// Puts the adapter's drivers back now; a failure is a finding naming the way out.
pub(super) fn restore(passthrough: Passthrough<SysfsKernel>, findings: &mut Findings) {
    if let Err(e) = passthrough.restore() {
        findings.boot.push(Finding::AdapterRestore {
            error: crate::error_chain(&e),
        });
    }
}
