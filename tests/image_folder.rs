//! Image folders as a user meets them: `data generate`, `data check`, the image-folder example
//! run on the generated set (classes.json, a corrupt JPEG skipped or refused), and `bench data`
//! against torchvision.

use std::path::{Path, PathBuf};

use splitnas_e2e::{provisioned_python, run_splitnas, splitnas, stderr, stdout, workspace_root};

/// A small generated set: 3 classes of 64x48 JPEGs, 20 of each in train/ and 4 in val/.
fn generated_set(root: &Path) -> PathBuf {
    let dir = root.join("images");
    let output = run_splitnas(&[
        "data",
        "generate",
        dir.to_str().unwrap(),
        "--images",
        "72",
        "--classes",
        "3",
        "--width",
        "64",
        "--height",
        "48",
        "--val-fraction",
        "0.17",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    dir
}

fn sorted_class_folders(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// The image-folder example with its data at `data` and a budget of a few steps.
fn run_example(data: &Path, output_dir: &Path, extra: &[&str]) -> std::process::Output {
    let example = workspace_root().join("examples/image-folder.toml");
    let mut command = splitnas();
    command.args(["run", example.to_str().unwrap(), "--output-dir", output_dir.to_str().unwrap(), "--overwrite", "-q", "--threads", "1"]);
    let data_path = format!("data.path={}", data.display());
    for setting in [
        data_path.as_str(),
        "data.batch_size=8",
        "data.eval_batch_size=8",
        "data.workers=2",
        "search.max_steps_per_epoch=2",
        "search.eval_batches=1",
        "final.max_steps_per_epoch=2",
    ]
    .iter()
    .chain(extra)
    {
        command.args(["--set", setting]);
    }
    command.output().expect("splitnas runs")
}

#[test]
fn the_image_folder_example_runs_on_a_generated_set_and_records_its_classes() {
    let root = tempfile::tempdir().unwrap();
    let data = generated_set(root.path());
    let output = run_splitnas(&["data", "check", data.to_str().unwrap(), "--json"]);
    assert!(output.status.success(), "a fresh generated set checks clean: {}", stderr(&output));
    let check: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert!(check.to_string().contains("train") && check.to_string().contains("val"), "{check}");

    let runs = root.path().join("runs");
    let output = run_example(&data, &runs, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let run = runs.join("image-folder");
    let classes: Vec<String> = serde_json::from_str(&std::fs::read_to_string(run.join("classes.json")).unwrap()).unwrap();
    assert_eq!(classes, sorted_class_folders(&data.join("train")), "label k is the k-th sorted class folder");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    let selected = &report["selected_result"];
    assert!(selected["genotype"].as_str().is_some_and(|genotype| genotype.starts_with('|')), "an NB201 genotype is selected: {report}");
    let test_accuracy = selected["standalone"]["test_accuracy"].as_f64().unwrap_or_else(|| panic!("stand-alone test accuracy: {report}"));
    assert!((0.0..=1.0).contains(&test_accuracy), "{report}");
}

#[test]
fn a_corrupt_jpeg_is_skipped_and_logged_or_stops_the_run_by_name() {
    let root = tempfile::tempdir().unwrap();
    let data = generated_set(root.path());
    let class = data.join("train").join(&sorted_class_folders(&data.join("train"))[0]);
    let victim = std::fs::read_dir(&class).unwrap().next().unwrap().unwrap().path();
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() / 3]).unwrap();
    let victim_name = victim.file_name().unwrap().to_string_lossy().into_owned();

    // 1 of 60 training images is 1.7 %: allowed at 10 %, skipped with its path on stderr.
    let runs = root.path().join("runs");
    let output = run_example(&data, &runs, &["data.max_unreadable_fraction=0.1", "search.max_steps_per_epoch=4"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains(&victim_name), "the skipped image is named: {}", stderr(&output));

    // With no unreadable image allowed, the run stops and names it.
    let output = run_example(&data, &runs, &["data.max_unreadable_fraction=0", "search.max_steps_per_epoch=4"]);
    assert!(!output.status.success(), "the run must stop at the corrupt image");
    assert!(stderr(&output).contains(&victim_name), "{}", stderr(&output));
}

#[test]
fn bench_data_times_both_loaders_on_the_same_images() {
    let root = tempfile::tempdir().unwrap();
    let data = generated_set(root.path());
    let json = root.path().join("bench.json");
    // The provisioned Python has torch and torchvision (`cargo xtask setup`).
    let python = provisioned_python().get_program().to_owned();
    let output = splitnas()
        .args(["bench", "data", data.to_str().unwrap(), "--image-size", "32", "--batch-size", "8", "--rounds", "2", "--steps", "2"])
        .args(["--step-channels", "4", "--threads", "1", "--json", json.to_str().unwrap(), "--python"])
        .arg(&python)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["images"], 60, "the training split: {report}");
    let rounds = report["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2);
    for round in rounds {
        assert_eq!(round["splitnas"]["images"], 60, "one whole epoch: {round}");
        assert_eq!(round["torchvision"]["images"], 60, "the same epoch in torchvision: {round}");
        assert!(round["splitnas"]["resident_peak_bytes"].as_u64().unwrap() >= round["splitnas"]["resident_start_bytes"].as_u64().unwrap());
        assert!(round["ratio"].as_f64().unwrap() > 0.0);
    }
    let step = &report["step"];
    assert!(step["median_ms_with_loader"].as_f64().unwrap() > 0.0 && step["median_ms_preloaded"].as_f64().unwrap() > 0.0, "{step}");
    assert!(stdout(&output).contains("| median |"), "{}", stdout(&output));

    let output = splitnas().args(["bench", "data", data.to_str().unwrap(), "--python", "/nonexistent/python", "--rounds", "1"]).output().unwrap();
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--python"), "a missing Python says what to pass: {}", stderr(&output));
}
