//! DARTS (Liu et al., ICLR 2019): a continuous relaxation, softmax(α) mixing every allowed
//! option, with α trained on the validation split — first order (the validation loss at the
//! current weights) or second order (at the weights after one virtual SGD step, with the
//! Hessian-vector product approximated by finite differences).

use serde::Deserialize;
use serde_json::json;
use splitnas_plugin_api::author::{parse_config, AlgorithmPlugin, Component};
use splitnas_plugin_api::{
    AlgorithmSetup, Architecture, ArchitectureStep, Batch, HostContextRef, NamedTensor, OwnedTensor, PluginError, WeightSample, WeightStepLoss,
};
use tch::{Kind, Tensor};

use crate::common::{
    check_non_negative, cross_entropy, host, parse_state, state_to_json, training_cross_entropy, write_gradient, MaskedSpace, NoState,
};

pub struct Darts {
    config: DartsConfig,
    space: MaskedSpace,
    /// `[choice points, max_options]`, a leaf that requires grad. Never replaced: the host holds
    /// handles to it (optimizer, checkpoints) and copies into it on resume.
    alpha: Tensor,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DartsConfig {
    /// α starts at `alpha_init_std · N(0, 1)` (the NB201 reference: 1e-3).
    alpha_init_std: f64,
    /// Use the unrolled (second-order) architecture gradient.
    second_order: bool,
    /// ξ, the learning rate of the virtual weight step of the second-order gradient. DARTS
    /// uses the weights' current learning rate; the host does not pass it, so it is fixed here.
    unrolled_lr: f64,
    /// ε · ‖∇w' L_val‖ = this: the finite-difference radius of the Hessian-vector product (DARTS: 0.01).
    finite_difference_radius: f64,
}

impl Component for Darts {
    const NAME: &'static str = "darts";
    const DESCRIPTION: &'static str = "DARTS: softmax(α) mixture, α trained on validation batches (first or second order)";
    fn default_config() -> serde_json::Value {
        json!({
            "alpha_init_std": 1e-3,
            "second_order": false,
            "unrolled_lr": 0.025,
            "finite_difference_radius": 0.01,
        })
    }
}

impl AlgorithmPlugin for Darts {
    fn create(config: &str, setup: &AlgorithmSetup) -> Result<Self, PluginError> {
        let config: DartsConfig = parse_config(Self::NAME, config)?;
        check_non_negative(Self::NAME, "alpha_init_std", config.alpha_init_std)?;
        check_non_negative(Self::NAME, "unrolled_lr", config.unrolled_lr)?;
        if !(config.finite_difference_radius.is_finite() && config.finite_difference_radius > 0.0) {
            return Err(PluginError::invalid_config(format!(
                "darts: `finite_difference_radius` must be a finite number > 0 (got {})",
                config.finite_difference_radius
            )));
        }
        let space = MaskedSpace::new(Self::NAME, setup)?;
        let alpha = space.new_alpha(0.0, config.alpha_init_std)?;
        Ok(Darts { config, space, alpha })
    }

    fn architecture_parameters(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(vec![NamedTensor::share("alpha", &self.alpha)])
    }

    fn weight_step(&mut self, context: &HostContextRef<'_>, batch: &Batch) -> Result<WeightStepLoss, PluginError> {
        // α is detached: the weight step trains the supernet only.
        let weights = self.detached_probabilities()?;
        let loss = training_cross_entropy(context, batch, &weights, &self.space.mask)?;
        Ok(WeightStepLoss { loss: OwnedTensor::new(loss), trains_architecture: false })
    }

    fn architecture_step(&mut self, context: &HostContextRef<'_>, valid_batch: &Batch, train_batch: &Batch) -> Result<ArchitectureStep, PluginError> {
        if self.config.second_order {
            self.write_unrolled_gradient(context, valid_batch, train_batch)?;
            return Ok(ArchitectureStep::GradientsWritten);
        }
        let weights = self.space.masked_softmax(&self.alpha)?;
        let loss = cross_entropy(context, valid_batch, &weights, &self.space.mask, true)?;
        Ok(ArchitectureStep::Loss(OwnedTensor::new(loss)))
    }

