//! The search-algorithm contract suite, run on a [`FakeHost`].
//!
//! Checks, by name:
//! - `create`: the factory accepts the default configuration (with the suite's overrides);
//! - `architecture_parameter_shapes`: every architecture parameter has a unique non-empty
//!   name, is a finite float tensor that requires gradients, has one row per choice point
//!   (`[choice points, ...]`), and the same tensors come back on every call;
//! - `honours_masks`: through epochs, weight and architecture steps, scoring, evaluation and
//!   derivation on a mask with disallowed options, a single-option row and a padding column,
//!   every forward and every sample gives weight 0 to options that are masked or inactive,
//!   activates only allowed options, and the derived architecture lies within the mask;
//! - `state_round_trip`: after some training, `state_json` loaded into a fresh instance
//!   gives back the same state;
//! - `learns_toy_task`: on [`FakeHost::toy_task`] (one option of every choice point clearly
//!   best, supernet weights frozen) a short search derives that option everywhere.

use splitnas_plugin_api::author::AlgorithmPlugin;
use splitnas_plugin_api::{Mask, TrainingProgress, WeightSample};
use tch::Tensor;

use crate::host::{rows, run_search, FakeHost};
use crate::ContractReport;

/// How the suite runs an algorithm.
#[derive(Clone, Debug)]
pub struct AlgorithmSuiteConfig {
    /// Merged over the component's default configuration, as the host merges a user's keys.
    pub overrides: serde_json::Value,
    pub seed: u64,
    /// Search steps of `learns_toy_task`.
    pub learning_steps: usize,
    /// The architecture optimizer's (Adam) learning rate in `learns_toy_task`.
    pub architecture_lr: f64,
    /// The option `learns_toy_task` makes best.
    pub good_option: usize,
}

impl Default for AlgorithmSuiteConfig {
    fn default() -> Self {
        AlgorithmSuiteConfig { overrides: serde_json::json!({}), seed: 3, learning_steps: 60, architecture_lr: 0.1, good_option: 2 }
    }
}

fn configuration<T: AlgorithmPlugin>(config: &AlgorithmSuiteConfig) -> String {
    let mut merged = T::default_config();
    if let Some(overrides) = config.overrides.as_object() {
        for (key, value) in overrides {
            merged[key] = value.clone();
        }
    }
    merged.to_string()
}

fn create<T: AlgorithmPlugin>(config: &AlgorithmSuiteConfig, host: &FakeHost) -> Result<T, String> {
    T::create(&configuration::<T>(config), &host.setup(config.seed)).map_err(|error| format!("create: {error}"))
}

/// What is wrong with mixing weights `weights` under `active` within `mask`, if anything.
pub fn weights_problem(weights: &Tensor, active: &Mask, mask: &Mask, what: &str) -> Option<String> {
    if active.rows.len() != mask.rows.len() {
        return Some(format!("{what}: the active mask has {} rows, the space {}", active.rows.len(), mask.rows.len()));
    }
    if weights.size() != [mask.rows.len() as i64, mask.rows[0].len() as i64] {
        return Some(format!("{what}: weights are {:?}, expected [choice points, max_options]", weights.size()));
    }
    let values = rows(weights);
    for (point, row) in active.rows.iter().enumerate() {
        for (option, &on) in row.iter().enumerate() {
            if on && !mask.is_allowed(point, option) {
                return Some(format!("{what}: option {option} of choice point {point} is active but masked"));
            }
            let weight = values[point][option];
            if !mask.is_allowed(point, option) && weight != 0.0 {
                return Some(format!("{what}: masked option {option} of choice point {point} has weight {weight}"));
            }
            if !on && weight != 0.0 {
                return Some(format!("{what}: inactive option {option} of choice point {point} has weight {weight}"));
            }
        }
    }
    None
}

fn sample_problem(sample: &WeightSample, mask: &Mask, what: &str) -> Option<String> {
    weights_problem(&sample.weights.tensor(), &sample.active, mask, what)
}

fn check_parameter_shapes<T: AlgorithmPlugin>(config: &AlgorithmSuiteConfig) -> Result<(), String> {
    let host = FakeHost::new(config.seed);
    let algorithm = create::<T>(config, &host)?;
    let first = algorithm.architecture_parameters().map_err(|error| error.to_string())?;
    let second = algorithm.architecture_parameters().map_err(|error| error.to_string())?;
    let mut names = std::collections::BTreeSet::new();
    for named in &first {
        let name = named.name.as_str();
        let tensor = named.tensor.tensor();
        if name.is_empty() || !names.insert(name.to_string()) {
            return Err(format!("architecture parameter names must be unique and non-empty, got {name:?} twice or empty"));
        }
        if !tensor.requires_grad() || !tensor.is_floating_point() {
            return Err(format!("architecture parameter {name} must be a float tensor that requires gradients"));
        }
        if tensor.size().first().copied() != Some(host.space.num_choice_points() as i64) {
            return Err(format!(
                "architecture parameter {name} is {:?}: expected one row per choice point ({})",
                tensor.size(),
                host.space.num_choice_points()
            ));
        }
        if !bool::try_from(tensor.isfinite().all()).unwrap_or(false) {
            return Err(format!("architecture parameter {name} has non-finite values"));
        }
    }
    let same = first.len() == second.len()
        && first.iter().zip(&second).all(|(a, b)| a.name == b.name && a.tensor.tensor().data_ptr() == b.tensor.tensor().data_ptr());
    if !same {
        return Err("architecture_parameters must hand back the same tensors on every call (the host's optimizer holds them)".into());
    }
    Ok(())
}

