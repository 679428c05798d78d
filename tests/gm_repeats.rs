//! `splitnas bench gm-repeats`: a tiny study as a user runs it, comparing two gm
//! configurations on the same recorded gradients.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use splitnas_e2e::*;

/// NB201's edges, the choice points a root split may pick.
const EDGES: [&str; 6] = ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"];

/// Writes a tiny configuration whose `[split]` and `[search]` tables are `schedule`. RSPS
/// samples its context paths from the algorithm's seeded randomness, so reproducibility covers
/// that too (and single paths keep the recording fast).
fn write_config(directory: &Path, schedule: &str) -> PathBuf {
    let config = tiny_config("rsps", directory, schedule);
    let path = directory.join("study.toml");
    std::fs::write(&path, toml::to_string_pretty(&config).unwrap()).unwrap();
    path
}

/// Runs the study (fixed R=4 against `{"repeats": 2}`) on `seeds`: its stdout and JSON report.
fn study(config: &Path, seeds: &str, json: &Path) -> (String, Value) {
    study_with(config, seeds, json, &[])
}

fn study_with(config: &Path, seeds: &str, json: &Path, extra: &[&str]) -> (String, Value) {
    let mut args = vec![
        "bench",
        "gm-repeats",
        config.to_str().unwrap(),
        "--seeds",
        seeds,
        "--reference-repeats",
        "4",
        "--adaptive-config-raw",
        r#"{"repeats": 2}"#,
        "--json",
        json.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let output = run_splitnas(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    (stdout(&output), serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap())
}

/// A decision's groups as a set of sets: each sorted, then sorted among themselves.
fn partition(decision: &Value) -> Vec<Vec<u64>> {
    let mut groups: Vec<Vec<u64>> = decision["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| {
            let mut options: Vec<u64> = group.as_array().unwrap().iter().map(|o| o.as_u64().unwrap()).collect();
            options.sort_unstable();
            options
        })
        .collect();
    groups.sort();
    groups
}

#[test]
fn two_gm_configurations_decide_on_the_same_recording_reproducibly() {
    let root = tempfile::tempdir().unwrap();
    let config =
        write_config(root.path(), "[search]\nepochs = 2\nmax_steps_per_epoch = 3\n\n[split]\ncriterion = \"gm\"\nepochs = [1]\ngroups = [2]\n");
    let (text, report) = study(&config, "0..2", &root.path().join("first.json"));

    assert_eq!(report["candidates"], json!(EDGES));
    assert_eq!(report["fixed_config"], json!({"repeats": 4}));
    assert_eq!(report["adaptive_config"], json!({"repeats": 2}));
    let records = report["records"].as_array().unwrap();
    assert_eq!(records.iter().map(|r| r["seed"].as_u64().unwrap()).collect::<Vec<_>>(), vec![0, 1]);
    for record in records {
        assert_eq!(record["fixed"]["repeats"], json!(vec![4; 6]), "the fixed configuration uses every recorded sample");
        assert_eq!(record["adaptive"]["repeats"], json!(vec![2; 6]));
        assert_eq!(record["cost_ratio"].as_f64(), Some(0.5));
        assert_eq!(record["gradient_passes"], 6 * 4 * 5, "candidates x repeats x options, recorded once for both");
        let (fixed, adaptive) = (&record["fixed"], &record["adaptive"]);
        assert!(EDGES.contains(&fixed["choice_point_name"].as_str().unwrap()), "{fixed}");
        let groups = partition(fixed);
        assert_eq!(
            (groups.len(), groups.concat().iter().copied().collect::<std::collections::BTreeSet<_>>().len()),
            (2, 5),
            "two groups partitioning the edge's five options: {fixed}"
        );
        let same = fixed["choice_point"] == adaptive["choice_point"] && partition(fixed) == partition(adaptive);
        assert_eq!(record["agree"], same, "{record}");
    }
    let summary = &report["summary"];
    assert_eq!((summary["seeds"].as_u64(), summary["mean_cost_ratio"].as_f64(), summary["max_cost_ratio"].as_f64()), (Some(2), Some(0.5), Some(0.5)));
    assert!(text.contains("seed   0: fixed") && text.contains("seed   1: fixed"), "{text}");
    assert!(text.contains("seeds 2, agreement"), "{text}");

    // One thread, seeded: the same command decides the same way again.
    let decisions = |report: &Value| {
        report["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["seed"].clone(), r["fixed"].clone(), r["adaptive"].clone(), r["agree"].clone()))
            .collect::<Vec<_>>()
    };
    let (_, again) = study(&config, "0..2", &root.path().join("again.json"));
    assert_eq!(decisions(&again), decisions(&report));
    // Every seed records from the same supernet state: seed 1 alone decides as it did after seed 0.
    let (_, alone) = study(&config, "1", &root.path().join("alone.json"));
    assert_eq!(decisions(&alone), decisions(&report)[1..]);

    // Kept recordings are reused as they are (another gm configuration could be studied on them).
    let recordings = root.path().join("recordings");
    let kept = ["--recordings", recordings.to_str().unwrap()];
    let (_, recorded) = study_with(&config, "0..2", &root.path().join("recorded.json"), &kept);
    assert!(recordings.join("seed-0.json").exists() && recordings.join("seed-1.json").exists());
    let (_, reused) = study_with(&config, "0..2", &root.path().join("reused.json"), &kept);
    assert_eq!(decisions(&reused), decisions(&recorded));
    assert_eq!(decisions(&reused), decisions(&report));
    // `plugins try`: any criterion on the kept recordings, beside gm, without training.
    let tried = run_splitnas(&["plugins", "try", "gm", "--recordings", recordings.to_str().unwrap(), "--config", r#"{"repeats": 4}"#, "--json"]);
    assert!(tried.status.success(), "{}", stderr(&tried));
    let tried: Value = serde_json::from_str(&stdout(&tried)).unwrap();
    let seeds: Vec<u64> = tried.as_array().unwrap().iter().map(|record| record["seed"].as_u64().unwrap()).collect();
    assert_eq!(seeds, [0, 1]);
    for (record, fixed) in tried.as_array().unwrap().iter().zip(report["records"].as_array().unwrap()) {
        assert_eq!(record["agrees_with_gm"], true, "gm with every recorded repeat is gm: {record}");
        assert_eq!(record["decision"]["choice_point"], fixed["fixed"]["choice_point"], "and decides as the study's fixed gm did");
    }
    let random = run_splitnas(&["plugins", "try", "random", "--recordings", recordings.to_str().unwrap()]);
    assert!(random.status.success(), "{}", stderr(&random));
    assert!(stdout(&random).contains("seed   1: random") && stdout(&random).contains("2 seeds: `random` agrees with gm on"), "{}", stdout(&random));

    // A recording made for another study is refused, not silently mixed in.
    let output = run_splitnas(&[
        "bench",
        "gm-repeats",
        config.to_str().unwrap(),
        "--seeds",
        "0",
        "--reference-repeats",
        "3",
        "--recordings",
        recordings.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("recorded for another study"), "{}", stderr(&output));
}

#[test]
fn a_one_shot_configuration_is_refused_by_name() {
    let root = tempfile::tempdir().unwrap();
    let config = write_config(root.path(), "[search]\nepochs = 2\n");
    let output = run_splitnas(&["bench", "gm-repeats", config.to_str().unwrap(), "--seeds", "0", "--quiet"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("one-shot"), "{}", stderr(&output));
}

/// One training path: the study's root supernet is the supernet a `splitnas run` of the same
/// configuration has at the split epoch, to the bit (the state digest of every state role).
#[test]
fn the_studied_root_is_the_root_a_run_trains() {
    let root = tempfile::tempdir().unwrap();
    let schedule = "[search]\nepochs = 3\nmax_steps_per_epoch = 3\n\n[split]\ncriterion = \"gm\"\nepochs = [2]\ngroups = [2]\nrepeats = 1\n";
    let config = write_config(root.path(), schedule);
    let (_, report) = study(&config, "0", &root.path().join("study.json"));
    let studied = &report["root_state_digest"];
    assert!(studied["param"].as_f64().is_some_and(|sum| sum > 0.0), "the report records the root's digest: {report}");

    let output = run_splitnas(&["run", config.to_str().unwrap(), "--quiet"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let run_directory = root.path().join("tiny-rsps");
    let metrics = std::fs::read_to_string(run_directory.join("metrics.jsonl")).unwrap();
    let last_root_epoch = metrics
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .rfind(|event| event["event"] == "epoch" && event["node"] == 0)
        .expect("the run trained its root");
    assert_eq!(last_root_epoch["epoch"], 1, "the root trains epochs 0 and 1 before the split at 2");
    assert_eq!(&last_root_epoch["state_digest"], studied, "bench gm-repeats trains its root as a run does");
}
