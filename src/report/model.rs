//! The report's data. Causes, phases and findings keep their types until a renderer (JSON,
//! JUnit, the table) writes them, by the names result.json has always used; `report merge`
//! reads a report back without the rest of bootrig (a finding read back is its text).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::names::Named;
use crate::scenario::RdmaCheck;
use crate::verdict::cause::CauseKind;
use crate::verdict::phases::Phase;

/// Version of the JSON layout; bumped whenever a reader of the old layout would misread the new.
pub const SCHEMA: u32 = 1;

/// One `bootrig run` (or one shard of it, or several merged).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub schema: u32,
    pub bootrig_version: String,
    /// RFC 3339, UTC (`2024-05-01T12:00:00Z`); see [`super::time::rfc3339_utc`].
    pub started: String,
    pub host: String,
    pub shard: Option<Shard>,
    pub scenarios: Vec<ScenarioReport>,
    #[serde(serialize_with = "finite")]
    pub duration_seconds: f64,
}

/// Shard K of N (1-based); parsing and selection live in [`super::shard`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub total: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioReport {
    /// Stable: the scenario file's path relative to the suite root.
    pub id: String,
    pub name: String,
    pub file: String,
    pub outcome: Outcome,
    /// Why it was skipped, or the input error that stopped it.
    pub reason: Option<String>,
    pub cause: Option<CauseReport>,
    /// The failure the scenario expects; when it is exactly what happened, the outcome is Pass.
    pub expected_failure: Option<CauseKind>,
    pub findings: Vec<Finding>,
    pub phases: Vec<PhaseTiming>,
    #[serde(serialize_with = "finite")]
    pub duration_seconds: f64,
    pub boot: BootSummary,
    /// The last lines of the console, or the lines around the cause.
    pub console_excerpt: String,
    pub artifacts: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
    /// The scenario could not be run as written (bad input, missing tool): not a verdict on the boot.
    Error,
}

