//! The shape of OFA's elastic MobileNetV3 (`OFAMobileNetV3`): widths after the width
//! multiplier, strides, activations, squeeze-excitation, and the parameters and
//! multiply-accumulates of any subnet, counted without building anything.

use splitnas_nn_blocks::make_divisible;

use crate::choices::{Subnet, BLOCKS_PER_STAGE, NUM_BLOCKS, NUM_STAGES};
use crate::OfaConfig;

/// The channel divisor of `make_divisible` (OFA's `MyNetwork.CHANNEL_DIVISIBLE`).
pub const CHANNEL_DIVISOR: i64 = 8;
/// Squeeze-excitation's reduction (`SEModule.REDUCTION`).
pub const SE_REDUCTION: i64 = 4;
/// OFA's `base_stage_width`: stem, first block, the five elastic stages, final expand,
/// feature mix.
const STEM_WIDTH: f64 = 16.0;
const STAGE_WIDTHS: [f64; NUM_STAGES] = [24.0, 40.0, 80.0, 112.0, 160.0];
const FINAL_EXPAND_WIDTH: f64 = 960.0;
const FEATURE_MIX_WIDTH: f64 = 1280.0;
const STAGE_ACTIVATIONS: [Activation; NUM_STAGES] =
    [Activation::Relu, Activation::Relu, Activation::HardSwish, Activation::HardSwish, Activation::HardSwish];
const STAGE_SQUEEZE_EXCITATION: [bool; NUM_STAGES] = [false, true, false, true, true];

/// The activations of MobileNetV3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Relu,
    /// `x * relu6(x + 3) / 6`.
    HardSwish,
}

impl Activation {
    /// OFA's `act_func` name.
    pub fn reference_name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::HardSwish => "h_swish",
        }
    }
}

/// One elastic block in context; every kernel and expand ratio runs at the same input width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockLayout {
    pub stage: usize,
    pub position: usize,
    pub in_channels: i64,
    pub out_channels: i64,
    pub stride: i64,
    pub activation: Activation,
    pub squeeze_excitation: bool,
    /// Stride 1 and as many channels out as in.
    pub has_shortcut: bool,
}

impl BlockLayout {
    /// Width of the depthwise convolution at `expand_ratio`: `make_divisible(round(in * e), 8)`.
    pub fn middle_channels(&self, expand_ratio: i64) -> i64 {
        make_divisible((self.in_channels * expand_ratio) as f64, CHANNEL_DIVISOR)
    }

    /// The widest middle width (the stored tensors' size).
    pub fn max_middle_channels(&self) -> i64 {
        self.middle_channels(crate::choices::EXPAND_RATIOS[crate::choices::EXPAND_RATIOS.len() - 1])
    }

    /// Hidden units of the squeeze-excitation of a `middle`-wide block:
    /// `make_divisible(middle // 4, 8)` (integer division first, as OFA).
    pub fn se_channels(middle: i64) -> i64 {
        make_divisible((middle / SE_REDUCTION) as f64, CHANNEL_DIVISOR)
    }

    /// Side of the output for a square input of side `input` (padding `k // 2` keeps every
    /// kernel size at the same side).
    pub fn output_side(&self, input: i64) -> i64 {
        conv_output_side(input, 3, self.stride)
    }

    /// Parameters of the extracted block at (`kernel_size`, `expand_ratio`).
    pub fn parameters(&self, kernel_size: i64, expand_ratio: i64) -> u64 {
        let middle = self.middle_channels(expand_ratio);
        let mut count = self.in_channels * middle + 2 * middle; // expand conv, BN
        count += middle * kernel_size * kernel_size + 2 * middle; // depthwise conv, BN
        if self.squeeze_excitation {
            let hidden = Self::se_channels(middle);
            count += middle * hidden + hidden + hidden * middle + middle;
        }
        count += middle * self.out_channels + 2 * self.out_channels; // project conv, BN
        count as u64
    }

    /// Multiply-accumulates of the extracted block for an input of side `input`.
    pub fn macs(&self, kernel_size: i64, expand_ratio: i64, input: i64) -> u64 {
        let middle = self.middle_channels(expand_ratio);
        let output = self.output_side(input);
        let mut macs = input * input * self.in_channels * middle;
        macs += output * output * kernel_size * kernel_size * middle;
        if self.squeeze_excitation {
            let hidden = Self::se_channels(middle);
            macs += 2 * middle * hidden;
        }
        macs += output * output * middle * self.out_channels;
        macs as u64
    }
}

