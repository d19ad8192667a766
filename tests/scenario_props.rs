//! Property test of scenario parsing: every shipped scenario under `scenarios/`, read from disk
//! and mutated (a key deleted, a key written twice, a value retyped, a value corrupted), is
//! either accepted or refused with a message that names the scenario file and a line:column
//! inside it. No mutation may panic. Each mutation is also loaded (`Scenario::load`) from a
//! copy beside the original, so its relative paths lead where the original's do and the path
//! refusals (a missing file, `/dev/zero` as an image) are checked the same way.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bootrig::scenario::{Scenario, ScenarioError};
use proptest::prelude::*;
use toml::{Table, Value};

/// A shipped scenario: its path, its text, and the text parsed as plain TOML.
struct Shipped {
    path: PathBuf,
    text: String,
    table: Table,
    keys: Vec<KeyPath>,
}

/// Every `.toml` under `scenarios/` but hidden ones, read once.
fn shipped() -> &'static [Shipped] {
    static SHIPPED: OnceLock<Vec<Shipped>> = OnceLock::new();
    SHIPPED.get_or_init(|| {
        let mut out = Vec::new();
        let mut dirs = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "toml")
                    // Not a copy `loaded_beside` is loading meanwhile (or left by a crash).
                    && !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
                {
                    let text = std::fs::read_to_string(&path).unwrap();
                    let table: Table = toml::from_str(&text).unwrap();
                    let mut keys = Vec::new();
                    key_paths(&table, &Vec::new(), &mut keys);
                    out.push(Shipped {
                        path,
                        text,
                        table,
                        keys,
                    });
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        assert!(out.len() >= 10, "the shipped scenarios under scenarios/");
        out
    })
}

/// A key of the document: the tables (and array elements) leading to it, then its name.
type KeyPath = Vec<Step>;

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// Every key path in `table`, depth first.
fn key_paths(table: &Table, prefix: &KeyPath, out: &mut Vec<KeyPath>) {
    for (k, v) in table {
        let mut path = prefix.clone();
        path.push(Step::Key(k.clone()));
        out.push(path.clone());
        value_paths(v, &path, out);
    }
}

fn value_paths(v: &Value, prefix: &KeyPath, out: &mut Vec<KeyPath>) {
    match v {
        Value::Table(t) => key_paths(t, prefix, out),
        Value::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                let mut path = prefix.clone();
                path.push(Step::Index(i));
                out.push(path.clone());
                value_paths(item, &path, out);
            }
        }
        _ => {}
    }
}