impl Outcome {
    /// The display label the table, progress and JUnit's text show (`PASS`); result.json writes
    /// the serde name (`pass`).
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
            Outcome::Error => "ERROR",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CauseReport {
    /// Written as its kebab-case id: `unknown-symbol`, `initrd-not-loaded`, `timeout`, …
    pub kind: CauseKind,
    pub summary: String,
    pub phase: Option<Phase>,
    /// The console lines that prove it.
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseTiming {
    pub name: Phase,
    /// When the phase began, seconds from the guest's start.
    #[serde(serialize_with = "finite")]
    pub at_seconds: f64,
    #[serde(serialize_with = "finite")]
    pub seconds: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootSummary {
    pub method: String,
    pub firmware: String,
    /// The guest's network device: the emulated NIC's QEMU name, or for a lab run the passed
    /// function ([`BootSummary::passed_nic`]; no emulated NIC), or `none`.
    pub nic: String,
    pub fetch: String,
    pub accel: String,
    /// The lab adapter was a stand-in (`vendor:device` of a non-ConnectX function, e.g. the
    /// nested lab's e1000e): the run proves the lab path, not a ConnectX.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stand_in: Option<String>,
}

impl BootSummary {
    /// `nic` for a run whose guest has only the lab adapter, passed through with VFIO.
    /// One word, as the other fields are (JUnit's `boot:` line is `key=value` words):
    /// `vfio-pci:hca0@0000:81:00.0`, a VF as `…#vf2`.
    pub fn passed_nic(adapter: &str, bdf: &str, vf: Option<u32>) -> String {
        match vf {
            Some(vf) => format!("{PASSED_NIC}:{adapter}@{bdf}#vf{vf}"),
            None => format!("{PASSED_NIC}:{adapter}@{bdf}"),
        }
    }

    /// The guest's NIC was a passed-through function.
    pub fn nic_is_passed(&self) -> bool {
        self.nic
            .strip_prefix(PASSED_NIC)
            .is_some_and(|rest| rest.starts_with(':'))
    }
}

/// How `nic` starts for a passed-through function: the driver that holds it for the guest.
const PASSED_NIC: &str = "vfio-pci";

/// One thing the boot's checks or the run found wrong, typed until a renderer writes it as its
/// sentence (result.json holds the sentences).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A check of the plan's modules or the stanza.
    Modules(crate::verdict::Finding),
    /// The interface's address is not within `[expect] address`.
    AddressOutside {
        interface: String,
        address: String,
        subnet: String,
    },
    AddressNotIpv4 {
        interface: String,
        address: String,
    },
    /// `[expect] rdma active`: no port of the device is ACTIVE.
    RdmaPortNotActive {
        device: String,
        port: u32,
        state: String,
    },
    RdmaNoPort,
    RdmaTestSkipped {
        check: RdmaCheck,
        why: String,
    },
    RdmaTestTimedOut {
        check: RdmaCheck,
        tool: String,
        seconds: u32,
    },
    RdmaTestFailed {
        check: RdmaCheck,
        tool: Option<String>,
        rc: Option<i32>,
    },
    RdmaTestMissing {
        check: RdmaCheck,
    },
    /// `[expect] console`: no line matches.
    ConsoleMissing {
        pattern: String,
    },
    /// `[expect] not_console`: this line matches.
    ConsoleForbidden {
        pattern: String,
        line: String,
    },
    /// A pattern that is not a valid regex (`what`: `console` or `shell`).
    BadPattern {
        what: &'static str,
        pattern: String,
        error: String,
    },
    ShellStatus {
        command: String,
        status: i32,
        expected: i32,
    },
    ShellOutput {
        command: String,
        pattern: String,
    },
    ShellNoAnswer {
        command: String,
    },
    /// The boot ended at a fatal console line no cause explains.
    StoppedAt {
        line: String,
    },
    /// `[expect] lease`: its client_id (as written) is no client-identifier.
    LeaseClientIdInvalid {
        client_id: String,
        error: String,
    },
    /// `[expect] lease`: the DHCP server's lease file could not be read.
    LeasesUnreadable {
        error: String,
    },
    /// `[expect] lease`: the server leased another address to the client.
    LeaseOther {
        client_id: String,
        got: std::net::Ipv4Addr,
        want: String,
    },
    /// `[expect] lease`: the server leased nothing to the client; `leases` is all it leased.
    LeaseNone {
        client_id: String,
        leases: Vec<crate::net::lease::Lease>,
    },
    /// Removing the network segment or the bridge tap failed.
    NetworkTeardown {
        error: String,
    },
    /// Putting the lab adapter's drivers back failed.
    AdapterRestore {
        error: String,
        /// The command that puts them back from the record.
        restore: String,
    },
    /// The `restart-mid-boot` DHCP fault could not restart the server.
    RestartFault {
        error: String,
    },
    /// A finding read back from a report file: only its text survives.
    Recorded(String),
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Modules(m) => write!(f, "{m}"),
            Finding::AddressOutside {
                interface,
                address,
                subnet,
            } => write!(f, "{interface} has {address}, not within {subnet}"),
            Finding::AddressNotIpv4 { interface, address } => {
                write!(f, "{interface} reported {address:?}, not an IPv4 address")
            }
            Finding::RdmaPortNotActive {
                device,
                port,
                state,
            } => write!(f, "rdma: {device} port {port} is {state}, not ACTIVE"),
            Finding::RdmaNoPort => write!(f, "rdma: the guest reported no RDMA device port"),
            Finding::RdmaTestSkipped { check, why } => {
                let check = check.as_str();
                write!(f, "rdma: the {check} test was skipped ({why})")
            }
            Finding::RdmaTestTimedOut {
                check,
                tool,
                seconds,
            } => write!(
                f,
                "rdma: the {} test timed out ({tool} killed after {seconds} s)",
                check.as_str()
            ),
            Finding::RdmaTestFailed { check, tool, rc } => write!(
                f,
                "rdma: the {} test failed ({} exited {})",
                check.as_str(),
                tool.as_deref().unwrap_or("?"),
                rc.map_or("?".into(), |r| r.to_string())
            ),
            Finding::RdmaTestMissing { check } => {
                write!(f, "rdma: the guest ran no {} test", check.as_str())
            }
            Finding::ConsoleMissing { pattern } => {
                write!(f, "no console line matches {pattern:?}")
            }
            Finding::ConsoleForbidden { pattern, line } => write!(
                f,
                "console line matches {pattern:?}, which must not appear: {line:?}"
            ),
            Finding::BadPattern {
                what,
                pattern,
                error,
            } => write!(f, "{what} pattern {pattern:?}: {error}"),
            Finding::ShellStatus {
                command,
                status,
                expected,
            } => write!(f, "shell: `{command}` exited {status}, expected {expected}"),
            Finding::ShellOutput { command, pattern } => {
                write!(f, "shell: output of `{command}` does not match {pattern:?}")
            }
            Finding::ShellNoAnswer { command } => write!(f, "shell: `{command}` got no answer"),
            Finding::StoppedAt { line } => write!(f, "the boot stopped at {line:?}"),
            Finding::LeaseClientIdInvalid { client_id, error } => {
                write!(f, "[expect] lease client_id {client_id:?}: {error}")
            }
            Finding::LeasesUnreadable { error } => {
                write!(f, "reading the DHCP server's leases: {error}")
            }
            Finding::LeaseOther {
                client_id,
                got,
                want,
            } => write!(
                f,
                "the DHCP server leased {got} to client-identifier {client_id}, not {want}"
            ),
            Finding::LeaseNone { client_id, leases } => {
                write!(
                    f,
                    "the DHCP server leased nothing to client-identifier {client_id} (leases: "
                )?;
                for (i, l) in leases.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    match &l.client_id {
                        Some(id) => write!(f, "{sep}{} {id}", l.ip)?,
                        None => write!(f, "{sep}{} -", l.ip)?,
                    }
                }
                f.write_str(")")
            }
            Finding::NetworkTeardown { error } => write!(f, "network teardown: {error}"),
            Finding::AdapterRestore { error, restore } => {
                write!(
                    f,
                    "putting the adapter's drivers back: {error} (run {restore})"
                )
            }
            Finding::RestartFault { error } => {
                write!(f, "the restart-mid-boot fault failed: {error}")
            }
            Finding::Recorded(text) => f.write_str(text),
        }
    }
}

