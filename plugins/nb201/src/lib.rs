//! The NAS-Bench-201 search space (Dong & Yang, ICLR 2020) as a splitnas plugin.
//!
//! - Choice points: the cell's 6 edges `1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2` (group `cell`,
//!   all splittable), each with the options `none, skip_connect, nor_conv_1x1, nor_conv_3x3,
//!   avg_pool_3x3`. One option per edge is an architecture; α is shared by all cells.
//! - Supernet ([`supernet`]): stem, 3 stages of N search cells at C, 2C, 4C with ResNet
//!   reduction blocks between, head; each edge mixes its active options by the weights.
//! - Stand-alone networks ([`network`]): NB201's `TinyNetwork` for one architecture.
//! - Genotype strings ([`genotype`]):
//!   `|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|`.
//!
//! Configuration (JSON, every key optional): `channels` (C, 16), `cells` (N per stage, 5),
//! `classes` (10), `input_channels` (3). The host's `configure` overrides `classes` and
//! `input_channels` with the data's, and `channels`/`cells` with a non-zero stand-alone size
//! (NB201's stand-alone network has the search network's shape).
//!
//! Enumeration: an architecture within a mask is numbered in mixed radix over the edges, the
//! last edge fastest, each digit an index into that edge's allowed options.

pub mod cell;
pub mod genotype;
pub mod network;
pub mod skeleton;
pub mod space;
pub mod supernet;

use serde::{Deserialize, Serialize};
use serde_json::json;
use splitnas_nn_blocks::{BatchNormSpec, ConvSpec, ParamInit, SeededRng};
use splitnas_plugin_api::author::{parse_config, Component, OptionModule, SpacePlugin};
use splitnas_plugin_api::{
    Architecture, ChoicePointInfo, Device, ExportDescription, Mask, NamedValue, NetworkStats, OptionInfo, PluginError, SpaceInfo, SpaceSetup,
};
use tch::{Kind, Tensor};

use network::Nb201Network;
use space::{architecture_of, edge_name, operations_of, validate_space_mask, Operation, NUM_EDGES, NUM_OPERATIONS};
use supernet::Nb201Supernet;

/// The image side a space assumes until `configure` tells it the data's (CIFAR's).
const DEFAULT_IMAGE_SIZE: u32 = 32;

splitnas_plugin_api::export_plugin!("nb201");
splitnas_plugin_api::export_space!(Nb201);

/// The space's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Nb201Config {
    /// C: channels of the first stage (the second has 2C, the third 4C).
    pub channels: u32,
    /// N: cells per stage.
    pub cells: u32,
    pub classes: u32,
    /// Channels of the input images (3 for CIFAR, 1 for Fashion-MNIST).
    pub input_channels: u32,
}

impl Default for Nb201Config {
    fn default() -> Self {
        Nb201Config { channels: 16, cells: 5, classes: 10, input_channels: 3 }
    }
}

impl Nb201Config {
    fn validate(&self) -> Result<(), PluginError> {
        for (key, value) in [("channels", self.channels), ("cells", self.cells), ("classes", self.classes), ("input_channels", self.input_channels)] {
            if value == 0 {
                return Err(PluginError::invalid_config(format!("nb201: {key} must be at least 1")));
            }
        }
        // 4C channels in i64 arithmetic and parameter counts stay far from overflow below this.
        if self.channels > 1 << 16 {
            return Err(PluginError::invalid_config(format!("nb201: channels {} is unreasonably large", self.channels)));
        }
        Ok(())
    }

    /// Widths of the three stages: C, 2C, 4C.
    pub fn stage_widths(&self) -> [i64; 3] {
        let c = self.channels as i64;
        [c, 2 * c, 4 * c]
    }
}

/// The NB201 space component.
pub struct Nb201 {
    config: Nb201Config,
    /// Side of the (square) input images, from `configure` (32 until then): per-option FLOPs
    /// and timing contexts depend on it.
    image_size: u32,
}

/// Where an edge's op runs in the stand-alone network: one stage's cells.
struct StagePlace {
    width: i64,
    side: i64,
    cells: u32,
}

impl Nb201 {
    pub fn config(&self) -> &Nb201Config {
        &self.config
    }

