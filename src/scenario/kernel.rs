//! `[kernel]`: the image and its module trees.

use super::error::Refusal;
use super::model::Kernel;
use super::paths::{PathList, Want};
use super::raw::{OneOrMany, RawKernel};

pub(super) fn kernel_from(raw: RawKernel, paths: &mut PathList) -> Result<Kernel, Refusal> {
    let image = paths.add("[kernel] image", false, &raw.image, Want::File);
    let modules = match raw.modules.get_ref() {
        OneOrMany::One(p) => vec![paths.add_at(
            "[kernel] modules",
            false,
            p,
            raw.modules.span().start,
            Want::Dir,
        )],
        OneOrMany::Many(v) if v.is_empty() => {
            return Err(Refusal::at(
                &raw.modules,
                "[kernel] modules: give at least one module tree",
            ))
        }
        OneOrMany::Many(v) => v
            .iter()
            .map(|p| paths.add("[kernel] modules", true, p, Want::Dir))
            .collect(),
    };
    Ok(Kernel { image, modules })
}

#[cfg(test)]
mod tests {
    use crate::scenario::testing::{parsed, refused_at};

    const KERNEL: &str = "name = \"t\"\n[initrd]\n[kernel]\n";

    #[test]
    fn modules_are_one_tree_or_a_list() {
        let s = parsed(&format!(
            "{KERNEL}image = \"/k\"\nmodules = [\"/a\", \"b\"]"
        ));
        assert_eq!(s.kernel.modules[0], std::path::Path::new("/a"));
        assert!(s.kernel.modules[1].ends_with("dir/b"));
    }

    #[test]
    fn each_bad_value_is_refused_where_it_is_written() {
        for (keys, at, says) in [
            (
                "image = \"/k\"\nmodules = []",
                "[]",
                "give at least one module tree",
            ),
            (
                "image = \"/k\"\nmodules = 3",
                "3",
                "expected a path, or a list of paths",
            ),
            (
                "image = \"/k\"\nmodules = [3]",
                "3",
                "invalid type: integer",
            ),
            (
                "image = [\"/k\"]\nmodules = \"/m\"",
                "[\"/k\"]",
                "invalid type: sequence",
            ),
            ("modules = \"/m\"", "[kernel]", "missing field `image`"),
        ] {
            refused_at(&format!("{KERNEL}{keys}\n"), at, says);
        }
    }

    #[test]
    fn the_key_suggested_is_one_of_this_table() {
        let e = refused_at(
            &format!("{KERNEL}imag = \"/k\"\nmodules = \"/m\""),
            "imag",
            "unknown field",
        );
        assert!(e.ends_with("did you mean `image`?"), "{e}");
        // `load` is a key of [initrd]: not offered for a misspelt [kernel] key.
        let e = refused_at(&format!("{KERNEL}lod = 1"), "lod", "unknown field");
        assert!(!e.contains("did you mean"), "{e}");
    }
}
