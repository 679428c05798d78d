//! The OFA supernet: one weight-shared network (`OFAMobileNetV3` with kernels {3,5,7},
//! expand ratios {3,4,6}, depths {2,3,4}). Every elastic block stores its widest tensors once;
//! a subnet uses the 7x7 depthwise weight through OFA's kernel transforms, channel prefixes of
//! every middle tensor, and batch-norm prefixes.
//!
//! The supernet is single-path: each choice point runs the active option with the largest
//! weight (the first on ties). Weights select, they do not mix, and get no gradient. Every
//! tensor exists whatever the mask, so sub-supernets share names and inherit by name.
//!
//! Names are `ofa`'s (`blocks.{1..=20}.conv.inverted_bottleneck.conv.conv.weight`,
//! `.depth_conv.conv.7to5_matrix`, `.depth_conv.se.fc.reduce.bias`, ...): an official
//! `OFAMobileNetV3` state dict loads as is.

use splitnas_nn_blocks::{is_under, BatchNorm2d, BatchNormSpec, Conv2d, ConvSpec, NamedVariables, ParamInit};
use splitnas_plugin_api::author::SupernetPlugin;
use splitnas_plugin_api::{Device, Mask, NamedTensor, ParameterPermutation, PluginError};
use tch::nn::{Init, Path, VarStore};
use tch::{Kind, TchError, Tensor};

use crate::choices::{validate_mask, ChoicePoint, Subnet, BLOCKS_PER_STAGE, DEPTHS, EXPAND_RATIOS, NUM_CHOICE_POINTS, NUM_OPTIONS};
use crate::layers::{run_block, transformed_kernel, BlockRun, BlockTensors, SqueezeExcitation, Trunk, NUMERICS};
use crate::layout::{BlockLayout, NetworkLayout};

/// `blocks.{block + 1}`: the path of elastic block `block` (0-based).
pub fn block_prefix(block: usize) -> String {
    format!("blocks.{}", block + 1)
}

/// One elastic block's widest tensors (`DynamicMBConvLayer`).
pub struct ElasticBlock {
    pub layout: BlockLayout,
    pub expand: Conv2d,
    pub expand_bn: BatchNorm2d,
    /// `[max middle, 1, 7, 7]`.
    pub depthwise: Conv2d,
    pub matrix_7to5: Tensor,
    pub matrix_5to3: Tensor,
    pub depthwise_bn: BatchNorm2d,
    pub squeeze_excitation: Option<SqueezeExcitation>,
    pub project: Conv2d,
    pub project_bn: BatchNorm2d,
}

fn batch_norm(path: &Path, channels: i64) -> Result<BatchNorm2d, TchError> {
    Ok(BatchNorm2d::new(path, channels, BatchNormSpec::AFFINE)?.with_numerics(NUMERICS.eps, NUMERICS.momentum))
}

impl ElasticBlock {
    pub fn new(path: &Path, layout: BlockLayout, init: ParamInit) -> Result<Self, TchError> {
        let middle = layout.max_middle_channels();
        let expand_path = path / "inverted_bottleneck";
        let expand = Conv2d::new(&(&expand_path / "conv" / "conv"), ConvSpec::new(layout.in_channels, middle, 1), init)?;
        let expand_bn = batch_norm(&(&expand_path / "bn" / "bn"), middle)?;
        let depthwise_path = path / "depth_conv";
        let conv_path = &depthwise_path / "conv";
        let depthwise = Conv2d::new(&(&conv_path / "conv"), ConvSpec::new(middle, middle, 7).groups(middle), init)?;
        // OFA registers the transform matrices as identities.
        let identity = |name: &str, size: i64| -> Result<Tensor, TchError> {
            let mut matrix = conv_path.f_var(name, &[size, size], Init::Const(0.0))?;
            tch::no_grad(|| matrix.f_copy_(&Tensor::eye(size, (Kind::Float, matrix.device()))))?;
            Ok(matrix)
        };
        let matrix_7to5 = identity("7to5_matrix", 25)?;
        let matrix_5to3 = identity("5to3_matrix", 9)?;
        let depthwise_bn = batch_norm(&(&depthwise_path / "bn" / "bn"), middle)?;
        let squeeze_excitation = if layout.squeeze_excitation {
            Some(SqueezeExcitation::new(&(&depthwise_path / "se" / "fc"), middle, BlockLayout::se_channels(middle), init)?)
        } else {
            None
        };
        let project_path = path / "point_linear";
        let project = Conv2d::new(&(&project_path / "conv" / "conv"), ConvSpec::new(middle, layout.out_channels, 1), init)?;
        let project_bn = batch_norm(&(&project_path / "bn" / "bn"), layout.out_channels)?;
        Ok(ElasticBlock { layout, expand, expand_bn, depthwise, matrix_7to5, matrix_5to3, depthwise_bn, squeeze_excitation, project, project_bn })
    }

