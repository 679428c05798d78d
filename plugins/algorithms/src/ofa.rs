//! OFA (Cai et al., ICLR 2020): progressive shrinking of a weight-shared supernet, then an
//! evolutionary search under a FLOPs and/or latency window.
//!
//! Training runs in phases, each with its own epochs, learning rate (a cosine from the phase's
//! rate to 0, moved every step: ABI 1.4 `weight_learning_rate`) and number of subnets per
//! step. OFA's sequence: the full network (largest kernel, ratio and depth), then elastic
//! kernel, depth ({3,4} then {2,3,4}), expand ({4,6} then {3,4,6}). A phase restricts choice
//! points by their group (`kernel`, `expand`, `depth`, as the `ofa` space names them) to the
//! option names it lists, always within the sub-supernet's mask (where the two share nothing,
//! the mask's last option: its largest). Each step trains `subnets_per_step` uniformly sampled
//! subnets, summing their losses (OFA accumulates their gradients).
//!
//! Knowledge distillation: from the end of the teacher phase (`full`) on, the loss is
//! `(kd_ratio · KD + CE) · 2 / (1 + kd_ratio)`, CE label-smoothed as the host says and KD the
//! cross-entropy against the teacher's softmax. The teacher is a copy of the supernet's
//! parameters at the end of that phase (or loaded from `teacher_checkpoint`), kept as state
//! tensors: checkpointed, restored on resume, inherited by children. Its forward pass swaps it
//! into the supernet for one pass, in training mode as OFA's teacher runs; that pass moves the
//! supernet's batch-norm running statistics like one more sampled subnet (the host evaluates
//! subnets with batch statistics, so nothing reads them).
//!
//! Not as OFA: no warm-up epochs inside a phase, no elastic image size, and the weights' SGD
//! momentum carries over from phase to phase (OFA starts each phase with a fresh optimizer;
//! the momentum is reordered with the channels when a phase reorganizes the supernet).
//!
//! Derive: OFA's evolution (population, iterations, parent ratio, mutation ratio, mutate
//! probability), every candidate inside the sub-supernet's mask, the FLOPs window (the host's
//! `network_stats`, ABI 1.4) and the latency window (the host's `network_latency_ms` from the
//! run's latency table of network parts, ABI 1.5), fitness the subnet's validation accuracy
//! through the supernet (`HostContext::evaluate`), memoised, or with `fitness = "predictor"`
//! OFA's accuracy predictor trained on sampled subnets' accuracies ([`crate::ofa_predictor`]),
//! whose held-out rank correlation is logged (`ofa/predictor_held_out_kendall_tau`).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::json;
use splitnas_plugin_api::author::{parse_config, AlgorithmPlugin, Component};
use splitnas_plugin_api::{
    AlgorithmSetup, Architecture, Batch, HostContextRef, NamedTensor, OwnedTensor, PluginError, StepProgress, TensorRef, TrainingProgress,
    WeightSample, WeightStepLoss,
};
use splitnas_seeded_rng::SeededRng;
use tch::{Kind, Reduction, Tensor};

use crate::common::{host, parse_state, state_to_json, uniform_below, MaskedSpace, NoState};
use crate::ofa_predictor::{rank_correlations, AccuracyPredictor, PredictorConfig};

