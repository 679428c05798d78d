//! ProxylessNAS (Cai, Zhu & Han, ICLR 2019) with binary gates, on any space.
//!
//! - **Weight step**: one path, an option per choice point drawn from softmax(α) within the
//!   mask (the host's seeded generator), trained on a training batch.
//! - **Architecture step** (every `arch_update_every` calls, after the host's warm-up
//!   `[search] architecture_warmup_epochs`): per choice point two distinct options are drawn
//!   from softmax(α) without replacement, and one of them is made active with the two
//!   probabilities renormalised. The binary gates `g` (1 on the active option, 0 on the other)
//!   are the forward's weights and require grad; `active` holds just the two options, so only
//!   two paths are computed. α's gradient is the paper's binarized one, over the two options
//!   with their probabilities renormalised (the reference's `MixedEdge.set_arch_param_grad`,
//!   mode `two`): `dL/dα_i = Σ_j dL/dg_j · p_j (δ_ij − p_i)`. The expected-cost term adds its
//!   own gradient through softmax(α). α is stepped by this algorithm's own Adam (the reference's
//!   settings: lr 1e-3, betas (0, 0.999), eps 1e-8, no weight decay; the host cannot carry an
//!   algorithm's own optimizer defaults, and the rescaling below must follow the step). After
//!   the step the two sampled entries are shifted by one offset so that their summed exp, and
//!   so every other option's probability, is what it was (`rescale_updated_arch_param`).
//!   The host's architecture optimizer is not used: the step answers `Skip`.
//! - **Expected cost**: `E[cost] = fixed_cost + Σ_choice points Σ_options p_i · cost_i` with the
//!   host's option costs (`[search] option_cost`: FLOPs or a latency table) and p = softmax(α)
//!   within the mask. `cost_form = "multiplicative"`: `CE · (log E[cost] / log cost_target)^cost_weight`
//!   (the paper's `mul#log`, β = `cost_weight`, 0.6 in the paper); `"additive"`:
//!   `CE + cost_weight · (E[cost] − cost_target) / cost_target` (the reference's `add#linear`).
//!   `cost_weight = 0` (the default) searches without costs.
//! - **Derive**: the argmax path within the mask (the space's derivation of softmax(α)).
//!
//! Nothing here knows a space: choice points, options and costs come from the setup and the host.

use serde::{Deserialize, Serialize};
use serde_json::json;
use splitnas_plugin_api::author::{parse_config, AlgorithmPlugin, Component};
use splitnas_plugin_api::{
    AlgorithmSetup, Architecture, ArchitectureStep, Batch, HostContextRef, Mask, NamedTensor, OwnedTensor, PluginError, WeightSample, WeightStepLoss,
};
use tch::{Kind, Tensor};

use crate::common::{check_non_negative, cross_entropy, host, parse_state, sampled_path_weight_step, state_to_json, MaskedSpace};

pub struct ProxylessNas {
    config: ProxylessConfig,
    space: MaskedSpace,
    /// Never replaced: the host holds handles to it and copies into it on resume.
    alpha: Tensor,
    state: ProxylessState,
    /// `[choice points, max_options]` costs from the host (0 on padding), fetched once.
    costs: Option<Tensor>,
}

