//! The shape of the ProxylessNAS mobile space: the 21 searchable blocks, their candidate
//! operations, the network's widths and strides, validation of masks and architectures.

use splitnas_nn_blocks::{make_divisible, ConvSpec, MbConvSpec};
use splitnas_plugin_api::{Architecture, Mask, PluginError};

use crate::ProxylessConfig;

/// Searchable blocks per stage (ProxylessNAS's `n_cell_stages`).
pub const STAGE_BLOCKS: [usize; 6] = [4, 4, 4, 4, 4, 1];
/// The searchable blocks: the choice points.
pub const NUM_BLOCKS: usize = 21;
/// Options of a block with an identity shortcut (the 6 MBConvs and `zero`); the others have 6.
pub const NUM_OPERATIONS: usize = Operation::ALL.len();
/// The channel divisor of `make_divisible` (ProxylessNAS's 8).
pub const CHANNEL_DIVISOR: i64 = 8;

/// A block's candidate, in ProxylessNAS's option order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    MbConv {
        kernel_size: i64,
        expand_ratio: i64,
    },
    /// The block's input passed through (only where the block has an identity shortcut).
    Zero,
}

impl Operation {
    pub const ALL: [Operation; 7] = [
        Operation::MbConv { kernel_size: 3, expand_ratio: 3 },
        Operation::MbConv { kernel_size: 3, expand_ratio: 6 },
        Operation::MbConv { kernel_size: 5, expand_ratio: 3 },
        Operation::MbConv { kernel_size: 5, expand_ratio: 6 },
        Operation::MbConv { kernel_size: 7, expand_ratio: 3 },
        Operation::MbConv { kernel_size: 7, expand_ratio: 6 },
        Operation::Zero,
    ];
    /// The option index of `zero`.
    pub const ZERO_INDEX: usize = 6;

    /// ProxylessNAS's name (`3x3_MBConv3`, ..., `zero`), used in genotypes and parameter names.
    pub fn name(self) -> &'static str {
        match self {
            Operation::MbConv { kernel_size: 3, expand_ratio: 3 } => "3x3_MBConv3",
            Operation::MbConv { kernel_size: 3, expand_ratio: 6 } => "3x3_MBConv6",
            Operation::MbConv { kernel_size: 5, expand_ratio: 3 } => "5x5_MBConv3",
            Operation::MbConv { kernel_size: 5, expand_ratio: 6 } => "5x5_MBConv6",
            Operation::MbConv { kernel_size: 7, expand_ratio: 3 } => "7x7_MBConv3",
            Operation::MbConv { kernel_size: 7, expand_ratio: 6 } => "7x7_MBConv6",
            Operation::MbConv { .. } => "MBConv",
            Operation::Zero => "zero",
        }
    }

    pub fn from_index(index: usize) -> Option<Operation> {
        Operation::ALL.get(index).copied()
    }

    pub fn index(self) -> usize {
        Operation::ALL.iter().position(|&op| op == self).unwrap_or(Operation::ZERO_INDEX)
    }
}

/// One searchable block in context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockLayout {
    /// 0-based stage (0..6) and position within it.
    pub stage: usize,
    pub position: usize,
    pub in_channels: i64,
    pub out_channels: i64,
    pub stride: i64,
    /// ProxylessNAS's rule: stride 1 and as many channels out as in.
    pub has_shortcut: bool,
    /// `zero` is a candidate: every block but a stage's first (fixed by the layout, not by the
    /// widths, so that a genotype means the same at every width multiplier).
    pub allows_zero: bool,
}

impl BlockLayout {
    /// The options of this block: the 6 MBConvs, and `zero` where allowed.
    pub fn options(&self) -> &'static [Operation] {
        if self.allows_zero {
            &Operation::ALL
        } else {
            &Operation::ALL[..Operation::ZERO_INDEX]
        }
    }

    /// The MBConv shape of a non-zero option.
    pub fn mbconv(&self, operation: Operation) -> Option<MbConvSpec> {
        match operation {
            Operation::MbConv { kernel_size, expand_ratio } => {
                Some(MbConvSpec { in_channels: self.in_channels, out_channels: self.out_channels, kernel_size, stride: self.stride, expand_ratio })
            }
            Operation::Zero => None,
        }
    }
}

/// The network's widths and strides after the width multiplier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkLayout {
    pub input_channels: i64,
    pub stem_channels: i64,
    pub stem_stride: i64,
    /// The fixed `3x3_MBConv1` after the stem, stem width to this.
    pub first_block: MbConvSpec,
    pub blocks: Vec<BlockLayout>,
    pub feature_mix_channels: i64,
    pub classes: i64,
}

