//! Plain data exchanged across the boundary. Every type is `#[repr(C)]` + `StableAbi`;
//! structs that may grow later are only ever extended through new trait methods or new
//! root-module fields, never by changing these layouts.

use std::fmt;

use abi_stable::std_types::{ROption, RString, RVec};
use abi_stable::StableAbi;

use crate::tensor::OwnedTensor;

/// What a component is.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ComponentKind {
    /// A search space: choice points, supernet, stand-alone networks, genotypes.
    Space,
    /// A split criterion: which choice point of a sub-supernet to split, and how.
    Criterion,
    /// A search algorithm: architecture parameters and the sampling policy.
    Algorithm,
}

impl ComponentKind {
    pub const ALL: [ComponentKind; 3] = [ComponentKind::Space, ComponentKind::Criterion, ComponentKind::Algorithm];

    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Space => "space",
            ComponentKind::Criterion => "criterion",
            ComponentKind::Algorithm => "algorithm",
        }
    }
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where tensors live.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda(u32),
}

impl Device {
    pub fn to_tch(self) -> tch::Device {
        match self {
            Device::Cpu => tch::Device::Cpu,
            Device::Cuda(index) => tch::Device::Cuda(index as usize),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(index) => write!(f, "cuda:{index}"),
        }
    }
}

/// Why a plugin (or the host, answering a plugin) could not do what was asked.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The configuration given to a factory is wrong (unknown key, bad value).
    InvalidConfig,
    /// An argument is wrong (bad genotype string, mask of the wrong shape, ...).
    InvalidInput,
    /// libtorch reported an error.
    Torch,
    /// The callee panicked; the panic was caught at the boundary.
    Panic,
    /// The request is valid but not supported by this component.
    Unsupported,
    /// Anything else.
    Other,
}

/// An error crossing the boundary: a kind and a message meant for the user.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct PluginError {
    pub kind: ErrorKind,
    pub message: RString,
}

impl PluginError {
    pub fn new(kind: ErrorKind, message: impl fmt::Display) -> Self {
        PluginError { kind, message: RString::from(message.to_string()) }
    }
    pub fn invalid_config(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::InvalidConfig, message)
    }
    pub fn invalid_input(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
    pub fn unsupported(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    pub fn other(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Other, message)
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ErrorKind::InvalidConfig => "invalid config",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Torch => "libtorch error",
            ErrorKind::Panic => "panic",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Other => "error",
        };
        write!(f, "{kind}: {}", self.message)
    }
}

impl std::error::Error for PluginError {}

impl From<tch::TchError> for PluginError {
    fn from(error: tch::TchError) -> Self {
        PluginError::new(ErrorKind::Torch, error)
    }
}

/// The boundary's result type.
pub type PluginResult<T> = abi_stable::std_types::RResult<T, PluginError>;

/// A named number (a cost of an option, a metric).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct NamedValue {
    pub name: RString,
    pub value: f64,
}

/// One candidate of a choice point.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct OptionInfo {
    pub name: RString,
    /// Per-option costs the space knows (e.g. `flops`, `params`, `latency_ms`).
    pub costs: RVec<NamedValue>,
}

/// A place in the network with K candidate options: an NB201 edge, a DARTS edge, a
/// MobileNet block's op, an OFA block's kernel size, ...
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ChoicePointInfo {
    /// Human-readable, unique within the space (`1<-0`, `normal 2<-1`, `block 7`).
    pub name: RString,
    /// Which family of choice points it belongs to (`cell`, `normal`, `reduce`, `kernel`, ...).
    pub group: RString,
    pub options: RVec<OptionInfo>,
    /// Whether a split criterion may split on it (DARTS: only normal-cell edges).
    pub splittable: bool,
}

/// The shape of a search space as plugins and the host see it.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct SpaceInfo {
    pub name: RString,
    pub choice_points: RVec<ChoicePointInfo>,
    /// Width of weight tensors and masks: the largest option count of any choice point.
    pub max_options: u32,
    /// Smallest group a split may produce on this space (NB201 1, DARTS 2).
    pub min_group_size: u32,
}

impl SpaceInfo {
    pub fn num_choice_points(&self) -> usize {
        self.choice_points.len()
    }
    /// The mask allowing every option of every choice point.
    pub fn full_mask(&self) -> Mask {
        Mask { rows: self.choice_points.iter().map(|point| (0..self.max_options as usize).map(|k| k < point.options.len()).collect()).collect() }
    }
}

/// Allowed options per choice point: `rows[choice_point][option]`. A sub-supernet is the
/// space restricted by a mask; an "active" mask also says which options a forward computes.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mask {
    pub rows: RVec<RVec<bool>>,
}

impl Mask {
    pub fn allowed(&self, choice_point: usize) -> Vec<u32> {
        self.rows[choice_point].iter().enumerate().filter(|(_, on)| **on).map(|(k, _)| k as u32).collect()
    }
    pub fn is_allowed(&self, choice_point: usize, option: usize) -> bool {
        self.rows.get(choice_point).and_then(|row| row.get(option)).copied().unwrap_or(false)
    }
    pub fn count(&self, choice_point: usize) -> usize {
        self.rows[choice_point].iter().filter(|on| **on).count()
    }
    pub fn contains(&self, architecture: &Architecture) -> bool {
        architecture.choices.len() == self.rows.len()
            && architecture
                .choices
                .iter()
                .enumerate()
                .all(|(point, &choice)| choice == Architecture::ABSENT || self.is_allowed(point, choice as usize))
    }
}

/// One option per choice point.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Architecture {
    /// `choices[choice_point]` is an option index, or [`Architecture::ABSENT`] where the
    /// space drops the choice point altogether (a DARTS edge not among a node's top two).
    pub choices: RVec<u32>,
}

