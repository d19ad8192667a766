//! The merged view of an initrd: what the kernel's unpacker (`init/initramfs.c`) leaves in the
//! rootfs after it has applied every entry of every segment in order. Later entries win; an entry
//! of another type first removes what is there (`clean_path`, which removes a directory only when
//! it is empty); parent components resolve through symlinks, as the kernel's path walk does, so a
//! `lib/modules/x` entry lands in `usr/lib/modules/x` when `lib -> usr/lib`; hardlinks
//! (`nlink >= 2`) join the first entry with the same inode key until the next `TRAILER!!!`.
//!
//! Regular files are inodes, as in the rootfs: a regular-file entry over an existing regular file
//! is opened with `O_TRUNC` and written *through* the existing inode (`do_name`), so its content,
//! mode, owner and mtime change for every path hardlinked to it. That is how an overlay's
//! `usr/sbin/ip` can turn busybox, and with it `/bin/sh`, into `ip`.
//!
//! Entries the kernel would silently drop (missing parent, parent not a directory) are dropped
//! here too, and recorded as issues, so `ls` shows what really boots and a support engineer can
//! see why a file is absent.

use std::collections::{HashMap, VecDeque};

use sha2::{Digest, Sha256};

use super::cpio::{self, Entry, Item, Kind, SkipReason, Skipped};
use super::path::{self, Unsafe};

/// How much of each file's content the tree keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataPolicy {
    /// Sizes only (listing, overlay verification): content is never held.
    SizeOnly,
    /// A SHA-256 of every file, and the content of files up to this size (diff).
    Digest { keep_up_to: u64 },
    /// All content (extract, repack).
    Full,
}

impl DataPolicy {
    /// Whether entries must be read with their data.
    pub fn needs_data(self) -> bool {
        !matches!(self, DataPolicy::SizeOnly)
    }
}

/// File content shared by the hardlinks of one file.
#[derive(Debug, Clone, Default)]
pub struct Inode {
    pub size: u64,
    pub data: Option<Vec<u8>>,
    pub digest: Option<[u8; 32]>,
}

#[derive(Debug, Clone)]
pub struct Node {
    /// Canonical path (see [`path::normalize`]), as resolved by the kernel.
    pub path: Vec<u8>,
    pub kind: Kind,
    /// Full `st_mode`, type bits included.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u32,
    pub rdev: (u32, u32),
    /// Symlink target.
    pub target: Vec<u8>,
    /// Content of a regular file (index into the tree's inodes).
    pub inode: Option<usize>,
    /// Segment of the entry that last set this node.
    pub segment: usize,
    live: bool,
}

/// Why an entry was dropped or needs care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueKind {
    /// A naive extractor would write outside its directory.
    UnsafeName(Unsafe),
    /// A parent component is a symlink whose target is absolute or climbs above the root.
    SymlinkOutside { link: Vec<u8>, target: Vec<u8> },
    /// The kernel cannot create the entry: its parent does not exist.
    ParentMissing { dir: Vec<u8> },
    /// The kernel cannot create the entry: a parent component is not a directory.
    NotADirectory { what: Vec<u8> },
    /// Too many symlinks on the way (ELOOP).
    SymlinkLoop,
    /// A non-directory entry over a non-empty directory: the kernel keeps the directory.
    DirectoryNotEmpty,
    /// A directory entry replaced a symlink to a directory (the merged-usr breakage).
    ReplacedSymlink { target: Vec<u8> },
    /// A file type the kernel does not create.
    UnknownType { mode: u32 },
    /// A hardlink whose first name (as stored) is not a regular file: never created, or
    /// replaced since. `link()` fails, the entry is skipped (what was at its name is already
    /// unlinked).
    LinkTargetGone { first: Vec<u8> },
    /// A symlink target `symlink()` refuses (empty, or PATH_MAX bytes with the NUL): the entry
    /// only removes what was at its name.
    BadSymlinkTarget { len: usize },
    /// A directory, device, fifo or socket entry with data: `do_header` skips it unread.
    DataOnNonFile { size: u64 },
    /// A component longer than NAME_MAX (255): the kernel's lookup fails with ENAMETOOLONG and
    /// the entry is not created.
    ComponentTooLong { len: usize },
    /// Skipped by `do_header`: the name (with its NUL) exceeds PATH_MAX. `offset`: where the
    /// entry starts in its segment's cpio stream.
    NameTooLong { size: u32, offset: u64 },
    /// Skipped by `do_header`: the symlink target exceeds PATH_MAX.
    TargetTooLong { size: u32, offset: u64 },
}

impl IssueKind {
    /// Issues that make an extraction unsafe.
    pub fn is_unsafe(&self) -> bool {
        matches!(
            self,
            IssueKind::UnsafeName(_) | IssueKind::SymlinkOutside { .. }
        )
    }

