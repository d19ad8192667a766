//! The module planner against the real Debian kernel and module tree fetched by images/setup:
//! the FlexBoot manual's lists, modern lists, broken orders, foreign and compressed modules,
//! trees without modules.dep and layered trees, and the CLI's exit codes.

use std::path::{Path, PathBuf};
use std::process::Command;

use bootrig::kmod::compress::{compress, Compression};
use bootrig::kmod::{plan, ErrorKind, ModuleStatus, Plan, PlanRequest};

mod common;

use common::{cache_env as env, CacheEnv as Env};

fn run(e: &Env, dirs: &[&Path], list: &[&str], resolve: bool) -> Plan {
    plan(&PlanRequest {
        kernel: e.kernel.clone(),
        module_dirs: dirs.iter().map(|d| d.to_path_buf()).collect(),
        modules: list.iter().map(|s| s.to_string()).collect(),
        resolve,
    })
    .unwrap()
}

fn load_order(p: &Plan) -> Vec<&str> {
    p.load_order().map(|m| m.name.as_str()).collect()
}

fn error_kinds(p: &Plan) -> Vec<(ErrorKind, String)> {
    p.errors
        .iter()
        .map(|e| (e.detail.kind(), e.message.clone()))
        .collect()
}

/// The IB list of the FlexBoot manual, exactly as printed ("• ib_addr.ko", …).
fn manual_ib_list() -> Vec<String> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/flexboot-diskless-manual.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}: the manual is the test's input", path.display()));
    let start = text
        .find("The IB driver requires loading the following modules in the specified order")
        .expect("manual's IB list heading");
    let rest = &text[start..];
    let end = rest.find("Example:").expect("end of the list");
    rest[..end]
        .lines()
        .filter_map(|l| l.trim().strip_prefix('•'))
        .map(|item| item.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn the_manuals_ib_list_as_printed() {
    if !common::require(&[common::Need::Setup]) {
        return;
    }
    let e = env();
    let list = manual_ib_list();
    assert_eq!(list.len(), 16, "{list:?}");
    assert_eq!(list[0], "ib_addr.ko");
    let refs: Vec<&str> = list.iter().map(String::as_str).collect();
    let p = run(&e, &[&e.modules], &refs, false);
    let errors = error_kinds(&p);
    let historical: Vec<&str> = p
        .modules
        .iter()
        .filter(|m| matches!(&m.status, ModuleStatus::Error { kinds } if kinds == &[ErrorKind::HistoricalName]))
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(
        historical,
        vec!["ib_addr", "ib_mad", "ib_sa", "ib_ucm", "ipoib_helper"]
    );
    let ib_addr = &errors[0].1;
    assert!(
        ib_addr.contains("merged into `ib_core`") && ib_addr.contains("v4.5"),
        "{ib_addr}"
    );
    assert!(errors
        .iter()
        .any(|(_, m)| m.contains("`ib_ucm` was removed from the kernel in v5.3")));
    assert!(errors
        .iter()
        .any(|(_, m)| m.contains("`ipoib_helper` was never in the upstream kernel")));
    // Debian builds configfs as a module, and rdma_cm needs it: the manual never lists it.
    assert!(errors.iter().any(
        |(k, m)| *k == ErrorKind::MissingDependency && m.contains("`rdma_cm` needs `configfs`")
    ));
    assert_eq!(errors.len(), 6, "{errors:#?}");
    assert_eq!(
        load_order(&p),
        vec![
            "ib_core",
            "ib_cm",
            "ib_uverbs",
            "ib_umad",
            "iw_cm",
            "rdma_ucm",
            "mlx4_core",
            "mlx4_ib",
            "ib_mthca",
            "ib_ipoib"
        ]
    );
    assert!(!p.is_loadable());

    // --resolve turns the same list into a loadable plan for this kernel.
    let r = run(&e, &[&e.modules], &refs, true);
    assert!(r.is_loadable(), "{:#?}", r.errors);
    let order = load_order(&r);
    assert_eq!(order[0], "ib_core", "ib_addr's successor takes its place");
    let pos = |n: &str| order.iter().position(|m| *m == n).unwrap();
    assert!(pos("configfs") < pos("rdma_cm"));
    assert!(
        r.warnings
            .iter()
            .all(|w| !w.message.contains("listed again")),
        "{:#?}",
        r.warnings
    );
}

#[test]
fn the_manuals_init_stanza_with_ipv6_and_lro() {
    if !common::require(&[common::Need::Setup]) {
        return;
    }
    let e = env();
    let p = run(
        &e,
        &[&e.modules],
        &["ipv6", "ib_core", "ib_cm", "ib_ipoib lro=0"],
        false,
    );
    assert!(matches!(p.modules[0].status, ModuleStatus::Builtin { .. }));
    assert!(p.warnings[0]
        .message
        .contains("`ipv6` is built into the kernel"));
    let errors = error_kinds(&p);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, ErrorKind::UnknownParameter);
    assert!(
        errors[0]
            .1
            .contains("`lro` is not a parameter of `ib_ipoib`"),
        "{}",
        errors[0].1
    );
}

