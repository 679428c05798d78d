//! The OFA space passes the testkit's space contract, at a tiny size (its own test binary: the
//! generator checks compare libtorch's global generator).

use splitnas_plugin_api::SpaceSetup;
use splitnas_plugin_ofa::Ofa;
use splitnas_plugin_testkit::space::{run_contract, SpaceSuiteConfig};
use splitnas_plugin_testkit::Outcome;

#[test]
fn ofa_honours_the_space_contract() {
    let config = SpaceSuiteConfig {
        // A tenth of the widths: stages 8 to 16 channels, middles 24 to 96.
        overrides: serde_json::json!({"width_multiplier": 0.1, "dropout": 0.0}),
        setup: SpaceSetup { classes: 3, input_channels: 2, image_size: 16, network_channels: 0, network_cells: 0 },
        ..SpaceSuiteConfig::default()
    };
    let report = run_contract::<Ofa>(&config);
    report.assert_passed();
    // Every check applies to this space: weight sharing still leaves the 3x3 kernel owning its
    // 5to3 matrix, masks that fit a u64 enumerate, and the latency parts compose the network.
    for check in ["inactive_options_not_computed", "architecture_enumeration", "export_names_every_tensor", "network_parts_compose"] {
        assert_eq!(report.outcome(check), Some(&Outcome::Passed), "{check}");
    }
}
