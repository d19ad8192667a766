//! Property tests of the archive engine: random trees of every entry kind survive
//! write → compress → read unchanged, and an overlay reads back as the original view overridden
//! by the additions, with the original bytes untouched.

use std::collections::HashMap;
use std::io::Write;

use bootrig::initrd::add::{add, AddMode, AddOptions, Addition};
use bootrig::initrd::codec::{self, Compression};
use bootrig::initrd::cpio::{Entry, Kind};
use bootrig::initrd::image::{read_tree, ReadOptions};
use bootrig::initrd::pack;
use bootrig::initrd::tree::{DataPolicy, Tree};
use proptest::prelude::*;

fn entry(name: Vec<u8>, mode: u32, data: Vec<u8>) -> Entry {
    let mut e = Entry::new(name, mode, data);
    e.header.nlink = 1;
    e
}

/// Component names, odd ones included: spaces, UTF-8, a high byte, a leading dash.
fn component() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-z]{1,8}".prop_map(|s| s.into_bytes()),
        Just(b"with space".to_vec()),
        Just("modül".as_bytes().to_vec()),
        Just(vec![b'x', 0xff, b'y']),
        Just(b"-dash".to_vec()),
        Just(b"TRAILER".to_vec()),
    ]
}

#[derive(Debug, Clone)]
enum Item {
    Dir(u32),
    File(u32, Vec<u8>),
    Symlink(Vec<u8>),
    Device(bool, u32, u32),
    Fifo,
    Hardlinks(usize, Vec<u8>),
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        (0u32..0o7777).prop_map(Item::Dir),
        ((0u32..0o7777), prop::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(m, d)| Item::File(m, d)),
        prop::collection::vec(1u8..=255, 1..40)
            .prop_map(|t| Item::Symlink(t.into_iter().filter(|&b| b != b'/').collect())),
        (any::<bool>(), 0u32..300, 0u32..300).prop_map(|(c, a, b)| Item::Device(c, a, b)),
        Just(Item::Fifo),
        (2usize..4, prop::collection::vec(any::<u8>(), 1..200))
            .prop_map(|(n, d)| Item::Hardlinks(n, d)),
    ]
}

/// A random archive: every item placed under an earlier directory (or the root).
fn archive_entries() -> impl Strategy<Value = Vec<Entry>> {
    (prop::collection::vec(
        (
            component(),
            item(),
            any::<prop::sample::Index>(),
            any::<u32>(),
            any::<(u16, u16)>(),
        ),
        1..40,
    ))
    .prop_map(|items| {
        let mut dirs: Vec<Vec<u8>> = vec![Vec::new()];
        let mut used = std::collections::HashSet::new();
        let mut entries = vec![entry(b".".to_vec(), 0o040755, Vec::new())];
        let mut ino = 1000;
        for (i, (name, item, parent, mtime, (uid, gid))) in items.into_iter().enumerate() {
            let parent = parent.get(&dirs).clone();
            let mut path = parent.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&name);
            path.extend_from_slice(format!("{i}").as_bytes());
            if !used.insert(path.clone()) {
                continue;
            }
            let mut push = |mut e: Entry| {
                e.header.mtime = mtime;
                e.header.uid = u32::from(uid);
                e.header.gid = u32::from(gid);
                entries.push(e);
            };
            match item {
                Item::Dir(m) => {
                    push(entry(path.clone(), 0o040000 | m | 0o700, Vec::new()));
                    dirs.push(path);
                }
                Item::File(m, d) => push(entry(path, 0o100000 | m, d)),
                Item::Symlink(t) => push(entry(
                    path,
                    0o120777,
                    if t.is_empty() { b"t".to_vec() } else { t },
                )),
                Item::Device(c, a, b) => {
                    let mut e = entry(path, if c { 0o020600 } else { 0o060600 }, Vec::new());
                    e.header.rdev_major = a;
                    e.header.rdev_minor = b;
                    push(e)
                }
                Item::Fifo => push(entry(path, 0o010644, Vec::new())),
                Item::Hardlinks(n, d) => {
                    ino += 1;
                    for k in 0..n {
                        let mut p = path.clone();
                        p.extend_from_slice(format!("-l{k}").as_bytes());
                        // GNU cpio style: the data travels with the last name.
                        let mut e =
                            entry(p, 0o100755, if k + 1 == n { d.clone() } else { Vec::new() });
                        e.header.nlink = n as u32;
                        e.header.ino = ino;
                        push(e);
                    }
                }
            }
        }
        entries
    })
}

type Snapshot = Vec<(
    String,
    Kind,
    u32,
    u32,
    u32,
    u32,
    (u32, u32),
    Vec<u8>,
    Vec<u8>,
    Option<String>,
)>;

