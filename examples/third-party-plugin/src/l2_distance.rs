//! `gm-l2`: gradient matching with the squared Euclidean distance.
//!
//! For every candidate choice point the host serves `repeats` Gram matrices `G` of the options'
//! gradients on the shared weights (one training batch and one context sample per repeat).
//! The squared distance needs nothing else: `‖g_i − g_j‖² = G_ii + G_jj − 2 G_ij`. Unlike the
//! cosine distance it keeps the gradients' magnitudes, so an option whose gradient points the
//! same way but is ten times longer counts as different. With `normalize`, each repeat's
//! distances are divided by the mean squared gradient norm `mean_i G_ii`, which makes the score
//! comparable between choice points whose shared sets differ in size.
//!
//! As in gradient matching, the per-repeat matrices are averaged; every partition of the
//! allowed options into the requested number of groups (each of at least the minimum size) is
//! tried, the one with the least within-group distance wins, and a candidate's score is that
//! partition's cross-group distance. The candidate with the largest score is split.

use abi_stable::std_types::RVec;
use serde::{Deserialize, Serialize};
use splitnas_plugin_api::author::{parse_config, Component, CriterionPlugin};
use splitnas_plugin_api::{CandidateScore, CriterionContextRef, GramSample, PluginError, SplitDecision, SplitRequest};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct L2Config {
    /// Gradient repeats per candidate (gradient matching's paper: 100; its fast mode: 10).
    repeats: u32,
    /// Divide each repeat's distances by the mean squared gradient norm of its options.
    normalize: bool,
    /// The smallest group a partition may have; the space's own minimum applies too.
    min_group_size: u32,
    /// Children per split when the run leaves the number open (`groups = 0`).
    default_groups: u32,
}

impl Default for L2Config {
    fn default() -> Self {
        L2Config { repeats: 10, normalize: false, min_group_size: 2, default_groups: 2 }
    }
}

pub struct GradientMatchingL2 {
    config: L2Config,
}

impl Component for GradientMatchingL2 {
    const NAME: &'static str = "gm-l2";
    const DESCRIPTION: &'static str = "gradient matching with the squared Euclidean distance ‖g_i − g_j‖² instead of the cosine";
    fn default_config() -> serde_json::Value {
        serde_json::json!(L2Config::default())
    }
}

/// `‖g_i − g_j‖²` from a row-major K×K Gram matrix; clamped at 0 against rounding.
pub fn squared_distances(gram: &[f64], options: usize) -> Vec<f64> {
    let mut distances = vec![0.0; options * options];
    for i in 0..options {
        for j in 0..options {
            let squared = gram[i * options + i] + gram[j * options + j] - 2.0 * gram[i * options + j];
            distances[i * options + j] = if i == j { 0.0 } else { squared.max(0.0) };
        }
    }
    distances
}

/// Every partition of `0..n` into exactly `groups` groups of at least `min_size`, each once,
/// as a group label per element (restricted growth strings: element 0 is in group 0, and a
/// new group opens only as the next label).
fn partitions(n: usize, groups: usize, min_size: usize) -> Vec<Vec<usize>> {
    fn extend(labels: &mut Vec<usize>, opened: usize, n: usize, groups: usize, min_size: usize, out: &mut Vec<Vec<usize>>) {
        if labels.len() == n {
            if opened == groups && (0..groups).all(|group| labels.iter().filter(|&&label| label == group).count() >= min_size) {
                out.push(labels.clone());
            }
            return;
        }
        for label in 0..(opened + 1).min(groups) {
            labels.push(label);
            extend(labels, opened.max(label + 1), n, groups, min_size, out);
            labels.pop();
        }
    }
    let mut out = Vec::new();
    if (1..=n).contains(&groups) {
        extend(&mut Vec::with_capacity(n), 0, n, groups, min_size, &mut out);
    }
    out
}

/// (within-group, cross-group) sums of `distances` over unordered pairs.
fn within_and_cross(distances: &[f64], n: usize, labels: &[usize]) -> (f64, f64) {
    let (mut within, mut cross) = (0.0, 0.0);
    for i in 0..n {
        for j in (i + 1)..n {
            if labels[i] == labels[j] {
                within += distances[i * n + j];
            } else {
                cross += distances[i * n + j];
            }
        }
    }
    (within, cross)
}

impl GradientMatchingL2 {
    /// The mean distance matrix of one candidate over `repeats` Gram samples from the host.
    fn mean_distances(&self, choice_point: u32, allowed: &[u32], context: &CriterionContextRef<'_>) -> Result<Vec<f64>, PluginError> {
        let k = allowed.len();
        let mut mean = vec![0.0; k * k];
        for _ in 0..self.config.repeats {
            let GramSample { options, gram } = context.gradient_gram(choice_point).into_result()?;
            if options.as_slice() != allowed || gram.len() != k * k {
                return Err(PluginError::invalid_input(format!(
                    "gm-l2: the host sent a {}-entry Gram matrix for options {:?} of choice point {choice_point}, whose allowed options are {allowed:?}",
                    gram.len(),
                    options.as_slice()
                )));
            }
            let mut distances = squared_distances(&gram, k);
            if self.config.normalize {
                let mean_squared_norm = (0..k).map(|i| gram[i * k + i]).sum::<f64>() / k as f64;
                if mean_squared_norm > 0.0 {
                    distances.iter_mut().for_each(|distance| *distance /= mean_squared_norm);
                }
            }
            mean.iter_mut().zip(&distances).for_each(|(total, distance)| *total += distance / f64::from(self.config.repeats));
        }
        Ok(mean)
    }
}

