//! `bootrig initrd …`: list, extract, diff and patch initrd images.

use std::path::{Path, PathBuf};

use serde::Serialize;

use clap::{Args, Subcommand};

use super::{json_or, print_out, CliError, CliResult, Outcome};
use crate::initrd::add::{add, AddMode, AddOptions, Addition};
use crate::initrd::codec::Compression;
use crate::initrd::cpio::Kind;
use crate::initrd::diff::{diff_images, DiffOptions};
use crate::initrd::extract::{extract, ExtractOptions};
use crate::initrd::image::{read_tree, ReadOptions, Segment, DEFAULT_MAX_OUTPUT};
use crate::initrd::path;
use crate::initrd::tree::{DataPolicy, Issue, Node, Tree};
use crate::names::Named;

#[derive(Debug, Subcommand)]
pub enum InitrdCommand {
    /// List the merged view: what the kernel leaves in the rootfs, one path per line.
    Ls(LsArgs),
    /// Write the merged view into a new or empty directory (unsafe entries are refused).
    Extract(ExtractArgs),
    /// Show added, removed and changed paths between two images, and diffs of small text files.
    Diff(DiffArgs),
    /// Add files to an image: append a segment (overlay) or rewrite it as one archive (repack).
    Add(AddArgs),
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Cap on the decompressed size of the image, in bytes (guards against decompression bombs).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_OUTPUT)]
    max_size: u64,
}

impl ReadArgs {
    fn options(&self) -> ReadOptions {
        ReadOptions {
            max_output: self.max_size,
        }
    }
}

#[derive(Debug, Args)]
pub struct LsArgs {
    image: PathBuf,
    /// Mode, owner, size and link target for each path.
    #[arg(long, short = 'l')]
    long: bool,
    /// Show the segments: offset, compression, entries, sizes.
    #[arg(long)]
    segments: bool,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    read: ReadArgs,
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    image: PathBuf,
    dir: PathBuf,
    /// Do not create device nodes, even as root (listed as skipped); for inspecting an untrusted image.
    #[arg(long)]
    no_devices: bool,
    /// Clear set-uid/set-gid bits of extracted files (listed); for inspecting an untrusted image.
    #[arg(long)]
    no_setuid: bool,
    #[command(flatten)]
    read: ReadArgs,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    a: PathBuf,
    b: PathBuf,
    /// Also compare modification times.
    #[arg(long)]
    mtime: bool,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    read: ReadArgs,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    image: PathBuf,
    /// Output image (written atomically; never the input).
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// SRC:DEST — a file, symlink or directory to put at DEST in the image. Repeatable.
    #[arg(long = "file", value_name = "SRC:DEST")]
    files: Vec<String>,
    /// A replacement /init (mode 0755).
    #[arg(long, value_name = "FILE")]
    init: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = AddMode::Overlay)]
    mode: AddMode,
    /// gzip, zstd, xz, lz4 or none (default: the image's own compression).
    #[arg(long, value_name = "CODEC")]
    compress: Option<Compression>,
    /// Compression level (codec default when absent).
    #[arg(long)]
    level: Option<u32>,
    /// Replace OUT if it exists.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    read: ReadArgs,
}

pub fn run(cmd: InitrdCommand) -> CliResult {
    match cmd {
        InitrdCommand::Ls(args) => ls(args),
        InitrdCommand::Extract(args) => extract_cmd(args),
        InitrdCommand::Diff(args) => diff_cmd(args),
        InitrdCommand::Add(args) => add_cmd(args),
    }
}

fn issue_line(issue: &Issue) -> String {
    format!(
        "entry \"{}\" in segment {}: {}",
        path::display(&issue.name),
        issue.segment,
        issue.kind.describe()
    )
}

fn warn_issues(issues: &[Issue]) {
    for issue in issues {
        eprintln!("bootrig: warning: {}", issue_line(issue));
    }
}

/// Entry point for `bootrig initrd ls`.
fn ls(args: LsArgs) -> CliResult {
    let (tree, segments) = read_tree(&args.image, DataPolicy::SizeOnly, &args.read.options())?;
    if args.json {
        let report = LsReport {
            image: &args.image,
            paths: tree.nodes().map(|n| NodeJson::of(&tree, n)).collect(),
            segments: &segments,
            warnings: tree.issues().iter().map(issue_line).collect(),
        };
        print_out(&json_or(true, &report, |_| String::new())?)?;
        return Ok(Outcome::Pass);
    }
    warn_issues(tree.issues());
    let mut out = String::new();
    if args.segments {
        out.push_str(&render_segments(&segments));
        if !args.long {
            print_out(&out)?;
            return Ok(Outcome::Pass);
        }
        out.push('\n');
    }
    for node in tree.nodes() {
        if args.long {
            out.push_str(&long_line(&tree, node));
        } else {
            out.push_str(&path::display(&node.path));
        }
        out.push('\n');
    }
    print_out(&out)?;
    Ok(Outcome::Pass)
}

