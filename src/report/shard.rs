//! `--shard K/N`: which scenarios one of N machines runs. A scenario's shard comes from a hash
//! of its id (its path in the suite), not its position, so adding a scenario moves only that
//! one. The hash is SHA-256 — fixed forever, unlike std's `DefaultHasher`, and well mixed in
//! its low bits, unlike plain FNV-1a reduced modulo a small N.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use thiserror::Error;

pub use super::model::Shard;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ShardParseError {
    #[error("--shard {input:?}: expected K/N, such as 1/4 (shard K of N, counted from 1)")]
    Syntax { input: String },
    #[error("--shard {input:?}: shards are counted from 1, so K must be at least 1")]
    ZeroIndex { input: String },
    #[error("--shard {input:?}: N, the number of shards, must be at least 1")]
    ZeroTotal { input: String },
    #[error("--shard {input:?}: K is larger than N; there are only {total} shards")]
    IndexTooLarge { input: String, total: u32 },
}

impl FromStr for Shard {
    type Err = ShardParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let syntax = || ShardParseError::Syntax {
            input: input.to_owned(),
        };
        let (k, n) = input.trim().split_once('/').ok_or_else(syntax)?;
        let number = |s: &str| -> Result<u32, ShardParseError> {
            let s = s.trim();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(syntax());
            }
            s.parse().map_err(|_| syntax())
        };
        let (index, total) = (number(k)?, number(n)?);
        if total == 0 {
            return Err(ShardParseError::ZeroTotal {
                input: input.to_owned(),
            });
        }
        if index == 0 {
            return Err(ShardParseError::ZeroIndex {
                input: input.to_owned(),
            });
        }
        if index > total {
            return Err(ShardParseError::IndexTooLarge {
                input: input.to_owned(),
                total,
            });
        }
        Ok(Shard { index, total })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.total)
    }
}

impl Shard {
    /// Whether the scenario with this id is this shard's to run.
    pub fn contains(&self, id: &str) -> bool {
        shard_of(id, self.total) == self.index
    }

    /// The items of this shard, in their given order.
    pub fn select<T>(&self, items: Vec<T>, id: impl Fn(&T) -> &str) -> Vec<T> {
        items.into_iter().filter(|t| self.contains(id(t))).collect()
    }
}

/// The shard (1..=total) a scenario id belongs to; `total` 0 is treated as 1.
pub fn shard_of(id: &str, total: u32) -> u32 {
    let digest = Sha256::digest(id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let h = u64::from_be_bytes(first);
    // Modulo bias is at most total / 2^64: negligible.
    (h % u64::from(total.max(1))) as u32 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("scenarios/nic-{}/case-{i:03}.toml", i % 7))
            .collect()
    }

    #[test]
    fn parses_k_of_n() {
        assert_eq!("1/4".parse(), Ok(Shard { index: 1, total: 4 }));
        assert_eq!(" 3 / 3 ".parse(), Ok(Shard { index: 3, total: 3 }));
        assert_eq!(Shard { index: 2, total: 5 }.to_string(), "2/5");
    }

    #[test]
    fn clear_errors_for_bad_shards() {
        assert!(matches!(
            "0/4".parse::<Shard>(),
            Err(ShardParseError::ZeroIndex { .. })
        ));
        assert!(matches!(
            "1/0".parse::<Shard>(),
            Err(ShardParseError::ZeroTotal { .. })
        ));
        assert!(matches!(
            "5/4".parse::<Shard>(),
            Err(ShardParseError::IndexTooLarge { total: 4, .. })
        ));
        for junk in [
            "",
            "3",
            "a/b",
            "1/",
            "/2",
            "1/2/3",
            "-1/2",
            "+1/2",
            "1.0/2",
            "99999999999/1",
        ] {
            let e = junk.parse::<Shard>().unwrap_err();
            assert!(matches!(e, ShardParseError::Syntax { .. }), "{junk}: {e}");
            assert!(e.to_string().contains("expected K/N"), "{e}");
        }
        assert_eq!(
            "5/4".parse::<Shard>().unwrap_err().to_string(),
            "--shard \"5/4\": K is larger than N; there are only 4 shards"
        );
    }

    #[test]
    fn each_id_lands_in_exactly_one_shard() {
        for total in 1..=6 {
            for id in ids(50) {
                let owners = (1..=total)
                    .filter(|&k| Shard { index: k, total }.contains(&id))
                    .count();
                assert_eq!(owners, 1, "{id} in {owners} of {total} shards");
            }
        }
    }

    #[test]
    fn selection_is_stable_and_independent_of_position() {
        // Pinned values: a change of hash would reshuffle every CI's shards.
        assert_eq!(
            shard_of("mlx4-ipoib-busybox.toml", 4),
            shard_of("mlx4-ipoib-busybox.toml", 4)
        );
        let pinned: Vec<u32> = ["a.toml", "b.toml", "pxe/uefi.toml"]
            .iter()
            .map(|id| shard_of(id, 5))
            .collect();
        assert_eq!(pinned, PINNED);
        let mut all = ids(40);
        let shard = Shard { index: 2, total: 3 };
        let before = shard.select(all.clone(), |s| s.as_str());
        all.insert(0, "new/first.toml".into());
        all.reverse();
        let mut after = shard.select(all, |s| s.as_str());
        after.retain(|s| s != "new/first.toml");
        after.reverse();
        assert_eq!(before, after);
    }

    const PINNED: [u32; 3] = [5, 3, 2];

    #[test]
    fn distribution_over_200_ids_is_roughly_even() {
        // Chi-square critical values at p = 0.001 for N - 1 degrees of freedom: an uneven hash
        // fails this, honest binomial scatter almost never does.
        for (total, critical) in [(2_u32, 10.83), (3, 13.82), (4, 16.27), (8, 24.32)] {
            let mut counts = vec![0usize; total as usize];
            for id in ids(200) {
                counts[(shard_of(&id, total) - 1) as usize] += 1;
            }
            let expected = 200.0 / f64::from(total);
            let chi2: f64 = counts
                .iter()
                .map(|&c| (c as f64 - expected).powi(2) / expected)
                .sum();
            assert!(
                chi2 < critical,
                "{total} shards: {counts:?}, chi2 {chi2:.2}"
            );
            assert!(counts.iter().all(|&c| c > 0), "{total}: {counts:?}");
        }
    }
}
