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

#[cfg(test)]
mod tests {
    use crate::scenario::testing::{parsed, refused_at, with, MINIMAL};
    use crate::scenario::Base;

    #[test]
    fn base_is_a_name_or_a_path() {
        assert!(matches!(parsed(&with("")).initrd.base, Base::Busybox));
        let s = parsed(&with("base = \"../i.img\"\nanchor = \"^mount\""));
        assert!(matches!(s.initrd.base, Base::Image(ref p) if p.ends_with("dir/../i.img")));
        assert_eq!(s.initrd.anchor.as_deref(), Some("^mount"));
    }

    #[test]
    fn each_bad_value_is_refused_where_it_is_written() {
        for (keys, at, says) in [
            (
                "base = \"\"",
                "\"\"",
                "[initrd] base: empty; use \"busybox\"",
            ),
            ("base = 1", "1", "invalid type: integer"),
            ("load = [\"a\", \" \"]", "\" \"", "load: empty entry"),
            (
                "load = \"a\"",
                "\"a\"",
                "invalid type: string \"a\", expected a sequence",
            ),
            ("binaries = [\"sbin/ip\"]", "\"sbin", "write it absolute"),
            (
                "order = \"sorted\"",
                "\"sorted\"",
                "expected one of `strict`, `resolve`, `as-is`",
            ),
            ("order = 3", "3", "wanted string or table"),
            (
                "flavor = \"dracutt\"",
                "\"dracutt\"",
                "did you mean `dracut`?",
            ),
            (
                "mode = \"replace\"",
                "\"replace\"",
                "did you mean `repack`?",
            ),
            (
                "flavor = \"busybox\"\nanchor = \"x\"",
                "\"x\"",
                "only the generic flavor",
            ),
            (
                "anchor = \"(\"",
                "\"(\"",
                "anchor = \"(\": not a regular expression",
            ),
        ] {
            refused_at(&with(keys), at, says);
        }
    }

    /// `name` is a top-level key and `image` one of `[kernel]`: neither is offered here.
    #[test]
    fn the_key_suggested_is_one_of_this_table() {
        let e = refused_at(&with("lod = []"), "lod", "unknown field");
        assert!(e.ends_with("did you mean `load`?"), "{e}");
        let e = refused_at(&with("imag = \"x\""), "imag = \"x\"", "unknown field");
        assert!(!e.contains("did you mean"), "{e}");
        assert!(MINIMAL.ends_with("[initrd]\n"));
    }
}
