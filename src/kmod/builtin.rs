//! Modules compiled into the kernel: nothing to load. Known from `modules.builtin`,
//! `modules.builtin.modinfo` (which also lists their parameters), and, for a few modules this
//! tool cares about, from the kernel's config file when it sits beside the kernel image.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::KmodError;
use super::name::normalize;

/// Where the planner learned that a module is built in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "from")]
pub enum BuiltinSource {
    ModulesBuiltin { file: PathBuf },
    BuiltinModinfo { file: PathBuf },
    KernelConfig { file: PathBuf, symbol: String },
}

impl std::fmt::Display for BuiltinSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuiltinSource::ModulesBuiltin { file } | BuiltinSource::BuiltinModinfo { file } => {
                write!(f, "{}", file.display())
            }
            BuiltinSource::KernelConfig { file, symbol } => {
                write!(f, "{symbol}=y in {}", file.display())
            }
        }
    }
}

/// Config symbols of modules a diskless network boot loads, used only when the tree has no
/// `modules.builtin` to say it.
const CONFIG_SYMBOLS: [(&str, &str); 12] = [
    ("ipv6", "CONFIG_IPV6"),
    ("ib_core", "CONFIG_INFINIBAND"),
    ("ib_uverbs", "CONFIG_INFINIBAND_USER_ACCESS"),
    ("ib_umad", "CONFIG_INFINIBAND_USER_MAD"),
    ("ib_ipoib", "CONFIG_INFINIBAND_IPOIB"),
    ("mlx4_core", "CONFIG_MLX4_CORE"),
    ("mlx4_en", "CONFIG_MLX4_EN"),
    ("mlx4_ib", "CONFIG_MLX4_INFINIBAND"),
    ("mlx5_core", "CONFIG_MLX5_CORE"),
    ("mlx5_ib", "CONFIG_MLX5_INFINIBAND"),
    ("configfs", "CONFIG_CONFIGFS_FS"),
    ("psample", "CONFIG_PSAMPLE"),
];

/// The built-in modules of one kernel.
#[derive(Debug, Clone, Default)]
pub struct Builtins {
    sources: BTreeMap<String, BuiltinSource>,
    parms: HashMap<String, BTreeSet<String>>,
}

impl Builtins {
    pub fn source(&self, name: &str) -> Option<&BuiltinSource> {
        self.sources.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sources.keys().map(String::as_str)
    }

    /// Parameter names a built-in module declares (`modules.builtin.modinfo`).
    pub fn parms(&self, name: &str) -> Option<&BTreeSet<String>> {
        self.parms.get(name)
    }

    /// Adds what a module directory says (`modules.builtin`, `modules.builtin.modinfo`).
    pub fn read_modules_dir(&mut self, dir: &Path) -> Result<(), KmodError> {
        let listed = dir.join("modules.builtin");
        if let Some(text) = read_optional(&listed)? {
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                self.sources.entry(normalize(line)).or_insert_with(|| {
                    BuiltinSource::ModulesBuiltin {
                        file: listed.clone(),
                    }
                });
            }
        }
        let modinfo = dir.join("modules.builtin.modinfo");
        if let Some(bytes) = read_optional_bytes(&modinfo)? {
            for entry in bytes.split(|&b| b == 0).filter(|e| !e.is_empty()) {
                let entry = String::from_utf8_lossy(entry);
                let Some((module, rest)) = entry.split_once('.') else {
                    continue;
                };
                let module = normalize(module);
                if let Some(parm) = rest
                    .strip_prefix("parm=")
                    .or_else(|| rest.strip_prefix("parmtype="))
                {
                    let name = parm.split(':').next().unwrap_or(parm);
                    self.parms
                        .entry(module.clone())
                        .or_default()
                        .insert(name.to_string());
                }
                self.sources
                    .entry(module)
                    .or_insert_with(|| BuiltinSource::BuiltinModinfo {
                        file: modinfo.clone(),
                    });
            }
        }
        Ok(())
    }

    /// Adds what the kernel's config file says, for the modules of `CONFIG_SYMBOLS`.
    pub fn read_kernel_config(&mut self, config: &Path) -> Result<(), KmodError> {
        let Some(text) = read_optional(config)? else {
            return Ok(());
        };
        let built_in: BTreeSet<&str> = text.lines().filter_map(|l| l.strip_suffix("=y")).collect();
        for (module, symbol) in CONFIG_SYMBOLS {
            if built_in.contains(symbol) {
                self.sources.entry(module.to_string()).or_insert_with(|| {
                    BuiltinSource::KernelConfig {
                        file: config.to_path_buf(),
                        symbol: symbol.to_string(),
                    }
                });
            }
        }
        Ok(())
    }
}

/// The kernel's config file beside `kernel`: `config-<release>` (as in /boot) or `config`.
pub fn config_beside(kernel: &Path, release: &str) -> Option<PathBuf> {
    let dir = kernel.parent()?;
    [format!("config-{release}"), "config".to_string()]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
}

fn read_optional(path: &Path) -> Result<Option<String>, KmodError> {
    Ok(read_optional_bytes(path)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
}

pub(crate) fn read_optional_bytes(path: &Path) -> Result<Option<Vec<u8>>, KmodError> {
    match crate::host::input::read_regular(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(KmodError::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_builtin_lists_and_params() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("modules.builtin"),
            "kernel/net/ipv6/ipv6.ko\nkernel/fs/ext4/ext4.ko\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("modules.builtin.modinfo"),
            b"ipv6.parm=disable:Disable IPv6\0ipv6.parmtype=disable:int\0unix.license=GPL\0",
        )
        .unwrap();
        let mut b = Builtins::default();
        b.read_modules_dir(dir.path()).unwrap();
        assert!(matches!(
            b.source("ipv6"),
            Some(BuiltinSource::ModulesBuiltin { .. })
        ));
        assert!(matches!(
            b.source("unix"),
            Some(BuiltinSource::BuiltinModinfo { .. })
        ));
        assert!(b.parms("ipv6").unwrap().contains("disable"));
        assert!(b.source("ib_core").is_none());
    }

    #[test]
    fn config_fills_in_when_no_list_exists() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config-9.9.9");
        std::fs::write(
            &cfg,
            "CONFIG_IPV6=y\nCONFIG_INFINIBAND=m\n# CONFIG_MLX4_EN is not set\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("vmlinuz-9.9.9"), b"").unwrap();
        let found = config_beside(&dir.path().join("vmlinuz-9.9.9"), "9.9.9").unwrap();
        assert_eq!(found, cfg);
        let mut b = Builtins::default();
        b.read_kernel_config(&found).unwrap();
        assert!(
            matches!(b.source("ipv6"), Some(BuiltinSource::KernelConfig { symbol, .. }) if symbol == "CONFIG_IPV6")
        );
        assert!(b.source("ib_core").is_none());
        assert!(b.source("mlx4_en").is_none());
    }

    #[test]
    fn absent_files_are_not_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Builtins::default();
        b.read_modules_dir(dir.path()).unwrap();
        b.read_kernel_config(&dir.path().join("config")).unwrap();
        assert_eq!(b.names().count(), 0);
    }
}
