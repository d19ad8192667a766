//! A scenario's `[expect]` against what the boot showed: the plan's module checks
//! (`verdict::judge`), the address and its subnet, console patterns, the guest shell's answers;
//! then the outcome, where an expected failure that happened is a pass and anything else a fail.

use std::net::Ipv4Addr;

use regex::Regex;

use crate::console::driver::ShellOutcome;
use crate::console::{ConsoleLine, Evidence, RdmaTest, ShellStep};
use crate::names::Named;
use crate::report::Finding;
use crate::scenario::{Expect, RdmaCheck};
use crate::verdict::cause::CauseKind;
use crate::verdict::{self, Expectation};

/// What `[expect]` found wrong, in two kinds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// About the boot itself (modules, address): moot when a failure is expected.
    pub boot: Vec<Finding>,
    /// The scenario's explicit assertions (console patterns, shell steps): always checked.
    pub asserted: Vec<Finding>,
}

impl Findings {
    pub fn all(&self) -> Vec<Finding> {
        self.boot.iter().chain(&self.asserted).cloned().collect()
    }
}

/// Everything `[expect]` asks about that the console can answer.
pub fn findings(
    expect: &Expect,
    plan: &Expectation,
    lines: &[ConsoleLine],
    evidence: &Evidence,
    shell: &[(ShellStep, ShellOutcome)],
) -> Findings {
    let boot = boot_findings(expect, plan, evidence);
    let asserted = asserted_findings(expect, lines, shell);
    Findings { boot, asserted }
}

fn boot_findings(expect: &Expect, plan: &Expectation, evidence: &Evidence) -> Vec<Finding> {
    let mut out = Vec::new();
    let module_checks = verdict::judge(evidence, plan);
    for finding in module_checks.findings {
        let about_modules = matches!(
            finding,
            verdict::Finding::OutOfOrder { .. }
                | verdict::Finding::DependencyLoadedLater { .. }
                | verdict::Finding::NotLoaded { .. }
                | verdict::Finding::InsmodFailed { .. }
                | verdict::Finding::NoModuleList
        );
        if about_modules && !expect.modules_in_order {
            continue;
        }
        out.push(Finding::Modules(finding));
    }
    if let (Some(subnet), Some(interface)) = (&expect.address, &plan.interface) {
        if let Some(addr) = evidence.address(interface) {
            match within(addr, subnet) {
                Some(true) => {}
                Some(false) => out.push(Finding::AddressOutside {
                    interface: interface.clone(),
                    address: addr.to_string(),
                    subnet: subnet.clone(),
                }),
                None => out.push(Finding::AddressNotIpv4 {
                    interface: interface.clone(),
                    address: addr.to_string(),
                }),
            }
        }
    }
    out.extend(rdma_findings(&expect.rdma, evidence));
    out
}

/// `[expect] rdma`: each check from the guest's `BOOTRIG rdma` lines.
fn rdma_findings(checks: &[RdmaCheck], evidence: &Evidence) -> Vec<Finding> {
    let mut out = Vec::new();
    for check in checks {
        match check {
            RdmaCheck::Active => {
                if evidence.rdma_ports.iter().any(|p| p.state == "ACTIVE") {
                    continue;
                }
                out.push(match evidence.rdma_ports.first() {
                    Some(p) => Finding::RdmaPortNotActive {
                        device: p.device.clone(),
                        port: p.port,
                        state: p.state.clone(),
                    },
                    None => Finding::RdmaNoPort,
                });
            }
            &check => {
                // The guest's name for the check, read once into the scenario's type.
                let ran = |t: &&RdmaTest| RdmaCheck::from_name(&t.check) == Some(check);
                match evidence.rdma_tests.iter().find(ran) {
                    Some(t) if t.rc == Some(0) => {}
                    Some(t) => out.push(match (&t.tool, t.rc, &t.skipped) {
                        (_, _, Some(why)) => Finding::RdmaTestSkipped {
                            check,
                            why: why.clone(),
                        },
                        (Some(tool), Some(_), _) if t.timed_out() => Finding::RdmaTestTimedOut {
                            check,
                            tool: tool.clone(),
                            seconds: t.timeout_secs.unwrap_or(0),
                        },
                        (tool, rc, _) => Finding::RdmaTestFailed {
                            check,
                            tool: tool.clone(),
                            rc,
                        },
                    }),
                    None => out.push(Finding::RdmaTestMissing { check }),
                }
            }
        }
    }
    out
}