impl Serialize for Finding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Finding {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Finding::Recorded)
    }
}

/// Counts over a report's scenarios; always recomputed, never trusted from a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Totals {
    pub tests: usize,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub errors: usize,
    #[serde(serialize_with = "finite")]
    pub duration_seconds: f64,
}

impl RunReport {
    pub fn totals(&self) -> Totals {
        let mut t = Totals {
            tests: self.scenarios.len(),
            duration_seconds: self.duration_seconds,
            ..Totals::default()
        };
        for s in &self.scenarios {
            match s.outcome {
                Outcome::Pass => t.passed += 1,
                Outcome::Fail => t.failed += 1,
                Outcome::Skip => t.skipped += 1,
                Outcome::Error => t.errors += 1,
            }
        }
        t
    }
}

impl Totals {
    /// No failures and no errors (skips do not fail a run).
    pub fn all_passed(&self) -> bool {
        self.failed == 0 && self.errors == 0
    }

    /// `N passed, M failed, K skipped, E errors in T s`
    pub fn summary_line(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped, {} errors in {:.1} s",
            self.passed, self.failed, self.skipped, self.errors, self.duration_seconds
        )
    }
}

/// JSON has no NaN or infinity (serde_json would write `null`, which then fails to read back as
/// a number): a clock glitch is written as 0.
fn finite<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(if v.is_finite() { *v } else { 0.0 })
}

#[cfg(test)]
pub(crate) mod sample {
    //! Reports for tests across the report modules.
    use super::*;

    pub fn scenario(id: &str, outcome: Outcome) -> ScenarioReport {
        let failed = matches!(outcome, Outcome::Fail);
        ScenarioReport {
            id: id.to_owned(),
            name: format!("scenario {id}"),
            file: format!("scenarios/{id}"),
            outcome,
            reason: match outcome {
                Outcome::Skip => Some("needs KVM".into()),
                Outcome::Error => Some("scenario.toml: unknown key `bogus`".into()),
                _ => None,
            },
            cause: failed.then(|| CauseReport {
                kind: CauseKind::UnknownSymbol,
                summary: "mlx4_ib: Unknown symbol ib_register_device".into(),
                phase: Some(Phase::Modules),
                evidence: vec![
                    "[    3.1] mlx4_ib: Unknown symbol ib_register_device (err -2)".into(),
                ],
            }),
            expected_failure: None,
            findings: Vec::new(),
            phases: vec![
                PhaseTiming {
                    name: Phase::Firmware,
                    at_seconds: 0.0,
                    seconds: 1.5,
                },
                PhaseTiming {
                    name: Phase::Kernel,
                    at_seconds: 1.5,
                    seconds: 2.25,
                },
            ],
            duration_seconds: 12.5,
            boot: BootSummary {
                method: "pxe".into(),
                firmware: "uefi".into(),
                nic: "mlx4".into(),
                fetch: "tftp".into(),
                accel: "tcg".into(),
                stand_in: None,
            },
            console_excerpt: "Linux version 6.1.0\nBOOTRIG done\n".into(),
            artifacts: Some(PathBuf::from("runs/1/x")),
        }
    }

