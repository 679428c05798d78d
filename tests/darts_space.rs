//! The DARTS space end to end, on tiny networks and the embedded data: a gradient-matching
//! few-shot search selected by successive halving, every search algorithm on the space, the
//! examples' configurations, and `splitnas arch` against the PyTorch reference counts.

use std::path::Path;

use serde_json::Value;
use splitnas_e2e::*;
use splitnas_run::tree::SplitTree;
use splitnas_run::{run, Report, RunOptions, RunSetup};

/// A DARTS-space run small enough for the suite: C=2, 3 cells (normal 0, reductions 1 and 2).
fn darts_config(name: &str, algorithm: &str, output_dir: &Path, extra: &str) -> splitnas_run::config::RunConfig {
    let text = format!(
        r#"
[run]
name = "{name}"
output_dir = "{output}"
seed = 3
device = "cpu"
threads = 1   # tests run in parallel: one libtorch thread each

[data]
dataset = "embedded"
max_train_images = 600
max_test_images = 100
batch_size = 4   # the DARTS supernet runs every op of every edge: keep the passes small
eval_batch_size = 100

[space]
name = "darts"
channels = 2
cells = 3
network_channels = 4
network_cells = 3
auxiliary = false

[algorithm]
name = "{algorithm}"
{extra}
"#,
        output = output_dir.display()
    );
    splitnas_run::config::RunConfig::from_toml(&text, Path::new("darts-tiny.toml")).expect("tiny darts config parses")
}

fn search(config: splitnas_run::config::RunConfig) -> (Report, SplitTree, std::path::PathBuf) {
    let options = RunOptions { quiet: true, ..RunOptions::default() };
    let setup = RunSetup::new(config, shipped_registry(), &options).unwrap();
    let directory = setup.directory.path().to_path_buf();
    let report = run(setup, &options).unwrap();
    let tree: SplitTree = serde_json::from_str(&std::fs::read_to_string(directory.join("tree.json")).unwrap()).unwrap();
    (report, tree, directory)
}

/// Parses a genotype with the real plugin and checks two inputs per node in both cells.
fn assert_darts_genotype(genotype: &str) {
    let output = run_splitnas(&["arch", "--space", "darts", genotype, "--json"]);
    assert!(output.status.success(), "{genotype}: {}", stderr(&output));
    for cell in ["normal=[", "reduce=["] {
        let start = genotype.find(cell).unwrap() + cell.len();
        let list = &genotype[start..start + genotype[start..].find(']').unwrap()];
        let inputs: Vec<usize> =
            list.split("),").map(|pair| pair.trim_end_matches(')').rsplit(", ").next().unwrap().trim().parse().unwrap()).collect();
        assert_eq!(inputs.len(), 8, "{cell} {list}");
        for (node, pair) in inputs.chunks(2).enumerate() {
            assert!(pair[0] != pair[1] && pair.iter().all(|&input| input < node + 2), "{cell} node {}: inputs {pair:?}", node + 2);
        }
    }
}

#[test]
fn gradient_matching_splits_normal_edges_and_successive_halving_selects() {
    let out = tempfile::tempdir().unwrap();
    let config = darts_config(
        "darts-gm",
        "darts",
        out.path(),
        r#"
[search]
epochs = 2
max_steps_per_epoch = 3
eval_batches = 2

[split]
criterion = "gm"
epochs = [1]
groups = [2]
repeats = 1

[final]
select_by = "successive_halving"
epochs = 1
max_steps_per_epoch = 2
"#,
    );
    let (report, tree, directory) = search(config);
    assert_eq!(tree.leaves().len(), 2);
    for node in tree.nodes.iter().filter(|node| node.split.is_some()) {
        let split = node.split.as_ref().unwrap();
        assert!(split.choice_point < 14 && split.choice_point_name.starts_with("normal "), "split on {}", split.choice_point_name);
        assert!(split.candidates.iter().all(|candidate| candidate.choice_point < 14), "only normal-cell edges are candidates");
        let allowed: Vec<u32> = (0..7).filter(|&option| node.mask[split.choice_point as usize][option as usize]).collect();
        let mut covered: Vec<u32> = split.groups.concat();
        covered.sort();
        assert_eq!(covered, allowed, "the groups partition the edge's allowed ops");
        assert_eq!(split.groups.len(), 2);
        assert!(split.groups.iter().all(|group| group.len() >= 2), "groups of at least 2: {:?}", split.groups);
    }
    assert_eq!(tree.nodes[0].split.as_ref().unwrap().candidates.len(), 14);
    assert_eq!(tree.nodes[0].split.as_ref().unwrap().gradient_passes, 14 * 7);
    for (_, leaf) in &report.leaves {
        assert_darts_genotype(&leaf.genotype);
    }
    // Successive halving: both leaves at 1 epoch, the better one is left (the rounds' logic
    // with more leaves is tested in the host's unit tests).
    let rounds = &report.halving;
    assert_eq!(rounds.iter().map(|round| (round.epochs, round.entries.len(), round.kept.len())).collect::<Vec<_>>(), [(1, 2, 1)]);
    assert_eq!(report.selected, rounds[0].kept[0]);
    let best = rounds[0].entries.iter().map(|entry| entry.result.valid_accuracy.unwrap()).fold(f64::NEG_INFINITY, f64::max);
    let selected = rounds[0].entries.iter().find(|entry| entry.node == report.selected).unwrap();
    assert_eq!(selected.result.valid_accuracy.unwrap(), best, "the better leaf is kept");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(directory.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["halving"].as_array().unwrap().len(), 1);
    let markdown = std::fs::read_to_string(directory.join("report.md")).unwrap();
    assert!(markdown.contains("## Successive halving"), "{markdown}");
}

