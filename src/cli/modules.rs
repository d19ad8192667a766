//! `bootrig modules …`: the module planner's front. Exit 0 when the plan is loadable, 1 when
//! it has errors, 2 for bad input (missing kernel, unreadable directory, malformed module).

use std::path::PathBuf;

use super::{json_or, print_out, CliResult, Outcome};
use crate::kmod::{self, PlanRequest};

#[derive(Debug, clap::Subcommand)]
pub enum ModulesCommand {
    /// Print the load plan for MODULE… on a kernel: files, order, dependencies, and what
    /// would make insmod fail (unknown or historical names, order, vermagic, parameters).
    Plan(PlanArgs),
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The kernel image (bzImage/vmlinuz) the modules are for.
    #[arg(long, value_name = "VMLINUZ")]
    pub kernel: PathBuf,
    /// A module tree (e.g. lib/modules/<release>); repeat to layer trees, first wins.
    #[arg(long = "modules", value_name = "DIR", required = true)]
    pub modules: Vec<PathBuf>,
    /// Compute the dependency closure and a valid order instead of checking the given one.
    #[arg(long)]
    pub resolve: bool,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// Modules in load order, each optionally with parameters: 'ib_ipoib send_queue_size=256'.
    #[arg(value_name = "MODULE", required = true)]
    pub module: Vec<String>,
}

/// Entry point for `bootrig modules`.
pub fn run(cmd: ModulesCommand) -> CliResult {
    match cmd {
        ModulesCommand::Plan(args) => plan(args),
    }
}

/// Entry point for `bootrig modules plan`.
fn plan(args: PlanArgs) -> CliResult {
    let request = PlanRequest {
        kernel: args.kernel,
        module_dirs: args.modules,
        modules: args.module,
        resolve: args.resolve,
    };
    let plan = kmod::plan(&request)?;
    print_out(&json_or(args.json, &plan, kmod::render)?)?;
    Ok(if plan.is_loadable() {
        Outcome::Pass
    } else {
        Outcome::Fail
    })
}
