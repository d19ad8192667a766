//! The plan as text for a person: one line per module in load order, then errors and warnings.

use std::fmt::Write;

use super::plan::{ModuleStatus, Plan};

/// Renders `plan` for a terminal.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(
        out,
        "kernel {} ({})",
        plan.kernel_release,
        plan.kernel.display()
    );
    for (i, layer) in plan.layers.iter().enumerate() {
        let _ = writeln!(
            out,
            "layer {i}: {} ({} modules, {})",
            layer.dir.display(),
            layer.module_count,
            if layer.has_modules_dep {
                "modules.dep"
            } else {
                "no modules.dep: dependencies from depends="
            }
        );
    }
    let _ = writeln!(
        out,
        "order: {}",
        if plan.resolve {
            "resolved (closure of the list, dependencies first)"
        } else {
            "as given (checked)"
        }
    );
    let width = plan.modules.iter().map(|m| m.name.len()).max().unwrap_or(0);
    for (i, m) in plan.modules.iter().enumerate() {
        let status = match &m.status {
            ModuleStatus::Ok => "ok".to_string(),
            ModuleStatus::Builtin { .. } => "builtin".to_string(),
            ModuleStatus::AlreadyInPlan { position } => {
                format!("already-in-plan (#{})", position + 1)
            }
            ModuleStatus::Dropped => "dropped".to_string(),
            ModuleStatus::Error { kinds } => {
                let names: Vec<String> = kinds
                    .iter()
                    .map(|k| {
                        serde_json::to_value(k)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default()
                    })
                    .collect();
                format!("error: {}", names.join(","))
            }
        };
        let origin = if m.requested_as.is_some() {
            ""
        } else {
            " (dependency)"
        };
        // Padded by hand: a module name is user input, and a format width above u16::MAX panics.
        let name = crate::columns::pad_right(&m.name, width);
        let _ = write!(out, "{:>3}. {name}  {status}{origin}", i + 1);
        if let (Some(file), Some(layer), Some(size)) = (&m.file, m.layer, m.size) {
            let _ = write!(out, "  {} [layer {layer}, {size} bytes]", file.display());
        }
        if !m.depends.is_empty() {
            let _ = write!(out, "  depends: {}", m.depends.join(","));
        }
        if !m.params.is_empty() {
            let params: Vec<String> = m.params.iter().map(|p| p.to_string()).collect();
            let _ = write!(out, "  params: {}", params.join(" "));
        }
        out.push('\n');
    }
    for e in &plan.errors {
        let _ = writeln!(out, "error: {}", e.message);
    }
    for w in &plan.warnings {
        let _ = writeln!(out, "warning: {}", w.message);
    }
    let loads = plan.load_order().count();
    if plan.is_loadable() {
        let _ = writeln!(out, "plan: loadable ({loads} modules to insmod)");
    } else {
        let _ = writeln!(
            out,
            "plan: NOT loadable: {} error(s), {} warning(s)",
            plan.errors.len(),
            plan.warnings.len()
        );
    }
    out
}
