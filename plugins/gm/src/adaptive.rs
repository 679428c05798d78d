//! Adaptive repeats: draw gradient repeats only until the decision is settled.
//!
//! Gradient matching decides with averages over repeats, and every quantity it compares is
//! linear in the per-repeat distance matrices once a partition is fixed:
//! - a candidate's score is the cross-group distance of its best partition, the mean over
//!   repeats of that partition's per-repeat cross distance;
//! - a partition beats another when its mean within-group distance is smaller, the mean over
//!   repeats of the per-repeat difference.
//!
//! So each comparison is a difference of means with a standard error estimated from the
//! repeats. Repeats are drawn round-robin over the candidates, and compared round by round:
//! the splitnas host gives repeat k of every candidate the same batch and context sample, so
//! the per-round differences cancel their shared noise (with independent repeats the paired
//! estimate is still valid, only no tighter). After every round in which all candidates still
//! racing have `min_repeats`:
//! - a candidate whose score is below the leader's by more than `z` standard errors of the
//!   per-round differences is dropped and gets no more repeats;
//! - the search stops when only the leader is left and its best partition beats every other
//!   partition of its options by more than `z` standard errors of the paired differences.
//!
//! With `indifference` ε > 0, differences smaller than ε times the leader's score count as
//! settled in the leader's favour (an indifference zone): near-ties, which even the paper's 100
//! repeats decide by noise, stop being sampled to the cap.
//!
//! `z` is the one-sided normal quantile at `1 − (1 − confidence) / m`, with `m` the number of
//! comparisons one check makes (the other candidates plus the leader's other partitions):
//! Bonferroni, so that every comparison of a check holds at once. Checking after every round is
//! a sequential test that this does not correct for; `min_repeats` keeps the first checks from
//! acting on a handful of repeats, and the study in docs/BENCHMARKS.md measures how often the
//! result agrees with the paper's fixed 100 repeats. No candidate gets more than `max_repeats`;
//! at that cap the decision is the fixed rule's on the repeats drawn.

use splitnas_plugin_api::PluginError;

use crate::{partition_distances, Candidate};

pub struct StoppingRule {
    pub confidence: f64,
    pub min_repeats: usize,
    pub max_repeats: usize,
    /// ε: differences below ε × the leader's score are treated as settled.
    pub indifference: f64,
}

/// Mean and standard error of the mean.
fn mean_and_error(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, f64::INFINITY);
    }
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (variance / n).sqrt())
}

/// `(difference + margin) / error > z`: the difference is confidently above `-margin`. A zero
/// error counts only for a shifted difference above zero.
fn confidently_positive(difference: f64, error: f64, z: f64, margin: f64) -> bool {
    let shifted = difference + margin;
    if error == 0.0 {
        shifted > 0.0
    } else {
        shifted / error > z
    }
}

/// The standard normal quantile (Acklam's rational approximation, relative error below 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] =
        [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
    const B: [f64; 5] = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
    const C: [f64; 6] = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let tail =
        |q: f64| (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5]) / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0);
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

impl StoppingRule {
    pub fn new(confidence: f64, min_repeats: usize, max_repeats: usize, indifference: f64) -> Self {
        StoppingRule { confidence, min_repeats, max_repeats: max_repeats.max(1), indifference: indifference.max(0.0) }
    }

    fn z(&self, comparisons: usize) -> f64 {
        normal_quantile(1.0 - (1.0 - self.confidence) / comparisons.max(1) as f64)
    }

    /// Draws repeats (`draw` appends one to a candidate) until the decision is settled or every
    /// racing candidate has `max_repeats`; marks the candidates it drops.
    pub fn run(&self, candidates: &mut [Candidate], draw: &mut dyn FnMut(&mut Candidate) -> Result<(), PluginError>) -> Result<(), PluginError> {
        loop {
            let mut drew = false;
            for candidate in candidates.iter_mut().filter(|c| !c.dropped && c.repeats.len() < self.max_repeats) {
                draw(candidate)?;
                drew = true;
            }
            if !drew || self.settled(candidates) {
                return Ok(());
            }
        }
    }

    /// Drops the candidates confidently below the leader; true when the leader and its
    /// partition are settled.
    fn settled(&self, candidates: &mut [Candidate]) -> bool {
        if candidates.iter().any(|c| !c.dropped && c.repeats.len() < self.min_repeats) {
            return false;
        }
        // Per racing candidate: its best partition and the per-repeat cross distances under it.
        let racing: Vec<usize> = (0..candidates.len()).filter(|&i| !candidates[i].dropped).collect();
        let scored: Vec<(usize, Vec<usize>, f64, Vec<f64>)> = racing
            .iter()
            .map(|&i| {
                let candidate = &candidates[i];
                let (labels, _, _) = candidate.best_partition();
                let k = candidate.options.len();
                let crosses: Vec<f64> = candidate.repeats.iter().map(|repeat| partition_distances(repeat, k, &labels).1).collect();
                let (mean, _) = mean_and_error(&crosses);
                (i, labels, mean, crosses)
            })
            .collect();
        // The fixed rule's leader: the largest score, the earliest candidate on ties.
        let leader =
            scored.iter().enumerate().max_by(|(ia, a), (ib, b)| a.2.total_cmp(&b.2).then(ib.cmp(ia))).map(|(at, _)| at).expect("a racing candidate");
        let (leader_index, leader_labels, leader_mean, leader_crosses) = scored[leader].clone();
        let comparisons = (scored.len() - 1) + (candidates[leader_index].partitions.len() - 1);
        let z = self.z(comparisons);
        let margin = self.indifference * leader_mean.abs();

        for (index, _, _, crosses) in scored.iter().filter(|(index, ..)| *index != leader_index) {
            let differences: Vec<f64> = leader_crosses.iter().zip(crosses).map(|(leader, other)| leader - other).collect();
            let (mean, error) = mean_and_error(&differences);
            if confidently_positive(mean, error, z, margin) {
                candidates[*index].dropped = true;
            }
        }
        if candidates.iter().enumerate().any(|(i, c)| i != leader_index && !c.dropped) {
            return false;
        }
        let leader = &candidates[leader_index];
        let k = leader.options.len();
        let within = |repeat: &[f64], labels: &[usize]| partition_distances(repeat, k, labels).0;
        leader.partitions.iter().filter(|labels| **labels != leader_labels).all(|other| {
            let differences: Vec<f64> = leader.repeats.iter().map(|repeat| within(repeat, other) - within(repeat, &leader_labels)).collect();
            let (mean, error) = mean_and_error(&differences);
            confidently_positive(mean, error, z, margin)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantiles_match_tables() {
        for (p, z) in [(0.5, 0.0), (0.95, 1.6448536), (0.975, 1.9599640), (0.995, 2.5758293), (0.001, -3.0902323), (0.99999, 4.2648908)] {
            assert!((normal_quantile(p) - z).abs() < 1e-6, "quantile({p}) = {} not {z}", normal_quantile(p));
        }
    }

    #[test]
    fn zero_error_counts_only_for_a_real_difference() {
        assert!(confidently_positive(0.1, 0.0, 3.0, 0.0));
        assert!(!confidently_positive(0.0, 0.0, 3.0, 0.0));
        assert!(!confidently_positive(0.1, 0.05, 3.0, 0.0));
        assert!(confidently_positive(0.2, 0.05, 3.0, 0.0));
        // Within the indifference margin a tie is settled; a clear deficit never is.
        assert!(confidently_positive(0.0, 0.01, 3.0, 0.05));
        assert!(!confidently_positive(-0.1, 0.01, 3.0, 0.05));
    }
}
