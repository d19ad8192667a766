//! What a build takes from the scenario and the host: the modules to load, the stanza, the
//! DHCP client, the binaries and their closure.

use std::path::{Path, PathBuf};

use super::rdma::{rdma_userspace, RdmaUserspace};
use super::{BuildError, BuildOptions};
use crate::kmod::{self, Plan};
use crate::net::addr::ClientId;
use crate::patch::{dhcp, elf, stanza, PatchPlan, TOOLS_DIR, UDHCPC_SCRIPT_IN_IMAGE};
use crate::scenario::{Addressing, DhcpChoice, Order, Scenario};
use crate::verdict::{Expectation, ExpectedModule};

/// A scenario's module tree may name the release directory itself, or a root that holds
/// `lib/modules/<release>` (as images/cache/current does) or `<release>`.
pub(super) fn module_tree(dir: &Path, release: &str) -> PathBuf {
    for candidate in [dir.join("lib/modules").join(release), dir.join(release)] {
        if candidate.is_dir() {
            return candidate;
        }
    }
    dir.to_owned()
}

/// A module to load: where it comes from, where it goes, what the stanza does with it.
pub(super) struct Load {
    pub host: PathBuf,
    pub image: String,
    pub stanza: stanza::ModuleLoad,
}

pub(super) fn module_loads(
    s: &Scenario,
    plan: &Plan,
    release: &str,
) -> Result<Vec<Load>, BuildError> {
    let mut out = Vec::new();
    let chosen: Vec<&kmod::PlannedModule> = if s.initrd.order == Order::AsIs {
        plan.modules
            .iter()
            .filter(|m| m.requested_as.is_some())
            .collect()
    } else {
        plan.load_order().collect()
    };
    for m in chosen {
        let Some(file) = &m.file else {
            if s.initrd.order == Order::AsIs
                && !matches!(m.status, kmod::ModuleStatus::Builtin { .. })
            {
                return Err(BuildError::AsIsMissing {
                    scenario: s.path.clone(),
                    name: m.name.clone(),
                });
            }
            continue;
        };
        let rel = m
            .layer
            .and_then(|i| plan.layers.get(i))
            .and_then(|l| file.strip_prefix(&l.dir).ok())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("extra").join(file.file_name().unwrap_or_default()));
        let image = format!("/lib/modules/{release}/{}", rel.display());
        let params: Vec<String> = m.params.iter().map(|p| p.to_string()).collect();
        out.push(Load {
            host: file.clone(),
            image: image.clone(),
            stanza: stanza::ModuleLoad {
                name: m.name.clone(),
                path: image,
                params: params.join(" "),
            },
        });
    }
    Ok(out)
}

fn client_id(s: &Scenario) -> Result<Option<ClientId>, BuildError> {
    let network = |source| BuildError::Network {
        scenario: s.path.clone(),
        source,
    };
    Ok(match (&s.network.guid, &s.network.client_id) {
        (Some(g), _) => Some(dhcp::client_id_from_guid(g).map_err(network)?),
        (None, Some(c)) => Some(c.parse().map_err(network)?),
        (None, None) => None,
    })
}

fn network_spec(
    s: &Scenario,
    client_id: Option<&ClientId>,
    dhclient: Option<&dhcp::DhclientSetup>,
) -> stanza::Network {
    let interface = s.network.interface.clone();
    match &s.network.addressing {
        Addressing::None => stanza::Network::None,
        Addressing::Static { cidr, gateway } => stanza::Network::Static {
            interface,
            cidr: cidr.clone(),
            gateway: gateway.clone(),
        },
        Addressing::Dhcp(DhcpChoice::Udhcpc) => stanza::Network::Dhcp {
            interface,
            client: stanza::DhcpClient::Udhcpc {
                script: UDHCPC_SCRIPT_IN_IMAGE.to_string(),
                client_id: client_id.cloned(),
            },
        },
        Addressing::Dhcp(DhcpChoice::Dhclient) => match dhclient {
            Some(d) => stanza::Network::Dhcp {
                interface,
                client: stanza::DhcpClient::Dhclient {
                    binary: d.binary.clone(),
                    conf: d.conf.clone(),
                    script: d.script.clone(),
                    leases: d.leases.clone(),
                },
            },
            None => stanza::Network::None,
        },
    }
}

