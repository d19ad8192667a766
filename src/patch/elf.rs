//! The files a binary needs at run time, found as glibc's `ld.so` finds them — without running
//! `ldd`, which would execute the loader on files that may not even be for this machine.
//!
//! For each binary: the file itself (a `#!` script brings its interpreter, recursively), its
//! `PT_INTERP` loader, and its `DT_NEEDED` libraries transitively, loaded breadth-first as `ld.so`
//! loads them. A library is looked up in: the `DT_RPATH` of the object that needs it and of the
//! objects that loaded that one (only when the needing object has no `DT_RUNPATH`), then its
//! `DT_RUNPATH`, then the directories of `/etc/ld.so.conf` (standing in for `ld.so.cache`, which
//! `ldconfig` builds from them), then the default directories. `LD_LIBRARY_PATH` is not used: the
//! initrd will not have the caller's environment. Candidates of another ELF class, byte order or
//! machine are skipped, as `ld.so` skips them; a candidate that is not ELF at all stops the search
//! with an error, as it stops `ld.so`.
//!
//! Paths are as `ldd` prints them (the directory searched joined with the needed name, so symlink
//! names such as `libc.so.6` are kept); [`additions`] copies each one's real content to that path.
//! Every lookup happens under a root directory, so a foreign system tree can be resolved too.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use object::elf;
use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::Endianness;
use thiserror::Error;

use crate::initrd::add::Addition;
use crate::patch::host_file::{self, HostFileError};

/// `ld.so`'s built-in directories on Debian's x86-64 glibc (multiarch first), then the
/// upstream ones, searched after `ld.so.conf`'s.
pub const DEFAULT_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// The kernel follows at most this many `#!` interpreters in a chain (`BINPRM_MAX_RECURSION`).
const MAX_SCRIPT_DEPTH: usize = 4;
/// Symlinks followed while resolving one path, as Linux's `MAXSYMLINKS`.
const MAX_SYMLINKS: usize = 40;
/// Nesting of `include` lines in `ld.so.conf`; deeper is a loop.
const MAX_CONF_DEPTH: usize = 16;
/// The kernel reads this much of a script to find its `#!` line (`BINPRM_BUF_SIZE`).
const SHEBANG_MAX: usize = 256;
/// Offsets in `e_ident` of the class and byte-order bytes.
const EI_CLASS: usize = 4;
const EI_DATA: u64 = 5;

#[derive(Debug, Error)]
pub enum ElfError {
    #[error("{path}")]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "{path}: not an ELF file nor a #! script (it starts with {start:02x?}); name an executable"
    )]
    NotElf { path: PathBuf, start: Vec<u8> },
    #[error("{path}: malformed ELF: {what} at byte offset {offset:#x}")]
    Malformed {
        path: PathBuf,
        offset: u64,
        what: String,
    },
    #[error("{path}: {why}")]
    Script { path: PathBuf, why: String },
    #[error("{binary}: its loader {interpreter} (PT_INTERP) is missing under {root}")]
    Interpreter {
        binary: PathBuf,
        interpreter: PathBuf,
        root: PathBuf,
        source: io::Error,
    },
    #[error(transparent)]
    NotFound(Box<NotFound>),
    #[error("{path}: {why} (needed by {needed_by}); ld.so stops here too")]
    BadLibrary {
        path: PathBuf,
        needed_by: PathBuf,
        why: String,
    },
    #[error("{path}: cannot read this library (needed by {needed_by})")]
    LibraryRead {
        path: PathBuf,
        needed_by: PathBuf,
        source: io::Error,
    },
    #[error("{path}: binaries are absolute paths under the root, e.g. /sbin/dhclient")]
    Relative { path: PathBuf },
    #[error(transparent)]
    HostFile(#[from] HostFileError),
    #[error("{path}: include loop or more than {MAX_CONF_DEPTH} nested includes in ld.so.conf")]
    ConfLoop { path: PathBuf },
}

/// A library `ld.so` would not find: which, for whom, and where it was looked for.
#[derive(Debug, Error)]
#[error("{binary}: library {soname} (needed by {needed_by}) not found under {root}; searched {}{}; install the package that provides it",
    join_paths(searched), describe_skipped(skipped))]
pub struct NotFound {
    pub binary: PathBuf,
    pub soname: String,
    pub needed_by: PathBuf,
    pub root: PathBuf,
    pub searched: Vec<PathBuf>,
    /// Candidates of another class or machine, with why each was skipped.
    pub skipped: Vec<(PathBuf, String)>,
}

fn join_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "nothing (no search directory applies)".into();
    }
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}

fn describe_skipped(skipped: &[(PathBuf, String)]) -> String {
    skipped
        .iter()
        .map(|(p, why)| format!("; skipped {}: {why}", p.display()))
        .collect()
}

/// ELF class: the word size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Elf32,
    Elf64,
}

/// What the loader reads from one ELF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    pub class: Class,
    pub little_endian: bool,
    pub machine: u16,
    /// `ET_EXEC`, `ET_DYN`, ...
    pub file_type: u16,
    /// `PT_INTERP`: the dynamic loader's path.
    pub interpreter: Option<PathBuf>,
    /// Whether it has a `PT_DYNAMIC` segment at all (static binaries have none).
    pub dynamic: bool,
    pub needed: Vec<String>,
    pub soname: Option<String>,
    pub rpath: Option<String>,
    pub runpath: Option<String>,
    /// `DF_1_NODEFLIB`: the cache and default directories are not searched for its needs.
    pub nodeflib: bool,
}

impl ElfInfo {
    /// Whether `ld.so` running `self` would load `lib` (class, byte order and machine match).
    fn mismatch(&self, lib: &ElfInfo) -> Option<String> {
        if lib.class != self.class {
            return Some(format!("wrong ELF class {:?}", lib.class));
        }
        if lib.little_endian != self.little_endian {
            return Some("wrong byte order".into());
        }
        if lib.machine != self.machine {
            return Some(format!("wrong machine {:#x}", lib.machine));
        }
        None
    }
}

