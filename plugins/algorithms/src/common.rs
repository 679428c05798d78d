//! What every algorithm of this library shares: the sub-supernet's mask on the device,
//! masked softmax and Gumbel sampling, the host's forward pass turned into a loss, host-side
//! uniform draws, the linear temperature schedule and writing α's gradient.
//!
//! Nothing here knows any particular search space: everything is driven by the
//! [`AlgorithmSetup`] (choice points, option counts, mask) alone.

use serde::de::DeserializeOwned;
use serde::Serialize;
use splitnas_plugin_api::{
    AlgorithmSetup, Architecture, Batch, HostContextRef, Mask, OwnedTensor, PluginError, PluginResult, TensorRef, TrainingProgress, WeightSample,
    WeightStepLoss,
};
use tch::{Kind, Reduction, Tensor};

/// Turns a host call's ABI result into a `Result`, so that `?` works on it.
pub(crate) fn host<T>(result: PluginResult<T>) -> Result<T, PluginError> {
    result.into_result()
}

/// The sub-supernet an algorithm searches: its mask, host-side and as a tensor on the device.
pub(crate) struct MaskedSpace {
    /// Allowed options per choice point, host-side (for `active` masks and sampling).
    pub mask: Mask,
    /// The allowed options of each choice point, in increasing order.
    pub allowed_options: Vec<Vec<u32>>,
    /// `[choice points, max_options]` bool on the device: true where an option is allowed.
    allowed: Tensor,
    pub device: tch::Device,
    pub choice_points: usize,
    pub max_options: usize,
}

impl MaskedSpace {
    /// Checks that the mask fits the space and leaves every choice point at least one option.
    pub fn new(component: &str, setup: &AlgorithmSetup) -> Result<Self, PluginError> {
        let space = &setup.space;
        let choice_points = space.num_choice_points();
        let max_options = space.max_options as usize;
        if choice_points == 0 || max_options == 0 {
            return Err(PluginError::invalid_input(format!(
                "{component}: the space `{}` has no choice points or no options ({choice_points} choice points, max_options {max_options})",
                space.name
            )));
        }
        if setup.mask.rows.len() != choice_points {
            return Err(PluginError::invalid_input(format!(
                "{component}: the mask has {} rows but the space `{}` has {choice_points} choice points",
                setup.mask.rows.len(),
                space.name
            )));
        }
        let mut allowed_options = Vec::with_capacity(choice_points);
        for (point, (row, info)) in setup.mask.rows.iter().zip(space.choice_points.iter()).enumerate() {
            if row.len() != max_options {
                return Err(PluginError::invalid_input(format!(
                    "{component}: mask row {point} (`{}`) has {} entries, expected max_options = {max_options}",
                    info.name,
                    row.len()
                )));
            }
            let allowed = setup.mask.allowed(point);
            if allowed.is_empty() {
                return Err(PluginError::invalid_input(format!(
                    "{component}: the mask allows no option at choice point {point} (`{}`); every choice point needs at least one",
                    info.name
                )));
            }
            if let Some(&beyond) = allowed.iter().find(|&&option| option as usize >= info.options.len()) {
                return Err(PluginError::invalid_input(format!(
                    "{component}: the mask allows option {beyond} at choice point {point} (`{}`), which has only {} options",
                    info.name,
                    info.options.len()
                )));
            }
            allowed_options.push(allowed);
        }
        let device = setup.device.to_tch();
        let flat: Vec<bool> = setup.mask.rows.iter().flat_map(|row| row.iter().copied()).collect();
        let allowed = Tensor::f_from_slice(&flat)?.f_view([choice_points as i64, max_options as i64])?.f_to_device(device)?;
        Ok(MaskedSpace { mask: setup.mask.clone(), allowed_options, allowed, device, choice_points, max_options })
    }

    fn shape(&self) -> [i64; 2] {
        [self.choice_points as i64, self.max_options as i64]
    }

