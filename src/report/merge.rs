//! `report merge`: several shard reports become one. Each scenario must appear once; the
//! inputs must share the schema and, when sharded, the number of shards. Totals are not merged
//! but recomputed from the joined scenarios (see [`super::json`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use thiserror::Error;

use super::model::{RunReport, Shard, SCHEMA};
use super::time::parse_rfc3339_utc;

#[derive(Debug, Error)]
pub enum MergeError {
    #[error("no reports to merge")]
    NoInputs,
    #[error("{path}: report schema {found}, the others are schema {expected}")]
    Schema {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error(
        "scenario {id:?} is in both {first} and {second}; each scenario must be in one report"
    )]
    Duplicate {
        id: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{first} is shard {a} and {second} is shard {b}: reports of differently split runs")]
    ShardTotals {
        first: PathBuf,
        a: Shard,
        second: PathBuf,
        b: Shard,
    },
    #[error("shard {shard} is given twice: {first} and {second}")]
    ShardTwice {
        shard: Shard,
        first: PathBuf,
        second: PathBuf,
    },
}

/// The merged report and what the inputs leave out.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub report: RunReport,
    /// Shards (1-based) of the split that no input covers; empty when complete or unsharded.
    pub missing_shards: Vec<u32>,
}

/// Joins `inputs` (each with the path it came from, for errors). Scenarios are ordered by id.
/// `started` is the earliest start; `duration_seconds` the span from it to the latest end when
/// every start parses, else the longest input; hosts and versions are listed when they differ.
pub fn merge(inputs: Vec<(PathBuf, RunReport)>) -> Result<Merged, MergeError> {
    if inputs.is_empty() {
        return Err(MergeError::NoInputs);
    }
    let mut split: Option<(PathBuf, Shard)> = None;
    let mut seen_shards: BTreeMap<u32, PathBuf> = BTreeMap::new();
    let mut owner: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (path, r) in &inputs {
        if r.schema != SCHEMA {
            return Err(MergeError::Schema {
                path: path.clone(),
                found: r.schema,
                expected: SCHEMA,
            });
        }
        if let Some(s) = r.shard {
            match &split {
                Some((first, a)) if a.total != s.total => {
                    return Err(MergeError::ShardTotals {
                        first: first.clone(),
                        a: *a,
                        second: path.clone(),
                        b: s,
                    })
                }
                Some(_) => {}
                None => split = Some((path.clone(), s)),
            }
            if let Some(first) = seen_shards.insert(s.index, path.clone()) {
                return Err(MergeError::ShardTwice {
                    shard: s,
                    first,
                    second: path.clone(),
                });
            }
        }
        for sc in &r.scenarios {
            if let Some(first) = owner.insert(sc.id.clone(), path.clone()) {
                return Err(MergeError::Duplicate {
                    id: sc.id.clone(),
                    first,
                    second: path.clone(),
                });
            }
        }
    }
    let missing_shards = match &split {
        Some((_, s)) => (1..=s.total)
            .filter(|k| !seen_shards.contains_key(k))
            .collect(),
        None => Vec::new(),
    };
    let reports: Vec<RunReport> = inputs.into_iter().map(|(_, r)| r).collect();
    let (started, duration_seconds) = span(&reports);
    let mut scenarios: Vec<_> = reports
        .iter()
        .flat_map(|r| r.scenarios.iter().cloned())
        .collect();
    scenarios.sort_by(|a, b| a.id.cmp(&b.id));
    // A single shard's report merged alone stays that shard.
    let shard = match reports.as_slice() {
        [only] => only.shard,
        _ => None,
    };
    Ok(Merged {
        report: RunReport {
            schema: SCHEMA,
            bootrig_version: distinct(reports.iter().map(|r| r.bootrig_version.as_str())),
            started,
            host: distinct(reports.iter().map(|r| r.host.as_str())),
            shard,
            scenarios,
            duration_seconds,
        },
        missing_shards,
    })
}

fn span(reports: &[RunReport]) -> (String, f64) {
    let longest = reports
        .iter()
        .map(|r| r.duration_seconds)
        .filter(|d| d.is_finite())
        .fold(0.0_f64, f64::max);
    let starts: Option<Vec<i64>> = reports
        .iter()
        .map(|r| parse_rfc3339_utc(&r.started))
        .collect();
    let Some(starts) = starts else {
        let earliest = reports.iter().map(|r| r.started.as_str()).min();
        return (earliest.unwrap_or_default().to_owned(), longest);
    };
    // Non-empty: merge refuses an empty input list before this point.
    let (first_index, first) = starts
        .iter()
        .copied()
        .enumerate()
        .min_by_key(|&(_, s)| s)
        .unwrap_or((0, 0));
    let end = reports
        .iter()
        .zip(&starts)
        .map(|(r, &s)| (s - first) as f64 + r.duration_seconds.max(0.0))
        .filter(|d| d.is_finite())
        .fold(0.0_f64, f64::max);
    (reports[first_index].started.clone(), end)
}