    fn scoring_sample(&mut self, _context: &HostContextRef<'_>) -> Result<WeightSample, PluginError> {
        Ok(WeightSample { weights: OwnedTensor::new(self.detached_probabilities()?), active: self.space.mask.clone() })
    }

    fn evaluation_sample(&mut self, _context: &HostContextRef<'_>) -> Result<WeightSample, PluginError> {
        Ok(WeightSample { weights: OwnedTensor::new(self.detached_probabilities()?), active: self.space.mask.clone() })
    }

    fn derive(&mut self, context: &HostContextRef<'_>) -> Result<Architecture, PluginError> {
        self.space.derive_from_alpha(context, &self.alpha)
    }

    fn state_json(&self) -> Result<String, PluginError> {
        state_to_json(Self::NAME, &NoState {})
    }

    fn load_state_json(&mut self, state: &str) -> Result<(), PluginError> {
        let NoState {} = parse_state(Self::NAME, state)?;
        Ok(())
    }
}

impl Darts {
    fn detached_probabilities(&self) -> Result<Tensor, PluginError> {
        let _no_grad = tch::no_grad_guard();
        self.space.masked_softmax(&self.alpha)
    }

    /// The second-order DARTS gradient, written to α.grad:
    ///
    /// ```text
    /// w' = w − ξ ∇w L_train(w, α)
    /// g  = ∇α L_val(w', α) − ξ (∇α L_train(w⁺, α) − ∇α L_train(w⁻, α)) / 2ε
    /// w± = w ± ε ∇w' L_val(w', α),   ε = radius / ‖∇w' L_val(w', α)‖
    /// ```
    ///
    /// The supernet's parameters are moved in place and always restored bit for bit, even
    /// when a step fails halfway. Unlike the DARTS code, the virtual step is plain gradient
    /// descent: the host's momentum and weight decay are not visible through the context.
    /// The four forward passes run in training mode, so BN running statistics move four times.
    fn write_unrolled_gradient(&self, context: &HostContextRef<'_>, valid_batch: &Batch, train_batch: &Batch) -> Result<(), PluginError> {
        let parameters: Vec<Tensor> = host(context.supernet_parameters())?
            .into_iter()
            .map(|named| named.tensor.into_tensor())
            .filter(|parameter| parameter.requires_grad())
            .collect();
        if parameters.is_empty() {
            return Err(PluginError::invalid_input("darts: second-order DARTS needs the supernet's trainable parameters, but the host listed none"));
        }
        let originals: Vec<Tensor> = {
            let _no_grad = tch::no_grad_guard();
            parameters.iter().map(snapshot).collect::<Result<_, _>>()?
        };
        let gradient = self.unrolled_gradient(context, valid_batch, train_batch, &parameters, &originals);
        // Restore before reporting any error: a half-moved supernet must never survive a step.
        set_parameters(&parameters, &originals)?;
        write_gradient(&self.alpha, &self.space.mask_gradient(&gradient?)?)
    }