    /// Fresh architecture parameters: `mean + std · N(0, 1)` on the allowed entries and 0 on
    /// the others (they never matter, but zeros keep dumps of α readable), as a leaf tensor
    /// that requires grad. Drawn from libtorch's generator, which the host seeds.
    pub fn new_alpha(&self, mean: f64, std: f64) -> Result<Tensor, PluginError> {
        let _no_grad = tch::no_grad_guard();
        let noise = Tensor::f_randn(self.shape(), (Kind::Float, self.device))?;
        let alpha = noise.f_mul_scalar(std)?.f_add_scalar(mean)?.f_mul(&self.allowed.f_to_kind(Kind::Float)?)?;
        Ok(alpha.set_requires_grad(true))
    }

    /// `logits` with −inf on the disallowed options, so that any softmax gives them exactly 0
    /// (and no gradient flows back to them).
    pub fn masked_logits(&self, logits: &Tensor) -> Result<Tensor, PluginError> {
        Ok(logits.f_masked_fill(&self.allowed.f_logical_not()?, f64::NEG_INFINITY)?)
    }

    /// softmax over the allowed options of each choice point; exactly 0 elsewhere. A row with a
    /// single allowed option is exactly one-hot. Keeps the autograd graph of `alpha`.
    pub fn masked_softmax(&self, alpha: &Tensor) -> Result<Tensor, PluginError> {
        Ok(self.masked_logits(alpha)?.f_softmax(-1, Kind::Float)?)
    }

    /// A relaxed Gumbel-softmax sample `softmax((α + g) / τ)` over the allowed options, keeping
    /// the graph of `alpha` (SNAS trains α through it).
    pub fn gumbel_softmax(&self, alpha: &Tensor, temperature: f64) -> Result<Tensor, PluginError> {
        let noise = gumbel_noise(alpha)?;
        let perturbed = self.masked_logits(alpha)?.f_add(&noise)?;
        Ok(perturbed.f_div_scalar(temperature)?.f_softmax(-1, Kind::Float)?)
    }

    /// A hard Gumbel-softmax sample with the straight-through estimator: its value is exactly
    /// one-hot (the argmax of the relaxed sample), its gradient that of the relaxed sample.
    /// Returns the weights and the sampled option of each choice point (`[choice points]` int64,
    /// on the device).
    pub fn gumbel_hard(&self, alpha: &Tensor, temperature: f64) -> Result<(Tensor, Tensor), PluginError> {
        let soft = self.gumbel_softmax(alpha, temperature)?;
        let choices = soft.f_argmax(-1, false)?;
        let hard = self.one_hot(&choices)?;
        // `soft - soft.detach()` is exactly 0 in value, so the forward sees an exact one-hot,
        // while the backward sees d soft / d α (the straight-through estimator of GDAS).
        let straight_through = soft.f_sub(&soft.f_detach()?)?;
        Ok((hard.f_add(&straight_through)?, choices))
    }

    /// One-hot weights `[choice points, max_options]` from per-choice-point option indices on
    /// the device.
    pub fn one_hot(&self, choices: &Tensor) -> Result<Tensor, PluginError> {
        Ok(choices.f_one_hot(self.max_options as i64)?.f_to_kind(Kind::Float)?)
    }

    /// One-hot weights for host-side choices. On a GPU the upload goes through pinned memory
    /// without blocking, so that drawing a path never waits for queued GPU work (a copy from
    /// pageable memory may synchronise with the stream).
    pub fn one_hot_from_host(&self, choices: &[u32]) -> Result<Tensor, PluginError> {
        let mut flat = vec![0f32; self.choice_points * self.max_options];
        for (point, &option) in choices.iter().enumerate() {
            flat[point * self.max_options + option as usize] = 1.0;
        }
        let host_weights = Tensor::f_from_slice(&flat)?.f_view(self.shape())?;
        Ok(match self.device {
            tch::Device::Cpu => host_weights,
            // `_pin_memory`, not `pin_memory`: tch can only call the latter with a device, which
            // libtorch 2.x answers with a deprecation warning on every call. Libtorch's pinned
            // allocator keeps the buffer alive until the asynchronous copy has finished. If
            // pinning is unavailable, a plain (possibly synchronising) copy still works.
            device => match host_weights.f_internal_pin_memory(device) {
                Ok(pinned) => pinned.f_to_device_(device, Kind::Float, true, false)?,
                Err(_) => host_weights.f_to_device(device)?,
            },
        })
    }

