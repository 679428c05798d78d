//! NB201's macro skeleton, shared by the supernet and stand-alone networks:
//! stem `conv3x3 (no bias) + BN`; three stages of N cells at C, 2C, 4C channels with a ResNet
//! reduction block before stages 2 and 3; head `BN + ReLU`, global average pool, linear.
//!
//! Names: `stem.conv.weight`, `stem.bn.*`, `cells.{i}.*` (cells and reduction blocks in one
//! list of 3N+2 layers, as NB201 numbers them), `head.bn.*`, `classifier.{weight,bias}`.

use splitnas_nn_blocks::{global_avg_pool, BatchNorm2d, BatchNormSpec, Conv2d, ConvSpec, Linear, ParamInit, ResNetBasicBlock};
use splitnas_plugin_api::PluginError;
use tch::nn::Path;
use tch::{TchError, Tensor};

use crate::Nb201Config;

pub enum Layer<C> {
    Cell(C),
    // Boxed: a block is much larger than a cell's handle list.
    Reduction(Box<ResNetBasicBlock>),
}

pub struct Skeleton<C> {
    stem_conv: Conv2d,
    stem_bn: BatchNorm2d,
    pub layers: Vec<Layer<C>>,
    head_bn: BatchNorm2d,
    classifier: Linear,
    input_channels: i64,
}

/// Path prefix of layer `index` (a cell or a reduction block).
pub fn layer_prefix(index: usize) -> String {
    format!("cells.{index}")
}

impl<C> Skeleton<C> {
    /// `make_cell(path, channels)` builds one cell under `path`.
    pub fn new(
        root: &Path,
        config: &Nb201Config,
        init: ParamInit,
        mut make_cell: impl FnMut(&Path, i64) -> Result<C, TchError>,
    ) -> Result<Self, TchError> {
        let channels = config.channels as i64;
        let stem_conv = Conv2d::new(&(root / "stem" / "conv"), ConvSpec::new(config.input_channels as i64, channels, 3).padding(1), init)?;
        let stem_bn = BatchNorm2d::new(&(root / "stem" / "bn"), channels, BatchNormSpec::AFFINE)?;
        let cells_path = root / "cells";
        let mut layers = Vec::new();
        let mut width = channels;
        for stage in 0..3 {
            let stage_width = channels << stage;
            if stage > 0 {
                let path = &cells_path / layers.len();
                layers.push(Layer::Reduction(Box::new(ResNetBasicBlock::new(&path, width, stage_width, BatchNormSpec::AFFINE, init)?)));
            }
            for _ in 0..config.cells {
                let path = &cells_path / layers.len();
                layers.push(Layer::Cell(make_cell(&path, stage_width)?));
            }
            width = stage_width;
        }
        let head_bn = BatchNorm2d::new(&(root / "head" / "bn"), width, BatchNormSpec::AFFINE)?;
        let classifier = Linear::new(&(root / "classifier"), width, config.classes as i64, init)?;
        Ok(Skeleton { stem_conv, stem_bn, layers, head_bn, classifier, input_channels: config.input_channels as i64 })
    }

    /// Indices (in `cells.{i}`) of the cells and of the reduction blocks.
    pub fn layer_indices(&self) -> (Vec<usize>, Vec<usize>) {
        let cells = self.layers.iter().enumerate().filter(|(_, layer)| matches!(layer, Layer::Cell(_))).map(|(i, _)| i).collect();
        let reductions = self.layers.iter().enumerate().filter(|(_, layer)| matches!(layer, Layer::Reduction(_))).map(|(i, _)| i).collect();
        (cells, reductions)
    }

    /// Logits `[B, classes]`; `cell_forward` runs one cell.
    pub fn forward(
        &self,
        input: &Tensor,
        train: bool,
        mut cell_forward: impl FnMut(&C, &Tensor) -> Result<Tensor, TchError>,
    ) -> Result<Tensor, PluginError> {
        let size = input.size();
        if size.len() != 4 || size[1] != self.input_channels {
            return Err(PluginError::invalid_input(format!(
                "expected images [batch, {}, height, width], got a tensor of shape {size:?}",
                self.input_channels
            )));
        }
        let mut features = self.stem_bn.forward(&self.stem_conv.forward(input)?, train)?;
        for layer in &self.layers {
            features = match layer {
                Layer::Cell(cell) => cell_forward(cell, &features)?,
                Layer::Reduction(block) => block.forward(&features, train)?,
            };
        }
        let activated = self.head_bn.forward(&features, train)?.f_relu()?;
        Ok(self.classifier.forward(&global_avg_pool(&activated)?)?)
    }

    /// FLOPs of one square image of side `image_size`, NB201's convention: multiply-accumulates
    /// of every convolution and of the classifier, plus the classifier's bias adds (this
    /// reproduces NB201's table; its stand-alone convolutions have no bias). `cell_macs(cell, side)`
    /// counts one cell.
    pub fn flops(&self, image_size: u32, mut cell_macs: impl FnMut(&C, i64) -> u64) -> Result<u64, PluginError> {
        if image_size == 0 {
            return Err(PluginError::invalid_input("image_size must be positive"));
        }
        let mut side = image_size as i64;
        let mut total = self.stem_conv.spec.macs(side);
        side = self.stem_conv.spec.output_size(side);
        for (index, layer) in self.layers.iter().enumerate() {
            match layer {
                Layer::Cell(cell) => total += cell_macs(cell, side),
                Layer::Reduction(block) => {
                    total += block.macs(side);
                    side = block.output_size(side).ok_or_else(|| {
                        PluginError::invalid_input(format!(
                            "image_size {image_size} does not fit nb201: the reduction block {} gets a {side}x{side} input, \
                             whose halves differ between its strided conv and its 2x2 pooling; use a multiple of 4",
                            layer_prefix(index)
                        ))
                    })?;
                }
            }
        }
        Ok(total + self.classifier.macs() + self.classifier.out_features as u64)
    }
}
