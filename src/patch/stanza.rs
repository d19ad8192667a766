//! The guest-side loading stanza: loads the planned modules in order, brings up the network and
//! reports both in the guest protocol (`docs/ARCHITECTURE.md`, "Guest protocol"), then lets the
//! boot go on or powers off.
//!
//! The shell functions live in `harness/stanza.sh` (a real file, shellcheck-clean); `render`
//! appends one call per step of the plan, every argument single-quoted, and wraps it all in a
//! subshell so that it can be executed (initramfs-tools hook), sourced (dracut hook) or pasted
//! into `/init` without leaking variables or `set` options into its host.

use thiserror::Error;

use crate::net::addr::ClientId;
use crate::shell::single_quote;

/// The functions the rendered stanza calls.
const FUNCTIONS: &str = include_str!("../../harness/stanza.sh");

/// bootrig's busybox udhcpc script (busybox udhcpc only negotiates; the script applies the
/// lease). Add it to an image with [`udhcpc_script_addition`].
pub const UDHCPC_SCRIPT: &str = include_str!("../../harness/udhcpc.script");

/// Where the busybox base keeps the udhcpc script: busybox's compiled-in default path.
pub const UDHCPC_SCRIPT_DEFAULT_PATH: &str = "/usr/share/udhcpc/default.script";

/// Seconds the stanza waits for the interface to appear after the modules are loaded: drivers
/// may register it asynchronously (IPoIB waits for the HCA's ports).
pub const INTERFACE_WAIT_SECS: u32 = 20;

/// The rdma-core and iproute2 programs the Soft-RoCE step runs, from [`RdmaSpec::tools`].
pub const RDMA_TOOLS: [&str; 4] = ["rdma", "ibv_devinfo", "ibv_rc_pingpong", "rping"];

/// First and last line of every rendered stanza, so a person (and a re-patch) can find it.
pub const BEGIN_MARK: &str = "# >>> bootrig stanza";
pub const END_MARK: &str = "# <<< bootrig stanza";
/// The line before the calls for one plan.
const PLAN_MARK: &str = "# The plan, in order:";

