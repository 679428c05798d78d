//! What supernet cells and stand-alone cells share: the operation modules and the 4-node DAG.

use std::cell::OnceCell;

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
    pub fn forward(&self, input: &Node, train: bool) -> Result<Option<Tensor>, TchError> {
        Ok(match self {
            CellOp::Zero => None,
            CellOp::Identity => Some(input.value.shallow_clone()),
            CellOp::Conv(block) => Some(block.forward_activated(input.activated()?, train)?),
            CellOp::AvgPool => Some(avg_pool_3x3(&input.value)?),
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

/// A node of the cell DAG as the edges leaving it see it. Every conv op starts with a ReLU of
/// its input; the ReLU is computed once per node and shared by all of them (in a supernet node 0
/// feeds six convs), the same arithmetic with fewer passes over memory.
pub struct Node {
    pub value: Tensor,
    activated: OnceCell<Tensor>,
}

impl Node {
    pub fn new(value: Tensor) -> Self {
        Node { value, activated: OnceCell::new() }
    }

    pub fn activated(&self) -> Result<&Tensor, TchError> {
        if let Some(activated) = self.activated.get() {
            return Ok(activated);
        }
        let activated = self.value.f_relu()?;
        Ok(self.activated.get_or_init(|| activated))
    }
}

/// NB201's cell DAG: node 0 is the input, node `j` sums `edge_output(e, node i)` over its edges
/// `e = j <- i`, node 3 is the output. `edge_output` returns `None` for an edge that contributes
/// nothing; a node with no contribution at all is zeros (as NB201's `none` ops would sum to).
pub fn run_cell(input: &Tensor, mut edge_output: impl FnMut(usize, &Node) -> Result<Option<Tensor>, TchError>) -> Result<Tensor, TchError> {
    let mut nodes = vec![Node::new(input.shallow_clone())];
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
        nodes.push(Node::new(node));
    }
    Ok(nodes.swap_remove(NUM_NODES - 1).value)
}
