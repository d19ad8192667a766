//! The iPXE script a netboot runs: rendered from `harness/ipxe/netboot.ipxe` and a typed
//! description of what to fetch, how, and with which kernel command line. Everything that goes
//! into the script is validated first: iPXE splits lines on whitespace, expands `${…}` and treats
//! `||`/`&&` as operators, so a name or command line carrying any of those would silently mean
//! something else.

use thiserror::Error;

/// The template, kept as a file so it reads like the script it becomes.
const TEMPLATE: &str = include_str!("../../harness/ipxe/netboot.ipxe");

/// The host as the guest sees it on QEMU user-mode networking (slirp's gateway): QEMU's TFTP
/// server, and host loopback for the HTTP server.
pub const GUEST_HOST_ADDR: &str = "10.0.2.2";

/// Kernel command lines longer than this are truncated by x86 kernels (COMMAND_LINE_SIZE).
pub const MAX_CMDLINE: usize = 2048;
/// Longest file name accepted: staged names are short; long ones are a mistake.
pub const MAX_NAME: usize = 64;

/// Lines the script prints on the console, in order, so a console reader can follow progress.
pub mod markers {
    pub const SCRIPT_RUNNING: &str = "bootrig: ipxe script running";
    pub const FETCHING_KERNEL: &str = "bootrig: fetching kernel";
    pub const FETCHING_INITRD: &str = "bootrig: fetching initrd";
    pub const BOOTING: &str = "bootrig: booting kernel";
    /// Printed when any step fails; the script then stops at the iPXE prompt.
    pub const FAILED: &str = "bootrig: netboot failed";
}

/// Where the script fetches the kernel and initrd from, with the server or port: what the
/// scenario's choice (`scenario::Fetch`, `tftp` or `http`) becomes in
/// `run::lifecycle::media::file_source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileSource {
    /// QEMU user-mode networking's built-in TFTP server (`-netdev user,tftp=DIR`).
    Tftp,
    /// bootrig's HTTP server on host loopback, `port` being the port it was given.
    Http { port: u16 },
    /// TFTP from this server (a dnsmasq segment's), not QEMU's user-mode one.
    TftpAt(std::net::Ipv4Addr),
}

impl FileSource {
    /// The URL prefix of the boot directory as the guest reaches it.
    pub fn base_url(self) -> String {
        match self {
            FileSource::Tftp => format!("tftp://{GUEST_HOST_ADDR}"),
            FileSource::TftpAt(server) => format!("tftp://{server}"),
            FileSource::Http { port } => format!("http://{GUEST_HOST_ADDR}:{port}"),
        }
    }
}

/// What the script boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptSpec {
    pub fetch: FileSource,
    /// File names in the boot directory.
    pub kernel: String,
    pub initrd: String,
    /// The kernel command line (bootrig's console arguments included by the caller).
    pub cmdline: String,
    /// Put `initrd=<name>` on the command line. UEFI needs it: the kernel's EFI stub loads the
    /// initrd named there from iPXE's virtual file system; without it the kernel boots with no
    /// initrd. BIOS ignores it. `false` reproduces that classic mistake on purpose.
    pub initrd_arg: bool,
}

impl ScriptSpec {
    pub fn new(fetch: FileSource, kernel: &str, initrd: &str, cmdline: &str) -> Self {
        Self {
            fetch,
            kernel: kernel.to_owned(),
            initrd: initrd.to_owned(),
            cmdline: cmdline.to_owned(),
            initrd_arg: true,
        }
    }

