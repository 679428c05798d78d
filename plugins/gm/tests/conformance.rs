//! Gradient matching against a numpy fixture, and on constructed gradients.

use std::collections::HashMap;

use abi_stable::std_types::RVec;
use splitnas_plugin_api::author::CriterionPlugin;
use splitnas_plugin_api::*;
use splitnas_plugin_gm::GradientMatching;
use splitnas_plugin_testkit::criterion_context::FakeCriterionContext;
use tch::Tensor;

fn space(points: usize) -> SpaceInfo {
    let options: RVec<OptionInfo> = (0..5).map(|k| OptionInfo { name: format!("op{k}").into(), costs: RVec::new() }).collect();
    SpaceInfo {
        name: "test".into(),
        choice_points: (0..points)
            .map(|e| ChoicePointInfo { name: format!("{e}").into(), group: "cell".into(), options: options.clone(), splittable: true })
            .collect(),
        max_options: 5,
        min_group_size: 1,
    }
}

/// Serves prepared per-repeat gradients as Gram matrices, as the host does (float32 matmul).
fn fixed_gradients(gradients: HashMap<u32, (Vec<u32>, Vec<Tensor>)>) -> FakeCriterionContext {
    gradients.into_iter().fold(FakeCriterionContext::new(4), |context, (point, (options, repeats))| context.with_recorded(point, options, repeats))
}

