//! `splitnas bench step`: the time of one supernet training step, measured the way
//! `benchmarks/step/reference_nb201.py` measures plain PyTorch, so that the two can be compared
//! line by line (same flags, same JSON keys, same defaults).
//!
//! Every mode runs the code a search runs: the NB201 space, the DARTS and RSPS algorithms and
//! the host's optimizers and gradient provider, loaded as plugins.
//! - `darts`: one first-order α step (Adam) and one weight step (SGD, clipping at 5).
//! - `spos`: one weight step on a uniformly sampled single path (RSPS).
//! - `gm`: one gradient-matching distance matrix of one edge over `--gm-batches` repeats, each
//!   with one batch and one single-path context for the other edges.
//!
//! The batch is one random tensor reused by every step, as in the reference, and the single
//! paths of `spos` and of the `gm` contexts are the reference's own: its generator's draws
//! replayed in the same order, so that both sides time the same paths (a step's cost depends
//! on its path more than on anything the two implementations do differently).

use std::cell::RefCell;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::json;
use splitnas_plugin_api::{
    Architecture, Device, HostContext, OwnedTensor, PluginError, SearchSpaceBox, SpaceInfo, SpaceSetup, TensorRef, WeightSample,
};
use tch::Tensor;

use splitnas_data::{Batch, BatchLoader, Dataset, LoaderOptions, Normalization, RepeatedBatch};
use splitnas_engine::components::{algorithm_factory, create_space};
use splitnas_engine::context::{one_hot_weights, TrainingEnvironment};
use splitnas_engine::criterion::GradientSource;
use splitnas_engine::device::DeviceChoice;
use splitnas_engine::gradients::GradientProvider;
use splitnas_engine::optim::{AdamConfig, SgdConfig};
use splitnas_engine::plugins::PluginRegistry;
use splitnas_engine::sub_supernet::{SubSupernet, Trainer, TrainingSettings};
use {splitnas_data::SeededRng, splitnas_engine::services::PluginServices};

/// The reference's data: CIFAR-shaped random images, 10 classes.
const REFERENCE_DATA: SpaceSetup = SpaceSetup { classes: 10, input_channels: 3, image_size: 32, network_channels: 0, network_cells: 0 };

/// The reference's flags, names and defaults.
#[derive(Debug, Clone, clap::Args)]
pub struct StepOptions {
    /// C: channels of the first stage.
    #[arg(long, default_value_t = 16)]
    pub channels: u32,
    /// N: cells per stage.
    #[arg(long, default_value_t = 5)]
    pub cells: u32,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Side of the square random images.
    #[arg(long, default_value_t = 32)]
    pub image: i64,
    /// Timed steps per mode (the median is reported).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Untimed steps before them.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// libtorch CPU threads; 0 keeps libtorch's default.
    #[arg(long, default_value_t = 0)]
    pub threads: i32,
    /// `cpu` or `cuda[:N]`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Repeats (batches) per gradient-matching distance matrix.
    #[arg(long, default_value_t = 1)]
    pub gm_batches: usize,
    /// The edge (choice point) whose distance matrix `gm` computes.
    #[arg(long, default_value_t = 0)]
    pub gm_edge: u32,
    /// Comma-separated: darts, spos, gm.
    #[arg(long, value_delimiter = ',', default_value = "darts,spos,gm")]
    pub modes: Vec<StepMode>,
    /// Also print the gm distance matrix.
    #[arg(long)]
    pub print_matrix: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepMode {
    Darts,
    Spos,
    Gm,
}

impl StepMode {
    fn algorithm(self) -> &'static str {
        match self {
            StepMode::Darts => "darts",
            StepMode::Spos | StepMode::Gm => "rsps",
        }
    }

    /// Single paths the reference draws in this mode.
    fn paths_drawn(self, options: &StepOptions) -> usize {
        let runs = options.warmup + options.steps;
        match self {
            StepMode::Darts => 0,
            StepMode::Spos => runs,
            StepMode::Gm => (runs + usize::from(options.print_matrix)) * options.gm_batches.max(1),
        }
    }
}