/// Reads the loader-relevant parts of an ELF image. `path` only names the file in errors.
/// Malformed input gives an error naming what was wrong and where, never a panic.
pub fn parse(data: &[u8], path: &Path) -> Result<ElfInfo, ElfError> {
    if !data.starts_with(&elf::ELFMAG) {
        return Err(ElfError::NotElf {
            path: path.to_owned(),
            start: data.iter().take(4).copied().collect(),
        });
    }
    let malformed = |offset: u64, what: &str| ElfError::Malformed {
        path: path.to_owned(),
        offset,
        what: what.to_owned(),
    };
    // `object` reads headers in place and needs them aligned: copy a misaligned input.
    let words: Vec<u64>;
    let data = if data.as_ptr().align_offset(8) == 0 {
        data
    } else {
        let mut buf = vec![0u64; data.len().div_ceil(8)];
        object::pod::bytes_of_slice_mut(&mut buf)[..data.len()].copy_from_slice(data);
        words = buf;
        &object::pod::bytes_of_slice(&words)[..data.len()]
    };
    match data.get(EI_CLASS) {
        Some(&elf::ELFCLASS32) => parse_as::<elf::FileHeader32<Endianness>>(data, path),
        Some(&elf::ELFCLASS64) => parse_as::<elf::FileHeader64<Endianness>>(data, path),
        Some(c) => Err(malformed(
            EI_CLASS as u64,
            &format!("class byte {c} (expected 1 for 32-bit or 2 for 64-bit)"),
        )),
        None => Err(malformed(4, "file ends inside the ELF identification")),
    }
}

fn parse_as<Elf: FileHeader<Endian = Endianness>>(
    data: &[u8],
    path: &Path,
) -> Result<ElfInfo, ElfError> {
    let malformed = |offset: u64, what: String| ElfError::Malformed {
        path: path.to_owned(),
        offset,
        what,
    };
    let header = Elf::parse(data).map_err(|e| malformed(0, format!("ELF header: {e}")))?;
    let endian = header
        .endian()
        .map_err(|e| malformed(EI_DATA, format!("{e}")))?;
    let phoff: u64 = header.e_phoff(endian).into();
    let phdrs = header
        .program_headers(endian, data)
        .map_err(|e| malformed(phoff, format!("program headers: {e}")))?;
    let mut info = ElfInfo {
        class: if header.is_type_64() {
            Class::Elf64
        } else {
            Class::Elf32
        },
        little_endian: header.is_little_endian(),
        machine: header.e_machine(endian),
        file_type: header.e_type(endian),
        interpreter: None,
        dynamic: false,
        needed: Vec::new(),
        soname: None,
        rpath: None,
        runpath: None,
        nodeflib: false,
    };
    for ph in phdrs {
        let at: u64 = ph.p_offset(endian).into();
        if let Some(interp) = ph
            .interpreter(endian, data)
            .map_err(|e| malformed(at, format!("PT_INTERP: {e}")))?
        {
            info.interpreter = Some(PathBuf::from(OsStr::from_bytes(interp)));
        }
    }
    // ld.so uses the first PT_DYNAMIC; the array ends at DT_NULL.
    let Some(dyn_header) = phdrs.iter().find(|ph| ph.p_type(endian) == elf::PT_DYNAMIC) else {
        return Ok(info);
    };
    let dyn_offset: u64 = dyn_header.p_offset(endian).into();
    let dynamic = dyn_header
        .dynamic(endian, data)
        .map_err(|e| malformed(dyn_offset, format!("PT_DYNAMIC: {e}")))?
        .unwrap_or_default();
    info.dynamic = true;
    let entries: Vec<(u64, u64)> = dynamic
        .iter()
        .map(|d| (d.d_tag(endian).into(), d.d_val(endian).into()))
        .take_while(|&(tag, _)| tag != u64::from(elf::DT_NULL))
        .collect();
    let find = |tag: u32| entries.iter().find(|e| e.0 == u64::from(tag)).map(|e| e.1);
    let has_strings = entries.iter().any(|&(tag, _)| {
        [
            elf::DT_NEEDED,
            elf::DT_SONAME,
            elf::DT_RPATH,
            elf::DT_RUNPATH,
        ]
        .iter()
        .any(|&t| tag == u64::from(t))
    });
    if let Some(flags) = find(elf::DT_FLAGS_1) {
        info.nodeflib = flags & u64::from(elf::DF_1_NODEFLIB) != 0;
    }
    if !has_strings {
        return Ok(info);
    }
    let strtab_addr = find(elf::DT_STRTAB).ok_or_else(|| {
        malformed(
            dyn_offset,
            "PT_DYNAMIC names strings but has no DT_STRTAB".into(),
        )
    })?;
    // Without DT_STRSZ the table runs to the end of its segment.
    let strtab_size = find(elf::DT_STRSZ);
    let strtab = phdrs
        .iter()
        .filter(|ph| ph.p_type(endian) == elf::PT_LOAD)
        .find_map(|ph| {
            let size = strtab_size.unwrap_or_else(|| {
                let end = Into::<u64>::into(ph.p_vaddr(endian))
                    .saturating_add(ph.p_filesz(endian).into());
                end.saturating_sub(strtab_addr)
            });
            let offset = Into::<u64>::into(ph.p_offset(endian))
                .wrapping_add(strtab_addr.wrapping_sub(ph.p_vaddr(endian).into()));
            match ph.data_range(endian, data, strtab_addr, size) {
                Ok(Some(bytes)) => Some((offset, bytes)),
                _ => None,
            }
        })
        .ok_or_else(|| {
            malformed(
                dyn_offset,
                format!("DT_STRTAB {strtab_addr:#x} is in no PT_LOAD segment's file data"),
            )
        })?;
    let string = |index: u64| -> Result<String, ElfError> {
        let (table_offset, table) = strtab;
        let at = table_offset.wrapping_add(index);
        let rest = usize::try_from(index)
            .ok()
            .and_then(|i| table.get(i..))
            .ok_or_else(|| malformed(at, format!("string {index:#x} is past the string table")))?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| malformed(at, "string runs past the string table end".to_owned()))?;
        String::from_utf8(rest[..end].to_vec())
            .map_err(|_| malformed(at, "a library name that is not UTF-8".to_owned()))
    };
    for &(tag, val) in &entries {
        match u32::try_from(tag) {
            Ok(elf::DT_NEEDED) => info.needed.push(string(val)?),
            Ok(elf::DT_SONAME) => info.soname = Some(string(val)?),
            Ok(elf::DT_RPATH) => info.rpath = Some(string(val)?),
            Ok(elf::DT_RUNPATH) => info.runpath = Some(string(val)?),
            _ => {}
        }
    }
    Ok(info)
}

/// Every file to copy for `binaries` (absolute paths under `root`, usually `/`): each binary,
/// the interpreters of scripts, each ELF's loader and libraries, without duplicates, in load order.
pub fn closure(binaries: &[PathBuf], root: &Path) -> Result<Vec<PathBuf>, ElfError> {
    let resolver = Resolver::new(root)?;
    let mut out: Vec<PathBuf> = Vec::new();
    for binary in binaries {
        for file in resolver.binary(binary, 0)? {
            if !out.contains(&file) {
                out.push(file);
            }
        }
    }
    Ok(out)
}

