//! Scenario files: the user's main interface. TOML, paths relative to the file, every key checked:
//! an unknown key or a wrong type is an error with file, line and column, and a suggestion. Loading
//! also checks every file and directory the scenario names (kernel, module trees, base initrd,
//! binaries), each reported at its value's line and column: all of it before anything is built.
//!
//! ```toml
//! name = "mlx4 IPoIB, manual order"
//! [kernel]
//! image = "../images/cache/current/vmlinuz"
//! modules = "../images/cache/current"          # a tree, or a list layered first-match
//! [initrd]
//! base = "busybox"                             # or a path to any real initrd
//! load = ["mlx4_core", "mlx4_en"]              # "name" or "name params"
//! order = "strict"                             # or "resolve", or "as-is"
//! binaries = ["/sbin/ifconfig"]
//! [network]
//! interface = "eth0"
//! dhcp = "udhcpc"                              # or "dhclient", or static = "192.0.2.10/24"
//! guid = "0002:c903:0000:1039"                 # IPoIB client-identifier from a port GUID
//! ```

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;
use toml::Spanned;

use crate::initrd::add::AddMode;
// The NIC and machine are QEMU's own names; the boot choices below (firmware, method, fetch,
// accelerator) are the scenario's, resolved into qemu's types (firmware paths, a probed
// accelerator) by the run. The command line (`bootrig repro`) takes both as they are.
pub use crate::qemu::machine::{MachineType, NicModel};

#[derive(Debug, Error)]
pub enum ScenarioError {
    #[error("{path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// Scenario files are TOML, which is UTF-8; the first byte that is not.
    #[error("{path}:{line}:{column}: byte 0x{byte:02x} at byte offset {offset} is not UTF-8{hint}; save it as UTF-8")]
    NotUtf8 {
        path: PathBuf,
        line: usize,
        column: usize,
        offset: usize,
        byte: u8,
        /// What the bytes look like, when that helps (a UTF-16 byte order mark).
        hint: &'static str,
    },
    /// Files and directories the scenario names that are not there: every one, each at its key.
    #[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Paths(Vec<PathProblem>),
}

/// A path a scenario names that cannot be used as written, at its key's value.
#[derive(Debug, Clone)]
pub struct PathProblem {
    /// The scenario file.
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// `[kernel] image = "…"`, or `[kernel] modules: "…"` for an entry of a list.
    pub key: String,
    /// The path as the scenario file writes it.
    pub written: PathBuf,
    /// Where that led: absolute, through the symlinks that exist.
    pub resolved: PathBuf,
    /// What is wrong there ("no such file", "is a directory, not a file").
    pub problem: String,
    /// Where along the path it goes wrong, when not at its end ("/x/images does not exist").
    pub detail: Option<String>,
    /// What to do about it.
    pub fix: String,
}

impl std::fmt::Display for PathProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.key,
            self.problem
        )?;
        let resolved = (self.resolved != self.written)
            .then(|| format!("resolved to {}", self.resolved.display()));
        let notes: Vec<&str> = resolved
            .iter()
            .chain(&self.detail)
            .map(String::as_str)
            .collect();
        if !notes.is_empty() {
            write!(f, " ({})", notes.join("; "))?;
        }
        write!(f, "; {}", self.fix)
    }
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRdma {
    soft_roce: bool,
    device: Option<String>,
    timeout: Option<String>,
}

/// What `[expect] rdma` can ask of the Soft-RoCE device, each judged from the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
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

impl RdmaCheck {
    pub const ALL: [RdmaCheck; 4] = [
        RdmaCheck::Active,
        RdmaCheck::Devinfo,
        RdmaCheck::Verbs,
        RdmaCheck::Cm,
    ];

    /// The name the guest protocol and `[expect] rdma` use.
    pub fn id(self) -> &'static str {
        match self {
            RdmaCheck::Active => "active",
            RdmaCheck::Devinfo => "devinfo",
            RdmaCheck::Verbs => "verbs",
            RdmaCheck::Cm => "cm",
        }
    }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
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

/// `[network.dhcp_server]`: what the dnsmasq backend's server does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DhcpServer {
    #[serde(default = "default_subnet")]
    pub subnet: String,
    /// The dynamic pool, first and last address; none: reserved clients only.
    pub range: Option<[String; 2]>,
    #[serde(default)]
    pub reservations: Vec<ReservationSpec>,
    /// Lease time, at least 2 minutes (dnsmasq's minimum) [1h].
    pub lease_time: Option<String>,
    /// The boot file the DHCP reply names [bootrig's iPXE script, for method = "ipxe"]: a lab's
    /// own chain (a name under the run's boot directory, or a URL).
    pub boot_file: Option<String>,
    /// A fault to inject: `{ kind = "no-server" }`, `{ kind = "reply-delay", seconds = 5 }`,
    /// `{ kind = "no-boot-file" }`, `{ kind = "wrong-next-server" }`,
    /// `{ kind = "exhausted-range" }`, `{ kind = "restart-mid-boot" }`.
    #[serde(default, skip_serializing)]
    pub fault: Option<crate::net::DhcpFault>,
}

fn default_subnet() -> String {
    "10.77.0.0/24".into()
}

/// One fixed address, by MAC or by client-identifier (`ff:00:…`, as dnsmasq's `id:`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReservationSpec {
    pub client_id: Option<String>,
    pub mac: Option<String>,
    pub address: String,
}

/// `[expect] lease`: the server must have leased this address to this client-identifier.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseExpect {
    pub client_id: String,
    pub address: String,
}

