//! The load plan: which modules, in which order, from which file, and everything that would
//! make `insmod` fail or misbehave, found before anything boots.
//!
//! By default the user's order is kept and checked. With `resolve`, the closure of the
//! requested modules is computed and ordered so each module follows its dependencies, moving
//! a module only when something before it needs it (depth-first, in the user's order).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::builtin::{config_beside, BuiltinSource};
use super::error::KmodError;
use super::hidden::{self, HiddenDep};
use super::history::{self, HistoryEntry};
use super::kernel_release::read_kernel_release;
use super::modinfo::SoftDeps;
use super::params::{parse_spec, unknown_params, ModuleParam, ModuleSpec};
use super::suggest::nearest;
use super::tree::{Layer, Located, ModuleTree};

/// What to plan.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    /// The kernel image (bzImage) the modules will be loaded into.
    pub kernel: PathBuf,
    /// Module trees in search order; the first that has a name wins.
    pub module_dirs: Vec<PathBuf>,
    /// Modules as a scenario's `load` writes them: `"ib_ipoib send_queue_size=256"`.
    pub modules: Vec<String>,
    /// Compute the closure and a valid order instead of checking the given one.
    pub resolve: bool,
}

/// The planner's result, for people (`Display` via `render`) and for `bootrig build`/`run`.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub kernel: PathBuf,
    pub kernel_release: String,
    pub resolve: bool,
    pub layers: Vec<Layer>,
    /// In load order; entries that load nothing (built in, dropped, errors) stay at the
    /// position the user gave them.
    pub modules: Vec<PlannedModule>,
    pub errors: Vec<Reported<PlanError>>,
    pub warnings: Vec<Reported<PlanWarning>>,
}

impl Plan {
    /// True when every module would load: no errors.
    pub fn is_loadable(&self) -> bool {
        self.errors.is_empty()
    }

    /// Whether planning the same list with `resolve` would fix one of the errors: a dependency
    /// listed late or not at all, or a historical name. Never when already resolving, and never
    /// for a module that is not there (ordering does not find it): a caller's hint to resolve
    /// is only worth giving when this is true.
    pub fn resolve_would_help(&self) -> bool {
        !self.resolve
            && self.errors.iter().any(|e| {
                matches!(
                    e.detail.kind(),
                    ErrorKind::OrderViolation
                        | ErrorKind::MissingDependency
                        | ErrorKind::HistoricalName
                )
            })
    }

    /// The modules to `insmod`, in order.
    pub fn load_order(&self) -> impl Iterator<Item = &PlannedModule> {
        self.modules
            .iter()
            .filter(|m| matches!(m.status, ModuleStatus::Ok))
    }
}

/// One module of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedModule {
    pub name: String,
    /// The user's entry, when the module was asked for (not pulled in by `resolve`).
    pub requested_as: Option<String>,
    pub params: Vec<ModuleParam>,
    pub file: Option<PathBuf>,
    /// Index into `Plan::layers`.
    pub layer: Option<usize>,
    /// Size of the file on disk, in bytes.
    pub size: Option<u64>,
    /// Direct dependencies (`depends=`), in the module's own order.
    pub depends: Vec<String>,
    pub vermagic: Option<String>,
    #[serde(skip_serializing_if = "SoftDeps::is_empty")]
    pub softdeps: SoftDeps,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub firmware: Vec<String>,
    pub status: ModuleStatus,
}

/// What the plan does with a module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ModuleStatus {
    /// Loaded with `insmod` at this position.
    Ok,
    /// Compiled into the kernel: nothing to load.
    Builtin { source: BuiltinSource },
    /// Listed again, or (with `resolve`) a historical name whose successor is already planned.
    AlreadyInPlan { position: usize },
    /// With `resolve`: a historical name with no successor, left out.
    Dropped,
    /// Would not load as planned; the details are in `Plan::errors`.
    Error { kinds: Vec<ErrorKind> },
}

/// A finding with its human message, so `--json` carries both.
#[derive(Debug, Clone, Serialize)]
pub struct Reported<T> {
    #[serde(flatten)]
    pub detail: T,
    pub message: String,
}

impl<T: std::fmt::Display> Reported<T> {
    fn new(detail: T) -> Self {
        Reported {
            message: detail.to_string(),
            detail,
        }
    }
}

/// The error kinds a module's status can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    UnknownModule,
    HistoricalName,
    OrderViolation,
    MissingDependency,
    DependencyNotFound,
    DependencyCycle,
    VermagicMismatch,
    VermagicMissing,
    UnknownParameter,
}