    /// The `active` mask of a single path: only the chosen option of each choice point.
    pub fn single_path_active(&self, choices: &[u32]) -> Mask {
        Mask { rows: choices.iter().map(|&option| (0..self.max_options).map(|k| k == option as usize).collect()).collect() }
    }

    /// Copies per-choice-point option indices from the device (one small synchronising copy).
    pub fn choices_to_host(&self, choices: &Tensor) -> Result<Vec<u32>, PluginError> {
        let indices = Vec::<i64>::try_from(&choices.f_to_device(tch::Device::Cpu)?)?;
        indices
            .into_iter()
            .enumerate()
            .map(|(point, option)| {
                if option >= 0 && self.mask.is_allowed(point, option as usize) {
                    Ok(option as u32)
                } else {
                    // Only possible if α or the noise held NaN: say so rather than run a disallowed op.
                    Err(PluginError::other(format!(
                        "sampled option {option} at choice point {point} is not allowed by the mask (NaN in the architecture parameters?)"
                    )))
                }
            })
            .collect()
    }

    /// The most likely allowed option of every choice point, as a one-hot single path (the
    /// evaluation sample of algorithms that sample paths from α).
    pub fn most_likely_path(&self, alpha: &Tensor) -> Result<WeightSample, PluginError> {
        let _no_grad = tch::no_grad_guard();
        let choices = self.masked_logits(alpha)?.f_argmax(-1, false)?;
        let active = self.single_path_active(&self.choices_to_host(&choices)?);
        Ok(WeightSample { weights: OwnedTensor::new(self.one_hot(&choices)?), active })
    }

    /// The architecture a space derives from α: the masked softmax, so that spaces comparing
    /// weights across choice points (DARTS: top-2 inputs per node) see probabilities, as in
    /// the DARTS genotype code; argmax-per-row spaces get the same answer as from α itself.
    pub fn derive_from_alpha(&self, context: &HostContextRef<'_>, alpha: &Tensor) -> Result<Architecture, PluginError> {
        let _no_grad = tch::no_grad_guard();
        let probabilities = self.masked_softmax(alpha)?;
        host(context.derive(TensorRef::new(&probabilities)))
    }

    /// Zeroes the gradient on the disallowed entries (a guard: the masked softmax already
    /// gives them none, but α.grad must never nudge an option the leaf cannot use).
    pub fn mask_gradient(&self, gradient: &Tensor) -> Result<Tensor, PluginError> {
        Ok(gradient.f_mul(&self.allowed.f_to_kind(gradient.kind())?)?)
    }
}

/// Standard Gumbel noise `−log(E)`, `E ~ Exp(1)`, shaped like `like` (as PyTorch's
/// `gumbel_softmax` draws it). `E` is kept away from 0 so the noise is always finite.
fn gumbel_noise(like: &Tensor) -> Result<Tensor, PluginError> {
    let _no_grad = tch::no_grad_guard();
    let mut exponential = Tensor::f_empty_like(like)?;
    let _ = exponential.f_exponential_(1.0)?;
    Ok(exponential.f_clamp_min(f64::from(f32::MIN_POSITIVE))?.f_log()?.f_neg()?)
}

/// The supernet's logits for `images` mixed by `weights`.
pub(crate) fn forward(
    context: &HostContextRef<'_>,
    images: TensorRef<'_>,
    weights: &Tensor,
    active: &Mask,
    train: bool,
) -> Result<Tensor, PluginError> {
    let logits = host(context.forward(images, TensorRef::new(weights), active, train))?;
    Ok(logits.into_tensor())
}

