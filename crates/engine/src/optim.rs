//! Optimizers and schedules, written over plain tensors so that their whole state can be
//! checkpointed by name (tch's optimizers keep their state inside libtorch, out of reach).
//! The update rules are PyTorch's, so results match the reference scripts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Stochastic gradient descent, PyTorch semantics: weight decay added to the gradient,
/// momentum buffer initialised with the first gradient, optional Nesterov.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SgdConfig {
    /// Learning rate at the start of the cosine schedule.
    pub lr: f64,
    /// Learning rate at the end of the cosine schedule.
    pub lr_min: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    /// Largest total gradient norm; 0 disables clipping.
    pub grad_clip: f64,
    /// When the cosine schedule from `lr` to `lr_min` moves: `"iteration"` (every training
    /// step, as PyTorch's `CosineAnnealingLR` with `T_max` = epochs × steps per epoch, stepped
    /// after every batch) or `"epoch"` (constant within an epoch, `T_max` = epochs, stepped
    /// after every epoch, as DARTS's `train.py` and `train_search.py` do). Default
    /// `"iteration"`: a short protocol stepped per epoch hardly anneals (a one-epoch training
    /// runs at `lr` throughout). [`LrScheduleStep`] says what each reference does.
    pub lr_schedule_step: LrScheduleStep,
}

impl Default for SgdConfig {
    /// NB201's search settings (REFERENCE.md section 2).
    fn default() -> Self {
        SgdConfig {
            lr: 0.025,
            lr_min: 0.001,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 3e-4,
            grad_clip: 5.0,
            lr_schedule_step: LrScheduleStep::Iteration,
        }
    }
}

/// When a cosine learning-rate schedule moves (`lr_schedule_step` of `[search.weights]` and
/// `[final.optimizer]`).
///
/// The references differ. DARTS (and GM-NAS's DARTS-space scripts) call
/// `CosineAnnealingLR.step()` once per epoch. OFA and ProxylessNAS compute the cosine of
/// `epoch · batches + batch` every iteration. NB201's XAutoDL calls
/// `scheduler.update(None, i / len(loader))` every iteration, but its `CosineAnnealingLR`
/// reads the iteration only during warm-up (0 epochs in NB201's configurations): after it,
/// the rate is a function of the epoch alone. Over NB201's 200 epochs the two differ by
/// under one epoch's step; over the few epochs of a ground-truth protocol, per epoch means
/// little or no annealing, and noisy, poorly trained networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrScheduleStep {
    /// Every training step: step `s` of epoch `e` uses the cosine at
    /// `(e · steps + s) / (epochs · steps)`.
    #[default]
    Iteration,
    /// Once per epoch: every step of epoch `e` uses the cosine at `e / epochs`.
    Epoch,
}

/// A cosine learning-rate schedule over whole epochs of a fixed number of steps. The rate is
/// a function of (epoch, step) alone, with no state: a training resumed at an epoch boundary
/// continues the schedule exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CosineSchedule {
    pub lr: f64,
    pub lr_min: f64,
    /// Epochs the schedule spans (`T_max` in epochs).
    pub epochs: usize,
    /// Training steps in each of them.
    pub steps_per_epoch: usize,
    pub step_by: LrScheduleStep,
}

impl CosineSchedule {
    /// The schedule of `config` over `epochs` epochs of `steps_per_epoch` steps.
    pub fn new(config: &SgdConfig, epochs: usize, steps_per_epoch: usize) -> Self {
        CosineSchedule { lr: config.lr, lr_min: config.lr_min, epochs, steps_per_epoch, step_by: config.lr_schedule_step }
    }

    /// The learning rate of step `step` of epoch `epoch` (both counted from 0 at the schedule's
    /// start): PyTorch's `CosineAnnealingLR` closed form, `lr_min + (lr − lr_min)(1 +
    /// cos(π·t/T))/2`, at `t/T` = `(epoch·steps + step)/(epochs·steps)` per iteration or
    /// `epoch/epochs` per epoch; past the end it stays at `lr_min`.
    pub fn lr(&self, epoch: usize, step: usize) -> f64 {
        if self.epochs == 0 {
            return self.lr;
        }
        let progress = match self.step_by {
            LrScheduleStep::Iteration if self.steps_per_epoch > 0 => {
                (epoch * self.steps_per_epoch + step) as f64 / (self.epochs * self.steps_per_epoch) as f64
            }
            _ => epoch as f64 / self.epochs as f64,
        };
        self.lr_min + (self.lr - self.lr_min) * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos()) / 2.0
    }
}

