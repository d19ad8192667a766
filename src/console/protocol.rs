//! The guest protocol: every line bootrig's stanza (harness/stanza.sh) prints on the console,
//! as one typed vocabulary, and the lines bootrig itself types into the guest shell. This is
//! the only place that spells `BOOTRIG …`; everything else reads [`GuestLine`]s.
//!
//! A protocol line starts with [`MARK`] (after leading blanks, on the cleaned line); kernel
//! messages may come between protocol lines but never inside one (the stanza writes each line
//! in one write with the console log level lowered).

use serde::Serialize;

/// What starts every protocol line.
pub const MARK: &str = "BOOTRIG ";

/// The prompt of the shell the stanza opens for `[[expect.shell]]` (its `PS1`).
pub const SHELL_PROMPT: &str = "BOOTRIG-SHELL# ";

/// `BOOTRIG done` as a cleaned console line shows it, for a regular expression over whole
/// lines (it holds no regex metacharacter).
pub const DONE_LINE: &str = "BOOTRIG done";

/// Needles for the expect session, which reads raw bytes (regex syntax, line end included so a
/// line is matched only once it is complete).
pub mod needles {
    /// `BOOTRIG done`: the stanza finished.
    pub const DONE: &str = r"BOOTRIG done\r?\n";
    /// `BOOTRIG shell`: the stanza opened its shell.
    pub const SHELL: &str = r"BOOTRIG shell\r?\n";
    /// The prompt of that shell.
    pub const PROMPT: &str = r"BOOTRIG-SHELL# ";
    /// The status line [`super::shell_command`] asks for; group 1 is the status. Anchored at
    /// the line's end: the number may arrive in pieces.
    pub const SHELL_RC: &str = r"BOOTRIG shell-rc=(-?\d+)\r?\n";
}

/// The line bootrig types to run `command` in the guest shell and learn its status: `eval` of
/// the quoted command (a trailing `&` or `;`, or a `# comment`, cannot swallow the status
/// echo), then a [`GuestLine::ShellRc`] line. The marker is built by the shell (`$?`), so the
/// echoed command line itself never matches [`needles::SHELL_RC`].
pub fn shell_command(command: &str) -> String {
    let quoted = crate::shell::single_quote(command);
    format!("eval {quoted}; echo \"{MARK}shell-rc=$?\"")
}

/// Whether `line` is the terminal's echo of a [`shell_command`] line (it shows the unexpanded
/// status echo).
pub fn is_shell_command_echo(line: &str) -> bool {
    line.contains("shell-rc=$?")
}

/// What the stanza reported for one module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum InsmodResult {
    /// insmod ran and returned this code.
    Ran { rc: i32 },
    /// The module was in /proc/modules before the stanza got to it.
    AlreadyLoaded,
}

