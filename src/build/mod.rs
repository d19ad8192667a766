//! `bootrig build`: the manual's diskless-initrd procedure as one checked step. Scenario → module
//! plan (its errors stop the build) → base initrd (bootrig's busybox one, or a real one) → the
//! additions (modules, binaries with their libraries, the DHCP client and its files, the init
//! stanza placed for the base's flavor) → the patched initrd and its `plan.json`.
//!
//! Builds are cached by content: the key hashes every input (scenario, kernel, module files,
//! base image, binaries, bootrig's own version and guest templates), so the same inputs give the
//! same output, reused without rebuilding. An entry is `<key>.img`, `<key>.flavor` and, written
//! last, `<key>.sha256` (the image's SHA-256): it is reused only when all three are there and the
//! image still has that content; anything else is rebuilt, with a warning saying why.
//!
//! A build stops within a read or write of an [`Interrupt`] (Ctrl-C), and then leaves nothing
//! behind: no output, no cache entry, no temporary file.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use thiserror::Error;

use crate::fsutil::{with_interrupt, write_atomic, OutputError};
use crate::initrd::add::{add, AddError, AddMode, AddOptions};
use crate::interrupt::{Interrupt, Interrupted};
use crate::kmod::{self, KmodError, Plan, PlanRequest};
use crate::net::addr::AddrError;
use crate::patch::flavor::{Flavor, FlavorDecision};
use crate::patch::host_file::HostFileError;
use crate::patch::{self, base, dhcp, elf, place, stanza, wrap};
use crate::scenario::{Base, Order, Scenario};
use crate::verdict::Expectation;

mod cache;
mod inputs;
mod rdma;

use cache::{copy_hashing, file_sha256, hash_files, CacheEntry, EntryProblem};
use inputs::{expectation, module_loads, module_tree, Inputs, Load};
pub use rdma::RDMA_TOOLS_DIR;

pub use crate::patch::{BUSYBOX_IN_IMAGE, TOOLS_DIR, UDHCPC_SCRIPT_IN_IMAGE};

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
    /// Stops the build when set.
    pub interrupt: Interrupt,
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
            interrupt: Interrupt::never(),
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

/// The directories of a build cache where builds write temporary files.
pub fn cache_temp_dirs(cache_dir: &Path) -> [PathBuf; 2] {
    [cache_dir.join("builds"), cache_dir.join("bases")]
}

