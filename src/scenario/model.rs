//! The scenario as bootrig uses it: the public types, one per TOML table, paths resolved and
//! every value checked. The file's own shape is [`super::raw`]; the checks are the per-table
//! files beside this one.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use strum::{IntoStaticStr, VariantArray};

use crate::initrd::add::AddMode;
use crate::net::addr::{ClientId, Ipv4Subnet};
pub use crate::net::config::ClientMatch;
// The NIC and machine are QEMU's own names; the boot choices below (firmware, method, fetch,
// accelerator) are the scenario's, resolved into qemu's types (firmware paths, a probed
// accelerator) by the run. The command line (`bootrig repro`) takes both as they are.
pub use crate::qemu::machine::{MachineType, NicModel};

/// A parsed scenario, paths resolved against the file's directory.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// The file it came from.
    pub path: PathBuf,
    pub name: String,
    pub kernel: Kernel,
    pub initrd: Initrd,
    pub network: Network,
    pub boot: Boot,
    pub expect: Expect,
    /// Lab hardware the scenario needs: an adapter named in the lab inventory.
    pub hardware: Option<Hardware>,
    /// `[rdma]`: an emulated RDMA device the stanza creates and tests.
    pub rdma: Option<Rdma>,
}

/// `[rdma]`: Soft-RoCE (the kernel's `rdma_rxe`), an RDMA device over the scenario's
/// interface, driven by the same ib_core/ib_uverbs/rdma_cm as a real HCA.
#[derive(Debug, Clone, Serialize)]
pub struct Rdma {
    /// The device's name [`rxe0`].
    pub device: String,
    /// The bound on the port becoming ACTIVE and on each test [20 s].
    #[serde(with = "humantime_serde_secs")]
    pub timeout: std::time::Duration,
}

/// What `[expect] rdma` can ask of the Soft-RoCE device, each judged from the console.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, IntoStaticStr, VariantArray,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum RdmaCheck {
    /// The device exists and its port is ACTIVE.
    Active,
    /// `ibv_devinfo` lists it (libibverbs found the provider).
    Devinfo,
    /// A verbs round trip (`ibv_rc_pingpong`) against the interface's own address.
    Verbs,
    /// An rdma_cm round trip (`rping`): the CM resolved the address and connected.
    Cm,
}