/// Everything observable about a tree, hardlink groups named by their first path.
fn snapshot(t: &Tree) -> Snapshot {
    let mut first_of_inode: HashMap<usize, String> = HashMap::new();
    let counts = t.link_counts();
    t.nodes()
        .map(|n| {
            let p = String::from_utf8_lossy(&n.path).into_owned();
            let group = n
                .inode
                .filter(|&i| counts[i] > 1)
                .map(|i| first_of_inode.entry(i).or_insert_with(|| p.clone()).clone());
            let data = t.inode(n).and_then(|i| i.data.clone()).unwrap_or_default();
            (
                p,
                n.kind,
                n.mode,
                n.uid,
                n.gid,
                n.mtime,
                n.rdev,
                n.target.clone(),
                data,
                group,
            )
        })
        .collect()
}

fn tree_of(entries: &[Entry]) -> Tree {
    let mut t = Tree::new(DataPolicy::Full);
    for e in entries {
        t.apply(0, e.clone(), e.data.len() as u64);
    }
    t
}

fn image_bytes(entries: &[Entry], c: Compression) -> Vec<u8> {
    let archive = pack::archive(entries).unwrap();
    let mut out = Vec::new();
    let mut enc = codec::encoder(c, &mut out, None).unwrap();
    enc.write_all(&archive.bytes).unwrap();
    enc.finish().unwrap();
    out
}

fn writable() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Gzip),
        Just(Compression::Xz),
        Just(Compression::Zstd),
        Just(Compression::Lz4),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_trees_round_trip(entries in archive_entries(), c in writable()) {
        let original = tree_of(&entries);
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("img");
        std::fs::write(&img, image_bytes(&pack::tree_entries(&original), c)).unwrap();
        let (back, segments) = read_tree(&img, DataPolicy::Full, &ReadOptions::default()).unwrap();
        prop_assert_eq!(segments.len(), 1);
        prop_assert_eq!(segments[0].compression, c);
        prop_assert_eq!(snapshot(&back), snapshot(&original));
    }

    #[test]
    fn overlay_reads_back_as_original_plus_additions(
        entries in archive_entries(),
        c in writable(),
        adds in prop::collection::vec((prop::collection::vec("[a-z]{1,5}", 1..4), prop::collection::vec(any::<u8>(), 0..100)), 1..6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("img");
        let original_bytes = image_bytes(&entries, c);
        std::fs::write(&img, &original_bytes).unwrap();
        let mut expected = tree_of(&entries);
        let mut additions = Vec::new();
        for (k, (comps, data)) in adds.iter().enumerate() {
            let src = dir.path().join(format!("src{k}"));
            std::fs::write(&src, data).unwrap();
            let dest = format!("/add/{}", comps.join("/"));
            additions.push(Addition { mode: Some(0o644), ..Addition::path(src, &dest) });
        }
        let out = dir.path().join("out");
        let opts = AddOptions { mode: AddMode::Overlay, dir_mtime: 0, ..AddOptions::default() };
        match add(&img, &out, &additions, &opts) {
            Ok(report) => {
                let out_bytes = std::fs::read(&out).unwrap();
                prop_assert_eq!(&out_bytes[..original_bytes.len()], &original_bytes[..]);
                prop_assert_eq!(std::fs::read(&img).unwrap(), original_bytes);
                // Expected: the original view with each addition applied as the kernel would.
                for (k, (comps, data)) in adds.iter().enumerate() {
                    let mut p = String::from("add");
                    let mut e = entry(p.clone().into_bytes(), 0o040755, Vec::new());
                    if expected.get(b"add").is_none() { expected.apply(1, e.clone(), 0); }
                    for (i, comp) in comps.iter().enumerate() {
                        p.push('/');
                        p.push_str(comp);
                        if i + 1 == comps.len() {
                            e = entry(p.clone().into_bytes(), 0o100644, data.clone());
                            let _ = k;
                            expected.apply(1, e.clone(), data.len() as u64);
                        } else if expected.get(p.as_bytes()).is_none() {
                            expected.apply(1, entry(p.clone().into_bytes(), 0o040755, Vec::new()), 0);
                        }
                    }
                }
                let (back, segments) = read_tree(&out, DataPolicy::Full, &ReadOptions::default()).unwrap();
                prop_assert_eq!(segments.len(), 2);
                prop_assert!(!report.written.is_empty());
                // Additions carry their source's mtime; compare everything but mtimes under add/.
                let strip = |s: Snapshot| s.into_iter().map(|mut n| { if n.0.starts_with("add") { n.5 = 0; } n }).collect::<Snapshot>();
                prop_assert_eq!(strip(snapshot(&back)), strip(snapshot(&expected)));
            }
            Err(e) => {
                // Only a destination that collides with an added file's path may fail (a file
                // where a later addition needs a directory).
                let msg = e.to_string();
                prop_assert!(msg.contains("not a directory") || msg.contains("is a directory"), "{}", msg);
                prop_assert!(!out.exists());
            }
        }
    }
}
