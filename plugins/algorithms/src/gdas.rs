//! GDAS (Dong & Yang, CVPR 2019): one option per choice point, sampled by a hard
//! Gumbel-softmax; the forward pass computes only the sampled options, and the
//! straight-through estimator carries the relaxed sample's gradient to α. The weights are
//! trained on training batches, α on validation batches; the temperature anneals linearly.

use serde::Deserialize;
use serde_json::json;
use splitnas_plugin_api::author::{parse_config, AlgorithmPlugin, Component};
use splitnas_plugin_api::{
    AlgorithmSetup, Architecture, ArchitectureStep, Batch, HostContextRef, NamedTensor, OwnedTensor, PluginError, TrainingProgress, WeightSample,
    WeightStepLoss,
};
use tch::Tensor;

use crate::common::{
    check_non_negative, check_restored_temperature, check_temperatures, cross_entropy, host, linear_temperature, parse_state,
    sampled_path_weight_step, state_to_json, MaskedSpace, TemperatureState,
};

pub struct Gdas {
    config: GdasConfig,
    space: MaskedSpace,
    /// Never replaced: the host holds handles to it and copies into it on resume.
    alpha: Tensor,
    temperature: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GdasConfig {
    /// α starts at `alpha_init_std · N(0, 1)` (reference: 1e-3).
    alpha_init_std: f64,
    /// Temperature at the first epoch (reference: 10).
    tau_max: f64,
    /// Temperature at the last epoch (reference: 0.1).
    tau_min: f64,
}

impl Component for Gdas {
    const NAME: &'static str = "gdas";
    const DESCRIPTION: &'static str = "GDAS: hard Gumbel-softmax single path with straight-through gradients, α trained on validation batches";
    fn default_config() -> serde_json::Value {
        json!({
            "alpha_init_std": 1e-3,
            "tau_max": 10.0,
            "tau_min": 0.1,
        })
    }
}

impl AlgorithmPlugin for Gdas {
    fn create(config: &str, setup: &AlgorithmSetup) -> Result<Self, PluginError> {
        let config: GdasConfig = parse_config(Self::NAME, config)?;
        check_non_negative(Self::NAME, "alpha_init_std", config.alpha_init_std)?;
        check_temperatures(Self::NAME, config.tau_max, config.tau_min)?;
        let space = MaskedSpace::new(Self::NAME, setup)?;
        let alpha = space.new_alpha(0.0, config.alpha_init_std)?;
        let temperature = config.tau_max;
        Ok(Gdas { config, space, alpha, temperature })
    }

    fn architecture_parameters(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(vec![NamedTensor::share("alpha", &self.alpha)])
    }

    fn on_epoch_start(&mut self, context: &HostContextRef<'_>, progress: TrainingProgress) -> Result<(), PluginError> {
        self.temperature = linear_temperature(self.config.tau_max, self.config.tau_min, progress);
        host(context.log_metric("gdas/temperature".into(), self.temperature))
    }

    fn weight_step(&mut self, context: &HostContextRef<'_>, batch: &Batch) -> Result<WeightStepLoss, PluginError> {
        // α is detached: the weight step trains the supernet only.
        sampled_path_weight_step(context, batch, &self.detached_hard_sample()?)
    }

    fn architecture_step(
        &mut self,
        context: &HostContextRef<'_>,
        valid_batch: &Batch,
        _train_batch: &Batch,
    ) -> Result<ArchitectureStep, PluginError> {
        let (weights, choices) = self.space.gumbel_hard(&self.alpha, self.temperature)?;
        let active = self.space.single_path_active(&self.space.choices_to_host(&choices)?);
        let loss = cross_entropy(context, valid_batch, &weights, &active, true)?;
        Ok(ArchitectureStep::Loss(OwnedTensor::new(loss)))
    }

    fn scoring_sample(&mut self, _context: &HostContextRef<'_>) -> Result<WeightSample, PluginError> {
        self.detached_hard_sample()
    }

    /// The most likely option of every choice point, without noise.
    fn evaluation_sample(&mut self, _context: &HostContextRef<'_>) -> Result<WeightSample, PluginError> {
        self.space.most_likely_path(&self.alpha)
    }

    fn derive(&mut self, context: &HostContextRef<'_>) -> Result<Architecture, PluginError> {
        self.space.derive_from_alpha(context, &self.alpha)
    }

    fn state_json(&self) -> Result<String, PluginError> {
        state_to_json(Self::NAME, &TemperatureState { temperature: self.temperature })
    }

