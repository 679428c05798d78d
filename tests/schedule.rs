//! The learning rate of every training step, as metrics.jsonl records it (`step_lrs` of search
//! and stand-alone epochs), equals PyTorch's `torch.optim.lr_scheduler.CosineAnnealingLR`
//! stepped the same way, run live in the provisioned Python:
//!
//! - `lr_schedule_step = "iteration"`: `T_max` = epochs × steps per epoch, `scheduler.step()`
//!   after every batch;
//! - `lr_schedule_step = "epoch"`: `T_max` = epochs, `scheduler.step()` after every epoch.
//!
//! The search is few-shot with `restart_final`: the root's schedule spans every search epoch,
//! the children's a fresh one over the epochs after the split; the selected leaf's stand-alone
//! training has a schedule of its own over `[final] epochs`.

use serde_json::{json, Value};
use splitnas_e2e::*;

const SEARCH_EPOCHS: usize = 3;
const SEARCH_STEPS: usize = 4;
const SPLIT_EPOCH: usize = 1;
const FINAL_EPOCHS: usize = 2;
const FINAL_STEPS: usize = 3;
const SEARCH_LR: f64 = 0.05;
const SEARCH_LR_MIN: f64 = 0.002;
const FINAL_LR: f64 = 0.1;

fn schedule() -> String {
    format!(
        r#"
[search]
epochs = {SEARCH_EPOCHS}
max_steps_per_epoch = {SEARCH_STEPS}
eval_batches = 1
weights = {{ lr = {SEARCH_LR}, lr_min = {SEARCH_LR_MIN} }}

[split]
criterion = "random"
epochs = [{SPLIT_EPOCH}]
groups = [2]
restart_final = true

[final]
epochs = {FINAL_EPOCHS}
max_steps_per_epoch = {FINAL_STEPS}
select_by = "supernet"
"#
    )
}

/// Prints, for each schedule given as JSON on argv[1], the learning rate PyTorch's
/// CosineAnnealingLR gives every batch: `steps` scheduler steps, each lasting `repeat`
/// batches (1 per iteration; the steps of an epoch per epoch).
const PYTORCH: &str = r#"
import json, sys
import torch
sequences = []
for spec in json.loads(sys.argv[1]):
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=spec["lr"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=spec["t_max"], eta_min=spec["eta_min"])
    sequence = []
    for _ in range(spec["steps"]):
        sequence.extend([optimizer.param_groups[0]["lr"]] * spec["repeat"])
        optimizer.step()
        scheduler.step()
    sequences.append(sequence)
print(json.dumps(sequences))
"#;

/// `CosineAnnealingLR` over `epochs` epochs of `steps` batches, stepped per iteration or per
/// epoch: the learning rate of each of the `epochs · steps` batches.
fn pytorch_schedule(lr: f64, eta_min: f64, epochs: usize, steps: usize, per_iteration: bool) -> Value {
    if per_iteration {
        json!({"lr": lr, "eta_min": eta_min, "t_max": epochs * steps, "steps": epochs * steps, "repeat": 1})
    } else {
        json!({"lr": lr, "eta_min": eta_min, "t_max": epochs, "steps": epochs, "repeat": steps})
    }
}

/// `step_lrs` of the events of one kind and node, concatenated in epoch order.
fn logged_lrs(metrics: &str, event: &str, node: u64) -> Vec<f64> {
    let mut epochs: Vec<(u64, Vec<f64>)> = metrics
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("metrics.jsonl lines are JSON"))
        .filter(|e| e["event"] == event && e["node"].as_u64() == Some(node))
        .map(|e| {
            let lrs = e["step_lrs"].as_array().unwrap_or_else(|| panic!("{event} of node {node} lists step_lrs: {e}"));
            assert_eq!(e["lr"], lrs[0], "`lr` is the epoch's first step's");
            (e["epoch"].as_u64().unwrap(), lrs.iter().map(|lr| lr.as_f64().unwrap()).collect())
        })
        .collect();
    epochs.sort_by_key(|(epoch, _)| *epoch);
    epochs.into_iter().flat_map(|(_, lrs)| lrs).collect()
}

fn assert_same_sequence(what: &str, logged: &[f64], pytorch: &Value) {
    let pytorch: Vec<f64> = pytorch.as_array().unwrap().iter().map(|lr| lr.as_f64().unwrap()).collect();
    assert_eq!(logged.len(), pytorch.len(), "{what}: {logged:?} vs PyTorch {pytorch:?}");
    for (step, (ours, theirs)) in logged.iter().zip(&pytorch).enumerate() {
        // PyTorch updates the rate recursively; the closed form agrees to rounding.
        assert!((ours - theirs).abs() <= 1e-12, "{what}, step {step}: {ours} vs PyTorch {theirs}\n{logged:?}\n{pytorch:?}");
    }
}

