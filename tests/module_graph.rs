//! No import cycle between the top-level modules of `src/` (docs/ARCHITECTURE.md: data flows one
//! way; `host`, `fsutil`, `interrupt`, `shell`, `names` sit below every stage). Every `crate::`
//! path in a file (a `use crate::…` line, grouped `use crate::{a, b::c}`, or an inline
//! `crate::x::f()`) is an edge from the file's top-level module to the one it names. Comments are
//! skipped, so an intra-doc link is not an edge. Test code counts: a test that imports a later
//! stage ties the two modules together as much as library code does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where an edge was seen first: a file and a 1-based line.
type Site = (PathBuf, usize);
/// from → to → first site.
type Graph = BTreeMap<String, BTreeMap<String, Site>>;

/// Cycles tolerated for now, each a cycle's modules, sorted. None: the graph is acyclic. An entry
/// here would be a debt with its reason; the test fails if a listed cycle is gone, so the entry
/// is deleted with the last edge that made it.
const KNOWN_CYCLES: &[&[&str]] = &[];

/// The top-level module a file under `src/` belongs to; `None` for the crate roots.
fn top_module(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// `text` with `//` comments (line, doc) blanked, lines kept. Block comments are rare here and
/// string literals holding `//` are left alone only approximately: a `crate::` inside a string
/// literal would count, which keeps the test on the strict side.
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The top-level module names `text` refers to through `crate::`, each with its 1-based line.
fn crate_refs(text: &str) -> Vec<(String, usize)> {
    let text = strip_comments(text);
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("crate::") {
        let at = from + i;
        from = at + "crate::".len();
        // `$crate::` and `bootrig_crate::` are not this crate's root.
        if text[..at].ends_with(|c: char| is_ident(c) || c == '$') {
            continue;
        }
        let line = text[..at].matches('\n').count() + 1;
        let rest = &text[from..];
        if let Some(group) = rest.strip_prefix('{') {
            for name in group_heads(group) {
                out.push((name, line));
            }
        } else {
            let name: String = rest.chars().take_while(|&c| is_ident(c)).collect();
            if !name.is_empty() {
                out.push((name, line));
            }
        }
    }
    out
}

/// The first identifier of each top-level item in a `{…}` group (text after the `{`).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut expecting = true;
    let mut current = String::new();
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => expecting = true,
            c if expecting && depth == 0 && is_ident(c) => current.push(c),
            _ if expecting && !current.is_empty() => {
                heads.push(std::mem::take(&mut current));
                expecting = false;
            }
            _ => {}
        }
    }
    if !current.is_empty() {
        heads.push(current);
    }
    heads.retain(|h| h != "self");
    heads
}

/// The graph of `crate::` references between top-level modules of the `.rs` files under `src`.
fn graph_of(src: &Path) -> Graph {
    let mut graph = Graph::new();
    let mut stack = vec![src.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap();
            let Some(from) = top_module(rel) else {
                continue;
            };
            let text = std::fs::read_to_string(&path).unwrap();
            for (to, line) in crate_refs(&text) {
                if to != from {
                    let edges = graph.entry(from.clone()).or_default();
                    edges.entry(to).or_insert_with(|| (rel.to_owned(), line));
                }
            }
        }
    }
    graph
}

/// The strongly connected components with more than one module (Tarjan), each sorted.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Tarjan<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, v: &'g str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flat_map(|e| e.keys()) {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.found.sort();
    t.found
}

/// A cycle as the user must read it: its modules and each edge inside it with one site.
fn describe(graph: &Graph, cycle: &[String]) -> String {
    let mut text = format!("import cycle between {}:", cycle.join(", "));
    for from in cycle {
        for (to, (file, line)) in graph.get(from).into_iter().flatten() {
            if cycle.contains(to) {
                text.push_str(&format!(
                    "\n  {from} -> {to}  (src/{}:{line})",
                    file.display()
                ));
            }
        }
    }
    text
}

