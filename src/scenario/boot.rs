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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::testing::{parsed, refused_at, with};

    fn boot(keys: &str) -> String {
        with(&format!("[boot]\n{keys}"))
    }

    #[test]
    fn defaults_and_choices() {
        let b = parsed(&with("")).boot;
        assert_eq!(
            (b.firmware, b.method, b.fetch),
            (Firmware::Bios, Method::Ipxe, Fetch::Tftp)
        );
        assert_eq!((b.memory_mib, b.ipxe_initrd_arg), (1024, true));
        let b = parsed(&boot(
            "method = \"direct\"\nmemory = 128\nfirmware = \"uefi\"",
        ))
        .boot;
        assert_eq!(
            (b.method, b.memory_mib, b.firmware),
            (Method::Direct, 128, Firmware::Uefi)
        );
    }

    #[test]
    fn each_bad_value_is_refused_where_it_is_written() {
        for (keys, at, says) in [
            (
                "firmware = \"efi\"",
                "\"efi\"",
                "expected `bios` or `uefi`; did you mean `uefi`?",
            ),
            ("method = \"pxe\"", "\"pxe\"", "did you mean `ipxe`?"),
            ("accel = \"hvf\"", "\"hvf\"", "unknown variant `hvf`"),
            (
                "memory = 64",
                "64",
                "[boot] memory = 64: MiB of guest memory, 128 to 1048576",
            ),
            ("memory = 2000000", "2000000", "128 to 1048576"),
            ("memory = -1", "-1", "invalid value: integer `-1`"),
            ("memory = \"1G\"", "\"1G\"", "invalid type: string"),
            ("append = \"a\\nb\"", "\"a\\nb\"", "no control characters"),
            (
                "method = \"direct\"\nipxe_initrd_arg = false",
                "false",
                "applies to method = \"ipxe\" only",
            ),
        ] {
            refused_at(&boot(keys), at, says);
        }
    }

    /// `imag` is near `[kernel] image`, no key of `[boot]`.
    #[test]
    fn the_key_suggested_is_one_of_this_table() {
        let e = refused_at(&boot("imag = \"x\""), "imag = \"x\"", "unknown field");
        assert!(!e.contains("did you mean"), "{e}");
        let e = refused_at(&boot("memry = 512"), "memry", "unknown field");
        assert!(e.ends_with("did you mean `memory`?"), "{e}");
    }
}