/// `[hardware]`: the adapter passed to the guest with VFIO; its values (PCI address, GUID,
/// ROM) live in the lab inventory, not here.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hardware {
    pub adapter: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Kernel {
    pub image: PathBuf,
    /// Module trees, first match wins (e.g. an OFED `updates/` tree over the distribution's).
    pub modules: Vec<PathBuf>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, IntoStaticStr, VariantArray,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Order {
    /// Keep the user's order and check it.
    Strict,
    /// Compute the closure and a valid order.
    Resolve,
    /// No checks: load exactly what is listed, to reproduce a field failure.
    AsIs,
}

#[derive(Debug, Clone, Serialize)]
pub enum Base {
    /// bootrig's own minimal busybox initrd.
    Busybox,
    /// A real initrd.
    Image(PathBuf),
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, IntoStaticStr, VariantArray,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum FlavorChoice {
    Auto,
    Busybox,
    InitramfsTools,
    Dracut,
    DebianInstaller,
    Generic,
    Wrap,
}

#[derive(Debug, Clone, Serialize)]
pub struct Initrd {
    pub base: Base,
    pub load: Vec<String>,
    pub order: Order,
    pub binaries: Vec<PathBuf>,
    pub flavor: FlavorChoice,
    /// Generic flavor: insert the stanza after the first line of `/init` matching this regex.
    pub anchor: Option<String>,
    pub mode: AddMode,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, IntoStaticStr, VariantArray,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum DhcpChoice {
    Udhcpc,
    Dhclient,
}

#[derive(Debug, Clone, Serialize)]
pub enum Addressing {
    Dhcp(DhcpChoice),
    Static {
        cidr: String,
        gateway: Option<String>,
    },
    None,
}

#[derive(Debug, Clone, Serialize)]
pub struct Network {
    pub interface: String,
    pub addressing: Addressing,
    /// The DHCP client-identifier, hex bytes `ff:00:…`: given as is, or made from `guid`.
    pub client_id: Option<String>,
    pub guid: Option<String>,
    /// The host side of the guest's network.
    pub backend: Backend,
}

/// Where the guest's NIC is plugged in.
#[derive(Debug, Clone, Serialize)]
pub enum Backend {
    /// QEMU's user-mode network: its own DHCP (answers anyone) and TFTP; no host state.
    User,
    /// A network namespace bootrig makes, with dnsmasq serving DHCP and TFTP as a lab would.
    Dnsmasq(DhcpServer),
    /// An existing host bridge (a lab's network with its own DHCP server).
    Bridge(String),
}

/// `[network.dhcp_server]`: what the dnsmasq backend's server does, every value parsed (so
/// [`DhcpServer::config`] has nothing left to parse). Serialized (into the build cache key) in
/// the words the file uses.
#[derive(Debug, Clone, Serialize)]
pub struct DhcpServer {
    #[serde(serialize_with = "as_text")]
    pub subnet: Ipv4Subnet,
    /// The dynamic pool, first and last address; none: reserved clients only.
    pub range: Option<[Ipv4Addr; 2]>,
    pub reservations: Vec<ReservationSpec>,
    /// Lease time, within [`super::LEASE_TIME_RANGE`] [1h].
    #[serde(serialize_with = "as_humantime")]
    pub lease_time: Option<Duration>,
    /// The boot file the DHCP reply names [bootrig's iPXE script, for method = "ipxe"]: a lab's
    /// own chain (a name under the run's boot directory, or a URL).
    pub boot_file: Option<String>,
    /// A fault to inject: `{ kind = "no-server" }`, `{ kind = "reply-delay", seconds = 5 }`,
    /// `{ kind = "no-boot-file" }`, `{ kind = "wrong-next-server" }`,
    /// `{ kind = "exhausted-range" }`, `{ kind = "restart-mid-boot" }`.
    #[serde(skip_serializing)]
    pub fault: Option<crate::net::DhcpFault>,
}

/// One fixed address, by MAC or by client-identifier (`ff:00:…`, as dnsmasq's `id:`).
#[derive(Debug, Clone, Serialize)]
pub struct ReservationSpec {
    #[serde(serialize_with = "client_match")]
    pub client: ClientMatch,
    pub address: Ipv4Addr,
}

/// `[expect] lease`: the server must have leased this address to this client-identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseExpect {
    pub client_id: ClientId,
    pub address: Ipv4Addr,
}

fn as_text<S: serde::Serializer>(v: &impl std::fmt::Display, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn as_humantime<S: serde::Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(d) => s.collect_str(&humantime::format_duration(*d)),
        None => s.serialize_none(),
    }
}

/// `mac 52:54:…` or `id ff:00:…`.
fn client_match<S: serde::Serializer>(v: &ClientMatch, s: S) -> Result<S::Ok, S::Error> {
    match v {
        ClientMatch::Mac(mac) => s.collect_str(&format_args!("mac {mac}")),
        ClientMatch::ClientId(id) => s.collect_str(&format_args!("id {id}")),
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    IntoStaticStr,
    VariantArray,
    ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Firmware {
    /// SeaBIOS, legacy BIOS.
    Bios,
    /// OVMF.
    Uefi,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    IntoStaticStr,
    VariantArray,
    ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Method {
    /// The NIC's iPXE ROM netboots: DHCP, a bootrig-made script, kernel and initrd fetched.
    Ipxe,
    /// QEMU loads kernel and initrd itself (`-kernel`/`-initrd`): checks an initrd alone.
    Direct,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    IntoStaticStr,
    VariantArray,
    ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Fetch {
    /// QEMU user-mode network's TFTP server.
    Tftp,
    /// bootrig's own HTTP server on loopback.
    Http,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    IntoStaticStr,
    VariantArray,
    ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum AccelChoice {
    /// KVM when a bounded probe shows it works, else TCG.
    Auto,
    Tcg,
    Kvm,
}

/// How the scenario boots.
#[derive(Debug, Clone, Serialize)]
pub struct Boot {
    pub firmware: Firmware,
    pub method: Method,
    pub nic: NicModel,
    pub fetch: Fetch,
    pub accel: AccelChoice,
    pub machine: MachineType,
    pub memory_mib: u32,
    /// Extra kernel command line.
    pub append: String,
    /// Pass `initrd=NAME` on the kernel command line in the iPXE script (UEFI needs it); false
    /// reproduces the classic mistake.
    pub ipxe_initrd_arg: bool,
}

/// What a passing boot shows.
#[derive(Debug, Clone, Serialize)]
pub struct Expect {
    /// The planned modules are in /proc/modules, loaded in plan order.
    pub modules_in_order: bool,
    /// The interface must have an address within this subnet (any address when None, when the
    /// scenario configures the network).
    pub address: Option<String>,
    /// The classified failure that is this scenario's expected outcome.
    pub failure: Option<crate::verdict::cause::CauseKind>,
    /// The whole boot.
    #[serde(with = "humantime_serde_secs")]
    pub timeout: std::time::Duration,
    /// Per-phase limits, each phase once.
    pub phase_timeouts: Vec<(crate::verdict::phases::Phase, std::time::Duration)>,
    /// Regular expressions that must match some console line.
    pub console: Vec<String>,
    /// Regular expressions no console line may match.
    pub not_console: Vec<String>,
    pub shell: Vec<crate::console::ShellStep>,
    /// What the DHCP server must have leased (dnsmasq backend).
    pub lease: Option<LeaseExpect>,
    /// The Soft-RoCE checks that must pass (all of them when `[rdma]` is on and the key is
    /// not given).
    pub rdma: Vec<RdmaCheck>,
}

mod humantime_serde_secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::assert_serde_names;

    /// Reports and `bootrig repro` spell these as the scenario file does.
    #[test]
    fn enum_names_are_their_serde_names() {
        assert_serde_names::<RdmaCheck>();
        assert_serde_names::<Order>();
        assert_serde_names::<FlavorChoice>();
        assert_serde_names::<DhcpChoice>();
        assert_serde_names::<Firmware>();
        assert_serde_names::<Method>();
        assert_serde_names::<Fetch>();
        assert_serde_names::<AccelChoice>();
    }

    /// clap's names for `bootrig repro --firmware …` are the same words.
    #[test]
    fn command_line_names_are_the_scenario_names() {
        use crate::names::Named;
        fn check<T: ValueEnum + Named>() {
            for v in T::VARIANTS {
                let clap = v.to_possible_value().map(|p| p.get_name().to_owned());
                assert_eq!(clap.as_deref(), Some(v.as_str()));
            }
        }
        check::<Firmware>();
        check::<Method>();
        check::<Fetch>();
        check::<AccelChoice>();
    }
}
