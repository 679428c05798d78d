//! The search-space contract suite, driven through the ABI: the suite creates the space with
//! the component's factory (what [`space_component`] exports, exactly what a host sees) and
//! calls `configure` with [`SpaceSuiteConfig::setup`] before anything else.
//!
//! Checks, by name:
//! - `create_and_configure`: the factory accepts the configuration and `configure` the setup;
//! - `info_consistent`: choice-point names unique, option names unique per choice point,
//!   every choice point has an option, `max_options` is the largest option count, the full
//!   mask has one row of `max_options` per choice point;
//! - `supernet_forward_shapes`: on the full mask and random masks, with random weights, the
//!   supernet's logits are `[batch, classes]` and finite, in training and evaluation mode;
//! - `inactive_options_not_computed`: the parameters an option owns (in the graph of a
//!   supernet whose mask leaves only that option at its choice point, and of no supernet
//!   leaving only another) are set to NaN; the output must
//!   stay finite when that option is inactive (weight 0), and in a supernet whose mask
//!   disallows it;
//! - `active_outside_mask_refused`: activating an option the supernet's mask disallows is
//!   refused with `InvalidInput`;
//! - `genotype_round_trip`: format → parse gives back sampled architectures, and formatting
//!   the parsed one gives the same text;
//! - `derive_within_mask`: `derive` of random weights lies within random masks;
//! - `parameter_names_stable`: two builds of a supernet (and of a network) name their
//!   parameters and buffers identically;
//! - `shared_parameters_exclude_scored_choice_point`: for probed choice points, no parameter
//!   of `shared_parameters(cp)` is owned by `cp` (owned as above, by one of its options);
//!   every name is a parameter of the supernet;
//! - `network_forward_backward`: a stand-alone network's logits (and auxiliary logits) are
//!   `[batch, classes]`, the loss is finite, some parameters get gradients, all finite;
//! - `network_stats_deterministic`: `network_stats` gives the same answer twice and draws no
//!   libtorch random numbers (the generator's next draw is the same as without the call);
//! - `bad_masks_refused`: masks with a wrong row count or width, or a row allowing nothing,
//!   are refused by `build_supernet`, `derive` and `sample_architecture` with `InvalidInput`
//!   and a message;
//! - `bad_genotypes_refused`: garbage genotype texts are refused with `InvalidInput` and a message;
//! - `sample_architecture_deterministic`: the same seed gives the same architecture, within
//!   the mask and valid (it formats), different seeds vary, no libtorch random numbers drawn;
//! - `architecture_enumeration`: where `architecture_count` is `Some(n)` on small masks,
//!   `architecture_at` maps `0..n` (all of it when small, else a random subset) to distinct
//!   valid architectures within the mask, samples of the mask are among them, and `n` is
//!   refused. Skipped when the space does not enumerate;
//! - `export_names_every_tensor` (ABI 1.2): the export description names every parameter and
//!   buffer of a stand-alone network, no other, each target once, with a reference class and a
//!   JSON object of constructor arguments. Skipped when the space has no export description.

use std::collections::{BTreeSet, HashSet};

use abi_stable::std_types::{RResult, RStr};
use splitnas_plugin_api::author::{space_component, SpacePlugin};
use splitnas_plugin_api::{
    Architecture, ComponentFactory, ComponentInfo, Device, ErrorKind, ForwardMode, Mask, PluginError, PluginResult, SearchSpaceBox, SpaceInfo,
    SpaceSetup, SupernetBox, TensorRef,
};
use tch::{Kind, Tensor};

use crate::{ContractReport, NormalTensor, SeededRng};

/// How the suite runs a space. Keep the space tiny: every check builds several supernets.
#[derive(Clone, Debug)]
pub struct SpaceSuiteConfig {
    /// Merged over the component's default configuration, as the host merges a user's keys.
    pub overrides: serde_json::Value,
    /// Handed to `configure` right after creation.
    pub setup: SpaceSetup,
    pub batch_size: i64,
    pub seed: u64,
    /// Random masks tried besides the full mask.
    pub random_masks: usize,
    /// Choice points probed by the gradient-based checks (spread over the space).
    pub probed_choice_points: usize,
    /// `architecture_enumeration` walks every index up to this count, a random subset above.
    pub enumeration_limit: u64,
}

impl Default for SpaceSuiteConfig {
    fn default() -> Self {
        SpaceSuiteConfig {
            overrides: serde_json::json!({}),
            setup: SpaceSetup { classes: 3, input_channels: 2, image_size: 8, network_channels: 0, network_cells: 0 },
            batch_size: 2,
            seed: 11,
            random_masks: 3,
            probed_choice_points: 3,
            enumeration_limit: 2048,
        }
    }
}

/// Runs every check on the space `T`, through the ABI box its export makes.
pub fn run_contract<T: SpacePlugin>(config: &SpaceSuiteConfig) -> ContractReport {
    run_contract_on(&space_component::<T>("testkit"), config)
}

/// Runs [`run_contract`] and panics with every failure.
pub fn assert_contract<T: SpacePlugin>(config: &SpaceSuiteConfig) {
    run_contract::<T>(config).assert_passed();
}

