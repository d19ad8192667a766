//! Reading the base's files as the placement sees them: an entry, its content, its lines.

use crate::initrd::cpio::Kind;
use crate::initrd::path;
use crate::initrd::tree::{Node, Tree};
use crate::patch::flavor::FlavorError;

/// The canonical key of directory `p`, through symlinks.
pub(crate) fn dir_key(tree: &Tree, p: &[u8]) -> Option<String> {
    tree.lookup(p)
        .filter(|(_, n)| n.kind == Kind::Directory)
        .map(|(key, _)| path::display(&key))
}

pub(crate) fn is_file(tree: &Tree, p: &[u8]) -> bool {
    tree.lookup(p).is_some_and(|(_, n)| n.kind == Kind::Regular)
}

/// The node at `p` itself (its parents resolved, a final symlink not followed), with its key.
pub(crate) fn entry_at<'t>(tree: &'t Tree, p: &[u8]) -> Option<(Vec<u8>, &'t Node)> {
    tree.walk(p).first().map(|(key, node)| (key.to_vec(), node))
}

pub(crate) fn file_data<'t>(
    tree: &'t Tree,
    key: &[u8],
    node: &Node,
) -> Result<&'t [u8], FlavorError> {
    tree.inode(node)
        .and_then(|i| i.data.as_deref())
        .ok_or_else(|| FlavorError::NoData {
            path: path::display(key),
        })
}

/// Lines without their `\n` (a final line without one counts too).
pub(crate) fn split_lines(text: &[u8]) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    if text.ends_with(b"\n") || text.is_empty() {
        lines.pop();
    }
    lines
}

pub(crate) fn trim(line: &[u8]) -> &[u8] {
    line.trim_ascii()
}

pub(crate) fn has_line(text: &[u8], wanted: &str) -> bool {
    split_lines(text)
        .iter()
        .any(|l| trim(l) == wanted.as_bytes())
}

pub(crate) fn contains(text: &[u8], needle: &[u8]) -> bool {
    text.windows(needle.len()).any(|w| w == needle)
}
