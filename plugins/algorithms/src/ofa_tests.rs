//! The `ofa` algorithm on an OFA-shaped fake space: phases, the learning rate per phase, the
//! teacher, evolution under a FLOPs or latency window.

use abi_stable::std_types::RVec;
use splitnas_plugin_api::author::AlgorithmPlugin;
use splitnas_plugin_api::{Architecture, ChoicePointInfo, Mask, OptionInfo, SpaceInfo, StepProgress, TrainingProgress};
use splitnas_plugin_testkit::host::{config_with, FakeHost};

use super::Ofa;

/// Two blocks' kernels and ratios, one stage's depth, as the ofa space names them.
fn ofa_like_space() -> SpaceInfo {
    let point = |name: &str, group: &str, options: [&str; 3]| ChoicePointInfo {
        name: name.into(),
        group: group.into(),
        options: options.iter().map(|option| OptionInfo { name: (*option).into(), costs: RVec::new() }).collect(),
        splittable: group == "kernel",
    };
    SpaceInfo {
        name: "ofa-like".into(),
        choice_points: vec![
            point("block 1 kernel", "kernel", ["3", "5", "7"]),
            point("block 2 kernel", "kernel", ["3", "5", "7"]),
            point("block 1 expand", "expand", ["3", "4", "6"]),
            point("block 2 expand", "expand", ["3", "4", "6"]),
            point("stage 1 depth", "depth", ["2", "3", "4"]),
        ]
        .into(),
        max_options: 3,
        min_group_size: 1,
    }
}

/// Block 1's kernel split off {7}: a leaf allowing {3, 5} there.
fn leaf_mask() -> Mask {
    let mut mask = ofa_like_space().full_mask();
    mask.rows[0] = vec![true, true, false].into();
    mask
}

/// The full network for 1 epoch, the kernel phase for 2, the rest for 1.
fn phases() -> serde_json::Value {
    serde_json::json!({
        "phases": [
            {"name": "full", "epochs": 1, "lr": 0.1, "subnets_per_step": 1, "allow": {"kernel": ["7"], "expand": ["6"], "depth": ["4"]}},
            {"name": "kernel", "epochs": 2, "lr": 0.06, "subnets_per_step": 1, "allow": {"expand": ["6"], "depth": ["4"]}},
            {"name": "rest", "epochs": 1, "lr": 0.02, "subnets_per_step": 3, "reorganize": {"expand_ratio_stage": 1}},
        ],
        "evolution": {"population": 6, "iterations": 3, "parent_ratio": 0.25, "mutation_ratio": 0.5, "mutate_probability": 0.3,
                      "min_flops": 0.0, "max_flops": 0.0, "max_tries": 200}
    })
}

fn ofa(host: &FakeHost, overrides: serde_json::Value) -> Ofa {
    Ofa::create(&config_with::<Ofa>(overrides), &host.setup(1)).unwrap_or_else(|error| panic!("{error}"))
}

fn at_epoch(host: &FakeHost, algorithm: &mut Ofa, epoch: u32) {
    let progress = TrainingProgress { epoch, total_epochs: 4 };
    host.progress.set(progress);
    algorithm.on_epoch_start(&host.context(), progress).unwrap();
}

/// The option each forward of the last `count` ran at each choice point.
fn last_paths(host: &FakeHost, count: usize) -> Vec<Vec<u32>> {
    let forwards = host.forwards.borrow();
    forwards[forwards.len() - count..].iter().map(|forward| (0..5).map(|point| forward.active.allowed(point)[0]).collect()).collect()
}

#[test]
fn each_phase_samples_its_groups_within_the_mask() {
    let host = FakeHost::with_space(ofa_like_space(), leaf_mask(), 5);
    let mut algorithm = ofa(&host, phases());
    at_epoch(&host, &mut algorithm, 0);
    algorithm.weight_step(&host.context(), &host.train_batch(0)).unwrap();
    // The full network, except block 1's kernel: the leaf lost 7, so its largest, 5.
    assert_eq!(last_paths(&host, 1), [vec![1, 2, 2, 2, 2]]);
    at_epoch(&host, &mut algorithm, 1);
    let mut kernels = std::collections::BTreeSet::new();
    for step in 0..30 {
        algorithm.weight_step(&host.context(), &host.train_batch(step)).unwrap();
        // The teacher's pass, then the student's subnet.
        let path = last_paths(&host, 1).remove(0);
        assert!(path[0] < 2, "block 1 kernel stays in the leaf's {{3, 5}}: {path:?}");
        assert_eq!(&path[2..], [2, 2, 2], "the kernel phase keeps expand 6 and depth 4");
        kernels.insert((path[0], path[1]));
    }
    assert!(kernels.len() >= 4, "kernels vary in the kernel phase: {kernels:?}");
    at_epoch(&host, &mut algorithm, 3);
    let before = host.forwards.borrow().len();
    algorithm.weight_step(&host.context(), &host.train_batch(0)).unwrap();
    assert_eq!(host.forwards.borrow().len() - before, 1 + 3, "the teacher's pass and three subnets per step");
}

