//! Training one sub-supernet with a search algorithm: the host side of the algorithm
//! contract (docs/ARCHITECTURE.md, "one training path"). The host owns the weights, their
//! optimizers and the data; the algorithm owns α and the sampling policy and reaches the
//! supernet through [`TrainingContext`].

use std::cell::RefCell;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RStr, RVec};
use serde::{Deserialize, Serialize};
use splitnas_data::{Batch, BatchLoader, SeededRng};
use splitnas_plugin_api::{
    AlgorithmSetup, Architecture, ArchitectureStep, HostContext, HostContext_TO, Mask, NamedTensor, SearchAlgorithmBox, SplitCriterionBox,
    SplitDecision, SplitRequest, StepProgress, SupernetBox,
};
use tch::Tensor;

use crate::context::{abi_batch, BufferSnapshot, TrainingContext, TrainingEnvironment};
use crate::criterion::{run_split, HostCriterionContext};
use crate::error::{named, PluginResultExt, SearchError};
use crate::gradients::GradientProvider;
use crate::optim::{clip_gradients, steps_per_epoch, Adam, AdamConfig, CosineSchedule, Sgd, SgdConfig};
use crate::services::PluginServices;

/// What deriving an architecture from a sub-supernet gave.
pub struct Derivation {
    pub architecture: Architecture,
    /// Validation accuracy of the architecture through the supernet (single path).
    pub accuracy: f64,
    /// Metrics the algorithm logged while deriving (RSPS: its best sampled accuracy).
    pub metrics: Vec<(String, f64)>,
}

/// What a split criterion decided for a sub-supernet, and what it cost.
pub struct SplitOutcome {
    pub decision: SplitDecision,
    /// Forward/backward passes the criterion asked for.
    pub gradient_passes: usize,
    /// Metrics the criterion (and the algorithm's scoring samples) logged, in order.
    pub metrics: Vec<(String, f64)>,
}

/// Optimizer settings of a sub-supernet's training.
#[derive(Debug, Clone, Copy)]
pub struct TrainingSettings {
    pub weights: SgdConfig,
    pub architecture: AdamConfig,
    /// The cosine schedule runs over epochs `[schedule_start, schedule_end)`, moving per
    /// iteration or per epoch as `weights.lr_schedule_step` says.
    pub schedule_start: usize,
    pub schedule_end: usize,
    pub architecture_warmup_epochs: usize,
    pub max_steps_per_epoch: usize,
}

/// Scalar state of a sub-supernet, checkpointed beside its tensors.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SubSupernetState {
    pub architecture_steps: u64,
    pub algorithm_state: String,
    pub schedule_start: usize,
    pub schedule_end: usize,
}

/// Name prefixes of a sub-supernet's state tensors by role, in checkpoints and state digests.
pub mod state_prefix {
    pub const PARAMETER: &str = "param.";
    pub const BUFFER: &str = "buffer.";
    pub const ARCHITECTURE: &str = "alpha.";
    pub const WEIGHT_OPTIMIZER: &str = "sgd.";
    pub const ARCHITECTURE_OPTIMIZER: &str = "adam.";
    /// The algorithm's own tensors (ABI 1.4 `state_tensors`: OFA's teacher).
    pub const ALGORITHM: &str = "algorithm.";
}

/// A supernet restricted by a mask, with its algorithm and optimizers.
pub struct SubSupernet {
    pub mask: Mask,
    pub supernet: SupernetBox,
    pub algorithm: SearchAlgorithmBox,
    pub parameters: Vec<(String, Tensor)>,
    pub buffers: Vec<(String, Tensor)>,
    pub alphas: Vec<(String, Tensor)>,
    pub weight_optimizer: Sgd,
    pub architecture_optimizer: Adam,
    pub settings: TrainingSettings,
}

/// What one epoch of training measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochSummary {
    pub epoch: usize,
    /// The learning rate of the epoch's first step.
    pub lr: f64,
    /// The learning rate of every step, in order.
    pub step_lrs: Vec<f64>,
    pub train_loss: f64,
    pub steps: usize,
    pub seconds: f64,
    pub metrics: Vec<(String, f64)>,
}

