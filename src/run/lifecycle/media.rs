//! The files a boot needs: the initrd (built, or given) and kernel staged in `dir/boot`, the
//! firmware's per-boot files, and for an iPXE boot the script and how the ROM gets it (TFTP, or
//! bootrig's HTTP server).

use crate::names::Named;
use std::fs;
use std::path::{Path, PathBuf};

use crate::build::{build, BuildOptions};
use crate::net::Segment;
use crate::netboot::http::HttpServer;
use crate::netboot::{ipxe, stage};
use crate::patch::stanza::Then;
use crate::qemu::firmware::write_sercon_port;
use crate::qemu::machine;
use crate::run::target::{InitrdSource, Target};
use crate::scenario::{Backend, Fetch, Firmware, Method};
use crate::verdict::Expectation;

use super::{io_error, Context, SetupError};

/// The files a boot needs, in `dir/boot`.
pub(super) struct Media {
    pub boot_dir: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// What the plan expects of the boot (no modules for a given initrd).
    pub plan: Expectation,
}

/// Builds (or takes) the initrd and stages it with the kernel in `dir/boot`.
pub(super) fn prepare(target: &Target, dir: &Path, ctx: &Context) -> Result<Media, SetupError> {
    let boot_dir = dir.join("boot");
    fs::create_dir_all(&boot_dir).map_err(io_error(&boot_dir))?;
    let (initrd_source, plan) = match &target.initrd {
        InitrdSource::Build(scenario) => {
            let built_at = dir.join("initrd.built");
            let mut opts = BuildOptions::new(&built_at);
            opts.force = true;
            opts.interrupt = ctx.interrupt.clone();
            opts.then = if target.expect.shell.is_empty() {
                Then::PowerOff
            } else {
                Then::Shell
            };
            if let Some(cache) = &ctx.build_cache {
                opts.cache_dir = cache.clone();
            }
            let built = build(scenario, &opts)?;
            // What the build decided and warned about, beside plan.json: a rebuilt cache entry
            // or a hardlink broken in the base is evidence a reader of the run wants.
            let mut text = format!(
                "flavor {} ({})\n",
                built.flavor.as_str(),
                built.flavor_reason
            );
            for w in &built.warnings {
                text.push_str(&format!("warning: {w}\n"));
            }
            let log = dir.join("build.txt");
            fs::write(&log, text).map_err(io_error(&log))?;
            let mut plan = built.expectation;
            plan.interface = target.interface.clone();
            (built.image, plan)
        }
        InitrdSource::Given(path) => (path.clone(), Expectation::default()),
    };
    let staged = stage::stage_files(&boot_dir, &target.kernel, &initrd_source)?;
    if let InitrdSource::Build(_) = target.initrd {
        // Staged (linked or copied); the build's own output is not needed twice.
        let _ = fs::remove_file(&initrd_source);
    }
    Ok(Media {
        boot_dir,
        kernel: staged.kernel.path,
        initrd: staged.initrd.path,
        plan,
    })
}

/// The firmware's files for this boot, in `dir`: SeaBIOS's serial-console port, or a copy of
/// OVMF's variable store.
pub(super) fn firmware(
    firmware: Firmware,
    ctx: &Context,
    dir: &Path,
) -> Result<machine::FirmwareImage, SetupError> {
    Ok(match firmware {
        // SeaBIOS mirrors its console (and the iPXE ROM's) to the serial port only when told.
        Firmware::Bios => machine::FirmwareImage::Bios {
            sercon_port: Some(write_sercon_port(dir)?),
        },
        Firmware::Uefi => {
            let pair = ctx.firmware.ovmf()?;
            let vars_copy = pair.copy_vars(dir)?;
            machine::FirmwareImage::Uefi {
                code: pair.code,
                vars_copy,
            }
        }
    })
}

/// What the ROM's DHCP (QEMU's user-mode network) hands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RomDhcp {
    /// The TFTP root QEMU serves; None when something else serves the files.
    pub tftp_root: Option<PathBuf>,
    /// The boot file: the script's name, or its URL.
    pub bootfile: String,
}

/// How an iPXE boot gets its files.
pub(super) struct Netboot {
    /// bootrig's HTTP server, when the files come over HTTP; it stops when dropped.
    pub http: Option<HttpServer>,
    /// None for a direct boot.
    pub dhcp: Option<RomDhcp>,
}

/// Where the script fetches from, for the scenario's `fetch`: the segment's TFTP server, QEMU's,
/// or bootrig's HTTP server, which this starts and returns.
fn file_source(
    target: &Target,
    media: &Media,
    segment: Option<&Segment>,
) -> Result<(ipxe::FileSource, Option<HttpServer>), SetupError> {
    Ok(match (target.boot.fetch, segment) {
        (Fetch::Tftp, Some(seg)) => (ipxe::FileSource::TftpAt(seg.server_address()), None),
        (Fetch::Tftp, None) => (ipxe::FileSource::Tftp, None),
        (Fetch::Http, _) if !matches!(target.backend, Backend::User) => {
            return Err(SetupError::Unsupported(
                "fetch = \"http\" needs backend = \"user\" (bootrig's HTTP server listens on host loopback); use fetch = \"tftp\"".into(),
            ))
        }
        (Fetch::Http, _) => {
            let server = HttpServer::start(&media.boot_dir)?;
            let port = server.port();
            (ipxe::FileSource::Http { port }, Some(server))
        }
    })
}

/// For an iPXE boot: starts the HTTP server if the files come over HTTP, and writes the
/// script that fetches them. Nothing for a direct boot.
pub(super) fn netboot(
    target: &Target,
    media: &Media,
    segment: Option<&Segment>,
) -> Result<Netboot, SetupError> {
    let boot = &target.boot;
    if boot.method != Method::Ipxe {
        return Ok(Netboot {
            http: None,
            dhcp: None,
        });
    }
    let (fetch, http) = file_source(target, media, segment)?;
    let mut spec = ipxe::ScriptSpec::new(
        fetch,
        stage::KERNEL_NAME,
        stage::INITRD_NAME,
        &target.cmdline(),
    );
    spec.initrd_arg = boot.ipxe_initrd_arg;
    stage::write_script(&media.boot_dir, &ipxe::render(&spec)?)?;
    if let Some(crate::run::target::AdapterNeed::Found(adapter)) = &target.adapter {
        if let Some(root) = &adapter.lab.boot_root {
            // The lab's TFTP serves the adapter's DHCP boot file; the adapter's lock (taken
            // before this) covers these files.
            crate::netboot::lab_root::stage(
                root,
                &adapter.name,
                &media.boot_dir.join(stage::KERNEL_NAME),
                &media.boot_dir.join(stage::INITRD_NAME),
                &spec,
            )?;
        }
    }
    let dhcp = match fetch {
        // The ROM takes a URL as boot file: the script comes over HTTP too, and the log
        // shows its fetch.
        ipxe::FileSource::Http { .. } => RomDhcp {
            tftp_root: None,
            bootfile: format!("{}/{}", fetch.base_url(), stage::SCRIPT_NAME),
        },
        ipxe::FileSource::Tftp => RomDhcp {
            tftp_root: Some(media.boot_dir.clone()),
            bootfile: stage::SCRIPT_NAME.to_string(),
        },
        // dnsmasq's DHCP names the script; QEMU's user-mode net serves nothing.
        ipxe::FileSource::TftpAt(_) => RomDhcp {
            tftp_root: None,
            bootfile: stage::SCRIPT_NAME.to_string(),
        },
    };
    Ok(Netboot {
        http,
        dhcp: Some(dhcp),
    })
}
