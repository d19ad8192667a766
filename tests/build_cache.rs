//! `bootrig build` is cached by content: the same inputs give the same output, reused; any input
//! that changes (a module parameter here) gives a new build. Inputs are never modified.

mod common;

use std::path::{Path, PathBuf};

use bootrig::build::{build, BuildOptions};
use bootrig::scenario::Scenario;

fn scenario(dir: &Path, load: &str) -> Scenario {
    let k = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("images/cache/current");
    assert!(
        k.join("vmlinuz").exists(),
        "no kernel in images/cache: run images/setup first"
    );
    let text = format!(
        "name = \"cache\"\n[kernel]\nimage = \"{}\"\nmodules = \"{}\"\n[initrd]\nbase = \"busybox\"\nload = {load}\norder = \"resolve\"\n[network]\ndhcp = \"udhcpc\"\n",
        k.join("vmlinuz").display(),
        k.display()
    );
    let p = dir.join("s.toml");
    std::fs::write(&p, text).unwrap();
    Scenario::load(&p).unwrap()
}

/// Build options writing `dir/out`, with the build cache at `cache`.
fn options(dir: &Path, cache: &Path, out: &str) -> BuildOptions {
    let mut o = BuildOptions::new(&dir.join(out));
    o.cache_dir = cache.to_path_buf();
    o
}

#[test]
fn same_inputs_reuse_the_build_and_changed_inputs_do_not() {
    if !common::require(&[common::Need::Setup]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let opts = |out: &str| options(dir.path(), &cache, out);
    let s = scenario(dir.path(), "[\"ib_core\"]");
    let first = build(&s, &opts("a.img")).unwrap();
    assert!(!first.reused);
    let second = build(&s, &opts("b.img")).unwrap();
    assert!(second.reused);
    assert_eq!(first.key, second.key);
    let a = std::fs::read(dir.path().join("a.img")).unwrap();
    assert_eq!(a, std::fs::read(dir.path().join("b.img")).unwrap());
    assert!(dir.path().join("plan.json").exists());

    // An existing output needs force; nothing is overwritten without it.
    let again = build(&s, &opts("a.img"));
    assert!(again.unwrap_err().to_string().contains("--force"));
    assert_eq!(std::fs::read(dir.path().join("a.img")).unwrap(), a);

    let changed = scenario(
        dir.path(),
        "[\"ib_core\", \"ib_ipoib send_queue_size=256\"]",
    );
    let third = build(&changed, &opts("c.img")).unwrap();
    assert!(!third.reused);
    assert_ne!(third.key, first.key);
    let names: Vec<&str> = third
        .expectation
        .modules
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert!(names.ends_with(&["ib_ipoib"]), "{names:?}");
}

#[test]
fn plan_errors_stop_the_build_and_write_nothing() {
    if !common::require(&[common::Need::Setup]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut s = scenario(dir.path(), "[\"ib_ipoib\", \"ib_core\"]");
    s.initrd.order = bootrig::scenario::Order::Strict;
    let mut o = BuildOptions::new(&dir.path().join("x.img"));
    o.cache_dir = dir.path().join("cache");
    let e = build(&s, &o).unwrap_err().to_string();
    assert!(e.contains("ib_ipoib") && e.contains("order"), "{e}");
    assert!(!dir.path().join("x.img").exists());
}

#[test]
fn a_damaged_entry_is_rebuilt_with_a_warning_and_an_interrupted_build_writes_nothing() {
    if !common::require(&[common::Need::Setup]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let opts = |out: &str| options(dir.path(), &cache, out);
    let s = scenario(dir.path(), "[\"ib_core\"]");
    let first = build(&s, &opts("a.img")).unwrap();
    assert!(first.warnings.is_empty(), "{:?}", first.warnings);
    let image = cache.join("builds").join(format!("{}.img", first.key));
    // Same length, one byte changed: only the content hash tells.
    let mut bytes = std::fs::read(&image).unwrap();
    bytes[100] ^= 0xFF;
    std::fs::write(&image, &bytes).unwrap();
    let second = build(&s, &opts("b.img")).unwrap();
    assert!(!second.reused);
    assert_eq!(second.warnings.len(), 1, "{:?}", second.warnings);
    assert!(second.warnings[0].contains("changed or damaged"));
    assert_eq!(
        std::fs::read(dir.path().join("a.img")).unwrap(),
        std::fs::read(dir.path().join("b.img")).unwrap()
    );

    let stopped = opts("c.img");
    stopped.interrupt.request();
    let e = build(&s, &stopped).unwrap_err();
    assert!(
        matches!(e, bootrig::build::BuildError::Interrupted(_)),
        "{e}"
    );
    assert!(!dir.path().join("c.img").exists());
}