impl SubSupernet {
    /// A fresh supernet for `mask` with a fresh algorithm.
    pub fn new(
        env: &TrainingEnvironment<'_>,
        mask: Mask,
        create_algorithm: &dyn Fn(&AlgorithmSetup) -> Result<SearchAlgorithmBox, SearchError>,
        seed: u64,
        settings: TrainingSettings,
    ) -> Result<Self, SearchError> {
        let supernet = env.space.build_supernet(&mask, env.device).within("space")?;
        let algorithm = create_algorithm(&AlgorithmSetup { space: env.info.clone(), mask: mask.clone(), device: env.device, seed })?;
        let parameters = named(supernet.parameters().within("supernet")?);
        let buffers = named(supernet.buffers().within("supernet")?);
        let alphas = named(algorithm.architecture_parameters().within("algorithm")?);
        Ok(SubSupernet {
            mask,
            supernet,
            algorithm,
            parameters,
            buffers,
            alphas,
            weight_optimizer: Sgd::new(settings.weights),
            architecture_optimizer: Adam::new(settings.architecture),
            settings,
        })
    }

    /// The learning rate of step `step` of `epoch` (of `steps_per_epoch`): the algorithm's own
    /// schedule where it has one (ABI 1.4), else the host's cosine; a function of these alone,
    /// so a resumed or inherited schedule continues exactly.
    pub fn learning_rate(&self, epoch: usize, step: usize, steps_per_epoch: usize, total_epochs: usize) -> Result<f64, SearchError> {
        let progress =
            StepProgress { epoch: epoch as u32, total_epochs: total_epochs as u32, step: step as u32, steps_per_epoch: steps_per_epoch as u32 };
        if let Some(lr) = Option::<f64>::from(self.algorithm.weight_learning_rate(progress).within("algorithm")?) {
            if !(lr.is_finite() && lr >= 0.0) {
                return Err(SearchError::Other(format!("the algorithm scheduled the learning rate {lr} for epoch {epoch}, step {step}")));
            }
            return Ok(lr);
        }
        let s = &self.settings;
        let schedule = CosineSchedule::new(&s.weights, s.schedule_end.saturating_sub(s.schedule_start), steps_per_epoch);
        Ok(schedule.lr(epoch.saturating_sub(s.schedule_start), step))
    }

    /// Trains one epoch. `on_step` is called after each step (progress bars).
    pub fn train_epoch(
        &mut self,
        env: &TrainingEnvironment<'_>,
        epoch: usize,
        seed: u64,
        on_step: &mut dyn FnMut(),
    ) -> Result<EpochSummary, SearchError> {
        let started = std::time::Instant::now();
        tch::manual_seed(seed as i64);
        let steps = steps_per_epoch(env.train.borrow().batches_per_epoch(), self.settings.max_steps_per_epoch);
        let step_lrs: Vec<f64> = (0..steps).map(|step| self.learning_rate(epoch, step, steps, env.total_epochs)).collect::<Result<_, _>>()?;
        let train_architecture = epoch >= self.settings.architecture_warmup_epochs && !self.alphas.is_empty();
        let services = PluginServices::new(SeededRng::new(seed));
        let (context, mut trainer) = self.trainer(env, epoch, &services);
        trainer.algorithm.on_epoch_start(HostContext_TO::from_ptr(&context, TD_Opaque), context.progress).within("algorithm")?;
        trainer.apply_permutations(&context)?;
        let mut loss_sum = Tensor::zeros([], (tch::Kind::Float, env.device.to_tch()));
        for (step, &lr) in step_lrs.iter().enumerate() {
            let train_batch = env.train.borrow_mut().next_batch()?;
            let valid_batch = if train_architecture { Some(env.valid.borrow_mut().next_batch()?) } else { None };
            let loss = trainer.step(&context, &train_batch, valid_batch.as_ref(), lr)?;
            loss_sum += &loss;
            // One host sync every 20 steps catches a diverging run early without stalling every step.
            if step % 20 == 19 || step + 1 == steps {
                let value = loss.double_value(&[]);
                if !value.is_finite() {
                    return Err(SearchError::NonFiniteLoss { epoch, step, value });
                }
            }
            on_step();
        }
        Ok(EpochSummary {
            epoch,
            lr: step_lrs.first().copied().unwrap_or_default(),
            step_lrs,
            train_loss: loss_sum.double_value(&[]) / steps.max(1) as f64,
            steps,
            seconds: started.elapsed().as_secs_f64(),
            metrics: services.take_metrics(),
        })
    }

