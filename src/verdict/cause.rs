//! Why a boot failed, read from its console: one typed cause with the lines that prove it.
//! Reports and scenario files name causes by their kebab-case id
//! (`expect.failure = "unknown-symbol"`), so the ids are stable.
//!
//! The console shows symptoms and causes together (a module fails, then the interface is
//! missing, then DHCP finds no lease); [`RULES`] is ordered so the root cause wins.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::phases::{current, detect, phase_at, Phase, PhaseMark};
use crate::console::fatal::{init_exec_failed, is_run_as_init, RESCUE_SHELL_LINES};
use crate::console::protocol::Rdma;
use crate::console::{ConsoleLine, GuestLine};
use crate::kmod::suggest::nearest;
use crate::names::Named;
use strum::VariantArray;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum CauseKind {
    KernelPanic,
    /// The kernel found no initramfs with an init and fell back to mounting a root device.
    InitrdNotLoaded,
    /// The initramfs has its init (`/init`, or `rdinit=`) but the kernel could not execute it
    /// ("Failed to execute /init (error -2)"): not executable, a script whose interpreter is
    /// missing, a binary whose loader or architecture is wrong.
    InitNotExecutable,
    UnknownSymbol,
    /// The module is not loadable by this kernel for a reason other than its vermagic:
    /// not an ELF module, truncated, or a signature that does not verify.
    InvalidModuleFormat,
    /// The module was built for another kernel: its vermagic differs (the kernel says
    /// "version magic '…' should be '…'") or, with modversions, a symbol's CRC differs
    /// ("disagrees about version of symbol"). Its own kind, not invalid-module-format,
    /// because the fix differs: rebuild against this kernel rather than replace a bad file.
    VermagicMismatch,
    /// The kernel ignored (6.x) or refused (older kernels) a parameter it does not know.
    UnknownParameter,
    /// A known parameter with a value the module cannot parse: insmod fails (EINVAL).
    InvalidParameter,
    /// Nobody answered DHCP: the firmware's iPXE or the guest's client.
    NoDhcpOffer,
    BootFileNotFound,
    /// An IPoIB interface got no address and its port is not ACTIVE: no subnet manager
    /// brought the port up (or the cable/switch port is down).
    IbPortNotActive,
    /// The initrd's own init gave up before the root was mounted and dropped to its rescue
    /// shell (dracut's emergency shell, initramfs-tools' `(initramfs)` prompt): the lines
    /// before say why (no `root=`, a root device that never appeared).
    EmergencyShell,
    /// `[rdma] soft_roce`: `rdma link add` made no RDMA device (rdma_rxe without a crc32
    /// provider says "failed to init crc32 algorithm").
    RdmaNoDevice,
    /// The RDMA device exists but no port of it became ACTIVE (the netdev has no carrier).
    RdmaPortNotActive,
    /// A userspace RDMA test (ibv_devinfo, the verbs or rdma_cm round trip) failed or timed out.
    RdmaTestFailed,
    Timeout,
    QemuExited,
    QemuCrashed,
}

impl CauseKind {
    /// Every valid id, for scenario validation messages.
    pub fn ids() -> Vec<&'static str> {
        Self::VARIANTS.iter().map(|k| k.as_str()).collect()
    }
}

impl fmt::Display for CauseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown failure kind {given:?}{}; valid kinds: {}", .suggestion.map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default(), CauseKind::ids().join(", "))]
pub struct UnknownCauseKind {
    pub given: String,
    pub suggestion: Option<&'static str>,
}

impl FromStr for CauseKind {
    type Err = UnknownCauseKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(kind) = Self::from_name(s) {
            return Ok(kind);
        }
        let ids = Self::ids();
        Err(UnknownCauseKind {
            given: s.to_string(),
            suggestion: nearest(s, &ids).first().copied(),
        })
    }
}

/// Which side sent DHCP requests nobody answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DhcpSide {
    /// iPXE in the firmware, before any boot file.
    Firmware,
    /// The DHCP client in the guest's initrd.
    Guest,
}

