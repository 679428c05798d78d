//! Phase 4 of a run: which leaf's architecture is the result. Every leaf trained stand-alone
//! (best validation accuracy), successive halving over those trainings, or the supernet's word.

use anyhow::{Context, Result};
use serde_json::json;
use splitnas_engine::standalone::StandaloneResult;
use splitnas_plugin_api::Architecture;

use crate::config::{FinalSection, RunConfig, SelectBy};
use crate::directory::RunDirectory;
use crate::metrics::MetricsLog;
use crate::report::{HalvingEntry, HalvingRound};
use crate::setup::{RunOptions, RunSetup};
use crate::training::{export_trained, train_architecture};
use crate::tree::{LeafResult, SplitTree};

/// What selection decided.
pub struct Selection {
    /// The node whose architecture is the run's result.
    pub selected: usize,
    /// Every round of successive halving, when selection used it.
    pub halving: Vec<HalvingRound>,
    /// The selected architecture's exported network, when it was trained stand-alone.
    pub model: Option<std::path::PathBuf>,
}

/// Selects among the leaves of a derived tree, training stand-alone what the configuration
/// asks for; every training is recorded in the tree as it ends, so a resumed run skips it.
pub fn select(setup: &RunSetup, options: &RunOptions, tree: &mut SplitTree, metrics: &mut MetricsLog) -> Result<Selection> {
    let config = &setup.config;
    let section = &config.final_training;
    let leaves = tree.leaves();
    let trains = section.epochs > 0;
    let by_standalone = trains && section.select_by == SelectBy::Standalone;
    let by_halving = trains && section.select_by == SelectBy::SuccessiveHalving;
    let train = |node: usize, epochs: usize, genotype: &str, architecture: &Architecture, metrics: &mut MetricsLog| {
        let section = FinalSection { epochs, ..section.clone() };
        train_architecture(setup, &section, architecture, genotype, node, options, metrics)
    };
    let to_train: Vec<usize> = if !trains || by_halving {
        Vec::new()
    } else if by_standalone {
        leaves.clone()
    } else {
        vec![best_by(tree, &leaves, |r| r.architecture_valid_accuracy)]
    };
    for node in to_train {
        let result = tree.nodes[node].result.clone().expect("derived before selection");
        if result.standalone.is_some() {
            continue;
        }
        let architecture = Architecture { choices: result.choices.clone().into() };
        let standalone = train(node, section.epochs, &result.genotype, &architecture, metrics)?;
        tree.nodes[node].result.as_mut().expect("derived before selection").standalone = Some(standalone);
        setup.directory.write_tree(tree)?;
    }
    let halving = if by_halving { successive_halving(config, tree, &leaves, &setup.directory, options, metrics, &train)? } else { Vec::new() };
    let selected = if let Some(last) = halving.last() {
        last.kept[0]
    } else if by_standalone {
        best_by(tree, &leaves, |r| r.standalone.as_ref().and_then(|s| s.valid_accuracy).unwrap_or(f64::NEG_INFINITY))
    } else {
        best_by(tree, &leaves, |r| r.architecture_valid_accuracy)
    };
    let model = export_models(setup, tree, selected, &leaves)?;
    Ok(Selection { selected, halving, model })
}

/// The selected leaf's trained network as `model.*`, and with `[final] save_leaves` every
/// trained leaf's as `models/node-N.*`. Nothing where no leaf was trained stand-alone.
fn export_models(setup: &RunSetup, tree: &SplitTree, selected: usize, leaves: &[usize]) -> Result<Option<std::path::PathBuf>> {
    let export = |node: usize, leaf: Option<usize>| -> Result<Option<std::path::PathBuf>> {
        let result = tree.nodes[node].result.as_ref().expect("derived before selection");
        let Some(standalone) = &result.standalone else { return Ok(None) };
        let architecture = Architecture { choices: result.choices.clone().into() };
        Ok(Some(export_trained(setup, &architecture, &result.genotype, node, standalone, leaf)?))
    };
    if setup.config.final_training.save_leaves {
        for &leaf in leaves {
            export(leaf, Some(leaf))?;
        }
    }
    export(selected, None)
}