#[derive(Debug, Error)]
pub enum BuildError {
    #[error(transparent)]
    Kmod(#[from] KmodError),
    #[error("{scenario}: the module plan has errors; fix the scenario's [initrd] load{}:\n{rendered}", resolve_hint(.plan))]
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
    Patch(#[from] patch::PatchError),
    #[error(transparent)]
    HostFile(#[from] HostFileError),
    #[error(transparent)]
    Elf(#[from] elf::ElfError),
    #[error(transparent)]
    Dhcp(#[from] dhcp::DhcpError),
    #[error("{scenario}: [network]")]
    Network {
        scenario: PathBuf,
        source: AddrError,
    },
    #[error(transparent)]
    Stanza(#[from] stanza::StanzaError),
    #[error(transparent)]
    Add(#[from] AddError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("{path}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: writing the module plan as JSON")]
    PlanJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("the build was stopped before it finished; its output was not written")]
    Interrupted(#[from] Interrupted),
    #[error("{path}: changed while bootrig copied it out of the build cache; run the build again")]
    CacheChanged { path: PathBuf },
    #[error("{scenario}: [rdma] soft_roce needs {what} on this host, which is not there (looked in {}); install rdma-core ibverbs-providers ibverbs-utils rdmacm-utils iproute2", looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    RdmaUserspace {
        scenario: PathBuf,
        what: String,
        looked: Vec<PathBuf>,
    },
}

/// Ordering fixes only some plan errors (a dependency listed late or not at all); for the others
/// (a module that is not there) the hint would send the user the wrong way.
fn resolve_hint(plan: &Plan) -> &'static str {
    if plan.resolve_would_help() {
        " (or use order = \"resolve\")"
    } else {
        ""
    }
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
    pub flavor: Flavor,
    /// Why that flavor: what detection saw, or the scenario's `[initrd] flavor`.
    pub flavor_reason: String,
    pub plan: Plan,
    /// What a boot of this image must show (for `bootrig run` and the tests).
    pub expectation: Expectation,
    /// Cache entries found bad and rebuilt, and why.
    pub warnings: Vec<String>,
}

/// Builds the scenario's initrd. Once `opts.interrupt` is set it fails with
/// [`BuildError::Interrupted`], whatever step it was in, and writes nothing.
pub fn build(s: &Scenario, opts: &BuildOptions) -> Result<BuildResult, BuildError> {
    let interrupt = &opts.interrupt;
    interrupt.check()?;
    // Outputs made anywhere below (initrd::add's too) stop writing and are never committed once
    // the interrupt is set.
    match with_interrupt(interrupt, || build_steps(s, opts)) {
        // Whatever a step failed with after a stop request, the stop is the reason.
        Err(_) if interrupt.requested() => Err(BuildError::Interrupted(Interrupted)),
        other => other,
    }
}

fn build_steps(s: &Scenario, opts: &BuildOptions) -> Result<BuildResult, BuildError> {
    let (plan, loads) = module_plan(s)?;
    let base = base_image(s, opts)?;
    opts.interrupt.check()?;
    let inputs = Inputs::gather(s, opts, &loads)?;
    let key = cache_key(s, opts, &inputs, &base)?;
    let entry = CacheEntry::new(&opts.cache_dir, &key);
    let mut warnings = Vec::new();
    let (flavor, reused) = match reuse(&entry, opts, &mut warnings)? {
        Some(flavor) => (flavor, true),
        None => {
            let patched =
                patch::patch(&inputs.patch_plan(s, opts, &loads), &base, &opts.interrupt)?;
            opts.interrupt.check()?;
            let mode = opts.mode.unwrap_or(s.initrd.mode);
            let flavor = write_entry(&entry, &key, &base, patched, mode, opts, &mut warnings)?;
            (flavor, false)
        }
    };
    let plan_path = plan_path_for(&opts.out);
    let plan_json = serde_json::to_vec_pretty(&PlanFile {
        flavor: flavor.flavor,
        flavor_reason: &flavor.reason,
        plan: &plan,
    })
    .map_err(|source| BuildError::PlanJson {
        path: plan_path.clone(),
        source,
    })?;
    write_atomic(&plan_path, &plan_json, true)?;
    Ok(BuildResult {
        image: opts.out.clone(),
        plan_path,
        key,
        reused,
        expectation: expectation(s, &plan, &loads),
        flavor: flavor.flavor,
        flavor_reason: flavor.reason,
        plan,
        warnings,
    })
}

/// The kernel's module plan for the scenario (its errors stop the build), and the modules to
/// load from it.
fn module_plan(s: &Scenario) -> Result<(Plan, Vec<Load>), BuildError> {
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
    Ok((plan, loads))
}

/// The base: bootrig's own (made once, cached by busybox content) or the user's image.
fn base_image(s: &Scenario, opts: &BuildOptions) -> Result<PathBuf, BuildError> {
    match &s.initrd.base {
        Base::Busybox => {
            let key = hash_files(
                &opts.interrupt,
                std::slice::from_ref(&opts.busybox),
                // The base's /init is part of what the image is made of: an edited
                // harness/busybox-init.sh must not reuse an old base.
                &format!("busybox-base-v1\n{}", base::INIT),
            )?;
            let path = opts
                .cache_dir
                .join("bases")
                .join(format!("busybox-{}.img", &key[..16]));
            if !path.exists() {
                fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))
                    .map_err(io_err(&opts.cache_dir))?;
                base::write_busybox_base(&opts.busybox, &path)?;
            }
            Ok(path)
        }
        Base::Image(p) => Ok(p.clone()),
    }
}

/// The build's key: every input's content, the rendered stanza (which carries the guest
/// templates and the plan's paths), bootrig's version and its guest files.
fn cache_key(
    s: &Scenario,
    opts: &BuildOptions,
    inputs: &Inputs,
    base: &Path,
) -> Result<String, BuildError> {
    let mode = opts.mode.unwrap_or(s.initrd.mode);
    let scenario_json = serde_json::to_string(s).unwrap_or_default();
    let mut files = inputs.host_files.clone();
    files.push(opts.busybox.clone());
    files.push(base.to_owned());
    files.push(s.kernel.image.clone());
    hash_files(
        &opts.interrupt,
        &files,
        &format!(
            "bootrig-build-v1\n{}\n{scenario_json}\n{mode:?}\n{}\n{}\n{}\n{}\n{}",
            env!("CARGO_PKG_VERSION"),
            inputs.stanza_text,
            stanza::UDHCPC_SCRIPT,
            wrap::WRAP_INIT,
            place::HOOK_TEMPLATES.concat(),
            inputs
                .dhclient
                .as_ref()
                .map(|d| format!("{:?}", d.additions))
                .unwrap_or_default()
        ),
    )
}

/// A usable cache entry, copied out verified (the output holds exactly the recorded content):
/// its flavor. None when there is none; a bad one is a warning and is built again.
fn reuse(
    entry: &CacheEntry,
    opts: &BuildOptions,
    warnings: &mut Vec<String>,
) -> Result<Option<FlavorDecision>, BuildError> {
    let found = match entry.check() {
        Err(EntryProblem::Absent) => return Ok(None),
        Err(problem) => {
            warnings.push(entry.warning(&problem));
            return Ok(None);
        }
        Ok(found) => found,
    };
    let (out, sha256) = copy_hashing(&entry.image, &opts.out, opts.force, &opts.interrupt)?;
    if sha256 != found.sha256 {
        let problem = EntryProblem::Changed {
            recorded: found.sha256,
            found: sha256,
        };
        warnings.push(entry.warning(&problem));
        return Ok(None);
    }
    out.commit()?;
    Ok(Some(found.flavor))
}

/// Writes the patched image into the cache entry, completes the entry, and copies it out.
fn write_entry(
    entry: &CacheEntry,
    key: &str,
    base: &Path,
    patched: patch::Patched,
    mode: AddMode,
    opts: &BuildOptions,
    warnings: &mut Vec<String>,
) -> Result<FlavorDecision, BuildError> {
    let dir = opts.cache_dir.join("builds");
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    // No sidecar while the image is being replaced: a stop half-way leaves an entry that is
    // rebuilt, never one that is trusted.
    entry.invalidate()?;
    let add_opts = AddOptions {
        mode,
        force: true,
        ..AddOptions::default()
    };
    let added = add(base, &entry.image, &patched.additions, &add_opts)?;
    // What the kernel would have done differently (hardlinks broken, entries it skips).
    warnings.extend(
        added
            .warnings
            .iter()
            .map(|w| format!("{}: {w}", base.display())),
    );
    let sha256 = file_sha256(&opts.interrupt, &entry.image)?;
    entry.complete(&patched.flavor, &sha256, key)?;
    let (out, copied) = copy_hashing(&entry.image, &opts.out, opts.force, &opts.interrupt)?;
    if copied != sha256 {
        return Err(BuildError::CacheChanged {
            path: entry.image.clone(),
        });
    }
    out.commit()?;
    Ok(patched.flavor)
}

/// `plan.json`: the module plan, and the flavor that placed the stanza with its reason.
#[derive(Serialize)]
struct PlanFile<'a> {
    flavor: Flavor,
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