/// Adam with L2 weight decay added to the gradient (PyTorch `Adam`, not `AdamW`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    pub eps: f64,
}

impl Default for AdamConfig {
    /// The architecture optimizer of DARTS and NB201.
    fn default() -> Self {
        AdamConfig { lr: 3e-4, beta1: 0.5, beta2: 0.999, weight_decay: 1e-3, eps: 1e-8 }
    }
}

/// Training steps of one epoch: every batch of the loader, or at most `cap` (0: no cap).
pub fn steps_per_epoch(batches: usize, cap: usize) -> usize {
    if cap == 0 {
        batches
    } else {
        batches.min(cap)
    }
}

/// Scales `gradients` in place so that their total norm is at most `max_norm`, without
/// reading the norm back to the host (no device sync). Missing gradients are skipped.
pub(crate) fn clip_gradients(gradients: &[Option<Tensor>], max_norm: f64) {
    if max_norm <= 0.0 {
        return;
    }
    let norms: Vec<Tensor> = gradients.iter().flatten().map(|g| g.square().sum(tch::Kind::Float)).collect();
    if norms.is_empty() {
        return;
    }
    let total = Tensor::stack(&norms, 0).sum(tch::Kind::Float).sqrt();
    let scale = (max_norm / (total + 1e-6)).clamp_max(1.0);
    tch::no_grad(|| {
        for gradient in gradients.iter().flatten() {
            let _ = gradient.shallow_clone().f_mul_(&scale).expect("gradient scaling");
        }
    });
}

/// SGD state: one momentum buffer per parameter name.
#[derive(Debug, Default)]
pub struct Sgd {
    pub config: SgdConfig,
    momentum: BTreeMap<String, Tensor>,
}

impl Sgd {
    pub fn new(config: SgdConfig) -> Self {
        Sgd { config, momentum: BTreeMap::new() }
    }

    /// One update at learning rate `lr`. `gradients[i]` belongs to `parameters[i]`; a missing
    /// gradient (an option that was not computed) leaves that parameter untouched, as PyTorch does.
    pub fn step(&mut self, parameters: &[(String, Tensor)], gradients: &[Option<Tensor>], lr: f64) {
        let config = self.config;
        tch::no_grad(|| {
            for ((name, parameter), gradient) in parameters.iter().zip(gradients) {
                let Some(gradient) = gradient else { continue };
                let mut direction = if config.weight_decay != 0.0 { gradient + parameter * config.weight_decay } else { gradient.shallow_clone() };
                if config.momentum != 0.0 {
                    let buffer = match self.momentum.get_mut(name) {
                        Some(buffer) => {
                            let _ = buffer.f_mul_scalar_(config.momentum).and_then(|mut b| b.f_add_(&direction)).expect("momentum update");
                            buffer.shallow_clone()
                        }
                        None => {
                            let buffer = direction.detach().copy();
                            self.momentum.insert(name.clone(), buffer.shallow_clone());
                            buffer
                        }
                    };
                    direction = if config.nesterov { direction + &buffer * config.momentum } else { buffer };
                }
                let _ = parameter.shallow_clone().f_sub_(&(direction * lr)).expect("parameter update");
            }
        });
    }

    /// Reorders the momentum of `parameter` along `dim` by `index`, as the parameter itself
    /// was reordered (a supernet's channel reorganization); nothing when it has none yet.
    pub fn permute(&mut self, parameter: &str, dim: i64, index: &Tensor) -> Result<(), tch::TchError> {
        if let Some(buffer) = self.momentum.get_mut(parameter) {
            let reordered = buffer.f_index_select(dim, &index.f_to_device(buffer.device())?)?;
            *buffer = reordered;
        }
        Ok(())
    }

    /// Named state tensors for a checkpoint (`momentum.<parameter>`).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.momentum.iter().map(|(name, t)| (format!("momentum.{name}"), t.shallow_clone())).collect()
    }

    pub fn load_state(&mut self, state: Vec<(String, Tensor)>) {
        self.momentum = state.into_iter().filter_map(|(name, t)| name.strip_prefix("momentum.").map(|n| (n.to_string(), t))).collect();
    }
}

