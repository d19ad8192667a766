//! Module trees layered the way the kernel's module search sees them: the first layer that
//! has a name wins (an OFED `updates/` tree over the distribution's `kernel/` tree). A layer
//! with `modules.dep` is indexed from it, as modprobe would; a layer without one (a bare
//! `updates/` tree, a tree never run through depmod) is indexed by walking it for `.ko*`
//! files. Dependencies always come from each module's own `depends=` field, so both kinds of
//! layer plan the same way.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::builtin::{read_optional_bytes, Builtins};
use super::error::KmodError;
use super::modinfo::{read_modinfo, ModInfo, SoftDeps};
use super::name::{normalize, strip_module_suffix};

/// One `--modules` directory.
#[derive(Debug, Clone, Serialize)]
pub struct Layer {
    pub dir: PathBuf,
    /// Whether the layer was indexed from its `modules.dep`.
    pub has_modules_dep: bool,
    pub module_count: usize,
    #[serde(skip)]
    files: HashMap<String, PathBuf>,
    #[serde(skip)]
    softdeps: HashMap<String, SoftDeps>,
}

/// Where a name resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub layer: usize,
    pub path: PathBuf,
}

impl Layer {
    /// Indexes one module directory.
    pub fn open(dir: &Path) -> Result<Layer, KmodError> {
        let meta = std::fs::metadata(dir).map_err(|e| KmodError::io(dir, e))?;
        if !meta.is_dir() {
            return Err(KmodError::ModulesDir {
                path: dir.to_path_buf(),
                what:
                    "not a directory (--modules wants a module tree such as /lib/modules/<release>)"
                        .into(),
            });
        }
        let dep_file = dir.join("modules.dep");
        let (files, has_modules_dep) = match read_optional_bytes(&dep_file)? {
            Some(bytes) => (index_from_modules_dep(dir, &dep_file, &bytes)?, true),
            None => (index_by_walking(dir)?, false),
        };
        if files.is_empty() && !has_modules_dep {
            return Err(KmodError::ModulesDir {
                path: dir.to_path_buf(),
                what: "no modules.dep and no .ko/.ko.xz/.ko.zst/.ko.gz files under it".into(),
            });
        }
        let softdeps = read_softdeps(&dir.join("modules.softdep"))?;
        Ok(Layer {
            dir: dir.to_path_buf(),
            has_modules_dep,
            module_count: files.len(),
            files,
            softdeps,
        })
    }

    pub fn file(&self, name: &str) -> Option<&Path> {
        self.files.get(name).map(PathBuf::as_path)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }
}

/// All layers plus the kernel's built-ins, with a cache of the `.modinfo` read so far.
#[derive(Debug, Default)]
pub struct ModuleTree {
    pub layers: Vec<Layer>,
    pub builtins: Builtins,
    modinfo: HashMap<PathBuf, ModInfo>,
}

impl ModuleTree {
    /// Opens the layers in search order and reads their built-in lists.
    pub fn open(dirs: &[PathBuf]) -> Result<ModuleTree, KmodError> {
        let mut tree = ModuleTree::default();
        for dir in dirs {
            tree.layers.push(Layer::open(dir)?);
            tree.builtins.read_modules_dir(dir)?;
        }
        Ok(tree)
    }

    /// The first layer that has `name`.
    pub fn locate(&self, name: &str) -> Option<Located> {
        self.layers.iter().enumerate().find_map(|(layer, l)| {
            l.file(name).map(|path| Located {
                layer,
                path: path.to_path_buf(),
            })
        })
    }

