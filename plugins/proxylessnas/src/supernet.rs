//! The ProxylessNAS supernet: every searchable block mixes its active options by
//! `weights[block, option]` and adds its identity shortcut where it has one
//! (`MobileInvertedResidualBlock(MixedEdge, IdentityLayer)`): `x + Σ w_k op_k(x)`, `zero`
//! contributing nothing, so a block whose only active option is `zero` passes its input on.
//!
//! As in ProxylessNAS's `SuperProxylessNASNets`, every candidate is a full MBConv with affine
//! batch norms. Every option of every block is created whatever the mask: parameter names are
//! then identical for every sub-supernet, and children inherit their parent's tensors by name.
//! Disallowed or inactive options are never computed.

use splitnas_nn_blocks::mixing::{MixingWeight, MixingWeights};
use splitnas_nn_blocks::{is_under, BatchNormNumerics, MbConv, NamedVariables, ParamInit};
use splitnas_plugin_api::author::SupernetPlugin;
use splitnas_plugin_api::{Device, Mask, NamedTensor, PluginError};
use tch::nn::VarStore;
use tch::{TchError, Tensor};

use crate::skeleton::{block_prefix, Skeleton};
use crate::space::{block_name, validate_mask, NetworkLayout, Operation, NUM_BLOCKS, NUM_OPERATIONS};

/// A searchable block of the supernet: `ops[option]`, `None` for `zero` and for options the
/// block does not have.
pub struct MixedBlock {
    ops: Vec<Option<MbConv>>,
    has_shortcut: bool,
}

impl MixedBlock {
    fn forward(&self, input: &Tensor, mixing: &[(usize, MixingWeight)], train: bool) -> Result<Tensor, TchError> {
        let mut sum = if self.has_shortcut { Some(input.shallow_clone()) } else { None };
        for (option, weight) in mixing {
            if let Some(op) = &self.ops[*option] {
                let weighted = weight.apply(op.forward(input, train)?)?;
                sum = Some(match sum {
                    None => weighted,
                    Some(partial) => partial.f_add(&weighted)?,
                });
            }
        }
        // The mixing was checked to compute something on a block without a shortcut.
        Ok(sum.unwrap_or_else(|| input.shallow_clone()))
    }
}

pub struct ProxylessSupernet {
    skeleton: Skeleton<MixedBlock>,
    variables: NamedVariables,
    mask: Mask,
    // Owns the tensors' registry; the blocks and `variables` hold handles sharing storage.
    _var_store: VarStore,
}

impl ProxylessSupernet {
    /// `mask` must already be valid (see `space::validate_space_mask`).
    pub fn new(layout: &NetworkLayout, dropout: f64, mask: &Mask, device: Device) -> Result<Self, PluginError> {
        let var_store = VarStore::new(device.to_tch());
        let init = ParamInit::PyTorchDefault;
        let skeleton = Skeleton::new(&var_store.root(), layout, dropout, init, |path, block| {
            let block_layout = layout.blocks[block];
            let ops = Operation::ALL
                .into_iter()
                .map(|op| match block_layout.mbconv(op) {
                    Some(spec) if block_layout.options().contains(&op) => {
                        MbConv::new(&(path / op.name()), spec, BatchNormNumerics::MOBILE, init).map(Some)
                    }
                    _ => Ok(None),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(MixedBlock { ops, has_shortcut: block_layout.has_shortcut })
        })?;
        let variables = NamedVariables::of(&var_store);
        Ok(ProxylessSupernet { skeleton, variables, mask: mask.clone(), _var_store: var_store })
    }

    fn check_choice_point(choice_point: u32) -> Result<usize, PluginError> {
        let block = choice_point as usize;
        if block >= NUM_BLOCKS {
            return Err(PluginError::invalid_input(format!(
                "choice point {choice_point} does not exist: proxylessnas has {NUM_BLOCKS} (0..={})",
                NUM_BLOCKS - 1
            )));
        }
        Ok(block)
    }

    /// The computed options of every block with their weights. `zero` is left out: it
    /// contributes nothing.
    fn mixing(&self, weights: &Tensor, active: &Mask) -> Result<Vec<Vec<(usize, MixingWeight)>>, PluginError> {
        if weights.size() != [NUM_BLOCKS as i64, NUM_OPERATIONS as i64] {
            return Err(PluginError::invalid_input(format!(
                "weights must be [{NUM_BLOCKS}, {NUM_OPERATIONS}] (blocks x options), got {:?}",
                weights.size()
            )));
        }
        validate_mask(&self.skeleton.layout, active, "the active mask")?;
        let mixing_weights = MixingWeights::new(weights)?;
        let mut mixing = Vec::with_capacity(NUM_BLOCKS);
        for block in 0..NUM_BLOCKS {
            let mut computed = Vec::new();
            let allowed = active.allowed(block);
            for &option in &allowed {
                let option = option as usize;
                if !self.mask.is_allowed(block, option) {
                    return Err(PluginError::invalid_input(format!(
                        "option {} of {} is active but outside this supernet's mask",
                        Operation::ALL[option].name(),
                        block_name(block)
                    )));
                }
                if Operation::ALL[option] != Operation::Zero {
                    let weight = mixing_weights.weight(block, option)?;
                    computed.push((option, weight));
                }
            }
            if allowed.is_empty() && !self.skeleton.layout.blocks[block].has_shortcut {
                return Err(PluginError::invalid_input(format!(
                    "the active mask leaves {} without an option, and it has no shortcut to pass its input on",
                    block_name(block)
                )));
            }
            mixing.push(computed);
        }
        Ok(mixing)
    }

    /// Names of the parameters owned by the options of one block. Not part of the plugin
    /// contract; tests use it.
    pub fn owned_parameters(&self, choice_point: u32) -> Result<Vec<String>, PluginError> {
        let prefix = block_prefix(Self::check_choice_point(choice_point)?);
        Ok(self.variables.parameter_names().filter(|name| is_under(name, &prefix)).map(str::to_string).collect())
    }
}

fn share_all(named: &[(String, Tensor)]) -> Vec<NamedTensor> {
    named.iter().map(|(name, tensor)| NamedTensor::share(name.as_str(), tensor)).collect()
}

impl SupernetPlugin for ProxylessSupernet {
    fn forward(&self, input: &Tensor, weights: &Tensor, active: &Mask, train: bool) -> Result<Tensor, PluginError> {
        let mixing = self.mixing(weights, active)?;
        Ok(self.skeleton.forward(input, train, |index, block, features| block.forward(features, &mixing[index], train))?)
    }

    fn parameters(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(share_all(&self.variables.parameters))
    }

    fn buffers(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(share_all(&self.variables.buffers))
    }

    /// GM-NAS's shared set on ProxylessNAS: every parameter outside the scored block: the
    /// stem, the fixed first block, the options of every other block (only the sampled one
    /// is in the graph, so only it gets a gradient), the feature mix and the classifier.
    fn shared_parameters(&self, choice_point: u32) -> Result<Vec<String>, PluginError> {
        let prefix = block_prefix(Self::check_choice_point(choice_point)?);
        Ok(self.variables.parameter_names().filter(|name| !is_under(name, &prefix)).map(str::to_string).collect())
    }
}
