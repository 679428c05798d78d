//! Training one architecture's stand-alone network from scratch and measuring it.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};
use splitnas_plugin_api::{ForwardMode, NetworkBox, TensorRef};
use tch::Tensor;

use splitnas_data::{BatchLoader, LoaderPosition};

use crate::error::{PluginResultExt, SearchError};
use crate::optim::{clip_gradients, cosine_lr, steps_per_epoch, Sgd, SgdConfig};

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

/// Accuracy of a network on every batch of an evaluation loader (BN in inference mode).
pub(crate) fn network_accuracy(network: &NetworkBox, loader: &RefCell<BatchLoader>) -> Result<f64, SearchError> {
    tch::no_grad(|| {
        let mut loader = loader.borrow_mut();
        loader.seek(LoaderPosition::default());
        let batches = loader.batches_per_epoch();
        let mut hits = 0i64;
        let mut seen = 0i64;
        for _ in 0..batches {
            let batch = loader.next_batch();
            let output = network.forward(TensorRef::new(&batch.images), ForwardMode { train: false, drop_path_prob: 0.0 }).within("network")?;
            let logits = output.logits.into_tensor();
            hits += logits.argmax(-1, false).eq_tensor(&batch.labels).sum(tch::Kind::Int64).int64_value(&[]);
            seen += batch.labels.size()[0];
        }
        Ok(hits as f64 / seen.max(1) as f64)
    })
}

/// Trains `network` with SGD and a cosine schedule, then evaluates it.
pub fn train_standalone(
    network: &NetworkBox,
    train: &RefCell<BatchLoader>,
    valid: Option<&RefCell<BatchLoader>>,
    test: &RefCell<BatchLoader>,
    config: &StandaloneSettings,
    seed: u64,
    on_step: &mut dyn FnMut(usize, f64),
) -> Result<StandaloneResult, SearchError> {
    let started = std::time::Instant::now();
    tch::manual_seed(seed as i64);
    let parameters: Vec<(String, Tensor)> =
        network.parameters().within("network")?.into_iter().map(|t| (t.name.to_string(), t.tensor.into_tensor())).collect();
    let inputs: Vec<&Tensor> = parameters.iter().map(|(_, t)| t).collect();
    let mut optimizer = Sgd::new(config.optimizer);
    let mut last_loss = f64::NAN;
    let steps = steps_per_epoch(train.borrow().batches_per_epoch(), config.max_steps_per_epoch);
    for epoch in 0..config.epochs {
        let lr = cosine_lr(config.optimizer.lr, config.optimizer.lr_min, epoch, config.epochs);
        // DARTS's schedule: drop_path_prob · epoch / epochs.
        let mode = ForwardMode { train: true, drop_path_prob: config.drop_path_prob * epoch as f64 / config.epochs as f64 };
        // Summed on the device; read once per epoch (no per-step device sync).
        let mut loss_sum: Option<Tensor> = None;
        for step in 0..steps {
            let batch = train.borrow_mut().next_batch();
            let output = network.forward(TensorRef::new(&batch.images), mode).within("network")?;
            let mut loss = output.logits.into_tensor().cross_entropy_for_logits(&batch.labels);
            if let abi_stable::std_types::ROption::RSome(auxiliary) = output.auxiliary_logits {
                loss += auxiliary.into_tensor().cross_entropy_for_logits(&batch.labels) * config.auxiliary_weight;
            }
            let gradients: Vec<Option<Tensor>> =
                Tensor::run_backward(&[&loss], &inputs, false, false).into_iter().map(|g| g.defined().then_some(g)).collect();
            clip_gradients(&gradients, config.optimizer.grad_clip);
            optimizer.step(&parameters, &gradients, lr);
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
            on_step(epoch, lr);
        }
        last_loss = loss_sum.map_or(f64::NAN, |sum| sum.double_value(&[]) / steps.max(1) as f64);
    }
    let valid_accuracy = valid.map(|loader| network_accuracy(network, loader)).transpose()?;
    let test_accuracy = network_accuracy(network, test)?;
    Ok(StandaloneResult {
        epochs: config.epochs,
        final_train_loss: last_loss,
        valid_accuracy,
        test_accuracy,
        seconds: started.elapsed().as_secs_f64(),
    })
}
