//! One-shot searches on a tiny configuration: every algorithm learns, α moves for the
//! differentiable ones, and the run directory holds what it promises.

use serde_json::Value;
use splitnas_e2e::*;
use splitnas_run::{run, RunOptions, RunSetup};

const SCHEDULE: &str = r#"
[search]
epochs = 3
eval_batches = 8

[search.weights]
lr = 0.1

[search.architecture]
lr = 0.003

[final]
epochs = 1
max_steps_per_epoch = 5
"#;

fn metrics(dir: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn alphas(event: &Value) -> Vec<f64> {
    event["alphas"].as_object().unwrap().values().flat_map(|v| v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap())).collect()
}

fn search_learns(algorithm: &str, differentiable: bool) {
    let _generator = exclusive_generator();
    let out = tempfile::tempdir().unwrap();
    let config = tiny_config(algorithm, out.path(), SCHEDULE);
    let options = RunOptions { quiet: true, ..RunOptions::default() };
    let setup = RunSetup::new(config, shipped_registry(), &options).unwrap();
    let directory = setup.directory.path().to_path_buf();
    let report = run(setup, &options).unwrap();

    let leaf = &report.selected_result;
    // RSPS's evaluation weights are one random path; its derived architecture (best of N) is what it learns.
    let accuracy = if differentiable { leaf.supernet_valid_accuracy } else { leaf.architecture_valid_accuracy };
    assert!(accuracy > 0.25, "{algorithm}: validation accuracy {accuracy} is not clearly above chance (0.1)");
    assert!(leaf.standalone.is_some(), "stand-alone training ran");
    assert!(leaf.parameters > 0 && leaf.flops > 0);

    let events = metrics(&directory);
    let epochs: Vec<&Value> = events.iter().filter(|e| e["event"] == "epoch").collect();
    assert_eq!(epochs.len(), 3);
    let first_loss = epochs[0]["train_loss"].as_f64().unwrap();
    let last_loss = epochs[2]["train_loss"].as_f64().unwrap();
    assert!(last_loss < first_loss, "{algorithm}: training loss did not fall ({first_loss} -> {last_loss})");
    if differentiable {
        let before = alphas(&events[0]);
        let after = alphas(epochs[2]);
        assert_eq!(before.len(), after.len());
        let moved = before.iter().zip(&after).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(moved > 0.01, "{algorithm}: α barely moved (max change {moved})");
    }
    for file in ["config.toml", "metrics.jsonl", "tree.json", "report.json", "report.md", "checkpoints/node-0.safetensors", "checkpoints/node-0.json"]
    {
        assert!(directory.join(file).exists(), "{file} missing from the run directory");
    }
    // What people look at: every run draws its tree, its curves and its (NB201) cell; α only
    // where the algorithm has it.
    for file in ["tree.svg", "curves.svg", "architecture.svg"] {
        let drawing = std::fs::read_to_string(directory.join(file)).unwrap_or_else(|_| panic!("{file} missing from the run directory"));
        assert!(drawing.starts_with("<svg"), "{file}");
    }
    let curves = std::fs::read_to_string(directory.join("curves.svg")).unwrap();
    assert_eq!(curves.matches("data-panel=\"search-loss\" data-series=\"0\"").count(), 1, "one loss curve for the root");
    assert_eq!(directory.join("alpha.svg").exists(), differentiable, "{algorithm}: alpha.svg where the algorithm has α");
    if differentiable {
        let alpha = std::fs::read_to_string(directory.join("alpha.svg")).unwrap();
        assert_eq!(alpha.matches("class=\"panel\"").count(), 6, "a panel per NB201 edge");
    }
    let report_json: Value = serde_json::from_str(&std::fs::read_to_string(directory.join("report.json")).unwrap()).unwrap();
    assert_eq!(report_json["selected_result"]["genotype"], Value::String(leaf.genotype.clone()));
}

#[test]
fn darts_learns_and_moves_alpha() {
    search_learns("darts", true);
}

#[test]
fn snas_learns_and_moves_alpha() {
    search_learns("snas", true);
}

#[test]
fn gdas_learns_and_moves_alpha() {
    search_learns("gdas", true);
}

#[test]
fn rsps_learns() {
    search_learns("rsps", false);
}

#[test]
fn an_existing_run_directory_is_not_overwritten_by_accident() {
    let _generator = exclusive_generator();
    let out = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(out.path().join("tiny-darts")).unwrap();
    let options = RunOptions { quiet: true, ..RunOptions::default() };
    let setup = RunSetup::new(tiny_config("darts", out.path(), SCHEDULE), shipped_registry(), &options).unwrap();
    let error = run(setup, &options).err().unwrap().to_string();
    assert!(error.contains("already exists") && error.contains("--overwrite"), "{error}");
}

#[test]
fn unknown_component_keys_are_rejected_by_name() {
    let out = tempfile::tempdir().unwrap();
    let mut config = tiny_config("darts", out.path(), SCHEDULE);
    config.space.config.insert("chanels".to_string(), toml::Value::Integer(8));
    let error = RunSetup::new(config, shipped_registry(), &RunOptions::default()).err().unwrap().to_string();
    assert!(error.contains("`chanels`") && error.contains("nb201"), "{error}");
}