    /// The tensors of the subnet block (`kernel_size`, `expand_ratio`), as OFA's
    /// `get_active_subnet` extracts them: prefixes of the middle channels, the transformed
    /// kernel, squeeze-excitation prefixes. Differentiable views of the stored tensors.
    pub fn active(&self, kernel_size: i64, expand_ratio: i64) -> Result<BlockTensors<'_>, TchError> {
        let middle = self.layout.middle_channels(expand_ratio);
        let depthwise = transformed_kernel(&self.depthwise.weight.f_narrow(0, 0, middle)?, kernel_size, &self.matrix_7to5, &self.matrix_5to3)?;
        let squeeze_excitation = self.squeeze_excitation.as_ref().map(|se| se.prefix(middle, BlockLayout::se_channels(middle))).transpose()?;
        Ok(BlockTensors {
            expand_weight: self.expand.weight.f_narrow(0, 0, middle)?,
            expand_bn: (&self.expand_bn, middle),
            depthwise_weight: depthwise,
            depthwise_bn: (&self.depthwise_bn, middle),
            squeeze_excitation,
            project_weight: self.project.weight.f_narrow(1, 0, middle)?,
            project_bn: (&self.project_bn, self.layout.out_channels),
        })
    }

    pub fn run(&self) -> BlockRun {
        BlockRun { stride: self.layout.stride, activation: self.layout.activation, has_shortcut: self.layout.has_shortcut }
    }
}

pub struct OfaSupernet {
    pub trunk: Trunk,
    pub blocks: Vec<ElasticBlock>,
    variables: NamedVariables,
    mask: Mask,
    // Owns the tensors' registry; the layers and `variables` hold handles sharing storage.
    _var_store: VarStore,
}

impl OfaSupernet {
    /// `mask` must already be valid (see `choices::validate_space_mask`).
    pub fn new(layout: &NetworkLayout, dropout: f64, mask: &Mask, device: Device) -> Result<Self, PluginError> {
        let var_store = VarStore::new(device.to_tch());
        let root = var_store.root();
        let init = ParamInit::PyTorchDefault;
        let trunk = Trunk::new(&root, layout, dropout, init)?;
        let blocks = layout
            .blocks
            .iter()
            .enumerate()
            .map(|(index, &block)| ElasticBlock::new(&(&root / "blocks" / (index + 1).to_string() / "conv"), block, init))
            .collect::<Result<Vec<_>, _>>()?;
        let variables = NamedVariables::of(&var_store);
        Ok(OfaSupernet { trunk, blocks, variables, mask: mask.clone(), _var_store: var_store })
    }

