//! The ABI-stable traits: what plugins implement (space, supernet, network, algorithm,
//! criterion) and what the host implements for them (contexts).
//!
//! Plugin authors do not implement these directly: they implement the plain Rust traits in
//! [`crate::author`], and the export macros wrap every method in [`crate::ffi_guard`], so
//! that no panic can cross the boundary. Every method returns [`PluginResult`] for the same
//! reason.
//!
//! New methods are only ever appended after the `last_prefix_field` ones, and every appended
//! method has a default body: a plugin built against an older plugin-api has no vtable entry
//! for it, and then the default body runs on the host's side (`abi_stable` marks such entries
//! `missing_field(option)`). Methods appended in ABI 1.1 say so in their documentation.
//!
//! `abi_stable`'s own load-time check accepts a library whose prefix types have *more* fields
//! than the loader's (a newer plugin in an older host), not fewer; the splitnas host therefore
//! checks an older plugin's layout with the roles swapped (`splitnas_engine::plugins::
//! check_root_module_layout`), so an ABI 1.0 plugin loads and these default bodies answer for
//! it (`tests/old_plugin.rs`).

use abi_stable::sabi_trait;
use abi_stable::sabi_types::RRef;
use abi_stable::std_types::{RBox, RNone, ROption, RResult, RStr, RString, RVec};
use abi_stable::StableAbi;

use crate::tensor::{NamedTensor, OwnedTensor, TensorRef};
use crate::types::*;

/// A search space: describes its choice points and builds networks.
#[sabi_trait]
pub trait SearchSpace: Send + Sync {
    /// Choice points and their options.
    fn info(&self) -> PluginResult<SpaceInfo>;

    /// The supernet of the sub-space `mask`, on `device`, with freshly initialised weights.
    fn build_supernet(&self, mask: &Mask, device: Device) -> PluginResult<SupernetBox>;

    /// The stand-alone network of one architecture, freshly initialised.
    fn build_network(&self, architecture: &Architecture, device: Device) -> PluginResult<NetworkBox>;

    /// Parameter count and FLOPs of the stand-alone network for a square input of `image_size`.
    fn network_stats(&self, architecture: &Architecture, image_size: u32) -> PluginResult<NetworkStats>;

