//! The suites catch broken plugins: each fixture here is correct except for the one rule its
//! configuration's `flaw` breaks, and the suite must report exactly that check as failed (the
//! correct fixture, `flaw: "none"`, passes everything).

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;
use splitnas_plugin_api::author::{parse_config, AlgorithmPlugin, Component, CriterionPlugin, NetworkPlugin, SpacePlugin, SupernetPlugin};
use splitnas_plugin_api::*;
use splitnas_plugin_testkit::algorithm::AlgorithmSuiteConfig;
use splitnas_plugin_testkit::criterion::CriterionSuiteConfig;
use splitnas_plugin_testkit::space::SpaceSuiteConfig;
use splitnas_plugin_testkit::{algorithm, criterion, space, ContractReport, Outcome, SeededRng};
use tch::{Kind, Tensor};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FlawConfig {
    flaw: String,
    #[serde(default = "default_classes")]
    classes: u32,
    #[serde(default = "default_channels")]
    input_channels: u32,
}

fn default_classes() -> u32 {
    10
}
fn default_channels() -> u32 {
    3
}

// ---------------------------------------------------------------------------------------
// A toy space: 3 choice points x 3 options; option `o` of choice point `p` is a linear map
// `cp{p}.op{o}.weight` from the globally pooled image to the logits, plus a shared bias.

const POINTS: usize = 3;
const OPTIONS: usize = 3;
static BUILDS: AtomicU64 = AtomicU64::new(0);

struct ToySpace {
    flaw: String,
    classes: i64,
    channels: i64,
}

impl ToySpace {
    fn has(&self, flaw: &str) -> bool {
        self.flaw == flaw
    }

    fn check_mask(&self, mask: &Mask) -> Result<(), PluginError> {
        if self.has("accepts_bad_masks") {
            return Ok(());
        }
        if mask.rows.len() != POINTS || mask.rows.iter().any(|row| row.len() != OPTIONS) {
            return Err(PluginError::invalid_input("the mask must be 3 x 3"));
        }
        if (0..POINTS).any(|point| mask.count(point) == 0) {
            return Err(PluginError::invalid_input("every choice point needs an allowed option"));
        }
        Ok(())
    }

    fn choices(architecture: &Architecture) -> Result<Vec<usize>, PluginError> {
        if architecture.choices.len() != POINTS || architecture.choices.iter().any(|&c| c as usize >= OPTIONS) {
            return Err(PluginError::invalid_input(format!("not a toy architecture: {:?}", architecture.choices)));
        }
        Ok(architecture.choices.iter().map(|&c| c as usize).collect())
    }
}

impl Component for ToySpace {
    const NAME: &'static str = "toy-space";
    const DESCRIPTION: &'static str = "test fixture: a linear toy space";
    fn default_config() -> serde_json::Value {
        json!({"flaw": "none", "classes": 10, "input_channels": 3})
    }
}

struct ToySupernet {
    parameters: Vec<(String, Tensor)>,
    mask: Mask,
    computes_inactive: bool,
    shared_includes_scored: bool,
}

impl SupernetPlugin for ToySupernet {
    fn forward(&self, input: &Tensor, weights: &Tensor, active: &Mask, _train: bool) -> Result<Tensor, PluginError> {
        let features = input.f_mean_dim(&[2i64, 3][..], false, Kind::Float)?;
        let mut logits = self.parameters.last().expect("bias").1.shallow_clone();
        for point in 0..POINTS {
            for option in 0..OPTIONS {
                if active.is_allowed(point, option) && !self.mask.is_allowed(point, option) {
                    return Err(PluginError::invalid_input("an active option outside the mask"));
                }
                let computed = if self.computes_inactive { self.mask.is_allowed(point, option) } else { active.is_allowed(point, option) };
                if computed {
                    let weight = &self.parameters[point * OPTIONS + option].1;
                    logits = logits.f_add(&(features.f_matmul(&weight.f_tr()?)? * weights.get(point as i64).get(option as i64)))?;
                }
            }
        }
        Ok(logits)
    }
    fn parameters(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(self.parameters.iter().map(|(name, tensor)| NamedTensor::share(name.as_str(), tensor)).collect())
    }
    fn buffers(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(Vec::new())
    }
    fn shared_parameters(&self, choice_point: u32) -> Result<Vec<String>, PluginError> {
        let prefix = format!("cp{choice_point}.");
        Ok(self
            .parameters
            .iter()
            .map(|(name, _)| name.clone())
            .filter(|name| name.starts_with("cp") && (self.shared_includes_scored || !name.starts_with(&prefix)))
            .collect())
    }
}

