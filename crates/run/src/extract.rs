//! `splitnas extract`: a leaf's derived architecture as a stand-alone network carrying the
//! trained supernet's weights, with no retraining (OFA's point; ABI 1.5
//! `network_from_supernet`). The network's batch norms are re-estimated on fixed training
//! images first, as OFA evaluates its subnets, then it is evaluated on the valid and test
//! splits and exported like a trained network (`models/node-N-from-supernet.*`).
//!
//! With the run's own `[search] eval_batches` and `recalibration_batches`, the valid accuracy
//! is the one the search measured for the architecture through the supernet: the same
//! calibration images, the same validation batches.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::json;
use splitnas_data::{BatchLoader, LoaderPosition};
use splitnas_engine::batch_norm::BatchNormStatistics;
use splitnas_engine::context::correct;
use splitnas_engine::error::{named, SearchError};
use splitnas_engine::plugins::PluginRegistry;
use splitnas_plugin_api::{ForwardMode, NamedTensor, NetworkBox, TensorRef};
use tch::Tensor;

use crate::directory::RunDirectory;
use crate::setup::{RunOptions, RunSetup, SearchLoaders};
use crate::training::write_model;

/// What to extract and how to evaluate it.
#[derive(Debug, Clone, Default)]
pub struct ExtractRequest {
    /// The leaf; default: the run's selected one.
    pub node: Option<usize>,
    /// Training batches that re-estimate the batch norms; default: the run's `[search]
    /// recalibration_batches`, or 8 where it has none.
    pub recalibration_batches: Option<usize>,
    /// Validation batches evaluated (0: the whole split); default: the run's `[search]
    /// eval_batches`.
    pub eval_batches: Option<usize>,
}

/// The extracted network, as `extract` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Extracted {
    pub node: usize,
    pub genotype: String,
    pub recalibration_batches: usize,
    pub eval_batches: usize,
    pub valid_accuracy: f64,
    pub test_accuracy: f64,
    /// The search's accuracy of the architecture through the supernet (the leaf's record).
    pub supernet_valid_accuracy: f64,
    pub model: PathBuf,
}

/// Without a run setting, OFA's recalibration set is 2,000 images; 8 batches is the order of
/// that at the usual batch sizes and seconds on a CPU.
const DEFAULT_RECALIBRATION_BATCHES: usize = 8;

