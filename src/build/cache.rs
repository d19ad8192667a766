//! The build cache: entries by content key, verified on use.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{io_err, BuildError};
use crate::fsutil::{write_atomic, AtomicOutput};
use crate::interrupt::{Interrupt, InterruptibleRead};
use crate::names::Named;
use crate::patch::flavor::{Flavor, FlavorDecision};
use crate::patch::host_file::check_regular;

/// One entry of the build cache.
pub(super) struct CacheEntry {
    pub image: PathBuf,
    pub flavor: PathBuf,
    /// `<key>.sha256`, in `sha256sum` format; written last, so its presence marks a complete entry.
    pub sha256: PathBuf,
}

/// A usable entry, before its content is checked against `sha256`.
pub(super) struct FoundEntry {
    pub flavor: FlavorDecision,
    pub sha256: String,
}

/// Why an entry is not reused.
#[derive(Debug)]
pub(super) enum EntryProblem {
    Absent,
    Missing { file: PathBuf, why: String },
    Unreadable { file: PathBuf, why: String },
    Changed { recorded: String, found: String },
}

impl CacheEntry {
    pub(super) fn new(cache_dir: &Path, key: &str) -> Self {
        let builds = cache_dir.join("builds");
        Self {
            image: builds.join(format!("{key}.img")),
            flavor: builds.join(format!("{key}.flavor")),
            sha256: builds.join(format!("{key}.sha256")),
        }
    }

    /// The entry's flavor and recorded hash, when all its files are there and readable.
    pub(super) fn check(&self) -> Result<FoundEntry, EntryProblem> {
        if self.image.symlink_metadata().is_err() {
            return Err(EntryProblem::Absent);
        }
        // Sidecars are read as regular files, bounded: a FIFO or device planted in a shared cache
        // must not hang or flood another user's build (it becomes an unreadable entry, rebuilt).
        let read = |file: &Path, missing_why: &str| match read_sidecar(file) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(EntryProblem::Missing {
                file: file.to_owned(),
                why: missing_why.to_owned(),
            }),
            Err(e) => Err(EntryProblem::Unreadable {
                file: file.to_owned(),
                why: e.to_string(),
            }),
        };
        let sum = read(
            &self.sha256,
            "the entry was never completed (a build stopped while writing it?)",
        )?;
        let sha256 = sum
            .split_whitespace()
            .next()
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| EntryProblem::Unreadable {
                file: self.sha256.clone(),
                why: "expected a SHA-256 in hex".into(),
            })?
            .to_ascii_lowercase();
        let text = read(&self.flavor, "the base's flavor was not recorded")?;
        let flavor = parse_flavor(text.trim()).map_err(|why| EntryProblem::Unreadable {
            file: self.flavor.clone(),
            why,
        })?;
        Ok(FoundEntry { flavor, sha256 })
    }

    pub(super) fn warning(&self, problem: &EntryProblem) -> String {
        // The sidecars sit beside the image the message names.
        let name = |file: &Path| {
            file.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        };
        let why = match problem {
            EntryProblem::Absent => "not in the cache".to_owned(),
            EntryProblem::Missing { file, why } => format!("its {} is missing: {why}", name(file)),
            EntryProblem::Unreadable { file, why } => format!("its {}: {why}", name(file)),
            EntryProblem::Changed { recorded, found } => format!(
                "its content (SHA-256 {found}) is not what was written (SHA-256 {recorded}): \
                 it was changed or damaged since"
            ),
        };
        format!(
            "build cache entry {}: {why}; building it again",
            self.image.display()
        )
    }

    /// Removes the sidecar before the image is rewritten.
    pub(super) fn invalidate(&self) -> Result<(), BuildError> {
        match fs::remove_file(&self.sha256) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&self.sha256)(e)),
            _ => Ok(()),
        }
    }

    /// Records the written image's flavor and hash; the hash last, as it marks the entry complete.
    pub(super) fn complete(
        &self,
        flavor: &FlavorDecision,
        sha256: &str,
        key: &str,
    ) -> Result<(), BuildError> {
        let text = format!("{}\n{}", flavor.flavor.as_str(), flavor.reason);
        write_atomic(&self.flavor, text.as_bytes(), true)?;
        write_atomic(
            &self.sha256,
            format!("{sha256}  {key}.img\n").as_bytes(),
            true,
        )?;
        Ok(())
    }
}