    fn unrolled_gradient(
        &self,
        context: &HostContextRef<'_>,
        valid_batch: &Batch,
        train_batch: &Batch,
        parameters: &[Tensor],
        originals: &[Tensor],
    ) -> Result<Tensor, PluginError> {
        let xi = self.config.unrolled_lr;
        let mask = &self.space.mask;

        // Virtual step w' = w − ξ ∇w L_train(w, α); α does not need to be in this graph.
        let train_loss = cross_entropy(context, train_batch, &self.detached_probabilities()?, mask, true)?;
        let weight_gradients = gradients_or_zero(&train_loss, parameters)?;
        let unrolled: Vec<Tensor> = originals
            .iter()
            .zip(&weight_gradients)
            .map(|(original, gradient)| original.f_sub(&gradient.f_mul_scalar(xi)?))
            .collect::<Result<_, _>>()?;
        set_parameters(parameters, &unrolled)?;

        // ∇α L_val(w', α) and ∇w' L_val(w', α) from one backward pass.
        let valid_loss = cross_entropy(context, valid_batch, &self.space.masked_softmax(&self.alpha)?, mask, true)?;
        let mut inputs = vec![self.alpha.shallow_clone()];
        inputs.extend(parameters.iter().map(Tensor::shallow_clone));
        let mut valid_gradients = gradients_or_zero(&valid_loss, &inputs)?;
        let unrolled_weight_gradients = valid_gradients.split_off(1);
        let alpha_gradient = valid_gradients.pop().expect("one gradient per input");

        // ε = radius / ‖∇w' L_val‖, kept on the device (no sync); a zero gradient gives a zero
        // Hessian term instead of a division by zero.
        let squared_norm = unrolled_weight_gradients
            .iter()
            .map(|gradient| gradient.f_square()?.f_sum(Kind::Float))
            .try_fold(Tensor::f_zeros([], (Kind::Float, self.space.device))?, |total, term| total.f_add(&term?))?;
        let epsilon = squared_norm.f_sqrt()?.f_clamp_min(1e-12)?.f_reciprocal()?.f_mul_scalar(self.config.finite_difference_radius)?;

        let alpha_gradient_at = |sign: f64| -> Result<Tensor, PluginError> {
            let shifted: Vec<Tensor> = originals
                .iter()
                .zip(&unrolled_weight_gradients)
                .map(|(original, direction)| original.f_add(&direction.f_mul(&epsilon)?.f_mul_scalar(sign)?))
                .collect::<Result<_, _>>()?;
            set_parameters(parameters, &shifted)?;
            let loss = cross_entropy(context, train_batch, &self.space.masked_softmax(&self.alpha)?, mask, true)?;
            Ok(gradients_or_zero(&loss, std::slice::from_ref(&self.alpha))?.remove(0))
        };
        let alpha_gradient_plus = alpha_gradient_at(1.0)?;
        let alpha_gradient_minus = alpha_gradient_at(-1.0)?;
        let hessian_term = alpha_gradient_plus.f_sub(&alpha_gradient_minus)?.f_div(&epsilon.f_mul_scalar(2.0)?)?;
        Ok(alpha_gradient.f_sub(&hessian_term.f_mul_scalar(xi)?)?)
    }
}

/// Gradients of `loss` with respect to `inputs` only (nothing accumulates into any `.grad`);
/// inputs the loss does not depend on get zeros.
fn gradients_or_zero(loss: &Tensor, inputs: &[Tensor]) -> Result<Vec<Tensor>, PluginError> {
    let gradients = Tensor::f_run_backward(&[loss], inputs, false, false)?;
    gradients.into_iter().zip(inputs).map(|(gradient, input)| if gradient.defined() { Ok(gradient) } else { Ok(input.f_zeros_like()?) }).collect()
}

/// A copy of a parameter's current values that later steps cannot change.
fn snapshot(parameter: &Tensor) -> Result<Tensor, PluginError> {
    let mut copy = parameter.f_detach()?.f_zeros_like()?;
    copy.f_copy_(parameter)?;
    Ok(copy)
}

/// Overwrites the supernet's parameters in place (their storage is shared with the host).
fn set_parameters(parameters: &[Tensor], values: &[Tensor]) -> Result<(), PluginError> {
    let _no_grad = tch::no_grad_guard();
    for (parameter, value) in parameters.iter().zip(values) {
        parameter.shallow_clone().f_copy_(value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use splitnas_plugin_testkit::host::*;

    fn darts(overrides: serde_json::Value) -> Darts {
        Darts::create(&config_with::<Darts>(overrides), &test_setup()).unwrap()
    }

    /// Sets α to spread-out values (through the shared handle, as the host does on resume).
    fn spread_alpha(algorithm: &Darts) -> Tensor {
        let alpha = alpha_of(algorithm);
        let _no_grad = tch::no_grad_guard();
        alpha
            .shallow_clone()
            .copy_(&Tensor::from_slice(&[0.3f32, -0.5, 0.8, 0.1, 0.6, 0.0, -0.4, 0.0, 0.0, 0.2, 0.0, 0.0, -0.3, 0.5, 0.0, 0.9]).view([4, 4]));
        alpha
    }

    #[test]
    fn weight_step_mixes_every_allowed_option_by_the_detached_softmax() {
        let host = FakeHost::new(1);
        let mut algorithm = darts(json!({}));
        let output = algorithm.weight_step(&host.context(), &host.train_batch(0)).unwrap();
        assert!(!output.trains_architecture);
        let forwards = host.forwards.borrow();
        let call = forwards.last().unwrap();
        assert!(call.train);
        assert_eq!(call.active, host.mask, "every allowed option is computed");
        let expected = rows(&algorithm.space.masked_softmax(&alpha_of(&algorithm)).unwrap());
        assert_eq!(rows(&call.weights), expected);
        let alpha = alpha_of(&algorithm);
        let reaches_alpha = Tensor::run_backward(&[output.loss.into_tensor()], &[&alpha], false, false)[0].defined();
        assert!(!reaches_alpha, "the weight step must not train α");
    }

    #[test]
    fn first_order_step_gives_alpha_a_gradient_only_where_options_compete() {
        let host = FakeHost::new(2);
        let mut algorithm = darts(json!({}));
        let alpha = spread_alpha(&algorithm);
        let ArchitectureStep::Loss(loss) = algorithm.architecture_step(&host.context(), &host.valid_batch(0), &host.train_batch(0)).unwrap() else {
            panic!("first-order DARTS returns its validation loss");
        };
        let gradient = rows(&gradients(&loss.into_tensor(), &[alpha]).remove(0));
        for (point, row) in gradient.iter().enumerate() {
            for (option, &value) in row.iter().enumerate() {
                let competes = host.mask.is_allowed(point, option) && host.mask.count(point) > 1;
                assert_eq!(value != 0.0, competes, "gradient at ({point}, {option}) = {value}");
            }
        }
        assert!(host.forwards.borrow().iter().all(|call| call.train), "the architecture step runs in training mode");
    }

    #[test]
    fn alternating_steps_reduce_the_loss_and_move_alpha() {
        let host = FakeHost::new(3);
        let mut algorithm = darts(json!({}));
        let alpha = assert_search_learns(&host, &mut algorithm, 60);
        let disallowed = rows(&alpha)
            .iter()
            .enumerate()
            .all(|(point, row)| row.iter().enumerate().all(|(option, &value)| host.mask.is_allowed(point, option) || value == 0.0));
        assert!(disallowed, "α never moves on disallowed options");
    }

    /// The exact unrolled gradient d/dα L_val(w − ξ ∇w L_train(w, α), α), by double backprop.
    fn exact_unrolled_gradient(host: &FakeHost, algorithm: &Darts, xi: f64, valid: &Batch, train: &Batch) -> Tensor {
        let leaf = |tensor: &Tensor| tensor.detach().copy().set_requires_grad(true);
        let (option_weights, bias, alpha) = (leaf(&host.option_weights), leaf(&host.bias), leaf(&alpha_of(algorithm)));
        let mask = &host.mask;
        let probabilities = algorithm.space.masked_softmax(&alpha).unwrap();
        let train_logits = FakeHost::logits_with(&train.images.tensor(), &option_weights, &bias, &probabilities, mask);
        let train_loss = train_logits.cross_entropy_for_logits(&train.labels.tensor());
        let weight_gradients = Tensor::run_backward(&[train_loss], &[&option_weights, &bias], true, true);
        let unrolled_weights = &option_weights - &weight_gradients[0] * xi;
        let unrolled_bias = &bias - &weight_gradients[1] * xi;
        let valid_logits = FakeHost::logits_with(&valid.images.tensor(), &unrolled_weights, &unrolled_bias, &probabilities, mask);
        let valid_loss = valid_logits.cross_entropy_for_logits(&valid.labels.tensor());
        Tensor::run_backward(&[valid_loss], &[&alpha], false, false).remove(0)
    }

    #[test]
    fn second_order_step_matches_the_exact_unrolled_gradient_and_restores_the_weights() {
        let host = FakeHost::new(4);
        let xi = 0.5; // large, so that the Hessian term is far from negligible
        let mut algorithm = darts(json!({ "second_order": true, "unrolled_lr": xi }));
        let alpha = spread_alpha(&algorithm);
        let (valid, train) = (host.valid_batch(1), host.train_batch(2));
        let weights_before = host.option_weights.detach().copy();
        let bias_before = host.bias.detach().copy();

        let step = algorithm.architecture_step(&host.context(), &valid, &train).unwrap();
        assert!(matches!(step, ArchitectureStep::GradientsWritten));
        assert!(host.option_weights.equal(&weights_before) && host.bias.equal(&bias_before), "the supernet is restored bit for bit");
        assert!(!host.option_weights.grad().defined(), "no gradient leaks into the supernet's .grad");

        let written = alpha.grad().copy();
        let exact = exact_unrolled_gradient(&host, &algorithm, xi, &valid, &train);
        let first_order = {
            let probabilities = algorithm.space.masked_softmax(&alpha).unwrap();
            let logits = FakeHost::logits_with(&valid.images.tensor(), &host.option_weights, &host.bias, &probabilities, &host.mask);
            gradients(&logits.cross_entropy_for_logits(&valid.labels.tensor()), &[alpha.shallow_clone()]).remove(0)
        };
        let error = (&written - &exact).norm().double_value(&[]);
        let hessian_term = (&exact - &first_order).norm().double_value(&[]);
        assert!(hessian_term > 1e-3, "the test must exercise the Hessian term ({hessian_term})");
        assert!(error < 1e-3 * hessian_term, "finite-difference error {error} vs Hessian term {hessian_term}");
        for (point, row) in rows(&written).iter().enumerate() {
            for (option, &value) in row.iter().enumerate() {
                if !host.mask.is_allowed(point, option) {
                    assert_eq!(value, 0.0);
                }
            }
        }

        // A second step overwrites α.grad rather than adding to it.
        algorithm.architecture_step(&host.context(), &valid, &train).unwrap();
        assert!((&alpha.grad() - &written).abs().max().double_value(&[]) < 1e-5);
    }

    #[test]
    fn second_order_search_runs_and_moves_alpha() {
        let host = FakeHost::new(5);
        let mut algorithm = darts(json!({ "second_order": true }));
        let alpha = alpha_of(&algorithm);
        let initial_alpha = alpha.detach().copy();
        run_search(&host, &mut algorithm, 10, 0.5, 0.05);
        assert!((&alpha - &initial_alpha).abs().max().double_value(&[]) > 0.01);
    }

    #[test]
    fn derive_hands_the_masked_softmax_to_the_space() {
        let host = FakeHost::new(6);
        let mut algorithm = darts(json!({}));
        let alpha = spread_alpha(&algorithm);
        let architecture = algorithm.derive(&host.context()).unwrap();
        assert_eq!(architecture.choices.as_slice(), &[2, 0, 1, 3]);
        let given = host.derived_from.borrow();
        assert_eq!(rows(&given[0]), rows(&algorithm.space.masked_softmax(&alpha).unwrap()));
    }

    #[test]
    fn samples_are_the_detached_softmax_over_all_allowed_options() {
        let host = FakeHost::new(7);
        let mut algorithm = darts(json!({}));
        let _ = spread_alpha(&algorithm);
        for sample in [algorithm.scoring_sample(&host.context()).unwrap(), algorithm.evaluation_sample(&host.context()).unwrap()] {
            assert_eq!(sample.active, host.mask);
            assert!(!sample.weights.tensor().requires_grad());
            assert_eq!(rows(&sample.weights.tensor()), rows(&algorithm.space.masked_softmax(&alpha_of(&algorithm)).unwrap()));
        }
    }

    #[test]
    fn configuration_and_state_are_checked() {
        let error = Darts::create(&config_with::<Darts>(json!({ "second_ordr": true })), &test_setup()).err().unwrap();
        assert!(error.message.contains("second_ordr"), "{}", error.message);
        let error = Darts::create(&config_with::<Darts>(json!({ "finite_difference_radius": 0.0 })), &test_setup()).err().unwrap();
        assert!(error.message.contains("finite_difference_radius"));
        let mut algorithm = darts(json!({}));
        let state = algorithm.state_json().unwrap();
        algorithm.load_state_json(&state).unwrap();
        assert!(algorithm.load_state_json("{\"temperature\": 1.0}").is_err());
    }
}