    /// The command line the kernel receives.
    pub fn kernel_args(&self) -> String {
        let mut args = String::new();
        if self.initrd_arg {
            args.push_str("initrd=");
            args.push_str(&self.initrd);
        }
        let cmdline = self.cmdline.trim();
        if !cmdline.is_empty() {
            if !args.is_empty() {
                args.push(' ');
            }
            args.push_str(cmdline);
        }
        args
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ScriptError {
    #[error("{what} file name {name:?}: {reason} at byte {offset} (expected letters, digits, '.', '_', '-', not starting with '.')")]
    BadName {
        what: &'static str,
        name: String,
        offset: usize,
        reason: &'static str,
    },
    #[error("kernel command line: {reason} at byte {offset}")]
    BadCommandLine { offset: usize, reason: String },
    #[error(
        "kernel command line is {len} bytes with initrd=, the kernel keeps only {MAX_CMDLINE}"
    )]
    CommandLineTooLong { len: usize },
    #[error("iPXE template: unknown field @{name}@ at byte {offset}")]
    Template { name: String, offset: usize },
}

/// Renders the script for `spec`.
pub fn render(spec: &ScriptSpec) -> Result<String, ScriptError> {
    render_at(spec, &spec.fetch.base_url())
}

/// Renders the script with `base` as the boot directory's URL instead of `spec.fetch`'s: `"."`
/// fetches relative to the script's own location (a lab TFTP server, where the script's
/// directory is the lab's choice, not bootrig's).
pub fn render_at(spec: &ScriptSpec, base: &str) -> Result<String, ScriptError> {
    check_name("kernel", &spec.kernel)?;
    check_name("initrd", &spec.initrd)?;
    check_cmdline(&spec.cmdline)?;
    let kernel_args = spec.kernel_args();
    if kernel_args.len() > MAX_CMDLINE {
        return Err(ScriptError::CommandLineTooLong {
            len: kernel_args.len(),
        });
    }
    fill(TEMPLATE, |field| match field {
        "BASE" => Some(base),
        "KERNEL" => Some(spec.kernel.as_str()),
        "INITRD" => Some(spec.initrd.as_str()),
        "KERNEL_ARGS" => Some(kernel_args.as_str()),
        _ => None,
    })
}

/// Replaces each `@NAME@` in `template` in one pass, so values are never re-scanned.
fn fill<'a>(
    template: &str,
    value: impl Fn(&str) -> Option<&'a str>,
) -> Result<String, ScriptError> {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    let mut consumed = 0;
    while let Some(start) = rest.find('@') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(len) = after.find('@') else {
            return Err(ScriptError::Template {
                name: after.lines().next().unwrap_or("").to_owned(),
                offset: consumed + start,
            });
        };
        let name = &after[..len];
        let Some(v) = value(name) else {
            return Err(ScriptError::Template {
                name: name.to_owned(),
                offset: consumed + start,
            });
        };
        out.push_str(v);
        let skip = start + 1 + len + 1;
        consumed += skip;
        rest = &rest[skip..];
    }
    out.push_str(rest);
    Ok(out)
}

fn check_name(what: &'static str, name: &str) -> Result<(), ScriptError> {
    plain_component(name, MAX_NAME).map_err(|(offset, reason)| ScriptError::BadName {
        what,
        name: name.to_owned(),
        offset,
        reason,
    })
}

/// Whether `name` is one plain path component an iPXE script and a TFTP server take as is:
/// ASCII letters, digits, `.`, `_`, `-`, not hidden, at most `max` bytes. Else the byte offset
/// where it goes wrong and why.
pub(crate) fn plain_component(name: &str, max: usize) -> Result<(), (usize, &'static str)> {
    if name.is_empty() {
        return Err((0, "empty"));
    }
    if name.len() > max {
        return Err((max, "too long"));
    }
    if name.starts_with('.') {
        return Err((0, "leading '.'"));
    }
    match name
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some((offset, _)) => Err((offset, "character not allowed")),
        None => Ok(()),
    }
}