#[test]
fn the_manuals_ethernet_list_is_loadable() {
    if !common::require(&[common::Need::Setup]) {
        return;
    }
    let e = env();
    let p = run(&e, &[&e.modules], &["mlx4_core.ko", "mlx4_en.ko"], false);
    assert!(p.is_loadable(), "{:#?}", p.errors);
    assert_eq!(load_order(&p), vec!["mlx4_core", "mlx4_en"]);
    assert_eq!(p.modules[1].depends, vec!["mlx4_core"]);
    assert!(p.modules[1]
        .file
        .as_ref()
        .unwrap()
        .ends_with("mellanox/mlx4/mlx4_en.ko"));
}

#[test]
fn an_mlx5_list_needs_its_closure() {
    if !common::require(&[common::Need::Setup]) {
        return;
    }
    let e = env();
    let list = ["mlx5_core", "mlx5_ib", "ib_ipoib"];
    let p = run(&e, &[&e.modules], &list, false);
    let missing: Vec<String> = p
        .errors
        .iter()
        .filter(|x| x.detail.kind() == ErrorKind::MissingDependency)
        .map(|x| x.message.split('`').nth(3).unwrap_or("").to_string())
        .collect();
    for dep in [
        "mlxfw",
        "psample",
        "pci_hyperv_intf",
        "ib_core",
        "ib_uverbs",
        "ib_cm",
    ] {
        assert!(
            missing.iter().any(|m| m == dep),
            "{dep} not reported: {missing:?}"
        );
    }
    let r = run(&e, &[&e.modules], &list, true);
    assert!(r.is_loadable(), "{:#?}", r.errors);
    let order = load_order(&r);
    let pos = |n: &str| order.iter().position(|m| *m == n).unwrap();
    assert!(pos("mlxfw") < pos("mlx5_core") && pos("mlx5_core") < pos("mlx5_ib"));
    assert!(pos("ib_core") < pos("ib_uverbs") && pos("ib_uverbs") < pos("mlx5_ib"));
    assert!(pos("ib_cm") < pos("ib_ipoib"));
    assert_eq!(order.len(), 9, "{order:?}");
}

#[test]
fn a_modern_order_passes_and_a_swapped_one_names_both() {
    if !common::require(&[common::Need::Setup]) {
        return;
    }
    let e = env();
    let good = [
        "ib_core",
        "ib_cm",
        "ib_uverbs",
        "mlx4_core",
        "mlx4_ib",
        "ib_ipoib send_queue_size=256",
    ];
    let p = run(&e, &[&e.modules], &good, false);
    assert!(p.is_loadable(), "{:#?}", p.errors);
    assert_eq!(p.modules[5].params[0].to_string(), "send_queue_size=256");
    let bad = run(&e, &[&e.modules], &["ib_core", "ib_ipoib", "ib_cm"], false);
    let errors = error_kinds(&bad);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, ErrorKind::OrderViolation);
    assert!(errors[0]
        .1
        .contains("`ib_ipoib` needs `ib_cm`, which is loaded after it"));
}

#[test]
fn unknown_names_get_suggestions() {
    if !common::require(&[common::Need::Setup]) {
        return;
    }
    let e = env();
    let p = run(&e, &[&e.modules], &["mlx4_cor"], false);
    assert!(
        p.errors[0].message.contains("did you mean `mlx4_core`"),
        "{}",
        p.errors[0].message
    );
}

#[test]
fn firmware_the_tree_lacks_is_a_warning() {
    if !common::require(&[common::Need::Setup]) {
        return;
    }
    let e = env();
    let p = run(&e, &[&e.modules], &["hfi1"], true);
    let fw: Vec<&str> = p
        .warnings
        .iter()
        .filter(|w| w.message.contains("declares firmware"))
        .map(|w| w.message.as_str())
        .collect();
    assert!(fw.iter().any(|m| m.contains("hfi1_dc8051.fw")), "{fw:#?}");
    assert!(p.is_loadable());
}