/// Adam state: first and second moments per parameter name, and the step count.
#[derive(Debug, Default)]
pub struct Adam {
    pub config: AdamConfig,
    first: BTreeMap<String, Tensor>,
    second: BTreeMap<String, Tensor>,
    pub steps: u64,
}

impl Adam {
    pub fn new(config: AdamConfig) -> Self {
        Adam { config, first: BTreeMap::new(), second: BTreeMap::new(), steps: 0 }
    }

    pub fn step(&mut self, parameters: &[(String, Tensor)], gradients: &[Option<Tensor>]) {
        let config = self.config;
        self.steps += 1;
        let correction1 = 1.0 - config.beta1.powi(self.steps as i32);
        let correction2 = 1.0 - config.beta2.powi(self.steps as i32);
        tch::no_grad(|| {
            for ((name, parameter), gradient) in parameters.iter().zip(gradients) {
                let Some(gradient) = gradient else { continue };
                let gradient = if config.weight_decay != 0.0 { gradient + parameter * config.weight_decay } else { gradient.shallow_clone() };
                let first = self.first.entry(name.clone()).or_insert_with(|| gradient.zeros_like());
                let _ = first.f_mul_scalar_(config.beta1).and_then(|mut m| m.f_add_(&(&gradient * (1.0 - config.beta1)))).expect("adam m");
                let second = self.second.entry(name.clone()).or_insert_with(|| gradient.zeros_like());
                let _ = second.f_mul_scalar_(config.beta2).and_then(|mut v| v.f_add_(&(gradient.square() * (1.0 - config.beta2)))).expect("adam v");
                let denominator = (&*second / correction2).sqrt() + config.eps;
                let update = &*first / correction1 / denominator * config.lr;
                let _ = parameter.shallow_clone().f_sub_(&update).expect("adam update");
            }
        });
    }

    pub fn state(&self) -> Vec<(String, Tensor)> {
        let first = self.first.iter().map(|(n, t)| (format!("first.{n}"), t.shallow_clone()));
        let second = self.second.iter().map(|(n, t)| (format!("second.{n}"), t.shallow_clone()));
        first.chain(second).collect()
    }