/// One protocol line, borrowing from the console line it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestLine<'a> {
    /// `BOOTRIG begin`: the stanza started.
    Begin,
    /// `BOOTRIG done`: the stanza finished.
    Done,
    /// `BOOTRIG insmod NAME rc=N` or `BOOTRIG insmod NAME already-loaded`.
    Insmod {
        module: &'a str,
        result: InsmodResult,
    },
    /// `BOOTRIG kernel-log-begin NAME`: what the kernel logged during NAME's insmod follows.
    KernelLogBegin { module: &'a str },
    /// `BOOTRIG kernel-log-end NAME`.
    KernelLogEnd,
    /// `BOOTRIG modules-begin`: `/proc/modules` verbatim follows.
    ModulesBegin,
    /// `BOOTRIG modules-end`.
    ModulesEnd,
    /// `BOOTRIG dhcp IFACE CLIENT rc=N`.
    Dhcp {
        interface: &'a str,
        client: &'a str,
        rc: i32,
    },
    /// `BOOTRIG interface IFACE missing`: the stanza waited for it in vain.
    InterfaceMissing { interface: &'a str },
    /// `BOOTRIG static IFACE rc=N`.
    Static { interface: &'a str, rc: i32 },
    /// `BOOTRIG addr IFACE CIDR`, or `BOOTRIG addr IFACE none` (`cidr` None).
    Addr {
        interface: &'a str,
        cidr: Option<&'a str>,
    },
    /// `BOOTRIG ib-port DEVICE PORT state=4: ACTIVE phys=5: LinkUp`, printed when an IPoIB
    /// interface has no address.
    IbPort {
        device: &'a str,
        port: &'a str,
        /// As sysfs says it (`4: ACTIVE`); None when the line has no `state=`.
        state: Option<&'a str>,
    },
    /// `BOOTRIG rdma DEVICE …`: Soft-RoCE.
    Rdma { device: &'a str, event: Rdma<'a> },
    /// `BOOTRIG shell`: the stanza opened a shell on the console.
    Shell,
    /// `BOOTRIG shell-rc=N`: the status of a command bootrig typed.
    ShellRc(i32),
    /// `BOOTRIG poweroff-failed`.
    PoweroffFailed,
    /// The marker, then words this vocabulary does not have (kept, never ignored silently).
    Garbled,
}

/// The words after `BOOTRIG rdma DEVICE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rdma<'a> {
    /// `link-add NETDEV rc=N`.
    LinkAdd { netdev: &'a str, rc: i32 },
    /// `missing`: no such device after the link add.
    Missing,
    /// `port N STATE link_layer=L`.
    Port {
        port: u32,
        /// As the kernel names it: `ACTIVE`, `DOWN`, `INIT`…
        state: &'a str,
        link_layer: &'a str,
    },
    /// `gid INDEX ADDRESS`.
    Gid,
    /// `test CHECK TOOL rc=N timeout=S`.
    Test {
        check: &'a str,
        tool: &'a str,
        rc: i32,
        timeout_secs: u32,
    },
    /// `test CHECK skipped WHY`.
    TestSkipped { check: &'a str, why: &'a str },
}

impl Rdma<'_> {
    /// A test that ran and did not exit 0, or one that was skipped.
    pub fn test_failed(&self) -> bool {
        match self {
            Rdma::Test { rc, .. } => *rc != 0,
            Rdma::TestSkipped { .. } => true,
            _ => false,
        }
    }
}

/// `rc=N`.
fn rc(word: &str) -> Option<i32> {
    word.strip_prefix("rc=")?.parse().ok()
}

impl<'a> GuestLine<'a> {
    /// The protocol line `line` (a cleaned console line) is, or None when it is not one.
    pub fn parse(line: &'a str) -> Option<GuestLine<'a>> {
        let rest = line.trim_start().strip_prefix(MARK)?;
        let words: Vec<&str> = rest.split_whitespace().collect();
        Some(Self::from_words(rest, &words).unwrap_or(GuestLine::Garbled))
    }

    fn from_words(rest: &'a str, words: &[&'a str]) -> Option<GuestLine<'a>> {
        Some(match *words {
            ["begin", ..] => GuestLine::Begin,
            ["done", ..] => GuestLine::Done,
            ["modules-begin"] => GuestLine::ModulesBegin,
            ["modules-end", ..] => GuestLine::ModulesEnd,
            ["insmod", module, "already-loaded"] => GuestLine::Insmod {
                module,
                result: InsmodResult::AlreadyLoaded,
            },
            ["insmod", module, status] => GuestLine::Insmod {
                module,
                result: InsmodResult::Ran { rc: rc(status)? },
            },
            ["kernel-log-begin", module] => GuestLine::KernelLogBegin { module },
            ["kernel-log-end", ..] => GuestLine::KernelLogEnd,
            ["dhcp", interface, client, status] => GuestLine::Dhcp {
                interface,
                client,
                rc: rc(status)?,
            },
            ["interface", interface, "missing"] => GuestLine::InterfaceMissing { interface },
            ["static", interface, status] => GuestLine::Static {
                interface,
                rc: rc(status)?,
            },
            ["addr", interface, "none"] => GuestLine::Addr {
                interface,
                cidr: None,
            },
            ["addr", interface, cidr] => GuestLine::Addr {
                interface,
                cidr: Some(cidr),
            },
            ["ib-port", device, port, ..] => GuestLine::IbPort {
                device,
                port,
                state: rest
                    .split_once("state=")
                    .map(|(_, r)| r.split(" phys=").next().unwrap_or(r).trim()),
            },
            ["rdma", device, ref event @ ..] => GuestLine::Rdma {
                device,
                event: Rdma::from_words(event)?,
            },
            ["shell"] => GuestLine::Shell,
            [status] if status.starts_with("shell-rc=") => {
                GuestLine::ShellRc(status["shell-rc=".len()..].parse().ok()?)
            }
            ["poweroff-failed"] => GuestLine::PoweroffFailed,
            _ => return None,
        })
    }

    /// The insmod of `module` that ran and failed.
    pub fn failed_insmod(&self) -> Option<&'a str> {
        match *self {
            GuestLine::Insmod {
                module,
                result: InsmodResult::Ran { rc },
            } if rc != 0 => Some(module),
            _ => None,
        }
    }
}

