//! Rank agreement between a predictor (a supernet's accuracies) and a ground truth.
//!
//! The definitions match scipy's defaults, so numbers compare with other tools: Kendall's
//! τ-b (`scipy.stats.kendalltau`) and Spearman's ρ with average ranks for ties
//! (`scipy.stats.spearmanr`). Both are NaN where one side is constant.

use std::cmp::Ordering;

/// Kendall's τ-b: (concordant − discordant) / √((n₀ − n₁)(n₀ − n₂)), where n₁, n₂ count
/// the pairs tied in `x` and in `y`. O(n²), which is fine for tables of thousands.
pub fn kendall_tau(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "paired samples");
    let n = x.len();
    let (mut concordant, mut discordant, mut tied_x, mut tied_y) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..n {
        for j in i + 1..n {
            let dx = sign(x[i] - x[j]);
            let dy = sign(y[i] - y[j]);
            if dx == 0 {
                tied_x += 1;
            }
            if dy == 0 {
                tied_y += 1;
            }
            match dx * dy {
                1 => concordant += 1,
                -1 => discordant += 1,
                _ => {}
            }
        }
    }
    let pairs = (n * n.saturating_sub(1) / 2) as i64;
    let denominator = (((pairs - tied_x) as f64) * ((pairs - tied_y) as f64)).sqrt();
    if denominator == 0.0 {
        return f64::NAN;
    }
    (concordant - discordant) as f64 / denominator
}

fn sign(value: f64) -> i32 {
    if value > 0.0 {
        1
    } else if value < 0.0 {
        -1
    } else {
        0
    }
}

/// Ranks from 1, ties sharing the mean of their ranks (`scipy.stats.rankdata`'s default).
pub(crate) fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].partial_cmp(&values[b]).unwrap_or(Ordering::Equal));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end (0-based) share ranks start+1..=end; their mean:
        let rank = (start + end + 1) as f64 / 2.0;
        for &index in &order[start..end] {
            ranks[index] = rank;
        }
        start = end;
    }
    ranks
}

/// Pearson's correlation; NaN where either side is constant.
pub(crate) fn pearson(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "paired samples");
    let n = x.len() as f64;
    let mean_x = x.iter().sum::<f64>() / n;
    let mean_y = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mean_x) * (b - mean_y);
        sxx += (a - mean_x) * (a - mean_x);
        syy += (b - mean_y) * (b - mean_y);
    }
    if sxx == 0.0 || syy == 0.0 {
        return f64::NAN;
    }
    sxy / (sxx * syy).sqrt()
}

/// Spearman's ρ: Pearson's correlation of the average ranks.
pub fn spearman_rho(x: &[f64], y: &[f64]) -> f64 {
    pearson(&average_ranks(x), &average_ranks(y))
}

/// Indices of the `k` largest values, best first; ties go to the earlier index, so the
/// result is deterministic.
pub(crate) fn top_indices(values: &[f64], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].partial_cmp(&values[a]).unwrap_or(Ordering::Equal).then(a.cmp(&b)));
    order.truncate(k);
    order
}

/// The share of the truly best `k` that the predictor also puts in its best `k`.
pub(crate) fn top_k_precision(predicted: &[f64], truth: &[f64], k: usize) -> f64 {
    let k = k.min(truth.len());
    if k == 0 {
        return f64::NAN;
    }
    let true_top = top_indices(truth, k);
    let predicted_top = top_indices(predicted, k);
    predicted_top.iter().filter(|i| true_top.contains(i)).count() as f64 / k as f64
}

/// What picking the predictor's best costs: the best true value minus the true value of the
/// predicted best (averaged over predicted ties, i.e. the expected regret of a random
/// tie-break). 0 means the predictor's pick is the true best.
pub(crate) fn regret_of_pick(predicted: &[f64], truth: &[f64]) -> f64 {
    assert_eq!(predicted.len(), truth.len(), "paired samples");
    let best_truth = truth.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let best_predicted = predicted.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let picked: Vec<f64> = predicted.iter().zip(truth).filter(|(p, _)| **p == best_predicted).map(|(_, t)| *t).collect();
    best_truth - picked.iter().sum::<f64>() / picked.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Case {
        name: String,
        x: Vec<f64>,
        y: Vec<f64>,
        kendall_tau: Option<f64>,
        spearman_rho: Option<f64>,
        ranks_x: Vec<f64>,
    }

    /// Cases and scipy's answers from `tests/fixtures/make_rank_fixture.py`.
    #[test]
    fn agrees_with_scipy() {
        let text = include_str!("../tests/fixtures/rank_statistics.json");
        let cases: Vec<Case> = serde_json::from_str(text).unwrap();
        assert!(cases.len() >= 5);
        for case in cases {
            let close = |ours: f64, theirs: Option<f64>, what: &str| match theirs {
                Some(expected) => assert!((ours - expected).abs() < 1e-12, "{} {what}: ours {ours}, scipy {expected}", case.name),
                None => assert!(ours.is_nan(), "{} {what}: ours {ours}, scipy NaN", case.name),
            };
            close(kendall_tau(&case.x, &case.y), case.kendall_tau, "kendall");
            close(spearman_rho(&case.x, &case.y), case.spearman_rho, "spearman");
            assert_eq!(average_ranks(&case.x), case.ranks_x, "{} ranks", case.name);
        }
    }

    #[test]
    fn top_k_and_regret() {
        let truth = [0.9, 0.8, 0.7, 0.6, 0.5];
        assert_eq!(top_k_precision(&truth, &truth, 2), 1.0);
        let reversed = [0.1, 0.2, 0.3, 0.4, 0.5];
        assert_eq!(top_k_precision(&reversed, &truth, 2), 0.0);
        assert_eq!(top_k_precision(&[0.5, 0.1, 0.9, 0.2, 0.3], &truth, 2), 0.5);
        assert_eq!(regret_of_pick(&truth, &truth), 0.0);
        assert!((regret_of_pick(&reversed, &truth) - 0.4).abs() < 1e-12);
        // Two predicted bests, true 0.9 and 0.7: expected regret of a random tie-break 0.1.
        assert!((regret_of_pick(&[1.0, 0.0, 1.0, 0.0, 0.0], &truth) - 0.1).abs() < 1e-12);
    }
}
