//! Gradient matching (Hu et al., "Generalizing Few-Shot NAS with Gradient Matching", ICLR 2022).
//!
//! For every candidate choice point, the host collects R repeats of paired gradients (same
//! batch and context sample for every option in a repeat) and hands back each repeat's Gram
//! matrix G. Per repeat, d(i, j) = 1 − G_ij / (√G_ii √G_jj + 1e-6), the cosine distance over
//! the whole concatenated shared-set gradient; the matrices are averaged over repeats.
//! Every partition of the allowed options into the requested number of groups, each of at
//! least `min_group_size`, is enumerated; the one with the least within-group distance wins,
//! and the candidate's score is that partition's cross-group distance (the min-cut cost).
//! The candidate with the largest score is split.

use serde::Deserialize;
use serde_json::json;
use splitnas_plugin_api::author::{parse_config, Component, CriterionPlugin};
use splitnas_plugin_api::{CandidateScore, CriterionContextRef, GramSample, PluginError, SplitDecision, SplitRequest};

splitnas_plugin_api::export_plugin!("gm");
splitnas_plugin_api::export_criterion!(GradientMatching);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct GradientMatchingConfig {
    /// Gradient repeats per candidate (the paper: 100; its fast mode: 10).
    repeats: u32,
    /// Smallest group a partition may contain (NB201 {2,3}, DARTS {2,5}/{3,4}: 2; OFA: 1).
    /// The space's own minimum applies too, whichever is larger.
    min_group_size: u32,
    /// Children per split when the request leaves it open (0 groups).
    default_groups: u32,
}

pub struct GradientMatching {
    config: GradientMatchingConfig,
}

impl Component for GradientMatching {
    const NAME: &'static str = "gm";
    const DESCRIPTION: &'static str = "gradient matching: split the choice point whose options' shared-weight gradients disagree most";
    fn default_config() -> serde_json::Value {
        json!({ "repeats": 100, "min_group_size": 2, "default_groups": 2 })
    }
}

/// Cosine distances of one repeat from its Gram matrix, row-major K×K.
pub fn cosine_distances(gram: &[f64], options: usize) -> Vec<f64> {
    let norm = |i: usize| gram[i * options + i].max(0.0).sqrt();
    let mut distances = vec![0.0; options * options];
    for i in 0..options {
        for j in 0..options {
            distances[i * options + j] = 1.0 - gram[i * options + j] / (norm(i) * norm(j) + 1e-6);
        }
    }
    distances
}

/// Every partition of `0..n` into exactly `groups` non-empty groups of at least `min_size`,
/// as group labels per element, each partition once (restricted growth strings).
pub fn partitions(n: usize, groups: usize, min_size: usize) -> Vec<Vec<usize>> {
    fn extend(labels: &mut Vec<usize>, used: usize, n: usize, groups: usize, min_size: usize, out: &mut Vec<Vec<usize>>) {
        if labels.len() == n {
            if used == groups && (0..groups).all(|g| labels.iter().filter(|&&l| l == g).count() >= min_size) {
                out.push(labels.clone());
            }
            return;
        }
        // Not enough elements left to open the remaining groups: prune.
        if groups - used.min(groups) > n - labels.len() {
            return;
        }
        for label in 0..=used.min(groups - 1) {
            labels.push(label);
            extend(labels, used.max(label + 1), n, groups, min_size, out);
            labels.pop();
        }
    }
    let mut out = Vec::new();
    if groups >= 1 && groups <= n {
        extend(&mut Vec::with_capacity(n), 0, n, groups, min_size, &mut out);
    }
    out
}

/// The best partition of a mean distance matrix: least within-group distance (sum over
/// unordered pairs); returns (labels, within, cross). Ties keep the first enumerated.
pub fn best_partition(distances: &[f64], n: usize, groups: usize, min_size: usize) -> Option<(Vec<usize>, f64, f64)> {
    let mut best: Option<(Vec<usize>, f64, f64)> = None;
    for labels in partitions(n, groups, min_size) {
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
        if best.as_ref().is_none_or(|(_, best_within, _)| within < *best_within) {
            best = Some((labels, within, cross));
        }
    }
    best
}

