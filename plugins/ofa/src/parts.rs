//! The parts a latency table of OFA networks times (ABI 1.5 `network_parts`): OFA's own
//! latency lookup table keys blocks by their shapes, kernel and expand ratio, because a block's
//! time depends on its kernel and expand ratio together and depths drop whole blocks, so
//! per-option costs cannot add up to a subnet's latency.
//!
//! Parts: the trunk's input end (stem and the fixed first block), one part per elastic block
//! shape × kernel × expand ratio, and the trunk's output end (final expand, pooling, feature
//! mix, classifier). Blocks of one stage after the first share a shape, so the keys repeat and
//! are timed once. A subnet's latency is the sum over [`architecture_parts`].

use splitnas_nn_blocks::ParamInit;
use splitnas_plugin_api::author::{OptionModule, PartModule};
use splitnas_plugin_api::{Device, PluginError};
use tch::nn::VarStore;

use crate::choices::{Subnet, EXPAND_RATIOS, KERNEL_SIZES};
use crate::layers::Trunk;
use crate::layout::{BlockLayout, NetworkLayout};
use crate::network::StaticBlock;

/// Key of the stem and fixed first block for a `[C, side, side]` input.
fn input_end_key(layout: &NetworkLayout, image_size: i64) -> String {
    format!("stem {}x{image_size}x{image_size}>{}", layout.input_channels, layout.stem_channels)
}

/// Key of one block at (`kernel_size`, `expand_ratio`) for a `side`-wide input.
fn block_key(block: &BlockLayout, side: i64, kernel_size: i64, expand_ratio: i64) -> String {
    format!(
        "mbconv {}x{side}x{side}>{} k{kernel_size} e{expand_ratio} s{} {}{}",
        block.in_channels,
        block.out_channels,
        block.stride,
        block.activation.reference_name(),
        if block.squeeze_excitation { " se" } else { "" }
    )
}

/// Key of the final expand, feature mix and classifier for a `side`-wide input.
fn output_end_key(layout: &NetworkLayout, side: i64) -> String {
    format!("head {}x{side}x{side}>{}>{}>{}", layout.last_channels(), layout.final_expand_channels, layout.feature_mix_channels, layout.classes)
}

/// The input side of every elastic block, and the side after the last, at `image_size`
/// (depths never drop a stage's strided first block, so the sides do not depend on them).
fn block_sides(layout: &NetworkLayout, image_size: i64) -> (Vec<i64>, i64) {
    let mut side = NetworkLayout::stem_output_side(image_size);
    let mut sides = Vec::with_capacity(layout.blocks.len());
    for block in &layout.blocks {
        sides.push(side);
        side = block.output_side(side);
    }
    (sides, side)
}

/// The keys of the parts `subnet` runs, in order.
pub fn architecture_parts(layout: &NetworkLayout, subnet: &Subnet, image_size: i64) -> Vec<String> {
    let (sides, last_side) = block_sides(layout, image_size);
    let mut keys = vec![input_end_key(layout, image_size)];
    for (index, block) in layout.blocks.iter().enumerate() {
        if subnet.keeps_block(index) {
            keys.push(block_key(block, sides[index], subnet.kernel_sizes[index], subnet.expand_ratios[index]));
        }
    }
    keys.push(output_end_key(layout, last_side));
    keys
}

/// Every distinct part, as a runnable module with fresh weights.
pub fn network_parts(layout: &NetworkLayout, dropout: f64, image_size: i64, device: Device) -> Result<Vec<PartModule>, PluginError> {
    let (sides, last_side) = block_sides(layout, image_size);
    let trunk_part = |input_shape: [i64; 3], input_end: bool| -> Result<OptionModule, PluginError> {
        let var_store = VarStore::new(device.to_tch());
        let trunk = Trunk::new(&var_store.root(), layout, dropout, ParamInit::PyTorchDefault)?;
        Ok(OptionModule::from_var_store(var_store, input_shape, 1, move |input, train| {
            if input_end {
                trunk.head_in(input, train)
            } else {
                trunk.head_out(input, train)
            }
        }))
    };
    let mut parts =
        vec![PartModule { key: input_end_key(layout, image_size), module: trunk_part([layout.input_channels, image_size, image_size], true)? }];
    let mut seen = std::collections::HashSet::new();
    for (block, &side) in layout.blocks.iter().zip(&sides) {
        for kernel_size in KERNEL_SIZES {
            for expand_ratio in EXPAND_RATIOS {
                let key = block_key(block, side, kernel_size, expand_ratio);
                if !seen.insert(key.clone()) {
                    continue;
                }
                let var_store = VarStore::new(device.to_tch());
                let static_block = StaticBlock::new(&var_store.root(), *block, kernel_size, expand_ratio, ParamInit::PyTorchDefault)?;
                let module = OptionModule::from_var_store(var_store, [block.in_channels, side, side], 1, move |input, train| {
                    static_block.forward(input, train)
                });
                parts.push(PartModule { key, module });
            }
        }
    }
    parts.push(PartModule { key: output_end_key(layout, last_side), module: trunk_part([layout.last_channels(), last_side, last_side], false)? });
    Ok(parts)
}