fn check_masks<T: AlgorithmPlugin>(config: &AlgorithmSuiteConfig) -> Result<(), String> {
    // The fake host refuses forwards that break the mask; this check also looks at the samples.
    let host = FakeHost::new(config.seed);
    let mask = host.mask.clone();
    let mut algorithm = create::<T>(config, &host)?;
    let context = host.context();
    for epoch in 0..2 {
        let progress = TrainingProgress { epoch, total_epochs: 2 };
        host.progress.set(progress);
        algorithm.on_epoch_start(&context, progress).map_err(|error| format!("on_epoch_start: {error}"))?;
        for step in 0..3 {
            algorithm.weight_step(&context, &host.train_batch(step)).map_err(|error| format!("weight_step: {error}"))?;
            algorithm
                .architecture_step(&context, &host.valid_batch(step), &host.train_batch(step))
                .map_err(|error| format!("architecture_step: {error}"))?;
            let scoring = algorithm.scoring_sample(&context).map_err(|error| format!("scoring_sample: {error}"))?;
            if let Some(problem) = sample_problem(&scoring, &mask, "scoring_sample") {
                return Err(problem);
            }
            let evaluation = algorithm.evaluation_sample(&context).map_err(|error| format!("evaluation_sample: {error}"))?;
            if let Some(problem) = sample_problem(&evaluation, &mask, "evaluation_sample") {
                return Err(problem);
            }
        }
    }
    for (index, forward) in host.forwards.borrow().iter().enumerate() {
        if let Some(problem) = weights_problem(&forward.weights, &forward.active, &mask, &format!("forward {index}")) {
            return Err(problem);
        }
    }
    let architecture = algorithm.derive(&context).map_err(|error| format!("derive: {error}"))?;
    if !mask.contains(&architecture) {
        return Err(format!("derive gave {:?}, outside the mask", architecture.choices));
    }
    for weights in host.derived_from.borrow().iter() {
        let values = rows(weights);
        for (point, row) in values.iter().enumerate() {
            if let Some(option) = row.iter().enumerate().position(|(option, &w)| !mask.is_allowed(point, option) && w > 0.0) {
                return Err(format!("derive handed the space a positive weight for masked option {option} of choice point {point}"));
            }
        }
    }
    Ok(())
}

fn state_of<T: AlgorithmPlugin>(algorithm: &T) -> Result<serde_json::Value, String> {
    let text = algorithm.state_json().map_err(|error| format!("state_json: {error}"))?;
    serde_json::from_str(&text).map_err(|error| format!("state_json is not JSON ({error}): {text}"))
}

fn check_state_round_trip<T: AlgorithmPlugin>(config: &AlgorithmSuiteConfig) -> Result<(), String> {
    let host = FakeHost::new(config.seed);
    let context = host.context();
    let mut trained = create::<T>(config, &host)?;
    // Late in a schedule, so that temperatures and counters differ from a fresh instance's.
    let progress = TrainingProgress { epoch: 3, total_epochs: 5 };
    host.progress.set(progress);
    trained.on_epoch_start(&context, progress).map_err(|error| format!("on_epoch_start: {error}"))?;
    for step in 0..2 {
        trained.weight_step(&context, &host.train_batch(step)).map_err(|error| format!("weight_step: {error}"))?;
    }
    let saved = state_of(&trained)?;
    let mut fresh = create::<T>(config, &host)?;
    fresh.load_state_json(&saved.to_string()).map_err(|error| format!("load_state_json of its own state: {error}"))?;
    let restored = state_of(&fresh)?;
    if restored != saved {
        return Err(format!("state_json {saved} loaded into a fresh instance gives back {restored}"));
    }
    Ok(())
}

fn check_learns<T: AlgorithmPlugin>(config: &AlgorithmSuiteConfig) -> Result<(), String> {
    let host = FakeHost::toy_task(config.seed, config.good_option);
    let context = host.context();
    let mut algorithm = create::<T>(config, &host)?;
    let epochs = 4;
    let steps_per_epoch = config.learning_steps.div_ceil(epochs).max(1);
    for epoch in 0..epochs {
        let progress = TrainingProgress { epoch: epoch as u32, total_epochs: epochs as u32 };
        host.progress.set(progress);
        algorithm.on_epoch_start(&context, progress).map_err(|error| format!("on_epoch_start: {error}"))?;
        run_search(&host, &mut algorithm, steps_per_epoch, 0.0, config.architecture_lr);
    }
    let architecture = algorithm.derive(&context).map_err(|error| format!("derive: {error}"))?;
    if architecture.choices.iter().any(|&choice| choice as usize != config.good_option) {
        return Err(format!(
            "after {} steps on a task where option {} is best at every choice point, derive gave {:?}",
            steps_per_epoch * epochs,
            config.good_option,
            architecture.choices
        ));
    }
    Ok(())
}

/// Runs every check on `T`; see the module documentation.
pub fn run_contract<T: AlgorithmPlugin>(config: &AlgorithmSuiteConfig) -> ContractReport {
    let mut report = ContractReport::new(format!("algorithm contract of {}", T::NAME));
    report.run("create", || create::<T>(config, &FakeHost::new(config.seed)).map(drop));
    report.run("architecture_parameter_shapes", || check_parameter_shapes::<T>(config));
    report.run("honours_masks", || check_masks::<T>(config));
    report.run("state_round_trip", || check_state_round_trip::<T>(config));
    report.run("learns_toy_task", || check_learns::<T>(config));
    report
}

/// Runs [`run_contract`] and panics with every failure.
pub fn assert_contract<T: AlgorithmPlugin>(config: &AlgorithmSuiteConfig) {
    run_contract::<T>(config).assert_passed();
}