struct ToyNetwork {
    parameters: Vec<(String, Tensor)>,
}

impl NetworkPlugin for ToyNetwork {
    fn forward(&self, input: &Tensor, _mode: ForwardMode) -> Result<(Tensor, Option<Tensor>), PluginError> {
        let features = input.f_mean_dim(&[2i64, 3][..], false, Kind::Float)?;
        let mut logits = self.parameters.last().expect("bias").1.shallow_clone();
        for (_, weight) in &self.parameters[..POINTS] {
            logits = logits.f_add(&features.f_matmul(&weight.f_tr()?)?)?;
        }
        Ok((logits, None))
    }
    fn parameters(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(self.parameters.iter().map(|(name, tensor)| NamedTensor::share(name.as_str(), tensor)).collect())
    }
    fn buffers(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(Vec::new())
    }
}

fn linear(name: String, rows: i64, columns: i64) -> (String, Tensor) {
    (name, Tensor::randn([rows, columns], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true))
}

impl SpacePlugin for ToySpace {
    type Supernet = ToySupernet;
    type Network = ToyNetwork;

    fn create(config: &str) -> Result<Self, PluginError> {
        let config: FlawConfig = parse_config(Self::NAME, config)?;
        Ok(ToySpace { flaw: config.flaw, classes: config.classes.into(), channels: config.input_channels.into() })
    }
    fn configure(&mut self, setup: &SpaceSetup) -> Result<(), PluginError> {
        self.classes = setup.classes.into();
        self.channels = setup.input_channels.into();
        Ok(())
    }
    fn info(&self) -> Result<SpaceInfo, PluginError> {
        let options = (0..OPTIONS).map(|k| OptionInfo { name: format!("op{k}").into(), costs: Vec::new().into() }).collect::<Vec<_>>();
        Ok(SpaceInfo {
            name: "toy".into(),
            choice_points: (0..POINTS)
                .map(|p| ChoicePointInfo { name: format!("cp{p}").into(), group: "toy".into(), options: options.clone().into(), splittable: true })
                .collect(),
            max_options: OPTIONS as u32,
            min_group_size: 1,
        })
    }
    fn build_supernet(&self, mask: &Mask, _device: Device) -> Result<ToySupernet, PluginError> {
        self.check_mask(mask)?;
        let build = BUILDS.fetch_add(1, Ordering::Relaxed);
        let suffix = if self.has("unstable_names") { format!("_{build}") } else { String::new() };
        let mut parameters: Vec<(String, Tensor)> = (0..POINTS * OPTIONS)
            .map(|i| linear(format!("cp{}.op{}.weight{suffix}", i / OPTIONS, i % OPTIONS), self.classes, self.channels))
            .collect();
        parameters.push(("head.bias".to_string(), Tensor::zeros([self.classes], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true)));
        Ok(ToySupernet {
            parameters,
            mask: mask.clone(),
            computes_inactive: self.has("computes_inactive"),
            shared_includes_scored: self.has("shared_includes_scored"),
        })
    }
    fn build_network(&self, architecture: &Architecture, _device: Device) -> Result<ToyNetwork, PluginError> {
        let choices = Self::choices(architecture)?;
        let mut parameters: Vec<(String, Tensor)> =
            choices.iter().enumerate().map(|(p, o)| linear(format!("cp{p}.op{o}.weight"), self.classes, self.channels)).collect();
        parameters.push(("head.bias".to_string(), Tensor::zeros([self.classes], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true)));
        Ok(ToyNetwork { parameters })
    }
    fn network_stats(&self, architecture: &Architecture, _image_size: u32) -> Result<NetworkStats, PluginError> {
        Self::choices(architecture)?;
        if self.has("stats_draw_random") {
            let _ = Tensor::randn([4], (Kind::Float, tch::Device::Cpu));
        }
        let parameters = (POINTS as i64 * self.classes * self.channels + self.classes) as u64;
        Ok(NetworkStats { parameters, flops: parameters })
    }
    fn derive(&self, weights: &Tensor, mask: &Mask) -> Result<Architecture, PluginError> {
        self.check_mask(mask)?;
        let values = Vec::<Vec<f32>>::try_from(weights.to_kind(Kind::Float))?;
        let choices = (0..POINTS)
            .map(|p| {
                let allowed = mask.allowed(p);
                allowed.iter().copied().max_by(|&a, &b| values[p][a as usize].total_cmp(&values[p][b as usize]).then(b.cmp(&a))).unwrap_or(0)
            })
            .collect();
        Ok(Architecture { choices })
    }
    fn format_genotype(&self, architecture: &Architecture) -> Result<String, PluginError> {
        Ok(Self::choices(architecture)?.iter().map(|o| format!("op{o}")).collect::<Vec<_>>().join("-"))
    }
    fn parse_genotype(&self, text: &str) -> Result<Architecture, PluginError> {
        let parts: Vec<&str> = text.split('-').collect();
        let choices: Option<Vec<u32>> =
            parts.iter().map(|part| part.strip_prefix("op").and_then(|n| n.parse::<u32>().ok()).filter(|&n| (n as usize) < OPTIONS)).collect();
        match choices {
            Some(mut choices) if choices.len() == POINTS => {
                if self.has("genotype_off_by_one") {
                    choices[0] = (choices[0] + 1) % OPTIONS as u32;
                }
                Ok(Architecture { choices: choices.into() })
            }
            _ => Err(PluginError::invalid_input(format!("not a toy genotype: {text:?}"))),
        }
    }
    fn sample_architecture(&self, mask: &Mask, seed: u64) -> Result<Architecture, PluginError> {
        self.check_mask(mask)?;
        let mut random = SeededRng::new(seed);
        Ok(Architecture { choices: (0..POINTS).map(|p| mask.allowed(p)[random.below(mask.count(p) as u64) as usize]).collect() })
    }
    fn architecture_count(&self, mask: &Mask) -> Result<Option<u64>, PluginError> {
        self.check_mask(mask)?;
        Ok(Some((0..POINTS).map(|p| mask.count(p) as u64).product()))
    }
    fn architecture_at(&self, mask: &Mask, index: u64) -> Result<Architecture, PluginError> {
        let count = self.architecture_count(mask)?.unwrap_or(0);
        if index >= count {
            return Err(PluginError::invalid_input(format!("index {index} of {count}")));
        }
        let mut rest = index;
        let mut choices = vec![0; POINTS];
        for p in (0..POINTS).rev() {
            let allowed = mask.allowed(p);
            choices[p] = allowed[(rest % allowed.len() as u64) as usize];
            rest /= allowed.len() as u64;
        }
        Ok(Architecture { choices: choices.into() })
    }
}

