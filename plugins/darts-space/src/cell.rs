//! What supernet cells and stand-alone cells share: the operation modules, the preprocess
//! layers and the layout of cells in a network.

use splitnas_nn_blocks::{
    avg_pool_3x3_strided, max_pool_3x3, pool_3x3_output_size, BatchNorm2d, BatchNormSpec, ConvSpec, DilConv, FactorizedReduce, ParamInit, ReluConvBn,
    SepConv,
};
use tch::nn::Path;
use tch::{TchError, Tensor};

use crate::space::{CellKind, Operation, EDGES, STEPS};

/// DARTS's `stem_multiplier`: the stem has 3C channels.
pub const STEM_MULTIPLIER: i64 = 3;
/// DARTS's `multiplier`: a cell outputs its 4 intermediate nodes concatenated.
pub const MULTIPLIER: i64 = STEPS as i64;

/// Where a cell sits in a network and its widths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellLayout {
    pub index: usize,
    pub kind: CellKind,
    /// The previous cell was a reduction cell: input 0 has twice this cell's resolution.
    pub reduction_prev: bool,
    pub channels_prev_prev: i64,
    pub channels_prev: i64,
    /// C of this cell: the width of every node.
    pub channels: i64,
}

/// DARTS's network layout: `cells` cells starting at width `channels`, reduction cells (doubling
/// the width) at `cells / 3` and `2 * cells / 3`.
pub fn layout(channels: i64, cells: usize) -> Vec<CellLayout> {
    let mut layouts = Vec::with_capacity(cells);
    let (mut prev_prev, mut prev, mut current) = (STEM_MULTIPLIER * channels, STEM_MULTIPLIER * channels, channels);
    let mut reduction_prev = false;
    for index in 0..cells {
        let reduction = is_reduction(index, cells);
        if reduction {
            current *= 2;
        }
        let kind = if reduction { CellKind::Reduce } else { CellKind::Normal };
        layouts.push(CellLayout { index, kind, reduction_prev, channels_prev_prev: prev_prev, channels_prev: prev, channels: current });
        reduction_prev = reduction;
        prev_prev = prev;
        prev = MULTIPLIER * current;
    }
    layouts
}

pub fn is_reduction(index: usize, cells: usize) -> bool {
    index == cells / 3 || index == 2 * cells / 3
}

/// The width of the last cell's output (the classifier's input).
pub fn output_channels(layouts: &[CellLayout]) -> i64 {
    layouts.last().map_or(0, |last| MULTIPLIER * last.channels)
}

/// Stride of an edge: 2 on the edges from the inputs of a reduction cell.
pub fn edge_stride(kind: CellKind, edge: usize) -> i64 {
    if kind == CellKind::Reduce && EDGES[edge].1 < 2 {
        2
    } else {
        1
    }
}

/// A cell's input adapters: input 0 is factorized-reduced after a reduction cell, otherwise
/// both inputs go through ReLU-conv1x1-BN to the cell's width. Sub-paths `preprocess0`, `preprocess1`.
pub struct Preprocess {
    input0: Input0,
    input1: ReluConvBn,
}

enum Input0 {
    Reduce(FactorizedReduce),
    Conv(ReluConvBn),
}

impl Preprocess {
    pub fn new(path: &Path, layout: &CellLayout, bn: BatchNormSpec, init: ParamInit) -> Result<Self, TchError> {
        let input0 = if layout.reduction_prev {
            Input0::Reduce(FactorizedReduce::new(&(path / "preprocess0"), layout.channels_prev_prev, layout.channels, bn, init)?)
        } else {
            Input0::Conv(ReluConvBn::new(&(path / "preprocess0"), ConvSpec::new(layout.channels_prev_prev, layout.channels, 1), bn, init)?)
        };
        let input1 = ReluConvBn::new(&(path / "preprocess1"), ConvSpec::new(layout.channels_prev, layout.channels, 1), bn, init)?;
        Ok(Preprocess { input0, input1 })
    }

    pub fn forward(&self, s0: &Tensor, s1: &Tensor, train: bool) -> Result<(Tensor, Tensor), TchError> {
        let first = match &self.input0 {
            Input0::Reduce(reduce) => reduce.forward(s0, train)?,
            Input0::Conv(conv) => conv.forward(s0, train)?,
        };
        Ok((first, self.input1.forward(s1, train)?))
    }

    /// Multiply-accumulates for inputs of sides `side0`, `side1`.
    pub fn macs(&self, side0: i64, side1: i64) -> u64 {
        let first = match &self.input0 {
            Input0::Reduce(reduce) => reduce.macs(side0),
            Input0::Conv(conv) => conv.conv.spec.macs(side0),
        };
        first + self.input1.conv.spec.macs(side1)
    }
}

/// One operation on one edge of one cell.
pub enum CellOp {
    /// Pooling; in the supernet followed by a batch norm without affine (DARTS's `MixedOp`).
    MaxPool {
        stride: i64,
        bn: Option<BatchNorm2d>,
    },
    AvgPool {
        stride: i64,
        bn: Option<BatchNorm2d>,
    },
    Identity,
    /// `skip_connect` at stride 2.
    // Boxed: the blocks are much larger than the other variants.
    Reduce(Box<FactorizedReduce>),
    Sep(Box<SepConv>),
    Dil(Box<DilConv>),
}

