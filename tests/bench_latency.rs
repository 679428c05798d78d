//! `splitnas bench latency`: a lookup table measured on this CPU ranks the options as their
//! work says, and a run that names the table searches under its latencies.

use std::path::Path;

use serde_json::Value;
use splitnas_e2e::*;
use splitnas_engine::costs::LatencyTable;
use splitnas_run::{run, RunOptions, RunSetup};

/// Measures a table with `splitnas bench latency` (one thread, few repeats: an ordering, not
/// a timing goal) and reads it back.
fn measure(output: &Path, args: &[&str]) -> LatencyTable {
    let path = output.to_str().unwrap();
    let common = ["bench", "latency", "--threads", "1", "--warmup", "2", "--repeats", "5", "--quiet", "--output", path];
    let result = run_splitnas(&[&common[..], args].concat());
    assert!(result.status.success(), "bench latency failed:\n{}", stderr(&result));
    assert!(stdout(&result).contains("written to"), "{}", stdout(&result));
    LatencyTable::read(output).unwrap()
}

/// A 7x7 expand-6 MBConv does about three times the work of a 3x3 expand-3 one at every block:
/// the table must rank it slower in total and at most blocks. Full widths at 64 px keep the
/// convolutions, not libtorch's per-call overhead, in charge of the time, yet take well under
/// a second per option.
#[test]
fn a_table_built_on_this_cpu_ranks_a_7x7_expand_6_block_above_a_3x3_expand_3_one() {
    let directory = tempfile::tempdir().unwrap();
    let table = measure(&directory.path().join("lut.json"), &["--space", "proxylessnas", "--image", "64", "--classes", "10"]);
    assert_eq!((table.space.as_str(), table.device.as_str(), table.batch_size, table.repeats), ("proxylessnas", "cpu", 1, 5));
    assert_eq!(table.settings["image_size"], 64);
    assert_eq!(table.settings["config"]["width_multiplier"], 1.0, "the resolved space configuration is recorded");
    assert_eq!(table.machine.threads, 1);
    assert_eq!(table.choice_points.len(), 21);
    let latency = |point: usize, name: &str| -> f64 {
        let option = table.choice_points[point].options.iter().find(|option| option.name == name).unwrap_or_else(|| panic!("{name}"));
        option.median_ms
    };
    let mut slower_blocks = 0;
    let (mut large, mut small) = (0.0, 0.0);
    for (point, choice_point) in table.choice_points.iter().enumerate() {
        for option in &choice_point.options {
            if option.name == "zero" {
                assert_eq!((option.median_ms, option.places.len()), (0.0, 0), "zero computes nothing");
            } else {
                assert!(option.median_ms > 0.0 && option.places.len() == 1, "{} of {}", option.name, choice_point.name);
            }
        }
        large += latency(point, "7x7_MBConv6");
        small += latency(point, "3x3_MBConv3");
        slower_blocks += usize::from(latency(point, "7x7_MBConv6") > latency(point, "3x3_MBConv3"));
    }
    assert!(large > small, "7x7_MBConv6 {large} ms, 3x3_MBConv3 {small} ms over the 21 blocks");
    assert!(slower_blocks > 14, "7x7_MBConv6 is slower at only {slower_blocks} of 21 blocks");
    // Block 1 sees the fixed first block's 16 channels at 32x32 (the stem halves 64 px).
    assert_eq!(table.choice_points[0].options[0].places[0].input_shape, [16, 32, 32]);
}

/// A run with `option_cost = "latency"` reads the table, offers its milliseconds to the
/// algorithm, and ProxylessNAS's expected cost stays within what the table allows.
#[test]
fn a_run_searches_under_the_latencies_of_the_table_it_names() {
    let directory = tempfile::tempdir().unwrap();
    let table_path = directory.path().join("nb201-lut.json");
    let space_config = r#"{"channels": 4, "cells": 1}"#;
    let table = measure(&table_path, &["--space", "nb201", "--space-config", space_config, "--image", "28", "--input-channels", "1"]);
    let per_point = |pick: fn(f64, f64) -> f64| -> f64 {
        table.choice_points.iter().map(|point| point.options.iter().map(|option| option.median_ms).fold(f64::NAN, pick)).sum()
    };
    let (cheapest, costliest) = (per_point(f64::min), per_point(f64::max));
    assert!(costliest > cheapest && cheapest == 0.0, "none costs 0 ms: {cheapest}..{costliest}");

    let _generator = exclusive_generator();
    let extra = format!(
        r#"arch_update_every = 1
cost_form = "additive"
cost_weight = 0.5
cost_target = {target}

[search]
epochs = 2
max_steps_per_epoch = 10
eval_batches = 2
option_cost = "latency"
latency_table = "{table}"

[final]
epochs = 1
max_steps_per_epoch = 2
"#,
        target = costliest / 2.0,
        table = table_path.display()
    );
    let config = tiny_config("proxylessnas", directory.path(), &extra);
    let options = RunOptions { quiet: true, ..RunOptions::default() };
    let setup = RunSetup::new(config, shipped_registry(), &options).unwrap();
    let offered = setup.costs.options.as_ref().expect("the run offers the table's costs");
    assert_eq!(offered.metric.as_str(), "latency_ms");
    assert_eq!(offered.values[0].as_slice(), table.choice_points[0].options.iter().map(|option| option.median_ms).collect::<Vec<_>>());
    let run_directory = setup.directory.path().to_path_buf();
    run(setup, &options).unwrap();

    let events: Vec<Value> =
        std::fs::read_to_string(run_directory.join("metrics.jsonl")).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let expected_costs: Vec<f64> = events
        .iter()
        .filter(|event| event["event"] == "epoch")
        .flat_map(|event| event["metrics"].as_array().cloned().unwrap_or_default())
        .filter(|metric| metric[0] == "proxylessnas/expected_cost")
        .map(|metric| metric[1].as_f64().unwrap())
        .collect();
    assert!(!expected_costs.is_empty(), "the architecture steps logged the expected latency");
    for cost in &expected_costs {
        assert!((cheapest - 1e-6..=costliest + 1e-6).contains(cost), "expected latency {cost} ms outside {cheapest}..{costliest}");
    }
}

/// A table measured for another space is refused by the run, naming the file and the command.
#[test]
fn a_run_refuses_a_table_of_another_space() {
    let directory = tempfile::tempdir().unwrap();
    let table_path = directory.path().join("darts-lut.json");
    // Built by hand from an nb201 table with the space's name changed: no timing needed.
    let mut table = measure(&table_path, &["--space", "nb201", "--space-config", r#"{"channels": 4, "cells": 1}"#]);
    table.space = "darts".to_string();
    table.write(&table_path).unwrap();
    let extra = format!("[search]\noption_cost = \"latency\"\nlatency_table = \"{}\"\n", table_path.display());
    let config = tiny_config("proxylessnas", directory.path(), &extra);
    let error = RunSetup::new(config, shipped_registry(), &RunOptions { quiet: true, ..RunOptions::default() }).err().unwrap();
    let message = format!("{error:#}");
    assert!(message.contains("darts-lut.json") && message.contains("bench latency") && message.contains("nb201"), "{message}");
}