    /// The subnet the weights select within `active`: per choice point, the active option
    /// with the largest weight.
    pub fn selected_subnet(&self, weights: &Tensor, active: &Mask) -> Result<Subnet, PluginError> {
        if weights.size() != [NUM_CHOICE_POINTS as i64, NUM_OPTIONS as i64] {
            return Err(PluginError::invalid_input(format!(
                "weights must be [{NUM_CHOICE_POINTS}, {NUM_OPTIONS}] (choice points x options), got {:?}",
                weights.size()
            )));
        }
        validate_mask(active, "the active mask")?;
        let values = Vec::<f64>::try_from(weights.f_detach()?.f_to_kind(Kind::Double)?.f_to_device(tch::Device::Cpu)?.f_contiguous()?.f_view([-1])?)?;
        let mut choices = vec![None; NUM_CHOICE_POINTS];
        for point in crate::choices::choice_points() {
            let index = point.index();
            let mut best: Option<(usize, f64)> = None;
            for option in active.allowed(index) {
                let option = option as usize;
                if !self.mask.is_allowed(index, option) {
                    return Err(PluginError::invalid_input(format!(
                        "option {} of {} is active but outside this supernet's mask",
                        point.values()[option],
                        point.name()
                    )));
                }
                let value = values[index * NUM_OPTIONS + option];
                if best.is_none_or(|(_, best_value)| value > best_value) {
                    best = Some((option, value));
                }
            }
            choices[index] = best.map(|(option, _)| option);
        }
        let value_of = |point: ChoicePoint| choices[point.index()].map(|option| point.values()[option]);
        let depths: Vec<i64> = (0..crate::choices::NUM_STAGES)
            .map(|stage| {
                let point = ChoicePoint::Depth { stage };
                value_of(point).ok_or_else(|| PluginError::invalid_input(format!("the active mask leaves {} without an option", point.name())))
            })
            .collect::<Result<_, _>>()?;
        let mut kernel_sizes = Vec::with_capacity(self.blocks.len());
        let mut expand_ratios = Vec::with_capacity(self.blocks.len());
        for block in 0..self.blocks.len() {
            let kept = (block % BLOCKS_PER_STAGE) < depths[block / BLOCKS_PER_STAGE] as usize;
            for (point, values) in [(ChoicePoint::Kernel { block }, &mut kernel_sizes), (ChoicePoint::Expand { block }, &mut expand_ratios)] {
                match value_of(point) {
                    Some(value) => values.push(value),
                    // A dropped block's choices do not matter.
                    None if !kept => values.push(point.values()[0]),
                    None => return Err(PluginError::invalid_input(format!("the active mask leaves {} without an option", point.name()))),
                }
            }
        }
        Ok(Subnet { kernel_sizes, expand_ratios, depths })
    }

    /// Logits of one subnet.
    pub fn forward_subnet(&self, input: &Tensor, subnet: &Subnet, train: bool) -> Result<Tensor, TchError> {
        let mut features = self.trunk.head_in(input, train)?;
        for (index, block) in self.blocks.iter().enumerate() {
            if subnet.keeps_block(index) {
                let tensors = block.active(subnet.kernel_sizes[index], subnet.expand_ratios[index])?;
                features = run_block(&features, &tensors, block.run(), train)?;
            }
        }
        self.trunk.head_out(&features, train)
    }

    fn check_choice_point(choice_point: u32) -> Result<ChoicePoint, PluginError> {
        ChoicePoint::from_index(choice_point as usize).ok_or_else(|| {
            PluginError::invalid_input(format!(
                "choice point {choice_point} does not exist: ofa has {NUM_CHOICE_POINTS} (0..={})",
                NUM_CHOICE_POINTS - 1
            ))
        })
    }

    /// The blocks whose tensors a choice point decides on: its block (kernel, expand), or the
    /// blocks a stage's depth may drop (positions from the smallest depth on).
    pub fn blocks_of(point: ChoicePoint) -> Vec<usize> {
        match point.block() {
            Some(block) => vec![block],
            None => {
                let ChoicePoint::Depth { stage } = point else { unreachable!("only depths have no block") };
                (DEPTHS[0] as usize..BLOCKS_PER_STAGE).map(|position| stage * BLOCKS_PER_STAGE + position).collect()
            }
        }
    }
}

