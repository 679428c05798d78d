//! The Once-for-All elastic MobileNetV3 space (Cai et al., ICLR 2020) as a splitnas plugin: the
//! space OFA's progressive shrinking trains and GM-NAS splits on kernel sizes.
//!
//! - Network (`OFAMobileNetV3`, width 1.0): stem conv 3x3 stride 2 to 16, BN, h-swish; a fixed
//!   expand-1 block 16 to 16 (depthwise 3x3, BN, ReLU, 1x1, BN, identity shortcut); five elastic
//!   stages of up to 4 blocks, widths 24, 40, 80, 112, 160, first strides 2, 2, 2, 1, 2,
//!   activations ReLU, ReLU, h-swish, h-swish, h-swish, squeeze-excitation in stages 2, 4, 5;
//!   final expand 1x1 to 960, BN, h-swish; global average pooling; feature mix 1x1 to 1280 (no
//!   BN, no bias), h-swish; dropout; a linear classifier. Every conv bias-free except SE's,
//!   batch norms eps 1e-5 and momentum 0.1.
//! - Choice points ([`choices`]): a kernel size {3, 5, 7} and an expand ratio {3, 4, 6} per
//!   elastic block, a depth {2, 3, 4} per stage: 45 in all. Only kernels are splittable, as
//!   GM-NAS splits OFA.
//! - Supernet ([`supernet`]): one weight-shared network, single path. Stand-alone networks
//!   ([`network`]): the extracted static subnet, ofa's `MobileNetV3`.
//! - Genotypes: OFA's JSON `{"ks":[20],"e":[20],"d":[5]}`.
//! - FLOPs: multiply-accumulates of conv and linear layers (squeeze-excitation's included), as
//!   OFA counts them.
//!
//! Configuration (JSON, every key optional): `width_multiplier` (1.0; every width
//! `make_divisible(w * m, 8)`), `stage_strides` ([2, 2, 2, 1, 2]), `dropout` (0.1, OFA's `dropout_rate`), `classes` (1000),
//! `input_channels` (3), `image_size` (224). The host's `configure` sets the last three from
//! the data.

pub mod choices;
pub mod layers;
pub mod layout;
pub mod network;
pub mod parts;
pub mod supernet;

use serde::{Deserialize, Serialize};
use serde_json::json;
use splitnas_nn_blocks::{ParamInit, SeededRng};
use splitnas_plugin_api::author::{parse_config, Component, PartModule, SpacePlugin};
use splitnas_plugin_api::{
    Architecture, ChoicePointInfo, Device, ExportDescription, Mask, NamedValue, NetworkStats, OptionInfo, PluginError, SpaceInfo, SpaceSetup,
};
use tch::{Kind, Tensor};

use choices::{canonicalize, choice_points, validate_architecture, validate_space_mask, ChoicePoint, Subnet, NUM_CHOICE_POINTS, NUM_OPTIONS};
use layout::NetworkLayout;
use network::OfaNetwork;
use supernet::OfaSupernet;

splitnas_plugin_api::export_plugin!("ofa");
splitnas_plugin_api::export_space!(Ofa);

/// The space's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfaConfig {
    /// Scales every width (`make_divisible(w * m, 8)`); GM-NAS's published OFA networks use 1.2.
    pub width_multiplier: f64,
    /// Stride of each elastic stage's first block (OFA: 2, 2, 2, 1, 2). Small images want
    /// fewer: at 28 px OFA's strides leave the last stage 1x1, where every kernel is the same.
    pub stage_strides: Vec<u32>,
    /// Dropout rate before the classifier (OFA trains with 0.1).
    pub dropout: f64,
    pub classes: u32,
    /// Channels of the input images (3 for ImageNet, 1 for Fashion-MNIST).
    pub input_channels: u32,
    /// Side of the square input images (FLOPs depend on it).
    pub image_size: u32,
}

impl Default for OfaConfig {
    fn default() -> Self {
        OfaConfig { width_multiplier: 1.0, stage_strides: vec![2, 2, 2, 1, 2], dropout: 0.1, classes: 1000, input_channels: 3, image_size: 224 }
    }
}