/// The value at `path`, and a way to change or remove it.
fn at_mut<'a>(table: &'a mut Table, path: &[Step]) -> Option<&'a mut Value> {
    let (first, rest) = path.split_first()?;
    let Step::Key(k) = first else { return None };
    let mut v = table.get_mut(k)?;
    for step in rest {
        v = match (step, v) {
            (Step::Key(k), Value::Table(t)) => t.get_mut(k)?,
            (Step::Index(i), Value::Array(a)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

fn remove(table: &mut Table, path: &[Step]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let container = if parent.is_empty() {
        None
    } else {
        at_mut(table, parent)
    };
    match (last, container) {
        (Step::Key(k), None) => {
            table.remove(k);
        }
        (Step::Key(k), Some(Value::Table(t))) => {
            t.remove(k);
        }
        (Step::Index(i), Some(Value::Array(a))) if *i < a.len() => {
            a.remove(*i);
        }
        _ => {}
    }
}

/// A value of another type than `old`, chosen by `pick`: string, integer, float, boolean,
/// array or table.
fn retyped(old: &Value, pick: u64) -> Value {
    let options = [
        Value::String("x".into()),
        Value::Integer(1),
        Value::Float(0.5),
        Value::Boolean(true),
        Value::Array(vec![old.clone()]),
        Value::Table(Table::from_iter([("x".to_string(), old.clone())])),
    ];
    let others: Vec<&Value> = options
        .iter()
        .filter(|v| v.type_str() != old.type_str())
        .collect();
    others[(pick % others.len() as u64) as usize].clone()
}

/// `old`, corrupted within its type, chosen by `pick`: the values a probe found refused badly
/// (or not at all) among them.
fn corrupted(old: &Value, pick: u64) -> Value {
    let options: Vec<Value> = match old {
        Value::String(s) => [
            String::new(),
            " ".into(),
            "0s".into(),
            "18446744073709551615s".into(),
            "../../etc".into(),
            "eth0; reboot".into(),
            "/dev/zero".into(),
            "(".into(),
            "ff".into(),
            "zz:zz".into(),
            "\u{0}".into(),
            "x".repeat(300),
            format!("{s}{s}x"),
            format!("{s} "),
            s.chars().rev().collect(),
        ]
        .into_iter()
        .map(Value::String)
        .collect(),
        Value::Integer(n) => [0, -1, i64::MAX, i64::MIN, n.wrapping_mul(1000)]
            .into_iter()
            .map(Value::Integer)
            .collect(),
        Value::Boolean(b) => vec![Value::Boolean(!b)],
        Value::Array(a) => vec![
            Value::Array(vec![]),
            Value::Array(a.iter().chain(a).chain(a).cloned().collect()),
            Value::Array(a.iter().rev().cloned().collect()),
        ],
        Value::Table(_) => vec![Value::Table(Table::new())],
        other => vec![other.clone()],
    };
    options[(pick % options.len() as u64) as usize].clone()
}

/// `text` with the `n`th `key = value` line written twice (a duplicate key).
fn duplicate_line(text: &str, n: u64) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let keyed: Vec<usize> = (0..lines.len())
        .filter(|&i| {
            let l = lines[i].trim_start();
            !l.starts_with('#') && !l.starts_with('[') && l.contains('=')
        })
        .collect();
    let i = *keyed.get((n % keyed.len().max(1) as u64) as usize)?;
    let mut out: Vec<&str> = lines[..=i].to_vec();
    out.push(lines[i]);
    out.extend(&lines[i + 1..]);
    Some(out.join("\n") + "\n")
}

/// The mutated text, or None when the mutation does not apply: `op` 0 deletes a key, 1 writes
/// one twice, 2 retypes a value, 3 corrupts one.
fn mutate(scenario: &Shipped, op: u8, which: u64, pick: u64) -> Option<String> {
    if op == 1 {
        return duplicate_line(&scenario.text, which);
    }
    let path = scenario
        .keys
        .get((which % scenario.keys.len() as u64) as usize)?;
    let mut table = scenario.table.clone();
    match op {
        0 => remove(&mut table, path),
        2 => {
            let v = at_mut(&mut table, path)?;
            *v = retyped(v, pick);
        }
        _ => {
            let v = at_mut(&mut table, path)?;
            *v = corrupted(v, pick);
        }
    }
    toml::to_string(&table).ok()
}

/// The refusal names the file and a line:column within the text.
fn assert_placed(message: &str, file: &Path, text: &str) {
    let rest = message
        .strip_prefix(&format!("{}:", file.display()))
        .unwrap_or_else(|| panic!("no file name: {message}\n{text}"));
    let mut parts = rest.splitn(3, ':');
    let line: usize = parts
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("no line: {message}\n{text}"));
    let column: usize = parts
        .next()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no column: {message}\n{text}"));
    let lines = text.lines().count() + 1;
    assert!(
        (1..=lines).contains(&line) && column >= 1,
        "{line}:{column} is outside the text ({lines} lines): {message}\n{text}"
    );
}

/// `text` loaded from a file beside `s` (a temporary copy, removed after); Ok, or the refusal
/// with the copy's path. Every refusal must be placed, each path's of a path refusal too.
fn loaded_beside(s: &Shipped, text: &str) -> Result<(), String> {
    let dir = s
        .path
        .parent()
        .expect("a shipped scenario is in scenarios/");
    let mut copy = tempfile::Builder::new()
        .prefix(".props-")
        .suffix(".toml")
        .tempfile_in(dir)
        .unwrap();
    std::io::Write::write_all(&mut copy, text.as_bytes()).unwrap();
    match Scenario::load(copy.path()) {
        Ok(_) => Ok(()),
        Err(ScenarioError::Paths(problems)) => {
            for p in &problems {
                assert_placed(&p.to_string(), copy.path(), text);
            }
            Err(ScenarioError::Paths(problems).to_string())
        }
        Err(e) => {
            assert_placed(&e.to_string(), copy.path(), text);
            Err(e.to_string())
        }
    }
}

proptest! {
    // 256 cases parse in about a second in a debug build.
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mutated_scenarios_are_parsed_or_refused_at_a_place(
        file in any::<prop::sample::Index>(),
        op in 0u8..4,
        which in any::<u64>(),
        pick in any::<u64>(),
    ) {
        let scenarios = shipped();
        let s = &scenarios[file.index(scenarios.len())];
        let Some(mutated) = mutate(s, op, which, pick) else {
            return Ok(());
        };
        let parsed = Scenario::parse(&mutated, &s.path);
        if let Err(e) = &parsed {
            assert_placed(&e.to_string(), &s.path, &mutated);
        }
        let loaded = loaded_beside(s, &mutated);
        // Loading is parsing and then the paths: what parse refuses, load refuses too.
        prop_assert!(parsed.is_ok() || loaded.is_err());
    }
}

/// Every shipped scenario parses as it is (the mutations start from good files).
#[test]
fn shipped_scenarios_parse() {
    for s in shipped() {
        if let Err(e) = Scenario::parse(&s.text, &s.path) {
            panic!("{e}");
        }
    }
}

/// A path refusal goes through the same check: `/dev/zero` as a kernel, in a copy beside each
/// shipped scenario, is refused at its key.
#[test]
fn a_device_as_the_kernel_is_refused_at_its_key_on_load() {
    for s in shipped() {
        let mut table = s.table.clone();
        let Some(image) = at_mut(
            &mut table,
            &[Step::Key("kernel".into()), Step::Key("image".into())],
        ) else {
            continue;
        };
        *image = Value::String("/dev/zero".into());
        let text = toml::to_string(&table).unwrap();
        let e = loaded_beside(s, &text).unwrap_err();
        assert!(
            e.contains("[kernel] image = \"/dev/zero\": is a character device, not a file"),
            "{}: {e}",
            s.path.display()
        );
    }
}

/// Each kind of mutation on every shipped scenario, at every key.
#[test]
fn every_key_of_every_scenario_deleted_and_retyped() {
    let (mut tried, mut refused, mut load_refused) = (0, 0, 0);
    let mut seen = std::collections::HashSet::new();
    for s in shipped() {
        for which in 0..s.keys.len() as u64 {
            let retypings = (0..5).map(|pick| (2, pick));
            let corruptions = (0..15).map(|pick| (3, pick));
            for (op, pick) in [(0, 0), (1, 0)]
                .into_iter()
                .chain(retypings)
                .chain(corruptions)
            {
                let Some(mutated) = mutate(s, op, which, pick) else {
                    continue;
                };
                // A value with fewer corruptions than `pick`s repeats one.
                if seen.insert(mutated.clone()) {
                    tried += 1;
                    if let Err(e) = Scenario::parse(&mutated, &s.path) {
                        refused += 1;
                        assert_placed(&e.to_string(), &s.path, &mutated);
                    }
                    if loaded_beside(s, &mutated).is_err() {
                        load_refused += 1;
                    }
                }
            }
        }
    }
    // Most of these mutations break the file: the assertion above was exercised.
    assert!(refused * 2 > tried, "{refused} of {tried} refused");
    assert!(
        load_refused >= refused,
        "{load_refused} loads, {refused} parses refused"
    );
}