/// One phase of progressive shrinking.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Phase {
    name: String,
    epochs: u32,
    /// The weights' learning rate at the phase's first step (cosine to 0 over the phase).
    lr: f64,
    subnets_per_step: u32,
    /// Per choice-point group, the option names this phase samples from (groups not listed:
    /// every option the mask allows).
    #[serde(default)]
    allow: BTreeMap<String, Vec<String>>,
    /// A reorganization the supernet does at the phase's first epoch, in the space's terms
    /// (ABI 1.4 `reorganize_supernet`; the ofa space: `{"expand_ratio_stage": k}`, OFA's
    /// channel re-sorting by importance before each expand phase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reorganize: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Evolution {
    population: u32,
    iterations: u32,
    parent_ratio: f64,
    mutation_ratio: f64,
    mutate_probability: f64,
    /// The FLOPs window (multiply-accumulates of the stand-alone network at the run's image
    /// size); 0 = no bound.
    min_flops: f64,
    max_flops: f64,
    /// The latency window in milliseconds, from `[search] latency_table` (a table of network
    /// parts measured by `splitnas bench latency`); 0 = no bound.
    #[serde(default)]
    min_latency_ms: f64,
    #[serde(default)]
    max_latency_ms: f64,
    /// Draws allowed to find one subnet inside the window before giving up.
    max_tries: u32,
    /// What ranks candidates: their accuracy through the supernet, each evaluated, or OFA's
    /// accuracy predictor trained on sampled subnets' accuracies.
    #[serde(default)]
    fitness: Fitness,
    /// The predictor's settings, read with `fitness = "predictor"`.
    #[serde(default)]
    predictor: PredictorConfig,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Fitness {
    #[default]
    Supernet,
    Predictor,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OfaConfig {
    phases: Vec<Phase>,
    kd_ratio: f64,
    /// The phase whose end gives the teacher (its parameters then); none: no distillation
    /// unless `teacher_checkpoint` is given.
    teacher_phase: Option<String>,
    /// A safetensors file of the supernet's parameters by name (a splitnas node checkpoint,
    /// whose `param.` prefixes are dropped, or a plain state dict) to distil from instead.
    teacher_checkpoint: Option<String>,
    evolution: Evolution,
}

fn default_phases() -> Vec<Phase> {
    let phase = |name: &str, epochs: u32, lr: f64, subnets_per_step: u32, allow: &[(&str, &[&str])]| Phase {
        name: name.to_string(),
        epochs,
        lr,
        subnets_per_step,
        allow: allow.iter().map(|(group, names)| (group.to_string(), names.iter().map(|name| name.to_string()).collect())).collect(),
        reorganize: None,
    };
    // OFA's train_elastic_expand: channels sorted before the first expand phase (stage 0),
    // then sorted within nested bands before the second (stage 1).
    let reorganized = |phase: Phase, stage: u32| Phase { reorganize: Some(json!({ "expand_ratio_stage": stage })), ..phase };
    // OFA's train_ofa_net.py (per device): the full network, then kernel, depth and expand.
    vec![
        phase("full", 180, 0.1625, 1, &[("kernel", &["7"]), ("expand", &["6"]), ("depth", &["4"])]),
        phase("kernel", 120, 0.06, 1, &[("expand", &["6"]), ("depth", &["4"])]),
        phase("depth 1", 25, 0.005, 2, &[("expand", &["6"]), ("depth", &["3", "4"])]),
        phase("depth 2", 120, 0.015, 2, &[("expand", &["6"])]),
        reorganized(phase("expand 1", 25, 0.005, 4, &[("expand", &["4", "6"])]), 0),
        reorganized(phase("expand 2", 120, 0.015, 4, &[]), 1),
    ]
}

/// What one phase samples from: per choice point, the allowed option indices.
struct PhaseChoices {
    first_epoch: u32,
    options: Vec<Vec<u32>>,
}

pub struct Ofa {
    config: OfaConfig,
    space: MaskedSpace,
    phases: Vec<PhaseChoices>,
    /// The teacher's parameters by name, once taken.
    teacher: Option<Vec<(String, Tensor)>>,
}

impl Component for Ofa {
    const NAME: &'static str = "ofa";
    const DESCRIPTION: &'static str =
        "OFA: progressive shrinking (full, kernel, depth, expand phases; distillation), evolutionary search under a FLOPs and/or latency window";
    fn default_config() -> serde_json::Value {
        json!({
            "phases": default_phases(),
            "kd_ratio": 1.0,
            "teacher_phase": "full",
            "teacher_checkpoint": null,
            "evolution": {
                "population": 100, "iterations": 500, "parent_ratio": 0.25, "mutation_ratio": 0.5, "mutate_probability": 0.1,
                "min_flops": 0.0, "max_flops": 600e6, "min_latency_ms": 0.0, "max_latency_ms": 0.0, "max_tries": 10000,
                "fitness": "supernet", "predictor": PredictorConfig::default()
            }
        })
    }
}

fn invalid(message: impl std::fmt::Display) -> PluginError {
    PluginError::invalid_config(format!("ofa: {message}"))
}

impl AlgorithmPlugin for Ofa {
    fn create(config: &str, setup: &AlgorithmSetup) -> Result<Self, PluginError> {
        let config: OfaConfig = parse_config(Self::NAME, config)?;
        let space = MaskedSpace::new(Self::NAME, setup)?;
        if config.phases.is_empty() {
            return Err(invalid("`phases` is empty: give at least one phase"));
        }
        let evolution = &config.evolution;
        if evolution.population < 2 || evolution.max_tries == 0 {
            return Err(invalid("`evolution.population` must be at least 2 and `evolution.max_tries` at least 1"));
        }
        for (key, value) in [
            ("parent_ratio", evolution.parent_ratio),
            ("mutation_ratio", evolution.mutation_ratio),
            ("mutate_probability", evolution.mutate_probability),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(invalid(format!("`evolution.{key}` must be in [0, 1], got {value}")));
            }
        }
        if evolution.fitness == Fitness::Predictor {
            evolution.predictor.validate().map_err(invalid)?;
        }
        for (window, min, max) in
            [("flops", evolution.min_flops, evolution.max_flops), ("latency_ms", evolution.min_latency_ms, evolution.max_latency_ms)]
        {
            if !(min >= 0.0 && max >= 0.0 && min.is_finite() && max.is_finite()) || (max > 0.0 && min > max) {
                return Err(invalid(format!(
                    "the window `evolution.min_{window}` = {min}, `max_{window}` = {max} is empty: give bounds >= 0 with min <= max (0 = no bound)"
                )));
            }
        }
        if !(config.kd_ratio >= 0.0 && config.kd_ratio.is_finite()) {
            return Err(invalid(format!("`kd_ratio` must be a non-negative number, got {}", config.kd_ratio)));
        }
        if let Some(name) = &config.teacher_phase {
            if !config.phases.iter().any(|phase| &phase.name == name) {
                return Err(invalid(format!("`teacher_phase` is `{name}`, but no phase has that name")));
            }
        }
        let mut phases = Vec::with_capacity(config.phases.len());
        let mut first_epoch = 0;
        for phase in &config.phases {
            if phase.subnets_per_step == 0 || !(phase.lr >= 0.0 && phase.lr.is_finite()) {
                return Err(invalid(format!("phase `{}`: `subnets_per_step` must be at least 1 and `lr` non-negative", phase.name)));
            }
            phases.push(PhaseChoices { first_epoch, options: phase_options(phase, setup, &space)? });
            first_epoch += phase.epochs;
        }
        let teacher = match &config.teacher_checkpoint {
            Some(path) => Some(read_teacher(path, space.device)?),
            None => None,
        };
        Ok(Ofa { config, space, phases, teacher })
    }

    fn architecture_parameters(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(Vec::new())
    }

    /// Checks the phases fill the run's epochs, and takes the teacher at the end of its phase.
    fn on_epoch_start(&mut self, context: &HostContextRef<'_>, progress: TrainingProgress) -> Result<(), PluginError> {
        let total: u32 = self.config.phases.iter().map(|phase| phase.epochs).sum();
        if total != progress.total_epochs {
            return Err(invalid(format!(
                "the phases last {total} epochs ({}), but the search has {}: make `[search] epochs` their sum",
                self.config.phases.iter().map(|phase| format!("{} {}", phase.name, phase.epochs)).collect::<Vec<_>>().join(", "),
                progress.total_epochs
            )));
        }
        let index = self.phase_at(progress.epoch);
        if let (Some(request), true) = (&self.config.phases[index].reorganize, self.phases[index].first_epoch == progress.epoch) {
            host(context.reorganize_supernet(request.to_string().as_str().into())).map_err(|error| {
                PluginError::new(error.kind, format!("ofa: phase `{}`'s reorganization: {}", self.config.phases[index].name, error.message))
            })?;
            host(context.log_metric("ofa/reorganized".into(), f64::from(progress.epoch)))?;
        }
        if self.teacher.is_none() {
            if let Some(name) = &self.config.teacher_phase {
                let index = self.config.phases.iter().position(|phase| &phase.name == name).unwrap_or_default();
                let end = self.phases[index].first_epoch + self.config.phases[index].epochs;
                if progress.epoch >= end {
                    let parameters = host(context.supernet_parameters())?;
                    let copies = tch::no_grad(|| parameters.iter().map(|named| (named.name.to_string(), named.tensor.tensor().copy())).collect());
                    self.teacher = Some(sorted_by_name(copies));
                    host(context.log_metric("ofa/teacher_taken".into(), progress.epoch as f64))?;
                }
            }
        }
        Ok(())
    }

    fn weight_step(&mut self, context: &HostContextRef<'_>, batch: &Batch) -> Result<WeightStepLoss, PluginError> {
        let progress = host(context.progress())?;
        let phase = self.phase_at(progress.epoch);
        let label_smoothing = host(context.label_smoothing())?;
        let labels = batch.labels.tensor();
        let soft_targets = match (&self.teacher, self.config.kd_ratio > 0.0) {
            (Some(teacher), true) => Some(self.teacher_soft_targets(context, batch, teacher)?),
            _ => None,
        };
        let mut total: Option<Tensor> = None;
        for _ in 0..self.config.phases[phase].subnets_per_step {
            let sample = self.sample(context, phase)?;
            let logits = host(context.forward(batch.images.as_ref(), TensorRef::new(&sample.weights.tensor()), &sample.active, true))?.into_tensor();
            let cross_entropy = logits.f_cross_entropy_loss::<Tensor>(&labels, None, Reduction::Mean, -100, label_smoothing)?;
            let loss = match &soft_targets {
                Some(targets) => {
                    let distillation =
                        (-(targets * logits.f_log_softmax(1, Kind::Float)?)).f_sum_dim_intlist(1, false, Kind::Float)?.f_mean(Kind::Float)?;
                    let kd = self.config.kd_ratio;
                    (distillation * kd + cross_entropy) * (2.0 / (1.0 + kd))
                }
                None => cross_entropy,
            };
            total = Some(match total {
                None => loss,
                Some(sum) => sum + loss,
            });
        }
        let loss = total.ok_or_else(|| PluginError::other("ofa: a step sampled no subnet"))?;
        Ok(WeightStepLoss { loss: OwnedTensor::new(loss), trains_architecture: false })
    }

    /// The other choice points while gradient matching scores one: a subnet sampled as the
    /// current phase samples (the kernel phase: random kernels, the largest ratio and depth).
    fn scoring_sample(&mut self, context: &HostContextRef<'_>) -> Result<WeightSample, PluginError> {
        let epoch = host(context.progress())?.epoch;
        self.sample(context, self.phase_at(epoch))
    }

    /// The largest subnet the mask allows.
    fn evaluation_sample(&mut self, _context: &HostContextRef<'_>) -> Result<WeightSample, PluginError> {
        let choices: Vec<u32> =
            self.space.allowed_options.iter().map(|options| *options.last().expect("every choice point allows an option")).collect();
        self.path(&choices)
    }

    fn derive(&mut self, context: &HostContextRef<'_>) -> Result<Architecture, PluginError> {
        Evolver { config: &self.config.evolution, space: &self.space, context, fitness: HashMap::new(), predictor: None }.run()
    }

    fn weight_learning_rate(&self, progress: StepProgress) -> Result<Option<f64>, PluginError> {
        let index = self.phase_at(progress.epoch);
        let phase = &self.config.phases[index];
        let steps = u64::from(progress.steps_per_epoch.max(1));
        let done = u64::from(progress.epoch - self.phases[index].first_epoch) * steps + u64::from(progress.step);
        let total = u64::from(phase.epochs.max(1)) * steps;
        Ok(Some(0.5 * phase.lr * (1.0 + (std::f64::consts::PI * done as f64 / total as f64).cos())))
    }

    /// No scalar state: the phase follows from the epoch, the teacher is a state tensor.
    fn state_json(&self) -> Result<String, PluginError> {
        state_to_json(Self::NAME, &NoState {})
    }

    fn load_state_json(&mut self, state: &str) -> Result<(), PluginError> {
        let NoState {} = parse_state(Self::NAME, state)?;
        Ok(())
    }

    fn state_tensors(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(self.teacher.iter().flatten().map(|(name, tensor)| NamedTensor::share(format!("teacher.{name}").as_str(), tensor)).collect())
    }

    fn load_state_tensors(&mut self, tensors: Vec<NamedTensor>) -> Result<(), PluginError> {
        if tensors.is_empty() {
            return Ok(());
        }
        let mut teacher = Vec::with_capacity(tensors.len());
        for named in tensors {
            let name = named.name.as_str().strip_prefix("teacher.").ok_or_else(|| {
                PluginError::invalid_input(format!("ofa: the state tensor `{}` is not a teacher tensor (`teacher.` prefix)", named.name))
            })?;
            teacher.push((name.to_string(), named.tensor.tensor().f_to_device(self.space.device)?.f_detach_copy()?));
        }
        self.teacher = Some(sorted_by_name(teacher));
        Ok(())
    }
}