#[test]
fn the_learning_rate_is_a_cosine_restarting_with_each_phase() {
    let host = FakeHost::with_space(ofa_like_space(), leaf_mask(), 5);
    let algorithm = ofa(&host, phases());
    let lr = |epoch: u32, step: u32| {
        algorithm.weight_learning_rate(StepProgress { epoch, total_epochs: 4, step, steps_per_epoch: 10 }).unwrap().expect("ofa schedules its rate")
    };
    assert_eq!(lr(0, 0), 0.1);
    assert!((lr(0, 5) - 0.05).abs() < 1e-12, "half way through the full phase");
    assert_eq!(lr(1, 0), 0.06, "the kernel phase restarts at its own rate");
    assert!((lr(2, 0) - 0.03).abs() < 1e-12, "half way through the 2-epoch kernel phase");
    assert!(lr(2, 9) < 0.001 && lr(2, 9) > 0.0);
    assert_eq!(lr(3, 0), 0.02);
}

#[test]
fn the_teacher_is_taken_after_its_phase_distils_and_survives_a_checkpoint() {
    let host = FakeHost::with_space(ofa_like_space(), leaf_mask(), 5).with_label_smoothing(0.1);
    let mut algorithm = ofa(&host, phases());
    at_epoch(&host, &mut algorithm, 0);
    assert!(algorithm.state_tensors().unwrap().is_empty(), "no teacher during the full phase");
    at_epoch(&host, &mut algorithm, 1);
    let saved = algorithm.state_tensors().unwrap();
    let names: Vec<String> = saved.iter().map(|named| named.name.to_string()).collect();
    assert_eq!(names, ["teacher.bias", "teacher.option_weights"], "by name");
    // The student moves on; the teacher does not, and the student's values come back after
    // the teacher's pass.
    tch::no_grad(|| {
        let _ = host.option_weights.shallow_clone().g_add_scalar_(0.5);
    });
    let student = host.option_weights.copy();
    let distilled = algorithm.weight_step(&host.context(), &host.train_batch(3)).unwrap().loss.tensor().double_value(&[]);
    assert!(host.option_weights.equal(&student), "the teacher's pass put the student's parameters back");
    assert!(!saved[1].tensor.tensor().equal(&student), "the teacher kept the values of the end of its phase");
    let mut without_teacher = ofa(
        &host,
        phases()
            .as_object()
            .cloned()
            .map(|mut object| {
                object.insert("kd_ratio".into(), 0.0.into());
                object.into()
            })
            .unwrap(),
    );
    at_epoch(&host, &mut without_teacher, 1);
    let plain = without_teacher.weight_step(&host.context(), &host.train_batch(3)).unwrap().loss.tensor().double_value(&[]);
    assert!((distilled - plain).abs() > 1e-6, "distillation changes the loss ({distilled} vs {plain})");
    // A resumed algorithm gets the teacher back from the checkpoint.
    let mut resumed = ofa(&host, phases());
    resumed.load_state_json(&algorithm.state_json().unwrap()).unwrap();
    resumed.load_state_tensors(algorithm.state_tensors().unwrap()).unwrap();
    let restored = resumed.state_tensors().unwrap();
    assert!(restored.iter().zip(&saved).all(|(a, b)| a.name == b.name && a.tensor.tensor().equal(&b.tensor.tensor())));
}

#[test]
fn evolution_returns_the_fittest_subnet_inside_the_mask_and_the_flops_window() {
    // FLOPs grow with every option index; accuracy too: the window decides.
    let flops = |architecture: &Architecture| architecture.choices.iter().map(|&choice| 10 * u64::from(choice)).sum::<u64>();
    let host = FakeHost::with_space(ofa_like_space(), leaf_mask(), 5)
        .with_network_flops(flops)
        .with_scorer(move |architecture| architecture.choices.iter().map(|&choice| f64::from(choice)).sum::<f64>() / 10.0);
    let mut config = phases();
    config["evolution"]["min_flops"] = 20.0.into();
    config["evolution"]["max_flops"] = 60.0.into();
    let mut algorithm = ofa(&host, config.clone());
    let architecture = algorithm.derive(&host.context()).unwrap();
    assert!(host.mask.contains(&architecture));
    assert_eq!(flops(&architecture), 60, "the fittest subnet at the window's top: {:?}", architecture.choices);
    for evaluated in host.evaluated.borrow().iter() {
        assert!(host.mask.contains(evaluated) && (20..=60).contains(&flops(evaluated)), "{:?}", evaluated.choices);
    }
    config["evolution"]["max_flops"] = 5.0.into();
    config["evolution"]["min_flops"] = 0.0.into();
    let error = ofa(&host, config).derive(&host.context()).unwrap_err();
    assert!(error.message.contains("FLOPs window") && error.message.contains("widen"), "{}", error.message);
}

