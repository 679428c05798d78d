//! ProxylessNAS on the test kit's fake host: binary gates, the binarized gradient, the
//! rescaling, the expected-cost loss.

use super::*;
use serde_json::json;
use splitnas_plugin_testkit::host::*;

fn proxyless(host: &FakeHost, overrides: serde_json::Value) -> ProxylessNas {
    ProxylessNas::create(&config_with::<ProxylessNas>(overrides), &host.setup(0)).unwrap()
}

/// softmax(α) within the host's mask.
fn probabilities(algorithm: &ProxylessNas) -> Vec<Vec<f32>> {
    rows(&algorithm.space.masked_softmax(&alpha_of(algorithm)).unwrap())
}

#[test]
fn the_binarized_gradient_is_the_papers_over_the_two_renormalised_probabilities() {
    let (logits, gate_gradients) = ([0.3, -0.2], [1.5, -0.5]);
    let p0 = 0.3f64.exp() / (0.3f64.exp() + (-0.2f64).exp());
    let p1 = 1.0 - p0;
    let gradient = binarized_gradient(logits, gate_gradients);
    // Σ_j G_j p_j (δ_ij − p_i): for two options, p0·p1·(G_i − G_other).
    assert!((gradient[0] - p0 * p1 * (1.5 - -0.5)).abs() < 1e-12, "{gradient:?}");
    assert!((gradient[1] - p0 * p1 * (-0.5 - 1.5)).abs() < 1e-12, "{gradient:?}");
    assert_eq!(binarized_gradient([0.0, 0.0], [2.0, 2.0]), [0.0, 0.0], "equal gate gradients move nothing");
}

#[test]
fn weighted_draws_follow_their_weights_and_never_pick_a_zero() {
    let weights = [0.0, 0.25, 0.0, 0.75];
    let mut generator = splitnas_plugin_testkit::SeededRng::new(5);
    let mut counts = [0usize; 4];
    for _ in 0..4000 {
        counts[draw_weighted(&weights, generator.next_u64())] += 1;
    }
    assert_eq!((counts[0], counts[2]), (0, 0));
    assert!((counts[3] as f64 / 4000.0 - 0.75).abs() < 0.03, "{counts:?}");
}

/// The architecture step computes exactly two options per choice point (one where the mask
/// allows one), gated 1 and 0, only every `arch_update_every`-th call, and updates α itself.
#[test]
fn architecture_steps_compute_two_paths_per_choice_point_every_kth_call() {
    let host = FakeHost::new(31);
    let mut algorithm = proxyless(&host, json!({ "arch_update_every": 2, "arch_lr": 0.01 }));
    let alpha = alpha_of(&algorithm);
    let initial = alpha.copy();
    for call in 1..=4 {
        let step = algorithm.architecture_step(&host.context(), &host.valid_batch(call), &host.train_batch(call)).unwrap();
        assert!(matches!(step, ArchitectureStep::Skip), "α is stepped by the algorithm, not the host");
        assert_eq!(host.forwards.borrow().len(), call / 2, "call {call}: a forward on every second call only");
        if call == 1 {
            assert!(alpha.equal(&initial), "no update before the k-th call");
        }
    }
    assert!(!alpha.equal(&initial), "α moved");
    for forward in host.forwards.borrow().iter() {
        let gates = rows(&forward.weights);
        for (point, row) in forward.active.rows.iter().enumerate() {
            let computed: Vec<usize> = (0..row.len()).filter(|&option| row[option]).collect();
            assert_eq!(computed.len(), host.mask.count(point).min(2), "choice point {point}: {computed:?}");
            assert!(computed.iter().all(|&option| host.mask.is_allowed(point, option)));
            let hot: Vec<usize> = computed.iter().copied().filter(|&option| gates[point][option] == 1.0).collect();
            assert_eq!(hot.len(), 1, "choice point {point}: one active gate among the computed, {:?}", gates[point]);
            assert!(gates[point].iter().all(|&gate| gate == 0.0 || gate == 1.0));
        }
    }
}