/// What a boot must show: every module the stanza loads (for `as-is`, also the ones the plan
/// objects to: the boot is how their failure shows), with their dependencies.
pub(super) fn expectation(s: &Scenario, plan: &Plan, loads: &[Load]) -> Expectation {
    let modules = loads
        .iter()
        .map(|l| ExpectedModule {
            name: l.stanza.name.clone(),
            depends: plan
                .modules
                .iter()
                .find(|m| m.name == l.stanza.name)
                .map(|m| m.depends.clone())
                .unwrap_or_default(),
        })
        .collect();
    let interface = match s.network.addressing {
        Addressing::None => None,
        _ => Some(s.network.interface.clone()),
    };
    Expectation { modules, interface }
}

/// Everything the additions are made from, gathered from the scenario and the host before the
/// cache is asked (the key hashes it).
pub(super) struct Inputs {
    pub dhclient: Option<dhcp::DhclientSetup>,
    pub rdma: Option<RdmaUserspace>,
    /// Binaries with their `DT_NEEDED` closure.
    pub closure: Vec<PathBuf>,
    pub spec: stanza::StanzaSpec,
    pub stanza_text: String,
    /// Host files copied in (modules, the rxe driver file, the closure), in the key's order.
    pub host_files: Vec<PathBuf>,
}

impl Inputs {
    pub fn gather(s: &Scenario, opts: &BuildOptions, loads: &[Load]) -> Result<Self, BuildError> {
        let mut host_files: Vec<PathBuf> = loads.iter().map(|l| l.host.clone()).collect();
        let mut binaries = s.initrd.binaries.clone();
        let client_id = client_id(s)?;
        let dhclient = match s.network.addressing {
            Addressing::Dhcp(DhcpChoice::Dhclient) => Some(dhcp::dhclient_files(
                Path::new("/"),
                &s.network.interface,
                client_id.as_ref(),
            )?),
            _ => None,
        };
        let rdma = match &s.rdma {
            Some(r) => Some(rdma_userspace(s, r)?),
            None => None,
        };
        if let Some(r) = &rdma {
            binaries.extend(r.binaries.iter().cloned());
            host_files.push(r.driver.clone());
        }
        let closure = elf::closure(&binaries, Path::new("/"))?;
        host_files.extend(closure.iter().cloned());
        let spec = stanza::StanzaSpec {
            modules: loads.iter().map(|l| l.stanza.clone()).collect(),
            network: network_spec(s, client_id.as_ref(), dhclient.as_ref()),
            then: opts.then,
            tools_dir: Some(TOOLS_DIR.to_string()),
            rdma: rdma.as_ref().map(|r| r.stanza.clone()),
        };
        let stanza_text = stanza::render(&spec)?;
        Ok(Self {
            dhclient,
            rdma,
            closure,
            spec,
            stanza_text,
            host_files,
        })
    }

    /// What `patch` adds to the base from these inputs, as the scenario asks.
    pub fn patch_plan<'a>(
        &'a self,
        s: &'a Scenario,
        opts: &BuildOptions,
        loads: &[Load],
    ) -> PatchPlan<'a> {
        PatchPlan {
            modules: loads
                .iter()
                .map(|l| (l.host.clone(), l.image.clone()))
                .collect(),
            busybox: opts.busybox.clone(),
            closure: &self.closure,
            stanza: &self.spec,
            stanza_text: &self.stanza_text,
            extra: self
                .rdma
                .as_ref()
                .map(|r| r.additions.clone())
                .unwrap_or_default(),
            dhclient: self.dhclient.as_ref(),
            flavor: s.initrd.flavor,
            anchor: s.initrd.anchor.clone(),
            append: &s.boot.append,
        }
    }
}