fn space_report(flaw: &str) -> ContractReport {
    let config = SpaceSuiteConfig { overrides: json!({ "flaw": flaw }), ..SpaceSuiteConfig::default() };
    space::run_contract::<ToySpace>(&config)
}

/// Asserts that exactly `expected` failed (and the rest passed or were skipped).
fn assert_fails_only(report: &ContractReport, expected: &[&str]) {
    assert_eq!(report.failed_names(), expected, "{report}");
}

#[test]
fn a_correct_space_passes_every_check() {
    let report = space_report("none");
    assert_fails_only(&report, &[]);
    // The toy space has no reference implementation to export to (ABI 1.2's optional method)
    // and no network parts (ABI 1.5's): those checks alone are skipped.
    let skipped: Vec<&str> = report.checks.iter().filter(|check| matches!(check.outcome, Outcome::Skipped(_))).map(|check| check.name).collect();
    assert_eq!(skipped, ["export_names_every_tensor", "network_parts_compose"], "{report}");
    assert_eq!(report.passed_names().len(), report.checks.len() - 2, "{report}");
}

#[test]
fn a_space_accepting_bad_masks_fails_that_check() {
    assert_fails_only(&space_report("accepts_bad_masks"), &["bad_masks_refused"]);
}

#[test]
fn a_space_whose_genotypes_do_not_round_trip_fails_that_check() {
    assert_fails_only(&space_report("genotype_off_by_one"), &["genotype_round_trip"]);
}

#[test]
fn a_space_renaming_parameters_between_builds_fails_that_check() {
    assert_fails_only(&space_report("unstable_names"), &["parameter_names_stable"]);
}