impl DhcpServer {
    /// The server's configuration, checked (boot file and TFTP root are the run's to add).
    pub fn config(&self) -> Result<crate::net::config::DhcpConfig, String> {
        use crate::net::config::{ClientMatch, DhcpConfig, Reservation};
        let mut config = DhcpConfig::default_lab();
        config.subnet = self
            .subnet
            .parse()
            .map_err(|e| format!("[network.dhcp_server] subnet = {:?}: {e}", self.subnet))?;
        let addr = |key: &str, text: &str| {
            text.parse::<std::net::Ipv4Addr>()
                .map_err(|e| format!("[network.dhcp_server] {key} = {text:?}: {e}"))
        };
        config.range = match &self.range {
            Some([first, last]) => Some((addr("range", first)?, addr("range", last)?)),
            None => None,
        };
        if let Some(t) = &self.lease_time {
            let d = humantime::parse_duration(t)
                .map_err(|e| format!("[network.dhcp_server] lease_time = {t:?}: {e}"))?;
            config.lease_secs = u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        }
        for r in &self.reservations {
            let client = match (&r.client_id, &r.mac) {
                (Some(id), None) => ClientMatch::ClientId(id.parse().map_err(|e| {
                    format!("[network.dhcp_server] reservation client_id = {id:?}: {e}")
                })?),
                (None, Some(mac)) => ClientMatch::Mac(mac.parse().map_err(|e| {
                    format!("[network.dhcp_server] reservation mac = {mac:?}: {e}")
                })?),
                _ => {
                    return Err(
                        "[network.dhcp_server] reservations: each gives client_id or mac (one)"
                            .into(),
                    )
                }
            };
            config.reservations.push(Reservation {
                client,
                address: addr("reservation address", &r.address)?,
            });
        }
        // The renderer checks the rest against the subnet (range inside it, lease length).
        crate::net::config::render(
            &config,
            "br0",
            &crate::net::config::DnsmasqFiles::in_dir(std::path::Path::new("/")),
        )
        .map_err(|e| format!("[network.dhcp_server]: {e}"))?;
        Ok(config)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Firmware {
    /// SeaBIOS, legacy BIOS.
    Bios,
    /// OVMF.
    Uefi,
}

impl Firmware {
    /// The name the scenario file uses (serde's kebab-case), for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// The NIC's iPXE ROM netboots: DHCP, a bootrig-made script, kernel and initrd fetched.
    Ipxe,
    /// QEMU loads kernel and initrd itself (`-kernel`/`-initrd`): checks an initrd alone.
    Direct,
}

impl Method {
    /// The name the scenario file uses (serde's kebab-case), for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Ipxe => "ipxe",
            Method::Direct => "direct",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Fetch {
    /// QEMU user-mode network's TFTP server.
    Tftp,
    /// bootrig's own HTTP server on loopback.
    Http,
}

impl Fetch {
    /// The name the scenario file uses (serde's kebab-case), for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Fetch::Tftp => "tftp",
            Fetch::Http => "http",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
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

/// One command for a shell in the guest, and what its output must show.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellStep {
    pub command: String,
    /// Regular expressions that must all match the command's output.
    #[serde(default)]
    pub patterns: Vec<String>,
    /// Expected exit status [0].
    #[serde(default)]
    pub status: i32,
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
    pub shell: Vec<ShellStep>,
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

// The file's shape, strictly: unknown keys are errors.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    kernel: RawKernel,
    initrd: RawInitrd,
    #[serde(default)]
    network: RawNetwork,
    #[serde(default)]
    boot: RawBoot,
    #[serde(default)]
    expect: RawExpect,
    hardware: Option<Hardware>,
    rdma: Option<RawRdma>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoot {
    firmware: Option<Firmware>,
    method: Option<Method>,
    nic: Option<NicModel>,
    fetch: Option<Fetch>,
    accel: Option<AccelChoice>,
    machine: Option<MachineType>,
    memory: Option<u32>,
    append: Option<String>,
    ipxe_initrd_arg: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    modules_in_order: Option<bool>,
    address: Option<String>,
    failure: Option<String>,
    timeout: Option<String>,
    #[serde(default)]
    phases: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    console: Vec<String>,
    #[serde(default)]
    not_console: Vec<String>,
    #[serde(default)]
    shell: Vec<ShellStep>,
    lease: Option<LeaseExpect>,
    rdma: Option<Vec<RdmaCheck>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKernel {
    image: Spanned<PathBuf>,
    modules: Spanned<OneOrMany>,
}

/// `"tree"` or `["tree", …]`; list entries keep where they are written. Not `untagged`: serde
/// buffers untagged values, which loses toml's spans.
#[derive(Debug)]
enum OneOrMany {
    One(PathBuf),
    Many(Vec<Spanned<PathBuf>>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a path, or a list of paths")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(PathBuf::from(v)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(p) = seq.next_element()? {
                    out.push(p);
                }
                Ok(OneOrMany::Many(out))
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInitrd {
    /// None: bootrig's busybox base.
    base: Option<Spanned<String>>,
    #[serde(default)]
    load: Vec<String>,
    #[serde(default = "default_order")]
    order: Order,
    #[serde(default)]
    binaries: Vec<Spanned<PathBuf>>,
    #[serde(default = "default_flavor")]
    flavor: FlavorChoice,
    anchor: Option<String>,
    #[serde(default = "default_mode")]
    mode: RawMode,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum RawMode {
    Overlay,
    Repack,
}

fn default_order() -> Order {
    Order::Strict
}
fn default_flavor() -> FlavorChoice {
    FlavorChoice::Auto
}
fn default_mode() -> RawMode {
    RawMode::Overlay
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    interface: Option<String>,
    dhcp: Option<DhcpChoice>,
    #[serde(rename = "static")]
    static_addr: Option<String>,
    gateway: Option<String>,
    guid: Option<String>,
    client_id: Option<String>,
    backend: Option<RawBackend>,
    dhcp_server: Option<DhcpServer>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawBackend {
    Name(String),
    Bridge { bridge: String },
}

/// Keys a scenario may have, per table, for suggestions.
const KEYS: &[&str] = &[
    "name",
    "kernel",
    "initrd",
    "network",
    "image",
    "modules",
    "base",
    "load",
    "order",
    "binaries",
    "flavor",
    "anchor",
    "mode",
    "interface",
    "dhcp",
    "static",
    "gateway",
    "guid",
    "client_id",
    "boot",
    "firmware",
    "method",
    "nic",
    "fetch",
    "accel",
    "machine",
    "memory",
    "append",
    "ipxe_initrd_arg",
    "expect",
    "modules_in_order",
    "address",
    "failure",
    "timeout",
    "phases",
    "console",
    "not_console",
    "shell",
    "command",
    "patterns",
    "status",
    "backend",
    "bridge",
    "dhcp_server",
    "subnet",
    "range",
    "reservations",
    "lease_time",
    "boot_file",
    "fault",
    "lease",
    "hardware",
    "adapter",
    "rdma",
    "soft_roce",
    "device",
];

/// Default whole-boot limit: a TCG boot of a 40 MB distribution initrd over TFTP under UEFI
/// takes about a minute here; twice that leaves room without hiding a hang for long.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(180);

impl Scenario {
    /// Reads and validates a scenario file, and checks that the files and directories it names
    /// are there: a missing kernel is found here, at its key, not in the middle of a build.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let bytes = std::fs::read(path).map_err(|source| ScenarioError::Read {
            path: path.to_owned(),
            source,
        })?;
        let text = utf8(&bytes, path)?;
        let (scenario, named) = Self::parse_named(text, path)?;
        let problems: Vec<PathProblem> = named.iter().filter_map(|n| n.check(text, path)).collect();
        if !problems.is_empty() {
            return Err(ScenarioError::Paths(problems));
        }
        Ok(scenario)
    }

    /// [`Scenario::load`] of `text` as if it were in `path`.
    #[cfg(test)]
    fn load_checked_for_test(text: &str, path: &Path) -> Result<Self, ScenarioError> {
        std::fs::write(path, text).map_err(|source| ScenarioError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::load(path)
    }

    /// Parses scenario text; `path` names it in errors and anchors relative paths. Touches no
    /// other file: [`Scenario::load`] checks the paths.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ScenarioError> {
        Self::parse_named(text, path).map(|(s, _)| s)
    }

    /// The scenario, and the paths it names with where each is written.
    fn parse_named(text: &str, path: &Path) -> Result<(Self, Vec<NamedPath>), ScenarioError> {
        let raw: RawScenario = toml::from_str(text).map_err(|e| syntax_error(text, path, &e))?;
        // Absolute, so the paths mean the same file to every program bootrig starts, whatever
        // its working directory (dnsmasq changes its own); a path that cannot be made absolute
        // (no working directory) stays relative and fails where it is opened, naming it.
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        let rel = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                dir.join(p)
            }
        };
        let invalid = |message: String| ScenarioError::Invalid {
            path: path.to_owned(),
            message,
        };
        let mut named = Vec::new();
        let mut named_path = |key: &'static str, in_list: bool, written: &Path, at: usize, want| {
            named.push(NamedPath {
                key,
                in_list,
                written: written.to_owned(),
                resolved: rel(written),
                offset: at,
                want,
            });
            rel(written)
        };

        let image = named_path(
            "[kernel] image",
            false,
            raw.kernel.image.get_ref(),
            raw.kernel.image.span().start,
            Want::File,
        );
        let modules_at = raw.kernel.modules.span().start;
        let modules = match raw.kernel.modules.into_inner() {
            OneOrMany::One(p) => vec![named_path(
                "[kernel] modules",
                false,
                &p,
                modules_at,
                Want::Dir,
            )],
            OneOrMany::Many(v) if v.is_empty() => {
                return Err(invalid(
                    "[kernel] modules: give at least one module tree".into(),
                ))
            }
            OneOrMany::Many(v) => v
                .iter()
                .map(|p| {
                    named_path(
                        "[kernel] modules",
                        true,
                        p.get_ref(),
                        p.span().start,
                        Want::Dir,
                    )
                })
                .collect(),
        };
        let base = match &raw.initrd.base {
            None => Base::Busybox,
            Some(b) => match b.get_ref().as_str() {
                // A name, not a path: bootrig's own base.
                "busybox" => Base::Busybox,
                "" => {
                    return Err(invalid(
                        "[initrd] base: empty; use \"busybox\" or a path to an initrd".into(),
                    ))
                }
                p => Base::Image(named_path(
                    "[initrd] base",
                    false,
                    Path::new(p),
                    b.span().start,
                    Want::File,
                )),
            },
        };
        let mut binaries = Vec::new();
        for b in &raw.initrd.binaries {
            let (line, column) = line_column(text, b.span().start);
            if !b.get_ref().is_absolute() {
                return Err(ScenarioError::Syntax {
                    path: path.to_owned(),
                    line,
                    column,
                    message: format!(
                        "[initrd] binaries: {:?}: binaries are host paths, copied into the image with their libraries; write it absolute, e.g. \"/sbin/ip\"",
                        b.get_ref()
                    ),
                });
            }
            binaries.push(named_path(
                "[initrd] binaries",
                true,
                b.get_ref(),
                b.span().start,
                Want::HostBinary,
            ));
        }
        if raw.initrd.anchor.is_some()
            && !matches!(
                raw.initrd.flavor,
                FlavorChoice::Generic | FlavorChoice::Auto
            )
        {
            return Err(invalid(
                "[initrd] anchor: only the generic flavor inserts at an anchor".into(),
            ));
        }
        for entry in &raw.initrd.load {
            if entry.trim().is_empty() {
                return Err(invalid(
                    "[initrd] load: empty entry; each is \"name\" or \"name params\"".into(),
                ));
            }
        }
        let net = raw.network;
        let interface = net.interface.unwrap_or_else(|| "eth0".into());
        let addressing = match (net.dhcp, net.static_addr) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "[network]: both dhcp and static given; choose one".into(),
                ));
            }
            (Some(d), None) => Addressing::Dhcp(d),
            (None, Some(cidr)) => {
                validate_cidr(&cidr)
                    .map_err(|m| invalid(format!("[network] static = {cidr:?}: {m}")))?;
                Addressing::Static {
                    cidr,
                    gateway: net.gateway,
                }
            }
            (None, None) => Addressing::None,
        };
        if net.guid.is_some() && net.client_id.is_some() {
            return Err(invalid(
                "[network]: both guid and client_id given; the client-identifier comes from one"
                    .into(),
            ));
        }
        if let Some(m) = raw.boot.memory {
            if !(128..=1 << 20).contains(&m) {
                return Err(invalid(format!(
                    "[boot] memory = {m}: MiB of guest memory, 128 to 1048576 (a TCG guest with a distribution initrd wants 1024 or more)"
                )));
            }
        }
        if let Some(a) = &raw.boot.append {
            if a.chars().any(|c| c.is_control()) {
                return Err(invalid(
                    "[boot] append: one line of kernel arguments, no control characters".into(),
                ));
            }
        }
        let backend = match (net.backend, net.dhcp_server) {
            (None, None) => Backend::User,
            (Some(RawBackend::Name(n)), None) if n == "user" => Backend::User,
            (Some(RawBackend::Name(n)), server) if n == "dnsmasq" => {
                let server = server.unwrap_or(DhcpServer {
                    subnet: default_subnet(),
                    range: Some(["10.77.0.10".into(), "10.77.0.99".into()]),
                    reservations: Vec::new(),
                    lease_time: None,
                    boot_file: None,
                    fault: None,
                });
                server.config().map_err(invalid)?;
                Backend::Dnsmasq(server)
            }
            (Some(RawBackend::Bridge { bridge }), None) => {
                if !crate::net::config::valid_ifname(&bridge) {
                    return Err(invalid(format!(
                        "[network] backend = {{ bridge = {bridge:?} }}: not an interface name"
                    )));
                }
                Backend::Bridge(bridge)
            }
            (Some(RawBackend::Name(n)), None) => {
                return Err(invalid(format!(
                "[network] backend = {n:?}: use \"user\", \"dnsmasq\" or {{ bridge = \"NAME\" }}"
            )))
            }
            (_, Some(_)) => return Err(invalid(
                "[network.dhcp_server] is for backend = \"dnsmasq\"; set it or remove the table"
                    .into(),
            )),
        };
        let boot = boot_from(raw.boot);
        let rdma = rdma_from(raw.rdma, &raw.initrd.load, &addressing).map_err(invalid)?;
        let mut expect = expect_from(raw.expect, &interface, &addressing).map_err(invalid)?;
        match (&rdma, expect.rdma.is_empty()) {
            (Some(_), true) => expect.rdma = RdmaCheck::ALL.to_vec(),
            (None, false) => {
                return Err(invalid(
                    "[expect] rdma: there is no RDMA device to check; add [rdma] soft_roce = true"
                        .into(),
                ))
            }
            _ => {}
        }
        if boot.method == Method::Direct && !boot.ipxe_initrd_arg {
            return Err(invalid(
                "[boot] ipxe_initrd_arg applies to method = \"ipxe\" only".into(),
            ));
        }
        let scenario = Scenario {
            path: path.to_owned(),
            name: raw.name,
            kernel: Kernel { image, modules },
            initrd: Initrd {
                base,
                load: raw.initrd.load,
                order: raw.initrd.order,
                binaries,
                flavor: raw.initrd.flavor,
                anchor: raw.initrd.anchor,
                mode: match raw.initrd.mode {
                    RawMode::Overlay => AddMode::Overlay,
                    RawMode::Repack => AddMode::Repack,
                },
            },
            network: Network {
                interface,
                addressing,
                client_id: net.client_id,
                guid: net.guid,
                backend,
            },
            boot,
            expect,
            hardware: raw.hardware,
            rdma,
        };
        Ok((scenario, named))
    }

    /// The scenario's id in reports: its file name without `.toml`.
    pub fn stem(&self) -> String {
        self.path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.name.clone())
    }
}