fn split(context: &FakeCriterionContext, mask: Mask, candidates: Vec<u32>, repeats: u32) -> SplitDecision {
    let mut criterion = GradientMatching::create(&format!(r#"{{"repeats": {repeats}, "min_group_size": 2, "default_groups": 2}}"#)).unwrap();
    let request = SplitRequest { space: space(mask.rows.len()), mask, candidates: candidates.into(), groups: 2 };
    criterion.split(&request, &context.context()).unwrap()
}

fn tensor(rows: &serde_json::Value) -> Tensor {
    let rows: Vec<Vec<f32>> = serde_json::from_value(rows.clone()).unwrap();
    let (k, p) = (rows.len() as i64, rows[0].len() as i64);
    Tensor::from_slice(&rows.concat()).view([k, p])
}

fn sorted(groups: &RVec<RVec<u32>>) -> Vec<Vec<u32>> {
    let mut groups: Vec<Vec<u32>> = groups.iter().map(|g| g.to_vec()).collect();
    groups.sort();
    groups
}

#[test]
fn matches_the_numpy_fixture() {
    let fixture: serde_json::Value = serde_json::from_str(include_str!("fixtures/gm_fixture.json")).unwrap();
    let repeats = fixture["repeats"].as_u64().unwrap() as u32;
    let mut gradients = HashMap::new();
    let mut mask = space(6).full_mask();
    for (point, candidate) in fixture["candidates"].as_object().unwrap() {
        let point: u32 = point.parse().unwrap();
        let options: Vec<u32> = serde_json::from_value(candidate["options"].clone()).unwrap();
        for k in 0..5u32 {
            mask.rows[point as usize][k as usize] = options.contains(&k);
        }
        let per_repeat = candidate["gradients"].as_array().unwrap().iter().map(tensor).collect();
        gradients.insert(point, (options, per_repeat));
    }
    let mut candidates: Vec<u32> = gradients.keys().copied().collect();
    candidates.sort();
    let context = fixed_gradients(gradients);
    let decision = split(&context, mask, candidates, repeats);

    assert_eq!(decision.choice_point as u64, fixture["chosen"].as_u64().unwrap());
    assert_eq!(decision.scores.len(), 3);
    for score in decision.scores.iter() {
        let expected = &fixture["candidates"][score.choice_point.to_string()];
        let want = expected["score"].as_f64().unwrap();
        assert!((score.score - want).abs() < 1e-4 * want.abs().max(1.0), "choice point {}: score {} vs {want}", score.choice_point, score.score);
        let want_groups: Vec<Vec<u32>> = {
            let mut g: Vec<Vec<u32>> = serde_json::from_value(expected["groups"].clone()).unwrap();
            g.sort();
            g
        };
        assert_eq!(sorted(&score.groups), want_groups, "choice point {}", score.choice_point);
        assert_eq!(score.repeats, repeats);
    }
}

/// Tests run in parallel threads of one process and libtorch has one global generator: each
/// seeded draw holds this lock so that the same seed always gives the same gradients.
fn exclusive_generator() -> std::sync::MutexGuard<'static, ()> {
    static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());
    GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Options 0 and 1 push the shared weights one way, 2, 3 and 4 the other way.
fn opposing(strength: f32, seed: i64) -> Vec<Tensor> {
    let _generator = exclusive_generator();
    tch::manual_seed(seed);
    let direction = Tensor::randn([64], (tch::Kind::Float, tch::Device::Cpu));
    (0..8)
        .map(|_| {
            let rows: Vec<Tensor> = (0..5)
                .map(|k| {
                    let sign = if k < 2 { 1.0 } else { -strength };
                    &direction * sign as f64 + Tensor::randn([64], (tch::Kind::Float, tch::Device::Cpu)) * 0.3
                })
                .collect();
            Tensor::stack(&rows, 0)
        })
        .collect()
}

#[test]
fn opposing_groups_are_split_along_their_boundary_and_outscore_agreement() {
    let disagree = opposing(1.0, 1);
    let agree = opposing(-1.0, 2); // every option along +direction
    let all = vec![0, 1, 2, 3, 4];
    let gradients = HashMap::from([(0u32, (all.clone(), agree)), (1u32, (all.clone(), disagree))]);
    let context = fixed_gradients(gradients);
    let decision = split(&context, space(2).full_mask(), vec![0, 1], 8);
    assert_eq!(decision.choice_point, 1, "the disagreeing choice point is split");
    assert_eq!(sorted(&decision.groups), vec![vec![0, 1], vec![2, 3, 4]]);
    let score = |point: u32| decision.scores.iter().find(|s| s.choice_point == point).unwrap().score;
    assert!(score(1) > 2.0 * score(0), "disagreement {} vs agreement {}", score(1), score(0));
}

fn adaptive_split(context: &FakeCriterionContext, mask: Mask, candidates: Vec<u32>, max_repeats: u32) -> SplitDecision {
    let config = format!(r#"{{"repeats": {max_repeats}, "adaptive": true, "confidence": 0.95, "min_repeats": 5}}"#);
    let mut criterion = GradientMatching::create(&config).unwrap();
    let request = SplitRequest { space: space(mask.rows.len()), mask, candidates: candidates.into(), groups: 2 };
    criterion.split(&request, &context.context()).unwrap()
}

/// `repeats` noisy repeats in which options 0, 1 oppose 2, 3, 4 with `strength` (0: no structure).
fn noisy_opposing(strength: f32, noise: f64, repeats: usize, seed: i64) -> Vec<Tensor> {
    let _generator = exclusive_generator();
    tch::manual_seed(seed);
    let direction = Tensor::randn([64], (tch::Kind::Float, tch::Device::Cpu));
    (0..repeats)
        .map(|_| {
            let shared = Tensor::randn([64], (tch::Kind::Float, tch::Device::Cpu));
            let rows: Vec<Tensor> = (0..5)
                .map(|k| {
                    let sign = if k < 2 { strength } else { -strength };
                    &shared + &direction * sign as f64 + Tensor::randn([64], (tch::Kind::Float, tch::Device::Cpu)) * noise
                })
                .collect();
            Tensor::stack(&rows, 0)
        })
        .collect()
}

#[test]
fn adaptive_repeats_stop_early_on_a_clear_decision_and_agree_with_the_fixed_rule() {
    let all = vec![0, 1, 2, 3, 4];
    let gradients = || {
        HashMap::from([
            (0u32, (all.clone(), noisy_opposing(0.1, 0.5, 100, 1))),
            (1u32, (all.clone(), noisy_opposing(1.5, 0.5, 100, 2))),
            (2u32, (all.clone(), noisy_opposing(0.3, 0.5, 100, 3))),
        ])
    };
    let fixed_context = fixed_gradients(gradients());
    let fixed = split(&fixed_context, space(3).full_mask(), vec![0, 1, 2], 100);
    let adaptive_context = fixed_gradients(gradients());
    let adaptive = adaptive_split(&adaptive_context, space(3).full_mask(), vec![0, 1, 2], 100);
    assert_eq!((adaptive.choice_point, sorted(&adaptive.groups)), (fixed.choice_point, sorted(&fixed.groups)));
    assert_eq!(fixed.choice_point, 1);
    let used: u32 = adaptive.scores.iter().map(|s| s.repeats).sum();
    assert!(used < 60, "a clear decision takes few repeats, used {used} of 300");
    assert!(adaptive.scores.iter().all(|s| s.repeats >= 5), "every candidate gets min_repeats: {:?}", adaptive.scores);
    // What was served is what the scores count.
    assert_eq!(adaptive_context.total_served() as u32, used);
}

#[test]
fn adaptive_repeats_run_to_the_cap_when_candidates_tie() {
    let all = vec![0, 1, 2, 3, 4];
    // Identical streams: the two candidates can never be told apart.
    let gradients = HashMap::from([(0u32, (all.clone(), noisy_opposing(0.5, 0.5, 30, 7))), (1u32, (all.clone(), noisy_opposing(0.5, 0.5, 30, 7)))]);
    let context = fixed_gradients(gradients);
    let decision = adaptive_split(&context, space(2).full_mask(), vec![0, 1], 30);
    assert!(decision.scores.iter().all(|s| s.repeats == 30), "{:?}", decision.scores);
    assert_eq!(decision.choice_point, 0, "ties go to the first candidate, as in the fixed rule");
}

#[test]
fn gradient_matching_honours_the_criterion_contract() {
    use splitnas_plugin_testkit::criterion::{assert_contract, CriterionSuiteConfig};
    // Groups of one option are allowed here, so that a two-option choice point can be split.
    let overrides = serde_json::json!({"repeats": 4, "min_group_size": 1});
    assert_contract::<GradientMatching>(&CriterionSuiteConfig { overrides, ..CriterionSuiteConfig::default() });
}
