//! What supernet cells and stand-alone cells share: the operation modules and the 4-node DAG.

use splitnas_nn_blocks::{avg_pool_3x3, BatchNormSpec, ConvSpec, ParamInit, ReluConvBn};
use tch::nn::Path;
use tch::{TchError, Tensor};

use crate::space::{Operation, EDGES, NUM_NODES};

/// One operation on one edge of one cell, at the cell's width (every NB201 cell op keeps the shape).
pub enum CellOp {
    /// `none`: contributes nothing, so it is never computed.
    Zero,
    Identity,
    Conv(ReluConvBn),
    AvgPool,
}

impl CellOp {
    /// Creates the op's tensors under `path` (only the convs have any).
    pub fn new(path: &Path, op: Operation, channels: i64, bn: BatchNormSpec, init: ParamInit) -> Result<CellOp, TchError> {
        Ok(match op {
            Operation::None => CellOp::Zero,
            Operation::SkipConnect => CellOp::Identity,
            Operation::AvgPool3x3 => CellOp::AvgPool,
            Operation::NorConv1x1 | Operation::NorConv3x3 => {
                let kernel = op.conv_kernel().unwrap_or(1);
                CellOp::Conv(ReluConvBn::nb201(path, ConvSpec::new(channels, channels, kernel).padding(kernel / 2), bn, init)?)
            }
        })
    }

    /// The op's output, `None` for [`CellOp::Zero`].
    pub fn forward(&self, input: &Tensor, train: bool) -> Result<Option<Tensor>, TchError> {
        Ok(match self {
            CellOp::Zero => None,
            CellOp::Identity => Some(input.shallow_clone()),
            CellOp::Conv(block) => Some(block.forward(input, train)?),
            CellOp::AvgPool => Some(avg_pool_3x3(input)?),
        })
    }

    /// Multiply-accumulates on a square input of side `side`.
    pub fn macs(&self, side: i64) -> u64 {
        match self {
            CellOp::Conv(block) => block.conv.spec.macs(side),
            _ => 0,
        }
    }
}

/// NB201's cell DAG: node 0 is the input, node `j` sums `edge_output(e, node i)` over its edges
/// `e = j <- i`, node 3 is the output. `edge_output` returns `None` for an edge that contributes
/// nothing; a node with no contribution at all is zeros (as NB201's `none` ops would sum to).
pub fn run_cell(
    input: &Tensor,
    mut edge_output: impl FnMut(usize, &Tensor) -> Result<Option<Tensor>, TchError>,
) -> Result<Tensor, TchError> {
    let mut nodes = vec![input.shallow_clone()];
    for to in 1..NUM_NODES {
        let mut sum: Option<Tensor> = None;
        for (edge, &(target, from)) in EDGES.iter().enumerate() {
            if target != to {
                continue;
            }
            if let Some(output) = edge_output(edge, &nodes[from])? {
                sum = Some(match sum {
                    None => output,
                    Some(partial) => partial.f_add(&output)?,
                });
            }
        }
        let node = match sum {
            Some(node) => node,
            None => input.f_zeros_like()?,
        };
        nodes.push(node);
    }
    Ok(nodes.swap_remove(NUM_NODES - 1))
}
