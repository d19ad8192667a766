//! The lab inventory: what a lab host's adapters are (PCI address, port GUID, FlexBoot image),
//! kept apart from the scenarios so one suite runs on every lab host. TOML:
//!
//! ```toml
//! [adapters.hca0]
//! bdf = "0000:81:00.0"            # the PF (or the PF whose VF is passed, with `vf`)
//! guid = "0002:c903:0000:1039"    # port GUID: the IPoIB client-identifier is made from it
//! rom = "/srv/flexboot/FlexBoot-3.7.300_CX6.rom"   # optional: instead of the card's own ROM
//! vf = 0                          # optional: create VFs and pass VF n instead of the PF
//! numvfs = 4                      # VFs to create when `vf` is given [vf + 1]
//! stand_in = true                 # optional: a non-Mellanox function standing in for one
//!
//! [lab]                           # optional, for every adapter
//! boot_root = "/srv/tftp"         # stage boot files under <boot_root>/<adapter>/
//! state_dir = "/run/bootrig/vfio" # locks and records [/run/bootrig/vfio]
//! lock_wait = "10m"               # how long a run waits for another holding its adapter [10m]
//! ```
//!
//! Every value is checked when the file is read, whichever adapters a run needs: a `rom` must be
//! a regular file, `boot_root` and `state_dir` directories where they exist (they are made when
//! first used), `lock_wait` within [`LOCK_WAIT_RANGE`]. Each refusal names the file and the
//! value's line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use toml::Spanned;

use crate::net::addr::Guid;
use crate::scenario::location::{toml_error, utf8, Located, Refusal};
use crate::vfio::Bdf;

/// How long a run waits for another run holding its adapter, unless `[lab] lock_wait` says.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(600);

/// Where the inventory is looked for when no `--inventory` is given.
pub const INVENTORY_ENV: &str = "BOOTRIG_INVENTORY";
pub const DEFAULT_INVENTORY: &str = "/etc/bootrig/inventory.toml";

/// How long `[lab] lock_wait` may be: no wait at all to a day (a run waiting longer for an
/// adapter is stuck, and a longer wait overflowed the deadline it was added to).
pub const LOCK_WAIT_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::ZERO..=Duration::from_secs(24 * 60 * 60);

#[derive(Debug, Error)]
pub enum InventoryError {
    /// A value (or the file's shape) that cannot be used, at its place in the file.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// TOML is UTF-8; the first byte that is not.
    #[error("{path}:{line}:{column}: byte 0x{byte:02x} at byte offset {offset} is not UTF-8{hint}; save it as UTF-8")]
    NotUtf8 {
        path: PathBuf,
        line: usize,
        column: usize,
        offset: usize,
        byte: u8,
        /// What the bytes look like, when that helps (a UTF-16 byte order mark).
        hint: &'static str,
    },
    /// Relative paths in the inventory are from its directory, which must be made absolute.
    #[error("{path}: making its directory {dir} absolute")]
    Base {
        path: PathBuf,
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    #[serde(default)]
    adapters: BTreeMap<String, RawAdapter>,
    #[serde(default)]
    lab: RawLab,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLab {
    boot_root: Option<Spanned<PathBuf>>,
    state_dir: Option<Spanned<PathBuf>>,
    lock_wait: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdapter {
    bdf: Spanned<String>,
    guid: Option<Spanned<String>>,
    rom: Option<Spanned<PathBuf>>,
    vf: Option<Spanned<u32>>,
    numvfs: Option<Spanned<u32>>,
    #[serde(default)]
    stand_in: bool,
}

/// The lab host's settings, the same for each of its adapters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lab {
    /// The lab's TFTP root: each run stages its boot files under `<boot_root>/<adapter>/`.
    pub boot_root: Option<PathBuf>,
    /// Where adapter locks and records live.
    pub state_dir: PathBuf,
    pub lock_wait: Duration,
}

impl Default for Lab {
    fn default() -> Self {
        Self {
            boot_root: None,
            state_dir: PathBuf::from(crate::vfio::DEFAULT_STATE_DIR),
            lock_wait: DEFAULT_LOCK_WAIT,
        }
    }
}

/// One adapter of the lab host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adapter {
    pub name: String,
    pub bdf: Bdf,
    /// The port GUID: the IPoIB client-identifier is made from it.
    pub guid: Option<Guid>,
    pub rom: Option<PathBuf>,
    /// Pass VF `vf` of `numvfs` instead of the PF.
    pub vf: Option<(u32, u32)>,
    /// A function of any vendor standing in for a ConnectX (a nested lab's emulated NIC): the
    /// preflight skips the device table only, and reports mark the run.
    pub stand_in: bool,
    pub lab: Lab,
}

#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub path: PathBuf,
    pub adapters: BTreeMap<String, Adapter>,
}

