//! `patch`'s entry point: a plan of what goes in and a base image become the additions that
//! make the patched image, and the flavor that placed the stanza, with its reason.
//!
//! The order of the additions is part of the output (later entries win in an initrd, and the
//! image's bytes follow it): modules, bootrig's busybox, binaries with their libraries, the
//! busybox applet links, the udhcpc script, extra files, dhclient's files, then the stanza's
//! placement, which may rewrite a file of the base.

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::initrd::add::Addition;
use crate::initrd::image::{read_tree_from, ImageError, ReadOptions};
use crate::initrd::tree::{DataPolicy, Tree};
use crate::interrupt::{Interrupt, InterruptibleRead};
use crate::patch::detect::{decide, rdinit};
use crate::patch::dhcp::DhclientSetup;
use crate::patch::elf::{self, ElfError};
use crate::patch::flavor::{Flavor, FlavorDecision, FlavorError};
use crate::patch::host_file::{self, HostFileError};
use crate::patch::place::{place, Placement};
use crate::patch::stanza::{self, StanzaSpec};
use crate::patch::wrap::wrap_needs_data;
use crate::patch::{BUSYBOX_IN_IMAGE, TOOLS_DIR, UDHCPC_SCRIPT_IN_IMAGE};
use crate::scenario::FlavorChoice;

/// Files the base's tree keeps the content of on the first read: enough for any init script
/// or config the placement reads, little enough for a large base.
const KEEP_UP_TO: u64 = 4 << 20;

/// Where the base's own commands are looked for (dhclient-script's `sh`, `rm`, …).
const BASE_BIN_DIRS: [&str; 4] = ["/bin", "/usr/bin", "/sbin", "/usr/sbin"];

/// What goes into the base: everything `build` decided from the scenario and the host.
#[derive(Debug, Clone)]
pub struct PatchPlan<'a> {
    /// Module files on the host, and their paths in the image.
    pub modules: Vec<(PathBuf, String)>,
    /// The host's static busybox, copied to [`BUSYBOX_IN_IMAGE`].
    pub busybox: PathBuf,
    /// Host files copied at their own paths: binaries with their `DT_NEEDED` closure.
    pub closure: &'a [PathBuf],
    pub stanza: &'a StanzaSpec,
    /// `stanza` rendered.
    pub stanza_text: &'a str,
    /// Further additions (the Soft-RoCE userspace's links and files).
    pub extra: Vec<Addition>,
    pub dhclient: Option<&'a DhclientSetup>,
    /// The scenario's `[initrd] flavor` and `anchor`.
    pub flavor: FlavorChoice,
    pub anchor: Option<String>,
    /// The scenario's `[boot] append`, where `rdinit=` may name another init than /init.
    pub append: &'a str,
}

/// What [`patch`] made.
#[derive(Debug)]
pub struct Patched {
    pub additions: Vec<Addition>,
    pub flavor: FlavorDecision,
}