/// The reference's single paths: `torch.randint(0, 5, (6,), generator)` per draw from a
/// generator seeded with 1. libtorch's CPU generator draws the same numbers for one
/// `[draws, 6]` tensor after `manual_seed(1)` (checked against PyTorch).
fn reference_paths(draws: usize, info: &SpaceInfo) -> Result<Vec<Architecture>> {
    tch::manual_seed(1);
    let edges = info.choice_points.len();
    let drawn = Tensor::randint(info.max_options as i64, [draws as i64, edges as i64], (tch::Kind::Int64, tch::Device::Cpu));
    let values = Vec::<i64>::try_from(drawn.view(-1))?;
    Ok(values.chunks(edges.max(1)).map(|path| Architecture { choices: path.iter().map(|&option| option as u32).collect() }).collect())
}

/// One JSON line of output: the reference's keys, then memory.
#[derive(Debug, Clone, Serialize)]
pub struct StepMeasurement {
    pub mode: StepMode,
    pub ms_per_step: f64,
    pub steps: usize,
    pub channels: u32,
    pub cells: u32,
    pub batch: usize,
    pub image: i64,
    pub threads: i32,
    pub device: String,
    pub torch: &'static str,
    /// Peak resident memory of the process so far.
    pub peak_rss_mb: f64,
    /// Resident memory after the timed steps minus after the warm-up.
    pub rss_growth_mb: f64,
}

/// Resident and peak resident memory of this process in bytes (Linux; zeros elsewhere).
pub fn process_memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

const MIB: f64 = 1024.0 * 1024.0;

/// Cosine distances `1 − G_ij / (√G_ii √G_jj + 1e-6)` of one repeat's Gram matrix (row-major
/// K×K), the formula of the gradient-matching criterion and of the reference.
pub fn cosine_distances(gram: &[f64], options: usize) -> Vec<f64> {
    let norm = |i: usize| gram[i * options + i].max(0.0).sqrt();
    (0..options * options).map(|index| 1.0 - gram[index] / (norm(index / options) * norm(index % options) + 1e-6)).collect()
}

/// The mean distance matrix of `choice_point` over `repeats` repeats from `provider`.
pub fn gm_distance_matrix(provider: &GradientProvider<'_>, choice_point: u32, repeats: usize) -> Result<Vec<f64>, PluginError> {
    let mut sum: Vec<f64> = Vec::new();
    for _ in 0..repeats {
        let sample = provider.gradient_gram(choice_point)?;
        let distances = cosine_distances(&sample.gram, sample.options.len());
        if sum.is_empty() {
            sum = distances;
        } else {
            sum.iter_mut().zip(distances).for_each(|(total, d)| *total += d);
        }
    }
    Ok(sum.into_iter().map(|d| d / repeats.max(1) as f64).collect())
}