/// Mean cross-entropy of the supernet on `batch` with the given mixing weights.
pub(crate) fn cross_entropy(
    context: &HostContextRef<'_>,
    batch: &Batch,
    weights: &Tensor,
    active: &Mask,
    train: bool,
) -> Result<Tensor, PluginError> {
    let logits = forward(context, batch.images.as_ref(), weights, active, train)?;
    let labels = batch.labels.tensor();
    Ok(logits.f_cross_entropy_loss::<Tensor>(&labels, None, Reduction::Mean, -100, 0.0)?)
}

/// The mean cross-entropy of a weight step: label smoothing ε as the host says (ABI 1.3,
/// `[search] label_smoothing`; 0 from older hosts), exactly PyTorch's
/// `CrossEntropyLoss(label_smoothing=ε)`. Architecture steps use [`cross_entropy`].
pub(crate) fn training_cross_entropy(context: &HostContextRef<'_>, batch: &Batch, weights: &Tensor, active: &Mask) -> Result<Tensor, PluginError> {
    let label_smoothing = host(context.label_smoothing())?;
    let logits = forward(context, batch.images.as_ref(), weights, active, true)?;
    Ok(logits.f_cross_entropy_loss::<Tensor>(&batch.labels.tensor(), None, Reduction::Mean, -100, label_smoothing)?)
}

/// The weight step of a sampled path: the supernet's training loss on it, α untouched (the
/// sample carries no gradient to α).
pub(crate) fn sampled_path_weight_step(context: &HostContextRef<'_>, batch: &Batch, sample: &WeightSample) -> Result<WeightStepLoss, PluginError> {
    let loss = training_cross_entropy(context, batch, &sample.weights.tensor(), &sample.active)?;
    Ok(WeightStepLoss { loss: OwnedTensor::new(loss), trains_architecture: false })
}

/// Uniform in `0..bound` from the host's seeded generator; rejection sampling avoids modulo bias.
pub(crate) fn uniform_below(context: &HostContextRef<'_>, bound: u64) -> Result<u64, PluginError> {
    debug_assert!(bound > 0);
    let accept_below = u64::MAX - u64::MAX % bound;
    loop {
        let value = host(context.next_random())?;
        if value < accept_below {
            return Ok(value % bound);
        }
    }
}

/// Linear annealing from `start` at the first epoch to `end` at the last one, as the SNAS and
/// GDAS reference code does (`τ_max − (τ_max − τ_min) · epoch / (epochs − 1)`). `epoch` counts
/// from 0; a run of one epoch stays at `start`.
pub(crate) fn linear_temperature(start: f64, end: f64, progress: TrainingProgress) -> f64 {
    if progress.total_epochs <= 1 {
        return start;
    }
    let fraction = (f64::from(progress.epoch) / f64::from(progress.total_epochs - 1)).clamp(0.0, 1.0);
    start - (start - end) * fraction
}

/// Checks a temperature schedule's bounds.
pub(crate) fn check_temperatures(component: &str, tau_max: f64, tau_min: f64) -> Result<(), PluginError> {
    if !(tau_min.is_finite() && tau_max.is_finite() && tau_min > 0.0 && tau_max >= tau_min) {
        return Err(PluginError::invalid_config(format!(
            "{component}: the temperature must anneal between positive finite bounds with tau_max >= tau_min (got tau_max {tau_max}, tau_min {tau_min})"
        )));
    }
    Ok(())
}

/// A restored temperature must be usable as a divisor.
pub(crate) fn check_restored_temperature(component: &str, temperature: f64) -> Result<(), PluginError> {
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(PluginError::invalid_input(format!("{component}: the checkpointed temperature must be finite and > 0 (got {temperature})")));
    }
    Ok(())
}