/// Copies (hardlinks where possible) `names` and their closure, keeping relative paths.
fn copy_closure(e: &Env, names: &[&str], to: &Path) -> Vec<PathBuf> {
    let p = run(e, &[&e.modules], names, true);
    let mut copied = Vec::new();
    for m in p.load_order() {
        let from = m.file.clone().unwrap();
        let rel = from.strip_prefix(&e.modules).unwrap();
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        if std::fs::hard_link(&from, &dest).is_err() {
            std::fs::copy(&from, &dest).unwrap();
        }
        copied.push(dest);
    }
    copied
}

#[test]
fn a_tree_without_modules_dep_plans_the_same() {
    if !common::require(&[common::Need::Setup]) {
        return;
    }
    let e = env();
    let list = ["mlx5_ib", "ib_ipoib"];
    let tmp = tempfile::tempdir().unwrap();
    copy_closure(&e, &list, tmp.path());
    assert!(!tmp.path().join("modules.dep").exists());
    let bare = run(&e, &[tmp.path()], &list, true);
    let full = run(&e, &[&e.modules], &list, true);
    assert!(!bare.layers[0].has_modules_dep && full.layers[0].has_modules_dep);
    assert!(bare.is_loadable(), "{:#?}", bare.errors);
    assert_eq!(load_order(&bare), load_order(&full));
}

#[test]
fn layered_trees_resolve_to_the_first_match() {
    if !common::require(&[common::Need::Setup]) {
        return;
    }
    let e = env();
    let updates = tempfile::tempdir().unwrap();
    let dest = updates.path().join("updates/ib_ipoib.ko");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(
        e.modules
            .join("kernel/drivers/infiniband/ulp/ipoib/ib_ipoib.ko"),
        &dest,
    )
    .unwrap();
    let p = run(
        &e,
        &[updates.path(), &e.modules],
        &["ib_core", "ib_cm", "ib_ipoib"],
        false,
    );
    assert!(p.is_loadable(), "{:#?}", p.errors);
    let ipoib = p.modules.iter().find(|m| m.name == "ib_ipoib").unwrap();
    assert_eq!(
        (ipoib.layer, ipoib.file.as_deref()),
        (Some(0), Some(dest.as_path()))
    );
    assert_eq!(p.modules[0].layer, Some(1));
}

/// Replaces the release in a module's `vermagic=` with one of the same length.
fn rewrite_vermagic(bytes: &mut [u8], from: &str, to: &str) {
    assert_eq!(from.len(), to.len());
    let needle = format!("vermagic={from}");
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .expect("vermagic in module");
    let start = at + "vermagic=".len();
    bytes[start..start + to.len()].copy_from_slice(to.as_bytes());
}

#[test]
fn a_module_from_another_kernel_is_caught() {
    if !common::require(&[common::Need::Setup]) {
        return;
    }
    let e = env();
    let tmp = tempfile::tempdir().unwrap();
    copy_closure(&e, &["ib_cm"], tmp.path());
    let core = tmp.path().join("kernel/drivers/infiniband/core/ib_core.ko");
    let mut bytes = std::fs::read(&core).unwrap();
    std::fs::remove_file(&core).unwrap(); // break the hardlink before writing
    let foreign = "5.14.0-362.el9";
    rewrite_vermagic(
        &mut bytes,
        &e.release,
        &foreign[..e.release.len().min(foreign.len())],
    );
    std::fs::write(&core, bytes).unwrap();
    let p = run(&e, &[tmp.path()], &["ib_core", "ib_cm"], false);
    let errors = error_kinds(&p);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].0, ErrorKind::VermagicMismatch);
    assert!(
        errors[0].1.contains(&format!(
            "built for 5.14.0-362.el9, kernel is {}",
            e.release
        )) && errors[0].1.contains("Invalid module format"),
        "{}",
        errors[0].1
    );
}

