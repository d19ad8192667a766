//! Input errors of the module planner: what was read, where, and what was expected. These are
//! "bad input" (exit 2); problems with the plan itself are `plan::PlanError` values instead.

use std::path::PathBuf;

/// A file or directory the planner could not use.
#[derive(Debug, thiserror::Error)]
pub enum KmodError {
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a kernel module: {what}", path.display())]
    Elf {
        path: PathBuf,
        what: String,
        /// The ELF parser's error, when it gave one.
        #[source]
        source: Option<object::Error>,
    },
    /// `problem` is what bootrig found wrong itself; `source` is the decompressor's error.
    #[error(
        "{}: cannot decompress ({format}){}",
        path.display(),
        problem.as_ref().map_or(String::new(), |p| format!(": {p}"))
    )]
    Decompress {
        path: PathBuf,
        format: &'static str,
        problem: Option<String>,
        #[source]
        source: Option<std::io::Error>,
    },
    #[error("{}: cannot read the kernel image", path.display())]
    KernelUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a bzImage kernel: {what}", path.display())]
    KernelImage { path: PathBuf, what: String },
    #[error("{}: line {line}: {what}", path.display())]
    IndexFile {
        path: PathBuf,
        line: usize,
        what: String,
    },
    #[error(
        "{}: listed in {} but missing: run depmod on that tree or restore the file",
        path.display(),
        index.display()
    )]
    ListedFileMissing { path: PathBuf, index: PathBuf },
    #[error("{}: {what}", path.display())]
    ModulesDir { path: PathBuf, what: String },
    #[error("module entry {spec:?}: {what}")]
    ModuleSpec { spec: String, what: String },
}

impl KmodError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        KmodError::Io {
            path: path.into(),
            source,
        }
    }
}