/// Checks a standard deviation or learning rate given in a configuration.
pub(crate) fn check_non_negative(component: &str, key: &str, value: f64) -> Result<(), PluginError> {
    if !(value.is_finite() && value >= 0.0) {
        return Err(PluginError::invalid_config(format!("{component}: `{key}` must be a finite number >= 0 (got {value})")));
    }
    Ok(())
}

/// Sets `alpha.grad` to `gradient` (replacing whatever was there), for algorithms that compute
/// α's gradient themselves. tch has no setter for `.grad`: an existing gradient is overwritten
/// in place; a missing one is created by backpropagating `Σ α ⊙ gradient`, whose gradient with
/// respect to α is exactly `gradient`.
pub(crate) fn write_gradient(alpha: &Tensor, gradient: &Tensor) -> Result<(), PluginError> {
    let gradient = gradient.f_detach()?;
    let mut existing = alpha.f_grad()?;
    if existing.defined() {
        let _no_grad = tch::no_grad_guard();
        existing.f_copy_(&gradient)?;
    } else {
        alpha.f_mul(&gradient)?.f_sum(Kind::Float)?.f_backward()?;
    }
    Ok(())
}

/// Parses checkpointed algorithm state, naming the component in the error.
pub(crate) fn parse_state<S: DeserializeOwned>(component: &str, text: &str) -> Result<S, PluginError> {
    serde_json::from_str(text)
        .map_err(|error| PluginError::invalid_input(format!("{component}: cannot restore the checkpointed state `{text}`: {error}")))
}

/// Serialises algorithm state for a checkpoint.
pub(crate) fn state_to_json<S: Serialize>(component: &str, state: &S) -> Result<String, PluginError> {
    serde_json::to_string(state).map_err(|error| PluginError::other(format!("{component}: cannot serialise the state: {error}")))
}

/// State of algorithms whose only state is the temperature (SNAS, GDAS). α itself is
/// checkpointed by the host.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TemperatureState {
    pub temperature: f64,
}

/// State of algorithms with nothing but tensors to checkpoint (DARTS, RSPS): `{}`.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoState {}

#[cfg(test)]
mod tests {
    use super::*;
    use splitnas_plugin_testkit::host::{rows, test_setup};

    fn test_space() -> MaskedSpace {
        MaskedSpace::new("test", &test_setup()).unwrap()
    }

    fn assert_respects_mask(space: &MaskedSpace, weights: &[Vec<f32>]) {
        for (point, row) in weights.iter().enumerate() {
            for (option, &weight) in row.iter().enumerate() {
                if !space.mask.is_allowed(point, option) {
                    assert_eq!(weight, 0.0, "disallowed option {option} of choice point {point} has weight {weight}");
                }
            }
        }
    }

