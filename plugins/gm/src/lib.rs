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
//!
//! With `adaptive = true`, repeats are drawn round-robin over the candidates and stop as soon as
//! the decision is settled at the configured confidence (see [`adaptive`]); `repeats` is then
//! the most any candidate gets.

pub mod adaptive;

use serde::{Deserialize, Serialize};
use serde_json::json;
use splitnas_plugin_api::author::{parse_config, Component, CriterionPlugin};
use splitnas_plugin_api::{CandidateScore, CriterionContextRef, GramSample, PluginError, SplitDecision, SplitRequest};

splitnas_plugin_api::export_plugin!("gm");
splitnas_plugin_api::export_criterion!(GradientMatching);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct GradientMatchingConfig {
    /// Gradient repeats per candidate (the paper: 100; its fast mode: 10); with `adaptive`, the
    /// most any candidate gets.
    repeats: u32,
    /// Stop drawing repeats once the decision is settled at `confidence`.
    adaptive: bool,
    /// How sure the adaptive rule must be that the chosen candidate and partition are the ones
    /// unlimited repeats would choose (one-sided, Bonferroni over the comparisons made).
    confidence: f64,
    /// Repeats every candidate gets before the adaptive rule may stop or drop it.
    min_repeats: u32,
    /// Relative indifference zone of the adaptive rule: score differences below this fraction
    /// of the leader's score count as ties settled for the leader (0: strict).
    indifference: f64,
    /// Smallest group a partition may contain (NB201 {2,3}, DARTS {2,5}/{3,4}: 2; OFA: 1).
    /// The space's own minimum applies too, whichever is larger.
    min_group_size: u32,
    /// Children per split when the request leaves it open (0 groups).
    default_groups: u32,
}

impl Default for GradientMatchingConfig {
    fn default() -> Self {
        GradientMatchingConfig {
            repeats: 100,
            adaptive: false,
            confidence: 0.95,
            min_repeats: 10,
            indifference: 0.0,
            min_group_size: 2,
            default_groups: 2,
        }
    }
}

pub struct GradientMatching {
    config: GradientMatchingConfig,
}

