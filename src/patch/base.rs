//! bootrig's own minimal base initrd: a static busybox, the applet links the stanza and udhcpc
//! need, `/init` from `harness/busybox-init.sh` (mounts proc, sys and devtmpfs, then the
//! `# BOOTRIG-STANZA` line where the stanza goes) and busybox udhcpc's default script.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};
use thiserror::Error;

use super::stanza::{udhcpc_script_addition, UDHCPC_SCRIPT_DEFAULT_PATH};
use crate::initrd::add::{self, AddError, AddMode, AddOptions, Addition};
use crate::initrd::codec::{self, Compression};
use crate::initrd::cpio::Entry;
use crate::initrd::pack;
use crate::patch::host_file::{self, HostFileError};

/// The base's /init.
pub const INIT: &str = include_str!("../../harness/busybox-init.sh");

/// Applet links: what /init, the stanza, udhcpc's script and a person at the shell use. A fixed
/// list (not `busybox --list`) so the base is the same whatever busybox build made it.
pub const APPLETS: &[&str] = &[
    "bin/sh",
    "bin/ash",
    "bin/cat",
    "bin/cp",
    "bin/cttyhack",
    "bin/date",
    "bin/dmesg",
    "bin/echo",
    "bin/expr",
    "bin/false",
    "bin/grep",
    "bin/head",
    "bin/hostname",
    "bin/kill",
    "bin/ln",
    "bin/ls",
    "bin/mkdir",
    "bin/mknod",
    "bin/mount",
    "bin/mv",
    "bin/ping",
    "bin/printf",
    "bin/ps",
    "bin/readlink",
    "bin/rm",
    "bin/rmdir",
    "bin/sed",
    "bin/setsid",
    "bin/sleep",
    "bin/stat",
    "bin/sync",
    "bin/tail",
    "bin/test",
    "bin/touch",
    "bin/true",
    "bin/umount",
    "bin/uname",
    "bin/vi",
    "usr/bin/[",
    "usr/bin/awk",
    "usr/bin/cut",
    "usr/bin/env",
    "usr/bin/find",
    "usr/bin/hexdump",
    "usr/bin/id",
    "usr/bin/less",
    "usr/bin/tr",
    "usr/bin/wc",
    "usr/bin/xargs",
    "sbin/arp",
    "sbin/halt",
    "sbin/ifconfig",
    "sbin/insmod",
    "sbin/ip",
    "sbin/lsmod",
    "sbin/modinfo",
    "sbin/poweroff",
    "sbin/reboot",
    "sbin/rmmod",
    "sbin/route",
    "sbin/switch_root",
    "sbin/udhcpc",
];