impl<'a> Rdma<'a> {
    fn from_words(words: &[&'a str]) -> Option<Rdma<'a>> {
        Some(match *words {
            ["link-add", netdev, status] => Rdma::LinkAdd {
                netdev,
                rc: rc(status)?,
            },
            ["missing"] => Rdma::Missing,
            ["port", port, state, link_layer] => Rdma::Port {
                port: port.parse().ok()?,
                state,
                link_layer: link_layer.strip_prefix("link_layer=")?,
            },
            ["gid", ..] => Rdma::Gid,
            ["test", check, "skipped", why] => Rdma::TestSkipped { check, why },
            // A test line whose status a console glitch mangled still says the test ran and did
            // not visibly pass: it counts as failed (rc -1), never as garbled and forgotten.
            ["test", check, tool, status, timeout] => Rdma::Test {
                check,
                tool,
                rc: rc(status).unwrap_or(-1),
                timeout_secs: timeout
                    .strip_prefix("timeout=")
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0),
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_done_line_is_the_one_the_stanza_prints() {
        assert_eq!(GuestLine::parse(DONE_LINE), Some(GuestLine::Done));
        let needle = regex::Regex::new(needles::DONE).unwrap();
        assert!(needle.is_match(&format!("{DONE_LINE}\r\n")));
        assert_eq!(regex::escape(DONE_LINE), DONE_LINE);
    }

    #[test]
    fn a_mangled_rdma_test_status_is_a_failed_test() {
        let line =
            GuestLine::parse("BOOTRIG rdma rxe0 test verbs ibv_rc_pingpong rc=0x timeout=2?");
        let Some(GuestLine::Rdma { event, .. }) = line else {
            panic!("{line:?}");
        };
        assert_eq!(
            event,
            Rdma::Test {
                check: "verbs",
                tool: "ibv_rc_pingpong",
                rc: -1,
                timeout_secs: 0
            }
        );
        assert!(event.test_failed());
        // Its status readable, the test's result stands whatever happened to the timeout.
        let line = GuestLine::parse("BOOTRIG rdma rxe0 test verbs ibv_rc_pingpong rc=0 timeout=");
        let Some(GuestLine::Rdma { event, .. }) = line else {
            panic!("{line:?}");
        };
        assert!(!event.test_failed(), "{event:?}");
    }

    /// Every line harness/stanza.sh prints, as it prints it.
    #[test]
    fn reads_every_word_of_the_stanza() {
        let cases: [(&str, GuestLine); 22] = [
            ("BOOTRIG begin", GuestLine::Begin),
            ("BOOTRIG done", GuestLine::Done),
            ("BOOTRIG modules-begin", GuestLine::ModulesBegin),
            ("BOOTRIG modules-end", GuestLine::ModulesEnd),
            (
                "BOOTRIG insmod ib_core rc=1",
                GuestLine::Insmod {
                    module: "ib_core",
                    result: InsmodResult::Ran { rc: 1 },
                },
            ),
            (
                "BOOTRIG insmod virtio_net already-loaded",
                GuestLine::Insmod {
                    module: "virtio_net",
                    result: InsmodResult::AlreadyLoaded,
                },
            ),
            (
                "BOOTRIG kernel-log-begin ib_core",
                GuestLine::KernelLogBegin { module: "ib_core" },
            ),
            ("BOOTRIG kernel-log-end ib_core", GuestLine::KernelLogEnd),
            (
                "BOOTRIG dhcp eth0 udhcpc rc=0",
                GuestLine::Dhcp {
                    interface: "eth0",
                    client: "udhcpc",
                    rc: 0,
                },
            ),
            (
                "BOOTRIG interface ib0 missing",
                GuestLine::InterfaceMissing { interface: "ib0" },
            ),
            (
                "BOOTRIG static eth0 rc=2",
                GuestLine::Static {
                    interface: "eth0",
                    rc: 2,
                },
            ),
            (
                "BOOTRIG addr eth0 10.0.2.15/24",
                GuestLine::Addr {
                    interface: "eth0",
                    cidr: Some("10.0.2.15/24"),
                },
            ),
            (
                "BOOTRIG addr ib0 none",
                GuestLine::Addr {
                    interface: "ib0",
                    cidr: None,
                },
            ),
            (
                "BOOTRIG ib-port mlx5_0 1 state=2: INIT phys=5: LinkUp",
                GuestLine::IbPort {
                    device: "mlx5_0",
                    port: "1",
                    state: Some("2: INIT"),
                },
            ),
            (
                "BOOTRIG rdma rxe0 link-add eth0 rc=255",
                GuestLine::Rdma {
                    device: "rxe0",
                    event: Rdma::LinkAdd {
                        netdev: "eth0",
                        rc: 255,
                    },
                },
            ),
            (
                "BOOTRIG rdma rxe0 missing",
                GuestLine::Rdma {
                    device: "rxe0",
                    event: Rdma::Missing,
                },
            ),
            (
                "BOOTRIG rdma rxe0 port 1 ACTIVE link_layer=Ethernet",
                GuestLine::Rdma {
                    device: "rxe0",
                    event: Rdma::Port {
                        port: 1,
                        state: "ACTIVE",
                        link_layer: "Ethernet",
                    },
                },
            ),
            (
                "BOOTRIG rdma rxe0 gid 1 10.0.2.15",
                GuestLine::Rdma {
                    device: "rxe0",
                    event: Rdma::Gid,
                },
            ),
            (
                "BOOTRIG rdma rxe0 test verbs ibv_rc_pingpong rc=124 timeout=20",
                GuestLine::Rdma {
                    device: "rxe0",
                    event: Rdma::Test {
                        check: "verbs",
                        tool: "ibv_rc_pingpong",
                        rc: 124,
                        timeout_secs: 20,
                    },
                },
            ),
            (
                "BOOTRIG rdma rxe0 test cm skipped no-address",
                GuestLine::Rdma {
                    device: "rxe0",
                    event: Rdma::TestSkipped {
                        check: "cm",
                        why: "no-address",
                    },
                },
            ),
            ("BOOTRIG shell", GuestLine::Shell),
            ("BOOTRIG shell-rc=-1", GuestLine::ShellRc(-1)),
        ];
        for (line, want) in cases {
            assert_eq!(GuestLine::parse(line), Some(want), "{line}");
            // Leading blanks (a line the kernel's console left indented) do not matter.
            assert_eq!(GuestLine::parse(&format!("  {line}")), Some(want), "{line}");
        }
        assert_eq!(
            GuestLine::parse("BOOTRIG poweroff-failed"),
            Some(GuestLine::PoweroffFailed)
        );
    }

    #[test]
    fn marked_lines_outside_the_vocabulary_are_garbled_and_others_are_not_protocol() {
        for garbled in [
            "BOOTRIG insmod x rc=abc",
            "BOOTRIG insmod",
            "BOOTRIG dhcp eth0 udhcpc",
            "BOOTRIG rdma rxe0 port one ACTIVE link_layer=Ethernet",
            "BOOTRIG what",
            "BOOTRIG ",
        ] {
            assert_eq!(
                GuestLine::parse(garbled),
                Some(GuestLine::Garbled),
                "{garbled}"
            );
        }
        for other in [
            "BOOTRIG",
            "BOOTRIG-SHELL# uname -r",
            "bootrig: fetching kernel",
            "[ 1.0] BOOTRIG begin",
            "",
        ] {
            assert_eq!(GuestLine::parse(other), None, "{other}");
        }
    }

    #[test]
    fn the_shell_command_line_and_its_echo() {
        let line = shell_command("uname -r # it's");
        assert_eq!(
            line,
            "eval 'uname -r # it'\\''s'; echo \"BOOTRIG shell-rc=$?\""
        );
        assert!(is_shell_command_echo(&format!("{SHELL_PROMPT}{line}")));
        let rc = regex::Regex::new(needles::SHELL_RC).unwrap();
        assert!(!rc.is_match(&format!("{line}\r\n")));
        assert!(rc.is_match("BOOTRIG shell-rc=127\r\n"));
        assert_eq!(
            GuestLine::parse("BOOTRIG shell-rc=127"),
            Some(GuestLine::ShellRc(127))
        );
    }

    #[test]
    fn failed_insmod_is_a_ran_insmod_with_a_nonzero_status() {
        let failed = |l| GuestLine::parse(l).and_then(|g| g.failed_insmod());
        assert_eq!(failed("BOOTRIG insmod a rc=2"), Some("a"));
        assert_eq!(failed("BOOTRIG insmod a rc=0"), None);
        assert_eq!(failed("BOOTRIG insmod a already-loaded"), None);
    }
}