/// The failures for `graph`: unknown cycles, and known ones that are gone.
fn check(graph: &Graph, known: &[&[&str]]) -> Vec<String> {
    let found = cycles(graph);
    let mut problems: Vec<String> = found
        .iter()
        .filter(|c| !known.iter().any(|k| k.iter().eq(c.iter())))
        .map(|c| describe(graph, c))
        .collect();
    for k in known {
        if !found.iter().any(|c| k.iter().eq(c.iter())) {
            problems.push(format!(
                "the known cycle {k:?} is gone: remove it from KNOWN_CYCLES in tests/module_graph.rs"
            ));
        }
    }
    problems
}

#[test]
fn no_new_import_cycle_between_top_level_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph_of(&src);
    // The scan found the crate: fsutil uses interrupt, run uses nearly everything.
    assert!(graph["fsutil"].contains_key("interrupt"), "{graph:?}");
    assert!(graph["run"].len() > 5, "{graph:?}");
    let problems = check(&graph, KNOWN_CYCLES);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_bottom_modules_import_no_stage() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph_of(&src);
    let bottom = ["host", "names", "shell"];
    for module in bottom {
        let imports: Vec<&String> = graph
            .get(module)
            .into_iter()
            .flat_map(|e| e.keys())
            .collect();
        assert!(
            imports.iter().all(|m| bottom.contains(&m.as_str())),
            "{module} imports {imports:?}"
        );
    }
}

#[test]
fn references_are_read_in_every_form() {
    let text = "use crate::fsutil::{a, b};\n\
                // use crate::commented::x;\n\
                /// [`crate::doclink::y`]\n\
                use crate::{\n    net::addr::{ClientId, MacAddr},\n    shell,\n    self,\n};\n\
                fn f() { crate::qemu::process::kill(); let _ = $crate::m; }\n\
                pub(crate) fn g() {}\n";
    let refs = crate_refs(text);
    assert_eq!(
        refs,
        vec![
            ("fsutil".to_owned(), 1),
            ("net".to_owned(), 4),
            ("shell".to_owned(), 4),
            ("qemu".to_owned(), 9),
        ]
    );
    assert_eq!(top_module(Path::new("net/addr.rs")), Some("net".into()));
    assert_eq!(top_module(Path::new("fsutil.rs")), Some("fsutil".into()));
    assert_eq!(top_module(Path::new("lib.rs")), None);
}

fn made_up(edges: &[(&str, &str, usize)]) -> Graph {
    let mut graph = Graph::new();
    for &(from, to, line) in edges {
        graph
            .entry(from.to_owned())
            .or_default()
            .insert(to.to_owned(), (PathBuf::from(format!("{from}.rs")), line));
    }
    graph
}

#[test]
fn the_checker_names_a_cycle_with_a_site_per_edge() {
    let graph = made_up(&[("a", "b", 3), ("b", "c", 7), ("c", "a", 9), ("c", "d", 1)]);
    assert_eq!(cycles(&graph), vec![vec!["a", "b", "c"]]);
    let problems = check(&graph, &[]);
    assert_eq!(problems.len(), 1);
    let text = &problems[0];
    assert!(text.starts_with("import cycle between a, b, c:"), "{text}");
    assert!(text.contains("a -> b  (src/a.rs:3)"), "{text}");
    assert!(text.contains("c -> a  (src/c.rs:9)"), "{text}");
    assert!(!text.contains("-> d"), "{text}");
    // Known, it passes; a known cycle that is gone is reported.
    assert!(check(&graph, &[&["a", "b", "c"]]).is_empty());
    let acyclic = made_up(&[("a", "b", 1), ("b", "c", 1), ("a", "c", 1)]);
    assert!(cycles(&acyclic).is_empty());
    assert!(check(&acyclic, &[&["a", "b", "c"]])[0].contains("is gone"));
}
