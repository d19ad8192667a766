//! The boot's watch for the console driver: phases and their limits, QMP's panic event, the
//! restart-mid-boot fault, and live progress.

use std::sync::mpsc::Receiver;
use std::time::Duration;

use crate::console::ConsoleLine;
use crate::net::Segment;
use crate::qemu::qmp::QmpEvent;
use crate::report::Progress;
use crate::run::drive::Watch;
use crate::run::target::Target;
use crate::scenario::{Backend, DhcpServer};
use crate::verdict::phases::detect;

use super::Context;

/// The boot's phases and limits for the driver, QMP events, and live progress.
pub(super) struct BootWatch<'a> {
    id: String,
    /// The dnsmasq segment, whose faults act while the boot runs.
    segment: Option<&'a mut Segment>,
    /// A `restart-mid-boot` fault not yet done.
    restart_pending: bool,
    restart_error: Option<String>,
    progress: &'a Progress,
    events: Receiver<QmpEvent>,
    limits: Vec<(String, Duration)>,
    panicked: bool,
    /// The phase last reported: progress gets a line per change, a tick otherwise.
    shown: Option<String>,
}

/// What the watch saw that the judge needs, once QEMU is gone.
pub(super) struct Watched {
    /// QMP reported GUEST_PANICKED.
    pub panicked: bool,
    /// The restart-mid-boot fault was due and failed.
    pub restart_error: Option<String>,
}

/// Phases in which the kernel runs: the boot files are fetched.
const KERNEL_OR_LATER: &[&str] = &["kernel", "init", "modules", "address", "done"];

/// Phase limits when a scenario gives none: iPXE's own DHCP retries take under a minute, so a
/// longer silence there is a network with no DHCP server.
const DEFAULT_PHASE_LIMITS: &[(&str, Duration)] = &[("ipxe-dhcp", Duration::from_secs(90))];

impl<'a> BootWatch<'a> {
    pub(super) fn new(
        target: &Target,
        ctx: &'a Context,
        events: Receiver<QmpEvent>,
        segment: Option<&'a mut Segment>,
    ) -> Self {
        let mut limits: Vec<(String, Duration)> = DEFAULT_PHASE_LIMITS
            .iter()
            .map(|(p, d)| (p.to_string(), *d))
            .collect();
        for (phase, limit) in &target.expect.phase_timeouts {
            limits.retain(|(p, _)| p != phase);
            limits.push((phase.clone(), *limit));
        }
        let restart_pending = matches!(
            &target.backend,
            Backend::Dnsmasq(DhcpServer {
                fault: Some(crate::net::DhcpFault::RestartMidBoot),
                ..
            })
        );
        Self {
            id: target.id.clone(),
            segment,
            restart_pending,
            restart_error: None,
            progress: ctx.progress,
            events,
            limits,
            panicked: false,
            shown: None,
        }
    }

    fn drain(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            if event.name == "GUEST_PANICKED" {
                self.panicked = true;
            }
        }
    }

    /// Ends the watch (after QEMU stopped, so every QMP event is in) and releases the segment.
    pub(super) fn finish(mut self) -> Watched {
        self.drain();
        Watched {
            panicked: self.panicked,
            restart_error: self.restart_error.take(),
        }
    }
}

impl Watch for BootWatch<'_> {
    fn phase(&mut self, lines: &[ConsoleLine]) -> Option<(String, Duration)> {
        detect(lines)
            .last()
            .map(|m| (m.phase.name().to_string(), m.at))
    }

    fn phase_limit(&self, phase: &str) -> Option<Duration> {
        self.limits
            .iter()
            .find(|(p, _)| p == phase)
            .map(|(_, d)| *d)
    }

    fn guest_panicked(&mut self) -> bool {
        self.drain();
        self.panicked
    }

    fn progress(&mut self, phase: Option<&str>, elapsed: Duration) {
        let phase = phase.unwrap_or("starting");
        if self.restart_pending && KERNEL_OR_LATER.contains(&phase) {
            // The restart fault lands between the firmware's DHCP and the guest's: once the
            // kernel runs, no TFTP transfer is in flight, and the guest's DHCP is yet to come.
            if let Some(seg) = self.segment.as_mut() {
                self.restart_pending = false;
                if let Err(e) = seg.restart_dhcp() {
                    self.restart_error = Some(e.to_string());
                }
            }
        }
        if self.shown.as_deref() == Some(phase) {
            self.progress.tick();
        } else {
            self.progress.phase(&self.id, phase, elapsed);
            self.shown = Some(phase.to_string());
        }
    }
}
