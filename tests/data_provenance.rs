//! Every fixture under tests/data/ has a recorded origin: its file name appears in the README.md
//! of its directory or of a directory above it (up to tests/data/), where its origin is written.

use std::fs;
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("read_dir entry").path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The README.md of `dir` and of each directory above it up to `root`, concatenated.
fn readmes(root: &Path, dir: &Path) -> String {
    let mut text = String::new();
    for d in dir.ancestors().take_while(|d| d.starts_with(root)) {
        text.push_str(&fs::read_to_string(d.join("README.md")).unwrap_or_default());
    }
    text
}

#[test]
fn every_file_under_tests_data_has_a_recorded_origin() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut all = Vec::new();
    files(&root, &mut all);
    let data: Vec<&PathBuf> = all
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "README.md"))
        .collect();
    assert!(
        data.len() >= 2,
        "no fixtures found under {}",
        root.display()
    );
    let missing: Vec<String> = data
        .iter()
        .filter(|p| {
            let dir = p.parent().expect("a file has a parent");
            let name = p.file_name().expect("a file name").to_string_lossy();
            // The file's own name, as the directory's README writes it (`name` or `| name |`).
            !readmes(&root, dir).contains(&*name)
        })
        .map(|p| p.strip_prefix(&root).unwrap_or(p).display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "tests/data files with no recorded origin (add a line saying how each was made or where it \
         came from to the README.md beside it): {missing:?}"
    );
}
