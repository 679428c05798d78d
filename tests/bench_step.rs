//! `splitnas bench step` and the gradient-matching path it times: the distance matrices equal
//! the PyTorch reference's, memory does not grow across repeats, and the command prints the
//! reference's JSON keys.

use std::cell::RefCell;
use std::collections::HashMap;

use abi_stable::std_types::RVec;
use splitnas_bench::step::{gm_distance_matrix, process_memory, SpaceBench};
use splitnas_data::SeededRng;
use splitnas_data::{Batch, RepeatedBatch};
use splitnas_e2e::{run_splitnas, shipped_registry, stderr, stdout, workspace_root};
use splitnas_engine::context::one_hot_weights;
use splitnas_engine::gradients::GradientProvider;
use splitnas_engine::services::PluginServices;
use splitnas_engine::sub_supernet::Trainer;
use splitnas_plugin_api::{Architecture, Device, OwnedTensor, WeightSample};
use tch::Tensor;

/// The fixture of tests/fixtures/gm-distances (written by its make_fixture.py from the
/// reference's own classes).
fn fixture() -> HashMap<String, Tensor> {
    let path = workspace_root().join("tests/fixtures/gm-distances/nb201_c4_n1.safetensors");
    Tensor::read_safetensors(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).into_iter().collect()
}

#[test]
fn gradient_matching_distances_equal_the_pytorch_reference() {
    tch::set_num_threads(1);
    let fixture = fixture();
    let registry = shipped_registry();
    let bench = SpaceBench::new(&registry, 4, 1, Device::Cpu).unwrap();
    let env = bench.environment();
    let mut sub = bench.sub_supernet(&registry, &env, "rsps").unwrap();
    // The reference's weights under our names; its cell batch norms keep no running statistics,
    // which training-mode passes never read anyway.
    let mut loaded = 0;
    tch::no_grad(|| {
        for (name, tensor) in sub.parameters.iter().chain(&sub.buffers) {
            if let Some(value) = fixture.get(name) {
                tensor.shallow_clone().copy_(value);
                loaded += 1;
            } else {
                assert!(name.contains("running_"), "the fixture lacks parameter {name}");
            }
        }
    });
    assert_eq!(loaded, fixture.keys().filter(|k| !k.starts_with("input.") && !k.starts_with("edge")).count(), "every fixture tensor is used");

    let batch = Batch { images: fixture["input.images"].shallow_clone(), labels: fixture["input.labels"].shallow_clone() };
    let services = PluginServices::new(SeededRng::new(0));
    let info = bench.info.clone();
    let (context, trainer) = sub.trainer(&env, 0, &services);
    let Trainer { parameters, .. } = trainer;
    for edge in [2u32, 5] {
        let contexts: Vec<Vec<i64>> = Vec::<Vec<i64>>::try_from(&fixture[&format!("edge{edge}.contexts")]).unwrap();
        let mut next = contexts.iter();
        let mut replay = || {
            let choices: RVec<u32> = next.next().expect("one context per repeat").iter().map(|&c| c as u32).collect();
            let (weights, active) = one_hot_weights(&Architecture { choices }, &info, Device::Cpu);
            Ok(WeightSample { weights: OwnedTensor::new(weights), active })
        };
        let batches = RefCell::new(RepeatedBatch(Batch { images: batch.images.shallow_clone(), labels: batch.labels.shallow_clone() }));
        let provider = GradientProvider::new(&context, &mut replay, parameters, &batches);
        let ours = gm_distance_matrix(&provider, edge, contexts.len()).unwrap();
        let expected = Vec::<f64>::try_from(fixture[&format!("edge{edge}.distances")].flatten(0, -1)).unwrap();
        assert_eq!(ours.len(), expected.len());
        let worst = ours.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-4, "edge {edge}: largest difference {worst:e}\nours     {ours:?}\nexpected {expected:?}");
        // The matrices are informative: distinct options, not all-equal gradients.
        assert!(expected.iter().any(|&d| d > 0.1), "edge {edge}: a degenerate fixture");
    }
}

#[test]
fn gradient_matching_repeats_do_not_grow_memory() {
    tch::set_num_threads(1);
    let registry = shipped_registry();
    let bench = SpaceBench::new(&registry, 4, 1, Device::Cpu).unwrap();
    let env = bench.environment();
    let mut sub = bench.sub_supernet(&registry, &env, "rsps").unwrap();
    let services = PluginServices::new(SeededRng::new(0));
    let (context, trainer) = sub.trainer(&env, 0, &services);
    let Trainer { algorithm, parameters, .. } = trainer;
    let mut contexts =
        || algorithm.context_sample(splitnas_plugin_api::HostContext_TO::from_ptr(&context, abi_stable::sabi_trait::TD_Opaque)).into_result();
    tch::manual_seed(0);
    let batch = Batch { images: Tensor::randn([16, 3, 16, 16], tch::kind::FLOAT_CPU), labels: Tensor::randint(10, [16], tch::kind::INT64_CPU) };
    let batches = RefCell::new(RepeatedBatch(batch));
    let provider = GradientProvider::new(&context, &mut contexts, parameters, &batches);
    gm_distance_matrix(&provider, 0, 20).unwrap();
    let (before, _) = process_memory();
    gm_distance_matrix(&provider, 0, 200).unwrap();
    let (after, _) = process_memory();
    // 200 repeats hold ~1,000 gradient sets of this supernet (~0.1 MB each) if anything leaked.
    let growth_mb = (after as f64 - before as f64) / (1024.0 * 1024.0);
    assert!(growth_mb < 16.0, "resident memory grew {growth_mb:.1} MB over 200 repeats");
}

#[test]
fn bench_step_prints_the_reference_keys() {
    let output = run_splitnas(&[
        "bench",
        "step",
        "--channels",
        "4",
        "--cells",
        "1",
        "--batch",
        "4",
        "--image",
        "8",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--gm-batches",
        "2",
        "--print-matrix",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<serde_json::Value> = stdout(&output).lines().map(|line| serde_json::from_str(line).expect("JSON lines")).collect();
    let modes: Vec<&str> = lines.iter().filter_map(|line| line["mode"].as_str()).collect();
    assert_eq!(modes, ["darts", "spos", "gm"]);
    for line in lines.iter().filter(|line| line.get("mode").is_some()) {
        for key in ["ms_per_step", "steps", "channels", "cells", "batch", "image", "threads", "device", "torch", "peak_rss_mb"] {
            assert!(line.get(key).is_some(), "missing {key} in {line}");
        }
        assert!(line["ms_per_step"].as_f64().unwrap() > 0.0);
        assert_eq!(line["channels"], 4);
    }
    let matrix = lines.iter().find_map(|line| line.get("gm_distances")).expect("--print-matrix prints the matrix");
    let rows = matrix.as_array().unwrap();
    assert_eq!(rows.len(), 5);
    for (i, row) in rows.iter().enumerate() {
        for (j, value) in row.as_array().unwrap().iter().enumerate() {
            let value = value.as_f64().unwrap();
            assert!(value.is_finite() && (-1e-4..=2.0 + 1e-4).contains(&value), "distances lie in [0, 2]: {matrix}");
            assert_eq!(value, rows[j][i].as_f64().unwrap(), "the matrix is symmetric: {matrix}");
        }
    }

    let bad = run_splitnas(&["bench", "step", "--gm-edge", "6", "--modes", "gm"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("--gm-edge 6 does not exist"), "{}", stderr(&bad));
}