    /// Parameters that choosing `op` on one edge adds to the stand-alone network: one op in
    /// each of the N cells of each stage (ReLU-conv without bias, affine BN); 0 for the others.
    pub fn option_parameters(&self, op: Operation) -> u64 {
        let Some(kernel) = op.conv_kernel() else {
            return 0;
        };
        let per_stage: u64 =
            self.config.stage_widths().iter().map(|&width| ConvSpec::new(width, width, kernel).parameter_count() + 2 * width as u64).sum();
        per_stage * self.config.cells as u64
    }

    /// The three stages an edge's op runs in: width C·2^s at the stage's resolution, once per
    /// cell (α is shared by every cell). The sides follow the stem (size kept) and the
    /// reduction blocks' strided 3x3 convs.
    fn stage_places(&self) -> Vec<StagePlace> {
        let mut side = self.image_size as i64;
        let widths = self.config.stage_widths();
        widths
            .iter()
            .enumerate()
            .map(|(stage, &width)| {
                if stage > 0 {
                    side = ConvSpec::new(widths[stage - 1], width, 3).stride(2).padding(1).output_size(side);
                }
                StagePlace { width, side, cells: self.config.cells }
            })
            .collect()
    }

    fn operation(choice_point: u32, option: u32) -> Result<Operation, PluginError> {
        if choice_point as usize >= NUM_EDGES {
            return Err(PluginError::invalid_input(format!("nb201 has {NUM_EDGES} choice points, not {}", choice_point + 1)));
        }
        Operation::from_index(option as usize)
            .ok_or_else(|| PluginError::invalid_input(format!("nb201 has {NUM_OPERATIONS} options per choice point, not {}", option + 1)))
    }

    /// One op of the stand-alone network's form (affine batch norm) at `width`, with its tensors.
    fn stand_alone_op(op: Operation, width: i64, device: Device, init: ParamInit) -> Result<(tch::nn::VarStore, cell::CellOp), PluginError> {
        let var_store = tch::nn::VarStore::new(device.to_tch());
        let cell_op = cell::CellOp::new(&(var_store.root() / op.name()), op, width, BatchNormSpec::AFFINE, init)?;
        Ok((var_store, cell_op))
    }
}

impl Component for Nb201 {
    const NAME: &'static str = "nb201";
    const DESCRIPTION: &'static str = "NAS-Bench-201: 6 edges x {none, skip, conv1x1, conv3x3, avgpool3x3}, alpha shared by all cells";
    fn default_config() -> serde_json::Value {
        json!(Nb201Config::default())
    }
}

impl SpacePlugin for Nb201 {
    type Supernet = Nb201Supernet;
    type Network = Nb201Network;

    fn create(config: &str) -> Result<Self, PluginError> {
        let config: Nb201Config = parse_config(Self::NAME, config)?;
        config.validate()?;
        Ok(Nb201 { config, image_size: DEFAULT_IMAGE_SIZE })
    }

    /// The data's classes and image channels replace the configuration's; a non-zero
    /// stand-alone size replaces `channels`/`cells` (the supernet and the stand-alone network
    /// share them).
    fn configure(&mut self, setup: &SpaceSetup) -> Result<(), PluginError> {
        let mut config = self.config.clone();
        config.classes = setup.classes;
        config.input_channels = setup.input_channels;
        if setup.network_channels != 0 {
            config.channels = setup.network_channels;
        }
        if setup.network_cells != 0 {
            config.cells = setup.network_cells;
        }
        config.validate()?;
        self.config = config;
        self.image_size = setup.image_size;
        Ok(())
    }

    fn info(&self) -> Result<SpaceInfo, PluginError> {
        let options: Vec<OptionInfo> = Operation::ALL
            .into_iter()
            .map(|op| OptionInfo {
                name: op.name().into(),
                costs: vec![NamedValue { name: "params".into(), value: self.option_parameters(op) as f64 }].into(),
            })
            .collect();
        let choice_points = (0..NUM_EDGES)
            .map(|edge| ChoicePointInfo { name: edge_name(edge).into(), group: "cell".into(), options: options.clone().into(), splittable: true })
            .collect();
        Ok(SpaceInfo { name: Self::NAME.into(), choice_points, max_options: NUM_OPERATIONS as u32, min_group_size: 1 })
    }