fn asserted_findings(
    expect: &Expect,
    lines: &[ConsoleLine],
    shell: &[(ShellStep, ShellOutcome)],
) -> Vec<Finding> {
    let bad = |what, pattern: &String, e: regex::Error| Finding::BadPattern {
        what,
        pattern: pattern.clone(),
        error: e.to_string(),
    };
    let mut out = Vec::new();
    for pattern in &expect.console {
        match Regex::new(pattern) {
            Ok(re) if lines.iter().any(|l| re.is_match(l.clean())) => {}
            Ok(_) => out.push(Finding::ConsoleMissing {
                pattern: pattern.clone(),
            }),
            Err(e) => out.push(bad("console", pattern, e)),
        }
    }
    for pattern in &expect.not_console {
        match Regex::new(pattern) {
            Ok(re) => {
                if let Some(line) = lines.iter().find(|l| re.is_match(l.clean())) {
                    out.push(Finding::ConsoleForbidden {
                        pattern: pattern.clone(),
                        line: line.text.clone(),
                    });
                }
            }
            Err(e) => out.push(bad("console", pattern, e)),
        }
    }
    for (step, got) in shell {
        match (&got.output, got.status) {
            (Some(output), Some(status)) => {
                if status != step.status {
                    out.push(Finding::ShellStatus {
                        command: step.command.clone(),
                        status,
                        expected: step.status,
                    });
                }
                for pattern in &step.patterns {
                    match Regex::new(pattern) {
                        Ok(re) if re.is_match(output) => {}
                        Ok(_) => out.push(Finding::ShellOutput {
                            command: step.command.clone(),
                            pattern: pattern.clone(),
                        }),
                        Err(e) => out.push(bad("shell", pattern, e)),
                    }
                }
            }
            _ => out.push(Finding::ShellNoAnswer {
                command: step.command.clone(),
            }),
        }
    }
    out
}

/// Whether `addr` ("10.0.2.15/24" or "10.0.2.15") lies within `subnet` ("10.0.2.0/24").
pub fn within(addr: &str, subnet: &str) -> Option<bool> {
    let ip: Ipv4Addr = addr.split('/').next()?.parse().ok()?;
    let (net, len) = subnet.split_once('/')?;
    let net: Ipv4Addr = net.parse().ok()?;
    let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Some(u32::from(ip) & mask == u32::from(net) & mask)
}

/// The outcome: with an expected failure, exactly that cause passes; otherwise no cause and no
/// finding passes. Explicit assertions must hold either way. The reason says why it failed.
pub fn decide(
    expected_failure: Option<CauseKind>,
    cause: Option<CauseKind>,
    findings: &Findings,
) -> (bool, Option<String>) {
    let (pass, why) = decide_cause(expected_failure, cause, &findings.boot);
    if pass && !findings.asserted.is_empty() {
        return (false, Some(joined(&findings.asserted)));
    }
    (pass, why)
}

