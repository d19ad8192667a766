//! Driving one boot on its serial console until it ends: the stanza finishes and the guest powers
//! off, a fatal line appears (a panic, an init the kernel cannot execute, firmware that found
//! nothing to boot), QEMU goes away, a
//! phase or the whole boot runs out of time, or the user interrupts. When the scenario asks for
//! shell steps, they are typed into the shell the stanza opens.

use std::time::Duration;

use rexpect::reader::Regex;

use crate::interrupt::Interrupt;

use super::fatal::{FATAL, RESCUE_SHELL_LINES};
use super::protocol::needles;
use super::serial::{needle, shell_command, Seen, SerialConsole, SerialError, TICK};
use super::shell_step::ShellStep;
use super::transcript::ConsoleLine;

/// What one `[[expect.shell]]` step got.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShellOutcome {
    pub command: String,
    /// None: the guest never answered.
    pub output: Option<String>,
    pub status: Option<i32>,
}

/// More console than any boot prints: a guest flooding it is stopped, not buffered forever.
pub const CONSOLE_CAP: u64 = 64 << 20;

/// How long output keeps being collected after a fatal line ([`FATAL`]): the classifier reads
/// the lines that explain it.
pub const AFTERMATH: Duration = Duration::from_secs(3);
/// How long one shell step may take.
pub const SHELL_STEP: Duration = Duration::from_secs(30);

/// How the boot ended, as the driver saw it; `P` is the watch's phase type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End<P> {
    /// The stanza reported done (and the shell steps ran); the guest powered off or was stopped.
    Finished,
    /// A fatal line: the text that matched.
    Fatal(String),
    /// QEMU reported a guest panic (pvpanic) without a console line saying so.
    Panicked,
    /// The console closed before the stanza finished: QEMU exited.
    Closed,
    /// A phase, or the whole boot (`phase` is where it was), took longer than allowed.
    TimedOut {
        phase: Option<P>,
        limit: Duration,
        whole: bool,
    },
    /// The user asked bootrig to stop.
    Interrupted,
}

/// What the driver needs from the rest of the run, besides the console. The phases are the
/// watch's own type (the verdict's `Phase` in a run): the driver only compares and times them,
/// so the console stage does not depend on the verdict.
pub trait Watch {
    type Phase: Clone + PartialEq + std::fmt::Debug;
    /// The phase the boot is in and when it began, from the lines so far.
    fn phase(&mut self, lines: &[ConsoleLine]) -> Option<(Self::Phase, Duration)>;
    /// The limit for a phase, if it has one.
    fn phase_limit(&self, phase: &Self::Phase) -> Option<Duration>;
    /// Whether QEMU signalled a guest panic (QMP GUEST_PANICKED).
    fn guest_panicked(&mut self) -> bool;
    /// Called about once per [`TICK`] with the current phase and the time since the guest started.
    fn progress(&mut self, phase: Option<&Self::Phase>, elapsed: Duration);
}

/// Drives the console until the boot ends. `shell` steps run when the stanza opens its shell.
pub fn drive<W: Watch>(
    console: &mut SerialConsole,
    watch: &mut W,
    total: Duration,
    shell: &[ShellStep],
    interrupt: &Interrupt,
) -> Result<(End<W::Phase>, Vec<ShellOutcome>), SerialError> {
    let goal = [needle(needles::DONE)?, needle(needles::SHELL)?];
    drive_to(console, watch, total, &goal, None, shell, interrupt)
}

/// Drives a boot without bootrig's stanza (a field initrd) until a console line (ANSI removed)
/// matches `until`; then the boot counts as finished.
pub fn drive_until<W: Watch>(
    console: &mut SerialConsole,
    watch: &mut W,
    total: Duration,
    until: &Regex,
    interrupt: &Interrupt,
) -> Result<End<W::Phase>, SerialError> {
    // Neither needle is ever seen: the goal is checked line by line.
    let never = needle(NEVER)?;
    let goal = [never.clone(), never];
    drive_to(console, watch, total, &goal, Some(until), &[], interrupt).map(|(end, _)| end)
}