    fn build_supernet(&self, mask: &Mask, device: Device) -> Result<Nb201Supernet, PluginError> {
        validate_space_mask(mask)?;
        Nb201Supernet::new(&self.config, mask, device)
    }

    fn build_network(&self, architecture: &Architecture, device: Device) -> Result<Nb201Network, PluginError> {
        Nb201Network::new(&self.config, &operations_of(architecture)?, device, ParamInit::PyTorchDefault)
    }

    /// Parameters counted on a network built on the CPU with placeholder values (no random
    /// draws, so libtorch's generator is left as it was); FLOPs as [`skeleton::Skeleton::flops`]
    /// counts them (NB201's convention: conv and classifier multiply-accumulates plus the
    /// classifier's bias adds; at C=16, N=5, 10 classes, 32x32 this gives NB201's table).
    fn network_stats(&self, architecture: &Architecture, image_size: u32) -> Result<NetworkStats, PluginError> {
        Nb201Network::new(&self.config, &operations_of(architecture)?, Device::Cpu, ParamInit::Placeholder)?.stats(image_size)
    }

    /// Per edge, the allowed option with the largest weight (the first on ties).
    fn derive(&self, weights: &Tensor, mask: &Mask) -> Result<Architecture, PluginError> {
        validate_space_mask(mask)?;
        if weights.size() != [NUM_EDGES as i64, NUM_OPERATIONS as i64] {
            return Err(PluginError::invalid_input(format!(
                "weights must be [{NUM_EDGES}, {NUM_OPERATIONS}] (edges x options), got {:?}",
                weights.size()
            )));
        }
        let flat = weights.f_detach()?.f_to_kind(Kind::Double)?.f_to_device(tch::Device::Cpu)?.f_contiguous()?.f_view([-1])?;
        let values = Vec::<f64>::try_from(&flat)?;
        let mut operations = [Operation::None; NUM_EDGES];
        for (edge, slot) in operations.iter_mut().enumerate() {
            let mut best: Option<(usize, f64)> = None;
            for option in mask.allowed(edge) {
                let option = option as usize;
                let value = values[edge * NUM_OPERATIONS + option];
                if value.is_nan() {
                    return Err(PluginError::invalid_input(format!(
                        "weight of {} on edge {} is NaN: cannot derive an architecture",
                        Operation::ALL[option].name(),
                        edge_name(edge)
                    )));
                }
                if best.is_none_or(|(_, best_value)| value > best_value) {
                    best = Some((option, value));
                }
            }
            // validate_space_mask guarantees an allowed option per edge.
            let (option, _) = best.ok_or_else(|| PluginError::invalid_input(format!("the mask allows no option on edge {}", edge_name(edge))))?;
            *slot = Operation::ALL[option];
        }
        Ok(architecture_of(&operations))
    }

    fn format_genotype(&self, architecture: &Architecture) -> Result<String, PluginError> {
        Ok(genotype::format(&operations_of(architecture)?))
    }

    /// XAutoDL's `TinyNetwork(C, N, genotype, num_classes)` (`pip install xautodl`), the
    /// network NAS-Bench-201 trains; its stem hard-codes three input channels.
    fn export_description(&self, architecture: &Architecture) -> Result<ExportDescription, PluginError> {
        let network = Nb201Network::new(&self.config, &operations_of(architecture)?, Device::Cpu, ParamInit::Placeholder)?;
        let mut names = std::collections::BTreeMap::new();
        for ours in network.tensor_names() {
            let reference = network::reference_name(&ours)
                .ok_or_else(|| PluginError::other(format!("nb201: no TinyNetwork name for the network's tensor `{ours}`")))?;
            names.insert(ours, reference);
        }
        let genotype = genotype::format(&operations_of(architecture)?);
        let mut notes = vec![format!(
            "genotype: pass `xautodl.models.cell_searchs.genotypes.Structure.str2structure(genotype)`; TinyNetwork.forward returns (features, logits)"
        )];
        if self.config.input_channels != 3 {
            notes.push(format!(
                "input_channels is {}: TinyNetwork's stem conv takes 3, so set `model.stem[0] = torch.nn.Conv2d({}, {}, 3, padding=1, bias=False)` before loading",
                self.config.input_channels, self.config.input_channels, self.config.channels
            ));
        }
        Ok(ExportDescription {
            reference: "xautodl.models.cell_infers.tiny_network.TinyNetwork".to_string(),
            source: "pip install xautodl==1.0.0 (NAS-Bench-201, D-X-Y/AutoDL-Projects)".to_string(),
            constructor: serde_json::json!({
                "C": self.config.channels,
                "N": self.config.cells,
                "genotype": genotype,
                "num_classes": self.config.classes,
            }),
            names,
            notes,
        })
    }

