//! One architecture's stand-alone training under `[final]`, checkpointed into the run
//! directory after every epoch and resumed from there; and its export as the reference
//! implementation's `state_dict` (safetensors, with a JSON of how to build the class).
//!
//! A search trains its leaves through here (selection), and `splitnas train` trains one given
//! genotype through here, in a directory of its own.

use std::cell::RefCell;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;
use splitnas_data::{BatchLoader, Cutout, PreparedData, SplitName};
use splitnas_engine::checkpoint::{read_tensors, restore_into, write_json, write_tensors};
use splitnas_engine::error::SearchError;
use splitnas_engine::export::export_network;
use splitnas_engine::seeds::{stream_seed, Stream};
use splitnas_engine::standalone::{train_standalone, StandaloneHooks, StandaloneProgress, StandaloneResult, StandaloneResume};
use splitnas_plugin_api::{Architecture, NetworkBox};
use tch::Tensor;

use crate::config::FinalSection;
use crate::directory::TrainingRecord;
use crate::metrics::{progress_bar, MetricsLog};
use crate::report::Report;
use crate::setup::{RunOptions, RunSetup};

/// The progress of a stand-alone checkpoint travels inside its safetensors file (one atomic
/// write): `[epochs done, loader epoch, loader batch, last train loss, seconds]`, all exact in f64.
const PROGRESS: &str = "progress";

fn encode_progress(progress: &StandaloneProgress) -> Tensor {
    Tensor::from_slice(&[
        progress.epochs_done as f64,
        progress.loader.epoch as f64,
        progress.loader.batch as f64,
        progress.last_train_loss,
        progress.seconds,
    ])
}

fn decode_progress(path: &Path, tensors: &[(String, Tensor)]) -> Result<StandaloneProgress> {
    let (_, values) = tensors.iter().find(|(name, _)| name == PROGRESS).with_context(|| format!("{}: no `{PROGRESS}` entry", path.display()))?;
    let values = Vec::<f64>::try_from(values).with_context(|| format!("{}: `{PROGRESS}` is not a list of numbers", path.display()))?;
    let [epochs_done, loader_epoch, loader_batch, last_train_loss, seconds] = values[..] else {
        anyhow::bail!("{}: `{PROGRESS}` has {} entries, expected 5", path.display(), values.len());
    };
    Ok(StandaloneProgress {
        epochs_done: epochs_done as usize,
        loader: splitnas_data::LoaderPosition { epoch: loader_epoch as u64, batch: loader_batch as usize },
        last_train_loss,
        seconds,
    })
}

/// Builds `architecture`'s network, seeded as the run seeds its stand-alone trainings.
fn build_network(setup: &RunSetup, architecture: &Architecture) -> Result<NetworkBox> {
    setup.space.build_network(architecture, setup.device).into_result().map_err(|e| anyhow::anyhow!("space `{}`: {e}", setup.config.space.name))
}

