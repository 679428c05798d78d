//! `splitnas bench latency`: a latency lookup table of a space's options, measured on the
//! user's own device, for cost-aware search (`[search] option_cost = "latency"`).
//!
//! Every option of every choice point is timed in its context: the space hands it out as
//! runnable modules, one per place it runs at in the stand-alone network (input shape, stride;
//! ABI 1.3 `option_networks`). Each module runs `warmup` untimed forward passes (allocator and
//! kernel caches, lazy initialisation), then `repeats` timed ones, on a fixed random batch in
//! inference mode without autograd; its latency is the median (robust to the outliers a
//! shared machine produces). An option's latency is `Σ occurrences · median` over its places.
//!
//! Spaces whose costs do not add up per option (OFA) hand out the distinct parts of their
//! networks instead (ABI 1.5 `network_parts`), timed the same way; a network's latency is then
//! the sum over the parts it runs.
//! The format is [`splitnas_engine::costs::LatencyTable`].

use std::time::Instant;

use abi_stable::std_types::RVec;
use anyhow::{bail, Context, Result};
use serde_json::json;
use splitnas_engine::costs::{ChoicePointLatency, LatencyTable, Machine, OptionLatency, PartLatency, PlaceLatency, LATENCY_TABLE_FORMAT};
use splitnas_plugin_api::{Device, ErrorKind, ForwardMode, NetworkBox, NetworkPart, OptionNetwork, SearchSpaceBox, SpaceSetup, TensorRef};
use tch::{Kind, Tensor};

/// How each module is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyOptions {
    /// Images per forward pass.
    pub batch_size: i64,
    /// Untimed forward passes before the timed ones.
    pub warmup: usize,
    /// Timed forward passes; the median is kept.
    pub repeats: usize,
}

impl Default for LatencyOptions {
    /// ProxylessNAS's mobile setting: one image at a time.
    fn default() -> Self {
        LatencyOptions { batch_size: 1, warmup: 10, repeats: 50 }
    }
}

/// What the table says it was measured for: the space, its resolved configuration and the
/// data's shape, the device.
pub struct LatencySubject<'a> {
    pub space_name: &'a str,
    pub space: &'a SearchSpaceBox,
    /// The space's configuration with its defaults filled in.
    pub space_config: serde_json::Value,
    pub setup: SpaceSetup,
    pub device: Device,
}

/// Times every option of every choice point of `subject.space` (spaces whose costs add up per
/// option, ABI 1.3 `option_networks`) and every part of its networks (spaces whose costs do
/// not, ABI 1.5 `network_parts`), whichever the space offers; `progress` receives one line per
/// choice point and one per part.
pub fn measure_latency_table(subject: &LatencySubject<'_>, options: LatencyOptions, progress: &mut dyn FnMut(String)) -> Result<LatencyTable> {
    if options.batch_size < 1 || options.repeats < 1 {
        bail!("the batch size and the repeats must be at least 1 (got {} and {})", options.batch_size, options.repeats);
    }
    let name = subject.space_name;
    let _no_grad = tch::no_grad_guard();
    let choice_points = measure_options(subject, options, progress)?;
    let parts = measure_parts(subject, options, progress)?;
    if choice_points.is_none() && parts.is_none() {
        bail!(
            "space `{name}` hands out neither its options (ABI 1.3 `option_networks`) nor its network parts (ABI 1.5 `network_parts`) for timing, so no latency table can be measured for it"
        );
    }
    let (choice_points, parts) = (choice_points.unwrap_or_default(), parts.unwrap_or_default());
    let setup = &subject.setup;
    Ok(LatencyTable {
        format: LATENCY_TABLE_FORMAT,
        space: name.to_string(),
        settings: json!({
            "config": subject.space_config,
            "classes": setup.classes,
            "input_channels": setup.input_channels,
            "image_size": setup.image_size,
        }),
        device: device_name(subject.device),
        batch_size: options.batch_size,
        warmup: options.warmup,
        repeats: options.repeats,
        machine: this_machine(subject.device),
        choice_points,
        parts,
    })
}