pub fn extract(directory: &Path, registry: PluginRegistry, options: &RunOptions, request: &ExtractRequest) -> Result<Extracted> {
    let run_directory = RunDirectory::open(directory)?;
    let mut config = run_directory.read_config()?;
    config.run.output_dir = directory.parent().map(Path::to_path_buf).unwrap_or_default();
    config.run.name = directory.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tree = run_directory.read_tree().with_context(|| format!("{} has no split tree: it is not a finished search", directory.display()))?;
    let node = match request.node {
        Some(node) => node,
        None => run_directory.read_report().with_context(|| format!("{} has no report: give the leaf with --node", directory.display()))?.selected,
    };
    let Some(leaf) = tree.nodes.get(node) else {
        bail!("{}: the split tree has no node {node} (its nodes are 0 to {})", directory.display(), tree.nodes.len().saturating_sub(1));
    };
    let Some(result) = &leaf.result else {
        bail!("{}: node {node} has no derived architecture (only leaves of a finished search have one)", directory.display());
    };
    let (genotype, supernet_valid_accuracy, mask) = (result.genotype.clone(), result.architecture_valid_accuracy, leaf.mask());
    let options = RunOptions { output_dir: Some(config.run.output_dir.clone()), ..options.clone() };
    let setup = RunSetup::new(config, registry, &options)?;
    let space_name = setup.config.space.name.clone();
    let architecture =
        setup.space.parse_genotype(genotype.as_str().into()).into_result().map_err(|e| anyhow::anyhow!("space `{space_name}`: {e}"))?;

    let checkpoint = setup.directory.checkpoint_paths(node).0;
    let saved = run_directory.read_checkpoint_tensors(node).with_context(|| format!("node {node}'s supernet checkpoint"))?;
    let supernet_tensors: Vec<NamedTensor> = ["param.", "buffer."]
        .iter()
        .flat_map(|prefix| saved.iter().filter_map(move |(name, tensor)| name.strip_prefix(prefix).map(|name| NamedTensor::share(name, tensor))))
        .collect();
    let network = setup
        .space
        .network_from_supernet(&architecture, &mask, supernet_tensors.into(), setup.device)
        .into_result()
        .map_err(|e| anyhow::anyhow!("space `{space_name}` cannot build {genotype} from the supernet of {}: {e}", checkpoint.display()))?;

    let search = &setup.config.search;
    let recalibration_batches = request.recalibration_batches.unwrap_or(match search.recalibration_batches {
        0 => DEFAULT_RECALIBRATION_BATCHES,
        batches => batches,
    });
    let eval_batches = request.eval_batches.unwrap_or(search.eval_batches);
    let loaders = SearchLoaders::new(&setup.data)?;
    recalibrate(&network, loaders.calibration(), recalibration_batches)?;
    let valid_accuracy = accuracy(&network, loaders.valid_eval(), eval_batches)?;
    let test_loader = RefCell::new(setup.data.eval_loader(splitnas_data::SplitName::Test)?);
    let test_accuracy = accuracy(&network, &test_loader, 0)?;

    let (tensors_path, json_path) = setup.directory.extracted_model_paths(node);
    let trained = json!({
        "epochs": 0,
        "from_supernet": {"node": node, "checkpoint": setup.directory.relative(&checkpoint), "recalibration_batches": recalibration_batches},
        "valid_accuracy": valid_accuracy,
        "valid_batches": eval_batches,
        "test_accuracy": test_accuracy,
    });
    write_model(&setup, &network, &architecture, &genotype, (&tensors_path, &json_path), trained)?;
    Ok(Extracted { node, genotype, recalibration_batches, eval_batches, valid_accuracy, test_accuracy, supernet_valid_accuracy, model: tensors_path })
}

fn forward(network: &NetworkBox, images: &Tensor, train: bool) -> Result<Tensor, SearchError> {
    let output = network
        .forward(TensorRef::new(images), ForwardMode { train, drop_path_prob: 0.0 })
        .into_result()
        .map_err(|error| SearchError::Plugin { component: "network".to_string(), error })?;
    Ok(output.logits.into_tensor())
}

/// The network's batch-norm running statistics re-estimated on the first `batches` calibration
/// batches, as the search's evaluation does for every architecture.
fn recalibrate(network: &NetworkBox, calibration: &RefCell<BatchLoader>, batches: usize) -> Result<()> {
    let buffers = named(network.buffers().into_result().map_err(|e| anyhow::anyhow!("network: {e}"))?);
    let statistics = BatchNormStatistics::of(&buffers);
    if statistics.is_empty() || batches == 0 {
        return Ok(());
    }
    let train_forward = |images: &Tensor| forward(network, images, true).map(drop);
    let images = {
        let mut loader = calibration.borrow_mut();
        loader.seek(LoaderPosition::default());
        loader.next_batch()?.images
    };
    let momentum = statistics.measure_momentum(&images, &train_forward)?;
    statistics.recalibrate(calibration, batches, momentum, &train_forward)?;
    Ok(())
}

/// Top-1 accuracy in inference mode over the first `max_batches` batches (0: all).
fn accuracy(network: &NetworkBox, loader: &RefCell<BatchLoader>, max_batches: usize) -> Result<f64> {
    tch::no_grad(|| {
        let mut loader = loader.borrow_mut();
        let batches = loader.batches_per_epoch();
        let limit = if max_batches == 0 { batches } else { max_batches.min(batches) };
        loader.seek(LoaderPosition::default());
        let (mut hits, mut seen) = (0i64, 0i64);
        for _ in 0..limit {
            let batch = loader.next_batch()?;
            let logits = forward(network, &batch.images, false)?;
            hits += correct(&logits, &batch.labels).int64_value(&[]);
            seen += batch.labels.size()[0];
        }
        anyhow::ensure!(seen > 0, "the evaluation split has no images");
        Ok(hits as f64 / seen as f64)
    })
}
