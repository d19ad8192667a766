//! `bootrig build`: the manual's diskless-initrd procedure as one checked step. Scenario → module
//! plan (its errors stop the build) → base initrd (bootrig's busybox one, or a real one) → the
//! additions (modules, binaries with their libraries, the DHCP client and its files, the init
//! stanza placed for the base's flavor) → the patched initrd and its `plan.json`.
//!
//! Builds are cached by content: the key hashes every input (scenario, kernel, module files,
//! base image, binaries, bootrig's own version and guest templates), so the same inputs give the
//! same output, reused without rebuilding.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::fsutil::{write_atomic, AtomicOutput, OutputError};
use crate::initrd::add::{add, AddError, AddMode, AddOptions, Addition};
use crate::initrd::image::{read_tree, ImageError, ReadOptions};
use crate::initrd::tree::DataPolicy;
use crate::kmod::{self, KmodError, Plan, PlanRequest};
use crate::patch::{base, dhcp, elf, flavor, stanza};
use crate::scenario::{Addressing, Base, DhcpChoice, FlavorChoice, Order, Scenario};
use crate::verdict::{Expectation, ExpectedModule};

/// The static busybox bootrig ships into every image it patches, with applet links in
/// [`TOOLS_DIR`] that the stanza puts first on PATH: the stanza never depends on the tools a base
/// happens to have (dracut images have no `ip`, `udhcpc` or `poweroff`).
pub const BUSYBOX_IN_IMAGE: &str = "/usr/lib/bootrig/busybox";
pub const TOOLS_DIR: &str = "/usr/lib/bootrig/bin";
/// bootrig's udhcpc script, apart from any the base has.
pub const UDHCPC_SCRIPT_IN_IMAGE: &str = "/usr/lib/bootrig/udhcpc.script";

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub out: PathBuf,
    /// Overrides the scenario's `[initrd] mode`.
    pub mode: Option<AddMode>,
    pub force: bool,
    /// What the stanza does when done: let the boot go on, or power off (test mode).
    pub then: stanza::Then,
    /// Where built images are kept by content key.
    pub cache_dir: PathBuf,
    /// The host's static busybox.
    pub busybox: PathBuf,
}

impl BuildOptions {
    pub fn new(out: &Path) -> Self {
        Self {
            out: out.to_owned(),
            mode: None,
            force: false,
            then: stanza::Then::Continue,
            cache_dir: default_cache_dir(),
            busybox: PathBuf::from("/bin/busybox"),
        }
    }
}

/// `$BOOTRIG_CACHE`, else `$XDG_CACHE_HOME/bootrig`, else `~/.cache/bootrig`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("BOOTRIG_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(p).join("bootrig");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("bootrig")
}

