//! The DARTS CNN search space (Liu et al., "DARTS: Differentiable Architecture Search", ICLR
//! 2019) as a splitnas plugin.
//!
//! - Choice points: the 14 edges of the normal cell (`normal 2<-0` ... `normal 5<-4`, group
//!   `normal`, splittable), then the 14 edges of the reduction cell (`reduce 2<-0` ..., group
//!   `reduce`, never split), each with the 7 options `max_pool_3x3, avg_pool_3x3, skip_connect,
//!   sep_conv_3x3, sep_conv_5x5, dil_conv_3x3, dil_conv_5x5` (no `none`). Splits keep at least
//!   2 options per group (`min_group_size`), so 7 options split as {2,5} or {3,4}.
//! - An architecture keeps two incoming edges per intermediate node, one op each; the other
//!   edges are [`Architecture::ABSENT`]. `derive` keeps, per node, the two edges whose best
//!   allowed op has the largest weight (DARTS's top-2 rule).
//! - Supernet ([`supernet`]): DARTS's search network (C=16, 8 cells by default), α shared by
//!   the cells of a kind.
//! - Stand-alone networks ([`network`]): DARTS's `NetworkCIFAR` (C=36, 20 cells, auxiliary head
//!   by default; drop-path as the host asks).
//! - Genotype strings ([`genotype`]): `Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5])`.
//!
//! Configuration (JSON, every key optional): `channels` (16) and `cells` (8) of the search
//! network; `network_channels` (36), `network_cells` (20) and `auxiliary` (true) of the
//! stand-alone network; `classes` (10) and `input_channels` (3). The host's `configure`
//! overrides `classes` and `input_channels` with the data's, and `network_channels`/
//! `network_cells` with a non-zero stand-alone size.
//!
//! Enumeration: the architectures within a mask are numbered in mixed radix over the 8
//! intermediate nodes (normal cell first, the last node fastest); a node's digit numbers its
//! (input pair, op pair) choices, pairs in edge order. The full space has about 3·10^21
//! architectures, more than a `u64`: `architecture_count` is then `None`.

pub mod cell;
pub mod genotype;
pub mod network;
pub mod skeleton;
pub mod space;
pub mod supernet;

use serde::{Deserialize, Serialize};
use serde_json::json;
use splitnas_nn_blocks::{ParamInit, SeededRng};
use splitnas_plugin_api::author::{parse_config, Component, OptionModule, SpacePlugin};
use splitnas_plugin_api::{
    Architecture, ChoicePointInfo, Device, ExportDescription, Mask, NamedValue, NetworkStats, OptionInfo, PluginError, SpaceInfo, SpaceSetup,
};
use tch::{Kind, Tensor};

use cell::{edge_stride, layout};
use network::DartsNetwork;
use skeleton::SkeletonShape;
use space::{
    choice_point_edge, choice_point_name, node_edges, validate_space_mask, CellKind, DartsArchitecture, Operation, INPUTS_PER_NODE,
    NUM_CHOICE_POINTS, NUM_NODES, NUM_OPERATIONS,
};
use supernet::DartsSupernet;

splitnas_plugin_api::export_plugin!("darts-space");
splitnas_plugin_api::export_space!(DartsSpace);

/// The space's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DartsConfig {
    /// C of the search network (the supernet).
    pub channels: u32,
    /// Cells (DARTS's `layers`) of the search network; reductions at cells/3 and 2·cells/3.
    pub cells: u32,
    /// C of the stand-alone network.
    pub network_channels: u32,
    /// Cells of the stand-alone network.
    pub network_cells: u32,
    /// The stand-alone network has DARTS's CIFAR auxiliary head (after cell 2·cells/3; it needs
    /// 32x32 images). Its loss weight is the host's `[final] auxiliary_weight`.
    pub auxiliary: bool,
    pub classes: u32,
    /// Channels of the input images (3 for CIFAR, 1 for Fashion-MNIST).
    pub input_channels: u32,
}

impl Default for DartsConfig {
    fn default() -> Self {
        DartsConfig { channels: 16, cells: 8, network_channels: 36, network_cells: 20, auxiliary: true, classes: 10, input_channels: 3 }
    }
}