/// Runs every check on a space component (as listed by a plugin's root module).
pub fn run_contract_on(component: &ComponentInfo, config: &SpaceSuiteConfig) -> ContractReport {
    let mut report = ContractReport::new(format!("space contract of {}", component.name));
    let ComponentFactory::Space(factory) = component.factory else {
        report.record("create_and_configure", crate::Outcome::Failed(format!("{} is a {}, not a space", component.name, component.kind())));
        return report;
    };
    let configuration = merged_configuration(component.default_config.as_str(), &config.overrides);
    let setup = config.setup;
    let make = move || -> Result<SearchSpaceBox, String> {
        let mut space = result(factory(RStr::from_str(&configuration)), "create")?;
        result(space.configure(&setup), "configure")?;
        Ok(space)
    };
    let suite = match make().and_then(|space| {
        let info = result(space.info(), "info")?;
        Ok(Suite { space, info, config: config.clone(), make: Box::new(make) })
    }) {
        Ok(suite) => {
            report.run("create_and_configure", || Ok(()));
            suite
        }
        Err(message) => {
            report.run("create_and_configure", || Err(message));
            for name in CHECKS_AFTER_CREATION {
                report.skip(name, "the space could not be created and configured");
            }
            return report;
        }
    };
    report.run("info_consistent", || suite.info_consistent());
    report.run("supernet_forward_shapes", || suite.supernet_forward_shapes());
    match suite.inactive_options_not_computed() {
        Ok(None) => report.skip("inactive_options_not_computed", "no probed option owns parameters"),
        outcome => report.run("inactive_options_not_computed", || outcome.map(drop)),
    }
    report.run("active_outside_mask_refused", || suite.active_outside_mask_refused());
    report.run("genotype_round_trip", || suite.genotype_round_trip());
    report.run("derive_within_mask", || suite.derive_within_mask());
    report.run("parameter_names_stable", || suite.parameter_names_stable());
    report.run("shared_parameters_exclude_scored_choice_point", || suite.shared_parameters_exclude_scored());
    report.run("network_forward_backward", || suite.network_forward_backward());
    report.run("network_stats_deterministic", || suite.network_stats_deterministic());
    report.run("bad_masks_refused", || suite.bad_masks_refused());
    report.run("bad_genotypes_refused", || suite.bad_genotypes_refused());
    report.run("sample_architecture_deterministic", || suite.sample_architecture_deterministic());
    match suite.architecture_enumeration() {
        Ok(false) => report.skip("architecture_enumeration", "architecture_count is None on the masks tried: the space does not enumerate"),
        outcome => report.run("architecture_enumeration", || outcome.map(drop)),
    }
    match suite.export_names_every_tensor() {
        Ok(false) => report.skip("export_names_every_tensor", "export_description is unsupported: the network exports under its own names"),
        outcome => report.run("export_names_every_tensor", || outcome.map(drop)),
    }
    match suite.network_parts_compose() {
        Ok(false) => report.skip("network_parts_compose", "network_parts is unsupported: latency tables of this space time options, not parts"),
        outcome => report.run("network_parts_compose", || outcome.map(drop)),
    }
    report
}

const CHECKS_AFTER_CREATION: [&str; 16] = [
    "info_consistent",
    "supernet_forward_shapes",
    "inactive_options_not_computed",
    "active_outside_mask_refused",
    "genotype_round_trip",
    "derive_within_mask",
    "parameter_names_stable",
    "shared_parameters_exclude_scored_choice_point",
    "network_forward_backward",
    "network_stats_deterministic",
    "bad_masks_refused",
    "bad_genotypes_refused",
    "sample_architecture_deterministic",
    "architecture_enumeration",
    "export_names_every_tensor",
    "network_parts_compose",
];

fn merged_configuration(defaults: &str, overrides: &serde_json::Value) -> String {
    let mut merged: serde_json::Value = serde_json::from_str(defaults).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(overrides) = overrides.as_object() {
        for (key, value) in overrides {
            merged[key] = value.clone();
        }
    }
    merged.to_string()
}

fn result<T>(answer: PluginResult<T>, what: &str) -> Result<T, String> {
    answer.into_result().map_err(|error| format!("{what}: {error}"))
}

/// `Ok` when `answer` is an `InvalidInput` error with a message.
fn refused<T>(answer: PluginResult<T>, what: &str) -> Result<(), String> {
    match answer {
        RResult::ROk(_) => Err(format!("{what} was accepted; it must be refused with InvalidInput")),
        RResult::RErr(PluginError { kind: ErrorKind::InvalidInput, message }) if !message.trim().is_empty() => Ok(()),
        RResult::RErr(error) => Err(format!("{what} was refused with {:?} {:?}; expected InvalidInput and a message", error.kind, error.message)),
    }
}

struct Suite {
    space: SearchSpaceBox,
    info: SpaceInfo,
    config: SpaceSuiteConfig,
    /// A second space made like the first (for comparisons across builds).
    make: Box<dyn Fn() -> Result<SearchSpaceBox, String>>,
}

