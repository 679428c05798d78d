//! SNAS (Xie et al., ICLR 2019): stochastic NAS. Every training step mixes the options by a
//! relaxed Gumbel-softmax sample of α, and one loss trains the weights and α together; the
//! temperature anneals linearly over the epochs.

use serde::Deserialize;
use serde_json::json;
use splitnas_plugin_api::author::{parse_config, AlgorithmPlugin, Component};
use splitnas_plugin_api::{
    AlgorithmSetup, Architecture, Batch, HostContextRef, NamedTensor, OwnedTensor, PluginError, TrainingProgress, WeightSample, WeightStepLoss,
};
use tch::Tensor;

use crate::common::{
    check_non_negative, check_restored_temperature, check_temperatures, host, linear_temperature, parse_state, state_to_json, training_cross_entropy,
    MaskedSpace, TemperatureState,
};

pub struct Snas {
    config: SnasConfig,
    space: MaskedSpace,
    /// Never replaced: the host holds handles to it and copies into it on resume.
    alpha: Tensor,
    temperature: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnasConfig {
    /// α starts at N(alpha_init_mean, alpha_init_std²) (reference: N(1, 0.01)).
    alpha_init_mean: f64,
    alpha_init_std: f64,
    /// Temperature at the first epoch.
    tau_max: f64,
    /// Temperature at the last epoch (NB201 reference 0.1; the DARTS-space scripts use 0.03).
    tau_min: f64,
}

impl Component for Snas {
    const NAME: &'static str = "snas";
    const DESCRIPTION: &'static str = "SNAS: relaxed Gumbel-softmax samples of α, weights and α trained by one loss, linear temperature";
    fn default_config() -> serde_json::Value {
        json!({
            "alpha_init_mean": 1.0,
            "alpha_init_std": 0.01,
            "tau_max": 1.0,
            "tau_min": 0.1,
        })
    }
}

impl AlgorithmPlugin for Snas {
    fn create(config: &str, setup: &AlgorithmSetup) -> Result<Self, PluginError> {
        let config: SnasConfig = parse_config(Self::NAME, config)?;
        check_non_negative(Self::NAME, "alpha_init_std", config.alpha_init_std)?;
        if !config.alpha_init_mean.is_finite() {
            return Err(PluginError::invalid_config(format!("snas: `alpha_init_mean` must be finite (got {})", config.alpha_init_mean)));
        }
        check_temperatures(Self::NAME, config.tau_max, config.tau_min)?;
        let space = MaskedSpace::new(Self::NAME, setup)?;
        let alpha = space.new_alpha(config.alpha_init_mean, config.alpha_init_std)?;
        let temperature = config.tau_max;
        Ok(Snas { config, space, alpha, temperature })
    }

    fn architecture_parameters(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(vec![NamedTensor::share("alpha", &self.alpha)])
    }

    fn on_epoch_start(&mut self, context: &HostContextRef<'_>, progress: TrainingProgress) -> Result<(), PluginError> {
        self.temperature = linear_temperature(self.config.tau_max, self.config.tau_min, progress);
        host(context.log_metric("snas/temperature".into(), self.temperature))
    }

    fn weight_step(&mut self, context: &HostContextRef<'_>, batch: &Batch) -> Result<WeightStepLoss, PluginError> {
        // The sample keeps α's graph: the host backpropagates this loss into α as well.
        let weights = self.space.gumbel_softmax(&self.alpha, self.temperature)?;
        let loss = training_cross_entropy(context, batch, &weights, &self.space.mask)?;
        Ok(WeightStepLoss { loss: OwnedTensor::new(loss), trains_architecture: true })
    }

    // No separate architecture step: the default `Skip`.

    fn scoring_sample(&mut self, _context: &HostContextRef<'_>) -> Result<WeightSample, PluginError> {
        let _no_grad = tch::no_grad_guard();
        let weights = self.space.gumbel_softmax(&self.alpha, self.temperature)?;
        Ok(WeightSample { weights: OwnedTensor::new(weights), active: self.space.mask.clone() })
    }