impl DartsConfig {
    fn validate(&self) -> Result<(), PluginError> {
        for (key, value) in [
            ("channels", self.channels),
            ("network_channels", self.network_channels),
            ("classes", self.classes),
            ("input_channels", self.input_channels),
        ] {
            if value == 0 {
                return Err(PluginError::invalid_config(format!("darts: {key} must be at least 1")));
            }
            if value > 1 << 16 {
                return Err(PluginError::invalid_config(format!("darts: {key} {value} is unreasonably large")));
            }
        }
        for (key, value) in [("cells", self.cells), ("network_cells", self.network_cells)] {
            if !(3..=1000).contains(&value) {
                return Err(PluginError::invalid_config(format!(
                    "darts: {key} must be between 3 and 1000, got {value} (the reduction cells sit at cells/3 and 2·cells/3, so fewer than 3 leaves no normal cell)"
                )));
            }
        }
        Ok(())
    }

    fn network_shape(&self) -> SkeletonShape {
        SkeletonShape {
            channels: self.network_channels as i64,
            cells: self.network_cells as usize,
            classes: self.classes as i64,
            input_channels: self.input_channels as i64,
            auxiliary: self.auxiliary,
        }
    }
}

/// The DARTS space component.
pub struct DartsSpace {
    config: DartsConfig,
    /// Side of the (square) input images, from `configure` (32 until then): per-option FLOPs
    /// and timing contexts depend on it.
    image_size: u32,
}

/// The image side the space assumes until `configure` tells it the data's (CIFAR's).
const DEFAULT_IMAGE_SIZE: u32 = 32;

/// Where an edge's op runs in the stand-alone network: cells of one kind at one width and
/// input side (the op's stride is the edge's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EdgePlace {
    channels: i64,
    side: i64,
    stride: i64,
    cells: u32,
}

impl DartsSpace {
    pub fn config(&self) -> &DartsConfig {
        &self.config
    }

    /// Parameters that choosing `op` on `choice_point` adds to the stand-alone network (every
    /// cell of that kind holds it).
    pub fn option_parameters(&self, choice_point: usize, op: Operation) -> u64 {
        let Some((kind, edge)) = choice_point_edge(choice_point) else {
            return 0;
        };
        layout(self.config.network_channels as i64, self.config.network_cells as usize)
            .iter()
            .filter(|cell| cell.kind == kind)
            .map(|cell| op.parameters(cell.channels as u64, edge_stride(kind, edge) as u64))
            .sum()
    }

    /// Where `choice_point`'s op runs in the stand-alone network: every cell of its kind, at the
    /// cell's width; edges from the cell's inputs at input 1's side (with the edge's stride),
    /// edges from inner nodes at the cell's output side. Equal places are merged and counted.
    fn edge_places(&self, choice_point: usize) -> Result<Vec<EdgePlace>, PluginError> {
        let (kind, edge) = choice_point_edge(choice_point)
            .ok_or_else(|| PluginError::invalid_input(format!("darts has {NUM_CHOICE_POINTS} choice points, not {}", choice_point + 1)))?;
        let from_input = space::EDGES[edge].1 < 2;
        let mut places: Vec<EdgePlace> = Vec::new();
        let mut side1 = self.image_size as i64;
        for cell in layout(self.config.network_channels as i64, self.config.network_cells as usize) {
            let output_side = cell::cell_output_side(cell.kind, side1);
            if cell.kind == kind {
                let place = EdgePlace {
                    channels: cell.channels,
                    side: if from_input { side1 } else { output_side },
                    stride: edge_stride(kind, edge),
                    cells: 1,
                };
                match places.iter_mut().find(|known| (known.channels, known.side, known.stride) == (place.channels, place.side, place.stride)) {
                    Some(known) => known.cells += 1,
                    None => places.push(place),
                }
            }
            side1 = output_side;
        }
        Ok(places)
    }

    fn operation(option: u32) -> Result<Operation, PluginError> {
        Operation::ALL
            .get(option as usize)
            .copied()
            .ok_or_else(|| PluginError::invalid_input(format!("darts has {NUM_OPERATIONS} options per choice point, not {}", option + 1)))
    }

    /// One op of the stand-alone network's form at `place`, with its tensors.
    fn stand_alone_op(op: Operation, place: &EdgePlace, device: Device, init: ParamInit) -> Result<(tch::nn::VarStore, cell::CellOp), PluginError> {
        let var_store = tch::nn::VarStore::new(device.to_tch());
        let cell_op = cell::CellOp::new(&(var_store.root() / op.name()), op, place.channels, place.stride, false, init)?;
        Ok((var_store, cell_op))
    }