/// Median of step times in milliseconds; `step` runs one step, `sync` waits for the device.
fn timed(steps: usize, warmup: usize, mut step: impl FnMut() -> Result<()>, sync: &dyn Fn()) -> Result<(f64, f64)> {
    for _ in 0..warmup {
        step()?;
    }
    sync();
    let (resident_before, _) = process_memory();
    let mut times = Vec::with_capacity(steps);
    for _ in 0..steps {
        let started = std::time::Instant::now();
        step()?;
        sync();
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let (resident_after, _) = process_memory();
    Ok((crate::latency::median(&mut times), (resident_after as f64 - resident_before as f64) / MIB))
}

/// The settings of the reference's optimizers: SGD(0.025, momentum 0.9, wd 5e-4), clipping at
/// 5; Adam(3e-4, betas (0.5, 0.999), wd 1e-3).
fn reference_settings() -> TrainingSettings {
    TrainingSettings {
        weights: SgdConfig { lr: 0.025, lr_min: 0.025, momentum: 0.9, nesterov: false, weight_decay: 5e-4, grad_clip: 5.0, ..SgdConfig::default() },
        architecture: AdamConfig { lr: 3e-4, beta1: 0.5, beta2: 0.999, weight_decay: 1e-3, eps: 1e-8 },
        schedule_start: 0,
        schedule_end: 1,
        architecture_warmup_epochs: 0,
        max_steps_per_epoch: 0,
    }
}

/// A space at one size on one device, with the training environment its steps need (the
/// benchmarked steps bring their own batches).
pub struct SpaceBench {
    pub space: SearchSpaceBox,
    pub info: SpaceInfo,
    pub device: Device,
    /// The space's image side (what `network_stats` counts at).
    image_size: u32,
    /// The environment wants loaders; the benchmarked steps bring their own batch.
    placeholder_loader: RefCell<BatchLoader>,
}

impl SpaceBench {
    /// NB201 at C = `channels`, N = `cells`, for the reference's CIFAR-shaped data.
    pub fn new(registry: &PluginRegistry, channels: u32, cells: u32, device: Device) -> Result<Self> {
        Self::for_data(registry, channels, cells, REFERENCE_DATA.classes, device)
    }

    /// NB201 for 3-channel images of `classes` classes.
    pub fn for_data(registry: &PluginRegistry, channels: u32, cells: u32, classes: u32, device: Device) -> Result<Self> {
        let setup = SpaceSetup { classes, ..REFERENCE_DATA };
        Self::for_space(registry, "nb201", &json!({"channels": channels, "cells": cells}), &setup, device)
    }

    /// Any space plugin with its own configuration keys.
    pub fn for_space(registry: &PluginRegistry, name: &str, config: &serde_json::Value, setup: &SpaceSetup, device: Device) -> Result<Self> {
        let space = create_space(registry, name, config, setup)?;
        let info = space.info().into_result().with_context(|| format!("space {name}"))?;
        let cpu = tch::Device::Cpu;
        let placeholder =
            Dataset::new("bench", Tensor::zeros([1, 3, 4, 4], (tch::Kind::Uint8, cpu)), Tensor::zeros([1], (tch::Kind::Int64, cpu)), 10)?;
        let loader = BatchLoader::new(&placeholder, &Normalization::nb201_cifar10(), LoaderOptions::evaluation(1), device.to_tch())?;
        Ok(SpaceBench { space, info, device, image_size: setup.image_size, placeholder_loader: RefCell::new(loader) })
    }

    pub fn environment(&self) -> TrainingEnvironment<'_> {
        let loader = &self.placeholder_loader;
        TrainingEnvironment {
            space: &self.space,
            info: &self.info,
            device: self.device,
            train: loader,
            valid: loader,
            valid_eval: loader,
            eval_batches: 1,
            total_epochs: 1,
            option_costs: None,
            network_latency: None,
            label_smoothing: 0.0,
            image_size: self.image_size,
            recalibration: None,
        }
    }

    /// The full supernet with a fresh `algorithm` and the reference's optimizer settings.
    pub fn sub_supernet(&self, registry: &PluginRegistry, environment: &TrainingEnvironment<'_>, algorithm: &str) -> Result<SubSupernet> {
        self.sub_supernet_with(registry, environment, algorithm, &serde_json::Value::Null)
    }

    /// The same with the algorithm's own configuration keys.
    pub fn sub_supernet_with(
        &self,
        registry: &PluginRegistry,
        environment: &TrainingEnvironment<'_>,
        algorithm: &str,
        algorithm_config: &serde_json::Value,
    ) -> Result<SubSupernet> {
        let create_algorithm = algorithm_factory(registry, algorithm, algorithm_config)?;
        Ok(SubSupernet::new(environment, self.info.full_mask(), &create_algorithm, 0, reference_settings())?)
    }
}

