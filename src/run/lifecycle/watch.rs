//! The boot's watch for the console driver: phases and their limits, QMP's panic event, the
//! restart-mid-boot fault, and live progress.

use std::sync::mpsc::Receiver;
use std::time::Duration;

use crate::console::driver::Watch;
use crate::console::ConsoleLine;
use crate::net::Segment;
use crate::qemu::qmp::QmpEvent;
use crate::report::progress::Stage;
use crate::report::Progress;
use crate::run::target::Target;
use crate::scenario::{Backend, DhcpServer};
use crate::verdict::phases::{detect, Phase};

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
    limits: Vec<(Phase, Duration)>,
    panicked: bool,
    /// The phase last reported: progress gets a line per change, a tick otherwise.
    shown: Option<Option<Phase>>,
}

/// What the watch saw that the judge needs, once QEMU is gone.
pub(super) struct Watched {
    /// QMP reported GUEST_PANICKED.
    pub panicked: bool,
    /// The restart-mid-boot fault was due and failed.
    pub restart_error: Option<String>,
}

/// Phase limits when a scenario gives none: iPXE's own DHCP retries take under a minute, so a
/// longer silence there is a network with no DHCP server.
const DEFAULT_PHASE_LIMITS: &[(Phase, Duration)] = &[(Phase::IpxeDhcp, Duration::from_secs(90))];

impl<'a> BootWatch<'a> {
    pub(super) fn new(
        target: &Target,
        ctx: &'a Context,
        events: Receiver<QmpEvent>,
        segment: Option<&'a mut Segment>,
    ) -> Self {
        let mut limits = DEFAULT_PHASE_LIMITS.to_vec();
        for &(phase, limit) in &target.expect.phase_timeouts {
            limits.retain(|(p, _)| *p != phase);
            limits.push((phase, limit));
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
    type Phase = Phase;

    fn phase(&mut self, lines: &[ConsoleLine]) -> Option<(Phase, Duration)> {
        detect(lines).last().map(|m| (m.phase, m.at))
    }

    fn phase_limit(&self, phase: &Phase) -> Option<Duration> {
        self.limits
            .iter()
            .find(|(p, _)| p == phase)
            .map(|(_, d)| *d)
    }

    fn guest_panicked(&mut self) -> bool {
        self.drain();
        self.panicked
    }

    fn progress(&mut self, phase: Option<&Phase>, elapsed: Duration) {
        let phase = phase.copied();
        // Once the kernel runs, the boot files are fetched.
        if self.restart_pending && phase >= Some(Phase::Kernel) {
            // The restart fault lands between the firmware's DHCP and the guest's: once the
            // kernel runs, no TFTP transfer is in flight, and the guest's DHCP is yet to come.
            if let Some(seg) = self.segment.as_mut() {
                self.restart_pending = false;
                if let Err(e) = seg.restart_dhcp() {
                    self.restart_error = Some(crate::error_chain(&e));
                }
            }
        }
        if self.shown == Some(phase) {
            self.progress.tick();
        } else {
            let stage = phase.map_or(Stage::Starting, Stage::Boot);
            self.progress.stage(&self.id, stage, elapsed);
            self.shown = Some(phase);
        }
    }
}