/// How the expected cost enters the architecture loss.
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum CostForm {
    /// `CE · (log E[cost] / log target)^weight`.
    Multiplicative,
    /// `CE + weight · (E[cost] − target) / target`.
    Additive,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxylessConfig {
    /// α starts at `alpha_init_std · N(0, 1)` (reference: 1e-3).
    alpha_init_std: f64,
    /// One architecture update every this many architecture steps the host asks for (reference: 5).
    arch_update_every: u64,
    /// α's Adam (reference: lr 1e-3, betas (0, 0.999), eps 1e-8, no weight decay).
    arch_lr: f64,
    arch_beta1: f64,
    arch_beta2: f64,
    arch_eps: f64,
    cost_form: CostForm,
    /// β of the multiplicative form, λ of the additive one; 0 ignores costs.
    cost_weight: f64,
    /// The cost aimed at, in the host's cost unit (FLOPs or milliseconds), including `fixed_cost`.
    cost_target: f64,
    /// The cost of the network outside the choice points (stem, head), added to E[cost]: the
    /// reference's expected latency and FLOPs count the whole network.
    fixed_cost: f64,
}

/// What a checkpoint holds besides α: the step counter and α's Adam moments.
#[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct ProxylessState {
    /// Architecture steps the host asked for.
    calls: u64,
    /// Adam steps taken.
    adam_steps: u64,
    /// Adam's first and second moments, flattened `[choice points · max_options]` (empty before the first step).
    first_moment: Vec<f32>,
    second_moment: Vec<f32>,
}

impl Component for ProxylessNas {
    const NAME: &'static str = "proxylessnas";
    const DESCRIPTION: &'static str =
        "ProxylessNAS: binary gates, one sampled path per weight step, two per architecture step, optional expected-cost loss (FLOPs or latency)";
    fn default_config() -> serde_json::Value {
        json!({
            "alpha_init_std": 1e-3,
            "arch_update_every": 5,
            "arch_lr": 1e-3,
            "arch_beta1": 0.0,
            "arch_beta2": 0.999,
            "arch_eps": 1e-8,
            "cost_form": "multiplicative",
            "cost_weight": 0.0,
            "cost_target": 0.0,
            "fixed_cost": 0.0,
        })
    }
}

impl AlgorithmPlugin for ProxylessNas {
    fn create(config: &str, setup: &AlgorithmSetup) -> Result<Self, PluginError> {
        let config: ProxylessConfig = parse_config(Self::NAME, config)?;
        let name = Self::NAME;
        check_non_negative(name, "alpha_init_std", config.alpha_init_std)?;
        check_non_negative(name, "cost_weight", config.cost_weight)?;
        check_non_negative(name, "fixed_cost", config.fixed_cost)?;
        if config.arch_update_every == 0 {
            return Err(PluginError::invalid_config(format!("{name}: `arch_update_every` must be at least 1")));
        }
        if !(config.arch_lr.is_finite() && config.arch_lr > 0.0 && config.arch_eps.is_finite() && config.arch_eps > 0.0) {
            return Err(PluginError::invalid_config(format!("{name}: `arch_lr` and `arch_eps` must be positive finite numbers")));
        }
        for (key, beta) in [("arch_beta1", config.arch_beta1), ("arch_beta2", config.arch_beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(PluginError::invalid_config(format!("{name}: `{key}` must be in [0, 1), got {beta}")));
            }
        }
        if config.cost_weight > 0.0 {
            let target_ok = match config.cost_form {
                CostForm::Additive => config.cost_target > 0.0,
                // log(target) divides: it must be positive, so target > 1.
                CostForm::Multiplicative => config.cost_target > 1.0,
            };
            if !(target_ok && config.cost_target.is_finite()) {
                return Err(PluginError::invalid_config(format!(
                    "{name}: with `cost_weight` > 0, `cost_target` must be {} in the cost's unit (FLOPs or ms), got {}",
                    if config.cost_form == CostForm::Additive { "> 0" } else { "> 1 (its log divides)" },
                    config.cost_target
                )));
            }
        }
        let space = MaskedSpace::new(name, setup)?;
        let alpha = space.new_alpha(0.0, config.alpha_init_std)?;
        Ok(ProxylessNas { config, space, alpha, state: ProxylessState::default(), costs: None })
    }

    fn architecture_parameters(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(vec![NamedTensor::share("alpha", &self.alpha)])
    }

    fn weight_step(&mut self, context: &HostContextRef<'_>, batch: &Batch) -> Result<WeightStepLoss, PluginError> {
        sampled_path_weight_step(context, batch, &self.sampled_path(context)?)
    }