/// One module to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleLoad {
    /// As the plan names it, e.g. `ib_core`.
    pub name: String,
    /// In the image, e.g. `/lib/modules/<release>/kernel/drivers/infiniband/core/ib_core.ko`.
    pub path: String,
    /// `insmod` parameters, whitespace-separated (`port_type_array=2,2 debug_level=1`).
    pub params: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// Modules only.
    None,
    Dhcp {
        interface: String,
        client: DhcpClient,
    },
    Static {
        interface: String,
        /// `192.0.2.10/24`.
        cidr: String,
        gateway: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhcpClient {
    /// busybox udhcpc.
    Udhcpc {
        /// The udhcpc script in the image (see [`UDHCPC_SCRIPT`]).
        script: String,
        /// DHCP option 61, parsed once by `net::addr`.
        client_id: Option<ClientId>,
    },
    /// ISC dhclient; all paths in the image.
    Dhclient {
        binary: String,
        conf: String,
        script: String,
        leases: String,
    },
}

/// What happens after the stanza.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Let the original boot go on.
    Continue,
    /// Test mode: power the machine off.
    PowerOff,
    /// Test mode with a shell on the console for the harness, then power off.
    Shell,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaSpec {
    /// In load order.
    pub modules: Vec<ModuleLoad>,
    pub network: Network,
    pub then: Then,
    /// A directory put first on `PATH` inside the stanza: bootrig's own tools (busybox applets),
    /// so the stanza does not depend on what the base image happens to have.
    pub tools_dir: Option<String>,
    /// A Soft-RoCE device to create over the network's interface once it has its address.
    pub rdma: Option<RdmaSpec>,
}

/// `[rdma] soft_roce`: the rxe device the stanza creates and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdmaSpec {
    /// The RDMA device's name, e.g. `rxe0`.
    pub device: String,
    /// The directory in the image holding `rdma`, `ibv_devinfo`, `ibv_rc_pingpong`, `rping`.
    pub tools: String,
    /// The bound on waiting for the port and on each test.
    pub seconds: u32,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum StanzaError {
    #[error("{what} {value:?} contains a NUL byte, which a shell script cannot carry")]
    Nul { what: &'static str, value: String },
    #[error("{what} is empty; the stanza needs {example}")]
    Empty {
        what: &'static str,
        example: &'static str,
    },
}

/// The stanza for `spec`: a self-contained block of POSIX shell.
pub fn render(spec: &StanzaSpec) -> Result<String, StanzaError> {
    let mut calls = vec!["bootrig_begin".to_string()];
    for m in &spec.modules {
        calls.push(insmod_call(m)?);
    }
    calls.push("bootrig_modules".into());
    if let Some(interface) = network_calls(&spec.network, &mut calls)? {
        calls.push(format!("bootrig_addrs {}", single_quote(interface)));
        if let Some(rdma) = &spec.rdma {
            calls.push(rdma_call(rdma, interface)?);
        }
    }
    calls.push("bootrig_done".into());
    if spec.then == Then::Shell {
        calls.push("bootrig_shell".into());
    }
    if spec.then != Then::Continue {
        calls.push("bootrig_poweroff".into());
    }

    let functions = FUNCTIONS
        .lines()
        .filter(|l| !l.starts_with("# shellcheck shell="))
        .collect::<Vec<_>>()
        .join("\n");
    let path = match &spec.tools_dir {
        Some(dir) => format!(
            "PATH={}:\"$PATH\"; export PATH\n",
            single_quote(checked(
                "tools directory",
                dir,
                "a directory such as /usr/lib/bootrig/bin"
            )?)
        ),
        None => String::new(),
    };
    Ok(format!(
        "{BEGIN_MARK}: loads the planned modules and brings up the network (bootrig build)\n(\n{path}{functions}\n\n{PLAN_MARK}\n{}\n)\n{END_MARK}\n",
        calls.join("\n")
    ))
}

/// An addition putting [`UDHCPC_SCRIPT`] at `dest` (mode 0755).
pub fn udhcpc_script_addition(dest: &str) -> crate::initrd::add::Addition {
    crate::initrd::add::Addition::bytes(dest, UDHCPC_SCRIPT.as_bytes().to_vec(), 0o755)
}

/// Commands the stanza runs, for checking that an image has them (on `PATH` or as given).
pub fn required_commands(spec: &StanzaSpec) -> Vec<String> {
    let mut cmds: Vec<String> = ["sh", "cat", "printf"].map(String::from).to_vec();
    if !spec.modules.is_empty() {
        // Or `kmod`, which the stanza falls back to (dracut images have no insmod link).
        cmds.push("insmod".into());
        // The kernel's log of a failed insmod.
        cmds.extend(["dmesg", "tail", "wc"].map(String::from));
    }
    match &spec.network {
        Network::None => {}
        Network::Dhcp { client, .. } => {
            cmds.extend(["ip", "sleep"].map(String::from));
            match client {
                DhcpClient::Udhcpc { script, .. } => {
                    cmds.extend(["udhcpc".to_string(), script.clone()])
                }
                DhcpClient::Dhclient { binary, .. } => {
                    cmds.extend(["mkdir".to_string(), binary.clone()])
                }
            }
        }
        Network::Static { .. } => cmds.extend(["ip", "sleep"].map(String::from)),
    }
    if let (Some(rdma), false) = (&spec.rdma, spec.network == Network::None) {
        cmds.extend(["dmesg", "tail", "wc", "sleep", "timeout", "ip"].map(String::from));
        for tool in RDMA_TOOLS {
            cmds.push(format!("{}/{tool}", rdma.tools.trim_end_matches('/')));
        }
    }
    if spec.then != Then::Continue {
        cmds.extend(["sleep", "poweroff"].map(String::from));
    }
    cmds.sort();
    cmds.dedup();
    cmds
}

/// The Soft-RoCE step, over the network's interface (after its address: the round trips use it).
fn rdma_call(rdma: &RdmaSpec, interface: &str) -> Result<String, StanzaError> {
    Ok(format!(
        "bootrig_rdma_rxe {} {} {} '{}'",
        single_quote(checked("RDMA device", &rdma.device, "rxe0")?),
        single_quote(interface),
        single_quote(checked("RDMA tools directory", &rdma.tools, "/usr/bin")?),
        rdma.seconds
    ))
}

fn insmod_call(m: &ModuleLoad) -> Result<String, StanzaError> {
    let name = checked("module name", &m.name, "a name such as ib_core")?;
    let path = checked(
        "module path",
        &m.path,
        "the .ko's path in the image, e.g. /lib/modules/<release>/kernel/.../ib_core.ko",
    )?;
    no_nul("module parameters", &m.params)?;
    // /proc/modules spells every name with underscores.
    let kernel_name = name.replace('-', "_");
    let mut call = format!(
        "bootrig_insmod {} {} {}",
        single_quote(name),
        single_quote(&kernel_name),
        single_quote(path)
    );
    for param in m.params.split_ascii_whitespace() {
        call.push(' ');
        call.push_str(&single_quote(param));
    }
    Ok(call)
}

/// Pushes the network calls; returns the interface whose addresses are reported.
fn network_calls<'a>(
    network: &'a Network,
    calls: &mut Vec<String>,
) -> Result<Option<&'a str>, StanzaError> {
    const IFACE: &str = "an interface name such as eth0 or ib0";
    let interface = match network {
        Network::None => return Ok(None),
        Network::Dhcp { interface, .. } | Network::Static { interface, .. } => {
            checked("interface", interface, IFACE)?
        }
    };
    let q = single_quote(interface);
    calls.push(format!(
        "if bootrig_wait_interface {q} {INTERFACE_WAIT_SECS}; then"
    ));
    let step = match network {
        Network::None => unreachable!("returned above"),
        Network::Dhcp {
            client: DhcpClient::Udhcpc { script, client_id },
            ..
        } => {
            let script = checked("udhcpc script", script, UDHCPC_SCRIPT_DEFAULT_PATH)?;
            let mut call = format!("bootrig_udhcpc {q} {}", single_quote(script));
            if let Some(id) = client_id {
                call.push(' ');
                call.push_str(&single_quote(&client_id_hex(id)));
            }
            call
        }
        Network::Dhcp {
            client:
                DhcpClient::Dhclient {
                    binary,
                    conf,
                    script,
                    leases,
                },
            ..
        } => format!(
            "bootrig_dhclient {q} {} {} {} {}",
            single_quote(checked("dhclient binary", binary, "/sbin/dhclient")?),
            single_quote(checked("dhclient.conf", conf, "/etc/dhcp/dhclient.conf")?),
            single_quote(checked("dhclient-script", script, "/sbin/dhclient-script")?),
            single_quote(checked(
                "dhclient leases file",
                leases,
                "/var/lib/dhcp/dhclient.leases"
            )?),
        ),
        Network::Static { cidr, gateway, .. } => {
            let mut call = format!(
                "bootrig_static {q} {}",
                single_quote(checked("static address", cidr, "192.0.2.10/24")?)
            );
            if let Some(gw) = gateway {
                call.push(' ');
                call.push_str(&single_quote(checked("gateway", gw, "192.0.2.1")?));
            }
            call
        }
    };
    calls.push(format!("\t{step}"));
    calls.push("fi".into());
    Ok(Some(interface))
}

