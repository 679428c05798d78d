//! The result of a run: `report.json` (typed, read back by `compare` and `bench ranking`) and
//! `report.md` for people.

use serde::{Deserialize, Serialize};
use splitnas_data::TrainOn;
use splitnas_engine::standalone::StandaloneResult;

use crate::provenance::ComponentBuild;
use crate::tree::{LeafResult, SplitTree};

/// The stand-alone training of the selected architecture.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub run: String,
    pub space: String,
    pub algorithm: String,
    pub criterion: String,
    pub device: String,
    pub seed: u64,
    /// Wall time of supernet training and splitting, all nodes.
    pub search_seconds: f64,
    /// The part of it spent inside split criteria (gradient collection included).
    pub split_seconds: f64,
    pub leaves: Vec<(usize, LeafResult)>,
    /// The node whose architecture was selected.
    pub selected: usize,
    pub selected_result: LeafResult,
    /// What the stand-alone networks trained on (`[final] train_on`): with `train+valid` their
    /// `valid_accuracy` is measured on images they trained on, not held out.
    #[serde(default)]
    pub trained_on: TrainOn,
    /// Every round of successive halving (`[final] select_by = "successive_halving"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub halving: Vec<HalvingRound>,
    /// The plugin builds that made the run (as `provenance.json` records them).
    #[serde(default)]
    pub builds: Vec<ComponentBuild>,
    /// The selected architecture's trained network (`model.safetensors`, relative to the run
    /// directory), when one was trained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// One leaf's stand-alone training in a round of successive halving.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HalvingEntry {
    pub node: usize,
    pub genotype: String,
    pub result: StandaloneResult,
}

/// A round of successive halving: every survivor trained from scratch for `epochs`, and the
/// leaves kept for the next round (the better half, rounded up, by validation accuracy).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HalvingRound {
    pub round: usize,
    pub epochs: usize,
    pub entries: Vec<HalvingEntry>,
    pub kept: Vec<usize>,
}

/// A genotype inside a Markdown table cell: GitHub splits cells on `|` even inside code spans.
pub(crate) fn table_code(text: &str) -> String {
    format!("`{}`", text.replace('|', "\\|"))
}

/// The report for people.
pub(crate) fn render_report(report: &Report, tree: &SplitTree) -> String {
    let mut text = format!(
        "# splitnas run `{}`\n\nspace `{}`, algorithm `{}`, split criterion `{}`, device {}, seed {}.\nsearch {:.1} s, of which splitting {:.1} s.\n\n## Split tree\n\n```\n{}```\n\n## Leaves\n\n| node | genotype | params | supernet valid | arch. via supernet | stand-alone valid | stand-alone test |\n|---|---|---|---|---|---|---|\n",
        report.run, report.space, report.algorithm, report.criterion, report.device, report.seed, report.search_seconds, report.split_seconds, tree.render_text()
    );
    if report.trained_on == TrainOn::TrainValid {
        text = text.replace("| stand-alone valid |", "| stand-alone valid (trained on) |");
    }
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    for (node, leaf) in &report.leaves {
        let standalone = leaf.standalone.as_ref();
        text += &format!(
            "| {node}{} | {} | {} | {:.4} | {:.4} | {} | {} |\n",
            if *node == report.selected { " (selected)" } else { "" },
            table_code(&leaf.genotype),
            leaf.parameters,
            leaf.supernet_valid_accuracy,
            leaf.architecture_valid_accuracy,
            fmt(standalone.and_then(|s| s.valid_accuracy)),
            fmt(standalone.map(|s| s.test_accuracy))
        );
    }
    if !report.halving.is_empty() {
        text += "\n## Successive halving\n\n| round | epochs | node | genotype | stand-alone valid | stand-alone test | kept |\n|---|---|---|---|---|---|---|\n";
        for round in &report.halving {
            for entry in &round.entries {
                text += &format!(
                    "| {} | {} | {} | {} | {} | {:.4} | {} |\n",
                    round.round,
                    round.epochs,
                    entry.node,
                    table_code(&entry.genotype),
                    fmt(entry.result.valid_accuracy),
                    entry.result.test_accuracy,
                    if round.kept.contains(&entry.node) { "yes" } else { "no" }
                );
            }
        }
    }
    if report.trained_on == TrainOn::TrainValid {
        text += "\nStand-alone networks trained on train+valid (every training image): their validation accuracy is measured on images they trained on, not held out.\n";
    }
    let selected = &report.selected_result;
    text += &format!(
        "\nSelected: node {} `{}` ({} parameters, {} FLOPs){}.\n",
        report.selected,
        selected.genotype,
        selected.parameters,
        selected.flops,
        selected.standalone.as_ref().map_or(String::new(), |s| format!(", stand-alone test accuracy {:.4}", s.test_accuracy))
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genotypes_in_table_cells_escape_the_cell_separator() {
        let cell = table_code("|nor_conv_3x3~0|+|skip_connect~0|none~1|");
        assert_eq!(cell, "`\\|nor_conv_3x3~0\\|+\\|skip_connect~0\\|none~1\\|`");
        assert!(!cell.replace("\\|", "").contains('|'), "no bare separator is left: {cell}");
    }

    #[test]
    fn a_train_valid_report_says_its_validation_accuracy_is_not_held_out() {
        let options: abi_stable::std_types::RVec<splitnas_plugin_api::OptionInfo> =
            ["a", "b"].iter().map(|n| splitnas_plugin_api::OptionInfo { name: (*n).into(), costs: Default::default() }).collect();
        let info = splitnas_plugin_api::SpaceInfo {
            name: "t".into(),
            choice_points: vec![splitnas_plugin_api::ChoicePointInfo { name: "e".into(), group: "cell".into(), options, splittable: true }].into(),
            max_options: 2,
            min_group_size: 2,
        };
        let tree = SplitTree::new(&info);
        let standalone = StandaloneResult { epochs: 1, final_train_loss: 1.0, valid_accuracy: Some(0.9), test_accuracy: 0.8, seconds: 0.0 };
        let leaf = LeafResult {
            genotype: "g".into(),
            choices: vec![0],
            supernet_valid_accuracy: 0.5,
            architecture_valid_accuracy: 0.5,
            standalone: Some(standalone),
            parameters: 1,
            flops: 1,
            latency_ms: None,
        };
        let json = r#"{"run": "r", "space": "t", "algorithm": "a", "criterion": "none", "device": "cpu", "seed": 0,
            "search_seconds": 0.0, "split_seconds": 0.0, "leaves": [], "selected": 0,
            "selected_result": {"genotype": "g", "choices": [0], "supernet_valid_accuracy": 0.5, "architecture_valid_accuracy": 0.5,
            "standalone": null, "parameters": 1, "flops": 1}}"#;
        let mut report: Report = serde_json::from_str(json).expect("a report written before trained_on reads back");
        assert_eq!(report.trained_on, TrainOn::Train);
        report.leaves = vec![(0, leaf.clone())];
        report.selected_result = leaf;
        let held_out = render_report(&report, &tree);
        assert!(held_out.contains("| stand-alone valid |") && !held_out.contains("not held out"), "{held_out}");
        report.trained_on = TrainOn::TrainValid;
        let seen = render_report(&report, &tree);
        assert!(seen.contains("| stand-alone valid (trained on) |") && seen.contains("not held out"), "{seen}");
        assert_eq!(serde_json::to_value(&report).unwrap()["trained_on"], "train+valid");
    }
}
