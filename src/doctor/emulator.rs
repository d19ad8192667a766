//! QEMU itself and the accelerators it can really use here.

use std::path::Path;
use std::time::Duration;

use super::{install, Check, Host, Status};
use crate::qemu::accel::{self, Accel, ProbeOutcome, ProbeResult};
use crate::qemu::{self, MIN_VERSION, QEMU_ENV};

/// Adds the QEMU rows; returns what `accel = "auto"` would pick (`None` without a QEMU).
pub(super) fn checks(
    host: &Host,
    timeout: Duration,
    workdir: &Path,
    out: &mut Vec<Check>,
) -> Option<Accel> {
    let qemu = match qemu::locate(&host.path_var, host.qemu_override.as_deref()) {
        Ok(path) => {
            out.push(Check::new("qemu", Status::Ok, path.display().to_string()).required());
            path
        }
        Err(err) => {
            out.push(
                Check::new("qemu", Status::Missing, crate::error_chain(&err))
                    .required()
                    .fix(format!(
                        "{} or set {QEMU_ENV}=/path/to/qemu-system-x86_64",
                        install("qemu-system-x86")
                    )),
            );
            out.push(Check::new("accel tcg", Status::Missing, "not probed: no QEMU").required());
            return None;
        }
    };
    out.push(version_check(&qemu, timeout));

    let kvm_device = kvm_device_check(host);
    let kvm_present = kvm_device.status != Status::Info;
    out.push(kvm_device);

    let tcg = accel::probe(&qemu, Accel::Tcg, timeout, workdir);
    out.push(tcg_check(&tcg));
    let kvm_usable = if kvm_present {
        let kvm = accel::probe(&qemu, Accel::Kvm, timeout, workdir);
        out.push(kvm_check(&kvm));
        kvm.usable()
    } else {
        false
    };
    let auto = if kvm_usable { Accel::Kvm } else { Accel::Tcg };
    out.push(Check::new(
        "accel auto",
        Status::Info,
        format!("accel = \"auto\" will use {auto}"),
    ));
    Some(auto)
}

fn version_check(qemu: &Path, timeout: Duration) -> Check {
    let upgrade = format!("install QEMU {MIN_VERSION} or newer (Debian 12: qemu-system-x86)");
    let check = match qemu::query_version(qemu, timeout) {
        Ok(v) if v >= MIN_VERSION => Check::new("qemu version", Status::Ok, v.to_string()),
        Ok(v) => Check::new(
            "qemu version",
            Status::Warn,
            format!("{v} is older than {MIN_VERSION}, which bootrig needs"),
        )
        .fix(upgrade),
        Err(err) => Check::new("qemu version", Status::Warn, crate::error_chain(&err)).fix(upgrade),
    };
    check.required()
}

fn kvm_device_check(host: &Host) -> Check {
    use nix::unistd::{access, AccessFlags};
    let dev = host.file("/dev/kvm");
    if !dev.exists() {
        return Check::new(
            "kvm device",
            Status::Info,
            "no /dev/kvm: guests run under TCG (slower, works everywhere)",
        )
        .fix("enable virtualisation in the firmware setup and load kvm_intel or kvm_amd");
    }
    match access(&dev, AccessFlags::R_OK | AccessFlags::W_OK) {
        Ok(()) => Check::new("kvm device", Status::Ok, "/dev/kvm is read-writable"),
        Err(errno) => Check::new(
            "kvm device",
            Status::Warn,
            format!("/dev/kvm exists but is not read-writable: {errno}"),
        )
        .fix("add yourself to the kvm group (usermod -aG kvm $USER) and log in again"),
    }
}

fn tcg_check(result: &ProbeResult) -> Check {
    let status = if result.usable() {
        Status::Ok
    } else {
        Status::Missing
    };
    let check = Check::new("accel tcg", status, result.summary()).required();
    if result.usable() {
        check
    } else {
        check.fix(install("qemu-system-x86"))
    }
}

fn kvm_check(result: &ProbeResult) -> Check {
    match result.outcome {
        ProbeOutcome::Usable => Check::new("accel kvm", Status::Ok, result.summary()),
        ProbeOutcome::Hung { .. } => Check::new(
            "accel kvm",
            Status::Warn,
            format!(
                "KVM present but guests hang (nested?): bootrig will use TCG; {}",
                result.summary()
            ),
        )
        .fix(
            "use accel = \"tcg\" here, or enable nested virtualisation properly on the outer host",
        ),
        _ => Check::new(
            "accel kvm",
            Status::Warn,
            format!("KVM unusable, bootrig will use TCG: {}", result.summary()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    fn run(fake: &FakeHost) -> (Vec<Check>, Option<Accel>) {
        let mut out = Vec::new();
        let accel = checks(
            &fake.host,
            Duration::from_secs(5),
            fake.dir.path(),
            &mut out,
        );
        (out, accel)
    }

    #[test]
    fn missing_qemu_names_the_package_and_the_override() {
        let fake = FakeHost::empty();
        let (out, accel) = run(&fake);
        assert_eq!(accel, None);
        let qemu = find(&out, "qemu");
        assert_eq!(qemu.status, Status::Missing);
        let fix = qemu.fix.as_deref().unwrap();
        assert!(
            fix.contains("qemu-system-x86") && fix.contains("BOOTRIG_QEMU"),
            "{fix}"
        );
        assert_eq!(find(&out, "accel tcg").status, Status::Missing);
    }

    #[test]
    fn an_old_qemu_is_flagged_and_blocks() {
        let fake = FakeHost::empty();
        // Says it is 6.2 and cannot run the probe: both must show.
        fake.script(
            "qemu-system-x86_64",
            "[ \"$1\" = --version ] && echo 'QEMU emulator version 6.2.0 (Debian)' && exit 0\necho 'qemu: unsupported' >&2; exit 1",
        );
        let (out, accel) = run(&fake);
        let version = find(&out, "qemu version");
        assert_eq!(version.status, Status::Warn);
        assert!(version.required);
        assert!(
            version.detail.contains("6.2.0 is older than 7.2.0"),
            "{}",
            version.detail
        );
        let tcg = find(&out, "accel tcg");
        assert_eq!(tcg.status, Status::Missing);
        assert!(tcg.detail.contains("qemu: unsupported"), "{}", tcg.detail);
        assert_eq!(accel, Some(Accel::Tcg));
    }

    #[test]
    fn a_hanging_kvm_is_reported_and_auto_falls_back_to_tcg() {
        let fake = FakeHost::empty();
        fake.file("/dev/kvm", b"");
        // A QEMU that never finishes its guest under -accel kvm, and is the real one otherwise.
        let real = crate::qemu::locate(&std::env::var_os("PATH").unwrap_or_default(), None)
            .expect("run images/setup first");
        fake.script(
            "qemu-system-x86_64",
            &format!(
                "case \"$*\" in *'-accel kvm'*) exec sleep 30;; esac\nexec {} \"$@\"",
                real.display()
            ),
        );
        let mut out = Vec::new();
        let start = std::time::Instant::now();
        let accel = checks(
            &fake.host,
            Duration::from_secs(1),
            fake.dir.path(),
            &mut out,
        );
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "{:?}",
            start.elapsed()
        );
        let kvm = find(&out, "accel kvm");
        assert_eq!(kvm.status, Status::Warn);
        assert!(
            kvm.detail
                .starts_with("KVM present but guests hang (nested?): bootrig will use TCG"),
            "{}",
            kvm.detail
        );
        assert_eq!(find(&out, "accel tcg").status, Status::Ok);
        assert_eq!(accel, Some(Accel::Tcg));
    }
}