/// Why the plan would not load. Each message names the module(s) and the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum PlanError {
    #[error(
        "`{module}` is not a module of this kernel: not in {}, and not built in{}",
        trees(searched),
        suggest(suggestions)
    )]
    UnknownModule {
        module: String,
        /// The nearest real names.
        suggestions: Vec<String>,
        /// The module trees looked in, in search order.
        searched: Vec<PathBuf>,
    },
    #[error("`{module}` was {}: {} (source: {})", entry.describe(), entry.advice, entry.source)]
    HistoricalName { module: String, entry: HistoryEntry },
    #[error("`{module}` needs `{dependency}`, which is loaded after it: move `{dependency}` before `{module}` (or use --resolve)")]
    OrderViolation { module: String, dependency: String },
    #[error("`{module}` needs `{dependency}`, which is not in the list: add `{dependency}` before `{module}` (or use --resolve)")]
    MissingDependency { module: String, dependency: String },
    #[error("`{module}` needs `{dependency}`, which no module tree has and the kernel does not build in: add the tree that has it")]
    DependencyNotFound { module: String, dependency: String },
    #[error("dependency cycle: {}: these modules cannot be loaded one after another; the tree is broken", modules.join(" -> "))]
    DependencyCycle { modules: Vec<String> },
    #[error("`{module}` ({}) was built for {built_for}, kernel is {kernel_release}: insmod will fail with 'Invalid module format'; use the module built for {kernel_release}", file.display())]
    VermagicMismatch {
        module: String,
        file: PathBuf,
        built_for: String,
        kernel_release: String,
    },
    #[error("`{module}` ({}) has no vermagic: insmod will fail with 'Invalid module format' unless the kernel allows forced loads; rebuild it against {kernel_release}", file.display())]
    VermagicMissing {
        module: String,
        file: PathBuf,
        kernel_release: String,
    },
    #[error("`{module} {parameter}`: `{}` is not a parameter of `{module}` in this kernel, which loads the module but ignores it (\"{module}: unknown parameter '{}' ignored\"): drop it{}", parameter.name, parameter.name, known_list(known))]
    UnknownParameter {
        module: String,
        parameter: ModuleParam,
        known: Vec<String>,
    },
}

impl PlanError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            PlanError::UnknownModule { .. } => ErrorKind::UnknownModule,
            PlanError::HistoricalName { .. } => ErrorKind::HistoricalName,
            PlanError::OrderViolation { .. } => ErrorKind::OrderViolation,
            PlanError::MissingDependency { .. } => ErrorKind::MissingDependency,
            PlanError::DependencyNotFound { .. } => ErrorKind::DependencyNotFound,
            PlanError::DependencyCycle { .. } => ErrorKind::DependencyCycle,
            PlanError::VermagicMismatch { .. } => ErrorKind::VermagicMismatch,
            PlanError::VermagicMissing { .. } => ErrorKind::VermagicMissing,
            PlanError::UnknownParameter { .. } => ErrorKind::UnknownParameter,
        }
    }
}

/// Things worth knowing that do not stop the plan from loading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum PlanWarning {
    #[error("`{module}` is built into the kernel ({found_in}): nothing to load; remove it from the list")]
    Builtin {
        module: String,
        found_in: BuiltinSource,
    },
    #[error("`{module}` is built in, so its parameters cannot be given to insmod: put {} on the kernel command line", params.iter().map(|p| format!("`{module}.{p}`")).collect::<Vec<_>>().join(" "))]
    BuiltinParameters {
        module: String,
        params: Vec<ModuleParam>,
    },
    #[error("`{module}` is listed again: already in the plan at position {}; remove the repeat", position + 1)]
    Duplicate { module: String, position: usize },
    #[error("`{module}` was {}: planned `{}` instead (source: {})", entry.describe(), entry.successor.unwrap_or("?"), entry.source)]
    HistoricalNameReplaced { module: String, entry: HistoryEntry },
    #[error("`{module}` was {}: left out ({}; source: {})", entry.describe(), entry.advice, entry.source)]
    HistoricalNameDropped { module: String, entry: HistoryEntry },
    #[error("`{module}` needs `{dependency}`, which no metadata declares: planned it before `{module}` (without it, {}; source: {})", entry.symptom, entry.source)]
    HiddenDependencyAdded {
        module: String,
        dependency: String,
        entry: HiddenDep,
    },
    #[error("`{module}` needs one of {} loaded before it, which no metadata declares and the list does not do: without it, {}; add `{}` before `{module}` (or use order = \"resolve\") (source: {})", entry.providers.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", "), entry.symptom, entry.providers.first().unwrap_or(&"?"), entry.source)]
    HiddenDependencyMissing { module: String, entry: HiddenDep },
    #[error("`{module}` declares firmware `{firmware}`, which is not in {}: the device may fail to probe; add that file to the image", searched_list(searched))]
    MissingFirmware {
        module: String,
        firmware: String,
        searched: Vec<PathBuf>,
    },
}

/// Real names near a misspelt one; none: what else can be wrong. Never the order: ordering
/// finds no module that is not there.
fn suggest(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        "; no module there has a similar name: check the name, or add the tree that has it".into()
    } else {
        let names: Vec<String> = suggestions.iter().map(|s| format!("`{s}`")).collect();
        format!("; did you mean {}?", names.join(", "))
    }
}

