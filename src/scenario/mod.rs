//! Scenario files: the user's main interface. TOML, paths relative to the file, every key checked:
//! an unknown key or a wrong type is an error with file, line and column, and a suggestion. Loading
//! also checks every file and directory the scenario names (kernel, module trees, base initrd,
//! binaries), each reported at its value's line and column: all of it before anything is built.
//!
//! ```toml
//! name = "mlx4 IPoIB, manual order"
//! [kernel]
//! image = "../images/cache/current/vmlinuz"
//! modules = "../images/cache/current"          # a tree, or a list layered first-match
//! [initrd]
//! base = "busybox"                             # or a path to any real initrd
//! load = ["mlx4_core", "mlx4_en"]              # "name" or "name params"
//! order = "strict"                             # or "resolve", or "as-is"
//! binaries = ["/sbin/ifconfig"]
//! [network]
//! interface = "eth0"
//! dhcp = "udhcpc"                              # or "dhclient", or static = "192.0.2.10/24"
//! guid = "0002:c903:0000:1039"                 # IPoIB client-identifier from a port GUID
//! ```
//!
//! The layout: `model` is the public types; `raw` is serde's strict mirror of the file, with
//! every value a later check may refuse kept `Spanned`; one file per TOML table checks it and
//! makes its model type (`kernel_from`, `initrd_from`, `network_from`, `dhcp_server_from`,
//! `boot_from`, `expect_from`, `rdma_from`), returning a `Refusal` at the value's byte offset;
//! `paths` checks what is on disk, `duration` the time values and their ranges, `keys` the
//! suggestion for a misspelt key. [`Scenario::parse`] calls them in order.

use std::path::Path;

mod boot;
mod dhcp_server;
mod duration;
mod error;
mod expect;
mod initrd;
mod kernel;
mod keys;
/// Shared with the inventory (`run::inventory`): refusals at `file:line:column`.
pub(crate) mod location;
mod model;
mod network;
mod paths;
mod raw;
mod rdma;
#[cfg(test)]
mod testing;

pub use boot::MEMORY_MIB;
pub use duration::{LEASE_TIME_RANGE, TIMEOUT_RANGE};
pub use error::ScenarioError;
pub use model::*;
pub use paths::PathProblem;

use error::{syntax_error, Refusal};
use paths::{NamedPath, PathList};
use raw::RawScenario;

/// Default whole-boot limit: a TCG boot of a 40 MB distribution initrd over TFTP under UEFI
/// takes about a minute here; twice that leaves room without hiding a hang for long.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(180);