impl CriterionPlugin for GradientMatchingL2 {
    fn create(config: &str) -> Result<Self, PluginError> {
        let config: L2Config = parse_config(Self::NAME, config)?;
        if config.repeats == 0 {
            return Err(PluginError::invalid_config("gm-l2: `repeats` must be at least 1"));
        }
        if config.default_groups < 2 {
            return Err(PluginError::invalid_config(format!("gm-l2: `default_groups` must be at least 2 (got {})", config.default_groups)));
        }
        Ok(GradientMatchingL2 { config })
    }

    fn split(&mut self, request: &SplitRequest, context: &CriterionContextRef<'_>) -> Result<SplitDecision, PluginError> {
        let groups = if request.groups == 0 { self.config.default_groups } else { request.groups } as usize;
        let min_size = self.config.min_group_size.max(request.space.min_group_size).max(1) as usize;
        let mut scores: Vec<CandidateScore> = Vec::new();
        for &choice_point in request.candidates.iter() {
            let allowed = request.mask.allowed(choice_point as usize);
            let partitions = partitions(allowed.len(), groups, min_size);
            if partitions.is_empty() {
                continue; // too few options left for this many groups of this size
            }
            let distances = self.mean_distances(choice_point, &allowed, context)?;
            let (labels, _, cross) = partitions
                .into_iter()
                .map(|labels| {
                    let (within, cross) = within_and_cross(&distances, allowed.len(), &labels);
                    (labels, within, cross)
                })
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .expect("at least one partition");
            let partition: RVec<RVec<u32>> = (0..groups)
                .map(|group| allowed.iter().zip(&labels).filter(|(_, &label)| label == group).map(|(&option, _)| option).collect())
                .collect();
            let _ = context.log_metric(format!("gm-l2.score.{choice_point}").as_str().into(), cross);
            scores.push(CandidateScore { choice_point, score: cross, groups: partition, repeats: self.config.repeats });
        }
        // The first of equal scores wins, so that a decision never depends on float noise order.
        let chosen = scores
            .iter()
            .reduce(|best, next| if next.score > best.score { next } else { best })
            .ok_or_else(|| {
                PluginError::invalid_input(format!("gm-l2: no candidate has enough allowed options for {groups} groups of at least {min_size}"))
            })?
            .clone();
        Ok(SplitDecision { choice_point: chosen.choice_point, groups: chosen.groups, scores: scores.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squared_distances_follow_from_the_gram_matrix() {
        // g0 = (1, 0), g1 = (0, 2), g2 = (3, 0): ‖g0 − g1‖² = 5, ‖g0 − g2‖² = 4, ‖g1 − g2‖² = 13.
        let vectors = [[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]];
        let gram: Vec<f64> = (0..3).flat_map(|i| (0..3).map(move |j| vectors[i][0] * vectors[j][0] + vectors[i][1] * vectors[j][1])).collect();
        let distances = squared_distances(&gram, 3);
        assert_eq!(distances, vec![0.0, 5.0, 4.0, 5.0, 0.0, 13.0, 4.0, 13.0, 0.0]);
    }

    #[test]
    fn partitions_are_counted_as_stirling_numbers_with_size_limits() {
        assert_eq!(partitions(5, 2, 1).len(), 15); // S(5, 2)
        assert_eq!(partitions(5, 2, 2).len(), 10); // pick the pair
        assert_eq!(partitions(7, 2, 2).len(), 21 + 35); // {2, 5} and {3, 4}
        assert_eq!(partitions(3, 3, 1).len(), 1);
        assert!(partitions(3, 2, 2).is_empty());
        assert!(partitions(2, 3, 1).is_empty());
    }

    #[test]
    fn the_best_partition_groups_the_close_options() {
        // Options 0 and 2 are close, 1 and 3 are close: {0, 2} | {1, 3} has the least within-group distance.
        let far = 10.0;
        #[rustfmt::skip]
        let distances = [
            0.0, far, 1.0, far,
            far, 0.0, far, 1.0,
            1.0, far, 0.0, far,
            far, 1.0, far, 0.0,
        ];
        let best =
            partitions(4, 2, 2).into_iter().min_by(|a, b| within_and_cross(&distances, 4, a).0.total_cmp(&within_and_cross(&distances, 4, b).0));
        assert_eq!(best, Some(vec![0, 1, 0, 1]));
    }
}
