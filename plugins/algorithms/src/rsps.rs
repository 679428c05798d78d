//! RSPS / SPOS (Li & Talwalkar 2019; Guo et al. 2020): random search with parameter sharing.
//! Every training step trains one uniformly sampled single path; there are no architecture
//! parameters. The search ends by evaluating distinct random architectures on the
//! validation split through the supernet and keeping the best.
//!
//! What an architecture is belongs to the space, not to this algorithm: a single path (one
//! option per choice point) is a legal supernet path in every space, but not always an
//! architecture (the DARTS space keeps only two incoming edges per node). So candidates are
//! drawn as weights and turned into architectures by the space's own derivation
//! (`HostContext::derive`): a uniform single path whose chosen options carry independent
//! uniform random strengths. A space that takes the best option per choice point (NB201)
//! derives the path itself; one that also ranks choice points by strength (DARTS: top-2 edges
//! per node) keeps a uniformly random subset of them. Duplicates are dropped.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::json;
use splitnas_plugin_api::author::{parse_config, AlgorithmPlugin, Component};
use splitnas_plugin_api::{
    AlgorithmSetup, Architecture, Batch, HostContextRef, NamedTensor, OwnedTensor, PluginError, TensorRef, WeightSample, WeightStepLoss,
};
use tch::Tensor;

use crate::common::{host, parse_state, sampled_path_weight_step, state_to_json, uniform_below, MaskedSpace, NoState};

pub struct Rsps {
    config: RspsConfig,
    space: MaskedSpace,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RspsConfig {
    /// How many distinct architectures `derive` evaluates (all of them if the sub-space is smaller).
    derive_samples: u32,
}

impl Component for Rsps {
    const NAME: &'static str = "rsps";
    const DESCRIPTION: &'static str = "RSPS/SPOS: uniform single-path training, best of N random architectures by validation accuracy";
    fn default_config() -> serde_json::Value {
        json!({ "derive_samples": 100 })
    }
}

impl AlgorithmPlugin for Rsps {
    fn create(config: &str, setup: &AlgorithmSetup) -> Result<Self, PluginError> {
        let config: RspsConfig = parse_config(Self::NAME, config)?;
        if config.derive_samples == 0 {
            return Err(PluginError::invalid_config("rsps: `derive_samples` must be at least 1"));
        }
        Ok(Rsps { config, space: MaskedSpace::new(Self::NAME, setup)? })
    }

    fn architecture_parameters(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(Vec::new())
    }

    fn weight_step(&mut self, context: &HostContextRef<'_>, batch: &Batch) -> Result<WeightStepLoss, PluginError> {
        sampled_path_weight_step(context, batch, &self.single_path(context)?)
    }

    // No architecture step: the default `Skip`.

    fn scoring_sample(&mut self, context: &HostContextRef<'_>) -> Result<WeightSample, PluginError> {
        self.single_path(context)
    }

    fn evaluation_sample(&mut self, context: &HostContextRef<'_>) -> Result<WeightSample, PluginError> {
        self.single_path(context)
    }

    fn derive(&mut self, context: &HostContextRef<'_>) -> Result<Architecture, PluginError> {
        let candidates = self.derive_candidates(context)?;
        host(context.log_metric("rsps/candidates".into(), candidates.len() as f64))?;
        let mut best: Option<(Architecture, f64)> = None;
        for architecture in candidates {
            let accuracy = host(context.evaluate(&architecture))?;
            // On ties the first evaluated stays (deterministic); a NaN never beats a number.
            let replaces_best = match &best {
                None => true,
                Some((_, best_accuracy)) => accuracy > *best_accuracy || (best_accuracy.is_nan() && !accuracy.is_nan()),
            };
            if replaces_best {
                best = Some((architecture, accuracy));
            }
        }
        let (architecture, accuracy) = best.ok_or_else(|| PluginError::other("rsps: no architecture was evaluated"))?;
        host(context.log_metric("rsps/best_valid_accuracy".into(), accuracy))?;
        Ok(architecture)
    }