    /// A host context for this sub-supernet and the pieces a training step updates, borrowed
    /// side by side (the context reads the supernet while steps move its weights in place).
    pub fn trainer<'s>(
        &'s mut self,
        env: &'s TrainingEnvironment<'s>,
        epoch: usize,
        services: &'s PluginServices,
    ) -> (TrainingContext<'s>, Trainer<'s>) {
        let SubSupernet { mask, supernet, algorithm, parameters, buffers, alphas, weight_optimizer, architecture_optimizer, settings } = self;
        let context = TrainingContext::new(env, supernet, buffers, mask, epoch, services);
        let trainer = Trainer { algorithm, parameters, alphas, weight_optimizer, architecture_optimizer, grad_clip: settings.weights.grad_clip };
        (context, trainer)
    }

    /// Runs `body` with the algorithm and a host context for this sub-supernet; returns its
    /// result and the metrics the algorithm logged meanwhile.
    fn with_host<R>(
        &mut self,
        env: &TrainingEnvironment<'_>,
        epoch: usize,
        seed: u64,
        body: impl FnOnce(&mut SearchAlgorithmBox, &TrainingContext<'_>) -> Result<R, SearchError>,
    ) -> Result<(R, Vec<(String, f64)>), SearchError> {
        let SubSupernet { mask, supernet, algorithm, buffers, .. } = self;
        let services = PluginServices::new(SeededRng::new(seed));
        let context = TrainingContext::new(env, supernet, buffers, mask, epoch, &services);
        let result = body(algorithm, &context)?;
        Ok((result, services.take_metrics()))
    }

    /// Validation accuracy of the supernet with the algorithm's evaluation weights.
    pub fn evaluate(&mut self, env: &TrainingEnvironment<'_>, epoch: usize, seed: u64) -> Result<f64, SearchError> {
        let (accuracy, _) = self.with_host(env, epoch, seed, |algorithm, context| {
            let sample = algorithm.evaluation_sample(HostContext_TO::from_ptr(context, TD_Opaque)).within("algorithm")?;
            context.evaluator.accuracy(&sample.weights.into_tensor(), &sample.active).within("supernet")
        })?;
        Ok(accuracy)
    }

    /// The architecture the algorithm derives from this sub-supernet, its supernet accuracy,
    /// and the metrics the algorithm logged while deriving.
    pub fn derive(&mut self, env: &TrainingEnvironment<'_>, epoch: usize, seed: u64) -> Result<Derivation, SearchError> {
        let ((architecture, accuracy), metrics) = self.with_host(env, epoch, seed, |algorithm, context| {
            let architecture = algorithm.derive(HostContext_TO::from_ptr(context, TD_Opaque)).within("algorithm")?;
            if !context.mask.contains(&architecture) {
                return Err(SearchError::Other(format!(
                    "the algorithm derived {:?}, which is outside the sub-supernet's mask",
                    architecture.choices
                )));
            }
            let accuracy = context.evaluate(&architecture).within("supernet")?;
            Ok((architecture, accuracy))
        })?;
        Ok(Derivation { architecture, accuracy, metrics })
    }

    /// Asks `criterion` how to split this sub-supernet, serving it gradients of this
    /// supernet. BatchNorm running statistics are restored afterwards: the thousands of
    /// gradient passes must not change the state the children inherit.
    pub fn split(
        &mut self,
        env: &TrainingEnvironment<'_>,
        criterion: &mut SplitCriterionBox,
        request: &SplitRequest,
        epoch: usize,
        seed: u64,
        gradient_loader: &RefCell<BatchLoader>,
    ) -> Result<SplitOutcome, SearchError> {
        tch::manual_seed(seed as i64);
        let SubSupernet { mask, supernet, algorithm, parameters, buffers, .. } = self;
        let snapshot = BufferSnapshot::take(buffers);
        let services = PluginServices::new(SeededRng::derive(seed, &[1]));
        let context = TrainingContext::new(env, supernet, buffers, mask, epoch, &services);
        let mut contexts = || algorithm.context_sample(HostContext_TO::from_ptr(&context, TD_Opaque)).into_result();
        let provider = GradientProvider::new(&context, &mut contexts, parameters, gradient_loader);
        let criterion_context = HostCriterionContext::new(SeededRng::derive(seed, &[2]), Some(&provider));
        let decision = run_split(criterion, request, &criterion_context).map_err(|e| SearchError::Other(format!("split criterion: {e}")));
        let gradient_passes = *provider.passes.borrow();
        snapshot.restore(buffers);
        // What the criterion and the algorithm's scoring samples logged, in order.
        let mut metrics = criterion_context.services.take_metrics();
        metrics.extend(services.take_metrics());
        Ok(SplitOutcome { decision: decision?, gradient_passes, metrics })
    }

    /// Every tensor of the sub-supernet's state, prefixed by role, for a checkpoint.
    pub fn state_tensors(&self) -> Result<Vec<(String, Tensor)>, SearchError> {
        let mut tensors = Vec::new();
        let prefixed =
            |prefix: &str, items: &[(String, Tensor)]| items.iter().map(|(n, t)| (format!("{prefix}{n}"), t.shallow_clone())).collect::<Vec<_>>();
        tensors.extend(prefixed(state_prefix::PARAMETER, &self.parameters));
        tensors.extend(prefixed(state_prefix::BUFFER, &self.buffers));
        tensors.extend(prefixed(state_prefix::ARCHITECTURE, &self.alphas));
        tensors.extend(prefixed(state_prefix::WEIGHT_OPTIMIZER, &self.weight_optimizer.state()));
        tensors.extend(prefixed(state_prefix::ARCHITECTURE_OPTIMIZER, &self.architecture_optimizer.state()));
        tensors.extend(prefixed(state_prefix::ALGORITHM, &named(self.algorithm.state_tensors().within("algorithm")?)));
        Ok(tensors)
    }

    pub fn state(&self) -> Result<SubSupernetState, SearchError> {
        Ok(SubSupernetState {
            architecture_steps: self.architecture_optimizer.steps,
            algorithm_state: self.algorithm.state_json().within("algorithm")?.to_string(),
            schedule_start: self.settings.schedule_start,
            schedule_end: self.settings.schedule_end,
        })
    }

    /// Restores from `state_tensors()`/`state()` of the same configuration (or of a parent:
    /// children inherit everything by name).
    pub fn load(&mut self, path: &std::path::Path, tensors: &[(String, Tensor)], state: &SubSupernetState) -> Result<(), SearchError> {
        use crate::checkpoint::restore_into;
        let to_error = |e: crate::checkpoint::CheckpointError| SearchError::Other(e.to_string());
        restore_into(path, tensors, &self.parameters, state_prefix::PARAMETER).map_err(to_error)?;
        restore_into(path, tensors, &self.buffers, state_prefix::BUFFER).map_err(to_error)?;
        restore_into(path, tensors, &self.alphas, state_prefix::ARCHITECTURE).map_err(to_error)?;
        let device = self.device_of_parameters();
        let take = |prefix: &str| -> Vec<(String, Tensor)> {
            tensors.iter().filter_map(|(n, t)| n.strip_prefix(prefix).map(|n| (n.to_string(), t.to_device(device).copy()))).collect()
        };
        self.weight_optimizer.load_state(take(state_prefix::WEIGHT_OPTIMIZER));
        self.architecture_optimizer.load_state(take(state_prefix::ARCHITECTURE_OPTIMIZER), state.architecture_steps);
        self.algorithm.load_state_json(RStr::from_str(&state.algorithm_state)).within("algorithm")?;
        let algorithm_tensors: RVec<NamedTensor> =
            take(state_prefix::ALGORITHM).iter().map(|(name, tensor)| NamedTensor::share(name.as_str(), tensor)).collect();
        self.algorithm.load_state_tensors(algorithm_tensors).within("algorithm")?;
        self.settings.schedule_start = state.schedule_start;
        self.settings.schedule_end = state.schedule_end;
        Ok(())
    }

    fn device_of_parameters(&self) -> tch::Device {
        self.parameters.first().map(|(_, t)| t.device()).unwrap_or(tch::Device::Cpu)
    }
}

