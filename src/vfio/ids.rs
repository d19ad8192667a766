//! The Mellanox/NVIDIA adapters bootrig knows, by PCI device id, with the host driver each uses.
//!
//! Sources (ids are never guessed):
//! - mlx4_core: the `mlx4_pci_table` in the Linux kernel's
//!   drivers/net/ethernet/mellanox/mlx4/main.c — `MLX_GN(PCI_DEVICE_ID_MELLANOX_CONNECTX3)`
//!   "MT27500 Family [ConnectX-3]", `MLX_VF(0x1004)` "Virtual Function",
//!   `MLX_GN(PCI_DEVICE_ID_MELLANOX_CONNECTX3_PRO)` "MT27520 Family"; the two constants are
//!   0x1003 and 0x1007 in include/linux/pci_ids.h. The PCI ID repository (pci.ids) names 1004
//!   "MT27500/MT27520 Family [ConnectX-3/ConnectX-3 Pro Virtual Function]": one VF id for both.
//! - mlx5_core: the `mlx5_core_pci_table` in drivers/net/ethernet/mellanox/mlx5/core/main.c —
//!   `PCI_DEVICE_ID_MELLANOX_CONNECTX4` (0x1013) and `_CONNECTX4_LX` (0x1015) from pci_ids.h,
//!   and literal ids with the table's own comments for the rest (0x1014 "ConnectX-4 VF" …
//!   0xa2dc "BlueField-3 integrated ConnectX-7 network controller"). 0x101e is the table's
//!   "ConnectX Family mlx5Gen Virtual Function": the VF of ConnectX-6 Dx and later; the commit
//!   adding BlueField-2 (d19a79ee38c8) says "Its VFs will be using the generic VF device ID".

use serde::Serialize;

/// PCI vendor id of Mellanox (NVIDIA networking), as sysfs `vendor` prints it.
pub const MELLANOX_VENDOR: u16 = 0x15b3;

/// The host kernel driver of a device when it is not passed through.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr, strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum HostDriver {
    Mlx4Core,
    Mlx5Core,
}

/// A physical function or an SR-IOV virtual function.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr, strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Function {
    Pf,
    Vf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KnownDevice {
    pub device_id: u16,
    pub name: &'static str,
    pub function: Function,
    pub driver: HostDriver,
}

const fn pf(device_id: u16, name: &'static str, driver: HostDriver) -> KnownDevice {
    KnownDevice {
        device_id,
        name,
        function: Function::Pf,
        driver,
    }
}

const fn vf(device_id: u16, name: &'static str, driver: HostDriver) -> KnownDevice {
    KnownDevice {
        device_id,
        name,
        function: Function::Vf,
        driver,
    }
}

use HostDriver::{Mlx4Core, Mlx5Core};

/// Every device bootrig passes through (see the module comment for each id's source).
pub const KNOWN_DEVICES: &[KnownDevice] = &[
    // mlx4/main.c mlx4_pci_table.
    pf(0x1003, "ConnectX-3", Mlx4Core),
    vf(0x1004, "ConnectX-3/ConnectX-3 Pro VF", Mlx4Core),
    pf(0x1007, "ConnectX-3 Pro", Mlx4Core),
    // mlx5/core/main.c mlx5_core_pci_table.
    pf(0x1013, "ConnectX-4", Mlx5Core),
    vf(0x1014, "ConnectX-4 VF", Mlx5Core),
    pf(0x1015, "ConnectX-4 Lx", Mlx5Core),
    vf(0x1016, "ConnectX-4 Lx VF", Mlx5Core),
    pf(0x1017, "ConnectX-5", Mlx5Core),
    vf(0x1018, "ConnectX-5 VF", Mlx5Core),
    pf(0x1019, "ConnectX-5 Ex", Mlx5Core),
    vf(0x101a, "ConnectX-5 Ex VF", Mlx5Core),
    pf(0x101b, "ConnectX-6", Mlx5Core),
    vf(0x101c, "ConnectX-6 VF", Mlx5Core),
    pf(0x101d, "ConnectX-6 Dx", Mlx5Core),
    vf(
        0x101e,
        "ConnectX mlx5Gen VF (ConnectX-6 Dx and later, BlueField-2/3)",
        Mlx5Core,
    ),
    pf(0x101f, "ConnectX-6 Lx", Mlx5Core),
    pf(0x1021, "ConnectX-7", Mlx5Core),
    pf(0xa2d2, "BlueField (integrated ConnectX-5)", Mlx5Core),
    vf(0xa2d3, "BlueField (integrated ConnectX-5) VF", Mlx5Core),
    pf(0xa2d6, "BlueField-2 (integrated ConnectX-6 Dx)", Mlx5Core),
    pf(0xa2dc, "BlueField-3 (integrated ConnectX-7)", Mlx5Core),
];

/// The known device with this id, if any.
pub fn lookup(device_id: u16) -> Option<&'static KnownDevice> {
    KNOWN_DEVICES.iter().find(|d| d.device_id == device_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_serdes() {
        crate::names::assert_serde_names::<HostDriver>();
        crate::names::assert_serde_names::<Function>();
        use crate::names::Named;
        assert_eq!(HostDriver::Mlx5Core.as_str(), "mlx5_core");
    }

    #[test]
    fn ids_are_unique_and_drivers_follow_the_family() {
        for (i, d) in KNOWN_DEVICES.iter().enumerate() {
            assert!(
                KNOWN_DEVICES[i + 1..]
                    .iter()
                    .all(|e| e.device_id != d.device_id),
                "{:#06x} twice",
                d.device_id
            );
            // ConnectX-3 family ids are 0x100x below 0x1010; mlx5 starts at 0x1011 (Connect-IB).
            let mlx4 = d.device_id < 0x1011;
            assert_eq!(d.driver == Mlx4Core, mlx4, "{}", d.name);
            assert_eq!(
                d.function == Function::Vf,
                d.name.contains("VF"),
                "{}",
                d.name
            );
        }
    }

    #[test]
    fn lookup_finds_pfs_and_vfs() {
        assert_eq!(lookup(0x1007).map(|d| d.name), Some("ConnectX-3 Pro"));
        assert_eq!(lookup(0x101d).map(|d| d.driver), Some(Mlx5Core));
        assert_eq!(lookup(0x1004).map(|d| d.function), Some(Function::Vf));
        assert_eq!(lookup(0xa2dc).map(|d| d.function), Some(Function::Pf));
        // Connect-IB (0x1011) is mlx5 but not an adapter bootrig boots through.
        assert_eq!(lookup(0x1011), None);
        assert_eq!(lookup(0x0000), None);
    }
}
