//! The ProxylessNAS space end to end, on a tiny network and the embedded data: a
//! gradient-matching few-shot search with ProxylessNAS-GM's split pattern (2 then 3 groups),
//! and the CPU example's configuration.

use std::path::Path;

use splitnas_e2e::*;
use splitnas_run::tree::SplitTree;
use splitnas_run::{run, Report, RunOptions, RunSetup};

/// The option index of `zero` (the 7th option, only on blocks with an identity shortcut).
const ZERO: usize = 6;
/// Blocks that are a stage's first: no shortcut, so no `zero`.
const FIRST_BLOCKS: [u32; 6] = [0, 4, 8, 12, 16, 20];

/// A ProxylessNAS run small enough for the suite: a quarter of the widths, a 16-wide feature
/// mix, 28x28 Fashion-MNIST.
fn proxylessnas_config(output_dir: &Path, extra: &str) -> splitnas_run::config::RunConfig {
    let text = format!(
        r#"
[run]
name = "proxylessnas-gm"
output_dir = "{output}"
seed = 2
device = "cpu"
threads = 1   # tests run in parallel: one libtorch thread each

[data]
dataset = "embedded"
max_train_images = 400
max_test_images = 100
batch_size = 8
eval_batch_size = 100

[space]
name = "proxylessnas"
width_multiplier = 0.25
feature_mix_channels = 16

[algorithm]
name = "rsps"
derive_samples = 2
{extra}
"#,
        output = output_dir.display()
    );
    splitnas_run::config::RunConfig::from_toml(&text, Path::new("proxylessnas-tiny.toml")).expect("tiny proxylessnas config parses")
}

fn search(config: splitnas_run::config::RunConfig) -> (Report, SplitTree) {
    let options = RunOptions { quiet: true, ..RunOptions::default() };
    let setup = RunSetup::new(config, shipped_registry(), &options).unwrap();
    let directory = setup.directory.path().to_path_buf();
    let report = run(setup, &options).unwrap();
    let tree: SplitTree = serde_json::from_str(&std::fs::read_to_string(directory.join("tree.json")).unwrap()).unwrap();
    (report, tree)
}

#[test]
fn gradient_matching_splits_blocks_two_then_three_ways_and_keeps_zero_where_it_was_allowed() {
    let out = tempfile::tempdir().unwrap();
    let config = proxylessnas_config(
        out.path(),
        r#"
[search]
epochs = 3
max_steps_per_epoch = 2
eval_batches = 1

[split]
criterion = "gm"
epochs = [1, 2]
groups = [2, 3]
repeats = 1

[final]
epochs = 0
"#,
    );
    let (report, tree) = search(config);
    assert_eq!(tree.leaves().len(), 6, "2 then 3 children per leaf, as ProxylessNAS-GM");
    let root = &tree.nodes[0];
    let root_split = root.split.as_ref().expect("the root is split");
    assert_eq!(root_split.candidates.len(), 21, "every block is a candidate");
    // One pass per allowed option of every candidate: 6 blocks of 6 options, 15 of 7.
    assert_eq!(root_split.gradient_passes, 6 * 6 + 15 * 7);
    for node in &tree.nodes {
        // A block never gains `zero`: first blocks never have it, in any node.
        for &block in &FIRST_BLOCKS {
            assert!(!node.mask[block as usize][ZERO], "node {}: block {} allows zero", node.id, block + 1);
        }
        let Some(split) = &node.split else { continue };
        let point = split.choice_point as usize;
        let allowed: Vec<u32> = (0..7).filter(|&option| node.mask[point][option as usize]).collect();
        let mut covered: Vec<u32> = split.groups.concat();
        covered.sort();
        assert_eq!(covered, allowed, "node {}: the groups partition the block's allowed options", node.id);
        assert_eq!(split.groups.len(), if node.depth == 0 { 2 } else { 3 });
        // Groups of at least 2: {2,4}/{3,3} or {2,5}/{3,4} at the root, {2,2,2} or {2,2,3} after.
        assert!(split.groups.iter().all(|group| group.len() >= 2), "node {}: {:?}", node.id, split.groups);
        if node.depth == 1 {
            // Only blocks never split on the path are candidates: 20 of them.
            assert_eq!(split.candidates.len(), 20, "node {}", node.id);
            assert!(split.candidates.iter().all(|candidate| candidate.choice_point != root_split.choice_point));
        }
        for (child, group) in node.children.iter().zip(&split.groups) {
            let row = &tree.nodes[*child].mask[point];
            let child_allowed: Vec<u32> = (0..7).filter(|&option| row[option as usize]).collect();
            assert_eq!(&child_allowed, group, "child {child} allows exactly its group");
        }
    }
    for (node, leaf) in &report.leaves {
        let mask = tree.nodes[*node].mask();
        assert!(leaf.choices.iter().enumerate().all(|(block, &option)| mask.rows[block][option as usize]), "leaf {node} within its mask");
        let output = run_splitnas(&["arch", "--space", "proxylessnas", &leaf.genotype, "--json"]);
        assert!(output.status.success(), "{}: {}", leaf.genotype, stderr(&output));
    }
}

#[test]
fn the_cpu_example_parses_and_splits_like_proxylessnas_gm() {
    let root = workspace_root();
    let config = splitnas_run::config::RunConfig::from_file(&root.join("examples/proxylessnas-gm.toml")).unwrap();
    assert_eq!((config.space.name.as_str(), config.split.criterion.as_str()), ("proxylessnas", "gm"));
    assert_eq!(config.split.groups, vec![2, 3], "2 then 3 children: 6 leaves, as ProxylessNAS-GM");
    assert_eq!(config.data.dataset, splitnas_data::DatasetKind::Embedded);
    assert_eq!(config.algorithm.name, "proxylessnas", "binary gates, as ProxylessNAS-GM searches");
    assert_eq!(config.search.architecture_warmup_epochs, config.split.epochs[0], "α moves from the first split on, as the paper's 40 warm-up epochs");
}