#[derive(Debug, Error)]
pub enum PatchError {
    #[error(transparent)]
    HostFile(#[from] HostFileError),
    #[error("{path}: cannot open the base image")]
    Open { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Elf(#[from] ElfError),
    #[error(transparent)]
    Flavor(#[from] FlavorError),
}

/// The additions that patch `base` (an initrd on the host) as `plan` says, and the flavor that
/// placed the stanza. Reads stop once `interrupt` is set.
pub fn patch(plan: &PatchPlan, base: &Path, interrupt: &Interrupt) -> Result<Patched, PatchError> {
    // A bad [boot] append is refused before the base is read.
    let rdinit = rdinit(plan.append)?;
    let mut tree = read_base(
        base,
        DataPolicy::Digest {
            keep_up_to: KEEP_UP_TO,
        },
        interrupt,
    )?;
    let decision = decide(plan.flavor, &tree, rdinit.as_deref());
    if decision.flavor == Flavor::Wrap && wrap_needs_data(&tree, rdinit.as_deref()) {
        // The original init is copied into the image: read it in full.
        tree = read_base(base, DataPolicy::Full, interrupt)?;
    }
    let mut additions = copied_files(plan)?;
    additions.extend(plan.extra.iter().cloned());
    if let Some(d) = plan.dhclient {
        additions.extend(dhclient_additions(d, &tree));
    }
    let placement = Placement {
        anchor: plan.anchor.clone(),
        init: rdinit,
    };
    additions.extend(place(decision.flavor, &tree, plan.stanza_text, &placement)?);
    Ok(Patched {
        additions,
        flavor: decision,
    })
}

fn read_base(base: &Path, policy: DataPolicy, interrupt: &Interrupt) -> Result<Tree, PatchError> {
    host_file::check_regular(base, "the base image")?;
    let file = crate::host::input::open_regular(base).map_err(|source| PatchError::Open {
        path: base.to_owned(),
        source,
    })?;
    let (tree, _) = read_tree_from(
        InterruptibleRead::new(io::BufReader::new(file), interrupt),
        base,
        policy,
        &ReadOptions::default(),
    )?;
    Ok(tree)
}

/// Modules, busybox with its applet links, binaries with their libraries, the udhcpc script.
fn copied_files(plan: &PatchPlan) -> Result<Vec<Addition>, PatchError> {
    let mut additions: Vec<Addition> = Vec::new();
    for (host, image) in &plan.modules {
        host_file::check_regular(host, "a module")?;
        additions.push(Addition::path(host.clone(), image));
    }
    host_file::check_regular(&plan.busybox, "the static busybox")?;
    additions.push(Addition {
        mode: Some(0o755),
        ..Addition::path(plan.busybox.clone(), BUSYBOX_IN_IMAGE)
    });
    additions.extend(elf::additions(Path::new("/"), plan.closure)?);
    for tool in stanza::required_commands(plan.stanza)
        .iter()
        .filter(|c| !c.starts_with('/'))
    {
        additions.push(Addition::symlink(
            &format!("{TOOLS_DIR}/{tool}"),
            "../busybox",
        ));
    }
    additions.push(stanza::udhcpc_script_addition(UDHCPC_SCRIPT_IN_IMAGE));
    Ok(additions)
}

/// dhclient's files, and what dhclient-script needs from the base, kept where the base has it.
fn dhclient_additions(d: &DhclientSetup, tree: &Tree) -> Vec<Addition> {
    let mut additions = d.additions.clone();
    for a in &d.if_absent {
        if tree.lookup(&a.dest).is_none() {
            additions.push(a.clone());
        }
    }
    for cmd in &d.base_commands {
        let present = BASE_BIN_DIRS
            .iter()
            .any(|dir| tree.lookup(format!("{dir}/{cmd}").as_bytes()).is_some());
        if !present {
            additions.push(Addition::symlink(
                &format!("/usr/bin/{cmd}"),
                BUSYBOX_IN_IMAGE,
            ));
        }
    }
    additions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::stanza::{Network, Then};

    /// An empty rdinit= is refused before the base is read: a missing base is not even opened.
    #[test]
    fn an_empty_rdinit_is_refused_before_the_base_is_read() {
        let stanza = StanzaSpec {
            modules: Vec::new(),
            network: Network::None,
            then: Then::PowerOff,
            tools_dir: None,
            rdma: None,
        };
        let plan = PatchPlan {
            modules: Vec::new(),
            busybox: PathBuf::from("/nonexistent/busybox"),
            closure: &[],
            stanza: &stanza,
            stanza_text: "",
            extra: Vec::new(),
            dhclient: None,
            flavor: FlavorChoice::Auto,
            anchor: None,
            append: "console=ttyS0 rdinit=",
        };
        let base = Path::new("/nonexistent/base.img");
        let err = patch(&plan, base, &Interrupt::never()).unwrap_err();
        assert!(
            matches!(err, PatchError::Flavor(FlavorError::EmptyRdinit)),
            "{err:?}"
        );
    }
}
