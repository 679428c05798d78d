//! The plugin against PyTorch: fixtures in `tests/fixtures`, made by `make_fixtures.py` (see its
//! docstring for what each file holds and how to regenerate them).
//!
//! - parameter counts and FLOPs of stand-alone networks at NB201's full size;
//! - a supernet's forward and backward with given mixing weights, after loading the reference
//!   search network's parameters into ours by name (dense, sparse and single-path weights);
//! - a stand-alone network's training forward and backward, running statistics, evaluation forward.

use serde::Deserialize;
use splitnas_plugin_api::author::{NetworkPlugin, SpacePlugin, SupernetPlugin};
use splitnas_plugin_api::{Device, ForwardMode, Mask};
use splitnas_plugin_nb201::Nb201;
use splitnas_plugin_testkit::conformance::{assert_close, by_name, grad_or_zeros, load_named, under, Fixtures, NameCheck};

fn fixtures() -> Fixtures {
    Fixtures::of_crate(env!("CARGO_MANIFEST_DIR"))
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
    let counts: CountsFile = fixtures().read_json("param_counts.json");
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
    let cases: CasesFile = fixtures().read_json("cases.json");
    assert_eq!(cases.supernet.len(), 3);
    for case in &cases.supernet {
        let what = case.file.as_str();
        let fixture = fixtures().read_tensors(what);
        let space = space(case.channels, case.cells, case.classes, case.input_channels);
        let supernet = space.build_supernet(&space.info().unwrap().full_mask(), Device::Cpu).unwrap();
        let parameters = by_name(supernet.parameters().unwrap());
        load_named(what, &parameters, &under(&fixture, "param"), NameCheck::Exact);

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
    let cases: CasesFile = fixtures().read_json("cases.json");
    assert_eq!(cases.network.len(), 1);
    for case in &cases.network {
        let what = case.file.as_str();
        let fixture = fixtures().read_tensors(what);
        let space = space(case.channels, case.cells, case.classes, case.input_channels);
        let architecture = space.parse_genotype(case.genotype.as_deref().expect("network cases name a genotype")).unwrap();
        let network = space.build_network(&architecture, Device::Cpu).unwrap();
        let parameters = by_name(network.parameters().unwrap());
        let buffers = by_name(network.buffers().unwrap());
        load_named(what, &parameters, &under(&fixture, "param"), NameCheck::Exact);
        load_named(what, &buffers, &under(&fixture, "buffer_before"), NameCheck::Exact);

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
