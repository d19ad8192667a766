//! Nearest real names for a name that does not exist (`mlx4_cor` → `mlx4_core`).

/// Up to three names close to `wanted`: small edit distance first, then names that contain it.
pub fn nearest<'a>(wanted: &str, names: &[&'a str]) -> Vec<&'a str> {
    let wanted_len = wanted.chars().count();
    let limit = (wanted_len / 3).max(2);
    let mut scored: Vec<(usize, &str)> = names
        .iter()
        // The distance is at least the length difference: skip what cannot be near without the
        // quadratic walk (a name of 70,000 characters took a minute against a kernel's modules).
        .filter(|n| n.chars().count().abs_diff(wanted_len) <= limit)
        .map(|n| (edit_distance(wanted, n), *n))
        .filter(|(d, _)| *d <= limit)
        .collect();
    if scored.is_empty() && wanted.len() >= 3 {
        scored = names
            .iter()
            .filter(|n| n.contains(wanted) || wanted.contains(**n) && n.len() >= 3)
            .map(|n| (n.len().abs_diff(wanted.len()), *n))
            .collect();
    }
    scored.sort();
    scored.into_iter().take(3).map(|(_, n)| n).collect()
}

/// Levenshtein distance over chars.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_far_longer_than_any_has_no_suggestion() {
        let wanted = "m".repeat(70_000);
        let names = ["mlx4_core"; 5000];
        assert!(nearest(&wanted, &names).is_empty());
        assert_eq!(nearest("mlx4_cor", &names), ["mlx4_core"; 3]);
    }

    #[test]
    fn distance_basics() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn suggests_close_names_first() {
        let names = ["mlx4_core", "mlx4_en", "mlx4_ib", "mlx5_core", "ib_core"];
        assert_eq!(nearest("mlx4_cor", &names)[0], "mlx4_core");
        assert_eq!(
            nearest("mlx4", &names),
            vec!["mlx4_en", "mlx4_ib", "mlx4_core"]
        );
        assert!(nearest("zzzzzzzz", &names).is_empty());
    }
}
