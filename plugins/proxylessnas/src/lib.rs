//! The ProxylessNAS mobile space (Cai et al., ICLR 2019) as ProxylessNAS and GM-NAS search it,
//! as a splitnas plugin.
//!
//! - Network: stem conv 3x3 (stride 2) to 32, BN, ReLU6; a fixed `3x3_MBConv1` to 16; 21
//!   searchable blocks in six stages of widths 24, 40, 80, 96, 192, 320 (4, 4, 4, 4, 4, 1
//!   blocks, only a stage's first block strides: 2, 2, 2, 1, 2, 1); a 1x1 feature mix to 1280,
//!   BN, ReLU6; global average pooling; dropout; a linear classifier. ReLU6 throughout, every
//!   batch norm eps 1e-3 and momentum 0.1 (ProxylessNAS's `bn_param`).
//! - Choice points: the 21 blocks (`block 1` .. `block 21`, group `block`, all splittable).
//!   Options `3x3_MBConv3, 3x3_MBConv6, 5x5_MBConv3, 5x5_MBConv6, 7x7_MBConv3, 7x7_MBConv6`,
//!   and `zero` on the 15 blocks that are not a stage's first (they have an identity shortcut;
//!   a `zero` block passes its input on).
//! - Supernet ([`supernet`]): each block mixes its active options by the weights, plus its
//!   shortcut. Stand-alone networks ([`network`]): `ofa`'s `ProxylessNASNets`.
//! - Genotypes: the 21 op names, comma-separated, in block order.
//! - FLOPs are multiply-accumulates of conv and linear layers (the ProxylessNAS/OFA papers'
//!   count); [`ProxylessNas::option_macs`] gives each option's in its context, and the ABI's
//!   `option_flops` / `option_networks` hand them, and each option as a runnable module in
//!   its context, to cost-aware search and `splitnas bench latency`.
//!
//! Configuration (JSON, every key optional): `width_multiplier` (1.0; widths by
//! `make_divisible(w * m, 8)`, the feature mix scaled only above 1), `stage_channels`
//! ([24, 40, 80, 96, 192, 320]), `first_strides` ([2, 2, 2, 1, 2, 1]), `stem_stride` (2),
//! `stem_channels` (32), `first_block_channels` (16), `feature_mix_channels` (1280), `dropout`
//! (0, before the classifier, stand-alone networks and supernet alike), `classes` (1000),
//! `input_channels` (3), `image_size` (224). The host's `configure` sets `classes`,
//! `input_channels` and `image_size` from the data.
//!
//! Enumeration: an architecture within a mask is numbered in mixed radix over the blocks, the
//! last block fastest, each digit an index into that block's allowed options.

pub mod network;
pub mod skeleton;
pub mod space;
pub mod supernet;

use serde::{Deserialize, Serialize};
use serde_json::json;
use splitnas_nn_blocks::{BatchNormNumerics, MbConv, ParamInit, SeededRng};
use splitnas_plugin_api::author::{parse_config, Component, OptionModule, SpacePlugin};
use splitnas_plugin_api::{
    Architecture, ChoicePointInfo, Device, ExportDescription, Mask, NamedValue, NetworkStats, OptionInfo, PluginError, SpaceInfo, SpaceSetup,
};
use tch::{Kind, Tensor};

use network::ProxylessNetwork;
use space::{architecture_of, block_name, operations_of, validate_space_mask, NetworkLayout, Operation, NUM_BLOCKS, NUM_OPERATIONS, STAGE_BLOCKS};
use supernet::ProxylessSupernet;

splitnas_plugin_api::export_plugin!("proxylessnas");
splitnas_plugin_api::export_space!(ProxylessNas);

/// The space's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxylessConfig {
    /// Scales every width (`make_divisible(w * m, 8)`); the feature mix only above 1.
    pub width_multiplier: f64,
    /// Widths of the six stages before the multiplier.
    pub stage_channels: Vec<u32>,
    /// Stride of each stage's first block (the others have stride 1).
    pub first_strides: Vec<u32>,
    pub stem_stride: u32,
    pub stem_channels: u32,
    pub first_block_channels: u32,
    pub feature_mix_channels: u32,
    /// Dropout rate before the classifier (ProxylessNAS: 0 in search, 0.1 for retraining Mobile).
    pub dropout: f64,
    pub classes: u32,
    /// Channels of the input images (3 for ImageNet, 1 for Fashion-MNIST).
    pub input_channels: u32,
    /// Side of the square input images (the options' FLOPs depend on it).
    pub image_size: u32,
}