/// One order for the teacher's tensors whether taken or restored (a checkpoint lists them in
/// its own order), so that everything summed over them repeats exactly after a resume.
fn sorted_by_name(mut tensors: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

/// Per choice point, the options `phase` samples from within the mask.
fn phase_options(phase: &Phase, setup: &AlgorithmSetup, space: &MaskedSpace) -> Result<Vec<Vec<u32>>, PluginError> {
    for (group, names) in &phase.allow {
        let points: Vec<_> = setup.space.choice_points.iter().filter(|point| point.group.as_str() == group).collect();
        if points.is_empty() {
            return Err(invalid(format!("phase `{}` restricts the group `{group}`, which no choice point of the space has", phase.name)));
        }
        for name in names {
            if !points.iter().any(|point| point.options.iter().any(|option| option.name.as_str() == name)) {
                return Err(invalid(format!("phase `{}`: the group `{group}` has no option `{name}`", phase.name)));
            }
        }
    }
    Ok(setup
        .space
        .choice_points
        .iter()
        .zip(&space.allowed_options)
        .map(|(point, allowed)| match phase.allow.get(point.group.as_str()) {
            None => allowed.clone(),
            Some(names) => {
                let chosen: Vec<u32> =
                    allowed.iter().copied().filter(|&option| names.iter().any(|name| point.options[option as usize].name.as_str() == name)).collect();
                if chosen.is_empty() {
                    vec![*allowed.last().expect("every choice point allows an option")]
                } else {
                    chosen
                }
            }
        })
        .collect())
}

/// The teacher's parameters from a safetensors file.
fn read_teacher(path: &str, device: tch::Device) -> Result<Vec<(String, Tensor)>, PluginError> {
    let tensors = Tensor::read_safetensors(path)
        .map_err(|error| invalid(format!("`teacher_checkpoint` {path}: {error} (expected a safetensors file of the supernet's parameters)")))?;
    let mut teacher = Vec::new();
    for (name, tensor) in tensors {
        let name = match name.strip_prefix("param.") {
            Some(stripped) => stripped.to_string(),
            None if name.contains('.') && !name.starts_with("buffer.") && !name.starts_with("sgd.") => name,
            None => continue,
        };
        teacher.push((name, tensor.f_to_device(device)?));
    }
    Ok(sorted_by_name(teacher))
}

impl Ofa {
    /// The phase `epoch` lies in (the last one past the end).
    fn phase_at(&self, epoch: u32) -> usize {
        self.phases.iter().rposition(|phase| phase.first_epoch <= epoch).unwrap_or(0)
    }

    fn path(&self, choices: &[u32]) -> Result<WeightSample, PluginError> {
        Ok(WeightSample { weights: OwnedTensor::new(self.space.one_hot_from_host(choices)?), active: self.space.single_path_active(choices) })
    }

    /// A subnet of `phase`: every choice point uniform among the phase's options.
    fn sample(&self, context: &HostContextRef<'_>, phase: usize) -> Result<WeightSample, PluginError> {
        let choices = self.phases[phase]
            .options
            .iter()
            .map(|options| Ok(options[uniform_below(context, options.len() as u64)? as usize]))
            .collect::<Result<Vec<u32>, PluginError>>()?;
        self.path(&choices)
    }

    /// The teacher's softmax on `batch`: its parameters swapped into the supernet for one
    /// training-mode pass without gradients, then the student's put back.
    fn teacher_soft_targets(&self, context: &HostContextRef<'_>, batch: &Batch, teacher: &[(String, Tensor)]) -> Result<Tensor, PluginError> {
        let parameters = host(context.supernet_parameters())?;
        let by_name: HashMap<&str, &Tensor> = teacher.iter().map(|(name, tensor)| (name.as_str(), tensor)).collect();
        let mut swapped = Vec::with_capacity(parameters.len());
        let result = tch::no_grad(|| -> Result<Tensor, PluginError> {
            for named in parameters.iter() {
                let Some(teacher_value) = by_name.get(named.name.as_str()) else {
                    return Err(PluginError::invalid_input(format!("ofa: the teacher has no parameter `{}`", named.name)));
                };
                let live = named.tensor.tensor();
                swapped.push((live.shallow_clone(), live.f_detach_copy()?));
                live.shallow_clone().f_copy_(teacher_value)?;
            }
            // The full network: the largest option of every choice point. A leaf whose mask has
            // lost the largest kernel cannot run it; its teacher is the largest subnet it allows.
            let choices: Vec<u32> = self.space.allowed_options.iter().map(|options| *options.last().expect("an allowed option")).collect();
            let sample = self.path(&choices)?;
            let logits = teacher_forward(context, batch, &sample)?;
            Ok(logits.f_softmax(1, Kind::Float)?)
        });
        tch::no_grad(|| -> Result<(), PluginError> {
            for (mut live, saved) in swapped {
                live.f_copy_(&saved)?;
            }
            Ok(())
        })?;
        result
    }
}

fn teacher_forward(context: &HostContextRef<'_>, batch: &Batch, sample: &WeightSample) -> Result<Tensor, PluginError> {
    Ok(host(context.forward(batch.images.as_ref(), TensorRef::new(&sample.weights.tensor()), &sample.active, true))?.into_tensor())
}

/// OFA's `EvolutionFinder`, with the supernet's validation accuracy as fitness.
struct Evolver<'a, 'c> {
    config: &'a Evolution,
    space: &'a MaskedSpace,
    context: &'a HostContextRef<'c>,
    /// Accuracies through the supernet, by subnet.
    fitness: HashMap<Vec<u32>, f64>,
    /// With `fitness = "predictor"`, once trained: it ranks the candidates instead.
    predictor: Option<AccuracyPredictor>,
}

impl Evolver<'_, '_> {
    fn random_below(&self, bound: usize) -> Result<usize, PluginError> {
        Ok(uniform_below(self.context, bound as u64)? as usize)
    }

    /// Uniform in [0, 1) from the host's generator.
    fn unit(&self) -> Result<f64, PluginError> {
        Ok((host(self.context.next_random())? >> 11) as f64 / (1u64 << 53) as f64)
    }

    fn within_window(&self, choices: &[u32]) -> Result<bool, PluginError> {
        let config = self.config;
        let inside = |value: f64, min: f64, max: f64| (min <= 0.0 || value >= min) && (max <= 0.0 || value <= max);
        let architecture = || Architecture { choices: choices.to_vec().into() };
        if config.min_flops > 0.0 || config.max_flops > 0.0 {
            let flops = host(self.context.network_stats(&architecture()))?.flops as f64;
            if !inside(flops, config.min_flops, config.max_flops) {
                return Ok(false);
            }
        }
        if config.min_latency_ms > 0.0 || config.max_latency_ms > 0.0 {
            let latency = self.context.network_latency_ms(&architecture()).into_result().map_err(|error| {
                PluginError::new(
                    error.kind,
                    format!("ofa: the latency window (`evolution.min_latency_ms`/`max_latency_ms`) needs the subnet's latency: {error}"),
                )
            })?;
            if !inside(latency, config.min_latency_ms, config.max_latency_ms) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Draws from `draw` until one lies inside the window.
    fn until_valid(&self, what: &str, mut draw: impl FnMut(&Self) -> Result<Vec<u32>, PluginError>) -> Result<Vec<u32>, PluginError> {
        for _ in 0..self.config.max_tries {
            let choices = draw(self)?;
            if self.within_window(&choices)? {
                return Ok(choices);
            }
        }
        let config = self.config;
        Err(PluginError::invalid_input(format!(
            "ofa: no {what} within the FLOPs window [{}, {}] and the latency window [{}, {}] ms after {} draws in this sub-supernet's mask: widen `evolution.min_flops`/`max_flops` or `min_latency_ms`/`max_latency_ms` (0 = no bound)",
            config.min_flops, config.max_flops, config.min_latency_ms, config.max_latency_ms, config.max_tries
        )))
    }

    fn random_subnet(&self) -> Result<Vec<u32>, PluginError> {
        self.space.allowed_options.iter().map(|options| Ok(options[self.random_below(options.len())?])).collect()
    }

    fn score(&mut self, choices: &[u32]) -> Result<f64, PluginError> {
        if let Some(predictor) = &self.predictor {
            return Ok(predictor.predict(choices));
        }
        self.accuracy(choices)
    }

    /// The subnet's accuracy through the supernet (memoised).
    fn accuracy(&mut self, choices: &[u32]) -> Result<f64, PluginError> {
        if let Some(&accuracy) = self.fitness.get(choices) {
            return Ok(accuracy);
        }
        let accuracy = host(self.context.evaluate(&Architecture { choices: choices.to_vec().into() }))?;
        self.fitness.insert(choices.to_vec(), accuracy);
        Ok(accuracy)
    }

    /// OFA's predictor: sampled subnets (within the mask and the windows) evaluated through
    /// the supernet, the last `held_out` share kept aside to measure its rank correlation.
    fn train_predictor(&mut self) -> Result<AccuracyPredictor, PluginError> {
        let config = self.config.predictor.clone();
        let mut samples = Vec::with_capacity(config.samples as usize);
        for _ in 0..config.samples {
            let choices = self.until_valid("predictor sample", |evolver| evolver.random_subnet())?;
            let accuracy = self.accuracy(&choices)?;
            samples.push((choices, accuracy));
        }
        let held_out = config.held_out_count();
        let (training, testing) = samples.split_at(samples.len() - held_out);
        let widths: Vec<usize> = self.space.mask.rows.iter().map(|row| row.len()).collect();
        let mut random = SeededRng::new(host(self.context.next_random())?);
        let predictor = AccuracyPredictor::train(training, &widths, &config, &mut random)?;
        let predicted: Vec<f64> = testing.iter().map(|(choices, _)| predictor.predict(choices)).collect();
        let measured: Vec<f64> = testing.iter().map(|(_, accuracy)| *accuracy).collect();
        let (tau, rho) = rank_correlations(&predicted, &measured);
        let mean_error = predicted.iter().zip(&measured).map(|(p, m)| (p - m).abs()).sum::<f64>() / held_out as f64;
        for (name, value) in [
            ("ofa/predictor_samples", samples.len() as f64),
            ("ofa/predictor_held_out", held_out as f64),
            ("ofa/predictor_held_out_kendall_tau", tau),
            ("ofa/predictor_held_out_spearman", rho),
            ("ofa/predictor_held_out_mean_absolute_error", mean_error),
        ] {
            host(self.context.log_metric(name.into(), value))?;
        }
        Ok(predictor)
    }

    fn run(mut self) -> Result<Architecture, PluginError> {
        let config = self.config.clone();
        if config.fitness == Fitness::Predictor {
            self.predictor = Some(self.train_predictor()?);
        }
        let population_size = config.population as usize;
        let parents_size = ((population_size as f64 * config.parent_ratio).round() as usize).max(1);
        let mutations = (population_size as f64 * config.mutation_ratio).round() as usize;
        let mut population = Vec::with_capacity(population_size);
        for _ in 0..population_size {
            let choices = self.until_valid("random subnet", |evolver| evolver.random_subnet())?;
            let accuracy = self.score(&choices)?;
            population.push((choices, accuracy));
        }
        let mut best = best_of(&population);
        for iteration in 0..config.iterations {
            population.sort_by(|a, b| b.1.total_cmp(&a.1));
            let parents: Vec<(Vec<u32>, f64)> = population[..parents_size.min(population.len())].to_vec();
            let mut next = parents.clone();
            for _ in 0..mutations {
                let parent = &parents[self.random_below(parents.len())?].0;
                let child = self.until_valid("mutation", |evolver| {
                    parent
                        .iter()
                        .zip(&evolver.space.allowed_options)
                        .map(|(&gene, options)| {
                            Ok(if evolver.unit()? < config.mutate_probability { options[evolver.random_below(options.len())?] } else { gene })
                        })
                        .collect()
                })?;
                let accuracy = self.score(&child)?;
                next.push((child, accuracy));
            }
            while next.len() < population_size {
                let (first, second) = (&parents[self.random_below(parents.len())?].0, &parents[self.random_below(parents.len())?].0);
                let child = self.until_valid("crossover", |evolver| {
                    first.iter().zip(second).map(|(&a, &b)| Ok(if evolver.random_below(2)? == 0 { a } else { b })).collect()
                })?;
                let accuracy = self.score(&child)?;
                next.push((child, accuracy));
            }
            population = next;
            let candidate = best_of(&population);
            if candidate.1 > best.1 {
                best = candidate;
            }
            host(self.context.log_metric("ofa/evolution_best_accuracy".into(), best.1))?;
            host(self.context.log_metric("ofa/evolution_iteration".into(), f64::from(iteration + 1)))?;
        }
        host(self.context.log_metric("ofa/evaluated_subnets".into(), self.fitness.len() as f64))?;
        // Hosts before ABI 1.4 count nothing; the FLOPs are a report, not a requirement, here.
        if let Ok(stats) = self.context.network_stats(&Architecture { choices: best.0.clone().into() }).into_result() {
            host(self.context.log_metric("ofa/derived_flops".into(), stats.flops as f64))?;
        }
        if let Ok(latency) = self.context.network_latency_ms(&Architecture { choices: best.0.clone().into() }).into_result() {
            host(self.context.log_metric("ofa/derived_latency_ms".into(), latency))?;
        }
        Ok(Architecture { choices: best.0.into() })
    }
}

/// The fittest (the first on ties).
fn best_of(population: &[(Vec<u32>, f64)]) -> (Vec<u32>, f64) {
    population.iter().fold(population[0].clone(), |best, candidate| if candidate.1 > best.1 { candidate.clone() } else { best })
}

#[cfg(test)]
#[path = "ofa_tests.rs"]
mod tests;
