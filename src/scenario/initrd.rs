//! `[initrd]`: the base image, what is loaded and added, and where the stanza goes.

use std::path::Path;

use super::error::Refusal;
use super::model::{Base, FlavorChoice, Initrd};
use super::paths::{PathList, Want};
use super::raw::{RawInitrd, RawMode};
use crate::initrd::add::AddMode;

pub(super) fn initrd_from(raw: RawInitrd, paths: &mut PathList) -> Result<Initrd, Refusal> {
    let base = match &raw.base {
        None => Base::Busybox,
        Some(b) => match b.get_ref().as_str() {
            // A name, not a path: bootrig's own base.
            "busybox" => Base::Busybox,
            "" => {
                return Err(Refusal::at(
                    b,
                    "[initrd] base: empty; use \"busybox\" or a path to an initrd",
                ))
            }
            p => Base::Image(paths.add_at(
                "[initrd] base",
                false,
                Path::new(p),
                b.span().start,
                Want::File,
            )),
        },
    };
    for entry in &raw.load {
        if entry.get_ref().trim().is_empty() {
            return Err(Refusal::at(
                entry,
                "[initrd] load: empty entry; each is \"name\" or \"name params\"",
            ));
        }
    }
    let mut binaries = Vec::new();
    for b in &raw.binaries {
        if !b.get_ref().is_absolute() {
            return Err(Refusal::at(
                b,
                format!(
                    "[initrd] binaries: {:?}: binaries are host paths, copied into the image with their libraries; write it absolute, e.g. \"/sbin/ip\"",
                    b.get_ref()
                ),
            ));
        }
        binaries.push(paths.add("[initrd] binaries", true, b, Want::HostBinary));
    }
    if let Some(anchor) = &raw.anchor {
        if !matches!(raw.flavor, FlavorChoice::Generic | FlavorChoice::Auto) {
            return Err(Refusal::at(
                anchor,
                "[initrd] anchor: only the generic flavor inserts at an anchor; set flavor = \"generic\" or remove it",
            ));
        }
        if let Err(e) = regex::Regex::new(anchor.get_ref()) {
            return Err(Refusal::at(
                anchor,
                format!(
                    "[initrd] anchor = {:?}: not a regular expression: {e}",
                    anchor.get_ref()
                ),
            ));
        }
    }
    Ok(Initrd {
        base,
        load: raw.load.into_iter().map(|l| l.into_inner()).collect(),
        order: raw.order,
        binaries,
        flavor: raw.flavor,
        anchor: raw.anchor.map(|a| a.into_inner()),
        mode: match raw.mode {
            RawMode::Overlay => AddMode::Overlay,
            RawMode::Repack => AddMode::Repack,
        },
    })
}
