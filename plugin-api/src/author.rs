//! What plugin authors implement: plain Rust traits with `tch` types and `Result`s.
//!
//! The export macros ([`crate::export_space!`], [`crate::export_criterion!`],
//! [`crate::export_algorithm!`]) wrap an implementation in the adapters below, which
//! implement the ABI-stable traits of [`crate::traits`] and run every method inside
//! [`ffi_guard`]. An author therefore cannot export an unguarded method.

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RStr, RString, RVec};
use serde::de::DeserializeOwned;
use tch::Tensor;

use crate::export::ExportDescription;
use crate::guard::ffi_guard;
use crate::module::{ComponentFactory, ComponentInfo};
use crate::tensor::{NamedTensor, OwnedTensor, TensorRef};
use crate::traits::*;
use crate::types::*;

/// What every component states about itself.
pub trait Component: Sized + Send + 'static {
    /// Unique within its kind across all loaded plugins (`exhaustive`, `nb201`, `darts`).
    const NAME: &'static str;
    /// One line for `splitnas plugins list`.
    const DESCRIPTION: &'static str;
    /// The complete default configuration, a JSON object. Every key a user may set appears here.
    fn default_config() -> serde_json::Value;
}

/// Parses a component's configuration, mapping errors to [`ErrorKind::InvalidConfig`].
/// Use `#[serde(deny_unknown_fields)]` on `C` so that a misspelt key is named in the error.
pub fn parse_config<C: DeserializeOwned>(component: &str, text: &str) -> Result<C, PluginError> {
    serde_json::from_str(text).map_err(|error| PluginError::invalid_config(format!("{component}: {error}")))
}

/// A search space. See [`SearchSpace`] for what each method means.
///
/// The ABI 1.1 methods have defaults so that a space written for ABI 1.0 still compiles:
/// `configure` ignores the setup, `sample_architecture` and `architecture_at` answer
/// [`ErrorKind::Unsupported`], `architecture_count` says the space is not enumerable. A space
/// should implement `configure` and `sample_architecture` (the contract suites of
/// `splitnas-plugin-testkit` check them).
pub trait SpacePlugin: Component + Sync {
    type Supernet: SupernetPlugin;
    type Network: NetworkPlugin;
    fn create(config: &str) -> Result<Self, PluginError>;
    /// The data and the stand-alone network's size; the values override the configuration's.
    fn configure(&mut self, _setup: &SpaceSetup) -> Result<(), PluginError> {
        Ok(())
    }
    fn info(&self) -> Result<SpaceInfo, PluginError>;
    fn build_supernet(&self, mask: &Mask, device: Device) -> Result<Self::Supernet, PluginError>;
    fn build_network(&self, architecture: &Architecture, device: Device) -> Result<Self::Network, PluginError>;
    fn network_stats(&self, architecture: &Architecture, image_size: u32) -> Result<NetworkStats, PluginError>;
    fn derive(&self, weights: &Tensor, mask: &Mask) -> Result<Architecture, PluginError>;
    fn format_genotype(&self, architecture: &Architecture) -> Result<String, PluginError>;
    fn parse_genotype(&self, text: &str) -> Result<Architecture, PluginError>;
    /// A uniformly random valid architecture within `mask`, deterministic in `seed`, drawing
    /// no libtorch random numbers.
    fn sample_architecture(&self, _mask: &Mask, _seed: u64) -> Result<Architecture, PluginError> {
        Err(PluginError::unsupported(format!("{}: sample_architecture is not implemented", Self::NAME)))
    }
    /// The number of valid architectures within `mask`; `None` when not enumerable or too many.
    fn architecture_count(&self, _mask: &Mask) -> Result<Option<u64>, PluginError> {
        Ok(None)
    }
    /// Architecture number `index` (`0..architecture_count`), a bijection onto the valid ones.
    fn architecture_at(&self, _mask: &Mask, _index: u64) -> Result<Architecture, PluginError> {
        Err(PluginError::unsupported(format!("{}: architecture_at is not implemented (the space is not enumerable)", Self::NAME)))
    }
    /// ABI 1.2: where the stand-alone network's weights go in its reference implementation.
    /// The default says there is none; the host then exports under the network's own names.
    fn export_description(&self, _architecture: &Architecture) -> Result<ExportDescription, PluginError> {
        Err(PluginError::unsupported(format!("{}: no reference implementation to export to", Self::NAME)))
    }
    /// ABI 1.3: the FLOPs each option adds to the stand-alone network at the configured image
    /// size, `[choice point][option]` (see [`SearchSpace::option_flops`]). The default says the
    /// space cannot count them; cost-aware search by FLOPs then refuses this space.
    fn option_flops(&self) -> Result<Vec<Vec<f64>>, PluginError> {
        Err(PluginError::unsupported(format!("{}: option_flops is not implemented", Self::NAME)))
    }
    /// ABI 1.3: one option in its context as runnable modules, for `splitnas bench latency`
    /// (see [`SearchSpace::option_networks`]); empty where the option computes nothing.
    fn option_networks(&self, _choice_point: u32, _option: u32, _device: Device) -> Result<Vec<OptionModule>, PluginError> {
        Err(PluginError::unsupported(format!("{}: option_networks is not implemented", Self::NAME)))
    }
    /// ABI 1.5: every distinct part of the stand-alone networks as a keyed runnable module,
    /// for latency tables of whole networks (see [`SearchSpace::network_parts`]).
    fn network_parts(&self, _device: Device) -> Result<Vec<PartModule>, PluginError> {
        Err(PluginError::unsupported(format!("{}: network_parts is not implemented", Self::NAME)))
    }
    /// ABI 1.5: the keys of the parts `architecture`'s stand-alone network runs, once per run
    /// (see [`SearchSpace::architecture_parts`]).
    fn architecture_parts(&self, _architecture: &Architecture) -> Result<Vec<String>, PluginError> {
        Err(PluginError::unsupported(format!("{}: architecture_parts is not implemented", Self::NAME)))
    }
    /// ABI 1.5: the stand-alone network of `architecture` with the weights of a trained
    /// supernet of `mask`, given as its parameters and buffers by name (see
    /// [`SearchSpace::network_from_supernet`]). The default says subnets of this space are
    /// trained from scratch.
    fn network_from_supernet(
        &self,
        _architecture: &Architecture,
        _mask: &Mask,
        _supernet_tensors: Vec<NamedTensor>,
        _device: Device,
    ) -> Result<Self::Network, PluginError> {
        Err(PluginError::unsupported(format!("{}: its subnets are trained from scratch (network_from_supernet is not implemented)", Self::NAME)))
    }
}

