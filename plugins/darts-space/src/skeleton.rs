//! DARTS's macro skeleton, shared by the search network and stand-alone networks: stem
//! `conv3x3 (3C, no bias) + BN`; L cells with reductions at L/3 and 2L/3, each reading the two
//! previous cells' outputs (both the stem's at first); global average pool, linear classifier.
//! Stand-alone networks may have DARTS's CIFAR auxiliary head after cell 2L/3.
//!
//! Names: `stem.conv.weight`, `stem.bn.*`, `cells.{i}.*`, `classifier.{weight,bias}`,
//! `auxiliary_head.*`.

use splitnas_nn_blocks::{global_avg_pool, BatchNorm2d, BatchNormSpec, Conv2d, ConvSpec, Linear, ParamInit};
use splitnas_plugin_api::PluginError;
use tch::nn::Path;
use tch::{TchError, Tensor};

use crate::cell::{cell_output_side, layout, output_channels, CellLayout, STEM_MULTIPLIER};

/// DARTS's `AuxiliaryHeadCIFAR` (for an 8x8 input, i.e. 32x32 images): ReLU, 5x5 average pool
/// with stride 3 (padding not counted), conv1x1 to 128 + BN + ReLU, conv2x2 to 768 + BN + ReLU,
/// linear. Sub-paths `conv1`, `bn1`, `conv2`, `bn2`, `classifier`.
pub struct AuxiliaryHead {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    classifier: Linear,
}

impl AuxiliaryHead {
    fn new(path: &Path, channels: i64, classes: i64, init: ParamInit) -> Result<Self, TchError> {
        Ok(AuxiliaryHead {
            conv1: Conv2d::new(&(path / "conv1"), ConvSpec::new(channels, 128, 1), init)?,
            bn1: BatchNorm2d::new(&(path / "bn1"), 128, BatchNormSpec::AFFINE)?,
            conv2: Conv2d::new(&(path / "conv2"), ConvSpec::new(128, 768, 2), init)?,
            bn2: BatchNorm2d::new(&(path / "bn2"), 768, BatchNormSpec::AFFINE)?,
            classifier: Linear::new(&(path / "classifier"), 768, classes, init)?,
        })
    }

    fn forward(&self, input: &Tensor, train: bool) -> Result<Tensor, PluginError> {
        let side = input.size()[2..].to_vec();
        if side.iter().any(|&s| !(8..=10).contains(&s)) {
            return Err(PluginError::invalid_input(format!(
                "the auxiliary head expects an 8x8 feature map (32x32 images), got {}x{}: set `auxiliary = false` in [space] for other image sizes",
                side[0], side[1]
            )));
        }
        let pooled = input.f_relu()?.f_avg_pool2d([5, 5], [3, 3], [0, 0], false, false, None::<i64>)?;
        let hidden = self.bn1.forward(&self.conv1.forward(&pooled)?, train)?.f_relu()?;
        let features = self.bn2.forward(&self.conv2.forward(&hidden)?, train)?.f_relu()?;
        let batch = features.size()[0];
        Ok(self.classifier.forward(&features.f_view([batch, -1])?)?)
    }
}

pub struct Skeleton<C> {
    stem_conv: Conv2d,
    stem_bn: BatchNorm2d,
    pub cells: Vec<C>,
    pub layouts: Vec<CellLayout>,
    auxiliary: Option<AuxiliaryHead>,
    classifier: Linear,
    input_channels: i64,
}

/// Path prefix of cell `index`.
pub fn cell_prefix(index: usize) -> String {
    format!("cells.{index}")
}

/// The auxiliary head's path prefix.
pub const AUXILIARY_PREFIX: &str = "auxiliary_head";

/// The network's shape.
#[derive(Clone, Copy, Debug)]
pub struct SkeletonShape {
    pub channels: i64,
    pub cells: usize,
    pub classes: i64,
    pub input_channels: i64,
    pub auxiliary: bool,
}

