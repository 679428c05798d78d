//! ProxylessNAS's point, measured: a training step with binary gates (one path for the weights,
//! two for α) holds the activations of two paths, not of every option, on the real mobile space.
//!
//! Each algorithm is measured in a process of its own (this test binary, re-run with one mode),
//! so that one measurement's freed memory cannot hide the next one's: after a warm-up step
//! (which allocates the optimizer state), freed memory goes back to the system (`malloc_trim`),
//! the kernel's peak-RSS mark is reset (`/proc/self/clear_refs`), one more step runs, and the
//! peak above the resident set before it is that step's memory.

use std::process::Command;

use serde_json::json;
use splitnas_bench::step::{process_memory, SpaceBench};
use splitnas_data::Batch;
use splitnas_e2e::shipped_registry;
use splitnas_engine::services::PluginServices;
use splitnas_plugin_api::{Device, SpaceSetup};

const MODE: &str = "SPLITNAS_MEMORY_TEST_MODE";
const TEST_NAME: &str = "an_architecture_step_holds_two_paths_not_every_option";

extern "C" {
    /// glibc: returns free heap memory to the system.
    fn malloc_trim(pad: usize) -> i32;
}

/// Peak bytes above the resident set of one training step (architecture step, then weight
/// step) of `algorithm` on the ProxylessNAS space at half width, 32 px, batch 32.
fn step_peak_bytes(algorithm: &str) -> u64 {
    tch::set_num_threads(1);
    tch::manual_seed(0);
    let registry = shipped_registry();
    let setup = SpaceSetup { classes: 10, input_channels: 3, image_size: 32, network_channels: 0, network_cells: 0 };
    let space = json!({ "width_multiplier": 0.5, "feature_mix_channels": 256, "first_strides": [1, 2, 2, 1, 2, 1] });
    let bench = SpaceBench::for_space(&registry, "proxylessnas", &space, &setup, Device::Cpu).unwrap();
    let environment = bench.environment();
    let config = if algorithm == "proxylessnas" { json!({ "arch_update_every": 1 }) } else { serde_json::Value::Null };
    let mut sub = bench.sub_supernet_with(&registry, &environment, algorithm, &config).unwrap();
    let services = PluginServices::new(splitnas_data::SeededRng::new(1));
    let (context, mut trainer) = sub.trainer(&environment, 0, &services);
    let batch = || Batch {
        images: tch::Tensor::randn([32, 3, 32, 32], (tch::Kind::Float, tch::Device::Cpu)),
        labels: tch::Tensor::randint(10, [32], (tch::Kind::Int64, tch::Device::Cpu)),
    };
    let (train, valid) = (batch(), batch());
    let _loss = trainer.step(&context, &train, Some(&valid), 0.01).unwrap();
    // SAFETY: malloc_trim only releases free memory; no pointer is touched.
    unsafe { malloc_trim(0) };
    let (before, _) = process_memory();
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak resident set (Linux)");
    let _loss = trainer.step(&context, &train, Some(&valid), 0.01).unwrap();
    let (_, peak) = process_memory();
    peak.saturating_sub(before)
}

fn measure_in_own_process(algorithm: &str) -> u64 {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(MODE, algorithm)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{algorithm}: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
        .lines()
        .find_map(|line| line.split_once("peak_bytes=").and_then(|(_, rest)| rest.split_whitespace().next()))
        .unwrap_or_else(|| panic!("{algorithm} printed no measurement: {stdout}"))
        .parse()
        .unwrap()
}

#[test]
fn an_architecture_step_holds_two_paths_not_every_option() {
    if let Ok(algorithm) = std::env::var(MODE) {
        println!("peak_bytes={}", step_peak_bytes(&algorithm));
        return;
    }
    // One sampled path (RSPS), binary gates (one path, then two for α), every option (DARTS).
    let one_path = measure_in_own_process("rsps");
    let binary_gates = measure_in_own_process("proxylessnas");
    let every_option = measure_in_own_process("darts");
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let summary = format!("one path {:.1} MiB, binary gates {:.1} MiB, every option {:.1} MiB", mib(one_path), mib(binary_gates), mib(every_option));
    eprintln!("{summary}");
    assert!(every_option > 4 * one_path, "the measurement must see activations at all: {summary}");
    assert!(binary_gates <= 3 * one_path, "binary gates hold about two paths: {summary}");
    assert!(2 * binary_gates < every_option, "binary gates hold far less than every option: {summary}");
}