impl Scenario {
    /// Reads and validates a scenario file, and checks that the files and directories it names
    /// are there: a missing kernel is found here, at its key, not in the middle of a build.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        // Not `std::fs::read`: a FIFO would hang the read and `/dev/zero` never end it.
        let bytes =
            crate::host::input::read_regular(path).map_err(|source| ScenarioError::Read {
                path: path.to_owned(),
                source,
            })?;
        let text = location::utf8(&bytes).map_err(|at| error::not_utf8(at, path))?;
        let (scenario, named) = Self::parse_named(text, path)?;
        let problems: Vec<PathProblem> = named.iter().filter_map(|n| n.check(text, path)).collect();
        if !problems.is_empty() {
            return Err(ScenarioError::Paths(problems));
        }
        Ok(scenario)
    }

    /// [`Scenario::load`] of `text` as if it were in `path`.
    #[cfg(test)]
    fn load_checked_for_test(text: &str, path: &Path) -> Result<Self, ScenarioError> {
        std::fs::write(path, text).map_err(|source| ScenarioError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::load(path)
    }

    /// Parses scenario text; `path` names it in errors and anchors relative paths. Touches no
    /// other file: [`Scenario::load`] checks the paths.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ScenarioError> {
        Self::parse_named(text, path).map(|(s, _)| s)
    }

    /// The scenario, and the paths it names with where each is written: the file's shape, then
    /// each table checked by its own file, in the order a later table depends on an earlier one.
    fn parse_named(text: &str, path: &Path) -> Result<(Self, Vec<NamedPath>), ScenarioError> {
        let mut raw: RawScenario =
            toml::from_str(text).map_err(|e| syntax_error(text, path, &e))?;
        let refused = |r: Refusal| r.in_file(text, path);
        let mut paths = PathList::new(path);
        let kernel = kernel::kernel_from(raw.kernel, &mut paths).map_err(refused)?;
        let initrd = initrd::initrd_from(raw.initrd, &mut paths).map_err(refused)?;
        let network = network::network_from(raw.network).map_err(refused)?;
        let boot = boot::boot_from(raw.boot).map_err(refused)?;
        let rdma = rdma::rdma_from(raw.rdma, &initrd.load, &network.addressing).map_err(refused)?;
        let asked = raw.expect.rdma.take();
        let mut expect = expect::expect_from(raw.expect, &network.interface, &network.addressing)
            .map_err(refused)?;
        expect.rdma = rdma::rdma_checks(rdma.as_ref(), asked).map_err(refused)?;
        let scenario = Scenario {
            path: path.to_owned(),
            name: raw.name,
            kernel,
            initrd,
            network,
            boot,
            expect,
            hardware: raw.hardware,
            rdma,
        };
        Ok((scenario, paths.named))
    }

    /// The scenario's id in reports: its file name without `.toml`.
    pub fn stem(&self) -> String {
        self.path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::initrd::add::AddMode;
    use std::path::PathBuf;

    const GOOD: &str = r#"
name = "mlx4 IPoIB, manual order"
[kernel]
image = "../images/cache/current/vmlinuz"
modules = ["/opt/ofed", "../images/cache/current"]
[initrd]
base = "busybox"
load = ["ib_core", "ib_ipoib send_queue_size=256"]
order = "resolve"
binaries = ["/sbin/ifconfig"]
[network]
interface = "ib0"
dhcp = "dhclient"
guid = "0002:c903:0000:1039"
"#;

    #[test]
    fn parses_and_resolves_paths_against_the_file() {
        let s = Scenario::parse(GOOD, Path::new("/work/scenarios/a.toml")).unwrap();
        assert_eq!(
            s.kernel.image,
            Path::new("/work/scenarios/../images/cache/current/vmlinuz")
        );
        assert_eq!(s.kernel.modules[0], Path::new("/opt/ofed"));
        assert_eq!(s.initrd.order, Order::Resolve);
        assert_eq!(s.initrd.load[1], "ib_ipoib send_queue_size=256");
        assert!(matches!(
            s.network.addressing,
            Addressing::Dhcp(DhcpChoice::Dhclient)
        ));
        assert_eq!(s.network.interface, "ib0");
        assert!(matches!(s.initrd.base, Base::Busybox));
        assert_eq!(s.initrd.mode, AddMode::Overlay);
    }

    #[test]
    fn unknown_key_names_line_column_and_suggests() {
        let text = GOOD.replace("load = [", "lod = [");
        let e = Scenario::parse(&text, Path::new("s.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.toml:8:1: unknown field `lod`"), "{e}");
        assert!(e.contains("did you mean `load`?"), "{e}");
    }

    #[test]
    fn wrong_type_names_line_and_column() {
        let text = GOOD.replace("order = \"resolve\"", "order = 3");
        let e = Scenario::parse(&text, Path::new("s.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.toml:9:9:"), "{e}");
        let text = GOOD.replace("order = \"resolve\"", "order = \"sorted\"");
        let e = Scenario::parse(&text, Path::new("s.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("strict") && e.contains("as-is"), "{e}");
    }

    #[test]
    fn expect_names_kinds_and_phases_it_knows() {
        let with = |extra: &str| {
            Scenario::parse(&format!("{GOOD}[expect]\n{extra}\n"), Path::new("s.toml"))
        };
        let s = with(
            "failure = \"unknown-symbol\"\ntimeout = \"2m\"\n[expect.phases]\nipxe-dhcp = \"30s\"",
        )
        .unwrap();
        assert_eq!(
            s.expect.failure,
            Some(crate::verdict::cause::CauseKind::UnknownSymbol)
        );
        assert_eq!(s.expect.timeout, std::time::Duration::from_secs(120));
        assert_eq!(
            s.expect.phase_timeouts,
            [(
                crate::verdict::phases::Phase::IpxeDhcp,
                std::time::Duration::from_secs(30)
            )]
        );
        let e = with("failure = \"unknown-symbl\"").unwrap_err().to_string();
        assert!(e.contains("did you mean \"unknown-symbol\""), "{e}");
        let e = with("[expect.phases]\nipxe_dhcp = \"30s\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ipxe-dhcp"), "{e}");
        let e = with("timeout = \"soon\"").unwrap_err().to_string();
        assert!(e.contains("120s"), "{e}");
        let e = with("console = [\"(unclosed\"]").unwrap_err().to_string();
        assert!(e.contains("regular expression"), "{e}");
        let e = Scenario::parse(
            &format!("{GOOD}[boot]\nfirmware = \"efi\"\n"),
            Path::new("s.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("bios") && e.contains("uefi"), "{e}");
    }

    #[test]
    fn conflicting_and_bad_values_are_refused() {
        let both = GOOD.replace(
            "dhcp = \"dhclient\"",
            "dhcp = \"dhclient\"\nstatic = \"192.0.2.10/24\"",
        );
        assert!(Scenario::parse(&both, Path::new("s.toml"))
            .unwrap_err()
            .to_string()
            .contains("choose one"));
        let bad = GOOD.replace("dhcp = \"dhclient\"", "static = \"192.0.2.300/24\"");
        assert!(Scenario::parse(&bad, Path::new("s.toml"))
            .unwrap_err()
            .to_string()
            .contains("192.0.2.300"));
        let missing = "name = \"x\"\n[initrd]\nload = []\n";
        let e = Scenario::parse(missing, Path::new("s.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("kernel"), "{e}");
    }

    /// A scenario file in a temp dir as users lay it out: `scenarios/x.toml`, its paths relative.
    fn layout(text: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("scenarios")).unwrap();
        let file = dir.path().join("scenarios/x.toml");
        std::fs::write(&file, text).unwrap();
        (dir, file)
    }

    fn load_err(text: &[u8]) -> (tempfile::TempDir, PathBuf, String) {
        let (dir, file) = layout(text);
        let e = Scenario::load(&file).unwrap_err().to_string();
        (dir, file, e)
    }

    #[test]
    fn not_utf8_names_line_column_byte_offset_and_the_fix() {
        let text = b"name = \"x\"\n# caf\xc3\xa9 ok\nx = \"\xc3\xbc\xe9\"\n";
        let (_d, file, e) = load_err(text);
        // Line 3: `x = "` is 5 characters, `ü` one more: the bad byte is column 7.
        assert_eq!(
            e,
            format!(
                "{}:3:7: byte 0xe9 at byte offset 29 is not UTF-8; save it as UTF-8",
                file.display()
            )
        );
        assert_eq!(text[29], 0xe9);
        let (_d, _, e) = load_err(b"\xff\xfen\x00a\x00");
        assert!(e.contains(":1:1: byte 0xff at byte offset 0 is not UTF-8 (the file starts with a UTF-16 byte order mark); save it as UTF-8"), "{e}");
    }

    const PATHS: &str = r#"name = "paths"
[kernel]
image = "../images/cache/current/vmlinuz"
modules = ["../ofed", "../images/cache/current"]
[initrd]
base = "../initrds/field.img"
binaries = ["/usr/sbin/ip", "/nonexistent/bootrig-test/tool"]
"#;

    /// Everything PATHS names, in place, but the binaries (host paths).
    fn complete(root: &Path) {
        let current = root.join("images/cache/current");
        std::fs::create_dir_all(&current).unwrap();
        std::fs::write(current.join("vmlinuz"), b"k").unwrap();
        std::fs::create_dir_all(root.join("ofed")).unwrap();
        std::fs::create_dir_all(root.join("initrds")).unwrap();
        std::fs::write(root.join("initrds/field.img"), b"i").unwrap();
    }

    #[test]
    fn load_checks_every_path_at_its_key() {
        let text = PATHS.replace("\"/usr/sbin/ip\", ", "");
        let (d, file) = layout(text.as_bytes());
        let root = d.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("images")).unwrap();
        std::fs::write(root.join("images/setup"), b"#!/bin/sh\n").unwrap();
        let e = Scenario::load(&file).unwrap_err().to_string();
        let f = file.display();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 5, "{e}");
        assert!(lines[0].starts_with(&format!(
            "{f}:3:9: [kernel] image = \"../images/cache/current/vmlinuz\": no such file (resolved to {}/images/cache/current/vmlinuz; {}/images/cache does not exist); run ",
            root.display(), root.display()
        )), "{e}");
        assert!(lines[0].ends_with("images/setup or fix the path"), "{e}");
        assert_eq!(lines[1], format!(
            "{f}:4:12: [kernel] modules: \"../ofed\": no such directory (resolved to {}/ofed); fix the path (relative paths are from the scenario file's directory)",
            root.display()
        ));
        assert!(
            lines[2].starts_with(&format!(
                "{f}:4:23: [kernel] modules: \"../images/cache/current\": no such directory"
            )),
            "{e}"
        );
        assert!(
            lines[3].starts_with(&format!(
                "{f}:6:8: [initrd] base = \"../initrds/field.img\": no such file"
            )),
            "{e}"
        );
        assert_eq!(lines[4], format!(
            "{f}:7:13: [initrd] binaries: \"/nonexistent/bootrig-test/tool\": no such file (/nonexistent does not exist); install it on this host, or fix the path"
        ));

        complete(&root);
        let e = Scenario::load(&file).unwrap_err().to_string();
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(
            e.starts_with(&format!("{f}:7:13: [initrd] binaries")),
            "{e}"
        );
        let ok = Scenario::load_checked_for_test(
            &text.replace("/nonexistent/bootrig-test/tool", "/bin/sh"),
            &file,
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn load_says_what_is_there_instead() {
        let (d, file) = layout(b"");
        let root = d.path();
        complete(root);
        let swapped = PATHS
            .replace(
                "image = \"../images/cache/current/vmlinuz\"",
                "image = \"../ofed\"",
            )
            .replace("\"../ofed\", ", "\"../initrds/field.img\", ")
            .replace(", \"/nonexistent/bootrig-test/tool\"", "");
        let e = Scenario::load_checked_for_test(&swapped, &file)
            .unwrap_err()
            .to_string();
        let f = file.display();
        assert!(
            e.contains(&format!(
                "{f}:3:9: [kernel] image = \"../ofed\": is a directory, not a file"
            )),
            "{e}"
        );
        assert!(
            e.contains(&format!(
                "{f}:4:12: [kernel] modules: \"../initrds/field.img\": is a file, not a directory"
            )),
            "{e}"
        );
    }

    #[test]
    fn busybox_base_is_a_name_and_relative_binaries_are_refused() {
        let (d, file) = layout(b"");
        complete(d.path());
        let text = PATHS
            .replace("base = \"../initrds/field.img\"", "base = \"busybox\"")
            .replace("\"/nonexistent/bootrig-test/tool\"", "\"/bin/sh\"");
        let s = Scenario::load_checked_for_test(&text, &file).unwrap();
        assert!(matches!(s.initrd.base, Base::Busybox));
        assert_eq!(s.initrd.binaries[1], Path::new("/bin/sh"));
        let relative = text.replace("\"/bin/sh\"", "\"sbin/ip\"");
        let e = Scenario::parse(&relative, &file).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{}:7:29: [initrd] binaries: \"sbin/ip\": binaries are host paths",
                file.display()
            )),
            "{e}"
        );
        let e = Scenario::parse(&text.replace("modules = [", "modules = 3 #"), &file)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":4:11:") && e.contains("a path, or a list of paths"),
            "{e}"
        );
    }

    /// `/dev/zero` as a base grew a build to 24 GB; a FIFO hung it: refused before anything
    /// is built, at their keys.
    #[test]
    fn devices_and_fifos_are_not_files() {
        let (d, file) = layout(b"");
        complete(d.path());
        let fifo = d.path().join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let text = PATHS
            .replace("../images/cache/current/vmlinuz", "../fifo")
            .replace("../initrds/field.img", "/dev/zero")
            .replace(
                "\"/usr/sbin/ip\", \"/nonexistent/bootrig-test/tool\"",
                "\"/dev/urandom\"",
            );
        let e = Scenario::load_checked_for_test(&text, &file)
            .unwrap_err()
            .to_string();
        let f = file.display();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 3, "{e}");
        assert!(
            lines[0].starts_with(&format!(
                "{f}:3:9: [kernel] image = \"../fifo\": is a FIFO, not a file"
            )),
            "{e}"
        );
        assert!(
            lines[1].starts_with(&format!(
                "{f}:6:8: [initrd] base = \"/dev/zero\": is a character device, not a file"
            )),
            "{e}"
        );
        assert!(
            lines[2].starts_with(&format!(
                "{f}:7:13: [initrd] binaries: \"/dev/urandom\": is a character device"
            )),
            "{e}"
        );
    }

    /// The scenario file itself: a FIFO would hang the read, `/dev/zero` never end it. Both
    /// are refused at once, naming the file and what it is.
    #[test]
    fn a_scenario_that_is_a_fifo_or_a_device_is_refused_promptly() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let started = std::time::Instant::now();
        for (path, kind) in [
            (fifo.as_path(), "FIFO"),
            (Path::new("/dev/zero"), "character device"),
        ] {
            let e = Scenario::load(path).unwrap_err();
            assert!(matches!(e, ScenarioError::Read { .. }), "{e:?}");
            assert_eq!(
                crate::error_chain(&e),
                format!(
                    "{}: is a {kind}, not a file: name a regular file",
                    path.display()
                )
            );
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn a_misspelt_table_is_suggested_from_the_top_level() {
        let e = Scenario::parse(&format!("{GOOD}[netwrk]\n"), Path::new("s.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.toml:15:2: unknown field `netwrk`"), "{e}");
        assert!(e.ends_with("did you mean `network`?"), "{e}");
        let e = Scenario::parse("name = 1\n", Path::new("s.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("s.toml:1:8: invalid type: integer `1`"),
            "{e}"
        );
    }

    #[test]
    fn hardware_names_an_adapter_and_nothing_else() {
        use testing::{parsed, refused_at, with};
        let s = parsed(&with("[hardware]\nadapter = \"hca0\""));
        assert_eq!(s.hardware.map(|h| h.adapter).as_deref(), Some("hca0"));
        let e = refused_at(
            &with("[hardware]\nadaptr = \"hca0\""),
            "adaptr",
            "unknown field `adaptr`",
        );
        assert!(e.ends_with("did you mean `adapter`?"), "{e}");
        refused_at(
            &with("[hardware]\nadapter = 0"),
            "0",
            "invalid type: integer `0`",
        );
        refused_at(
            &with("[hardware]\nbdf = \"81:00.0\""),
            "bdf",
            "unknown field `bdf`, expected `adapter`",
        );
    }
}