fn check_cmdline(cmdline: &str) -> Result<(), ScriptError> {
    let bad = |offset, reason: &str| {
        Err(ScriptError::BadCommandLine {
            offset,
            reason: reason.to_owned(),
        })
    };
    for (offset, c) in cmdline.char_indices() {
        match c {
            '\n' | '\r' => return bad(offset, "line break (it would end the iPXE command)"),
            c if c.is_control() => return bad(offset, "control character"),
            c if !c.is_ascii() => return bad(offset, "non-ASCII character"),
            // iPXE expands ${name} settings and interprets quotes and backslashes.
            '$' => return bad(offset, "'$' (iPXE would expand it as a setting)"),
            '"' | '\'' | '\\' => return bad(offset, "quote or backslash (iPXE reads them)"),
            _ => {}
        }
    }
    let mut offset = 0;
    for word in cmdline.split(' ') {
        if word == "||" || word == "&&" {
            return bad(offset, "iPXE operator || or && as a word");
        }
        if word.starts_with("initrd=") {
            return bad(offset, "initrd= is added by bootrig (see initrd_arg)");
        }
        offset += word.len() + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(fetch: FileSource) -> ScriptSpec {
        ScriptSpec::new(
            fetch,
            "vmlinuz",
            "initrd.img",
            "console=ttyS0,115200 panic=-1",
        )
    }

    fn command_lines(script: &str) -> Vec<&str> {
        script
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .collect()
    }

    #[test]
    fn tftp_script_fetches_and_boots_in_order() {
        let script = render(&spec(FileSource::Tftp)).unwrap();
        assert!(script.starts_with("#!ipxe\n"));
        assert_eq!(
            command_lines(&script),
            [
                "echo bootrig: ipxe script running on ${platform}, net0 ${net0/ip}",
                "echo bootrig: fetching kernel tftp://10.0.2.2/vmlinuz",
                "kernel tftp://10.0.2.2/vmlinuz initrd=initrd.img console=ttyS0,115200 panic=-1 || goto failed",
                "echo bootrig: fetching initrd tftp://10.0.2.2/initrd.img",
                "initrd --name initrd.img tftp://10.0.2.2/initrd.img || goto failed",
                "echo bootrig: booting kernel",
                "boot || goto failed",
                ":failed",
                "echo bootrig: netboot failed (iPXE error ${errno}, see the line above)",
                "shell",
            ]
        );
    }

    #[test]
    fn markers_appear_in_the_rendered_script() {
        let script = render(&spec(FileSource::Tftp)).unwrap();
        for marker in [
            markers::SCRIPT_RUNNING,
            markers::FETCHING_KERNEL,
            markers::FETCHING_INITRD,
            markers::BOOTING,
            markers::FAILED,
        ] {
            assert!(script.contains(&format!("echo {marker}")), "{marker}");
        }
    }

    #[test]
    fn http_script_uses_the_port_and_never_runs_dhcp() {
        let script = render(&spec(FileSource::Http { port: 41234 })).unwrap();
        assert!(script.contains(
            "kernel http://10.0.2.2:41234/vmlinuz initrd=initrd.img console=ttyS0,115200 panic=-1 || goto failed"
        ));
        assert!(script.contains("initrd --name initrd.img http://10.0.2.2:41234/initrd.img"));
        assert!(!script.contains("tftp://"));
        assert!(!command_lines(&script)
            .iter()
            .any(|l| l.split_whitespace().next() == Some("dhcp")));
    }

    #[test]
    fn every_fetch_and_boot_step_stops_on_failure() {
        let script = render(&spec(FileSource::Tftp)).unwrap();
        for line in command_lines(&script) {
            let verb = line.split_whitespace().next().unwrap_or("");
            if matches!(verb, "kernel" | "initrd" | "boot") {
                assert!(line.ends_with(" || goto failed"), "{line}");
            }
        }
        // Nothing after the failure label can boot.
        let tail = script.split(":failed").nth(1).unwrap();
        let verbs: Vec<&str> = command_lines(tail)
            .iter()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert_eq!(verbs, ["echo", "shell"]);
    }

    #[test]
    fn without_initrd_arg_the_kernel_line_lacks_it() {
        let mut s = spec(FileSource::Tftp);
        s.initrd_arg = false;
        let script = render(&s).unwrap();
        assert!(script.contains(
            "kernel tftp://10.0.2.2/vmlinuz console=ttyS0,115200 panic=-1 || goto failed"
        ));
        assert!(!script.contains("initrd=initrd.img"));
        // The initrd is still fetched: only the kernel is not told about it.
        assert!(script.contains("initrd --name initrd.img"));
    }

    #[test]
    fn empty_command_line_leaves_no_stray_space() {
        let mut s = spec(FileSource::Tftp);
        s.cmdline = "  ".into();
        assert_eq!(s.kernel_args(), "initrd=initrd.img");
        s.initrd_arg = false;
        assert_eq!(s.kernel_args(), "");
        let script = render(&s).unwrap();
        assert!(script.contains("kernel tftp://10.0.2.2/vmlinuz  || goto failed"));
    }

    #[test]
    fn a_value_holding_at_signs_is_not_expanded_again() {
        let mut s = spec(FileSource::Tftp);
        s.cmdline = "x=@KERNEL@ y=@".into();
        let script = render(&s).unwrap();
        assert!(script.contains("initrd=initrd.img x=@KERNEL@ y=@ || goto failed"));
    }

    #[test]
    fn bad_names_are_refused_with_their_offset() {
        for (name, offset) in [
            ("", 0),
            (".hidden", 0),
            ("../etc/passwd", 0),
            ("a/b", 1),
            ("ker nel", 3),
            ("vm\nlinuz", 2),
            ("k${x}", 1),
        ] {
            let mut s = spec(FileSource::Tftp);
            s.kernel = name.into();
            match render(&s) {
                Err(ScriptError::BadName {
                    what: "kernel",
                    offset: o,
                    ..
                }) => assert_eq!(o, offset, "{name:?}"),
                other => panic!("{name:?}: {other:?}"),
            }
        }
        let mut s = spec(FileSource::Tftp);
        s.initrd = "x".repeat(MAX_NAME + 1);
        assert!(matches!(
            render(&s),
            Err(ScriptError::BadName { what: "initrd", .. })
        ));
    }

    #[test]
    fn bad_command_lines_are_refused_with_their_offset() {
        for (cmdline, offset) in [
            ("quiet\nshell", 5),
            ("a\rb", 1),
            ("root=${root}", 5),
            ("x=\"y z\"", 2),
            ("a\\b", 1),
            ("quiet || reboot", 6),
            ("quiet initrd=other.img", 6),
            ("tab\there", 3),
            ("caf\u{e9}", 3),
        ] {
            let mut s = spec(FileSource::Tftp);
            s.cmdline = cmdline.into();
            match render(&s) {
                Err(ScriptError::BadCommandLine { offset: o, .. }) => {
                    assert_eq!(o, offset, "{cmdline:?}")
                }
                other => panic!("{cmdline:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn too_long_command_line_is_refused() {
        let mut s = spec(FileSource::Tftp);
        s.cmdline = "a".repeat(MAX_CMDLINE);
        assert!(matches!(
            render(&s),
            Err(ScriptError::CommandLineTooLong { len }) if len == MAX_CMDLINE + "initrd=initrd.img ".len()
        ));
    }

    #[test]
    fn template_fields_are_all_known() {
        let err = fill("a @NOPE@ b", |_| None).unwrap_err();
        assert_eq!(
            err,
            ScriptError::Template {
                name: "NOPE".into(),
                offset: 2
            }
        );
        assert!(matches!(
            fill("x @open", |_| Some("")),
            Err(ScriptError::Template { offset: 2, .. })
        ));
        // The shipped template renders with no field left over.
        let script = render(&spec(FileSource::Http { port: 1 })).unwrap();
        assert!(!script.contains('@'), "{script}");
    }
}
