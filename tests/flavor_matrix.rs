//! Every base flavor × every DHCP client × overlay and repack, booted: what `bootrig build`
//! makes of each combination must boot, load its modules in order and put an address on eth0.
//! A combination no test walked once hid a panic (an initramfs-tools image whose busybox
//! hardlinks all became `ip`), so none is left out.
//!
//! Bases: bootrig's busybox base, a real initramfs-tools image (busybox applets as hardlinks,
//! merged-usr), a real dracut image, and the Debian installer's own netboot initrd, all made or
//! fetched by `images/setup --tests`. Clients: busybox udhcpc, ISC dhclient (with the real `ip`
//! it calls), and a static address. The scenarios are written as users write them: files in a
//! directory of their own, paths relative to the file, run with `bootrig check DIR` from the
//! repository root; each is a direct boot (`check`), the quick loop for the initrd alone.

mod common;

use std::fs;

struct Base {
    id: &'static str,
    /// `base =` relative to the repository root (`busybox` is bootrig's own).
    base: &'static str,
}

const BASES: &[Base] = &[
    Base {
        id: "busybox",
        base: "busybox",
    },
    Base {
        id: "initramfs-tools",
        base: "images/cache/initrds/mkinitramfs-gzip.img",
    },
    Base {
        id: "dracut",
        base: "images/cache/initrds/dracut-gzip.img",
    },
    Base {
        id: "installer",
        base: "images/cache/initrds/debian-installer/initrd.gz",
    },
];

/// `[network]` lines per client.
const CLIENTS: &[(&str, &str)] = &[
    ("udhcpc", "dhcp = \"udhcpc\""),
    ("dhclient", "dhcp = \"dhclient\""),
    ("static", "static = \"10.0.2.15/24\""),
];

const MODES: &[&str] = &["overlay", "repack"];

fn scenario(up: &str, base: &Base, client: &str, network: &str, mode: &str) -> String {
    let base_value = if base.base == "busybox" {
        "busybox".to_string()
    } else {
        format!("{up}{}", base.base)
    };
    format!(
        r#"name = "{id} base, {client}, {mode}"

[kernel]
image = "{up}images/cache/current/vmlinuz"
modules = "{up}images/cache/current"

[initrd]
base = "{base_value}"
load = ["virtio_pci", "virtio_net", "mlx4_core", "mlx4_en"]
order = "resolve"
mode = "{mode}"

[network]
interface = "eth0"
{network}

[boot]
method = "direct"
nic = "virtio-net-pci"

[expect]
address = "10.0.2.0/24"
timeout = "300s"
"#,
        id = base.id,
    )
}

#[test]
fn every_flavor_client_and_mode_boots_with_modules_in_order_and_an_address() {
    if !common::require(&[
        common::Need::Qemu,
        common::Need::TestFixtures,
        common::Need::Program("/bin/busybox", "busybox-static"),
    ]) {
        return;
    }
    let root = common::repo_root();
    for b in BASES.iter().filter(|b| b.base != "busybox") {
        assert!(
            root.join(b.base).is_file(),
            "{}: missing; run ./images/setup --tests",
            b.base
        );
    }
    // A suite directory inside the repository, so the scenarios' paths are relative like a
    // user's.
    let suite = common::repo_suite("flavor-matrix-");
    let mut ids = Vec::new();
    for b in BASES {
        for (client, network) in CLIENTS {
            for mode in MODES {
                let id = format!("{}-{client}-{mode}", b.id);
                fs::write(
                    suite.dir.path().join(format!("{id}.toml")),
                    scenario(&suite.up, b, client, network, mode),
                )
                .unwrap();
                ids.push(id);
            }
        }
    }
    assert_eq!(ids.len(), 24);
    let checked = common::check_suite(&suite);
    let mut failures = Vec::new();
    for id in &ids {
        let sc = checked.scenario(id);
        if sc["outcome"] != "pass" {
            failures.push(format!(
                "{id}: {} {} {}\n{}",
                sc["outcome"], sc["cause"], sc["findings"], sc["console_excerpt"]
            ));
            continue;
        }
        let dir = checked.run_dir().join(id);
        let console = fs::read_to_string(dir.join("console.txt")).unwrap();
        for want in ["BOOTRIG addr eth0 10.0.2.15/24", "BOOTRIG done"] {
            if !console.contains(want) {
                failures.push(format!("{id}: no {want:?} on the console"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 24 combinations failed:\n{}\n{}",
        failures.len(),
        failures.join("\n\n"),
        checked.stdout
    );
    assert!(checked.status.success(), "{}", checked.stdout);
}
