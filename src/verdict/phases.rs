//! Where a boot is: the phases a network boot goes through, each proven by the first console line
//! that only that phase prints. A phase is recorded only after the ones before it, so a late
//! line that merely mentions an earlier phase (a URL in a kernel message) cannot move the boot
//! backwards. Phases may be missing: a direct boot has no firmware or iPXE, and with
//! `loglevel=4` the kernel's own banner is not on the console.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::console::{ConsoleLine, GuestLine};
use crate::names::Named;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Phase {
    /// SeaBIOS or OVMF, before any network boot program.
    Firmware,
    /// iPXE started and is asking for an address.
    IpxeDhcp,
    /// iPXE fetches its script, the kernel and the initrd.
    BootFiles,
    /// The kernel (or its EFI stub / decompressor) is running.
    Kernel,
    /// The initrd's init is running.
    Init,
    /// bootrig's stanza is loading modules.
    Modules,
    /// The interface has an IPv4 address.
    Address,
    /// The stanza finished.
    Done,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first console line proving a phase began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhaseMark {
    pub phase: Phase,
    #[serde(serialize_with = "seconds")]
    pub at: Duration,
    /// Index into the transcript's lines.
    pub line: usize,
}

/// How long one phase lasted: from its mark to the next mark (or the end of the boot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhaseSpan {
    pub phase: Phase,
    #[serde(serialize_with = "seconds")]
    pub start: Duration,
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The phase `line` (a cleaned console line) proves, if any.
pub fn phase_of(line: &str) -> Option<Phase> {
    let line = line.trim();
    if line.contains("SeaBIOS (version") || line.starts_with("BdsDxe:") {
        return Some(Phase::Firmware);
    }
    if line.starts_with("iPXE initialising devices")
        || (line.starts_with("iPXE ") && line.contains("Open Source Network Boot Firmware"))
        || line.starts_with("Configuring (net")
    {
        return Some(Phase::IpxeDhcp);
    }
    if ["tftp://", "http://", "https://"]
        .iter()
        .any(|scheme| line.starts_with(scheme))
        || line.contains("bootrig: fetching")
    {
        return Some(Phase::BootFiles);
    }
    if line.contains("Linux version ")
        || line.starts_with("EFI stub:")
        || line.starts_with("Decompressing Linux")
        // The kernel's real-mode setup code, booted by a BIOS loader (iPXE on SeaBIOS).
        || line.starts_with("Probing EDD")
    {
        return Some(Phase::Kernel);
    }
    if (line.contains("Run /") && line.contains(" as init process"))
        || line.starts_with("Loading, please wait...")
        || line.contains("Freeing unused kernel image")
    {
        return Some(Phase::Init);
    }
    match GuestLine::parse(line) {
        Some(GuestLine::Begin) => Some(Phase::Init),
        Some(GuestLine::Insmod { .. }) => Some(Phase::Modules),
        Some(GuestLine::Addr { cidr: Some(_), .. }) => Some(Phase::Address),
        Some(GuestLine::Done) => Some(Phase::Done),
        // Any other kernel log line: with loglevel=4 the banner is not on the console.
        _ if printk_timestamp(line) => Some(Phase::Kernel),
        _ => None,
    }
}

/// OVMF prints no text on the serial port before iPXE; its terminal driver only sets the mode
/// (`ESC [ = 3 h`, 80x25) and clears the screen. That sequence is the one sign of the firmware.
fn uefi_console(raw: &str) -> Option<Phase> {
    raw.contains("\x1b[=3h").then_some(Phase::Firmware)
}

/// A kernel log line: `[    1.234567] ...`.
fn printk_timestamp(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('[') else {
        return false;
    };
    let Some((stamp, _)) = rest.split_once(']') else {
        return false;
    };
    let stamp = stamp.trim_start();
    match stamp.split_once('.') {
        Some((secs, micros)) => {
            !secs.is_empty()
                && !micros.is_empty()
                && secs.bytes().all(|b| b.is_ascii_digit())
                && micros.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// The first line proving each phase, in phase order.
pub fn detect(lines: &[ConsoleLine]) -> Vec<PhaseMark> {
    let mut marks: Vec<PhaseMark> = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let Some(phase) = phase_of(line.clean()).or_else(|| uefi_console(&line.text)) else {
            continue;
        };
        if marks.last().is_none_or(|last| phase > last.phase) {
            marks.push(PhaseMark {
                phase,
                at: line.at,
                line: index,
            });
        }
    }
    marks
}

/// The phase the boot was in when it stopped: the last one that began. Before any line proves
/// anything, the firmware is running.
pub fn current(marks: &[PhaseMark]) -> Phase {
    marks.last().map_or(Phase::Firmware, |m| m.phase)
}

/// The phase the boot was in when it printed line `index`.
pub fn phase_at(marks: &[PhaseMark], index: usize) -> Phase {
    marks
        .iter()
        .take_while(|m| m.line <= index)
        .last()
        .map_or(Phase::Firmware, |m| m.phase)
}

/// How long each detected phase lasted; the last one runs until `end` (when the boot stopped).
pub fn durations(marks: &[PhaseMark], end: Duration) -> Vec<PhaseSpan> {
    marks
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let until = marks.get(i + 1).map_or(end, |next| next.at);
            PhaseSpan {
                phase: m.phase,
                start: m.at,
                duration: until.saturating_sub(m.at),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::VariantArray;

    fn lines(texts: &[&str]) -> Vec<ConsoleLine> {
        crate::console::test_lines(texts)
    }

    #[test]
    fn names_are_kebab_case_in_serde_and_display() {
        crate::names::assert_serde_names::<Phase>();
        for &phase in Phase::VARIANTS {
            let json = serde_json::to_string(&phase).unwrap();
            assert_eq!(json, format!("\"{phase}\""));
            let back: Phase = serde_json::from_str(&json).unwrap();
            assert_eq!(back, phase);
        }
        assert_eq!(Phase::IpxeDhcp.to_string(), "ipxe-dhcp");
    }

    #[test]
    fn markers_from_each_phase() {
        let cases = [
            ("SeaBIOS (version 1.16.2-debian-1.16.2-1)", Phase::Firmware),
            (
                "BdsDxe: loading Boot0001 \"UEFI PXEv4 (MAC:525400123456)\" from PciRoot(0x0)",
                Phase::Firmware,
            ),
            (
                "iPXE 1.0.0+git-20190125.36a4c85-5.1 -- Open Source Network Boot Firmware -- http://ipxe.org",
                Phase::IpxeDhcp,
            ),
            ("Configuring (net0 52:54:00:12:34:56)...... ok", Phase::IpxeDhcp),
            ("tftp://10.0.2.2/vmlinuz... ok", Phase::BootFiles),
            ("bootrig: fetching kernel", Phase::BootFiles),
            ("EFI stub: Loaded initrd from command line option", Phase::Kernel),
            ("Probing EDD (edd=off to disable)... o", Phase::Kernel),
            ("[    0.000000] Linux version 6.1.0-56-amd64", Phase::Kernel),
            ("[    2.5] anything the kernel logs", Phase::Kernel),
            ("[    1.815938] Run /init as init process", Phase::Init),
            ("Loading, please wait...", Phase::Init),
            ("BOOTRIG insmod virtio rc=0", Phase::Modules),
            ("BOOTRIG addr eth0 10.0.2.15/24", Phase::Address),
            ("BOOTRIG done", Phase::Done),
        ];
        for (line, phase) in cases {
            assert_eq!(phase_of(line), Some(phase), "{line}");
        }
        for line in [
            "BOOTRIG addr eth0 none",
            "[ x.1] not a timestamp",
            "[] nothing",
            "net0: 10.0.2.15/255.255.255.0 gw 10.0.2.2",
        ] {
            assert_eq!(phase_of(line), None, "{line}");
        }
    }

    #[test]
    fn detect_keeps_the_first_line_of_each_phase_and_never_goes_back() {
        let l = lines(&[
            "\x1b[2J\x1b[01;01HiPXE 1.0.0+ -- Open Source Network Boot Firmware -- http://ipxe.org",
            "Configuring (net0 52:54:00:12:34:56)...... ok",
            "tftp://10.0.2.2/boot.ipxe... ok",
            "tftp://10.0.2.2/vmlinuz... ok",
            "EFI stub: Loaded initrd from command line option",
            "Configuring (net0 52:54:00:12:34:56) printed again by mistake",
            "Loading, please wait...",
            "BOOTRIG begin",
            "BOOTRIG insmod a rc=0",
            "BOOTRIG insmod b rc=0",
            "BOOTRIG addr eth0 none",
        ]);
        let marks = detect(&l);
        let got: Vec<(Phase, usize)> = marks.iter().map(|m| (m.phase, m.line)).collect();
        assert_eq!(
            got,
            [
                (Phase::IpxeDhcp, 0),
                (Phase::BootFiles, 2),
                (Phase::Kernel, 4),
                (Phase::Init, 6),
                (Phase::Modules, 8),
            ]
        );
        assert_eq!(marks[2].at, Duration::from_millis(400));
        assert_eq!(current(&marks), Phase::Modules);
        assert_eq!(phase_at(&marks, 3), Phase::BootFiles);
        assert_eq!(current(&[]), Phase::Firmware);
    }

    #[test]
    fn durations_run_to_the_next_mark_and_the_last_to_the_end() {
        let l = lines(&["\x1b[2J\x1b[=3h", "x", "EFI stub: y", "BOOTRIG done"]);
        let spans = durations(&detect(&l), Duration::from_millis(1000));
        let got: Vec<(Phase, u128)> = spans
            .iter()
            .map(|s| (s.phase, s.duration.as_millis()))
            .collect();
        assert_eq!(
            got,
            [
                (Phase::Firmware, 200),
                (Phase::Kernel, 100),
                (Phase::Done, 700)
            ]
        );
        // An end before the last mark (a clock quirk) gives zero, not a panic.
        assert_eq!(
            durations(&detect(&l), Duration::ZERO)[2].duration,
            Duration::ZERO
        );
    }
}
