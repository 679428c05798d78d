//! The layers every OFA network has (stem, fixed first block, head), the inverted-residual
//! block's forward pass on given (possibly sliced) tensors, and OFA's kernel transform.
//!
//! Tensor names follow `ofa`'s modules, so that state dicts move between splitnas and the
//! official code by name: `first_conv.{conv,bn}`, `blocks.0.conv.{depth_conv,point_linear}.
//! {conv,bn}`, `final_expand_layer.{conv,bn}`, `feature_mix_layer.conv`, `classifier.linear`.

use splitnas_nn_blocks::{global_avg_pool, BatchNorm2d, BatchNormNumerics, Conv2d, ConvBn, ConvSpec, Linear, ParamInit};
use tch::nn::Path;
use tch::{TchError, Tensor};

use crate::layout::{Activation, NetworkLayout};

/// OFA's batch norms: `bn_param=(0.1, 1e-5)`.
pub const NUMERICS: BatchNormNumerics = BatchNormNumerics { eps: 1e-5, momentum: 0.1 };

/// `x * relu6(x + 3) / 6` (OFA's `Hswish`).
pub fn hard_swish(input: &Tensor) -> Result<Tensor, TchError> {
    input.f_mul(&(input + 3.0).f_relu6()?)?.f_div_scalar(6.0)
}

/// `relu6(x + 3) / 6` (OFA's `Hsigmoid`).
pub fn hard_sigmoid(input: &Tensor) -> Result<Tensor, TchError> {
    (input + 3.0).f_relu6()?.f_div_scalar(6.0)
}

pub fn activate(input: &Tensor, activation: Activation) -> Result<Tensor, TchError> {
    match activation {
        Activation::Relu => input.f_relu(),
        Activation::HardSwish => hard_swish(input),
    }
}

/// Batch norm over the first `channels` of `bn`'s features (OFA's `DynamicBatchNorm2d`): the
/// scale, shift and running statistics are prefixes, and a training pass updates the running
/// statistics' prefix in place.
pub fn batch_norm_prefix(bn: &BatchNorm2d, input: &Tensor, channels: i64, train: bool) -> Result<Tensor, TchError> {
    let prefix =
        |tensor: &Option<Tensor>| -> Result<Option<Tensor>, TchError> { tensor.as_ref().map(|tensor| tensor.f_narrow(0, 0, channels)).transpose() };
    let (weight, bias) = (prefix(&bn.weight)?, prefix(&bn.bias)?);
    let (mean, var) = (prefix(&bn.running_mean)?, prefix(&bn.running_var)?);
    let use_batch_stats = train || mean.is_none();
    input.f_batch_norm(weight.as_ref(), bias.as_ref(), mean.as_ref(), var.as_ref(), use_batch_stats, bn.momentum, bn.eps, true)
}

/// OFA's kernel transform (`DynamicSeparableConv2d.get_active_filter`, transform mode 1): the
/// `kernel_size`x`kernel_size` depthwise kernel from the stored 7x7 `weight` (`[C, 1, 7, 7]`).
/// 5x5 = the centre 5x5 of the 7x7, flattened per channel, times `matrix_7to5`ᵀ; 3x3 = the
/// centre 3x3 of that transformed 5x5, times `matrix_5to3`ᵀ.
pub fn transformed_kernel(weight: &Tensor, kernel_size: i64, matrix_7to5: &Tensor, matrix_5to3: &Tensor) -> Result<Tensor, TchError> {
    let channels = weight.size()[0];
    let shrink = |source: &Tensor, from: i64, to: i64, matrix: &Tensor| -> Result<Tensor, TchError> {
        let start = (from - to) / 2;
        let centre = source.f_narrow(2, start, to)?.f_narrow(3, start, to)?.f_contiguous()?;
        centre.f_view([channels, to * to])?.f_linear::<Tensor>(matrix, None)?.f_view([channels, 1, to, to])
    };
    match kernel_size {
        7 => Ok(weight.shallow_clone()),
        5 => shrink(weight, 7, 5, matrix_7to5),
        3 => shrink(&shrink(weight, 7, 5, matrix_7to5)?, 5, 3, matrix_5to3),
        other => Err(TchError::Kind(format!("ofa has kernel sizes 3, 5 and 7, not {other}"))),
    }
}

