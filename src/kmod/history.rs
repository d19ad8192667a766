//! Module names that old guides (such as the FlexBoot diskless manual) list but today's
//! kernels do not have: merged, removed, replaced, or never in the upstream kernel at all.
//! Each entry names the kernel version of the change and where that fact comes from.

use serde::Serialize;

/// What happened to a module name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Its code became part of another module.
    MergedInto,
    /// Deleted with no successor.
    Removed,
    /// Deleted, and another module drives the same hardware.
    ReplacedBy,
    /// Only ever shipped out of tree (MLNX_OFED, OFED).
    NeverUpstream,
}

/// One curated fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub name: &'static str,
    pub change: Change,
    /// The successor module, for `MergedInto` and `ReplacedBy`.
    pub successor: Option<&'static str>,
    /// The kernel version of the change, as precisely as the sources pin it.
    pub kernel: &'static str,
    /// Commit or kernel file that shows it.
    pub source: &'static str,
    /// What to do instead.
    pub advice: &'static str,
}

impl HistoryEntry {
    /// "merged into `ib_core` after v4.5 (…)" — the change in words.
    pub fn describe(&self) -> String {
        let successor = self.successor.unwrap_or("?");
        match self.change {
            Change::MergedInto => format!("merged into `{successor}` {}", self.kernel),
            Change::Removed => format!("removed from the kernel {}", self.kernel),
            Change::ReplacedBy => format!("replaced by `{successor}` {}", self.kernel),
            Change::NeverUpstream => format!("never in the upstream kernel ({})", self.kernel),
        }
    }
}

const CORE_MERGE_SOURCE: &str = "drivers/infiniband/core/Makefile: v4.5 still builds ib_addr.o, \
ib_mad.o and ib_sa.o as modules; by v4.9-rc2 addr.o, mad.o and sa_query.o are linked into \
ib_core-y (tangled.org/tjh.dev/kernel blob v4.5 and v4.9-rc2)";

/// The curated table. Keep entries sourced; an unsourced "fact" does not belong here.
pub const HISTORY: &[HistoryEntry] = &[
    HistoryEntry {
        name: "ib_addr",
        change: Change::MergedInto,
        successor: Some("ib_core"),
        kernel: "after v4.5 (part of ib_core by v4.9)",
        source: CORE_MERGE_SOURCE,
        advice: "load ib_core instead",
    },
    HistoryEntry {
        name: "ib_mad",
        change: Change::MergedInto,
        successor: Some("ib_core"),
        kernel: "after v4.5 (part of ib_core by v4.9)",
        source: CORE_MERGE_SOURCE,
        advice: "load ib_core instead",
    },
    HistoryEntry {
        name: "ib_sa",
        change: Change::MergedInto,
        successor: Some("ib_core"),
        kernel: "after v4.5 (part of ib_core by v4.9)",
        source: CORE_MERGE_SOURCE,
        advice: "load ib_core instead",
    },
    HistoryEntry {
        name: "ib_ucm",
        change: Change::Removed,
        successor: None,
        kernel: "in v5.3 (unbuildable since v4.18)",
        source: "commit 7a8690ed6f53 \"RDMA/ucm: Mark UCM interface as BROKEN\" (v4.18); \
\"rdma: Delete the ib_ucm module\" (Jason Gunthorpe, 2019-06-10, merged for v5.3)",
        advice: "drop it: user-space connection management is rdma_ucm (librdmacm); IPoIB does not need it",
    },
    HistoryEntry {
        name: "ipoib_helper",
        change: Change::NeverUpstream,
        successor: None,
        kernel: "MLNX_OFED only",
        source: "no kernel.org drivers/infiniband/ulp/ipoib/Makefile builds it (only ib_ipoib.o); \
the FlexBoot manual itself says it is \"not required for all OS kernels\"",
        advice: "drop it: ib_ipoib alone provides IPoIB on upstream kernels",
    },
    HistoryEntry {
        name: "ib_sdp",
        change: Change::NeverUpstream,
        successor: None,
        kernel: "OFED 1.x only",
        source: "OFED's drivers/infiniband/Makefile adds ulp/sdp/ under CONFIG_INFINIBAND_SDP; \
no kernel.org release has drivers/infiniband/ulp/sdp",
        advice: "drop it: Sockets Direct Protocol has no upstream equivalent; use IPoIB or rsockets",
    },
    HistoryEntry {
        name: "iw_nes",
        change: Change::Removed,
        successor: None,
        kernel: "in v5.3",
        source: "\"rdma: Remove nes\" (Jason Gunthorpe, 2019-06-13, merged for v5.3)",
        advice: "drop it: NetEffect iWARP adapters have no driver in current kernels",
    },
    HistoryEntry {
        name: "iw_cxgb3",
        change: Change::Removed,
        successor: None,
        kernel: "in v5.5",
        source: "\"RDMA/iw_cxgb3: Remove the iw_cxgb3 module from kernel\" (Potnuri Bharat Teja, \
2019-10-04, merged for v5.5)",
        advice: "drop it: Chelsio T3 iWARP is gone; T4 and later use iw_cxgb4",
    },
    HistoryEntry {
        name: "i40iw",
        change: Change::ReplacedBy,
        successor: Some("irdma"),
        kernel: "in v5.14",
        source: "\"RDMA/irdma: Add irdma Kconfig/Makefile and remove i40iw\" (Shiraz Saleem, \
2021-06-02, merged for v5.14)",
        advice: "load irdma instead",
    },
    HistoryEntry {
        name: "mlx_compat",
        change: Change::NeverUpstream,
        successor: None,
        kernel: "MLNX_OFED only",
        source: "MLNX_OFED's backport layer (top-level Makefile: obj-y := compat/); upstream \
modules never depend on it",
        advice: "drop it unless the plan uses MLNX_OFED-built modules, which name it in depends=",
    },
];

/// The entry for `name` (already normalized), if it is a historical name.
pub fn lookup(name: &str) -> Option<&'static HistoryEntry> {
    HISTORY.iter().find(|e| e.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_sourced_and_consistent() {
        for e in HISTORY {
            assert!(!e.source.is_empty() && !e.kernel.is_empty(), "{}", e.name);
            let needs_successor = matches!(e.change, Change::MergedInto | Change::ReplacedBy);
            assert_eq!(e.successor.is_some(), needs_successor, "{}", e.name);
            assert_eq!(lookup(e.name), Some(e), "duplicate entry {}", e.name);
        }
    }

    #[test]
    fn the_manuals_names_are_covered() {
        for name in ["ib_addr", "ib_mad", "ib_sa"] {
            assert_eq!(lookup(name).unwrap().successor, Some("ib_core"));
        }
        assert_eq!(lookup("ib_ucm").unwrap().change, Change::Removed);
        assert_eq!(
            lookup("ipoib_helper").unwrap().change,
            Change::NeverUpstream
        );
        assert!(lookup("ib_core").is_none());
        assert!(lookup("ib_addr")
            .unwrap()
            .describe()
            .contains("merged into `ib_core`"));
    }
}
