//! `[boot]`: how the scenario boots (firmware, method, NIC, accelerator, memory, kernel line).

use super::error::Refusal;
use super::model::{AccelChoice, Boot, Fetch, Firmware, MachineType, Method, NicModel};
use super::raw::RawBoot;

/// Guest memory in MiB a scenario may ask for.
pub const MEMORY_MIB: std::ops::RangeInclusive<u32> = 128..=1 << 20;

pub(super) fn boot_from(raw: RawBoot) -> Result<Boot, Refusal> {
    if let Some(m) = &raw.memory {
        if !MEMORY_MIB.contains(m.get_ref()) {
            return Err(Refusal::at(
                m,
                format!(
                    "[boot] memory = {}: MiB of guest memory, {} to {} (a TCG guest with a distribution initrd wants 1024 or more)",
                    m.get_ref(),
                    MEMORY_MIB.start(),
                    MEMORY_MIB.end()
                ),
            ));
        }
    }
    if let Some(a) = &raw.append {
        if a.get_ref().chars().any(|c| c.is_control()) {
            return Err(Refusal::at(
                a,
                "[boot] append: one line of kernel arguments, no control characters",
            ));
        }
    }
    let method = raw.method.as_ref().map_or(Method::Ipxe, |m| *m.get_ref());
    if let Some(arg) = &raw.ipxe_initrd_arg {
        if method == Method::Direct && !arg.get_ref() {
            return Err(Refusal::at(
                arg,
                "[boot] ipxe_initrd_arg applies to method = \"ipxe\" only",
            ));
        }
    }
    Ok(Boot {
        firmware: raw.firmware.unwrap_or(Firmware::Bios),
        method,
        nic: raw.nic.unwrap_or(NicModel::VirtioNetPci),
        fetch: raw.fetch.unwrap_or(Fetch::Tftp),
        accel: raw.accel.unwrap_or(AccelChoice::Auto),
        machine: raw.machine.unwrap_or(MachineType::Q35),
        memory_mib: raw.memory.map_or(1024, |m| m.into_inner()),
        append: raw.append.map(|a| a.into_inner()).unwrap_or_default(),
        ipxe_initrd_arg: raw.ipxe_initrd_arg.is_none_or(|a| a.into_inner()),
    })
}