#[test]
fn a_space_sharing_the_scored_choice_points_parameters_fails_that_check() {
    assert_fails_only(&space_report("shared_includes_scored"), &["shared_parameters_exclude_scored_choice_point"]);
}

#[test]
fn a_space_whose_stats_draw_random_numbers_fails_that_check() {
    assert_fails_only(&space_report("stats_draw_random"), &["network_stats_deterministic"]);
}

#[test]
fn a_space_computing_inactive_options_fails_that_check() {
    assert_fails_only(&space_report("computes_inactive"), &["inactive_options_not_computed"]);
}

// ---------------------------------------------------------------------------------------
// A toy first-order DARTS: α `[choice points, max_options]`, masked softmax mixing.

struct ToyAlgorithm {
    flaw: String,
    alpha: Tensor,
    mask: Mask,
    allowed: Tensor,
    steps: u64,
}

impl Component for ToyAlgorithm {
    const NAME: &'static str = "toy-algorithm";
    const DESCRIPTION: &'static str = "test fixture: first-order DARTS in miniature";
    fn default_config() -> serde_json::Value {
        json!({"flaw": "none"})
    }
}

impl ToyAlgorithm {
    fn weights(&self, masked: bool) -> Tensor {
        let logits = if masked { self.alpha.masked_fill(&self.allowed.logical_not(), f64::NEG_INFINITY) } else { self.alpha.shallow_clone() };
        logits.softmax(-1, Kind::Float)
    }

    fn loss(&self, context: &HostContextRef<'_>, batch: &Batch, weights: &Tensor) -> Result<Tensor, PluginError> {
        let logits = context.forward(batch.images.as_ref(), TensorRef::new(weights), &self.mask, true).into_result()?.into_tensor();
        Ok(logits.cross_entropy_for_logits(&batch.labels.tensor()))
    }

    fn sample(&self) -> WeightSample {
        let ignores = self.flaw == "ignores_masks";
        let active =
            if ignores { Mask { rows: self.mask.rows.iter().map(|row| row.iter().map(|_| true).collect()).collect() } } else { self.mask.clone() };
        WeightSample { weights: OwnedTensor::new(self.weights(!ignores).detach()), active }
    }
}

impl AlgorithmPlugin for ToyAlgorithm {
    fn create(config: &str, setup: &AlgorithmSetup) -> Result<Self, PluginError> {
        let config: serde_json::Value = parse_config(Self::NAME, config)?;
        let (points, width) = (setup.space.num_choice_points() as i64, i64::from(setup.space.max_options));
        let flat: Vec<bool> = setup.mask.rows.iter().flatten().copied().collect();
        Ok(ToyAlgorithm {
            flaw: config["flaw"].as_str().unwrap_or("none").to_string(),
            alpha: Tensor::zeros([points, width], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true),
            mask: setup.mask.clone(),
            allowed: Tensor::from_slice(&flat).view([points, width]),
            steps: 0,
        })
    }
    fn architecture_parameters(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(vec![NamedTensor::share("alpha", &self.alpha)])
    }
    fn weight_step(&mut self, context: &HostContextRef<'_>, batch: &Batch) -> Result<WeightStepLoss, PluginError> {
        self.steps += 1;
        let loss = self.loss(context, batch, &self.weights(true).detach())?;
        Ok(WeightStepLoss { loss: OwnedTensor::new(loss), trains_architecture: false })
    }
    fn architecture_step(
        &mut self,
        context: &HostContextRef<'_>,
        valid_batch: &Batch,
        _train_batch: &Batch,
    ) -> Result<ArchitectureStep, PluginError> {
        Ok(ArchitectureStep::Loss(OwnedTensor::new(self.loss(context, valid_batch, &self.weights(true))?)))
    }
    fn scoring_sample(&mut self, _context: &HostContextRef<'_>) -> Result<WeightSample, PluginError> {
        Ok(self.sample())
    }
    fn evaluation_sample(&mut self, _context: &HostContextRef<'_>) -> Result<WeightSample, PluginError> {
        Ok(self.sample())
    }
    fn derive(&mut self, context: &HostContextRef<'_>) -> Result<Architecture, PluginError> {
        context.derive(TensorRef::new(&self.weights(true).detach())).into_result()
    }
    fn state_json(&self) -> Result<String, PluginError> {
        Ok(json!({ "steps": self.steps }).to_string())
    }
    fn load_state_json(&mut self, state: &str) -> Result<(), PluginError> {
        if self.flaw != "state_not_restored" {
            let state: serde_json::Value = serde_json::from_str(state).map_err(PluginError::invalid_input)?;
            self.steps = state["steps"].as_u64().ok_or_else(|| PluginError::invalid_input("no steps"))?;
        }
        Ok(())
    }
}