impl NetworkLayout {
    /// ProxylessNAS's `SuperProxylessNASNets`: stem `make_divisible(32 m)`, first block
    /// `make_divisible(16 m)`, stage widths `make_divisible(w m)`, feature mix 1280 (or
    /// `make_divisible(1280 m)` for m > 1).
    pub fn new(config: &ProxylessConfig) -> Self {
        let multiplier = config.width_multiplier;
        let scaled = |width: u32| make_divisible(width as f64 * multiplier, CHANNEL_DIVISOR);
        let stem_channels = scaled(config.stem_channels);
        let first_width = scaled(config.first_block_channels);
        let first_block = MbConvSpec { in_channels: stem_channels, out_channels: first_width, kernel_size: 3, stride: 1, expand_ratio: 1 };
        let mut blocks = Vec::with_capacity(NUM_BLOCKS);
        let mut in_channels = first_width;
        for (stage, &count) in STAGE_BLOCKS.iter().enumerate() {
            let width = scaled(config.stage_channels[stage]);
            for position in 0..count {
                let stride = if position == 0 { config.first_strides[stage] as i64 } else { 1 };
                blocks.push(BlockLayout {
                    stage,
                    position,
                    in_channels,
                    out_channels: width,
                    stride,
                    has_shortcut: stride == 1 && in_channels == width,
                    allows_zero: position != 0,
                });
                in_channels = width;
            }
        }
        let feature_mix_channels = if multiplier > 1.0 { scaled(config.feature_mix_channels) } else { config.feature_mix_channels as i64 };
        NetworkLayout {
            input_channels: config.input_channels as i64,
            stem_channels,
            stem_stride: config.stem_stride as i64,
            first_block,
            blocks,
            feature_mix_channels,
            classes: config.classes as i64,
        }
    }

    /// Width of the last block's output (the feature mix's input).
    pub fn last_channels(&self) -> i64 {
        self.blocks.last().map_or(self.first_block.out_channels, |block| block.out_channels)
    }

    /// The stem: 3x3, input channels to the stem width, with the stem stride.
    pub fn stem_conv(&self) -> ConvSpec {
        ConvSpec::new(self.input_channels, self.stem_channels, 3).stride(self.stem_stride).padding(1)
    }

    /// The feature mix: 1x1, last block width to 1280.
    pub fn feature_mix_conv(&self) -> ConvSpec {
        ConvSpec::new(self.last_channels(), self.feature_mix_channels, 1)
    }

    /// The side of the square feature map each searchable block sees for an `image_size`
    /// input, and the side after the last block. Every option of a block gives the same side
    /// (padding `k // 2`; `zero` only at stride 1).
    pub fn block_input_sides(&self, image_size: i64) -> (Vec<i64>, i64) {
        let mut side = self.first_block.output_size(self.stem_conv().output_size(image_size));
        let mut sides = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            sides.push(side);
            side = ConvSpec::new(1, 1, 3).stride(block.stride).padding(1).output_size(side);
        }
        (sides, side)
    }

    /// Multiply-accumulates of the layers every architecture has (stem, first block, feature
    /// mix, classifier) for an `image_size` input.
    pub fn fixed_macs(&self, image_size: i64) -> u64 {
        let stem = self.stem_conv();
        let (_, last_side) = self.block_input_sides(image_size);
        stem.macs(image_size)
            + self.first_block.macs(stem.output_size(image_size))
            + self.feature_mix_conv().macs(last_side)
            + (self.feature_mix_channels * self.classes) as u64
    }

    /// Parameters of the layers every architecture has: convolutions, batch norm scales and
    /// shifts, the classifier's weight and bias.
    pub fn fixed_parameters(&self) -> u64 {
        let conv_bn = |spec: ConvSpec| spec.parameter_count() + 2 * spec.out_channels as u64;
        conv_bn(self.stem_conv())
            + self.first_block.parameter_count()
            + conv_bn(self.feature_mix_conv())
            + ((self.feature_mix_channels + 1) * self.classes) as u64
    }

    /// Multiply-accumulates of `operation` at `block` for an `image_size` input (0 for `zero`).
    pub fn option_macs(&self, block: usize, operation: Operation, image_size: i64) -> u64 {
        let (sides, _) = self.block_input_sides(image_size);
        self.blocks[block].mbconv(operation).map_or(0, |spec| spec.macs(sides[block]))
    }

    /// Parameters of `operation` at `block` (0 for `zero`).
    pub fn option_parameters(&self, block: usize, operation: Operation) -> u64 {
        self.blocks[block].mbconv(operation).map_or(0, |spec| spec.parameter_count())
    }
}