    pub fn load_state(&mut self, state: Vec<(String, Tensor)>, steps: u64) {
        self.first.clear();
        self.second.clear();
        for (name, tensor) in state {
            if let Some(n) = name.strip_prefix("first.") {
                self.first.insert(n.to_string(), tensor);
            } else if let Some(n) = name.strip_prefix("second.") {
                self.second.insert(n.to_string(), tensor);
            }
        }
        self.steps = steps;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parameter(values: &[f32]) -> Tensor {
        Tensor::from_slice(values).set_requires_grad(true)
    }

    #[test]
    fn sgd_matches_pytorch_momentum_and_nesterov() {
        // PyTorch: p=1, g=0.5, lr=0.1, momentum 0.9, wd 0.1 -> d=0.6; step1 buf=0.6, p=1-0.06=0.94
        // step2 d=0.5+0.094=0.594, buf=0.9*0.6+0.594=1.134, p=0.94-0.1134=0.8266
        let p = parameter(&[1.0]);
        let params = vec![("w".to_string(), p.shallow_clone())];
        let mut sgd =
            Sgd::new(SgdConfig { lr: 0.1, lr_min: 0.0, momentum: 0.9, nesterov: false, weight_decay: 0.1, grad_clip: 0.0, ..SgdConfig::default() });
        for _ in 0..2 {
            sgd.step(&params, &[Some(Tensor::from_slice(&[0.5f32]))], 0.1);
        }
        assert!((p.double_value(&[0]) - 0.8266).abs() < 1e-6, "{}", p.double_value(&[0]));
        // Nesterov, no decay: step1 buf=g=1, d=1+0.9=1.9, p=1-0.19=0.81
        let q = parameter(&[1.0]);
        let mut nesterov =
            Sgd::new(SgdConfig { lr: 0.1, lr_min: 0.0, momentum: 0.9, nesterov: true, weight_decay: 0.0, grad_clip: 0.0, ..SgdConfig::default() });
        nesterov.step(&[("q".to_string(), q.shallow_clone())], &[Some(Tensor::from_slice(&[1.0f32]))], 0.1);
        assert!((q.double_value(&[0]) - 0.81).abs() < 1e-6);
    }

    #[test]
    fn sgd_skips_missing_gradients_and_round_trips_its_state() {
        let a = parameter(&[1.0]);
        let b = parameter(&[2.0]);
        let params = vec![("a".to_string(), a.shallow_clone()), ("b".to_string(), b.shallow_clone())];
        let mut sgd = Sgd::new(SgdConfig::default());
        sgd.step(&params, &[Some(Tensor::from_slice(&[1.0f32])), None], 0.1);
        assert_eq!(b.double_value(&[0]), 2.0);
        let state = sgd.state();
        assert_eq!(state.len(), 1);
        let mut restored = Sgd::new(SgdConfig::default());
        restored.load_state(state.into_iter().map(|(n, t)| (n, t.copy())).collect());
        assert_eq!(restored.state()[0].0, "momentum.a");
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        // With bias correction the first Adam step is lr * sign(g) (eps aside).
        let p = parameter(&[0.0, 0.0]);
        let mut adam = Adam::new(AdamConfig { lr: 0.01, weight_decay: 0.0, ..AdamConfig::default() });
        adam.step(&[("alpha".to_string(), p.shallow_clone())], &[Some(Tensor::from_slice(&[3.0f32, -0.5]))]);
        assert!((p.double_value(&[0]) + 0.01).abs() < 1e-6);
        assert!((p.double_value(&[1]) - 0.01).abs() < 1e-6);
        assert_eq!(adam.steps, 1);
        assert_eq!(adam.state().len(), 2);
    }

    #[test]
    fn clipping_bounds_the_total_norm_and_leaves_small_gradients_alone() {
        let big = vec![Some(Tensor::from_slice(&[3.0f32, 4.0])), None, Some(Tensor::from_slice(&[0.0f32]))];
        clip_gradients(&big, 1.0);
        let norm = big[0].as_ref().unwrap().norm().double_value(&[]);
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        let small = vec![Some(Tensor::from_slice(&[0.3f32, 0.4]))];
        clip_gradients(&small, 1.0);
        assert!((small[0].as_ref().unwrap().norm().double_value(&[]) - 0.5).abs() < 1e-6);
    }

    fn schedule(step_by: LrScheduleStep, lr_min: f64, epochs: usize, steps_per_epoch: usize) -> CosineSchedule {
        CosineSchedule { lr: 0.1, lr_min, epochs, steps_per_epoch, step_by }
    }

    #[test]
    fn cosine_goes_from_lr_to_lr_min_per_epoch() {
        let per_epoch = schedule(LrScheduleStep::Epoch, 0.0, 10, 7);
        assert_eq!(per_epoch.lr(0, 0), 0.1);
        assert_eq!(per_epoch.lr(0, 6), 0.1, "constant within an epoch");
        assert!((per_epoch.lr(5, 3) - 0.05).abs() < 1e-12);
        assert!((schedule(LrScheduleStep::Epoch, 0.001, 10, 7).lr(10, 0) - 0.001).abs() < 1e-12);
    }

    #[test]
    fn cosine_per_iteration_anneals_inside_an_epoch() {
        // One epoch of 4 steps: t/T = 0, 1/4, 2/4, 3/4.
        let one_epoch = schedule(LrScheduleStep::Iteration, 0.0, 1, 4);
        let lrs: Vec<f64> = (0..4).map(|step| one_epoch.lr(0, step)).collect();
        let expected = [0.1, 0.05 * (1.0 + (std::f64::consts::PI / 4.0).cos()), 0.05, 0.05 * (1.0 - (std::f64::consts::PI / 4.0).cos())];
        for (lr, expected) in lrs.iter().zip(expected) {
            assert!((lr - expected).abs() < 1e-15, "{lrs:?}");
        }
        // The middle of a 10-epoch schedule, and the rate a resumed training recomputes.
        let long = schedule(LrScheduleStep::Iteration, 0.0, 10, 8);
        assert!((long.lr(5, 0) - 0.05).abs() < 1e-12);
        assert_eq!(long.lr(3, 5), schedule(LrScheduleStep::Iteration, 0.0, 10, 8).lr(3, 5));
        assert!(long.lr(3, 5) < long.lr(3, 4), "every step moves");
        assert_eq!(schedule(LrScheduleStep::Iteration, 0.0, 0, 8).lr(0, 0), 0.1, "no epochs: the initial rate");
    }
}