#[test]
fn evolution_stays_inside_a_latency_window_and_says_what_it_needs_without_a_table() {
    // Latency grows with the kernels' and ratios' indices, accuracy with every index: the
    // latency window decides (the FLOPs window is off).
    let latency = |architecture: &Architecture| architecture.choices[..4].iter().map(|&choice| 1.5 * f64::from(choice)).sum::<f64>();
    let scorer = |architecture: &Architecture| architecture.choices.iter().map(|&choice| f64::from(choice)).sum::<f64>() / 10.0;
    let host = FakeHost::with_space(ofa_like_space(), leaf_mask(), 5).with_network_latency(latency).with_scorer(scorer);
    let mut config = phases();
    config["evolution"]["min_latency_ms"] = 1.0.into();
    config["evolution"]["max_latency_ms"] = 4.5.into();
    let architecture = ofa(&host, config.clone()).derive(&host.context()).unwrap();
    assert!(host.mask.contains(&architecture));
    assert!((1.0..=4.5).contains(&latency(&architecture)), "{:?}", architecture.choices);
    for evaluated in host.evaluated.borrow().iter() {
        assert!((1.0..=4.5).contains(&latency(evaluated)), "evaluated outside the window: {:?}", evaluated.choices);
    }
    assert!(host.metrics.borrow().iter().any(|(name, value)| name == "ofa/derived_latency_ms" && *value == latency(&architecture)));
    // A host without a latency table: the error names the window and what the host said.
    let without_table = FakeHost::with_space(ofa_like_space(), leaf_mask(), 5).with_scorer(scorer);
    let error = ofa(&without_table, config.clone()).derive(&without_table.context()).unwrap_err();
    assert!(error.message.contains("max_latency_ms") && error.message.contains("with_network_latency"), "{}", error.message);
    // An empty window is refused when the algorithm is created.
    config["evolution"]["min_latency_ms"] = 5.0.into();
    let error = Ofa::create(&config_with::<Ofa>(config), &host.setup(1)).err().unwrap();
    assert!(error.message.contains("min_latency_ms") && error.message.contains("empty"), "{}", error.message);
}

#[test]
fn the_accuracy_predictor_learns_the_ranking_and_replaces_the_evaluations_in_the_evolution() {
    // Accuracy a weighted sum of the option indices: every choice point matters, by its own
    // amount, so that a good predictor ranks the held-out subnets almost perfectly.
    let weights = [0.05, 0.03, 0.02, 0.011, 0.007];
    let accuracy = move |architecture: &Architecture| -> f64 {
        0.5 + architecture.choices.iter().zip(weights).map(|(&choice, weight)| weight * f64::from(choice)).sum::<f64>()
    };
    let host = FakeHost::with_space(ofa_like_space(), leaf_mask(), 5).with_scorer(accuracy);
    let mut config = phases();
    config["evolution"]["fitness"] = "predictor".into();
    config["evolution"]["predictor"] =
        serde_json::json!({"samples": 120, "held_out": 0.25, "hidden": 32, "layers": 2, "epochs": 150, "batch_size": 32, "learning_rate": 0.01});
    config["evolution"]["iterations"] = 6.into();
    let architecture = ofa(&host, config.clone()).derive(&host.context()).unwrap();
    assert!(host.mask.contains(&architecture));
    let metric = |name: &str| host.metrics.borrow().iter().find(|(metric, _)| metric == name).map(|(_, value)| *value).unwrap();
    let (tau, held_out) = (metric("ofa/predictor_held_out_kendall_tau"), metric("ofa/predictor_held_out"));
    assert_eq!(held_out, 30.0);
    assert!(tau > 0.8, "held-out Kendall tau {tau}");
    // Only the predictor's samples were evaluated through the supernet: the evolution asked
    // the predictor.
    assert_eq!(host.evaluated.borrow().len() as f64, metric("ofa/evaluated_subnets"));
    assert!(metric("ofa/evaluated_subnets") <= 120.0);
    // The best subnet of the leaf (largest indices where allowed) or one the predictor cannot
    // tell from it.
    let best = accuracy(&Architecture { choices: vec![1, 2, 2, 2, 2].into() });
    assert!(accuracy(&architecture) >= best - 0.012, "{:?} at {}, best {best}", architecture.choices, accuracy(&architecture));
    // Bad settings are refused when the algorithm is created.
    config["evolution"]["predictor"]["held_out"] = 1.5.into();
    let error = Ofa::create(&config_with::<Ofa>(config), &host.setup(1)).err().unwrap();
    assert!(error.message.contains("held_out"), "{}", error.message);
}