/// A needle nothing matches.
const NEVER: &str = r"\A\z[^\s\S]";

/// `goal`: the "finished" needle, then the "shell opened" needle; `line_goal`: a pattern for
/// whole lines (a user's, with `^` and `$` meaning the line's ends).
fn drive_to<W: Watch>(
    console: &mut SerialConsole,
    watch: &mut W,
    total: Duration,
    goal: &[Regex; 2],
    line_goal: Option<&Regex>,
    shell: &[ShellStep],
    interrupt: &Interrupt,
) -> Result<(End<W::Phase>, Vec<ShellOutcome>), SerialError> {
    let mut needles = goal.to_vec();
    for f in FATAL {
        needles.push(needle(f)?);
    }
    needles.push(needle(&regex::escape(
        crate::netboot::ipxe::markers::FAILED,
    ))?);
    // An init that opened its rescue shell waits there forever: end now, not at the timeout.
    for line in RESCUE_SHELL_LINES {
        needles.push(needle(&regex::escape(line))?);
    }
    let mut answers = Vec::new();
    let mut checked = 0;
    loop {
        if interrupt.requested() {
            return Ok((End::Interrupted, answers));
        }
        let seen = console.expect_any(&needles, TICK)?;
        if let Some(goal) = line_goal {
            let lines = console.lines();
            if lines[checked.min(lines.len())..]
                .iter()
                .any(|l| goal.is_match(l.clean()))
            {
                return Ok((End::Finished, answers));
            }
            checked = lines.len();
        }
        if console.bytes() > CONSOLE_CAP {
            return Ok((
                End::Fatal(format!(
                    "the console passed {} MiB: a flooding guest",
                    CONSOLE_CAP >> 20
                )),
                answers,
            ));
        }
        let phase = watch.phase(&console.lines_so_far());
        let elapsed = console.elapsed();
        watch.progress(phase.as_ref().map(|(p, _)| p), elapsed);
        match seen {
            // Everything the verdict reads is on the console now: the runner stops QEMU rather
            // than wait for the guest's own power-off.
            Seen::Match { index: 0, .. } if shell.is_empty() => {
                return Ok((End::Finished, answers));
            }
            // Done with shell steps to come: the shell line follows.
            Seen::Match { index: 0, .. } => {}
            Seen::Match { index: 1, .. } => {
                let left = total.saturating_sub(console.elapsed());
                answers = run_shell(console, shell, left, interrupt)?;
                console.send_line("exit")?;
                return Ok((End::Finished, answers));
            }
            Seen::Match { text, .. } => {
                wait_closed(console, AFTERMATH, interrupt)?;
                // A needle may take the line end along.
                return Ok((End::Fatal(text.trim_end().to_string()), answers));
            }
            Seen::Closed => return Ok((End::Closed, answers)),
            Seen::Nothing => {}
        }
        if watch.guest_panicked() {
            wait_closed(console, AFTERMATH, interrupt)?;
            return Ok((End::Panicked, answers));
        }
        if elapsed > total {
            return Ok((
                End::TimedOut {
                    phase: phase.map(|(p, _)| p),
                    limit: total,
                    whole: true,
                },
                answers,
            ));
        }
        if let Some((name, began)) = &phase {
            if let Some(limit) = watch.phase_limit(name) {
                if elapsed.saturating_sub(*began) > limit {
                    return Ok((
                        End::TimedOut {
                            phase: Some(name.clone()),
                            limit,
                            whole: false,
                        },
                        answers,
                    ));
                }
            }
        }
    }
}

