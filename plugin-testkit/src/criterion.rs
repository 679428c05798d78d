//! The split-criterion contract suite.
//!
//! Checks, by name:
//! - `create`: the factory accepts the default configuration (with the suite's overrides);
//! - `partition_of_allowed_options`: on several requests (masked options, several candidates,
//!   2 and more groups) the decision's choice point is a candidate and its groups partition
//!   exactly the allowed options of that choice point (each once, none disallowed, none
//!   empty) into the requested number of groups;
//! - `deterministic_for_seed`: two fresh criteria on contexts of the same seed decide alike;
//! - `two_option_choice_point`: a candidate with two allowed options splits into `{a}`, `{b}`.
//!
//! The requests give every candidate the same number of allowed options, so that a criterion
//! making one child per option (`exhaustive`) can be asked for that many groups
//! ([`CriterionSuiteConfig::one_child_per_option`]).

use std::collections::BTreeSet;

use abi_stable::std_types::RVec;
use splitnas_plugin_api::author::CriterionPlugin;
use splitnas_plugin_api::{ChoicePointInfo, Mask, OptionInfo, SpaceInfo, SplitDecision, SplitRequest};

use crate::criterion_context::FakeCriterionContext;
use crate::ContractReport;

/// How the suite runs a criterion.
#[derive(Clone, Debug)]
pub struct CriterionSuiteConfig {
    /// Merged over the component's default configuration, as the host merges a user's keys.
    pub overrides: serde_json::Value,
    /// The criterion makes one child per allowed option: the suite then asks for that many groups.
    pub one_child_per_option: bool,
    pub seed: u64,
}

impl Default for CriterionSuiteConfig {
    fn default() -> Self {
        CriterionSuiteConfig { overrides: serde_json::json!({}), one_child_per_option: false, seed: 7 }
    }
}

const MAX_OPTIONS: usize = 6;

/// A space of 4 choice points with 6, 6, 5, 6 options (the third has a padding column).
fn suite_space() -> SpaceInfo {
    let counts = [6, 6, 5, 6];
    SpaceInfo {
        name: "criterion-suite".into(),
        choice_points: counts
            .iter()
            .enumerate()
            .map(|(point, &count)| ChoicePointInfo {
                name: format!("point {point}").into(),
                group: "cell".into(),
                options: (0..count).map(|k| OptionInfo { name: format!("op{k}").into(), costs: RVec::new() }).collect(),
                splittable: true,
            })
            .collect(),
        max_options: MAX_OPTIONS as u32,
        min_group_size: 1,
    }
}

/// A mask whose rows allow `allowed[point]`.
fn mask_of(allowed: &[Vec<u32>]) -> Mask {
    Mask { rows: allowed.iter().map(|options| (0..MAX_OPTIONS as u32).map(|k| options.contains(&k)).collect()).collect() }
}

/// The requests of `partition_of_allowed_options`: (mask, candidates, groups unless one per option).
fn requests() -> Vec<(Mask, Vec<u32>, u32)> {
    vec![
        // Every option of points 0 and 1, four of point 3 (point 2 is not a candidate).
        (mask_of(&[vec![0, 1, 2, 3, 4, 5], vec![0, 1, 2, 3, 4, 5], vec![1, 3], vec![0, 2, 3, 5]]), vec![0, 1], 2),
        // Masked options: four allowed on each candidate, at different positions.
        (mask_of(&[vec![0, 1, 2, 3, 4, 5], vec![1, 2, 4, 5], vec![0, 1, 3, 4], vec![0, 2, 3, 5]]), vec![1, 2, 3], 2),
        // Three groups.
        (mask_of(&[vec![0, 1, 2, 3, 4, 5], vec![0, 1, 2, 3, 4, 5], vec![0, 1, 2, 3, 4], vec![0, 1, 2, 3, 4, 5]]), vec![0, 1, 3], 3),
    ]
}

fn request(mask: Mask, candidates: Vec<u32>, groups: u32, config: &CriterionSuiteConfig) -> SplitRequest {
    let groups = if config.one_child_per_option { mask.count(candidates[0] as usize) as u32 } else { groups };
    SplitRequest { space: suite_space(), mask, candidates: candidates.into(), groups }
}

