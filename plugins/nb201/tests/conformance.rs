//! The plugin against PyTorch: fixtures in `tests/fixtures`, made by `make_fixtures.py` (see its
//! docstring for what each file holds and how to regenerate them).
//!
//! - parameter counts and FLOPs of stand-alone networks at NB201's full size;
//! - a supernet's forward and backward with given mixing weights, after loading the reference
//!   search network's parameters into ours by name (dense, sparse and single-path weights);
//! - a stand-alone network's training forward and backward, running statistics, evaluation forward.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use serde::Deserialize;
use splitnas_plugin_api::author::{NetworkPlugin, SpacePlugin, SupernetPlugin};
use splitnas_plugin_api::{Device, ForwardMode, Mask, NamedTensor};
use splitnas_plugin_nb201::Nb201;
use tch::{Kind, Tensor};

/// |ours − pytorch| ≤ RELATIVE · max|pytorch| + ABSOLUTE, per tensor (float32 throughout).
/// Measured: at most ~5e-6 relative. ABSOLUTE covers gradients that are zero in exact
/// arithmetic (a search-cell conv's bias right before a batch norm without affine, which
/// subtracts it again; a bias just before the head's batch norm): float noise up to ~1e-6.
const RELATIVE: f64 = 1e-4;
const ABSOLUTE: f64 = 1e-5;

fn fixture_path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(file)
}

fn read_json<T: for<'de> Deserialize<'de>>(file: &str) -> T {
    let text = std::fs::read_to_string(fixture_path(file)).unwrap_or_else(|error| panic!("{file}: {error}"));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{file}: {error}"))
}

fn read_tensors(file: &str) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(fixture_path(file)).unwrap_or_else(|error| panic!("{file}: {error}")).into_iter().collect()
}

/// The tensors under `prefix/`, keyed by the rest of their name.
fn under<'a>(tensors: &'a HashMap<String, Tensor>, prefix: &str) -> HashMap<&'a str, &'a Tensor> {
    tensors.iter().filter_map(|(name, tensor)| Some((name.strip_prefix(prefix)?.strip_prefix('/')?, tensor))).collect()
}

fn assert_close(what: &str, ours: &Tensor, expected: &Tensor) {
    assert_eq!(ours.size(), expected.size(), "{what}: shape");
    let expected = expected.to_kind(Kind::Double);
    let scale = expected.abs().max().double_value(&[]);
    let difference = (ours.to_kind(Kind::Double) - &expected).abs().max().double_value(&[]);
    assert!(difference <= RELATIVE * scale + ABSOLUTE, "{what}: max |ours - pytorch| = {difference:e} with max |pytorch| = {scale:e}");
}

/// The gradient of a parameter, zeros where autograd never reached it.
fn grad_or_zeros(tensor: &Tensor) -> Tensor {
    let grad = tensor.grad();
    if grad.defined() {
        grad
    } else {
        tensor.zeros_like()
    }
}

fn by_name(named: Vec<NamedTensor>) -> Vec<(String, Tensor)> {
    named.into_iter().map(|named| (named.name.to_string(), named.tensor.into_tensor())).collect()
}

/// Copies `values[name]` into every tensor, which must be exactly the names there.
fn load(what: &str, ours: &[(String, Tensor)], values: &HashMap<&str, &Tensor>) {
    let our_names: BTreeSet<&str> = ours.iter().map(|(name, _)| name.as_str()).collect();
    let their_names: BTreeSet<&str> = values.keys().copied().collect();
    assert_eq!(our_names, their_names, "{what}: the plugin's names and the fixture's differ");
    tch::no_grad(|| {
        for (name, tensor) in ours {
            // A second handle to the same storage: copy_ wants `&mut`.
            tensor.shallow_clone().f_copy_(values[name.as_str()]).unwrap_or_else(|error| panic!("{what} {name}: {error}"));
        }
    });
}

#[derive(Deserialize)]
struct CountsFile {
    config: CountsConfig,
    networks: Vec<CountedNetwork>,
}

#[derive(Deserialize)]
struct CountsConfig {
    channels: u32,
    cells: u32,
    classes: u32,
    input_channels: u32,
    image_size: u32,
}

#[derive(Deserialize)]
struct CountedNetwork {
    genotype: String,
    parameters: u64,
    flops: u64,
}

#[derive(Deserialize)]
struct CasesFile {
    supernet: Vec<Case>,
    network: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    file: String,
    channels: u32,
    cells: u32,
    classes: u32,
    input_channels: u32,
    #[serde(default)]
    genotype: Option<String>,
}