pub fn render_segments(segments: &[Segment]) -> String {
    let mut out = format!(
        "{:>3}  {:>10}  {:<6}  {:>7}  {:>12}  {:>12}\n",
        "#", "offset", "codec", "entries", "stored", "uncompressed"
    );
    for s in segments {
        out.push_str(&format!(
            "{:>3}  {:>10}  {:<6}  {:>7}  {:>12}  {:>12}\n",
            s.index,
            s.offset,
            s.compression.as_str(),
            s.entries,
            s.stored_len,
            s.uncompressed_len
        ));
    }
    out
}

/// `initrd ls --json`. Fields in name order: the JSON reads as it did when it was a map.
#[derive(Serialize)]
struct LsReport<'a> {
    image: &'a Path,
    paths: Vec<NodeJson>,
    segments: &'a [Segment],
    warnings: Vec<String>,
}

/// One path of `initrd ls --json`.
#[derive(Serialize)]
struct NodeJson {
    gid: u32,
    mode: String,
    mtime: u32,
    path: String,
    segment: usize,
    size: u64,
    /// A symlink's target; null for everything else.
    target: Option<String>,
    #[serde(rename = "type")]
    kind: &'static str,
    uid: u32,
}

impl NodeJson {
    fn of(tree: &Tree, n: &Node) -> Self {
        NodeJson {
            gid: n.gid,
            mode: format!("{:04o}", n.mode & 0o7777),
            mtime: n.mtime,
            path: path::display(&n.path),
            segment: n.segment,
            size: tree.size(n),
            target: (n.kind == Kind::Symlink).then(|| path::display(&n.target)),
            kind: crate::initrd::diff::kind_name(n.kind),
            uid: n.uid,
        }
    }
}

fn long_line(tree: &Tree, n: &Node) -> String {
    let size = match n.kind {
        Kind::CharDevice | Kind::BlockDevice => format!("{},{}", n.rdev.0, n.rdev.1),
        _ => tree.size(n).to_string(),
    };
    let mut line = format!(
        "{} {:>5} {:>5} {:>10} {}",
        mode_string(n.kind, n.mode),
        n.uid,
        n.gid,
        size,
        path::display(&n.path)
    );
    if n.kind == Kind::Symlink {
        line.push_str(" -> ");
        line.push_str(&path::display(&n.target));
    }
    line
}

/// `ls -l` style mode, e.g. `-rwsr-xr-x`.
pub fn mode_string(kind: Kind, mode: u32) -> String {
    let t = match kind {
        Kind::Regular => '-',
        Kind::Directory => 'd',
        Kind::Symlink => 'l',
        Kind::CharDevice => 'c',
        Kind::BlockDevice => 'b',
        Kind::Fifo => 'p',
        Kind::Socket => 's',
        Kind::Unknown => '?',
    };
    let mut s = String::with_capacity(10);
    s.push(t);
    let bit = |m: u32, c: char| if mode & m != 0 { c } else { '-' };
    let special =
        |exec: u32, flag: u32, set: char, unset: char| match (mode & exec != 0, mode & flag != 0) {
            (true, true) => set,
            (false, true) => unset,
            (true, false) => 'x',
            (false, false) => '-',
        };
    s.push(bit(0o400, 'r'));
    s.push(bit(0o200, 'w'));
    s.push(special(0o100, 0o4000, 's', 'S'));
    s.push(bit(0o040, 'r'));
    s.push(bit(0o020, 'w'));
    s.push(special(0o010, 0o2000, 's', 'S'));
    s.push(bit(0o004, 'r'));
    s.push(bit(0o002, 'w'));
    s.push(special(0o001, 0o1000, 't', 'T'));
    s
}

