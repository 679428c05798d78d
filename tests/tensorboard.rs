//! `[run] tensorboard = true`: the event files a run writes, read back by TensorBoard's own
//! reader (the `tensorboard` package of the provisioned Python), hold exactly the scalars of
//! metrics.jsonl: same runs, tags, steps and values (as float32, TensorBoard's `simple_value`).

use std::collections::BTreeMap;

use serde_json::Value;
use splitnas_e2e::*;

/// Few-shot (the root splits at epoch 1 into two children), so that the files hold two nodes'
/// epochs and one split's scores; a short stand-alone training of the selected leaf.
const SCHEDULE: &str = r#"
[search]
epochs = 3
max_steps_per_epoch = 3
eval_batches = 2

[split]
criterion = "gm"
epochs = [1]
groups = [2]
repeats = 2

[final]
epochs = 2
max_steps_per_epoch = 2
select_by = "supernet"
"#;

/// Every scalar of every TensorBoard run under the directory given as argv[1], as
/// {run: {tag: [[step, value], ...]}}, read with TensorBoard's EventAccumulator.
const READER: &str = r#"
import json, os, sys
from tensorboard.backend.event_processing import event_accumulator

root = sys.argv[1]
runs = {}
for directory, _, files in sorted(os.walk(root)):
    if not any(name.startswith("events.out.tfevents.") for name in files):
        continue
    accumulator = event_accumulator.EventAccumulator(directory, size_guidance={event_accumulator.SCALARS: 0})
    accumulator.Reload()
    assert accumulator.file_version == 2.0, accumulator.file_version
    run = os.path.relpath(directory, root)
    runs[run] = {tag: [[e.step, e.value] for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}
print(json.dumps(runs))
"#;

type Runs = BTreeMap<String, BTreeMap<String, Vec<(i64, f64)>>>;

/// What the files should hold, from metrics.jsonl (README, "Run configuration").
fn expected_from_metrics(metrics: &str) -> Runs {
    let mut runs = Runs::new();
    let mut add =
        |run: String, tag: String, step: i64, value: f64| runs.entry(run).or_default().entry(tag).or_default().push((step, value as f32 as f64));
    for line in metrics.lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        let node = event["node"].as_u64().unwrap_or_default();
        match event["event"].as_str().unwrap() {
            "epoch" => {
                for key in ["train_loss", "supernet_valid_accuracy", "lr"] {
                    add(format!("node-{node}"), format!("search/{key}"), event["epoch"].as_i64().unwrap(), event[key].as_f64().unwrap());
                }
                add_step_lrs(&mut add, format!("node-{node}"), "search/step_lr", &event);
            }
            "split" => {
                let split = &event["split"];
                for candidate in split["candidates"].as_array().unwrap() {
                    let tag = format!("split/score/{}", candidate["name"].as_str().unwrap());
                    // A score that is not a number is JSON null: no scalar.
                    if let Some(score) = candidate["score"].as_f64() {
                        add(format!("node-{node}"), tag, split["epoch"].as_i64().unwrap(), score);
                    }
                }
            }
            "standalone_epoch" => {
                for key in ["train_loss", "train_accuracy", "valid_accuracy", "lr"] {
                    if let Some(value) = event[key].as_f64() {
                        add(format!("node-{node}/standalone"), format!("standalone/{key}"), event["epoch"].as_i64().unwrap(), value);
                    }
                }
                add_step_lrs(&mut add, format!("node-{node}/standalone"), "standalone/step_lr", &event);
            }
            _ => {}
        }
    }
    runs
}

/// The learning rate of every step of an epoch, at training step `epoch · steps + step`.
fn add_step_lrs(add: &mut impl FnMut(String, String, i64, f64), run: String, tag: &str, event: &Value) {
    let lrs = event["step_lrs"].as_array().expect("every epoch lists its steps' learning rates");
    let epoch = event["epoch"].as_i64().unwrap();
    for (step, lr) in lrs.iter().enumerate() {
        add(run.clone(), tag.to_string(), epoch * lrs.len() as i64 + step as i64, lr.as_f64().unwrap());
    }
}

#[test]
fn tensorboard_reads_back_the_scalars_of_metrics_jsonl() {
    let out = tempfile::tempdir().unwrap();
    let config = tiny_config("darts", &out.path().join("runs"), SCHEDULE);
    let path = out.path().join("tensorboard.toml");
    std::fs::write(&path, toml::to_string_pretty(&config).unwrap()).unwrap();
    // The key from the command line, as a user would switch it on for one run.
    let output = run_splitnas(&["run", path.to_str().unwrap(), "--quiet", "--set", "run.tensorboard=true"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let directory = out.path().join("runs").join("tiny-darts");
    let recorded: toml::Value = toml::from_str(&std::fs::read_to_string(directory.join("config.toml")).unwrap()).unwrap();
    assert_eq!(recorded["run"]["tensorboard"].as_bool(), Some(true));

    let logdir = directory.join("tensorboard");
    for run in ["node-0", "node-1", "node-2"] {
        // Event files only; the leaves' stand-alone trainings are TensorBoard runs of their own.
        let names: Vec<String> = std::fs::read_dir(logdir.join(run))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name != "standalone")
            .collect();
        assert_eq!(names.len(), 1, "{run}: {names:?}");
        let parts: Vec<&str> = names[0].splitn(5, '.').collect();
        assert_eq!(&parts[..3], ["events", "out", "tfevents"], "{}", names[0]);
        assert!(parts[3].parse::<u64>().is_ok_and(|seconds| seconds > 1_600_000_000) && !parts[4].is_empty(), "<unix seconds>.<host>: {}", names[0]);
    }

    let output = provisioned_python().arg("-c").arg(READER).arg(&logdir).output().unwrap();
    assert!(output.status.success(), "TensorBoard's reader failed (is tensorboard installed? `cargo xtask setup`):\n{}", stderr(&output));
    let read: BTreeMap<String, BTreeMap<String, Vec<(i64, f64)>>> = serde_json::from_str(&stdout(&output)).unwrap();

    let expected = expected_from_metrics(&std::fs::read_to_string(directory.join("metrics.jsonl")).unwrap());
    assert_eq!(read, expected);
    // What the schedule promises: the root's epoch 0 and split at 1, the children's epochs 1-2.
    assert_eq!(read["node-0"]["search/train_loss"].iter().map(|(step, _)| *step).collect::<Vec<_>>(), [0]);
    assert_eq!(read["node-1"]["search/lr"].iter().map(|(step, _)| *step).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(read["node-2"]["search/supernet_valid_accuracy"].len(), 2);
    let scores: Vec<&String> = read["node-0"].keys().filter(|tag| tag.starts_with("split/score/")).collect();
    assert!(!scores.is_empty(), "the split's scores: {:?}", read["node-0"].keys());
    assert!(read["node-0"][scores[0]].iter().all(|(step, _)| *step == 1), "scores at the split epoch");
}