/// A wrong algorithm or criterion name, or a wrong criterion key, fails before the run
/// directory exists: the corrected command then runs, instead of finding "already exists".
#[test]
fn wrong_names_and_criterion_keys_fail_before_the_run_directory_exists() {
    let out = tempfile::tempdir().unwrap();
    let few_shot = "[search]\nepochs = 3\n[split]\ncriterion = \"gm\"\nepochs = [1]\ngroups = [2]\n";
    let cases = [
        (tiny_config("dartz", out.path(), SCHEDULE), "dartz"),
        (tiny_config("darts", out.path(), &few_shot.replace("\"gm\"", "\"gmm\"")), "gmm"),
        (tiny_config("darts", out.path(), &format!("{few_shot}repeatz = 3\n")), "repeatz"),
    ];
    for (config, wrong) in cases {
        let path = out.path().join("config.toml");
        std::fs::write(&path, toml::to_string_pretty(&config).unwrap()).unwrap();
        let output = run_splitnas(&["run", path.to_str().unwrap(), "--quiet"]);
        assert!(!output.status.success(), "`{wrong}` was accepted");
        assert!(stderr(&output).contains(wrong), "the error names `{wrong}`: {}", stderr(&output));
        assert!(!out.path().join("tiny-darts").exists() && !out.path().join("tiny-dartz").exists(), "a run directory was left behind for `{wrong}`");
    }
}

/// `run --print-defaults` prints a complete configuration, the plugins' own keys included, that
/// parses back; `config.toml` of a run records the same resolved keys.
#[test]
fn print_defaults_and_config_toml_hold_every_plugin_key() {
    let output = run_splitnas(&["run", "--print-defaults"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let printed: toml::Value =
        toml::from_str(text.split("\n# The other loaded components").next().unwrap()).expect("the printed configuration parses");
    assert!(printed["space"].get("channels").is_some() && printed["space"].get("cells").is_some(), "the space's keys: {text}");
    assert!(printed["split"].get("repeats").is_some(), "the gm criterion's keys: {text}");
    assert!(text.contains("# algorithm `rsps`") && text.contains("# criterion `exhaustive`"), "the other components: {text}");

    let _generator = exclusive_generator();
    let out = tempfile::tempdir().unwrap();
    let config = tiny_config("darts", out.path(), SCHEDULE);
    let options = RunOptions { quiet: true, ..RunOptions::default() };
    let setup = RunSetup::new(config, shipped_registry(), &options).unwrap();
    let directory = setup.directory.clone();
    std::fs::create_dir_all(directory.path()).unwrap();
    let lock = directory.lock().expect("nobody holds a fresh directory");
    // Not even --overwrite removes a directory another process works in.
    let error = run(setup, &RunOptions { overwrite: true, ..options.clone() }).expect_err("a held run directory is refused").to_string();
    assert!(error.contains("in use by process") && error.contains(&std::process::id().to_string()), "{error}");
    drop(lock);
    std::fs::remove_dir_all(directory.path()).unwrap();
    let setup = RunSetup::new(tiny_config("darts", out.path(), SCHEDULE), shipped_registry(), &options).unwrap();
    run(setup, &options).unwrap();
    let recorded: toml::Value = toml::from_str(&std::fs::read_to_string(directory.config_path()).unwrap()).unwrap();
    assert!(recorded["algorithm"].get("second_order").is_some(), "the algorithm's defaults are recorded: {recorded}");
    assert_eq!(recorded["data"]["seed"].as_integer(), Some(1), "data.seed follows run.seed");
}

/// `compare` reuses a finished run only when the same plugin builds made it: a run whose
/// provenance names another build starts over.
#[test]
fn compare_reuses_only_runs_made_by_the_same_plugin_builds() {
    let out = tempfile::tempdir().unwrap();
    let config = tiny_config(
        "rsps",
        out.path(),
        "[search]\nepochs = 3\nmax_steps_per_epoch = 2\neval_batches = 1\n\n[final]\nepochs = 0\nselect_by = \"supernet\"\n",
    );
    let base = out.path().join("base.toml");
    std::fs::write(&base, toml::to_string_pretty(&config).unwrap()).unwrap();
    let runs = out.path().join("runs");
    let compare = || {
        let output = run_splitnas(&[
            "compare",
            "--criteria",
            "none",
            "--seeds",
            "0",
            "--config",
            base.to_str().unwrap(),
            "--output-dir",
            runs.to_str().unwrap(),
            "--json",
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        output
    };
    compare();
    let provenance_path = runs.join("none-seed0").join("provenance.json");
    let provenance: Value = serde_json::from_str(&std::fs::read_to_string(&provenance_path).unwrap()).unwrap();
    let recorded = provenance["builds"].clone();
    assert_eq!(provenance["invocation"]["config_file"].as_str(), base.to_str(), "{provenance}");
    let kinds: Vec<&str> = recorded.as_array().unwrap().iter().map(|build| build["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["space", "algorithm"], "a one-shot run uses a space and an algorithm: {recorded}");
    assert_eq!(recorded[0]["build_sha256"].as_str().map(str::len), Some(64));
    let metrics_lines = || std::fs::read_to_string(runs.join("none-seed0").join("metrics.jsonl")).unwrap().lines().count();
    let first = metrics_lines();

    let again = compare();
    assert_eq!(metrics_lines(), first, "the same builds: the finished run is reused, nothing is trained again");
    assert!(!stderr(&again).contains("starts over"), "{}", stderr(&again));

    // Another build of the algorithm's plugin: the run is made again.
    let tampered = std::fs::read_to_string(&provenance_path).unwrap().replace(recorded[1]["build_sha256"].as_str().unwrap(), &"0".repeat(64));
    std::fs::write(&provenance_path, tampered).unwrap();
    let redone = compare();
    assert!(stderr(&redone).contains("starts over") && stderr(&redone).contains("algorithm `rsps`"), "{}", stderr(&redone));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(runs.join("none-seed0").join("report.json")).unwrap()).unwrap();
    assert_eq!(report["builds"], recorded, "the new run records the builds that made it");
}
