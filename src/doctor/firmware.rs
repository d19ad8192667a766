//! Firmware QEMU boots: SeaBIOS (legacy BIOS, the default path), OVMF (UEFI) and the iPXE
//! option ROMs QEMU loads into emulated NICs for network boot.

use super::{install, Check, Host, Status};

// The paths live with the code that boots with them: one list for doctor and the runs.
use crate::qemu::firmware::{IPXE_DIR, OVMF_PAIRS, SEABIOS_PATHS as SEABIOS};
/// NIC models and whether the default path (virtio-net) needs them. QEMU loads
/// `efi-<model>.rom` (a combined BIOS + UEFI ROM) by default and `pxe-<model>.rom` for older
/// machine types, so both count.
const NIC_MODELS: [(&str, bool); 3] = [("virtio", true), ("e1000", false), ("e1000e", false)];

pub(super) fn checks(host: &Host, out: &mut Vec<Check>) {
    out.push(seabios(host));
    out.push(ovmf(host));
    for (model, required) in NIC_MODELS {
        out.push(ipxe(host, model, required));
    }
}

fn seabios(host: &Host) -> Check {
    let check = match SEABIOS.iter().find(|p| host.file(p).is_file()) {
        Some(path) => Check::new("seabios", Status::Ok, *path),
        None => Check::new(
            "seabios",
            Status::Missing,
            format!("none of {}", SEABIOS.join(", ")),
        )
        .fix(install("seabios")),
    };
    check.required()
}

fn ovmf(host: &Host) -> Check {
    if let Some((code, vars)) = OVMF_PAIRS
        .iter()
        .find(|(code, vars)| host.file(code).is_file() && host.file(vars).is_file())
    {
        return Check::new("ovmf", Status::Ok, format!("{code} + {vars}"));
    }
    let detail = match OVMF_PAIRS
        .iter()
        .find(|(code, _)| host.file(code).is_file())
    {
        Some((code, vars)) => format!("{code} without its variable store {vars}"),
        None => format!("no {} (UEFI boots need it)", OVMF_PAIRS[0].0),
    };
    Check::new("ovmf", Status::Missing, detail).fix(install("ovmf"))
}

fn ipxe(host: &Host, model: &str, required: bool) -> Check {
    let name = format!("ipxe {model}");
    let roms = [format!("pxe-{model}.rom"), format!("efi-{model}.rom")];
    let missing: Vec<&String> = roms
        .iter()
        .filter(|rom| !host.file(&format!("{IPXE_DIR}/{rom}")).is_file())
        .collect();
    let check = if missing.is_empty() {
        Check::new(
            name,
            Status::Ok,
            format!("{IPXE_DIR}/{{{}}}", roms.join(",")),
        )
    } else {
        let missing: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        Check::new(
            name,
            Status::Missing,
            format!("no {} in {IPXE_DIR}", missing.join(", ")),
        )
        .fix(install("ipxe-qemu"))
    };
    if required {
        check.required()
    } else {
        check
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    fn run(fake: &FakeHost) -> Vec<Check> {
        let mut out = Vec::new();
        checks(&fake.host, &mut out);
        out
    }

    #[test]
    fn each_missing_firmware_names_its_package() {
        let out = run(&FakeHost::empty());
        for (name, package, required) in [
            ("seabios", "seabios", true),
            ("ovmf", "ovmf", false),
            ("ipxe virtio", "ipxe-qemu", true),
            ("ipxe e1000", "ipxe-qemu", false),
        ] {
            let check = find(&out, name);
            assert_eq!(check.status, Status::Missing, "{name}");
            assert_eq!(check.required, required, "{name}");
            let fix = check.fix.as_deref().unwrap();
            assert!(
                fix.contains(package) && fix.contains("images/setup"),
                "{fix}"
            );
        }
    }

    #[test]
    fn plain_bios_bin_and_legacy_ovmf_names_are_accepted() {
        let fake = FakeHost::empty();
        fake.file("/usr/share/seabios/bios.bin", b"x");
        fake.file("/usr/share/OVMF/OVMF_CODE.fd", b"x");
        fake.file("/usr/share/OVMF/OVMF_VARS.fd", b"x");
        let out = run(&fake);
        assert_eq!(find(&out, "seabios").detail, "/usr/share/seabios/bios.bin");
        assert_eq!(find(&out, "ovmf").status, Status::Ok);
    }

    #[test]
    fn ovmf_code_without_vars_and_half_a_rom_pair_are_missing() {
        let fake = FakeHost::empty();
        fake.file("/usr/share/OVMF/OVMF_CODE_4M.fd", b"x");
        fake.file("/usr/lib/ipxe/qemu/pxe-virtio.rom", b"x");
        let out = run(&fake);
        let ovmf = find(&out, "ovmf");
        assert_eq!(ovmf.status, Status::Missing);
        assert!(ovmf.detail.contains("OVMF_VARS_4M.fd"), "{}", ovmf.detail);
        let virtio = find(&out, "ipxe virtio");
        assert_eq!(virtio.status, Status::Missing);
        assert_eq!(virtio.detail, "no efi-virtio.rom in /usr/lib/ipxe/qemu");
    }

    #[test]
    fn this_hosts_firmware_is_complete() {
        let host = Host::from_env(std::path::Path::new("/"));
        let out = {
            let mut out = Vec::new();
            checks(&host, &mut out);
            out
        };
        for check in &out {
            assert_eq!(
                check.status,
                Status::Ok,
                "run images/setup first: {check:?}"
            );
        }
    }
}
