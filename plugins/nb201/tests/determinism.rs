//! Alone in its own test binary: libtorch's generator is global, and tests running in parallel
//! threads would draw from it in between.

use splitnas_plugin_api::author::SpacePlugin;
use splitnas_plugin_api::Architecture;
use splitnas_plugin_nb201::Nb201;
use tch::{Kind, Tensor};

/// Runs reseed libtorch's generator at fixed points and must replay exactly, so asking for a
/// network's size must not draw from it.
#[test]
fn network_stats_draws_no_random_numbers() {
    let space = Nb201::create(r#"{"channels": 4, "cells": 1}"#).unwrap();
    let all_conv3x3 = Architecture { choices: vec![3; 6].into() };
    tch::manual_seed(11);
    let expected = Tensor::rand([4], (Kind::Float, tch::Device::Cpu));
    tch::manual_seed(11);
    space.network_stats(&all_conv3x3, 32).unwrap();
    assert!(Tensor::rand([4], (Kind::Float, tch::Device::Cpu)).equal(&expected));
}