/// ABI 1.5: one part of the stand-alone networks as a keyed runnable module (see
/// [`SearchSpace::network_parts`]).
pub struct PartModule {
    /// What the part's cost depends on, unique among the space's parts.
    pub key: String,
    /// The part alone: `forward` takes `[B, C, H, W]` inputs of `module.input_shape`
    /// (`module.occurrences` is not read).
    pub module: OptionModule,
}

/// ABI 1.3: one option of a choice point as a runnable module at one place of the network
/// (see [`SearchSpace::option_networks`]).
pub struct OptionModule {
    /// Runs the option alone: `forward` takes `[B, C, H, W]` inputs of `input_shape` and
    /// returns the option's output as its first element.
    pub network: Box<dyn NetworkPlugin>,
    /// `[C, H, W]` of one input.
    pub input_shape: [i64; 3],
    /// How many times the option runs at this place in one forward pass of the network.
    pub occurrences: u32,
}

impl OptionModule {
    /// A module whose tensors live in `var_store` and whose forward pass is `forward(input,
    /// train)`: the usual way to wrap one op built with the space's own blocks.
    pub fn from_var_store(
        var_store: tch::nn::VarStore,
        input_shape: [i64; 3],
        occurrences: u32,
        forward: impl Fn(&Tensor, bool) -> Result<Tensor, tch::TchError> + Send + 'static,
    ) -> Self {
        OptionModule { network: Box::new(VarStoreNetwork { var_store, forward: Box::new(forward) }), input_shape, occurrences }
    }
}

type ForwardFn = Box<dyn Fn(&Tensor, bool) -> Result<Tensor, tch::TchError> + Send>;

/// A network made of a var store and a forward closure (see [`OptionModule::from_var_store`]).
struct VarStoreNetwork {
    var_store: tch::nn::VarStore,
    forward: ForwardFn,
}

