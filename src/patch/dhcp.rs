//! DHCP in the initrd: the IPoIB client-identifier, and ISC dhclient with everything it needs.
//!
//! An InfiniBand port has no 6-byte MAC for DHCP's `chaddr`, so RFC 4390 makes the client
//! identifier (option 61) the RFC 4361 form: type 0xff, a 4-byte IAID, then a DUID. Mellanox
//! (NVIDIA) FlexBoot and the manual build it from the port GUID with a fixed 12-byte prefix:
//!
//! ```text
//! ff          type 255: RFC 4361 node-specific identifier
//! 00:00:00:00 IAID 0
//! 00:02       DUID type 2: DUID-EN, vendor-assigned, based on an enterprise number (RFC 3315 9.3)
//! 00:00:02:c9 enterprise number 0x2c9 = 713 — the digits of Mellanox's IEEE OUI 00:02:c9
//!             (its IANA enterprise number is 33049; the firmware uses this value regardless)
//! 00          first byte of the DUID-EN identifier
//! 00:02:c9:03:00:00:10:39   the 8-byte port GUID, the rest of the identifier
//! ```
//!
//! so GUID `0002:c903:0000:1039` gives `ff:00:00:00:00:00:02:00:00:02:c9:00:00:02:c9:03:00:00:10:39`.
//!
//! ISC dhclient (Debian's `isc-dhcp-client`) needs, besides itself and its libraries: its
//! configuration, a leases file in a writable directory, a directory for its pid file, and
//! `dhclient-script`, which applies the lease with iproute2's `ip` (busybox's `ip` lacks
//! `valid_lft`/`label`) and `hostname`. Those two go to a directory of bootrig's own,
//! [`TOOLS_DIR`], never over the base's `ip`: in an initramfs-tools image `/usr/sbin/ip` is a
//! hardlink of busybox, and a file written over it would change `/bin/sh` and every other applet
//! with it. Debian's dhclient runs the script with the `PATH` built into it, so the copied script
//! puts [`TOOLS_DIR`] first on its `PATH` in a line after its `#!`: a busybox `ip` in the base
//! cannot shadow them. The script sources hook directories only when they exist; none are added, so
//! `run-parts` is not needed. On a lease with DNS servers it rewrites `/etc/resolv.conf` with
//! `readlink`, `rm` and `cat`, and reads `/etc/fstab` (an empty one is provided if the base has
//! none — the shell exits on the failed redirection otherwise).

use std::path::{Path, PathBuf};

use thiserror::Error;

use super::elf::{self, ElfError};
use super::host_file;
use crate::initrd::add::Addition;
use crate::net::addr::{AddrError, ClientId, Guid};

/// Where Debian installs dhclient and its script.
pub const DHCLIENT: &str = "/sbin/dhclient";
pub const DHCLIENT_SCRIPT: &str = "/sbin/dhclient-script";
/// Paths in the image.
pub const DHCLIENT_CONF: &str = "/etc/dhcp/dhclient.conf";
pub const DHCLIENT_LEASES: &str = "/var/lib/dhcp/dhclient.leases";
/// The manual's (and older ISC releases') lease directory: a symlink to Debian's.
pub const LEGACY_LEASES_DIR: &str = "/var/state/dhcp";
/// The pid file's directory (`-pf /run/dhclient.pid`).
pub const RUN_DIR: &str = "/run";
/// The directory the script's tools go to, put first on the copied script's `PATH`: nothing of
/// a base lives there.
pub const TOOLS_DIR: &str = "/usr/lib/bootrig/dhclient";
/// The tools dhclient-script runs that bootrig copies from the host, and where to look for them.
const SCRIPT_TOOLS: &[&str] = &["ip", "hostname"];
const TOOL_SEARCH: &[&str] = &["/usr/sbin", "/usr/bin", "/sbin", "/bin"];
/// What the script runs that any initrd base already has (busybox applets or coreutils).
pub const BASE_COMMANDS: &[&str] = &["sh", "readlink", "rm", "cat"];

/// Linux interface names: at most IFNAMSIZ - 1 bytes.
const IFNAME_MAX: usize = 15;

