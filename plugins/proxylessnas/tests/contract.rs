//! The ProxylessNAS space passes the testkit's space contract, at a tiny size (its own test
//! binary: the generator checks compare libtorch's global generator).

use splitnas_plugin_api::SpaceSetup;
use splitnas_plugin_proxylessnas::ProxylessNas;
use splitnas_plugin_testkit::space::{assert_contract, SpaceSuiteConfig};

#[test]
fn proxylessnas_honours_the_space_contract() {
    let config = SpaceSuiteConfig {
        // An eighth of the widths (every stage 8 to 40 channels) and a narrow feature mix.
        overrides: serde_json::json!({"width_multiplier": 0.125, "feature_mix_channels": 16}),
        setup: SpaceSetup { classes: 3, input_channels: 2, image_size: 8, network_channels: 0, network_cells: 0 },
        ..SpaceSuiteConfig::default()
    };
    assert_contract::<ProxylessNas>(&config);
}