    /// `.modinfo` of a located module, read once.
    pub fn modinfo(&mut self, located: &Located) -> Result<&ModInfo, KmodError> {
        use std::collections::hash_map::Entry;
        match self.modinfo.entry(located.path.clone()) {
            Entry::Occupied(known) => Ok(known.into_mut()),
            Entry::Vacant(slot) => {
                if !located.path.exists() {
                    let dir = self
                        .layers
                        .get(located.layer)
                        .map(|l| l.dir.clone())
                        .unwrap_or_default();
                    return Err(KmodError::ListedFileMissing {
                        path: located.path.clone(),
                        index: dir.join("modules.dep"),
                    });
                }
                Ok(slot.insert(read_modinfo(&located.path)?))
            }
        }
    }

    /// Soft dependencies from the layers' `modules.softdep`, first layer first.
    pub fn softdeps(&self, name: &str) -> Option<&SoftDeps> {
        self.layers.iter().find_map(|l| l.softdeps.get(name))
    }

    /// Every loadable or built-in name, for suggestions.
    pub fn all_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .layers
            .iter()
            .flat_map(Layer::names)
            .chain(self.builtins.names())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

fn index_from_modules_dep(
    dir: &Path,
    dep_file: &Path,
    bytes: &[u8],
) -> Result<HashMap<String, PathBuf>, KmodError> {
    let text = String::from_utf8_lossy(bytes);
    let mut files = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (module, _deps) = line.split_once(':').ok_or_else(|| KmodError::IndexFile {
            path: dep_file.to_path_buf(),
            line: i + 1,
            what: format!("expected \"path/module.ko: dependencies\", found {line:?}"),
        })?;
        let rel = Path::new(module.trim());
        let file_name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if strip_module_suffix(file_name).is_none() {
            return Err(KmodError::IndexFile {
                path: dep_file.to_path_buf(),
                line: i + 1,
                what: format!("{module:?} is not a .ko file name"),
            });
        }
        // Old depmod wrote absolute paths; `join` keeps those as they are.
        files
            .entry(normalize(file_name))
            .or_insert_with(|| dir.join(rel));
    }
    Ok(files)
}

fn index_by_walking(dir: &Path) -> Result<HashMap<String, PathBuf>, KmodError> {
    let mut found = Vec::new();
    walk(dir, dir, &mut found)?;
    // depmod's default search order puts `updates/` first; otherwise path order decides.
    found.sort_by(|a, b| {
        let rank = |p: &PathBuf| !p.starts_with("updates");
        (rank(a), a).cmp(&(rank(b), b))
    });
    let mut files = HashMap::new();
    for rel in found {
        let name = rel
            .file_name()
            .and_then(|n| n.to_str())
            .map(normalize)
            .unwrap_or_default();
        files.entry(name).or_insert_with(|| dir.join(&rel));
    }
    Ok(files)
}

fn walk(root: &Path, dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), KmodError> {
    let entries = std::fs::read_dir(dir).map_err(|e| KmodError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| KmodError::io(dir, e))?;
        // DirEntry::file_type does not follow symlinks: `build` and `source` links into a
        // kernel source tree are not walked.
        let kind = entry
            .file_type()
            .map_err(|e| KmodError::io(entry.path(), e))?;
        let path = entry.path();
        if kind.is_dir() {
            walk(root, &path, found)?;
        } else if entry
            .file_name()
            .to_str()
            .and_then(strip_module_suffix)
            .is_some()
        {
            // Paths come from reading directories under `root`, so the prefix is always there.
            let rel = path.strip_prefix(root).unwrap_or(&path);
            found.push(rel.to_path_buf());
        }
    }
    Ok(())
}

