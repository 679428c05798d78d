//! Stand-alone networks: the static subnet `OFAMobileNetV3.get_active_subnet()` extracts (ofa's
//! `MobileNetV3` of `MBConvLayer`s), every tensor at its subnet's size, the depthwise kernels
//! plain `k`x`k` convolutions, the blocks the depths keep numbered `blocks.1 ..` in order.
//! Names are that `MobileNetV3`'s state-dict names.

use splitnas_nn_blocks::{BatchNorm2d, BatchNormSpec, Conv2d, ConvSpec, NamedVariables, ParamInit};
use splitnas_plugin_api::author::NetworkPlugin;
use splitnas_plugin_api::{Device, ForwardMode, NamedTensor, PluginError};
use tch::nn::{Path, VarStore};
use tch::{TchError, Tensor};

use crate::choices::Subnet;
use crate::layers::{run_block, BlockRun, BlockTensors, SqueezeExcitation, Trunk, NUMERICS};
use crate::layout::{BlockLayout, NetworkLayout};
use crate::supernet::OfaSupernet;

/// One block of the extracted network (`MBConvLayer` with its shortcut).
pub struct StaticBlock {
    pub layout: BlockLayout,
    pub kernel_size: i64,
    pub middle: i64,
    pub expand: Conv2d,
    pub expand_bn: BatchNorm2d,
    pub depthwise: Conv2d,
    pub depthwise_bn: BatchNorm2d,
    pub squeeze_excitation: Option<SqueezeExcitation>,
    pub project: Conv2d,
    pub project_bn: BatchNorm2d,
}

/// Copies `source` into `target` (same shape), which shares storage with the network.
fn copy(target: &Tensor, source: &Tensor) -> Result<(), TchError> {
    // A second handle to the same storage: copy_ wants `&mut`.
    target.shallow_clone().f_copy_(source)
}

/// Copies the first `channels` of a batch norm's scale, shift and running statistics.
fn copy_batch_norm(target: &BatchNorm2d, (source, channels): (&BatchNorm2d, i64)) -> Result<(), TchError> {
    for (to, from) in [
        (&target.weight, &source.weight),
        (&target.bias, &source.bias),
        (&target.running_mean, &source.running_mean),
        (&target.running_var, &source.running_var),
    ] {
        if let (Some(to), Some(from)) = (to, from) {
            copy(to, &from.f_narrow(0, 0, channels)?)?;
        }
    }
    Ok(())
}

fn batch_norm(path: &Path, channels: i64) -> Result<BatchNorm2d, TchError> {
    Ok(BatchNorm2d::new(path, channels, BatchNormSpec::AFFINE)?.with_numerics(NUMERICS.eps, NUMERICS.momentum))
}

impl StaticBlock {
    /// Under `path` = `blocks.{j}.conv`.
    pub fn new(path: &Path, layout: BlockLayout, kernel_size: i64, expand_ratio: i64, init: ParamInit) -> Result<Self, TchError> {
        let middle = layout.middle_channels(expand_ratio);
        let expand = Conv2d::new(&(path / "inverted_bottleneck" / "conv"), ConvSpec::new(layout.in_channels, middle, 1), init)?;
        let expand_bn = batch_norm(&(path / "inverted_bottleneck" / "bn"), middle)?;
        let depthwise_spec = ConvSpec::new(middle, middle, kernel_size).stride(layout.stride).padding(kernel_size / 2).groups(middle);
        let depthwise = Conv2d::new(&(path / "depth_conv" / "conv"), depthwise_spec, init)?;
        let depthwise_bn = batch_norm(&(path / "depth_conv" / "bn"), middle)?;
        let squeeze_excitation = if layout.squeeze_excitation {
            Some(SqueezeExcitation::new(&(path / "depth_conv" / "se" / "fc"), middle, BlockLayout::se_channels(middle), init)?)
        } else {
            None
        };
        let project = Conv2d::new(&(path / "point_linear" / "conv"), ConvSpec::new(middle, layout.out_channels, 1), init)?;
        let project_bn = batch_norm(&(path / "point_linear" / "bn"), layout.out_channels)?;
        Ok(StaticBlock { layout, kernel_size, middle, expand, expand_bn, depthwise, depthwise_bn, squeeze_excitation, project, project_bn })
    }

    /// The block's forward pass, shortcut included.
    pub fn forward(&self, input: &Tensor, train: bool) -> Result<Tensor, TchError> {
        let run = BlockRun { stride: self.layout.stride, activation: self.layout.activation, has_shortcut: self.layout.has_shortcut };
        run_block(input, &self.tensors()?, run, train)
    }

    fn tensors(&self) -> Result<BlockTensors<'_>, TchError> {
        let hidden = BlockLayout::se_channels(self.middle);
        Ok(BlockTensors {
            expand_weight: self.expand.weight.shallow_clone(),
            expand_bn: (&self.expand_bn, self.middle),
            depthwise_weight: self.depthwise.weight.shallow_clone(),
            depthwise_bn: (&self.depthwise_bn, self.middle),
            squeeze_excitation: self.squeeze_excitation.as_ref().map(|se| se.prefix(self.middle, hidden)).transpose()?,
            project_weight: self.project.weight.shallow_clone(),
            project_bn: (&self.project_bn, self.layout.out_channels),
        })
    }
}