fn boot_from(raw: RawBoot) -> Boot {
    Boot {
        firmware: raw.firmware.unwrap_or(Firmware::Bios),
        method: raw.method.unwrap_or(Method::Ipxe),
        nic: raw.nic.unwrap_or(NicModel::VirtioNetPci),
        fetch: raw.fetch.unwrap_or(Fetch::Tftp),
        accel: raw.accel.unwrap_or(AccelChoice::Auto),
        machine: raw.machine.unwrap_or(MachineType::Q35),
        memory_mib: raw.memory.unwrap_or(1024),
        append: raw.append.unwrap_or_default(),
        ipxe_initrd_arg: raw.ipxe_initrd_arg.unwrap_or(true),
    }
}

/// `[rdma]`, checked: Soft-RoCE needs its module in the plan and an interface with an address
/// (the round trips run against it).
fn rdma_from(
    raw: Option<RawRdma>,
    load: &[String],
    addressing: &Addressing,
) -> Result<Option<Rdma>, String> {
    let Some(raw) = raw else { return Ok(None) };
    if !raw.soft_roce {
        if raw.device.is_some() || raw.timeout.is_some() {
            return Err(
                "[rdma]: device and timeout configure soft_roce, which is false; set soft_roce = true or remove them"
                    .into(),
            );
        }
        return Ok(None);
    }
    let listed = load.iter().any(|l| {
        l.split_whitespace()
            .next()
            .is_some_and(|n| n.replace('-', "_") == "rdma_rxe")
    });
    if !listed {
        return Err(
            "[rdma] soft_roce: [initrd] load does not list rdma_rxe; add it (with ib_uverbs and rdma_ucm for the userspace tests)"
                .into(),
        );
    }
    if matches!(addressing, Addressing::None) {
        return Err(
            "[rdma] soft_roce: [network] configures no address; set dhcp or static (the device goes on that interface)"
                .into(),
        );
    }
    let device = raw.device.unwrap_or_else(|| "rxe0".into());
    if !crate::net::config::valid_ifname(&device) {
        return Err(format!(
            "[rdma] device = {device:?}: a device name such as \"rxe0\" (letters, digits, up to 15)"
        ));
    }
    let timeout = match &raw.timeout {
        Some(t) => duration("timeout", t).map_err(|e| e.replacen("[expect]", "[rdma]", 1))?,
        None => std::time::Duration::from_secs(20),
    };
    Ok(Some(Rdma { device, timeout }))
}