fn joined(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| f.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

fn decide_cause(
    expected_failure: Option<CauseKind>,
    cause: Option<CauseKind>,
    findings: &[Finding],
) -> (bool, Option<String>) {
    match (expected_failure, cause) {
        (Some(want), Some(got)) if want == got => (true, None),
        (Some(want), Some(got)) => (
            false,
            Some(format!(
                "expected the failure {:?}, got {:?}",
                want.as_str(),
                got.as_str()
            )),
        ),
        (Some(want), None) => (
            false,
            Some(format!(
                "expected the failure {:?}, but the boot showed no classified failure",
                want.as_str()
            )),
        ),
        (None, Some(got)) => (false, Some(format!("boot failed: {got}"))),
        (None, None) if findings.is_empty() => (true, None),
        (None, None) => (false, Some(joined(findings))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console;
    use crate::scenario::Scenario;
    use std::path::Path;

    #[test]
    fn subnet_containment() {
        assert_eq!(within("10.0.2.15/24", "10.0.2.0/24"), Some(true));
        assert_eq!(within("10.0.3.15/24", "10.0.2.0/24"), Some(false));
        assert_eq!(within("10.77.0.42", "10.77.0.0/16"), Some(true));
        assert_eq!(within("192.0.2.1", "0.0.0.0/0"), Some(true));
        assert_eq!(within("fe80::1/64", "10.0.2.0/24"), None);
        assert_eq!(within("10.0.2.15", "10.0.2.0/33"), None);
    }

    #[test]
    fn expected_failure_passes_only_when_it_is_the_cause() {
        let none = Findings::default();
        let no_addr = Findings {
            boot: vec![Finding::Modules(verdict::Finding::NoAddress {
                interface: "eth0".into(),
            })],
            asserted: vec![],
        };
        let pattern_missed = Findings {
            boot: vec![],
            asserted: vec![Finding::ConsoleMissing {
                pattern: "x".into(),
            }],
        };
        let symbol = Some(CauseKind::UnknownSymbol);
        assert_eq!(decide(symbol, symbol, &no_addr), (true, None));
        assert_eq!(
            decide(symbol, symbol, &pattern_missed),
            (false, Some("no console line matches \"x\"".into()))
        );
        assert_eq!(
            decide(symbol, Some(CauseKind::KernelPanic), &none),
            (
                false,
                Some("expected the failure \"unknown-symbol\", got \"kernel-panic\"".into())
            )
        );
        assert!(!decide(symbol, None, &none).0);
        assert!(!decide(None, Some(CauseKind::Timeout), &none).0);
        assert!(decide(None, None, &none).0);
        let (pass, why) = decide(None, None, &no_addr);
        assert!(!pass);
        assert_eq!(why.unwrap(), "eth0 has no IPv4 address");
    }

    fn scenario(expect: &str) -> Scenario {
        let text = format!(
            "name = \"t\"\n[kernel]\nimage = \"k\"\nmodules = \"m\"\n[initrd]\nload = []\n[network]\ndhcp = \"udhcpc\"\n[expect]\n{expect}\n"
        );
        Scenario::parse(&text, Path::new("/s/t.toml")).unwrap()
    }

    fn lines(text: &str) -> Vec<ConsoleLine> {
        crate::console::test_lines(&text.lines().collect::<Vec<_>>())
    }

    const BOOT: &str = "Run /init as init process\nBOOTRIG begin\nBOOTRIG modules-begin\nBOOTRIG modules-end\nBOOTRIG addr eth0 10.0.2.15/24\nBOOTRIG done\n";

    #[test]
    fn address_subnet_and_patterns_are_checked() {
        let plan = Expectation {
            modules: vec![],
            interface: Some("eth0".into()),
        };
        let ev = console::parse(BOOT);
        let ok = scenario("address = \"10.0.2.0/24\"\nconsole = [\"^Run /init\"]\nnot_console = [\"Kernel panic\"]");
        assert_eq!(
            findings(&ok.expect, &plan, &lines(BOOT), &ev, &[]),
            Findings::default()
        );
        let bad = scenario(
            "address = \"10.77.0.0/24\"\nconsole = [\"login:\"]\nnot_console = [\"^BOOTRIG done\"]",
        );
        let f: Vec<String> = findings(&bad.expect, &plan, &lines(BOOT), &ev, &[])
            .all()
            .iter()
            .map(|f| f.to_string())
            .collect();
        assert_eq!(f.len(), 3, "{f:?}");
        assert!(f[0].contains("not within 10.77.0.0/24"), "{f:?}");
        assert!(f[1].contains("login:"), "{f:?}");
        assert!(f[2].contains("must not appear"), "{f:?}");
    }

    #[test]
    fn rdma_checks_are_judged_from_the_guest_lines() {
        let text = "name = \"t\"\n[kernel]\nimage = \"k\"\nmodules = \"m\"\n[initrd]\nload = [\"rdma_rxe\"]\n[network]\ndhcp = \"udhcpc\"\n[rdma]\nsoft_roce = true\n";
        let s = Scenario::parse(text, Path::new("/s/t.toml")).unwrap();
        // [expect] rdma not given: every check.
        assert_eq!(
            s.expect.rdma,
            <RdmaCheck as strum::VariantArray>::VARIANTS.to_vec()
        );
        let plan = Expectation::default();
        let good = "BOOTRIG rdma rxe0 link-add eth0 rc=0\nBOOTRIG rdma rxe0 port 1 ACTIVE link_layer=Ethernet\nBOOTRIG rdma rxe0 test devinfo ibv_devinfo rc=0 timeout=20\nBOOTRIG rdma rxe0 gid 1 10.0.2.15\nBOOTRIG rdma rxe0 test verbs ibv_rc_pingpong rc=0 timeout=20\nBOOTRIG rdma rxe0 test cm rping rc=0 timeout=20\n";
        let ev = console::parse(good);
        assert!(ev.garbled.is_empty(), "{:?}", ev.garbled);
        let rdma = |f: Findings| -> Vec<String> {
            f.boot
                .into_iter()
                .map(|f| f.to_string())
                .filter(|l| l.starts_with("rdma:"))
                .collect()
        };
        assert!(rdma(findings(&s.expect, &plan, &lines(good), &ev, &[])).is_empty());
        let bad = "BOOTRIG rdma rxe0 port 1 DOWN link_layer=Ethernet\nBOOTRIG rdma rxe0 test devinfo ibv_devinfo rc=1 timeout=20\nBOOTRIG rdma rxe0 test verbs ibv_rc_pingpong rc=124 timeout=20\n";
        let f = rdma(findings(
            &s.expect,
            &plan,
            &lines(bad),
            &console::parse(bad),
            &[],
        ));
        assert_eq!(
            f,
            vec![
                "rdma: rxe0 port 1 is DOWN, not ACTIVE",
                "rdma: the devinfo test failed (ibv_devinfo exited 1)",
                "rdma: the verbs test timed out (ibv_rc_pingpong killed after 20 s)",
                "rdma: the guest ran no cm test",
            ]
        );
        // A check name the scenario does not know (here one a glitch capitalised) is no check.
        let odd = good.replace("test cm rping", "test Cm rping");
        let f = rdma(findings(
            &s.expect,
            &plan,
            &lines(&odd),
            &console::parse(&odd),
            &[],
        ));
        assert_eq!(f, vec!["rdma: the guest ran no cm test"]);
        // [expect] rdma without a device to check is refused.
        let e = Scenario::parse(
            &text.replace(
                "[rdma]\nsoft_roce = true\n",
                "[expect]\nrdma = [\"active\"]\n",
            ),
            Path::new("/s/t.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("add [rdma] soft_roce = true"), "{e}");
        // soft_roce without rdma_rxe in the list says what to add.
        let e = Scenario::parse(
            &text.replace("[\"rdma_rxe\"]", "[]"),
            Path::new("/s/t.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("does not list rdma_rxe"), "{e}");
    }

    #[test]
    fn patterns_see_the_line_without_escape_sequences() {
        let s = scenario("console = [\"^iPXE 1\\\\.0\"]");
        let coloured = lines("\u{1b}[1m\u{1b}[37miPXE 1.0.0+git -- Open Source\n");
        let f = findings(
            &s.expect,
            &Expectation::default(),
            &coloured,
            &console::parse(""),
            &[],
        );
        assert!(f.asserted.is_empty(), "{f:?}");
    }

    #[test]
    fn shell_steps_check_status_and_output() {
        let s = scenario("[[expect.shell]]\ncommand = \"uname -r\"\npatterns = [\"^6\\\\.1\"]\n[[expect.shell]]\ncommand = \"false\"\n");
        let plan = Expectation::default();
        let ev = console::parse(BOOT);
        let answered = vec![
            (
                s.expect.shell[0].clone(),
                ShellOutcome {
                    command: "uname -r".into(),
                    output: Some("5.10.0".into()),
                    status: Some(0),
                },
            ),
            (
                s.expect.shell[1].clone(),
                ShellOutcome {
                    command: "false".into(),
                    output: None,
                    status: None,
                },
            ),
        ];
        let f: Vec<String> = findings(&s.expect, &plan, &lines(BOOT), &ev, &answered)
            .asserted
            .iter()
            .map(|f| f.to_string())
            .collect();
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].contains("does not match"), "{f:?}");
        assert!(f[1].contains("no answer"), "{f:?}");
    }

    #[test]
    fn module_checks_can_be_switched_off() {
        let plan = Expectation {
            modules: vec![verdict::ExpectedModule {
                name: "mlx4_core".into(),
                depends: vec![],
            }],
            interface: None,
        };
        let ev = console::parse(BOOT);
        let on = scenario("modules_in_order = true");
        assert!(findings(&on.expect, &plan, &lines(BOOT), &ev, &[])
            .boot
            .iter()
            .any(|f| f.to_string().contains("mlx4_core")));
        let off = scenario("modules_in_order = false");
        assert_eq!(
            findings(&off.expect, &plan, &lines(BOOT), &ev, &[]),
            Findings::default()
        );
    }
}