/// Whether `name` (a parameter) got a gradient, per parameter.
type GradientPresence = Vec<(String, bool)>;

impl Suite {
    fn points(&self) -> usize {
        self.info.num_choice_points()
    }

    fn width(&self) -> usize {
        self.info.max_options as usize
    }

    fn random(&self, salt: u64) -> SeededRng {
        SeededRng::new(self.config.seed.wrapping_mul(0x1000_0001).wrapping_add(salt))
    }

    /// A mask keeping each option with probability 1/2, at least one per choice point.
    fn random_mask(&self, random: &mut SeededRng, most_per_row: usize) -> Mask {
        let mut mask = self.info.full_mask();
        for (point, row) in mask.rows.iter_mut().enumerate() {
            let count = self.info.choice_points[point].options.len();
            let keep = random.below(count as u64) as usize;
            let mut kept = 0;
            for (option, slot) in row.iter_mut().enumerate().take(count) {
                *slot = option == keep || (kept < most_per_row.saturating_sub(1) && random.below(2) == 0);
                if *slot && option != keep {
                    kept += 1;
                }
            }
        }
        mask
    }

    fn masks(&self) -> Vec<Mask> {
        let mut random = self.random(1);
        let mut masks = vec![self.info.full_mask()];
        masks.extend((0..self.config.random_masks).map(|_| self.random_mask(&mut random, usize::MAX)));
        masks
    }

    /// Random positive weights on the mask's options, 0 elsewhere, `[choice points, max_options]`.
    fn weights(&self, mask: &Mask, random: &mut SeededRng) -> Tensor {
        let values: Vec<f32> = mask
            .rows
            .iter()
            .flat_map(|row| row.iter().map(|&on| if on { 0.1 + 0.9 * random.unit() as f32 } else { 0.0 }).collect::<Vec<_>>())
            .collect();
        Tensor::from_slice(&values).view([self.points() as i64, self.width() as i64])
    }

    fn input(&self, random: &mut SeededRng) -> Tensor {
        let setup = &self.config.setup;
        let size = i64::from(setup.image_size);
        random.normal_tensor(&[self.config.batch_size, i64::from(setup.input_channels), size, size])
    }

    fn labels(&self) -> Tensor {
        let labels: Vec<i64> = (0..self.config.batch_size).map(|index| index % i64::from(self.config.setup.classes)).collect();
        Tensor::from_slice(&labels)
    }

    fn supernet(&self, mask: &Mask) -> Result<SupernetBox, String> {
        result(self.space.build_supernet(mask, Device::Cpu), "build_supernet")
    }

    fn forward(&self, supernet: &SupernetBox, input: &Tensor, weights: &Tensor, active: &Mask, train: bool) -> Result<Tensor, String> {
        let output = result(supernet.forward(TensorRef::new(input), TensorRef::new(weights), active, train), "supernet forward")?;
        Ok(output.into_tensor())
    }

    /// Architectures to test with: derived from random weights, and sampled where supported.
    fn architectures(&self) -> Result<Vec<Architecture>, String> {
        let mut random = self.random(2);
        let mut architectures = Vec::new();
        for mask in self.masks() {
            let weights = self.weights(&mask, &mut random);
            architectures.push(result(self.space.derive(TensorRef::new(&weights), &mask), "derive")?);
            if let RResult::ROk(sampled) = self.space.sample_architecture(&mask, random.next_u64()) {
                architectures.push(sampled);
            }
        }
        Ok(architectures)
    }

    fn info_consistent(&self) -> Result<(), String> {
        let info = &self.info;
        if info.choice_points.is_empty() {
            return Err("the space has no choice points".into());
        }
        let mut names = HashSet::new();
        for (point, choice_point) in info.choice_points.iter().enumerate() {
            if !names.insert(choice_point.name.as_str()) {
                return Err(format!("choice point name {:?} appears twice", choice_point.name));
            }
            if choice_point.options.is_empty() {
                return Err(format!("choice point {point} ({}) has no option", choice_point.name));
            }
            let mut options = HashSet::new();
            if let Some(option) = choice_point.options.iter().find(|option| !options.insert(option.name.as_str())) {
                return Err(format!("option name {:?} appears twice at choice point {}", option.name, choice_point.name));
            }
        }
        let largest = info.choice_points.iter().map(|point| point.options.len()).max().unwrap_or(0);
        if info.max_options as usize != largest {
            return Err(format!("max_options is {}, but the largest option count is {largest}", info.max_options));
        }
        let full = info.full_mask();
        if full.rows.len() != info.num_choice_points() || full.rows.iter().any(|row| row.len() != largest) {
            return Err("the full mask must have one row of max_options entries per choice point".into());
        }
        if info.min_group_size == 0 {
            return Err("min_group_size must be at least 1".into());
        }
        Ok(())
    }

