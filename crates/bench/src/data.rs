//! `splitnas bench data`: the image-folder loader's throughput against torchvision's
//! `ImageFolder` + `DataLoader` with the same transforms and worker count, measured side by
//! side in one process tree and interleaved round by round (a machine that slows down during
//! the benchmark slows both sides alike); then whether the loader keeps a search step fed.
//!
//! The reference is `benchmarks/data/reference_torchvision.py`, built into the binary so that
//! the benchmark runs wherever the binary does; it needs a Python with torch and torchvision.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use splitnas_data::{
    scan_image_folder, split_folders, Augmentation, BatchLoader, ColorJitter, ImageFiles, ImageTransforms, LoaderOptions, Normalization,
    StreamOptions,
};
use splitnas_engine::plugins::PluginRegistry;
use splitnas_plugin_api::{Device, HostContext, TensorRef};

use crate::latency::median;
use crate::step::{process_memory, SpaceBench};

/// The reference script, as committed.
pub const REFERENCE_SCRIPT: &str = include_str!("../../../benchmarks/data/reference_torchvision.py");

/// What `bench data` measures, and how.
#[derive(Debug, Clone, clap::Args)]
pub struct DataBenchOptions {
    /// An image folder (one sub-folder per class), or a folder holding `train/` (timed) and
    /// `val/`, such as `splitnas data generate` writes.
    pub folder: PathBuf,
    /// Side of the square crops (ImageNet: 224).
    #[arg(long, default_value_t = 224)]
    pub image_size: u32,
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    /// Decoding workers on both sides (threads here, processes in torchvision).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Batches decoded ahead on both sides (torchvision: prefetch_factor = this / workers).
    #[arg(long, default_value_t = StreamOptions::default().prefetch)]
    pub prefetch: usize,
    /// Rounds, each timing both loaders one after the other (order alternating); medians are
    /// reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub rounds: u64,
    /// Batches per timing (0: one whole epoch of the folder).
    #[arg(long, default_value_t = 0)]
    pub batches: usize,
    /// Timed search steps with each feeding (0 skips the step measurement).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Channels of the NB201 supernet the step measurement trains (C; one cell per stage).
    #[arg(long, default_value_t = 16)]
    pub step_channels: u32,
    /// A Python with torch and torchvision (default: the one that holds the libtorch this
    /// binary runs on, as `cargo xtask setup` provisions it).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Skip torchvision (time only this loader).
    #[arg(long)]
    pub no_reference: bool,
}

/// One timing of one loader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoaderTiming {
    pub images: usize,
    pub batches: usize,
    pub seconds: f64,
    pub images_per_second: f64,
    pub resident_start_bytes: u64,
    pub resident_peak_bytes: u64,
    pub resident_end_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DataRound {
    pub round: usize,
    pub splitnas: LoaderTiming,
    pub torchvision: Option<LoaderTiming>,
    /// splitnas images/s over torchvision's in this round.
    pub ratio: Option<f64>,
}

