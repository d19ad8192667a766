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
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::fsutil::{with_interrupt, write_atomic, AtomicOutput, OutputError};
use crate::initrd::add::{add, AddError, AddMode, AddOptions, Addition};
use crate::initrd::image::{read_tree_from, ImageError, ReadOptions};
use crate::initrd::tree::DataPolicy;
use crate::interrupt::{Interrupt, Interrupted, InterruptibleRead};
use crate::kmod::{self, KmodError, Plan, PlanRequest};
use crate::net::addr::{AddrError, ClientId};
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
    Image(#[from] ImageError),
    #[error(transparent)]
    Flavor(#[from] flavor::FlavorError),
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
    pub flavor: String,
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
    let interrupt = &opts.interrupt;
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
            let key = hash_files(
                interrupt,
                std::slice::from_ref(&opts.busybox),
                "busybox-base-v1",
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
            path
        }
        Base::Image(p) => p.clone(),
    };
    interrupt.check()?;

    // Host files that go in: modules, binaries and their libraries, the DHCP client.
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
    let closure = elf::closure(&std::mem::take(&mut binaries), Path::new("/"))?;
    host_files.extend(closure.iter().cloned());
    host_files.push(opts.busybox.clone());
    host_files.push(base_path.clone());
    host_files.push(s.kernel.image.clone());

    let spec = stanza::StanzaSpec {
        modules: loads.iter().map(|l| l.stanza.clone()).collect(),
        network: network_spec(s, client_id.as_ref(), dhclient.as_ref()),
        then: opts.then,
        tools_dir: Some(TOOLS_DIR.to_string()),
        rdma: rdma.as_ref().map(|r| r.stanza.clone()),
    };
    let stanza_text = stanza::render(&spec)?;
    let scenario_json = serde_json::to_string(s).unwrap_or_default();
    // The rendered stanza carries the guest templates and the plan's paths; the files carry the
    // content of everything copied in.
    let key = hash_files(
        interrupt,
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
    let entry = CacheEntry::new(&opts.cache_dir, &key);
    let mut warnings = Vec::new();
    // A usable entry is copied out verified: the output holds exactly the recorded content.
    let reused_flavor = match entry.check() {
        Err(EntryProblem::Absent) => None,
        Err(problem) => {
            warnings.push(entry.warning(&problem));
            None
        }
        Ok(found) => {
            let (out, sha256) = copy_hashing(&entry.image, &opts.out, opts.force, interrupt)?;
            if sha256 == found.sha256 {
                out.commit()?;
                Some(found.flavor)
            } else {
                let problem = EntryProblem::Changed {
                    recorded: found.sha256,
                    found: sha256,
                };
                warnings.push(entry.warning(&problem));
                None
            }
        }
    };
    let reused = reused_flavor.is_some();
    // The entry's flavor file: the name, then on the next line why it was chosen.
    let recorded = if let Some(recorded) = reused_flavor {
        recorded
    } else {
        let file = crate::host::input::open_regular(&base_path).map_err(io_err(&base_path))?;
        let (mut tree, _) = read_tree_from(
            InterruptibleRead::new(io::BufReader::new(file), interrupt),
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
        let flavor_name = detected.name();
        let flavor_reason = match s.initrd.flavor {
            FlavorChoice::Auto => explained.reason,
            _ => format!("[initrd] flavor = \"{flavor_name}\" in the scenario"),
        };
        if detected == flavor::Flavor::Wrap && flavor::wrap_needs_data(&tree, rdinit.as_deref()) {
            // The original init is copied into the image: read it in full (the first read keeps
            // files up to 4 MiB).
            let file = crate::host::input::open_regular(&base_path).map_err(io_err(&base_path))?;
            tree = read_tree_from(
                InterruptibleRead::new(io::BufReader::new(file), interrupt),
                &base_path,
                DataPolicy::Full,
                &ReadOptions::default(),
            )?
            .0;
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
        if let Some(r) = &rdma {
            additions.extend(r.additions.iter().cloned());
        }
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
        interrupt.check()?;

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
        let added = add(&base_path, &entry.image, &additions, &add_opts)?;
        // What the kernel would have done differently (hardlinks broken, entries it skips).
        warnings.extend(
            added
                .warnings
                .iter()
                .map(|w| format!("{}: {w}", base_path.display())),
        );
        let recorded = format!("{flavor_name}\n{flavor_reason}");
        let sha256 = file_sha256(interrupt, &entry.image)?;
        entry.complete(&recorded, &sha256, &key)?;
        let (out, copied) = copy_hashing(&entry.image, &opts.out, opts.force, interrupt)?;
        if copied != sha256 {
            return Err(BuildError::CacheChanged { path: entry.image });
        }
        out.commit()?;
        recorded
    };
    let (flavor_name, flavor_reason) = recorded.split_once('\n').unwrap_or((&recorded, ""));
    let plan_json = serde_json::to_vec_pretty(&PlanFile {
        flavor: flavor_name,
        flavor_reason,
        plan: &plan,
    })
    .unwrap_or_default();
    write_atomic(&plan_path, &plan_json, true)?;
    Ok(BuildResult {
        image: opts.out.clone(),
        plan_path,
        key,
        reused,
        flavor: flavor_name.to_string(),
        flavor_reason: flavor_reason.to_string(),
        plan,
        expectation,
        warnings,
    })
}

// ---- [rdma] soft_roce: the rdma-core userspace ----

/// Where the Soft-RoCE step finds its programs in the image: links to where each one is copied.
pub const RDMA_TOOLS_DIR: &str = "/usr/lib/bootrig/rdma";
/// Where the host's programs are looked for.
const RDMA_BIN_DIRS: [&str; 4] = ["/usr/bin", "/usr/sbin", "/bin", "/sbin"];
/// libibverbs' provider directories (its compiled-in `VERBS_PROVIDER_DIR`), Debian's first.
const VERBS_PROVIDER_DIRS: [&str; 3] = [
    "/usr/lib/x86_64-linux-gnu/libibverbs",
    "/usr/lib64/libibverbs",
    "/usr/lib/libibverbs",
];
/// glibc dlopens libgcc_s for pthread_exit and cancellation (rping's threads): without it rping
/// aborts ("libgcc_s.so.1 must be installed for pthread_exit to work").
const LIBGCC_S_DIRS: [&str; 4] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
];

/// The file naming the rxe provider, which libibverbs reads to know which library to dlopen.
const RXE_DRIVER_FILE: &str = "/etc/libibverbs.d/rxe.driver";

/// What `[rdma] soft_roce` adds: the programs and the rxe provider, whose closures the ELF
/// copier follows, and what no DT_NEEDED names (the provider is dlopen'ed by the name its
/// `.driver` file gives).
struct RdmaUserspace {
    /// Host ELF files: the tools and the provider library, copied with their libraries.
    binaries: Vec<PathBuf>,
    driver: PathBuf,
    additions: Vec<Addition>,
    stanza: stanza::RdmaSpec,
}

fn rdma_userspace(s: &Scenario, r: &crate::scenario::Rdma) -> Result<RdmaUserspace, BuildError> {
    let missing = |what: String, looked: Vec<PathBuf>| BuildError::RdmaUserspace {
        scenario: s.path.clone(),
        what,
        looked,
    };
    let mut binaries = Vec::new();
    let mut additions = Vec::new();
    for tool in stanza::RDMA_TOOLS {
        let candidates: Vec<PathBuf> = RDMA_BIN_DIRS
            .iter()
            .map(|d| Path::new(d).join(tool))
            .collect();
        let found = candidates
            .iter()
            .find(|p| p.is_file())
            .ok_or_else(|| missing(format!("`{tool}`"), candidates.clone()))?;
        additions.push(Addition::symlink(
            &format!("{RDMA_TOOLS_DIR}/{tool}"),
            &found.to_string_lossy(),
        ));
        binaries.push(found.clone());
    }
    let provider = VERBS_PROVIDER_DIRS
        .iter()
        .filter_map(|d| fs::read_dir(d).ok())
        .flat_map(|entries| entries.filter_map(Result::ok))
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("librxe-rdmav") && n.ends_with(".so"))
        })
        .ok_or_else(|| {
            missing(
                "the rxe verbs provider (librxe-rdmav*.so, from ibverbs-providers)".into(),
                VERBS_PROVIDER_DIRS.iter().map(PathBuf::from).collect(),
            )
        })?;
    binaries.push(provider);
    let libgcc: Vec<PathBuf> = LIBGCC_S_DIRS
        .iter()
        .map(|d| Path::new(d).join("libgcc_s.so.1"))
        .collect();
    let found = libgcc
        .iter()
        .find(|p| p.is_file())
        .ok_or_else(|| missing("libgcc_s.so.1 (from libgcc-s1)".into(), libgcc.clone()))?;
    binaries.push(found.clone());
    let driver = PathBuf::from(RXE_DRIVER_FILE);
    if !driver.is_file() {
        return Err(missing(
            "rxe.driver (from ibverbs-providers)".into(),
            vec![driver],
        ));
    }
    additions.push(Addition::path(driver.clone(), RXE_DRIVER_FILE));
    Ok(RdmaUserspace {
        binaries,
        driver,
        additions,
        stanza: stanza::RdmaSpec {
            device: r.device.clone(),
            tools: RDMA_TOOLS_DIR.into(),
            seconds: u32::try_from(r.timeout.as_secs().max(1)).unwrap_or(u32::MAX),
        },
    })
}