/// The choice point's name: `block 1` .. `block 21` (the fixed first block is block 0 in
/// ProxylessNAS's list).
pub fn block_name(block: usize) -> String {
    format!("block {}", block + 1)
}

/// `3x3_MBConv3, ..., zero`, for error messages.
pub fn option_names(options: &[Operation]) -> String {
    options.iter().map(|op| op.name()).collect::<Vec<_>>().join(", ")
}

/// Checks a mask's shape (21 blocks x 7 options), that no block without `zero` allows it;
/// `what` names the mask in errors.
pub fn validate_mask(layout: &NetworkLayout, mask: &Mask, what: &str) -> Result<(), PluginError> {
    if mask.rows.len() != NUM_BLOCKS {
        return Err(PluginError::invalid_input(format!(
            "{what} has {} rows, but proxylessnas has {NUM_BLOCKS} choice points (block 1 .. block {NUM_BLOCKS})",
            mask.rows.len()
        )));
    }
    for (block, row) in mask.rows.iter().enumerate() {
        if row.len() != NUM_OPERATIONS {
            return Err(PluginError::invalid_input(format!(
                "{what}: row {block} ({}) has {} entries, but proxylessnas masks have {NUM_OPERATIONS} ({})",
                block_name(block),
                row.len(),
                option_names(&Operation::ALL)
            )));
        }
        if row[Operation::ZERO_INDEX] && !layout.blocks[block].allows_zero {
            return Err(PluginError::invalid_input(format!(
                "{what} allows `zero` on {}, a stage's first block, which has no `zero` option",
                block_name(block)
            )));
        }
    }
    Ok(())
}

/// Like [`validate_mask`], and every block must allow some option (a sub-supernet's mask).
pub fn validate_space_mask(layout: &NetworkLayout, mask: &Mask) -> Result<(), PluginError> {
    validate_mask(layout, mask, "the mask")?;
    if let Some(block) = (0..NUM_BLOCKS).find(|&block| mask.count(block) == 0) {
        return Err(PluginError::invalid_input(format!("the mask allows no option on {}: every block needs at least one", block_name(block))));
    }
    Ok(())
}

/// The operation of every block, or what is wrong with the architecture.
pub fn operations_of(layout: &NetworkLayout, architecture: &Architecture) -> Result<Vec<Operation>, PluginError> {
    if architecture.choices.len() != NUM_BLOCKS {
        return Err(PluginError::invalid_input(format!(
            "a proxylessnas architecture has {NUM_BLOCKS} choices (one per block), this one has {}",
            architecture.choices.len()
        )));
    }
    architecture
        .choices
        .iter()
        .enumerate()
        .map(|(block, &choice)| {
            let options = layout.blocks[block].options();
            options.get(choice as usize).copied().ok_or_else(|| {
                PluginError::invalid_input(format!(
                    "{} has option {choice}, but its options are 0..={} ({})",
                    block_name(block),
                    options.len() - 1,
                    option_names(options)
                ))
            })
        })
        .collect()
}

/// The architecture of one operation per block.
pub fn architecture_of(operations: &[Operation]) -> Architecture {
    Architecture { choices: operations.iter().map(|op| op.index() as u32).collect() }
}

/// `3x3_MBConv3,...` (21 names, comma-separated, ProxylessNAS's names).
pub fn format_genotype(operations: &[Operation]) -> String {
    operations.iter().map(|op| op.name()).collect::<Vec<_>>().join(",")
}

/// Parses 21 comma-separated operation names (spaces around them are ignored).
pub fn parse_genotype(layout: &NetworkLayout, text: &str) -> Result<Vec<Operation>, String> {
    let names: Vec<&str> = text.split(',').map(str::trim).collect();
    if names.len() != NUM_BLOCKS {
        return Err(format!(
            "expected {NUM_BLOCKS} comma-separated operation names (one per block, e.g. `3x3_MBConv3,...,zero`), got {}",
            names.len()
        ));
    }
    names
        .iter()
        .enumerate()
        .map(|(block, name)| {
            let options = layout.blocks[block].options();
            options.iter().copied().find(|op| op.name() == *name).ok_or_else(|| {
                let why = if *name == Operation::Zero.name() { " (a stage's first block has no `zero`)" } else { "" };
                format!("position {} ({}): `{name}` is not an option{why}; allowed: {}", block + 1, block_name(block), option_names(options))
            })
        })
        .collect()
}