/// Squeeze-excitation's two 1x1 convolutions with biases (`se.fc.reduce`, `se.fc.expand`).
pub struct SqueezeExcitation {
    pub reduce_weight: Tensor,
    pub reduce_bias: Tensor,
    pub expand_weight: Tensor,
    pub expand_bias: Tensor,
}

impl SqueezeExcitation {
    /// Under `path` = `...depth_conv.se.fc`: `channels` to `hidden` and back.
    pub fn new(path: &Path, channels: i64, hidden: i64, init: ParamInit) -> Result<Self, TchError> {
        let with_bias = |name: &str, spec: ConvSpec| -> Result<(Tensor, Tensor), TchError> {
            let conv = Conv2d::new(&(path / name), spec.bias(true), init)?;
            let bias = conv.bias.ok_or_else(|| TchError::Kind(format!("squeeze-excitation {name} was built without a bias")))?;
            Ok((conv.weight, bias))
        };
        let (reduce_weight, reduce_bias) = with_bias("reduce", ConvSpec::new(channels, hidden, 1))?;
        let (expand_weight, expand_bias) = with_bias("expand", ConvSpec::new(hidden, channels, 1))?;
        Ok(SqueezeExcitation { reduce_weight, reduce_bias, expand_weight, expand_bias })
    }

    /// The first `channels` channels and `hidden` hidden units (the whole when they are the
    /// stored sizes).
    pub fn prefix(&self, channels: i64, hidden: i64) -> Result<[Tensor; 4], TchError> {
        Ok([
            self.reduce_weight.f_narrow(0, 0, hidden)?.f_narrow(1, 0, channels)?,
            self.reduce_bias.f_narrow(0, 0, hidden)?,
            self.expand_weight.f_narrow(0, 0, channels)?.f_narrow(1, 0, hidden)?,
            self.expand_bias.f_narrow(0, 0, channels)?,
        ])
    }
}

