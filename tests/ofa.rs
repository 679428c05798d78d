//! OFA end to end: the CPU example (shrunk by `--set`) splits kernel sizes by gradient
//! matching during the kernel phase and ends with every leaf's evolved subnet inside its mask,
//! its FLOPs window and a latency window from a table `bench latency` measured; progressive shrinking killed mid-phase (the teacher already taken)
//! resumes exactly.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use serde_json::Value;
use splitnas_e2e::resume::*;
use splitnas_e2e::*;

/// The example's keys shrunk to seconds: fewer images and steps, a small evolution.
const SHRINK: &[&str] = &[
    "data.max_train_images=600",
    "data.max_test_images=200",
    "data.eval_batch_size=100",
    "search.max_steps_per_epoch=4",
    "search.eval_batches=1",
    // Every evolved subnet evaluated after its BN statistics are re-estimated, as OFA's.
    "search.recalibration_batches=2",
    "split.repeats=1",
    "algorithm.evolution.population=6",
    "algorithm.evolution.iterations=2",
    "final.epochs=1",
    "final.max_steps_per_epoch=2",
];

/// A latency table of the example's space at its data's shape (`bench latency`, few repeats),
/// and a latency window every sub-supernet can meet, whatever the timings: the two trunk ends
/// plus 10 times the slowest block part (every subnet runs at least 10 blocks, 2 per stage;
/// the largest runs 20).
fn latency_table_and_window(directory: &Path) -> (std::path::PathBuf, f64) {
    let table = directory.join("ofa-latency.json");
    let space_config = r#"{"width_multiplier": 0.25, "stage_strides": [1, 2, 2, 1, 2], "dropout": 0.0}"#;
    let output = run_splitnas(&[
        "bench",
        "latency",
        "--space",
        "ofa",
        "--space-config",
        space_config,
        "--image",
        "28",
        "--input-channels",
        "1",
        "--classes",
        "10",
        "--threads",
        "1",
        "--warmup",
        "1",
        "--repeats",
        "3",
        "--quiet",
        "--output",
        table.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "bench latency failed:\n{}", stderr(&output));
    let parts = json_file(&table)["parts"].as_array().expect("a table of network parts").clone();
    let median = |part: &Value| part["median_ms"].as_f64().unwrap();
    let (blocks, ends): (Vec<&Value>, Vec<&Value>) = parts.iter().partition(|part| part["key"].as_str().unwrap().starts_with("mbconv"));
    // 9 block shapes (each stage's first block and the rest; stage 1's first has stride 1 and
    // the shape of the rest) x 3 kernels x 3 ratios; the stem and head ends.
    assert_eq!((blocks.len(), ends.len()), (81, 2), "{parts:?}");
    let slowest_block = blocks.iter().map(|part| median(part)).fold(0.0, f64::max);
    (table, ends.iter().map(|part| median(part)).sum::<f64>() + 10.0 * slowest_block)
}

#[test]
fn the_cpu_example_splits_kernels_and_evolves_inside_the_mask_and_its_cost_windows() {
    let scratch = tempfile::tempdir().unwrap();
    let (table, max_latency_ms) = latency_table_and_window(scratch.path());
    let example = workspace_root().join("examples/ofa-gm.toml");
    let mut command = splitnas();
    command.args(["run".as_ref(), example.as_os_str(), "--output-dir".as_ref(), scratch.path().as_os_str(), "--quiet".as_ref()]);
    let latency_window = [
        "search.option_cost=\"latency\"".to_string(),
        format!("search.latency_table={}", table.display()),
        format!("algorithm.evolution.max_latency_ms={max_latency_ms}"),
    ];
    for set in SHRINK.iter().copied().chain(latency_window.iter().map(String::as_str)) {
        command.args(["--set", set]);
    }
    let output = command.output().expect("splitnas runs");
    assert!(output.status.success(), "the example failed:\n{}", stderr(&output));
    let run = scratch.path().join("ofa-gm");
    let config: toml::Value = toml::from_str(&std::fs::read_to_string(&example).unwrap()).unwrap();
    let max_flops = config["algorithm"]["evolution"]["max_flops"].as_float().expect("the example sets max_flops");
    let tree = json_file(&run.join("tree.json"));
    let nodes = tree["nodes"].as_array().unwrap();
    // Two splits into 2: the root, 2 children, 4 leaves; every split on a kernel, into {1, 2}.
    assert_eq!(nodes.len(), 7);
    for node in nodes.iter().filter(|node| !node["split"].is_null()) {
        let split = &node["split"];
        assert!(split["choice_point"].as_u64().unwrap() < 20, "only kernels split: {split}");
        let mut sizes: Vec<usize> = split["groups"].as_array().unwrap().iter().map(|group| group.as_array().unwrap().len()).collect();
        sizes.sort_unstable();
        assert_eq!(sizes, [1, 2], "{split}");
    }
    let leaves: Vec<&Value> = nodes.iter().filter(|node| node["children"].as_array().is_none_or(|children| children.is_empty())).collect();
    assert_eq!(leaves.len(), 4);
    for leaf in leaves {
        let result = &leaf["result"];
        let flops = result["flops"].as_f64().unwrap();
        assert!(flops > 0.0 && flops <= max_flops, "leaf {}: {flops} FLOPs, window up to {max_flops}", leaf["id"]);
        let latency = result["latency_ms"].as_f64().expect("the run records each leaf's latency from the table");
        assert!(latency > 0.0 && latency <= max_latency_ms, "leaf {}: {latency} ms, window up to {max_latency_ms}", leaf["id"]);
        // The evolved subnet extracted with the leaf's supernet weights, no retraining: with the
        // run's recalibration and validation batches it scores what the search measured
        // through the supernet (one image of 100 for float differences).
        let node = leaf["id"].to_string();
        let output = run_splitnas(&["extract", run.to_str().unwrap(), "--node", &node, "--json", "--quiet"]);
        assert!(output.status.success(), "extract failed:\n{}", stderr(&output));
        let extracted: Value = serde_json::from_str(&stdout(&output)).unwrap();
        let (valid, through_supernet) = (extracted["valid_accuracy"].as_f64().unwrap(), result["architecture_valid_accuracy"].as_f64().unwrap());
        assert!((valid - through_supernet).abs() <= 0.0101, "leaf {node}: extracted {valid}, through the supernet {through_supernet}");
        let model = json_file(&run.join(format!("models/node-{node}-from-supernet.json")));
        assert_eq!((model["trained"]["epochs"].as_u64(), model["trained"]["from_supernet"]["node"].to_string()), (Some(0), node.clone()));
        assert_eq!(model["reference"], "ofa.imagenet_classification.networks.mobilenet_v3.MobileNetV3", "{model}");
        let choices = result["choices"].as_array().unwrap();
        for (point, (choice, row)) in choices.iter().zip(leaf["mask"].as_array().unwrap()).enumerate() {
            let allowed = row[choice.as_u64().unwrap() as usize].as_bool().unwrap();
            assert!(allowed, "leaf {}: choice point {point} has option {choice}, outside its mask", leaf["id"]);
        }
    }
    // The teacher was taken at the end of the full-network phase, once, by the root.
    let teacher_events: Vec<Value> = metrics(&run).into_iter().filter(|event| event.to_string().contains("ofa/teacher_taken")).collect();
    assert_eq!(teacher_events.len(), 1, "{teacher_events:?}");
    // The evolution saw the latencies the host records: one per leaf, the same numbers.
    let mut recorded: Vec<f64> = leaves_latency(&tree);
    let mut logged: Vec<f64> = metrics(&run)
        .iter()
        .filter_map(|event| event["metrics"].as_array())
        .flatten()
        .filter(|metric| metric[0] == "ofa/derived_latency_ms")
        .map(|metric| metric[1].as_f64().unwrap())
        .collect();
    recorded.sort_by(f64::total_cmp);
    logged.sort_by(f64::total_cmp);
    assert_eq!(logged.len(), recorded.len());
    for (logged, recorded) in logged.iter().zip(&recorded) {
        assert!((logged - recorded).abs() <= 1e-9 * recorded, "logged {logged} ms, recorded {recorded} ms");
    }
}

fn leaves_latency(tree: &Value) -> Vec<f64> {
    tree["nodes"].as_array().unwrap().iter().filter_map(|node| node["result"]["latency_ms"].as_f64()).collect()
}

#[test]
fn arch_counts_parameters_and_macs_as_the_official_subnets() {
    // The max and min subnets of the conformance fixture (ofa's get_active_subnet at width 1.0).
    let fixture = json_file(&workspace_root().join("plugins/ofa/tests/fixtures/stats.json"));
    for case in
        fixture["cases"].as_array().unwrap().iter().filter(|case| case["config"]["width_multiplier"] == 1.0 && case["config"]["classes"] == 1000)
    {
        let genotype = case["genotype"].as_str().unwrap();
        let image = case["image_size"].to_string();
        let output = run_splitnas(&["arch", "--space", "ofa", genotype, "--classes", "1000", "--image", &image, "--json"]);
        assert!(output.status.success(), "{}", stderr(&output));
        let stats: Value = serde_json::from_str(&stdout(&output)).unwrap();
        assert_eq!((&stats["parameters"], &stats["flops"]), (&case["parameters"], &case["flops"]), "{}", case["name"]);
    }
}

/// A tiny OFA run: the full network for 1 epoch, the kernel phase for epochs 1-3 (the root
/// splits a kernel at 3; the children inherit the teacher), then depth and expand.
const RESUME_CONFIG: &str = r#"
[run]
name = "ofa-resume"
seed = 3
device = "cpu"
threads = 1

[data]
dataset = "embedded"
max_train_images = 600
max_test_images = 100
batch_size = 16
eval_batch_size = 100

[space]
name = "ofa"
width_multiplier = 0.1
stage_strides = [1, 2, 2, 1, 2]
dropout = 0.0

[algorithm]
name = "ofa"
phases = [
    { name = "full", epochs = 1, lr = 0.1, subnets_per_step = 1, allow = { kernel = ["7"], expand = ["6"], depth = ["4"] } },
    { name = "kernel", epochs = 3, lr = 0.06, subnets_per_step = 1, allow = { expand = ["6"], depth = ["4"] } },
    { name = "depth", epochs = 1, lr = 0.02, subnets_per_step = 2, allow = { expand = ["6"] } },
    { name = "expand", epochs = 1, lr = 0.02, subnets_per_step = 2, reorganize = { expand_ratio_stage = 0 } },
]

[algorithm.evolution]
population = 4
iterations = 1
max_flops = 0

[search]
epochs = 6
max_steps_per_epoch = 10
eval_batches = 1
label_smoothing = 0.1

[split]
criterion = "gm"
epochs = [3]
groups = [2]
restart_final = false
repeats = 1
min_group_size = 1

[final]
epochs = 1
max_steps_per_epoch = 2
"#;

#[test]
fn progressive_shrinking_killed_mid_phase_resumes_exactly() {
    let scratch = tempfile::tempdir().unwrap();
    let config = scratch.path().join("ofa-resume.toml");
    std::fs::write(&config, RESUME_CONFIG).unwrap();
    let (reference_dir, interrupted_dir) = (scratch.path().join("reference"), scratch.path().join("interrupted"));
    let run = interrupted_dir.join("ofa-resume");
    let mut reference = Splitnas::start(&run_args(&config, &reference_dir), scratch.path().join("reference.log"));

    // Mid kernel phase, the teacher in the checkpoint (epochs 0-1 done, epoch 2 training).
    let mut first = Splitnas::start(&run_args(&config, &interrupted_dir), scratch.path().join("first.log"));
    let status = first.kill_when(&run, |run| checkpoint_epoch(run, 0) >= 2);
    assert_eq!(status.signal(), Some(SIGKILL), "the run ended before the kill:\n{}", first.log_text());
    assert!(checkpoint_epoch(&run, 0) < 3, "the kill landed after the kernel phase");
    // Mid depth phase in a child that inherited the teacher (epoch 4 training).
    let mut second = Splitnas::start(&["resume".as_ref(), run.as_os_str()], scratch.path().join("second.log"));
    let status = second.kill_when(&run, |run| checkpoint_epoch(run, 1) >= 4);
    assert_eq!(status.signal(), Some(SIGKILL), "the resumed run ended before the kill:\n{}", second.log_text());
    let checkpoint = std::fs::read(run.join("checkpoints/node-1.safetensors")).expect("node 1's checkpoint");
    assert!(contains(&checkpoint, b"algorithm.teacher."), "the child's checkpoint holds no teacher");
    Splitnas::start(&["resume".as_ref(), run.as_os_str()], scratch.path().join("last.log")).wait_for_success("the last resume");
    reference.wait_for_success("the reference run");

    let reference_run = reference_dir.join("ofa-resume");
    assert_same_results(&reference_run, &run, 3);
    assert_same_events(&reference_run, &run);
    assert!(is_finished(Path::new(&run)));
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}