/// `(input + 2 (k // 2) - k) / stride + 1` for an odd kernel `k`.
pub fn conv_output_side(input: i64, kernel_size: i64, stride: i64) -> i64 {
    (input + 2 * (kernel_size / 2) - kernel_size) / stride + 1
}

/// The network's widths after the width multiplier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkLayout {
    pub input_channels: i64,
    /// Stem width, also the fixed first block's (16 at width 1.0).
    pub stem_channels: i64,
    pub blocks: Vec<BlockLayout>,
    pub final_expand_channels: i64,
    pub feature_mix_channels: i64,
    pub classes: i64,
}

impl NetworkLayout {
    /// `OFAMobileNetV3(width_mult=m)`: every width `make_divisible(w * m, 8)`, the final
    /// expand and feature mix included.
    pub fn new(config: &OfaConfig) -> Self {
        let scaled = |width: f64| make_divisible(width * config.width_multiplier, CHANNEL_DIVISOR);
        let stem_channels = scaled(STEM_WIDTH);
        let mut blocks = Vec::with_capacity(NUM_BLOCKS);
        let mut in_channels = stem_channels;
        for stage in 0..NUM_STAGES {
            let width = scaled(STAGE_WIDTHS[stage]);
            for position in 0..BLOCKS_PER_STAGE {
                let stride = if position == 0 { config.stage_strides[stage] as i64 } else { 1 };
                blocks.push(BlockLayout {
                    stage,
                    position,
                    in_channels,
                    out_channels: width,
                    stride,
                    activation: STAGE_ACTIVATIONS[stage],
                    squeeze_excitation: STAGE_SQUEEZE_EXCITATION[stage],
                    has_shortcut: stride == 1 && in_channels == width,
                });
                in_channels = width;
            }
        }
        NetworkLayout {
            input_channels: config.input_channels as i64,
            stem_channels,
            blocks,
            final_expand_channels: scaled(FINAL_EXPAND_WIDTH),
            feature_mix_channels: scaled(FEATURE_MIX_WIDTH),
            classes: config.classes as i64,
        }
    }

    /// Width of the last elastic stage (the final expand's input): no block's output width is
    /// elastic.
    pub fn last_channels(&self) -> i64 {
        self.blocks.last().map_or(self.stem_channels, |block| block.out_channels)
    }

    /// Side after the stem (3x3, stride 2) for an `image_size` input; the fixed first block
    /// keeps it.
    pub fn stem_output_side(image_size: i64) -> i64 {
        conv_output_side(image_size, 3, 2)
    }

    /// Parameters and multiply-accumulates of the extracted subnet for an `image_size` input:
    /// the stem conv and BN, the first block (depthwise 3x3, BN, 1x1, BN), the blocks the
    /// depths keep, the final expand (1x1, BN), the feature mix (1x1, no BN, no bias) and the
    /// classifier (with bias). Multiply-accumulates count conv and linear layers only.
    pub fn subnet_counts(&self, subnet: &Subnet, image_size: i64) -> (u64, u64) {
        let stem = self.stem_channels;
        let mut side = Self::stem_output_side(image_size);
        let mut parameters = self.input_channels * stem * 9 + 2 * stem;
        let mut macs = side * side * 9 * self.input_channels * stem;
        parameters += stem * 9 + 2 * stem + stem * stem + 2 * stem;
        macs += side * side * (9 * stem + stem * stem);
        let (mut parameters, mut macs) = (parameters as u64, macs as u64);
        for (index, block) in self.blocks.iter().enumerate() {
            if !subnet.keeps_block(index) {
                continue;
            }
            let (kernel_size, expand_ratio) = (subnet.kernel_sizes[index], subnet.expand_ratios[index]);
            parameters += block.parameters(kernel_size, expand_ratio);
            macs += block.macs(kernel_size, expand_ratio, side);
            side = block.output_side(side);
        }
        let (last, expand, mix) = (self.last_channels(), self.final_expand_channels, self.feature_mix_channels);
        parameters += (last * expand + 2 * expand + expand * mix + (mix + 1) * self.classes) as u64;
        macs += (side * side * last * expand + expand * mix + mix * self.classes) as u64;
        (parameters, macs)
    }
}