fn duration(key: &str, text: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("[expect] {key} = {text:?}: {e}; write e.g. \"120s\" or \"2m\""))?;
    if d.is_zero() {
        return Err(format!("[expect] {key} = {text:?}: must be more than zero"));
    }
    Ok(d)
}

fn expect_from(raw: RawExpect, interface: &str, addressing: &Addressing) -> Result<Expect, String> {
    let timeout = match &raw.timeout {
        Some(t) => duration("timeout", t)?,
        None => DEFAULT_TIMEOUT,
    };
    let mut phase_timeouts = Vec::new();
    for (name, limit) in &raw.phases {
        use crate::verdict::phases::Phase;
        let Some(phase) = Phase::ALL.into_iter().find(|p| p.name() == name) else {
            let names: Vec<&str> = Phase::ALL.iter().map(|p| p.name()).collect();
            let hint = crate::kmod::suggest::nearest(name, &names)
                .first()
                .map(|n| format!(" (did you mean {n:?}?)"))
                .unwrap_or_default();
            return Err(format!(
                "[expect.phases] {name:?} is not a boot phase{hint}; phases: {}",
                names.join(", ")
            ));
        };
        phase_timeouts.push((phase, duration(&format!("phases.{name}"), limit)?));
    }
    let failure = raw
        .failure
        .as_deref()
        .map(str::parse::<crate::verdict::cause::CauseKind>)
        .transpose()
        .map_err(|e| format!("[expect] failure: {e}"))?;
    if let Some(subnet) = &raw.address {
        validate_cidr(subnet).map_err(|m| format!("[expect] address = {subnet:?}: {m}"))?;
        if matches!(addressing, Addressing::None) {
            return Err(format!(
                "[expect] address: [network] configures no address on {interface}; set dhcp or static"
            ));
        }
    }
    for pattern in raw
        .console
        .iter()
        .chain(&raw.not_console)
        .chain(raw.shell.iter().flat_map(|s| &s.patterns))
    {
        regex::Regex::new(pattern).map_err(|e| {
            format!("[expect] pattern {pattern:?} is not a regular expression: {e}")
        })?;
    }
    for step in &raw.shell {
        if step.command.trim().is_empty() || step.command.contains('\n') {
            return Err("[[expect.shell]] command: one non-empty line".into());
        }
    }
    Ok(Expect {
        modules_in_order: raw.modules_in_order.unwrap_or(true),
        address: raw.address,
        failure,
        timeout,
        phase_timeouts,
        console: raw.console,
        not_console: raw.not_console,
        shell: raw.shell,
        lease: raw.lease,
        rdma: raw.rdma.unwrap_or_default(),
    })
}