/// The tensors of one inverted-residual block as one forward pass uses them: already sliced
/// to the active widths (and the depthwise kernel transformed) in the supernet, whole in an
/// extracted network. A batch norm is given with the channels it normalises.
pub struct BlockTensors<'a> {
    pub expand_weight: Tensor,
    pub expand_bn: (&'a BatchNorm2d, i64),
    pub depthwise_weight: Tensor,
    pub depthwise_bn: (&'a BatchNorm2d, i64),
    /// Reduce weight and bias, expand weight and bias.
    pub squeeze_excitation: Option<[Tensor; 4]>,
    pub project_weight: Tensor,
    pub project_bn: (&'a BatchNorm2d, i64),
}

/// How a block runs: its stride, activation and shortcut.
#[derive(Clone, Copy, Debug)]
pub struct BlockRun {
    pub stride: i64,
    pub activation: Activation,
    pub has_shortcut: bool,
}

/// OFA's `MBConvLayer` (and `DynamicMBConvLayer`): 1x1 expand, BN, activation; kxk depthwise
/// with the stride, BN, activation; squeeze-excitation (mean, 1x1 with bias, ReLU, 1x1 with
/// bias, hard sigmoid, scale); 1x1 project, BN; plus the identity shortcut where the block
/// has one.
pub fn run_block(input: &Tensor, tensors: &BlockTensors, run: BlockRun, train: bool) -> Result<Tensor, TchError> {
    let bn = |features: &Tensor, (bn, channels): (&BatchNorm2d, i64)| batch_norm_prefix(bn, features, channels, train);
    let expanded =
        activate(&bn(&input.f_conv2d::<Tensor>(&tensors.expand_weight, None, [1, 1], [0, 0], [1, 1], 1)?, tensors.expand_bn)?, run.activation)?;
    let kernel_size = tensors.depthwise_weight.size()[2];
    let middle = tensors.depthwise_weight.size()[0];
    let padding = kernel_size / 2;
    let depthwise = expanded.f_conv2d::<Tensor>(&tensors.depthwise_weight, None, [run.stride, run.stride], [padding, padding], [1, 1], middle)?;
    let mut features = activate(&bn(&depthwise, tensors.depthwise_bn)?, run.activation)?;
    if let Some([reduce_weight, reduce_bias, expand_weight, expand_bias]) = &tensors.squeeze_excitation {
        let pooled = features.f_mean_dim(&[2i64, 3][..], true, None)?;
        let hidden = pooled.f_conv2d(reduce_weight, Some(reduce_bias), [1, 1], [0, 0], [1, 1], 1)?.f_relu()?;
        let scale = hard_sigmoid(&hidden.f_conv2d(expand_weight, Some(expand_bias), [1, 1], [0, 0], [1, 1], 1)?)?;
        features = features.f_mul(&scale)?;
    }
    let output = bn(&features.f_conv2d::<Tensor>(&tensors.project_weight, None, [1, 1], [0, 0], [1, 1], 1)?, tensors.project_bn)?;
    if run.has_shortcut {
        output.f_add(input)
    } else {
        Ok(output)
    }
}

/// The layers around the elastic blocks: stem, fixed first block, final expand, feature mix,
/// classifier.
pub struct Trunk {
    pub stem: ConvBn,
    /// The fixed first block (expand ratio 1, depthwise 3x3, ReLU, identity shortcut).
    pub first_depthwise: ConvBn,
    pub first_project: ConvBn,
    pub final_expand: ConvBn,
    pub feature_mix: Conv2d,
    pub classifier: Linear,
    pub dropout: f64,
}

impl Trunk {
    pub fn new(root: &Path, layout: &NetworkLayout, dropout: f64, init: ParamInit) -> Result<Self, TchError> {
        let stem_width = layout.stem_channels;
        let stem = ConvBn::new(&(root / "first_conv"), ConvSpec::new(layout.input_channels, stem_width, 3).stride(2).padding(1), NUMERICS, init)?;
        let first = root / "blocks" / "0" / "conv";
        let first_depthwise =
            ConvBn::new(&(&first / "depth_conv"), ConvSpec::new(stem_width, stem_width, 3).padding(1).groups(stem_width), NUMERICS, init)?;
        let first_project = ConvBn::new(&(&first / "point_linear"), ConvSpec::new(stem_width, stem_width, 1), NUMERICS, init)?;
        let final_expand =
            ConvBn::new(&(root / "final_expand_layer"), ConvSpec::new(layout.last_channels(), layout.final_expand_channels, 1), NUMERICS, init)?;
        let feature_mix =
            Conv2d::new(&(root / "feature_mix_layer" / "conv"), ConvSpec::new(layout.final_expand_channels, layout.feature_mix_channels, 1), init)?;
        let classifier = Linear::new(&(root / "classifier" / "linear"), layout.feature_mix_channels, layout.classes, init)?;
        Ok(Trunk { stem, first_depthwise, first_project, final_expand, feature_mix, classifier, dropout })
    }

    /// Stem and first block, whose identity shortcut always applies: both are the stem's width.
    pub fn head_in(&self, input: &Tensor, train: bool) -> Result<Tensor, TchError> {
        let stem = hard_swish(&self.stem.forward(input, train)?)?;
        self.first_project.forward(&self.first_depthwise.forward(&stem, train)?.f_relu()?, train)?.f_add(&stem)
    }

    /// Final expand, pooling, feature mix, dropout, classifier.
    pub fn head_out(&self, features: &Tensor, train: bool) -> Result<Tensor, TchError> {
        let expanded = hard_swish(&self.final_expand.forward(features, train)?)?;
        let pooled = global_avg_pool(&expanded)?;
        let side = pooled.size()[1];
        let mixed = hard_swish(&self.feature_mix.forward(&pooled.f_view([-1, side, 1, 1])?)?)?;
        let mut flat = mixed.f_flatten(1, -1)?;
        if self.dropout > 0.0 {
            flat = flat.f_dropout(self.dropout, train)?;
        }
        self.classifier.forward(&flat)
    }
}