    fn supernet_forward_shapes(&self) -> Result<(), String> {
        let mut random = self.random(3);
        let expected = vec![self.config.batch_size, i64::from(self.config.setup.classes)];
        for (index, mask) in self.masks().iter().enumerate() {
            let supernet = self.supernet(mask)?;
            let input = self.input(&mut random);
            let weights = self.weights(mask, &mut random);
            for train in [true, false] {
                let logits = self.forward(&supernet, &input, &weights, mask, train)?;
                if logits.size() != expected {
                    return Err(format!("mask {index}, train {train}: logits are {:?}, expected {expected:?} (batch, setup.classes)", logits.size()));
                }
                if !all_finite(&logits) {
                    return Err(format!("mask {index}, train {train}: logits are not finite"));
                }
            }
        }
        Ok(())
    }

    /// Which parameters get a gradient (any, even zero: they are in the graph) from a forward.
    fn gradient_presence(&self, supernet: &SupernetBox, input: &Tensor, weights: &Tensor, active: &Mask) -> Result<GradientPresence, String> {
        self.gradients_where(supernet, input, weights, active, Tensor::defined)
    }

    fn gradients_where(
        &self,
        supernet: &SupernetBox,
        input: &Tensor,
        weights: &Tensor,
        active: &Mask,
        counts: impl Fn(&Tensor) -> bool,
    ) -> Result<GradientPresence, String> {
        let parameters = result(supernet.parameters(), "parameters")?;
        let tensors: Vec<Tensor> = parameters.iter().map(|named| named.tensor.tensor().shallow_clone()).collect();
        let logits = self.forward(supernet, input, weights, active, true)?;
        let loss = logits.cross_entropy_for_logits(&self.labels());
        let gradients = Tensor::f_run_backward(&[loss], &tensors, false, false).map_err(|error| format!("backward: {error}"))?;
        Ok(parameters.iter().zip(gradients).map(|(named, gradient)| (named.name.to_string(), counts(&gradient))).collect())
    }

    /// Choice points to probe: spread over the space.
    fn probed(&self) -> Vec<usize> {
        let count = self.config.probed_choice_points.clamp(1, self.points());
        let mut points: Vec<usize> = (0..count).map(|index| index * (self.points() - 1) / count.max(2).saturating_sub(1).max(1)).collect();
        points.dedup();
        points.retain(|&point| point < self.points());
        points
    }

    /// Per option of `point`, the parameters in the graph of a supernet whose mask allows
    /// only that option at `point` (everything elsewhere).
    fn option_footprints(&self, point: usize, random: &mut SeededRng) -> Result<Vec<BTreeSet<String>>, String> {
        let full = self.info.full_mask();
        let input = self.input(random);
        let weights = self.weights(&full, random);
        let mut footprints = Vec::new();
        for option in 0..self.info.choice_points[point].options.len() {
            let mut only = full.clone();
            for (other, slot) in only.rows[point].iter_mut().enumerate() {
                *slot = other == option;
            }
            let supernet = self.supernet(&only)?;
            let single = &weights * mask_tensor(&only, self.points(), self.width());
            let present = self
                .gradient_presence(&supernet, &input, &single, &only)?
                .into_iter()
                .filter(|(_, present)| *present)
                .map(|(name, _)| name)
                .collect();
            footprints.push(present);
        }
        Ok(footprints)
    }

    /// The parameters owned by `option`: in its footprint and in no other option's.
    fn owned_by_option(footprints: &[BTreeSet<String>], option: usize) -> BTreeSet<String> {
        footprints[option]
            .iter()
            .filter(|name| footprints.iter().enumerate().all(|(other, footprint)| other == option || !footprint.contains(*name)))
            .cloned()
            .collect()
    }

    /// `Ok(None)` when no probed option owns parameters (nothing to poison).
    fn inactive_options_not_computed(&self) -> Result<Option<()>, String> {
        let mut random = self.random(4);
        let full = self.info.full_mask();
        let supernet = self.supernet(&full)?;
        let input = self.input(&mut random);
        let weights = self.weights(&full, &mut random);
        for point in self.probed() {
            if self.info.choice_points[point].options.len() < 2 {
                continue;
            }
            let footprints = self.option_footprints(point, &mut random)?;
            for option in 0..footprints.len() {
                let owned = Self::owned_by_option(&footprints, option);
                if owned.is_empty() {
                    continue;
                }
                let mut without = full.clone();
                without.rows[point][option] = false;
                let zeroed = &weights * mask_tensor(&without, self.points(), self.width());
                let what = format!("option {option} of choice point {point} ({})", self.info.choice_points[point].name);
                // Inactive with weight 0 in a supernet that allows it.
                let output = with_poisoned(&supernet, &owned, || self.forward(&supernet, &input, &zeroed, &without, true))??;
                if !all_finite(&output) {
                    return Err(format!("{what} is inactive with weight 0, yet NaN in its parameters ({}) reached the output", names(&owned)));
                }
                // Disallowed by the supernet's mask.
                let masked = self.supernet(&without)?;
                let output = with_poisoned(&masked, &owned, || self.forward(&masked, &input, &zeroed, &without, true))??;
                if !all_finite(&output) {
                    return Err(format!("{what} is masked out, yet NaN in its parameters ({}) reached the output", names(&owned)));
                }
                return Ok(Some(()));
            }
        }
        Ok(None)
    }

