//! OFA's accuracy predictor (`AccuracyPredictor`): a small MLP from an architecture's encoding
//! to its accuracy, trained on sampled subnets' accuracies through the supernet, so that the
//! evolution's thousands of fitness calls cost a forward pass of the MLP instead of a pass
//! over the validation images each.
//!
//! As OFA: `n_layers` hidden layers of `hidden` units with ReLU, a bias-free output unit plus
//! the samples' mean accuracy (`base_acc`), trained by mean squared error with Adam. The
//! encoding here is one-hot per choice point (every group the space has, dropped blocks
//! included: OFA zeroes those, which needs the space's stage layout; the MLP can learn to
//! ignore them). A held-out share of the samples measures the predictor's rank correlation,
//! which the derivation logs, so that a user sees whether to trust it.

use serde::{Deserialize, Serialize};
use splitnas_seeded_rng::SeededRng;
use tch::nn::{Module, OptimizerConfig};
use tch::Tensor;

/// The predictor's settings (`evolution.predictor`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PredictorConfig {
    /// Subnets sampled (uniformly within the mask and the cost windows) and evaluated through
    /// the supernet to train and test the predictor (OFA: 16,000 on ImageNet).
    pub samples: u32,
    /// The share of the samples held out to measure the predictor's rank correlation.
    pub held_out: f64,
    /// Hidden units per layer (OFA: 400) and hidden layers (OFA: 3).
    pub hidden: u32,
    pub layers: u32,
    /// Full passes over the training samples, in mini-batches of `batch_size`, with Adam at
    /// `learning_rate`.
    pub epochs: u32,
    pub batch_size: u32,
    pub learning_rate: f64,
}

impl Default for PredictorConfig {
    fn default() -> Self {
        PredictorConfig { samples: 1000, held_out: 0.2, hidden: 400, layers: 3, epochs: 100, batch_size: 256, learning_rate: 1e-3 }
    }
}

impl PredictorConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.samples < 10 || !(self.held_out > 0.0 && self.held_out < 1.0) {
            return Err(format!(
                "`evolution.predictor.samples` must be at least 10 and `held_out` in (0, 1) (got {} and {})",
                self.samples, self.held_out
            ));
        }
        if self.hidden == 0
            || self.layers == 0
            || self.epochs == 0
            || self.batch_size == 0
            || !(self.learning_rate.is_finite() && self.learning_rate > 0.0)
        {
            return Err("`evolution.predictor`: hidden, layers, epochs, batch_size and learning_rate must be positive".to_string());
        }
        Ok(())
    }

    /// How many of `samples` are held out (at least 3, so that a rank correlation exists, and
    /// at most all but 3).
    pub fn held_out_count(&self) -> usize {
        let samples = self.samples as usize;
        ((samples as f64 * self.held_out).round() as usize).clamp(3, samples - 3)
    }
}

/// One-hot per choice point of `choices` among `widths[point]` options.
pub fn encode(choices: &[u32], widths: &[usize]) -> Vec<f32> {
    let mut features = vec![0f32; widths.iter().sum()];
    let mut offset = 0;
    for (&choice, &width) in choices.iter().zip(widths) {
        features[offset + choice as usize] = 1.0;
        offset += width;
    }
    features
}

/// A trained predictor.
pub struct AccuracyPredictor {
    network: tch::nn::Sequential,
    base_accuracy: f64,
    widths: Vec<usize>,
    // Owns the MLP's tensors.
    _var_store: tch::nn::VarStore,
}

impl AccuracyPredictor {
    /// Trains on `(choices, accuracy)` pairs; the weights' initial values and the batch order
    /// come from `random` alone.
    pub fn train(samples: &[(Vec<u32>, f64)], widths: &[usize], config: &PredictorConfig, random: &mut SeededRng) -> Result<Self, tch::TchError> {
        let var_store = tch::nn::VarStore::new(tch::Device::Cpu);
        let root = var_store.root();
        let inputs: i64 = widths.iter().sum::<usize>() as i64;
        let mut network = tch::nn::seq();
        let mut fan_in = inputs;
        // PyTorch's Linear initialisation (uniform ±1/sqrt(fan_in)), drawn from `random`.
        let mut uniform = |shape: &[i64], fan_in: i64| -> Tensor {
            let bound = 1.0 / (fan_in as f64).sqrt();
            let count: i64 = shape.iter().product();
            let values: Vec<f32> = (0..count).map(|_| ((random.unit() * 2.0 - 1.0) * bound) as f32).collect();
            Tensor::from_slice(&values).view(shape)
        };
        for layer in 0..config.layers {
            let hidden = i64::from(config.hidden);
            let path = &root / format!("layer{layer}");
            let weight = path.var_copy("weight", &uniform(&[hidden, fan_in], fan_in));
            let bias = path.var_copy("bias", &uniform(&[hidden], fan_in));
            network = network.add(tch::nn::Linear { ws: weight, bs: Some(bias) }).add_fn(|x| x.relu());
            fan_in = hidden;
        }
        let output = (&root / "output").var_copy("weight", &uniform(&[1, fan_in], fan_in));
        network = network.add(tch::nn::Linear { ws: output, bs: None });

        let base_accuracy = samples.iter().map(|(_, accuracy)| accuracy).sum::<f64>() / samples.len() as f64;
        let features: Vec<f32> = samples.iter().flat_map(|(choices, _)| encode(choices, widths)).collect();
        let features = Tensor::from_slice(&features).view([samples.len() as i64, inputs]);
        let targets: Vec<f32> = samples.iter().map(|(_, accuracy)| (accuracy - base_accuracy) as f32).collect();
        let targets = Tensor::from_slice(&targets);
        let mut optimizer = tch::nn::Adam::default().build(&var_store, config.learning_rate)?;
        let batch = config.batch_size as usize;
        let mut order: Vec<usize> = (0..samples.len()).collect();
        for _ in 0..config.epochs {
            for index in (1..order.len()).rev() {
                order.swap(index, random.below(index as u64 + 1) as usize);
            }
            for chunk in order.chunks(batch) {
                let rows = Tensor::from_slice(&chunk.iter().map(|&row| row as i64).collect::<Vec<_>>());
                let predicted = network.forward(&features.index_select(0, &rows)).squeeze_dim(1);
                let loss = predicted.mse_loss(&targets.index_select(0, &rows), tch::Reduction::Mean);
                optimizer.backward_step(&loss);
            }
        }
        Ok(AccuracyPredictor { network, base_accuracy, widths: widths.to_vec(), _var_store: var_store })
    }