/// Additions copying each of `files` (paths under `root`, as [`closure`] gives them) to the
/// same path in the image, with the content of the file it resolves to: a symlinked soname
/// becomes a regular file under its own name. `..` in a path (from `$ORIGIN/../lib`) is folded
/// lexically, as the image has the same layout.
pub fn additions(root: &Path, files: &[PathBuf]) -> Result<Vec<Addition>, ElfError> {
    files
        .iter()
        .map(|file| {
            let real = resolve_in_root(root, file).map_err(|source| ElfError::Read {
                path: file.clone(),
                source,
            })?;
            Ok(Addition::path(
                host_path(root, &real),
                &lexical_normalize(file).to_string_lossy(),
            ))
        })
        .collect()
}

/// Folds `.` and `..` without looking at the file system.
fn lexical_normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// The host path of `inner`, an absolute path under `root`.
fn host_path(root: &Path, inner: &Path) -> PathBuf {
    root.join(inner.strip_prefix("/").unwrap_or(inner))
}

/// Resolves `path` under `root` as a process chrooted there would: symlinks are followed, an
/// absolute target starts again at `root`, `..` never climbs above it. Returns the real path
/// under `root`.
pub fn resolve_in_root(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let mut pending: VecDeque<PathBuf> = path
        .components()
        .map(|c| PathBuf::from(c.as_os_str()))
        .collect();
    let mut resolved = PathBuf::from("/");
    let mut links = 0;
    while let Some(part) = pending.pop_front() {
        match part.components().next() {
            None | Some(Component::RootDir | Component::CurDir | Component::Prefix(_)) => {}
            Some(Component::ParentDir) => {
                resolved.pop();
            }
            Some(Component::Normal(name)) => {
                let candidate = resolved.join(name);
                let meta = fs::symlink_metadata(host_path(root, &candidate))?;
                if meta.file_type().is_symlink() {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(io::Error::from_raw_os_error(nix::libc::ELOOP));
                    }
                    let target = fs::read_link(host_path(root, &candidate))?;
                    if target.is_absolute() {
                        resolved = PathBuf::from("/");
                    }
                    for c in target.components().rev() {
                        pending.push_front(PathBuf::from(c.as_os_str()));
                    }
                } else {
                    resolved = candidate;
                }
            }
        }
    }
    Ok(resolved)
}

/// One object `ld.so` has mapped for the program being resolved.
struct Loaded {
    /// The path as `ldd` prints it.
    path: PathBuf,
    /// Its real path under the root: the same file found by two names is loaded once.
    real: PathBuf,
    /// Names it answers to: the names it was loaded by, its path and its `DT_SONAME`.
    names: Vec<String>,
    info: ElfInfo,
    /// The object whose `DT_NEEDED` loaded it; `None` for the program and its loader.
    loader: Option<usize>,
    /// `$ORIGIN`: the directory it was loaded from.
    origin: PathBuf,
}

struct Resolver<'a> {
    root: &'a Path,
    conf_dirs: Vec<PathBuf>,
}

impl<'a> Resolver<'a> {
    fn new(root: &'a Path) -> Result<Self, ElfError> {
        let mut conf_dirs = Vec::new();
        read_ld_so_conf(root, Path::new("/etc/ld.so.conf"), 0, &mut conf_dirs)?;
        Ok(Self { root, conf_dirs })
    }

    fn read(&self, path: &Path) -> Result<(PathBuf, Vec<u8>), ElfError> {
        let err = |source| ElfError::Read {
            path: path.to_owned(),
            source,
        };
        let real = resolve_in_root(self.root, path).map_err(err)?;
        let host = host_path(self.root, &real);
        let data = host_file::read(&host, "a binary to copy")?.map_err(err)?;
        Ok((real, data))
    }

    /// The files for one binary or script; `depth` counts `#!` hops.
    fn binary(&self, binary: &Path, depth: usize) -> Result<Vec<PathBuf>, ElfError> {
        if !binary.is_absolute() {
            return Err(ElfError::Relative {
                path: binary.to_owned(),
            });
        }
        let (real, data) = self.read(binary)?;
        if data.starts_with(b"#!") {
            if depth >= MAX_SCRIPT_DEPTH {
                return Err(ElfError::Script {
                    path: binary.to_owned(),
                    why: format!("more than {MAX_SCRIPT_DEPTH} #! interpreters in a chain"),
                });
            }
            let interpreter = shebang(&data).map_err(|why| ElfError::Script {
                path: binary.to_owned(),
                why,
            })?;
            let mut files = vec![binary.to_owned()];
            files.extend(self.binary(&interpreter, depth + 1)?);
            return Ok(files);
        }
        let info = parse(&data, binary)?;
        let mut files = vec![binary.to_owned()];
        if !info.dynamic {
            return Ok(files);
        }
        let mut objects = vec![Loaded {
            path: binary.to_owned(),
            origin: real.parent().unwrap_or(Path::new("/")).to_owned(),
            real,
            names: Vec::new(),
            info,
            loader: None,
        }];
        if let Some(interp) = objects[0].info.interpreter.clone() {
            let (real, data) = self.read(&interp).map_err(|e| match e {
                ElfError::Read { source, .. } => ElfError::Interpreter {
                    binary: binary.to_owned(),
                    interpreter: interp.clone(),
                    root: self.root.to_owned(),
                    source,
                },
                other => other,
            })?;
            let info = parse(&data, &interp)?;
            let mut names = vec![interp.to_string_lossy().into_owned()];
            names.extend(info.soname.clone());
            files.push(interp.clone());
            objects.push(Loaded {
                origin: interp.parent().unwrap_or(Path::new("/")).to_owned(),
                path: interp,
                real,
                names,
                info,
                loader: None,
            });
        }
        // Breadth-first, as ld.so maps dependencies: objects[0] first, then what it loaded.
        let mut queue = VecDeque::from([0usize]);
        while let Some(current) = queue.pop_front() {
            for needed in objects[current].info.needed.clone() {
                if objects.iter().any(|o| o.names.contains(&needed)) {
                    continue;
                }
                let (path, real, info) = self.search(&objects, current, &needed, binary)?;
                if let Some(same) = objects.iter_mut().find(|o| o.real == real) {
                    same.names.push(needed);
                    continue;
                }
                let mut names = vec![needed, path.to_string_lossy().into_owned()];
                names.extend(info.soname.clone());
                files.push(path.clone());
                queue.push_back(objects.len());
                objects.push(Loaded {
                    origin: path.parent().unwrap_or(Path::new("/")).to_owned(),
                    path,
                    real,
                    names,
                    info,
                    loader: Some(current),
                });
            }
        }
        Ok(files)
    }