fn context_for(request: &SplitRequest, seed: u64) -> FakeCriterionContext {
    FakeCriterionContext::new(seed).with_clusters_for(&request.mask, &request.candidates, request.groups.max(2) as usize, 0.3)
}

fn configuration<T: CriterionPlugin>(config: &CriterionSuiteConfig) -> String {
    let mut merged = T::default_config();
    if let Some(overrides) = config.overrides.as_object() {
        for (key, value) in overrides {
            merged[key] = value.clone();
        }
    }
    merged.to_string()
}

fn split<T: CriterionPlugin>(config: &CriterionSuiteConfig, request: &SplitRequest, seed: u64) -> Result<SplitDecision, String> {
    let mut criterion = T::create(&configuration::<T>(config)).map_err(|error| format!("create: {error}"))?;
    let context = context_for(request, seed);
    let decision = criterion.split(request, &context.context()).map_err(|error| format!("split: {error}"));
    decision
}

/// What is wrong with `decision` as an answer to `request`, if anything.
pub fn partition_problem(request: &SplitRequest, decision: &SplitDecision) -> Option<String> {
    let point = decision.choice_point;
    if !request.candidates.contains(&point) {
        return Some(format!("chose choice point {point}, which is not among the candidates {:?}", request.candidates));
    }
    let allowed: BTreeSet<u32> = request.mask.allowed(point as usize).into_iter().collect();
    if decision.groups.len() != request.groups as usize {
        return Some(format!("asked for {} groups, got {}: {:?}", request.groups, decision.groups.len(), decision.groups));
    }
    let mut seen = BTreeSet::new();
    for group in decision.groups.iter() {
        if group.is_empty() {
            return Some(format!("an empty group in {:?}", decision.groups));
        }
        for &option in group.iter() {
            if !allowed.contains(&option) {
                return Some(format!("option {option} of choice point {point} is not allowed by the mask (allowed {allowed:?})"));
            }
            if !seen.insert(option) {
                return Some(format!("option {option} of choice point {point} is in more than one group: {:?}", decision.groups));
            }
        }
    }
    if seen != allowed {
        let missing: Vec<u32> = allowed.difference(&seen).copied().collect();
        return Some(format!("allowed options {missing:?} of choice point {point} are in no group: {:?}", decision.groups));
    }
    None
}

/// Runs every check on `T`; see the module documentation.
pub fn run_contract<T: CriterionPlugin>(config: &CriterionSuiteConfig) -> ContractReport {
    let mut report = ContractReport::new(format!("criterion contract of {}", T::NAME));
    report.run("create", || T::create(&configuration::<T>(config)).map(drop).map_err(|error| error.to_string()));
    report.run("partition_of_allowed_options", || {
        for (index, (mask, candidates, groups)) in requests().into_iter().enumerate() {
            let request = request(mask, candidates, groups, config);
            let decision = split::<T>(config, &request, config.seed + index as u64)?;
            if let Some(problem) = partition_problem(&request, &decision) {
                return Err(format!("request {index}: {problem}"));
            }
        }
        Ok(())
    });
    report.run("deterministic_for_seed", || {
        let (mask, candidates, groups) = requests().swap_remove(1);
        let request = request(mask, candidates, groups, config);
        let first = split::<T>(config, &request, config.seed)?;
        let second = split::<T>(config, &request, config.seed)?;
        if first != second {
            return Err(format!("the same request and seed gave {first:?}, then {second:?}"));
        }
        Ok(())
    });
    report.run("two_option_choice_point", || {
        let mask = mask_of(&[vec![0, 1, 2, 3, 4, 5], vec![2, 4], vec![0, 1, 2, 3, 4], vec![0, 1, 2, 3, 4, 5]]);
        let request = SplitRequest { space: suite_space(), mask, candidates: vec![1].into(), groups: 2 };
        let decision = split::<T>(config, &request, config.seed)?;
        if let Some(problem) = partition_problem(&request, &decision) {
            return Err(problem);
        }
        Ok(())
    });
    report
}

/// Runs [`run_contract`] and panics with every failure.
pub fn assert_contract<T: CriterionPlugin>(config: &CriterionSuiteConfig) {
    run_contract::<T>(config).assert_passed();
}