/// Runs the steps within `left` (the rest of the whole-boot limit); a step the guest never
/// answered, or one after an interrupt, gets no answer.
fn run_shell(
    console: &mut SerialConsole,
    steps: &[ShellStep],
    left: Duration,
    interrupt: &Interrupt,
) -> Result<Vec<ShellOutcome>, SerialError> {
    // `left` may be any Duration (a scenario's `timeout` is the user's): one past what an
    // Instant can hold means no deadline of the steps' own, only each step's SHELL_STEP.
    let until = std::time::Instant::now().checked_add(left);
    let remaining = || {
        until.map_or(left, |u| {
            u.saturating_duration_since(std::time::Instant::now())
        })
    };
    let prompt = needle(needles::PROMPT)?;
    let mut answers = Vec::new();
    let mut alive = matches!(
        console.expect_any(std::slice::from_ref(&prompt), SHELL_STEP.min(remaining()))?,
        Seen::Match { .. }
    );
    for step in steps {
        let got = if alive && !interrupt.requested() && !remaining().is_zero() {
            shell_command(console, &step.command, SHELL_STEP.min(remaining()))?
        } else {
            None
        };
        alive = got.is_some();
        answers.push(ShellOutcome {
            command: step.command.clone(),
            status: got.as_ref().map(|(_, rc)| *rc),
            output: got.map(|(out, _)| out),
        });
    }
    Ok(answers)
}