impl Architecture {
    pub const ABSENT: u32 = u32::MAX;
}

/// Size of a stand-alone network.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkStats {
    pub parameters: u64,
    /// Multiply-accumulates of one forward pass on one image, counted as FLOPs (the NAS convention).
    pub flops: u64,
}

/// How a stand-alone network runs a forward pass.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq)]
pub struct ForwardMode {
    pub train: bool,
    /// Drop-path probability (DARTS evaluation networks); 0 disables.
    pub drop_path_prob: f64,
}

/// A stand-alone network's outputs.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct NetworkOutput {
    pub logits: OwnedTensor,
    /// Auxiliary-head logits (DARTS evaluation networks in training mode).
    pub auxiliary_logits: ROption<OwnedTensor>,
}

/// A batch of images `[B, C, H, W]` (float, normalised, on the run's device) and labels `[B]` (int64).
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct Batch {
    pub images: OwnedTensor,
    pub labels: OwnedTensor,
}

/// Mixing weights for a supernet forward: `weights` is `[choice points, max_options]` on the
/// run's device; `active` says host-side which options are computed (mask AND weight ≠ 0),
/// so that no device sync is needed to skip them.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct WeightSample {
    pub weights: OwnedTensor,
    pub active: Mask,
}

/// What a search algorithm needs to start on a sub-supernet.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct AlgorithmSetup {
    pub space: SpaceInfo,
    pub mask: Mask,
    pub device: Device,
    pub seed: u64,
}

/// What a weight step hands back to the host.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct WeightStepLoss {
    /// Scalar training loss; the host backpropagates it and steps the weight optimizer.
    pub loss: OwnedTensor,
    /// The loss also trains the architecture parameters (SNAS): the host then backpropagates
    /// into them too and steps the architecture optimizer.
    pub trains_architecture: bool,
}

/// What an architecture step hands back to the host.
#[repr(u8)]
#[derive(StableAbi, Debug)]
pub enum ArchitectureStep {
    /// This algorithm has no separate architecture step (RSPS, SNAS, GDAS trained jointly).
    Skip,
    /// A scalar validation loss; the host backpropagates it into the architecture parameters
    /// alone and steps the architecture optimizer.
    Loss(OwnedTensor),
    /// The algorithm wrote the architecture parameters' `.grad` itself (second-order DARTS);
    /// the host steps the architecture optimizer.
    GradientsWritten,
}

/// Where training is, for schedules inside plugins (SNAS temperature, OFA phases).
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrainingProgress {
    pub epoch: u32,
    pub total_epochs: u32,
}

/// ABI 1.4. Where one weight step is, for algorithms that schedule the weights' learning rate
/// themselves (OFA's phases).
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepProgress {
    pub epoch: u32,
    pub total_epochs: u32,
    /// The step within the epoch, `0..steps_per_epoch`.
    pub step: u32,
    pub steps_per_epoch: u32,
}

/// ABI 1.4. How a supernet reordered one parameter in place (OFA's channel re-sorting by
/// importance): the host reorders the parameter's optimizer state the same way,
/// `state = state.index_select(dim, index)`.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ParameterPermutation {
    pub parameter: RString,
    pub dim: u32,
    pub index: RVec<i64>,
}

/// What the data is, and how large the stand-alone network should be; handed to a space by
/// `SearchSpace::configure` (ABI 1.1) right after it is created.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpaceSetup {
    /// Classes of the data set (the width of the logits).
    pub classes: u32,
    /// Channels of the input images (3 for CIFAR, 1 for Fashion-MNIST).
    pub input_channels: u32,
    /// Height and width of the (square) input images.
    pub image_size: u32,
    /// Channels of the stand-alone network; 0 = the space's default.
    pub network_channels: u32,
    /// Cells (layers) of the stand-alone network; 0 = the space's default.
    pub network_cells: u32,
}

/// One repeat of gradient collection for one choice point: the Gram matrix of the shared-set
/// gradients of its allowed options (same batch, same scoring sample for every option).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct GramSample {
    /// The options, in the order of the matrix rows.
    pub options: RVec<u32>,
    /// Row-major `options.len()²` matrix of dot products `g_i · g_j`.
    pub gram: RVec<f64>,
}

/// One repeat of gradient collection, as per-option gradients of the shared set.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct OptionGradients {
    pub options: RVec<u32>,
    /// `[options, P]`: each row is the concatenated shared-set gradient (missing = 0).
    pub gradients: OwnedTensor,
}

/// What a split criterion is asked to decide for one leaf.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct SplitRequest {
    pub space: SpaceInfo,
    pub mask: Mask,
    /// Choice points that may be split: splittable and never split in this leaf.
    pub candidates: RVec<u32>,
    /// How many children this split makes.
    pub groups: u32,
}

/// A criterion's verdict on one candidate.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct CandidateScore {
    pub choice_point: u32,
    pub score: f64,
    /// The partition of the allowed options this criterion would use.
    pub groups: RVec<RVec<u32>>,
    /// Repeated measurements (fresh batch and scoring sample each) spent on it; 0 for
    /// criteria that measure nothing.
    pub repeats: u32,
}

/// A criterion's decision: split `choice_point` into `groups` (one child per group).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct SplitDecision {
    pub choice_point: u32,
    pub groups: RVec<RVec<u32>>,
    /// Every candidate's score, for the split tree's record.
    pub scores: RVec<CandidateScore>,
}

/// ABI 1.3. Per-option costs a host offers a search algorithm (`HostContext::option_costs`):
/// `values[choice_point][option]`, one entry per option of the choice point.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct OptionCosts {
    /// What the numbers are: `flops` (multiply-accumulates) or `latency_ms` (milliseconds).
    pub metric: RString,
    pub values: RVec<RVec<f64>>,
}