#[derive(Debug, Error)]
pub enum DhcpError {
    #[error("interface {name:?}: {why}")]
    Interface { name: String, why: String },
    #[error("{path} not found under {root}: install isc-dhcp-client on the host (or the root) to use dhclient")]
    Missing { path: String, root: PathBuf },
    #[error("{path}: not a #! script as Debian's dhclient-script is")]
    Script { path: PathBuf },
    #[error("dhclient-script calls {tool}, not found under {root} in {}; install iproute2 / hostname", TOOL_SEARCH.join(", "))]
    Tool { tool: &'static str, root: PathBuf },
    #[error(transparent)]
    Elf(#[from] ElfError),
    #[error(transparent)]
    HostFile(#[from] host_file::HostFileError),
}

/// The RFC 4390 client-identifier for an IPoIB port with this GUID (see the module docs), the
/// GUID in any form [`Guid`] accepts.
pub fn client_id_from_guid(guid: &str) -> Result<ClientId, AddrError> {
    Ok(ClientId::ipoib(guid.parse::<Guid>()?.0))
}

/// The dhclient.conf template: `@INTERFACE@` and `@CLIENT_ID@` are filled in, and lines that
/// start with `@IF_CLIENT_ID@` are kept (without it) only when there is a client-identifier.
const DHCLIENT_CONF_TEMPLATE: &str = include_str!("../../harness/dhclient.conf");

/// A dhclient.conf for `interface`, sending `client_id`.
pub fn dhclient_conf(interface: &str, client_id: Option<&ClientId>) -> Result<String, DhcpError> {
    check_interface(interface)?;
    let id = client_id.map(ClientId::to_string);
    let mut conf = String::new();
    for line in DHCLIENT_CONF_TEMPLATE.lines() {
        let line = match (line.strip_prefix("@IF_CLIENT_ID@"), &id) {
            (Some(_), None) => continue,
            (Some(rest), Some(id)) => rest.replace("@CLIENT_ID@", id),
            (None, _) => line.to_owned(),
        };
        conf.push_str(&line.replace("@INTERFACE@", interface));
        conf.push('\n');
    }
    Ok(conf)
}

/// Everything ISC dhclient needs in the image, with the paths to run it by:
/// `<binary> -v -1 -cf <conf> -lf <leases> -sf <script> -pf /run/dhclient.pid <interface>`.
#[derive(Debug, Clone)]
pub struct DhclientSetup {
    pub additions: Vec<Addition>,
    /// Added only where the base has nothing at that path (e.g. `/etc/fstab`).
    pub if_absent: Vec<Addition>,
    pub binary: String,
    pub conf: String,
    pub script: String,
    pub leases: String,
    /// Commands the script runs that the base must provide (see [`BASE_COMMANDS`]).
    pub base_commands: Vec<String>,
}

/// Collects ISC dhclient, Debian's dhclient-script and the tools and files they need from the
/// system under `root` (usually `/`), for `interface`, optionally sending `client_id`.
pub fn dhclient_files(
    root: &Path,
    interface: &str,
    client_id: Option<&ClientId>,
) -> Result<DhclientSetup, DhcpError> {
    let conf = dhclient_conf(interface, client_id)?;
    for path in [DHCLIENT, DHCLIENT_SCRIPT] {
        if elf::resolve_in_root(root, Path::new(path)).is_err() {
            return Err(DhcpError::Missing {
                path: path.to_owned(),
                root: root.to_owned(),
            });
        }
    }
    let script_real = elf::resolve_in_root(root, Path::new(DHCLIENT_SCRIPT))
        .map(|p| root.join(p.strip_prefix("/").unwrap_or(&p)))
        .map_err(|source| ElfError::Read {
            path: PathBuf::from(DHCLIENT_SCRIPT),
            source,
        })?;
    let script =
        host_file::read(&script_real, "dhclient-script")?.map_err(|source| ElfError::Read {
            path: script_real.clone(),
            source,
        })?;
    if !script.starts_with(b"#!") {
        return Err(DhcpError::Script { path: script_real });
    }

    let mut additions = Vec::new();
    // dhclient and its libraries at their own paths.
    let files = elf::closure(&[PathBuf::from(DHCLIENT)], root)?;
    additions.extend(elf::additions(root, &files)?);
    // The script's tools at TOOLS_DIR, their libraries at their own paths.
    for &tool in SCRIPT_TOOLS {
        let found = TOOL_SEARCH
            .iter()
            .map(|dir| Path::new(dir).join(tool))
            .find(|p| {
                elf::resolve_in_root(root, p)
                    .is_ok_and(|real| root.join(real.strip_prefix("/").unwrap_or(&real)).is_file())
            })
            .ok_or_else(|| DhcpError::Tool {
                tool,
                root: root.to_owned(),
            })?;
        let files = elf::closure(std::slice::from_ref(&found), root)?;
        let mut adds = elf::additions(root, &files)?;
        // The first file is the tool itself (an ELF: no #! chain in front of it).
        if let Some(first) = adds.first_mut() {
            first.dest = format!("{TOOLS_DIR}/{tool}").into_bytes();
        }
        additions.extend(adds);
    }
    // The script itself; its #! shell is the base's (see BASE_COMMANDS).
    additions.push(Addition::bytes(
        DHCLIENT_SCRIPT,
        with_tools_on_path(&script),
        0o755,
    ));
    additions.push(Addition::bytes(DHCLIENT_CONF, conf.into_bytes(), 0o644));
    additions.push(Addition::dir("/var/lib/dhcp", 0o755));
    additions.push(Addition::bytes(DHCLIENT_LEASES, Vec::new(), 0o644));
    additions.push(Addition::symlink(LEGACY_LEASES_DIR, "../lib/dhcp"));
    additions.push(Addition::dir(RUN_DIR, 0o755));
    dedup_by_dest(&mut additions);
    Ok(DhclientSetup {
        additions,
        if_absent: vec![Addition::bytes("/etc/fstab", Vec::new(), 0o644)],
        binary: DHCLIENT.to_owned(),
        conf: DHCLIENT_CONF.to_owned(),
        script: DHCLIENT_SCRIPT.to_owned(),
        leases: DHCLIENT_LEASES.to_owned(),
        base_commands: BASE_COMMANDS.iter().map(|s| s.to_string()).collect(),
    })
}

/// Keeps the first addition for each destination (shared libraries repeat across tools).
fn dedup_by_dest(additions: &mut Vec<Addition>) {
    let mut seen = std::collections::HashSet::new();
    additions.retain(|a| seen.insert(a.dest.clone()));
}

fn check_interface(name: &str) -> Result<(), DhcpError> {
    let err = |why: &str| DhcpError::Interface {
        name: name.to_owned(),
        why: why.to_owned(),
    };
    if name.is_empty() || name.len() > IFNAME_MAX {
        return Err(err("Linux interface names are 1 to 15 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'))
    {
        return Err(err(
            "only letters, digits, '_', '-', '.' and '@' are accepted (e.g. eth0, ib0)",
        ));
    }
    Ok(())
}

/// `script` with a line after its `#!` line that puts [`TOOLS_DIR`] first on `PATH`.
fn with_tools_on_path(script: &[u8]) -> Vec<u8> {
    let split = script
        .iter()
        .position(|&b| b == b'\n')
        .map_or(script.len(), |i| i + 1);
    let mut out = script[..split].to_vec();
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend_from_slice(
        format!("# bootrig: its own ip and hostname, never the base's\nPATH={TOOLS_DIR}:$PATH\n")
            .as_bytes(),
    );
    out.extend_from_slice(&script[split..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANUAL_GUID: &str = "0002:c903:0000:1039";
    const MANUAL_ID: &str = "ff:00:00:00:00:00:02:00:00:02:c9:00:00:02:c9:03:00:00:10:39";

    fn bytes_of(id: &str) -> Vec<u8> {
        id.split(':')
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn manual_example() {
        assert_eq!(
            client_id_from_guid(MANUAL_GUID).unwrap().to_string(),
            MANUAL_ID
        );
    }

    /// Each RFC 4361 field of the manual's identifier, taken apart.
    #[test]
    fn manual_example_fields() {
        let id = client_id_from_guid(MANUAL_GUID).unwrap().bytes().to_vec();
        assert_eq!(id.len(), 20);
        assert_eq!(id[0], 0xff, "type 255: IAID + DUID follow");
        assert_eq!(&id[1..5], &[0, 0, 0, 0], "IAID");
        assert_eq!(u16::from_be_bytes([id[5], id[6]]), 2, "DUID-EN");
        assert_eq!(
            u32::from_be_bytes(id[7..11].try_into().unwrap()),
            713,
            "enterprise number 0x2c9"
        );
        assert_eq!(id[11], 0x00, "identifier's leading byte");
        assert_eq!(
            &id[12..],
            &[0x00, 0x02, 0xc9, 0x03, 0x00, 0x00, 0x10, 0x39],
            "port GUID"
        );
        // The same bytes as the manual's literal, field by field.
        assert_eq!(id, bytes_of(MANUAL_ID));
    }

    /// GUID forms and their errors are tested with [`Guid`] (net::addr); this checks the path
    /// through here names the accepted forms.
    #[test]
    fn bad_guids_are_clear_errors() {
        let msg = client_id_from_guid("0002:c903:0000:103")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("group 4 is \"103\""), "{msg}");
        assert!(msg.contains("0002:c903:0000:1039"), "{msg}");
    }

    #[test]
    fn the_script_finds_bootrigs_tools_first() {
        let script = b"#!/bin/sh\n# comment\nip link set dev eth0 up\n";
        let text = String::from_utf8(with_tools_on_path(script)).unwrap();
        assert_eq!(
            text,
            format!("#!/bin/sh\n# bootrig: its own ip and hostname, never the base's\nPATH={TOOLS_DIR}:$PATH\n# comment\nip link set dev eth0 up\n")
        );
        // A script of one line without a newline still gets the PATH on a line of its own.
        assert!(String::from_utf8(with_tools_on_path(b"#!/bin/sh"))
            .unwrap()
            .starts_with("#!/bin/sh\n# bootrig"));
    }

    #[test]
    fn conf_for_ib0_sends_the_identifier() {
        let id: ClientId = MANUAL_ID.parse().unwrap();
        let conf = dhclient_conf("ib0", Some(&id)).unwrap();
        assert!(
            conf.contains(&format!("  send dhcp-client-identifier {MANUAL_ID};\n")),
            "{conf}"
        );
        assert!(conf.contains("interface \"ib0\" {"), "{conf}");
        let plain = dhclient_conf("eth0", None).unwrap();
        assert!(!plain.contains("dhcp-client-identifier"), "{plain}");
        assert!(matches!(
            dhclient_conf("eth0\"; evil", None),
            Err(DhcpError::Interface { .. })
        ));
        assert!(matches!(
            dhclient_conf("averyveryverylongname", None),
            Err(DhcpError::Interface { .. })
        ));
    }
}