    fn architecture_step(
        &mut self,
        context: &HostContextRef<'_>,
        valid_batch: &Batch,
        _train_batch: &Batch,
    ) -> Result<ArchitectureStep, PluginError> {
        self.state.calls += 1;
        if !self.state.calls.is_multiple_of(self.config.arch_update_every) {
            return Ok(ArchitectureStep::Skip);
        }
        let probabilities = self.host_probabilities()?;
        let pairs = self.sample_pairs(context, &probabilities)?;
        // The binary gates: 1 on the active option of each pair, 0 on the other; both computed.
        let mut gate_values = vec![0f32; self.space.choice_points * self.space.max_options];
        let mut active = Mask { rows: Default::default() };
        for (point, pair) in pairs.iter().enumerate() {
            gate_values[point * self.space.max_options + pair.active as usize] = 1.0;
            active.rows.push((0..self.space.max_options).map(|option| option as u32 == pair.active || Some(option as u32) == pair.other).collect());
        }
        let gates = Tensor::f_from_slice(&gate_values)?
            .f_view([self.space.choice_points as i64, self.space.max_options as i64])?
            .f_to_device(self.space.device)?
            .set_requires_grad(true);
        let validation_loss = cross_entropy(context, valid_batch, &gates, &active, true)?;
        let loss = self.with_cost_term(context, &validation_loss)?;
        let mut gradients = Tensor::f_run_backward(&[&loss], &[&gates, &self.alpha], false, false)?;
        let cost_gradient = gradients.pop().filter(Tensor::defined);
        let gate_gradient = gradients.pop().filter(Tensor::defined);
        let gate_gradient = match gate_gradient {
            Some(gradient) => Vec::<Vec<f32>>::try_from(&gradient.f_to_device(tch::Device::Cpu)?)?,
            None => vec![vec![0.0; self.space.max_options]; self.space.choice_points],
        };
        let mut alpha_gradient = vec![0f32; self.space.choice_points * self.space.max_options];
        for (point, pair) in pairs.iter().enumerate() {
            let Some(other) = pair.other else { continue };
            let options = [pair.active as usize, other as usize];
            let row = &probabilities[point];
            let gate_gradients = options.map(|option| f64::from(gate_gradient[point][option]));
            let pair_gradient = binarized_gradient([f64::from(row.logits[options[0]]), f64::from(row.logits[options[1]])], gate_gradients);
            for (slot, &option) in options.iter().enumerate() {
                alpha_gradient[point * self.space.max_options + option] = pair_gradient[slot] as f32;
            }
        }
        let mut gradient = Tensor::f_from_slice(&alpha_gradient)?.f_view_as(&self.alpha)?.f_to_device(self.space.device)?;
        if let Some(cost_gradient) = cost_gradient {
            gradient = gradient.f_add(&cost_gradient)?;
        }
        let gradient = self.space.mask_gradient(&gradient)?;
        let before = self.alpha.f_detach()?.copy();
        self.adam_step(&gradient)?;
        self.rescale(&pairs, &before)?;
        Ok(ArchitectureStep::Skip)
    }

    fn scoring_sample(&mut self, context: &HostContextRef<'_>) -> Result<WeightSample, PluginError> {
        self.sampled_path(context)
    }

    /// The most likely option of every choice point.
    fn evaluation_sample(&mut self, _context: &HostContextRef<'_>) -> Result<WeightSample, PluginError> {
        self.space.most_likely_path(&self.alpha)
    }

    fn derive(&mut self, context: &HostContextRef<'_>) -> Result<Architecture, PluginError> {
        self.space.derive_from_alpha(context, &self.alpha)
    }

    fn state_json(&self) -> Result<String, PluginError> {
        state_to_json(Self::NAME, &self.state)
    }

