//! Few-shot searches on a tiny configuration: the split tree, inheritance, frozen α before the
//! last split, leaf selection, and the `tree` command as a user runs it.

use serde_json::Value;
use splitnas_data::TrainOn;
use splitnas_e2e::*;
use splitnas_run::tree::SplitTree;
use splitnas_run::{run, Report, RunOptions, RunSetup};

fn schedule(criterion: &str, restart_final: bool, extra: &str) -> String {
    format!(
        r#"
[search]
epochs = 3
max_steps_per_epoch = 6
eval_batches = 2

[split]
criterion = "{criterion}"
epochs = [1, 2]
groups = [2, 2]
restart_final = {restart_final}
{extra}

[final]
epochs = 1
max_steps_per_epoch = 3
"#
    )
}

fn search(config_text: &str, name: &str) -> (tempfile::TempDir, std::path::PathBuf, Report, SplitTree, Vec<Value>) {
    let out = tempfile::tempdir().unwrap();
    let mut config = tiny_config("darts", out.path(), config_text);
    config.run.name = name.to_string();
    let options = RunOptions { quiet: true, ..RunOptions::default() };
    let setup = RunSetup::new(config, shipped_registry(), &options).unwrap();
    let directory = setup.directory.path().to_path_buf();
    let report = run(setup, &options).unwrap();
    let tree: SplitTree = serde_json::from_str(&std::fs::read_to_string(directory.join("tree.json")).unwrap()).unwrap();
    let events = std::fs::read_to_string(directory.join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (out, directory, report, tree, events)
}

fn event<'a>(events: &'a [Value], kind: &str, node: usize, epoch: Option<usize>) -> &'a Value {
    events
        .iter()
        .find(|e| e["event"] == kind && e["node"] == node && epoch.is_none_or(|epoch| e["epoch"] == epoch))
        .unwrap_or_else(|| panic!("no {kind} event for node {node} epoch {epoch:?}"))
}