/// The pieces of a sub-supernet that a training step updates.
pub struct Trainer<'s> {
    pub algorithm: &'s mut SearchAlgorithmBox,
    pub parameters: &'s [(String, Tensor)],
    pub alphas: &'s [(String, Tensor)],
    pub weight_optimizer: &'s mut Sgd,
    pub architecture_optimizer: &'s mut Adam,
    pub grad_clip: f64,
}

impl Trainer<'_> {
    /// Reorders the weights' optimizer state as the supernet reordered their parameters at the
    /// algorithm's request (OFA's channel re-sorting), so that momentum stays with its channel.
    pub fn apply_permutations(&mut self, context: &TrainingContext<'_>) -> Result<(), SearchError> {
        for permutation in context.permutations.take() {
            let index = Tensor::from_slice(&permutation.index);
            self.weight_optimizer.permute(permutation.parameter.as_str(), i64::from(permutation.dim), &index).map_err(|error| {
                SearchError::Other(format!(
                    "reordering the optimizer state of {} after the supernet's reorganization: {error}",
                    permutation.parameter
                ))
            })?;
        }
        Ok(())
    }

    /// One training step: the algorithm's architecture step on `valid_batch` (if given), then
    /// its weight step on `train_batch` at learning rate `lr`. Returns the detached training
    /// loss, left on the device (reading it would stall the step).
    pub fn step(&mut self, context: &TrainingContext<'_>, train_batch: &Batch, valid_batch: Option<&Batch>, lr: f64) -> Result<Tensor, SearchError> {
        let host = || HostContext_TO::from_ptr(context, TD_Opaque);
        let train_abi = abi_batch(train_batch);
        if let Some(valid_batch) = valid_batch {
            let outcome = self.algorithm.architecture_step(host(), &abi_batch(valid_batch), &train_abi).within("algorithm")?;
            apply_architecture_step(self.alphas, self.architecture_optimizer, outcome);
        }
        let step_loss = self.algorithm.weight_step(host(), &train_abi).within("algorithm")?;
        // A reorganization asked for during the step moves momentum before this step's update.
        self.apply_permutations(context)?;
        let loss = step_loss.loss.into_tensor();
        self.descend(&loss, lr, step_loss.trains_architecture && valid_batch.is_some());
        Ok(loss.detach())
    }

    /// The weight update of a training loss: gradients of the weights (and of α when
    /// `with_alphas`) alone, clipping, SGD (and Adam on α).
    pub fn descend(&mut self, loss: &Tensor, lr: f64, with_alphas: bool) {
        let architecture = with_alphas.then_some((self.alphas, &mut *self.architecture_optimizer));
        apply_weight_step(loss, self.parameters, self.weight_optimizer, lr, self.grad_clip, architecture);
    }
}