    pub fn describe(&self) -> String {
        match self {
            IssueKind::UnsafeName(Unsafe::Absolute) => "absolute path".into(),
            IssueKind::UnsafeName(Unsafe::DotDot) => "path with a '..' component".into(),
            IssueKind::SymlinkOutside { link, target } => format!(
                "goes through symlink {} -> {}, which leads outside the tree",
                path::display(link),
                path::display(target)
            ),
            IssueKind::ParentMissing { dir } => {
                format!("parent directory {} does not exist: the kernel skips this entry", path::display(dir))
            }
            IssueKind::NotADirectory { what } => {
                format!("{} is not a directory: the kernel skips this entry", path::display(what))
            }
            IssueKind::SymlinkLoop => "too many levels of symbolic links: the kernel skips this entry".into(),
            IssueKind::DirectoryNotEmpty => {
                "replaces a non-empty directory: the kernel keeps the directory and skips this entry".into()
            }
            IssueKind::ReplacedSymlink { target } => format!(
                "a directory entry replaced the symlink to {}: paths through it no longer reach the target",
                path::display(target)
            ),
            IssueKind::UnknownType { mode } => format!("file type {mode:o} is not one the kernel creates"),
            IssueKind::LinkTargetGone { first } => format!(
                "hardlink of {}, the first name of its group, which is not a regular file (its entry was skipped, or a later one replaced it): the kernel's link() fails and skips this entry",
                path::display(first)
            ),
            IssueKind::BadSymlinkTarget { len } => format!(
                "symlink target of {len} bytes: the kernel's symlink() refuses it (empty, or not shorter than PATH_MAX {}); the entry only removes what was at its path",
                cpio::MAX_NAME_SIZE
            ),
            IssueKind::DataOnNonFile { size } => {
                format!("{size} bytes of data on an entry that is not a regular file or symlink: the kernel skips this entry")
            }
            IssueKind::ComponentTooLong { len } => format!(
                "a path component of {len} bytes exceeds NAME_MAX {NAME_MAX}: the kernel cannot create this entry and skips it"
            ),
            IssueKind::NameTooLong { size, offset } => format!(
                "entry at byte {offset} of the segment's cpio stream: name of {size} bytes (with its NUL) exceeds PATH_MAX {}: the kernel skips this entry",
                cpio::MAX_NAME_SIZE
            ),
            IssueKind::TargetTooLong { size, offset } => format!(
                "entry at byte {offset} of the segment's cpio stream: symlink target of {size} bytes exceeds PATH_MAX {}: the kernel skips this entry",
                cpio::MAX_NAME_SIZE
            ),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Issue {
    pub segment: usize,
    /// The entry's name as stored.
    pub name: Vec<u8>,
    pub kind: IssueKind,
}

/// The kernel's hardlink key: `find_link` matches inode, device and file type.
type LinkKey = (u32, u32, u32, u32);

/// Longest path component Linux looks up (NAME_MAX).
const NAME_MAX: usize = 255;

/// Linux's limit on symlinks followed in one lookup.
const MAX_SYMLINKS: usize = 40;

/// How [`Tree::walk`] went: the symlinks it followed, with their keys, and where it ended.
#[derive(Debug)]
pub struct Walk<'t> {
    pub links: Vec<(Vec<u8>, &'t Node)>,
    pub end: WalkEnd<'t>,
}

/// Where [`Tree::walk`] ended.
#[derive(Debug)]
pub enum WalkEnd<'t> {
    /// At a node that is not a symlink, with its canonical key.
    Found(Vec<u8>, &'t Node),
    /// At a path that is not in the tree (or whose directory the kernel cannot reach).
    Missing(Vec<u8>),
    /// At this symlink, the kernel's limit reached or met before: a loop.
    Loop(Vec<u8>),
}

impl<'t> Walk<'t> {
    fn new(links: Vec<(Vec<u8>, &'t Node)>, end: WalkEnd<'t>) -> Self {
        Walk { links, end }
    }

    /// The node at the walked path itself (a final symlink not followed), with its key.
    pub fn first(&self) -> Option<(&[u8], &'t Node)> {
        match (self.links.first(), &self.end) {
            (Some((key, node)), _) => Some((key, *node)),
            (None, WalkEnd::Found(key, node)) => Some((key, *node)),
            (None, _) => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tree {
    nodes: Vec<Node>,
    index: HashMap<Vec<u8>, usize>,
    children: HashMap<Vec<u8>, usize>,
    inodes: Vec<Inode>,
    /// Live nodes of each inode (indices into `nodes`): the paths a write through it changes.
    members: Vec<Vec<usize>>,
    /// The first name of each hardlink group, as stored (`find_link` keeps the name).
    links: HashMap<LinkKey, Vec<u8>>,
    policy: DataPolicy,
    issues: Vec<Issue>,
}

impl Tree {
    pub fn new(policy: DataPolicy) -> Self {
        Self {
            nodes: Vec::new(),
            index: HashMap::new(),
            children: HashMap::new(),
            inodes: Vec::new(),
            members: Vec::new(),
            links: HashMap::new(),
            policy,
            issues: Vec::new(),
        }
    }

    pub fn policy(&self) -> DataPolicy {
        self.policy
    }

    /// Live nodes in order of first appearance.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.live)
    }

    pub fn len(&self) -> usize {
        self.nodes().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, key: &[u8]) -> Option<&Node> {
        self.index
            .get(key)
            .map(|&i| &self.nodes[i])
            .filter(|n| n.live)
    }

    pub fn inode(&self, node: &Node) -> Option<&Inode> {
        node.inode.map(|i| &self.inodes[i])
    }

    /// Size of a node's content: file length, or symlink target length.
    pub fn size(&self, node: &Node) -> u64 {
        match node.kind {
            Kind::Regular => self.inode(node).map_or(0, |i| i.size),
            Kind::Symlink => node.target.len() as u64,
            _ => 0,
        }
    }

    pub fn issues(&self) -> &[Issue] {
        &self.issues
    }

    /// How many live paths share each inode.
    pub fn link_counts(&self) -> Vec<u32> {
        self.members.iter().map(|m| m.len() as u32).collect()
    }

    /// The other live paths sharing the inode of the regular file at `key`, in order of first
    /// appearance: what a write through `key` would change too.
    pub fn other_links(&self, key: &[u8]) -> Vec<&[u8]> {
        let Some(&me) = self.index.get(key) else {
            return Vec::new();
        };
        let Some(inode) = self.nodes[me].inode.filter(|_| self.nodes[me].live) else {
            return Vec::new();
        };
        let mut others: Vec<usize> = self.members[inode]
            .iter()
            .copied()
            .filter(|&m| m != me)
            .collect();
        others.sort_unstable();
        others
            .into_iter()
            .map(|m| self.nodes[m].path.as_slice())
            .collect()
    }

    /// Removes the node at `key` (a directory only when empty), as `unlink`/`rmdir` would;
    /// returns whether something was removed. Other hardlinks of a file keep their inode.
    pub fn unlink(&mut self, key: &[u8]) -> bool {
        let Some(node) = self.get(key) else {
            return false;
        };
        if node.kind == Kind::Directory && self.children.get(key).copied().unwrap_or(0) > 0 {
            return false;
        }
        self.remove(key);
        true
    }

    /// Applies an entry, or records one the reader skipped.
    pub fn apply_item(&mut self, segment: usize, item: Item) {
        match item {
            Item::Entry(entry, size) => self.apply(segment, entry, size),
            Item::Skipped(skipped) => self.skipped(segment, skipped),
        }
    }

    /// Records an entry the cpio reader skipped as `do_header` does.
    pub fn skipped(&mut self, segment: usize, skipped: Skipped) {
        let kind = match skipped.reason {
            SkipReason::NameTooLong { size } => IssueKind::NameTooLong {
                size,
                offset: skipped.offset,
            },
            SkipReason::TargetTooLong { size } => IssueKind::TargetTooLong {
                size,
                offset: skipped.offset,
            },
        };
        self.issue(segment, &skipped.name, kind);
    }

    /// Resolves a directory path the way the kernel's path walk does (symlinks followed,
    /// absolute targets from the root, `..` stopping at the root). Returns the canonical key of
    /// the directory (or why the kernel cannot reach it), and notes of symlinks on the way that
    /// lead outside the tree, kept even when the walk then fails: a naive extractor would still
    /// have followed them.
    pub fn resolve_dir(&self, comps: &[&[u8]]) -> (Result<Vec<u8>, IssueKind>, Vec<IssueKind>) {
        let mut notes = Vec::new();
        let result = self.walk_dir(comps, &mut notes);
        (result, notes)
    }

    /// Follows `p` through the tree's symlinks, as the kernel's path walk would (40 at most),
    /// to a node that is not a symlink; returns it with its canonical key. None when the path
    /// is missing, dangling, or loops.
    pub fn lookup(&self, p: &[u8]) -> Option<(Vec<u8>, &Node)> {
        match self.walk(p).end {
            WalkEnd::Found(key, node) => Some((key, node)),
            WalkEnd::Missing(_) | WalkEnd::Loop(_) => None,
        }
    }

    /// Follows `p` through the tree's symlinks as [`Tree::lookup`] does, and says how it went:
    /// the symlinks followed, in order (the first is the node at `p` itself when `p` is a
    /// symlink), and where the walk ended.
    pub fn walk(&self, p: &[u8]) -> Walk<'_> {
        let mut current = path::normalize(p);
        let mut links: Vec<(Vec<u8>, &Node)> = Vec::new();
        loop {
            let comps = path::components(&current);
            let Some((last, parents)) = comps.split_last() else {
                return Walk::new(links, WalkEnd::Missing(current));
            };
            let Ok(dir) = self.resolve_dir(parents).0 else {
                return Walk::new(links, WalkEnd::Missing(current));
            };
            let key = path::join(&dir, last);
            let Some(node) = self.get(&key) else {
                return Walk::new(links, WalkEnd::Missing(current));
            };
            if node.kind != Kind::Symlink {
                return Walk::new(links, WalkEnd::Found(key, node));
            }
            // The kernel gives up after MAX_SYMLINKS; a link met twice never ends.
            if links.len() + 1 >= MAX_SYMLINKS || links.iter().any(|(k, _)| *k == key) {
                return Walk::new(links, WalkEnd::Loop(key));
            }
            let next = if node.target.first() == Some(&b'/') {
                path::normalize(&node.target)
            } else {
                path::join(&dir, &node.target)
            };
            links.push((key, node));
            current = next;
        }
    }

    fn walk_dir(&self, comps: &[&[u8]], notes: &mut Vec<IssueKind>) -> Result<Vec<u8>, IssueKind> {
        let mut cur: Vec<Vec<u8>> = Vec::new();
        let mut queue: VecDeque<Vec<u8>> = comps.iter().map(|c| c.to_vec()).collect();
        let mut followed = 0;
        while let Some(comp) = queue.pop_front() {
            if comp == b"." {
                continue;
            }
            if comp == b".." {
                cur.pop();
                continue;
            }
            let key = join_all(&cur, &comp);
            let Some(node) = self.get(&key) else {
                return Err(IssueKind::ParentMissing { dir: key });
            };
            match node.kind {
                Kind::Directory => cur.push(comp),
                Kind::Symlink => {
                    followed += 1;
                    if followed > MAX_SYMLINKS {
                        return Err(IssueKind::SymlinkLoop);
                    }
                    let target = &node.target;
                    if target.first() == Some(&b'/') || climbs_above_root(cur.len(), target) {
                        notes.push(IssueKind::SymlinkOutside {
                            link: key.clone(),
                            target: target.clone(),
                        });
                    }
                    if target.first() == Some(&b'/') {
                        cur.clear();
                    }
                    for part in target.split(|&b| b == b'/').rev() {
                        if !part.is_empty() {
                            queue.push_front(part.to_vec());
                        }
                    }
                }
                _ => return Err(IssueKind::NotADirectory { what: key }),
            }
        }
        Ok(if cur.is_empty() {
            b".".to_vec()
        } else {
            cur.join(&b'/')
        })
    }

    /// Applies one entry of segment `segment`, as the kernel would. `size` is the entry's data
    /// length (its data may be empty when the tree keeps sizes only).
    pub fn apply(&mut self, segment: usize, entry: Entry, size: u64) {
        let kind = entry.kind();
        if size > 0 && !matches!(kind, Kind::Regular | Kind::Symlink) {
            // do_header reads the name only of regular files and data-less entries.
            self.issue(segment, entry.c_name(), IssueKind::DataOnNonFile { size });
            return;
        }
        if entry.is_trailer() {
            // The kernel forgets hardlinks at each trailer (free_hash).
            self.links.clear();
            return;
        }
        // The kernel sees the name as a C string: up to its first NUL.
        let raw = entry.c_name().to_vec();
        // do_name calls maybe_link -> find_link before it opens the file, so the first name of
        // a hardlink group is remembered even when creating it then fails: later members link()
        // to a name that does not exist and are skipped too.
        let first = if kind == Kind::Regular && entry.header.nlink >= 2 {
            self.find_link(&entry, &raw)
        } else {
            None
        };
        if let Some(u) = path::unsafe_name(&raw) {
            self.issue(segment, &raw, IssueKind::UnsafeName(u));
        }
        let comps = path::components(&raw);
        if let Some(long) = comps.iter().find(|c| c.len() > NAME_MAX) {
            let len = long.len();
            self.issue(segment, &raw, IssueKind::ComponentTooLong { len });
            return;
        }
        let Some((last, parents)) = comps.split_last() else {
            if kind == Kind::Directory {
                self.set_dir(b".".to_vec(), &entry, segment);
            }
            return;
        };
        if *last == b".." {
            self.issue(
                segment,
                &raw,
                IssueKind::NotADirectory { what: raw.clone() },
            );
            return;
        }
        let (resolved, notes) = self.resolve_dir(parents);
        for note in notes {
            self.issue(segment, &raw, note);
        }
        let dir = match resolved {
            Ok(dir) => dir,
            Err(kind) => {
                self.issue(segment, &raw, kind);
                return;
            }
        };
        let key = path::join(&dir, last);
        if !self.clean_path(&key, kind, segment, &raw) {
            return;
        }
        match kind {
            Kind::Regular => self.put_file(key, first, entry, size, segment, &raw),
            Kind::Directory => self.set_dir(key, &entry, segment),
            Kind::Symlink => {
                // do_symlink NUL-terminates the target; symlink() wants 1..PATH_MAX-1 bytes.
                let target = match entry.data.iter().position(|&b| b == 0) {
                    Some(end) => entry.data[..end].to_vec(),
                    None => entry.data.clone(),
                };
                if target.is_empty() || target.len() >= cpio::MAX_NAME_SIZE as usize {
                    let len = target.len();
                    self.issue(segment, &raw, IssueKind::BadSymlinkTarget { len });
                    return;
                }
                self.put(node_from(key, &entry, segment, target, None));
            }
            Kind::CharDevice | Kind::BlockDevice | Kind::Fifo | Kind::Socket => {
                self.put(node_from(key, &entry, segment, Vec::new(), None));
            }
            Kind::Unknown => self.issue(
                segment,
                &raw,
                IssueKind::UnknownType {
                    mode: entry.header.mode,
                },
            ),
        }
    }

    /// The kernel's `clean_path`: an existing node of another type (any type, for symlinks) is
    /// removed first; a directory only when empty. Returns whether the entry can be created.
    fn clean_path(&mut self, key: &[u8], kind: Kind, segment: usize, raw: &[u8]) -> bool {
        let Some(existing) = self.get(key) else {
            return true;
        };
        let existing_kind = existing.kind;
        if existing_kind == kind && kind != Kind::Symlink {
            return true;
        }
        if existing_kind == Kind::Directory {
            if self.children.get(key).copied().unwrap_or(0) > 0 {
                self.issue(segment, raw, IssueKind::DirectoryNotEmpty);
                return false;
            }
        } else if existing_kind == Kind::Symlink && kind == Kind::Directory {
            let target = existing.target.clone();
            if self.resolve_dir(&path::components(key)).0.is_ok() {
                self.issue(segment, raw, IssueKind::ReplacedSymlink { target });
            }
        }
        self.remove(key);
        true
    }

    /// The kernel's `find_link`: the name stored first for this entry's hardlink key, or
    /// `None` after remembering `raw` as the first name.
    fn find_link(&mut self, entry: &Entry, raw: &[u8]) -> Option<Vec<u8>> {
        let h = &entry.header;
        let link_key = (h.ino, h.dev_major, h.dev_minor, h.mode & 0o170000);
        match self.links.get(&link_key) {
            Some(first) => Some(first.clone()),
            None => {
                self.links.insert(link_key, raw.to_vec());
                None
            }
        }
    }

    /// The node a stored name reaches now, its last component not followed (`kern_path(old,
    /// 0)` in `init_link`): the name is looked up when linked, not when remembered.
    fn lookup_name(&self, raw: &[u8]) -> Option<&Node> {
        let comps = path::components(raw);
        if comps.iter().any(|c| c.len() > NAME_MAX) {
            return None;
        }
        let (last, parents) = comps.split_last()?;
        let dir = self.resolve_dir(parents).0.ok()?;
        self.get(&path::join(&dir, last))
    }

    /// A regular-file entry after `clean_path`: `maybe_link` (with `first`, the name
    /// `find_link` returned), then the open in `do_name`.
    fn put_file(
        &mut self,
        key: Vec<u8>,
        first: Option<Vec<u8>>,
        entry: Entry,
        size: u64,
        segment: usize,
        raw: &[u8],
    ) {
        if let Some(first) = first {
            // maybe_link: clean_path(name, 0) unlinks whatever is at the name, then
            // link(first, name), which fails when the first name is not a regular file (never
            // created, or replaced since).
            self.remove(&key);
            let first_inode = self
                .lookup_name(&first)
                .filter(|n| n.kind == Kind::Regular)
                .and_then(|n| n.inode);
            let Some(inode) = first_inode else {
                self.issue(segment, raw, IssueKind::LinkTargetGone { first });
                return;
            };
            // Opened without O_TRUNC: content changes only when this name carries data
            // (ftruncate to its length, then the write).
            if size > 0 {
                self.set_data(inode, entry.data.clone(), size);
            }
            self.put(node_from(key, &entry, segment, Vec::new(), Some(inode)));
            self.set_inode_attrs(inode, &entry, segment);
            return;
        }
        // O_CREAT|O_TRUNC: an existing regular file keeps its inode, so every hardlink of it
        // gets the new content.
        let inode = match self.get(&key).and_then(|n| n.inode) {
            Some(inode) => inode,
            None => self.new_inode(),
        };
        self.set_data(inode, entry.data.clone(), size);
        self.put(node_from(key, &entry, segment, Vec::new(), Some(inode)));
        self.set_inode_attrs(inode, &entry, segment);
    }

    fn new_inode(&mut self) -> usize {
        self.inodes.push(Inode::default());
        self.members.push(Vec::new());
        self.inodes.len() - 1
    }

    /// fchown, fchmod and the closing utime act on the inode: every name of it shows them.
    fn set_inode_attrs(&mut self, inode: usize, entry: &Entry, segment: usize) {
        let h = &entry.header;
        for &m in &self.members[inode] {
            let node = &mut self.nodes[m];
            node.mode = h.mode;
            node.uid = h.uid;
            node.gid = h.gid;
            node.mtime = h.mtime;
            node.segment = segment;
        }
    }

    fn set_data(&mut self, inode: usize, data: Vec<u8>, size: u64) {
        let slot = &mut self.inodes[inode];
        slot.size = size;
        match self.policy {
            DataPolicy::SizeOnly => {
                slot.data = None;
                slot.digest = None;
            }
            DataPolicy::Digest { keep_up_to } => {
                slot.digest = Some(Sha256::digest(&data).into());
                slot.data = (size <= keep_up_to).then_some(data);
            }
            DataPolicy::Full => {
                slot.digest = None;
                slot.data = Some(data);
            }
        }
    }

    fn set_dir(&mut self, key: Vec<u8>, entry: &Entry, segment: usize) {
        self.put(node_from(key, entry, segment, Vec::new(), None));
    }

    fn put(&mut self, node: Node) {
        let inode = node.inode;
        let at = match self.index.get(&node.path).copied() {
            Some(i) => {
                if self.nodes[i].live {
                    self.detach(i);
                } else {
                    *self
                        .children
                        .entry(path::parent(&node.path).to_vec())
                        .or_default() += 1;
                }
                self.nodes[i] = node;
                i
            }
            None => {
                if node.path != b"." {
                    *self
                        .children
                        .entry(path::parent(&node.path).to_vec())
                        .or_default() += 1;
                }
                self.index.insert(node.path.clone(), self.nodes.len());
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        if let Some(inode) = inode {
            self.members[inode].push(at);
        }
    }

    /// Forgets node `i` as a name of its inode.
    fn detach(&mut self, i: usize) {
        if let Some(inode) = self.nodes[i].inode {
            self.members[inode].retain(|&m| m != i);
        }
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some(&i) = self.index.get(key) {
            if self.nodes[i].live {
                self.detach(i);
                self.nodes[i].live = false;
                if let Some(c) = self.children.get_mut(path::parent(key)) {
                    *c = c.saturating_sub(1);
                }
            }
        }
    }

    fn issue(&mut self, segment: usize, name: &[u8], kind: IssueKind) {
        self.issues.push(Issue {
            segment,
            name: name.to_vec(),
            kind,
        });
    }
}

fn node_from(
    key: Vec<u8>,
    entry: &Entry,
    segment: usize,
    target: Vec<u8>,
    inode: Option<usize>,
) -> Node {
    let h = &entry.header;
    Node {
        path: key,
        kind: entry.kind(),
        mode: h.mode,
        uid: h.uid,
        gid: h.gid,
        mtime: h.mtime,
        rdev: (h.rdev_major, h.rdev_minor),
        target,
        inode,
        segment,
        live: true,
    }
}

fn join_all(cur: &[Vec<u8>], comp: &[u8]) -> Vec<u8> {
    let mut key = cur.join(&b'/');
    if !key.is_empty() {
        key.push(b'/');
    }
    key.extend_from_slice(comp);
    key
}

/// Whether a relative symlink target, followed from a directory `depth` levels below the root,
/// climbs above the root.
fn climbs_above_root(depth: usize, target: &[u8]) -> bool {
    let mut depth = depth as i64;
    for part in target.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, mode: u32, data: &[u8]) -> Entry {
        let mut e = Entry::new(name, mode, data.to_vec());
        e.header.nlink = 1;
        e
    }
    fn dir(name: &str) -> Entry {
        entry(name, 0o040755, b"")
    }
    fn file(name: &str, data: &str) -> Entry {
        entry(name, 0o100644, data.as_bytes())
    }
    fn link(name: &str, target: &str) -> Entry {
        entry(name, 0o120777, target.as_bytes())
    }
    fn build(entries: Vec<Entry>) -> Tree {
        let mut t = Tree::new(DataPolicy::Full);
        for e in entries {
            let len = e.data.len() as u64;
            t.apply(0, e, len);
        }
        t
    }
    fn content<'a>(t: &'a Tree, p: &str) -> Option<&'a [u8]> {
        t.get(p.as_bytes())
            .and_then(|n| t.inode(n))
            .and_then(|i| i.data.as_deref())
    }
    fn paths(t: &Tree) -> Vec<String> {
        t.nodes().map(|n| path::display(&n.path)).collect()
    }

    #[test]
    fn lookup_follows_symlinks_to_a_node_and_gives_up_on_loops() {
        let t = build(vec![
            dir("usr"),
            dir("usr/lib"),
            dir("usr/lib/systemd"),
            file("usr/lib/systemd/systemd", "ELF"),
            link("lib", "usr/lib"),
            link("init", "/lib/systemd/systemd"),
            link("dangling", "nowhere"),
            link("a", "b"),
            link("b", "a"),
        ]);
        let (key, node) = t.lookup(b"/init").unwrap();
        assert_eq!(key, b"usr/lib/systemd/systemd");
        assert_eq!(node.kind, Kind::Regular);
        assert_eq!(t.lookup(b"lib").unwrap().0, b"usr/lib");
        assert!(t.lookup(b"dangling").is_none());
        assert!(t.lookup(b"a").is_none());
        assert!(t.lookup(b"missing").is_none());
    }

    /// One walk reports its trail: the links followed, and found, missing or loop.
    #[test]
    fn walk_reports_the_links_it_followed_and_how_it_ended() {
        let t = build(vec![
            dir("usr"),
            dir("usr/lib"),
            dir("usr/lib/systemd"),
            file("usr/lib/systemd/systemd", "ELF"),
            link("lib", "usr/lib"),
            link("init", "/lib/systemd/systemd"),
            link("dangling", "nowhere"),
            link("a", "b"),
            link("b", "a"),
        ]);
        let keys =
            |w: &Walk| -> Vec<String> { w.links.iter().map(|(k, _)| path::display(k)).collect() };
        let w = t.walk(b"/init");
        assert_eq!(keys(&w), ["init"]);
        assert_eq!(
            w.first().map(|(k, n)| (k.to_vec(), n.kind)),
            Some((b"init".to_vec(), Kind::Symlink))
        );
        assert!(matches!(&w.end, WalkEnd::Found(k, _) if k == b"usr/lib/systemd/systemd"));
        let w = t.walk(b"dangling");
        assert_eq!(keys(&w), ["dangling"]);
        assert!(matches!(&w.end, WalkEnd::Missing(p) if p == b"nowhere"));
        let w = t.walk(b"a");
        assert_eq!(keys(&w), ["a", "b"]);
        assert!(matches!(&w.end, WalkEnd::Loop(k) if k == b"a"));
        let w = t.walk(b"missing");
        assert!(w.links.is_empty() && w.first().is_none());
        assert!(matches!(&w.end, WalkEnd::Missing(p) if p == b"missing"));
        let w = t.walk(b"usr/lib");
        assert_eq!(
            w.first().map(|(k, _)| k.to_vec()),
            Some(b"usr/lib".to_vec())
        );
    }

    #[test]
    fn later_entries_win_and_keep_first_position() {
        let t = build(vec![
            dir("."),
            file("./init", "old"),
            file("./b", "b"),
            file("init", "new"),
        ]);
        assert_eq!(content(&t, "init"), Some(&b"new"[..]));
        assert_eq!(paths(&t), [".", "init", "b"]);
    }

    #[test]
    fn merged_usr_additions_go_through_the_link() {
        let t = build(vec![
            dir("usr"),
            dir("usr/lib"),
            dir("usr/lib/modules"),
            link("lib", "usr/lib"),
            dir("lib/modules/6.1/extra"),
            file("lib/modules/6.1/extra/x.ko", "ko"),
        ]);
        // lib/modules/6.1 does not exist: the kernel cannot mkdir extra under it.
        assert!(t.get(b"usr/lib/modules/6.1/extra").is_none());
        assert!(matches!(
            t.issues()[0].kind,
            IssueKind::ParentMissing { .. }
        ));

        let t = build(vec![
            dir("usr"),
            dir("usr/lib"),
            link("lib", "usr/lib"),
            dir("lib/modules"),
            file("lib/modules/x.ko", "ko"),
        ]);
        assert_eq!(content(&t, "usr/lib/modules/x.ko"), Some(&b"ko"[..]));
        assert_eq!(t.get(b"lib").map(|n| n.kind), Some(Kind::Symlink));
        assert!(t.get(b"lib/modules").is_none());
        assert!(t.issues().is_empty(), "{:?}", t.issues());
    }

    #[test]
    fn directory_entry_replacing_a_dir_symlink_is_flagged() {
        let t = build(vec![
            dir("usr"),
            dir("usr/lib"),
            link("lib", "usr/lib"),
            dir("lib"),
        ]);
        assert_eq!(t.get(b"lib").map(|n| n.kind), Some(Kind::Directory));
        assert!(
            matches!(&t.issues()[0].kind, IssueKind::ReplacedSymlink { target } if target == b"usr/lib")
        );
    }

    #[test]
    fn kernel_drops_entries_without_parent_or_under_a_file() {
        let t = build(vec![file("a/b", "x"), file("f", "x"), file("f/g", "y")]);
        assert_eq!(paths(&t), ["f"]);
        assert!(matches!(&t.issues()[0].kind, IssueKind::ParentMissing { dir } if dir == b"a"));
        assert!(matches!(&t.issues()[1].kind, IssueKind::NotADirectory { what } if what == b"f"));
    }

    #[test]
    fn non_empty_directory_survives_a_file_entry() {
        let t = build(vec![dir("d"), file("d/x", "1"), file("d", "2")]);
        assert_eq!(t.get(b"d").map(|n| n.kind), Some(Kind::Directory));
        assert!(matches!(t.issues()[0].kind, IssueKind::DirectoryNotEmpty));
        let t = build(vec![dir("e"), file("e", "2")]);
        assert_eq!(t.get(b"e").map(|n| n.kind), Some(Kind::Regular));
    }

    #[test]
    fn hardlinks_share_content_until_trailer() {
        let mut a = file("a", "");
        a.header.nlink = 2;
        a.header.ino = 7;
        let mut b = file("b", "data");
        b.header.nlink = 2;
        b.header.ino = 7;
        let mut c = file("c", "other");
        c.header.nlink = 2;
        c.header.ino = 7;
        let t = build(vec![
            a,
            b,
            Entry {
                name: b"TRAILER!!!".to_vec(),
                ..file("x", "")
            },
            c,
        ]);
        assert_eq!(content(&t, "a"), Some(&b"data"[..]));
        assert_eq!(
            t.get(b"a").and_then(|n| n.inode),
            t.get(b"b").and_then(|n| n.inode)
        );
        assert_ne!(
            t.get(b"a").and_then(|n| n.inode),
            t.get(b"c").and_then(|n| n.inode)
        );
        assert_eq!(t.link_counts().iter().filter(|&&c| c == 2).count(), 1);
    }

    #[test]
    fn symlinks_leading_outside_are_noted_and_resolved_inside() {
        let t = build(vec![
            dir("etc"),
            link("x", "/etc"),
            file("x/passwd", "p"),
            link("up", "../.."),
            file("up/etc/y", "q"),
        ]);
        assert_eq!(content(&t, "etc/passwd"), Some(&b"p"[..]));
        assert_eq!(content(&t, "etc/y"), Some(&b"q"[..]));
        let outside: Vec<_> = t.issues().iter().filter(|i| i.kind.is_unsafe()).collect();
        assert_eq!(outside.len(), 2, "{:?}", t.issues());
    }

    #[test]
    fn escaping_symlink_is_noted_even_when_its_target_is_missing() {
        let t = build(vec![link("link", "../outside"), file("link/evil", "x")]);
        assert!(
            t.issues().iter().any(|i| i.kind.is_unsafe()),
            "{:?}",
            t.issues()
        );
        assert!(t.get(b"outside/evil").is_none());
    }

    #[test]
    fn symlink_loops_end() {
        let t = build(vec![link("a", "b"), link("b", "a"), file("a/x", "1")]);
        assert!(matches!(t.issues()[0].kind, IssueKind::SymlinkLoop));
        assert_eq!(paths(&t), ["a", "b"]);
    }

    #[test]
    fn unsafe_names_are_flagged() {
        let t = build(vec![dir("a"), file("a/../../evil", "x"), file("/abs", "y")]);
        let kinds: Vec<_> = t.issues().iter().map(|i| i.kind.clone()).collect();
        assert!(kinds.contains(&IssueKind::UnsafeName(Unsafe::DotDot)));
        assert!(kinds.contains(&IssueKind::UnsafeName(Unsafe::Absolute)));
    }

    fn linked(name: &str, ino: u32, nlink: u32, data: &str) -> Entry {
        let mut e = file(name, data);
        e.header.ino = ino;
        e.header.nlink = nlink;
        e
    }
    fn apply_in(t: &mut Tree, segment: usize, e: Entry) {
        let len = e.data.len() as u64;
        t.apply(segment, e, len);
    }

    /// busybox as initramfs-tools stores it: one inode, data on the last name (GNU cpio).
    fn busybox() -> Tree {
        build(vec![
            dir("usr"),
            dir("usr/bin"),
            dir("usr/sbin"),
            linked("usr/bin/busybox", 9, 3, ""),
            linked("usr/bin/sh", 9, 3, ""),
            linked("usr/sbin/ip", 9, 3, "BUSYBOX"),
        ])
    }

    #[test]
    fn a_file_written_over_a_hardlinked_name_changes_every_name() {
        let mut t = busybox();
        assert_eq!(content(&t, "usr/bin/sh"), Some(&b"BUSYBOX"[..]));
        // A later segment's usr/sbin/ip, nlink 1: do_name opens the existing name with O_TRUNC
        // and writes through its inode, then fchown, fchmod and utime act on that inode.
        let mut ip = file("usr/sbin/ip", "IP");
        (
            ip.header.mode,
            ip.header.uid,
            ip.header.gid,
            ip.header.mtime,
        ) = (0o100700, 5, 6, 77);
        apply_in(&mut t, 1, ip);
        for p in ["usr/bin/busybox", "usr/bin/sh", "usr/sbin/ip"] {
            assert_eq!(content(&t, p), Some(&b"IP"[..]), "{p}");
            let n = t.get(p.as_bytes()).unwrap();
            assert_eq!(
                (n.mode, n.uid, n.gid, n.mtime, n.segment),
                (0o100700, 5, 6, 77, 1),
                "{p}"
            );
        }
        assert_eq!(t.link_counts().iter().max(), Some(&3));
    }

    #[test]
    fn a_hardlink_entry_unlinks_what_is_at_its_name_and_links_the_first_name() {
        // b is a hardlink of c; then a new group (ino 4) lands on b: maybe_link's
        // clean_path(name, 0) unlinks b, so c keeps its content.
        let mut t = build(vec![linked("c", 3, 2, ""), linked("b", 3, 2, "old")]);
        apply_in(&mut t, 0, Entry::trailer());
        apply_in(&mut t, 1, linked("a", 4, 2, ""));
        apply_in(&mut t, 1, linked("b", 4, 2, "new"));
        assert_eq!(content(&t, "a"), Some(&b"new"[..]));
        assert_eq!(content(&t, "b"), Some(&b"new"[..]));
        assert_eq!(content(&t, "c"), Some(&b"old"[..]));
        assert_eq!(t.other_links(b"b"), [&b"a"[..]]);
        assert!(t.other_links(b"c").is_empty());
    }

    #[test]
    fn a_data_less_hardlink_keeps_content_but_sets_the_inode_attributes() {
        let mut t = build(vec![linked("a", 3, 2, "data")]);
        let mut b = linked("b", 3, 2, "");
        b.header.mode = 0o100750;
        apply_in(&mut t, 0, b);
        assert_eq!(content(&t, "b"), Some(&b"data"[..]));
        assert_eq!(t.get(b"a").unwrap().mode, 0o100750);
    }

    #[test]
    fn a_hardlink_whose_first_name_is_gone_is_skipped_like_a_failed_link() {
        let mut t = build(vec![
            linked("a", 3, 2, ""),
            link("a", "elsewhere"),
            file("b", "x"),
        ]);
        apply_in(&mut t, 0, linked("b", 3, 2, "data"));
        // clean_path(b, 0) removed b, then link(a, b) found no file to link.
        assert!(t.get(b"b").is_none());
        assert!(
            matches!(&t.issues()[0].kind, IssueKind::LinkTargetGone { first } if first == b"a")
        );
    }

    #[test]
    fn a_hardlink_group_whose_first_entry_fails_is_not_created_at_all() {
        // find_link remembers "gone/a" before the open fails; "b" and "c" link() to it and fail.
        let t = build(vec![
            dir("d"),
            linked("gone/a", 5, 3, ""),
            linked("d/b", 5, 3, ""),
            linked("d/c", 5, 3, "data"),
        ]);
        assert_eq!(paths(&t), ["d"]);
        let kinds: Vec<_> = t.issues().iter().map(|i| i.kind.clone()).collect();
        let gone = IssueKind::LinkTargetGone {
            first: b"gone/a".to_vec(),
        };
        assert_eq!(
            kinds,
            [
                IssueKind::ParentMissing {
                    dir: b"gone".to_vec()
                },
                gone.clone(),
                gone
            ]
        );

        // The same when the first entry is refused for a non-empty directory in its way, or a
        // too-long name; the name is looked up when linked, so a parent made in between does
        // not help.
        let long = "n".repeat(256);
        let t = build(vec![
            dir("x"),
            file("x/y", "1"),
            linked("x", 6, 2, ""),
            linked("z", 6, 2, "data"),
            linked(&long, 7, 2, ""),
            linked("w", 7, 2, "data"),
            linked("late/a", 8, 2, ""),
            dir("late"),
            linked("v", 8, 2, "data"),
        ]);
        assert_eq!(paths(&t), ["x", "x/y", "late"]);
        assert_eq!(t.issues().len(), 6, "{:?}", t.issues());
    }

    #[test]
    fn the_first_name_of_a_group_is_looked_up_through_symlinks_when_linked() {
        let t = build(vec![
            dir("usr"),
            dir("usr/lib"),
            link("lib", "usr/lib"),
            linked("lib/a", 5, 2, ""),
            linked("b", 5, 2, "data"),
        ]);
        assert_eq!(content(&t, "usr/lib/a"), Some(&b"data"[..]));
        assert_eq!(t.other_links(b"b"), [&b"usr/lib/a"[..]]);
        assert!(t.issues().is_empty(), "{:?}", t.issues());
    }

    #[test]
    fn unlink_breaks_one_name_only() {
        let mut t = busybox();
        assert_eq!(t.other_links(b"usr/bin/sh").len(), 2);
        assert!(t.unlink(b"usr/sbin/ip"));
        apply_in(&mut t, 1, file("usr/sbin/ip", "IP"));
        assert_eq!(content(&t, "usr/bin/sh"), Some(&b"BUSYBOX"[..]));
        assert_eq!(content(&t, "usr/sbin/ip"), Some(&b"IP"[..]));
        assert_eq!(t.other_links(b"usr/bin/sh"), [&b"usr/bin/busybox"[..]]);
        assert!(!t.unlink(b"usr"), "a non-empty directory stays");
    }

    #[test]
    fn symlink_targets_symlink_refuses_only_remove_the_old_name() {
        let long = "t".repeat(4096);
        let t = build(vec![
            file("a", "1"),
            link("a", ""),
            file("b", "2"),
            link("b", &long),
            link("c", "x\0junk"),
        ]);
        assert!(t.get(b"a").is_none() && t.get(b"b").is_none());
        assert_eq!(t.get(b"c").unwrap().target, b"x");
        let lens: Vec<_> = t.issues().iter().map(|i| i.kind.clone()).collect();
        assert_eq!(
            lens,
            [
                IssueKind::BadSymlinkTarget { len: 0 },
                IssueKind::BadSymlinkTarget { len: 4096 }
            ]
        );
        let t = build(vec![link("d", &long[..4095])]);
        assert_eq!(t.get(b"d").unwrap().target.len(), 4095);
    }

    #[test]
    fn entries_the_kernel_skips_unread_are_skipped() {
        let mut d = dir("d");
        d.data = b"xx".to_vec();
        let long = "n".repeat(256);
        let t = build(vec![d, file(&long, "1"), file(&long[..255], "2")]);
        assert_eq!(paths(&t), [&long[..255]]);
        assert_eq!(t.issues()[0].kind, IssueKind::DataOnNonFile { size: 2 });
        assert_eq!(t.issues()[1].kind, IssueKind::ComponentTooLong { len: 256 });
    }
}
