//! Dependencies no metadata declares: neither `modules.dep` (`depends=`) nor modinfo's
//! softdeps name them, yet the module fails without them (typically a crypto algorithm it asks
//! the crypto API for by name, which only a modprobe with the full module tree would load on
//! demand). Each entry names where the fact comes from; the planner resolves them with
//! `order = "resolve"` and warns about them otherwise.

use serde::Serialize;

/// One curated fact: `module` needs one of `providers` loaded first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HiddenDep {
    pub module: &'static str,
    /// Modules that satisfy it, the one to load first (works on any CPU) first.
    pub providers: &'static [&'static str],
    /// What fails without it, as the kernel says it.
    pub symptom: &'static str,
    /// Commit, kernel file or measurement that shows it.
    pub source: &'static str,
}

/// The curated table. Keep entries sourced.
pub const HIDDEN: &[HiddenDep] = &[HiddenDep {
    module: "rdma_rxe",
    // crc32_pclmul needs PCLMULQDQ, which TCG's default CPU lacks: crc32_generic first.
    providers: &["crc32_generic", "crc32_pclmul"],
    symptom: "`rdma link add` fails with \"rdma_rxe: failed to init crc32 algorithm err:-2\"",
    source: "drivers/infiniband/sw/rxe/rxe.c (v5.x-6.1): rxe_init_device allocates the \
crypto shash \"crc32\" (crypto_alloc_shash), which is a module on Debian (CONFIG_CRYPTO_CRC32=m) \
and in no depends= or softdep of rdma_rxe; measured on Debian 6.1.0, TCG",
}];

/// The entry for `module` (names compare with `-` and `_` alike).
pub fn lookup(module: &str) -> Option<&'static HiddenDep> {
    let module = module.replace('-', "_");
    HIDDEN.iter().find(|h| h.module == module)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdma_rxe_needs_a_crc32_provider_generic_first() {
        let h = lookup("rdma-rxe").unwrap();
        assert_eq!(h.providers[0], "crc32_generic");
        assert!(h.symptom.contains("failed to init crc32"));
        assert!(lookup("ib_core").is_none());
    }
}