    fn load_state_json(&mut self, state: &str) -> Result<(), PluginError> {
        let state: ProxylessState = parse_state(Self::NAME, state)?;
        let size = self.space.choice_points * self.space.max_options;
        for moment in [&state.first_moment, &state.second_moment] {
            if !(moment.is_empty() || moment.len() == size) {
                return Err(PluginError::invalid_input(format!(
                    "{}: the checkpointed Adam moments have {} entries, α has {size}",
                    Self::NAME,
                    moment.len()
                )));
            }
        }
        self.state = state;
        Ok(())
    }
}

/// α's probabilities over one choice point's allowed options, host-side.
struct RowProbabilities {
    /// α on the allowed options, −inf elsewhere.
    logits: Vec<f32>,
    /// softmax over the allowed options, 0 elsewhere.
    probabilities: Vec<f64>,
}

/// The two options an architecture step computes at one choice point: `active` (gate 1) and
/// `other` (gate 0); `other` is `None` where the mask allows a single option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SampledPair {
    active: u32,
    other: Option<u32>,
}

/// The binarized gradient of the two sampled options' α (`logits`), given the loss's gradients
/// with respect to their gates: `dL/dα_i = Σ_j dL/dg_j · p_j (δ_ij − p_i)` with `p` the softmax
/// of the two α alone (the reference's `set_arch_param_grad`, mode `two`).
fn binarized_gradient(logits: [f64; 2], gate_gradients: [f64; 2]) -> [f64; 2] {
    let largest = logits[0].max(logits[1]);
    let exps = logits.map(|logit| (logit - largest).exp());
    let total = exps[0] + exps[1];
    let p = exps.map(|e| e / total);
    let mut gradient = [0.0; 2];
    for (i, slot) in gradient.iter_mut().enumerate() {
        for j in 0..2 {
            let delta = if i == j { 1.0 } else { 0.0 };
            *slot += gate_gradients[j] * p[j] * (delta - p[i]);
        }
    }
    gradient
}

/// An index drawn with probability proportional to `weights` from a uniform draw `u64`.
fn draw_weighted(weights: &[f64], draw: u64) -> usize {
    let total: f64 = weights.iter().sum();
    // 53 random bits as a uniform number in [0, 1).
    let uniform = (draw >> 11) as f64 / (1u64 << 53) as f64 * total;
    let mut cumulative = 0.0;
    let mut last_positive = 0;
    for (index, &weight) in weights.iter().enumerate() {
        if weight > 0.0 {
            cumulative += weight;
            last_positive = index;
            if uniform < cumulative {
                return index;
            }
        }
    }
    last_positive
}

impl ProxylessNas {
    /// softmax(α) within the mask, host-side (one small copy).
    fn host_probabilities(&self) -> Result<Vec<RowProbabilities>, PluginError> {
        let _no_grad = tch::no_grad_guard();
        let logits = Vec::<Vec<f32>>::try_from(&self.space.masked_logits(&self.alpha)?.f_to_device(tch::Device::Cpu)?)?;
        Ok(logits
            .into_iter()
            .map(|logits| {
                let largest = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let exps: Vec<f64> = logits.iter().map(|&logit| if logit.is_finite() { f64::from(logit - largest).exp() } else { 0.0 }).collect();
                let total: f64 = exps.iter().sum();
                RowProbabilities { logits, probabilities: exps.iter().map(|e| e / total).collect() }
            })
            .collect())
    }

    /// One option per choice point drawn from softmax(α) within the mask (the host's seeded
    /// generator), as single-path weights outside α's graph.
    fn sampled_path(&self, context: &HostContextRef<'_>) -> Result<WeightSample, PluginError> {
        let probabilities = self.host_probabilities()?;
        let choices = probabilities
            .iter()
            .map(|row| Ok(draw_weighted(&row.probabilities, host(context.next_random())?) as u32))
            .collect::<Result<Vec<u32>, PluginError>>()?;
        Ok(WeightSample { weights: OwnedTensor::new(self.space.one_hot_from_host(&choices)?), active: self.space.single_path_active(&choices) })
    }

