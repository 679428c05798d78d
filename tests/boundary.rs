//! The plugin boundary in-process: panics stay inside the plugin, tensors cross without
//! leaking, and CUDA is reported honestly.

use abi_stable::std_types::RVec;
use serde_json::Value;
use splitnas_data::SeededRng;
use splitnas_e2e::*;
use splitnas_engine::components::{create_criterion, create_space, ComponentError};
use splitnas_engine::criterion::{run_split, HostCriterionContext, SplitError};
use splitnas_engine::device::{device_report, DeviceChoice};
use splitnas_engine::plugins::PluginRegistry;
use splitnas_plugin_api::{Device, ErrorKind, Mask, SpaceSetup, SplitRequest, TensorRef};
use tch::Tensor;

fn registry() -> PluginRegistry {
    let mut registry = PluginRegistry::default();
    registry.add_file(&fixture_plugin());
    registry.add_file(&library_path("splitnas_plugin_split_criteria"));
    assert!(registry.failures.is_empty(), "{:?}", registry.failures);
    registry
}

fn echo_request() -> SplitRequest {
    let space = create_space(
        &registry(),
        "echo",
        &Value::Null,
        &SpaceSetup { classes: 10, input_channels: 3, image_size: 32, network_channels: 0, network_cells: 0 },
    )
    .unwrap();
    let info = space.info().into_result().unwrap();
    SplitRequest { mask: info.full_mask(), candidates: RVec::from(vec![0u32]), groups: 2, space: info }
}

#[test]
fn a_panicking_factory_becomes_an_error() {
    let error = create_criterion(&registry(), "panics-in-create", &Value::Null).err().expect("creation must fail");
    let ComponentError::Plugin { error, file, .. } = error else { panic!("unexpected error {error}") };
    assert_eq!(error.kind, ErrorKind::Panic);
    assert!(error.message.contains("fixture factory panicked on purpose"), "{}", error.message);
    assert!(file.ends_with("libsplitnas_testplugin_fixtures.so"), "the error names the plugin file: {file}");
}

#[test]
fn a_panicking_method_becomes_an_error_and_the_host_goes_on() {
    let registry = registry();
    let request = echo_request();
    let mut bad = create_criterion(&registry, "panics-in-split", &Value::Null).unwrap();
    for _ in 0..3 {
        let context = HostCriterionContext::new(SeededRng::new(1), None);
        match run_split(&mut bad, &request, &context) {
            Err(SplitError::Plugin(error)) => {
                assert_eq!(error.kind, ErrorKind::Panic);
                assert!(error.message.contains("fixture criterion panicked on purpose"));
            }
            other => panic!("expected a caught panic, got {other:?}"),
        }
    }
    let mut good = create_criterion(&registry, "random", &Value::Null).unwrap();
    let context = HostCriterionContext::new(SeededRng::new(1), None);
    let decision = run_split(&mut good, &request, &context).expect("the host still works after caught panics");
    assert_eq!(decision.groups.len(), 2);
}

#[test]
fn tensors_round_trip_without_leaking() {
    let registry = registry();
    let space = create_space(
        &registry,
        "echo",
        &Value::Null,
        &SpaceSetup { classes: 10, input_channels: 3, image_size: 32, network_channels: 0, network_cells: 0 },
    )
    .unwrap();
    let mask = Mask { rows: vec![RVec::from(vec![true, true])].into() };
    let supernet = space.build_supernet(&mask, Device::Cpu).into_result().unwrap();
    let weights = Tensor::from_slice(&[0.25f32, 0.75]).view([1, 2]);
    let input = Tensor::ones([64, 64], (tch::Kind::Float, tch::Device::Cpu)); // 16 KiB per output

    let call = |i: usize| {
        let output = supernet.forward(TensorRef::new(&input), TensorRef::new(&weights), &mask, false).into_result().unwrap();
        let output = output.into_tensor();
        if i.is_multiple_of(1000) {
            assert_eq!(output.size(), vec![64, 64]);
            assert_eq!(output.double_value(&[3, 5]), 3.0, "2 * 1 + (0.25 + 0.75)");
        }
    };
    for i in 0..1_000 {
        call(i);
    }
    let before = resident_bytes();
    for i in 0..10_000 {
        call(i);
    }
    let growth = resident_bytes().saturating_sub(before);
    // Leaking either the handle or the output would cost 10,000 x 16 KiB = 160 MiB.
    assert!(growth < 16 << 20, "resident memory grew by {} MiB over 10,000 round trips", growth >> 20);
}

fn machine_has_nvidia_gpu() -> bool {
    std::path::Path::new("/dev/nvidia0").exists()
}

#[test]
fn cuda_is_reported_consistently_and_unavailable_without_a_gpu() {
    let report = device_report();
    assert_eq!(report.cuda_available, report.cuda_devices > 0);
    let output = run_splitnas(&["info", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let info: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(info["cuda_available"], Value::Bool(report.cuda_available));
    // What a plugin must match to load here.
    assert_eq!(info["plugin_api_version"], splitnas_plugin_api::PLUGIN_API_VERSION);
    assert_eq!(info["abi_version"], splitnas_plugin_api::ABI_VERSION);
    assert_eq!(info["torch_abi"], splitnas_plugin_api::TORCH_ABI);
    let libtorch = std::path::PathBuf::from(info["libtorch_lib"].as_str().expect("the libtorch directory"));
    assert!(libtorch.join("libtorch_cpu.so").exists(), "{}", libtorch.display());
    if machine_has_nvidia_gpu() {
        return; // the GPU checks run on the device machine, not here
    }
    assert!(!report.cuda_available);
    assert_eq!("auto".parse::<DeviceChoice>().unwrap().resolve().unwrap(), Device::Cpu);
    let error = "cuda:0".parse::<DeviceChoice>().unwrap().resolve().unwrap_err().to_string();
    assert!(error.contains("CUDA is not available") && error.contains("--device cpu"), "{error}");
    assert!("gpu7".parse::<DeviceChoice>().is_err());
}
