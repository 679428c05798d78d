//! `fair-darts` (Chu et al., ECCV 2020).
//!
//! DARTS mixes an edge's options by `softmax(α)`, so options compete for one unit of weight and
//! skip connections, which train fastest, crowd the others out. Fair DARTS gives every option
//! its own weight `σ(α_k)` and adds the zero-one loss
//!
//! ```text
//! L = L_valid + w · L_01,    L_01 = −mean_k (σ(α_k) − ½)²
//! ```
//!
//! which pushes each weight to 0 or 1 so that the final discretisation loses little. The paper
//! keeps every option above a threshold; a splitnas space takes one option per choice point, so
//! the derived architecture is the space's own choice from the sigmoids (the largest per edge in
//! NB201, the DARTS space's top-2 inputs per node).
//!
//! Within a sub-supernet, a disallowed option has weight exactly 0 and a choice point whose
//! mask leaves one option (decided by a split) has weight exactly 1 for it: that option is
//! fixed, no longer mixed. Neither counts in the zero-one loss.

use serde::{Deserialize, Serialize};
use splitnas_plugin_api::author::{parse_config, AlgorithmPlugin, Component};
use splitnas_plugin_api::{
    AlgorithmSetup, Architecture, ArchitectureStep, Batch, HostContextRef, Mask, NamedTensor, OwnedTensor, PluginError, TensorRef, WeightSample,
    WeightStepLoss,
};
use tch::{Kind, Reduction, Tensor};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FairDartsConfig {
    /// α starts at `alpha_init_std · N(0, 1)` (DARTS and Fair DARTS: 1e-3), so every σ starts near ½.
    alpha_init_std: f64,
    /// `w`, the weight of the zero-one loss (the paper: 10).
    zero_one_weight: f64,
}

impl Default for FairDartsConfig {
    fn default() -> Self {
        FairDartsConfig { alpha_init_std: 1e-3, zero_one_weight: 10.0 }
    }
}

pub struct FairDarts {
    config: FairDartsConfig,
    mask: Mask,
    /// `[choice points, max_options]`: true where the mask allows the option.
    allowed: Tensor,
    /// True where the option is the only one its choice point allows (weight exactly 1).
    fixed: Tensor,
    /// `allowed` and not `fixed`: the options whose weights are still being searched.
    searched: Tensor,
    /// The architecture parameters, a leaf the host's optimizer steps in place. Never replaced:
    /// the host holds handles to it.
    alpha: Tensor,
}

impl Component for FairDarts {
    const NAME: &'static str = "fair-darts";
    const DESCRIPTION: &'static str = "Fair DARTS: an independent sigmoid per option and the zero-one loss, α trained on validation batches";
    fn default_config() -> serde_json::Value {
        serde_json::json!(FairDartsConfig::default())
    }
}

fn host<T>(result: splitnas_plugin_api::PluginResult<T>) -> Result<T, PluginError> {
    result.into_result()
}

impl FairDarts {
    /// `σ(α)` on the searched options, 1 on fixed ones, 0 on disallowed ones; keeps α's graph.
    fn option_weights(&self) -> Result<Tensor, PluginError> {
        Ok(self.alpha.f_sigmoid()?.f_masked_fill(&self.allowed.f_logical_not()?, 0.0)?.f_masked_fill(&self.fixed, 1.0)?)
    }

    fn detached_weights(&self) -> Result<Tensor, PluginError> {
        let _no_grad = tch::no_grad_guard();
        self.option_weights()
    }

    /// `−mean (σ(α) − ½)²` over the searched options; 0 when none is left.
    fn zero_one_loss(&self) -> Result<Tensor, PluginError> {
        let searched = self.searched.f_to_kind(Kind::Float)?;
        let count = searched.f_sum(Kind::Float)?.f_clamp_min(1.0)?;
        let squared = self.alpha.f_sigmoid()?.f_sub_scalar(0.5)?.f_square()?.f_mul(&searched)?;
        Ok(squared.f_sum(Kind::Float)?.f_div(&count)?.f_neg()?)
    }

    fn cross_entropy(context: &HostContextRef<'_>, batch: &Batch, weights: &Tensor, active: &Mask) -> Result<Tensor, PluginError> {
        let logits = host(context.forward(batch.images.as_ref(), TensorRef::new(weights), active, true))?.into_tensor();
        Ok(logits.f_cross_entropy_loss::<Tensor>(&batch.labels.tensor(), None, Reduction::Mean, -100, 0.0)?)
    }

    fn sample(&self) -> Result<WeightSample, PluginError> {
        // σ is never exactly 0, so every allowed option is active.
        Ok(WeightSample { weights: OwnedTensor::new(self.detached_weights()?), active: self.mask.clone() })
    }
}