pub struct OfaNetwork {
    pub trunk: Trunk,
    pub blocks: Vec<StaticBlock>,
    variables: NamedVariables,
    // Owns the tensors' registry; the layers and `variables` hold handles sharing storage.
    _var_store: VarStore,
}

impl OfaNetwork {
    /// `subnet` must be valid (see `choices`).
    pub fn new(layout: &NetworkLayout, subnet: &Subnet, dropout: f64, device: Device, init: ParamInit) -> Result<Self, PluginError> {
        let var_store = VarStore::new(device.to_tch());
        let root = var_store.root();
        let trunk = Trunk::new(&root, layout, dropout, init)?;
        let mut blocks = Vec::new();
        for (index, &block) in layout.blocks.iter().enumerate() {
            if subnet.keeps_block(index) {
                let path = &root / "blocks" / (blocks.len() + 1).to_string() / "conv";
                blocks.push(StaticBlock::new(&path, block, subnet.kernel_sizes[index], subnet.expand_ratios[index], init)?);
            }
        }
        let variables = NamedVariables::of(&var_store);
        Ok(OfaNetwork { trunk, blocks, variables, _var_store: var_store })
    }

    /// The subnet with the supernet's weights (OFA's `get_active_subnet(preserve_weight=True)`):
    /// channel prefixes, transformed kernels, batch-norm prefixes with their running statistics.
    /// OFA's point: the subnet needs no retraining (recalibrate its batch norms first).
    pub fn from_supernet(layout: &NetworkLayout, subnet: &Subnet, dropout: f64, supernet: &OfaSupernet, device: Device) -> Result<Self, PluginError> {
        let network = OfaNetwork::new(layout, subnet, dropout, device, ParamInit::Placeholder)?;
        tch::no_grad(|| -> Result<(), TchError> {
            let (ours, theirs) = (&network.trunk, &supernet.trunk);
            for (target, source) in [
                (&ours.stem, &theirs.stem),
                (&ours.first_depthwise, &theirs.first_depthwise),
                (&ours.first_project, &theirs.first_project),
                (&ours.final_expand, &theirs.final_expand),
            ] {
                copy(&target.conv.weight, &source.conv.weight)?;
                copy_batch_norm(&target.bn, (&source.bn, source.conv.spec.out_channels))?;
            }
            copy(&ours.feature_mix.weight, &theirs.feature_mix.weight)?;
            copy(&ours.classifier.weight, &theirs.classifier.weight)?;
            copy(&ours.classifier.bias, &theirs.classifier.bias)?;
            let kept = (0..supernet.blocks.len()).filter(|&index| subnet.keeps_block(index));
            for (target, index) in network.blocks.iter().zip(kept) {
                let source = supernet.blocks[index].active(subnet.kernel_sizes[index], subnet.expand_ratios[index])?;
                copy(&target.expand.weight, &source.expand_weight)?;
                copy_batch_norm(&target.expand_bn, source.expand_bn)?;
                copy(&target.depthwise.weight, &source.depthwise_weight)?;
                copy_batch_norm(&target.depthwise_bn, source.depthwise_bn)?;
                if let (Some(se), Some(values)) = (&target.squeeze_excitation, &source.squeeze_excitation) {
                    for (to, from) in [&se.reduce_weight, &se.reduce_bias, &se.expand_weight, &se.expand_bias].into_iter().zip(values) {
                        copy(to, from)?;
                    }
                }
                copy(&target.project.weight, &source.project_weight)?;
                copy_batch_norm(&target.project_bn, source.project_bn)?;
            }
            Ok(())
        })?;
        Ok(network)
    }

    pub fn parameter_count(&self) -> u64 {
        self.variables.parameter_count()
    }

    /// Every parameter and buffer name, in the order the network lists them.
    pub fn tensor_names(&self) -> Vec<String> {
        self.variables.parameters.iter().chain(self.variables.buffers.iter()).map(|(name, _)| name.clone()).collect()
    }

    pub fn logits(&self, input: &Tensor, train: bool) -> Result<Tensor, TchError> {
        let mut features = self.trunk.head_in(input, train)?;
        for block in &self.blocks {
            features = block.forward(&features, train)?;
        }
        self.trunk.head_out(&features, train)
    }
}

impl NetworkPlugin for OfaNetwork {
    fn forward(&self, input: &Tensor, mode: ForwardMode) -> Result<(Tensor, Option<Tensor>), PluginError> {
        if mode.drop_path_prob > 0.0 {
            return Err(PluginError::unsupported(format!(
                "ofa networks have no drop-path (drop_path_prob {} was asked for): set it to 0 for this space",
                mode.drop_path_prob
            )));
        }
        Ok((self.logits(input, mode.train)?, None))
    }

    fn parameters(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(self.variables.parameters.iter().map(|(name, tensor)| NamedTensor::share(name.as_str(), tensor)).collect())
    }

    fn buffers(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(self.variables.buffers.iter().map(|(name, tensor)| NamedTensor::share(name.as_str(), tensor)).collect())
    }
}
