//! Gradient matching on OFA-shaped choice points: a block's kernel sizes {3, 5, 7}, split two
//! ways into {1, 2}.
//!
//! GM-NAS's OFA code overwrites the threshold of its 2-way partition search inside the loop, so
//! it always ends on `{7} | {3, 5}`, whatever the gradients say. The criterion here takes the
//! partition with the least within-group distance, which for three options into two groups is
//! the one with the largest cross-group distance (the paper's rule): gradients on which 5 and 7
//! agree, and 3 does not, give `{3} | {5, 7}`.

use abi_stable::std_types::RVec;
use splitnas_plugin_api::author::CriterionPlugin;
use splitnas_plugin_api::*;
use splitnas_plugin_gm::{best_partition, GradientMatching};
use splitnas_plugin_testkit::criterion_context::FakeCriterionContext;

/// Two blocks' kernel choice points, as the ofa space names them.
fn ofa_like_space() -> SpaceInfo {
    let kernels = || -> RVec<OptionInfo> { ["3", "5", "7"].iter().map(|name| OptionInfo { name: (*name).into(), costs: RVec::new() }).collect() };
    SpaceInfo {
        name: "ofa-like".into(),
        choice_points: vec![
            ChoicePointInfo { name: "block 1 kernel".into(), group: "kernel".into(), options: kernels(), splittable: true },
            ChoicePointInfo { name: "block 2 kernel".into(), group: "kernel".into(), options: kernels(), splittable: true },
        ]
        .into(),
        max_options: 3,
        min_group_size: 1,
    }
}

fn sorted(groups: &RVec<RVec<u32>>) -> Vec<Vec<u32>> {
    let mut groups: Vec<Vec<u32>> = groups.iter().map(|group| group.to_vec()).collect();
    groups.sort();
    groups
}

fn split_two_ways(context: &FakeCriterionContext, candidates: Vec<u32>) -> SplitDecision {
    let mut criterion = GradientMatching::create(r#"{"repeats": 20, "min_group_size": 1}"#).unwrap();
    let space = ofa_like_space();
    let request = SplitRequest { mask: space.full_mask(), space, candidates: candidates.into(), groups: 2 };
    criterion.split(&request, &context.context()).unwrap()
}

#[test]
fn distances_where_5_and_7_agree_split_off_3() {
    // Option indices: 0 = 3x3, 1 = 5x5, 2 = 7x7. Distances d(3,5) = 0.9, d(3,7) = 0.8, d(5,7) = 0.1.
    let distances = [0.0, 0.9, 0.8, 0.9, 0.0, 0.1, 0.8, 0.1, 0.0];
    let (labels, within, cross) = best_partition(&distances, 3, 2, 1).unwrap();
    assert_eq!(labels, [0, 1, 1], "{{3}} | {{5, 7}}");
    assert!((within - 0.1).abs() < 1e-12 && (cross - 1.7).abs() < 1e-12);
    // The largest cross-group distance picks the same partition among the three.
    let reference_bug = [0, 0, 1]; // {3, 5} | {7}
    let (_, bug_cross) = splitnas_plugin_gm::partition_distances(&distances, 3, &reference_bug);
    assert!(cross > bug_cross);
}

#[test]
fn gradients_on_which_5_and_7_agree_split_off_3_on_the_most_disagreeing_block() {
    // Block 1: 5x5 and 7x7 share a gradient direction, 3x3 goes its own way. Block 2: all agree.
    let context = FakeCriterionContext::new(11).with_clusters(0, &[vec![0], vec![1, 2]], 0.05).with_clusters(1, &[vec![0, 1, 2]], 0.05);
    let decision = split_two_ways(&context, vec![0, 1]);
    assert_eq!(decision.choice_point, 0, "the block whose kernels disagree is split");
    let groups = sorted(&decision.groups);
    assert_eq!(groups, [vec![0], vec![1, 2]]);
    assert_ne!(groups, [vec![0, 1], vec![2]], "the reference code's fixed {{7}} | {{3, 5}}");
}
