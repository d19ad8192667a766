//! `[rdma] soft_roce`: the rdma-core userspace a build copies from the host.

use std::fs;
use std::path::{Path, PathBuf};

use super::BuildError;
use crate::initrd::add::Addition;
use crate::patch::stanza;
use crate::scenario::Scenario;

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
pub(super) struct RdmaUserspace {
    /// Host ELF files: the tools and the provider library, copied with their libraries.
    pub binaries: Vec<PathBuf>,
    pub driver: PathBuf,
    pub additions: Vec<Addition>,
    pub stanza: stanza::RdmaSpec,
}

pub(super) fn rdma_userspace(
    s: &Scenario,
    r: &crate::scenario::Rdma,
) -> Result<RdmaUserspace, BuildError> {
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
