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

#[test]
fn svg_draws_the_cells_with_their_kept_edges() {
    let scratch = tempfile::tempdir().unwrap();
    let nb201 = scratch.path().join("nb201.svg");
    let genotype = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|";
    let output = run_splitnas(&["arch", "--space", "nb201", genotype, "--svg", nb201.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let drawing = std::fs::read_to_string(&nb201).unwrap();
    assert_eq!(drawing.matches("class=\"cell-node\"").count(), 4, "{drawing}");
    assert_eq!(drawing.matches("class=\"cell-edge\"").count(), 4, "the two `none` edges are not drawn");
    assert!(drawing.contains("data-op=\"skip_connect\"") && !drawing.contains("data-op=\"none\""));

    // DARTS: two cells, each concatenating its four intermediate nodes into c_{k}.
    let genotype = "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])";
    let darts = scratch.path().join("darts.svg");
    let output = run_splitnas(&["arch", "--space", "darts", genotype, "--svg", darts.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let drawing = std::fs::read_to_string(&darts).unwrap();
    assert_eq!(drawing.matches("class=\"cell-node\"").count(), 14);
    assert_eq!(drawing.matches("class=\"cell-edge\"").count(), 16, "eight edges per cell");
    assert_eq!(drawing.matches("class=\"concat-edge\"").count(), 8);
    assert!(drawing.contains("data-cell=\"normal\"") && drawing.contains("data-cell=\"reduce\""));
}