fn validate_cidr(cidr: &str) -> Result<(), String> {
    let (addr, len) = cidr
        .split_once('/')
        .ok_or("expected ADDRESS/PREFIX, e.g. 192.0.2.10/24")?;
    addr.parse::<std::net::Ipv4Addr>()
        .map_err(|e| format!("{addr}: {e}"))?;
    match len.parse::<u8>() {
        Ok(n) if n <= 32 => Ok(()),
        _ => Err(format!("prefix length {len:?} is not 0..32")),
    }
}

/// The text of a scenario file, or where it stops being UTF-8.
fn utf8<'a>(bytes: &'a [u8], path: &Path) -> Result<&'a str, ScenarioError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        // The bytes before `offset` are valid UTF-8, by `valid_up_to`'s definition.
        let before = std::str::from_utf8(&bytes[..offset]).unwrap_or_default();
        let (line, column) = line_column(before, offset);
        let hint = if bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]) {
            " (the file starts with a UTF-16 byte order mark)"
        } else {
            ""
        };
        ScenarioError::NotUtf8 {
            path: path.to_owned(),
            line,
            column,
            offset,
            byte: bytes[offset],
            hint,
        }
    })
}

/// What must be at a path a scenario names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    File,
    Dir,
    /// A file of the host, copied into the image with its libraries.
    HostBinary,
}

