//! Gradient matching on ProxylessNAS-shaped choice points: blocks of 6 MBConv options, or 7
//! with `zero`, split three ways.
//!
//! GM-NAS's ProxylessNAS code never resets the accumulator of its 3-way partition search, so it
//! always returns the first partition it tries, `{3x3} | {5x5} | {7x7 + zero}`, whatever the
//! gradients say. The criterion here minimises the within-group distance over every partition
//! (groups of at least two), so gradients that agree along other lines give other groups.

use abi_stable::std_types::RVec;
use splitnas_plugin_api::author::CriterionPlugin;
use splitnas_plugin_api::*;
use splitnas_plugin_gm::GradientMatching;
use splitnas_plugin_testkit::criterion_context::FakeCriterionContext;

const OPTIONS: [&str; 7] = ["3x3_MBConv3", "3x3_MBConv6", "5x5_MBConv3", "5x5_MBConv6", "7x7_MBConv3", "7x7_MBConv6", "zero"];

/// Block 0 is a stage's first block (no `zero`), block 1 has `zero`.
fn proxylessnas_like_space() -> SpaceInfo {
    let options =
        |count: usize| -> RVec<OptionInfo> { OPTIONS[..count].iter().map(|name| OptionInfo { name: (*name).into(), costs: RVec::new() }).collect() };
    SpaceInfo {
        name: "proxylessnas-like".into(),
        choice_points: vec![
            ChoicePointInfo { name: "block 1".into(), group: "block".into(), options: options(6), splittable: true },
            ChoicePointInfo { name: "block 2".into(), group: "block".into(), options: options(7), splittable: true },
        ]
        .into(),
        max_options: 7,
        min_group_size: 1,
    }
}

fn sorted(groups: &RVec<RVec<u32>>) -> Vec<Vec<u32>> {
    let mut groups: Vec<Vec<u32>> = groups.iter().map(|group| group.to_vec()).collect();
    groups.sort();
    groups
}

fn split_three_ways(context: &FakeCriterionContext, candidates: Vec<u32>) -> SplitDecision {
    let mut criterion = GradientMatching::create(r#"{"repeats": 20, "min_group_size": 2}"#).unwrap();
    let space = proxylessnas_like_space();
    let request = SplitRequest { mask: space.full_mask(), space, candidates: candidates.into(), groups: 3 };
    criterion.split(&request, &context.context()).unwrap()
}

#[test]
fn three_way_partition_follows_the_gradients_not_the_kernel_sizes() {
    // Expand-3 5x5 agrees with expand-3 3x3; the expand-6 ones agree; 7x7_MBConv3 with zero.
    let clusters = vec![vec![0, 2], vec![1, 3, 5], vec![4, 6]];
    let context = FakeCriterionContext::new(8).with_clusters(1, &clusters, 0.05);
    let decision = split_three_ways(&context, vec![1]);
    assert_eq!(decision.choice_point, 1);
    let groups = sorted(&decision.groups);
    assert_eq!(groups, [vec![0, 2], vec![1, 3, 5], vec![4, 6]]);
    assert_ne!(groups, [vec![0, 1], vec![2, 3], vec![4, 5, 6]], "the reference code's fixed partition");
}

#[test]
fn a_block_without_zero_never_gains_it_and_the_most_disagreeing_block_is_split() {
    // Block 1 (no zero): three tight pairs, far apart. Block 2: all seven options agree.
    let context = FakeCriterionContext::new(9).with_clusters(0, &[vec![0, 5], vec![1, 4], vec![2, 3]], 0.05).with_clusters(
        1,
        &[vec![0, 1, 2, 3, 4, 5, 6]],
        0.05,
    );
    let decision = split_three_ways(&context, vec![0, 1]);
    assert_eq!(decision.choice_point, 0, "the block whose options disagree is split");
    assert_eq!(sorted(&decision.groups), [vec![0, 5], vec![1, 4], vec![2, 3]]);
    // Every candidate's partition covers exactly its allowed options: `zero` (6) only on block 2.
    for score in decision.scores.iter() {
        let mut covered: Vec<u32> = score.groups.iter().flatten().copied().collect();
        covered.sort_unstable();
        let expected: Vec<u32> = if score.choice_point == 0 { (0..6).collect() } else { (0..7).collect() };
        assert_eq!(covered, expected, "choice point {}", score.choice_point);
        assert!(score.groups.iter().all(|group| group.len() >= 2));
    }
}