#[derive(Debug, Error)]
pub enum BaseError {
    #[error("{path}: the busybox base needs a static busybox (on Debian: apt-get install busybox-static)")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: {why}; the busybox base needs a statically linked x86-64 busybox (Debian: busybox-static, /bin/busybox)")]
    NotStatic { path: PathBuf, why: String },
    #[error("{path}")]
    Write { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Add(#[from] AddError),
    #[error(transparent)]
    HostFile(#[from] HostFileError),
}

/// The base's contents as additions (everything but the `/dev/console` node, which
/// [`write_busybox_base`] adds: additions cannot carry device nodes, and the base's /init
/// reopens the console on devtmpfs anyway).
pub fn busybox_base(busybox: &Path) -> Result<Vec<Addition>, BaseError> {
    check_static(busybox)?;
    let mut adds = vec![
        Addition::dir("/bin", 0o755),
        Addition::dir("/sbin", 0o755),
        Addition::dir("/usr/bin", 0o755),
        Addition::dir("/usr/sbin", 0o755),
        Addition::dir("/dev", 0o755),
        Addition::dir("/proc", 0o555),
        Addition::dir("/sys", 0o555),
        Addition::dir("/run", 0o755),
        Addition::dir("/tmp", 0o1777),
        Addition::dir("/etc", 0o755),
        Addition::dir("/root", 0o700),
        Addition::dir("/lib/modules", 0o755),
    ];
    let mut bin = Addition::path(busybox.to_owned(), "/bin/busybox");
    bin.mode = Some(0o755);
    adds.push(bin);
    for applet in APPLETS {
        let depth = applet.matches('/').count();
        let target = format!("{}bin/busybox", "../".repeat(depth));
        adds.push(Addition::symlink(&format!("/{applet}"), &target));
    }
    adds.push(Addition::bytes("/init", INIT.as_bytes().to_vec(), 0o755));
    adds.push(udhcpc_script_addition(UDHCPC_SCRIPT_DEFAULT_PATH));
    Ok(adds)
}

/// Writes the base as one gzip newc archive at `out` (replaced atomically).
pub fn write_busybox_base(busybox: &Path, out: &Path) -> Result<(), BaseError> {
    let additions = busybox_base(busybox)?;
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let write_err = |source| BaseError::Write {
        path: out.to_owned(),
        source,
    };
    // A seed archive with what additions cannot express; `add` repacks it with the rest.
    let mut seed = tempfile::Builder::new()
        .prefix(".bootrig-base-")
        .tempfile_in(dir)
        .map_err(write_err)?;
    let archive = pack::archive(&[
        node("dev", 0o040755, (0, 0)),
        node("dev/console", 0o020600, (5, 1)),
    ])
    .map_err(write_err)?;
    {
        let mut enc =
            codec::encoder(Compression::Gzip, seed.as_file_mut(), None).map_err(write_err)?;
        enc.write_all(&archive.bytes).map_err(write_err)?;
        enc.finish().map_err(write_err)?;
    }
    seed.as_file_mut().flush().map_err(write_err)?;
    let opts = AddOptions {
        mode: AddMode::Repack,
        compress: Some(Compression::Gzip),
        force: true,
        // One gzip member whatever the machine's core count: same inputs, same bytes.
        threads: 1,
        ..AddOptions::default()
    };
    add::add(seed.path(), out, &additions, &opts)?;
    Ok(())
}

fn node(name: &str, mode: u32, rdev: (u32, u32)) -> Entry {
    let mut e = Entry::new(name, mode, Vec::new());
    e.header.rdev_major = rdev.0;
    e.header.rdev_minor = rdev.1;
    e
}

/// A dynamically linked busybox would find no libc in the base: refuse it now, not at boot.
fn check_static(busybox: &Path) -> Result<(), BaseError> {
    let data =
        host_file::read(busybox, "the static busybox")?.map_err(|source| BaseError::Read {
            path: busybox.to_owned(),
            source,
        })?;
    let not_static = |why: String| BaseError::NotStatic {
        path: busybox.to_owned(),
        why,
    };
    let header = elf::FileHeader64::<object::Endianness>::parse(&*data)
        .map_err(|e| not_static(format!("not a 64-bit ELF file ({e})")))?;
    let endian = header
        .endian()
        .map_err(|e| not_static(format!("bad ELF header ({e})")))?;
    if header.e_machine(endian) != elf::EM_X86_64 {
        return Err(not_static(format!(
            "ELF machine {} is not x86-64",
            header.e_machine(endian)
        )));
    }
    let segments = header
        .program_headers(endian, &*data)
        .map_err(|e| not_static(format!("bad program headers ({e})")))?;
    if segments.iter().any(|p| p.p_type(endian) == elf::PT_INTERP) {
        return Err(not_static(
            "it is dynamically linked (has a PT_INTERP program header)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::initrd::add::Source;
    use crate::initrd::cpio::Kind;
    use crate::initrd::image::{read_tree, ReadOptions};
    use crate::initrd::tree::DataPolicy;
    use crate::patch::detect::detect;
    use crate::patch::flavor::Flavor;
    use std::fs;

    const BUSYBOX: &str = "/bin/busybox";

    fn host_busybox() -> &'static Path {
        let p = Path::new(BUSYBOX);
        assert!(
            p.exists(),
            "{BUSYBOX} missing: run images/setup first (busybox-static)"
        );
        p
    }

    #[test]
    fn additions_link_every_applet_to_busybox() {
        let adds = busybox_base(host_busybox()).unwrap();
        for applet in APPLETS {
            let a = adds
                .iter()
                .find(|a| a.dest == format!("/{applet}").as_bytes())
                .unwrap_or_else(|| panic!("{applet} missing"));
            let Source::Symlink(target) = &a.source else {
                panic!("{applet} is not a symlink");
            };
            // Relative, and resolving to /bin/busybox from the link's directory.
            let dir = Path::new("/").join(applet).parent().unwrap().to_owned();
            let resolved = dir.join(String::from_utf8(target.clone()).unwrap());
            let resolved: PathBuf = resolved.components().fold(PathBuf::new(), |mut p, c| {
                match c {
                    std::path::Component::ParentDir => {
                        p.pop();
                    }
                    other => p.push(other),
                }
                p
            });
            assert_eq!(resolved, Path::new("/bin/busybox"), "{applet}");
        }
    }

    #[test]
    fn dynamic_or_foreign_binaries_are_refused() {
        // /bin/true on Debian is dynamically linked.
        let err = busybox_base(Path::new("/bin/true")).unwrap_err();
        assert!(err.to_string().contains("dynamically linked"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("busybox");
        fs::write(&junk, b"#!/bin/sh\n").unwrap();
        assert!(matches!(
            busybox_base(&junk),
            Err(BaseError::NotStatic { .. })
        ));
        assert!(matches!(
            busybox_base(&dir.path().join("absent")),
            Err(BaseError::Read { .. })
        ));
    }

    #[test]
    fn written_base_has_console_init_and_detects_as_busybox() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("base.img");
        write_busybox_base(host_busybox(), &out).unwrap();
        let (tree, segments) = read_tree(&out, DataPolicy::Full, &ReadOptions::default()).unwrap();
        assert_eq!(segments.len(), 1);
        assert_eq!(segments[0].compression, Compression::Gzip);
        let console = tree.get(b"dev/console").unwrap();
        assert_eq!(console.kind, Kind::CharDevice);
        assert_eq!(console.rdev, (5, 1));
        let init = tree.get(b"init").unwrap();
        assert_eq!(init.mode & 0o777, 0o755);
        assert_eq!(
            tree.inode(init).unwrap().data.as_deref(),
            Some(INIT.as_bytes())
        );
        let busybox = tree.get(b"bin/busybox").unwrap();
        assert_eq!(
            tree.inode(busybox).unwrap().data.as_deref(),
            Some(fs::read(BUSYBOX).unwrap().as_slice())
        );
        assert_eq!(detect(&tree), Flavor::Busybox);
        assert!(tree.get(b"usr/share/udhcpc/default.script").is_some());
        // Same inputs, same bytes: builds are cached by content.
        let again = dir.path().join("again.img");
        write_busybox_base(host_busybox(), &again).unwrap();
        assert_eq!(fs::read(&out).unwrap(), fs::read(&again).unwrap());
    }
}
