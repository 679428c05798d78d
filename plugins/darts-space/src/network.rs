//! Stand-alone networks of one architecture: DARTS's `NetworkCIFAR` (affine batch norm, the
//! kept edges' ops only, optional auxiliary head, drop-path on every op that is not an identity
//! while training). Parameter names follow the supernet's where the op is the same
//! (`cells.{i}.edges.{to<-from}.{op}.*`).

use splitnas_nn_blocks::{drop_path, is_under, BatchNormSpec, NamedVariables, ParamInit};
use splitnas_plugin_api::author::NetworkPlugin;
use splitnas_plugin_api::{Device, ForwardMode, NamedTensor, NetworkStats, PluginError};
use tch::nn::{Path, VarStore};
use tch::{TchError, Tensor};

use crate::cell::{cell_output_side, edge_stride, run_cell, CellLayout, CellOp, Preprocess};
use crate::skeleton::{Skeleton, SkeletonShape, AUXILIARY_PREFIX};
use crate::space::{edge_name, DartsArchitecture, EDGES, EDGES_PER_CELL};

/// The kept edges of one cell, each with its op.
pub struct InferCell {
    preprocess: Preprocess,
    ops: Vec<Option<CellOp>>,
}

impl InferCell {
    fn new(path: &Path, layout: &CellLayout, architecture: &DartsArchitecture, init: ParamInit) -> Result<Self, TchError> {
        let preprocess = Preprocess::new(path, layout, BatchNormSpec::AFFINE, init)?;
        let operations = architecture.cell(layout.kind);
        let ops = (0..EDGES_PER_CELL)
            .map(|edge| {
                operations[edge]
                    .map(|op| {
                        let op_path = path / "edges" / edge_name(edge) / op.name();
                        CellOp::new(&op_path, op, layout.channels, edge_stride(layout.kind, edge), false, init)
                    })
                    .transpose()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(InferCell { preprocess, ops })
    }

    fn forward(&self, layout: &CellLayout, s0: &Tensor, s1: &Tensor, mode: ForwardMode) -> Result<Tensor, TchError> {
        let (p0, p1) = self.preprocess.forward(s0, s1, mode.train)?;
        let size = p1.size();
        let node_shape = [size[0], layout.channels, cell_output_side(layout.kind, size[2]), cell_output_side(layout.kind, size[3])];
        let drop = if mode.train { mode.drop_path_prob } else { 0.0 };
        run_cell(p0, p1, node_shape, |edge, input| {
            let Some(op) = &self.ops[edge] else { return Ok(None) };
            let output = op.forward(input, mode.train)?;
            Ok(Some(if drop > 0.0 && !op.is_identity() { drop_path(&output, drop)? } else { output }))
        })
    }

    /// Multiply-accumulates for inputs of sides `side0`, `side1`: edges from the cell's inputs
    /// run at input 1's side (input 0 is brought there), edges from inner nodes at the output's.
    fn macs(&self, layout: &CellLayout, side0: i64, side1: i64) -> u64 {
        let inner = cell_output_side(layout.kind, side1);
        let ops: u64 =
            self.ops.iter().zip(EDGES).filter_map(|(op, (_, from))| op.as_ref().map(|op| op.macs(if from < 2 { side1 } else { inner }))).sum();
        self.preprocess.macs(side0, side1) + ops
    }
}

pub struct DartsNetwork {
    skeleton: Skeleton<InferCell>,
    variables: NamedVariables,
    // Owns the tensors' registry; the blocks and `variables` hold handles sharing storage.
    _var_store: VarStore,
}

impl DartsNetwork {
    pub fn new(shape: SkeletonShape, architecture: &DartsArchitecture, device: Device, init: ParamInit) -> Result<Self, PluginError> {
        let var_store = VarStore::new(device.to_tch());
        let skeleton = Skeleton::new(&var_store.root(), shape, init, |path, layout| InferCell::new(path, layout, architecture, init))?;
        let variables = NamedVariables::of(&var_store);
        Ok(DartsNetwork { skeleton, variables, _var_store: var_store })
    }

    /// Parameters without the auxiliary head (as DARTS and every paper count them), and FLOPs
    /// (see [`Skeleton::flops`]) for a square input of `image_size`.
    pub fn stats(&self, image_size: u32) -> Result<NetworkStats, PluginError> {
        let flops = self.skeleton.flops(image_size, |cell, layout, side0, side1| cell.macs(layout, side0, side1))?;
        Ok(NetworkStats { parameters: self.parameter_count(false), flops })
    }

    /// Number of trainable values, with or without the auxiliary head.
    pub fn parameter_count(&self, with_auxiliary: bool) -> u64 {
        self.variables
            .parameters
            .iter()
            .filter(|(name, _)| with_auxiliary || !is_under(name, AUXILIARY_PREFIX))
            .map(|(_, tensor)| tensor.numel() as u64)
            .sum()
    }
}

impl NetworkPlugin for DartsNetwork {
    fn forward(&self, input: &Tensor, mode: ForwardMode) -> Result<(Tensor, Option<Tensor>), PluginError> {
        if !(0.0..1.0).contains(&mode.drop_path_prob) {
            return Err(PluginError::invalid_input(format!("drop_path_prob must be in [0, 1), got {}", mode.drop_path_prob)));
        }
        self.skeleton.forward(input, mode.train, |cell, layout, s0, s1| cell.forward(layout, s0, s1, mode))
    }

    fn parameters(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(self.variables.parameters.iter().map(|(name, tensor)| NamedTensor::share(name.as_str(), tensor)).collect())
    }

    fn buffers(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(self.variables.buffers.iter().map(|(name, tensor)| NamedTensor::share(name.as_str(), tensor)).collect())
    }
}

impl DartsNetwork {
    /// Every parameter and buffer name, in the order the network lists them.
    pub fn tensor_names(&self) -> Vec<String> {
        self.variables.parameters.iter().chain(self.variables.buffers.iter()).map(|(name, _)| name.clone()).collect()
    }
}

/// The name of one of our network's tensors in DARTS's `NetworkCIFAR` (quark0/darts,
/// `cnn/model.py` and `cnn/operations.py`): `ReLUConvBN.op = Sequential(ReLU, Conv2d, BN)`,
/// `SepConv.op = Sequential(ReLU, dw, pw, BN, ReLU, dw, pw, BN)`, `DilConv.op = Sequential(ReLU,
/// dw, pw, BN)`, a cell's kept ops in `_ops` in the genotype's pair order (our genotype strings
/// list a node's pairs by input), the auxiliary head's `features` Sequential. `layouts` says
/// which cells reduce. `None` for a name this network never has.
pub fn reference_name(ours: &str, architecture: &DartsArchitecture, layouts: &[CellLayout]) -> Option<String> {
    let sequential = |table: &[(&str, usize)], rest: &str| -> Option<String> {
        let (layer, tensor) = rest.split_once('.')?;
        let (_, index) = table.iter().find(|(name, _)| *name == layer)?;
        Some(format!("op.{index}.{tensor}"))
    };
    const RELU_CONV_BN: [(&str, usize); 2] = [("conv", 1), ("bn", 2)];
    const SEPARABLE: [(&str, usize); 6] = [("dw1", 1), ("pw1", 2), ("bn1", 3), ("dw2", 5), ("pw2", 6), ("bn2", 7)];
    const DILATED: [(&str, usize); 3] = [("dw", 1), ("pw", 2), ("bn", 3)];
    const AUXILIARY: [(&str, &str); 5] =
        [("conv1", "features.2"), ("bn1", "features.3"), ("conv2", "features.5"), ("bn2", "features.6"), ("classifier", "classifier")];
    if let Some(rest) = ours.strip_prefix("stem.") {
        let (layer, tensor) = rest.split_once('.')?;
        let index = [("conv", 0), ("bn", 1)].iter().find(|(name, _)| *name == layer)?.1;
        return Some(format!("stem.{index}.{tensor}"));
    }
    if ours.starts_with("classifier.") {
        return Some(ours.to_string());
    }
    if let Some(rest) = ours.strip_prefix(&format!("{AUXILIARY_PREFIX}.")) {
        let (layer, tensor) = rest.split_once('.')?;
        let (_, reference) = AUXILIARY.iter().find(|(name, _)| *name == layer)?;
        return Some(format!("auxiliary_head.{reference}.{tensor}"));
    }
    let rest = ours.strip_prefix("cells.")?;
    let (cell, rest) = rest.split_once('.')?;
    let layout = layouts.get(cell.parse::<usize>().ok()?)?;
    let inner = if let Some((preprocess, rest)) = rest.split_once('.').filter(|(head, _)| head.starts_with("preprocess")) {
        let (layer, _) = rest.split_once('.')?;
        if matches!(layer, "conv_1" | "conv_2") || (layer == "bn" && preprocess == "preprocess0" && layout.reduction_prev) {
            format!("{preprocess}.{rest}") // FactorizedReduce: the same names
        } else {
            format!("{preprocess}.{}", sequential(&RELU_CONV_BN, rest)?)
        }
    } else {
        let rest = rest.strip_prefix("edges.")?;
        let (edge, rest) = rest.split_once('.')?;
        let (operation, rest) = rest.split_once('.')?;
        let edge = (0..EDGES_PER_CELL).find(|&index| edge_name(index) == edge)?;
        let kept = architecture.cell(layout.kind);
        let position = (0..edge).filter(|&before| kept[before].is_some()).count();
        let tail = if operation.starts_with("sep_conv") {
            sequential(&SEPARABLE, rest)?
        } else if operation.starts_with("dil_conv") {
            sequential(&DILATED, rest)?
        } else {
            rest.to_string() // skip_connect at stride 2: FactorizedReduce (conv_1, conv_2, bn)
        };
        format!("_ops.{position}.{tail}")
    };
    Some(format!("cells.{cell}.{inner}"))
}
