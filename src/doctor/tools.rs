//! Commands the archive engine's tests, initrd builders and network back-ends use, and the
//! static busybox bootrig puts into test initrds.

use object::read::elf::{FileHeader, ProgramHeader};

use super::{install, Check, Host, Status};

struct Tool {
    command: &'static str,
    package: &'static str,
    /// Part of the default path's cpio tooling.
    required: bool,
    use_: &'static str,
}

const TOOLS: [Tool; 9] = [
    Tool {
        command: "cpio",
        package: "cpio",
        required: true,
        use_: "reference archiver for initrd tests",
    },
    Tool {
        command: "gzip",
        package: "gzip",
        required: true,
        use_: "reference gzip for initrd tests",
    },
    Tool {
        command: "xz",
        package: "xz-utils",
        required: false,
        use_: "xz initrd segments in tests",
    },
    Tool {
        command: "zstd",
        package: "zstd",
        required: false,
        use_: "zstd initrd segments in tests",
    },
    Tool {
        command: "lz4",
        package: "lz4",
        required: false,
        use_: "lz4 initrd segments in tests",
    },
    Tool {
        command: "mkinitramfs",
        package: "initramfs-tools-core",
        required: false,
        use_: "builds initramfs-tools initrds",
    },
    Tool {
        command: "dracut",
        package: "dracut-core",
        required: false,
        use_: "builds dracut initrds",
    },
    Tool {
        command: "dnsmasq",
        package: "dnsmasq",
        required: false,
        use_: "DHCP/TFTP in a network namespace",
    },
    Tool {
        command: "dhclient",
        package: "isc-dhcp-client",
        required: false,
        use_: "ISC DHCP client put into initrds",
    },
];

const BUSYBOX: &str = "/bin/busybox";

pub(super) fn checks(host: &Host, out: &mut Vec<Check>) {
    for tool in &TOOLS {
        let check = match host.command(tool.command) {
            Some(path) => Check::new(tool.command, Status::Ok, path.display().to_string()),
            None => Check::new(
                tool.command,
                Status::Missing,
                format!("not found ({})", tool.use_),
            )
            .fix(install(tool.package)),
        };
        out.push(if tool.required {
            check.required()
        } else {
            check
        });
    }
    out.push(busybox(host));
}

fn busybox(host: &Host) -> Check {
    let fix = install("busybox-static");
    let path = host.file(BUSYBOX);
    let data = match std::fs::read(&path) {
        Ok(data) => data,
        Err(_) => return Check::new("busybox", Status::Missing, format!("no {BUSYBOX}")).fix(fix),
    };
    match is_static_elf(&data) {
        Ok(true) => Check::new("busybox", Status::Ok, format!("{BUSYBOX} (static)")),
        Ok(false) => Check::new(
            "busybox",
            Status::Warn,
            format!("{BUSYBOX} is dynamically linked: it cannot run alone in an initrd"),
        )
        .fix(fix),
        Err(why) => Check::new("busybox", Status::Warn, format!("{BUSYBOX}: {why}")).fix(fix),
    }
}

/// True when `data` is an ELF executable without an interpreter (`PT_INTERP`).
fn is_static_elf(data: &[u8]) -> Result<bool, String> {
    use object::FileKind;
    let kind = FileKind::parse(data).map_err(|e| format!("not an executable: {e}"))?;
    let has_interp = match kind {
        FileKind::Elf32 => has_interp::<object::elf::FileHeader32<object::Endianness>>(data),
        FileKind::Elf64 => has_interp::<object::elf::FileHeader64<object::Endianness>>(data),
        other => return Err(format!("not an ELF executable ({other:?})")),
    };
    has_interp
        .map(|interp| !interp)
        .map_err(|e| format!("unreadable ELF: {e}"))
}

fn has_interp<Elf: FileHeader<Endian = object::Endianness>>(
    data: &[u8],
) -> Result<bool, object::Error> {
    let header = Elf::parse(data)?;
    let endian = header.endian()?;
    let headers = header.program_headers(endian, data)?;
    Ok(headers
        .iter()
        .any(|ph| ph.p_type(endian) == object::elf::PT_INTERP))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    fn run(fake: &FakeHost) -> Vec<Check> {
        let mut out = Vec::new();
        checks(&fake.host, &mut out);
        out
    }

    #[test]
    fn missing_tools_name_their_packages() {
        let out = run(&FakeHost::empty());
        for (name, package, required) in [
            ("cpio", "cpio", true),
            ("xz", "xz-utils", false),
            ("mkinitramfs", "initramfs-tools-core", false),
            ("dhclient", "isc-dhcp-client", false),
            ("busybox", "busybox-static", false),
        ] {
            let check = find(&out, name);
            assert_eq!(check.status, Status::Missing, "{name}");
            assert_eq!(check.required, required, "{name}");
            assert!(check.fix.as_deref().unwrap().contains(package), "{name}");
        }
    }

    #[test]
    fn a_dynamic_busybox_is_a_warning() {
        let fake = FakeHost::empty();
        // /bin/sh on Debian is dash: dynamically linked.
        fake.file(BUSYBOX, &std::fs::read("/bin/sh").unwrap());
        let check = busybox(&fake.host);
        assert_eq!(check.status, Status::Warn);
        assert!(
            check.detail.contains("dynamically linked"),
            "{}",
            check.detail
        );
        fake.file(BUSYBOX, b"#!/bin/sh\n");
        assert_eq!(busybox(&fake.host).status, Status::Warn);
    }

    #[test]
    fn this_hosts_tools_are_all_there() {
        let host = Host::from_env(std::path::Path::new("/"));
        let mut out = Vec::new();
        checks(&host, &mut out);
        for check in &out {
            assert_eq!(
                check.status,
                Status::Ok,
                "run images/setup first: {check:?}"
            );
        }
        assert!(find(&out, "busybox").detail.contains("static"));
    }
}
