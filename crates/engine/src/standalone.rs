//! Training one architecture's stand-alone network from scratch and measuring it.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};
use splitnas_plugin_api::{ForwardMode, NetworkBox, TensorRef};
use tch::Tensor;

use splitnas_data::{BatchLoader, LoaderPosition};

use crate::error::{PluginResultExt, SearchError};
use crate::optim::{clip_gradients, steps_per_epoch, CosineSchedule, Sgd, SgdConfig};

/// How a stand-alone network is trained (the run configuration's `[final]` table says it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StandaloneSettings {
    pub epochs: usize,
    /// Cap on training steps per epoch; 0 runs whole epochs.
    pub max_steps_per_epoch: usize,
    /// Weight of the auxiliary head's loss, for networks that have one.
    pub auxiliary_weight: f64,
    /// Drop-path probability, raised linearly from 0 over the epochs; 0 disables it.
    pub drop_path_prob: f64,
    /// Label smoothing ε of the cross-entropy (PyTorch's `label_smoothing`); 0 disables it.
    pub label_smoothing: f64,
    pub optimizer: SgdConfig,
}

/// What stand-alone training measured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StandaloneResult {
    pub epochs: usize,
    pub final_train_loss: f64,
    pub valid_accuracy: Option<f64>,
    pub test_accuracy: f64,
    pub seconds: f64,
}

/// The mean cross-entropy of a training step with label smoothing ε, exactly PyTorch's
/// `CrossEntropyLoss(label_smoothing=ε)` (libtorch's own kernel): the target is
/// `(1 − ε)·onehot + ε/K` over the K classes.
pub fn training_cross_entropy(logits: &Tensor, labels: &Tensor, label_smoothing: f64) -> Tensor {
    logits.cross_entropy_loss::<Tensor>(labels, None, tch::Reduction::Mean, -100, label_smoothing)
}

/// Accuracy of a network on every batch of an evaluation loader (BN in inference mode).
pub(crate) fn network_accuracy(network: &NetworkBox, loader: &RefCell<BatchLoader>) -> Result<f64, SearchError> {
    tch::no_grad(|| {
        let mut loader = loader.borrow_mut();
        loader.seek(LoaderPosition::default());
        let batches = loader.batches_per_epoch();
        let mut hits = 0i64;
        let mut seen = 0i64;
        for _ in 0..batches {
            let batch = loader.next_batch()?;
            let output = network.forward(TensorRef::new(&batch.images), ForwardMode { train: false, drop_path_prob: 0.0 }).within("network")?;
            let logits = output.logits.into_tensor();
            hits += logits.argmax(-1, false).eq_tensor(&batch.labels).sum(tch::Kind::Int64).int64_value(&[]);
            seen += batch.labels.size()[0];
        }
        Ok(hits as f64 / seen.max(1) as f64)
    })
}

/// Where a stand-alone training stands after a whole epoch: what a checkpoint holds beside
/// the tensors.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StandaloneProgress {
    /// Epochs finished.
    pub epochs_done: usize,
    /// The training loader's position after them.
    pub loader: LoaderPosition,
    /// Mean training loss of the last finished epoch.
    pub last_train_loss: f64,
    /// Training seconds so far (over every session of a resumed training).
    pub seconds: f64,
}

/// One finished epoch, handed to [`StandaloneHooks::on_epoch_end`] to log and checkpoint.
pub struct StandaloneEpoch {
    pub epoch: usize,
    /// The learning rate of the epoch's first step.
    pub lr: f64,
    /// The learning rate of every step of the epoch, in order.
    pub step_lrs: Vec<f64>,
    /// The libtorch threads the epoch ran on, and why.
    pub threads: crate::threads::ThreadChoice,
    pub train_loss: f64,
    /// Accuracy on the training batches of the epoch, as trained (augmentation, train mode).
    pub train_accuracy: f64,
    pub progress: StandaloneProgress,
    /// Everything to restore: parameters (`param.`), buffers (`buffer.`) and the optimizer's
    /// state (`sgd.`); handles sharing the live storage.
    pub tensors: Vec<(String, Tensor)>,
}

/// A checkpoint to continue from, as [`StandaloneEpoch`] gave it.
pub struct StandaloneResume {
    /// The checkpoint file, for error messages.
    pub path: std::path::PathBuf,
    pub tensors: Vec<(String, Tensor)>,
    pub progress: StandaloneProgress,
}

/// What the caller sees of a training as it runs.
pub struct StandaloneHooks<'a> {
    /// After every step: (epoch, the learning rate the step used).
    pub on_step: &'a mut dyn FnMut(usize, f64),
    /// After every epoch, before the next one starts: log it, checkpoint it.
    pub on_epoch_end: &'a mut dyn FnMut(&StandaloneEpoch) -> Result<(), SearchError>,
}

/// libtorch's generator is reseeded at the start of every epoch (dropout, drop-path), so a
/// training resumed at an epoch boundary draws what an uninterrupted one would.
fn epoch_torch_seed(seed: u64, epoch: usize) -> i64 {
    crate::seeds::stream_seed(seed, crate::seeds::Stream::Standalone, &[epoch as u64]) as i64
}