fn read_softdeps(path: &Path) -> Result<HashMap<String, SoftDeps>, KmodError> {
    let mut map: HashMap<String, SoftDeps> = HashMap::new();
    let Some(bytes) = read_optional_bytes(path)? else {
        return Ok(map);
    };
    for line in String::from_utf8_lossy(&bytes).lines() {
        let mut words = line.splitn(3, char::is_whitespace);
        if words.next() != Some("softdep") {
            continue;
        }
        let (Some(module), Some(rest)) = (words.next(), words.next()) else {
            continue;
        };
        map.entry(normalize(module)).or_default().parse_into(rest);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::super::test_elf::write_tree;
    use super::*;

    #[test]
    fn walking_indexes_compressed_names_and_prefers_updates() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(
            dir.path(),
            &[
                ("kernel/a/foo-bar.ko", &["name=foo_bar"]),
                ("kernel/a/baz.ko", &["name=baz", "vermagic=1"]),
                ("updates/baz.ko", &["name=baz", "vermagic=2"]),
                ("extra/qux.ko", &["name=qux"]),
            ],
        );
        std::fs::write(dir.path().join("kernel/a/notes.txt"), "x").unwrap();
        let layer = Layer::open(dir.path()).unwrap();
        assert!(!layer.has_modules_dep);
        assert_eq!(layer.module_count, 3);
        assert!(layer.file("foo_bar").is_some());
        assert!(layer.file("baz").unwrap().ends_with("updates/baz.ko"));
    }

    #[test]
    fn modules_dep_is_the_index_when_present() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(
            dir.path(),
            &[("kernel/x.ko", &["name=x"]), ("kernel/y.ko", &["name=y"])],
        );
        std::fs::write(dir.path().join("modules.dep"), "kernel/x.ko:\n").unwrap();
        let layer = Layer::open(dir.path()).unwrap();
        assert!(layer.has_modules_dep);
        assert!(layer.file("x").is_some());
        assert!(
            layer.file("y").is_none(),
            "depmod's view, not the directory's"
        );
    }

    #[test]
    fn malformed_modules_dep_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("modules.dep"),
            "kernel/x.ko:\ngarbage line\n",
        )
        .unwrap();
        let err = Layer::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("modules.dep: line 2"), "{err}");
    }

    #[test]
    fn empty_or_missing_dirs_are_input_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = Layer::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no modules.dep and no .ko"), "{err}");
        let err = Layer::open(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope"), "{err}");
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert!(Layer::open(&file)
            .unwrap_err()
            .to_string()
            .contains("not a directory"));
    }

    #[test]
    fn first_layer_wins_and_says_which() {
        let over = tempfile::tempdir().unwrap();
        let base = tempfile::tempdir().unwrap();
        write_tree(over.path(), &[("updates/a.ko", &["name=a"])]);
        write_tree(
            base.path(),
            &[("kernel/a.ko", &["name=a"]), ("kernel/b.ko", &["name=b"])],
        );
        let mut tree =
            ModuleTree::open(&[over.path().to_path_buf(), base.path().to_path_buf()]).unwrap();
        assert_eq!(tree.locate("a").unwrap().layer, 0);
        let b = tree.locate("b").unwrap();
        assert_eq!(b.layer, 1);
        assert_eq!(tree.modinfo(&b).unwrap().name.as_deref(), Some("b"));
        assert!(tree.locate("c").is_none());
        assert_eq!(tree.all_names(), vec!["a", "b"]);
    }

    #[test]
    fn listed_but_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("modules.dep"), "kernel/gone.ko:\n").unwrap();
        let mut tree = ModuleTree::open(&[dir.path().to_path_buf()]).unwrap();
        let at = tree.locate("gone").unwrap();
        let err = tree.modinfo(&at).unwrap_err().to_string();
        assert!(
            err.contains("gone.ko") && err.contains("run depmod"),
            "{err}"
        );
    }

    #[test]
    fn softdeps_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path(), &[("kernel/ext4.ko", &["name=ext4"])]);
        std::fs::write(
            dir.path().join("modules.softdep"),
            "# comment\nsoftdep ext4 pre: crc32c post: foo\n",
        )
        .unwrap();
        let tree = ModuleTree::open(&[dir.path().to_path_buf()]).unwrap();
        let s = tree.softdeps("ext4").unwrap();
        assert_eq!(s.pre, vec!["crc32c"]);
        assert_eq!(s.post, vec!["foo"]);
    }
}