impl VarStoreNetwork {
    fn variables(&self, trainable: bool) -> Vec<NamedTensor> {
        let mut variables: Vec<(String, Tensor)> =
            self.var_store.variables().into_iter().filter(|(_, tensor)| tensor.requires_grad() == trainable).collect();
        variables.sort_by(|a, b| a.0.cmp(&b.0));
        variables.iter().map(|(name, tensor)| NamedTensor::share(name.as_str(), tensor)).collect()
    }
}

impl NetworkPlugin for VarStoreNetwork {
    fn forward(&self, input: &Tensor, mode: ForwardMode) -> Result<(Tensor, Option<Tensor>), PluginError> {
        Ok(((self.forward)(input, mode.train)?, None))
    }
    fn parameters(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(self.variables(true))
    }
    fn buffers(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(self.variables(false))
    }
}

impl<T: NetworkPlugin + ?Sized> NetworkPlugin for Box<T> {
    fn forward(&self, input: &Tensor, mode: ForwardMode) -> Result<(Tensor, Option<Tensor>), PluginError> {
        (**self).forward(input, mode)
    }
    fn parameters(&self) -> Result<Vec<NamedTensor>, PluginError> {
        (**self).parameters()
    }
    fn buffers(&self) -> Result<Vec<NamedTensor>, PluginError> {
        (**self).buffers()
    }
}

/// A supernet built by a [`SpacePlugin`].
pub trait SupernetPlugin: Send + 'static {
    fn forward(&self, input: &Tensor, weights: &Tensor, active: &Mask, train: bool) -> Result<Tensor, PluginError>;
    fn parameters(&self) -> Result<Vec<NamedTensor>, PluginError>;
    fn buffers(&self) -> Result<Vec<NamedTensor>, PluginError>;
    /// Retired in ABI 1.1 (the host never calls it); kept only so that old plugins compile.
    fn choice_point_parameters(&self, _choice_point: u32) -> Result<Vec<String>, PluginError> {
        Err(PluginError::unsupported("choice_point_parameters is retired (ABI 1.1)"))
    }
    /// See [`Supernet::shared_parameters`]: never a parameter owned by `choice_point`.
    fn shared_parameters(&self, choice_point: u32) -> Result<Vec<String>, PluginError>;
    /// ABI 1.4: see [`Supernet::reorganize`].
    fn reorganize(&self, _request: &str) -> Result<Vec<ParameterPermutation>, PluginError> {
        Err(PluginError::unsupported("reorganize: this supernet has no reorganization"))
    }
}

/// A stand-alone network built by a [`SpacePlugin`].
pub trait NetworkPlugin: Send + 'static {
    /// Logits, and auxiliary logits where the network has an auxiliary head.
    fn forward(&self, input: &Tensor, mode: ForwardMode) -> Result<(Tensor, Option<Tensor>), PluginError>;
    fn parameters(&self) -> Result<Vec<NamedTensor>, PluginError>;
    fn buffers(&self) -> Result<Vec<NamedTensor>, PluginError>;
}

