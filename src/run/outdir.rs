//! The run's artifact directory is one run's alone: a marker created with `O_EXCL` before any
//! work claims it, so a reused `--out` (or two runs started with the same one) never mixes two
//! runs' evidence. Refusing beats a fresh subdirectory: scripts that read `--out DIR/summary.json`
//! would otherwise read a stale report without noticing.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// The marker's name inside the artifact directory; not `.bootrig-…`, the prefix of bootrig's
/// temporary files, which cleanup removes when their owner is gone.
pub const MARKER: &str = ".claimed-by-bootrig";

#[derive(Debug, Error)]
pub enum OutDirError {
    #[error(
        "--out {}: already holds a run ({holder}); give an --out of its own (the default runs/<UTC time>/ is always new) or remove the directory",
        path.display()
    )]
    InUse { path: PathBuf, holder: String },
    #[error("--out {}: cannot create the artifact directory", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Creates `dir` if needed and claims it for this run, or names the run that holds it.
pub fn claim(dir: &Path, started: &str) -> Result<(), OutDirError> {
    let create = |source| OutDirError::Create {
        path: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(create)?;
    // A directory written by a bootrig without the marker still holds a run's reports.
    if dir.join("summary.json").exists() && !dir.join(MARKER).exists() {
        return Err(OutDirError::InUse {
            path: dir.to_owned(),
            holder: "its summary.json is there".into(),
        });
    }
    let marker = dir.join(MARKER);
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
    {
        Ok(mut f) => {
            let text = format!("pid {} started {started}\n", std::process::id());
            f.write_all(text.as_bytes()).map_err(create)?;
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let holder = std::fs::read_to_string(&marker)
                .map(|t| format!("run of {}", t.trim()))
                .unwrap_or_else(|_| format!("see {}", marker.display()));
            Err(OutDirError::InUse {
                path: dir.to_owned(),
                holder,
            })
        }
        Err(e) => Err(create(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_is_refused_naming_the_first() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("o");
        claim(&out, "T1").unwrap();
        let e = claim(&out, "T2").unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, OutDirError::InUse { .. }), "{text}");
        assert!(text.contains("T1"), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
    }

    #[test]
    fn an_old_run_without_marker_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("summary.json"), "{}").unwrap();
        let e = claim(tmp.path(), "T").unwrap_err();
        assert!(e.to_string().contains("summary.json"), "{e}");
    }

    #[test]
    fn an_empty_existing_directory_is_claimed() {
        let tmp = tempfile::tempdir().unwrap();
        claim(tmp.path(), "T").unwrap();
        assert!(tmp.path().join(MARKER).exists());
    }
}