/// What [`OfaSupernet::reorganize`] is asked: OFA's `re_organize_middle_weights`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReorganizeRequest {
    /// 0: sort every middle channel by importance; k > 0: keep the channels of the k + 1
    /// widest expand ratios' prefixes nested (each width's channels sorted within its band).
    expand_ratio_stage: usize,
}

impl ElasticBlock {
    /// OFA's `DynamicMBConvLayer.re_organize_middle_weights`: middle channels sorted by the L1
    /// norm of the projection's weights (descending), squeeze-excitation's hidden units by
    /// the L1 norm of its expand weights. Reorders every middle tensor in place; returns the
    /// parameters' permutations, named under `prefix`.
    fn reorganize(&self, prefix: &str, expand_ratio_stage: usize) -> Result<Vec<ParameterPermutation>, TchError> {
        let importance = self.project.weight.f_abs()?.f_sum_dim_intlist(&[0i64, 2, 3][..], false, Kind::Float)?;
        if expand_ratio_stage > 0 {
            // The widths of the ratios, widest first; bands beyond each width sink below it.
            let widths: Vec<i64> = EXPAND_RATIOS.iter().rev().map(|&ratio| self.layout.middle_channels(ratio)).collect();
            let mut right = importance.size()[0];
            let mut base = -(widths.len() as f64) * 1e5;
            for &left in widths.iter().take(expand_ratio_stage + 1) {
                let _ = importance.f_narrow(0, left, right - left)?.f_add_scalar_(base)?;
                base += 1e5;
                right = left;
            }
        }
        let (_, order) = importance.f_sort(0, true)?;
        let mut moved = Vec::new();
        let mut reorder = |name: &str, tensor: &Tensor, dim: i64, index: &Tensor, parameter: bool| -> Result<(), TchError> {
            let reordered = tensor.f_index_select(dim, index)?;
            tensor.shallow_clone().f_copy_(&reordered)?;
            if parameter {
                moved.push(ParameterPermutation {
                    parameter: format!("{prefix}.{name}").into(),
                    dim: dim as u32,
                    index: Vec::<i64>::try_from(index)?.into(),
                });
            }
            Ok(())
        };
        tch::no_grad(|| -> Result<(), TchError> {
            for (path, bn) in [("depth_conv.bn.bn", &self.depthwise_bn), ("inverted_bottleneck.bn.bn", &self.expand_bn)] {
                let statistics = [
                    ("weight", &bn.weight, true),
                    ("bias", &bn.bias, true),
                    ("running_mean", &bn.running_mean, false),
                    ("running_var", &bn.running_var, false),
                ];
                for (name, tensor, parameter) in statistics {
                    if let Some(tensor) = tensor {
                        reorder(&format!("{path}.{name}"), tensor, 0, &order, parameter)?;
                    }
                }
            }
            reorder("point_linear.conv.conv.weight", &self.project.weight, 1, &order, true)?;
            reorder("depth_conv.conv.conv.weight", &self.depthwise.weight, 0, &order, true)?;
            reorder("inverted_bottleneck.conv.conv.weight", &self.expand.weight, 0, &order, true)?;
            if let Some(se) = &self.squeeze_excitation {
                reorder("depth_conv.se.fc.expand.weight", &se.expand_weight, 0, &order, true)?;
                reorder("depth_conv.se.fc.expand.bias", &se.expand_bias, 0, &order, true)?;
                reorder("depth_conv.se.fc.reduce.weight", &se.reduce_weight, 1, &order, true)?;
                let hidden_importance = se.expand_weight.f_abs()?.f_sum_dim_intlist(&[0i64, 2, 3][..], false, Kind::Float)?;
                let (_, hidden_order) = hidden_importance.f_sort(0, true)?;
                reorder("depth_conv.se.fc.expand.weight", &se.expand_weight, 1, &hidden_order, true)?;
                reorder("depth_conv.se.fc.reduce.weight", &se.reduce_weight, 0, &hidden_order, true)?;
                reorder("depth_conv.se.fc.reduce.bias", &se.reduce_bias, 0, &hidden_order, true)?;
            }
            Ok(())
        })?;
        Ok(moved)
    }
}