#[derive(Debug, Error)]
pub enum BuildError {
    #[error(transparent)]
    Kmod(#[from] KmodError),
    #[error("{scenario}: the module plan has errors; fix the scenario's [initrd] load (or use order = \"resolve\"):\n{rendered}")]
    Plan {
        scenario: PathBuf,
        rendered: String,
        plan: Box<Plan>,
    },
    #[error("{scenario}: [initrd] load: {name} is not in the module trees, and order = \"as-is\" still needs its file")]
    AsIsMissing { scenario: PathBuf, name: String },
    #[error(transparent)]
    Base(#[from] base::BaseError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Flavor(#[from] flavor::FlavorError),
    #[error(transparent)]
    Elf(#[from] elf::ElfError),
    #[error(transparent)]
    Dhcp(#[from] dhcp::DhcpError),
    #[error(transparent)]
    Stanza(#[from] stanza::StanzaError),
    #[error(transparent)]
    Add(#[from] AddError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What a build made.
#[derive(Debug, Clone, Serialize)]
pub struct BuildResult {
    pub image: PathBuf,
    pub plan_path: PathBuf,
    pub key: String,
    pub reused: bool,
    pub flavor: String,
    /// Why that flavor: what detection saw, or the scenario's `[initrd] flavor`.
    pub flavor_reason: String,
    pub plan: Plan,
    /// What a boot of this image must show (for `bootrig run` and the tests).
    pub expectation: Expectation,
}

/// Builds the scenario's initrd.
pub fn build(s: &Scenario, opts: &BuildOptions) -> Result<BuildResult, BuildError> {
    let release = kmod::kernel_release::read_kernel_release(&s.kernel.image)?;
    let module_dirs: Vec<PathBuf> = s
        .kernel
        .modules
        .iter()
        .map(|d| module_tree(d, &release))
        .collect();
    let plan = kmod::plan(&PlanRequest {
        kernel: s.kernel.image.clone(),
        module_dirs,
        modules: s.initrd.load.clone(),
        resolve: s.initrd.order == Order::Resolve,
    })?;
    if s.initrd.order != Order::AsIs && !plan.is_loadable() {
        return Err(BuildError::Plan {
            scenario: s.path.clone(),
            rendered: kmod::render(&plan),
            plan: Box::new(plan),
        });
    }
    let loads = module_loads(s, &plan, &release)?;
    let mode = opts.mode.unwrap_or(s.initrd.mode);

    // The base: bootrig's own (made once, cached by busybox content) or the user's image.
    let base_path = match &s.initrd.base {
        Base::Busybox => {
            let key = hash_files(std::slice::from_ref(&opts.busybox), "busybox-base-v1")?;
            let path = opts
                .cache_dir
                .join("bases")
                .join(format!("busybox-{}.img", &key[..16]));
            if !path.exists() {
                fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))
                    .map_err(io_err(&opts.cache_dir))?;
                base::write_busybox_base(&opts.busybox, &path)?;
            }
            path
        }
        Base::Image(p) => p.clone(),
    };

    // Host files that go in: modules, binaries and their libraries, the DHCP client.
    let mut host_files: Vec<PathBuf> = loads.iter().map(|l| l.host.clone()).collect();
    let mut binaries = s.initrd.binaries.clone();
    let client_id = client_id(s)?;
    let dhclient = match s.network.addressing {
        Addressing::Dhcp(DhcpChoice::Dhclient) => Some(dhcp::dhclient_files(
            Path::new("/"),
            &s.network.interface,
            client_id.as_deref(),
        )?),
        _ => None,
    };
    let closure = elf::closure(&std::mem::take(&mut binaries), Path::new("/"))?;
    host_files.extend(closure.iter().cloned());
    host_files.push(opts.busybox.clone());
    host_files.push(base_path.clone());
    host_files.push(s.kernel.image.clone());

    let spec = stanza::StanzaSpec {
        modules: loads.iter().map(|l| l.stanza.clone()).collect(),
        network: network_spec(s, client_id.as_deref(), dhclient.as_ref()),
        then: opts.then,
        tools_dir: Some(TOOLS_DIR.to_string()),
    };
    let stanza_text = stanza::render(&spec)?;
    let scenario_json = serde_json::to_string(s).unwrap_or_default();
    // The rendered stanza carries the guest templates and the plan's paths; the files carry the
    // content of everything copied in.
    let key = hash_files(
        &host_files,
        &format!(
            "bootrig-build-v1\n{}\n{scenario_json}\n{mode:?}\n{stanza_text}\n{}\n{}\n{}",
            env!("CARGO_PKG_VERSION"),
            stanza::UDHCPC_SCRIPT,
            flavor::WRAP_INIT,
            dhclient
                .as_ref()
                .map(|d| format!("{:?}", d.additions))
                .unwrap_or_default()
        ),
    )?;
    let plan_path = plan_path_for(&opts.out);
    let expectation = expectation(s, &plan, &loads);
    let (flavor_name, flavor_reason);
    let cached = opts.cache_dir.join("builds").join(format!("{key}.img"));
    let reused = cached.exists();
    if reused {
        let saved = fs::read_to_string(cached.with_extension("flavor")).unwrap_or_default();
        let (name, reason) = saved.split_once('\n').unwrap_or((&saved, ""));
        (flavor_name, flavor_reason) = (name.to_string(), reason.to_string());
    } else {
        let (mut tree, _) = read_tree(
            &base_path,
            DataPolicy::Digest {
                keep_up_to: 4 << 20,
            },
            &ReadOptions::default(),
        )?;
        let rdinit = flavor::rdinit(&s.boot.append);
        let explained = flavor::explain(&tree, rdinit.as_deref());
        let detected = match s.initrd.flavor {
            FlavorChoice::Auto => explained.flavor,
            FlavorChoice::Busybox => flavor::Flavor::BusyboxBase,
            FlavorChoice::InitramfsTools => flavor::Flavor::InitramfsTools,
            FlavorChoice::Dracut => match explained.flavor {
                f @ flavor::Flavor::Dracut { .. } => f,
                _ => flavor::Flavor::Dracut { systemd: false },
            },
            FlavorChoice::DebianInstaller => flavor::Flavor::DebianInstaller,
            FlavorChoice::Generic => flavor::Flavor::Generic,
            FlavorChoice::Wrap => flavor::Flavor::Wrap,
        };
        flavor_name = detected.name().to_string();
        flavor_reason = match s.initrd.flavor {
            FlavorChoice::Auto => explained.reason,
            _ => format!("[initrd] flavor = \"{flavor_name}\" in the scenario"),
        };
        if detected == flavor::Flavor::Wrap && flavor::wrap_needs_data(&tree, rdinit.as_deref()) {
            // The original init is copied into the image: read it in full (the first read keeps
            // files up to 4 MiB).
            tree = read_tree(&base_path, DataPolicy::Full, &ReadOptions::default())?.0;
        }
        let mut additions: Vec<Addition> = Vec::new();
        for l in &loads {
            additions.push(Addition::path(l.host.clone(), &l.image));
        }
        additions.push(Addition {
            mode: Some(0o755),
            ..Addition::path(opts.busybox.clone(), BUSYBOX_IN_IMAGE)
        });
        additions.extend(elf::additions(Path::new("/"), &closure)?);
        for tool in stanza::required_commands(&spec)
            .iter()
            .filter(|c| !c.starts_with('/'))
        {
            additions.push(Addition::symlink(
                &format!("{TOOLS_DIR}/{tool}"),
                "../busybox",
            ));
        }
        additions.push(stanza::udhcpc_script_addition(UDHCPC_SCRIPT_IN_IMAGE));
        if let Some(d) = &dhclient {
            additions.extend(d.additions.iter().cloned());
            // What dhclient-script needs from the base: kept where the base has it.
            for a in &d.if_absent {
                if flavor::lookup(&tree, &a.dest).is_none() {
                    additions.push(a.clone());
                }
            }
            for cmd in &d.base_commands {
                let present = ["/bin", "/usr/bin", "/sbin", "/usr/sbin"]
                    .iter()
                    .any(|dir| flavor::lookup(&tree, format!("{dir}/{cmd}").as_bytes()).is_some());
                if !present {
                    additions.push(Addition::symlink(
                        &format!("/usr/bin/{cmd}"),
                        BUSYBOX_IN_IMAGE,
                    ));
                }
            }
        }
        let placement = flavor::Placement {
            anchor: s.initrd.anchor.clone(),
            init: rdinit,
        };
        additions.extend(flavor::place(detected, &tree, &stanza_text, &placement)?);
        drop(tree);

        fs::create_dir_all(cached.parent().unwrap_or(Path::new(".")))
            .map_err(io_err(&opts.cache_dir))?;
        let add_opts = AddOptions {
            mode,
            force: true,
            ..AddOptions::default()
        };
        add(&base_path, &cached, &additions, &add_opts)?;
        write_atomic(
            &cached.with_extension("flavor"),
            format!("{flavor_name}\n{flavor_reason}").as_bytes(),
            true,
        )?;
    }
    copy_atomic(&cached, &opts.out, opts.force)?;
    let plan_json = serde_json::to_vec_pretty(&PlanFile {
        flavor: &flavor_name,
        flavor_reason: &flavor_reason,
        plan: &plan,
    })
    .unwrap_or_default();
    write_atomic(&plan_path, &plan_json, true)?;
    Ok(BuildResult {
        image: opts.out.clone(),
        plan_path,
        key,
        reused,
        flavor: flavor_name,
        flavor_reason,
        plan,
        expectation,
    })
}

/// `plan.json`: the module plan, and the flavor that placed the stanza with its reason.
#[derive(Serialize)]
struct PlanFile<'a> {
    flavor: &'a str,
    flavor_reason: &'a str,
    #[serde(flatten)]
    plan: &'a Plan,
}

/// `plan.json` beside the output image.
pub fn plan_path_for(out: &Path) -> PathBuf {
    out.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("plan.json")
}

/// A scenario's module tree may name the release directory itself, or a root that holds
/// `lib/modules/<release>` (as images/cache/current does) or `<release>`.
fn module_tree(dir: &Path, release: &str) -> PathBuf {
    for candidate in [dir.join("lib/modules").join(release), dir.join(release)] {
        if candidate.is_dir() {
            return candidate;
        }
    }
    dir.to_owned()
}

/// A module to load: where it comes from, where it goes, what the stanza does with it.
struct Load {
    host: PathBuf,
    image: String,
    stanza: stanza::ModuleLoad,
}

fn module_loads(s: &Scenario, plan: &Plan, release: &str) -> Result<Vec<Load>, BuildError> {
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

fn client_id(s: &Scenario) -> Result<Option<String>, BuildError> {
    Ok(match (&s.network.guid, &s.network.client_id) {
        (Some(g), _) => Some(dhcp::client_id_from_guid(g)?),
        (None, Some(c)) => Some(dhcp::parse_client_id(c)?),
        (None, None) => None,
    })
}

fn network_spec(
    s: &Scenario,
    client_id: Option<&str>,
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
                client_id: client_id.map(str::to_string),
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
fn expectation(s: &Scenario, plan: &Plan, loads: &[Load]) -> Expectation {
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

/// SHA-256 over a label and the content of each file, in order.
fn hash_files(files: &[PathBuf], label: &str) -> Result<String, BuildError> {
    let mut h = Sha256::new();
    h.update(label.as_bytes());
    for f in files {
        let mut file = fs::File::open(f).map_err(io_err(f))?;
        h.update(f.as_os_str().as_encoded_bytes());
        h.update([0]);
        io::copy(&mut file, &mut h).map_err(io_err(f))?;
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn copy_atomic(from: &Path, to: &Path, force: bool) -> Result<(), BuildError> {
    let mut out = AtomicOutput::create(to, force)?;
    let mut src = fs::File::open(from).map_err(io_err(from))?;
    io::copy(&mut src, out.file()).map_err(io_err(to))?;
    out.commit()?;
    Ok(())
}