/// Trains `architecture` stand-alone for `section.epochs` (recorded as tree node `node`),
/// continuing from its checkpoint where a killed run left one: the result equals an
/// uninterrupted training's. The checkpoint of the last epoch stays: it is the trained network.
pub(crate) fn train_architecture(
    setup: &RunSetup,
    section: &FinalSection,
    architecture: &Architecture,
    genotype: &str,
    node: usize,
    options: &RunOptions,
    metrics: &mut MetricsLog,
) -> Result<StandaloneResult> {
    let (config, data) = (&setup.config, &setup.data);
    let seed = stream_seed(config.run.seed, Stream::Standalone, &[]);
    tch::manual_seed(seed as i64);
    let network = build_network(setup, architecture)?;
    let checkpoint = setup.directory.standalone_checkpoint_path(node, section.epochs);
    let resume = if checkpoint.exists() {
        let tensors = read_tensors(&checkpoint)?;
        let progress = decode_progress(&checkpoint, &tensors)?;
        if !options.quiet {
            eprintln!("node {node} stand-alone: continuing after epoch {} of {} ({})", progress.epochs_done, section.epochs, checkpoint.display());
        }
        Some(StandaloneResume { path: checkpoint.clone(), tensors, progress })
    } else {
        None
    };
    let FinalLoaders { train, valid, test } = final_loaders(data, section)?;
    let settings = section.standalone_settings();
    let steps = splitnas_engine::optim::steps_per_epoch(train.borrow().batches_per_epoch(), settings.max_steps_per_epoch);
    let done = resume.as_ref().map_or(0, |resume| resume.progress.epochs_done);
    let bar = progress_bar((steps * settings.epochs.saturating_sub(done)) as u64, options.quiet, format!("node {node} stand-alone"));
    let mut on_step = |_, _| bar.inc(1);
    let mut on_epoch_end = |epoch: &splitnas_engine::standalone::StandaloneEpoch| -> Result<(), SearchError> {
        let mut tensors: Vec<(String, Tensor)> = epoch.tensors.iter().map(|(name, t)| (name.clone(), t.shallow_clone())).collect();
        tensors.push((PROGRESS.to_string(), encode_progress(&epoch.progress)));
        write_tensors(&checkpoint, &tensors).map_err(|error| SearchError::Other(error.to_string()))?;
        metrics
            .write(json!({
                "event": "standalone_epoch", "node": node, "genotype": genotype, "epoch": epoch.epoch, "lr": epoch.lr, "step_lrs": epoch.step_lrs,
                "train_loss": epoch.train_loss, "train_accuracy": epoch.train_accuracy, "seconds": epoch.progress.seconds,
                "threads": epoch.threads,
            }))
            .map_err(|error| SearchError::Other(error.to_string()))
    };
    let hooks = StandaloneHooks { on_step: &mut on_step, on_epoch_end: &mut on_epoch_end };
    let result = train_standalone(&network, &train, Some(&valid), &test, &settings, seed, resume, hooks)?;
    bar.finish_and_clear();
    if !options.quiet {
        eprintln!(
            "node {node} stand-alone {genotype}: valid {:.4}, test {:.4} after {} epochs ({:.1} s)",
            result.valid_accuracy.unwrap_or(f64::NAN),
            result.test_accuracy,
            result.epochs,
            result.seconds
        );
    }
    metrics.write(json!({"event": "final", "node": node, "genotype": genotype, "trained_on": section.train_on, "result": result}))?;
    Ok(result)
}

/// What a stand-alone training reads.
pub struct FinalLoaders {
    /// Training batches: shuffled, augmented as the search's, cut out where `[final] cutout` says.
    pub train: RefCell<BatchLoader>,
    /// The valid split, for the validation accuracy (held out only with `train_on = "train"`).
    pub valid: RefCell<BatchLoader>,
    pub test: RefCell<BatchLoader>,
}

/// The loaders of a stand-alone training under `[final]`: training batches of the train split
/// or of train+valid (`train_on`), `batch_size` images each (0: `data.batch_size`), with
/// `cutout`; the valid and test splits whole, in order, for evaluation. With the defaults the
/// training batches are exactly the search's (same seed, order and augmentation).
pub fn final_loaders(data: &PreparedData, section: &FinalSection) -> Result<FinalLoaders> {
    let cutout = (section.cutout > 0).then_some(Cutout { size: section.cutout as i64 });
    let train = data.standalone_train_loader(section.train_on, section.batch_size, cutout).context("the stand-alone training loader ([final])")?;
    Ok(FinalLoaders {
        train: RefCell::new(train),
        valid: RefCell::new(data.eval_loader(SplitName::Valid)?),
        test: RefCell::new(data.eval_loader(SplitName::Test)?),
    })
}