/// The bare hex udhcpc's `-x 0x3d:HEX` takes: two digits a byte, from the parsed bytes, so
/// `1:2:a` is `01020a` and not the odd-length `12a` a text filter would make.
fn client_id_hex(id: &ClientId) -> String {
    id.to_plain_hex()
}

fn checked<'a>(
    what: &'static str,
    value: &'a str,
    example: &'static str,
) -> Result<&'a str, StanzaError> {
    no_nul(what, value)?;
    if value.trim().is_empty() {
        return Err(StanzaError::Empty { what, example });
    }
    Ok(value)
}

fn no_nul(what: &'static str, value: &str) -> Result<(), StanzaError> {
    if value.contains('\0') {
        return Err(StanzaError::Nul {
            what,
            value: value.into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    #[test]
    fn tools_dir_goes_first_on_path_inside_the_subshell() {
        let mut s = spec();
        s.tools_dir = Some("/usr/lib/bootrig/bin".into());
        let text = render(&s).unwrap();
        let open = text.find("\n(\n").unwrap();
        let path = text
            .find("PATH='/usr/lib/bootrig/bin':\"$PATH\"; export PATH")
            .unwrap();
        assert!(path > open && path < text.find("bootrig_begin").unwrap());
        assert!(!render(&spec()).unwrap().contains("export PATH"));
    }

    fn spec() -> StanzaSpec {
        StanzaSpec {
            modules: vec![
                ModuleLoad {
                    name: "ib_core".into(),
                    path: "/lib/modules/6.1.0-56-amd64/kernel/drivers/infiniband/core/ib_core.ko"
                        .into(),
                    params: String::new(),
                },
                ModuleLoad {
                    name: "mlx4-core".into(),
                    path: "/lib/modules/x/mlx4_core.ko".into(),
                    params: "port_type_array=2,2  debug_level=1".into(),
                },
            ],
            network: Network::Dhcp {
                interface: "ib0".into(),
                client: DhcpClient::Udhcpc {
                    script: UDHCPC_SCRIPT_DEFAULT_PATH.into(),
                    client_id: Some("FF:00:00:00:00:00:02:00".parse().unwrap()),
                },
            },
            then: Then::PowerOff,
            tools_dir: None,
            rdma: None,
        }
    }

    #[test]
    fn soft_roce_follows_the_address_report_and_needs_its_tools() {
        let mut s = spec();
        s.network = Network::Static {
            interface: "eth0".into(),
            cidr: "10.0.2.15/24".into(),
            gateway: None,
        };
        s.rdma = Some(RdmaSpec {
            device: "rxe0".into(),
            tools: "/usr/bin".into(),
            seconds: 20,
        });
        let text = render(&s).unwrap();
        let c = calls(&text);
        let addrs = c.iter().position(|l| *l == "bootrig_addrs 'eth0'").unwrap();
        assert_eq!(
            c[addrs + 1],
            "bootrig_rdma_rxe 'rxe0' 'eth0' '/usr/bin' '20'"
        );
        let cmds = required_commands(&s);
        for want in ["/usr/bin/rdma", "/usr/bin/rping", "timeout"] {
            assert!(cmds.iter().any(|c| c == want), "{want} in {cmds:?}");
        }
        // Without a network there is no interface to put the device on.
        s.network = Network::None;
        assert!(!render(&s).unwrap().contains("bootrig_rdma_rxe '"));
        assert!(!required_commands(&s).iter().any(|c| c == "timeout"));
    }

    fn calls(text: &str) -> Vec<&str> {
        let body = text.split(&format!("{PLAN_MARK}\n")).nth(1).unwrap();
        body.lines().collect()
    }

    #[test]
    fn calls_follow_the_plan_in_order() {
        let text = render(&spec()).unwrap();
        assert!(text.starts_with(BEGIN_MARK));
        assert!(text.trim_end().ends_with(END_MARK));
        assert_eq!(
            calls(&text),
            [
                "bootrig_begin",
                "bootrig_insmod 'ib_core' 'ib_core' '/lib/modules/6.1.0-56-amd64/kernel/drivers/infiniband/core/ib_core.ko'",
                "bootrig_insmod 'mlx4-core' 'mlx4_core' '/lib/modules/x/mlx4_core.ko' 'port_type_array=2,2' 'debug_level=1'",
                "bootrig_modules",
                "if bootrig_wait_interface 'ib0' 20; then",
                "\tbootrig_udhcpc 'ib0' '/usr/share/udhcpc/default.script' 'ff00000000000200'",
                "fi",
                "bootrig_addrs 'ib0'",
                "bootrig_done",
                "bootrig_poweroff",
                ")",
                END_MARK,
            ]
        );
    }

    #[test]
    fn continue_mode_does_not_power_off_and_static_sets_the_route() {
        let mut s = spec();
        s.then = Then::Continue;
        s.network = Network::Static {
            interface: "eth0".into(),
            cidr: "192.0.2.10/24".into(),
            gateway: Some("192.0.2.1".into()),
        };
        let text = render(&s).unwrap();
        assert!(calls(&text).contains(&"bootrig_done"));
        assert!(!calls(&text).contains(&"bootrig_poweroff"));
        assert!(text.contains("\tbootrig_static 'eth0' '192.0.2.10/24' '192.0.2.1'\n"));
    }

    #[test]
    fn dhclient_gets_its_files() {
        let mut s = spec();
        s.network = Network::Dhcp {
            interface: "eth0".into(),
            client: DhcpClient::Dhclient {
                binary: "/sbin/dhclient".into(),
                conf: "/etc/dhcp/dhclient.conf".into(),
                script: "/sbin/dhclient-script".into(),
                leases: "/var/lib/dhcp/dhclient.leases".into(),
            },
        };
        let text = render(&s).unwrap();
        assert!(text.contains("\tbootrig_dhclient 'eth0' '/sbin/dhclient' '/etc/dhcp/dhclient.conf' '/sbin/dhclient-script' '/var/lib/dhcp/dhclient.leases'\n"));
    }

    #[test]
    fn hostile_strings_stay_literal() {
        assert_eq!(single_quote("a'b $(x) `y`"), r"'a'\''b $(x) `y`'");
        let mut s = spec();
        s.modules[0].name = "x'; poweroff -f; '".into();
        let text = render(&s).unwrap();
        assert!(text.contains(r"bootrig_insmod 'x'\''; poweroff -f; '\'''"));
    }

    #[test]
    fn bad_fields_are_errors_not_panics() {
        let mut s = spec();
        s.modules[1].path = " ".into();
        assert!(matches!(
            render(&s),
            Err(StanzaError::Empty {
                what: "module path",
                ..
            })
        ));
        let mut s = spec();
        s.modules[0].params = "a\0b".into();
        assert!(matches!(render(&s), Err(StanzaError::Nul { .. })));
    }

    #[test]
    fn an_unnormalised_client_id_is_sent_two_digits_a_byte() {
        // One hex digit a byte is how dhclient and dnsmasq write small bytes; udhcpc's bare
        // hex needs both digits of each.
        let mut s = spec();
        s.network = Network::Dhcp {
            interface: "eth0".into(),
            client: DhcpClient::Udhcpc {
                script: "/s".into(),
                client_id: Some("1:2:a".parse().unwrap()),
            },
        };
        let text = render(&s).unwrap();
        assert!(
            text.contains("\tbootrig_udhcpc 'eth0' '/s' '01020a'\n"),
            "{text}"
        );
    }

    #[test]
    fn required_commands_cover_the_network_choice() {
        let cmds = required_commands(&spec());
        for c in [
            "insmod",
            "ip",
            "udhcpc",
            "poweroff",
            UDHCPC_SCRIPT_DEFAULT_PATH,
        ] {
            assert!(cmds.iter().any(|x| x == c), "{c} missing from {cmds:?}");
        }
        let mut s = spec();
        s.network = Network::None;
        s.then = Then::Continue;
        assert!(!required_commands(&s).iter().any(|c| c == "ip"));
    }

    /// Every shell the stanza meets: busybox ash (busybox-static, installed by images/setup)
    /// and the host's /bin/sh (dash on Debian) must parse it.
    #[test]
    fn shells_parse_the_stanza_and_the_harness_scripts() {
        let stanza = render(&spec()).unwrap();
        let shells: [&[&str]; 2] = [&["/bin/busybox", "sh", "-n"], &["/bin/sh", "-n"]];
        for shell in shells {
            for (what, text) in [
                ("stanza", stanza.as_str()),
                ("udhcpc.script", UDHCPC_SCRIPT),
            ] {
                let mut child = Command::new(shell[0])
                    .args(&shell[1..])
                    .stdin(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap_or_else(|e| {
                        panic!("{}: {e}: run images/setup first (busybox-static)", shell[0])
                    });
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(text.as_bytes())
                    .unwrap();
                let out = child.wait_with_output().unwrap();
                assert!(
                    out.status.success(),
                    "{shell:?} rejects the {what}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}
