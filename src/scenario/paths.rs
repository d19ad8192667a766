//! The files and directories a scenario names: where each is written, what must be there (a
//! regular file, a directory), and what is wrong when it is not, checked before anything is
//! built. A device or a FIFO where a file is wanted is refused: `/dev/zero` as a base initrd
//! grew a build to 24 GB, and a FIFO hung it (opening one to check it is readable would too).

use std::path::{Path, PathBuf};

use toml::Spanned;

use crate::host::input::NotAFile;

use super::location::line_column;

/// A path a scenario names that cannot be used as written, at its key's value.
#[derive(Debug, Clone)]
pub struct PathProblem {
    /// The scenario file.
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// `[kernel] image = "…"`, or `[kernel] modules: "…"` for an entry of a list.
    pub key: String,
    /// The path as the scenario file writes it.
    pub written: PathBuf,
    /// Where that led: absolute, through the symlinks that exist.
    pub resolved: PathBuf,
    /// What is wrong there ("no such file", "is a directory, not a file").
    pub problem: String,
    /// Where along the path it goes wrong, when not at its end ("/x/images does not exist").
    pub detail: Option<String>,
    /// What to do about it.
    pub fix: String,
}

impl std::fmt::Display for PathProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.key,
            self.problem
        )?;
        let resolved = (self.resolved != self.written)
            .then(|| format!("resolved to {}", self.resolved.display()));
        let notes: Vec<&str> = resolved
            .iter()
            .chain(&self.detail)
            .map(String::as_str)
            .collect();
        if !notes.is_empty() {
            write!(f, " ({})", notes.join("; "))?;
        }
        write!(f, "; {}", self.fix)
    }
}

/// The paths a scenario names, resolved against its file's directory as they are collected.
pub(super) struct PathList {
    /// The scenario file's directory, absolute.
    dir: PathBuf,
    pub named: Vec<NamedPath>,
}

impl PathList {
    pub fn new(scenario: &Path) -> Self {
        // Absolute, so the paths mean the same file to every program bootrig starts, whatever
        // its working directory (dnsmasq changes its own); a path that cannot be made absolute
        // (no working directory) stays relative and fails where it is opened, naming it.
        let dir = scenario.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        Self {
            dir,
            named: Vec::new(),
        }
    }

    /// Notes `written` (at its value in the file) for the check, and returns it resolved.
    pub fn add(
        &mut self,
        key: &'static str,
        in_list: bool,
        written: &Spanned<impl AsRef<Path>>,
        want: Want,
    ) -> PathBuf {
        self.add_at(
            key,
            in_list,
            written.get_ref().as_ref(),
            written.span().start,
            want,
        )
    }

    pub fn add_at(
        &mut self,
        key: &'static str,
        in_list: bool,
        written: &Path,
        offset: usize,
        want: Want,
    ) -> PathBuf {
        let resolved = self.dir.join(written);
        self.named.push(NamedPath {
            key,
            in_list,
            written: written.to_owned(),
            resolved: resolved.clone(),
            offset,
            want,
        });
        resolved
    }
}

/// What must be at a path a scenario names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    File,
    Dir,
    /// A file of the host, copied into the image with its libraries.
    HostBinary,
}

/// A path a scenario names, with where it is written (for [`Scenario::load`]'s check).
#[derive(Debug, Clone)]
pub(super) struct NamedPath {
    key: &'static str,
    in_list: bool,
    written: PathBuf,
    /// Joined to the scenario file's directory.
    resolved: PathBuf,
    /// Byte offset of the value in the file.
    offset: usize,
    want: Want,
}

impl NamedPath {
    /// What is wrong at the path, if anything; `text` and `file` are the scenario's.
    pub fn check(&self, text: &str, file: &Path) -> Option<PathProblem> {
        let problem = self.problem()?;
        let (line, column) = line_column(text, self.offset);
        let key = if self.in_list {
            format!("{}: {:?}", self.key, self.written)
        } else {
            format!("{} = {:?}", self.key, self.written)
        };
        Some(PathProblem {
            file: file.to_owned(),
            line,
            column,
            key,
            written: self.written.clone(),
            resolved: absolute(&self.resolved),
            fix: self.fix(&problem),
            problem: problem.text,
            detail: problem.detail,
        })
    }