/// Writes the network a stand-alone training of `epochs` left for `node` (its last
/// checkpoint) as `model.safetensors`/`model.json`, or with `leaf`, as `models/node-N.*`.
/// Returns the safetensors path.
pub(crate) fn export_trained(
    setup: &RunSetup,
    architecture: &Architecture,
    genotype: &str,
    node: usize,
    result: &StandaloneResult,
    leaf: Option<usize>,
) -> Result<std::path::PathBuf> {
    let checkpoint = setup.directory.standalone_checkpoint_path(node, result.epochs);
    let saved = read_tensors(&checkpoint).with_context(|| format!("the trained network of node {node} is gone"))?;
    let network = build_network(setup, architecture)?;
    let parameters = splitnas_engine::error::named(network.parameters().into_result().map_err(|e| anyhow::anyhow!("network: {e}"))?);
    let buffers = splitnas_engine::error::named(network.buffers().into_result().map_err(|e| anyhow::anyhow!("network: {e}"))?);
    restore_into(&checkpoint, &saved, &parameters, "param.")?;
    restore_into(&checkpoint, &saved, &buffers, "buffer.")?;
    let (tensors_path, json_path) = setup.directory.model_paths(leaf);
    let trained = json!({"epochs": result.epochs, "valid_accuracy": result.valid_accuracy, "test_accuracy": result.test_accuracy});
    write_model(setup, &network, architecture, genotype, (&tensors_path, &json_path), trained)?;
    Ok(tensors_path)
}

/// Exports `network` under its reference names to `paths` (safetensors, then the JSON that
/// says how to load it), `trained` saying how its weights came about.
pub(crate) fn write_model(
    setup: &RunSetup,
    network: &NetworkBox,
    architecture: &Architecture,
    genotype: &str,
    (tensors_path, json_path): (&std::path::Path, &std::path::Path),
    trained: serde_json::Value,
) -> Result<()> {
    let exported = export_network(&setup.space, network, architecture)?;
    write_tensors(tensors_path, &exported.tensors)?;
    let space_config = setup.config.space.config_json();
    let setup_data = crate::setup::space_setup(&setup.data);
    let mut record = json!({
        "genotype": genotype,
        "space": {"name": setup.config.space.name, "config": space_config},
        "data": {"classes": setup_data.classes, "input_channels": setup_data.input_channels, "image_size": setup_data.image_size},
        "weights": tensors_path.file_name().map(|name| name.to_string_lossy().into_owned()),
        "trained": trained,
        "normalization": {"mean": setup.data.normalization.mean, "std": setup.data.normalization.std},
    });
    match &exported.description {
        Some(description) => {
            record["names"] = json!("reference");
            record["reference"] = json!(description.reference);
            record["source"] = json!(description.source);
            record["constructor"] = description.constructor.clone();
            record["notes"] = json!(description.notes);
        }
        None => {
            record["names"] = json!("splitnas");
            record["notes"] = json!([format!(
                "the space `{}` names no reference implementation: the tensors keep the splitnas network's names",
                setup.config.space.name
            )]);
        }
    }
    write_json(json_path, &record)?;
    Ok(())
}

/// `splitnas train`: `genotype` trained stand-alone under `[final]` in a directory of its own,
/// with metrics, a checkpoint every epoch, and the trained network exported.
pub fn train(setup: RunSetup, genotype: &str, options: &RunOptions) -> Result<Report> {
    let lock = setup.directory.create(&setup.config, options.overwrite)?;
    setup.directory.write_class_names(setup.data.class_names.as_deref())?;
    setup.directory.write_provenance(&crate::provenance::Provenance { builds: setup.builds.clone(), invocation: options.invocation.clone() })?;
    setup.directory.write_training(&TrainingRecord { genotype: genotype.to_string() })?;
    execute_training(&setup, genotype, options, lock)
}