    fn parse_genotype(&self, text: &str) -> Result<Architecture, PluginError> {
        genotype::parse(text)
            .map(|operations| architecture_of(&operations))
            .map_err(|reason| PluginError::invalid_input(format!("nb201 genotype: {reason}")))
    }

    /// Every edge's option uniformly among its allowed ones (edges are independent).
    fn sample_architecture(&self, mask: &Mask, seed: u64) -> Result<Architecture, PluginError> {
        validate_space_mask(mask)?;
        let mut generator = SeededRng::new(seed);
        Ok(Architecture { choices: (0..NUM_EDGES).map(|edge| generator.choose(&mask.allowed(edge))).collect() })
    }

    /// The product of the allowed option counts (at most 5^6).
    fn architecture_count(&self, mask: &Mask) -> Result<Option<u64>, PluginError> {
        validate_space_mask(mask)?;
        Ok(Some((0..NUM_EDGES).map(|edge| mask.count(edge) as u64).product()))
    }

    /// An edge's op in every cell of every stage, each at its stage's width and resolution,
    /// counted by the op's own block; `none`, `skip_connect` and `avg_pool_3x3` count 0.
    fn option_flops(&self) -> Result<Vec<Vec<f64>>, PluginError> {
        let places = self.stage_places();
        let per_option = Operation::ALL
            .into_iter()
            .map(|op| {
                places.iter().try_fold(0u64, |total, place| {
                    let (_store, cell_op) = Self::stand_alone_op(op, place.width, Device::Cpu, ParamInit::Placeholder)?;
                    Ok::<u64, PluginError>(total + u64::from(place.cells) * cell_op.macs(place.side))
                })
            })
            .map(|flops| flops.map(|flops| flops as f64))
            .collect::<Result<Vec<f64>, PluginError>>()?;
        Ok(vec![per_option; NUM_EDGES])
    }

    /// One module per stage (the op at the stage's width and resolution, occurring once per
    /// cell); none for `none`, which computes nothing.
    fn option_networks(&self, choice_point: u32, option: u32, device: Device) -> Result<Vec<OptionModule>, PluginError> {
        let op = Self::operation(choice_point, option)?;
        if op == Operation::None {
            return Ok(Vec::new());
        }
        self.stage_places()
            .into_iter()
            .map(|place| {
                let (var_store, cell_op) = Self::stand_alone_op(op, place.width, device, ParamInit::PyTorchDefault)?;
                let forward = move |input: &Tensor, train: bool| {
                    let node = cell::Node::new(input.shallow_clone());
                    Ok(cell_op.forward(&node, train)?.unwrap_or_else(|| input.zeros_like()))
                };
                Ok(OptionModule::from_var_store(var_store, [place.width, place.side, place.side], place.cells, forward))
            })
            .collect()
    }

    fn architecture_at(&self, mask: &Mask, index: u64) -> Result<Architecture, PluginError> {
        validate_space_mask(mask)?;
        let count: u64 = (0..NUM_EDGES).map(|edge| mask.count(edge) as u64).product();
        if index >= count {
            return Err(PluginError::invalid_input(format!("architecture index {index} is out of range: the mask allows {count} architectures")));
        }
        let mut rest = index;
        let mut choices = vec![0u32; NUM_EDGES];
        for edge in (0..NUM_EDGES).rev() {
            let allowed = mask.allowed(edge);
            choices[edge] = allowed[(rest % allowed.len() as u64) as usize];
            rest /= allowed.len() as u64;
        }
        Ok(Architecture { choices: choices.into() })
    }
}

#[cfg(test)]
mod tests;
