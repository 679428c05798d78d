//! The plugin against the official implementation: fixtures in `tests/fixtures`, made by
//! `make_fixtures.py` with `ofa`'s `OFAMobileNetV3` (see its docstring for what each file holds
//! and how to regenerate them).
//!
//! - parameters and FLOPs of extracted subnets (max, min, seeded random; widths 1.0 and 1.2;
//!   images 224, 160, 128; 1000 and 10 classes) against `get_active_subnet()`;
//! - the kernel transform (7x7 to 5x5 to 3x3 through the learned matrices, on a channel
//!   prefix too) and the depthwise convolution with each kernel;
//! - subnets inside a tiny supernet whose every tensor was randomised: training forward,
//!   loss, backward (which tensors get a gradient, and its values), running statistics (BN
//!   prefixes), evaluation forward; then the extracted static subnet with the supernet's
//!   weights: its evaluation logits, its parameter count and its `MobileNetV3` configuration.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;
use splitnas_plugin_api::author::{NetworkPlugin, SpacePlugin, SupernetPlugin};
use splitnas_plugin_api::{Architecture, Device, ForwardMode, NamedTensor, SpaceInfo};
use splitnas_plugin_ofa::layers::transformed_kernel;
use splitnas_plugin_ofa::network::OfaNetwork;
use splitnas_plugin_ofa::Ofa;
use splitnas_plugin_testkit::conformance::{
    assert_close, assert_close_within, assert_network_stats_match, by_name, load_named, under, Fixtures, NameCheck, Tolerance,
};
use tch::{Kind, Tensor};

fn fixtures() -> Fixtures {
    Fixtures::of_crate(env!("CARGO_MANIFEST_DIR"))
}

fn space(config: &serde_json::Value) -> Ofa {
    Ofa::create(&config.to_string()).unwrap_or_else(|error| panic!("{config}: {error}"))
}

#[test]
fn parameters_and_flops_equal_the_official_subnets() {
    let cases = fixtures().stats_cases("stats.json", 14);
    assert_network_stats_match::<Ofa>(&cases);
    // The counts come from the layout; the built network must hold as many values.
    let first = &cases[1];
    let space = space(&first.config);
    let network = space.build_network(&space.parse_genotype(&first.genotype).unwrap(), Device::Cpu).unwrap();
    let built: i64 = network.parameters().unwrap().iter().map(|named| named.tensor.tensor().numel() as i64).sum();
    assert_eq!(built as u64, first.parameters, "{}", first.name);
}

#[test]
fn kernel_transform_matches_ofa() {
    let tensors = fixtures().read_tensors("kernel_transform.safetensors");
    let (weight, to5, to3) = (&tensors["weight"], &tensors["matrix_7to5"], &tensors["matrix_5to3"]);
    assert_close("7x7 to 5x5", &transformed_kernel(weight, 5, to5, to3).unwrap(), &tensors["kernel_5"]);
    assert_close("7x7 to 3x3", &transformed_kernel(weight, 3, to5, to3).unwrap(), &tensors["kernel_3"]);
    let prefix = transformed_kernel(&weight.narrow(0, 0, 8), 3, to5, to3).unwrap();
    assert_close("3x3 of the first 8 channels", &prefix, &tensors["kernel_3_prefix"]);
    // The matrices are not identities: a plain centre crop would differ.
    let crop = weight.narrow(2, 2, 3).narrow(3, 2, 3);
    assert!((&crop - &tensors["kernel_3"]).abs().max().double_value(&[]) > 1e-3);
    let input = &tensors["input"];
    for kernel_size in [3i64, 5, 7] {
        let kernel = transformed_kernel(weight, kernel_size, to5, to3).unwrap();
        let output = input.conv2d::<Tensor>(&kernel, None, [1, 1], [kernel_size / 2, kernel_size / 2], [1, 1], 16);
        assert_close(&format!("depthwise {kernel_size}x{kernel_size} output"), &output, &tensors[&format!("output_{kernel_size}")]);
    }
}