fn space(channels: u32, cells: u32, classes: u32, input_channels: u32) -> Nb201 {
    let config = serde_json::json!({ "channels": channels, "cells": cells, "classes": classes, "input_channels": input_channels });
    Nb201::create(&config.to_string()).unwrap()
}

#[test]
fn parameter_counts_and_flops_match_pytorch() {
    let counts: CountsFile = read_json("param_counts.json");
    let c = &counts.config;
    assert!(counts.networks.len() >= 8);
    let space = space(c.channels, c.cells, c.classes, c.input_channels);
    for network in &counts.networks {
        let architecture = space.parse_genotype(&network.genotype).unwrap();
        let stats = space.network_stats(&architecture, c.image_size).unwrap();
        assert_eq!((stats.parameters, stats.flops), (network.parameters, network.flops), "{}", network.genotype);
    }
}

#[test]
fn supernet_forward_and_backward_match_pytorch() {
    let cases: CasesFile = read_json("cases.json");
    assert_eq!(cases.supernet.len(), 3);
    for case in &cases.supernet {
        let what = case.file.as_str();
        let fixture = read_tensors(what);
        let space = space(case.channels, case.cells, case.classes, case.input_channels);
        let supernet = space.build_supernet(&space.info().unwrap().full_mask(), Device::Cpu).unwrap();
        let parameters = by_name(supernet.parameters().unwrap());
        load(what, &parameters, &under(&fixture, "param"));

        // Zero weights are the options a host would leave inactive.
        let weights = fixture["weights"].copy().set_requires_grad(true);
        let rows = Vec::<Vec<f32>>::try_from(&fixture["weights"]).unwrap();
        let active = Mask { rows: rows.iter().map(|row| row.iter().map(|&w| w != 0.0).collect()).collect() };
        let logits = supernet.forward(&fixture["input"], &weights, &active, true).unwrap();
        assert_close(&format!("{what} logits"), &logits, &fixture["logits"]);
        let loss = logits.cross_entropy_for_logits(&fixture["labels"]);
        assert_close(&format!("{what} loss"), &loss.reshape([1]), &fixture["loss"]);

        loss.backward();
        let gradients = under(&fixture, "grad");
        for (name, tensor) in &parameters {
            assert_close(&format!("{what} grad of {name}"), &grad_or_zeros(tensor), gradients[name.as_str()]);
        }
        // Inactive options were computed (with weight 0) by PyTorch only: compare active entries.
        let activity = fixture["weights"].ne(0.0);
        let ours = grad_or_zeros(&weights) * &activity;
        assert_close(&format!("{what} grad of the weights"), &ours, &(&fixture["weights_grad"] * &activity));
    }
}

#[test]
fn network_training_and_evaluation_match_pytorch() {
    let cases: CasesFile = read_json("cases.json");
    assert_eq!(cases.network.len(), 1);
    for case in &cases.network {
        let what = case.file.as_str();
        let fixture = read_tensors(what);
        let space = space(case.channels, case.cells, case.classes, case.input_channels);
        let architecture = space.parse_genotype(case.genotype.as_deref().expect("network cases name a genotype")).unwrap();
        let network = space.build_network(&architecture, Device::Cpu).unwrap();
        let parameters = by_name(network.parameters().unwrap());
        let buffers = by_name(network.buffers().unwrap());
        load(what, &parameters, &under(&fixture, "param"));
        load(what, &buffers, &under(&fixture, "buffer_before"));

        let train = ForwardMode { train: true, drop_path_prob: 0.0 };
        let (logits, _) = network.forward(&fixture["input"], train).unwrap();
        assert_close(&format!("{what} training logits"), &logits, &fixture["logits_train"]);
        let loss = logits.cross_entropy_for_logits(&fixture["labels"]);
        assert_close(&format!("{what} loss"), &loss.reshape([1]), &fixture["loss"]);
        loss.backward();
        let gradients = under(&fixture, "grad");
        for (name, tensor) in &parameters {
            assert_close(&format!("{what} grad of {name}"), &grad_or_zeros(tensor), gradients[name.as_str()]);
        }
        let after = under(&fixture, "buffer_after");
        for (name, tensor) in &buffers {
            assert_close(&format!("{what} {name} after training"), tensor, after[name.as_str()]);
        }

        let eval = ForwardMode { train: false, drop_path_prob: 0.0 };
        let (logits, _) = tch::no_grad(|| network.forward(&fixture["input"], eval)).unwrap();
        assert_close(&format!("{what} evaluation logits"), &logits, &fixture["logits_eval"]);
    }
}