/// Trains `network` with SGD and a cosine schedule over `config.epochs` (moving per iteration
/// or per epoch as `config.optimizer.lr_schedule_step` says), then evaluates it. With `resume`, the
/// network, buffers, optimizer and loader continue from a checkpoint of a finished epoch, and
/// the result equals an uninterrupted training's.
#[allow(clippy::too_many_arguments)]
pub fn train_standalone(
    network: &NetworkBox,
    train: &RefCell<BatchLoader>,
    valid: Option<&RefCell<BatchLoader>>,
    test: &RefCell<BatchLoader>,
    config: &StandaloneSettings,
    seed: u64,
    resume: Option<StandaloneResume>,
    hooks: StandaloneHooks<'_>,
) -> Result<StandaloneResult, SearchError> {
    let started = std::time::Instant::now();
    let parameters: Vec<(String, Tensor)> =
        network.parameters().within("network")?.into_iter().map(|t| (t.name.to_string(), t.tensor.into_tensor())).collect();
    let buffers: Vec<(String, Tensor)> =
        network.buffers().within("network")?.into_iter().map(|t| (t.name.to_string(), t.tensor.into_tensor())).collect();
    let inputs: Vec<&Tensor> = parameters.iter().map(|(_, t)| t).collect();
    let mut optimizer = Sgd::new(config.optimizer);
    let mut last_loss = f64::NAN;
    let mut first_epoch = 0;
    let mut seconds_before = 0.0;
    if let Some(resume) = resume {
        let checkpoint_error = |error: crate::checkpoint::CheckpointError| SearchError::Other(error.to_string());
        crate::checkpoint::restore_into(&resume.path, &resume.tensors, &parameters, "param.").map_err(checkpoint_error)?;
        crate::checkpoint::restore_into(&resume.path, &resume.tensors, &buffers, "buffer.").map_err(checkpoint_error)?;
        optimizer
            .load_state(resume.tensors.iter().filter_map(|(name, t)| Some((name.strip_prefix("sgd.")?.to_string(), t.shallow_clone()))).collect());
        train.borrow_mut().seek(resume.progress.loader);
        first_epoch = resume.progress.epochs_done;
        last_loss = resume.progress.last_train_loss;
        seconds_before = resume.progress.seconds;
    }
    let steps = steps_per_epoch(train.borrow().batches_per_epoch(), config.max_steps_per_epoch);
    // A function of (epoch, step) alone: a resumed training continues it exactly.
    let schedule = CosineSchedule::new(&config.optimizer, config.epochs, steps);
    for epoch in first_epoch..config.epochs {
        tch::manual_seed(epoch_torch_seed(seed, epoch));
        // An epoch boundary: the free CPUs may have changed (unless the count is pinned).
        crate::threads::recheck();
        let threads = crate::threads::current();
        let mut step_lrs = Vec::with_capacity(steps);
        // DARTS's schedule: drop_path_prob · epoch / epochs.
        let mode = ForwardMode { train: true, drop_path_prob: config.drop_path_prob * epoch as f64 / config.epochs as f64 };
        // Summed on the device; read once per epoch (no per-step device sync).
        let mut loss_sum: Option<Tensor> = None;
        let mut hits: Option<Tensor> = None;
        let mut seen = 0i64;
        for step in 0..steps {
            let lr = schedule.lr(epoch, step);
            step_lrs.push(lr);
            let batch = train.borrow_mut().next_batch()?;
            let output = network.forward(TensorRef::new(&batch.images), mode).within("network")?;
            let logits = output.logits.into_tensor();
            let mut loss = training_cross_entropy(&logits, &batch.labels, config.label_smoothing);
            if let abi_stable::std_types::ROption::RSome(auxiliary) = output.auxiliary_logits {
                loss += training_cross_entropy(&auxiliary.into_tensor(), &batch.labels, config.label_smoothing) * config.auxiliary_weight;
            }
            let gradients: Vec<Option<Tensor>> =
                Tensor::run_backward(&[&loss], &inputs, false, false).into_iter().map(|g| g.defined().then_some(g)).collect();
            clip_gradients(&gradients, config.optimizer.grad_clip);
            optimizer.step(&parameters, &gradients, lr);
            let correct = logits.detach().argmax(-1, false).eq_tensor(&batch.labels).sum(tch::Kind::Int64);
            seen += batch.labels.size()[0];
            hits = Some(match hits {
                Some(sum) => sum + correct,
                None => correct,
            });
            loss_sum = Some(match loss_sum {
                Some(sum) => sum + loss.detach(),
                None => loss.detach(),
            });
            if step % 20 == 19 || step + 1 == steps {
                let value = loss.double_value(&[]);
                if !value.is_finite() {
                    return Err(SearchError::NonFiniteLoss { epoch, step, value });
                }
            }
            (hooks.on_step)(epoch, lr);
        }
        last_loss = loss_sum.map_or(f64::NAN, |sum| sum.double_value(&[]) / steps.max(1) as f64);
        let train_accuracy = hits.map_or(f64::NAN, |sum| sum.int64_value(&[]) as f64 / seen.max(1) as f64);
        let progress = StandaloneProgress {
            epochs_done: epoch + 1,
            loader: train.borrow().position(),
            last_train_loss: last_loss,
            seconds: seconds_before + started.elapsed().as_secs_f64(),
        };
        let tensors = parameters
            .iter()
            .map(|(name, t)| (format!("param.{name}"), t.shallow_clone()))
            .chain(buffers.iter().map(|(name, t)| (format!("buffer.{name}"), t.shallow_clone())))
            .chain(optimizer.state().into_iter().map(|(name, t)| (format!("sgd.{name}"), t)))
            .collect();
        let lr = schedule.lr(epoch, 0);
        (hooks.on_epoch_end)(&StandaloneEpoch { epoch, lr, step_lrs, threads, train_loss: last_loss, train_accuracy, progress, tensors })?;
    }
    let valid_accuracy = valid.map(|loader| network_accuracy(network, loader)).transpose()?;
    let test_accuracy = network_accuracy(network, test)?;
    Ok(StandaloneResult {
        epochs: config.epochs,
        final_train_loss: last_loss,
        valid_accuracy,
        test_accuracy,
        seconds: seconds_before + started.elapsed().as_secs_f64(),
    })
}
