//! `--set section.key=value` and `--seed` on the command line: they reach every kind of key, the
//! run directory records the configuration they made and the overrides themselves, a wrong one
//! fails before anything is written naming the `--set`, and `resume` refuses them.

use std::path::Path;

use serde_json::Value;
use splitnas_e2e::*;

/// A one-shot base the overrides turn few-shot; `threads = 0` so that `--threads` shows.
fn write_base(directory: &Path) -> std::path::PathBuf {
    let mut config =
        tiny_config("darts", &directory.join("runs"), "[search]\nepochs = 5\nmax_steps_per_epoch = 2\neval_batches = 1\n\n[final]\nepochs = 0\n");
    config.run.threads = 0;
    let path = directory.join("base.toml");
    std::fs::write(&path, toml::to_string_pretty(&config).unwrap()).unwrap();
    path
}

const OVERRIDES: [&str; 10] = [
    "search.epochs=3",
    "run.name=\"from-the-command-line\"",
    "algorithm.name=gdas",
    "split.criterion=gm",
    "split.epochs=[1]",
    "split.groups=[2]",
    "split.repeats=2",
    "space.channels=6",
    "search.weights.lr=0.05",
    "final.select_by=supernet",
];

fn set_args(overrides: &[&str]) -> Vec<String> {
    overrides.iter().flat_map(|set| ["--set".to_string(), set.to_string()]).collect()
}

#[test]
fn set_reaches_every_kind_of_key_and_the_run_records_it() {
    let out = tempfile::tempdir().unwrap();
    let base = write_base(out.path());
    let mut args = vec!["run".to_string(), base.display().to_string(), "--quiet".into(), "--seed".into(), "7".into(), "--threads".into(), "1".into()];
    args.extend(set_args(&OVERRIDES));
    let output = splitnas().args(&args).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));

    let directory = out.path().join("runs").join("from-the-command-line");
    let config: toml::Value = toml::from_str(&std::fs::read_to_string(directory.join("config.toml")).unwrap()).unwrap();
    assert_eq!(config["search"]["epochs"].as_integer(), Some(3));
    assert_eq!(config["search"]["max_steps_per_epoch"].as_integer(), Some(2), "keys not set keep the file's value");
    assert_eq!(config["search"]["weights"]["lr"].as_float(), Some(0.05));
    assert_eq!(config["algorithm"]["name"].as_str(), Some("gdas"));
    assert!(config["algorithm"].get("tau_max").is_some(), "gdas's defaults are resolved: {config}");
    assert_eq!(config["split"]["criterion"].as_str(), Some("gm"));
    assert_eq!(config["split"]["epochs"].as_array().map(Vec::len), Some(1));
    assert_eq!(config["split"]["repeats"].as_integer(), Some(2), "a criterion's own key");
    assert_eq!(config["space"]["channels"].as_integer(), Some(6), "a space's own key");
    assert_eq!(config["final"]["select_by"].as_str(), Some("supernet"));
    assert_eq!(config["run"]["seed"].as_integer(), Some(7), "--seed is run.seed");
    assert_eq!(config["data"]["seed"].as_integer(), Some(7), "data.seed follows run.seed");
    assert_eq!(config["run"]["threads"].as_integer(), Some(1), "--threads is recorded");

    let provenance: Value = serde_json::from_str(&std::fs::read_to_string(directory.join("provenance.json")).unwrap()).unwrap();
    let invocation = &provenance["invocation"];
    assert_eq!(invocation["config_file"].as_str(), base.to_str());
    let mut expected: Vec<String> = OVERRIDES.iter().map(|set| set.parse::<splitnas_run::overrides::ConfigOverride>().unwrap().to_string()).collect();
    expected.push("run.seed=7".into());
    assert_eq!(invocation["overrides"], serde_json::json!(expected), "{provenance}");
    assert_eq!(invocation["overrides"][2], "algorithm.name=\"gdas\"", "recorded as a --set that means the same");
    let command_line = invocation["command_line"].as_str().unwrap();
    assert!(command_line.contains("--set split.epochs=[1]") && command_line.contains("--threads 1"), "{command_line}");
    assert_eq!(provenance["builds"].as_array().map(Vec::len), Some(3), "space, algorithm, criterion: {provenance}");

    let tree: Value = serde_json::from_str(&std::fs::read_to_string(directory.join("tree.json")).unwrap()).unwrap();
    assert_eq!(tree["nodes"].as_array().map(Vec::len), Some(3), "the overrides made it few-shot: one split into two");

    // resume refuses to change the run half-way.
    let output = run_splitnas(&["resume", directory.to_str().unwrap(), "--set", "search.epochs=5", "--quiet"]);
    assert!(!output.status.success());
    let error = stderr(&output);
    assert!(error.contains("resume takes no --set search.epochs=5") && error.contains("config.toml"), "{error}");
    let output = run_splitnas(&["resume", directory.to_str().unwrap(), "--seed", "3"]);
    assert!(!output.status.success() && stderr(&output).contains("--seed 3"), "{}", stderr(&output));
}

#[test]
fn a_wrong_set_fails_naming_it_before_anything_is_written() {
    let out = tempfile::tempdir().unwrap();
    let base = write_base(out.path());
    for (set, expected) in [
        ("search.epochz=3", vec!["--set search.epochz=3", "unknown field `epochz`"]),
        ("srch.epochs=3", vec!["--set srch.epochs=3", "srch"]),
        ("search.epochs=ten", vec!["--set search.epochs=\"ten\"", "search.epochs", "string"]),
        ("split.epochs=[1", vec!["--set", "not a TOML value"]),
        ("search.epochs=0", vec!["--set search.epochs=0", "at least 1"]),
        ("space.chanels=6", vec!["--set space.chanels=6", "unknown config key `chanels`", "nb201"]),
    ] {
        let output = run_splitnas(&["run", base.to_str().unwrap(), "--quiet", "--set", set]);
        assert!(!output.status.success(), "{set} was accepted");
        let error = stderr(&output);
        for part in expected {
            assert!(error.contains(part), "{set}: no {part:?} in {error}");
        }
        assert!(!out.path().join("runs").exists(), "{set}: nothing is written");
    }
}

/// `compare --config BASE --set ...`: every run it starts has the keys.
#[test]
fn compare_takes_set_too() {
    let out = tempfile::tempdir().unwrap();
    let base = write_base(out.path());
    let runs = out.path().join("compare");
    let output = splitnas()
        .args(["compare", "--criteria", "none", "--seeds", "0", "--config", base.to_str().unwrap(), "--output-dir", runs.to_str().unwrap(), "--json"])
        .args(["--quiet", "--set", "search.epochs=3", "--set", "final.select_by=supernet"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let directory = runs.join("none-seed0");
    let config: toml::Value = toml::from_str(&std::fs::read_to_string(directory.join("config.toml")).unwrap()).unwrap();
    assert_eq!(config["search"]["epochs"].as_integer(), Some(3));
    let provenance: Value = serde_json::from_str(&std::fs::read_to_string(directory.join("provenance.json")).unwrap()).unwrap();
    assert_eq!(provenance["invocation"]["overrides"], serde_json::json!(["search.epochs=3", "final.select_by=\"supernet\""]), "{provenance}");
}