fn gradients_for(loss: &Tensor, inputs: &[&Tensor]) -> Vec<Option<Tensor>> {
    // Gradients for exactly these tensors: nothing is accumulated into `.grad`, and options
    // that were not computed come back undefined (the optimizers skip them).
    Tensor::run_backward(&[loss], inputs, false, false).into_iter().map(|g| g.defined().then_some(g)).collect()
}

fn apply_weight_step(
    loss: &Tensor,
    parameters: &[(String, Tensor)],
    optimizer: &mut Sgd,
    lr: f64,
    grad_clip: f64,
    architecture: Option<(&[(String, Tensor)], &mut Adam)>,
) {
    let mut inputs: Vec<&Tensor> = parameters.iter().map(|(_, t)| t).collect();
    if let Some((alphas, _)) = &architecture {
        inputs.extend(alphas.iter().map(|(_, t)| t));
    }
    let gradients = gradients_for(loss, &inputs);
    let (weight_gradients, alpha_gradients) = gradients.split_at(parameters.len());
    clip_gradients(weight_gradients, grad_clip);
    optimizer.step(parameters, weight_gradients, lr);
    if let Some((alphas, adam)) = architecture {
        adam.step(alphas, alpha_gradients);
    }
}

fn apply_architecture_step(alphas: &[(String, Tensor)], optimizer: &mut Adam, outcome: ArchitectureStep) {
    let gradients: Vec<Option<Tensor>> = match outcome {
        ArchitectureStep::Skip => return,
        ArchitectureStep::Loss(loss) => gradients_for(&loss.into_tensor(), &alphas.iter().map(|(_, t)| t).collect::<Vec<_>>()),
        ArchitectureStep::GradientsWritten => alphas
            .iter()
            .map(|(_, alpha)| {
                let gradient = alpha.grad();
                gradient.defined().then(|| {
                    let taken = gradient.copy();
                    let _ = gradient.shallow_clone().zero_();
                    taken
                })
            })
            .collect(),
    };
    optimizer.step(alphas, &gradients);
}