impl AlgorithmPlugin for FairDarts {
    fn create(config: &str, setup: &AlgorithmSetup) -> Result<Self, PluginError> {
        let config: FairDartsConfig = parse_config(Self::NAME, config)?;
        for (key, value) in [("alpha_init_std", config.alpha_init_std), ("zero_one_weight", config.zero_one_weight)] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(PluginError::invalid_config(format!("fair-darts: `{key}` must be a finite number >= 0 (got {value})")));
            }
        }
        let choice_points = setup.space.num_choice_points();
        let max_options = setup.space.max_options as usize;
        if setup.mask.rows.len() != choice_points || setup.mask.rows.iter().any(|row| row.len() != max_options) {
            return Err(PluginError::invalid_input(format!(
                "fair-darts: the mask is not {choice_points} rows of {max_options} options, the shape of the space `{}`",
                setup.space.name
            )));
        }
        if let Some(empty) = (0..choice_points).find(|&point| setup.mask.count(point) == 0) {
            return Err(PluginError::invalid_input(format!("fair-darts: the mask allows no option at choice point {empty}")));
        }
        let device = setup.device.to_tch();
        let shape = [choice_points as i64, max_options as i64];
        let flags = |keep: &dyn Fn(usize, usize) -> bool| -> Result<Tensor, PluginError> {
            let flat: Vec<bool> =
                (0..choice_points).flat_map(|point| (0..max_options).map(move |option| (point, option))).map(|(p, o)| keep(p, o)).collect();
            Ok(Tensor::f_from_slice(&flat)?.f_view(shape)?.f_to_device(device)?)
        };
        let mask = &setup.mask;
        let allowed = flags(&|point, option| mask.is_allowed(point, option))?;
        let fixed = flags(&|point, option| mask.is_allowed(point, option) && mask.count(point) == 1)?;
        let searched = flags(&|point, option| mask.is_allowed(point, option) && mask.count(point) > 1)?;
        let alpha = {
            let _no_grad = tch::no_grad_guard();
            // Drawn from libtorch's generator, which the host seeds.
            Tensor::f_randn(shape, (Kind::Float, device))?.f_mul_scalar(config.alpha_init_std)?.f_mul(&allowed.f_to_kind(Kind::Float)?)?
        }
        .set_requires_grad(true);
        Ok(FairDarts { config, mask: setup.mask.clone(), allowed, fixed, searched, alpha })
    }

    fn architecture_parameters(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(vec![NamedTensor::share("alpha", &self.alpha)])
    }

    fn weight_step(&mut self, context: &HostContextRef<'_>, batch: &Batch) -> Result<WeightStepLoss, PluginError> {
        let loss = Self::cross_entropy(context, batch, &self.detached_weights()?, &self.mask)?;
        Ok(WeightStepLoss { loss: OwnedTensor::new(loss), trains_architecture: false })
    }

    fn architecture_step(
        &mut self,
        context: &HostContextRef<'_>,
        valid_batch: &Batch,
        _train_batch: &Batch,
    ) -> Result<ArchitectureStep, PluginError> {
        let valid_loss = Self::cross_entropy(context, valid_batch, &self.option_weights()?, &self.mask)?;
        let loss = valid_loss.f_add(&self.zero_one_loss()?.f_mul_scalar(self.config.zero_one_weight)?)?;
        Ok(ArchitectureStep::Loss(OwnedTensor::new(loss)))
    }

    fn scoring_sample(&mut self, _context: &HostContextRef<'_>) -> Result<WeightSample, PluginError> {
        self.sample()
    }

    fn evaluation_sample(&mut self, _context: &HostContextRef<'_>) -> Result<WeightSample, PluginError> {
        self.sample()
    }

    fn derive(&mut self, context: &HostContextRef<'_>) -> Result<Architecture, PluginError> {
        host(context.derive(TensorRef::new(&self.detached_weights()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitnas_plugin_testkit::host::{rows, test_setup};

    #[test]
    fn weights_are_sigmoids_on_searched_options_one_on_fixed_and_zero_on_disallowed() {
        let setup = test_setup();
        let algorithm = FairDarts::create(&FairDarts::default_config().to_string(), &setup).unwrap();
        {
            let _no_grad = tch::no_grad_guard();
            let _ = algorithm.alpha.shallow_clone().fill_(2.0);
        }
        let weights = rows(&algorithm.detached_weights().unwrap());
        let sigmoid = 1.0 / (1.0 + (-2.0f32).exp());
        for (point, row) in weights.iter().enumerate() {
            for (option, &weight) in row.iter().enumerate() {
                let expected = match (setup.mask.is_allowed(point, option), setup.mask.count(point)) {
                    (false, _) => 0.0,
                    (true, 1) => 1.0,
                    (true, _) => sigmoid,
                };
                assert!((weight - expected).abs() < 1e-6, "({point}, {option}): {weight}, expected {expected}");
            }
        }
    }

    #[test]
    fn the_zero_one_loss_is_least_at_zero_or_one_and_greatest_at_one_half() {
        let setup = test_setup();
        let algorithm = FairDarts::create(&FairDarts::default_config().to_string(), &setup).unwrap();
        let loss_at = |value: f64| {
            let _no_grad = tch::no_grad_guard();
            let _ = algorithm.alpha.shallow_clone().fill_(value);
            algorithm.zero_one_loss().unwrap().double_value(&[])
        };
        assert!(loss_at(0.0).abs() < 1e-12, "σ = ½ everywhere: no push yet");
        assert!((loss_at(40.0) + 0.25).abs() < 1e-6, "σ ≈ 1: the least loss, −¼");
        assert!(loss_at(1.0) < loss_at(0.5));
    }
}
