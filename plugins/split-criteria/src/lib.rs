//! Split criteria that need no gradients:
//!
//! - `exhaustive` (Few-Shot NAS, Zhao et al. 2021): one child per allowed option of a fixed
//!   choice point (edge 0, `1<-0`, by default);
//! - `random`: a random balanced partition of a random candidate.

use serde::Deserialize;
use serde_json::json;
use splitnas_plugin_api::author::{parse_config, Component, CriterionPlugin};
use splitnas_plugin_api::{CandidateScore, CriterionContextRef, PluginError, SplitDecision, SplitRequest};

splitnas_plugin_api::export_plugin!("split-criteria");
splitnas_plugin_api::export_criterion!(Exhaustive);
splitnas_plugin_api::export_criterion!(Random);

pub struct Exhaustive {
    config: ExhaustiveConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExhaustiveConfig {
    /// The choice point to split; if a leaf already split it, the next candidate after it.
    choice_point: u32,
}

impl Component for Exhaustive {
    const NAME: &'static str = "exhaustive";
    const DESCRIPTION: &'static str = "Few-Shot NAS: one child per option of a fixed choice point (default 0)";
    fn default_config() -> serde_json::Value {
        json!({ "choice_point": 0 })
    }
}

impl CriterionPlugin for Exhaustive {
    fn create(config: &str) -> Result<Self, PluginError> {
        Ok(Exhaustive { config: parse_config(Self::NAME, config)? })
    }

    fn split(&mut self, request: &SplitRequest, _context: &CriterionContextRef<'_>) -> Result<SplitDecision, PluginError> {
        let wanted = self.config.choice_point;
        let point = request
            .candidates
            .iter()
            .copied()
            .filter(|&c| c >= wanted)
            .min()
            .or_else(|| request.candidates.iter().copied().min())
            .ok_or_else(|| PluginError::invalid_input("no candidate choice point left to split"))?;
        let allowed = request.mask.allowed(point as usize);
        if request.groups != 0 && request.groups as usize != allowed.len() {
            return Err(PluginError::invalid_input(format!(
                "exhaustive splitting makes one child per option ({} here), but {} groups were asked for: set the split's groups to {} or 0",
                allowed.len(),
                request.groups,
                allowed.len()
            )));
        }
        let groups: abi_stable::std_types::RVec<_> = allowed.iter().map(|&k| vec![k].into()).collect();
        Ok(SplitDecision {
            choice_point: point,
            groups: groups.clone(),
            scores: vec![CandidateScore { choice_point: point, score: 0.0, groups, repeats: 0 }].into(),
        })
    }
}

pub struct Random;

impl Component for Random {
    const NAME: &'static str = "random";
    const DESCRIPTION: &'static str = "a random balanced partition of a random candidate choice point";
    fn default_config() -> serde_json::Value {
        json!({})
    }
}

/// Uniform in `0..bound` from the host's seeded generator (rejection sampling, no modulo bias).
fn uniform(context: &CriterionContextRef<'_>, bound: u64) -> Result<u64, PluginError> {
    let zone = u64::MAX - u64::MAX % bound;
    loop {
        let value = context.next_random().into_result()?;
        if value < zone {
            return Ok(value % bound);
        }
    }
}

impl CriterionPlugin for Random {
    fn create(config: &str) -> Result<Self, PluginError> {
        let keys: serde_json::Map<String, serde_json::Value> = parse_config(Self::NAME, config)?;
        if let Some(key) = keys.keys().next() {
            return Err(PluginError::invalid_config(format!("random: unknown config key `{key}` (it takes none)")));
        }
        Ok(Random)
    }

    fn split(&mut self, request: &SplitRequest, context: &CriterionContextRef<'_>) -> Result<SplitDecision, PluginError> {
        if request.candidates.is_empty() {
            return Err(PluginError::invalid_input("no candidate choice point left to split"));
        }
        let groups = if request.groups == 0 { 2 } else { request.groups as usize };
        let point = request.candidates[uniform(context, request.candidates.len() as u64)? as usize];
        let mut options = request.mask.allowed(point as usize);
        let min_group = request.space.min_group_size.max(1) as usize;
        if options.len() < groups * min_group {
            return Err(PluginError::invalid_input(format!(
                "choice point {point} has {} allowed options, too few for {groups} groups of at least {min_group}",
                options.len()
            )));
        }
        // Fisher-Yates, then deal round-robin: group sizes differ by at most one.
        for i in (1..options.len()).rev() {
            let j = uniform(context, i as u64 + 1)? as usize;
            options.swap(i, j);
        }
        let mut partition = vec![Vec::new(); groups];
        for (i, option) in options.into_iter().enumerate() {
            partition[i % groups].push(option);
        }
        for group in &mut partition {
            group.sort_unstable();
        }
        partition.sort();
        let partition: abi_stable::std_types::RVec<_> = partition.into_iter().map(Into::into).collect();
        Ok(SplitDecision {
            choice_point: point,
            groups: partition.clone(),
            scores: vec![CandidateScore { choice_point: point, score: 0.0, groups: partition, repeats: 0 }].into(),
        })
    }
}