    /// Finds `needed` for `objects[by]` in ld.so's order.
    fn search(
        &self,
        objects: &[Loaded],
        by: usize,
        needed: &str,
        binary: &Path,
    ) -> Result<(PathBuf, PathBuf, ElfInfo), ElfError> {
        let requester = &objects[by];
        let candidates: Vec<PathBuf> = if needed.contains('/') {
            vec![PathBuf::from(expand_tokens(needed, &requester.origin))]
        } else {
            self.search_dirs(objects, by)
                .into_iter()
                .map(|dir| dir.join(needed))
                .collect()
        };
        let mut skipped = Vec::new();
        for candidate in &candidates {
            let Ok(real) = resolve_in_root(self.root, candidate) else {
                continue;
            };
            let host = host_path(self.root, &real);
            if !host.is_file() {
                continue;
            }
            let bad = |why: String| ElfError::BadLibrary {
                path: candidate.clone(),
                needed_by: requester.path.clone(),
                why,
            };
            let data =
                host_file::read(&host, "a library")?.map_err(|source| ElfError::LibraryRead {
                    path: candidate.clone(),
                    needed_by: requester.path.clone(),
                    source,
                })?;
            let info = parse(&data, candidate)?;
            if let Some(why) = objects[0].info.mismatch(&info) {
                skipped.push((candidate.clone(), why));
                continue;
            }
            if info.file_type != elf::ET_DYN {
                return Err(bad(format!(
                    "ELF type {} is not a shared object (ET_DYN)",
                    info.file_type
                )));
            }
            return Ok((candidate.clone(), real, info));
        }
        Err(ElfError::NotFound(Box::new(NotFound {
            binary: binary.to_owned(),
            soname: needed.to_owned(),
            needed_by: requester.path.clone(),
            root: self.root.to_owned(),
            searched: candidates,
            skipped,
        })))
    }

    /// Directories for a name `objects[by]` needs, in ld.so's order.
    fn search_dirs(&self, objects: &[Loaded], by: usize) -> Vec<PathBuf> {
        let requester = &objects[by];
        let mut dirs = Vec::new();
        // DT_RPATH of the requester and of each object up its loading chain, unless the
        // requester has DT_RUNPATH (which also hides the program's DT_RPATH).
        if requester.info.runpath.is_none() {
            let mut at = Some(by);
            while let Some(i) = at {
                let object = &objects[i];
                if let Some(rpath) = &object.info.rpath {
                    dirs.extend(split_path_list(rpath, &object.origin));
                }
                at = object.loader;
            }
        }
        if let Some(runpath) = &requester.info.runpath {
            dirs.extend(split_path_list(runpath, &requester.origin));
        }
        if !requester.info.nodeflib {
            dirs.extend(self.conf_dirs.iter().cloned());
            dirs.extend(DEFAULT_DIRS.iter().map(PathBuf::from));
        }
        let mut unique = Vec::new();
        for dir in dirs {
            if !unique.contains(&dir) {
                unique.push(dir);
            }
        }
        unique
    }
}

/// A `:`-separated `DT_RPATH`/`DT_RUNPATH` with its tokens expanded. Empty entries (the current
/// directory to ld.so) are dropped: the initrd's working directory is meaningless.
fn split_path_list(list: &str, origin: &Path) -> Vec<PathBuf> {
    list.split(':')
        .filter(|s| !s.is_empty())
        .map(|s| PathBuf::from(expand_tokens(s, origin).trim_end_matches('/')))
        .filter(|p| p.is_absolute())
        .collect()
}

/// Expands ld.so's dynamic string tokens: `$ORIGIN` (the object's directory), `$LIB` and
/// `$PLATFORM` (their values for Debian's x86-64 glibc).
fn expand_tokens(s: &str, origin: &Path) -> String {
    let origin = origin.to_string_lossy();
    let mut out = s.to_owned();
    for (token, value) in [
        ("ORIGIN", origin.as_ref()),
        ("LIB", "lib/x86_64-linux-gnu"),
        ("PLATFORM", "x86_64"),
    ] {
        out = out
            .replace(&format!("${{{token}}}"), value)
            .replace(&format!("${token}"), value);
    }
    out
}

/// The interpreter a `#!` line names (its optional argument is not a file).
fn shebang(data: &[u8]) -> Result<PathBuf, String> {
    let head = &data[..data.len().min(SHEBANG_MAX)];
    let line = head
        .get(2..)
        .map(|rest| rest.split(|&b| b == b'\n').next().unwrap_or(rest))
        .unwrap_or_default();
    let interpreter = line
        .split(|&b| b == b' ' || b == b'\t')
        .find(|s| !s.is_empty())
        .ok_or("the #! line names no interpreter")?;
    let path = PathBuf::from(OsStr::from_bytes(interpreter));
    if !path.is_absolute() {
        return Err(format!(
            "#! interpreter {} is not an absolute path",
            path.display()
        ));
    }
    Ok(path)
}

/// Appends the directories of the `ld.so.conf` at `conf` (under `root`), following `include`.
fn read_ld_so_conf(
    root: &Path,
    conf: &Path,
    depth: usize,
    dirs: &mut Vec<PathBuf>,
) -> Result<(), ElfError> {
    if depth > MAX_CONF_DEPTH {
        return Err(ElfError::ConfLoop {
            path: conf.to_owned(),
        });
    }
    let text = match resolve_in_root(root, conf).and_then(|real| {
        let mut s = String::new();
        fs::File::open(host_path(root, &real))?.read_to_string(&mut s)?;
        Ok(s)
    }) {
        Ok(text) => text,
        // A system without ld.so.conf searches only the default directories.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ElfError::Read {
                path: conf.to_owned(),
                source,
            })
        }
    };
    let conf_dir = conf.parent().unwrap_or(Path::new("/"));
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        let mut words = line.split_whitespace();
        match words.next() {
            None => {}
            Some("include") => {
                for pattern in words {
                    let pattern = conf_dir.join(pattern);
                    for file in glob_in_root(root, &pattern) {
                        read_ld_so_conf(root, &file, depth + 1, dirs)?;
                    }
                }
            }
            // Hardware-capability subdirectories: glibc 2.37 dropped them, Debian 12 ignores them.
            Some("hwcap") => {}
            Some(_) => {
                // ldconfig's legacy `dir=type` suffix names a library type, not part of the path.
                let dir = line
                    .split('=')
                    .next()
                    .unwrap_or_default()
                    .trim_end_matches('/');
                let dir = if dir.is_empty() { "/" } else { dir };
                let dir = PathBuf::from(dir);
                if dir.is_absolute() && !dirs.contains(&dir) {
                    dirs.push(dir);
                }
            }
        }
    }
    Ok(())
}