/// A path a scenario names, with where it is written (for [`Scenario::load`]'s check).
#[derive(Debug, Clone)]
struct NamedPath {
    key: &'static str,
    in_list: bool,
    written: PathBuf,
    /// Joined to the scenario file's directory.
    resolved: PathBuf,
    /// Byte offset of the value in the file.
    offset: usize,
    want: Want,
}

impl NamedPath {
    /// What is wrong at the path, if anything; `text` and `file` are the scenario's.
    fn check(&self, text: &str, file: &Path) -> Option<PathProblem> {
        let problem = self.problem()?;
        let (line, column) = line_column(text, self.offset);
        let key = if self.in_list {
            format!("{}: {:?}", self.key, self.written)
        } else {
            format!("{} = {:?}", self.key, self.written)
        };
        Some(PathProblem {
            file: file.to_owned(),
            line,
            column,
            key,
            written: self.written.clone(),
            resolved: absolute(&self.resolved),
            fix: self.fix(&problem),
            problem: problem.text,
            detail: problem.detail,
        })
    }

    fn problem(&self) -> Option<Found> {
        let p = &self.resolved;
        let (want_dir, noun) = match self.want {
            Want::Dir => (true, "directory"),
            Want::File | Want::HostBinary => (false, "file"),
        };
        let meta = match p.metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Some(Found::missing(noun, p));
            }
            Err(e) => return Some(Found::unreadable(&e)),
        };
        if want_dir && !meta.is_dir() {
            return Some(Found::other("is a file, not a directory"));
        }
        if !want_dir && meta.is_dir() {
            return Some(Found::other("is a directory, not a file"));
        }
        // Readable, as the build will need it to be.
        let opened = if want_dir {
            std::fs::read_dir(p).map(drop)
        } else {
            crate::host::input::open_regular(p).map(drop)
        };
        opened
            .err()
            .map(|e| match crate::host::input::not_a_file(&e) {
                Some(not) => Found::other(&format!("is a {}, not a file", not.kind)),
                None => Found::unreadable(&e),
            })
    }

    fn fix(&self, found: &Found) -> String {
        if found.unreadable {
            return "make it readable for this user, or fix the path".into();
        }
        if self.written.starts_with("~") {
            return "write the path out: ~ is not expanded".into();
        }
        if self.want == Want::HostBinary {
            return "install it on this host, or fix the path".into();
        }
        if let Some(setup) = setup_script(&self.resolved) {
            return format!("run {} or fix the path", setup.display());
        }
        if self.written.is_relative() {
            "fix the path (relative paths are from the scenario file's directory)".into()
        } else {
            "fix the path".into()
        }
    }
}

/// What was found at a path.
struct Found {
    text: String,
    detail: Option<String>,
    unreadable: bool,
}

impl Found {
    fn other(text: &str) -> Self {
        Found {
            text: text.into(),
            detail: None,
            unreadable: false,
        }
    }

    fn unreadable(e: &std::io::Error) -> Self {
        Found {
            text: format!("cannot be read: {e}"),
            detail: None,
            unreadable: true,
        }
    }

    /// "no such file", with the first part of the path that is missing when it is not the last
    /// (a whole missing cache says more than its missing kernel), or a dangling symlink.
    fn missing(noun: &str, path: &Path) -> Self {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let mut prefix = PathBuf::new();
        let first_missing = abs.components().find_map(|c| {
            prefix.push(c);
            prefix.metadata().is_err().then(|| prefix.clone())
        });
        let detail = first_missing.and_then(|m| match std::fs::read_link(&m) {
            Ok(target) => Some(format!(
                "{} is a symbolic link to {}, which does not exist",
                absolute(&m).display(),
                target.display()
            )),
            Err(_) if m != abs => Some(format!("{} does not exist", absolute(&m).display())),
            Err(_) => None,
        });
        Found {
            text: format!("no such {noun}"),
            detail,
            unreadable: false,
        }
    }
}

/// `path` made absolute through the part of it that exists (symlinks and `..` resolved there),
/// the rest as written: what a user can look at.
fn absolute(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let parts: Vec<std::path::Component> = abs.components().collect();
    for keep in (1..=parts.len()).rev() {
        let head: PathBuf = parts[..keep].iter().collect();
        if let Ok(mut real) = head.canonicalize() {
            real.extend(&parts[keep..]);
            return real;
        }
    }
    abs
}

/// `images/setup` when `path` is under the `images/cache` it fills and the script is there,
/// as a user in the current directory would type it.
fn setup_script(path: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(path).ok()?;
    let cache = abs.ancestors().find(|d| {
        d.file_name() == Some("cache".as_ref())
            && d.parent().and_then(Path::file_name) == Some("images".as_ref())
    })?;
    let script = cache.with_file_name("setup").canonicalize().ok()?;
    if !script.is_file() {
        return None;
    }
    let cwd = std::env::current_dir().and_then(|d| d.canonicalize()).ok();
    Some(
        match cwd.and_then(|d| script.strip_prefix(d).ok().map(Path::to_owned)) {
            Some(rel) => Path::new(".").join(rel),
            None => script,
        },
    )
}