    fn active_outside_mask_refused(&self) -> Result<(), String> {
        let mut random = self.random(5);
        let Some(point) = (0..self.points()).find(|&point| self.info.choice_points[point].options.len() >= 2) else {
            return Ok(());
        };
        let mut mask = self.info.full_mask();
        mask.rows[point][0] = false;
        let supernet = self.supernet(&mask)?;
        let full = self.info.full_mask();
        let weights = self.weights(&full, &mut random);
        refused(
            supernet.forward(TensorRef::new(&self.input(&mut random)), TensorRef::new(&weights), &full, true),
            &format!("a forward activating option 0 of choice point {point}, which the supernet's mask disallows,"),
        )
    }

    fn genotype_round_trip(&self) -> Result<(), String> {
        for architecture in self.architectures()? {
            let text = result(self.space.format_genotype(&architecture), "format_genotype")?.to_string();
            let parsed = result(self.space.parse_genotype(RStr::from_str(&text)), &format!("parse_genotype of {text:?}"))?;
            if parsed != architecture {
                return Err(format!("{:?} formats as {text:?}, which parses as {:?}", architecture.choices, parsed.choices));
            }
            let again = result(self.space.format_genotype(&parsed), "format_genotype")?.to_string();
            if again != text {
                return Err(format!("{text:?} parses and formats as {again:?}"));
            }
        }
        Ok(())
    }

    fn derive_within_mask(&self) -> Result<(), String> {
        let mut random = self.random(6);
        for (index, mask) in self.masks().iter().enumerate() {
            for _ in 0..3 {
                let weights = self.weights(mask, &mut random);
                let architecture = result(self.space.derive(TensorRef::new(&weights), mask), "derive")?;
                if architecture.choices.len() != self.points() || !mask.contains(&architecture) {
                    return Err(format!("mask {index}: derive gave {:?}, not within the mask", architecture.choices));
                }
            }
        }
        Ok(())
    }

    fn parameter_names_stable(&self) -> Result<(), String> {
        let other = (self.make)()?;
        let mut random = self.random(7);
        let masks = [self.info.full_mask(), self.random_mask(&mut random, usize::MAX)];
        for (index, mask) in masks.iter().enumerate() {
            let first = self.supernet(mask)?;
            let second = result(other.build_supernet(mask, Device::Cpu), "build_supernet")?;
            let names_of = |supernet: &SupernetBox| -> Result<(Vec<String>, Vec<String>), String> {
                let parameters = result(supernet.parameters(), "parameters")?.iter().map(|named| named.name.to_string()).collect();
                let buffers = result(supernet.buffers(), "buffers")?.iter().map(|named| named.name.to_string()).collect();
                Ok((parameters, buffers))
            };
            let (a, b) = (names_of(&first)?, names_of(&second)?);
            if a != b {
                return Err(format!("mask {index}: two builds of the supernet name their tensors differently: {}", first_difference(&a.0, &b.0)));
            }
            let unique: HashSet<&String> = a.0.iter().collect();
            if unique.len() != a.0.len() {
                return Err(format!("mask {index}: the supernet's parameter names are not unique"));
            }
        }
        let architecture = self.architectures()?.remove(0);
        let first = result(self.space.build_network(&architecture, Device::Cpu), "build_network")?;
        let second = result(other.build_network(&architecture, Device::Cpu), "build_network")?;
        let names_of = |parameters: Vec<String>| parameters;
        let a = names_of(result(first.parameters(), "parameters")?.iter().map(|named| named.name.to_string()).collect());
        let b = names_of(result(second.parameters(), "parameters")?.iter().map(|named| named.name.to_string()).collect());
        if a != b {
            return Err(format!("two builds of a network name their parameters differently: {}", first_difference(&a, &b)));
        }
        Ok(())
    }