pub(crate) fn execute_training(setup: &RunSetup, genotype: &str, options: &RunOptions, _lock: crate::directory::RunLock) -> Result<Report> {
    let architecture = setup
        .space
        .parse_genotype(genotype.into())
        .into_result()
        .map_err(|e| anyhow::anyhow!("space `{}`: genotype `{genotype}`: {e}", setup.config.space.name))?;
    let genotype = setup.space.format_genotype(&architecture).into_result().map_err(|e| anyhow::anyhow!("space: {e}"))?.to_string();
    let mut metrics = MetricsLog::open(&setup.directory.metrics_path())?;
    let section = setup.config.final_training.clone();
    anyhow::ensure!(section.epochs > 0, "[final] epochs is 0: nothing to train");
    let result = train_architecture(setup, &section, &architecture, &genotype, 0, options, &mut metrics)?;
    let model = export_trained(setup, &architecture, &genotype, 0, &result, None)?;
    let stats = setup
        .space
        .network_stats(&architecture, setup.data.splits.train.image_shape()[1] as u32)
        .into_result()
        .map_err(|e| anyhow::anyhow!("space: {e}"))?;
    let leaf = crate::tree::LeafResult {
        genotype: genotype.clone(),
        choices: architecture.choices.to_vec(),
        supernet_valid_accuracy: f64::NAN,
        architecture_valid_accuracy: f64::NAN,
        standalone: Some(result.clone()),
        parameters: stats.parameters,
        flops: stats.flops,
        latency_ms: setup.network_latency_ms(&architecture)?,
    };
    let config = &setup.config;
    let report = Report {
        run: config.run.name.clone(),
        space: config.space.name.clone(),
        algorithm: "none (stand-alone training)".to_string(),
        criterion: "none".to_string(),
        device: setup.device.to_string(),
        seed: config.run.seed,
        search_seconds: 0.0,
        split_seconds: 0.0,
        leaves: vec![(0, leaf.clone())],
        selected: 0,
        selected_result: leaf,
        halving: Vec::new(),
        builds: setup.builds.clone(),
        model: Some(setup.directory.relative(&model)),
        trained_on: section.train_on,
    };
    let markdown = format!(
        "# splitnas train `{}`\n\nspace `{}`, genotype `{}`, device {}, seed {}.\n\n{} parameters, {} FLOPs; {} epochs in {:.1} s: train loss {:.4}, valid {}, test {:.4}.\n\nTrained network: `{}` (and `.json` beside it: how to load it in PyTorch).\n",
        config.run.name,
        config.space.name,
        genotype,
        setup.device,
        config.run.seed,
        stats.parameters,
        stats.flops,
        result.epochs,
        result.seconds,
        result.final_train_loss,
        result.valid_accuracy.map_or("-".to_string(), |v| format!("{v:.4}")),
        result.test_accuracy,
        model.display()
    );
    setup.directory.write_report(&report, &markdown)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitnas_data::{prepare_data, DataConfig, TrainOn};

    #[test]
    fn final_loaders_follow_train_on_batch_size_and_cutout() {
        let config = DataConfig { max_train_images: Some(200), max_test_images: Some(50), batch_size: 32, ..DataConfig::default() };
        let data = prepare_data(&config, tch::Device::Cpu).unwrap();
        let defaults = final_loaders(&data, &FinalSection::default()).unwrap();
        let train = defaults.train.borrow();
        assert_eq!((train.len(), train.options()), (100, &data.training_options), "the defaults: the search's training batches");
        assert_eq!((defaults.valid.borrow().len(), defaults.test.borrow().len()), (100, 50));
        let darts = FinalSection { train_on: TrainOn::TrainValid, batch_size: 96, cutout: 16, ..FinalSection::default() };
        let loaders = final_loaders(&data, &darts).unwrap();
        let train = loaders.train.borrow();
        assert_eq!((train.len(), train.options().batch_size, train.batches_per_epoch()), (200, 96, 3));
        assert_eq!(train.options().cutout, Some(Cutout { size: 16 }));
        assert_eq!(train.options().seed, data.training_options.seed);
        assert_eq!(loaders.valid.borrow().len(), 100, "the valid split is still evaluated");
    }
}
