//! The plugin against PyTorch: `tests/fixtures/param_counts.json`, made by `make_fixtures.py`
//! from an independent PyTorch build of DARTS's networks (see its docstring).
//!
//! - stand-alone NetworkCIFAR at C=36, 20 cells, 10 classes for DARTS_V2 (3,349,342 parameters,
//!   the published count), DARTS_V1 and PC-DARTS: parameters without and with the auxiliary
//!   head, FLOPs at 32x32;
//! - the search network at C=16, 8 cells: parameters, and the mixed-op parameters each choice
//!   point owns;
//! - forward and backward of a tiny search network (sparse mixing weights) and of DARTS_V2's
//!   tiny stand-alone network, after loading the reference's parameters into ours by name:
//!   training logits, every gradient, running statistics, evaluation logits.

use std::collections::HashMap;

use serde::Deserialize;
use splitnas_plugin_api::author::{NetworkPlugin, SpacePlugin, SupernetPlugin};
use splitnas_plugin_api::{Device, ForwardMode, Mask};
use splitnas_plugin_darts_space::DartsSpace;
use splitnas_plugin_testkit::conformance::{assert_close, by_name, load_named, under, Fixtures, NameCheck};
use tch::Tensor;

fn fixtures() -> Fixtures {
    Fixtures::of_crate(env!("CARGO_MANIFEST_DIR"))
}

/// Training logits, loss, every gradient (the fixture leaves out exact zeros), running
/// statistics after the training forward, evaluation logits.
fn check_case(
    what: &str,
    fixture: &HashMap<String, Tensor>,
    parameters: &[(String, Tensor)],
    buffers: &[(String, Tensor)],
    forward: impl Fn(bool) -> Tensor,
) {
    load_named(what, parameters, &under(fixture, "param"), NameCheck::Exact);
    load_named(what, buffers, &under(fixture, "buffer_before"), NameCheck::Exact);
    let logits = forward(true);
    assert_close(&format!("{what} training logits"), &logits, &fixture["logits_train"]);
    let loss = logits.cross_entropy_for_logits(&fixture["labels"]);
    assert_close(&format!("{what} loss"), &loss.reshape([1]), &fixture["loss"]);
    loss.backward();
    let gradients = under(fixture, "grad");
    for (name, tensor) in parameters {
        let grad = tensor.grad();
        let ours = if grad.defined() { grad } else { tensor.zeros_like() };
        match gradients.get(name.as_str()) {
            Some(expected) => assert_close(&format!("{what} grad of {name}"), &ours, expected),
            None => assert_close(&format!("{what} grad of {name} (zero)"), &ours, &tensor.zeros_like()),
        }
    }
    let after = under(fixture, "buffer_after");
    for (name, tensor) in buffers {
        assert_close(&format!("{what} {name} after training"), tensor, after[name.as_str()]);
    }
    let logits = tch::no_grad(|| forward(false));
    assert_close(&format!("{what} evaluation logits"), &logits, &fixture["logits_eval"]);
}