/// An entry's flavor file: the flavor's name, then on the next line why it was chosen.
fn parse_flavor(text: &str) -> Result<FlavorDecision, String> {
    if text.is_empty() {
        return Err("empty".into());
    }
    let (name, reason) = text.split_once('\n').unwrap_or((text, ""));
    let flavor = Flavor::from_name(name).ok_or_else(|| format!("unknown flavor {name:?}"))?;
    Ok(FlavorDecision {
        flavor,
        reason: reason.to_owned(),
    })
}

/// SHA-256 over a label and the path and content of each file, in order; stops when
/// `interrupt` is set.
pub(super) fn hash_files(
    interrupt: &Interrupt,
    files: &[PathBuf],
    label: &str,
) -> Result<String, BuildError> {
    let mut h = Sha256::new();
    h.update(label.as_bytes());
    for f in files {
        check_regular(f, "a build input")?;
        let file = crate::host::input::open_regular(f).map_err(io_err(f))?;
        h.update(f.as_os_str().as_encoded_bytes());
        h.update([0]);
        io::copy(&mut InterruptibleRead::new(file, interrupt), &mut h).map_err(io_err(f))?;
    }
    Ok(hex(&h.finalize()))
}

/// The SHA-256 of one file's content, as `sha256sum` prints it.
pub(super) fn file_sha256(interrupt: &Interrupt, path: &Path) -> Result<String, BuildError> {
    let file = crate::host::input::open_regular(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    io::copy(&mut InterruptibleRead::new(file, interrupt), &mut h).map_err(io_err(path))?;
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies `from` to an output at `to`, not yet committed, and the SHA-256 of what was copied.
pub(super) fn copy_hashing(
    from: &Path,
    to: &Path,
    force: bool,
    interrupt: &Interrupt,
) -> Result<(AtomicOutput, String), BuildError> {
    /// Hashes what passes through.
    struct Tee<W> {
        out: W,
        hash: Sha256,
    }
    impl<W: io::Write> io::Write for Tee<W> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = self.out.write(buf)?;
            self.hash.update(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            self.out.flush()
        }
    }
    let mut out = AtomicOutput::create(to, force)?;
    let src = crate::host::input::open_regular(from).map_err(io_err(from))?;
    let hash = {
        let mut tee = Tee {
            out: out.writer(),
            hash: Sha256::new(),
        };
        io::copy(&mut InterruptibleRead::new(src, interrupt), &mut tee).map_err(io_err(to))?;
        io::Write::flush(&mut tee).map_err(io_err(to))?;
        tee.hash
    };
    Ok((out, hex(&hash.finalize())))
}

/// A cache sidecar's text: a regular file of at most 64 KiB, UTF-8.
fn read_sidecar(file: &Path) -> io::Result<String> {
    use std::io::Read;
    const MAX: u64 = 64 * 1024;
    let mut text = String::new();
    crate::host::input::open_regular(file)?
        .take(MAX + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "larger than a cache sidecar can be (64 KiB)",
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO planted as a sidecar in a shared cache is an unreadable entry (rebuilt with a
    /// warning), not a build that waits for a writer forever.
    #[test]
    fn a_fifo_or_device_as_a_sidecar_is_an_unreadable_entry() {
        let dir = tempfile::tempdir().unwrap();
        let entry = CacheEntry::new(dir.path(), "k");
        fs::create_dir_all(entry.image.parent().unwrap()).unwrap();
        fs::write(&entry.image, b"img").unwrap();
        nix::unistd::mkfifo(&entry.sha256, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(matches!(
            entry.check(),
            Err(EntryProblem::Unreadable { .. })
        ));
        fs::remove_file(&entry.sha256).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &entry.sha256).unwrap();
        assert!(matches!(
            entry.check(),
            Err(EntryProblem::Unreadable { .. })
        ));
    }

    #[test]
    fn a_sidecar_over_64_kib_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.sha256");
        fs::write(&big, vec![b'a'; 64 * 1024 + 1]).unwrap();
        assert_eq!(
            read_sidecar(&big).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        fs::write(&big, b"abc  x.img\n").unwrap();
        assert_eq!(read_sidecar(&big).unwrap(), "abc  x.img\n");
    }
}