impl Inventory {
    /// The inventory at `path`; a missing file is an empty inventory (scenarios needing an
    /// adapter are then skipped, saying where the inventory was looked for).
    pub fn load(path: &Path) -> Result<Self, InventoryError> {
        // Not `std::fs::read`: a FIFO would hang the read and `/dev/zero` never end it.
        let bytes = match crate::host::input::read_regular(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self {
                    path: path.to_owned(),
                    adapters: BTreeMap::new(),
                })
            }
            Err(source) => {
                return Err(InventoryError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let text = utf8(&bytes).map_err(|at| InventoryError::NotUtf8 {
            path: path.to_owned(),
            line: at.line,
            column: at.column,
            offset: at.offset,
            byte: at.byte,
            hint: at.hint,
        })?;
        Self::parse(text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, InventoryError> {
        let invalid = |l: Located| InventoryError::Invalid {
            path: path.to_owned(),
            line: l.line,
            column: l.column,
            message: l.message,
        };
        let refused = |r: Refusal| invalid(r.located(text));
        let raw: RawInventory = toml::from_str(text).map_err(|e| invalid(toml_error(text, &e)))?;
        // Relative paths in the file are relative to the file, made absolute here so nothing
        // later depends on the working directory (dnsmasq and QEMU change theirs).
        // `lab.toml`'s parent is "", which absolute() refuses: it is the working directory.
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let base = std::path::absolute(dir).map_err(|source| InventoryError::Base {
            path: path.to_owned(),
            dir: dir.to_owned(),
            source,
        })?;
        let lab = lab(raw.lab, &base).map_err(refused)?;
        let mut adapters = BTreeMap::new();
        for (name, a) in raw.adapters {
            let adapter = adapter(&name, a, &base, &lab).map_err(refused)?;
            adapters.insert(name, adapter);
        }
        Ok(Self {
            path: path.to_owned(),
            adapters,
        })
    }

    /// `--inventory`, else `$BOOTRIG_INVENTORY`, else /etc/bootrig/inventory.toml.
    pub fn default_path(given: Option<&Path>) -> PathBuf {
        given
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os(INVENTORY_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_INVENTORY))
    }
}

/// `[adapters.NAME]`, checked; a relative `rom` is relative to `base`.
fn adapter(name: &str, a: RawAdapter, base: &Path, lab: &Lab) -> Result<Adapter, Refusal> {
    let bdf: Bdf = a.bdf.get_ref().parse().map_err(|e| {
        Refusal::at(
            &a.bdf,
            format!("[adapters.{name}] bdf = {:?}: {e}", a.bdf.get_ref()),
        )
    })?;
    let guid = match &a.guid {
        Some(g) => Some(
            g.get_ref()
                .parse::<Guid>()
                .map_err(|e| Refusal::at(g, format!("[adapters.{name}] guid: {e}")))?,
        ),
        None => None,
    };
    let vf = match (&a.vf, &a.numvfs) {
        (Some(vf), numvfs) => {
            let vf_n = *vf.get_ref();
            let n = numvfs
                .as_ref()
                .map_or(vf_n.saturating_add(1), |n| *n.get_ref());
            if vf_n >= n {
                return Err(Refusal::at(
                    numvfs.as_ref().unwrap_or(vf),
                    format!("[adapters.{name}] vf = {vf_n} needs numvfs > {vf_n}"),
                ));
            }
            Some((vf_n, n))
        }
        (None, None) => None,
        (None, Some(n)) => {
            return Err(Refusal::at(
                n,
                format!("[adapters.{name}] numvfs without vf: say which VF to pass"),
            ))
        }
    };
    let rom = match &a.rom {
        Some(rom) => {
            let path = base.join(rom.get_ref());
            regular_file(&path).map_err(|why| {
                Refusal::at(
                    rom,
                    format!(
                        "[adapters.{name}] rom = {:?}: {why}; give the adapter's boot ROM image",
                        rom.get_ref()
                    ),
                )
            })?;
            Some(path)
        }
        None => None,
    };
    Ok(Adapter {
        name: name.to_owned(),
        bdf,
        guid,
        rom,
        vf,
        stand_in: a.stand_in,
        lab: lab.clone(),
    })
}

/// `[lab]`, checked; relative paths are relative to `base`, the inventory file's directory.
/// The directories are made when first used; one that exists must be a directory.
fn lab(raw: RawLab, base: &Path) -> Result<Lab, Refusal> {
    let mut lab = Lab::default();
    if let Some(root) = &raw.boot_root {
        lab.boot_root = Some(directory(
            "boot_root",
            root,
            base,
            "give the lab TFTP server's root",
        )?);
    }
    if let Some(dir) = &raw.state_dir {
        lab.state_dir = directory(
            "state_dir",
            dir,
            base,
            "give a directory (default /run/bootrig/vfio)",
        )?;
    }
    if let Some(wait) = &raw.lock_wait {
        let text = wait.get_ref();
        let d = humantime::parse_duration(text).map_err(|e| {
            Refusal::at(
                wait,
                format!(
                    "[lab] lock_wait = {text:?}: {e} (write a duration such as \"90s\" or \"10m\")"
                ),
            )
        })?;
        if !LOCK_WAIT_RANGE.contains(&d) {
            return Err(Refusal::at(
                wait,
                format!(
                    "[lab] lock_wait = {text:?}: out of range; write a duration from 0s to 24h"
                ),
            ));
        }
        lab.lock_wait = d;
    }
    Ok(lab)
}

/// A `[lab]` directory: not empty, and not something other than a directory where it exists.
fn directory(
    key: &str,
    value: &Spanned<PathBuf>,
    base: &Path,
    fix: &str,
) -> Result<PathBuf, Refusal> {
    if value.get_ref().as_os_str().is_empty() {
        return Err(Refusal::at(value, format!("[lab] {key} is empty: {fix}")));
    }
    let path = base.join(value.get_ref());
    match std::fs::metadata(&path) {
        Ok(m) if !m.is_dir() => Err(Refusal::at(
            value,
            format!(
                "[lab] {key} = {:?}: {} is not a directory; {fix}",
                value.get_ref(),
                path.display()
            ),
        )),
        _ => Ok(path),
    }
}

/// Why `path` is not a regular file, if it is not (a device or FIFO would be read forever).
fn regular_file(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(m) if m.is_dir() => Err(format!("{} is a directory, not a file", path.display())),
        Ok(_) => Err(format!("{} is not a regular file", path.display())),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An inventory whose ROM is a file of the test's own (parse checks that it is one).
    struct Lab0 {
        _dir: tempfile::TempDir,
        text: String,
        rom: PathBuf,
    }

    fn lab0() -> Lab0 {
        let dir = tempfile::tempdir().unwrap();
        let rom = dir.path().join("FlexBoot.rom");
        std::fs::write(&rom, b"rom").unwrap();
        let text = format!(
            "\n[adapters.hca0]\nbdf = \"0000:81:00.0\"\nguid = \"0002:c903:0000:1039\"\nrom = {:?}\n\n\
             [adapters.vf-pool]\nbdf = \"82:00.0\"\nvf = 2\n",
            rom.display().to_string()
        );
        Lab0 {
            _dir: dir,
            text,
            rom,
        }
    }

    /// Asserts `text` is refused at the first `at` in it, naming `file`, saying `says`.
    fn refused_at(text: &str, file: &str, at: &str, says: &str) -> String {
        let offset = text
            .find(at)
            .unwrap_or_else(|| panic!("{at:?} not in {text}"));
        let (line, column) = crate::scenario::location::line_column(text, offset);
        let e = Inventory::parse(text, Path::new(file))
            .unwrap_err()
            .to_string();
        let place = format!("{file}:{line}:{column}: ");
        assert!(e.starts_with(&place), "want {place}…\n got {e}");
        assert!(e.contains(says), "want …{says}…\n got {e}");
        e
    }

    #[test]
    fn adapters_are_read_and_checked() {
        let lab = lab0();
        let inv = Inventory::parse(&lab.text, Path::new("lab.toml")).unwrap();
        let hca = &inv.adapters["hca0"];
        assert_eq!(hca.bdf.to_string(), "0000:81:00.0");
        assert_eq!(
            hca.guid.map(|g| g.to_string()).as_deref(),
            Some("0002:c903:0000:1039")
        );
        assert_eq!(hca.rom.as_deref(), Some(lab.rom.as_path()));
        assert_eq!(inv.adapters["vf-pool"].vf, Some((2, 3)));
        let t = &lab.text;
        for (bad, at, says) in [
            (
                t.replace("0000:81:00.0", "81:00"),
                "\"81:00\"",
                "[adapters.hca0] bdf = \"81:00\"",
            ),
            (
                t.replace("0002:c903:0000:1039", "zz"),
                "\"zz\"",
                "[adapters.hca0] guid",
            ),
            (
                t.replace("vf = 2", "numvfs = 2"),
                "2\n",
                "numvfs without vf",
            ),
            (
                t.replace("vf = 2", "vf = 3\nnumvfs = 2"),
                "2\n",
                "vf = 3 needs numvfs > 3",
            ),
            (
                t.replace("vf = 2", "vf = 4294967295"),
                "4294967295",
                "numvfs > 4294967295",
            ),
            (
                t.replace("rom =", "romfile ="),
                "romfile",
                "unknown field `romfile`",
            ),
            (t.replace("vf = 2", "vf = -1"), "-1", "invalid value"),
        ] {
            refused_at(&bad, "lab.toml", at, says);
        }
    }

    /// A ROM is read whole: a device or a FIFO never ends, a directory is no image. Checked at
    /// parse time for every adapter, not only when a run uses it.
    #[test]
    fn a_rom_must_be_a_regular_file() {
        let lab = lab0();
        let rom = lab.rom.display().to_string();
        for (instead, says) in [
            ("/dev/zero", "/dev/zero is not a regular file"),
            ("/nonexistent/x.rom", "No such file"),
            ("/", "is a directory, not a file"),
        ] {
            let text = lab.text.replace(&rom, instead);
            refused_at(&text, "lab.toml", &format!("{instead:?}"), says);
        }
    }

    #[test]
    fn a_bad_guid_names_the_file_the_adapter_the_byte_and_the_fix() {
        let lab = lab0();
        // Any form Guid reads is accepted, and kept as the GUID itself.
        let dense = Inventory::parse(
            &lab.text.replace("0002:c903:0000:1039", "0002C90300001039"),
            Path::new("lab.toml"),
        )
        .unwrap();
        assert_eq!(
            dense.adapters["hca0"].guid,
            Some(crate::net::addr::Guid([0, 2, 0xc9, 3, 0, 0, 0x10, 0x39]))
        );
        let e = refused_at(
            &lab.text
                .replace("0002:c903:0000:1039", "0002:c903:0000:10z9"),
            "lab/inventory.toml",
            "\"0002:c903:0000:10z9\"",
            "[adapters.hca0] guid: ",
        );
        assert!(e.contains("\"0002:c903:0000:10z9\" at byte 17"), "{e}");
        assert!(e.contains("write it as 0002:c903:0000:1039"), "{e}");
    }

    #[test]
    fn stand_in_and_lab_settings_are_read_relative_to_the_inventory() {
        let fixture = lab0();
        let text = format!(
            "{}\n[adapters.nic0]\nbdf = \"00:03.0\"\nstand_in = true\nrom = \"roms/e1000e.rom\"\n\n[lab]\n\
             boot_root = \"tftp\"\nstate_dir = \"/var/lib/bootrig\"\nlock_wait = \"90s\"\n",
            fixture.text
        );
        // The relative ROM is looked for beside the inventory, in a directory of the test's own.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lab/roms")).unwrap();
        std::fs::write(dir.path().join("lab/roms/e1000e.rom"), b"rom").unwrap();
        std::fs::write(dir.path().join("roms"), b"not a dir").unwrap();
        let inv = Inventory::parse(&text, &dir.path().join("lab/inventory.toml")).unwrap();
        let nic = &inv.adapters["nic0"];
        assert!(nic.stand_in);
        assert!(
            !inv.adapters["hca0"].stand_in,
            "stand-in is never the default"
        );
        // Relative to the file and absolute: dnsmasq and QEMU do not share bootrig's cwd.
        assert_eq!(nic.rom, Some(dir.path().join("lab/roms/e1000e.rom")));
        assert_eq!(inv.adapters["hca0"].rom, Some(fixture.rom.clone()));
        for a in inv.adapters.values() {
            assert_eq!(a.lab.boot_root, Some(dir.path().join("lab/tftp")));
            assert_eq!(a.lab.state_dir, PathBuf::from("/var/lib/bootrig"));
            assert_eq!(a.lab.lock_wait, Duration::from_secs(90));
        }
        // A bare file name: relative to the working directory, still made absolute.
        let cwd = std::env::current_dir().unwrap();
        let bare_text = "[lab]\nboot_root = \"tftp\"\n";
        let bare = Inventory::parse(bare_text, Path::new("inventory.toml")).unwrap();
        assert!(bare.adapters.is_empty());
        let bare = super::lab(toml::from_str::<RawInventory>(bare_text).unwrap().lab, &cwd)
            .ok()
            .unwrap();
        assert_eq!(bare.boot_root, Some(cwd.join("tftp")));
        let plain = Inventory::parse(&fixture.text, Path::new("lab.toml")).unwrap();
        assert_eq!(plain.adapters["hca0"].lab, Lab::default());
        assert_eq!(
            plain.adapters["hca0"].lab.state_dir,
            PathBuf::from("/run/bootrig/vfio")
        );
    }

    /// `[lab]` is checked with or without an adapter, each value at its place.
    #[test]
    fn lab_settings_are_checked_at_parse_time() {
        for (bad, at, says) in [
            (
                "[lab]\nlock_wait = \"soon\"\n",
                "\"soon\"",
                "lock_wait = \"soon\"",
            ),
            (
                "[lab]\nlock_wait = \"18446744073709551615s\"\n",
                "\"1844",
                "out of range; write a duration from 0s to 24h",
            ),
            ("[lab]\nlock_wait = \"25h\"\n", "\"25h\"", "out of range"),
            ("[lab]\nboot_root = \"\"\n", "\"\"", "boot_root is empty"),
            ("[lab]\nstate_dir = \"\"\n", "\"\"", "state_dir is empty"),
            (
                "[lab]\nboot_root = \"/dev/null\"\n",
                "\"/dev/null\"",
                "is not a directory",
            ),
            (
                "[lab]\nstate_dir = \"/etc/passwd\"\n",
                "\"/etc/passwd\"",
                "is not a directory",
            ),
            (
                "[lab]\ntftp_root = \"/srv\"\n",
                "tftp_root",
                "unknown field `tftp_root`",
            ),
            (
                "[adapters.x]\nbdf = \"00:03.0\"\nstand_in = \"yes\"\n",
                "\"yes\"",
                "invalid type: string \"yes\"",
            ),
            (
                "[adapters.x]\nguid = \"x\"\n",
                "[adapters.x]",
                "missing field `bdf`",
            ),
            ("[lab\n", "\n", "invalid table header"),
        ] {
            refused_at(bad, "lab.toml", at, says);
        }
        let ok = Inventory::parse("[lab]\nlock_wait = \"0s\"\n", Path::new("lab.toml"));
        assert!(ok.is_ok(), "{ok:?}");
    }

    /// The TOML refusals are the scenario's: a misspelt key gets a suggestion.
    #[test]
    fn a_misspelt_key_is_suggested() {
        let e = refused_at(
            "[lab]\nboot_rot = \"/srv\"\n",
            "lab.toml",
            "boot_rot",
            "unknown field `boot_rot`",
        );
        assert!(e.ends_with("did you mean `boot_root`?"), "{e}");
    }

    /// A FIFO would hang the read and `/dev/zero` never end it: refused at once, naming the file.
    #[test]
    fn an_inventory_that_is_a_fifo_or_a_device_is_refused_promptly() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("inventory.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let started = std::time::Instant::now();
        for (path, kind) in [
            (fifo.as_path(), "FIFO"),
            (Path::new("/dev/zero"), "character device"),
        ] {
            let e = Inventory::load(path).unwrap_err();
            assert!(matches!(e, InventoryError::Read { .. }), "{e:?}");
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
    fn a_missing_inventory_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let inv = Inventory::load(&dir.path().join("none.toml")).unwrap();
        assert!(inv.adapters.is_empty());
    }

    #[test]
    fn an_inventory_that_is_not_utf8_names_line_column_and_byte_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inv.toml");
        std::fs::write(&path, b"[lab]\nstate_dir = \"/x\xe9\"\n").unwrap();
        let e = Inventory::load(&path).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}:2:16: byte 0xe9 at byte offset 21 is not UTF-8; save it as UTF-8",
                path.display()
            )
        );
    }

    #[test]
    fn a_utf16_inventory_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inv.toml");
        std::fs::write(&path, b"\xff\xfe[\x00l\x00").unwrap();
        let e = Inventory::load(&path).unwrap_err().to_string();
        assert!(
            e.ends_with(
                "byte 0xff at byte offset 0 is not UTF-8 \
                 (the file starts with a UTF-16 byte order mark); save it as UTF-8"
            ),
            "{e}"
        );
    }
}