    pub fn predict(&self, choices: &[u32]) -> f64 {
        let features = Tensor::from_slice(&encode(choices, &self.widths)).view([1, -1]);
        let predicted = tch::no_grad(|| self.network.forward(&features));
        predicted.double_value(&[0, 0]) + self.base_accuracy
    }
}

/// Kendall's τ-b and Spearman's ρ (average ranks for ties) of two equally long samples.
pub fn rank_correlations(first: &[f64], second: &[f64]) -> (f64, f64) {
    let count = first.len();
    let (mut concordant, mut discordant, mut ties_first, mut ties_second) = (0f64, 0f64, 0f64, 0f64);
    for i in 0..count {
        for j in i + 1..count {
            let (a, b) = ((first[i] - first[j]).signum(), (second[i] - second[j]).signum());
            let (a, b) = (if first[i] == first[j] { 0.0 } else { a }, if second[i] == second[j] { 0.0 } else { b });
            match (a == 0.0, b == 0.0) {
                (true, true) => {}
                (true, false) => ties_first += 1.0,
                (false, true) => ties_second += 1.0,
                (false, false) if a == b => concordant += 1.0,
                (false, false) => discordant += 1.0,
            }
        }
    }
    let denominator = ((concordant + discordant + ties_first) * (concordant + discordant + ties_second)).sqrt();
    let tau = if denominator > 0.0 { (concordant - discordant) / denominator } else { f64::NAN };
    let (rank_first, rank_second) = (average_ranks(first), average_ranks(second));
    (tau, pearson(&rank_first, &rank_second))
}

fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && values[order[end + 1]] == values[order[start]] {
            end += 1;
        }
        for &index in &order[start..=end] {
            ranks[index] = (start + end) as f64 / 2.0;
        }
        start = end + 1;
    }
    ranks
}

fn pearson(first: &[f64], second: &[f64]) -> f64 {
    let count = first.len() as f64;
    let (mean_first, mean_second) = (first.iter().sum::<f64>() / count, second.iter().sum::<f64>() / count);
    let covariance: f64 = first.iter().zip(second).map(|(a, b)| (a - mean_first) * (b - mean_second)).sum();
    let spread = |values: &[f64], mean: f64| values.iter().map(|value| (value - mean).powi(2)).sum::<f64>().sqrt();
    let denominator = spread(first, mean_first) * spread(second, mean_second);
    if denominator > 0.0 {
        covariance / denominator
    } else {
        f64::NAN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_correlations_of_agreeing_reversed_and_tied_samples() {
        let (tau, rho) = rank_correlations(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 30.0, 40.0]);
        assert!((tau - 1.0).abs() < 1e-12 && (rho - 1.0).abs() < 1e-12);
        let (tau, rho) = rank_correlations(&[1.0, 2.0, 3.0, 4.0], &[4.0, 3.0, 2.0, 1.0]);
        assert!((tau + 1.0).abs() < 1e-12 && (rho + 1.0).abs() < 1e-12);
        // scipy.stats.kendalltau([1,2,3,4], [1,1,2,3]) = 0.9128709..., spearmanr = 0.9486833...
        let (tau, rho) = rank_correlations(&[1.0, 2.0, 3.0, 4.0], &[1.0, 1.0, 2.0, 3.0]);
        assert!((tau - 0.912_870_929).abs() < 1e-8 && (rho - 0.948_683_298).abs() < 1e-8, "{tau} {rho}");
    }

    #[test]
    fn the_encoding_is_one_hot_per_choice_point() {
        assert_eq!(encode(&[2, 0], &[3, 2]), [0.0, 0.0, 1.0, 1.0, 0.0]);
    }
}