/// The rescaling keeps the summed exp of the two sampled options, so the options that were
/// not sampled keep their probabilities while the sampled two trade theirs.
#[test]
fn an_update_leaves_the_probabilities_of_unsampled_options_unchanged() {
    let host = FakeHost::new(32);
    let mut algorithm = proxyless(&host, json!({ "arch_update_every": 1, "arch_lr": 0.1, "alpha_init_std": 0.5 }));
    let before = probabilities(&algorithm);
    algorithm.architecture_step(&host.context(), &host.valid_batch(0), &host.train_batch(0)).unwrap();
    let after = probabilities(&algorithm);
    let forwards = host.forwards.borrow();
    let computed = &forwards[0].active;
    let mut sampled_moved = false;
    for point in 0..host.mask.rows.len() {
        for option in host.mask.allowed(point) {
            let (was, is) = (before[point][option as usize], after[point][option as usize]);
            if computed.rows[point][option as usize] {
                sampled_moved |= (was - is).abs() > 1e-4;
            } else {
                assert!((was - is).abs() < 1e-6, "unsampled option {option} of choice point {point}: {was} -> {is}");
            }
        }
    }
    assert!(sampled_moved, "the sampled options' probabilities changed");
}

#[test]
fn weight_steps_train_one_sampled_path_with_the_hosts_label_smoothing() {
    let host = FakeHost::new(33).with_label_smoothing(0.2);
    let mut algorithm = proxyless(&host, json!({ "alpha_init_std": 1.0 }));
    let alpha = alpha_of(&algorithm);
    let batch = host.train_batch(0);
    let output = algorithm.weight_step(&host.context(), &batch).unwrap();
    assert!(!output.trains_architecture);
    let loss = output.loss.into_tensor();
    assert!(!Tensor::run_backward(&[&loss], &[&alpha], true, false)[0].defined(), "α is not in the weight step's graph");
    let forwards = host.forwards.borrow();
    let recorded = &forwards[0];
    for (point, row) in recorded.active.rows.iter().enumerate() {
        assert_eq!(row.iter().filter(|&&on| on).count(), 1, "choice point {point}: a single path");
    }
    // (1 − ε)·CE + ε·mean over classes of −log softmax: PyTorch's label smoothing.
    let logits = FakeHost::logits_with(&batch.images.tensor(), &host.option_weights, &host.bias, &recorded.weights, &recorded.active);
    let log_probabilities = logits.log_softmax(-1, Kind::Float);
    let plain = log_probabilities.nll_loss(&batch.labels.tensor());
    let uniform = log_probabilities.mean_dim(-1, false, Kind::Float).neg().mean(Kind::Float);
    let expected = plain * 0.8 + uniform * 0.2;
    assert!((loss.double_value(&[]) - expected.double_value(&[])).abs() < 1e-5);
}

#[test]
fn a_tiny_search_learns() {
    let host = FakeHost::new(34);
    let mut algorithm = proxyless(&host, json!({ "arch_update_every": 1, "arch_lr": 0.05 }));
    let _alpha = assert_search_learns(&host, &mut algorithm, 120);
}

/// Costs of the toy task's options: the best option (2) is the costliest.
const TOY_COSTS: [f64; 3] = [1.0, 2.0, 10.0];

fn toy_costs() -> Vec<Vec<f64>> {
    vec![TOY_COSTS.to_vec(); TOY_CHOICE_POINTS]
}

/// With growing cost weight, α's expected cost falls and the derived architecture gets cheaper:
/// from the accurate but costly option everywhere to the cheapest.
#[test]
fn alpha_moves_towards_cheaper_options_as_the_cost_weight_grows() {
    let mut expected_costs = Vec::new();
    let mut derived_costs = Vec::new();
    for weight in [0.0, 0.5, 5.0] {
        let host = FakeHost::toy_task(35, 2).with_option_costs("flops", toy_costs());
        let mut algorithm =
            proxyless(&host, json!({ "arch_update_every": 1, "arch_lr": 0.05, "cost_form": "additive", "cost_weight": weight, "cost_target": 10.0 }));
        run_search(&host, &mut algorithm, 150, 0.0, 0.0);
        let expected: f64 = probabilities(&algorithm).iter().map(|row| row.iter().zip(TOY_COSTS).map(|(&p, c)| f64::from(p) * c).sum::<f64>()).sum();
        let derived = algorithm.derive(&host.context()).unwrap();
        expected_costs.push(expected);
        derived_costs.push(derived.choices.iter().map(|&choice| TOY_COSTS[choice as usize]).sum::<f64>());
        if weight == 0.0 {
            assert_eq!(derived.choices.as_slice(), &[2, 2, 2], "without costs the accurate option wins");
        }
    }
    assert!(expected_costs.windows(2).all(|pair| pair[1] < pair[0]), "expected cost by weight: {expected_costs:?}");
    assert!(derived_costs.windows(2).all(|pair| pair[1] <= pair[0]), "derived cost by weight: {derived_costs:?}");
    assert!(derived_costs[2] < derived_costs[0], "derived cost by weight: {derived_costs:?}");
}