impl<C> Skeleton<C> {
    /// `make_cell(path, layout)` builds one cell under `path`.
    pub fn new(
        root: &Path,
        shape: SkeletonShape,
        init: ParamInit,
        mut make_cell: impl FnMut(&Path, &CellLayout) -> Result<C, TchError>,
    ) -> Result<Self, TchError> {
        let stem_width = STEM_MULTIPLIER * shape.channels;
        let stem_conv = Conv2d::new(&(root / "stem" / "conv"), ConvSpec::new(shape.input_channels, stem_width, 3).padding(1), init)?;
        let stem_bn = BatchNorm2d::new(&(root / "stem" / "bn"), stem_width, BatchNormSpec::AFFINE)?;
        let layouts = layout(shape.channels, shape.cells);
        let cells_path = root / "cells";
        let cells = layouts.iter().map(|cell| make_cell(&(&cells_path / cell.index), cell)).collect::<Result<Vec<_>, _>>()?;
        let auxiliary = if shape.auxiliary {
            let after = &layouts[Self::auxiliary_after(shape.cells)];
            Some(AuxiliaryHead::new(&(root / AUXILIARY_PREFIX), crate::cell::MULTIPLIER * after.channels, shape.classes, init)?)
        } else {
            None
        };
        let classifier = Linear::new(&(root / "classifier"), output_channels(&layouts), shape.classes, init)?;
        Ok(Skeleton { stem_conv, stem_bn, cells, layouts, auxiliary, classifier, input_channels: shape.input_channels })
    }

    /// The cell after which the auxiliary head reads (DARTS: `2 * layers // 3`).
    fn auxiliary_after(cells: usize) -> usize {
        2 * cells / 3
    }

    /// Logits `[B, classes]` and, in training mode with an auxiliary head, its logits;
    /// `cell_forward(cell, layout, s0, s1)` runs one cell.
    pub fn forward(
        &self,
        input: &Tensor,
        train: bool,
        mut cell_forward: impl FnMut(&C, &CellLayout, &Tensor, &Tensor) -> Result<Tensor, TchError>,
    ) -> Result<(Tensor, Option<Tensor>), PluginError> {
        let size = input.size();
        if size.len() != 4 || size[1] != self.input_channels {
            return Err(PluginError::invalid_input(format!(
                "expected images [batch, {}, height, width], got a tensor of shape {size:?}",
                self.input_channels
            )));
        }
        let stem = self.stem_bn.forward(&self.stem_conv.forward(input)?, train)?;
        let (mut s0, mut s1) = (stem.shallow_clone(), stem);
        let mut auxiliary_logits = None;
        for (cell, layout) in self.cells.iter().zip(&self.layouts) {
            let output = cell_forward(cell, layout, &s0, &s1)
                .map_err(|error| PluginError::invalid_input(format!("cell {} ({}): {error}", layout.index, layout.kind.name())))?;
            s0 = std::mem::replace(&mut s1, output);
            if train && layout.index == Self::auxiliary_after(self.cells.len()) {
                if let Some(head) = &self.auxiliary {
                    auxiliary_logits = Some(head.forward(&s1, train)?);
                }
            }
        }
        let logits = self.classifier.forward(&global_avg_pool(&s1)?)?;
        Ok((logits, auxiliary_logits))
    }

    /// FLOPs of one square image of side `image_size`: multiply-accumulates of every
    /// convolution and of the classifier (the auxiliary head, which only runs in training, is
    /// not counted). `cell_macs(cell, layout, side0, side1)` counts one cell.
    pub fn flops(&self, image_size: u32, mut cell_macs: impl FnMut(&C, &CellLayout, i64, i64) -> u64) -> Result<u64, PluginError> {
        if image_size == 0 {
            return Err(PluginError::invalid_input("image_size must be positive"));
        }
        let side = image_size as i64;
        let mut total = self.stem_conv.spec.macs(side);
        let (mut side0, mut side1) = (side, side);
        for (cell, layout) in self.cells.iter().zip(&self.layouts) {
            if layout.reduction_prev && side0 % 2 != 0 {
                return Err(PluginError::invalid_input(format!(
                    "image_size {image_size} does not fit darts: cell {} factorized-reduces a {side0}x{side0} input, which needs an even side",
                    layout.index
                )));
            }
            total += cell_macs(cell, layout, side0, side1);
            side0 = side1;
            side1 = cell_output_side(layout.kind, side1);
        }
        Ok(total + self.classifier.macs())
    }
}