    fn state_json(&self) -> Result<String, PluginError> {
        state_to_json(Self::NAME, &NoState {})
    }

    fn load_state_json(&mut self, state: &str) -> Result<(), PluginError> {
        let NoState {} = parse_state(Self::NAME, state)?;
        Ok(())
    }
}

impl Rsps {
    /// One option per choice point, uniform among the allowed ones, from the host's generator.
    fn sample_choices(&self, context: &HostContextRef<'_>) -> Result<Vec<u32>, PluginError> {
        self.space.allowed_options.iter().map(|options| Ok(options[uniform_below(context, options.len() as u64)? as usize])).collect()
    }

    /// A uniform single path as one-hot weights; only the sampled options are active.
    fn single_path(&self, context: &HostContextRef<'_>) -> Result<WeightSample, PluginError> {
        let choices = self.sample_choices(context)?;
        let weights = self.space.one_hot_from_host(&choices)?;
        Ok(WeightSample { weights: OwnedTensor::new(weights), active: self.space.single_path_active(&choices) })
    }

    /// The architecture the space derives from the single path `choices` with a uniform random
    /// strength in (0, 1] on each chosen option (0 elsewhere), from the host's generator.
    fn derive_path(&self, context: &HostContextRef<'_>, choices: &[u32]) -> Result<Architecture, PluginError> {
        let width = self.space.max_options;
        let mut values = vec![0f32; choices.len() * width];
        for (point, &option) in choices.iter().enumerate() {
            let bits = host(context.next_random())? >> 40;
            values[point * width + option as usize] = (bits + 1) as f32 / (1u64 << 24) as f32;
        }
        let weights = Tensor::f_from_slice(&values)?.f_view([choices.len() as i64, width as i64])?;
        let architecture = host(context.derive(TensorRef::new(&weights)))?;
        if !self.space.mask.contains(&architecture) {
            return Err(PluginError::other(format!("rsps: the space derived {:?}, which is outside the sub-supernet's mask", architecture.choices)));
        }
        Ok(architecture)
    }

    /// `derive_samples` distinct architectures of the sub-space, or all it has if fewer; see
    /// the module documentation for how they are drawn.
    fn derive_candidates(&self, context: &HostContextRef<'_>) -> Result<Vec<Architecture>, PluginError> {
        let wanted = self.config.derive_samples as usize;
        let mut seen = HashSet::with_capacity(wanted);
        let mut candidates = Vec::with_capacity(wanted);
        let mut add = |candidates: &mut Vec<Architecture>, architecture: Architecture| {
            if candidates.len() < wanted && seen.insert(architecture.clone()) {
                candidates.push(architecture);
            }
        };
        // Single paths in the sub-space: an upper bound on its architectures.
        let paths = self.space.allowed_options.iter().try_fold(1usize, |size, options| size.checked_mul(options.len()));
        match paths {
            // Few paths: derive from every one of them. If the space derived every path as
            // itself, the paths are exactly its architectures and the enumeration is complete.
            Some(size) if size <= wanted => {
                let mut paths_are_architectures = true;
                for index in 0..size {
                    let path = self.architecture_at(index);
                    let architecture = self.derive_path(context, &path)?;
                    paths_are_architectures &= architecture.choices.as_slice() == path.as_slice();
                    add(&mut candidates, architecture);
                }
                if paths_are_architectures {
                    return Ok(candidates);
                }
            }
            // A sub-space only a few times larger than the sample: drawing with rejection would
            // collide often, so derive from a uniform subset of the paths (partial Fisher-Yates).
            Some(size) if size <= wanted.saturating_mul(4) => {
                let mut indices: Vec<usize> = (0..size).collect();
                for position in 0..wanted {
                    let pick = position + uniform_below(context, (size - position) as u64)? as usize;
                    indices.swap(position, pick);
                    add(&mut candidates, self.derive_path(context, &self.architecture_at(indices[position]))?);
                }
            }
            _ => {}
        }
        // Draw with rejection; a space whose derivation merges many paths may have fewer
        // architectures than asked for, so the draws are bounded.
        let mut draws = 0;
        while candidates.len() < wanted && draws < 20 * wanted + 100 {
            let choices = self.sample_choices(context)?;
            add(&mut candidates, self.derive_path(context, &choices)?);
            draws += 1;
        }
        Ok(candidates)
    }