impl CellOp {
    /// `search`: the supernet's form (batch norm without affine, pooling followed by one).
    pub fn new(path: &Path, op: Operation, channels: i64, stride: i64, search: bool, init: ParamInit) -> Result<CellOp, TchError> {
        let bn = if search { BatchNormSpec::NON_AFFINE } else { BatchNormSpec::AFFINE };
        let pool_bn = || -> Result<Option<BatchNorm2d>, TchError> {
            if search {
                Ok(Some(BatchNorm2d::new(&(path / "bn"), channels, bn)?))
            } else {
                Ok(None)
            }
        };
        Ok(match op {
            Operation::MaxPool3x3 => CellOp::MaxPool { stride, bn: pool_bn()? },
            Operation::AvgPool3x3 => CellOp::AvgPool { stride, bn: pool_bn()? },
            Operation::SkipConnect if stride == 1 => CellOp::Identity,
            Operation::SkipConnect => CellOp::Reduce(Box::new(FactorizedReduce::new(path, channels, channels, bn, init)?)),
            Operation::SepConv3x3 => CellOp::Sep(Box::new(SepConv::new(path, channels, channels, 3, stride, bn, init)?)),
            Operation::SepConv5x5 => CellOp::Sep(Box::new(SepConv::new(path, channels, channels, 5, stride, bn, init)?)),
            Operation::DilConv3x3 => CellOp::Dil(Box::new(DilConv::new(path, channels, channels, 3, stride, bn, init)?)),
            Operation::DilConv5x5 => CellOp::Dil(Box::new(DilConv::new(path, channels, channels, 5, stride, bn, init)?)),
        })
    }

    pub fn forward(&self, input: &Tensor, train: bool) -> Result<Tensor, TchError> {
        let with_bn = |pooled: Tensor, bn: &Option<BatchNorm2d>| match bn {
            Some(bn) => bn.forward(&pooled, train),
            None => Ok(pooled),
        };
        match self {
            CellOp::MaxPool { stride, bn } => with_bn(max_pool_3x3(input, *stride)?, bn),
            CellOp::AvgPool { stride, bn } => with_bn(avg_pool_3x3_strided(input, *stride)?, bn),
            CellOp::Identity => Ok(input.shallow_clone()),
            CellOp::Reduce(reduce) => reduce.forward(input, train),
            CellOp::Sep(sep) => sep.forward(input, train),
            CellOp::Dil(dil) => dil.forward(input, train),
        }
    }

    pub fn is_identity(&self) -> bool {
        matches!(self, CellOp::Identity)
    }

    /// Multiply-accumulates on a square input of side `side` (pooling counts none).
    pub fn macs(&self, side: i64) -> u64 {
        match self {
            CellOp::Reduce(reduce) => reduce.macs(side),
            CellOp::Sep(sep) => sep.macs(side),
            CellOp::Dil(dil) => dil.macs(side),
            _ => 0,
        }
    }
}

/// Side of a cell's output for inputs of side `side1` (input 1's side, which input 0 is
/// brought to).
pub fn cell_output_side(kind: CellKind, side1: i64) -> i64 {
    match kind {
        CellKind::Normal => side1,
        CellKind::Reduce => pool_3x3_output_size(side1, 2),
    }
}

/// The cell DAG: `states = [p0, p1]`, node `j` sums `edge_output(e, states[i])` over its edges
/// `e = j <- i`, the output concatenates nodes 2..=5. `edge_output` returns `None` for an edge
/// that contributes nothing; a node with no contribution is zeros of `node_shape`.
pub fn run_cell(
    p0: Tensor,
    p1: Tensor,
    node_shape: [i64; 4],
    mut edge_output: impl FnMut(usize, &Tensor) -> Result<Option<Tensor>, TchError>,
) -> Result<Tensor, TchError> {
    let mut states = vec![p0, p1];
    for node in 2..2 + STEPS {
        let mut sum: Option<Tensor> = None;
        for (edge, &(to, from)) in EDGES.iter().enumerate() {
            if to != node {
                continue;
            }
            if let Some(output) = edge_output(edge, &states[from])? {
                sum = Some(match sum {
                    None => output,
                    Some(partial) => partial.f_add(&output)?,
                });
            }
        }
        let value = match sum {
            Some(value) => value,
            None => Tensor::f_zeros(node_shape, (states[1].kind(), states[1].device()))?,
        };
        states.push(value);
    }
    Tensor::f_cat(&states[2..], 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_darts_network_cifar() {
        let cells = layout(36, 20);
        let reductions: Vec<usize> = cells.iter().filter(|c| c.kind == CellKind::Reduce).map(|c| c.index).collect();
        assert_eq!(reductions, [6, 13]);
        assert_eq!((cells[0].channels_prev_prev, cells[0].channels_prev, cells[0].channels), (108, 108, 36));
        assert_eq!((cells[1].channels_prev_prev, cells[1].channels_prev), (108, 144));
        assert_eq!((cells[6].channels, cells[7].reduction_prev, cells[7].channels_prev_prev), (72, true, 144));
        assert_eq!(output_channels(&cells), 4 * 144);
        let search = layout(16, 8);
        assert_eq!(search.iter().filter(|c| c.kind == CellKind::Reduce).map(|c| c.index).collect::<Vec<_>>(), [2, 5]);
        assert_eq!(edge_stride(CellKind::Reduce, 1), 2);
        assert_eq!(edge_stride(CellKind::Reduce, 4), 1);
        assert_eq!(edge_stride(CellKind::Normal, 0), 1);
    }
}