#[test]
fn compressed_copies_of_real_modules_plan_like_the_originals() {
    if !common::require(&[common::Need::Setup]) {
        return;
    }
    let e = env();
    let tmp = tempfile::tempdir().unwrap();
    let formats = [
        (Compression::Xz, "xz"),
        (Compression::Zstd, "zst"),
        (Compression::Gzip, "gz"),
    ];
    let names = [
        ("core", "ib_core"),
        ("core", "ib_cm"),
        ("ulp/ipoib", "ib_ipoib"),
    ];
    for ((dir, name), (format, ext)) in names.iter().zip(formats) {
        let from = e
            .modules
            .join(format!("kernel/drivers/infiniband/{dir}/{name}.ko"));
        let dest = tmp.path().join(format!("kernel/{name}.ko.{ext}"));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(
            &dest,
            compress(format, &std::fs::read(&from).unwrap()).unwrap(),
        )
        .unwrap();
    }
    let p = run(&e, &[tmp.path()], &["ib_ipoib"], true);
    assert!(p.is_loadable(), "{:#?}", p.errors);
    assert_eq!(load_order(&p), vec!["ib_core", "ib_cm", "ib_ipoib"]);
    let real = run(&e, &[&e.modules], &["ib_ipoib"], true);
    for (c, r) in p.load_order().zip(real.load_order()) {
        assert_eq!(
            (&c.depends, &c.vermagic),
            (&r.depends, &r.vermagic),
            "{}",
            c.name
        );
    }
    let files: Vec<String> = p
        .load_order()
        .map(|m| m.file.as_ref().unwrap().display().to_string())
        .collect();
    assert!(
        files[0].ends_with(".ko.xz")
            && files[1].ends_with(".ko.zst")
            && files[2].ends_with(".ko.gz")
    );
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bootrig"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A kernel that is a device or a FIFO is refused at once with what it is (a FIFO blocked in
/// open until a writer came).
#[test]
fn a_device_or_a_fifo_as_kernel_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("vmlinuz");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let m = dir.path().to_str().unwrap();
    for (kernel, kind) in [
        (Path::new("/dev/zero"), "character device"),
        (fifo.as_path(), "FIFO"),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bootrig"))
            .args(["modules", "plan", "--modules", m, "--kernel"])
            .arg(kernel)
            .arg("ib_core")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > std::time::Duration::from_secs(30) {
                child.kill().unwrap();
                panic!("modules plan --kernel {} did not end", kernel.display());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!("{}: ", kernel.display()))
                && err.contains(&format!(": is a {kind}, not a file")),
            "{err}"
        );
    }
}

#[test]
fn cli_exit_codes_and_json() {
    if !common::require(&[common::Need::Setup]) {
        return;
    }
    let e = env();
    let k = e.kernel.to_str().unwrap();
    let m = e.modules.to_str().unwrap();
    let (code, out, _) = cli(&[
        "modules",
        "plan",
        "--kernel",
        k,
        "--modules",
        m,
        "mlx4_core",
        "mlx4_en",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("plan: loadable (2 modules to insmod)"),
        "{out}"
    );

    let (code, out, _) = cli(&[
        "modules",
        "plan",
        "--kernel",
        k,
        "--modules",
        m,
        "ib_core",
        "ib_ipoib",
        "ib_cm",
    ]);
    assert_eq!(code, 1);
    assert!(
        out.contains("`ib_ipoib` needs `ib_cm`, which is loaded after it"),
        "{out}"
    );

    let (code, out, _) = cli(&[
        "modules",
        "plan",
        "--json",
        "--resolve",
        "--kernel",
        k,
        "--modules",
        m,
        "ib_ipoib",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["kernel_release"], e.release.as_str());
    let names: Vec<&str> = v["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["ib_core", "ib_cm", "ib_ipoib"]);
    assert_eq!(v["modules"][2]["status"]["kind"], "ok");

    let (code, _, err) = cli(&[
        "modules",
        "plan",
        "--kernel",
        "/no/such/vmlinuz",
        "--modules",
        m,
        "ib_core",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("/no/such/vmlinuz"), "{err}");

    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("broken.ko"),
        b"\x7fELF\x02\x01\x01 not really",
    )
    .unwrap();
    let t = tmp.path().to_str().unwrap();
    let (code, _, err) = cli(&["modules", "plan", "--kernel", k, "--modules", t, "broken"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("broken.ko") && err.contains("malformed ELF"),
        "{err}"
    );

    let (code, _, err) = cli(&["modules", "plan", "--kernel", m, "--modules", m, "ib_core"]);
    assert_eq!(code, 2, "a directory is not a kernel: {err}");
}

/// A module name wider than a format width may be (u16::MAX) is printed, not a panic (exit 101):
/// the table pads by hand.
#[test]
fn a_module_name_of_70000_characters_is_reported_not_a_panic() {
    if !common::require(&[common::Need::Setup]) {
        return;
    }
    let e = env();
    let kernel = e.kernel.to_str().unwrap();
    let modules = e.modules.to_str().unwrap();
    let name = "m".repeat(70_000);
    let (code, out, err) = cli(&[
        "modules",
        "plan",
        "--kernel",
        kernel,
        "--modules",
        modules,
        &name,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(out.contains(&name), "{err}");
}
