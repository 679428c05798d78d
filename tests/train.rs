//! `splitnas train`, per-epoch stand-alone checkpoints and the exported model:
//!
//! - a search on the embedded data, then `train` of its genotype; both exported networks load
//!   strictly into NAS-Bench-201's own `TinyNetwork` (the `xautodl` package) and give splitnas's
//!   logits on a fixed batch; a DARTS-space network loads into DARTS's `NetworkCIFAR`;
//! - a `train` killed with SIGKILL after its first epoch and resumed ends exactly as an
//!   uninterrupted one: the same weights, bit for bit, and the same accuracies.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use splitnas_e2e::*;
use splitnas_plugin_api::ComponentKind;
use tch::Tensor;

const TINY_NETWORK: &str = "xautodl.models.cell_infers.tiny_network.TinyNetwork";
const GENOTYPE: &str = "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|";

/// A small NB201 configuration whose `[final]` training has `epochs` short epochs.
fn write_config(dir: &Path, epochs: usize) -> PathBuf {
    write_config_with_space(dir, epochs, "name = \"nb201\"\nchannels = 4\ncells = 1")
}

fn write_config_with_space(dir: &Path, epochs: usize, space: &str) -> PathBuf {
    let path = dir.join("tiny.toml");
    let text = format!(
        r#"
[run]
name = "tiny"
seed = 3
device = "cpu"
threads = 1
[data]
dataset = "embedded"
max_train_images = 1200
max_test_images = 200
batch_size = 32
[space]
{space}
[algorithm]
name = "darts"
[search]
epochs = 2
max_steps_per_epoch = 5
eval_batches = 2
[split]
criterion = "gm"
epochs = [1]
groups = [2]
repeats = 1
[final]
epochs = {epochs}
max_steps_per_epoch = 8
"#
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn splitnas_ok(args: &[&str]) -> String {
    let output = run_splitnas(args);
    assert!(output.status.success(), "splitnas {args:?} failed:\n{}", stderr(&output));
    stdout(&output)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))).expect("JSON")
}

/// splitnas's own logits for a fixed batch, from the network a run trained (its last
/// stand-alone checkpoint), then the reference class's on the exported files: equal.
fn assert_reference_logits_equal(run: &Path, node: usize, epochs: usize, reference: &str) {
    let model = read_json(&run.join("model.json"));
    assert_eq!(model["names"], "reference", "{model}");
    assert_eq!(model["reference"], reference);

    // In-process: the same space, configured as the run configured it, and the trained weights.
    let registry = shipped_registry();
    let space_name = model["space"]["name"].as_str().expect("space name");
    let component = registry.get(ComponentKind::Space, space_name).expect("the space is shipped");
    let splitnas_plugin_api::ComponentFactory::Space(factory) = component.info.factory else { panic!("{space_name} is a space") };
    let config = model["space"]["config"].to_string();
    let mut space = factory(config.as_str().into()).into_result().expect("the space");
    let data = &model["data"];
    let setup = splitnas_plugin_api::SpaceSetup {
        classes: data["classes"].as_u64().unwrap() as u32,
        input_channels: data["input_channels"].as_u64().unwrap() as u32,
        image_size: data["image_size"].as_u64().unwrap() as u32,
        network_channels: 0,
        network_cells: 0,
    };
    space.configure(&setup).into_result().expect("configure");
    let architecture = space.parse_genotype(model["genotype"].as_str().unwrap().into()).into_result().expect("genotype");
    let network = space.build_network(&architecture, splitnas_plugin_api::Device::Cpu).into_result().expect("network");
    let checkpoint = run.join(format!("checkpoints/standalone-node-{node}-epochs-{epochs}.safetensors"));
    let saved = splitnas_engine::checkpoint::read_tensors(&checkpoint).expect("stand-alone checkpoint");
    let parameters = splitnas_engine::error::named(network.parameters().into_result().unwrap());
    let buffers = splitnas_engine::error::named(network.buffers().into_result().unwrap());
    splitnas_engine::checkpoint::restore_into(&checkpoint, &saved, &parameters, "param.").unwrap();
    splitnas_engine::checkpoint::restore_into(&checkpoint, &saved, &buffers, "buffer.").unwrap();
    let _guard = exclusive_generator();
    tch::manual_seed(5);
    let input = Tensor::randn([4, setup.input_channels as i64, setup.image_size as i64, setup.image_size as i64], tch::kind::FLOAT_CPU);
    let mode = splitnas_plugin_api::ForwardMode { train: false, drop_path_prob: 0.0 };
    let logits = tch::no_grad(|| network.forward(splitnas_plugin_api::TensorRef::new(&input), mode).into_result().unwrap().logits.into_tensor());
    let batch = run.join("check-batch.safetensors");
    Tensor::write_safetensors(&[("input", &input), ("logits", &logits)], &batch).expect("write the batch");

    let output = provisioned_python()
        .arg(workspace_root().join("tests/reference/check_export.py"))
        .arg(run.join("model.json"))
        .arg(&batch)
        .output()
        .expect("python runs");
    assert!(output.status.success(), "the reference class does not load the export:\n{}", stderr(&output));
    let result: serde_json::Value = serde_json::from_str(stdout(&output).trim()).expect("one JSON line");
    let difference = result["max_abs_difference"].as_f64().unwrap();
    let scale = result["max_abs_logit"].as_f64().unwrap();
    assert!(scale > 0.0 && difference <= 1e-4 * scale.max(1.0), "logits differ: {result}");
}

