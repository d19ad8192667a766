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