    pub fn run(scenarios: Vec<ScenarioReport>) -> RunReport {
        RunReport {
            schema: SCHEMA,
            bootrig_version: "0.1.0".into(),
            started: "2024-05-01T12:00:00Z".into(),
            host: "ci-1".into(),
            shard: None,
            scenarios,
            duration_seconds: 42.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sample::*;
    use super::*;

    #[test]
    fn totals_count_each_outcome() {
        let r = run(vec![
            scenario("a.toml", Outcome::Pass),
            scenario("b.toml", Outcome::Fail),
            scenario("c.toml", Outcome::Skip),
            scenario("d.toml", Outcome::Error),
            scenario("e.toml", Outcome::Pass),
        ]);
        let t = r.totals();
        assert_eq!(
            (t.tests, t.passed, t.failed, t.skipped, t.errors),
            (5, 2, 1, 1, 1)
        );
        assert!(!t.all_passed());
        assert_eq!(
            t.summary_line(),
            "2 passed, 1 failed, 1 skipped, 1 errors in 42.0 s"
        );
    }

    #[test]
    fn non_finite_times_serialise_as_zero() {
        let mut r = run(vec![scenario("a.toml", Outcome::Pass)]);
        r.duration_seconds = f64::NAN;
        r.scenarios[0].phases[0].seconds = f64::INFINITY;
        let back: RunReport = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back.duration_seconds, 0.0);
        assert_eq!(back.scenarios[0].phases[0].seconds, 0.0);
    }

    /// result.json keeps its layout: ids, phase names and findings as the sentences they were.
    #[test]
    fn typed_fields_serialise_as_before_and_read_back() {
        let mut s = scenario("a.toml", Outcome::Fail);
        s.expected_failure = Some(CauseKind::NoDhcpOffer);
        s.findings = vec![
            Finding::Modules(crate::verdict::Finding::NoAddress {
                interface: "eth0".into(),
            }),
            Finding::ConsoleMissing {
                pattern: "login:".into(),
            },
        ];
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["cause"]["kind"], "unknown-symbol");
        assert_eq!(json["cause"]["phase"], "modules");
        assert_eq!(json["phases"][0]["name"], "firmware");
        assert_eq!(json["expected_failure"], "no-dhcp-offer");
        assert_eq!(
            json["findings"],
            serde_json::json!([
                "eth0 has no IPv4 address",
                "no console line matches \"login:\""
            ])
        );
        let back: ScenarioReport = serde_json::from_value(json).unwrap();
        assert_eq!(back.cause, s.cause);
        assert_eq!(
            back.findings[1],
            Finding::Recorded("no console line matches \"login:\"".into())
        );
        assert_eq!(back.findings[1].to_string(), s.findings[1].to_string());
    }

    /// The run's own findings are typed now; result.json keeps the sentences they were.
    #[test]
    fn run_findings_render_as_the_sentences_they_were() {
        let lease = |ip: [u8; 4], id: Option<&str>| crate::net::lease::Lease {
            expiry: 0,
            mac: "52:54:00:12:34:56".into(),
            ip: ip.into(),
            hostname: None,
            client_id: id.map(|id| id.parse().unwrap()),
        };
        let cases = [
            (
                Finding::LeaseClientIdInvalid {
                    client_id: "zz".into(),
                    error: "not hex".into(),
                },
                "[expect] lease client_id \"zz\": not hex",
            ),
            (
                Finding::LeasesUnreadable {
                    error: "no such file".into(),
                },
                "reading the DHCP server's leases: no such file",
            ),
            (
                Finding::LeaseOther {
                    client_id: "FF:00:1".into(),
                    got: [10, 0, 0, 9].into(),
                    want: "10.0.0.5".into(),
                },
                "the DHCP server leased 10.0.0.9 to client-identifier FF:00:1, not 10.0.0.5",
            ),
            (
                Finding::LeaseNone {
                    client_id: "ff:00:01".into(),
                    leases: vec![
                        lease([10, 0, 0, 7], Some("1:2:a")),
                        lease([10, 0, 0, 8], None),
                    ],
                },
                "the DHCP server leased nothing to client-identifier ff:00:01 \
                 (leases: 10.0.0.7 01:02:0a, 10.0.0.8 -)",
            ),
            (
                Finding::LeaseNone {
                    client_id: "ff:00:01".into(),
                    leases: Vec::new(),
                },
                "the DHCP server leased nothing to client-identifier ff:00:01 (leases: )",
            ),
            (
                Finding::NetworkTeardown {
                    error: "deleting tap0: busy".into(),
                },
                "network teardown: deleting tap0: busy",
            ),
            (
                Finding::AdapterRestore {
                    error: "binding mlx4_core: EBUSY".into(),
                    restore: "bootrig vfio restore".into(),
                },
                "putting the adapter's drivers back: binding mlx4_core: EBUSY \
                 (run bootrig vfio restore)",
            ),
            (
                Finding::RestartFault {
                    error: "dnsmasq: gone".into(),
                },
                "the restart-mid-boot fault failed: dnsmasq: gone",
            ),
        ];
        for (finding, text) in cases {
            assert_eq!(finding.to_string(), text);
            assert_eq!(serde_json::to_value(&finding).unwrap(), text);
        }
    }

    #[test]
    fn outcome_serialises_lowercase() {
        assert_eq!(serde_json::to_string(&Outcome::Error).unwrap(), "\"error\"");
        let o: Outcome = serde_json::from_str("\"skip\"").unwrap();
        assert_eq!(o, Outcome::Skip);
    }
}