    /// The `index`-th architecture of the sub-space in mixed-radix order (last choice point fastest).
    fn architecture_at(&self, mut index: usize) -> Vec<u32> {
        let mut choices = vec![0; self.space.choice_points];
        for (point, options) in self.space.allowed_options.iter().enumerate().rev() {
            choices[point] = options[index % options.len()];
            index /= options.len();
        }
        choices
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use splitnas_plugin_api::ArchitectureStep;
    use splitnas_plugin_testkit::host::*;

    fn rsps(derive_samples: u32) -> Rsps {
        Rsps::create(&config_with::<Rsps>(json!({ "derive_samples": derive_samples })), &test_setup()).unwrap()
    }

    /// The test sub-space has 4 · 2 · 1 · 3 = 24 architectures.
    const SUB_SPACE_SIZE: usize = 24;

    #[test]
    fn paths_are_uniform_over_the_allowed_options() {
        let host = FakeHost::new(31);
        let mut algorithm = rsps(100);
        let context = host.context();
        let draws = 6000;
        let mut counts = [[0usize; 4]; 4];
        for _ in 0..draws {
            let sample = algorithm.scoring_sample(&context).unwrap();
            let weights = rows(&sample.weights.tensor());
            for (point, row) in sample.active.rows.iter().enumerate() {
                let active: Vec<usize> = (0..4).filter(|&option| row[option]).collect();
                assert_eq!(active.len(), 1, "one option per choice point");
                assert!(host.mask.is_allowed(point, active[0]), "sampled a disallowed option");
                assert_eq!(weights[point][active[0]], 1.0);
                assert_eq!(weights[point].iter().sum::<f32>(), 1.0);
                counts[point][active[0]] += 1;
            }
        }
        for (point, row) in counts.iter().enumerate() {
            let allowed = host.mask.allowed(point);
            let expected = draws as f64 / allowed.len() as f64;
            let chi_square: f64 = allowed.iter().map(|&option| (row[option as usize] as f64 - expected).powi(2) / expected).sum();
            // 99.9% quantile of χ² with 3 degrees of freedom is 16.3; fewer dof have lower ones.
            assert!(chi_square < 16.3, "choice point {point}: counts {row:?}, χ² = {chi_square}");
        }
    }

    #[test]
    fn weight_steps_train_single_paths_and_there_is_nothing_else_to_train() {
        let host = FakeHost::new(32);
        let mut algorithm = rsps(100);
        assert!(algorithm.architecture_parameters().unwrap().is_empty());
        let output = algorithm.weight_step(&host.context(), &host.train_batch(0)).unwrap();
        assert!(!output.trains_architecture);
        let call = host.forwards.borrow_mut().pop().unwrap();
        assert!(call.active.rows.iter().all(|row| row.iter().filter(|&&on| on).count() == 1));
        assert!(matches!(algorithm.architecture_step(&host.context(), &host.valid_batch(0), &host.train_batch(0)).unwrap(), ArchitectureStep::Skip));
        // The host's loop: single-path SGD steps lower the loss of random paths.
        let probe = algorithm.evaluation_sample(&host.context()).unwrap();
        let loss_before = host.train_loss(&probe.weights.tensor(), &probe.active);
        run_search(&host, &mut algorithm, 80, 0.5, 0.0);
        let loss_after = host.train_loss(&probe.weights.tensor(), &probe.active);
        assert!(loss_after < 0.7 * loss_before, "training loss {loss_before} -> {loss_after}");
    }

    /// A score with a unique best: the architecture (1, 2, 1, 3).
    fn score(architecture: &Architecture) -> f64 {
        let target = [1u32, 2, 1, 3];
        let distance = architecture.choices.iter().zip(target).filter(|(choice, wanted)| **choice != *wanted).count();
        1.0 - 0.2 * distance as f64 + 0.001 * f64::from(architecture.choices[0])
    }

    fn check_derive(derive_samples: u32, expected_evaluations: usize) {
        let host = FakeHost::new(33).with_scorer(score);
        let mut algorithm = rsps(derive_samples);
        let architecture = algorithm.derive(&host.context()).unwrap();
        let evaluated = host.evaluated.borrow();
        assert_eq!(evaluated.len(), expected_evaluations);
        let distinct: HashSet<_> = evaluated.iter().cloned().collect();
        assert_eq!(distinct.len(), evaluated.len(), "architectures are distinct");
        assert!(evaluated.iter().all(|candidate| host.mask.contains(candidate)));
        let best = evaluated.iter().map(score).fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(score(&architecture), best, "derive returns the best evaluated architecture");
        let metrics = host.metrics.borrow();
        assert_eq!(metrics.last().unwrap(), &("rsps/best_valid_accuracy".to_string(), best));
    }

    #[test]
    fn derive_evaluates_the_whole_sub_space_when_it_is_small() {
        check_derive(100, SUB_SPACE_SIZE);
        let host = FakeHost::new(34).with_scorer(score);
        assert_eq!(rsps(100).derive(&host.context()).unwrap().choices.as_slice(), &[1, 2, 1, 3]);
    }

    #[test]
    fn derive_samples_distinct_architectures_when_the_sub_space_is_larger() {
        check_derive(10, 10); // a subset of the enumeration (24 <= 4 · 10)
        check_derive(5, 5); // rejection sampling (24 > 4 · 5)
        check_derive(24, 24);
    }

    #[test]
    fn candidates_are_what_the_space_derives_from_weighted_paths() {
        // A space that keeps only the 2 strongest of its 4 choice points (as DARTS keeps 2 edges
        // per node): 8 + 4 + 12 + 2 + 6 + 3 = 35 architectures from 24 single paths.
        let host = FakeHost::new(35).with_keep_strongest(2);
        let mut algorithm = rsps(100);
        let architecture = algorithm.derive(&host.context()).unwrap();
        let evaluated = host.evaluated.borrow();
        assert_eq!(evaluated.len(), 35, "every architecture, found by drawing past the 24 paths");
        assert_eq!(evaluated.iter().cloned().collect::<HashSet<_>>().len(), 35);
        for candidate in evaluated.iter() {
            assert_eq!(candidate.choices.iter().filter(|&&c| c == Architecture::ABSENT).count(), 2);
            assert!(host.mask.contains(candidate));
        }
        assert!(evaluated.contains(&architecture));
        // Every weight handed to the space is a single path with a strength in (0, 1].
        for weights in host.derived_from.borrow().iter() {
            for row in rows(weights) {
                let nonzero: Vec<f32> = row.into_iter().filter(|&w| w != 0.0).collect();
                assert!(nonzero.len() == 1 && nonzero[0] > 0.0 && nonzero[0] <= 1.0, "{nonzero:?}");
            }
        }
        let metrics = host.metrics.borrow();
        assert!(metrics.contains(&("rsps/candidates".to_string(), 35.0)));
    }

    #[test]
    fn state_is_empty_and_config_is_checked() {
        let mut algorithm = rsps(100);
        assert_eq!(algorithm.state_json().unwrap(), "{}");
        algorithm.load_state_json("{}").unwrap();
        assert!(algorithm.load_state_json("{\"steps\": 3}").is_err());
        assert!(Rsps::create(&config_with::<Rsps>(json!({ "derive_samples": 0 })), &test_setup()).is_err());
        let error = Rsps::create("{\"samples\": 3}", &test_setup()).err().unwrap();
        assert!(error.message.contains("samples"));
    }
}