    /// The stand-alone network of `architecture`, built with placeholder values on the CPU.
    pub fn placeholder_network(&self, architecture: &Architecture) -> Result<DartsNetwork, PluginError> {
        DartsNetwork::new(self.config.network_shape(), &DartsArchitecture::from_architecture(architecture)?, Device::Cpu, ParamInit::Placeholder)
    }
}

impl Component for DartsSpace {
    const NAME: &'static str = "darts";
    const DESCRIPTION: &'static str =
        "DARTS CNN space: normal and reduction cells of 14 edges x 7 ops (no none), top-2 inputs per node; NetworkCIFAR stand-alone";
    fn default_config() -> serde_json::Value {
        json!(DartsConfig::default())
    }
}

impl SpacePlugin for DartsSpace {
    type Supernet = DartsSupernet;
    type Network = DartsNetwork;

    fn create(config: &str) -> Result<Self, PluginError> {
        let config: DartsConfig = parse_config(Self::NAME, config)?;
        config.validate()?;
        Ok(DartsSpace { config, image_size: DEFAULT_IMAGE_SIZE })
    }

    /// The data's classes and image channels replace the configuration's; a non-zero
    /// stand-alone size replaces `network_channels`/`network_cells`.
    fn configure(&mut self, setup: &SpaceSetup) -> Result<(), PluginError> {
        let mut config = self.config.clone();
        config.classes = setup.classes;
        config.input_channels = setup.input_channels;
        if setup.network_channels != 0 {
            config.network_channels = setup.network_channels;
        }
        if setup.network_cells != 0 {
            config.network_cells = setup.network_cells;
        }
        config.validate()?;
        self.config = config;
        self.image_size = setup.image_size;
        Ok(())
    }

    fn info(&self) -> Result<SpaceInfo, PluginError> {
        let choice_points = (0..NUM_CHOICE_POINTS)
            .map(|point| {
                let (kind, _) = choice_point_edge(point).expect("in range");
                let options = Operation::ALL
                    .into_iter()
                    .map(|op| OptionInfo {
                        name: op.name().into(),
                        costs: vec![NamedValue { name: "params".into(), value: self.option_parameters(point, op) as f64 }].into(),
                    })
                    .collect();
                ChoicePointInfo { name: choice_point_name(point).into(), group: kind.name().into(), options, splittable: kind == CellKind::Normal }
            })
            .collect();
        Ok(SpaceInfo { name: Self::NAME.into(), choice_points, max_options: NUM_OPERATIONS as u32, min_group_size: 2 })
    }

    fn build_supernet(&self, mask: &Mask, device: Device) -> Result<DartsSupernet, PluginError> {
        validate_space_mask(mask)?;
        DartsSupernet::new(&self.config, mask, device)
    }

    fn build_network(&self, architecture: &Architecture, device: Device) -> Result<DartsNetwork, PluginError> {
        DartsNetwork::new(self.config.network_shape(), &DartsArchitecture::from_architecture(architecture)?, device, ParamInit::PyTorchDefault)
    }

    /// Of the stand-alone network (`network_channels`, `network_cells`), built on the CPU with
    /// placeholder values (no random draws): parameters without the auxiliary head, FLOPs as
    /// multiply-accumulates of every convolution and the classifier.
    fn network_stats(&self, architecture: &Architecture, image_size: u32) -> Result<NetworkStats, PluginError> {
        self.placeholder_network(architecture)?.stats(image_size)
    }

