//! The DARTS space passes the testkit's space contract, at a tiny size (its own test binary:
//! the generator checks compare libtorch's global generator).

use splitnas_plugin_api::SpaceSetup;
use splitnas_plugin_darts_space::DartsSpace;
use splitnas_plugin_testkit::space::{assert_contract, SpaceSuiteConfig};

#[test]
fn darts_honours_the_space_contract() {
    let config = SpaceSuiteConfig {
        overrides: serde_json::json!({"channels": 2, "cells": 3, "auxiliary": false}),
        // The stand-alone size comes through configure, as the host's `arch --channels/--cells` does.
        setup: SpaceSetup { classes: 3, input_channels: 2, image_size: 8, network_channels: 2, network_cells: 3 },
        ..SpaceSuiteConfig::default()
    };
    assert_contract::<DartsSpace>(&config);
}
