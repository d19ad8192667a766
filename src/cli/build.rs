//! `bootrig build SCENARIO -o OUT`: the patched initrd and its plan.json. Ctrl-C stops the build
//! within a second or so and leaves nothing behind; a second Ctrl-C exits at once, removing the
//! temporary files first.

use std::path::PathBuf;

use clap::Args;

use super::{json_or, print_out, CliError, CliResult, Outcome};
use crate::build::{build, BuildError, BuildOptions, BuildResult};
use crate::initrd::add::AddMode;
use crate::interrupt::Interrupt;
use crate::names::Named;
use crate::patch::stanza::Then;
use crate::scenario::Scenario;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Scenario file (TOML).
    scenario: PathBuf,
    /// Output initrd; plan.json is written beside it.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// Overrides the scenario's [initrd] mode.
    #[arg(long, value_enum)]
    mode: Option<AddMode>,
    /// Replace OUT if it exists.
    #[arg(long)]
    force: bool,
    /// Power the guest off when the stanza is done, instead of letting the boot go on.
    #[arg(long)]
    test_mode: bool,
    /// Machine-readable result.
    #[arg(long)]
    json: bool,
}

/// Entry point for `bootrig build`.
pub fn run(args: BuildArgs) -> CliResult {
    let scenario = Scenario::load(&args.scenario)?;
    let mut opts = BuildOptions::new(&args.output);
    opts.interrupt = Interrupt::install()
        .map_err(|e| CliError::step("cannot watch for Ctrl-C and SIGTERM", e))?;
    opts.mode = args.mode;
    opts.force = args.force;
    opts.then = if args.test_mode {
        Then::PowerOff
    } else {
        Then::Continue
    };
    match build(&scenario, &opts) {
        Ok(result) => {
            for w in &result.warnings {
                eprintln!("bootrig: warning: {w}");
            }
            print_out(&json_or(args.json, &result, summary)?)?;
            Ok(Outcome::Pass)
        }
        Err(BuildError::Plan {
            rendered, scenario, ..
        }) => {
            eprintln!(
                "bootrig: {}: the module plan has errors; nothing was built:\n{rendered}",
                scenario.display()
            );
            Ok(Outcome::Fail)
        }
        Err(e @ BuildError::Interrupted(_)) => {
            eprintln!("bootrig: {e}");
            Ok(Outcome::Interrupted)
        }
        Err(e) => Err(e.into()),
    }
}

/// The text form of a build: what was made, from which flavor, and its modules in load order.
fn summary(result: &BuildResult) -> String {
    let modules: Vec<&str> = result
        .expectation
        .modules
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    format!(
        "{}: {} ({}), flavor {} ({}), modules in load order: {}\nplan: {}\n",
        result.image.display(),
        if result.reused {
            "reused from cache"
        } else {
            "built"
        },
        &result.key[..16],
        result.flavor.as_str(),
        result.flavor_reason,
        if modules.is_empty() {
            "none".to_string()
        } else {
            modules.join(" ")
        },
        result.plan_path.display()
    )
}