/// Entry point for `bootrig initrd extract`.
fn extract_cmd(args: ExtractArgs) -> CliResult {
    let report = extract(
        &args.image,
        &args.dir,
        &ExtractOptions {
            read: args.read.options(),
            no_devices: args.no_devices,
            no_setuid: args.no_setuid,
        },
    )?;
    warn_issues(&report.warnings);
    let why_skipped = if args.no_devices {
        "--no-devices"
    } else {
        "only root can"
    };
    print_paths(
        &format!("device node(s) not created ({why_skipped})"),
        report.skipped_devices.iter().map(|p| path::display(p)),
    );
    print_paths(
        "device node(s) created (pass --no-devices to skip them)",
        report
            .devices
            .iter()
            .map(|(p, (major, minor))| format!("{} ({major}:{minor})", path::display(p))),
    );
    print_paths(
        "set-uid/set-gid file(s) created (pass --no-setuid to clear the bits)",
        report
            .setid_files
            .iter()
            .map(|(p, bits)| format!("{} ({})", path::display(p), setid_name(*bits))),
    );
    print_paths(
        "set-uid/set-gid bit(s) cleared (--no-setuid)",
        report
            .cleared_setid
            .iter()
            .map(|(p, bits)| format!("{} ({})", path::display(p), setid_name(*bits))),
    );
    eprintln!(
        "extracted {} files, {} directories, {} symlinks, {} special files into {}",
        report.files,
        report.dirs,
        report.symlinks,
        report.specials,
        args.dir.display()
    );
    Ok(Outcome::Pass)
}

/// One stderr line listing `paths` after `what`, when there are any.
fn print_paths(what: &str, paths: impl Iterator<Item = String>) {
    let paths: Vec<String> = paths.collect();
    if !paths.is_empty() {
        eprintln!("bootrig: {} {what}: {}", paths.len(), paths.join(", "));
    }
}

fn setid_name(bits: u32) -> &'static str {
    match (bits & 0o4000 != 0, bits & 0o2000 != 0) {
        (true, true) => "set-uid, set-gid",
        (true, false) => "set-uid",
        _ => "set-gid",
    }
}

/// Entry point for `bootrig initrd diff`; exit 1 when the images differ, like diff(1).
fn diff_cmd(args: DiffArgs) -> CliResult {
    let opts = DiffOptions {
        read: args.read.options(),
        compare_mtime: args.mtime,
        ..DiffOptions::default()
    };
    let diff = diff_images(&args.a, &args.b, &opts)?;
    for warning in &diff.warnings {
        eprintln!("bootrig: warning: {warning}");
    }
    print_out(&json_or(args.json, &diff, |d| d.render())?)?;
    Ok(if diff.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail
    })
}

/// Entry point for `bootrig initrd add`.
fn add_cmd(args: AddArgs) -> CliResult {
    let mut additions = args
        .files
        .iter()
        .map(|s| Addition::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(init) = &args.init {
        additions.push(Addition {
            mode: Some(0o755),
            ..Addition::path(init.clone(), "/init")
        });
    }
    if additions.is_empty() {
        return Err(CliError::Usage(
            "initrd add: nothing to add; give --file SRC:DEST and/or --init FILE".into(),
        ));
    }
    let opts = AddOptions {
        mode: args.mode,
        compress: args.compress,
        level: args.level,
        force: args.force,
        read: args.read.options(),
        ..AddOptions::default()
    };
    let report = add(&args.image, &args.output, &additions, &opts)?;
    for note in &report.notes {
        eprintln!("bootrig: note: {note}");
    }
    for warning in &report.warnings {
        eprintln!("bootrig: warning: {warning}");
    }
    eprintln!(
        "{}: {} ({} input segment(s), {} path(s) added, {} segment, {} bytes)",
        args.output.display(),
        args.mode.as_str(),
        report.input_segments.len(),
        report.written.len(),
        report.compression.as_str(),
        report.output_len
    );
    Ok(Outcome::Pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_modes_are_named_as_serde_names_them() {
        crate::names::assert_serde_names::<AddMode>();
        assert_eq!(AddMode::Overlay.as_str(), "overlay");
        assert_eq!(AddMode::Repack.as_str(), "repack");
    }

    #[test]
    fn mode_strings_match_ls() {
        assert_eq!(mode_string(Kind::Regular, 0o100755), "-rwxr-xr-x");
        assert_eq!(mode_string(Kind::Regular, 0o104755), "-rwsr-xr-x");
        assert_eq!(mode_string(Kind::Directory, 0o041777), "drwxrwxrwt");
        assert_eq!(mode_string(Kind::Regular, 0o102644), "-rw-r-Sr--");
    }
}