/// The two forms on uniform α (std 0): E[cost] = fixed + Σ mean cost per choice point.
#[test]
fn cost_terms_are_the_papers_multiplicative_and_the_references_additive_forms() {
    let host = FakeHost::toy_task(36, 0).with_option_costs("flops", toy_costs());
    let expected_cost = 7.0 + TOY_CHOICE_POINTS as f64 * TOY_COSTS.iter().sum::<f64>() / 3.0;
    let cross_entropy = Tensor::from(2.0f32);
    let base = json!({ "alpha_init_std": 0.0, "fixed_cost": 7.0, "cost_target": 20.0, "cost_weight": 0.6 });
    let mut multiplicative = proxyless(&host, base.clone());
    let loss = multiplicative.with_cost_term(&host.context(), &cross_entropy).unwrap().double_value(&[]);
    assert!((loss - 2.0 * (expected_cost.ln() / 20f64.ln()).powf(0.6)).abs() < 1e-5, "{loss}");
    let mut additive =
        proxyless(&host, json!({ "alpha_init_std": 0.0, "fixed_cost": 7.0, "cost_target": 20.0, "cost_weight": 0.6, "cost_form": "additive" }));
    let loss = additive.with_cost_term(&host.context(), &cross_entropy).unwrap().double_value(&[]);
    assert!((loss - (2.0 + 0.6 * (expected_cost - 20.0) / 20.0)).abs() < 1e-5, "{loss}");
    assert!(host.metrics.borrow().iter().any(|(name, value)| name == "proxylessnas/expected_cost" && (value - expected_cost).abs() < 1e-4));
}

#[test]
fn a_cost_weight_without_costs_or_target_is_refused_by_name() {
    let host = FakeHost::new(37);
    let mut algorithm = proxyless(&host, json!({ "arch_update_every": 1, "cost_weight": 0.6, "cost_target": 300.0 }));
    let error = algorithm.architecture_step(&host.context(), &host.valid_batch(0), &host.train_batch(0)).err().unwrap();
    assert!(error.message.contains("option_cost") && error.message.contains("cost_weight"), "{}", error.message);
    let error = ProxylessNas::create(&config_with::<ProxylessNas>(json!({ "cost_weight": 0.6 })), &host.setup(0)).err().unwrap();
    assert!(error.message.contains("cost_target"), "{}", error.message);
    let error = ProxylessNas::create(&config_with::<ProxylessNas>(json!({ "arch_beta1": 1.0 })), &host.setup(0)).err().unwrap();
    assert!(error.message.contains("arch_beta1"), "{}", error.message);
}

/// The counter and α's Adam moments survive a checkpoint.
#[test]
fn state_round_trips_with_the_adam_moments() {
    let host = FakeHost::new(38);
    let mut algorithm = proxyless(&host, json!({ "arch_update_every": 2 }));
    for call in 0..5 {
        algorithm.architecture_step(&host.context(), &host.valid_batch(call), &host.train_batch(call)).unwrap();
    }
    let state = algorithm.state_json().unwrap();
    let mut restored = proxyless(&host, json!({ "arch_update_every": 2 }));
    restored.load_state_json(&state).unwrap();
    assert_eq!(restored.state, algorithm.state);
    assert_eq!((restored.state.calls, restored.state.adam_steps), (5, 2));
    assert!(restored.load_state_json(r#"{"calls": 1, "adam_steps": 1, "first_moment": [1.0], "second_moment": [1.0]}"#).is_err());
}