/// A toml error as `file:line:column: message`, with a suggestion for a misspelt key.
fn syntax_error(text: &str, path: &Path, e: &toml::de::Error) -> ScenarioError {
    let (line, column) = match e.span() {
        Some(span) => line_column(text, span.start),
        None => (1, 1),
    };
    let mut message = e.message().trim().to_string();
    if let Some(unknown) = message
        .strip_prefix("unknown field `")
        .and_then(|s| s.split('`').next())
    {
        if let Some(best) = crate::kmod::suggest::nearest(unknown, KEYS).first() {
            message.push_str(&format!("; did you mean `{best}`?"));
        }
    }
    ScenarioError::Syntax {
        path: path.to_owned(),
        line,
        column,
        message,
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The report's names are the scenario file's: `as_str` must say what serde says.
    #[test]
    fn enum_names_match_their_serde_names() {
        fn serde_name(v: impl Serialize) -> String {
            serde_json::to_value(v)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        }
        for f in [Firmware::Bios, Firmware::Uefi] {
            assert_eq!(f.as_str(), serde_name(f));
        }
        for m in [Method::Ipxe, Method::Direct] {
            assert_eq!(m.as_str(), serde_name(m));
        }
        for f in [Fetch::Tftp, Fetch::Http] {
            assert_eq!(f.as_str(), serde_name(f));
        }
    }

    const GOOD: &str = r#"
name = "mlx4 IPoIB, manual order"
[kernel]
image = "../images/cache/current/vmlinuz"
modules = ["/opt/ofed", "../images/cache/current"]
[initrd]
base = "busybox"
load = ["ib_core", "ib_ipoib send_queue_size=256"]
order = "resolve"
binaries = ["/sbin/ifconfig"]
[network]
interface = "ib0"
dhcp = "dhclient"
guid = "0002:c903:0000:1039"
"#;

    #[test]
    fn parses_and_resolves_paths_against_the_file() {
        let s = Scenario::parse(GOOD, Path::new("/work/scenarios/a.toml")).unwrap();
        assert_eq!(
            s.kernel.image,
            Path::new("/work/scenarios/../images/cache/current/vmlinuz")
        );
        assert_eq!(s.kernel.modules[0], Path::new("/opt/ofed"));
        assert_eq!(s.initrd.order, Order::Resolve);
        assert_eq!(s.initrd.load[1], "ib_ipoib send_queue_size=256");
        assert!(matches!(
            s.network.addressing,
            Addressing::Dhcp(DhcpChoice::Dhclient)
        ));
        assert_eq!(s.network.interface, "ib0");
        assert!(matches!(s.initrd.base, Base::Busybox));
        assert_eq!(s.initrd.mode, AddMode::Overlay);
    }

    #[test]
    fn unknown_key_names_line_column_and_suggests() {
        let text = GOOD.replace("load = [", "lod = [");
        let e = Scenario::parse(&text, Path::new("s.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.toml:8:1: unknown field `lod`"), "{e}");
        assert!(e.contains("did you mean `load`?"), "{e}");
    }

    #[test]
    fn wrong_type_names_line_and_column() {
        let text = GOOD.replace("order = \"resolve\"", "order = 3");
        let e = Scenario::parse(&text, Path::new("s.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.toml:9:9:"), "{e}");
        let text = GOOD.replace("order = \"resolve\"", "order = \"sorted\"");
        let e = Scenario::parse(&text, Path::new("s.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("strict") && e.contains("as-is"), "{e}");
    }

    #[test]
    fn expect_names_kinds_and_phases_it_knows() {
        let with = |extra: &str| {
            Scenario::parse(&format!("{GOOD}[expect]\n{extra}\n"), Path::new("s.toml"))
        };
        let s = with(
            "failure = \"unknown-symbol\"\ntimeout = \"2m\"\n[expect.phases]\nipxe-dhcp = \"30s\"",
        )
        .unwrap();
        assert_eq!(
            s.expect.failure,
            Some(crate::verdict::cause::CauseKind::UnknownSymbol)
        );
        assert_eq!(s.expect.timeout, std::time::Duration::from_secs(120));
        assert_eq!(
            s.expect.phase_timeouts,
            [(
                crate::verdict::phases::Phase::IpxeDhcp,
                std::time::Duration::from_secs(30)
            )]
        );
        let e = with("failure = \"unknown-symbl\"").unwrap_err().to_string();
        assert!(e.contains("did you mean \"unknown-symbol\""), "{e}");
        let e = with("[expect.phases]\nipxe_dhcp = \"30s\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ipxe-dhcp"), "{e}");
        let e = with("timeout = \"soon\"").unwrap_err().to_string();
        assert!(e.contains("120s"), "{e}");
        let e = with("console = [\"(unclosed\"]").unwrap_err().to_string();
        assert!(e.contains("regular expression"), "{e}");
        let e = Scenario::parse(
            &format!("{GOOD}[boot]\nfirmware = \"efi\"\n"),
            Path::new("s.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("bios") && e.contains("uefi"), "{e}");
    }

    #[test]
    fn conflicting_and_bad_values_are_refused() {
        let both = GOOD.replace(
            "dhcp = \"dhclient\"",
            "dhcp = \"dhclient\"\nstatic = \"192.0.2.10/24\"",
        );
        assert!(Scenario::parse(&both, Path::new("s.toml"))
            .unwrap_err()
            .to_string()
            .contains("choose one"));
        let bad = GOOD.replace("dhcp = \"dhclient\"", "static = \"192.0.2.300/24\"");
        assert!(Scenario::parse(&bad, Path::new("s.toml"))
            .unwrap_err()
            .to_string()
            .contains("192.0.2.300"));
        let missing = "name = \"x\"\n[initrd]\nload = []\n";
        let e = Scenario::parse(missing, Path::new("s.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("kernel"), "{e}");
    }

    /// A scenario file in a temp dir as users lay it out: `scenarios/x.toml`, its paths relative.
    fn layout(text: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("scenarios")).unwrap();
        let file = dir.path().join("scenarios/x.toml");
        std::fs::write(&file, text).unwrap();
        (dir, file)
    }

    fn load_err(text: &[u8]) -> (tempfile::TempDir, PathBuf, String) {
        let (dir, file) = layout(text);
        let e = Scenario::load(&file).unwrap_err().to_string();
        (dir, file, e)
    }

    #[test]
    fn not_utf8_names_line_column_byte_offset_and_the_fix() {
        let text = b"name = \"x\"\n# caf\xc3\xa9 ok\nx = \"\xc3\xbc\xe9\"\n";
        let (_d, file, e) = load_err(text);
        // Line 3: `x = "` is 5 characters, `ü` one more: the bad byte is column 7.
        assert_eq!(
            e,
            format!(
                "{}:3:7: byte 0xe9 at byte offset 29 is not UTF-8; save it as UTF-8",
                file.display()
            )
        );
        assert_eq!(text[29], 0xe9);
        let (_d, _, e) = load_err(b"\xff\xfen\x00a\x00");
        assert!(e.contains(":1:1: byte 0xff at byte offset 0 is not UTF-8 (the file starts with a UTF-16 byte order mark); save it as UTF-8"), "{e}");
    }

    const PATHS: &str = r#"name = "paths"
[kernel]
image = "../images/cache/current/vmlinuz"
modules = ["../ofed", "../images/cache/current"]
[initrd]
base = "../initrds/field.img"
binaries = ["/usr/sbin/ip", "/nonexistent/bootrig-test/tool"]
"#;

    /// Everything PATHS names, in place, but the binaries (host paths).
    fn complete(root: &Path) {
        let current = root.join("images/cache/current");
        std::fs::create_dir_all(&current).unwrap();
        std::fs::write(current.join("vmlinuz"), b"k").unwrap();
        std::fs::create_dir_all(root.join("ofed")).unwrap();
        std::fs::create_dir_all(root.join("initrds")).unwrap();
        std::fs::write(root.join("initrds/field.img"), b"i").unwrap();
    }

    #[test]
    fn load_checks_every_path_at_its_key() {
        let text = PATHS.replace("\"/usr/sbin/ip\", ", "");
        let (d, file) = layout(text.as_bytes());
        let root = d.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("images")).unwrap();
        std::fs::write(root.join("images/setup"), b"#!/bin/sh\n").unwrap();
        let e = Scenario::load(&file).unwrap_err().to_string();
        let f = file.display();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 5, "{e}");
        assert!(lines[0].starts_with(&format!(
            "{f}:3:9: [kernel] image = \"../images/cache/current/vmlinuz\": no such file (resolved to {}/images/cache/current/vmlinuz; {}/images/cache does not exist); run ",
            root.display(), root.display()
        )), "{e}");
        assert!(lines[0].ends_with("images/setup or fix the path"), "{e}");
        assert_eq!(lines[1], format!(
            "{f}:4:12: [kernel] modules: \"../ofed\": no such directory (resolved to {}/ofed); fix the path (relative paths are from the scenario file's directory)",
            root.display()
        ));
        assert!(
            lines[2].starts_with(&format!(
                "{f}:4:23: [kernel] modules: \"../images/cache/current\": no such directory"
            )),
            "{e}"
        );
        assert!(
            lines[3].starts_with(&format!(
                "{f}:6:8: [initrd] base = \"../initrds/field.img\": no such file"
            )),
            "{e}"
        );
        assert_eq!(lines[4], format!(
            "{f}:7:13: [initrd] binaries: \"/nonexistent/bootrig-test/tool\": no such file (/nonexistent does not exist); install it on this host, or fix the path"
        ));

        complete(&root);
        let e = Scenario::load(&file).unwrap_err().to_string();
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(
            e.starts_with(&format!("{f}:7:13: [initrd] binaries")),
            "{e}"
        );
        let ok = Scenario::load_checked_for_test(
            &text.replace("/nonexistent/bootrig-test/tool", "/bin/sh"),
            &file,
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn load_says_what_is_there_instead() {
        let (d, file) = layout(b"");
        let root = d.path();
        complete(root);
        let swapped = PATHS
            .replace(
                "image = \"../images/cache/current/vmlinuz\"",
                "image = \"../ofed\"",
            )
            .replace("\"../ofed\", ", "\"../initrds/field.img\", ")
            .replace(", \"/nonexistent/bootrig-test/tool\"", "");
        let e = Scenario::load_checked_for_test(&swapped, &file)
            .unwrap_err()
            .to_string();
        let f = file.display();
        assert!(
            e.contains(&format!(
                "{f}:3:9: [kernel] image = \"../ofed\": is a directory, not a file"
            )),
            "{e}"
        );
        assert!(
            e.contains(&format!(
                "{f}:4:12: [kernel] modules: \"../initrds/field.img\": is a file, not a directory"
            )),
            "{e}"
        );
    }

    #[test]
    fn busybox_base_is_a_name_and_relative_binaries_are_refused() {
        let (d, file) = layout(b"");
        complete(d.path());
        let text = PATHS
            .replace("base = \"../initrds/field.img\"", "base = \"busybox\"")
            .replace("\"/nonexistent/bootrig-test/tool\"", "\"/bin/sh\"");
        let s = Scenario::load_checked_for_test(&text, &file).unwrap();
        assert!(matches!(s.initrd.base, Base::Busybox));
        assert_eq!(s.initrd.binaries[1], Path::new("/bin/sh"));
        let relative = text.replace("\"/bin/sh\"", "\"sbin/ip\"");
        let e = Scenario::parse(&relative, &file).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{}:7:29: [initrd] binaries: \"sbin/ip\": binaries are host paths",
                file.display()
            )),
            "{e}"
        );
        let e = Scenario::parse(&text.replace("modules = [", "modules = 3 #"), &file)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":4:11:") && e.contains("a path, or a list of paths"),
            "{e}"
        );
    }
}