    fn problem(&self) -> Option<Found> {
        let p = &self.resolved;
        let (want_dir, noun) = match self.want {
            Want::Dir => (true, "directory"),
            Want::File | Want::HostBinary => (false, "file"),
        };
        if !want_dir {
            // Opened once, non-blocking, and checked on the handle: a stat then an open could
            // find a file and then open a FIFO put there meanwhile, and block on it.
            return match crate::host::input::open_regular(p) {
                Ok(_) => None,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(Found::missing(noun, p)),
                // In host::input's words, as every other reader of an input file says it.
                Err(e) => Some(match crate::host::input::not_a_file(&e) {
                    Some(NotAFile { kind }) => Found::other(&format!("is a {kind}, not a file")),
                    None => Found::unreadable(&e),
                }),
            };
        }
        let meta = match p.metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Some(Found::missing(noun, p));
            }
            Err(e) => return Some(Found::unreadable(&e)),
        };
        if !meta.is_dir() {
            return Some(Found::other(if meta.is_file() {
                "is a file, not a directory"
            } else {
                "is not a directory"
            }));
        }
        // Readable, as the build will need it to be.
        std::fs::read_dir(p).err().map(|e| Found::unreadable(&e))
    }

    fn fix(&self, found: &Found) -> String {
        if found.unreadable {
            return "make it readable for this user, or fix the path".into();
        }
        if self.written.starts_with("~") {
            return "write the path out: ~ is not expanded".into();
        }
        if self.want == Want::HostBinary {
            return "install it on this host, or fix the path".into();
        }
        if let Some(setup) = setup_script(&self.resolved) {
            return format!("run {} or fix the path", setup.display());
        }
        if self.written.is_relative() {
            "fix the path (relative paths are from the scenario file's directory)".into()
        } else {
            "fix the path".into()
        }
    }
}

/// What was found at a path.
struct Found {
    text: String,
    detail: Option<String>,
    unreadable: bool,
}

impl Found {
    fn other(text: &str) -> Self {
        Found {
            text: text.into(),
            detail: None,
            unreadable: false,
        }
    }

    fn unreadable(e: &std::io::Error) -> Self {
        Found {
            text: format!("cannot be read: {e}"),
            detail: None,
            unreadable: true,
        }
    }

    /// "no such file", with the first part of the path that is missing when it is not the last
    /// (a whole missing cache says more than its missing kernel), or a dangling symlink.
    fn missing(noun: &str, path: &Path) -> Self {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let mut prefix = PathBuf::new();
        let first_missing = abs.components().find_map(|c| {
            prefix.push(c);
            prefix.metadata().is_err().then(|| prefix.clone())
        });
        let detail = first_missing.and_then(|m| match std::fs::read_link(&m) {
            Ok(target) => Some(format!(
                "{} is a symbolic link to {}, which does not exist",
                absolute(&m).display(),
                target.display()
            )),
            Err(_) if m != abs => Some(format!("{} does not exist", absolute(&m).display())),
            Err(_) => None,
        });
        Found {
            text: format!("no such {noun}"),
            detail,
            unreadable: false,
        }
    }
}

/// `path` made absolute through the part of it that exists (symlinks and `..` resolved there),
/// the rest as written: what a user can look at.
fn absolute(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let parts: Vec<std::path::Component> = abs.components().collect();
    for keep in (1..=parts.len()).rev() {
        let head: PathBuf = parts[..keep].iter().collect();
        if let Ok(mut real) = head.canonicalize() {
            real.extend(&parts[keep..]);
            return real;
        }
    }
    abs
}

/// `images/setup` when `path` is under the `images/cache` it fills and the script is there,
/// as a user in the current directory would type it.
fn setup_script(path: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(path).ok()?;
    let cache = abs.ancestors().find(|d| {
        d.file_name() == Some("cache".as_ref())
            && d.parent().and_then(Path::file_name) == Some("images".as_ref())
    })?;
    let script = cache.with_file_name("setup").canonicalize().ok()?;
    if !script.is_file() {
        return None;
    }
    let cwd = std::env::current_dir().and_then(|d| d.canonicalize()).ok();
    Some(
        match cwd.and_then(|d| script.strip_prefix(d).ok().map(Path::to_owned)) {
            Some(rel) => Path::new(".").join(rel),
            None => script,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(path: &Path, want: Want) -> Option<String> {
        let n = NamedPath {
            key: "[initrd] base",
            in_list: false,
            written: path.to_owned(),
            resolved: path.to_owned(),
            offset: 0,
            want,
        };
        n.problem().map(|f| f.text)
    }

    /// Devices and FIFOs are refused without being opened: a FIFO would block the check.
    #[test]
    fn only_a_regular_file_is_a_file_and_a_directory_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        for want in [Want::File, Want::HostBinary] {
            assert_eq!(
                problem(Path::new("/dev/zero"), want).as_deref(),
                Some("is a character device, not a file")
            );
            assert_eq!(
                problem(Path::new("/dev/urandom"), want).as_deref(),
                Some("is a character device, not a file")
            );
            assert_eq!(
                problem(&fifo, want).as_deref(),
                Some("is a FIFO, not a file")
            );
            assert_eq!(
                problem(dir.path(), want).as_deref(),
                Some("is a directory, not a file")
            );
            assert_eq!(problem(&file, want), None);
        }
        assert_eq!(
            problem(&file, Want::Dir).as_deref(),
            Some("is a file, not a directory")
        );
        assert_eq!(
            problem(Path::new("/dev/null"), Want::Dir).as_deref(),
            Some("is not a directory")
        );
        assert_eq!(problem(dir.path(), Want::Dir), None);
    }
}
