//! The scenario file's shape, strictly: serde's mirror of the TOML, unknown keys refused. Every
//! value a later check can refuse is `Spanned`, so the refusal names its line and column.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::model::{
    AccelChoice, DhcpChoice, Fetch, Firmware, FlavorChoice, Hardware, MachineType, Method,
    NicModel, Order, RdmaCheck,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScenario {
    pub name: String,
    pub kernel: RawKernel,
    pub initrd: RawInitrd,
    #[serde(default)]
    pub network: RawNetwork,
    #[serde(default)]
    pub boot: RawBoot,
    #[serde(default)]
    pub expect: RawExpect,
    pub hardware: Option<Hardware>,
    pub rdma: Option<RawRdma>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKernel {
    pub image: Spanned<PathBuf>,
    pub modules: Spanned<OneOrMany>,
}

/// `"tree"` or `["tree", …]`; list entries keep where they are written. Not `untagged`: serde
/// buffers untagged values, which loses toml's spans.
#[derive(Debug)]
pub(super) enum OneOrMany {
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
pub(super) struct RawInitrd {
    /// None: bootrig's busybox base.
    pub base: Option<Spanned<String>>,
    #[serde(default)]
    pub load: Vec<Spanned<String>>,
    #[serde(default = "default_order")]
    pub order: Order,
    #[serde(default)]
    pub binaries: Vec<Spanned<PathBuf>>,
    #[serde(default = "default_flavor")]
    pub flavor: FlavorChoice,
    pub anchor: Option<Spanned<String>>,
    #[serde(default = "default_mode")]
    pub mode: RawMode,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum RawMode {
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
pub(super) struct RawNetwork {
    pub interface: Option<Spanned<String>>,
    pub dhcp: Option<DhcpChoice>,
    #[serde(rename = "static")]
    pub static_addr: Option<Spanned<String>>,
    pub gateway: Option<Spanned<String>>,
    pub guid: Option<Spanned<String>>,
    pub client_id: Option<Spanned<String>>,
    pub backend: Option<Spanned<RawBackend>>,
    pub dhcp_server: Option<Spanned<RawDhcpServer>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawBackend {
    Name(String),
    Bridge { bridge: String },
}

/// `[network.dhcp_server]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDhcpServer {
    pub subnet: Option<Spanned<String>>,
    pub range: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub reservations: Vec<Spanned<RawReservation>>,
    pub lease_time: Option<Spanned<String>>,
    pub boot_file: Option<Spanned<String>>,
    pub fault: Option<crate::net::DhcpFault>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReservation {
    pub client_id: Option<Spanned<String>>,
    pub mac: Option<Spanned<String>>,
    pub address: Spanned<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBoot {
    pub firmware: Option<Firmware>,
    pub method: Option<Spanned<Method>>,
    pub nic: Option<NicModel>,
    pub fetch: Option<Fetch>,
    pub accel: Option<AccelChoice>,
    pub machine: Option<MachineType>,
    pub memory: Option<Spanned<u32>>,
    pub append: Option<Spanned<String>>,
    pub ipxe_initrd_arg: Option<Spanned<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExpect {
    pub modules_in_order: Option<bool>,
    pub address: Option<Spanned<String>>,
    pub failure: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    /// Phase names are checked by `Phase`'s own serde names, each at its key.
    #[serde(default)]
    pub phases: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub console: Vec<Spanned<String>>,
    #[serde(default)]
    pub not_console: Vec<Spanned<String>>,
    #[serde(default)]
    pub shell: Vec<RawShellStep>,
    pub lease: Option<RawLease>,
    pub rdma: Option<Spanned<Vec<RdmaCheck>>>,
}

/// `[[expect.shell]]`, as written (a `console::ShellStep` once checked).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShellStep {
    pub command: Spanned<String>,
    #[serde(default)]
    pub patterns: Vec<Spanned<String>>,
    #[serde(default)]
    pub status: i32,
}

/// `[expect] lease`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLease {
    pub client_id: Spanned<String>,
    pub address: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRdma {
    pub soft_roce: Spanned<bool>,
    pub device: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}
