//! What a search algorithm reaches of the host while it trains one sub-supernet: the
//! supernet's forward pass, evaluation through the supernet, derivation, the seeded
//! generator (docs/ARCHITECTURE.md, "host contexts").

use std::cell::{Cell, RefCell};

use abi_stable::std_types::{ROption, RStr, RVec};
use splitnas_data::{Batch, BatchLoader, LoaderPosition};
use splitnas_plugin_api::{
    ffi_guard, Architecture, Batch as AbiBatch, Device, HostContext, Mask, NamedTensor, NetworkStats, OptionCosts, OwnedTensor, ParameterPermutation,
    PluginError, PluginResult, SearchSpaceBox, SpaceInfo, SupernetBox, TensorRef, TrainingProgress,
};
use tch::Tensor;

use crate::batch_norm::BatchNormStatistics;
use crate::costs::PartLatencies;
use crate::error::{PluginResultExt, SearchError};
use crate::services::PluginServices;

/// Everything a sub-supernet's training borrows from the run.
pub struct TrainingEnvironment<'a> {
    pub space: &'a SearchSpaceBox,
    pub info: &'a SpaceInfo,
    pub device: Device,
    pub train: &'a RefCell<BatchLoader>,
    pub valid: &'a RefCell<BatchLoader>,
    pub valid_eval: &'a RefCell<BatchLoader>,
    pub eval_batches: usize,
    pub total_epochs: usize,
    /// The per-option costs algorithms are offered (`[search] option_cost`), if any.
    pub option_costs: Option<&'a OptionCosts>,
    /// Whole-network latencies from `[search] latency_table`'s parts, if any (ABI 1.5).
    pub network_latency: Option<&'a PartLatencies>,
    /// Label smoothing ε of training losses (`[search] label_smoothing`).
    pub label_smoothing: f64,
    /// Side of the (square) training images: the size `network_stats` counts FLOPs at.
    pub image_size: u32,
    /// BatchNorm recalibration of every evaluated architecture (`[search]
    /// recalibration_batches`): training batches of fixed images, and how many; `None`
    /// evaluates with each validation batch's own statistics.
    pub recalibration: Option<(&'a RefCell<BatchLoader>, usize)>,
}

pub(crate) fn abi_batch(batch: &Batch) -> AbiBatch {
    AbiBatch { images: OwnedTensor::share(&batch.images), labels: OwnedTensor::share(&batch.labels) }
}

/// The weights that select one architecture: one-hot rows, absent choice points all zero.
pub fn one_hot_weights(architecture: &Architecture, info: &SpaceInfo, device: Device) -> (Tensor, Mask) {
    let width = info.max_options as usize;
    let mut values = vec![0f32; architecture.choices.len() * width];
    let mut active = Mask { rows: RVec::new() };
    for (point, &choice) in architecture.choices.iter().enumerate() {
        let mut row = vec![false; width];
        if choice != Architecture::ABSENT {
            values[point * width + choice as usize] = 1.0;
            row[choice as usize] = true;
        }
        active.rows.push(row.into());
    }
    let weights = Tensor::from_slice(&values).view([architecture.choices.len() as i64, width as i64]).to_device(device.to_tch());
    (weights, active)
}

/// A copy of BatchNorm running statistics, to put back after passes that must leave no trace
/// (evaluation, gradient matching's thousands of training-mode passes).
pub struct BufferSnapshot(Vec<Tensor>);

impl BufferSnapshot {
    pub fn take(buffers: &[(String, Tensor)]) -> Self {
        BufferSnapshot(buffers.iter().map(|(_, t)| t.copy()).collect())
    }

    pub fn restore(self, buffers: &[(String, Tensor)]) {
        tch::no_grad(|| {
            for ((_, live), saved) in buffers.iter().zip(self.0) {
                live.shallow_clone().copy_(&saved);
            }
        });
    }
}

/// Top-1 accuracy of logits against labels, as a count (kept on the device until read).
pub fn correct(logits: &Tensor, labels: &Tensor) -> Tensor {
    logits.argmax(-1, false).eq_tensor(labels).sum(tch::Kind::Int64)
}

