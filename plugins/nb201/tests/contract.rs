//! NB201 passes the testkit's space contract, at a tiny size (its own test binary: the
//! generator checks compare libtorch's global generator).

use splitnas_plugin_api::SpaceSetup;
use splitnas_plugin_nb201::Nb201;
use splitnas_plugin_testkit::space::{assert_contract, SpaceSuiteConfig};

#[test]
fn nb201_honours_the_space_contract() {
    let config = SpaceSuiteConfig {
        overrides: serde_json::json!({"channels": 2, "cells": 1}),
        setup: SpaceSetup { classes: 3, input_channels: 2, image_size: 8, network_channels: 0, network_cells: 0 },
        ..SpaceSuiteConfig::default()
    };
    assert_contract::<Nb201>(&config);
}
