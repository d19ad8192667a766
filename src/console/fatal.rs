//! What the kernel, the firmware and an initrd's init print when they give up: the lines after
//! which the boot cannot go on. The driver stops waiting at them (see `driver::drive`) and the
//! verdict reads them to name the cause, so both take the words from here. bootrig's own guest
//! protocol is [`super::protocol`]; these are other programs' words, quoted as they print them.

/// Needles (regex syntax, for the expect session) for lines after which nothing good follows.
pub const FATAL: &[&str] = &[
    r"Kernel panic - not syncing",
    // SeaBIOS after every boot device failed (iPXE gave up: no DHCP offer, no boot file).
    r"No bootable device",
    // OVMF's boot manager after every boot option failed.
    r"No bootable option or device was found",
    // init/main.c kernel_init: the initramfs has its init (rdinit=, default /init) but exec
    // failed. The kernel then tries /sbin/init … /bin/sh, and a busybox initrd's /bin/sh sits
    // at a prompt forever: the boot is over here, not at the timeout. The line end makes the
    // error number complete.
    r"Failed to execute \S+ \(error -?\d+\)\r?\n",
];

/// The lines with which an initrd's init says it gives up and opens its rescue shell, where it
/// then waits forever.
pub const RESCUE_SHELL_LINES: &[&str] = &[
    // dracut (99base/dracut-lib.sh emergency_shell), also under systemd.
    "Dropping to debug shell.",
    "Entering emergency mode.",
    // initramfs-tools (scripts/functions panic).
    "Dropping to a shell!",
];

/// The kernel could not execute the initramfs's init: `Failed to execute /init (error -2)`
/// (init/main.c, `rdinit=` or the default `/init`) or the panic `Requested init /x failed
/// (error -2).` (`init=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitExecFailed<'a> {
    /// The init the kernel tried.
    pub path: &'a str,
    /// The kernel's error, negative (`-2` is ENOENT: a missing interpreter or loader).
    pub error: i32,
}

/// Reads a kernel message (timestamp removed) that says init could not be executed.
pub fn init_exec_failed(message: &str) -> Option<InitExecFailed<'_>> {
    let rest = message
        .strip_prefix("Failed to execute ")
        .or_else(|| message.split_once("Requested init ").map(|(_, r)| r))?;
    let (path, error) = rest.split_once(" (error ")?;
    let (path, error) = (path.strip_suffix(" failed").unwrap_or(path), error);
    let error = error.split_once(')')?.0.parse().ok()?;
    Some(InitExecFailed { path, error })
}

/// The line the kernel logs (KERN_INFO) just before it executes `path` as init.
pub fn is_run_as_init(message: &str, path: &str) -> bool {
    message
        .strip_prefix("Run ")
        .and_then(|m| m.strip_suffix(" as init process"))
        == Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_init_failures_are_read() {
        assert_eq!(
            init_exec_failed("Failed to execute /init (error -2)"),
            Some(InitExecFailed {
                path: "/init",
                error: -2
            })
        );
        assert_eq!(
            init_exec_failed(
                "Kernel panic - not syncing: Requested init /sbin/x failed (error -13)."
            ),
            Some(InitExecFailed {
                path: "/sbin/x",
                error: -13
            })
        );
        // Another program's line of the same start, or a cut one, is not it.
        assert_eq!(init_exec_failed("Failed to execute /init"), None);
        assert_eq!(init_exec_failed("Failed to execute /init (error x)"), None);
        assert_eq!(init_exec_failed("Run /init as init process"), None);
        assert!(is_run_as_init("Run /init as init process", "/init"));
        assert!(!is_run_as_init("Run /sbin/init as init process", "/init"));
    }

    #[test]
    fn every_needle_compiles() {
        for n in FATAL {
            regex::Regex::new(n).unwrap();
        }
        let failed = regex::Regex::new(FATAL[3]).unwrap();
        assert!(failed.is_match("[    1.9] Failed to execute /init (error -2)\r\n"));
        assert!(!failed.is_match("Failed to execute /init (error -"));
    }
}