#[test]
fn phases_that_do_not_fill_the_search_or_name_unknown_groups_are_refused() {
    let host = FakeHost::with_space(ofa_like_space(), leaf_mask(), 5);
    let mut algorithm = ofa(&host, phases());
    let error = algorithm.on_epoch_start(&host.context(), TrainingProgress { epoch: 0, total_epochs: 9 }).unwrap_err();
    assert!(
        error.message.contains("4 epochs") && error.message.contains("kernel 2") && error.message.contains("[search] epochs"),
        "{}",
        error.message
    );
    let mut config = phases();
    config["phases"][0]["allow"]["width"] = serde_json::json!(["1"]);
    let error = Ofa::create(&config_with::<Ofa>(config), &host.setup(1)).err().unwrap();
    assert!(error.message.contains("`width`"), "{}", error.message);
    let mut config = phases();
    config["phases"][0]["allow"]["kernel"] = serde_json::json!(["9"]);
    let error = Ofa::create(&config_with::<Ofa>(config), &host.setup(1)).err().unwrap();
    assert!(error.message.contains("no option `9`"), "{}", error.message);
}

#[test]
fn a_teacher_loads_from_a_checkpoint_by_parameter_name() {
    let host = FakeHost::with_space(ofa_like_space(), leaf_mask(), 5);
    let scratch = std::env::temp_dir().join(format!("ofa-teacher-{}.safetensors", std::process::id()));
    // A node checkpoint's layout: `param.` parameters, other roles beside them.
    let weights = host.option_weights.detach().copy() + 1.0;
    let bias = host.bias.detach().copy() - 1.0;
    let noise = tch::Tensor::ones([2], (tch::Kind::Float, tch::Device::Cpu));
    tch::Tensor::write_safetensors(&[("param.option_weights", &weights), ("param.bias", &bias), ("sgd.option_weights", &noise)], &scratch).unwrap();
    let mut config = phases();
    config["teacher_checkpoint"] = scratch.display().to_string().into();
    config["teacher_phase"] = serde_json::Value::Null;
    let algorithm = ofa(&host, config);
    let tensors = algorithm.state_tensors().unwrap();
    let _ = std::fs::remove_file(&scratch);
    let names: Vec<String> = tensors.iter().map(|named| named.name.to_string()).collect();
    assert_eq!(names, ["teacher.bias", "teacher.option_weights"], "parameters only, by name");
    assert!(tensors[1].tensor.tensor().equal(&weights) && tensors[0].tensor.tensor().equal(&bias));
    let mut config = phases();
    config["teacher_checkpoint"] = "/nonexistent/teacher.safetensors".into();
    let error = Ofa::create(&config_with::<Ofa>(config), &host.setup(1)).err().unwrap();
    assert!(error.message.contains("teacher_checkpoint") && error.message.contains("/nonexistent/teacher.safetensors"), "{}", error.message);
}

#[test]
fn a_phase_asks_the_supernet_to_reorganize_once_at_its_start() {
    let host = FakeHost::with_space(ofa_like_space(), leaf_mask(), 5);
    let mut algorithm = ofa(&host, phases());
    for epoch in 0..3 {
        at_epoch(&host, &mut algorithm, epoch);
    }
    assert!(host.reorganizations.borrow().is_empty(), "no phase before `rest` reorganizes");
    at_epoch(&host, &mut algorithm, 3);
    assert_eq!(*host.reorganizations.borrow(), [r#"{"expand_ratio_stage":1}"#]);
    // The defaults: OFA's two expand phases, stages 0 then 1.
    let defaults = <Ofa as splitnas_plugin_api::author::Component>::default_config();
    let requests: Vec<&serde_json::Value> = defaults["phases"].as_array().unwrap().iter().filter_map(|phase| phase.get("reorganize")).collect();
    assert_eq!(requests, [&serde_json::json!({"expand_ratio_stage": 0}), &serde_json::json!({"expand_ratio_stage": 1})]);
}
