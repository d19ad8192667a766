//! Module names as the kernel compares them: `-` and `_` are the same character, and a name
//! may be written as a file (`ib_core.ko`, `/lib/modules/ib/ib_core.ko.xz`).

/// Suffixes of module files, longest first so `.ko.xz` wins over `.ko`.
pub const MODULE_SUFFIXES: [&str; 4] = [".ko.xz", ".ko.zst", ".ko.gz", ".ko"];

/// The kernel's spelling of a module name: `-` becomes `_`, directory and `.ko*` suffix dropped.
pub fn normalize(raw: &str) -> String {
    let base = raw.rsplit('/').next().unwrap_or(raw);
    let stem = strip_module_suffix(base).unwrap_or(base);
    stem.replace('-', "_")
}

/// The file name without its module suffix, if it has one.
pub fn strip_module_suffix(file_name: &str) -> Option<&str> {
    MODULE_SUFFIXES
        .iter()
        .find_map(|suffix| file_name.strip_suffix(suffix))
        .filter(|stem| !stem.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_files_paths_and_dashes() {
        assert_eq!(normalize("ib_core"), "ib_core");
        assert_eq!(normalize("ib_addr.ko"), "ib_addr");
        assert_eq!(normalize("/lib/modules/ib/ib_ipoib.ko"), "ib_ipoib");
        assert_eq!(normalize("pci-hyperv-intf.ko.xz"), "pci_hyperv_intf");
        assert_eq!(normalize("x.ko.zst"), "x");
        assert_eq!(normalize("x.ko.gz"), "x");
    }

    #[test]
    fn suffix_needs_a_stem() {
        assert_eq!(strip_module_suffix(".ko"), None);
        assert_eq!(strip_module_suffix("a.txt"), None);
        assert_eq!(strip_module_suffix("a.ko.xz"), Some("a"));
    }
}
