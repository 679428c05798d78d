//! The `exhaustive` and `random` criteria, called through the ABI as the host calls them.

use std::collections::BTreeSet;

use abi_stable::std_types::RVec;
use serde_json::{json, Value};
use splitnas_data::SeededRng;
use splitnas_e2e::*;
use splitnas_engine::components::{create_criterion, ComponentError};
use splitnas_engine::criterion::{run_split, HostCriterionContext, SplitError};
use splitnas_engine::plugins::PluginRegistry;
use splitnas_plugin_api::{ChoicePointInfo, Mask, OptionInfo, SpaceInfo, SplitDecision, SplitRequest};

fn registry() -> PluginRegistry {
    let mut registry = PluginRegistry::default();
    registry.add_file(&library_path("splitnas_plugin_split_criteria"));
    registry
}

/// An NB201-shaped space: 6 choice points of 5 options.
fn nb201_like(min_group_size: u32) -> SpaceInfo {
    let options: RVec<OptionInfo> =
        ["none", "skip", "conv1", "conv3", "pool"].iter().map(|n| OptionInfo { name: (*n).into(), costs: RVec::new() }).collect();
    SpaceInfo {
        name: "test".into(),
        choice_points: (0..6)
            .map(|e| ChoicePointInfo { name: format!("edge {e}").into(), group: "cell".into(), options: options.clone(), splittable: true })
            .collect(),
        max_options: 5,
        min_group_size,
    }
}

fn request(candidates: &[u32], groups: u32, mask: Option<Mask>) -> SplitRequest {
    let space = nb201_like(1);
    SplitRequest { mask: mask.unwrap_or_else(|| space.full_mask()), candidates: candidates.to_vec().into(), groups, space }
}

fn split(name: &str, config: Value, request: &SplitRequest, seed: u64) -> Result<SplitDecision, SplitError> {
    let mut criterion = create_criterion(&registry(), name, &config).unwrap();
    let context = HostCriterionContext::new(SeededRng::new(seed), None);
    run_split(&mut criterion, request, &context)
}

fn groups(decision: &SplitDecision) -> Vec<Vec<u32>> {
    decision.groups.iter().map(|g| g.to_vec()).collect()
}

#[test]
fn exhaustive_splits_edge_zero_into_one_child_per_option() {
    let decision = split("exhaustive", Value::Null, &request(&[0, 1, 2, 3, 4, 5], 5, None), 0).unwrap();
    assert_eq!(decision.choice_point, 0);
    assert_eq!(groups(&decision), vec![vec![0], vec![1], vec![2], vec![3], vec![4]]);
}

#[test]
fn exhaustive_moves_on_when_its_choice_point_was_split_and_honours_the_mask() {
    let mut mask = nb201_like(1).full_mask();
    mask.rows[2] = vec![false, true, false, true, false].into();
    let decision = split("exhaustive", json!({"choice_point": 2}), &request(&[1, 2, 4], 0, Some(mask)), 0).unwrap();
    assert_eq!(decision.choice_point, 2);
    assert_eq!(groups(&decision), vec![vec![1], vec![3]]);
    let decision = split("exhaustive", json!({"choice_point": 3}), &request(&[1, 2, 4], 0, None), 0).unwrap();
    assert_eq!(decision.choice_point, 4, "the next candidate after the configured one");
}

#[test]
fn exhaustive_refuses_a_group_count_it_cannot_make() {
    let error = split("exhaustive", Value::Null, &request(&[0], 2, None), 0).unwrap_err().to_string();
    assert!(error.contains("one child per option (5 here)"), "{error}");
}

#[test]
fn unknown_config_keys_are_rejected_by_name() {
    let error = create_criterion(&registry(), "exhaustive", &json!({"choice_pint": 1})).err().unwrap();
    assert!(matches!(error, ComponentError::UnknownKey { ref key, .. } if key == "choice_pint"), "{error}");
    assert!(error.to_string().contains("known keys: choice_point"), "{error}");
}

#[test]
fn random_makes_a_balanced_partition_of_a_candidate() {
    for seed in 0..20 {
        let decision = split("random", Value::Null, &request(&[1, 3, 5], 2, None), seed).unwrap();
        assert!([1, 3, 5].contains(&decision.choice_point));
        let mut sizes: Vec<usize> = decision.groups.iter().map(|g| g.len()).collect();
        sizes.sort();
        assert_eq!(sizes, vec![2, 3]);
        let all: BTreeSet<u32> = decision.groups.iter().flatten().copied().collect();
        assert_eq!(all, (0..5).collect());
    }
}

#[test]
fn random_is_reproducible_and_varies_with_the_seed() {
    let request = request(&[0, 1, 2, 3, 4, 5], 2, None);
    let first = split("random", Value::Null, &request, 7).unwrap();
    assert_eq!(first, split("random", Value::Null, &request, 7).unwrap());
    let distinct: BTreeSet<(u32, Vec<Vec<u32>>)> =
        (0..30).map(|seed| split("random", Value::Null, &request, seed).unwrap()).map(|d| (d.choice_point, groups(&d))).collect();
    assert!(distinct.len() > 10, "30 seeds gave only {} distinct splits", distinct.len());
}

#[test]
fn random_only_partitions_allowed_options() {
    let mut mask = nb201_like(1).full_mask();
    mask.rows[4] = vec![true, false, true, true, false].into();
    let decision = split("random", Value::Null, &request(&[4], 3, Some(mask)), 3).unwrap();
    assert_eq!(decision.choice_point, 4);
    assert!(decision.groups.iter().all(|g| g.len() == 1));
    let all: BTreeSet<u32> = decision.groups.iter().flatten().copied().collect();
    assert_eq!(all, BTreeSet::from([0, 2, 3]));
}

#[test]
fn random_refuses_too_few_options_for_the_groups() {
    let space = nb201_like(2);
    let request = SplitRequest { mask: space.full_mask(), candidates: vec![0u32].into(), groups: 3, space };
    let error = split("random", Value::Null, &request, 0).unwrap_err().to_string();
    assert!(error.contains("too few for 3 groups of at least 2"), "{error}");
}

#[test]
fn the_host_rejects_a_decision_that_is_not_a_partition() {
    let request = request(&[0, 1], 2, None);
    let mut decision = split("random", Value::Null, &request, 0).unwrap();
    let stolen = decision.groups[1][0];
    decision.groups[0].push(stolen);
    assert!(matches!(splitnas_engine::criterion::validate_decision(&request, &decision), Err(SplitError::NotAPartition { .. })));
    decision.choice_point = 5;
    assert!(matches!(splitnas_engine::criterion::validate_decision(&request, &decision), Err(SplitError::NotACandidate(5))));
    // A score for a choice point outside the candidates would name nothing in the split record.
    let mut decision = split("random", Value::Null, &request, 0).unwrap();
    decision.scores[0].choice_point = 99;
    assert!(matches!(splitnas_engine::criterion::validate_decision(&request, &decision), Err(SplitError::ScoredANonCandidate(99))));
}