#[test]
fn supernet_forward_and_backward_match_pytorch() {
    tch::set_num_threads(1);
    let fixture = fixtures().read_tensors("supernet_case.safetensors");
    let space = DartsSpace::create(r#"{"channels": 2, "cells": 3, "classes": 10, "input_channels": 3}"#).unwrap();
    let supernet = space.build_supernet(&space.info().unwrap().full_mask(), Device::Cpu).unwrap();
    let parameters = by_name(supernet.parameters().unwrap());
    let buffers = by_name(supernet.buffers().unwrap());
    // Zero weights are the options a host leaves inactive.
    let weights = &fixture["weights"];
    let rows = Vec::<Vec<f32>>::try_from(weights).unwrap();
    let active = Mask { rows: rows.iter().map(|row| row.iter().map(|&w| w != 0.0).collect()).collect() };
    check_case("supernet", &fixture, &parameters, &buffers, |train| supernet.forward(&fixture["input"], weights, &active, train).unwrap());
}

#[test]
fn network_forward_and_backward_match_pytorch() {
    tch::set_num_threads(1);
    let fixture = fixtures().read_tensors("network_case.safetensors");
    let space = DartsSpace::create(r#"{"network_channels": 2, "network_cells": 5, "auxiliary": false, "classes": 10, "input_channels": 3}"#).unwrap();
    let darts_v2 = &serde_json::from_str::<Fixture>(include_str!("fixtures/param_counts.json")).unwrap().networks[0].genotype;
    let network = space.build_network(&space.parse_genotype(darts_v2).unwrap(), Device::Cpu).unwrap();
    let parameters = by_name(network.parameters().unwrap());
    let buffers = by_name(network.buffers().unwrap());
    check_case("network", &fixture, &parameters, &buffers, |train| {
        network.forward(&fixture["input"], ForwardMode { train, drop_path_prob: 0.0 }).unwrap().0
    });
}

#[derive(Deserialize)]
struct Fixture {
    config: Config,
    networks: Vec<NetworkCounts>,
    search: SearchCounts,
}

#[derive(Deserialize)]
struct Config {
    network_channels: u32,
    network_cells: u32,
    classes: u32,
    image_size: u32,
}

#[derive(Deserialize)]
struct NetworkCounts {
    name: String,
    genotype: String,
    parameters: u64,
    parameters_with_auxiliary: u64,
    flops: u64,
}

#[derive(Deserialize)]
struct SearchCounts {
    channels: u32,
    cells: u32,
    classes: u32,
    parameters: u64,
    normal_edge_parameters: std::collections::BTreeMap<String, u64>,
    reduce_edge_parameters: std::collections::BTreeMap<String, u64>,
    mixed_op_parameters: u64,
}

fn fixture() -> Fixture {
    serde_json::from_str(include_str!("fixtures/param_counts.json")).expect("param_counts.json parses")
}

#[test]
fn stand_alone_parameter_counts_and_flops_match_pytorch() {
    let fixture = fixture();
    let config = &fixture.config;
    let space = DartsSpace::create(&format!(
        r#"{{"network_channels": {}, "network_cells": {}, "classes": {}, "auxiliary": true}}"#,
        config.network_channels, config.network_cells, config.classes
    ))
    .unwrap();
    assert_eq!(fixture.networks.len(), 3);
    assert_eq!((fixture.networks[0].name.as_str(), fixture.networks[0].parameters), ("DARTS_V2", 3_349_342));
    for network in &fixture.networks {
        let architecture = space.parse_genotype(&network.genotype).unwrap_or_else(|e| panic!("{}: {e}", network.name));
        let stats = space.network_stats(&architecture, config.image_size).unwrap();
        assert_eq!(stats.parameters, network.parameters, "{}: parameters without the auxiliary head", network.name);
        assert_eq!(stats.flops, network.flops, "{}: FLOPs", network.name);
        let built = space.placeholder_network(&architecture).unwrap();
        assert_eq!(built.parameter_count(true), network.parameters_with_auxiliary, "{}: with the auxiliary head", network.name);
    }
}

#[test]
fn search_network_parameter_counts_match_pytorch() {
    tch::set_num_threads(1);
    let search = fixture().search;
    let space =
        DartsSpace::create(&format!(r#"{{"channels": {}, "cells": {}, "classes": {}}}"#, search.channels, search.cells, search.classes)).unwrap();
    let info = space.info().unwrap();
    let supernet = space.build_supernet(&info.full_mask(), Device::Cpu).unwrap();
    let parameters = supernet.parameters().unwrap();
    let total: u64 = parameters.iter().map(|named| named.tensor.tensor().numel() as u64).sum();
    assert_eq!(total, search.parameters);
    let sizes: std::collections::HashMap<String, u64> =
        parameters.iter().map(|named| (named.name.to_string(), named.tensor.tensor().numel() as u64)).collect();
    let owned = |point: u32| -> u64 { supernet.owned_parameters(point).unwrap().iter().map(|name| sizes[name]).sum() };
    for (edge, expected) in &search.normal_edge_parameters {
        assert_eq!(owned(edge.parse().unwrap()), *expected, "normal edge {edge}");
    }
    for (edge, expected) in &search.reduce_edge_parameters {
        assert_eq!(owned(14 + edge.parse::<u32>().unwrap()), *expected, "reduction edge {edge}");
    }
    let mixed: u64 = (0..28).map(owned).sum();
    assert_eq!(mixed, search.mixed_op_parameters);
    // The shared set for a normal edge: every mixed op but that edge's.
    let shared: u64 = supernet.shared_parameters(0).unwrap().iter().map(|name| sizes[name]).sum();
    assert_eq!(shared, search.mixed_op_parameters - search.normal_edge_parameters["0"]);
}