/// Keeps reading until the console closes or `grace` passes.
fn wait_closed(
    console: &mut SerialConsole,
    grace: Duration,
    interrupt: &Interrupt,
) -> Result<(), SerialError> {
    let until = console.elapsed().saturating_add(grace);
    // Only EOF or the bound ends the wait.
    let never = needle(NEVER)?;
    while console.elapsed() < until && !interrupt.requested() {
        if console.expect_any(std::slice::from_ref(&never), TICK)? == Seen::Closed {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, Write};
    use std::os::unix::net::UnixStream;
    use std::time::Instant;

    struct FakeWatch {
        limit: Option<Duration>,
        ticks: usize,
    }

    impl Watch for FakeWatch {
        type Phase = String;
        fn phase(&mut self, lines: &[ConsoleLine]) -> Option<(String, Duration)> {
            lines
                .iter()
                .rev()
                .find(|l| l.text.starts_with("phase "))
                .map(|l| (l.text[6..].to_string(), l.at))
        }
        fn phase_limit(&self, _: &String) -> Option<Duration> {
            self.limit
        }
        fn guest_panicked(&mut self) -> bool {
            false
        }
        fn progress(&mut self, _: Option<&String>, _: Duration) {
            self.ticks += 1;
        }
    }

    fn start() -> (SerialConsole, UnixStream, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let (ours, guest) = UnixStream::pair().unwrap();
        let log = std::fs::File::create(dir.path().join("c.log")).unwrap();
        (
            SerialConsole::start(ours, log, Instant::now()).unwrap(),
            guest,
            dir,
        )
    }

    fn watch(limit: Option<Duration>) -> FakeWatch {
        FakeWatch { limit, ticks: 0 }
    }

    /// Drives `c` with no shell steps and no interrupt.
    fn drive_plain(c: &mut SerialConsole, limit: Option<Duration>, total: Duration) -> End<String> {
        drive(c, &mut watch(limit), total, &[], &Interrupt::never())
            .unwrap()
            .0
    }

    #[test]
    fn done_then_poweroff_finishes() {
        let (mut c, mut guest, _d) = start();
        guest
            .write_all(b"phase kernel\r\nBOOTRIG begin\r\nBOOTRIG done\r\n")
            .unwrap();
        drop(guest);
        let mut w = watch(None);
        let (end, shell) = drive(
            &mut c,
            &mut w,
            Duration::from_secs(30),
            &[],
            &Interrupt::never(),
        )
        .unwrap();
        assert_eq!(end, End::Finished);
        assert!(shell.is_empty());
        assert!(w.ticks >= 1);
    }

    #[test]
    fn a_panic_ends_the_boot_with_its_line() {
        let (mut c, mut guest, _d) = start();
        guest
            .write_all(b"VFS: Unable to mount root fs on unknown-block(0,0)\r\n[ 1.0] Kernel panic - not syncing: VFS\r\n")
            .unwrap();
        drop(guest);
        let end = drive_plain(&mut c, None, Duration::from_secs(30));
        assert_eq!(end, End::Fatal("Kernel panic - not syncing".into()));
        assert!(c.lines().iter().any(|l| l.text.starts_with("VFS")));
    }

    #[test]
    fn a_silent_phase_times_out_and_names_the_phase() {
        let (mut c, mut guest, _d) = start();
        guest.write_all(b"phase ipxe-dhcp\r\n").unwrap();
        let end = drive_plain(
            &mut c,
            Some(Duration::from_millis(300)),
            Duration::from_secs(30),
        );
        assert_eq!(
            end,
            End::TimedOut {
                phase: Some("ipxe-dhcp".into()),
                limit: Duration::from_millis(300),
                whole: false
            }
        );
    }

    #[test]
    fn the_whole_boot_limit_names_the_phase_it_ran_out_in() {
        let (mut c, mut guest, _d) = start();
        guest.write_all(b"phase boot-files\r\n").unwrap();
        let end = drive_plain(&mut c, None, Duration::from_millis(200));
        assert_eq!(
            end,
            End::TimedOut {
                phase: Some("boot-files".into()),
                limit: Duration::from_millis(200),
                whole: true
            }
        );
    }

    #[test]
    fn the_ipxe_scripts_failure_line_is_fatal() {
        let (mut c, mut guest, _d) = start();
        guest
            .write_all(b"http://10.0.2.2:4242/initrd.img... Not found (http://ipxe.org/2d0c613b)\r\nbootrig: netboot failed (iPXE error 0x2d0c613b, see the line above)\r\n")
            .unwrap();
        let end = drive_plain(&mut c, None, Duration::from_secs(30));
        assert_eq!(end, End::Fatal("bootrig: netboot failed".into()));
    }

    #[test]
    fn an_init_in_its_rescue_shell_ends_the_boot() {
        let (mut c, mut guest, _d) = start();
        guest
            .write_all(b"[   11.7] dracut: FATAL: No or empty root= argument\r\n\r\nDropping to debug shell.\r\n\r\ndracut:/# ")
            .unwrap();
        let end = drive_plain(&mut c, None, Duration::from_secs(30));
        assert_eq!(end, End::Fatal("Dropping to debug shell.".into()));
    }

    #[test]
    fn an_init_the_kernel_cannot_execute_ends_the_boot() {
        let (mut c, mut guest, _d) = start();
        // What a busybox initrd does next: /bin/sh as init, at its prompt forever.
        guest
            .write_all(b"[    1.9] Run /init as init process\r\n[    1.9] Failed to execute /init (error -2)\r\n[    1.9] Run /sbin/init as init process\r\n/bin/sh: can't access tty; job control turned off\r\n~ # ")
            .unwrap();
        let start = Instant::now();
        let end = drive_plain(&mut c, None, Duration::from_secs(60));
        assert_eq!(end, End::Fatal("Failed to execute /init (error -2)".into()));
        // AFTERMATH, not the boot's limit.
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn a_guest_panic_reported_by_qemu_ends_the_boot() {
        struct Panicking;
        impl Watch for Panicking {
            type Phase = String;
            fn phase(&mut self, _: &[ConsoleLine]) -> Option<(String, Duration)> {
                None
            }
            fn phase_limit(&self, _: &String) -> Option<Duration> {
                None
            }
            fn guest_panicked(&mut self) -> bool {
                true
            }
            fn progress(&mut self, _: Option<&String>, _: Duration) {}
        }
        let (mut c, _guest, _d) = start();
        let (end, _) = drive(
            &mut c,
            &mut Panicking,
            Duration::from_secs(30),
            &[],
            &Interrupt::never(),
        )
        .unwrap();
        assert_eq!(end, End::Panicked);
    }

    #[test]
    fn until_matches_whole_lines_without_escape_sequences() {
        let (mut c, mut guest, _d) = start();
        guest
            .write_all(b"Loading...\r\n\x1b[1mWelcome to Debian\x1b[0m\r\n")
            .unwrap();
        let until = Regex::new("^Welcome to Debian$").unwrap();
        let end = drive_until(
            &mut c,
            &mut watch(None),
            Duration::from_secs(30),
            &until,
            &Interrupt::never(),
        )
        .unwrap();
        assert_eq!(end, End::Finished);
    }

    #[test]
    fn shell_steps_that_outlive_the_boot_limit_get_no_answer() {
        let (mut c, mut guest, _d) = start();
        // The shell opens but never answers.
        guest
            .write_all(b"BOOTRIG done\r\nBOOTRIG shell\r\nBOOTRIG-SHELL# ")
            .unwrap();
        let steps = vec![ShellStep {
            command: "sleep 100".into(),
            patterns: vec![],
            status: 0,
        }];
        let start = std::time::Instant::now();
        let (end, answers) = drive(
            &mut c,
            &mut watch(None),
            Duration::from_secs(2),
            &steps,
            &Interrupt::never(),
        )
        .unwrap();
        assert_eq!(end, End::Finished);
        assert_eq!(answers[0].status, None);
        // Bounded by the boot's 2 s, not by one step's SHELL_STEP (30 s): the bound sits well
        // below SHELL_STEP so a loaded machine cannot fail it, and above it is the defect.
        assert!(
            start.elapsed() < SHELL_STEP - Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn shell_steps_with_a_limit_past_any_instant_do_not_panic() {
        let (mut c, guest, _d) = start();
        let mut w = guest.try_clone().unwrap();
        let fake = std::thread::spawn(move || {
            w.write_all(b"BOOTRIG done\r\nBOOTRIG shell\r\nBOOTRIG-SHELL# ")
                .unwrap();
            let mut r = std::io::BufReader::new(guest);
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            w.write_all(b"\r\nBOOTRIG shell-rc=0\r\nBOOTRIG-SHELL# ")
                .unwrap();
            line.clear();
            r.read_line(&mut line).unwrap();
        });
        let steps = vec![ShellStep {
            command: "true".into(),
            patterns: vec![],
            status: 0,
        }];
        // `timeout = "18446744073709551615s"` in a scenario.
        let (end, answers) = drive(
            &mut c,
            &mut watch(None),
            Duration::from_secs(u64::MAX),
            &steps,
            &Interrupt::never(),
        )
        .unwrap();
        fake.join().unwrap();
        assert_eq!(end, End::Finished);
        assert_eq!(answers[0].status, Some(0));
    }

    #[test]
    fn an_interrupt_stops_the_wait_and_a_closed_console_ends_it() {
        let (mut c, _guest, _d) = start();
        let stop = Interrupt::never();
        stop.request();
        let (end, _) = drive(
            &mut c,
            &mut watch(None),
            Duration::from_secs(30),
            &[],
            &stop,
        )
        .unwrap();
        assert_eq!(end, End::Interrupted);
        let (mut c, guest, _d) = start();
        drop(guest);
        let end = drive_plain(&mut c, None, Duration::from_secs(30));
        assert_eq!(end, End::Closed);
    }

    #[test]
    fn shell_steps_run_after_done() {
        let (mut c, guest, _d) = start();
        let mut w = guest.try_clone().unwrap();
        let fake = std::thread::spawn(move || {
            w.write_all(b"BOOTRIG done\r\nBOOTRIG shell\r\nBOOTRIG-SHELL# ")
                .unwrap();
            let mut r = std::io::BufReader::new(guest);
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            w.write_all(
                format!(
                    "{}\r\nhello\r\nBOOTRIG shell-rc=0\r\nBOOTRIG-SHELL# ",
                    line.trim_end()
                )
                .as_bytes(),
            )
            .unwrap();
            line.clear();
            r.read_line(&mut line).unwrap();
            assert_eq!(line.trim_end(), "exit");
            // The guest powers off: the console closes.
        });
        let steps = vec![ShellStep {
            command: "echo hello".into(),
            patterns: vec!["hello".into()],
            status: 0,
        }];
        let (end, answers) = drive(
            &mut c,
            &mut watch(None),
            Duration::from_secs(30),
            &steps,
            &Interrupt::never(),
        )
        .unwrap();
        fake.join().unwrap();
        assert_eq!(end, End::Finished);
        assert_eq!(answers[0].status, Some(0));
        assert_eq!(answers[0].output.as_deref(), Some("hello"));
    }
}
