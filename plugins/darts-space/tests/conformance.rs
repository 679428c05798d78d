//! The plugin against PyTorch: `tests/fixtures/param_counts.json`, made by `make_fixtures.py`
//! from an independent PyTorch build of DARTS's networks (see its docstring).
//!
//! - stand-alone NetworkCIFAR at C=36, 20 cells, 10 classes for DARTS_V2 (3,349,342 parameters,
//!   the published count), DARTS_V1 and PC-DARTS: parameters without and with the auxiliary
//!   head, FLOPs at 32x32;
//! - the search network at C=16, 8 cells: parameters, and the mixed-op parameters each choice
//!   point owns.

use serde::Deserialize;
use splitnas_plugin_api::author::{SpacePlugin, SupernetPlugin};
use splitnas_plugin_api::Device;
use splitnas_plugin_darts_space::DartsSpace;

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
    let space = DartsSpace::create(&format!(r#"{{"channels": {}, "cells": {}, "classes": {}}}"#, search.channels, search.cells, search.classes)).unwrap();
    let info = space.info().unwrap();
    let supernet = space.build_supernet(&info.full_mask(), Device::Cpu).unwrap();
    let parameters = supernet.parameters().unwrap();
    let total: u64 = parameters.iter().map(|named| named.tensor.tensor().numel() as u64).sum();
    assert_eq!(total, search.parameters);
    let sizes: std::collections::HashMap<String, u64> =
        parameters.iter().map(|named| (named.name.to_string(), named.tensor.tensor().numel() as u64)).collect();
    let owned = |point: u32| -> u64 { supernet.choice_point_parameters(point).unwrap().iter().map(|name| sizes[name]).sum() };
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