/// The leaf with the highest `score` (the first on ties: never "the last leaf").
fn best_by(tree: &SplitTree, leaves: &[usize], score: impl Fn(&LeafResult) -> f64) -> usize {
    let mut best = leaves[0];
    for &leaf in leaves {
        let value = score(tree.nodes[leaf].result.as_ref().expect("derived"));
        if value > score(tree.nodes[best].result.as_ref().expect("derived")) {
            best = leaf;
        }
    }
    best
}

/// A stand-alone training of one leaf: `(node, epochs, genotype, architecture, metrics)`.
type TrainLeaf<'a> = dyn Fn(usize, usize, &str, &Architecture, &mut MetricsLog) -> Result<StandaloneResult> + 'a;

/// Successive halving over the leaves' stand-alone trainings (`[final] select_by =
/// "successive_halving"`): round r trains every survivor from scratch for `first · 2^r` epochs
/// and keeps the better half (rounded up) by validation accuracy (ties keep the lower node),
/// until one is left. Every training is recorded in `halving.json` as it ends, so a resumed
/// run continues where it stopped; each leaf's `standalone` result is its last training.
#[allow(clippy::too_many_arguments)]
fn successive_halving(
    config: &RunConfig,
    tree: &mut SplitTree,
    leaves: &[usize],
    directory: &RunDirectory,
    options: &RunOptions,
    metrics: &mut MetricsLog,
    train: &TrainLeaf<'_>,
) -> Result<Vec<HalvingRound>> {
    let mut rounds = directory.read_halving()?;
    let section = &config.final_training;
    let first = if section.halving_first_epochs == 0 { section.epochs } else { section.halving_first_epochs };
    let mut survivors = leaves.to_vec();
    for round in 0.. {
        let epochs = first.checked_mul(1usize << round.min(usize::BITS as usize - 1)).context("successive halving: the epoch budget overflows")?;
        if rounds.len() == round {
            rounds.push(HalvingRound { round, epochs, entries: Vec::new(), kept: Vec::new() });
        }
        for &node in &survivors {
            if rounds[round].entries.iter().any(|entry| entry.node == node) {
                continue;
            }
            let leaf = tree.nodes[node].result.clone().expect("derived before selection");
            let architecture = Architecture { choices: leaf.choices.clone().into() };
            let result = train(node, epochs, &leaf.genotype, &architecture, metrics)?;
            tree.nodes[node].result.as_mut().expect("derived before selection").standalone = Some(result.clone());
            rounds[round].entries.push(HalvingEntry { node, genotype: leaf.genotype, result });
            directory.write_halving(&rounds)?;
            directory.write_tree(tree)?;
        }
        let scores: Vec<(usize, f64)> = survivors
            .iter()
            .map(|&node| {
                let entry = rounds[round].entries.iter().find(|entry| entry.node == node).expect("trained above");
                (node, entry.result.valid_accuracy.filter(|v| !v.is_nan()).unwrap_or(f64::NEG_INFINITY))
            })
            .collect();
        let mut ranked = scores.clone();
        // Stable: equal accuracies keep the leaf order.
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked.truncate(survivors.len().div_ceil(2));
        let kept: Vec<usize> = survivors.iter().copied().filter(|node| ranked.iter().any(|(kept, _)| kept == node)).collect();
        rounds[round].kept = kept.clone();
        directory.write_halving(&rounds)?;
        metrics.write(json!({"event": "halving", "round": round, "epochs": epochs, "entries": rounds[round].entries, "kept": kept}))?;
        if !options.quiet {
            let scores: Vec<String> = scores.iter().map(|(node, valid)| format!("node {node} {valid:.4}")).collect();
            eprintln!("successive halving round {round} ({epochs} epochs): valid {}; kept {kept:?}", scores.join(", "));
        }
        if kept.len() == 1 {
            rounds.truncate(round + 1);
            return Ok(rounds);
        }
        survivors = kept;
    }
    unreachable!("the survivors halve every round")
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitnas_plugin_api::{ChoicePointInfo, OptionInfo, SpaceInfo};

    use crate::tree::SplitRecord;

    /// A DARTS-like space: two normal-cell edges (splittable) and one reduction edge (not).
    fn space() -> SpaceInfo {
        let options: abi_stable::std_types::RVec<OptionInfo> =
            ["a", "b", "c"].iter().map(|n| OptionInfo { name: (*n).into(), costs: Default::default() }).collect();
        let point = |name: &str, splittable| ChoicePointInfo { name: name.into(), group: "cell".into(), options: options.clone(), splittable };
        SpaceInfo {
            name: "t".into(),
            choice_points: vec![point("normal 0", true), point("normal 1", true), point("reduce 0", false)].into(),
            max_options: 3,
            min_group_size: 2,
        }
    }

    #[test]
    fn successive_halving_keeps_the_better_half_at_doubling_budgets_and_resumes() {
        let info = space();
        let mut tree = SplitTree::new(&info);
        let record = SplitRecord {
            metrics: Vec::new(),
            epoch: 1,
            criterion: "test".into(),
            choice_point: 0,
            choice_point_name: "normal 0".into(),
            groups: vec![vec![0], vec![1], vec![2]],
            group_names: Vec::new(),
            candidates: Vec::new(),
            gradient_passes: 0,
            seconds: 0.0,
        };
        let leaves = tree.split(0, record);
        for &leaf in &leaves {
            tree.nodes[leaf].result = Some(LeafResult {
                genotype: format!("g{leaf}"),
                choices: vec![0, 0, 0],
                supernet_valid_accuracy: 0.0,
                architecture_valid_accuracy: 0.0,
                standalone: None,
                parameters: 1,
                flops: 1,
                latency_ms: None,
            });
        }
        let directory = tempfile::tempdir().unwrap();
        let mut config = RunConfig::from_toml(
            "[space]\nname = \"t\"\n[algorithm]\nname = \"a\"\n[final]\nepochs = 9\nhalving_first_epochs = 2\nselect_by = \"successive_halving\"\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        config.run.name = "t".into();
        let mut metrics = MetricsLog::open(&directory.path().join("metrics.jsonl")).unwrap();
        let options = RunOptions { quiet: true, ..RunOptions::default() };
        // Node 3 is best at 2 epochs, node 2 at 4 epochs; node 1 is always worst.
        let calls = std::cell::RefCell::new(Vec::new());
        let train = |node: usize, epochs: usize, _: &str, _: &Architecture, _: &mut MetricsLog| {
            calls.borrow_mut().push((node, epochs));
            let valid = match (node, epochs) {
                (1, _) => 0.1,
                (2, 2) => 0.5,
                (3, 2) => 0.6,
                (2, 4) => 0.8,
                (3, 4) => 0.7,
                other => panic!("unexpected training {other:?}"),
            };
            Ok(StandaloneResult { epochs, final_train_loss: 1.0, valid_accuracy: Some(valid), test_accuracy: valid - 0.05, seconds: 0.0 })
        };
        let rounds = successive_halving(&config, &mut tree, &leaves, &RunDirectory::new(directory.path()), &options, &mut metrics, &train).unwrap();
        assert_eq!(*calls.borrow(), vec![(1, 2), (2, 2), (3, 2), (2, 4), (3, 4)]);
        assert_eq!(rounds.len(), 2);
        assert_eq!((rounds[0].epochs, rounds[0].kept.clone()), (2, vec![2, 3]));
        assert_eq!((rounds[1].epochs, rounds[1].kept.clone()), (4, vec![2]));
        assert_eq!(tree.nodes[2].result.as_ref().unwrap().standalone.as_ref().unwrap().epochs, 4, "a leaf keeps its last training");
        // Resumed: everything is in halving.json, nothing is trained again.
        let none = |_: usize, _: usize, _: &str, _: &Architecture, _: &mut MetricsLog| -> Result<StandaloneResult> { panic!("trained again") };
        let resumed = successive_halving(&config, &mut tree, &leaves, &RunDirectory::new(directory.path()), &options, &mut metrics, &none).unwrap();
        assert_eq!(resumed, rounds);
    }
}