    fn load_state_json(&mut self, state: &str) -> Result<(), PluginError> {
        let state: TemperatureState = parse_state(Self::NAME, state)?;
        check_restored_temperature(Self::NAME, state.temperature)?;
        self.temperature = state.temperature;
        Ok(())
    }
}

impl Gdas {
    /// A hard sample at the current temperature, outside α's graph. The sampled indices come
    /// to the host (one small copy) because the forward pass must know which option to compute.
    fn detached_hard_sample(&self) -> Result<WeightSample, PluginError> {
        let _no_grad = tch::no_grad_guard();
        let (weights, choices) = self.space.gumbel_hard(&self.alpha, self.temperature)?;
        let active = self.space.single_path_active(&self.space.choices_to_host(&choices)?);
        Ok(WeightSample { weights: OwnedTensor::new(weights), active })
    }
}

#[cfg(test)]
impl Gdas {
    pub(crate) fn temperature(&self) -> f64 {
        self.temperature
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use splitnas_plugin_testkit::host::*;

    fn gdas(overrides: serde_json::Value) -> Gdas {
        Gdas::create(&config_with::<Gdas>(overrides), &test_setup()).unwrap()
    }

    /// Checks a single-path sample: exactly one-hot rows, the hot option the only active one.
    fn assert_single_path(host: &FakeHost, weights: &Tensor, active: &splitnas_plugin_api::Mask) {
        for (point, row) in rows(weights).iter().enumerate() {
            let hot: Vec<usize> = (0..row.len()).filter(|&option| row[option] == 1.0).collect();
            assert_eq!(hot.len(), 1, "choice point {point}: {row:?}");
            assert!(row.iter().all(|&value| value == 0.0 || value == 1.0), "choice point {point}: {row:?}");
            let active_options: Vec<usize> = (0..row.len()).filter(|&option| active.rows[point][option]).collect();
            assert_eq!(active_options, hot, "choice point {point}: only the sampled option is active");
            assert!(host.mask.is_allowed(point, hot[0]));
        }
    }

    #[test]
    fn weight_steps_train_one_sampled_path_without_alpha() {
        let host = FakeHost::new(21);
        let mut algorithm = gdas(json!({}));
        let alpha = alpha_of(&algorithm);
        for step in 0..20 {
            let output = algorithm.weight_step(&host.context(), &host.train_batch(step)).unwrap();
            assert!(!output.trains_architecture);
            assert!(!Tensor::run_backward(&[output.loss.into_tensor()], &[&alpha], false, false)[0].defined(), "α is detached");
        }
        let forwards = host.forwards.borrow();
        for call in forwards.iter() {
            assert_single_path(&host, &call.weights, &call.active);
        }
        let first_choices: Vec<_> = forwards.iter().map(|call| rows(&call.weights)[0].clone()).collect();
        assert!(first_choices.iter().any(|row| row != &first_choices[0]), "paths vary at a high temperature");
    }

    #[test]
    fn architecture_step_reaches_alpha_through_the_straight_through_estimator() {
        let host = FakeHost::new(22);
        let mut algorithm = gdas(json!({}));
        let alpha = alpha_of(&algorithm);
        let ArchitectureStep::Loss(loss) = algorithm.architecture_step(&host.context(), &host.valid_batch(0), &host.train_batch(0)).unwrap() else {
            panic!("GDAS returns its validation loss");
        };
        {
            let forwards = host.forwards.borrow();
            assert_single_path(&host, &forwards[0].weights, &forwards[0].active);
        }
        let gradient = rows(&gradients(&loss.into_tensor(), &[alpha]).remove(0));
        for (point, row) in gradient.iter().enumerate() {
            for (option, &value) in row.iter().enumerate() {
                let competes = host.mask.is_allowed(point, option) && host.mask.count(point) > 1;
                assert_eq!(value != 0.0, competes, "gradient at ({point}, {option}) = {value}");
            }
        }
    }

    #[test]
    fn search_reduces_the_loss_and_moves_alpha() {
        let host = FakeHost::new(23);
        let mut algorithm = gdas(json!({ "tau_max": 1.0 }));
        let _alpha = assert_search_learns(&host, &mut algorithm, 80);
    }

    #[test]
    fn scoring_samples_are_hard_and_evaluation_takes_the_argmax() {
        let host = FakeHost::new(24);
        let mut algorithm = gdas(json!({}));
        let context = host.context();
        let sample = algorithm.scoring_sample(&context).unwrap();
        assert!(!sample.weights.tensor().requires_grad());
        assert_single_path(&host, &sample.weights.tensor(), &sample.active);

        let alpha = alpha_of(&algorithm);
        {
            let _no_grad = tch::no_grad_guard();
            // Largest α on a disallowed option of choice point 1: the argmax must skip it.
            alpha
                .shallow_clone()
                .copy_(&Tensor::from_slice(&[0.0f32, 0.0, 0.0, 2.0, 0.1, 9.0, 0.2, 9.0, 5.0, 0.0, 5.0, 5.0, 0.0, 1.0, 0.0, 0.0]).view([4, 4]));
        }
        let evaluation = algorithm.evaluation_sample(&context).unwrap();
        assert_single_path(&host, &evaluation.weights.tensor(), &evaluation.active);
        let hot: Vec<usize> = rows(&evaluation.weights.tensor()).iter().map(|row| row.iter().position(|&value| value == 1.0).unwrap()).collect();
        assert_eq!(hot, vec![3, 2, 1, 1]);
        assert_eq!(algorithm.derive(&context).unwrap().choices.as_slice(), &[3, 2, 1, 1]);
    }

    #[test]
    fn temperature_anneals_from_ten_to_a_tenth_and_round_trips() {
        let host = FakeHost::new(25);
        let mut algorithm = gdas(json!({}));
        algorithm.on_epoch_start(&host.context(), TrainingProgress { epoch: 0, total_epochs: 5 }).unwrap();
        assert_eq!(algorithm.temperature(), 10.0);
        algorithm.on_epoch_start(&host.context(), TrainingProgress { epoch: 4, total_epochs: 5 }).unwrap();
        assert!((algorithm.temperature() - 0.1).abs() < 1e-12);
        algorithm.on_epoch_start(&host.context(), TrainingProgress { epoch: 2, total_epochs: 5 }).unwrap();
        let state = algorithm.state_json().unwrap();
        let mut restored = gdas(json!({}));
        restored.load_state_json(&state).unwrap();
        assert!((restored.temperature() - 5.05).abs() < 1e-12);
    }
}