/// The specifics of a cause, for reports and for matching a scenario's expectation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "about")]
pub enum Detail {
    /// A module that did not load (or loaded with a parameter ignored), and the symbols or
    /// parameters the kernel named.
    Module {
        module: String,
        names: Vec<String>,
    },
    Dhcp {
        by: DhcpSide,
        /// `ipxe`, `udhcpc`, `dhclient`, `kernel` (ip= autoconfiguration).
        client: String,
    },
    BootFile {
        url: String,
    },
    Exit {
        code: i32,
    },
    Signal {
        signal: i32,
        name: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cause {
    pub kind: CauseKind,
    /// The phase that failed.
    pub phase: Option<Phase>,
    pub summary: String,
    /// The console lines proving it, verbatim but ANSI-stripped, in console order.
    pub evidence: Vec<String>,
    pub detail: Option<Detail>,
}

/// Lines of the console tail a cause without its own evidence shows.
const TAIL_LINES: usize = 5;

impl Cause {
    /// The boot made no progress before the deadline; `phase` is where it hung.
    pub fn timeout(phase: Phase, lines: &[ConsoleLine]) -> Cause {
        Cause {
            kind: CauseKind::Timeout,
            phase: Some(phase),
            summary: format!("timed out in the {phase} phase"),
            evidence: tail(lines),
            detail: None,
        }
    }

    /// QEMU exited by itself before the boot was done.
    pub fn qemu_exited(code: i32, lines: &[ConsoleLine]) -> Cause {
        let phase = current(&detect(lines));
        Cause {
            kind: CauseKind::QemuExited,
            phase: Some(phase),
            summary: format!("QEMU exited with code {code} in the {phase} phase"),
            evidence: tail(lines),
            detail: Some(Detail::Exit { code }),
        }
    }

    /// QEMU was killed by a signal bootrig did not send.
    pub fn qemu_crashed(signal: i32, lines: &[ConsoleLine]) -> Cause {
        let phase = current(&detect(lines));
        let name = nix::sys::signal::Signal::try_from(signal)
            .ok()
            .map(|s| s.as_str().to_string());
        let shown = name.clone().unwrap_or_else(|| format!("signal {signal}"));
        Cause {
            kind: CauseKind::QemuCrashed,
            phase: Some(phase),
            summary: format!("QEMU died of {shown} in the {phase} phase"),
            evidence: tail(lines),
            detail: Some(Detail::Signal { signal, name }),
        }
    }
}

/// The last few non-empty console lines, where a hang or an exit left the boot.
fn tail(lines: &[ConsoleLine]) -> Vec<String> {
    let mut last: Vec<String> = lines
        .iter()
        .rev()
        .map(|l| l.clean().trim_end().to_string())
        .filter(|l| !l.trim().is_empty())
        .take(TAIL_LINES)
        .collect();
    last.reverse();
    last
}

/// The console as the rules read it: each line's cleaned text (trailing blanks trimmed), the
/// protocol line it is, and the phases.
struct Transcript<'a> {
    lines: Vec<&'a str>,
    guest: Vec<Option<GuestLine<'a>>>,
    marks: Vec<PhaseMark>,
}

impl<'a> Transcript<'a> {
    /// Protocol lines with their indices.
    fn guest_lines(&self) -> impl Iterator<Item = (usize, GuestLine<'a>)> + '_ {
        self.guest
            .iter()
            .enumerate()
            .filter_map(|(i, g)| g.map(|g| (i, g)))
    }

    /// `BOOTRIG rdma DEVICE …` lines with their indices.
    fn rdma_lines(&self) -> impl Iterator<Item = (usize, &'a str, Rdma<'a>)> + '_ {
        self.guest_lines().filter_map(|(i, g)| match g {
            GuestLine::Rdma { device, event } => Some((i, device, event)),
            _ => None,
        })
    }
}

/// What a rule found: evidence line indices (any order, deduplicated later) and the rest.
struct Found {
    lines: Vec<usize>,
    summary: String,
    detail: Option<Detail>,
    /// None: the phase the boot was in at the first evidence line.
    phase: Option<Phase>,
}

struct Rule {
    kind: CauseKind,
    find: fn(&Transcript<'_>) -> Option<Found>,
}

/// The rules, most fundamental first: the first that matches is the cause.
///  0. init-not-executable: the kernel found the initramfs's init but could not run it; the
///     fallback inits and the "No working init found" panic after it are its consequence, and
///     nothing of the initrd (stanza, modules) ran, so nothing else can be the cause.
///  1. initrd-not-loaded: with no init to run the kernel panics; the panic is its consequence.
///  2. vermagic-mismatch before invalid-module-format: insmod reports both as a format error
///     ("Exec format error"), only the kernel's line tells them apart.
///  3. module failures (format, symbol, parameter value) before anything later: a module that
///     did not load leaves the interface missing and DHCP without a lease, and a failing init
///     script may take init down and panic the kernel.
///  4. firmware failures (boot file, iPXE DHCP) count only when no kernel started after them
///     (iPXE may fail on one NIC and boot from the next); they exclude guest failures.
///  5. a kernel panic not explained above.
///  6. unknown-parameter: the kernel ignored it and the module loaded; it explains a missing
///     interface or lease (a mistyped port type) but not a panic, so it ranks below it.
///  7. the guest's DHCP client found no lease: a symptom of anything above, so last.
const RULES: &[Rule] = &[
    Rule {
        kind: CauseKind::InitNotExecutable,
        find: init_not_executable,
    },
    Rule {
        kind: CauseKind::InitrdNotLoaded,
        find: initrd_not_loaded,
    },
    Rule {
        kind: CauseKind::VermagicMismatch,
        find: vermagic_mismatch,
    },
    Rule {
        kind: CauseKind::InvalidModuleFormat,
        find: invalid_module_format,
    },
    Rule {
        kind: CauseKind::UnknownSymbol,
        find: unknown_symbol,
    },
    Rule {
        kind: CauseKind::InvalidParameter,
        find: invalid_parameter,
    },
    Rule {
        kind: CauseKind::BootFileNotFound,
        find: boot_file_not_found,
    },
    Rule {
        kind: CauseKind::NoDhcpOffer,
        find: firmware_no_offer,
    },
    // An init that gave up is the end of the boot, as a panic is; the two do not meet.
    Rule {
        kind: CauseKind::EmergencyShell,
        find: emergency_shell,
    },
    Rule {
        kind: CauseKind::KernelPanic,
        find: kernel_panic,
    },
    Rule {
        kind: CauseKind::UnknownParameter,
        find: unknown_parameter,
    },
    // Before the guest's DHCP failure it explains: a port that is not ACTIVE carries no DHCP.
    Rule {
        kind: CauseKind::IbPortNotActive,
        find: ib_port_not_active,
    },
    Rule {
        kind: CauseKind::NoDhcpOffer,
        find: guest_no_offer,
    },
    // Soft-RoCE runs after the address: anything above explains its failures first.
    Rule {
        kind: CauseKind::RdmaNoDevice,
        find: rdma_no_device,
    },
    Rule {
        kind: CauseKind::RdmaPortNotActive,
        find: rdma_port_not_active,
    },
    Rule {
        kind: CauseKind::RdmaTestFailed,
        find: rdma_test_failed,
    },
];

/// `BOOTRIG rdma rxe0 link-add eth0 rc=N` (N ≠ 0) or `BOOTRIG rdma rxe0 missing`, with what the
/// kernel said during the link add.
fn rdma_no_device(t: &Transcript) -> Option<Found> {
    let (i, device, netdev) = t.rdma_lines().find_map(|(i, device, event)| match event {
        Rdma::LinkAdd { netdev, rc } if rc != 0 => Some((i, device, Some(netdev))),
        Rdma::Missing => Some((i, device, None)),
        _ => None,
    })?;
    let mut lines = vec![i];
    let mut crc32 = false;
    for (j, l) in t.lines.iter().enumerate() {
        let message = kernel_message(l);
        let related = message.starts_with("rdma_rxe:")
            || l.starts_with("error: ")
            || message.contains("rxe") && message.contains("fail");
        let missing = matches!(
            t.guest[j],
            Some(GuestLine::Rdma {
                event: Rdma::Missing,
                ..
            })
        );
        if related || missing {
            lines.push(j);
            crc32 |= message.contains("crc32");
        }
    }
    let on = netdev.map(|n| format!(" over {n}")).unwrap_or_default();
    let hint = if crc32 {
        ": rdma_rxe found no crc32 algorithm; load crc32_generic before rdma_rxe (order = \"resolve\" adds it)"
    } else {
        "; the lines below say why"
    };
    Some(Found {
        summary: format!("no RDMA device: `rdma link add {device}`{on} failed{hint}"),
        lines,
        detail: None,
        phase: None,
    })
}

/// `BOOTRIG rdma rxe0 port 1 DOWN link_layer=Ethernet`, and no port of that device ACTIVE.
fn rdma_port_not_active(t: &Transcript) -> Option<Found> {
    let ports: Vec<(usize, &str, u32, &str)> = t
        .rdma_lines()
        .filter_map(|(i, device, event)| match event {
            Rdma::Port { port, state, .. } => Some((i, device, port, state)),
            _ => None,
        })
        .collect();
    let (i, device, port, state) = ports.iter().find(|(_, device, _, state)| {
        *state != "ACTIVE"
            && !ports
                .iter()
                .any(|(_, d, _, s)| d == device && *s == "ACTIVE")
    })?;
    Some(Found {
        summary: format!(
            "RDMA device {device} port {port} is {state}, not ACTIVE: its interface has no carrier (is the link up?)"
        ),
        lines: vec![*i],
        detail: None,
        phase: None,
    })
}

/// `BOOTRIG rdma rxe0 test CHECK TOOL rc=N timeout=S` with N ≠ 0 (124/143: killed at S), or a
/// test skipped; the tool's output lines before it are the evidence.
fn rdma_test_failed(t: &Transcript) -> Option<Found> {
    let (i, device, event) = t.rdma_lines().find(|(_, _, event)| event.test_failed())?;
    let (check, outcome) = match event {
        Rdma::TestSkipped { check, why } => (check, format!("was skipped ({why})")),
        Rdma::Test {
            check,
            tool,
            rc,
            timeout_secs,
        } => (
            check,
            match rc {
                124 | 143 => format!("timed out: {tool} was killed after {timeout_secs} s"),
                rc => format!("failed: {tool} exited {rc}"),
            },
        ),
        _ => ("?", "failed".into()),
    };
    let what = match check {
        "devinfo" => "ibv_devinfo (libibverbs and the rxe provider)",
        "verbs" => "the verbs round trip",
        "cm" => "the rdma_cm round trip",
        _ => "an RDMA test",
    };
    // The tool's output: the lines since the previous protocol line.
    let start = t.guest[..i]
        .iter()
        .rposition(Option::is_some)
        .map_or(i, |p| p + 1);
    let mut lines: Vec<usize> = (start..i)
        .filter(|&j| !is_kernel_line(t.lines[j]))
        .collect();
    lines.truncate(TAIL_LINES);
    lines.push(i);
    Some(Found {
        summary: format!("RDMA device {device}: {what} {outcome}"),
        lines,
        detail: None,
        phase: None,
    })
}

/// The stanza's `BOOTRIG ib-port DEVICE PORT state=4: ACTIVE phys=5: LinkUp` lines (printed
/// when an ib interface has no address) with a state other than ACTIVE.
fn ib_port_not_active(t: &Transcript) -> Option<Found> {
    let no_addr = t.guest_lines().any(|(_, g)| {
        matches!(g, GuestLine::Addr { interface, cidr: None } if interface.starts_with("ib"))
    });
    if !no_addr {
        return None;
    }
    let (i, port, state) = t.guest_lines().find_map(|(i, g)| match g {
        GuestLine::IbPort {
            device,
            port,
            state,
        } if !state.is_some_and(|s| s.contains("ACTIVE")) => {
            Some((i, format!("{device}/{port}"), state.unwrap_or("?")))
        }
        _ => None,
    })?;
    Some(Found {
        summary: format!(
            "IPoIB got no address: port {port} is {state}, not ACTIVE — is a subnet manager running on the fabric (opensm, or the switch's)?"
        ),
        lines: vec![i],
        detail: None,
        phase: Some(Phase::Address),
    })
}

/// The root cause the console shows, if it shows one. Timeouts and QEMU exits are not on the
/// console: the orchestrator builds those with [`Cause::timeout`] and friends.
pub fn classify(lines: &[ConsoleLine]) -> Option<Cause> {
    let transcript = Transcript {
        lines: lines.iter().map(|l| l.clean().trim_end()).collect(),
        guest: lines.iter().map(ConsoleLine::guest).collect(),
        marks: detect(lines),
    };
    RULES.iter().find_map(|rule| {
        let found = (rule.find)(&transcript)?;
        let mut indices = found.lines;
        indices.sort_unstable();
        indices.dedup();
        let phase = found
            .phase
            .or_else(|| indices.first().map(|&i| phase_at(&transcript.marks, i)));
        Some(Cause {
            kind: rule.kind,
            phase,
            summary: found.summary,
            evidence: indices
                .iter()
                .filter_map(|&i| transcript.lines.get(i).map(|l| l.to_string()))
                .collect(),
            detail: found.detail,
        })
    })
}

// ---- reading lines ----

/// A kernel message without its `[    1.234567] ` timestamp.
fn kernel_message(line: &str) -> &str {
    let trimmed = line.trim_start();
    if let Some(rest) = trimmed.strip_prefix('[') {
        if let Some((stamp, message)) = rest.split_once(']') {
            if stamp
                .trim()
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.')
            {
                return message.trim_start();
            }
        }
    }
    trimmed
}

/// A line with the kernel's `[    1.234567] ` timestamp.
fn is_kernel_line(line: &str) -> bool {
    kernel_message(line).len() != line.trim_start().len()
}

/// `module: rest` as the kernel's module loader prefixes its messages.
fn module_message(line: &str) -> Option<(&str, &str)> {
    let (module, rest) = kernel_message(line).split_once(": ")?;
    let valid = !module.is_empty()
        && module
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    valid.then_some((module, rest))
}

/// Module names compare with `-` and `_` alike, as the kernel does.
fn same_module(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .all(|(x, y)| x == y || (x == b'-' || x == b'_') && (y == b'-' || y == b'_'))
}

/// The module an insmod error line is about and the error text: busybox
/// (`insmod: can't insert '/lib/…/x.ko': reason`) and kmod
/// (`insmod: ERROR: could not insert module /lib/…/x.ko: reason`).
fn insmod_failure(line: &str) -> Option<(String, &str)> {
    let (path, reason) = if let Some(rest) = line.strip_prefix("insmod: can't insert '") {
        rest.split_once("': ")?
    } else if let Some(rest) = line.strip_prefix("insmod: ERROR: could not insert module ") {
        rest.rsplit_once(": ")?
    } else {
        return None;
    };
    let file = path.rsplit('/').next().unwrap_or(path);
    let module = file.split(".ko").next().unwrap_or(file);
    Some((module.to_string(), reason))
}

/// The stanza's and insmod's lines about `module` failing, to go with the kernel's.
fn insmod_lines(t: &Transcript, module: &str) -> Vec<usize> {
    t.lines
        .iter()
        .enumerate()
        .filter(|(i, l)| {
            t.guest[*i]
                .and_then(|g| g.failed_insmod())
                .is_some_and(|m| same_module(m, module))
                || insmod_failure(l).is_some_and(|(m, _)| same_module(&m, module))
        })
        .map(|(i, _)| i)
        .collect()
}

/// Kernel lines `module: <prefix>NAME<end>` for the first module that has any, with NAME.
fn module_lines(
    t: &Transcript,
    prefix: &str,
    end: &str,
) -> Option<(String, Vec<usize>, Vec<String>)> {
    let mut module: Option<String> = None;
    let mut lines = Vec::new();
    let mut names = Vec::new();
    for (i, line) in t.lines.iter().enumerate() {
        let Some((m, rest)) = module_message(line) else {
            continue;
        };
        let Some(after) = rest.strip_prefix(prefix) else {
            continue;
        };
        if module
            .as_deref()
            .is_some_and(|first| !same_module(first, m))
        {
            continue;
        }
        module.get_or_insert_with(|| m.to_string());
        lines.push(i);
        let name = after.split(end).next().unwrap_or(after).trim();
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    module.map(|m| (m, lines, names))
}

/// How many of a long list of kernel lines go into the evidence.
const MODULE_EVIDENCE_LINES: usize = 5;

fn module_found(
    t: &Transcript,
    module: String,
    kernel: Vec<usize>,
    names: Vec<String>,
    what: &str,
) -> Found {
    let mut lines = insmod_lines(t, &module);
    lines.extend(kernel.into_iter().take(MODULE_EVIDENCE_LINES));
    let listed = match names.len() {
        0 => String::new(),
        1 => format!(" {}", names[0]),
        n => format!(" {} and {} more", names[0], n - 1),
    };
    Found {
        lines,
        summary: format!("{module}: {what}{listed}"),
        detail: Some(Detail::Module { module, names }),
        phase: Some(Phase::Modules),
    }
}

/// insmod's own complaint, for when the kernel's line is not on the console.
fn insmod_says(t: &Transcript, reasons: &[&str]) -> Option<(String, usize)> {
    t.lines.iter().enumerate().find_map(|(i, l)| {
        let (module, reason) = insmod_failure(l)?;
        let reason = reason.to_ascii_lowercase();
        reasons
            .iter()
            .any(|r| reason.contains(r))
            .then_some((module, i))
    })
}

// ---- the rules ----

/// `Failed to execute /init (error -2)`, with the kernel's `Run /init as init process` before
/// it and the panic after it, if any.
fn init_not_executable(t: &Transcript) -> Option<Found> {
    let (i, failed) = t
        .lines
        .iter()
        .enumerate()
        .find_map(|(i, l)| init_exec_failed(kernel_message(l)).map(|f| (i, f)))?;
    let mut lines = vec![i];
    lines.extend(
        t.lines[..i]
            .iter()
            .rposition(|l| is_run_as_init(kernel_message(l), failed.path)),
    );
    lines.extend(
        t.lines[i..]
            .iter()
            .position(|l| l.contains("Kernel panic - not syncing"))
            .map(|k| i + k),
    );
    let errno = nix::errno::Errno::from_raw(-failed.error);
    let why = match errno {
        nix::errno::Errno::EACCES => "; it is not executable (its mode lacks x)",
        nix::errno::Errno::ENOENT => {
            "; the file is there, so a script's interpreter (#!) or the binary's loader is missing"
        }
        nix::errno::Errno::ENOEXEC => {
            "; it is not a program this kernel runs (format or architecture)"
        }
        _ => "",
    };
    Some(Found {
        summary: format!(
            "the kernel could not execute the initramfs's init {} (error {}, {errno}){why}",
            failed.path, failed.error
        ),
        lines,
        detail: None,
        phase: Some(Phase::Kernel),
    })
}

fn initrd_not_loaded(t: &Transcript) -> Option<Found> {
    const MARKERS: [&str; 6] = [
        "VFS: Unable to mount root fs",
        "No working init found",
        "No filesystem could mount root",
        "VFS: Cannot open root device",
        "Initramfs unpacking failed",
        "RAMDISK: Couldn't find valid RAM disk",
    ];
    let lines: Vec<usize> = t
        .lines
        .iter()
        .enumerate()
        .filter(|(_, l)| MARKERS.iter().any(|m| l.contains(m)))
        .map(|(i, _)| i)
        .collect();
    // The last line is the panic when there is one: the clearest statement.
    let last = *lines.last()?;
    Some(Found {
        summary: format!(
            "the kernel found no initramfs init and no root to mount: {}",
            kernel_message(t.lines[last])
        ),
        lines,
        detail: None,
        phase: Some(Phase::Kernel),
    })
}

fn vermagic_mismatch(t: &Transcript) -> Option<Found> {
    if let Some((module, kernel, _)) = module_lines(t, "version magic '", "'") {
        let shown = t.lines[kernel[0]];
        let quoted: Vec<&str> = shown.split('\'').collect();
        let mut found = module_found(
            t,
            module.clone(),
            kernel,
            Vec::new(),
            "built for another kernel",
        );
        if let [_, have, _, want, ..] = quoted.as_slice() {
            found.summary = format!("{module}: built for another kernel (vermagic \"{have}\", this kernel is \"{want}\")");
        }
        return Some(found);
    }
    let (module, kernel, names) = module_lines(t, "disagrees about version of symbol ", " ")?;
    Some(module_found(
        t,
        module,
        kernel,
        names,
        "built for another kernel (modversions): disagrees about the version of",
    ))
}

fn invalid_module_format(t: &Transcript) -> Option<Found> {
    let (module, line) = insmod_says(
        t,
        &[
            "invalid module format",
            "exec format error",
            "key was rejected",
        ],
    )?;
    let signature = t.lines[line].contains("Key was rejected");
    let what = if signature {
        "its signature does not verify (a modified or corrupted signed module)"
    } else {
        "not a module this kernel can load (corrupted, truncated or for another architecture)"
    };
    Some(module_found(t, module, vec![line], Vec::new(), what))
}

fn unknown_symbol(t: &Transcript) -> Option<Found> {
    if let Some((module, kernel, names)) = module_lines(t, "Unknown symbol ", " (") {
        return Some(module_found(
            t,
            module,
            kernel,
            names,
            "a dependency is missing or loaded later: unknown symbol",
        ));
    }
    // Without the kernel's lines insmod cannot tell a symbol from a parameter; kernels since
    // 3.x ignore unknown parameters, so on those ENOENT means a symbol.
    let (module, line) = insmod_says(t, &["unknown symbol in module"])?;
    Some(module_found(
        t,
        module,
        vec![line],
        Vec::new(),
        "a dependency is missing or loaded later (insmod: unknown symbol in module)",
    ))
}

fn invalid_parameter(t: &Transcript) -> Option<Found> {
    // mlx4_core: `abc' invalid for parameter `debug_level'
    let mut found: Option<(String, Vec<usize>, Vec<String>)> = None;
    for (i, line) in t.lines.iter().enumerate() {
        let Some((m, rest)) = module_message(line) else {
            continue;
        };
        let Some((_, param)) = rest.split_once("' invalid for parameter `") else {
            continue;
        };
        let param = param.trim_end_matches('\'').to_string();
        match found.as_mut() {
            None => found = Some((m.to_string(), vec![i], vec![param])),
            Some((first, lines, names)) if same_module(first, m) => {
                lines.push(i);
                if !names.contains(&param) {
                    names.push(param);
                }
            }
            Some(_) => {}
        }
    }
    let (module, kernel, names) = found?;
    Some(module_found(
        t,
        module,
        kernel,
        names,
        "invalid value for parameter",
    ))
}

fn unknown_parameter(t: &Transcript) -> Option<Found> {
    // 6.x: "mlx4_core: unknown parameter 'x' ignored"; older: "mlx4_core: Unknown parameter `x'".
    let (module, kernel, names) = module_lines(t, "unknown parameter '", "'")
        .or_else(|| module_lines(t, "Unknown parameter `", "'"))?;
    Some(module_found(t, module, kernel, names, "unknown parameter"))
}

/// The first line of a kernel phase after `index`: a firmware failure followed by a kernel
/// boot was recovered from.
fn kernel_started_after(t: &Transcript, index: usize) -> bool {
    t.marks
        .iter()
        .any(|m| m.line > index && m.phase >= Phase::Kernel)
}

/// iPXE error URLs carry the error number: 0x2d… is ENOENT (file not found, HTTP 404).
fn ipxe_not_found(line: &str) -> bool {
    line.contains("ipxe.org/2d")
        || line.contains("No such file or directory")
        || line.contains("Not found")
        || line.contains("Error 0x2d")
}

/// SeaBIOS's serial console wraps at 80 columns: an iPXE message that long goes on in the
/// next line ("…No configuration methods " / "succeeded (http://ipxe.org/040ee119)").
const WRAP_COLUMNS: usize = 80;

/// Line `i`, and the next one when `i` was wrapped.
fn with_continuation(t: &Transcript, i: usize) -> Vec<usize> {
    // Trailing blanks were trimmed: a wrapped line may be one or two columns short.
    let wrapped = t.lines[i].chars().count() >= WRAP_COLUMNS - 2;
    match t.lines.get(i + 1) {
        Some(next) if wrapped && !next.trim().is_empty() => vec![i, i + 1],
        _ => vec![i],
    }
}

/// iPXE's "Connection timed out" (0x4c…): nothing answered at the server the URL names (a
/// wrong next-server, a server gone mid-transfer).
fn ipxe_timed_out(line: &str) -> bool {
    line.contains("Connection timed out") || line.contains("ipxe.org/4c")
}

fn boot_file_not_found(t: &Transcript) -> Option<Found> {
    let Some((i, line)) = t.lines.iter().enumerate().find(|(_, l)| {
        ["tftp://", "http://", "https://"]
            .iter()
            .any(|s| l.trim_start().starts_with(s))
            && (ipxe_not_found(l) || ipxe_timed_out(l))
    }) else {
        return edk2_tftp_error(t);
    };
    if kernel_started_after(t, i) {
        return None;
    }
    let url = line
        .trim_start()
        .split("...")
        .next()
        .unwrap_or(line)
        .trim()
        .to_string();
    let mut lines = with_continuation(t, i);
    // iPXE's closing "Could not boot…" line, if it printed one.
    lines.extend(
        t.lines
            .iter()
            .enumerate()
            .skip(i + 1)
            .find(|(_, l)| l.contains("Could not boot") || l.contains("could not boot"))
            .map(|(j, _)| j),
    );
    let why = if ipxe_not_found(line) {
        "not found"
    } else {
        "no answer from the server (a wrong next-server, or a server gone mid-transfer)"
    };
    Some(Found {
        summary: format!("the firmware could not fetch {url}: {why}"),
        lines,
        detail: Some(Detail::BootFile { url }),
        phase: Some(Phase::BootFiles),
    })
}

/// OVMF's own PXE (after iPXE, or instead of it): "NBP filename is X", then
/// "PXE-E23: Client received TFTP error from server."
fn edk2_tftp_error(t: &Transcript) -> Option<Found> {
    let i = t.lines.iter().position(|l| l.contains("PXE-E23:"))?;
    if kernel_started_after(t, i) {
        return None;
    }
    let named = t.lines[..i]
        .iter()
        .rposition(|l| l.trim_start().starts_with("NBP filename is "));
    let url = named
        .and_then(|n| t.lines[n].trim_start().strip_prefix("NBP filename is "))
        .unwrap_or("the boot file")
        .trim()
        .to_string();
    Some(Found {
        summary: format!("the firmware's PXE got a TFTP error fetching {url}"),
        lines: named.into_iter().chain([i]).collect(),
        detail: Some(Detail::BootFile { url }),
        phase: Some(Phase::BootFiles),
    })
}

/// An iPXE line with an IPv4 address for a NIC: "net0: 10.77.0.111/255.255.255.0 gw …".
fn ipxe_ipv4_configured(line: &str) -> bool {
    let l = line.trim_start();
    l.starts_with("net")
        && l.split_whitespace()
            .nth(1)
            .and_then(|a| a.split('/').next())
            .is_some_and(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
}

fn firmware_no_offer(t: &Transcript) -> Option<Found> {
    let (i, _) = t.lines.iter().enumerate().find(|(i, l)| {
        let l = l.trim_start();
        // iPXE; OVMF's own PXE says "PXE-E18: Server response timeout." (IPv4) or
        // "PXE-E16: No valid offer received."
        l.starts_with("No configuration methods succeeded")
            || l.starts_with("PXE-E16:")
            || l.starts_with("PXE-E18:")
            || (l.starts_with("Configuring (net")
                && (l.contains("timed out") || l.contains("No configuration methods")))
            // IPv6 router advertisements configured the NIC, but no DHCPv4 offer came, so
            // there is no boot file name.
            || (l.starts_with("Nothing to boot:")
                && !t.lines[..*i].iter().any(|p| ipxe_ipv4_configured(p)))
    })?;
    if kernel_started_after(t, i) {
        return None;
    }
    Some(Found {
        summary: "the firmware's iPXE got no DHCP offer".into(),
        lines: with_continuation(t, i),
        detail: Some(Detail::Dhcp {
            by: DhcpSide::Firmware,
            client: "ipxe".into(),
        }),
        phase: Some(Phase::IpxeDhcp),
    })
}

fn kernel_panic(t: &Transcript) -> Option<Found> {
    let (i, line) = t
        .lines
        .iter()
        .enumerate()
        .find(|(_, l)| l.contains("Kernel panic - not syncing"))?;
    let reason = line
        .split("Kernel panic - not syncing:")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string();
    let mut lines = vec![i];
    // The oops that led to it, if any.
    lines.extend(t.lines[..i].iter().position(|l| {
        let m = kernel_message(l);
        m.starts_with("BUG:") || m.starts_with("Oops:") || m.starts_with("general protection fault")
    }));
    let mut summary = format!("kernel panic: {reason}");
    if reason.starts_with("Attempted to kill init") {
        // The panic only says init died; what init printed last says why.
        let said = init_last_words(t, i);
        if let Some(&last) = said.last() {
            summary.push_str(&format!(" — init's last words: {:?}", t.lines[last].trim()));
        }
        lines.extend(said);
    }
    Some(Found {
        summary,
        lines,
        detail: None,
        phase: None,
    })
}

fn emergency_shell(t: &Transcript) -> Option<Found> {
    let shell = t
        .lines
        .iter()
        .position(|l| RESCUE_SHELL_LINES.iter().any(|m| l.contains(m)))?;
    // Why: dracut's FATAL line, initramfs-tools' ALERT! or "Gave up waiting", as printed.
    let why: Vec<usize> = (0..shell)
        .filter(|&i| {
            let m = kernel_message(t.lines[i]);
            m.contains("FATAL:")
                || m.starts_with("ALERT!")
                || m.starts_with("Gave up waiting")
                || m.contains("Refusing to continue")
        })
        .collect();
    let reason = why
        .first()
        .map(|&i| {
            let m = kernel_message(t.lines[i]);
            m.split_once("FATAL:")
                .map_or(m, |(_, r)| r)
                .trim()
                .to_string()
        })
        .unwrap_or_else(|| "no reason printed".into());
    let mut lines = why;
    lines.push(shell);
    Some(Found {
        summary: format!("the initrd's init gave up and opened its rescue shell: {reason}"),
        lines,
        detail: None,
        phase: Some(Phase::Init),
    })
}

/// How many of init's own lines before its death are kept as evidence.
const INIT_LAST_WORDS: usize = 5;

/// The last lines init (or a program it ran) printed before the panic at `panic`: console lines
/// after `Run … as init process` that are not kernel messages.
fn init_last_words(t: &Transcript, panic: usize) -> Vec<usize> {
    let start = t.lines[..panic]
        .iter()
        .rposition(|l| {
            let m = kernel_message(l);
            m.starts_with("Run ") && m.ends_with(" as init process")
        })
        // Without that line (it is KERN_INFO, hidden at loglevel=4): from the kernel's first
        // timestamped line, so firmware and iPXE output never count as init's.
        .or_else(|| t.lines[..panic].iter().position(|l| is_kernel_line(l)))
        .map_or(panic, |i| i + 1);
    let said: Vec<usize> = (start..panic)
        .filter(|&k| {
            let l = t.lines[k].trim();
            !l.is_empty() && !is_kernel_line(l) && t.guest[k].is_none()
        })
        .collect();
    said[said.len().saturating_sub(INIT_LAST_WORDS)..].to_vec()
}

fn guest_no_offer(t: &Transcript) -> Option<Found> {
    const CLIENTS: [(&str, &str); 4] = [
        ("no lease, failing", "udhcpc"),
        ("No DHCPOFFERS received", "dhclient"),
        ("IP-Config: Auto-configuration of network failed", "kernel"),
        ("IP-Config: Retrying forever", "kernel"),
    ];
    let (i, client) = t.lines.iter().enumerate().find_map(|(i, l)| {
        let lower = l.to_ascii_lowercase();
        CLIENTS
            .iter()
            .find(|(marker, _)| lower.contains(&marker.to_ascii_lowercase()))
            .map(|(_, client)| (i, *client))
    })?;
    let mut lines = vec![i];
    // The stanza's summary of the same failure.
    lines.extend(
        t.guest_lines()
            .skip_while(|(j, _)| *j <= i)
            .filter_map(|(j, g)| match g {
                GuestLine::Dhcp { rc, .. } if rc != 0 => Some(j),
                GuestLine::Addr { cidr: None, .. } => Some(j),
                _ => None,
            }),
    );
    Some(Found {
        summary: format!("the guest's DHCP client ({client}) got no offer"),
        lines,
        detail: Some(Detail::Dhcp {
            by: DhcpSide::Guest,
            client: client.into(),
        }),
        phase: Some(Phase::Address),
    })
}

#[cfg(test)]
mod tests {

    use super::*;

    /// A Soft-RoCE boot as the stanza reports it, up to the rdma lines.
    const RXE_BOOT: [&str; 4] = [
        "BOOTRIG begin",
        "BOOTRIG insmod rdma_rxe rc=0",
        "BOOTRIG dhcp eth0 udhcpc rc=0",
        "BOOTRIG addr eth0 10.0.2.15/24",
    ];

    fn rxe(tail: &[&str]) -> Option<Cause> {
        let mut boot: Vec<&str> = RXE_BOOT.to_vec();
        boot.extend(tail);
        boot.push("BOOTRIG done");
        classify(&lines(&boot))
    }

    #[test]
    fn soft_roce_without_crc32_is_no_rdma_device_with_the_kernel_line() {
        let c = rxe(&[
            "error: Invalid argument",
            "BOOTRIG rdma rxe0 link-add eth0 rc=255",
            "BOOTRIG kernel-log-begin rdma_rxe",
            "[    9.123456] rdma_rxe: failed to init crc32 algorithm err:-2",
            "BOOTRIG kernel-log-end rdma_rxe",
            "BOOTRIG rdma rxe0 missing",
        ])
        .unwrap();
        assert_eq!(c.kind, CauseKind::RdmaNoDevice);
        assert!(
            c.summary.contains("load crc32_generic before rdma_rxe"),
            "{}",
            c.summary
        );
        assert!(
            c.evidence
                .iter()
                .any(|l| l.contains("failed to init crc32")),
            "{:?}",
            c.evidence
        );
        assert!(c
            .evidence
            .iter()
            .any(|l| l.contains("link-add eth0 rc=255")));
    }

    #[test]
    fn soft_roce_port_and_test_failures_have_their_own_causes() {
        let down = rxe(&[
            "BOOTRIG rdma rxe0 link-add eth0 rc=0",
            "BOOTRIG rdma rxe0 port 1 DOWN link_layer=Ethernet",
        ])
        .unwrap();
        assert_eq!(down.kind, CauseKind::RdmaPortNotActive);
        assert!(down.summary.contains("port 1 is DOWN"), "{}", down.summary);
        let up = "BOOTRIG rdma rxe0 port 1 ACTIVE link_layer=Ethernet";
        let hung = rxe(&[
            up,
            "BOOTRIG rdma rxe0 test devinfo ibv_devinfo rc=0 timeout=20",
            "BOOTRIG rdma rxe0 test verbs ibv_rc_pingpong rc=143 timeout=20",
        ])
        .unwrap();
        assert_eq!(hung.kind, CauseKind::RdmaTestFailed);
        assert!(
            hung.summary
                .contains("verbs round trip timed out: ibv_rc_pingpong was killed after 20 s"),
            "{}",
            hung.summary
        );
        let failed = rxe(&[
            up,
            "Failed to get IB devices list",
            "BOOTRIG rdma rxe0 test devinfo ibv_devinfo rc=255 timeout=20",
        ])
        .unwrap();
        assert_eq!(failed.kind, CauseKind::RdmaTestFailed);
        assert!(
            failed.summary.contains("ibv_devinfo exited 255"),
            "{}",
            failed.summary
        );
        assert_eq!(failed.evidence[0], "Failed to get IB devices list");
        // All tests passing: no cause.
        assert!(rxe(&[
            up,
            "BOOTRIG rdma rxe0 test devinfo ibv_devinfo rc=0 timeout=20",
            "BOOTRIG rdma rxe0 test cm rping rc=0 timeout=20"
        ])
        .is_none());
    }

    #[test]
    fn an_ib_port_stuck_in_init_explains_a_missing_ipoib_address() {
        let boot = [
            "BOOTRIG begin",
            "udhcpc: no lease, failing",
            "BOOTRIG dhcp ib0 udhcpc rc=1",
            "BOOTRIG addr ib0 none",
            "BOOTRIG ib-port mlx5_0 1 state=2: INIT phys=5: LinkUp",
            "BOOTRIG done",
        ];
        let c = classify(&lines(&boot)).unwrap();
        assert_eq!(c.kind, CauseKind::IbPortNotActive);
        assert!(
            c.summary.contains("mlx5_0/1 is 2: INIT") && c.summary.contains("subnet manager"),
            "{}",
            c.summary
        );
        // An ACTIVE port leaves the DHCP failure as the cause.
        let active: Vec<&str> = boot
            .iter()
            .map(|l| {
                if l.contains("ib-port") {
                    "BOOTRIG ib-port mlx5_0 1 state=4: ACTIVE phys=5: LinkUp"
                } else {
                    l
                }
            })
            .collect();
        assert_eq!(
            classify(&lines(&active)).unwrap().kind,
            CauseKind::NoDhcpOffer
        );
    }

    fn lines(texts: &[&str]) -> Vec<ConsoleLine> {
        crate::console::test_lines(texts)
    }

    /// dracut without `root=` (seen in the flavor matrix before the stanza moved to the cmdline
    /// hook) and initramfs-tools without its root device, as their consoles show it.
    #[test]
    fn an_init_that_gives_up_is_an_emergency_shell_with_its_reason() {
        let dracut = [
            "[    0.000000] Linux version 6.1.0-57-amd64",
            "[   11.751339] dracut: FATAL: No or empty root= argument",
            "[   11.751999] dracut: Refusing to continue",
            "dracut Warning: Signal caught!",
            "Generating \"/run/initramfs/rdsosreport.txt\"",
            "Dropping to debug shell.",
            "dracut:/# ",
        ];
        let c = classify(&lines(&dracut)).unwrap();
        assert_eq!(c.kind, CauseKind::EmergencyShell);
        assert!(
            c.summary.ends_with("No or empty root= argument"),
            "{}",
            c.summary
        );
        assert!(
            c.evidence.iter().any(|l| l.contains("FATAL")),
            "{:?}",
            c.evidence
        );
        assert_eq!(c.phase, Some(Phase::Init));
        let itools = [
            "[    0.000000] Linux version 6.1.0-57-amd64",
            "Gave up waiting for root file system device.  Common problems:",
            "ALERT!  /dev/sda1 does not exist.  Dropping to a shell!",
            "(initramfs) ",
        ];
        let c = classify(&lines(&itools)).unwrap();
        assert_eq!(c.kind, CauseKind::EmergencyShell);
        assert!(c.summary.contains("Gave up waiting"), "{}", c.summary);
        // A module failure that led there stays the root cause.
        let mut failed = vec![
            "insmod: can't insert 'mlx4_en.ko': unknown symbol in module, or unknown parameter",
            "[    2.0] mlx4_en: Unknown symbol mlx4_get_protocol_dev (err -2)",
        ];
        failed.extend(&dracut);
        assert_eq!(
            classify(&lines(&failed)).unwrap().kind,
            CauseKind::UnknownSymbol
        );
    }

    /// The console of a busybox-hardlinked initramfs-tools image whose `ip` was written
    /// through every link: the panic alone does not say why init died.
    #[test]
    fn a_dead_init_is_explained_by_what_it_printed() {
        let boot = [
            "iPXE 1.21.1+ (g988d2) -- Open Source Network Boot Firmware",
            "bootrig: fetching kernel",
            "[    0.000000] Linux version 6.1.0-48-amd64",
            "[    1.900000] Freeing unused kernel image (initmem) memory: 2800K",
            "[    1.910000] Run /init as init process",
            "Object \"/init\" is unknown, try \"ip help\".",
            "[    1.950000] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100",
        ];
        let c = classify(&lines(&boot)).unwrap();
        assert_eq!(c.kind, CauseKind::KernelPanic);
        assert!(
            c.summary.contains("init's last words") && c.summary.contains("try \\\"ip help"),
            "{}",
            c.summary
        );
        assert!(
            c.evidence.iter().any(|l| l.starts_with("Object")),
            "{:?}",
            c.evidence
        );
        // Without the KERN_INFO line, firmware output is still never taken for init's.
        let quiet: Vec<&str> = boot
            .iter()
            .copied()
            .filter(|l| !l.contains("Run /init"))
            .collect();
        let c = classify(&lines(&quiet)).unwrap();
        assert!(
            c.evidence.iter().any(|l| l.starts_with("Object")),
            "{:?}",
            c.evidence
        );
        assert!(!c
            .evidence
            .iter()
            .any(|l| l.contains("iPXE") || l.starts_with("bootrig:")));
        // A panic with another reason gets no such words.
        let other = [
            "[    0.1] Linux",
            "hello",
            "[    1.0] Kernel panic - not syncing: VFS: x",
        ];
        let c = classify(&lines(&other)).unwrap();
        assert!(!c.summary.contains("last words"), "{}", c.summary);
    }

    #[test]
    fn ids_round_trip_through_fromstr_serde_and_display() {
        for &kind in CauseKind::VARIANTS {
            assert_eq!(kind.as_str().parse::<CauseKind>().unwrap(), kind);
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{kind}\""));
        }
        assert_eq!(CauseKind::ids().len(), CauseKind::VARIANTS.len());
        crate::names::assert_serde_names::<CauseKind>();
    }

    #[test]
    fn a_typo_gets_a_suggestion_and_the_list() {
        let err = "unknown-symbl".parse::<CauseKind>().unwrap_err();
        assert_eq!(err.suggestion, Some("unknown-symbol"));
        let text = err.to_string();
        assert!(text.contains("did you mean \"unknown-symbol\""), "{text}");
        assert!(text.contains("vermagic-mismatch"), "{text}");
        assert_eq!(
            "zzzzzzzzzzzzzzzzzz"
                .parse::<CauseKind>()
                .unwrap_err()
                .suggestion,
            None
        );
    }

    #[test]
    fn an_unknown_symbol_is_the_root_cause_of_a_missing_address() {
        let l = lines(&[
            "BOOTRIG begin",
            "BOOTRIG insmod mlx4_en rc=2",
            "insmod: can't insert '/lib/modules/6.1.0-56-amd64/kernel/drivers/net/ethernet/mellanox/mlx4/mlx4_en.ko': unknown symbol in module, or unknown parameter",
            "BOOTRIG kernel-log-begin mlx4_en",
            "[    2.231932] mlx4_en: Unknown symbol mlx4_test_async (err -2)",
            "[    2.232008] mlx4_en: Unknown symbol mlx4_update_qp (err -2)",
            "BOOTRIG kernel-log-end mlx4_en",
            "udhcpc: no lease, failing",
            "BOOTRIG addr eth0 none",
        ]);
        let cause = classify(&l).unwrap();
        assert_eq!(cause.kind, CauseKind::UnknownSymbol);
        assert_eq!(cause.phase, Some(Phase::Modules));
        assert_eq!(cause.evidence.len(), 4);
        assert_eq!(cause.evidence[0], "BOOTRIG insmod mlx4_en rc=2");
        assert_eq!(
            cause.detail,
            Some(Detail::Module {
                module: "mlx4_en".into(),
                names: vec!["mlx4_test_async".into(), "mlx4_update_qp".into()]
            })
        );
        assert!(
            cause.summary.contains("mlx4_test_async and 1 more"),
            "{}",
            cause.summary
        );
    }

    #[test]
    fn insmod_alone_still_names_the_module() {
        let l = lines(&[
            "BOOTRIG insmod ib_ipoib rc=1",
            "insmod: ERROR: could not insert module /lib/modules/x/ib_ipoib.ko: Unknown symbol in module",
        ]);
        let cause = classify(&l).unwrap();
        assert_eq!(cause.kind, CauseKind::UnknownSymbol);
        assert_eq!(cause.evidence.len(), 2);
        assert!(
            matches!(cause.detail, Some(Detail::Module { ref module, .. }) if module == "ib_ipoib")
        );
    }

    #[test]
    fn a_panic_after_vfs_is_initrd_not_loaded() {
        let l = lines(&[
            "[    1.50] No filesystem could mount root, tried:",
            "[    1.51] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)",
        ]);
        let cause = classify(&l).unwrap();
        assert_eq!(cause.kind, CauseKind::InitrdNotLoaded);
        assert_eq!(cause.phase, Some(Phase::Kernel));
        assert_eq!(cause.evidence.len(), 2);
    }

    #[test]
    fn a_plain_panic_names_its_reason_and_the_oops() {
        let l = lines(&[
            "[    1.0] BUG: kernel NULL pointer dereference, address: 0000000000000000",
            "[    1.1] RIP: 0010:foo+0x1/0x2",
            "[    1.2] Kernel panic - not syncing: Fatal exception",
        ]);
        let cause = classify(&l).unwrap();
        assert_eq!(cause.kind, CauseKind::KernelPanic);
        assert_eq!(cause.summary, "kernel panic: Fatal exception");
        assert_eq!(cause.evidence.len(), 2);
        assert!(cause.evidence[0].contains("BUG:"));
        assert_eq!(cause.phase, Some(Phase::Kernel));
    }

    #[test]
    fn a_module_failure_outranks_the_panic_it_causes() {
        let l = lines(&[
            "BOOTRIG insmod foo rc=1",
            "[ 2.0] foo: version magic '6.2.0 SMP mod_unload ' should be '6.1.0 SMP preempt mod_unload '",
            "insmod: can't insert '/lib/foo.ko': Exec format error",
            "[ 2.1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100",
        ]);
        let cause = classify(&l).unwrap();
        assert_eq!(cause.kind, CauseKind::VermagicMismatch);
        assert_eq!(cause.evidence.len(), 3);
        assert!(
            cause.summary.contains("\"6.2.0 SMP mod_unload \""),
            "{}",
            cause.summary
        );
    }

    #[test]
    fn a_panic_outranks_an_ignored_parameter_which_outranks_no_lease() {
        let ignored = "[ 2.0] mlx4_core: unknown parameter 'port_type_aray' ignored";
        let panic = "[ 3.0] Kernel panic - not syncing: Fatal exception";
        let no_lease = "udhcpc: no lease, failing";
        assert_eq!(
            classify(&lines(&[ignored, panic])).unwrap().kind,
            CauseKind::KernelPanic
        );
        let cause = classify(&lines(&[ignored, no_lease])).unwrap();
        assert_eq!(cause.kind, CauseKind::UnknownParameter);
        assert_eq!(
            cause.detail,
            Some(Detail::Module {
                module: "mlx4_core".into(),
                names: vec!["port_type_aray".into()]
            })
        );
        let old = "mlx4_core: Unknown parameter `bogus'";
        assert_eq!(
            classify(&lines(&[old])).unwrap().kind,
            CauseKind::UnknownParameter
        );
    }

    #[test]
    fn a_firmware_failure_the_boot_recovered_from_is_not_the_cause() {
        let l = lines(&[
            "Configuring (net0 52:54:00:12:34:56)...... Connection timed out (https://ipxe.org/4c106035)",
            "Configuring (net1 52:54:00:12:34:57)...... ok",
            "tftp://10.0.2.2/vmlinuz... ok",
            "EFI stub: Loaded initrd from command line option",
            "BOOTRIG done",
        ]);
        assert_eq!(classify(&l), None);
        let cause = classify(&l[..1]).unwrap();
        assert_eq!(cause.kind, CauseKind::NoDhcpOffer);
        assert_eq!(cause.phase, Some(Phase::IpxeDhcp));
    }

    #[test]
    fn ovmf_pxe_without_ipxe() {
        let l = lines(&[
            ">>Start PXE over IPv4.",
            "  NBP filename is boot.efi",
            "  PXE-E23: Client received TFTP error from server.",
        ]);
        let cause = classify(&l).unwrap();
        assert_eq!(cause.kind, CauseKind::BootFileNotFound);
        assert_eq!(cause.evidence.len(), 2);
        assert_eq!(
            cause.detail,
            Some(Detail::BootFile {
                url: "boot.efi".into()
            })
        );
        for no_offer in [
            "  PXE-E16: No valid offer received.",
            "  PXE-E18: Server response timeout.",
        ] {
            let cause = classify(&lines(&[">>Start PXE over IPv4.", no_offer])).unwrap();
            assert_eq!(cause.kind, CauseKind::NoDhcpOffer);
            assert_eq!(cause.phase, Some(Phase::IpxeDhcp));
        }
    }

    #[test]
    fn constructors_take_the_phase_and_the_console_tail() {
        let l = lines(&[
            "[ 0.1] Linux version 6.1",
            "",
            "BOOTRIG begin",
            "\x1b[0mlast",
        ]);
        let t = Cause::timeout(Phase::Init, &l);
        assert_eq!(t.kind, CauseKind::Timeout);
        assert_eq!(
            t.evidence,
            ["[ 0.1] Linux version 6.1", "BOOTRIG begin", "last"]
        );
        let e = Cause::qemu_exited(1, &l);
        assert_eq!(e.phase, Some(Phase::Init));
        assert_eq!(e.detail, Some(Detail::Exit { code: 1 }));
        let c = Cause::qemu_crashed(11, &l);
        assert!(c.summary.contains("SIGSEGV"), "{}", c.summary);
        assert_eq!(Cause::qemu_crashed(999, &[]).phase, Some(Phase::Firmware));
    }

    #[test]
    fn nothing_wrong_is_none_and_garbage_does_not_panic() {
        assert_eq!(classify(&lines(&["BOOTRIG begin", "BOOTRIG done"])), None);
        assert_eq!(classify(&[]), None);
        let junk = lines(&[
            "insmod: can't insert '",
            "insmod: ERROR: could not insert module ",
            ": Unknown symbol ",
            "x: version magic '",
            "[",
            "[ 1.0]",
            "BOOTRIG insmod",
            "tftp://",
            "Kernel panic - not syncing",
        ]);
        // "x: version magic '" is shaped like the kernel's line, so it wins over the panic.
        assert_eq!(classify(&junk).unwrap().kind, CauseKind::VermagicMismatch);
        assert_eq!(
            classify(&junk[..4]).map(|c| c.kind),
            Some(CauseKind::VermagicMismatch)
        );
        assert_eq!(classify(&junk[4..]).unwrap().kind, CauseKind::KernelPanic);
    }
}