/// A search step fed by the loader against the same step on one preloaded batch.
#[derive(Debug, Clone, Serialize)]
pub struct StepFeeding {
    pub steps: usize,
    pub median_ms_preloaded: f64,
    pub median_ms_with_loader: f64,
    /// The median time the step waited for its batch.
    pub median_ms_waiting: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DataBenchReport {
    pub folder: String,
    pub images: usize,
    pub classes: usize,
    pub image_size: u32,
    pub batch_size: u64,
    pub workers: usize,
    pub prefetch: usize,
    pub torch_threads: i32,
    pub rounds: Vec<DataRound>,
    pub median_images_per_second: f64,
    pub median_reference_images_per_second: Option<f64>,
    pub median_ratio: Option<f64>,
    pub step: Option<StepFeeding>,
}

/// The training split of `folder` (`train/` when it has one, the folder itself otherwise):
/// the folder torchvision reads, and its files.
fn training_files(folder: &Path, options: &DataBenchOptions) -> Result<(PathBuf, ImageFiles)> {
    let (name, path) = split_folders(folder).into_iter().next().context("no folder to read")?;
    let scan = scan_image_folder(&path)?;
    let files = ImageFiles {
        name: format!("bench/{name}"),
        files: scan.files.into(),
        class_names: scan.class_names.into(),
        transforms: ImageTransforms::imagenet(options.image_size, ColorJitter::default()),
        device: tch::Device::Cpu,
    };
    Ok((path, files))
}

fn training_loader(files: &ImageFiles, options: &DataBenchOptions, seed: u64) -> Result<BatchLoader> {
    let loader_options = LoaderOptions {
        batch_size: options.batch_size as usize,
        shuffle: true,
        drop_last: false,
        augmentation: Some(Augmentation { crop_padding: 0, horizontal_flip: true }),
        cutout: None,
        seed,
    };
    let stream = StreamOptions { workers: options.workers, prefetch: options.prefetch.max(1), max_unreadable_fraction: 1.0 };
    Ok(BatchLoader::streaming(files, &Normalization::imagenet(), loader_options, stream)?)
}

fn batches_per_timing(loader: &BatchLoader, options: &DataBenchOptions) -> usize {
    match options.batches {
        0 => loader.batches_per_epoch(),
        n => n,
    }
}

/// One timing of this crate's loader: a fresh loader (its workers start with the clock, as
/// torchvision's do) over one epoch or `options.batches`.
fn time_splitnas(files: &ImageFiles, options: &DataBenchOptions, seed: u64) -> Result<LoaderTiming> {
    let (resident_start, _) = process_memory();
    let mut resident_peak = resident_start;
    let started = Instant::now();
    let mut loader = training_loader(files, options, seed)?;
    let batches = batches_per_timing(&loader, options);
    let mut images = 0;
    for _ in 0..batches {
        let batch = loader.next_batch()?;
        images += batch.labels.size()[0] as usize;
        resident_peak = resident_peak.max(process_memory().0);
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(loader);
    let (resident_end, _) = process_memory();
    Ok(LoaderTiming {
        images,
        batches,
        seconds,
        images_per_second: images as f64 / seconds,
        resident_start_bytes: resident_start,
        resident_peak_bytes: resident_peak,
        resident_end_bytes: resident_end,
    })
}

/// The Python of the virtual environment that holds the libtorch this binary runs on
/// (`<venv>/lib/pythonX.Y/site-packages/torch/lib`).
fn provisioned_python() -> Option<PathBuf> {
    let lib = std::fs::canonicalize(splitnas_engine::device::device_report().libtorch_lib).ok()?;
    let environment = lib.ancestors().nth(5)?;
    let python = environment.join("bin/python");
    python.exists().then_some(python)
}

fn time_torchvision(script: &Path, python: &Path, folder: &Path, options: &DataBenchOptions, seed: u64) -> Result<LoaderTiming> {
    let output = Command::new(python)
        .arg(script)
        .arg("--folder")
        .arg(folder)
        .args(["--image-size", &options.image_size.to_string()])
        .args(["--batch-size", &options.batch_size.to_string()])
        .args(["--workers", &options.workers.to_string()])
        .args(["--prefetch", &options.prefetch.to_string()])
        .args(["--batches", &options.batches.to_string()])
        .args(["--seed", &seed.to_string()])
        .output()
        .with_context(|| format!("cannot start {} (give a Python with torch and torchvision with --python)", python.display()))?;
    if !output.status.success() {
        bail!(
            "the torchvision reference failed ({}); it needs torch and torchvision in {} (or pass --python, or --no-reference):\n{}",
            output.status,
            python.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().rev().find(|line| line.starts_with('{')).context("the torchvision reference printed no JSON line")?;
    serde_json::from_str(line).with_context(|| format!("the torchvision reference printed {line}"))
}

/// Median step time of `steps` RSPS single-path steps of an NB201 supernet, fed once from
/// one preloaded batch and once from the loader (the wait for each batch included).
fn measure_step_feeding(registry: &PluginRegistry, files: &ImageFiles, options: &DataBenchOptions) -> Result<StepFeeding> {
    let device = Device::Cpu;
    let bench = SpaceBench::for_data(registry, options.step_channels, 1, files.num_classes() as u32, device)?;
    let environment = bench.environment();
    let mut sub = bench.sub_supernet(registry, &environment, "rsps")?;
    let services = splitnas_engine::services::PluginServices::new(splitnas_data::SeededRng::new(1));
    let lr = sub.settings.weights.lr;
    let (context, mut trainer) = sub.trainer(&environment, 0, &services);
    let mut rng = splitnas_data::SeededRng::new(2);
    let mut step = |images: &tch::Tensor, labels: &tch::Tensor| -> Result<()> {
        let path = bench.info.choice_points.iter().map(|point| rng.below(point.options.len() as u64) as u32).collect();
        let architecture = splitnas_plugin_api::Architecture { choices: path };
        let (weights, active) = splitnas_engine::context::one_hot_weights(&architecture, &bench.info, device);
        let logits = context.forward(TensorRef::new(images), TensorRef::new(&weights), &active, true).into_result()?.into_tensor();
        trainer.descend(&logits.cross_entropy_for_logits(labels), lr, false);
        Ok(())
    };
    let mut loader = training_loader(files, options, 7)?;
    let preloaded = loader.next_batch()?;
    let warmup = 2;
    let mut preloaded_times = Vec::new();
    for index in 0..warmup + options.steps {
        let started = Instant::now();
        step(&preloaded.images, &preloaded.labels)?;
        if index >= warmup {
            preloaded_times.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    let mut fed_times = Vec::new();
    let mut waiting_times = Vec::new();
    for index in 0..warmup + options.steps {
        let started = Instant::now();
        let batch = loader.next_batch()?;
        let waited = started.elapsed().as_secs_f64() * 1e3;
        step(&batch.images, &batch.labels)?;
        if index >= warmup {
            fed_times.push(started.elapsed().as_secs_f64() * 1e3);
            waiting_times.push(waited);
        }
    }
    Ok(StepFeeding {
        steps: options.steps,
        median_ms_preloaded: median(&mut preloaded_times),
        median_ms_with_loader: median(&mut fed_times),
        median_ms_waiting: median(&mut waiting_times),
    })
}

/// Runs the benchmark; `progress` gets a line per finished timing.
pub fn run_data_benchmark(registry: &PluginRegistry, options: &DataBenchOptions, progress: &mut dyn FnMut(String)) -> Result<DataBenchReport> {
    let (timed_folder, files) = training_files(&options.folder, options)?;
    let reference = if options.no_reference {
        None
    } else {
        let python = match &options.python {
            Some(python) => python.clone(),
            None => provisioned_python().context(
                "cannot find the Python that holds this binary's libtorch: pass --python PATH (with torch and torchvision) or --no-reference",
            )?,
        };
        let mut script = tempfile::Builder::new().prefix("reference_torchvision").suffix(".py").tempfile()?;
        script.write_all(REFERENCE_SCRIPT.as_bytes())?;
        Some((python, script.into_temp_path()))
    };
    let mut rounds = Vec::new();
    for round in 0..options.rounds as usize {
        let seed = round as u64;
        let reference_first = round % 2 == 1;
        let time_reference = || -> Result<Option<LoaderTiming>> {
            reference.as_ref().map(|(python, script)| time_torchvision(script, python, &timed_folder, options, seed)).transpose()
        };
        let (ours, torchvision) = if reference_first {
            let torchvision = time_reference()?;
            (time_splitnas(&files, options, seed)?, torchvision)
        } else {
            let ours = time_splitnas(&files, options, seed)?;
            (ours, time_reference()?)
        };
        let ratio = torchvision.as_ref().map(|reference| ours.images_per_second / reference.images_per_second);
        progress(format!(
            "round {}: splitnas {:.1} images/s{}",
            round + 1,
            ours.images_per_second,
            match (&torchvision, ratio) {
                (Some(reference), Some(ratio)) => format!(", torchvision {:.1} images/s, ratio {ratio:.2}", reference.images_per_second),
                _ => String::new(),
            }
        ));
        rounds.push(DataRound { round, splitnas: ours, torchvision, ratio });
    }
    let step = if options.steps > 0 {
        let feeding = measure_step_feeding(registry, &files, options)?;
        progress(format!(
            "step: {:.1} ms preloaded, {:.1} ms with the loader ({:.1} ms waiting)",
            feeding.median_ms_preloaded, feeding.median_ms_with_loader, feeding.median_ms_waiting
        ));
        Some(feeding)
    } else {
        None
    };
    let mut reference_speeds: Vec<f64> =
        rounds.iter().filter_map(|round| round.torchvision.as_ref().map(|timing| timing.images_per_second)).collect();
    let mut ratios: Vec<f64> = rounds.iter().filter_map(|round| round.ratio).collect();
    Ok(DataBenchReport {
        folder: options.folder.display().to_string(),
        images: files.len(),
        classes: files.num_classes(),
        image_size: options.image_size,
        batch_size: options.batch_size,
        workers: options.workers,
        prefetch: options.prefetch,
        torch_threads: tch::get_num_threads(),
        median_images_per_second: median(&mut rounds.iter().map(|round| round.splitnas.images_per_second).collect::<Vec<_>>()),
        median_reference_images_per_second: (!reference_speeds.is_empty()).then(|| median(&mut reference_speeds)),
        median_ratio: (!ratios.is_empty()).then(|| median(&mut ratios)),
        rounds,
        step,
    })
}

/// The report as a Markdown table, one row per round and one of medians.
pub fn render_data_report(report: &DataBenchReport) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let mut text = format!(
        "{} images in {} classes, {}x{} crops, batch {}, {} workers, prefetch {}\n\n",
        report.images, report.classes, report.image_size, report.image_size, report.batch_size, report.workers, report.prefetch
    );
    text.push_str("| round | splitnas images/s | torchvision images/s | ratio | splitnas RSS start / peak / end (MiB) | torchvision RSS start / peak / end (MiB) |\n");
    text.push_str("|---|---|---|---|---|---|\n");
    let memory = |timing: &LoaderTiming| {
        format!(
            "{:.0} / {:.0} / {:.0}",
            timing.resident_start_bytes as f64 / MIB,
            timing.resident_peak_bytes as f64 / MIB,
            timing.resident_end_bytes as f64 / MIB
        )
    };
    for round in &report.rounds {
        text.push_str(&format!(
            "| {} | {:.1} | {} | {} | {} | {} |\n",
            round.round + 1,
            round.splitnas.images_per_second,
            round.torchvision.as_ref().map_or("-".to_string(), |timing| format!("{:.1}", timing.images_per_second)),
            round.ratio.map_or("-".to_string(), |ratio| format!("{ratio:.2}")),
            memory(&round.splitnas),
            round.torchvision.as_ref().map_or("-".to_string(), memory),
        ));
    }
    text.push_str(&format!(
        "| median | {:.1} | {} | {} | | |\n",
        report.median_images_per_second,
        report.median_reference_images_per_second.map_or("-".to_string(), |speed| format!("{speed:.1}")),
        report.median_ratio.map_or("-".to_string(), |ratio| format!("**{ratio:.2}**")),
    ));
    if let Some(step) = &report.step {
        text.push_str(&format!(
            "\nNB201 single-path step (median of {}): {:.1} ms on a preloaded batch, {:.1} ms fed by the loader ({:.1} ms of it waiting for the batch)\n",
            step.steps, step.median_ms_preloaded, step.median_ms_with_loader, step.median_ms_waiting
        ));
    }
    text
}