/// Runs every requested mode and hands each result line to `emit` as it is measured.
pub fn run_step_benchmark(registry: &PluginRegistry, options: &StepOptions, emit: &mut dyn FnMut(String)) -> Result<()> {
    if options.threads > 0 {
        splitnas_engine::threads::pin(options.threads as usize, "--threads");
    }
    if options.batch == 0 || options.image < 4 {
        bail!("--batch must be at least 1 and --image at least 4");
    }
    let device: Device = options.device.parse::<DeviceChoice>()?.resolve()?;
    let tch_device = device.to_tch();
    let sync = move || {
        if let tch::Device::Cuda(index) = tch_device {
            tch::Cuda::synchronize(index as i64);
        }
    };
    let bench = SpaceBench::new(registry, options.channels, options.cells, device)?;
    let edge = options.gm_edge;
    if edge as usize >= bench.info.choice_points.len() {
        bail!("--gm-edge {edge} does not exist: nb201 has edges 0..={}", bench.info.choice_points.len() - 1);
    }
    let draws: usize = options.modes.iter().map(|mode| mode.paths_drawn(options)).sum();
    let mut paths = reference_paths(draws, &bench.info)?.into_iter();
    let mut next_path = move || paths.next().context("more single paths drawn than planned");
    tch::manual_seed(0);
    let batch = Batch {
        images: Tensor::randn([options.batch as i64, 3, options.image, options.image], (tch::Kind::Float, tch_device)),
        labels: Tensor::randint(10, [options.batch as i64], (tch::Kind::Int64, tch_device)),
    };
    let env = bench.environment();
    for &mode in &options.modes {
        let mut sub = bench.sub_supernet(registry, &env, mode.algorithm())?;
        let services = PluginServices::new(SeededRng::new(1));
        let lr = sub.settings.weights.lr;
        let (context, mut trainer) = sub.trainer(&env, 0, &services);
        let (ms_per_step, rss_growth_mb, matrix) = match mode {
            StepMode::Darts => {
                let (ms, growth) = timed(options.steps, options.warmup, || Ok(trainer.step(&context, &batch, Some(&batch), lr).map(drop)?), &sync)?;
                (ms, growth, None)
            }
            StepMode::Spos => {
                // RSPS's weight step with the reference's path instead of RSPS's own draw.
                let spos_step = || -> Result<()> {
                    let (weights, active) = one_hot_weights(&next_path()?, &bench.info, device);
                    let logits = context.forward(TensorRef::new(&batch.images), TensorRef::new(&weights), &active, true).into_result()?.into_tensor();
                    trainer.descend(&logits.cross_entropy_for_logits(&batch.labels), lr, false);
                    Ok(())
                };
                let (ms, growth) = timed(options.steps, options.warmup, spos_step, &sync)?;
                (ms, growth, None)
            }
            StepMode::Gm => {
                let Trainer { parameters, .. } = trainer;
                let mut contexts = || {
                    let path = next_path().map_err(|e| PluginError::other(e.to_string()))?;
                    let (weights, active) = one_hot_weights(&path, &bench.info, device);
                    Ok(WeightSample { weights: OwnedTensor::new(weights), active })
                };
                let batches = RefCell::new(RepeatedBatch(Batch { images: batch.images.shallow_clone(), labels: batch.labels.shallow_clone() }));
                let provider = GradientProvider::new(&context, &mut contexts, parameters, &batches);
                let repeats = options.gm_batches.max(1);
                let (ms, growth) = timed(options.steps, options.warmup, || Ok(gm_distance_matrix(&provider, edge, repeats).map(drop)?), &sync)?;
                let matrix = if options.print_matrix { Some(gm_distance_matrix(&provider, edge, repeats)?) } else { None };
                (ms, growth, matrix)
            }
        };
        let (_, peak) = process_memory();
        let measurement = StepMeasurement {
            mode,
            ms_per_step: (ms_per_step * 100.0).round() / 100.0,
            steps: options.steps,
            channels: options.channels,
            cells: options.cells,
            batch: options.batch,
            image: options.image,
            threads: tch::get_num_threads(),
            device: options.device.clone(),
            torch: splitnas_plugin_api::TORCH_ABI,
            peak_rss_mb: (peak as f64 / MIB * 10.0).round() / 10.0,
            rss_growth_mb: (rss_growth_mb * 10.0).round() / 10.0,
        };
        emit(serde_json::to_string(&measurement)?);
        if let Some(matrix) = matrix {
            let k = (matrix.len() as f64).sqrt() as usize;
            let rows: Vec<Vec<f64>> = matrix.chunks(k.max(1)).map(|row| row.iter().map(|v| (v * 1e6).round() / 1e6).collect()).collect();
            emit(json!({ "gm_distances": rows }).to_string());
        }
    }
    Ok(())
}
