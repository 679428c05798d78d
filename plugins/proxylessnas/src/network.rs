//! Stand-alone networks of one architecture (`ofa`'s `ProxylessNASNets` of
//! `ResidualBlock(MBConvLayer, IdentityLayer or None)`): a `zero` block is the identity and
//! has no parameters. Parameter names match the supernet's for the chosen options.

use std::collections::BTreeMap;

use splitnas_nn_blocks::{BatchNormNumerics, MbConv, NamedVariables, ParamInit};
use splitnas_plugin_api::author::NetworkPlugin;
use splitnas_plugin_api::{Device, ForwardMode, NamedTensor, PluginError};
use tch::nn::VarStore;
use tch::Tensor;

use crate::skeleton::Skeleton;
use crate::space::{NetworkLayout, Operation};

/// One searchable block: its MBConv (none for `zero`) and whether it adds its input.
pub struct ChosenBlock {
    op: Option<MbConv>,
    has_shortcut: bool,
}

pub struct ProxylessNetwork {
    skeleton: Skeleton<ChosenBlock>,
    variables: NamedVariables,
    // Owns the tensors' registry; the blocks and `variables` hold handles sharing storage.
    _var_store: VarStore,
}

impl ProxylessNetwork {
    /// `operations` must be valid for `layout` (see `space::operations_of`).
    pub fn new(layout: &NetworkLayout, operations: &[Operation], dropout: f64, device: Device, init: ParamInit) -> Result<Self, PluginError> {
        let var_store = VarStore::new(device.to_tch());
        let skeleton = Skeleton::new(&var_store.root(), layout, dropout, init, |path, block| {
            let operation = operations[block];
            let op = layout.blocks[block]
                .mbconv(operation)
                .map(|spec| MbConv::new(&(path / operation.name()), spec, BatchNormNumerics::MOBILE, init))
                .transpose()?;
            Ok(ChosenBlock { op, has_shortcut: layout.blocks[block].has_shortcut })
        })?;
        let variables = NamedVariables::of(&var_store);
        Ok(ProxylessNetwork { skeleton, variables, _var_store: var_store })
    }

    pub fn parameter_count(&self) -> u64 {
        self.variables.parameter_count()
    }

    /// Every parameter and buffer name, in the order the network lists them.
    pub fn tensor_names(&self) -> Vec<String> {
        self.variables.parameters.iter().chain(self.variables.buffers.iter()).map(|(name, _)| name.clone()).collect()
    }
}

impl NetworkPlugin for ProxylessNetwork {
    fn forward(&self, input: &Tensor, mode: ForwardMode) -> Result<(Tensor, Option<Tensor>), PluginError> {
        if mode.drop_path_prob > 0.0 {
            return Err(PluginError::unsupported(format!(
                "proxylessnas networks have no drop-path (drop_path_prob {} was asked for): set it to 0 for this space",
                mode.drop_path_prob
            )));
        }
        let logits = self.skeleton.forward(input, mode.train, |_, block, features| match &block.op {
            None => Ok(features.shallow_clone()),
            Some(op) if block.has_shortcut => op.forward(features, mode.train)?.f_add(features),
            Some(op) => op.forward(features, mode.train),
        })?;
        Ok((logits, None))
    }

    fn parameters(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(self.variables.parameters.iter().map(|(name, tensor)| NamedTensor::share(name.as_str(), tensor)).collect())
    }

    fn buffers(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(self.variables.buffers.iter().map(|(name, tensor)| NamedTensor::share(name.as_str(), tensor)).collect())
    }
}

/// The name of one of our network's tensors in `ofa`'s `ProxylessNASNets` state dict:
/// `first_conv.{conv,bn}`, `blocks.0.conv.{depth_conv,point_linear}` (the fixed block),
/// `blocks.{i}.conv.{inverted_bottleneck,depth_conv,point_linear}.{conv,bn}`,
/// `feature_mix_layer.{conv,bn}`, `classifier.linear`. `None` for a name the network never has.
pub fn reference_name(ours: &str) -> Option<String> {
    let mbconv_part = |part: &str| -> Option<&'static str> {
        Some(match part {
            "expand" => "inverted_bottleneck",
            "depthwise" => "depth_conv",
            "project" => "point_linear",
            _ => return None,
        })
    };
    if let Some(rest) = ours.strip_prefix("stem.") {
        return Some(format!("first_conv.{rest}"));
    }
    if let Some(rest) = ours.strip_prefix("feature_mix.") {
        return Some(format!("feature_mix_layer.{rest}"));
    }
    if let Some(rest) = ours.strip_prefix("classifier.") {
        return Some(format!("classifier.linear.{rest}"));
    }
    if let Some(rest) = ours.strip_prefix("first_block.") {
        let (part, tensor) = rest.split_once('.')?;
        return Some(format!("blocks.0.conv.{}.{tensor}", mbconv_part(part)?));
    }
    let rest = ours.strip_prefix("blocks.")?;
    let (block, rest) = rest.split_once('.')?;
    let (_operation, rest) = rest.split_once('.')?;
    let (part, tensor) = rest.split_once('.')?;
    Some(format!("blocks.{block}.conv.{}.{tensor}", mbconv_part(part)?))
}

/// [`reference_name`] for every tensor of `network`.
pub fn reference_names(network: &ProxylessNetwork) -> Result<BTreeMap<String, String>, PluginError> {
    network
        .tensor_names()
        .into_iter()
        .map(|ours| {
            let reference =
                reference_name(&ours).ok_or_else(|| PluginError::other(format!("proxylessnas: no ProxylessNASNets name for `{ours}`")))?;
            Ok((ours, reference))
        })
        .collect()
}
