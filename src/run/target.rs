//! What one boot is about, whatever asked for it: a scenario file (`bootrig run`) or a field
//! initrd taken as it is (`bootrig repro`).

use std::path::PathBuf;

use crate::scenario::{Backend, Boot, Expect, Scenario};

/// Kernel arguments bootrig always passes: the console it reads, a panic that ends the boot
/// (with `-no-reboot`, QEMU exits) instead of hanging until the timeout, and no IO-APIC timer
/// check: under TCG on a loaded host the emulated timer can miss the check's window and the
/// kernel panics ("IO-APIC + timer doesn't work!"), a flake of the host, not of the initrd
/// (seen in the flavor matrix on 2 busy cores; virtual machines skip the check for this reason).
pub const CONSOLE_ARGS: &str = "console=ttyS0,115200 panic=-1 no_timer_check";
/// Added for built scenarios: kernel messages below warnings would split the stanza's protocol
/// lines; classic interface names, since udev in distribution images renames eth0.
pub const SCENARIO_ARGS: &str = "loglevel=4 net.ifnames=0";

#[derive(Debug, Clone)]
pub enum InitrdSource {
    /// Build the scenario's patched initrd.
    Build(Box<Scenario>),
    /// Boot this initrd unchanged.
    Given(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Target {
    /// Stable id in reports and the artifact directory's name.
    pub id: String,
    pub name: String,
    /// The scenario file, if there is one.
    pub file: Option<PathBuf>,
    pub kernel: PathBuf,
    pub initrd: InitrdSource,
    pub boot: Boot,
    pub expect: Expect,
    /// The interface whose address is checked.
    pub interface: Option<String>,
    /// The host side of the guest's network.
    pub backend: Backend,
    /// The lab adapter passed with VFIO, resolved from the inventory.
    pub adapter: Option<AdapterNeed>,
    /// The kernel command line after [`CONSOLE_ARGS`].
    pub append: String,
    /// A console line that means the boot got where it should (repro); scenarios end on the
    /// stanza's `BOOTRIG done` instead.
    pub until: Option<String>,
}

impl Target {
    /// A scenario as `bootrig run` boots it.
    pub fn from_scenario(id: &str, scenario: Scenario) -> Self {
        let mut append = SCENARIO_ARGS.to_string();
        if !scenario.boot.append.is_empty() {
            append.push(' ');
            append.push_str(&scenario.boot.append);
        }
        let interface = match scenario.network.addressing {
            crate::scenario::Addressing::None => None,
            _ => Some(scenario.network.interface.clone()),
        };
        Self {
            id: id.to_string(),
            name: scenario.name.clone(),
            file: Some(scenario.path.clone()),
            kernel: scenario.kernel.image.clone(),
            boot: scenario.boot.clone(),
            expect: scenario.expect.clone(),
            interface,
            backend: scenario.network.backend.clone(),
            adapter: scenario
                .hardware
                .as_ref()
                .map(|h| AdapterNeed::Named(h.adapter.clone())),
            append,
            until: None,
            initrd: InitrdSource::Build(Box::new(scenario)),
        }
    }

    /// The full kernel command line.
    pub fn cmdline(&self) -> String {
        if self.append.is_empty() {
            CONSOLE_ARGS.to_string()
        } else {
            format!("{CONSOLE_ARGS} {}", self.append)
        }
    }

    /// Why this target cannot run on this host, if it cannot: IPoIB needs a real adapter, and a
    /// named adapter must be in the inventory and on this host.
    pub fn skip_reason(&self, sysfs: &std::path::Path) -> Option<String> {
        match &self.adapter {
            Some(AdapterNeed::Missing(why)) => return Some(why.clone()),
            Some(AdapterNeed::Found(a)) => {
                let dev = sysfs.join("bus/pci/devices").join(a.bdf.to_string());
                return (!dev.exists()).then(|| {
                    format!(
                        "adapter {} ({}) is not on this host (no {})",
                        a.name,
                        a.bdf,
                        dev.display()
                    )
                });
            }
            Some(AdapterNeed::Named(name)) => {
                return Some(format!("adapter {name}: no inventory was read"))
            }
            None => {}
        }
        let iface = self.interface.as_deref()?;
        if !iface.starts_with("ib") {
            return None;
        }
        let adapters = mellanox_functions(sysfs);
        Some(if adapters.is_empty() {
            format!(
                "interface {iface} exists only on a real ConnectX adapter, and this host has none \
                 (no PCI device with vendor 0x15b3 under {}); QEMU's emulated NICs give eth0 only",
                sysfs.join("bus/pci/devices").display()
            )
        } else {
            format!(
                "interface {iface} needs an adapter passed through with VFIO: name one of this \
                 host's ({}) in [hardware] adapter and the lab inventory",
                adapters.join(", ")
            )
        })
    }
}

/// A scenario's `[hardware] adapter`, as the inventory resolved it.
#[derive(Debug, Clone)]
pub enum AdapterNeed {
    /// Not looked up yet.
    Named(String),
    Found(super::inventory::Adapter),
    /// Why it cannot be had (not in the inventory): the scenario is skipped with this.
    Missing(String),
}

impl AdapterNeed {
    /// Looks the adapter up in `inventory`.
    pub fn resolve(self, inventory: &super::inventory::Inventory) -> Self {
        match self {
            AdapterNeed::Named(name) => match inventory.adapters.get(&name) {
                Some(a) => AdapterNeed::Found(a.clone()),
                None => AdapterNeed::Missing(format!(
                    "adapter {name:?} is not in the lab inventory {} (give --inventory or ${}, \
                     see harness/lab-inventory.example.toml)",
                    inventory.path.display(),
                    super::inventory::INVENTORY_ENV
                )),
            },
            other => other,
        }
    }
}

/// PCI functions of vendor 0x15b3 (Mellanox/NVIDIA) under `sysfs`.
pub fn mellanox_functions(sysfs: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(sysfs.join("bus/pci/devices")) else {
        return Vec::new();
    };
    let mut found: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read_to_string(e.path().join("vendor"))
                .map(|v| v.trim() == "0x15b3")
                .unwrap_or(false)
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn target(iface: &str) -> Target {
        let text = format!(
            "name = \"t\"\n[kernel]\nimage = \"k\"\nmodules = \"m\"\n[initrd]\nload = []\n[network]\ninterface = \"{iface}\"\ndhcp = \"udhcpc\"\n[boot]\nappend = \"quiet\"\n"
        );
        Target::from_scenario("t", Scenario::parse(&text, Path::new("/s/t.toml")).unwrap())
    }

    #[test]
    fn command_line_has_console_scenario_and_user_arguments() {
        assert_eq!(
            target("eth0").cmdline(),
            "console=ttyS0,115200 panic=-1 no_timer_check loglevel=4 net.ifnames=0 quiet"
        );
    }

    #[test]
    fn ipoib_is_skipped_without_an_adapter_and_names_what_is_missing() {
        let sysfs = tempfile::tempdir().unwrap();
        let dev = sysfs.path().join("bus/pci/devices/0000:00:02.0");
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::write(dev.join("vendor"), "0x8086\n").unwrap();
        assert_eq!(target("eth0").skip_reason(sysfs.path()), None);
        let none = target("ib0").skip_reason(sysfs.path()).unwrap();
        assert!(none.contains("has none"), "{none}");
        let hca = sysfs.path().join("bus/pci/devices/0000:81:00.0");
        std::fs::create_dir_all(&hca).unwrap();
        std::fs::write(hca.join("vendor"), "0x15b3\n").unwrap();
        let some = target("ib0").skip_reason(sysfs.path()).unwrap();
        assert!(
            some.contains("0000:81:00.0") && some.contains("VFIO"),
            "{some}"
        );
    }
}