#[test]
fn a_searched_architecture_trained_and_exported_gives_the_reference_classes_logits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(dir.path(), 2);
    let runs = dir.path().join("runs");
    let runs_arg = runs.to_str().unwrap();
    splitnas_ok(&["run", config.to_str().unwrap(), "--output-dir", runs_arg, "--quiet"]);
    let search = runs.join("tiny");
    let report = read_json(&search.join("report.json"));
    let selected = report["selected"].as_u64().unwrap() as usize;
    assert_eq!(report["model"], "model.safetensors", "{report}");
    assert_reference_logits_equal(&search, selected, 2, TINY_NETWORK);

    let genotype = report["selected_result"]["genotype"].as_str().unwrap().to_string();
    splitnas_ok(&["train", &genotype, "--config", config.to_str().unwrap(), "--name", "again", "--output-dir", runs_arg, "--quiet"]);
    let trained = runs.join("again");
    assert_eq!(read_json(&trained.join("training.json"))["genotype"], genotype.as_str());
    assert_reference_logits_equal(&trained, 0, 2, TINY_NETWORK);
}

/// Every DARTS op kind, a stride-2 skip connection (factorized reduce) included.
const DARTS_GENOTYPE: &str = "Genotype(normal=[('sep_conv_3x3', 0), ('dil_conv_5x5', 1), ('skip_connect', 0), ('sep_conv_5x5', 2), \
    ('avg_pool_3x3', 1), ('dil_conv_3x3', 3), ('max_pool_3x3', 0), ('sep_conv_3x3', 4)], normal_concat=[2, 3, 4, 5], \
    reduce=[('skip_connect', 0), ('sep_conv_5x5', 1), ('avg_pool_3x3', 0), ('dil_conv_3x3', 2), ('max_pool_3x3', 1), \
    ('sep_conv_3x3', 3), ('skip_connect', 2), ('dil_conv_5x5', 4)], reduce_concat=[2, 3, 4, 5])";

#[test]
fn a_trained_darts_network_exports_to_darts_network_cifar() {
    let dir = tempfile::tempdir().expect("temp dir");
    let space = "name = \"darts\"\nchannels = 4\ncells = 3\nnetwork_channels = 4\nnetwork_cells = 3\nauxiliary = false";
    let config = write_config_with_space(dir.path(), 1, space);
    let runs = dir.path().join("runs");
    splitnas_ok(&[
        "train",
        DARTS_GENOTYPE,
        "--config",
        config.to_str().unwrap(),
        "--name",
        "darts",
        "--output-dir",
        runs.to_str().unwrap(),
        "--quiet",
    ]);
    assert_reference_logits_equal(&runs.join("darts"), 0, 1, "model.NetworkCIFAR");
}

#[test]
fn a_killed_train_resumes_to_the_uninterrupted_result() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(dir.path(), 6);
    let runs = dir.path().join("runs");
    let runs_arg = runs.to_str().unwrap();
    let train = |name: &str| -> std::process::Command {
        let mut command = splitnas();
        command.args(["train", GENOTYPE, "--config", config.to_str().unwrap(), "--name", name, "--output-dir", runs_arg, "--quiet"]);
        command
    };
    let whole = train("whole").output().expect("splitnas runs");
    assert!(whole.status.success(), "{}", stderr(&whole));

    let mut child = train("killed").spawn().expect("splitnas starts");
    let metrics = runs.join("killed/metrics.jsonl");
    let started = Instant::now();
    while !std::fs::read_to_string(&metrics).is_ok_and(|text| text.contains("\"standalone_epoch\"")) {
        assert!(started.elapsed() < Duration::from_secs(120), "no epoch finished in two minutes");
        assert!(child.try_wait().expect("poll").is_none(), "the training ended before it could be killed");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert!(!runs.join("killed/report.json").exists(), "killed before the end");

    splitnas_ok(&["resume", runs.join("killed").to_str().unwrap(), "--quiet"]);
    let weights = |name: &str| std::fs::read(runs.join(name).join("model.safetensors")).expect("model.safetensors");
    assert!(weights("whole") == weights("killed"), "the resumed training's weights differ from the uninterrupted one's");
    let result = |name: &str| read_json(&runs.join(name).join("report.json"))["selected_result"]["standalone"].clone();
    let (whole, resumed) = (result("whole"), result("killed"));
    for key in ["final_train_loss", "valid_accuracy", "test_accuracy", "epochs"] {
        assert_eq!(whole[key], resumed[key], "{key}: {whole} vs {resumed}");
    }
    let epochs = std::fs::read_to_string(&metrics).unwrap().lines().filter(|line| line.contains("\"standalone_epoch\"")).count();
    assert!(epochs >= 6, "every epoch is logged once the run resumed ({epochs} lines)");
}