fn share_all(named: &[(String, Tensor)]) -> Vec<NamedTensor> {
    named.iter().map(|(name, tensor)| NamedTensor::share(name.as_str(), tensor)).collect()
}

impl OfaSupernet {
    /// Copies `tensors` (parameters and buffers by the supernet's names, e.g. a node
    /// checkpoint's) into this supernet; every tensor of the supernet must be given, at its shape.
    pub fn load_named(&self, tensors: &[(String, Tensor)]) -> Result<(), PluginError> {
        let given: std::collections::HashMap<&str, &Tensor> = tensors.iter().map(|(name, tensor)| (name.as_str(), tensor)).collect();
        tch::no_grad(|| {
            for (name, target) in self.variables.parameters.iter().chain(&self.variables.buffers) {
                let source = given.get(name.as_str()).ok_or_else(|| {
                    PluginError::invalid_input(format!("ofa: the supernet's tensor `{name}` is not among the {} given", tensors.len()))
                })?;
                if source.size() != target.size() {
                    return Err(PluginError::invalid_input(format!(
                        "ofa: the supernet's tensor `{name}` is {:?}, the given one {:?} (another width or class count?)",
                        target.size(),
                        source.size()
                    )));
                }
                target.shallow_clone().f_copy_(source)?;
            }
            Ok(())
        })
    }
}

impl SupernetPlugin for OfaSupernet {
    fn forward(&self, input: &Tensor, weights: &Tensor, active: &Mask, train: bool) -> Result<Tensor, PluginError> {
        let subnet = self.selected_subnet(weights, active)?;
        Ok(self.forward_subnet(input, &subnet, train)?)
    }

    fn parameters(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(share_all(&self.variables.parameters))
    }

    fn buffers(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(share_all(&self.variables.buffers))
    }

    /// GM-NAS's shared set on OFA: every parameter except the scored block's (its expand,
    /// depthwise weight and transform matrices, squeeze-excitation, projection, batch norms):
    /// the stem, the first block, every other block, the final expand, the feature mix and
    /// the classifier. For a depth, the blocks the depth may drop are left out.
    /// OFA's channel re-sorting at the start of an expand phase (`{"expand_ratio_stage": k}`),
    /// block by block. The largest subnet computes the same function afterwards.
    fn reorganize(&self, request: &str) -> Result<Vec<ParameterPermutation>, PluginError> {
        let ReorganizeRequest { expand_ratio_stage } = serde_json::from_str(request).map_err(|error| {
            PluginError::invalid_input(format!("ofa: reorganize expects {{\"expand_ratio_stage\": 0, 1 or 2}}, got {request}: {error}"))
        })?;
        if expand_ratio_stage >= EXPAND_RATIOS.len() {
            return Err(PluginError::invalid_input(format!(
                "ofa: expand_ratio_stage must be below {}, got {expand_ratio_stage}",
                EXPAND_RATIOS.len()
            )));
        }
        let mut moved = Vec::new();
        for (index, block) in self.blocks.iter().enumerate() {
            moved.extend(block.reorganize(&format!("{}.conv", block_prefix(index)), expand_ratio_stage)?);
        }
        Ok(moved)
    }

    fn shared_parameters(&self, choice_point: u32) -> Result<Vec<String>, PluginError> {
        let prefixes: Vec<String> = Self::blocks_of(Self::check_choice_point(choice_point)?).into_iter().map(block_prefix).collect();
        Ok(self.variables.parameter_names().filter(|name| !prefixes.iter().any(|prefix| is_under(name, prefix))).map(str::to_string).collect())
    }
}