    /// Per choice point two distinct options drawn from softmax(α) without replacement, the
    /// active one of them drawn by their renormalised probabilities (the reference's
    /// `binarize`, mode `two`).
    fn sample_pairs(&self, context: &HostContextRef<'_>, probabilities: &[RowProbabilities]) -> Result<Vec<SampledPair>, PluginError> {
        let draw = || host(context.next_random());
        probabilities
            .iter()
            .enumerate()
            .map(|(point, row)| {
                if self.space.allowed_options[point].len() < 2 {
                    return Ok(SampledPair { active: self.space.allowed_options[point][0], other: None });
                }
                let first = draw_weighted(&row.probabilities, draw()?);
                let mut rest = row.probabilities.clone();
                rest[first] = 0.0;
                let second = draw_weighted(&rest, draw()?);
                let pair = [first, second];
                let active = draw_weighted(&pair.map(|option| row.probabilities[option]), draw()?);
                Ok(SampledPair { active: pair[active] as u32, other: Some(pair[1 - active] as u32) })
            })
            .collect()
    }

    /// The host's option costs as `[choice points, max_options]` on the device, fetched once.
    fn cost_table(&mut self, context: &HostContextRef<'_>) -> Result<Tensor, PluginError> {
        if let Some(costs) = &self.costs {
            return Ok(costs.shallow_clone());
        }
        let name = Self::NAME;
        let offered = host(context.option_costs())?.into_option().ok_or_else(|| {
            PluginError::invalid_config(format!(
                "{name}: `cost_weight` is {} but the run offers no option costs: set `[search] option_cost = \"flops\"` (or \"latency\" with a `latency_table`), or `cost_weight = 0`",
                self.config.cost_weight
            ))
        })?;
        if offered.values.len() != self.space.choice_points {
            return Err(PluginError::invalid_input(format!(
                "{name}: the host's {} costs have {} rows for {} choice points",
                offered.metric,
                offered.values.len(),
                self.space.choice_points
            )));
        }
        let mut flat = vec![0f32; self.space.choice_points * self.space.max_options];
        for (point, row) in offered.values.iter().enumerate() {
            if row.len() > self.space.max_options {
                return Err(PluginError::invalid_input(format!("{name}: choice point {point} has {} costs, more than its options", row.len())));
            }
            for (option, &value) in row.iter().enumerate() {
                flat[point * self.space.max_options + option] = value as f32;
            }
        }
        let costs = Tensor::f_from_slice(&flat)?.f_view_as(&self.alpha)?.f_to_device(self.space.device)?;
        self.costs = Some(costs.shallow_clone());
        Ok(costs)
    }

    /// `E[cost] = fixed_cost + Σ p_i · cost_i` with p = softmax(α) within the mask (keeps α's graph).
    fn expected_cost(&mut self, context: &HostContextRef<'_>) -> Result<Tensor, PluginError> {
        let costs = self.cost_table(context)?;
        let probabilities = self.space.masked_softmax(&self.alpha)?;
        Ok(probabilities.f_mul(&costs)?.f_sum(Kind::Float)?.f_add_scalar(self.config.fixed_cost)?)
    }

    /// The architecture loss: the cross-entropy with the expected-cost term of `cost_form`.
    fn with_cost_term(&mut self, context: &HostContextRef<'_>, cross_entropy: &Tensor) -> Result<Tensor, PluginError> {
        let weight = self.config.cost_weight;
        if weight == 0.0 {
            return Ok(cross_entropy.shallow_clone());
        }
        let expected = self.expected_cost(context)?;
        host(context.log_metric("proxylessnas/expected_cost".into(), expected.f_double_value(&[])?))?;
        let target = self.config.cost_target;
        Ok(match self.config.cost_form {
            CostForm::Multiplicative => {
                // log E[cost] must stay positive for the power: E[cost] ≥ 1 + ε.
                let ratio = expected.f_clamp_min(1.0 + 1e-6)?.f_log()?.f_div_scalar(target.ln())?;
                cross_entropy.f_mul(&ratio.f_pow_tensor_scalar(weight)?)?
            }
            CostForm::Additive => cross_entropy.f_add(&expected.f_sub_scalar(target)?.f_div_scalar(target)?.f_mul_scalar(weight)?)?,
        })
    }