impl GradientMatching {
    /// Mean cosine-distance matrix of one candidate over the configured repeats.
    fn mean_distances(&self, choice_point: u32, context: &CriterionContextRef<'_>) -> Result<(Vec<u32>, Vec<f64>), PluginError> {
        let mut options: Option<Vec<u32>> = None;
        let mut sum: Vec<f64> = Vec::new();
        for _ in 0..self.config.repeats {
            let GramSample { options: sample_options, gram } = context.gradient_gram(choice_point).into_result()?;
            let k = sample_options.len();
            if gram.len() != k * k {
                return Err(PluginError::invalid_input(format!("the host sent a Gram matrix of {} entries for {k} options", gram.len())));
            }
            match &options {
                None => {
                    options = Some(sample_options.to_vec());
                    sum = vec![0.0; k * k];
                }
                Some(first) if first.as_slice() != sample_options.as_slice() => {
                    return Err(PluginError::invalid_input("the host changed the options of a choice point between repeats"));
                }
                Some(_) => {}
            }
            for (total, distance) in sum.iter_mut().zip(cosine_distances(&gram, k)) {
                *total += distance;
            }
        }
        let repeats = self.config.repeats.max(1) as f64;
        Ok((options.unwrap_or_default(), sum.into_iter().map(|d| d / repeats).collect()))
    }
}

impl CriterionPlugin for GradientMatching {
    fn create(config: &str) -> Result<Self, PluginError> {
        let config: GradientMatchingConfig = parse_config(Self::NAME, config)?;
        if config.repeats == 0 {
            return Err(PluginError::invalid_config("gm: `repeats` must be at least 1"));
        }
        Ok(GradientMatching { config })
    }

    fn split(&mut self, request: &SplitRequest, context: &CriterionContextRef<'_>) -> Result<SplitDecision, PluginError> {
        let groups = if request.groups == 0 { self.config.default_groups } else { request.groups } as usize;
        let min_size = self.config.min_group_size.max(request.space.min_group_size).max(1) as usize;
        let mut scores: Vec<CandidateScore> = Vec::new();
        for &choice_point in request.candidates.iter() {
            let allowed = request.mask.allowed(choice_point as usize);
            if allowed.len() < groups * min_size {
                continue; // too few options left to split this way
            }
            let (options, distances) = self.mean_distances(choice_point, context)?;
            if options != allowed {
                return Err(PluginError::invalid_input(format!(
                    "the host sent gradients for options {options:?} of choice point {choice_point}, whose allowed options are {allowed:?}"
                )));
            }
            let Some((labels, _within, cross)) = best_partition(&distances, options.len(), groups, min_size) else { continue };
            let partition: Vec<abi_stable::std_types::RVec<u32>> =
                (0..groups).map(|g| options.iter().zip(&labels).filter(|(_, &l)| l == g).map(|(&o, _)| o).collect()).collect();
            let _ = context.log_metric(format!("gm.score.{choice_point}").as_str().into(), cross);
            scores.push(CandidateScore { choice_point, score: cross, groups: partition.into(), repeats: self.config.repeats });
        }
        let best = scores
            .iter()
            .enumerate()
            .max_by(|(ia, a), (ib, b)| a.score.total_cmp(&b.score).then(ib.cmp(ia)))
            .map(|(i, _)| i)
            .ok_or_else(|| {
                PluginError::invalid_input(format!("no candidate has enough allowed options for {groups} groups of at least {min_size}"))
            })?;
        let chosen = scores[best].clone();
        Ok(SplitDecision { choice_point: chosen.choice_point, groups: chosen.groups, scores: scores.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_of_five_into_two_groups_of_at_least_two() {
        // C(5,2) = 10 ways to pick the pair; the triple is the rest.
        let all = partitions(5, 2, 2);
        assert_eq!(all.len(), 10);
        assert!(all.iter().all(|labels| labels[0] == 0));
        assert_eq!(partitions(5, 2, 1).len(), 15); // Stirling S(5,2)
        assert_eq!(partitions(7, 2, 2).len(), 21 + 35); // {2,5} and {3,4}
        assert_eq!(partitions(3, 2, 1).len(), 3);
        assert!(partitions(3, 2, 2).is_empty());
        assert_eq!(partitions(4, 4, 1).len(), 1);
    }

    #[test]
    fn distances_are_cosine_distances() {
        // g0 = (1,0), g1 = (0,1), g2 = (-1,0)
        let gram = [1.0, 0.0, -1.0, 0.0, 1.0, 0.0, -1.0, 0.0, 1.0];
        let d = cosine_distances(&gram, 3);
        assert!((d[1] - 1.0).abs() < 1e-5 && (d[2] - 2.0).abs() < 1e-5 && d[0].abs() < 1e-5);
    }
}