/// Evaluates the supernet on a validation loader with given weights. Without recalibration,
/// BatchNorm uses each batch's statistics (the usual weight-sharing evaluation); with it, the
/// running statistics are first re-estimated for the architecture on fixed training images
/// (OFA's subnet evaluation) and the validation pass runs in inference mode. Running statistics
/// are restored after either, so evaluation leaves the supernet exactly as it found it.
pub struct SupernetEvaluator<'a> {
    pub supernet: &'a SupernetBox,
    pub buffers: &'a [(String, Tensor)],
    pub loader: &'a RefCell<BatchLoader>,
    /// Cap on batches (0: the whole split).
    pub max_batches: usize,
    pub recalibration: Option<(&'a RefCell<BatchLoader>, usize)>,
    /// The supernet's BatchNorm momentum, measured at the first recalibration.
    pub momentum: Cell<Option<f64>>,
}

impl SupernetEvaluator<'_> {
    pub fn accuracy(&self, weights: &Tensor, active: &Mask) -> Result<f64, PluginError> {
        let snapshot = BufferSnapshot::take(self.buffers);
        let recalibrated = match self.recalibration {
            Some((calibration, batches)) if batches > 0 => {
                self.recalibrate(calibration, batches, weights, active).map_err(|error| PluginError::other(format!("BN recalibration: {error}")))
            }
            _ => Ok(false),
        };
        let result = recalibrated.and_then(|recalibrated| self.count_correct(weights, active, !recalibrated));
        snapshot.restore(self.buffers);
        result
    }

    /// Re-estimates the running statistics for this architecture; `Ok(false)` when the
    /// supernet has none (then batch statistics are all there is).
    fn recalibrate(&self, calibration: &RefCell<BatchLoader>, batches: usize, weights: &Tensor, active: &Mask) -> Result<bool, SearchError> {
        let statistics = BatchNormStatistics::of(self.buffers);
        if statistics.is_empty() {
            return Ok(false);
        }
        let forward =
            |images: &Tensor| self.supernet.forward(TensorRef::new(images), TensorRef::new(weights), active, true).within("supernet").map(drop);
        let momentum = match self.momentum.get() {
            Some(momentum) => momentum,
            None => {
                let images = {
                    let mut loader = calibration.borrow_mut();
                    loader.seek(LoaderPosition::default());
                    loader.next_batch()?.images
                };
                let momentum = statistics.measure_momentum(&images, &forward)?;
                self.momentum.set(Some(momentum));
                momentum
            }
        };
        statistics.recalibrate(calibration, batches, momentum, &forward)?;
        Ok(true)
    }

    fn count_correct(&self, weights: &Tensor, active: &Mask, batch_statistics: bool) -> Result<f64, PluginError> {
        tch::no_grad(|| {
            let mut loader = self.loader.borrow_mut();
            let batches = loader.batches_per_epoch();
            let limit = if self.max_batches == 0 { batches } else { self.max_batches.min(batches) };
            loader.seek(LoaderPosition::default());
            let mut hits = Tensor::zeros([], (tch::Kind::Int64, weights.device()));
            let mut seen = 0i64;
            for _ in 0..limit {
                let batch = loader.next_batch().map_err(PluginError::other)?;
                let logits = self
                    .supernet
                    .forward(TensorRef::new(&batch.images), TensorRef::new(weights), active, batch_statistics)
                    .into_result()?
                    .into_tensor();
                hits += correct(&logits, &batch.labels);
                seen += batch.labels.size()[0];
            }
            Ok(hits.int64_value(&[]) as f64 / seen.max(1) as f64)
        })
    }
}

/// What a search algorithm sees of the host while it trains one sub-supernet.
pub struct TrainingContext<'a> {
    pub space: &'a SearchSpaceBox,
    pub info: &'a SpaceInfo,
    pub supernet: &'a SupernetBox,
    pub mask: &'a Mask,
    pub device: Device,
    pub progress: TrainingProgress,
    pub evaluator: SupernetEvaluator<'a>,
    pub services: &'a PluginServices,
    pub option_costs: Option<&'a OptionCosts>,
    pub network_latency: Option<&'a PartLatencies>,
    pub label_smoothing: f64,
    pub image_size: u32,
    /// How the supernet reordered parameters at the algorithm's request (ABI 1.4
    /// `reorganize_supernet`), for the trainer to reorder their optimizer state.
    pub permutations: RefCell<Vec<ParameterPermutation>>,
}