impl Default for ProxylessConfig {
    fn default() -> Self {
        ProxylessConfig {
            width_multiplier: 1.0,
            stage_channels: vec![24, 40, 80, 96, 192, 320],
            first_strides: vec![2, 2, 2, 1, 2, 1],
            stem_stride: 2,
            stem_channels: 32,
            first_block_channels: 16,
            feature_mix_channels: 1280,
            dropout: 0.0,
            classes: 1000,
            input_channels: 3,
            image_size: 224,
        }
    }
}

impl ProxylessConfig {
    fn validate(&self) -> Result<(), PluginError> {
        let invalid = |message: String| Err(PluginError::invalid_config(format!("proxylessnas: {message}")));
        if !(self.width_multiplier > 0.0 && self.width_multiplier <= 8.0) {
            return invalid(format!("width_multiplier must be in (0, 8], got {}", self.width_multiplier));
        }
        let stages = STAGE_BLOCKS.len();
        if self.stage_channels.len() != stages || self.first_strides.len() != stages {
            return invalid(format!(
                "stage_channels and first_strides need one entry per stage ({stages}), got {} and {}",
                self.stage_channels.len(),
                self.first_strides.len()
            ));
        }
        if let Some(stride) = self.first_strides.iter().chain([&self.stem_stride]).find(|&&stride| !(1..=2).contains(&stride)) {
            return invalid(format!("strides must be 1 or 2, got {stride}"));
        }
        let widths = self.stage_channels.iter().chain([&self.stem_channels, &self.first_block_channels, &self.feature_mix_channels]);
        if let Some(width) = widths.into_iter().find(|&&width| width == 0 || width > 1 << 14) {
            return invalid(format!("channel counts must be in 1..=16384, got {width}"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return invalid(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        for (key, value) in [("classes", self.classes), ("input_channels", self.input_channels), ("image_size", self.image_size)] {
            if value == 0 {
                return invalid(format!("{key} must be at least 1"));
            }
        }
        Ok(())
    }
}

/// The ProxylessNAS space component.
pub struct ProxylessNas {
    config: ProxylessConfig,
    layout: NetworkLayout,
}

impl ProxylessNas {
    pub fn config(&self) -> &ProxylessConfig {
        &self.config
    }

    pub fn layout(&self) -> &NetworkLayout {
        &self.layout
    }

    /// Each option's FLOPs (multiply-accumulates of its convolutions) in its context, for an
    /// `image_size` input at the configured widths and strides: `[choice point][option]`, in
    /// the order of [`SpaceInfo`]'s options (`zero` counts 0). A network's FLOPs are
    /// [`NetworkLayout::fixed_macs`] plus the chosen options' entries.
    pub fn option_macs(&self, image_size: u32) -> Vec<Vec<u64>> {
        (0..NUM_BLOCKS)
            .map(|block| self.layout.blocks[block].options().iter().map(|&op| self.layout.option_macs(block, op, image_size as i64)).collect())
            .collect()
    }

    /// Parameters of the stand-alone network of `operations`, counted from the layout.
    fn parameter_count(&self, operations: &[Operation]) -> u64 {
        self.layout.fixed_parameters() + operations.iter().enumerate().map(|(block, &op)| self.layout.option_parameters(block, op)).sum::<u64>()
    }

    /// `ofa`'s `ProxylessNASNets.build_from_config` configuration of the stand-alone network.
    pub fn reference_config(&self, operations: &[Operation]) -> serde_json::Value {
        let layout = &self.layout;
        let conv_layer = |in_channels: i64, out_channels: i64, kernel_size: i64, stride: i64| {
            json!({
                "name": "ConvLayer", "kernel_size": kernel_size, "stride": stride, "dilation": 1, "groups": 1, "bias": false,
                "has_shuffle": false, "use_se": false, "in_channels": in_channels, "out_channels": out_channels, "use_bn": true,
                "act_func": "relu6", "dropout_rate": 0, "ops_order": "weight_bn_act"
            })
        };
        let mbconv = |spec: splitnas_nn_blocks::MbConvSpec| {
            json!({
                "name": "MBConvLayer", "in_channels": spec.in_channels, "out_channels": spec.out_channels,
                "kernel_size": spec.kernel_size, "stride": spec.stride, "expand_ratio": spec.expand_ratio,
                "mid_channels": null, "act_func": "relu6", "use_se": false, "groups": null
            })
        };
        let mut blocks = vec![json!({"name": "ResidualBlock", "conv": mbconv(layout.first_block), "shortcut": null})];
        for (block, &operation) in layout.blocks.iter().zip(operations) {
            let conv = match block.mbconv(operation) {
                Some(spec) => mbconv(spec),
                None => json!({"name": "ZeroLayer"}),
            };
            let shortcut = if block.has_shortcut {
                json!({
                    "name": "IdentityLayer", "in_channels": block.in_channels, "out_channels": block.out_channels,
                    "use_bn": false, "act_func": null, "dropout_rate": 0, "ops_order": "weight_bn_act"
                })
            } else {
                serde_json::Value::Null
            };
            blocks.push(json!({"name": "ResidualBlock", "conv": conv, "shortcut": shortcut}));
        }
        json!({
            "name": "ProxylessNASNets",
            "bn": {"momentum": 0.1, "eps": 1e-3},
            "first_conv": conv_layer(layout.input_channels, layout.stem_channels, 3, layout.stem_stride),
            "blocks": blocks,
            "feature_mix_layer": conv_layer(layout.last_channels(), layout.feature_mix_channels, 1, 1),
            "classifier": {
                "name": "LinearLayer", "in_features": layout.feature_mix_channels, "out_features": layout.classes, "bias": true,
                "use_bn": false, "act_func": null, "dropout_rate": self.config.dropout, "ops_order": "weight_bn_act"
            }
        })
    }

    fn operations(&self, architecture: &Architecture) -> Result<Vec<Operation>, PluginError> {
        operations_of(&self.layout, architecture)
    }
}

impl Component for ProxylessNas {
    const NAME: &'static str = "proxylessnas";
    const DESCRIPTION: &'static str = "ProxylessNAS mobile space: 21 MBConv blocks x {3x3,5x5,7x7} x expand {3,6}, plus zero where a shortcut exists";
    fn default_config() -> serde_json::Value {
        json!(ProxylessConfig::default())
    }
}

impl SpacePlugin for ProxylessNas {
    type Supernet = ProxylessSupernet;
    type Network = ProxylessNetwork;

    fn create(config: &str) -> Result<Self, PluginError> {
        let config: ProxylessConfig = parse_config(Self::NAME, config)?;
        config.validate()?;
        let layout = NetworkLayout::new(&config);
        Ok(ProxylessNas { config, layout })
    }

    /// The data's classes, image channels and image size replace the configuration's. The
    /// stand-alone size (`network_channels`, `network_cells`) has no meaning here: the
    /// stand-alone network is the supernet's shape with one option per block.
    fn configure(&mut self, setup: &SpaceSetup) -> Result<(), PluginError> {
        let mut config = self.config.clone();
        config.classes = setup.classes;
        config.input_channels = setup.input_channels;
        if setup.image_size != 0 {
            config.image_size = setup.image_size;
        }
        config.validate()?;
        self.layout = NetworkLayout::new(&config);
        self.config = config;
        Ok(())
    }

    /// Costs per option: `flops` (multiply-accumulates in context at the configured image
    /// size) and `params`.
    fn info(&self) -> Result<SpaceInfo, PluginError> {
        let macs = self.option_macs(self.config.image_size);
        let choice_points = (0..NUM_BLOCKS)
            .map(|block| {
                let options: Vec<OptionInfo> = self.layout.blocks[block]
                    .options()
                    .iter()
                    .zip(&macs[block])
                    .map(|(&op, &flops)| OptionInfo {
                        name: op.name().into(),
                        costs: vec![
                            NamedValue { name: "flops".into(), value: flops as f64 },
                            NamedValue { name: "params".into(), value: self.layout.option_parameters(block, op) as f64 },
                        ]
                        .into(),
                    })
                    .collect();
                ChoicePointInfo { name: block_name(block).into(), group: "block".into(), options: options.into(), splittable: true }
            })
            .collect();
        // Groups of one are fine: a block's options are independent candidates.
        Ok(SpaceInfo { name: Self::NAME.into(), choice_points, max_options: NUM_OPERATIONS as u32, min_group_size: 1 })
    }

    fn build_supernet(&self, mask: &Mask, device: Device) -> Result<ProxylessSupernet, PluginError> {
        validate_space_mask(&self.layout, mask)?;
        ProxylessSupernet::new(&self.layout, self.config.dropout, mask, device)
    }

    fn build_network(&self, architecture: &Architecture, device: Device) -> Result<ProxylessNetwork, PluginError> {
        ProxylessNetwork::new(&self.layout, &self.operations(architecture)?, self.config.dropout, device, ParamInit::PyTorchDefault)
    }

    /// Counted from the layout (nothing is built, no random numbers drawn): parameters of the
    /// stand-alone network, FLOPs as the multiply-accumulates of its conv and linear layers
    /// for an `image_size` input (as `ofa`'s `count_net_flops`, exactly: it sums in float32).
    fn network_stats(&self, architecture: &Architecture, image_size: u32) -> Result<NetworkStats, PluginError> {
        if image_size == 0 {
            return Err(PluginError::invalid_input("image size must be at least 1"));
        }
        let operations = self.operations(architecture)?;
        let flops = self.layout.fixed_macs(image_size as i64)
            + operations.iter().enumerate().map(|(block, &op)| self.layout.option_macs(block, op, image_size as i64)).sum::<u64>();
        Ok(NetworkStats { parameters: self.parameter_count(&operations), flops })
    }

    /// Per block, the allowed option with the largest weight (the first on ties).
    fn derive(&self, weights: &Tensor, mask: &Mask) -> Result<Architecture, PluginError> {
        validate_space_mask(&self.layout, mask)?;
        if weights.size() != [NUM_BLOCKS as i64, NUM_OPERATIONS as i64] {
            return Err(PluginError::invalid_input(format!(
                "weights must be [{NUM_BLOCKS}, {NUM_OPERATIONS}] (blocks x options), got {:?}",
                weights.size()
            )));
        }
        let flat = weights.f_detach()?.f_to_kind(Kind::Double)?.f_to_device(tch::Device::Cpu)?.f_contiguous()?.f_view([-1])?;
        let values = Vec::<f64>::try_from(&flat)?;
        let mut choices = Vec::with_capacity(NUM_BLOCKS);
        for block in 0..NUM_BLOCKS {
            let mut best: Option<(u32, f64)> = None;
            for option in mask.allowed(block) {
                let value = values[block * NUM_OPERATIONS + option as usize];
                if value.is_nan() {
                    return Err(PluginError::invalid_input(format!(
                        "weight of {} on {} is NaN: cannot derive an architecture",
                        Operation::ALL[option as usize].name(),
                        block_name(block)
                    )));
                }
                if best.is_none_or(|(_, best_value)| value > best_value) {
                    best = Some((option, value));
                }
            }
            // validate_space_mask guarantees an allowed option per block.
            let (option, _) = best.ok_or_else(|| PluginError::invalid_input(format!("the mask allows no option on {}", block_name(block))))?;
            choices.push(option);
        }
        Ok(Architecture { choices: choices.into() })
    }

    fn format_genotype(&self, architecture: &Architecture) -> Result<String, PluginError> {
        Ok(space::format_genotype(&self.operations(architecture)?))
    }

    fn parse_genotype(&self, text: &str) -> Result<Architecture, PluginError> {
        space::parse_genotype(&self.layout, text)
            .map(|operations| architecture_of(&operations))
            .map_err(|reason| PluginError::invalid_input(format!("proxylessnas genotype: {reason}")))
    }

    /// Every block's option uniformly among its allowed ones (blocks are independent).
    fn sample_architecture(&self, mask: &Mask, seed: u64) -> Result<Architecture, PluginError> {
        validate_space_mask(&self.layout, mask)?;
        let mut generator = SeededRng::new(seed);
        Ok(Architecture { choices: (0..NUM_BLOCKS).map(|block| generator.choose(&mask.allowed(block))).collect() })
    }

    /// The product of the allowed option counts (at most 6^6 * 7^15, about 2.2e17).
    fn architecture_count(&self, mask: &Mask) -> Result<Option<u64>, PluginError> {
        validate_space_mask(&self.layout, mask)?;
        Ok(Some((0..NUM_BLOCKS).map(|block| mask.count(block) as u64).product()))
    }

    fn architecture_at(&self, mask: &Mask, index: u64) -> Result<Architecture, PluginError> {
        validate_space_mask(&self.layout, mask)?;
        let count: u64 = (0..NUM_BLOCKS).map(|block| mask.count(block) as u64).product();
        if index >= count {
            return Err(PluginError::invalid_input(format!("architecture index {index} is out of range: the mask allows {count} architectures")));
        }
        let mut rest = index;
        let mut choices = vec![0u32; NUM_BLOCKS];
        for block in (0..NUM_BLOCKS).rev() {
            let allowed = mask.allowed(block);
            choices[block] = allowed[(rest % allowed.len() as u64) as usize];
            rest /= allowed.len() as u64;
        }
        Ok(Architecture { choices: choices.into() })
    }

    /// ABI 1.3: [`ProxylessNas::option_macs`] at the configured image size.
    fn option_flops(&self) -> Result<Vec<Vec<f64>>, PluginError> {
        Ok(self.option_macs(self.config.image_size).into_iter().map(|row| row.into_iter().map(|macs| macs as f64).collect()).collect())
    }

    /// ABI 1.3: the option's MBConv at its block's input (width, side at the configured image
    /// size) and stride, with the block's shortcut added where it has one (the addition runs
    /// only when the option computes something); none for `zero`, which passes its input on.
    fn option_networks(&self, choice_point: u32, option: u32, device: Device) -> Result<Vec<OptionModule>, PluginError> {
        let block = choice_point as usize;
        let layout = self.layout.blocks.get(block).ok_or_else(|| {
            PluginError::invalid_input(format!("proxylessnas: choice point {choice_point} is out of range (the space has {NUM_BLOCKS} blocks)"))
        })?;
        let operation = *layout.options().get(option as usize).ok_or_else(|| {
            PluginError::invalid_input(format!(
                "proxylessnas: {} has no option {option} (its options: {})",
                block_name(block),
                space::option_names(layout.options())
            ))
        })?;
        let Some(spec) = layout.mbconv(operation) else {
            return Ok(Vec::new());
        };
        let (sides, _) = self.layout.block_input_sides(self.config.image_size as i64);
        let var_store = tch::nn::VarStore::new(device.to_tch());
        let op = MbConv::new(&var_store.root(), spec, BatchNormNumerics::MOBILE, ParamInit::PyTorchDefault)?;
        let has_shortcut = layout.has_shortcut;
        let forward = move |input: &Tensor, train: bool| {
            let output = op.forward(input, train)?;
            if has_shortcut {
                output.f_add(input)
            } else {
                Ok(output)
            }
        };
        Ok(vec![OptionModule::from_var_store(var_store, [layout.in_channels, sides[block], sides[block]], 1, forward)])
    }

    /// `ofa`'s `ProxylessNASNets` (`pip install ofa`), built from the configuration in
    /// `constructor.config`.
    fn export_description(&self, architecture: &Architecture) -> Result<ExportDescription, PluginError> {
        let operations = self.operations(architecture)?;
        let network = ProxylessNetwork::new(&self.layout, &operations, self.config.dropout, Device::Cpu, ParamInit::Placeholder)?;
        Ok(ExportDescription {
            reference: "ofa.imagenet_classification.networks.proxyless_nets.ProxylessNASNets".to_string(),
            source: "pip install --no-deps ofa==0.1.0.post202307202001 (MIT Han Lab's once-for-all, which holds ProxylessNAS's networks)".to_string(),
            constructor: json!({ "config": self.reference_config(&operations) }),
            names: network::reference_names(&network)?,
            notes: vec![
                "construct with `ProxylessNASNets.build_from_config(constructor['config'])`; importing ofa under torch 2.x needs a stub `ofa.utils.my_dataloader` module in sys.modules (it imports torchvision and torch internals the network does not use)".to_string(),
            ],
        })
    }
}

#[cfg(test)]
mod tests;