/// Every option in its context; `None` when the space does not hand options out.
fn measure_options(
    subject: &LatencySubject<'_>,
    options: LatencyOptions,
    progress: &mut dyn FnMut(String),
) -> Result<Option<Vec<ChoicePointLatency>>> {
    let name = subject.space_name;
    let info = subject.space.info().into_result().map_err(|error| anyhow::anyhow!("space `{name}`: {error}"))?;
    let mut choice_points = Vec::with_capacity(info.choice_points.len());
    for (point, choice_point) in info.choice_points.iter().enumerate() {
        let mut measured_options = Vec::with_capacity(choice_point.options.len());
        for (option, option_info) in choice_point.options.iter().enumerate() {
            let what = || format!("space `{name}`, option `{}` of `{}`", option_info.name, choice_point.name);
            let modules: RVec<OptionNetwork> = match subject.space.option_networks(point as u32, option as u32, subject.device).into_result() {
                Ok(modules) => modules,
                Err(error) if error.kind == ErrorKind::Unsupported && point == 0 && option == 0 => return Ok(None),
                Err(error) => return Err(anyhow::anyhow!("{}: {error}", what())),
            };
            let mut places = Vec::with_capacity(modules.len());
            for module in &modules {
                let median_ms = time_module(&module.network, &module.input_shape, subject.device, options).with_context(what)?;
                places.push(PlaceLatency { input_shape: module.input_shape.to_vec(), occurrences: module.occurrences, median_ms });
            }
            let median_ms = places.iter().map(|place| f64::from(place.occurrences) * place.median_ms).sum();
            measured_options.push(OptionLatency { name: option_info.name.to_string(), median_ms, places });
        }
        let summary: Vec<String> = measured_options.iter().map(|option| format!("{} {:.3}", option.name, option.median_ms)).collect();
        progress(format!("{} ({}/{}): {} ms", choice_point.name, point + 1, info.choice_points.len(), summary.join(", ")));
        choice_points.push(ChoicePointLatency { name: choice_point.name.to_string(), options: measured_options });
    }
    Ok(Some(choice_points))
}

/// Every distinct part of the space's networks; `None` when the space has no parts.
fn measure_parts(subject: &LatencySubject<'_>, options: LatencyOptions, progress: &mut dyn FnMut(String)) -> Result<Option<Vec<PartLatency>>> {
    let name = subject.space_name;
    let parts: RVec<NetworkPart> = match subject.space.network_parts(subject.device).into_result() {
        Ok(parts) => parts,
        Err(error) if error.kind == ErrorKind::Unsupported => return Ok(None),
        Err(error) => bail!("space `{name}` cannot hand out its network parts for timing: {error}"),
    };
    let mut seen = std::collections::HashSet::new();
    let mut measured = Vec::with_capacity(parts.len());
    for (index, part) in parts.iter().enumerate() {
        if !seen.insert(part.key.as_str()) {
            bail!("space `{name}` hands out the network part `{}` twice: part keys must be unique", part.key);
        }
        let median_ms = time_module(&part.network, &part.input_shape, subject.device, options)
            .with_context(|| format!("space `{name}`, network part `{}`", part.key))?;
        progress(format!("part {}/{}: {} {median_ms:.3} ms", index + 1, parts.len(), part.key));
        measured.push(PartLatency { key: part.key.to_string(), input_shape: part.input_shape.to_vec(), median_ms });
    }
    Ok(Some(measured))
}

/// The median milliseconds of one module's forward pass (inference mode).
fn time_module(network: &NetworkBox, shape: &[i64], device: Device, options: LatencyOptions) -> Result<f64> {
    if shape.len() != 3 || shape.iter().any(|&extent| extent < 1) {
        bail!("the space gave the input shape {shape:?}, not [C, H, W]");
    }
    let input = Tensor::f_randn([options.batch_size, shape[0], shape[1], shape[2]], (Kind::Float, device.to_tch()))?;
    let mode = ForwardMode { train: false, drop_path_prob: 0.0 };
    let run = || -> Result<()> {
        let output = network.forward(TensorRef::new(&input), mode).into_result()?;
        drop(output);
        synchronize(device);
        Ok(())
    };
    for _ in 0..options.warmup {
        run()?;
    }
    let mut times = Vec::with_capacity(options.repeats);
    for _ in 0..options.repeats {
        let start = Instant::now();
        run()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(&mut times))
}

/// Waits for the device's queued kernels, so that a timing covers them (CUDA runs asynchronously).
fn synchronize(device: Device) {
    if let Device::Cuda(index) = device {
        tch::Cuda::synchronize(i64::from(index));
    }
}

/// The median (the mean of the two middle values for an even count); `values` is sorted.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    match values.len() {
        0 => f64::NAN,
        length if length % 2 == 1 => values[middle],
        _ => (values[middle - 1] + values[middle]) / 2.0,
    }
}

fn device_name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda(index) => format!("cuda:{index}"),
    }
}

/// Where the table was measured: enough to tell a table from another machine.
fn this_machine(device: Device) -> Machine {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_string())
        .unwrap_or_default();
    let processor = match device {
        Device::Cpu => std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines().find_map(|line| line.strip_prefix("model name").map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string()))
            })
            .unwrap_or_else(|| std::env::consts::ARCH.to_string()),
        // libtorch's C API does not name CUDA devices; the index says which one was used.
        Device::Cuda(index) => format!("CUDA device {index}"),
    };
    Machine {
        hostname,
        os: std::env::consts::OS.to_string(),
        arch: std::env::consts::ARCH.to_string(),
        processor,
        threads: tch::get_num_threads(),
        libtorch: splitnas_plugin_api::TORCH_ABI.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn the_median_ignores_outliers_and_averages_the_middle_pair() {
        assert_eq!(median(&mut [5.0, 1.0, 1000.0]), 5.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }
}