#[test]
fn every_search_algorithm_runs_on_the_darts_space() {
    let out = tempfile::tempdir().unwrap();
    for (algorithm, keys) in [("darts", ""), ("snas", ""), ("gdas", ""), ("rsps", "derive_samples = 3")] {
        let extra = format!("{keys}\n[search]\nepochs = 1\nmax_steps_per_epoch = 2\neval_batches = 1\n[final]\nepochs = 0\n");
        let (report, _, _) = search(darts_config(&format!("algo-{algorithm}"), algorithm, out.path(), &extra));
        assert_eq!(report.leaves.len(), 1);
        let leaf = &report.leaves[0].1;
        assert_eq!(leaf.choices.iter().filter(|&&choice| choice != u32::MAX).count(), 16, "{algorithm}: two edges per node in both cells");
        assert_darts_genotype(&leaf.genotype);
    }
}

#[test]
fn the_examples_parse_and_name_the_darts_space() {
    let root = workspace_root();
    // The CPU example compares leaves by successive halving; the GPU one evaluates the supernet's
    // choice by DARTS's protocol (crates/run/tests/darts_protocol.rs checks it key by key).
    for (example, select_by) in [
        ("examples/darts-gm.toml", splitnas_run::config::SelectBy::SuccessiveHalving),
        ("examples/darts-gm-gpu.toml", splitnas_run::config::SelectBy::Supernet),
    ] {
        let config = splitnas_run::config::RunConfig::from_file(&root.join(example)).unwrap_or_else(|error| panic!("{example}: {error}"));
        assert_eq!(config.space.name, "darts", "{example}");
        assert_eq!(config.split.criterion, "gm", "{example}");
        assert_eq!(config.final_training.select_by, select_by, "{example}");
    }
    let gpu = splitnas_run::config::RunConfig::from_file(&root.join("examples/darts-gm-gpu.toml")).unwrap();
    assert_eq!((gpu.split.epochs.clone(), gpu.split.groups.clone(), gpu.search.epochs), (vec![2, 4, 6], vec![2, 2, 2], 21));
    assert_eq!((gpu.data.batch_size, gpu.search.weights.lr, gpu.search.weights.lr_min, gpu.search.weights.weight_decay), (64, 0.025, 0.001, 3e-4));
}

#[test]
fn darts_parameter_counts_and_flops_match_pytorch() {
    let fixture: Value = serde_json::from_str(include_str!("../plugins/darts-space/tests/fixtures/param_counts.json")).unwrap();
    for network in fixture["networks"].as_array().unwrap() {
        let genotype = network["genotype"].as_str().unwrap();
        let output = run_splitnas(&["arch", "--space", "darts", genotype, "--json"]);
        assert!(output.status.success(), "{genotype}: {}", stderr(&output));
        let ours: Value = serde_json::from_str(&stdout(&output)).unwrap();
        assert_eq!(ours["parameters"], network["parameters"], "{}", network["name"]);
        assert_eq!(ours["flops"], network["flops"], "{}", network["name"]);
        // --channels / --cells size the stand-alone network (the space's network_* keys).
        let small = run_splitnas(&["arch", "--space", "darts", genotype, "--channels", "16", "--cells", "8", "--json"]);
        assert!(small.status.success(), "{}", stderr(&small));
        let small: Value = serde_json::from_str(&stdout(&small)).unwrap();
        assert!(small["parameters"].as_u64().unwrap() < ours["parameters"].as_u64().unwrap() / 3, "{small} vs {ours}");
    }
}