impl<'a> TrainingContext<'a> {
    pub(crate) fn new(
        env: &'a TrainingEnvironment<'a>,
        supernet: &'a SupernetBox,
        buffers: &'a [(String, Tensor)],
        mask: &'a Mask,
        epoch: usize,
        services: &'a PluginServices,
    ) -> Self {
        let evaluator = SupernetEvaluator {
            supernet,
            buffers,
            loader: env.valid_eval,
            max_batches: env.eval_batches,
            recalibration: env.recalibration,
            momentum: Cell::new(None),
        };
        TrainingContext {
            space: env.space,
            info: env.info,
            supernet,
            mask,
            device: env.device,
            progress: TrainingProgress { epoch: epoch as u32, total_epochs: env.total_epochs as u32 },
            evaluator,
            services,
            option_costs: env.option_costs,
            network_latency: env.network_latency,
            label_smoothing: env.label_smoothing,
            image_size: env.image_size,
            permutations: RefCell::new(Vec::new()),
        }
    }
}

impl HostContext for TrainingContext<'_> {
    fn device(&self) -> PluginResult<Device> {
        ffi_guard(|| Ok(self.device))
    }
    fn space_info(&self) -> PluginResult<SpaceInfo> {
        ffi_guard(|| Ok(self.info.clone()))
    }
    fn mask(&self) -> PluginResult<Mask> {
        ffi_guard(|| Ok(self.mask.clone()))
    }
    fn progress(&self) -> PluginResult<TrainingProgress> {
        ffi_guard(|| Ok(self.progress))
    }
    fn forward(&self, input: TensorRef<'_>, weights: TensorRef<'_>, active: &Mask, train: bool) -> PluginResult<OwnedTensor> {
        self.supernet.forward(input, weights, active, train)
    }
    fn supernet_parameters(&self) -> PluginResult<RVec<NamedTensor>> {
        self.supernet.parameters()
    }
    fn evaluate(&self, architecture: &Architecture) -> PluginResult<f64> {
        ffi_guard(|| {
            if !self.mask.contains(architecture) {
                return Err(PluginError::invalid_input(format!("architecture {:?} is outside this sub-supernet's mask", architecture.choices)));
            }
            let (weights, active) = one_hot_weights(architecture, self.info, self.device);
            self.evaluator.accuracy(&weights, &active)
        })
    }
    fn derive(&self, weights: TensorRef<'_>) -> PluginResult<Architecture> {
        self.space.derive(weights, self.mask)
    }
    fn next_random(&self) -> PluginResult<u64> {
        self.services.next_random()
    }
    fn log_metric(&self, name: RStr<'_>, value: f64) -> PluginResult<()> {
        self.services.log_metric(name.as_str(), value)
    }
    fn option_costs(&self) -> PluginResult<ROption<OptionCosts>> {
        ffi_guard(|| Ok(self.option_costs.cloned().into()))
    }
    fn label_smoothing(&self) -> PluginResult<f64> {
        ffi_guard(|| Ok(self.label_smoothing))
    }
    fn network_stats(&self, architecture: &Architecture) -> PluginResult<NetworkStats> {
        self.space.network_stats(architecture, self.image_size)
    }
    fn network_latency_ms(&self, architecture: &Architecture) -> PluginResult<f64> {
        ffi_guard(|| {
            let table = self.network_latency.ok_or_else(|| {
                PluginError::unsupported(
                    "the run has no latency table of network parts: set `[search] option_cost = \"latency\"` and `latency_table` to a table written by `splitnas bench latency` for this space",
                )
            })?;
            let parts = self.space.architecture_parts(architecture).into_result()?;
            table.network_latency_ms(parts.iter().map(|key| key.as_str())).map_err(|error| PluginError::invalid_input(error.to_string()))
        })
    }
    fn reorganize_supernet(&self, request: RStr<'_>) -> PluginResult<()> {
        ffi_guard(|| {
            let permutations = self.supernet.reorganize(request).into_result()?;
            self.permutations.borrow_mut().extend(permutations);
            Ok(())
        })
    }
}