#[derive(Deserialize)]
struct TinyCases {
    config: serde_json::Value,
    cases: Vec<TinyCase>,
}

#[derive(Deserialize)]
struct TinyCase {
    genotype: String,
    subnet_config: serde_json::Value,
    subnet_parameters: u64,
}

/// One-hot weights selecting `architecture`.
fn one_hot(info: &SpaceInfo, architecture: &Architecture) -> Tensor {
    let width = info.max_options as i64;
    let weights = Tensor::zeros([info.choice_points.len() as i64, width], (Kind::Float, tch::Device::Cpu));
    for (point, &choice) in architecture.choices.iter().enumerate() {
        let _ = weights.get(point as i64).get(choice as i64).fill_(1.0);
    }
    weights
}

#[test]
fn subnets_in_the_supernet_train_evaluate_and_extract_like_ofa() {
    let file: TinyCases = fixtures().read_json("cases.json");
    let space = space(&file.config);
    let tensors = fixtures().read_tensors("supernet.safetensors");
    let info = space.info().unwrap();
    let mask = info.full_mask();
    assert_eq!(file.cases.len(), 3);
    for (index, case) in file.cases.iter().enumerate() {
        let what = |part: &str| format!("case {index} ({}): {part}", case.genotype);
        let supernet = space.supernet(&mask, Device::Cpu).unwrap();
        let parameters = by_name(supernet.parameters().unwrap());
        let buffers = by_name(supernet.buffers().unwrap());
        load_named("parameters", &parameters, &under(&tensors, "param"), NameCheck::Exact);
        load_named("buffers", &buffers, &under(&tensors, &format!("case{index}/buffer_before")), NameCheck::Exact);
        let architecture = space.parse_genotype(&case.genotype).unwrap();
        let weights = one_hot(&info, &architecture);
        let input = &tensors["input"];
        let logits = supernet.forward(input, &weights, &mask, true).unwrap();
        assert_close(&what("training logits"), &logits, &tensors[&format!("case{index}/logits_train")]);
        let loss = logits.cross_entropy_for_logits(&tensors["labels"]);
        assert_close(&what("loss"), &loss, &tensors[&format!("case{index}/loss")]);
        loss.backward();
        let expected_grads = under(&tensors, &format!("case{index}/grad"));
        let with_grad: BTreeSet<&str> = parameters.iter().filter(|(_, tensor)| tensor.grad().defined()).map(|(name, _)| name.as_str()).collect();
        let expected_names: BTreeSet<&str> = expected_grads.keys().copied().collect();
        assert_eq!(with_grad, expected_names, "{}", what("the parameters with a gradient"));
        // float32 against float32 in another order; the fixture's generator measured float32
        // gradients within 5e-4 of float64 ones.
        let tolerance = Tolerance { relative: 2e-3, absolute: 1e-5 };
        for (name, parameter) in &parameters {
            if let Some(expected) = expected_grads.get(name.as_str()) {
                assert_close_within(&what(&format!("grad {name}")), &parameter.grad(), expected, tolerance);
            }
        }
        for (name, buffer) in &buffers {
            assert_close(&what(&format!("running statistic {name}")), buffer, &tensors[&format!("case{index}/buffer_after/{name}")]);
        }
        let evaluation = tch::no_grad(|| supernet.forward(input, &weights, &mask, false)).unwrap();
        assert_close(&what("evaluation logits"), &evaluation, &tensors[&format!("case{index}/logits_eval")]);

        let subnet = space.subnet(&architecture).unwrap();
        let network = OfaNetwork::from_supernet(space.layout(), &subnet, 0.0, &supernet, Device::Cpu).unwrap();
        assert_eq!(network.parameter_count(), case.subnet_parameters, "{}", what("extracted parameters"));
        let (extracted, _) = tch::no_grad(|| network.forward(input, ForwardMode { train: false, drop_path_prob: 0.0 })).unwrap();
        assert_close(&what("extracted subnet's evaluation logits"), &extracted, &tensors[&format!("case{index}/subnet_logits_eval")]);
        // The same through the ABI's route: a fresh space handed the supernet's tensors by name
        // (what `splitnas extract` gives it from a node checkpoint).
        let named: Vec<NamedTensor> =
            parameters.iter().chain(&buffers).map(|(name, tensor)| NamedTensor::share(name.as_str(), &tensor.detach().copy())).collect();
        let rebuilt = space.network_from_supernet(&architecture, &mask, named, Device::Cpu).unwrap();
        let (rebuilt_logits, _) = tch::no_grad(|| rebuilt.forward(input, ForwardMode { train: false, drop_path_prob: 0.0 })).unwrap();
        assert_close(&what("network_from_supernet's evaluation logits"), &rebuilt_logits, &tensors[&format!("case{index}/subnet_logits_eval")]);
        assert_eq!(space.reference_config(&subnet), case.subnet_config, "{}", what("MobileNetV3 configuration"));
    }
}