    /// Per node, each incoming edge's best allowed op (largest weight, the first on ties) and
    /// that weight; the two edges with the largest such weights are kept (the first on ties),
    /// the others are absent. Weights are compared across edges, so algorithms pass
    /// probabilities (DARTS: the masked softmax of α).
    fn derive(&self, weights: &Tensor, mask: &Mask) -> Result<Architecture, PluginError> {
        validate_space_mask(mask)?;
        if weights.size() != [NUM_CHOICE_POINTS as i64, NUM_OPERATIONS as i64] {
            return Err(PluginError::invalid_input(format!(
                "weights must be [{NUM_CHOICE_POINTS}, {NUM_OPERATIONS}] (choice points x options), got {:?}",
                weights.size()
            )));
        }
        let flat = weights.f_detach()?.f_to_kind(Kind::Double)?.f_to_device(tch::Device::Cpu)?.f_contiguous()?.f_view([-1])?;
        let values = Vec::<f64>::try_from(&flat)?;
        let mut choices = vec![Architecture::ABSENT; NUM_CHOICE_POINTS];
        for kind in CellKind::ALL {
            for node in 2..NUM_NODES {
                let mut strengths: Vec<(usize, usize, f64)> = Vec::new();
                for edge in node_edges(node) {
                    let point = kind.offset() + edge;
                    let mut best: Option<(usize, f64)> = None;
                    for option in mask.allowed(point) {
                        let option = option as usize;
                        let value = values[point * NUM_OPERATIONS + option];
                        if value.is_nan() {
                            return Err(PluginError::invalid_input(format!(
                                "weight of {} on edge {} is NaN: cannot derive an architecture",
                                Operation::ALL[option].name(),
                                choice_point_name(point)
                            )));
                        }
                        if best.is_none_or(|(_, best_value)| value > best_value) {
                            best = Some((option, value));
                        }
                    }
                    let (option, value) = best.expect("validate_space_mask: every edge allows an option");
                    strengths.push((point, option, value));
                }
                // Stable: equal strengths keep the lower input first.
                strengths.sort_by(|a, b| b.2.total_cmp(&a.2));
                for &(point, option, _) in strengths.iter().take(INPUTS_PER_NODE) {
                    choices[point] = option as u32;
                }
            }
        }
        debug_assert_eq!(choices.iter().filter(|&&c| c != Architecture::ABSENT).count(), 2 * INPUTS_PER_NODE * (NUM_NODES - 2));
        Ok(Architecture { choices: choices.into() })
    }

    fn format_genotype(&self, architecture: &Architecture) -> Result<String, PluginError> {
        Ok(genotype::format(&DartsArchitecture::from_architecture(architecture)?))
    }

    /// DARTS's `NetworkCIFAR(C, num_classes, layers, auxiliary, genotype)` (quark0/darts,
    /// `cnn/model.py`); its stem hard-codes three input channels.
    fn export_description(&self, architecture: &Architecture) -> Result<ExportDescription, PluginError> {
        let darts = DartsArchitecture::from_architecture(architecture)?;
        let shape = self.config.network_shape();
        let network = DartsNetwork::new(shape, &darts, Device::Cpu, ParamInit::Placeholder)?;
        let layouts = layout(shape.channels, shape.cells);
        let mut names = std::collections::BTreeMap::new();
        for ours in network.tensor_names() {
            let reference = network::reference_name(&ours, &darts, &layouts)
                .ok_or_else(|| PluginError::other(format!("darts: no NetworkCIFAR name for the network's tensor `{ours}`")))?;
            names.insert(ours, reference);
        }
        let genotype = genotype::format(&darts);
        let mut notes = vec!["genotype: DARTS's `Genotype` namedtuple (`eval(genotype, {'Genotype': genotypes.Genotype})`); NetworkCIFAR.forward returns (logits, auxiliary logits); set `model.drop_path_prob` before training".to_string()];
        if self.config.input_channels != 3 {
            notes.push(format!(
                "input_channels is {}: NetworkCIFAR's stem conv takes 3, so set `model.stem[0] = torch.nn.Conv2d({}, {}, 3, padding=1, bias=False)` before loading",
                self.config.input_channels,
                self.config.input_channels,
                3 * shape.channels
            ));
        }
        Ok(ExportDescription {
            reference: "model.NetworkCIFAR".to_string(),
            source: "quark0/darts, cnn/model.py and cnn/operations.py (no package: put cnn/ on PYTHONPATH)".to_string(),
            constructor: serde_json::json!({
                "C": shape.channels,
                "num_classes": shape.classes,
                "layers": shape.cells,
                "auxiliary": shape.auxiliary,
                "genotype": genotype,
            }),
            names,
            notes,
        })
    }

    fn parse_genotype(&self, text: &str) -> Result<Architecture, PluginError> {
        genotype::parse(text)
            .map(|architecture| architecture.to_architecture())
            .map_err(|reason| PluginError::invalid_input(format!("darts genotype: {reason}")))
    }

    /// Uniform over the valid architectures: the nodes are independent, and each node's
    /// choice is uniform over its (input pair, op pair) choices.
    fn sample_architecture(&self, mask: &Mask, seed: u64) -> Result<Architecture, PluginError> {
        validate_space_mask(mask)?;
        let mut generator = SeededRng::new(seed);
        let mut choices = vec![Architecture::ABSENT; NUM_CHOICE_POINTS];
        for (kind, node) in intermediate_nodes() {
            let index = generator.below(node_choice_count(mask, kind, node));
            set_node_choice(mask, kind, node, index, &mut choices);
        }
        Ok(Architecture { choices: choices.into() })
    }

