//! Stand-alone networks of one architecture (NB201's `TinyNetwork` with `InferCell`s): affine
//! batch norm with running statistics everywhere, convs without bias. Parameter names match the
//! supernet's where the op is the same (`cells.{i}.edges.{to<-from}.{op}.conv.weight`), though
//! the batch norms differ (affine here, not there).

use splitnas_nn_blocks::{BatchNormSpec, NamedVariables, ParamInit};
use splitnas_plugin_api::author::NetworkPlugin;
use splitnas_plugin_api::{Device, ForwardMode, NamedTensor, NetworkStats, PluginError};
use tch::nn::{Path, VarStore};
use tch::{TchError, Tensor};

use crate::cell::{run_cell, CellOp};
use crate::skeleton::Skeleton;
use crate::space::{edge_name, Operation, NUM_EDGES};
use crate::Nb201Config;

/// One op per edge.
pub struct InferCell {
    ops: Vec<CellOp>,
}

impl InferCell {
    fn new(path: &Path, operations: &[Operation; NUM_EDGES], channels: i64, init: ParamInit) -> Result<Self, TchError> {
        let ops = operations
            .iter()
            .enumerate()
            .map(|(edge, &op)| CellOp::new(&(path / "edges" / edge_name(edge) / op.name()), op, channels, BatchNormSpec::AFFINE, init))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(InferCell { ops })
    }

    fn forward(&self, input: &Tensor, train: bool) -> Result<Tensor, TchError> {
        run_cell(input, |edge, node| self.ops[edge].forward(node, train))
    }

    fn macs(&self, side: i64) -> u64 {
        self.ops.iter().map(|op| op.macs(side)).sum()
    }
}

pub struct Nb201Network {
    skeleton: Skeleton<InferCell>,
    variables: NamedVariables,
    // Owns the tensors' registry; the blocks and `variables` hold handles sharing storage.
    _var_store: VarStore,
}

impl Nb201Network {
    pub fn new(config: &Nb201Config, operations: &[Operation; NUM_EDGES], device: Device, init: ParamInit) -> Result<Self, PluginError> {
        let var_store = VarStore::new(device.to_tch());
        let skeleton = Skeleton::new(&var_store.root(), config, init, |path, channels| InferCell::new(path, operations, channels, init))?;
        let variables = NamedVariables::of(&var_store);
        Ok(Nb201Network { skeleton, variables, _var_store: var_store })
    }

    /// Parameter count and FLOPs (see [`Skeleton::flops`]) for a square input of `image_size`.
    pub fn stats(&self, image_size: u32) -> Result<NetworkStats, PluginError> {
        let flops = self.skeleton.flops(image_size, |cell, side| cell.macs(side))?;
        Ok(NetworkStats { parameters: self.variables.parameter_count(), flops })
    }
}

impl NetworkPlugin for Nb201Network {
    fn forward(&self, input: &Tensor, mode: ForwardMode) -> Result<(Tensor, Option<Tensor>), PluginError> {
        if mode.drop_path_prob > 0.0 {
            return Err(PluginError::unsupported(format!(
                "nb201 networks have no drop-path (drop_path_prob {} was asked for): set it to 0 for this space",
                mode.drop_path_prob
            )));
        }
        let logits = self.skeleton.forward(input, mode.train, |cell, features| cell.forward(features, mode.train))?;
        Ok((logits, None))
    }

    fn parameters(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(self.variables.parameters.iter().map(|(name, tensor)| NamedTensor::share(name.as_str(), tensor)).collect())
    }

    fn buffers(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(self.variables.buffers.iter().map(|(name, tensor)| NamedTensor::share(name.as_str(), tensor)).collect())
    }
}

/// The name of one of our network's parameters or buffers in NAS-Bench-201's inference network
/// (XAutoDL's `TinyNetwork` with `ResNetBasicblock`s and `InferCell`s, whose `ReLUConvBN` is
/// `op = Sequential(ReLU, Conv2d, BatchNorm2d)` and whose cell keeps one layer per edge in the
/// genotype's order, `layers.{edge index}`). `None` for a name this network never has.
pub fn reference_name(ours: &str) -> Option<String> {
    let relu_conv_bn = |rest: &str| -> Option<String> {
        let (layer, tensor) = rest.split_once('.')?;
        let index = match layer {
            "conv" => 1,
            "bn" => 2,
            _ => return None,
        };
        Some(format!("op.{index}.{tensor}"))
    };
    if let Some(rest) = ours.strip_prefix("stem.") {
        let (layer, tensor) = rest.split_once('.')?;
        let index = match layer {
            "conv" => 0,
            "bn" => 1,
            _ => return None,
        };
        return Some(format!("stem.{index}.{tensor}"));
    }
    if let Some(tensor) = ours.strip_prefix("head.bn.") {
        return Some(format!("lastact.0.{tensor}"));
    }
    if ours.starts_with("classifier.") {
        return Some(ours.to_string());
    }
    let rest = ours.strip_prefix("cells.")?;
    let (cell, rest) = rest.split_once('.')?;
    let inner = if let Some(tensor) = rest.strip_prefix("downsample.") {
        format!("downsample.1.{tensor}")
    } else if let Some(rest) = rest.strip_prefix("conv_a.") {
        format!("conv_a.{}", relu_conv_bn(rest)?)
    } else if let Some(rest) = rest.strip_prefix("conv_b.") {
        format!("conv_b.{}", relu_conv_bn(rest)?)
    } else {
        let rest = rest.strip_prefix("edges.")?;
        let (edge, rest) = rest.split_once('.')?;
        let (_operation, rest) = rest.split_once('.')?;
        let index = (0..NUM_EDGES).find(|&index| edge_name(index) == edge)?;
        format!("layers.{index}.{}", relu_conv_bn(rest)?)
    };
    Some(format!("cells.{cell}.{inner}"))
}

impl Nb201Network {
    /// Every parameter and buffer name, in the order the network lists them.
    pub fn tensor_names(&self) -> Vec<String> {
        self.variables.parameters.iter().chain(self.variables.buffers.iter()).map(|(name, _)| name.clone()).collect()
    }
}
