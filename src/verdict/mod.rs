//! Judging a boot from its evidence. The kernel's own state (`/proc/modules`, the interface's
//! address) is trusted over the stanza's echo: a module counts as loaded only if the kernel lists
//! it, and the order is read from `/proc/modules` (newest first), so a module that udev or
//! dracut loaded before the stanza is judged by when it really loaded.
pub mod cause;
pub mod phases;

use serde::Serialize;

use crate::console::protocol::MARK;
use crate::console::{Evidence, InsmodResult};

/// A module the plan loads, in plan order, with its direct dependencies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpectedModule {
    pub name: String,
    pub depends: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Expectation {
    pub modules: Vec<ExpectedModule>,
    /// The interface that must have an IPv4 address.
    pub interface: Option<String>,
}

/// One thing that went wrong, typed so reports can classify it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "finding")]
pub enum Finding {
    /// No `BOOTRIG begin`: the stanza never ran (wrong insertion point, init failed earlier).
    StanzaNotRun,
    /// No `BOOTRIG done`: the stanza started but did not finish (hang, panic, timeout).
    StanzaNotFinished,
    /// No `/proc/modules` block in the transcript.
    NoModuleList,
    /// insmod returned non-zero.
    InsmodFailed { module: String, rc: i32 },
    /// The kernel does not list the module.
    NotLoaded { module: String },
    /// Loaded by the stanza, but not in plan order.
    OutOfOrder {
        module: String,
        expected_after: String,
    },
    /// A module was loaded before one of its dependencies.
    DependencyLoadedLater { module: String, dependency: String },
    /// The interface has no IPv4 address.
    NoAddress { interface: String },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::StanzaNotRun => write!(
                f,
                "the init stanza never ran (no \"{MARK}begin\" on the console)"
            ),
            Finding::StanzaNotFinished => {
                write!(f, "the init stanza did not finish (no \"{MARK}done\")")
            }
            Finding::NoModuleList => write!(f, "no /proc/modules listing on the console"),
            Finding::InsmodFailed { module, rc } => {
                write!(f, "insmod {module} failed with rc={rc}")
            }
            Finding::NotLoaded { module } => write!(f, "{module} is not in /proc/modules"),
            Finding::OutOfOrder {
                module,
                expected_after,
            } => {
                write!(
                    f,
                    "{module} loaded before {expected_after}, but the plan loads it after"
                )
            }
            Finding::DependencyLoadedLater { module, dependency } => {
                write!(f, "{module} loaded before its dependency {dependency}")
            }
            Finding::NoAddress { interface } => write!(f, "{interface} has no IPv4 address"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub pass: bool,
    pub findings: Vec<Finding>,
}

fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

/// Judges the evidence against what the plan expects.
pub fn judge(ev: &Evidence, exp: &Expectation) -> Verdict {
    let mut findings = Vec::new();
    if !ev.begun {
        findings.push(Finding::StanzaNotRun);
    } else if !ev.done {
        findings.push(Finding::StanzaNotFinished);
    }
    for i in &ev.insmods {
        if let InsmodResult::Ran { rc } = i.result {
            if rc != 0 {
                findings.push(Finding::InsmodFailed {
                    module: i.name.clone(),
                    rc,
                });
            }
        }
    }
    match ev.load_sequence() {
        None if ev.begun => findings.push(Finding::NoModuleList),
        None => {}
        Some(seq) => {
            let seq: Vec<String> = seq.iter().map(|s| canonical(s)).collect();
            let pos = |name: &str| seq.iter().position(|s| *s == canonical(name));
            let by_stanza = |name: &str| {
                ev.insmods.iter().any(|i| {
                    canonical(&i.name) == canonical(name) && i.result == InsmodResult::Ran { rc: 0 }
                })
            };
            let mut last: Option<(&str, usize)> = None;
            for m in &exp.modules {
                let Some(p) = pos(&m.name) else {
                    findings.push(Finding::NotLoaded {
                        module: m.name.clone(),
                    });
                    continue;
                };
                for dep in &m.depends {
                    if let Some(dp) = pos(dep) {
                        if dp > p {
                            findings.push(Finding::DependencyLoadedLater {
                                module: m.name.clone(),
                                dependency: dep.clone(),
                            });
                        }
                    }
                }
                if by_stanza(&m.name) {
                    if let Some((prev, pp)) = last {
                        if pp > p {
                            findings.push(Finding::OutOfOrder {
                                module: m.name.clone(),
                                expected_after: prev.to_string(),
                            });
                        }
                    }
                    last = Some((&m.name, p));
                }
            }
        }
    }
    if let Some(iface) = &exp.interface {
        if ev.address(iface).is_none() {
            findings.push(Finding::NoAddress {
                interface: iface.clone(),
            });
        }
    }
    Verdict {
        pass: findings.is_empty(),
        findings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::parse;

    fn exp(mods: &[(&str, &[&str])]) -> Expectation {
        Expectation {
            modules: mods
                .iter()
                .map(|(n, d)| ExpectedModule {
                    name: n.to_string(),
                    depends: d.iter().map(|s| s.to_string()).collect(),
                })
                .collect(),
            interface: Some("eth0".into()),
        }
    }

    fn transcript(insmods: &[&str], proc_newest_first: &[&str], addr: &str) -> String {
        let mut t = String::from("BOOTRIG begin\n");
        for i in insmods {
            t.push_str(&format!("BOOTRIG insmod {i}\n"));
        }
        t.push_str("BOOTRIG modules-begin\n");
        for m in proc_newest_first {
            t.push_str(&format!("{m} 16384 0 - Live 0x0\n"));
        }
        t.push_str(&format!(
            "BOOTRIG modules-end\nBOOTRIG addr eth0 {addr}\nBOOTRIG done\n"
        ));
        t
    }

    #[test]
    fn plan_order_from_proc_modules_passes() {
        let t = transcript(
            &["ib_core rc=0", "ib_cm rc=0"],
            &["ib_cm", "ib_core"],
            "10.0.2.15/24",
        );
        let v = judge(
            &parse(&t),
            &exp(&[("ib_core", &[]), ("ib_cm", &["ib_core"])]),
        );
        assert!(v.pass, "{:?}", v.findings);
    }

    #[test]
    fn kernel_order_beats_the_echo() {
        // The stanza claims success in plan order, but the kernel loaded ib_cm first.
        let t = transcript(
            &["ib_core rc=0", "ib_cm rc=0"],
            &["ib_core", "ib_cm"],
            "10.0.2.15/24",
        );
        let v = judge(
            &parse(&t),
            &exp(&[("ib_core", &[]), ("ib_cm", &["ib_core"])]),
        );
        assert!(v.findings.contains(&Finding::OutOfOrder {
            module: "ib_cm".into(),
            expected_after: "ib_core".into()
        }));
        assert!(v.findings.contains(&Finding::DependencyLoadedLater {
            module: "ib_cm".into(),
            dependency: "ib_core".into()
        }));
    }

    #[test]
    fn already_loaded_modules_are_judged_by_when_they_loaded() {
        // virtio_net was loaded by udev before the stanza: not an order violation of the stanza.
        let t = transcript(
            &["failover rc=0", "virtio_net already-loaded"],
            &["failover", "virtio_net"],
            "10.0.2.15/24",
        );
        let v = judge(&parse(&t), &exp(&[("failover", &[]), ("virtio_net", &[])]));
        assert!(v.pass, "{:?}", v.findings);
    }

    #[test]
    fn failures_are_classified() {
        let t = transcript(&["ib_core rc=1"], &[], "none");
        let v = judge(&parse(&t), &exp(&[("ib_core", &[])]));
        assert!(!v.pass);
        assert!(v.findings.contains(&Finding::InsmodFailed {
            module: "ib_core".into(),
            rc: 1
        }));
        assert!(v.findings.contains(&Finding::NotLoaded {
            module: "ib_core".into()
        }));
        assert!(v.findings.contains(&Finding::NoAddress {
            interface: "eth0".into()
        }));
        assert_eq!(
            judge(&parse(""), &exp(&[])).findings[0],
            Finding::StanzaNotRun
        );
    }
}