    fn architecture_count(&self, mask: &Mask) -> Result<Option<u64>, PluginError> {
        validate_space_mask(mask)?;
        Ok(intermediate_nodes().try_fold(1u64, |count, (kind, node)| count.checked_mul(node_choice_count(mask, kind, node))))
    }

    /// An edge's op in every stand-alone cell of its kind, counted by the op's own block
    /// (pooling and the stride-1 identity count 0; a strided skip is a factorized reduce).
    fn option_flops(&self) -> Result<Vec<Vec<f64>>, PluginError> {
        (0..NUM_CHOICE_POINTS)
            .map(|point| {
                let places = self.edge_places(point)?;
                Operation::ALL
                    .into_iter()
                    .map(|op| {
                        places.iter().try_fold(0f64, |total, place| {
                            let (_store, cell_op) = Self::stand_alone_op(op, place, Device::Cpu, ParamInit::Placeholder)?;
                            Ok(total + f64::from(place.cells) * cell_op.macs(place.side) as f64)
                        })
                    })
                    .collect()
            })
            .collect()
    }

    /// One module per distinct place of the edge (width, input side, stride), occurring once
    /// per cell there.
    fn option_networks(&self, choice_point: u32, option: u32, device: Device) -> Result<Vec<OptionModule>, PluginError> {
        let op = Self::operation(option)?;
        self.edge_places(choice_point as usize)?
            .into_iter()
            .map(|place| {
                let (var_store, cell_op) = Self::stand_alone_op(op, &place, device, ParamInit::PyTorchDefault)?;
                let forward = move |input: &Tensor, train: bool| cell_op.forward(input, train);
                Ok(OptionModule::from_var_store(var_store, [place.channels, place.side, place.side], place.cells, forward))
            })
            .collect()
    }

    fn architecture_at(&self, mask: &Mask, index: u64) -> Result<Architecture, PluginError> {
        let Some(count) = self.architecture_count(mask)? else {
            return Err(PluginError::unsupported("darts: the mask allows more architectures than a u64 counts, so they are not numbered"));
        };
        if index >= count {
            return Err(PluginError::invalid_input(format!("architecture index {index} is out of range: the mask allows {count} architectures")));
        }
        let nodes: Vec<(CellKind, usize)> = intermediate_nodes().collect();
        let mut rest = index;
        let mut choices = vec![Architecture::ABSENT; NUM_CHOICE_POINTS];
        for &(kind, node) in nodes.iter().rev() {
            let radix = node_choice_count(mask, kind, node);
            set_node_choice(mask, kind, node, rest % radix, &mut choices);
            rest /= radix;
        }
        Ok(Architecture { choices: choices.into() })
    }
}

/// Every intermediate node of both cells, normal cell first.
fn intermediate_nodes() -> impl Iterator<Item = (CellKind, usize)> {
    CellKind::ALL.into_iter().flat_map(|kind| (2..NUM_NODES).map(move |node| (kind, node)))
}

/// The input-edge pairs of `node` (choice points, in edge order) with their op-pair counts.
fn node_pairs(mask: &Mask, kind: CellKind, node: usize) -> Vec<(usize, usize, u64)> {
    let points: Vec<usize> = node_edges(node).map(|edge| kind.offset() + edge).collect();
    let mut pairs = Vec::new();
    for (i, &first) in points.iter().enumerate() {
        for &second in &points[i + 1..] {
            pairs.push((first, second, (mask.count(first) * mask.count(second)) as u64));
        }
    }
    pairs
}

/// How many (input pair, op pair) choices `node` has within the mask (at most 10·7²).
fn node_choice_count(mask: &Mask, kind: CellKind, node: usize) -> u64 {
    node_pairs(mask, kind, node).iter().map(|&(_, _, count)| count).sum()
}

/// Writes `node`'s choice number `index` (`0..node_choice_count`) into `choices`.
fn set_node_choice(mask: &Mask, kind: CellKind, node: usize, mut index: u64, choices: &mut [u32]) {
    for (first, second, count) in node_pairs(mask, kind, node) {
        if index < count {
            let (first_allowed, second_allowed) = (mask.allowed(first), mask.allowed(second));
            let width = second_allowed.len() as u64;
            choices[first] = first_allowed[(index / width) as usize];
            choices[second] = second_allowed[(index % width) as usize];
            return;
        }
        index -= count;
    }
    debug_assert!(false, "node choice index beyond node_choice_count");
}

#[cfg(test)]
mod tests;
