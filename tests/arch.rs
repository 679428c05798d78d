//! `splitnas arch`, as a user runs it, against parameter counts and FLOPs of NB201 networks
//! built independently in PyTorch (plugins/nb201/tests/fixtures/make_fixtures.py).

use serde_json::Value;
use splitnas_e2e::*;

#[test]
fn nb201_parameter_counts_and_flops_match_pytorch() {
    let fixture: Value = serde_json::from_str(include_str!("../plugins/nb201/tests/fixtures/param_counts.json")).unwrap();
    let config = &fixture["config"];
    let networks = fixture["networks"].as_array().unwrap();
    assert!(networks.len() >= 8);
    for network in networks {
        let genotype = network["genotype"].as_str().unwrap();
        let output = run_splitnas(&[
            "arch",
            "--space",
            "nb201",
            genotype,
            "--channels",
            &config["channels"].to_string(),
            "--cells",
            &config["cells"].to_string(),
            "--classes",
            &config["classes"].to_string(),
            "--input-channels",
            &config["input_channels"].to_string(),
            "--image",
            &config["image_size"].to_string(),
            "--json",
        ]);
        assert!(output.status.success(), "{genotype}: {}", stderr(&output));
        let ours: Value = serde_json::from_str(&stdout(&output)).unwrap();
        assert_eq!(ours["parameters"], network["parameters"], "{genotype}");
        assert_eq!(ours["flops"], network["flops"], "{genotype}");
    }
}

#[test]
fn a_malformed_genotype_is_refused_with_its_problem() {
    let output = run_splitnas(&["arch", "--space", "nb201", "|nor_conv_3x3~0|+|bogus~0|none~1|"]);
    assert!(!output.status.success());
    let error = stderr(&output);
    assert!(error.contains("nb201") && error.contains("bogus"), "{error}");
}
