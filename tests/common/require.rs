//! What a test needs from the host (root, QEMU, dnsmasq, the fixtures images/setup makes): on a
//! host without it the test says why it skips, and returns; with `BOOTRIG_REQUIRE_ALL=1` (CI, as
//! root with everything installed, exports it in .ci/run) a missing need fails the test instead,
//! so a skip can never hide there.

use std::io::Write;
use std::path::Path;

/// The environment variable that turns every skip into a failure.
pub const REQUIRE_ALL: &str = "BOOTRIG_REQUIRE_ALL";

/// Files only `./images/setup --tests` makes.
const TEST_FIXTURES: [&str; 4] = [
    "images/cache/initrds/mkinitramfs-zstd.img",
    "images/cache/initrds/dracut-early-gzip.img",
    "images/cache/initrds/mkinitramfs-most-gzip.img",
    "images/cache/initrds/tiny-initramfs/initrd.img",
];

/// What a test that builds and boots a busybox-based initrd in QEMU needs.
pub const BUSYBOX_BOOT: &[Need] = &[
    Need::Qemu,
    Need::Setup,
    Need::Program("/bin/busybox", "busybox-static"),
];

#[derive(Debug, Clone, Copy)]
pub enum Need {
    /// Effective uid 0 (network namespaces, taps, device nodes).
    Root,
    /// qemu-system-x86_64 (or `$BOOTRIG_QEMU`).
    Qemu,
    /// The dnsmasq binary.
    Dnsmasq,
    /// What `./images/setup` makes: the fetched kernel (images/cache/env) and the main fixtures.
    Setup,
    /// Setup plus what only `./images/setup --tests` makes (every codec, the early-segment and
    /// benchmark images, tiny-initramfs).
    TestFixtures,
    /// A file, relative to the repository root, made by `./images/setup --tests`.
    TestFixture(&'static str),
    /// The NIC's iPXE ROM, and with `uefi` OVMF too (ipxe-qemu, ovmf).
    NetbootFirmware {
        nic: bootrig::qemu::machine::NicModel,
        uefi: bool,
    },
    /// A host program by absolute path, with the Debian package that installs it.
    Program(&'static str, &'static str),
    /// The same for a program only `./images/setup --tests` installs.
    TestProgram(&'static str, &'static str),
    /// cargo-deb, which `./images/setup --tests` installs into ~/.cargo/bin (see [`cargo_deb`]).
    CargoDeb,
    /// A command on PATH that runs (`NAME --version`), with how to install it, for programs
    /// `./images/setup --tests` installs whose place varies (npm's prefix is /usr or /usr/local).
    TestCommand(&'static str, &'static str),
}

/// The cargo-deb binary: on PATH, else in `$CARGO_HOME/bin` (default ~/.cargo/bin), where
/// `cargo install` puts it and a root PATH (sudo) may not reach.
pub fn cargo_deb() -> Option<std::path::PathBuf> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    bootrig::qemu::find_on_path(&path_var, "cargo-deb".as_ref()).or_else(|| {
        home.map(|h| h.join("bin/cargo-deb"))
            .filter(|p| bootrig::qemu::is_executable(p))
    })
}

impl Need {
    /// `None` when the host has it, else "<why>, <what to install or run>".
    fn missing(self) -> Option<String> {
        let root = super::repo_root();
        match self {
            Need::Root => (!nix::unistd::geteuid().is_root())
                .then(|| "not root, run the tests as root (sudo -E cargo test …)".to_string()),
            Need::Qemu => {
                let path_var = std::env::var_os("PATH").unwrap_or_default();
                let override_value = std::env::var_os(bootrig::qemu::QEMU_ENV);
                bootrig::qemu::locate(&path_var, override_value.as_deref())
                    .err()
                    .map(|e| format!("{e}, run ./images/setup (apt-get install qemu-system-x86)"))
            }
            Need::Dnsmasq => {
                let path_var = std::env::var_os("PATH").unwrap_or_default();
                // dnsmasq is in /usr/sbin, which a non-root PATH may lack.
                let found = bootrig::qemu::find_on_path(&path_var, "dnsmasq".as_ref()).is_some()
                    || bootrig::qemu::is_executable(Path::new("/usr/sbin/dnsmasq"));
                (!found).then(|| {
                    "dnsmasq not found, run ./images/setup (apt-get install dnsmasq)".to_string()
                })
            }
            Need::Setup => {
                let env = root.join("images/cache/env");
                let manifest = root.join("images/cache/initrds/manifest");
                [env, manifest]
                    .into_iter()
                    .find(|p| !p.is_file())
                    .map(|p| format!("{} is absent, run ./images/setup", p.display()))
            }
            Need::TestFixtures => Need::Setup.missing().or_else(|| {
                TEST_FIXTURES
                    .iter()
                    .find_map(|rel| Need::TestFixture(rel).missing())
            }),
            Need::TestFixture(rel) => (!root.join(rel).exists())
                .then(|| format!("{rel} is absent, run ./images/setup --tests")),
            Need::NetbootFirmware { nic, uefi } => {
                let files = bootrig::qemu::firmware::FirmwareFiles::system();
                let rom = files.ipxe_rom(nic).err().map(|e| e.to_string());
                let ovmf = uefi
                    .then(|| files.ovmf().err().map(|e| e.to_string()))
                    .flatten();
                rom.or(ovmf)
            }
            Need::Program(path, package) => {
                (!bootrig::qemu::is_executable(Path::new(path))).then(|| {
                    format!("{path} is absent, run ./images/setup (apt-get install {package})")
                })
            }
            Need::TestProgram(path, package) => (!bootrig::qemu::is_executable(Path::new(path)))
                .then(|| {
                    format!(
                        "{path} is absent, run ./images/setup --tests (apt-get install {package})"
                    )
                }),
            Need::CargoDeb => cargo_deb().is_none().then(|| {
                "cargo-deb is absent, run ./images/setup --tests (cargo install cargo-deb)"
                    .to_string()
            }),
            Need::TestCommand(name, install) => {
                let runs = std::process::Command::new(name)
                    .arg("--version")
                    .stdin(std::process::Stdio::null())
                    .output()
                    .is_ok_and(|out| out.status.success());
                (!runs).then(|| {
                    format!("{name} --version does not run, run ./images/setup --tests ({install})")
                })
            }
        }
    }
}

/// True when the host has everything in `needs`. Otherwise prints "skipped: <why>, <what to
/// install or run>" and returns false — or, with `BOOTRIG_REQUIRE_ALL=1`, fails the test.
///
/// ```ignore
/// if !require(&[Need::Qemu, Need::Setup]) { return; }
/// ```
pub fn require(needs: &[Need]) -> bool {
    let Some(why) = needs.iter().find_map(|n| n.missing()) else {
        return true;
    };
    let strict = std::env::var_os(REQUIRE_ALL).is_some_and(|v| v == "1");
    assert!(!strict, "{REQUIRE_ALL}=1 and {why}");
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_owned();
    // Straight to the process's stderr: the test harness captures eprintln! of passing tests,
    // and a skip must show.
    let _ = writeln!(std::io::stderr(), "{test}: skipped: {why}");
    false
}