/// Paths under `root` matching the glob `pattern` (`*`, `?`, `[...]` in any component), sorted
/// as glob(3) sorts them; hidden names match only a pattern starting with `.`.
fn glob_in_root(root: &Path, pattern: &Path) -> Vec<PathBuf> {
    let mut matches = vec![PathBuf::from("/")];
    for c in pattern.components() {
        let Component::Normal(part) = c else {
            continue;
        };
        let part = part.as_bytes();
        let wild = part.iter().any(|b| matches!(b, b'*' | b'?' | b'['));
        let mut next = Vec::new();
        for dir in &matches {
            if !wild {
                next.push(dir.join(OsStr::from_bytes(part)));
                continue;
            }
            let Ok(entries) = fs::read_dir(host_path(root, dir)) else {
                continue;
            };
            let mut names: Vec<_> = entries
                .filter_map(Result::ok)
                .map(|e| e.file_name())
                .filter(|n| {
                    let n = n.as_bytes();
                    (part.first() == Some(&b'.') || n.first() != Some(&b'.')) && glob_match(part, n)
                })
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| dir.join(n)));
        }
        matches = next;
    }
    matches.retain(|m| fs::symlink_metadata(host_path(root, m)).is_ok());
    matches
}

/// fnmatch(3) without flags, as ldconfig matches `include` patterns: `*`, `?` and bracket
/// expressions. glob's `Pattern` refuses what fnmatch reads literally (an unclosed `[`): such a
/// pattern matches only itself. `[^x]` is negation for glibc, `[!x]` for glob: made the same.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (Ok(pattern), Ok(name)) = (std::str::from_utf8(pattern), std::str::from_utf8(name)) else {
        return pattern == name;
    };
    let pattern = pattern.replace("[^", "[!");
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    match glob::Pattern::new(&pattern) {
        Ok(p) => p.matches_with(name, options),
        Err(_) => pattern == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds small ELF shared objects and executables: one PT_LOAD mapping the whole file at
    /// address 0 (so addresses are offsets), an optional PT_INTERP, PT_DYNAMIC.
    pub(super) struct Synth {
        pub class: Class,
        pub machine: u16,
        pub file_type: u16,
        pub interp: Option<&'static str>,
        pub needed: Vec<&'static str>,
        pub soname: Option<&'static str>,
        pub rpath: Option<&'static str>,
        pub runpath: Option<&'static str>,
    }

    impl Synth {
        pub fn lib(soname: &'static str) -> Self {
            Self {
                class: Class::Elf64,
                machine: elf::EM_X86_64,
                file_type: elf::ET_DYN,
                interp: None,
                needed: Vec::new(),
                soname: Some(soname),
                rpath: None,
                runpath: None,
            }
        }

        pub fn exe(needed: &[&'static str]) -> Self {
            Self {
                file_type: elf::ET_EXEC,
                interp: Some("/lib64/ld-linux-x86-64.so.2"),
                needed: needed.to_vec(),
                soname: None,
                ..Self::lib("")
            }
        }

        pub fn bytes(&self) -> Vec<u8> {
            let wide = self.class == Class::Elf64;
            let (ehsize, phsize, dynsize) = if wide { (64, 56, 16) } else { (52, 32, 8) };
            let phnum = 2 + usize::from(self.interp.is_some());
            let interp_at = ehsize + phnum * phsize;
            let interp = self.interp.map(|s| format!("{s}\0")).unwrap_or_default();
            let mut strtab = vec![0u8];
            let mut string = |s: &str| {
                let at = strtab.len() as u64;
                strtab.extend_from_slice(s.as_bytes());
                strtab.push(0);
                at
            };
            let mut dyns: Vec<(u64, u64)> = Vec::new();
            for n in &self.needed {
                dyns.push((elf::DT_NEEDED.into(), string(n)));
            }
            for (tag, value) in [
                (elf::DT_SONAME, self.soname),
                (elf::DT_RPATH, self.rpath),
                (elf::DT_RUNPATH, self.runpath),
            ] {
                if let Some(v) = value {
                    dyns.push((tag.into(), string(v)));
                }
            }
            let strtab_at = interp_at + interp.len();
            let dyn_at = (strtab_at + strtab.len()).next_multiple_of(8);
            dyns.push((elf::DT_STRTAB.into(), strtab_at as u64));
            dyns.push((elf::DT_STRSZ.into(), strtab.len() as u64));
            dyns.push((elf::DT_NULL.into(), 0));
            let total = dyn_at + dyns.len() * dynsize;

            let mut out = Vec::new();
            let word = |out: &mut Vec<u8>, v: u64| {
                if wide {
                    out.extend_from_slice(&v.to_le_bytes());
                } else {
                    out.extend_from_slice(&(v as u32).to_le_bytes());
                }
            };
            out.extend_from_slice(&elf::ELFMAG);
            out.extend_from_slice(&[if wide { 2 } else { 1 }, 1, 1, 0]);
            out.extend_from_slice(&[0; 8]);
            out.extend_from_slice(&self.file_type.to_le_bytes());
            out.extend_from_slice(&self.machine.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
            word(&mut out, 0); // entry
            word(&mut out, ehsize as u64); // phoff
            word(&mut out, 0); // shoff
            out.extend_from_slice(&0u32.to_le_bytes());
            for v in [ehsize, phsize, phnum, 64, 0, 0] {
                out.extend_from_slice(&(v as u16).to_le_bytes());
            }
            let phdr = |out: &mut Vec<u8>, kind: u32, off: usize, size: usize| {
                out.extend_from_slice(&kind.to_le_bytes());
                if wide {
                    out.extend_from_slice(&4u32.to_le_bytes()); // flags
                }
                for v in [off, off, off, size, size] {
                    word(out, v as u64);
                }
                if !wide {
                    out.extend_from_slice(&4u32.to_le_bytes());
                }
                word(out, 8);
            };
            if self.interp.is_some() {
                phdr(&mut out, elf::PT_INTERP, interp_at, interp.len());
            }
            phdr(&mut out, elf::PT_LOAD, 0, total);
            phdr(&mut out, elf::PT_DYNAMIC, dyn_at, dyns.len() * dynsize);
            assert_eq!(out.len(), interp_at);
            out.extend_from_slice(interp.as_bytes());
            out.extend_from_slice(&strtab);
            out.resize(dyn_at, 0);
            for (tag, val) in dyns {
                word(&mut out, tag);
                word(&mut out, val);
            }
            out
        }
    }

    /// A fake system root; files are written with their parents.
    struct Root(tempfile::TempDir);

    impl Root {
        fn new() -> Self {
            let root = Self(tempfile::tempdir().unwrap());
            root.write("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", &{
                let mut l = Synth::lib("ld-linux-x86-64.so.2");
                l.file_type = elf::ET_DYN;
                l.bytes()
            });
            root.link("/lib64", "lib/x86_64-linux-gnu");
            root.write("/lib/x86_64-linux-gnu/libc-2.36.so", &{
                let mut l = Synth::lib("libc.so.6");
                l.needed = vec!["ld-linux-x86-64.so.2"];
                l.bytes()
            });
            root.link("/lib/x86_64-linux-gnu/libc.so.6", "libc-2.36.so");
            root
        }

        fn path(&self) -> &Path {
            self.0.path()
        }

        fn host(&self, inner: &str) -> PathBuf {
            host_path(self.path(), Path::new(inner))
        }

        fn write(&self, inner: &str, data: &[u8]) {
            let host = self.host(inner);
            fs::create_dir_all(host.parent().unwrap()).unwrap();
            fs::write(host, data).unwrap();
        }

        fn link(&self, inner: &str, target: &str) {
            let host = self.host(inner);
            fs::create_dir_all(host.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, host).unwrap();
        }

        fn closure(&self, binaries: &[&str]) -> Result<Vec<String>, ElfError> {
            let binaries: Vec<PathBuf> = binaries.iter().map(PathBuf::from).collect();
            closure(&binaries, self.path()).map(|files| {
                files
                    .iter()
                    .map(|f| f.to_string_lossy().into_owned())
                    .collect()
            })
        }
    }

    const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";
    const LIBC: &str = "/lib/x86_64-linux-gnu/libc.so.6";

    #[test]
    fn synthetic_elf_parses_back() {
        let mut s = Synth::exe(&["libc.so.6", "libfoo.so.1"]);
        s.rpath = Some("/r");
        s.runpath = Some("$ORIGIN/../lib");
        let info = parse(&s.bytes(), Path::new("synth")).unwrap();
        assert_eq!(info.class, Class::Elf64);
        assert_eq!(info.machine, elf::EM_X86_64);
        assert_eq!(info.interpreter, Some(PathBuf::from(LOADER)));
        assert_eq!(info.needed, ["libc.so.6", "libfoo.so.1"]);
        assert_eq!(info.rpath.as_deref(), Some("/r"));
        assert_eq!(info.runpath.as_deref(), Some("$ORIGIN/../lib"));
        let mut s32 = Synth::lib("libfoo.so.1");
        s32.class = Class::Elf32;
        s32.machine = elf::EM_386;
        let info = parse(&s32.bytes(), Path::new("synth32")).unwrap();
        assert_eq!((info.class, info.machine), (Class::Elf32, elf::EM_386));
        assert_eq!(info.soname.as_deref(), Some("libfoo.so.1"));
    }

    #[test]
    fn loader_and_symlinked_soname_keep_their_names() {
        let root = Root::new();
        root.write("/usr/bin/tool", &Synth::exe(&["libc.so.6"]).bytes());
        // libc needs ld-linux-x86-64.so.2: the loader answers by its DT_SONAME, no search.
        assert_eq!(
            root.closure(&["/usr/bin/tool"]).unwrap(),
            ["/usr/bin/tool", LOADER, LIBC]
        );
        let files: Vec<PathBuf> = [LOADER, LIBC].iter().map(PathBuf::from).collect();
        let adds = additions(root.path(), &files).unwrap();
        assert_eq!(adds[0].dest, LOADER.as_bytes());
        assert_eq!(
            adds[0].source,
            crate::initrd::add::Source::Path(
                root.host("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
            )
        );
        assert_eq!(adds[1].dest, LIBC.as_bytes());
        assert_eq!(
            adds[1].source,
            crate::initrd::add::Source::Path(root.host("/lib/x86_64-linux-gnu/libc-2.36.so"))
        );
    }

    #[test]
    fn origin_in_runpath_is_the_real_directory_of_the_program() {
        let root = Root::new();
        let mut app = Synth::exe(&["libapp.so.1"]);
        app.runpath = Some("$ORIGIN/../lib");
        root.write("/opt/app/bin/app", &app.bytes());
        root.write("/opt/app/lib/libapp.so.1", &{
            let mut l = Synth::lib("libapp.so.1");
            l.needed = vec!["libc.so.6"];
            l.bytes()
        });
        // Run through a symlink: $ORIGIN is still /opt/app/bin, as /proc/self/exe is.
        root.link("/usr/bin/app", "/opt/app/bin/app");
        assert_eq!(
            root.closure(&["/usr/bin/app"]).unwrap(),
            [
                "/usr/bin/app",
                LOADER,
                "/opt/app/bin/../lib/libapp.so.1",
                LIBC
            ]
        );
        let adds = additions(
            root.path(),
            &[PathBuf::from("/opt/app/bin/../lib/libapp.so.1")],
        )
        .unwrap();
        assert_eq!(adds[0].dest, b"/opt/app/lib/libapp.so.1");
    }

    #[test]
    fn runpath_hides_rpath_and_is_not_inherited() {
        let root = Root::new();
        root.write("/r/libx.so.1", &Synth::lib("libx.so.1").bytes());
        root.write("/u/libx.so.1", &Synth::lib("libx.so.1").bytes());
        let mut both = Synth::exe(&["libx.so.1"]);
        both.rpath = Some("/r");
        both.runpath = Some("/u");
        root.write("/bin/both", &both.bytes());
        assert_eq!(
            root.closure(&["/bin/both"]).unwrap(),
            ["/bin/both", LOADER, "/u/libx.so.1"]
        );

        // libmid (no paths of its own) needs liby, which only /deps has.
        root.write("/usr/lib/libmid.so.1", &{
            let mut l = Synth::lib("libmid.so.1");
            l.needed = vec!["liby.so.1"];
            l.bytes()
        });
        root.write("/deps/liby.so.1", &Synth::lib("liby.so.1").bytes());
        let mut with_rpath = Synth::exe(&["libmid.so.1"]);
        with_rpath.rpath = Some("/deps");
        root.write("/bin/rp", &with_rpath.bytes());
        // The program's DT_RPATH serves the libraries it loads...
        assert_eq!(
            root.closure(&["/bin/rp"]).unwrap(),
            ["/bin/rp", LOADER, "/usr/lib/libmid.so.1", "/deps/liby.so.1"]
        );
        // ...its DT_RUNPATH does not.
        let mut with_runpath = Synth::exe(&["libmid.so.1"]);
        with_runpath.runpath = Some("/deps");
        root.write("/bin/rn", &with_runpath.bytes());
        match root.closure(&["/bin/rn"]) {
            Err(ElfError::NotFound(nf)) => {
                assert_eq!(nf.binary, Path::new("/bin/rn"));
                assert_eq!(nf.soname, "liby.so.1");
                assert_eq!(nf.needed_by, Path::new("/usr/lib/libmid.so.1"));
            }
            other => panic!("expected liby.so.1 not found, got {other:?}"),
        }
    }

    #[test]
    fn ld_so_conf_includes_are_globbed_in_order_and_wrong_class_is_skipped() {
        let root = Root::new();
        root.write(
            "/etc/ld.so.conf",
            b"# comment\ninclude ld.so.conf.d/*.conf\n",
        );
        root.write(
            "/etc/ld.so.conf.d/10-a.conf",
            b"/opt/lib32 # 32-bit first\n",
        );
        root.write("/etc/ld.so.conf.d/20-b.conf", b"/opt/lib64/\n");
        root.write("/etc/ld.so.conf.d/skip.txt", b"/nowhere\n");
        let mut foo32 = Synth::lib("libfoo.so.1");
        foo32.class = Class::Elf32;
        foo32.machine = elf::EM_386;
        root.write("/opt/lib32/libfoo.so.1", &foo32.bytes());
        root.write("/opt/lib64/libfoo.so.1", &Synth::lib("libfoo.so.1").bytes());
        root.write("/usr/bin/foo", &Synth::exe(&["libfoo.so.1"]).bytes());
        assert_eq!(
            root.closure(&["/usr/bin/foo"]).unwrap(),
            ["/usr/bin/foo", LOADER, "/opt/lib64/libfoo.so.1"]
        );
        let resolver = Resolver::new(root.path()).unwrap();
        assert_eq!(
            resolver.conf_dirs,
            [PathBuf::from("/opt/lib32"), PathBuf::from("/opt/lib64")]
        );
        // Only the 32-bit copy: not found, and the message says why it was skipped.
        fs::remove_file(root.host("/opt/lib64/libfoo.so.1")).unwrap();
        let err = root.closure(&["/usr/bin/foo"]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/usr/bin/foo") && msg.contains("libfoo.so.1"),
            "{msg}"
        );
        assert!(
            msg.contains("skipped /opt/lib32/libfoo.so.1: wrong ELF class Elf32"),
            "{msg}"
        );
    }

    #[test]
    fn include_loop_is_an_error() {
        let root = Root::new();
        root.write("/etc/ld.so.conf", b"include /etc/ld.so.conf\n");
        assert!(matches!(
            Resolver::new(root.path()),
            Err(ElfError::ConfLoop { .. })
        ));
    }

    #[test]
    fn scripts_bring_their_interpreter_chain() {
        let root = Root::new();
        root.write("/bin/sh", &Synth::exe(&["libc.so.6"]).bytes());
        root.write("/usr/bin/tool", b"#!/bin/sh -e\necho hi\n");
        root.write("/usr/bin/outer", b"#! /usr/bin/tool\n");
        assert_eq!(
            root.closure(&["/usr/bin/outer"]).unwrap(),
            ["/usr/bin/outer", "/usr/bin/tool", "/bin/sh", LOADER, LIBC]
        );
        root.write("/usr/bin/loop", b"#!/usr/bin/loop\n");
        assert!(matches!(
            root.closure(&["/usr/bin/loop"]),
            Err(ElfError::Script { .. })
        ));
        root.write("/usr/bin/rel", b"#!sh\n");
        assert!(matches!(
            root.closure(&["/usr/bin/rel"]),
            Err(ElfError::Script { .. })
        ));
    }

    #[test]
    fn missing_library_names_binary_and_soname() {
        let root = Root::new();
        root.write(
            "/usr/bin/tool",
            &Synth::exe(&["libc.so.6", "libgone.so.3"]).bytes(),
        );
        let err = root.closure(&["/usr/bin/tool"]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(
                "/usr/bin/tool: library libgone.so.3 (needed by /usr/bin/tool) not found"
            ),
            "{msg}"
        );
        assert!(
            msg.contains("/usr/lib/x86_64-linux-gnu/libgone.so.3"),
            "{msg}"
        );
    }

    #[test]
    fn missing_loader_non_elf_and_non_elf_library_are_errors() {
        let root = Root::new();
        fs::remove_file(root.host("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")).unwrap();
        root.write("/usr/bin/tool", &Synth::exe(&["libc.so.6"]).bytes());
        assert!(matches!(
            root.closure(&["/usr/bin/tool"]),
            Err(ElfError::Interpreter { .. })
        ));

        let root = Root::new();
        root.write("/usr/bin/text", b"just text");
        let err = root.closure(&["/usr/bin/text"]).unwrap_err();
        assert!(matches!(err, ElfError::NotElf { .. }), "{err}");
        assert!(err.to_string().contains("/usr/bin/text"));

        // A linker script where the library should be: ld.so stops with an error, so do we.
        root.write(
            "/usr/lib/libld.so",
            b"/* GNU ld script */\nGROUP ( libc.so.6 )\n",
        );
        root.write("/usr/bin/tool", &Synth::exe(&["libld.so"]).bytes());
        let err = root.closure(&["/usr/bin/tool"]).unwrap_err();
        assert!(
            matches!(err, ElfError::NotElf { ref path, .. } if path == Path::new("/usr/lib/libld.so")),
            "{err}"
        );

        assert!(matches!(
            root.closure(&["usr/bin/tool"]),
            Err(ElfError::Relative { .. })
        ));
        assert!(matches!(
            root.closure(&["/usr/bin/absent"]),
            Err(ElfError::Read { .. })
        ));
    }

    #[test]
    fn static_binary_is_just_itself() {
        let root = Root::new();
        let mut s = Synth::exe(&[]);
        s.interp = None;
        let mut bytes = s.bytes();
        // Turn PT_DYNAMIC (the last program header) into PT_NULL: no dynamic section at all.
        let ph = 64 + 56;
        bytes[ph..ph + 4].copy_from_slice(&elf::PT_NULL.to_le_bytes());
        root.write("/bin/static", &bytes);
        assert_eq!(root.closure(&["/bin/static"]).unwrap(), ["/bin/static"]);
    }

    #[test]
    fn same_file_under_two_names_is_loaded_once() {
        let root = Root::new();
        root.write("/usr/lib/libreal.so.1", &Synth::lib("libreal.so.1").bytes());
        root.link("/usr/lib/libalias.so.1", "libreal.so.1");
        root.write(
            "/usr/bin/tool",
            &Synth::exe(&["libreal.so.1", "libalias.so.1"]).bytes(),
        );
        assert_eq!(
            root.closure(&["/usr/bin/tool"]).unwrap(),
            ["/usr/bin/tool", LOADER, "/usr/lib/libreal.so.1"]
        );
    }

    #[test]
    fn resolve_in_root_stays_in_root() {
        let root = Root::new();
        root.write("/etc/target", b"x");
        root.link("/a/up", "../../../../etc/target");
        root.link("/a/abs", "/etc/target");
        root.link("/a/loop", "loop");
        for p in ["/a/up", "/a/abs"] {
            assert_eq!(
                resolve_in_root(root.path(), Path::new(p)).unwrap(),
                Path::new("/etc/target")
            );
        }
        let err = resolve_in_root(root.path(), Path::new("/a/loop")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(nix::libc::ELOOP));
    }

    /// `[initrd] binaries = ["/dev/zero"]` once grew a build to 24 GB.
    #[test]
    fn a_device_is_refused_not_read() {
        let err = closure(&[PathBuf::from("/dev/zero")], Path::new("/")).unwrap_err();
        assert!(
            matches!(&err, ElfError::HostFile(HostFileError::NotRegular { .. })),
            "{err}"
        );
        assert!(err
            .to_string()
            .starts_with("/dev/zero: a binary to copy is a character device"));
    }

    #[test]
    fn glob_matches_like_fnmatch() {
        for (p, n, want) in [
            ("*.conf", "libc.conf", true),
            ("*.conf", "libc.conf.bak", false),
            ("x86_64-*.conf", "x86_64-linux-gnu.conf", true),
            ("?.c", "a.c", true),
            ("?.c", "ab.c", false),
            ("[a-c]*", "b1", true),
            ("[!a-c]*", "b1", false),
            ("[]x]", "]", true),
            ("*a*b", "xaayb", true),
            ("*", "", true),
            ("[ab", "[ab", true),
            ("[^a-c]*", "d1", true),
            ("[^a-c]*", "b1", false),
        ] {
            assert_eq!(glob_match(p.as_bytes(), n.as_bytes()), want, "{p} vs {n}");
        }
    }

    #[test]
    fn token_expansion() {
        let o = Path::new("/opt/x");
        assert_eq!(expand_tokens("$ORIGIN/../lib", o), "/opt/x/../lib");
        assert_eq!(
            expand_tokens("${ORIGIN}/$LIB", o),
            "/opt/x/lib/x86_64-linux-gnu"
        );
        assert_eq!(
            split_path_list("/a/:$ORIGIN::rel", o),
            [PathBuf::from("/a"), PathBuf::from("/opt/x")]
        );
    }

    #[test]
    fn misaligned_input_parses_like_aligned() {
        let data = Synth::exe(&["libc.so.6"]).bytes();
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&data);
        assert_eq!(
            parse(&shifted[1..], Path::new("x")).unwrap(),
            parse(&data, Path::new("x")).unwrap()
        );
    }

    /// A deterministic generator: the cases are the same on every run.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Mutates a real binary thousands of ways — header fields, program headers, the dynamic
    /// section and string table, truncations — and parses each: errors are fine, panics not.
    #[test]
    fn mutated_real_binary_never_panics() {
        let original = fs::read("/usr/bin/hostname")
            .or_else(|_| fs::read("/bin/hostname"))
            .expect("/usr/bin/hostname (package hostname) is on every Debian system");
        let info = parse(&original, Path::new("hostname")).unwrap();
        assert!(!info.needed.is_empty());
        // Where the interesting structures are: ELF header, program headers, dynamic segment.
        let phoff = u64::from_le_bytes(original[32..40].try_into().unwrap()) as usize;
        let phnum = usize::from(u16::from_le_bytes(original[56..58].try_into().unwrap()));
        let mut hot: Vec<std::ops::Range<usize>> = vec![0..64, phoff..phoff + phnum * 56];
        for i in 0..phnum {
            let ph = &original[phoff + i * 56..phoff + (i + 1) * 56];
            let kind = u32::from_le_bytes(ph[0..4].try_into().unwrap());
            let off = u64::from_le_bytes(ph[8..16].try_into().unwrap()) as usize;
            let size = u64::from_le_bytes(ph[32..40].try_into().unwrap()) as usize;
            if kind == elf::PT_DYNAMIC || kind == elf::PT_INTERP {
                hot.push(off..off + size);
            }
            if kind == elf::PT_DYNAMIC {
                // The string table too: in a PIE's first segment its address is its offset.
                let entry = |i: usize| {
                    let e = &original[off + i * 16..off + i * 16 + 16];
                    let word =
                        |r: std::ops::Range<usize>| u64::from_le_bytes(e[r].try_into().unwrap());
                    (word(0..8), word(8..16) as usize)
                };
                let entries: Vec<_> = (0..size / 16).map(entry).collect();
                let get = |tag: u32| entries.iter().find(|e| e.0 == u64::from(tag)).unwrap().1;
                let (strtab, strsz) = (get(elf::DT_STRTAB), get(elf::DT_STRSZ));
                assert!(strtab + strsz <= original.len());
                hot.push(strtab..strtab + strsz);
            }
        }
        let interesting: [u64; 8] = [0, 1, 0x7f, 0xff, 0xffff, 0xffff_ffff, u64::MAX, 1 << 40];
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let (mut ok, mut errors) = (0, 0);
        for case in 0..6000 {
            let mut data = original.clone();
            match case % 4 {
                // Random bytes in a hot range.
                0 | 1 => {
                    for _ in 0..1 + rng.below(4) {
                        let r = &hot[rng.below(hot.len())];
                        let at = r.start + rng.below(r.len().max(1));
                        if at < data.len() {
                            data[at] = rng.next() as u8;
                        }
                    }
                }
                // An interesting value written over a 1-, 2-, 4- or 8-byte field.
                2 => {
                    let r = &hot[rng.below(hot.len())];
                    let at = r.start + rng.below(r.len().max(1));
                    let width = 1 << rng.below(4);
                    let v = interesting[rng.below(interesting.len())].to_le_bytes();
                    for (i, b) in v.iter().take(width).enumerate() {
                        if let Some(d) = data.get_mut(at + i) {
                            *d = *b;
                        }
                    }
                }
                // Truncation anywhere.
                _ => data.truncate(rng.below(original.len())),
            }
            match parse(&data, Path::new("mutant")) {
                Ok(_) => ok += 1,
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    errors += 1;
                }
            }
        }
        // Both outcomes happen: the mutations reach the parser's checks.
        eprintln!("mutants: {ok} parsed, {errors} rejected");
        assert!(ok > 100 && errors > 100, "ok {ok}, errors {errors}");
    }
}