    #[test]
    fn masked_softmax_is_exactly_zero_on_disallowed_options_and_one_hot_on_single_option_rows() {
        let space = test_space();
        let alpha = Tensor::randn([4, 4], (Kind::Float, tch::Device::Cpu)) * 3.0;
        let probabilities = rows(&space.masked_softmax(&alpha).unwrap());
        assert_respects_mask(&space, &probabilities);
        for (point, row) in probabilities.iter().enumerate() {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6, "row {point} sums to 1");
            for option in space.mask.allowed(point) {
                assert!(row[option as usize] > 0.0);
            }
        }
        assert_eq!(probabilities[2], vec![0.0, 1.0, 0.0, 0.0], "the single allowed option gets all the weight");
    }

    #[test]
    fn relaxed_gumbel_samples_respect_the_mask_and_vary() {
        let space = test_space();
        let alpha = Tensor::zeros([4, 4], (Kind::Float, tch::Device::Cpu));
        let first = rows(&space.gumbel_softmax(&alpha, 1.0).unwrap());
        let second = rows(&space.gumbel_softmax(&alpha, 1.0).unwrap());
        assert_respects_mask(&space, &first);
        assert_respects_mask(&space, &second);
        assert_ne!(first[0], second[0], "fresh noise every sample");
        assert_eq!(first[2], vec![0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn hard_gumbel_samples_are_exact_one_hot_and_pass_the_relaxed_gradient_through() {
        let space = test_space();
        let alpha = Tensor::zeros([4, 4], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let (weights, choices) = space.gumbel_hard(&alpha, 1.0).unwrap();
        let choices = space.choices_to_host(&choices).unwrap();
        let values = rows(&weights);
        for (point, row) in values.iter().enumerate() {
            let expected: Vec<f32> = (0..4).map(|option| if option == choices[point] as usize { 1.0 } else { 0.0 }).collect();
            assert_eq!(row, &expected, "choice point {point}: exactly one-hot at the sampled option");
            assert!(space.mask.is_allowed(point, choices[point] as usize));
        }
        assert_eq!(choices[2], 1, "the single allowed option is always sampled");
        // Any loss that weights the options differently must reach every allowed α entry of a
        // row with a choice, and no other entry.
        let option_values = Tensor::from_slice(&[1f32, 2.0, 3.0, 4.0]);
        let loss = (&weights * &option_values).sum(Kind::Float);
        let gradient = rows(&Tensor::run_backward(&[loss], &[&alpha], false, false)[0]);
        for (point, row) in gradient.iter().enumerate() {
            for (option, &value) in row.iter().enumerate() {
                let should_move = space.mask.is_allowed(point, option) && space.mask.count(point) > 1;
                assert_eq!(value != 0.0, should_move, "gradient at ({point}, {option}) = {value}");
            }
        }
    }

    #[test]
    fn temperature_anneals_linearly_from_the_first_to_the_last_epoch() {
        let at = |epoch, total_epochs| linear_temperature(1.0, 0.1, TrainingProgress { epoch, total_epochs });
        assert_eq!(at(0, 10), 1.0);
        assert!((at(9, 10) - 0.1).abs() < 1e-12);
        assert!((at(3, 10) - 0.7).abs() < 1e-12);
        assert_eq!(at(0, 1), 1.0, "a single epoch stays at the start");
        assert!((at(20, 10) - 0.1).abs() < 1e-12, "past the end stays at the end");
    }

    #[test]
    fn setups_whose_mask_does_not_fit_the_space_are_rejected() {
        let error_for = |edit: &dyn Fn(&mut AlgorithmSetup)| {
            let mut setup = test_setup();
            edit(&mut setup);
            MaskedSpace::new("test", &setup).err().expect("rejected").message.to_string()
        };
        assert!(error_for(&|setup| {
            setup.mask.rows.pop();
        })
        .contains("3 rows"));
        assert!(error_for(&|setup| setup.mask.rows[1] = vec![false; 4].into()).contains("no option at choice point 1"));
        assert!(error_for(&|setup| setup.mask.rows[2][3] = true).contains("has only 3 options"));
        assert!(error_for(&|setup| setup.mask.rows[0] = vec![true; 5].into()).contains("5 entries"));
    }

    #[test]
    fn write_gradient_creates_a_missing_gradient_and_overwrites_an_existing_one() {
        let alpha = Tensor::zeros([2, 2], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let first = Tensor::from_slice(&[1f32, -2.0, 3.0, 0.5]).view([2, 2]);
        write_gradient(&alpha, &first).unwrap();
        assert!(alpha.grad().equal(&first));
        let second = Tensor::from_slice(&[0.25f32, 0.0, -1.0, 4.0]).view([2, 2]);
        write_gradient(&alpha, &second).unwrap();
        assert!(alpha.grad().equal(&second), "replaced, not accumulated");
    }

    #[test]
    fn single_path_uploads_match_their_active_masks() {
        let space = test_space();
        let choices = [3, 2, 1, 0];
        let weights = rows(&space.one_hot_from_host(&choices).unwrap());
        let active = space.single_path_active(&choices);
        for (point, row) in weights.iter().enumerate() {
            for (option, &weight) in row.iter().enumerate() {
                assert_eq!(weight == 1.0, active.rows[point][option]);
            }
        }
    }
}