    fn shared_parameters_exclude_scored(&self) -> Result<(), String> {
        let mut random = self.random(8);
        let full = self.info.full_mask();
        let supernet = self.supernet(&full)?;
        let all_names: HashSet<String> = result(supernet.parameters(), "parameters")?.iter().map(|named| named.name.to_string()).collect();
        for point in self.probed() {
            let options = self.info.choice_points[point].options.len();
            let shared = result(supernet.shared_parameters(point as u32), &format!("shared_parameters({point})"))?;
            if let Some(unknown) = shared.iter().find(|name| !all_names.contains(name.as_str())) {
                return Err(format!("shared_parameters({point}) names {unknown:?}, which is not a parameter of the supernet"));
            }
            if options < 2 {
                continue;
            }
            // Owned by `point`: in the graph with exactly one of its options.
            let footprints = self.option_footprints(point, &mut random)?;
            let owned: BTreeSet<String> = (0..options).flat_map(|option| Self::owned_by_option(&footprints, option)).collect();
            let leaked: Vec<&str> = shared.iter().map(|name| name.as_str()).filter(|name| owned.contains(*name)).collect();
            if !leaked.is_empty() {
                return Err(format!(
                    "shared_parameters({point}) includes {} parameter(s) owned by choice point {point} ({}), e.g. {}",
                    leaked.len(),
                    self.info.choice_points[point].name,
                    leaked.iter().take(3).copied().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        Ok(())
    }

    fn network_forward_backward(&self) -> Result<(), String> {
        let mut random = self.random(9);
        let architecture = self.architectures()?.remove(0);
        let network = result(self.space.build_network(&architecture, Device::Cpu), "build_network")?;
        let expected = vec![self.config.batch_size, i64::from(self.config.setup.classes)];
        let input = self.input(&mut random);
        let output = result(network.forward(TensorRef::new(&input), ForwardMode { train: true, drop_path_prob: 0.0 }), "network forward")?;
        let logits = output.logits.into_tensor();
        if logits.size() != expected {
            return Err(format!("network logits are {:?}, expected {expected:?}", logits.size()));
        }
        let mut loss = logits.cross_entropy_for_logits(&self.labels());
        if let Some(auxiliary) = Option::from(output.auxiliary_logits) {
            let auxiliary: Tensor = splitnas_plugin_api::OwnedTensor::into_tensor(auxiliary);
            if auxiliary.size() != expected {
                return Err(format!("auxiliary logits are {:?}, expected {expected:?}", auxiliary.size()));
            }
            loss += auxiliary.cross_entropy_for_logits(&self.labels());
        }
        if !all_finite(&loss) {
            return Err("the network's loss is not finite".into());
        }
        let parameters = result(network.parameters(), "parameters")?;
        let tensors: Vec<Tensor> = parameters.iter().map(|named| named.tensor.tensor().shallow_clone()).collect();
        if tensors.is_empty() {
            return Err("the network has no parameters".into());
        }
        let gradients = Tensor::f_run_backward(&[loss], &tensors, false, false).map_err(|error| format!("backward: {error}"))?;
        let with_gradient = gradients.iter().filter(|gradient| gradient.defined()).count();
        if with_gradient == 0 {
            return Err("no network parameter gets a gradient".into());
        }
        if let Some((named, _)) = parameters.iter().zip(&gradients).find(|(_, gradient)| gradient.defined() && !all_finite(gradient)) {
            return Err(format!("the gradient of {} is not finite", named.name));
        }
        let evaluation = result(network.forward(TensorRef::new(&input), ForwardMode { train: false, drop_path_prob: 0.0 }), "network forward")?;
        if evaluation.logits.tensor().size() != expected {
            return Err(format!("evaluation-mode logits are {:?}, expected {expected:?}", evaluation.logits.tensor().size()));
        }
        Ok(())
    }

    fn network_stats_deterministic(&self) -> Result<(), String> {
        let architecture = self.architectures()?.remove(0);
        let size = self.config.setup.image_size;
        let first = result(self.space.network_stats(&architecture, size), "network_stats")?;
        let second = result(self.space.network_stats(&architecture, size), "network_stats")?;
        if first != second {
            return Err(format!("network_stats gave {first:?}, then {second:?}"));
        }
        if first.parameters == 0 {
            return Err("network_stats counts no parameters".into());
        }
        leaves_generator_alone(|| result(self.space.network_stats(&architecture, size), "network_stats").map(drop), "network_stats")
    }

    /// `Ok(false)` when the space has no export description (ABI 1.2, optional).
    fn export_names_every_tensor(&self) -> Result<bool, String> {
        let architecture = self.architectures()?.remove(0);
        let text = match self.space.export_description(&architecture).into_result() {
            Ok(text) => text,
            Err(error) if error.kind == ErrorKind::Unsupported => return Ok(false),
            Err(error) => return Err(format!("export_description: {error}")),
        };
        let description: splitnas_plugin_api::ExportDescription =
            serde_json::from_str(&text).map_err(|error| format!("export_description is not an ExportDescription: {error}"))?;
        if description.reference.is_empty() || !description.constructor.is_object() {
            return Err("export_description: `reference` is empty or `constructor` is not a JSON object of arguments".into());
        }
        let network = result(self.space.build_network(&architecture, Device::Cpu), "build_network")?;
        let mut names: Vec<String> = result(network.parameters(), "network parameters")?.iter().map(|t| t.name.to_string()).collect();
        names.extend(result(network.buffers(), "network buffers")?.iter().map(|t| t.name.to_string()));
        let mut targets = HashSet::new();
        for name in &names {
            let target = description.names.get(name).ok_or_else(|| format!("export_description has no reference name for `{name}`"))?;
            if !targets.insert(target.clone()) {
                return Err(format!("export_description maps two tensors to `{target}`"));
            }
        }
        if let Some(extra) = description.names.keys().find(|name| !names.contains(name)) {
            return Err(format!("export_description names `{extra}`, which the network does not have"));
        }
        Ok(true)
    }

    /// `Ok(false)` when the space has no network parts (ABI 1.5, optional). Otherwise the
    /// parts' keys are unique, every architecture's parts are among them, and running an
    /// architecture's parts one after another on images gives `[B, classes]` outputs: the parts
    /// are the whole network, in order, at the shapes they claim.
    fn network_parts_compose(&self) -> Result<bool, String> {
        let parts = match self.space.network_parts(Device::Cpu).into_result() {
            Ok(parts) => parts,
            Err(error) if error.kind == ErrorKind::Unsupported => return Ok(false),
            Err(error) => return Err(format!("network_parts: {error}")),
        };
        let mut by_key = std::collections::HashMap::new();
        for part in parts.iter() {
            if part.input_shape.len() != 3 || part.input_shape.iter().any(|&extent| extent < 1) {
                return Err(format!("network part `{}` has the input shape {:?}, not [C, H, W]", part.key, part.input_shape.as_slice()));
            }
            if by_key.insert(part.key.to_string(), part).is_some() {
                return Err(format!("network_parts hands out `{}` twice: keys must be unique", part.key));
            }
        }
        let setup = self.config.setup;
        let batch = 2;
        for architecture in self.architectures()? {
            let keys = result(self.space.architecture_parts(&architecture), "architecture_parts")?;
            if keys.is_empty() {
                return Err(format!("architecture_parts of {:?} is empty", architecture.choices));
            }
            let image = i64::from(setup.image_size);
            let mut features = Tensor::randn([batch, i64::from(setup.input_channels), image, image], (Kind::Float, tch::Device::Cpu));
            for key in keys.iter() {
                let part = by_key.get(key.as_str()).ok_or_else(|| {
                    format!("architecture_parts of {:?} names `{key}`, which network_parts does not hand out", architecture.choices)
                })?;
                let expected: Vec<i64> = std::iter::once(batch).chain(part.input_shape.iter().copied()).collect();
                if features.size() != expected {
                    return Err(format!("part `{key}` takes {:?} but the part before it gives {:?}", part.input_shape.as_slice(), features.size()));
                }
                let output =
                    result(part.network.forward(TensorRef::new(&features), ForwardMode { train: false, drop_path_prob: 0.0 }), "part forward")?;
                features = output.logits.tensor().shallow_clone();
            }
            if features.size() != [batch, i64::from(setup.classes)] {
                return Err(format!("the parts of {:?} end in {:?}, not [{batch}, {}] logits", architecture.choices, features.size(), setup.classes));
            }
        }
        Ok(true)
    }

    fn bad_masks_refused(&self) -> Result<(), String> {
        let full = self.info.full_mask();
        let mut extra_row = full.clone();
        extra_row.rows.push(full.rows[0].clone());
        let mut missing_row = full.clone();
        missing_row.rows.pop();
        let mut too_wide = full.clone();
        for row in too_wide.rows.iter_mut() {
            row.push(false);
        }
        let mut empty_row = full.clone();
        for slot in empty_row.rows[0].iter_mut() {
            *slot = false;
        }
        let weights = self.weights(&full, &mut self.random(10));
        for (what, mask) in
            [("an extra row", extra_row), ("a missing row", missing_row), ("rows one too wide", too_wide), ("a row allowing nothing", empty_row)]
        {
            refused(self.space.build_supernet(&mask, Device::Cpu), &format!("build_supernet with a mask of {what}"))?;
            refused(self.space.derive(TensorRef::new(&weights), &mask), &format!("derive with a mask of {what}"))?;
            match self.space.sample_architecture(&mask, 1) {
                RResult::RErr(PluginError { kind: ErrorKind::Unsupported, .. }) => {}
                answer => refused(answer, &format!("sample_architecture with a mask of {what}"))?,
            }
        }
        Ok(())
    }

    fn bad_genotypes_refused(&self) -> Result<(), String> {
        for text in ["", "garbage", "|||", "Genotype(", "+", "\u{1F600}~0", "0 1 2 3"] {
            refused(self.space.parse_genotype(RStr::from_str(text)), &format!("the genotype {text:?}"))?;
        }
        Ok(())
    }

    fn sample_architecture_deterministic(&self) -> Result<(), String> {
        let sample = |mask: &Mask, seed: u64| -> Result<Architecture, String> {
            match self.space.sample_architecture(mask, seed) {
                RResult::RErr(PluginError { kind: ErrorKind::Unsupported, message }) => {
                    Err(format!("sample_architecture is unsupported ({message}); spaces of ABI 1.1 implement it"))
                }
                answer => result(answer, "sample_architecture"),
            }
        };
        for (index, mask) in self.masks().iter().enumerate() {
            let mut seen = HashSet::new();
            for seed in 0..8u64 {
                let first = sample(mask, seed)?;
                let second = sample(mask, seed)?;
                if first != second {
                    return Err(format!("mask {index}, seed {seed}: {:?}, then {:?}", first.choices, second.choices));
                }
                if first.choices.len() != self.points() || !mask.contains(&first) {
                    return Err(format!("mask {index}, seed {seed}: {:?} is not within the mask", first.choices));
                }
                result(self.space.format_genotype(&first), &format!("format_genotype of the sample {:?}", first.choices))?;
                seen.insert(first);
            }
            if index == 0 && seen.len() < 2 {
                return Err("8 seeds gave the same architecture of the full space".into());
            }
        }
        let full = self.info.full_mask();
        leaves_generator_alone(|| sample(&full, 5).map(drop), "sample_architecture")
    }

    /// `Ok(false)` when the space does not enumerate the masks tried.
    fn architecture_enumeration(&self) -> Result<bool, String> {
        let mut random = self.random(11);
        let mut masks: Vec<Mask> = (0..2).map(|_| self.random_mask(&mut random, 2)).collect();
        masks.push(self.random_mask(&mut random, 1));
        let mut enumerated = false;
        for (index, mask) in masks.iter().enumerate() {
            let Some(count) = Option::from(result(self.space.architecture_count(mask), "architecture_count")?) else {
                continue;
            };
            enumerated = true;
            if count == 0 {
                return Err(format!("mask {index}: architecture_count is 0, but every mask allows an architecture"));
            }
            let indices: Vec<u64> = if count <= self.config.enumeration_limit {
                (0..count).collect()
            } else {
                let mut chosen: BTreeSet<u64> = BTreeSet::new();
                while chosen.len() < 256 {
                    chosen.insert(random.below(count));
                }
                chosen.into_iter().collect()
            };
            let mut architectures = HashSet::new();
            for &at in &indices {
                let architecture = result(self.space.architecture_at(mask, at), &format!("architecture_at({at}) of {count}"))?;
                if architecture.choices.len() != self.points() || !mask.contains(&architecture) {
                    return Err(format!("mask {index}: architecture_at({at}) = {:?} is not within the mask", architecture.choices));
                }
                result(self.space.format_genotype(&architecture), &format!("format_genotype of architecture_at({at})"))?;
                if !architectures.insert(architecture.clone()) {
                    return Err(format!("mask {index}: architecture_at({at}) = {:?} repeats an earlier index", architecture.choices));
                }
            }
            refused(self.space.architecture_at(mask, count), &format!("architecture_at({count}) (the count itself)"))?;
            if count <= self.config.enumeration_limit {
                for seed in 0..16 {
                    if let RResult::ROk(sampled) = self.space.sample_architecture(mask, seed) {
                        if !architectures.contains(&sampled) {
                            return Err(format!("mask {index}: the sample {:?} is not among the {count} enumerated architectures", sampled.choices));
                        }
                    }
                }
            }
        }
        Ok(enumerated)
    }
}

fn all_finite(tensor: &Tensor) -> bool {
    tensor.f_isfinite().and_then(|finite| finite.f_all()).ok().and_then(|all| bool::try_from(all).ok()).unwrap_or(false)
}

fn names(set: &BTreeSet<String>) -> String {
    let shown: Vec<&str> = set.iter().take(3).map(String::as_str).collect();
    if set.len() > 3 {
        format!("{}, ... ({} in all)", shown.join(", "), set.len())
    } else {
        shown.join(", ")
    }
}

fn first_difference(a: &[String], b: &[String]) -> String {
    match a.iter().zip(b).find(|(x, y)| x != y) {
        Some((x, y)) => format!("{x:?} vs {y:?}"),
        None => format!("{} names vs {}", a.len(), b.len()),
    }
}

/// `[choice points, width]` float: 1 where `mask` allows.
fn mask_tensor(mask: &Mask, points: usize, width: usize) -> Tensor {
    let values: Vec<f32> = mask.rows.iter().flat_map(|row| row.iter().map(|&on| if on { 1.0 } else { 0.0 }).collect::<Vec<_>>()).collect();
    Tensor::from_slice(&values).view([points as i64, width as i64])
}

/// Runs `body` with the named parameters of `supernet` set to NaN, then restores them.
fn with_poisoned<T>(supernet: &SupernetBox, names: &BTreeSet<String>, body: impl FnOnce() -> T) -> Result<T, String> {
    let parameters = result(supernet.parameters(), "parameters")?;
    let poisoned: Vec<(Tensor, Tensor)> = parameters
        .iter()
        .filter(|named| names.contains(named.name.as_str()))
        .map(|named| {
            let tensor = named.tensor.tensor().shallow_clone();
            (tensor.detach().copy(), tensor)
        })
        .collect();
    {
        let _no_grad = tch::no_grad_guard();
        for (_, tensor) in &poisoned {
            let _ = tensor.shallow_clone().fill_(f64::NAN);
        }
    }
    let answer = body();
    let _no_grad = tch::no_grad_guard();
    for (original, tensor) in &poisoned {
        tensor.shallow_clone().copy_(original);
    }
    Ok(answer)
}

/// Checks that `body` draws no libtorch random numbers: the generator's next draw after it is
/// the one without it. Retried, since tests in other threads may draw meanwhile.
fn leaves_generator_alone(body: impl Fn() -> Result<(), String>, what: &str) -> Result<(), String> {
    let draw = || Tensor::randn([16], (Kind::Float, tch::Device::Cpu));
    for attempt in 0..4 {
        let seed = 0x5EED + attempt;
        tch::manual_seed(seed);
        let expected = draw();
        tch::manual_seed(seed);
        body()?;
        if draw().equal(&expected) {
            return Ok(());
        }
    }
    Err(format!("{what} draws numbers from libtorch's random generator (its next draw changed after the call)"))
}