    /// The architecture that mixing weights `[choice points, max_options]` select within `mask`.
    fn derive(&self, weights: TensorRef<'_>, mask: &Mask) -> PluginResult<Architecture>;

    /// The space's conventional genotype string.
    fn format_genotype(&self, architecture: &Architecture) -> PluginResult<RString>;

    /// Parses the conventional genotype string.
    #[sabi(last_prefix_field)]
    fn parse_genotype(&self, text: RStr<'_>) -> PluginResult<Architecture>;

    /// ABI 1.1. Tells the space what the data is (classes, image channels and size) and the
    /// size of the stand-alone network (`0` = the space's default). The host calls it once,
    /// right after creating the space and before any other call. The values given here
    /// override the same settings in the space's configuration.
    ///
    /// A plugin built before ABI 1.1 answers [`ErrorKind::Unsupported`]; the host then
    /// falls back to setting the space's `classes`/`input_channels` configuration keys.
    fn configure(&mut self, _setup: &SpaceSetup) -> PluginResult<()> {
        RResult::RErr(PluginError::unsupported("configure: not implemented (plugin built before ABI 1.1)"))
    }

    /// ABI 1.1. A uniformly random valid architecture within `mask`, a function of `seed`
    /// alone (it draws no libtorch random numbers). Unsupported by plugins built before ABI 1.1.
    fn sample_architecture(&self, _mask: &Mask, _seed: u64) -> PluginResult<Architecture> {
        RResult::RErr(PluginError::unsupported("sample_architecture: not implemented (plugin built before ABI 1.1)"))
    }

    /// ABI 1.1. How many valid architectures `mask` allows, when the space can enumerate them
    /// exactly and the count fits a `u64`; `None` otherwise (and from plugins built before ABI 1.1).
    fn architecture_count(&self, _mask: &Mask) -> PluginResult<ROption<u64>> {
        RResult::ROk(RNone)
    }

    /// ABI 1.1. The architecture number `index` of `mask`'s sub-space, `index` in
    /// `0..architecture_count(mask)`: a bijection onto the valid architectures within `mask`.
    /// Unsupported where `architecture_count` is `None`.
    fn architecture_at(&self, _mask: &Mask, _index: u64) -> PluginResult<Architecture> {
        RResult::RErr(PluginError::unsupported("architecture_at: not implemented (plugin built before ABI 1.1)"))
    }

    /// ABI 1.2. How the stand-alone network of `architecture` maps onto its reference
    /// implementation, so that its trained weights load there: a JSON object (see
    /// [`crate::ExportDescription`]) with the reference class, its constructor arguments and,
    /// for every parameter and buffer name of the network, the reference `state_dict` name.
    /// Plugins built before ABI 1.2 answer [`ErrorKind::Unsupported`]; the host then exports
    /// under the network's own names.
    fn export_description(&self, _architecture: &Architecture) -> PluginResult<RString> {
        RResult::RErr(PluginError::unsupported("export_description: not implemented (plugin built before ABI 1.2)"))
    }

    /// ABI 1.3. The FLOPs (multiply-accumulates, as [`NetworkStats::flops`]) that choosing each
    /// option adds to the stand-alone network at the configured image size:
    /// `result[choice_point][option]`, one entry per option of the choice point. Where one
    /// choice point stands for several places (NB201's edges, shared by every cell), its cost
    /// sums them; an option that computes nothing (`none`, identity, pooling) costs 0.
    /// Plugins built before ABI 1.3 answer [`ErrorKind::Unsupported`].
    fn option_flops(&self) -> PluginResult<RVec<RVec<f64>>> {
        RResult::RErr(PluginError::unsupported("option_flops: not implemented (plugin built before ABI 1.3)"))
    }

    /// ABI 1.3. Runnable modules of one option in its context in the stand-alone network, for
    /// timing it on the user's device (`splitnas bench latency`): one [`OptionNetwork`] per
    /// distinct place the option runs at (input shape, stride), each with how often it occurs.
    /// The option's latency is `Σ occurrences · time(module)`; an empty list means the option
    /// computes nothing (latency 0). Plugins built before ABI 1.3 answer
    /// [`ErrorKind::Unsupported`].
    fn option_networks(&self, _choice_point: u32, _option: u32, _device: Device) -> PluginResult<RVec<OptionNetwork>> {
        RResult::RErr(PluginError::unsupported("option_networks: not implemented (plugin built before ABI 1.3)"))
    }

    /// ABI 1.5. Every distinct part the space's stand-alone networks are made of, as runnable
    /// modules, for a latency table of whole networks where costs do not add up per option
    /// (OFA: a block's time depends on its kernel size and expand ratio together, and depths
    /// drop blocks). A part's `key` names everything its cost depends on (input shape, widths,
    /// kernel, stride), so that places sharing a key are timed once. `splitnas bench latency`
    /// times them; an architecture's latency is the sum over [`SearchSpace::architecture_parts`].
    /// Plugins built before ABI 1.5 answer [`ErrorKind::Unsupported`].
    fn network_parts(&self, _device: Device) -> PluginResult<RVec<NetworkPart>> {
        RResult::RErr(PluginError::unsupported("network_parts: not implemented (plugin built before ABI 1.5)"))
    }

    /// ABI 1.5. The keys of the parts (see [`SearchSpace::network_parts`]) that
    /// `architecture`'s stand-alone network runs, once for every time it runs one. Plugins
    /// built before ABI 1.5 answer [`ErrorKind::Unsupported`].
    fn architecture_parts(&self, _architecture: &Architecture) -> PluginResult<RVec<RString>> {
        RResult::RErr(PluginError::unsupported("architecture_parts: not implemented (plugin built before ABI 1.5)"))
    }

    /// ABI 1.5. The stand-alone network of `architecture` carrying a trained supernet's weights,
    /// for spaces whose subnets need no retraining (OFA's `get_active_subnet(preserve_weight=
    /// True)`): `supernet_tensors` are the parameters and buffers of a supernet of `mask` under
    /// their supernet names (as [`Supernet::parameters`] and [`Supernet::buffers`] name them).
    /// Plugins built before ABI 1.5, and spaces whose subnets are trained from scratch, answer
    /// [`ErrorKind::Unsupported`].
    fn network_from_supernet(
        &self,
        _architecture: &Architecture,
        _mask: &Mask,
        _supernet_tensors: RVec<NamedTensor>,
        _device: Device,
    ) -> PluginResult<NetworkBox> {
        RResult::RErr(PluginError::unsupported(
            "network_from_supernet: not implemented (plugin built before ABI 1.5, or a space whose subnets are trained from scratch)",
        ))
    }
}

/// ABI 1.5. One part of stand-alone networks as a runnable module (see
/// [`SearchSpace::network_parts`]): `forward` takes `[B, C, H, W]` inputs of `input_shape`.
#[repr(C)]
#[derive(StableAbi)]
pub struct NetworkPart {
    /// What the part's cost depends on, unique among the space's parts.
    pub key: RString,
    pub network: NetworkBox,
    /// `[C, H, W]` of one input.
    pub input_shape: RVec<i64>,
}

/// ABI 1.3. One option of a choice point as a runnable module in its context (see
/// [`SearchSpace::option_networks`]). Its `forward` takes `[B, C, H, W]` inputs of
/// `input_shape` and returns the option's output as the `logits` (never auxiliary logits).
#[repr(C)]
#[derive(StableAbi)]
pub struct OptionNetwork {
    pub network: NetworkBox,
    /// `[C, H, W]` of one input.
    pub input_shape: RVec<i64>,
    /// How many times the option runs at this place in one forward pass of the network
    /// (NB201: the cells of a stage).
    pub occurrences: u32,
}

/// A supernet: every allowed option of every choice point, mixed by weights.
#[sabi_trait]
pub trait Supernet: Send {
    /// Logits `[B, classes]`. Each choice point mixes its `active` options by `weights`;
    /// inactive options are not computed.
    fn forward(&self, input: TensorRef<'_>, weights: TensorRef<'_>, active: &Mask, train: bool) -> PluginResult<OwnedTensor>;

    /// Every trainable parameter, with stable names (checkpoints and optimizers key on them).
    fn parameters(&self) -> PluginResult<RVec<NamedTensor>>;

    /// Non-trainable state (BN running statistics), inherited by children on a split.
    fn buffers(&self) -> PluginResult<RVec<NamedTensor>>;

    /// Names of the parameters owned by the options of one choice point.
    ///
    /// Retired in ABI 1.1: the host never calls it; new plugins need not implement it (the
    /// author trait's default answers [`ErrorKind::Unsupported`]). Kept for the vtable layout.
    fn choice_point_parameters(&self, choice_point: u32) -> PluginResult<RVec<RString>>;

    /// Names of the parameters a split criterion compares when it scores `choice_point`:
    /// parameters shared by its options, never those owned by `choice_point` itself
    /// (space-specific; NB201: every search-cell op parameter except that choice point's,
    /// plus the reduction blocks).
    #[sabi(last_prefix_field)]
    fn shared_parameters(&self, choice_point: u32) -> PluginResult<RVec<RString>>;

    /// ABI 1.4. Reorders channels in place as the space's own training recipe asks, without
    /// changing the function of the largest network (OFA: middle channels sorted by importance
    /// at the start of an expand phase; `request` is the space's JSON, e.g.
    /// `{"expand_ratio_stage": 1}`), and says which parameters moved how, so that the host
    /// reorders their optimizer state too. Buffers are reordered by the supernet itself.
    /// Supernets built before ABI 1.4 answer [`ErrorKind::Unsupported`].
    fn reorganize(&self, _request: RStr<'_>) -> PluginResult<RVec<ParameterPermutation>> {
        RResult::RErr(PluginError::unsupported("reorganize: not implemented (supernet built before ABI 1.4, or a space without it)"))
    }
}

/// A stand-alone network of one architecture.
#[sabi_trait]
pub trait Network: Send {
    fn forward(&self, input: TensorRef<'_>, mode: ForwardMode) -> PluginResult<NetworkOutput>;
    fn parameters(&self) -> PluginResult<RVec<NamedTensor>>;
    #[sabi(last_prefix_field)]
    fn buffers(&self) -> PluginResult<RVec<NamedTensor>>;
}

/// A search algorithm: owns architecture parameters and the sampling policy of one
/// sub-supernet. The host owns the weights, the optimizers and the data.
#[sabi_trait]
pub trait SearchAlgorithm: Send {
    /// The architecture parameters (α); the host's architecture optimizer steps them.
    fn architecture_parameters(&self) -> PluginResult<RVec<NamedTensor>>;

    /// Called at every epoch start (temperature schedules, phases).
    fn on_epoch_start(&mut self, context: HostContextRef<'_>, progress: TrainingProgress) -> PluginResult<()>;

    /// The training loss of one step on `batch`.
    fn weight_step(&mut self, context: HostContextRef<'_>, batch: &Batch) -> PluginResult<WeightStepLoss>;

    /// One architecture update on a validation batch (`train_batch` for second-order methods).
    fn architecture_step(&mut self, context: HostContextRef<'_>, valid_batch: &Batch, train_batch: &Batch) -> PluginResult<ArchitectureStep>;

    /// The weights the other choice points use while a split criterion scores one choice
    /// point (the author trait calls it `scoring_sample`; the vtable keeps the ABI 1.0 name).
    fn context_sample(&mut self, context: HostContextRef<'_>) -> PluginResult<WeightSample>;

    /// The weights used to report the supernet's validation accuracy.
    fn evaluation_sample(&mut self, context: HostContextRef<'_>) -> PluginResult<WeightSample>;

    /// The architecture this sub-supernet's search ends with.
    fn derive(&mut self, context: HostContextRef<'_>) -> PluginResult<Architecture>;

    /// Scalar state that is not a tensor (temperatures, counters), as JSON, for checkpoints.
    fn state_json(&self) -> PluginResult<RString>;

    #[sabi(last_prefix_field)]
    fn load_state_json(&mut self, state: RStr<'_>) -> PluginResult<()>;

    /// ABI 1.4. The weights' learning rate of one step, for an algorithm that schedules it
    /// itself (OFA's phases, each with its own rate and cosine); `None` leaves the host's
    /// schedule. A function of `progress` and the algorithm's configuration alone, so that a
    /// resumed run repeats it. Plugins built before ABI 1.4 leave the host's schedule.
    fn weight_learning_rate(&self, _progress: StepProgress) -> PluginResult<ROption<f64>> {
        RResult::ROk(RNone)
    }

    /// ABI 1.4. Tensors of the algorithm's state that are not architecture parameters (never
    /// optimised by the host; OFA's teacher): checkpointed with the sub-supernet, handed back
    /// by [`SearchAlgorithm::load_state_tensors`] on resume, and inherited by children on a
    /// split. Plugins built before ABI 1.4 have none.
    fn state_tensors(&self) -> PluginResult<RVec<NamedTensor>> {
        RResult::ROk(RVec::new())
    }

    /// ABI 1.4. Restores what [`SearchAlgorithm::state_tensors`] gave (the algorithm copies
    /// them). A plugin built before ABI 1.4 accepts only none.
    fn load_state_tensors(&mut self, tensors: RVec<NamedTensor>) -> PluginResult<()> {
        if tensors.is_empty() {
            RResult::ROk(())
        } else {
            RResult::RErr(PluginError::unsupported("load_state_tensors: this algorithm was built before ABI 1.4 and keeps no state tensors"))
        }
    }
}

/// A split criterion: picks the choice point to split and the partition of its options.
#[sabi_trait]
pub trait SplitCriterion: Send {
    #[sabi(last_prefix_field)]
    fn split(&mut self, request: &SplitRequest, context: CriterionContextRef<'_>) -> PluginResult<SplitDecision>;
}

/// What the host offers a search algorithm during training.
#[sabi_trait]
pub trait HostContext {
    fn device(&self) -> PluginResult<Device>;
    fn space_info(&self) -> PluginResult<SpaceInfo>;
    /// The mask of the sub-supernet being trained.
    fn mask(&self) -> PluginResult<Mask>;
    fn progress(&self) -> PluginResult<TrainingProgress>;
    /// The supernet's forward pass.
    fn forward(&self, input: TensorRef<'_>, weights: TensorRef<'_>, active: &Mask, train: bool) -> PluginResult<OwnedTensor>;
    /// The supernet's parameters (handles sharing storage), e.g. for second-order DARTS.
    fn supernet_parameters(&self) -> PluginResult<RVec<NamedTensor>>;
    /// Validation accuracy (0..1) of one architecture through the supernet (single path).
    fn evaluate(&self, architecture: &Architecture) -> PluginResult<f64>;
    /// The space's derivation of an architecture from weights, within the mask.
    fn derive(&self, weights: TensorRef<'_>) -> PluginResult<Architecture>;
    /// The next number of the run's seeded generator (reproducible, checkpointed by the host).
    fn next_random(&self) -> PluginResult<u64>;
    #[sabi(last_prefix_field)]
    fn log_metric(&self, name: RStr<'_>, value: f64) -> PluginResult<()>;

    /// ABI 1.3. The cost of every option the run chose to search under (`[search] option_cost`):
    /// FLOPs from the space, or latencies from a table measured on the user's device; `None`
    /// when the run names no cost. A host built before ABI 1.3 answers [`ErrorKind::Unsupported`].
    fn option_costs(&self) -> PluginResult<ROption<OptionCosts>> {
        RResult::RErr(PluginError::unsupported("option_costs: this host was built before ABI 1.3 and offers no option costs"))
    }

    /// ABI 1.3. The label smoothing ε of training losses (`[search] label_smoothing`): weight
    /// steps use cross-entropy against `(1 − ε)·onehot + ε/K`, as PyTorch's
    /// `CrossEntropyLoss(label_smoothing=ε)`. A host built before ABI 1.3 has none: 0.
    fn label_smoothing(&self) -> PluginResult<f64> {
        RResult::ROk(0.0)
    }

    /// ABI 1.4. Parameters and FLOPs of an architecture's stand-alone network at the run's
    /// image size (the space's `network_stats`), for searches under a cost window whose costs
    /// are not per option (OFA). A host built before ABI 1.4 answers [`ErrorKind::Unsupported`].
    fn network_stats(&self, _architecture: &Architecture) -> PluginResult<NetworkStats> {
        RResult::RErr(PluginError::unsupported("network_stats: this host was built before ABI 1.4"))
    }

    /// ABI 1.4. Asks the supernet to reorganize itself (see [`Supernet::reorganize`]); the host
    /// reorders the weights' optimizer state to match before the next step. A host built
    /// before ABI 1.4 answers [`ErrorKind::Unsupported`].
    fn reorganize_supernet(&self, _request: RStr<'_>) -> PluginResult<()> {
        RResult::RErr(PluginError::unsupported("reorganize_supernet: this host was built before ABI 1.4"))
    }

    /// ABI 1.5. Milliseconds of one forward pass of an architecture's stand-alone network from
    /// the run's latency table (`[search] latency_table`): the sum of the medians of the parts
    /// it runs (see [`SearchSpace::network_parts`]), for searches under a latency window whose
    /// costs are not per option (OFA). [`ErrorKind::Unsupported`] when the run has no table of
    /// parts, and from hosts built before ABI 1.5.
    fn network_latency_ms(&self, _architecture: &Architecture) -> PluginResult<f64> {
        RResult::RErr(PluginError::unsupported("network_latency_ms: this host was built before ABI 1.5"))
    }
}

/// What the host offers a split criterion. Gradient services are a capability the host
/// offers criteria that compare options by their gradients (gradient matching); criteria that
/// do not need them never call them.
#[sabi_trait]
pub trait CriterionContext {
    /// One repeat (a fresh batch and scoring sample) for `choice_point`: the Gram matrix of
    /// the shared-set gradients of its allowed options.
    fn gradient_gram(&self, choice_point: u32) -> PluginResult<GramSample>;
    /// One repeat as per-option concatenated gradients.
    ///
    /// Retired in ABI 1.1: no criterion of this project calls it, and a host may answer
    /// [`ErrorKind::Unsupported`]. Kept for the vtable layout.
    fn option_gradients(&self, choice_point: u32) -> PluginResult<OptionGradients>;
    fn next_random(&self) -> PluginResult<u64>;
    #[sabi(last_prefix_field)]
    fn log_metric(&self, name: RStr<'_>, value: f64) -> PluginResult<()>;
}

pub type SearchSpaceBox = SearchSpace_TO<'static, RBox<()>>;
pub type SupernetBox = Supernet_TO<'static, RBox<()>>;
pub type NetworkBox = Network_TO<'static, RBox<()>>;
pub type SearchAlgorithmBox = SearchAlgorithm_TO<'static, RBox<()>>;
pub type SplitCriterionBox = SplitCriterion_TO<'static, RBox<()>>;
pub type HostContextRef<'a> = HostContext_TO<'a, RRef<'a, ()>>;
pub type CriterionContextRef<'a> = CriterionContext_TO<'a, RRef<'a, ()>>;