    fn evaluation_sample(&mut self, _context: &HostContextRef<'_>) -> Result<WeightSample, PluginError> {
        let _no_grad = tch::no_grad_guard();
        let weights = self.space.masked_softmax(&self.alpha)?;
        Ok(WeightSample { weights: OwnedTensor::new(weights), active: self.space.mask.clone() })
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

#[cfg(test)]
impl Snas {
    pub(crate) fn temperature(&self) -> f64 {
        self.temperature
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use splitnas_plugin_api::ArchitectureStep;
    use splitnas_plugin_testkit::host::*;
    use tch::Kind;

    fn snas(overrides: serde_json::Value) -> Snas {
        Snas::create(&config_with::<Snas>(overrides), &test_setup()).unwrap()
    }

    #[test]
    fn alpha_starts_near_one_on_allowed_options() {
        let algorithm = snas(json!({}));
        let alpha = rows(&alpha_of(&algorithm));
        for (point, row) in alpha.iter().enumerate() {
            for (option, &value) in row.iter().enumerate() {
                if test_mask().is_allowed(point, option) {
                    assert!((value - 1.0).abs() < 0.06, "α[{point}, {option}] = {value} is not N(1, 0.01)");
                } else {
                    assert_eq!(value, 0.0);
                }
            }
        }
    }

    #[test]
    fn temperature_follows_the_linear_schedule_and_is_logged() {
        let host = FakeHost::new(11);
        let mut algorithm = snas(json!({ "tau_max": 1.0, "tau_min": 0.1 }));
        assert_eq!(algorithm.temperature(), 1.0, "before the first epoch: tau_max");
        let mut seen = Vec::new();
        for epoch in 0..10 {
            algorithm.on_epoch_start(&host.context(), TrainingProgress { epoch, total_epochs: 10 }).unwrap();
            seen.push(algorithm.temperature());
        }
        for (epoch, temperature) in seen.iter().enumerate() {
            assert!((temperature - (1.0 - 0.1 * epoch as f64)).abs() < 1e-12, "epoch {epoch}: {temperature}");
        }
        let metrics = host.metrics.borrow();
        assert_eq!(metrics.len(), 10);
        assert_eq!(metrics[9].0, "snas/temperature");
        assert!((metrics[9].1 - 0.1).abs() < 1e-12);
    }

    #[test]
    fn weight_loss_trains_alpha_through_a_relaxed_sample() {
        let host = FakeHost::new(12);
        let mut algorithm = snas(json!({}));
        let output = algorithm.weight_step(&host.context(), &host.train_batch(0)).unwrap();
        assert!(output.trains_architecture, "the host must backpropagate the weight loss into α");
        let forwards = host.forwards.borrow();
        let call = forwards.last().unwrap();
        assert_eq!(call.active, host.mask);
        for (point, row) in rows(&call.weights).iter().enumerate() {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "a relaxed sample sums to 1 at choice point {point}");
        }
        let alpha = alpha_of(&algorithm);
        let gradient = rows(&gradients(&output.loss.into_tensor(), &[alpha]).remove(0));
        for (point, row) in gradient.iter().enumerate() {
            for (option, &value) in row.iter().enumerate() {
                let competes = host.mask.is_allowed(point, option) && host.mask.count(point) > 1;
                assert_eq!(value != 0.0, competes, "gradient at ({point}, {option}) = {value}");
            }
        }
        assert!(matches!(algorithm.architecture_step(&host.context(), &host.valid_batch(0), &host.train_batch(0)).unwrap(), ArchitectureStep::Skip));
    }

    #[test]
    fn joint_training_reduces_the_loss_and_moves_alpha() {
        let host = FakeHost::new(13);
        let mut algorithm = snas(json!({}));
        let _alpha = assert_search_learns(&host, &mut algorithm, 60);
    }

    #[test]
    fn scoring_samples_are_fresh_detached_relaxed_samples_and_evaluation_is_the_softmax() {
        let host = FakeHost::new(14);
        let mut algorithm = snas(json!({}));
        let context = host.context();
        let first = algorithm.scoring_sample(&context).unwrap();
        let second = algorithm.scoring_sample(&context).unwrap();
        assert!(!first.weights.tensor().requires_grad());
        assert_eq!(first.active, host.mask);
        assert!(!first.weights.tensor().equal(&second.weights.tensor()), "fresh noise per sample");
        let evaluation = algorithm.evaluation_sample(&context).unwrap();
        let expected = algorithm.space.masked_softmax(&alpha_of(&algorithm)).unwrap();
        assert!(evaluation.weights.tensor().allclose(&expected.to_kind(Kind::Float), 0.0, 0.0, false));
    }

    #[test]
    fn state_round_trips_the_temperature() {
        let host = FakeHost::new(15);
        let mut algorithm = snas(json!({}));
        algorithm.on_epoch_start(&host.context(), TrainingProgress { epoch: 4, total_epochs: 10 }).unwrap();
        let state = algorithm.state_json().unwrap();
        let mut restored = snas(json!({}));
        restored.load_state_json(&state).unwrap();
        assert_eq!(restored.temperature(), algorithm.temperature());
        assert!(restored.load_state_json("{\"temperature\": 0}").is_err());
        assert!(restored.load_state_json("{\"tau\": 1}").is_err());
        let error = Snas::create(&config_with::<Snas>(json!({ "tau_min": 2.0 })), &test_setup()).err().unwrap();
        assert!(error.message.contains("tau_max"), "{}", error.message);
    }
}