#[test]
fn network_from_supernet_names_a_missing_or_misshapen_tensor_and_refuses_subnets_outside_the_mask() {
    let file: TinyCases = fixtures().read_json("cases.json");
    let space = space(&file.config);
    let mask = space.info().unwrap().full_mask();
    let supernet = space.supernet(&mask, Device::Cpu).unwrap();
    let all: Vec<NamedTensor> = supernet.parameters().unwrap().into_iter().chain(supernet.buffers().unwrap()).collect();
    let architecture = space.parse_genotype(&file.cases[0].genotype).unwrap();
    let share =
        |tensors: &[NamedTensor]| -> Vec<NamedTensor> { tensors.iter().map(|t| NamedTensor::share(t.name.as_str(), &t.tensor.tensor())).collect() };
    let mut missing = share(&all);
    let dropped = missing.pop().unwrap().name.to_string();
    let error = space.network_from_supernet(&architecture, &mask, missing, Device::Cpu).err().unwrap();
    assert!(error.message.contains(&format!("`{dropped}`")), "{}", error.message);
    let mut misshapen = share(&all);
    let first = misshapen[0].name.to_string();
    misshapen[0] = NamedTensor::share(first.as_str(), &Tensor::zeros([1], (Kind::Float, tch::Device::Cpu)));
    let error = space.network_from_supernet(&architecture, &mask, misshapen, Device::Cpu).err().unwrap();
    assert!(error.message.contains(&format!("`{first}`")) && error.message.contains("[1]"), "{}", error.message);
    // A leaf without this subnet's first kernel.
    let mut leaf = mask.clone();
    let kernel = architecture.choices[0] as usize;
    leaf.rows[0] = (0..3).map(|option| option != kernel).collect::<Vec<bool>>().into();
    let error = space.network_from_supernet(&architecture, &leaf, share(&all), Device::Cpu).err().unwrap();
    assert!(error.message.contains("outside"), "{}", error.message);
}