/// One entry of the build cache.
struct CacheEntry {
    image: PathBuf,
    flavor: PathBuf,
    /// `<key>.sha256`, in `sha256sum` format; written last, so its presence marks a complete entry.
    sha256: PathBuf,
}

/// A usable entry, before its content is checked against `sha256`.
struct FoundEntry {
    flavor: String,
    sha256: String,
}

/// Why an entry is not reused.
#[derive(Debug)]
enum EntryProblem {
    Absent,
    Missing { file: PathBuf, why: String },
    Unreadable { file: PathBuf, why: String },
    Changed { recorded: String, found: String },
}

impl CacheEntry {
    fn new(cache_dir: &Path, key: &str) -> Self {
        let builds = cache_dir.join("builds");
        Self {
            image: builds.join(format!("{key}.img")),
            flavor: builds.join(format!("{key}.flavor")),
            sha256: builds.join(format!("{key}.sha256")),
        }
    }

    /// The entry's flavor and recorded hash, when all its files are there and readable.
    fn check(&self) -> Result<FoundEntry, EntryProblem> {
        if self.image.symlink_metadata().is_err() {
            return Err(EntryProblem::Absent);
        }
        let read = |file: &Path, missing_why: &str| match fs::read_to_string(file) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(EntryProblem::Missing {
                file: file.to_owned(),
                why: missing_why.to_owned(),
            }),
            Err(e) => Err(EntryProblem::Unreadable {
                file: file.to_owned(),
                why: e.to_string(),
            }),
        };
        let sum = read(
            &self.sha256,
            "the entry was never completed (a build stopped while writing it?)",
        )?;
        let sha256 = sum
            .split_whitespace()
            .next()
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| EntryProblem::Unreadable {
                file: self.sha256.clone(),
                why: "expected a SHA-256 in hex".into(),
            })?
            .to_ascii_lowercase();
        let flavor = read(&self.flavor, "the base's flavor was not recorded")?
            .trim()
            .to_owned();
        if flavor.is_empty() {
            return Err(EntryProblem::Unreadable {
                file: self.flavor.clone(),
                why: "empty".into(),
            });
        }
        Ok(FoundEntry { flavor, sha256 })
    }

    fn warning(&self, problem: &EntryProblem) -> String {
        // The sidecars sit beside the image the message names.
        let name = |file: &Path| {
            file.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        };
        let why = match problem {
            EntryProblem::Absent => "not in the cache".to_owned(),
            EntryProblem::Missing { file, why } => format!("its {} is missing: {why}", name(file)),
            EntryProblem::Unreadable { file, why } => format!("its {}: {why}", name(file)),
            EntryProblem::Changed { recorded, found } => format!(
                "its content (SHA-256 {found}) is not what was written (SHA-256 {recorded}): \
                 it was changed or damaged since"
            ),
        };
        format!(
            "build cache entry {}: {why}; building it again",
            self.image.display()
        )
    }

    /// Removes the sidecar before the image is rewritten.
    fn invalidate(&self) -> Result<(), BuildError> {
        match fs::remove_file(&self.sha256) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&self.sha256)(e)),
            _ => Ok(()),
        }
    }

    /// Records the written image's flavor and hash; the hash last, as it marks the entry complete.
    fn complete(&self, flavor: &str, sha256: &str, key: &str) -> Result<(), BuildError> {
        write_atomic(&self.flavor, flavor.as_bytes(), true)?;
        write_atomic(
            &self.sha256,
            format!("{sha256}  {key}.img\n").as_bytes(),
            true,
        )?;
        Ok(())
    }
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