fn algorithm_report(flaw: &str) -> ContractReport {
    let config = AlgorithmSuiteConfig { overrides: json!({ "flaw": flaw }), ..AlgorithmSuiteConfig::default() };
    algorithm::run_contract::<ToyAlgorithm>(&config)
}

#[test]
fn a_correct_algorithm_passes_every_check() {
    assert_fails_only(&algorithm_report("none"), &[]);
}

#[test]
fn an_algorithm_whose_state_does_not_round_trip_fails_that_check() {
    assert_fails_only(&algorithm_report("state_not_restored"), &["state_round_trip"]);
}

#[test]
fn an_algorithm_ignoring_masks_fails_that_check() {
    assert_fails_only(&algorithm_report("ignores_masks"), &["honours_masks"]);
}

// ---------------------------------------------------------------------------------------
// A toy criterion: the first candidate, its allowed options dealt round robin into the groups.

static DECISIONS: AtomicU64 = AtomicU64::new(0);

struct ToyCriterion {
    flaw: String,
}

impl Component for ToyCriterion {
    const NAME: &'static str = "toy-criterion";
    const DESCRIPTION: &'static str = "test fixture: deals the first candidate's options round robin";
    fn default_config() -> serde_json::Value {
        json!({"flaw": "none"})
    }
}

impl CriterionPlugin for ToyCriterion {
    fn create(config: &str) -> Result<Self, PluginError> {
        let config: serde_json::Value = parse_config(Self::NAME, config)?;
        Ok(ToyCriterion { flaw: config["flaw"].as_str().unwrap_or("none").to_string() })
    }
    fn split(&mut self, request: &SplitRequest, _context: &CriterionContextRef<'_>) -> Result<SplitDecision, PluginError> {
        let position =
            if self.flaw == "nondeterministic" { DECISIONS.fetch_add(1, Ordering::Relaxed) as usize % request.candidates.len() } else { 0 };
        let point = request.candidates[position];
        let allowed = request.mask.allowed(point as usize);
        let count = request.groups.max(2) as usize;
        let mut groups: Vec<Vec<u32>> = vec![Vec::new(); count];
        for (index, option) in allowed.iter().enumerate() {
            groups[index % count].push(*option);
        }
        // The broken rules only show where a group has several options (not on 2 options).
        if let Some(largest) = groups.iter_mut().filter(|group| group.len() > 1).max_by_key(|group| group.len()) {
            match self.flaw.as_str() {
                "drops_option" => drop(largest.pop()),
                "duplicates_option" => largest.push(largest[0]),
                _ => {}
            }
        }
        let groups: abi_stable::std_types::RVec<abi_stable::std_types::RVec<u32>> = groups.into_iter().map(Into::into).collect();
        Ok(SplitDecision {
            choice_point: point,
            groups: groups.clone(),
            scores: vec![CandidateScore { choice_point: point, score: 0.0, groups, repeats: 0 }].into(),
        })
    }
}

fn criterion_report(flaw: &str) -> ContractReport {
    criterion::run_contract::<ToyCriterion>(&CriterionSuiteConfig { overrides: json!({ "flaw": flaw }), ..CriterionSuiteConfig::default() })
}

#[test]
fn a_correct_criterion_passes_every_check() {
    assert_fails_only(&criterion_report("none"), &[]);
}

#[test]
fn a_criterion_dropping_an_option_fails_the_partition_check() {
    assert_fails_only(&criterion_report("drops_option"), &["partition_of_allowed_options"]);
}

#[test]
fn a_criterion_duplicating_an_option_fails_the_partition_check() {
    assert_fails_only(&criterion_report("duplicates_option"), &["partition_of_allowed_options"]);
}

#[test]
fn a_nondeterministic_criterion_fails_the_determinism_check() {
    assert_fails_only(&criterion_report("nondeterministic"), &["deterministic_for_seed"]);
}