impl Component for GradientMatching {
    const NAME: &'static str = "gm";
    const DESCRIPTION: &'static str = "gradient matching: split the choice point whose options' shared-weight gradients disagree most";
    fn default_config() -> serde_json::Value {
        json!(GradientMatchingConfig::default())
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

/// Within-group and cross-group distance of a partition (sums over unordered pairs).
pub fn partition_distances(distances: &[f64], n: usize, labels: &[usize]) -> (f64, f64) {
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

/// The best partition of a mean distance matrix: least within-group distance (sum over
/// unordered pairs); returns (labels, within, cross). Ties keep the first enumerated.
pub fn best_partition(distances: &[f64], n: usize, groups: usize, min_size: usize) -> Option<(Vec<usize>, f64, f64)> {
    let mut best: Option<(Vec<usize>, f64, f64)> = None;
    for labels in partitions(n, groups, min_size) {
        let (within, cross) = partition_distances(distances, n, &labels);
        if best.as_ref().is_none_or(|(_, best_within, _)| within < *best_within) {
            best = Some((labels, within, cross));
        }
    }
    best
}

impl GradientMatching {
    /// One repeat's cosine-distance matrix of a candidate, checked against its allowed options.
    fn repeat_distances(choice_point: u32, allowed: &[u32], context: &CriterionContextRef<'_>) -> Result<Vec<f64>, PluginError> {
        let GramSample { options, gram } = context.gradient_gram(choice_point).into_result()?;
        let k = options.len();
        if gram.len() != k * k {
            return Err(PluginError::invalid_input(format!("the host sent a Gram matrix of {} entries for {k} options", gram.len())));
        }
        if options.as_slice() != allowed {
            return Err(PluginError::invalid_input(format!(
                "the host sent gradients for options {:?} of choice point {choice_point}, whose allowed options are {allowed:?}",
                options.as_slice()
            )));
        }
        Ok(cosine_distances(&gram, k))
    }
}

impl CriterionPlugin for GradientMatching {
    fn create(config: &str) -> Result<Self, PluginError> {
        let config: GradientMatchingConfig = parse_config(Self::NAME, config)?;
        if config.repeats == 0 {
            return Err(PluginError::invalid_config("gm: `repeats` must be at least 1"));
        }
        if !(config.confidence > 0.0 && config.confidence < 1.0) {
            return Err(PluginError::invalid_config(format!("gm: `confidence` must lie strictly between 0 and 1 (got {})", config.confidence)));
        }
        Ok(GradientMatching { config })
    }

    fn split(&mut self, request: &SplitRequest, context: &CriterionContextRef<'_>) -> Result<SplitDecision, PluginError> {
        let groups = if request.groups == 0 { self.config.default_groups } else { request.groups } as usize;
        let min_size = self.config.min_group_size.max(request.space.min_group_size).max(1) as usize;
        let mut candidates: Vec<Candidate> = request
            .candidates
            .iter()
            .map(|&choice_point| Candidate::new(choice_point, request.mask.allowed(choice_point as usize), groups, min_size))
            .filter(|candidate| !candidate.partitions.is_empty()) // too few options left to split this way
            .collect();
        if candidates.is_empty() {
            return Err(PluginError::invalid_input(format!("no candidate has enough allowed options for {groups} groups of at least {min_size}")));
        }
        let mut draw = |candidate: &mut Candidate| -> Result<(), PluginError> {
            let distances = Self::repeat_distances(candidate.choice_point, &candidate.options, context)?;
            candidate.repeats.push(distances);
            Ok(())
        };
        if self.config.adaptive {
            let config = &self.config;
            let rule =
                adaptive::StoppingRule::new(config.confidence, config.min_repeats.max(2) as usize, config.repeats as usize, config.indifference);
            rule.run(&mut candidates, &mut draw)?;
        } else {
            // The paper's order: all repeats of one candidate, then the next.
            for candidate in candidates.iter_mut() {
                for _ in 0..self.config.repeats {
                    draw(candidate)?;
                }
            }
        }
        let mut scores: Vec<CandidateScore> = Vec::new();
        for candidate in &candidates {
            let (labels, _within, cross) = candidate.best_partition();
            let partition: Vec<abi_stable::std_types::RVec<u32>> =
                (0..groups).map(|g| candidate.options.iter().zip(&labels).filter(|(_, &l)| l == g).map(|(&o, _)| o).collect()).collect();
            let _ = context.log_metric(format!("gm.score.{}", candidate.choice_point).as_str().into(), cross);
            scores.push(CandidateScore {
                choice_point: candidate.choice_point,
                score: cross,
                groups: partition.into(),
                repeats: candidate.repeats.len() as u32,
            });
        }
        // Candidates the adaptive rule dropped are confidently worse than the one it kept.
        let best = scores
            .iter()
            .enumerate()
            .filter(|(index, _)| !candidates[*index].dropped)
            .max_by(|(ia, a), (ib, b)| a.score.total_cmp(&b.score).then(ib.cmp(ia)))
            .map(|(i, _)| i)
            .expect("at least one candidate is never dropped");
        let chosen = scores[best].clone();
        Ok(SplitDecision { choice_point: chosen.choice_point, groups: chosen.groups, scores: scores.into() })
    }
}

/// A candidate choice point, its partitions and the distance matrices of its repeats so far.
pub struct Candidate {
    pub choice_point: u32,
    pub options: Vec<u32>,
    pub partitions: Vec<Vec<usize>>,
    /// Per repeat, the row-major K×K cosine-distance matrix.
    pub repeats: Vec<Vec<f64>>,
    /// Dropped by the adaptive rule: confidently not the one to split.
    pub dropped: bool,
}

impl Candidate {
    pub fn new(choice_point: u32, options: Vec<u32>, groups: usize, min_size: usize) -> Self {
        let partitions = partitions(options.len(), groups, min_size);
        Candidate { choice_point, options, partitions, repeats: Vec::new(), dropped: false }
    }

    /// The mean distance matrix over the repeats so far.
    pub fn mean_distances(&self) -> Vec<f64> {
        let k = self.options.len();
        let mut sum = vec![0.0; k * k];
        for repeat in &self.repeats {
            sum.iter_mut().zip(repeat).for_each(|(total, d)| *total += d);
        }
        let count = self.repeats.len().max(1) as f64;
        sum.into_iter().map(|d| d / count).collect()
    }

    /// The best partition of the mean matrix: (labels, within, cross).
    pub fn best_partition(&self) -> (Vec<usize>, f64, f64) {
        let k = self.options.len();
        let mean = self.mean_distances();
        self.partitions
            .iter()
            .map(|labels| {
                let (within, cross) = partition_distances(&mean, k, labels);
                (labels.clone(), within, cross)
            })
            .fold(None::<(Vec<usize>, f64, f64)>, |best, next| match best {
                Some(best) if best.1 <= next.1 => Some(best),
                _ => Some(next),
            })
            .expect("a candidate has at least one partition")
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
