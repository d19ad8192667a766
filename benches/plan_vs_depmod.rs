//! `cargo bench --bench plan_vs_depmod`: bootrig planning the full closure of every module
//! under drivers/infiniband and drivers/net/ethernet/mellanox of the real tree, in a copy
//! without modules.dep (dependencies from each module's depends=), versus `depmod -b` (its
//! full run) on an identical copy. Both run in the same process, several times; medians are
//! printed. Needs images/setup (the Debian tree) and depmod on PATH.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bootrig::kmod::{plan, PlanRequest};

const ITERATIONS: usize = 9;
const DIRS: [&str; 2] = [
    "kernel/drivers/infiniband",
    "kernel/drivers/net/ethernet/mellanox",
];

fn env_value(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key} missing from images/cache/env: run images/setup first"))
        .to_string()
}

/// Module files under `DIRS`, relative to the tree, plus their closure from modules.dep.
fn closure(modules: &Path) -> (Vec<String>, BTreeSet<String>) {
    let dep = std::fs::read_to_string(modules.join("modules.dep")).expect("modules.dep");
    let deps: HashMap<&str, Vec<&str>> = dep
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(m, d)| (m, d.split_whitespace().collect()))
        .collect();
    let roots: Vec<&str> = deps
        .keys()
        .copied()
        .filter(|m| DIRS.iter().any(|d| m.starts_with(d)))
        .collect();
    let mut files = BTreeSet::new();
    for root in &roots {
        files.insert(root.to_string());
        // modules.dep already lists the transitive closure of each module.
        files.extend(deps[root].iter().map(|d| d.to_string()));
    }
    let names = roots
        .iter()
        .map(|r| bootrig::kmod::name::normalize(r))
        .collect();
    (names, files)
}

fn populate(base: &Path, release: &str, source: &Path, files: &BTreeSet<String>) -> PathBuf {
    let tree = base.join("lib/modules").join(release);
    for rel in files {
        let dest = tree.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        if std::fs::hard_link(source.join(rel), &dest).is_err() {
            std::fs::copy(source.join(rel), &dest).unwrap();
        }
    }
    for index in [
        "modules.builtin",
        "modules.builtin.modinfo",
        "modules.order",
    ] {
        std::fs::copy(source.join(index), tree.join(index)).unwrap();
    }
    tree
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let env = std::fs::read_to_string(root.join("images/cache/env"))
        .expect("images/cache/env missing: run images/setup first");
    let kernel = PathBuf::from(env_value(&env, "BOOTRIG_KERNEL"));
    let modules = PathBuf::from(env_value(&env, "BOOTRIG_MODULES"));
    let release = env_value(&env, "BOOTRIG_KERNEL_RELEASE");

    let (names, files) = closure(&modules);
    let tmp = tempfile::tempdir().unwrap();
    let for_bootrig = populate(&tmp.path().join("a"), &release, &modules, &files);
    let depmod_base = tmp.path().join("b");
    populate(&depmod_base, &release, &modules, &files);
    assert!(!for_bootrig.join("modules.dep").exists());
    println!(
        "tree: {} modules requested ({} files with dependencies), {ITERATIONS} iterations each",
        names.len(),
        files.len()
    );

    let request = PlanRequest {
        kernel,
        module_dirs: vec![for_bootrig],
        modules: names,
        resolve: true,
    };
    let depmod = || {
        let status = Command::new("depmod")
            .arg("-b")
            .arg(&depmod_base)
            .arg(&release)
            .status()
            .expect("depmod on PATH (package kmod)");
        assert!(status.success(), "depmod failed: {status}");
    };
    // Warm the page cache for both before timing.
    let warm = plan(&request).expect("plan");
    depmod();
    assert!(
        warm.is_loadable(),
        "closure plan has errors: {:#?}",
        warm.errors
    );
    println!("bootrig plan loads {} modules", warm.load_order().count());

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..ITERATIONS {
        let start = Instant::now();
        let p = plan(&request).expect("plan");
        ours.push(start.elapsed());
        assert!(p.is_loadable());
        let start = Instant::now();
        depmod();
        theirs.push(start.elapsed());
    }
    let (a, b) = (median(ours), median(theirs));
    println!("bootrig modules plan --resolve (no modules.dep): median {a:?}");
    println!("depmod -b <tree> {release} (full run):          median {b:?}");
    println!(
        "bootrig is {:.1}x {} than depmod",
        if a < b {
            b.as_secs_f64() / a.as_secs_f64()
        } else {
            a.as_secs_f64() / b.as_secs_f64()
        },
        if a < b { "faster" } else { "SLOWER" }
    );
}