    /// One Adam step of α (PyTorch's `Adam`, no weight decay) with moments kept in the state.
    fn adam_step(&mut self, gradient: &Tensor) -> Result<(), PluginError> {
        let _no_grad = tch::no_grad_guard();
        let size = self.space.choice_points * self.space.max_options;
        let gradient = Vec::<f32>::try_from(&gradient.f_to_device(tch::Device::Cpu)?.f_flatten(0, -1)?)?;
        let state = &mut self.state;
        if state.first_moment.is_empty() {
            state.first_moment = vec![0.0; size];
            state.second_moment = vec![0.0; size];
        }
        state.adam_steps += 1;
        let (beta1, beta2) = (self.config.arch_beta1, self.config.arch_beta2);
        let correction1 = 1.0 - beta1.powi(state.adam_steps as i32);
        let correction2 = 1.0 - beta2.powi(state.adam_steps as i32);
        let mut update = vec![0f32; size];
        for index in 0..size {
            let g = f64::from(gradient[index]);
            let m = beta1 * f64::from(state.first_moment[index]) + (1.0 - beta1) * g;
            let v = beta2 * f64::from(state.second_moment[index]) + (1.0 - beta2) * g * g;
            state.first_moment[index] = m as f32;
            state.second_moment[index] = v as f32;
            update[index] = (self.config.arch_lr * (m / correction1) / ((v / correction2).sqrt() + self.config.arch_eps)) as f32;
        }
        let update = self.space.mask_gradient(&Tensor::f_from_slice(&update)?.f_view_as(&self.alpha)?.f_to_device(self.space.device)?)?;
        let _ = self.alpha.shallow_clone().f_sub_(&update)?;
        Ok(())
    }

    /// Shifts each sampled pair's α by one offset so that the pair's summed exp is what it was
    /// before the step: the other options' probabilities are unchanged (the reference's
    /// `rescale_updated_arch_param`).
    fn rescale(&self, pairs: &[SampledPair], before: &Tensor) -> Result<(), PluginError> {
        let _no_grad = tch::no_grad_guard();
        let old = Vec::<Vec<f32>>::try_from(&before.f_to_device(tch::Device::Cpu)?)?;
        let mut new = Vec::<Vec<f32>>::try_from(&self.alpha.f_detach()?.f_to_device(tch::Device::Cpu)?)?;
        for (point, pair) in pairs.iter().enumerate() {
            let Some(other) = pair.other else { continue };
            let options = [pair.active as usize, other as usize];
            let log_sum_exp = |row: &[f32]| {
                let largest = options.iter().map(|&o| f64::from(row[o])).fold(f64::NEG_INFINITY, f64::max);
                largest + options.iter().map(|&o| (f64::from(row[o]) - largest).exp()).sum::<f64>().ln()
            };
            let offset = log_sum_exp(&new[point]) - log_sum_exp(&old[point]);
            for option in options {
                new[point][option] = (f64::from(new[point][option]) - offset) as f32;
            }
        }
        let flat: Vec<f32> = new.into_iter().flatten().collect();
        let rescaled = Tensor::f_from_slice(&flat)?.f_view_as(&self.alpha)?.f_to_device(self.space.device)?;
        self.alpha.shallow_clone().f_copy_(&rescaled)?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "proxylessnas_tests.rs"]
mod tests;