fn trees(searched: &[PathBuf]) -> String {
    match searched {
        [] => "any module tree (none was given)".into(),
        [one] => format!("the module tree {}", one.display()),
        many => format!(
            "the module trees {}",
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        " (it declares no parameters)".into()
    } else {
        format!(" (it declares: {})", known.join(", "))
    }
}

fn searched_list(searched: &[PathBuf]) -> String {
    let shown: Vec<String> = searched
        .iter()
        .map(|p| {
            if p.is_dir() {
                p.display().to_string()
            } else {
                format!("{} (missing)", p.display())
            }
        })
        .collect();
    if shown.is_empty() {
        "any firmware directory".into()
    } else {
        shown.join(" or ")
    }
}

/// Plans `request`: reads the kernel's release, opens the trees, checks or resolves.
pub fn plan(request: &PlanRequest) -> Result<Plan, KmodError> {
    let release = read_kernel_release(&request.kernel)?;
    let specs = request
        .modules
        .iter()
        .map(|text| {
            parse_spec(text).map_err(|what| KmodError::ModuleSpec {
                spec: text.clone(),
                what,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut tree = ModuleTree::open(&request.module_dirs)?;
    if let Some(config) = config_beside(&request.kernel, &release) {
        tree.builtins.read_kernel_config(&config)?;
    }
    let mut planner = Planner {
        tree,
        release,
        resolve: request.resolve,
        modules: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
        placed: HashMap::new(),
        substituted: HashSet::new(),
    };
    planner.run(&specs)?;
    Ok(Plan {
        kernel: request.kernel.clone(),
        kernel_release: planner.release,
        resolve: request.resolve,
        layers: planner.tree.layers,
        modules: planner.modules,
        errors: planner.errors,
        warnings: planner.warnings,
    })
}

/// How a user entry was classified.
enum Entry<'a> {
    Loadable {
        spec: &'a ModuleSpec,
        name: String,
        at: Located,
    },
    Builtin {
        spec: &'a ModuleSpec,
        source: BuiltinSource,
    },
    Historical {
        spec: &'a ModuleSpec,
        entry: &'static HistoryEntry,
    },
    Unknown {
        spec: &'a ModuleSpec,
    },
}

struct Planner {
    tree: ModuleTree,
    release: String,
    resolve: bool,
    modules: Vec<PlannedModule>,
    errors: Vec<Reported<PlanError>>,
    warnings: Vec<Reported<PlanWarning>>,
    /// Loadable module name → index in `modules`.
    placed: HashMap<String, usize>,
    /// Positions placed for a historical name's successor: a later explicit entry for the
    /// successor adopts them instead of counting as a repeat.
    substituted: HashSet<usize>,
}

impl Planner {
    fn run(&mut self, specs: &[ModuleSpec]) -> Result<(), KmodError> {
        let entries: Vec<Entry> = specs.iter().map(|s| self.classify(s)).collect();
        if self.resolve {
            self.resolve_order(entries)?;
        } else {
            self.check_order(entries)?;
        }
        let loadable: Vec<usize> = (0..self.modules.len())
            .filter(|&i| self.modules[i].status == ModuleStatus::Ok)
            .collect();
        for index in loadable {
            self.vet(index)?;
        }
        Ok(())
    }

    fn classify<'a>(&self, spec: &'a ModuleSpec) -> Entry<'a> {
        if let Some(at) = self.tree.locate(&spec.name) {
            return Entry::Loadable {
                spec,
                name: spec.name.clone(),
                at,
            };
        }
        if let Some(source) = self.tree.builtins.source(&spec.name) {
            return Entry::Builtin {
                spec,
                source: source.clone(),
            };
        }
        match history::lookup(&spec.name) {
            Some(entry) => Entry::Historical { spec, entry },
            None => Entry::Unknown { spec },
        }
    }

    /// Keeps the user's order; reports dependencies that come later or not at all.
    fn check_order(&mut self, entries: Vec<Entry>) -> Result<(), KmodError> {
        for entry in entries {
            self.place_entry(entry)?;
        }
        let positions: HashMap<String, usize> = self.placed.clone();
        let mut loadable: Vec<usize> = positions.values().copied().collect();
        loadable.sort_unstable();
        for index in loadable {
            let module = self.modules[index].name.clone();
            for dependency in self.modules[index].depends.clone() {
                if self.tree.builtins.source(&dependency).is_some() {
                    continue;
                }
                let error = match positions.get(&dependency) {
                    Some(&at) if at < index => continue,
                    Some(_) => PlanError::OrderViolation {
                        module: module.clone(),
                        dependency,
                    },
                    None if self.tree.locate(&dependency).is_some() => {
                        PlanError::MissingDependency {
                            module: module.clone(),
                            dependency,
                        }
                    }
                    None => PlanError::DependencyNotFound {
                        module: module.clone(),
                        dependency,
                    },
                };
                self.fail(Some(index), error);
            }
            self.check_hidden(index, |dep| {
                positions.get(dep).is_some_and(|&at| at < index)
            });
        }
        Ok(())
    }

    /// Warns when `index`'s undeclared dependency is neither built in nor `loaded_before`.
    fn check_hidden(&mut self, index: usize, loaded_before: impl Fn(&str) -> bool) {
        let module = self.modules[index].name.clone();
        let Some(entry) = hidden::lookup(&module) else {
            return;
        };
        let satisfied = entry
            .providers
            .iter()
            .any(|p| self.tree.builtins.source(p).is_some() || loaded_before(p));
        if !satisfied {
            self.warn(PlanWarning::HiddenDependencyMissing {
                module,
                entry: entry.clone(),
            });
        }
    }

    /// Places each entry after the closure of its dependencies, depth first in user order.
    fn resolve_order(&mut self, entries: Vec<Entry>) -> Result<(), KmodError> {
        for entry in entries {
            match entry {
                Entry::Loadable { spec, name, at } => {
                    let mut path = Vec::new();
                    self.visit(&name, Some(spec), Some(at), &mut path)?;
                }
                Entry::Historical { spec, entry } => {
                    let successor = entry
                        .successor
                        .and_then(|s| self.tree.locate(s).map(|at| (s, at)));
                    match successor {
                        Some((successor, at)) => {
                            self.warn(PlanWarning::HistoricalNameReplaced {
                                module: spec.name.clone(),
                                entry: entry.clone(),
                            });
                            if let Some(&position) = self.placed.get(successor) {
                                self.push(skeleton(
                                    &spec.name,
                                    Some(spec),
                                    ModuleStatus::AlreadyInPlan { position },
                                ));
                            } else {
                                let substitute = ModuleSpec {
                                    text: spec.text.clone(),
                                    name: successor.to_string(),
                                    params: spec.params.clone(),
                                };
                                let mut path = Vec::new();
                                self.visit(successor, Some(&substitute), Some(at), &mut path)?;
                                if let Some(&position) = self.placed.get(successor) {
                                    self.substituted.insert(position);
                                }
                            }
                        }
                        None => {
                            self.warn(PlanWarning::HistoricalNameDropped {
                                module: spec.name.clone(),
                                entry: entry.clone(),
                            });
                            self.push(skeleton(&spec.name, Some(spec), ModuleStatus::Dropped));
                        }
                    }
                }
                other => self.place_entry(other)?,
            }
        }
        Ok(())
    }

    fn visit(
        &mut self,
        name: &str,
        spec: Option<&ModuleSpec>,
        at: Option<Located>,
        path: &mut Vec<String>,
    ) -> Result<(), KmodError> {
        if let Some(&position) = self.placed.get(name) {
            if let Some(spec) = spec {
                self.mark_repeat(spec, position);
            }
            return Ok(());
        }
        if let Some(start) = path.iter().position(|p| p == name) {
            let mut modules = path[start..].to_vec();
            modules.push(name.to_string());
            self.fail(None, PlanError::DependencyCycle { modules });
            return Ok(());
        }
        let Some(at) = at.or_else(|| self.tree.locate(name)) else {
            return Ok(());
        };
        let depends = self.tree.modinfo(&at)?.depends.clone();
        path.push(name.to_string());
        for dependency in &depends {
            if self.tree.builtins.source(dependency).is_some() {
                continue;
            }
            if self.tree.locate(dependency).is_none() {
                self.fail(
                    None,
                    PlanError::DependencyNotFound {
                        module: name.to_string(),
                        dependency: dependency.clone(),
                    },
                );
                continue;
            }
            self.visit(dependency, None, None, path)?;
        }
        if let Some(entry) = hidden::lookup(name) {
            let satisfied = entry
                .providers
                .iter()
                .any(|p| self.tree.builtins.source(p).is_some() || self.placed.contains_key(*p));
            let available = entry
                .providers
                .iter()
                .find(|p| self.tree.locate(p).is_some());
            match (satisfied, available) {
                (true, _) => {}
                (false, Some(provider)) => {
                    self.warn(PlanWarning::HiddenDependencyAdded {
                        module: name.to_string(),
                        dependency: provider.to_string(),
                        entry: entry.clone(),
                    });
                    self.visit(provider, None, None, path)?;
                }
                (false, None) => self.warn(PlanWarning::HiddenDependencyMissing {
                    module: name.to_string(),
                    entry: entry.clone(),
                }),
            }
        }
        path.pop();
        // A cycle below may have placed this module already.
        if let Some(&position) = self.placed.get(name) {
            if let Some(spec) = spec {
                self.mark_repeat(spec, position);
            }
            return Ok(());
        }
        let module = self.loadable_module(name, spec, at)?;
        self.placed.insert(name.to_string(), self.modules.len());
        self.push(module);
        Ok(())
    }

    /// A user entry naming a module that is already placed: a repeat if the user listed it
    /// before, otherwise it was pulled in earlier as a dependency and takes the user's text.
    fn mark_repeat(&mut self, spec: &ModuleSpec, position: usize) {
        let adopt = self.substituted.remove(&position);
        let earlier = &mut self.modules[position];
        if earlier.requested_as.is_none() || adopt {
            earlier.requested_as = Some(spec.text.clone());
            earlier.params = spec.params.clone();
            return;
        }
        self.warn(PlanWarning::Duplicate {
            module: spec.name.clone(),
            position,
        });
        self.push(skeleton(
            &spec.name,
            Some(spec),
            ModuleStatus::AlreadyInPlan { position },
        ));
    }

    /// Places a user entry as it is (check mode, and non-loadable entries in resolve mode).
    fn place_entry(&mut self, entry: Entry) -> Result<(), KmodError> {
        match entry {
            Entry::Loadable { spec, name, at } => {
                if let Some(&position) = self.placed.get(&name) {
                    self.mark_repeat(spec, position);
                    return Ok(());
                }
                let module = self.loadable_module(&name, Some(spec), at)?;
                self.placed.insert(name, self.modules.len());
                self.push(module);
            }
            Entry::Builtin { spec, source } => {
                self.warn(PlanWarning::Builtin {
                    module: spec.name.clone(),
                    found_in: source.clone(),
                });
                if !spec.params.is_empty() {
                    self.warn(PlanWarning::BuiltinParameters {
                        module: spec.name.clone(),
                        params: spec.params.clone(),
                    });
                }
                self.push(skeleton(
                    &spec.name,
                    Some(spec),
                    ModuleStatus::Builtin { source },
                ));
            }
            Entry::Historical { spec, entry } => {
                let index = self.push(skeleton(&spec.name, Some(spec), ModuleStatus::Ok));
                self.fail(
                    Some(index),
                    PlanError::HistoricalName {
                        module: spec.name.clone(),
                        entry: entry.clone(),
                    },
                );
            }
            Entry::Unknown { spec } => {
                let suggestions = nearest(&spec.name, &self.tree.all_names())
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                let searched = self.tree.layers.iter().map(|l| l.dir.clone()).collect();
                let index = self.push(skeleton(&spec.name, Some(spec), ModuleStatus::Ok));
                self.fail(
                    Some(index),
                    PlanError::UnknownModule {
                        module: spec.name.clone(),
                        suggestions,
                        searched,
                    },
                );
            }
        }
        Ok(())
    }

    fn loadable_module(
        &mut self,
        name: &str,
        spec: Option<&ModuleSpec>,
        at: Located,
    ) -> Result<PlannedModule, KmodError> {
        let size = std::fs::metadata(&at.path)
            .map_err(|e| KmodError::io(&at.path, e))?
            .len();
        let softdeps = self.tree.softdeps(name).cloned();
        let info = self.tree.modinfo(&at)?;
        let mut module = skeleton(name, spec, ModuleStatus::Ok);
        module.depends = info.depends.clone();
        module.vermagic = info.vermagic.clone();
        module.softdeps = softdeps.unwrap_or_else(|| info.softdeps.clone());
        module.firmware = info.firmware.clone();
        module.size = Some(size);
        module.layer = Some(at.layer);
        module.file = Some(at.path);
        Ok(module)
    }

    /// Per-module checks that do not depend on order: vermagic, parameters, firmware.
    fn vet(&mut self, index: usize) -> Result<(), KmodError> {
        let (Some(file), Some(layer)) =
            (self.modules[index].file.clone(), self.modules[index].layer)
        else {
            return Ok(());
        };
        let module = self.modules[index].name.clone();
        let info = self
            .tree
            .modinfo(&Located {
                layer,
                path: file.clone(),
            })?
            .clone();
        match info.built_for() {
            Some(built_for) if built_for != self.release => self.fail(
                Some(index),
                PlanError::VermagicMismatch {
                    module: module.clone(),
                    file: file.clone(),
                    built_for: built_for.to_string(),
                    kernel_release: self.release.clone(),
                },
            ),
            Some(_) => {}
            None => self.fail(
                Some(index),
                PlanError::VermagicMissing {
                    module: module.clone(),
                    file: file.clone(),
                    kernel_release: self.release.clone(),
                },
            ),
        }
        let params = self.modules[index].params.clone();
        for parameter in unknown_params(&params, &info) {
            self.fail(
                Some(index),
                PlanError::UnknownParameter {
                    module: module.clone(),
                    parameter: parameter.clone(),
                    known: info.parms.iter().map(|p| p.name.clone()).collect(),
                },
            );
        }
        let dirs = self.firmware_dirs();
        for firmware in &info.firmware {
            if !firmware_present(&dirs, firmware) {
                self.warn(PlanWarning::MissingFirmware {
                    module: module.clone(),
                    firmware: firmware.clone(),
                    searched: dirs.clone(),
                });
            }
        }
        Ok(())
    }

    /// `<root>/lib/firmware` (and `usr/lib/firmware`) for each `<root>/lib/modules/<release>`.
    fn firmware_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        for layer in &self.tree.layers {
            let Some(root) = system_root(&layer.dir) else {
                continue;
            };
            for candidate in [root.join("lib/firmware"), root.join("usr/lib/firmware")] {
                if !dirs.contains(&candidate) {
                    dirs.push(candidate);
                }
            }
        }
        dirs
    }

    fn push(&mut self, module: PlannedModule) -> usize {
        self.modules.push(module);
        self.modules.len() - 1
    }

    fn fail(&mut self, index: Option<usize>, error: PlanError) {
        if let Some(index) = index {
            let kind = error.kind();
            let status = &mut self.modules[index].status;
            match status {
                ModuleStatus::Error { kinds } => {
                    if !kinds.contains(&kind) {
                        kinds.push(kind);
                    }
                }
                _ => *status = ModuleStatus::Error { kinds: vec![kind] },
            }
        }
        let reported = Reported::new(error);
        if !self.errors.iter().any(|e| e.detail == reported.detail) {
            self.errors.push(reported);
        }
    }

    fn warn(&mut self, warning: PlanWarning) {
        self.warnings.push(Reported::new(warning));
    }
}

fn skeleton(name: &str, spec: Option<&ModuleSpec>, status: ModuleStatus) -> PlannedModule {
    PlannedModule {
        name: name.to_string(),
        requested_as: spec.map(|s| s.text.clone()),
        params: spec.map(|s| s.params.clone()).unwrap_or_default(),
        file: None,
        layer: None,
        size: None,
        depends: Vec::new(),
        vermagic: None,
        softdeps: SoftDeps::default(),
        firmware: Vec::new(),
        status,
    }
}

/// `<root>` of a `<root>/lib/modules/<release>` directory.
fn system_root(modules_dir: &Path) -> Option<PathBuf> {
    let modules = modules_dir.parent()?;
    let lib = modules.parent()?;
    (modules.file_name()? == "modules" && lib.file_name()? == "lib")
        .then(|| lib.parent().map(Path::to_path_buf))
        .flatten()
}

fn firmware_present(dirs: &[PathBuf], firmware: &str) -> bool {
    let seen: HashSet<String> = ["", ".xz", ".zst"]
        .iter()
        .map(|ext| format!("{firmware}{ext}"))
        .collect();
    dirs.iter()
        .any(|dir| seen.iter().any(|name| dir.join(name).is_file()))
}

#[cfg(test)]
mod tests {
    use super::super::test_elf::write_tree;
    use super::*;

    const REL: &str = "9.9.9-test";

    /// A synthetic bzImage whose release is `release`.
    fn kernel(dir: &Path, release: &str) -> PathBuf {
        let mut img = vec![0u8; 0x800];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x20E..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        img[0x300..0x300 + release.len()].copy_from_slice(release.as_bytes());
        let path = dir.join("vmlinuz");
        std::fs::write(&path, img).unwrap();
        path
    }

    /// core <- cm <- ipoib, core <- drv; `fw` declares missing firmware; `old` is for 5.14.
    fn fixture() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let k = kernel(dir.path(), REL);
        let modules = dir.path().join("lib/modules").join(REL);
        let vm = format!("vermagic={REL} SMP mod_unload");
        let vm = vm.as_str();
        write_tree(
            &modules,
            &[
                ("kernel/core.ko", &["name=core", "depends=", vm]),
                ("kernel/cm.ko", &["name=cm", "depends=core", vm]),
                (
                    "kernel/ipoib.ko",
                    &[
                        "name=ipoib",
                        "depends=core,cm",
                        vm,
                        "parmtype=send_queue_size:int",
                    ],
                ),
                (
                    "kernel/drv.ko",
                    &["name=drv", "depends=core,builtin_thing", vm],
                ),
                (
                    "kernel/fw.ko",
                    &["name=fw", "depends=", vm, "firmware=acme/fw.bin"],
                ),
                (
                    "kernel/old.ko",
                    &["name=old", "depends=", "vermagic=5.14.0-362.el9 SMP"],
                ),
                ("kernel/nomagic.ko", &["name=nomagic", "depends="]),
                ("kernel/a.ko", &["name=a", "depends=b", vm]),
                ("kernel/b.ko", &["name=b", "depends=a", vm]),
                ("kernel/lost.ko", &["name=lost", "depends=nowhere", vm]),
            ],
        );
        std::fs::write(
            modules.join("modules.builtin"),
            "kernel/x/builtin_thing.ko\nkernel/net/ipv6/ipv6.ko\n",
        )
        .unwrap();
        (dir, k, modules)
    }

    fn run(k: &Path, dirs: &[PathBuf], list: &[&str], resolve: bool) -> Plan {
        plan(&PlanRequest {
            kernel: k.to_path_buf(),
            module_dirs: dirs.to_vec(),
            modules: list.iter().map(|s| s.to_string()).collect(),
            resolve,
        })
        .unwrap()
    }

    fn names(plan: &Plan) -> Vec<&str> {
        plan.load_order().map(|m| m.name.as_str()).collect()
    }

    fn kinds(plan: &Plan) -> Vec<ErrorKind> {
        plan.errors.iter().map(|e| e.detail.kind()).collect()
    }

    #[test]
    fn valid_order_passes_with_builtin_dependency() {
        let (_d, k, m) = fixture();
        let p = run(
            &k,
            &[m],
            &["core", "cm", "ipoib send_queue_size=64", "drv"],
            false,
        );
        assert!(p.is_loadable(), "{:?}", p.errors);
        assert_eq!(names(&p), vec!["core", "cm", "ipoib", "drv"]);
        assert_eq!(p.modules[2].params[0].to_string(), "send_queue_size=64");
        assert_eq!(p.modules[1].depends, vec!["core"]);
        assert!(p.modules[0].size.unwrap() > 0);
    }

    #[test]
    fn swapped_order_names_both_modules() {
        let (_d, k, m) = fixture();
        let p = run(&k, &[m], &["core", "ipoib", "cm"], false);
        assert_eq!(kinds(&p), vec![ErrorKind::OrderViolation]);
        assert!(p.errors[0]
            .message
            .contains("`ipoib` needs `cm`, which is loaded after it"));
        assert_eq!(
            p.modules[1].status,
            ModuleStatus::Error {
                kinds: vec![ErrorKind::OrderViolation]
            }
        );
    }

    #[test]
    fn missing_dependency_is_named_and_resolve_adds_it() {
        let (_d, k, m) = fixture();
        let p = run(&k, std::slice::from_ref(&m), &["ipoib"], false);
        assert_eq!(
            kinds(&p),
            vec![ErrorKind::MissingDependency, ErrorKind::MissingDependency]
        );
        assert!(p.errors[1]
            .message
            .contains("`ipoib` needs `cm`, which is not in the list"));
        let r = run(&k, &[m], &["ipoib", "core"], true);
        assert!(r.is_loadable(), "{:?}", r.errors);
        assert_eq!(names(&r), vec!["core", "cm", "ipoib"]);
        assert!(r.modules[1].requested_as.is_none(), "cm was pulled in");
        assert_eq!(
            r.modules[0].requested_as.as_deref(),
            Some("core"),
            "core was also asked for"
        );
    }

    #[test]
    fn resolve_keeps_a_valid_user_order() {
        let (_d, k, m) = fixture();
        let p = run(&k, &[m], &["fw", "core", "cm", "ipoib"], true);
        assert_eq!(names(&p), vec!["fw", "core", "cm", "ipoib"]);
    }

    #[test]
    fn vermagic_mismatch_and_absence_are_errors() {
        let (_d, k, m) = fixture();
        let p = run(&k, &[m], &["old", "nomagic"], false);
        assert_eq!(
            kinds(&p),
            vec![ErrorKind::VermagicMismatch, ErrorKind::VermagicMissing]
        );
        let msg = &p.errors[0].message;
        assert!(
            msg.contains("built for 5.14.0-362.el9, kernel is 9.9.9-test")
                && msg.contains("Invalid module format"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_parameter_is_an_error_listing_the_real_ones() {
        let (_d, k, m) = fixture();
        let p = run(&k, &[m], &["core", "cm", "ipoib lro=0"], false);
        assert_eq!(kinds(&p), vec![ErrorKind::UnknownParameter]);
        assert!(p.errors[0].message.contains("send_queue_size"));
    }

    #[test]
    fn builtin_and_duplicates_and_unknowns() {
        let (_d, k, m) = fixture();
        let p = run(&k, &[m], &["ipv6 disable=1", "core", "core", "coer"], false);
        assert!(matches!(p.modules[0].status, ModuleStatus::Builtin { .. }));
        assert_eq!(
            p.modules[2].status,
            ModuleStatus::AlreadyInPlan { position: 1 }
        );
        assert_eq!(kinds(&p), vec![ErrorKind::UnknownModule]);
        assert!(
            p.errors[0].message.contains("did you mean `core`"),
            "{}",
            p.errors[0].message
        );
        assert!(!p.resolve_would_help());
        let warnings: Vec<&str> = p.warnings.iter().map(|w| w.message.as_str()).collect();
        assert!(warnings[0].contains("`ipv6` is built into the kernel"));
        assert!(warnings[1].contains("`ipv6.disable=1`"));
        assert!(warnings[2].contains("listed again"));
    }

    /// An unknown module is reported the same with and without `resolve`: the trees searched and
    /// the nearest names, never the order as a fix; resolving is offered only for what it fixes.
    #[test]
    fn unknown_module_names_the_trees_and_never_suggests_resolving() {
        let (d, k, m) = fixture();
        let other = d.path().join("other");
        let vm = format!("vermagic={REL} SMP mod_unload");
        write_tree(&other, &[("extra/x.ko", &["name=x", "depends=", &vm])]);
        for resolve in [false, true] {
            let p = run(&k, &[other.clone(), m.clone()], &["core", "ipoi"], resolve);
            assert_eq!(kinds(&p), vec![ErrorKind::UnknownModule], "{p:?}");
            let message = &p.errors[0].message;
            let want = format!(
                "`ipoi` is not a module of this kernel: not in the module trees {}, {}, and not built in; did you mean `ipoib`, `ipv6`?",
                other.display(),
                m.display()
            );
            assert_eq!(message, &want);
            assert!(!message.contains("resolve"), "{message}");
            assert!(!p.resolve_would_help());
        }
        let p = run(&k, std::slice::from_ref(&m), &["zzzzzzzzzz"], true);
        assert!(
            p.errors[0].message.ends_with(&format!(
                "not in the module tree {}, and not built in; no module there has a similar name: check the name, or add the tree that has it",
                m.display()
            )),
            "{}",
            p.errors[0].message
        );
        // What ordering does fix.
        let p = run(&k, std::slice::from_ref(&m), &["cm", "core"], false);
        assert_eq!(kinds(&p), vec![ErrorKind::OrderViolation]);
        assert!(p.resolve_would_help());
        let p = run(&k, &[m], &["core", "cm", "ipoi"], false);
        assert!(!p.resolve_would_help());
    }

    #[test]
    fn firmware_missing_is_a_warning_and_present_is_not() {
        let (d, k, m) = fixture();
        let p = run(&k, std::slice::from_ref(&m), &["fw"], false);
        assert!(p.is_loadable());
        assert_eq!(p.warnings.len(), 1);
        assert!(p.warnings[0].message.contains("acme/fw.bin"));
        let fwdir = d.path().join("lib/firmware/acme");
        std::fs::create_dir_all(&fwdir).unwrap();
        std::fs::write(fwdir.join("fw.bin.xz"), b"x").unwrap();
        assert!(run(&k, &[m], &["fw"], false).warnings.is_empty());
    }

    #[test]
    fn cycles_and_dangling_dependencies_are_reported() {
        let (_d, k, m) = fixture();
        let p = run(&k, std::slice::from_ref(&m), &["a"], true);
        assert_eq!(kinds(&p), vec![ErrorKind::DependencyCycle]);
        assert!(
            p.errors[0].message.contains("a -> b -> a"),
            "{}",
            p.errors[0].message
        );
        let p = run(&k, std::slice::from_ref(&m), &["lost"], true);
        assert_eq!(kinds(&p), vec![ErrorKind::DependencyNotFound]);
        let p = run(&k, &[m], &["lost"], false);
        assert_eq!(kinds(&p), vec![ErrorKind::DependencyNotFound]);
    }

    #[test]
    fn historical_names_error_by_default_and_resolve_replaces_them() {
        let (_d, k, m) = fixture();
        let p = run(&k, std::slice::from_ref(&m), &["ib_ucm", "core"], false);
        assert_eq!(kinds(&p), vec![ErrorKind::HistoricalName]);
        assert!(p.errors[0].message.contains("v5.3"));
        let r = run(&k, &[m], &["ib_ucm", "core"], true);
        assert!(r.is_loadable());
        assert_eq!(r.modules[0].status, ModuleStatus::Dropped);
    }

    #[test]
    fn json_carries_kinds_and_messages() {
        let (_d, k, m) = fixture();
        let p = run(&k, &[m], &["core", "ipoib", "cm"], false);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["errors"][0]["kind"], "order_violation");
        assert_eq!(v["errors"][0]["module"], "ipoib");
        assert!(v["errors"][0]["message"].as_str().unwrap().contains("`cm`"));
        assert_eq!(v["modules"][1]["status"]["kind"], "error");
        assert_eq!(v["kernel_release"], REL);
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let (d, k, m) = fixture();
        let req = |kernel: PathBuf, dirs: Vec<PathBuf>, list: &[&str]| PlanRequest {
            kernel,
            module_dirs: dirs,
            modules: list.iter().map(|s| s.to_string()).collect(),
            resolve: false,
        };
        let err = plan(&req(d.path().join("none"), vec![m.clone()], &["core"])).unwrap_err();
        assert!(matches!(err, KmodError::KernelUnreadable { .. }));
        let err = plan(&req(k.clone(), vec![d.path().join("nodir")], &["core"])).unwrap_err();
        assert!(matches!(err, KmodError::Io { .. }));
        std::fs::write(m.join("kernel/core.ko"), b"\x7fELF garbage").unwrap();
        let err = plan(&req(k.clone(), vec![m.clone()], &["core"])).unwrap_err();
        assert!(err.to_string().contains("core.ko"), "{err}");
        let err = plan(&req(k, vec![m], &["cm x=\"open"])).unwrap_err();
        assert!(matches!(err, KmodError::ModuleSpec { .. }));
    }
}