/// SHA-256 over a label and the path and content of each file, in order; stops when
/// `interrupt` is set.
fn hash_files(interrupt: &Interrupt, files: &[PathBuf], label: &str) -> Result<String, BuildError> {
    let mut h = Sha256::new();
    h.update(label.as_bytes());
    for f in files {
        let file = crate::host::input::open_regular(f).map_err(io_err(f))?;
        h.update(f.as_os_str().as_encoded_bytes());
        h.update([0]);
        io::copy(&mut InterruptibleRead::new(file, interrupt), &mut h).map_err(io_err(f))?;
    }
    Ok(hex(&h.finalize()))
}

/// The SHA-256 of one file's content, as `sha256sum` prints it.
fn file_sha256(interrupt: &Interrupt, path: &Path) -> Result<String, BuildError> {
    let file = crate::host::input::open_regular(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    io::copy(&mut InterruptibleRead::new(file, interrupt), &mut h).map_err(io_err(path))?;
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies `from` to an output at `to`, not yet committed, and the SHA-256 of what was copied.
fn copy_hashing(
    from: &Path,
    to: &Path,
    force: bool,
    interrupt: &Interrupt,
) -> Result<(AtomicOutput, String), BuildError> {
    /// Hashes what passes through.
    struct Tee<W> {
        out: W,
        hash: Sha256,
    }
    impl<W: io::Write> io::Write for Tee<W> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = self.out.write(buf)?;
            self.hash.update(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            self.out.flush()
        }
    }
    let mut out = AtomicOutput::create(to, force)?;
    let src = crate::host::input::open_regular(from).map_err(io_err(from))?;
    let hash = {
        let mut tee = Tee {
            out: out.writer(),
            hash: Sha256::new(),
        };
        io::copy(&mut InterruptibleRead::new(src, interrupt), &mut tee).map_err(io_err(to))?;
        io::Write::flush(&mut tee).map_err(io_err(to))?;
        tee.hash
    };
    Ok((out, hex(&hash.finalize())))
}