/// A search algorithm. See [`SearchAlgorithm`] for what each method means.
pub trait AlgorithmPlugin: Component {
    fn create(config: &str, setup: &AlgorithmSetup) -> Result<Self, PluginError>;
    fn architecture_parameters(&self) -> Result<Vec<NamedTensor>, PluginError>;
    fn on_epoch_start(&mut self, _context: &HostContextRef<'_>, _progress: TrainingProgress) -> Result<(), PluginError> {
        Ok(())
    }
    fn weight_step(&mut self, context: &HostContextRef<'_>, batch: &Batch) -> Result<WeightStepLoss, PluginError>;
    fn architecture_step(
        &mut self,
        _context: &HostContextRef<'_>,
        _valid_batch: &Batch,
        _train_batch: &Batch,
    ) -> Result<ArchitectureStep, PluginError> {
        Ok(ArchitectureStep::Skip)
    }
    /// The weights the other choice points use while a split criterion scores one choice point.
    fn scoring_sample(&mut self, context: &HostContextRef<'_>) -> Result<WeightSample, PluginError>;
    fn evaluation_sample(&mut self, context: &HostContextRef<'_>) -> Result<WeightSample, PluginError>;
    fn derive(&mut self, context: &HostContextRef<'_>) -> Result<Architecture, PluginError>;
    fn state_json(&self) -> Result<String, PluginError> {
        Ok("{}".to_string())
    }
    fn load_state_json(&mut self, _state: &str) -> Result<(), PluginError> {
        Ok(())
    }
    /// ABI 1.4: see [`SearchAlgorithm::weight_learning_rate`].
    fn weight_learning_rate(&self, _progress: StepProgress) -> Result<Option<f64>, PluginError> {
        Ok(None)
    }
    /// ABI 1.4: see [`SearchAlgorithm::state_tensors`].
    fn state_tensors(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(Vec::new())
    }
    /// ABI 1.4: see [`SearchAlgorithm::load_state_tensors`].
    fn load_state_tensors(&mut self, tensors: Vec<NamedTensor>) -> Result<(), PluginError> {
        if tensors.is_empty() {
            Ok(())
        } else {
            Err(PluginError::unsupported(format!("{}: keeps no state tensors, but {} were handed back", Self::NAME, tensors.len())))
        }
    }
}

/// A split criterion.
pub trait CriterionPlugin: Component {
    fn create(config: &str) -> Result<Self, PluginError>;
    fn split(&mut self, request: &SplitRequest, context: &CriterionContextRef<'_>) -> Result<SplitDecision, PluginError>;
}

fn component_info<T: Component>(version: &str, factory: ComponentFactory) -> ComponentInfo {
    ComponentInfo {
        name: T::NAME.into(),
        version: version.into(),
        description: T::DESCRIPTION.into(),
        default_config: RString::from(T::default_config().to_string()),
        factory,
    }
}

// ---------------------------------------------------------------------------------------
// Adapters: author trait -> ABI-stable trait, every method guarded.

struct GuardedSpace<T>(T);
struct GuardedSupernet<T>(T);
struct GuardedNetwork<T>(T);
struct GuardedAlgorithm<T>(T);
struct GuardedCriterion<T>(T);

fn rvec<T>(items: Vec<T>) -> RVec<T> {
    RVec::from(items)
}

fn rstrings(items: Vec<String>) -> RVec<RString> {
    items.into_iter().map(RString::from).collect()
}

impl<T: SpacePlugin> SearchSpace for GuardedSpace<T> {
    fn info(&self) -> PluginResult<SpaceInfo> {
        ffi_guard(|| self.0.info())
    }
    fn build_supernet(&self, mask: &Mask, device: Device) -> PluginResult<SupernetBox> {
        ffi_guard(|| {
            let net = self.0.build_supernet(mask, device)?;
            Ok(Supernet_TO::from_value(GuardedSupernet(net), TD_Opaque))
        })
    }
    fn build_network(&self, architecture: &Architecture, device: Device) -> PluginResult<NetworkBox> {
        ffi_guard(|| {
            let net = self.0.build_network(architecture, device)?;
            Ok(Network_TO::from_value(GuardedNetwork(net), TD_Opaque))
        })
    }
    fn network_stats(&self, architecture: &Architecture, image_size: u32) -> PluginResult<NetworkStats> {
        ffi_guard(|| self.0.network_stats(architecture, image_size))
    }
    fn derive(&self, weights: TensorRef<'_>, mask: &Mask) -> PluginResult<Architecture> {
        ffi_guard(|| self.0.derive(&weights.tensor(), mask))
    }
    fn format_genotype(&self, architecture: &Architecture) -> PluginResult<RString> {
        ffi_guard(|| self.0.format_genotype(architecture).map(RString::from))
    }
    fn parse_genotype(&self, text: RStr<'_>) -> PluginResult<Architecture> {
        ffi_guard(|| self.0.parse_genotype(text.as_str()))
    }
    fn configure(&mut self, setup: &SpaceSetup) -> PluginResult<()> {
        ffi_guard(|| self.0.configure(setup))
    }
    fn sample_architecture(&self, mask: &Mask, seed: u64) -> PluginResult<Architecture> {
        ffi_guard(|| self.0.sample_architecture(mask, seed))
    }
    fn architecture_count(&self, mask: &Mask) -> PluginResult<ROption<u64>> {
        ffi_guard(|| self.0.architecture_count(mask).map(ROption::from))
    }
    fn architecture_at(&self, mask: &Mask, index: u64) -> PluginResult<Architecture> {
        ffi_guard(|| self.0.architecture_at(mask, index))
    }
    fn export_description(&self, architecture: &Architecture) -> PluginResult<RString> {
        ffi_guard(|| {
            let description = self.0.export_description(architecture)?;
            serde_json::to_string(&description)
                .map(RString::from)
                .map_err(|error| PluginError::other(format!("export description: cannot serialise: {error}")))
        })
    }
    fn option_flops(&self) -> PluginResult<RVec<RVec<f64>>> {
        ffi_guard(|| Ok(self.0.option_flops()?.into_iter().map(RVec::from).collect()))
    }
    fn option_networks(&self, choice_point: u32, option: u32, device: Device) -> PluginResult<RVec<OptionNetwork>> {
        ffi_guard(|| {
            let modules = self.0.option_networks(choice_point, option, device)?;
            Ok(modules
                .into_iter()
                .map(|module| OptionNetwork {
                    network: Network_TO::from_value(GuardedNetwork(module.network), TD_Opaque),
                    input_shape: module.input_shape.to_vec().into(),
                    occurrences: module.occurrences,
                })
                .collect())
        })
    }
    fn network_parts(&self, device: Device) -> PluginResult<RVec<NetworkPart>> {
        ffi_guard(|| {
            let parts = self.0.network_parts(device)?;
            Ok(parts
                .into_iter()
                .map(|part| NetworkPart {
                    key: part.key.into(),
                    network: Network_TO::from_value(GuardedNetwork(part.module.network), TD_Opaque),
                    input_shape: part.module.input_shape.to_vec().into(),
                })
                .collect())
        })
    }
    fn architecture_parts(&self, architecture: &Architecture) -> PluginResult<RVec<RString>> {
        ffi_guard(|| Ok(self.0.architecture_parts(architecture)?.into_iter().map(RString::from).collect()))
    }
    fn network_from_supernet(
        &self,
        architecture: &Architecture,
        mask: &Mask,
        supernet_tensors: RVec<NamedTensor>,
        device: Device,
    ) -> PluginResult<NetworkBox> {
        ffi_guard(|| {
            let net = self.0.network_from_supernet(architecture, mask, supernet_tensors.into_vec(), device)?;
            Ok(Network_TO::from_value(GuardedNetwork(net), TD_Opaque))
        })
    }
}

impl<T: SupernetPlugin> Supernet for GuardedSupernet<T> {
    fn forward(&self, input: TensorRef<'_>, weights: TensorRef<'_>, active: &Mask, train: bool) -> PluginResult<OwnedTensor> {
        ffi_guard(|| self.0.forward(&input.tensor(), &weights.tensor(), active, train).map(OwnedTensor::new))
    }
    fn parameters(&self) -> PluginResult<RVec<NamedTensor>> {
        ffi_guard(|| self.0.parameters().map(rvec))
    }
    fn buffers(&self) -> PluginResult<RVec<NamedTensor>> {
        ffi_guard(|| self.0.buffers().map(rvec))
    }
    fn choice_point_parameters(&self, choice_point: u32) -> PluginResult<RVec<RString>> {
        ffi_guard(|| self.0.choice_point_parameters(choice_point).map(rstrings))
    }
    fn reorganize(&self, request: RStr<'_>) -> PluginResult<RVec<ParameterPermutation>> {
        ffi_guard(|| self.0.reorganize(request.as_str()).map(rvec))
    }
    fn shared_parameters(&self, choice_point: u32) -> PluginResult<RVec<RString>> {
        ffi_guard(|| self.0.shared_parameters(choice_point).map(rstrings))
    }
}

impl<T: NetworkPlugin> Network for GuardedNetwork<T> {
    fn forward(&self, input: TensorRef<'_>, mode: ForwardMode) -> PluginResult<NetworkOutput> {
        ffi_guard(|| {
            let (logits, auxiliary) = self.0.forward(&input.tensor(), mode)?;
            Ok(NetworkOutput { logits: OwnedTensor::new(logits), auxiliary_logits: auxiliary.map(OwnedTensor::new).into() })
        })
    }
    fn parameters(&self) -> PluginResult<RVec<NamedTensor>> {
        ffi_guard(|| self.0.parameters().map(rvec))
    }
    fn buffers(&self) -> PluginResult<RVec<NamedTensor>> {
        ffi_guard(|| self.0.buffers().map(rvec))
    }
}

impl<T: AlgorithmPlugin> SearchAlgorithm for GuardedAlgorithm<T> {
    fn architecture_parameters(&self) -> PluginResult<RVec<NamedTensor>> {
        ffi_guard(|| self.0.architecture_parameters().map(rvec))
    }
    fn on_epoch_start(&mut self, context: HostContextRef<'_>, progress: TrainingProgress) -> PluginResult<()> {
        ffi_guard(|| self.0.on_epoch_start(&context, progress))
    }
    fn weight_step(&mut self, context: HostContextRef<'_>, batch: &Batch) -> PluginResult<WeightStepLoss> {
        ffi_guard(|| self.0.weight_step(&context, batch))
    }
    fn architecture_step(&mut self, context: HostContextRef<'_>, valid_batch: &Batch, train_batch: &Batch) -> PluginResult<ArchitectureStep> {
        ffi_guard(|| self.0.architecture_step(&context, valid_batch, train_batch))
    }
    fn context_sample(&mut self, context: HostContextRef<'_>) -> PluginResult<WeightSample> {
        ffi_guard(|| self.0.scoring_sample(&context))
    }
    fn evaluation_sample(&mut self, context: HostContextRef<'_>) -> PluginResult<WeightSample> {
        ffi_guard(|| self.0.evaluation_sample(&context))
    }
    fn derive(&mut self, context: HostContextRef<'_>) -> PluginResult<Architecture> {
        ffi_guard(|| self.0.derive(&context))
    }
    fn state_json(&self) -> PluginResult<RString> {
        ffi_guard(|| self.0.state_json().map(RString::from))
    }
    fn load_state_json(&mut self, state: RStr<'_>) -> PluginResult<()> {
        ffi_guard(|| self.0.load_state_json(state.as_str()))
    }
    fn weight_learning_rate(&self, progress: StepProgress) -> PluginResult<ROption<f64>> {
        ffi_guard(|| self.0.weight_learning_rate(progress).map(ROption::from))
    }
    fn state_tensors(&self) -> PluginResult<RVec<NamedTensor>> {
        ffi_guard(|| self.0.state_tensors().map(rvec))
    }
    fn load_state_tensors(&mut self, tensors: RVec<NamedTensor>) -> PluginResult<()> {
        ffi_guard(|| self.0.load_state_tensors(tensors.into_vec()))
    }
}

impl<T: CriterionPlugin> SplitCriterion for GuardedCriterion<T> {
    fn split(&mut self, request: &SplitRequest, context: CriterionContextRef<'_>) -> PluginResult<SplitDecision> {
        ffi_guard(|| self.0.split(request, &context))
    }
}

extern "C" fn space_factory<T: SpacePlugin>(config: RStr<'_>) -> PluginResult<SearchSpaceBox> {
    ffi_guard(|| Ok(SearchSpace_TO::from_value(GuardedSpace(T::create(config.as_str())?), TD_Opaque)))
}

extern "C" fn criterion_factory<T: CriterionPlugin>(config: RStr<'_>) -> PluginResult<SplitCriterionBox> {
    ffi_guard(|| Ok(SplitCriterion_TO::from_value(GuardedCriterion(T::create(config.as_str())?), TD_Opaque)))
}

extern "C" fn algorithm_factory<T: AlgorithmPlugin>(config: RStr<'_>, setup: &AlgorithmSetup) -> PluginResult<SearchAlgorithmBox> {
    ffi_guard(|| Ok(SearchAlgorithm_TO::from_value(GuardedAlgorithm(T::create(config.as_str(), setup)?), TD_Opaque)))
}

/// Used by [`crate::export_space!`].
pub fn space_component<T: SpacePlugin>(version: &str) -> ComponentInfo {
    component_info::<T>(version, ComponentFactory::Space(space_factory::<T>))
}

/// Used by [`crate::export_criterion!`].
pub fn criterion_component<T: CriterionPlugin>(version: &str) -> ComponentInfo {
    component_info::<T>(version, ComponentFactory::Criterion(criterion_factory::<T>))
}

/// Used by [`crate::export_algorithm!`].
pub fn algorithm_component<T: AlgorithmPlugin>(version: &str) -> ComponentInfo {
    component_info::<T>(version, ComponentFactory::Algorithm(algorithm_factory::<T>))
}