#[test]
fn gradient_matching_shares_everything_but_the_scored_block() {
    // GM-NAS on OFA: first conv, every other block whole (squeeze-excitation and transform
    // matrices included), final expand, feature mix, classifier.
    let space = space(&serde_json::json!({"width_multiplier": 0.1, "classes": 5}));
    let info = space.info().unwrap();
    let supernet = space.supernet(&info.full_mask(), Device::Cpu).unwrap();
    let all: BTreeSet<String> = supernet.parameters().unwrap().iter().map(|named| named.name.to_string()).collect();
    // Choice point 5 is block 6's kernel (stage 2: squeeze-excitation).
    assert_eq!(info.choice_points[5].name.as_str(), "block 6 kernel");
    let shared: BTreeSet<String> = supernet.shared_parameters(5).unwrap().into_iter().collect();
    let left_out: BTreeSet<&String> = all.difference(&shared).collect();
    assert!(!left_out.is_empty() && left_out.iter().all(|name| name.starts_with("blocks.6.")), "{left_out:?}");
    assert_eq!(left_out.len(), all.iter().filter(|name| name.starts_with("blocks.6.")).count());
    for kept in [
        "first_conv.conv.weight",
        "blocks.0.conv.depth_conv.conv.weight",
        "blocks.5.conv.depth_conv.conv.7to5_matrix",
        "blocks.7.conv.depth_conv.se.fc.reduce.weight",
        "final_expand_layer.conv.weight",
        "feature_mix_layer.conv.weight",
        "classifier.linear.weight",
    ] {
        assert!(shared.contains(kept), "{kept} is shared");
    }
    // A block's expand ratio scores against the same set as its kernel.
    assert_eq!(supernet.shared_parameters(20 + 5).unwrap().into_iter().collect::<BTreeSet<_>>(), shared);
    // Only kernels are split, as GM-NAS splits OFA.
    let splittable: Vec<&str> = info.choice_points.iter().filter(|point| point.splittable).map(|point| point.group.as_str()).collect();
    assert!(splittable.len() == 20 && splittable.iter().all(|group| *group == "kernel"));
}

#[test]
fn expand_channels_reorganize_like_ofa_and_report_their_permutations() {
    let file: TinyCases = fixtures().read_json("cases.json");
    let space = space(&file.config);
    let tensors = fixtures().read_tensors("reorganize.safetensors");
    let mask = space.info().unwrap().full_mask();
    for stage in [1, 2] {
        let supernet = space.supernet(&mask, Device::Cpu).unwrap();
        let parameters = by_name(supernet.parameters().unwrap());
        let buffers = by_name(supernet.buffers().unwrap());
        let before = under(&tensors, "before");
        let every: Vec<(String, Tensor)> = parameters.iter().chain(&buffers).map(|(name, tensor)| (name.clone(), tensor.shallow_clone())).collect();
        load_named("parameters and running statistics", &every, &before, NameCheck::Exact);
        let moved = supernet.reorganize(&format!(r#"{{"expand_ratio_stage": {stage}}}"#)).unwrap();
        let after = under(&tensors, &format!("stage{stage}"));
        assert!(after.len() > 20 * 10, "the fixture holds the elastic blocks' tensors after the reorganization");
        for (name, tensor) in parameters.iter().chain(&buffers) {
            // The fixture holds what a reorganization may touch; the rest must not move.
            let expected = after.get(name.as_str()).unwrap_or(&before[name.as_str()]);
            assert_close(&format!("stage {stage}: {name}"), tensor, expected);
        }
        // The permutations the host applies to optimizer state reproduce every move.
        let mut replayed: std::collections::HashMap<&str, Tensor> = HashMap::new();
        for permutation in &moved {
            let name = permutation.parameter.as_str();
            let current = replayed.remove(name).unwrap_or_else(|| before[name].copy());
            let index = Tensor::from_slice(&permutation.index);
            replayed.insert(name, current.index_select(i64::from(permutation.dim), &index));
        }
        for (name, tensor) in &parameters {
            match replayed.get(name.as_str()) {
                Some(value) => assert!(value.equal(tensor), "stage {stage}: replaying the permutations of {name}"),
                None => assert!(before[name.as_str()].equal(tensor), "stage {stage}: {name} moved without a permutation"),
            }
        }
        assert!(moved.len() >= 20 * 5, "every block's middle tensors move");
    }
    let supernet = space.supernet(&mask, Device::Cpu).unwrap();
    let error = supernet.reorganize(r#"{"expand_ratio_stage": 3}"#).unwrap_err();
    assert!(error.message.contains("expand_ratio_stage"), "{}", error.message);
}