fn check(step_by: &str) {
    let out = tempfile::tempdir().unwrap();
    let config = tiny_config("darts", &out.path().join("runs"), &schedule());
    let path = out.path().join("schedule.toml");
    std::fs::write(&path, toml::to_string_pretty(&config).unwrap()).unwrap();
    let mut args = vec!["run".to_string(), path.display().to_string(), "--quiet".to_string()];
    if step_by != "default" {
        for key in ["search.weights", "final.optimizer"] {
            args.extend(["--set".to_string(), format!("{key}.lr_schedule_step={step_by}")]);
        }
    } else {
        // The thread count left to splitnas: chosen from the free CPUs, recorded with its reason.
        args.extend(["--set".to_string(), "run.threads=0".to_string()]);
    }
    let output = run_splitnas(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(output.status.success(), "{}", stderr(&output));
    let directory = out.path().join("runs/tiny-darts");
    let recorded: toml::Value = toml::from_str(&std::fs::read_to_string(directory.join("config.toml")).unwrap()).unwrap();
    let expected_key = if step_by == "default" { "iteration" } else { step_by };
    assert_eq!(recorded["search"]["weights"]["lr_schedule_step"].as_str(), Some(expected_key), "config.toml records the schedule");
    assert_eq!(recorded["final"]["optimizer"]["lr_schedule_step"].as_str(), Some(expected_key));

    let per_iteration = expected_key == "iteration";
    let remaining = SEARCH_EPOCHS - SPLIT_EPOCH;
    let specs = json!([
        pytorch_schedule(SEARCH_LR, SEARCH_LR_MIN, SEARCH_EPOCHS, SEARCH_STEPS, per_iteration),
        pytorch_schedule(SEARCH_LR, SEARCH_LR_MIN, remaining, SEARCH_STEPS, per_iteration),
        pytorch_schedule(FINAL_LR, 0.0, FINAL_EPOCHS, FINAL_STEPS, per_iteration),
    ]);
    let output = provisioned_python().arg("-c").arg(PYTORCH).arg(specs.to_string()).output().unwrap();
    assert!(output.status.success(), "PyTorch's schedule:\n{}", stderr(&output));
    let pytorch: Value = serde_json::from_str(&stdout(&output)).unwrap();

    let metrics = std::fs::read_to_string(directory.join("metrics.jsonl")).unwrap();
    let automatic = step_by == "default";
    let epochs: Vec<Value> = metrics
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|e| e["event"] == "epoch" || e["event"] == "standalone_epoch")
        .collect();
    assert_eq!(epochs.len(), SPLIT_EPOCH + 2 * (SEARCH_EPOCHS - SPLIT_EPOCH) + FINAL_EPOCHS);
    for event in &epochs {
        let threads = &event["threads"];
        assert_eq!(threads["automatic"].as_bool(), Some(automatic), "{event}");
        let reason = threads["reason"].as_str().unwrap();
        if automatic {
            assert!(threads["threads"].as_u64().is_some_and(|n| n >= 1) && reason.contains("affinity mask"), "{threads}");
        } else {
            assert_eq!((threads["threads"].as_u64(), reason), (Some(1), "set by run.threads"), "the configuration pins it");
        }
    }
    // The root trains up to the split: the first epochs of a schedule over every search epoch.
    let root = logged_lrs(&metrics, "epoch", 0);
    let root_expected = Value::from(pytorch[0].as_array().unwrap()[..SPLIT_EPOCH * SEARCH_STEPS].to_vec());
    assert_same_sequence(&format!("{step_by}: root"), &root, &root_expected);
    // Both children restart the schedule over the remaining epochs.
    for child in [1, 2] {
        assert_same_sequence(&format!("{step_by}: child {child}"), &logged_lrs(&metrics, "epoch", child), &pytorch[1]);
    }
    let report: Value = serde_json::from_str(&std::fs::read_to_string(directory.join("report.json")).unwrap()).unwrap();
    let selected = report["selected"].as_u64().expect("report.json names the selected leaf");
    assert_same_sequence(&format!("{step_by}: stand-alone"), &logged_lrs(&metrics, "standalone_epoch", selected), &pytorch[2]);
    let standalone = logged_lrs(&metrics, "standalone_epoch", selected);
    if per_iteration {
        assert!(standalone.windows(2).all(|pair| pair[1] < pair[0]), "every step anneals: {standalone:?}");
    } else {
        assert_eq!(standalone[..FINAL_STEPS], [FINAL_LR; FINAL_STEPS], "constant within the first epoch");
    }
}

#[test]
fn the_default_schedule_moves_every_iteration_as_pytorch_does() {
    check("default");
}

#[test]
fn a_schedule_per_epoch_moves_once_per_epoch_as_pytorch_does() {
    check("epoch");
}