#[test]
fn gradient_matching_builds_a_tree_whose_children_inherit_everything() {
    let (_out, directory, report, tree, events) = search(&schedule("gm", false, "repeats = 2"), "gm-inherit");
    assert_eq!(tree.nodes.len(), 7);
    assert_eq!(tree.leaves(), vec![3, 4, 5, 6]);
    let root_split = tree.nodes[0].split.as_ref().expect("the root split");
    assert_eq!(root_split.candidates.len(), 6, "every NB201 edge is a candidate at the root");
    assert_eq!(root_split.gradient_passes, 6 * 2 * 5, "candidates x repeats x options");
    // What the criterion logged is kept on the tree node (and in metrics.jsonl's split event).
    let logged: Vec<&str> = root_split.metrics.iter().map(|(name, _)| name.as_str()).collect();
    assert!(logged.iter().filter(|name| name.starts_with("gm.score.")).count() == 6, "one gm score per candidate: {logged:?}");
    let split_event = events.iter().find(|e| e["event"] == "split" && e["node"] == 0).expect("the root's split event");
    assert_eq!(split_event["split"]["metrics"].as_array().map(Vec::len), Some(root_split.metrics.len()));
    for parent in [1, 2] {
        let split = tree.nodes[parent].split.as_ref().expect("second-level split");
        assert_eq!(split.candidates.len(), 5, "the edge split above is no longer a candidate");
        assert!(split.candidates.iter().all(|c| c.choice_point != root_split.choice_point));
    }
    // The children's masks partition the parent's options on the split edge.
    let point = root_split.choice_point as usize;
    let allowed = |node: usize| tree.nodes[node].mask[point].iter().filter(|on| **on).count();
    assert_eq!(allowed(1) + allowed(2), 5);
    assert!(tree.nodes[1].mask[point].iter().zip(&tree.nodes[2].mask[point]).all(|(a, b)| !(a & b)));

    // Inheritance: a child starts with exactly its parent's state (parameters, BN buffers, α, optimizer).
    for child in 1..=6 {
        let parent = tree.nodes[child].parent.unwrap();
        let split_epoch = tree.nodes[parent].split.as_ref().unwrap().epoch;
        let parent_state = &event(&events, "epoch", parent, Some(split_epoch - 1))["state_digest"];
        let child_state = &event(&events, "init", child, None)["state_digest"];
        assert_eq!(parent_state, child_state, "node {child} did not inherit node {parent}'s state");
        assert!(child_state["buffer"].as_f64().unwrap() > 0.0, "BN running statistics are part of the state");
    }

    // α stays frozen until the last split (epoch 2), then trains.
    let alphas = |e: &Value| e["alphas"].clone();
    assert_eq!(alphas(event(&events, "init", 0, None)), alphas(event(&events, "epoch", 0, Some(0))));
    assert_eq!(alphas(event(&events, "init", 3, None)), alphas(event(&events, "epoch", 1, Some(1))));
    assert_ne!(alphas(event(&events, "init", 3, None)), alphas(event(&events, "epoch", 3, Some(2))));

    // Selection: the best leaf by stand-alone validation accuracy, never simply the last.
    let best = report
        .leaves
        .iter()
        .max_by(|a, b| {
            a.1.standalone.as_ref().unwrap().valid_accuracy.partial_cmp(&b.1.standalone.as_ref().unwrap().valid_accuracy).unwrap().then(b.0.cmp(&a.0))
        })
        .unwrap();
    assert_eq!(report.selected, best.0);
    assert_eq!(report.leaves.len(), 4);

    // The tree as a user draws it.
    let svg = directory.join("tree.svg");
    let output = run_splitnas(&["tree", directory.to_str().unwrap(), "--svg", svg.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let drawing = std::fs::read_to_string(&svg).unwrap();
    assert!(drawing.starts_with("<svg") && drawing.matches("class=\"node\"").count() == 7, "{drawing}");
    assert!(drawing.contains(&format!("node {} (selected)", report.selected)), "a finished run's tree marks its selected leaf");
    let dot = stdout(&run_splitnas(&["tree", directory.to_str().unwrap(), "--dot"]));
    assert!(dot.contains("n0 -> n1") && dot.contains(&root_split.choice_point_name), "{dot}");
    let text = stdout(&run_splitnas(&["tree", directory.to_str().unwrap()]));
    assert!(text.contains("node 6") && text.contains("split"), "{text}");
}

/// `[final] train_on = "train+valid"` with its own batch size and cutout: only the supernet's
/// choice is trained, and the report, report.md and the final event say what it trained on.
#[test]
fn a_train_valid_final_training_is_recorded_as_such() {
    // [final] is the schedule's last table: these keys join it.
    let text = format!("{}select_by = \"supernet\"\ntrain_on = \"train+valid\"\nbatch_size = 48\ncutout = 8\n", schedule("random", true, ""));
    let (_out, directory, report, _tree, events) = search(&text, "train-valid");
    assert_eq!(report.trained_on, TrainOn::TrainValid);
    let finals: Vec<&Value> = events.iter().filter(|e| e["event"] == "final").collect();
    assert_eq!(finals.len(), 1, "only the supernet's choice is trained");
    assert_eq!((&finals[0]["trained_on"], &finals[0]["node"]), (&Value::from("train+valid"), &Value::from(report.selected)));
    let standalone = report.selected_result.standalone.as_ref().expect("the selected leaf is trained");
    assert!(standalone.valid_accuracy.is_some() && (0.0..=1.0).contains(&standalone.test_accuracy));
    let markdown = std::fs::read_to_string(directory.join("report.md")).unwrap();
    assert!(markdown.contains("stand-alone valid (trained on)") && markdown.contains("not held out"), "{markdown}");
}

#[test]
fn restart_final_starts_the_last_children_fresh() {
    let (_out, _directory, _report, tree, events) = search(&schedule("random", true, ""), "random-restart");
    for child in [1, 2] {
        assert_eq!(event(&events, "init", child, None)["fresh"], false);
        assert_eq!(event(&events, "epoch", 0, Some(0))["state_digest"], event(&events, "init", child, None)["state_digest"]);
    }
    for child in [3, 4, 5, 6] {
        let init = event(&events, "init", child, None);
        assert_eq!(init["fresh"], true);
        let parent = tree.nodes[child].parent.unwrap();
        assert_ne!(event(&events, "epoch", parent, Some(1))["state_digest"], init["state_digest"]);
        assert!(init["state_digest"].get("sgd").is_none(), "a fresh optimizer has no momentum yet");
    }
}

#[test]
fn exhaustive_makes_one_child_per_option_of_edge_zero() {
    let text = r#"
[search]
epochs = 2
max_steps_per_epoch = 4
eval_batches = 2

[split]
criterion = "exhaustive"
epochs = [1]
groups = [0]

[final]
epochs = 0
"#;
    let (_out, _directory, report, tree, _events) = search(text, "exhaustive");
    let split = tree.nodes[0].split.as_ref().unwrap();
    assert_eq!(split.choice_point, 0);
    assert_eq!(split.groups, vec![vec![0], vec![1], vec![2], vec![3], vec![4]]);
    assert_eq!(report.leaves.len(), 5);
    // Without stand-alone training the leaves are ranked through the supernet.
    let best = report.leaves.iter().map(|(_, r)| r.architecture_valid_accuracy).fold(f64::MIN, f64::max);
    assert_eq!(report.selected_result.architecture_valid_accuracy, best);
}