impl OfaConfig {
    fn validate(&self) -> Result<(), PluginError> {
        let invalid = |message: String| Err(PluginError::invalid_config(format!("ofa: {message}")));
        if !(self.width_multiplier > 0.0 && self.width_multiplier <= 8.0) {
            return invalid(format!("width_multiplier must be in (0, 8], got {}", self.width_multiplier));
        }
        if self.stage_strides.len() != choices::NUM_STAGES || self.stage_strides.iter().any(|&stride| !(1..=2).contains(&stride)) {
            return invalid(format!("stage_strides needs 5 strides of 1 or 2 (one per stage), got {:?}", self.stage_strides));
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

/// The OFA space component.
pub struct Ofa {
    config: OfaConfig,
    layout: NetworkLayout,
}

impl Ofa {
    pub fn config(&self) -> &OfaConfig {
        &self.config
    }

    pub fn layout(&self) -> &NetworkLayout {
        &self.layout
    }

    /// The subnet of an architecture, or what is wrong with it.
    pub fn subnet(&self, architecture: &Architecture) -> Result<Subnet, PluginError> {
        validate_architecture(architecture)?;
        Ok(Subnet::of(architecture))
    }

    /// The supernet of `mask`, as a concrete type (tests and tools; the host goes through the ABI).
    pub fn supernet(&self, mask: &Mask, device: Device) -> Result<OfaSupernet, PluginError> {
        validate_space_mask(mask)?;
        OfaSupernet::new(&self.layout, self.config.dropout, mask, device)
    }

    /// `ofa`'s `MobileNetV3.build_from_config` configuration of the extracted subnet.
    pub fn reference_config(&self, subnet: &Subnet) -> serde_json::Value {
        let layout = &self.layout;
        let conv_layer = |in_channels: i64, out_channels: i64, kernel_size: i64, stride: i64, use_bn: bool, act_func: &str| {
            json!({
                "name": "ConvLayer", "kernel_size": kernel_size, "stride": stride, "dilation": 1, "groups": 1, "bias": false,
                "has_shuffle": false, "use_se": false, "in_channels": in_channels, "out_channels": out_channels, "use_bn": use_bn,
                "act_func": act_func, "dropout_rate": 0, "ops_order": "weight_bn_act"
            })
        };
        let identity = |channels: i64| {
            json!({
                "name": "IdentityLayer", "in_channels": channels, "out_channels": channels,
                "use_bn": false, "act_func": null, "dropout_rate": 0, "ops_order": "weight_bn_act"
            })
        };
        let stem = layout.stem_channels;
        let first_block = json!({
            "name": "ResidualBlock",
            "conv": {
                "name": "MBConvLayer", "in_channels": stem, "out_channels": stem, "kernel_size": 3, "stride": 1, "expand_ratio": 1,
                "mid_channels": null, "act_func": "relu", "use_se": false, "groups": null
            },
            "shortcut": identity(stem)
        });
        let mut blocks = vec![first_block];
        for (index, block) in layout.blocks.iter().enumerate() {
            if !subnet.keeps_block(index) {
                continue;
            }
            let (kernel_size, expand_ratio) = (subnet.kernel_sizes[index], subnet.expand_ratios[index]);
            blocks.push(json!({
                "name": "ResidualBlock",
                "conv": {
                    "name": "MBConvLayer", "in_channels": block.in_channels, "out_channels": block.out_channels,
                    "kernel_size": kernel_size, "stride": block.stride, "expand_ratio": expand_ratio,
                    "mid_channels": block.middle_channels(expand_ratio), "act_func": block.activation.reference_name(),
                    "use_se": block.squeeze_excitation, "groups": null
                },
                "shortcut": if block.has_shortcut { identity(block.in_channels) } else { serde_json::Value::Null }
            }));
        }
        json!({
            "name": "MobileNetV3",
            "bn": {"momentum": 0.1, "eps": 1e-5, "ws_eps": null},
            "first_conv": conv_layer(layout.input_channels, stem, 3, 2, true, "h_swish"),
            "blocks": blocks,
            "final_expand_layer": conv_layer(layout.last_channels(), layout.final_expand_channels, 1, 1, true, "h_swish"),
            "feature_mix_layer": conv_layer(layout.final_expand_channels, layout.feature_mix_channels, 1, 1, false, "h_swish"),
            "classifier": {
                "name": "LinearLayer", "in_features": layout.feature_mix_channels, "out_features": layout.classes, "bias": true,
                "use_bn": false, "act_func": null, "dropout_rate": self.config.dropout, "ops_order": "weight_bn_act"
            }
        })
    }
}

impl Component for Ofa {
    const NAME: &'static str = "ofa";
    const DESCRIPTION: &'static str =
        "Once-for-All elastic MobileNetV3: 20 blocks x kernel {3,5,7} x expand {3,4,6}, 5 stages x depth {2,3,4}, weight-shared";
    fn default_config() -> serde_json::Value {
        json!(OfaConfig::default())
    }
}

impl SpacePlugin for Ofa {
    type Supernet = OfaSupernet;
    type Network = OfaNetwork;

    fn create(config: &str) -> Result<Self, PluginError> {
        let config: OfaConfig = parse_config(Self::NAME, config)?;
        config.validate()?;
        let layout = NetworkLayout::new(&config);
        Ok(Ofa { config, layout })
    }

    /// The data's classes, image channels and image size replace the configuration's. The
    /// stand-alone size (`network_channels`, `network_cells`) has no meaning here.
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

    /// Option costs are not additive here (a kernel's cost depends on its block's expand ratio
    /// and on the depth): the choice points carry none; [`SpacePlugin::network_stats`] counts
    /// whole subnets.
    fn info(&self) -> Result<SpaceInfo, PluginError> {
        let choice_points = choice_points()
            .map(|point| ChoicePointInfo {
                name: point.name().into(),
                group: point.group().into(),
                options: point
                    .values()
                    .iter()
                    .map(|value| OptionInfo { name: value.to_string().into(), costs: Vec::<NamedValue>::new().into() })
                    .collect(),
                splittable: matches!(point, ChoicePoint::Kernel { .. }),
            })
            .collect();
        // Partitions of 3 kernels into {1, 2}: groups of one.
        Ok(SpaceInfo { name: Self::NAME.into(), choice_points, max_options: NUM_OPTIONS as u32, min_group_size: 1 })
    }

    fn build_supernet(&self, mask: &Mask, device: Device) -> Result<OfaSupernet, PluginError> {
        self.supernet(mask, device)
    }

    fn build_network(&self, architecture: &Architecture, device: Device) -> Result<OfaNetwork, PluginError> {
        OfaNetwork::new(&self.layout, &self.subnet(architecture)?, self.config.dropout, device, ParamInit::PyTorchDefault)
    }

    /// Counted from the layout: parameters of the extracted subnet, FLOPs as the
    /// multiply-accumulates of its conv and linear layers for an `image_size` input (exact
    /// integers; ofa's profiler sums in float32).
    fn network_stats(&self, architecture: &Architecture, image_size: u32) -> Result<NetworkStats, PluginError> {
        if image_size == 0 {
            return Err(PluginError::invalid_input("image size must be at least 1"));
        }
        let (parameters, flops) = self.layout.subnet_counts(&self.subnet(architecture)?, image_size as i64);
        Ok(NetworkStats { parameters, flops })
    }

    /// ABI 1.5: the stem end, every block shape × kernel × expand ratio, and the head end at
    /// the configured image size (see [`parts`]).
    fn network_parts(&self, device: Device) -> Result<Vec<PartModule>, PluginError> {
        parts::network_parts(&self.layout, self.config.dropout, self.config.image_size as i64, device)
    }

    /// ABI 1.5: the parts the extracted subnet runs, at the configured image size.
    fn architecture_parts(&self, architecture: &Architecture) -> Result<Vec<String>, PluginError> {
        Ok(parts::architecture_parts(&self.layout, &self.subnet(architecture)?, self.config.image_size as i64))
    }

    /// ABI 1.5: the extracted subnet with a trained supernet's weights (OFA's point: subnets
    /// need no retraining; recalibrate their batch norms first).
    fn network_from_supernet(
        &self,
        architecture: &Architecture,
        mask: &Mask,
        supernet_tensors: Vec<splitnas_plugin_api::NamedTensor>,
        device: Device,
    ) -> Result<OfaNetwork, PluginError> {
        let subnet = self.subnet(architecture)?;
        if !mask.contains(architecture) {
            return Err(PluginError::invalid_input(format!("ofa: {} is outside the supernet's mask", subnet.to_json())));
        }
        let supernet = self.supernet(mask, device)?;
        let tensors: Vec<(String, Tensor)> =
            supernet_tensors.iter().map(|named| (named.name.to_string(), named.tensor.tensor().shallow_clone())).collect();
        supernet.load_named(&tensors)?;
        OfaNetwork::from_supernet(&self.layout, &subnet, self.config.dropout, &supernet, device)
    }

    /// Per choice point, the allowed option with the largest weight (the first on ties);
    /// dropped blocks' choices canonical.
    fn derive(&self, weights: &Tensor, mask: &Mask) -> Result<Architecture, PluginError> {
        validate_space_mask(mask)?;
        if weights.size() != [NUM_CHOICE_POINTS as i64, NUM_OPTIONS as i64] {
            return Err(PluginError::invalid_input(format!(
                "weights must be [{NUM_CHOICE_POINTS}, {NUM_OPTIONS}] (choice points x options), got {:?}",
                weights.size()
            )));
        }
        let flat = weights.f_detach()?.f_to_kind(Kind::Double)?.f_to_device(tch::Device::Cpu)?.f_contiguous()?.f_view([-1])?;
        let values = Vec::<f64>::try_from(&flat)?;
        let mut choices = Vec::with_capacity(NUM_CHOICE_POINTS);
        for point in choice_points() {
            let mut best: Option<(u32, f64)> = None;
            for option in mask.allowed(point.index()) {
                let value = values[point.index() * NUM_OPTIONS + option as usize];
                if value.is_nan() {
                    return Err(PluginError::invalid_input(format!(
                        "the weight of option {} on {} is NaN: cannot derive",
                        point.values()[option as usize],
                        point.name()
                    )));
                }
                if best.is_none_or(|(_, best_value)| value > best_value) {
                    best = Some((option, value));
                }
            }
            let (option, _) = best.ok_or_else(|| PluginError::invalid_input(format!("the mask allows no option on {}", point.name())))?;
            choices.push(option);
        }
        canonicalize(&mut choices, mask);
        Ok(Architecture { choices: choices.into() })
    }

    fn format_genotype(&self, architecture: &Architecture) -> Result<String, PluginError> {
        Ok(self.subnet(architecture)?.to_json())
    }

    fn parse_genotype(&self, text: &str) -> Result<Architecture, PluginError> {
        choices::parse_genotype(text).map_err(|reason| PluginError::invalid_input(format!("ofa genotype: {reason}")))
    }

    /// As OFA's `sample_active_subnet`: every choice point uniformly among its allowed options,
    /// independently (so depths are uniform; distinct networks are not equally likely); then
    /// dropped blocks' choices canonical.
    fn sample_architecture(&self, mask: &Mask, seed: u64) -> Result<Architecture, PluginError> {
        validate_space_mask(mask)?;
        let mut generator = SeededRng::new(seed);
        let mut choices: Vec<u32> = (0..NUM_CHOICE_POINTS).map(|point| generator.choose(&mask.allowed(point))).collect();
        canonicalize(&mut choices, mask);
        Ok(Architecture { choices: choices.into() })
    }

    /// Distinct subnets within the mask (dropped blocks' choices do not count), `None` above a
    /// `u64` (the full space: about 2.2e19).
    fn architecture_count(&self, mask: &Mask) -> Result<Option<u64>, PluginError> {
        validate_space_mask(mask)?;
        Ok(choices::architecture_count(mask))
    }

    fn architecture_at(&self, mask: &Mask, index: u64) -> Result<Architecture, PluginError> {
        validate_space_mask(mask)?;
        let count = choices::architecture_count(mask)
            .ok_or_else(|| PluginError::unsupported("the mask allows more subnets than a u64 counts: it cannot be enumerated"))?;
        if index >= count {
            return Err(PluginError::invalid_input(format!("architecture index {index} is out of range: the mask allows {count} subnets")));
        }
        choices::architecture_at(mask, index).ok_or_else(|| PluginError::other("ofa: enumeration overflowed"))
    }

    /// `ofa`'s static `MobileNetV3` (what `get_active_subnet` returns), built from the
    /// configuration in `constructor.config`; tensor names are identical.
    fn export_description(&self, architecture: &Architecture) -> Result<ExportDescription, PluginError> {
        let subnet = self.subnet(architecture)?;
        let network = OfaNetwork::new(&self.layout, &subnet, self.config.dropout, Device::Cpu, ParamInit::Placeholder)?;
        Ok(ExportDescription {
            reference: "ofa.imagenet_classification.networks.mobilenet_v3.MobileNetV3".to_string(),
            source: "pip install --no-deps ofa==0.1.0.post202307202001 (MIT Han Lab's once-for-all)".to_string(),
            constructor: json!({ "config": self.reference_config(&subnet) }),
            names: network.tensor_names().into_iter().map(|name| (name.clone(), name)).collect(),
            notes: vec![
                "construct with `MobileNetV3.build_from_config(constructor['config'])`; importing ofa under torch 2.x needs a stub `ofa.utils.my_dataloader` module in sys.modules (it imports torchvision and torch internals the network does not use)".to_string(),
                format!("the subnet in OFA's own terms: {}", subnet.to_json()),
            ],
        })
    }
}