/// The distinct values in first-seen order, joined with ", ".
fn distinct<'a>(values: impl Iterator<Item = &'a str>) -> String {
    let mut seen = BTreeSet::new();
    let mut out: Vec<&str> = Vec::new();
    for v in values {
        if seen.insert(v) {
            out.push(v);
        }
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::super::model::sample::{run, scenario};
    use super::super::model::Outcome;
    use super::*;

    fn shard(index: u32, total: u32, ids: &[&str], started: &str, secs: f64) -> RunReport {
        let mut r = run(ids.iter().map(|id| scenario(id, Outcome::Pass)).collect());
        r.shard = Some(Shard { index, total });
        r.started = started.to_owned();
        r.duration_seconds = secs;
        r.host = format!("ci-{index}");
        r
    }

    #[test]
    fn joins_shards_sorted_with_span_and_hosts() {
        let mut b = shard(2, 2, &["b.toml", "a.toml"], "2024-05-01T12:00:10Z", 100.0);
        b.scenarios[0].outcome = Outcome::Fail;
        let a = shard(1, 2, &["c.toml"], "2024-05-01T12:00:00Z", 30.0);
        let m = merge(vec![("b.json".into(), b), ("a.json".into(), a)]).unwrap();
        let ids: Vec<&str> = m.report.scenarios.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a.toml", "b.toml", "c.toml"]);
        assert_eq!(m.report.started, "2024-05-01T12:00:00Z");
        assert_eq!(m.report.duration_seconds, 110.0);
        assert_eq!(m.report.host, "ci-2, ci-1");
        assert_eq!(m.report.bootrig_version, "0.1.0");
        assert_eq!(m.report.shard, None);
        assert!(m.missing_shards.is_empty());
        let t = m.report.totals();
        assert_eq!((t.tests, t.passed, t.failed), (3, 2, 1));
    }

    #[test]
    fn reports_missing_shards() {
        let a = shard(1, 3, &["a.toml"], "2024-05-01T12:00:00Z", 1.0);
        let c = shard(3, 3, &["c.toml"], "2024-05-01T12:00:00Z", 1.0);
        let m = merge(vec![("a".into(), a), ("c".into(), c)]).unwrap();
        assert_eq!(m.missing_shards, [2]);
    }

    #[test]
    fn refuses_duplicates_naming_both_files() {
        let a = shard(1, 2, &["x.toml"], "2024-05-01T12:00:00Z", 1.0);
        let b = shard(2, 2, &["x.toml"], "2024-05-01T12:00:00Z", 1.0);
        let e = merge(vec![("one.json".into(), a), ("two.json".into(), b)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "scenario \"x.toml\" is in both one.json and two.json; each scenario must be in one report"
        );
    }

    #[test]
    fn refuses_mismatched_schema_and_splits() {
        let a = shard(1, 2, &["a.toml"], "2024-05-01T12:00:00Z", 1.0);
        let mut b = shard(2, 2, &["b.toml"], "2024-05-01T12:00:00Z", 1.0);
        b.schema = SCHEMA + 1;
        let e = merge(vec![("a".into(), a.clone()), ("b".into(), b)]).unwrap_err();
        assert!(matches!(e, MergeError::Schema { .. }), "{e}");

        let c = shard(2, 3, &["c.toml"], "2024-05-01T12:00:00Z", 1.0);
        let e = merge(vec![("a".into(), a.clone()), ("c".into(), c)]).unwrap_err();
        assert!(
            e.to_string().contains("shard 1/2 and c is shard 2/3"),
            "{e}"
        );

        let again = shard(1, 2, &[], "2024-05-01T12:00:00Z", 1.0);
        let e = merge(vec![("a".into(), a), ("again".into(), again)]).unwrap_err();
        assert!(matches!(e, MergeError::ShardTwice { .. }), "{e}");

        assert!(matches!(merge(Vec::new()), Err(MergeError::NoInputs)));
    }

    #[test]
    fn unparsable_starts_fall_back_to_longest() {
        let mut a = run(vec![scenario("a.toml", Outcome::Pass)]);
        a.started = "yesterday".into();
        a.duration_seconds = 5.0;
        let mut b = run(vec![scenario("b.toml", Outcome::Skip)]);
        b.duration_seconds = 9.0;
        let m = merge(vec![("a".into(), a), ("b".into(), b)]).unwrap();
        assert_eq!(m.report.duration_seconds, 9.0);
        assert_eq!(m.report.started, "2024-05-01T12:00:00Z");
    }
}
