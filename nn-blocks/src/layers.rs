//! Layers and blocks. Each holds `tch` tensors that share storage with its `VarStore`.

use tch::nn::{Init, Path};
use tch::{TchError, Tensor};

/// Batch norm's epsilon, as PyTorch's `BatchNorm2d` default.
pub const BATCH_NORM_EPS: f64 = 1e-5;
/// Batch norm's running-statistics momentum, as PyTorch's `BatchNorm2d` default.
pub const BATCH_NORM_MOMENTUM: f64 = 0.1;

/// How blocks fill their parameters when created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamInit {
    /// PyTorch's defaults: conv and linear weights and biases uniform in ±1/√fan_in, batch norm
    /// weight 1 and bias 0.
    PyTorchDefault,
    /// No random draws: conv and linear zero, batch norm weight 1 and bias 0. For counting
    /// parameters, or just before loading weights, without advancing libtorch's global generator
    /// (runs reseed it at fixed points and must replay exactly).
    Placeholder,
}

impl ParamInit {
    /// A weight or bias of a layer whose fan-in is `fan_in`.
    fn fan_in_uniform(self, fan_in: i64) -> Init {
        match self {
            ParamInit::PyTorchDefault => {
                let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
                Init::Uniform { lo: -bound, up: bound }
            }
            ParamInit::Placeholder => Init::Const(0.0),
        }
    }
}

/// The shape of a 2-d convolution (square kernel, equal stride, padding and dilation on both
/// axes; `groups` as PyTorch's, `in_channels` for a depthwise convolution).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    pub in_channels: i64,
    pub out_channels: i64,
    pub kernel_size: i64,
    pub stride: i64,
    pub padding: i64,
    pub dilation: i64,
    pub groups: i64,
    pub bias: bool,
}

impl ConvSpec {
    /// Stride 1, no padding, no dilation, one group, no bias; adjust with the builder methods.
    pub fn new(in_channels: i64, out_channels: i64, kernel_size: i64) -> Self {
        ConvSpec { in_channels, out_channels, kernel_size, stride: 1, padding: 0, dilation: 1, groups: 1, bias: false }
    }
    pub fn dilation(self, dilation: i64) -> Self {
        ConvSpec { dilation, ..self }
    }
    pub fn groups(self, groups: i64) -> Self {
        ConvSpec { groups, ..self }
    }
    pub fn stride(self, stride: i64) -> Self {
        ConvSpec { stride, ..self }
    }
    pub fn padding(self, padding: i64) -> Self {
        ConvSpec { padding, ..self }
    }
    pub fn bias(self, bias: bool) -> Self {
        ConvSpec { bias, ..self }
    }

    /// Side of the output for a square input of side `input`.
    pub fn output_size(&self, input: i64) -> i64 {
        (input + 2 * self.padding - self.dilation * (self.kernel_size - 1) - 1) / self.stride + 1
    }

    /// Input channels each output channel sees (`in_channels / groups`).
    pub fn group_in_channels(&self) -> i64 {
        self.in_channels / self.groups.max(1)
    }

    /// Multiply-accumulates for one square input of side `input` (bias adds not counted).
    pub fn macs(&self, input: i64) -> u64 {
        let side = self.output_size(input).max(0) as u64;
        side * side * (self.kernel_size * self.kernel_size * self.group_in_channels() * self.out_channels) as u64
    }

    /// Number of trainable values.
    pub fn parameter_count(&self) -> u64 {
        let weights = self.kernel_size * self.kernel_size * self.group_in_channels() * self.out_channels;
        (weights + if self.bias { self.out_channels } else { 0 }) as u64
    }
}

/// A 2-d convolution; parameters `weight` and, if `spec.bias`, `bias`.
#[derive(Debug)]
pub struct Conv2d {
    pub spec: ConvSpec,
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Conv2d {
    pub fn new(path: &Path, spec: ConvSpec, init: ParamInit) -> Result<Self, TchError> {
        let fan_in = spec.group_in_channels() * spec.kernel_size * spec.kernel_size;
        let shape = [spec.out_channels, spec.group_in_channels(), spec.kernel_size, spec.kernel_size];
        let weight = path.f_var("weight", &shape, init.fan_in_uniform(fan_in))?;
        let bias = if spec.bias { Some(path.f_var("bias", &[spec.out_channels], init.fan_in_uniform(fan_in))?) } else { None };
        Ok(Conv2d { spec, weight, bias })
    }

    pub fn forward(&self, input: &Tensor) -> Result<Tensor, TchError> {
        let s = self.spec;
        input.f_conv2d(&self.weight, self.bias.as_ref(), [s.stride, s.stride], [s.padding, s.padding], [s.dilation, s.dilation], s.groups)
    }
}

/// What a batch norm keeps: a learnt scale and shift (`affine`), running statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchNormSpec {
    pub affine: bool,
    pub track_running_stats: bool,
}

impl BatchNormSpec {
    /// Stand-alone networks, stems, heads, NB201's reduction blocks.
    pub const AFFINE: BatchNormSpec = BatchNormSpec { affine: true, track_running_stats: true };
    /// Search-cell ops of weight-sharing supernets (DARTS, NB201): no scale or shift, so that the
    /// mixing weights alone scale the op; running statistics kept for evaluation mode.
    pub const NON_AFFINE: BatchNormSpec = BatchNormSpec { affine: false, track_running_stats: true };
}

/// 2-d batch norm; parameters `weight`, `bias` (if affine), buffers `running_mean`,
/// `running_var` (if tracked).
#[derive(Debug)]
pub struct BatchNorm2d {
    pub spec: BatchNormSpec,
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
    pub running_mean: Option<Tensor>,
    pub running_var: Option<Tensor>,
    /// [`BATCH_NORM_EPS`] unless set with [`BatchNorm2d::with_numerics`].
    pub eps: f64,
    /// [`BATCH_NORM_MOMENTUM`] unless set with [`BatchNorm2d::with_numerics`].
    pub momentum: f64,
}

impl BatchNorm2d {
    pub fn new(path: &Path, channels: i64, spec: BatchNormSpec) -> Result<Self, TchError> {
        let (weight, bias) = if spec.affine {
            (Some(path.f_var("weight", &[channels], Init::Const(1.0))?), Some(path.f_var("bias", &[channels], Init::Const(0.0))?))
        } else {
            (None, None)
        };
        let (running_mean, running_var) = if spec.track_running_stats {
            (Some(path.f_zeros_no_train("running_mean", &[channels])?), Some(path.f_ones_no_train("running_var", &[channels])?))
        } else {
            (None, None)
        };
        Ok(BatchNorm2d { spec, weight, bias, running_mean, running_var, eps: BATCH_NORM_EPS, momentum: BATCH_NORM_MOMENTUM })
    }

    /// Another epsilon and running-statistics momentum than PyTorch's defaults (the mobile
    /// spaces: ProxylessNAS and OFA set eps 1e-3, momentum 0.1 on every batch norm).
    pub fn with_numerics(self, eps: f64, momentum: f64) -> Self {
        BatchNorm2d { eps, momentum, ..self }
    }

    /// Training mode normalises with the batch's statistics and updates the running ones;
    /// evaluation mode uses the running ones. Without running statistics both modes use the
    /// batch's (PyTorch's `track_running_stats=False`).
    pub fn forward(&self, input: &Tensor, train: bool) -> Result<Tensor, TchError> {
        let use_batch_stats = train || self.running_mean.is_none();
        input.f_batch_norm(
            self.weight.as_ref(),
            self.bias.as_ref(),
            self.running_mean.as_ref(),
            self.running_var.as_ref(),
            use_batch_stats,
            self.momentum,
            self.eps,
            true,
        )
    }
}

/// ReLU, convolution, batch norm: the conv op of NB201 and DARTS cells. Sub-paths `conv`, `bn`.
#[derive(Debug)]
pub struct ReluConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm2d,
}

impl ReluConvBn {
    /// The convolution as `conv` says, bias included (DARTS: never a bias).
    pub fn new(path: &Path, conv: ConvSpec, bn: BatchNormSpec, init: ParamInit) -> Result<Self, TchError> {
        Ok(ReluConvBn { conv: Conv2d::new(&(path / "conv"), conv, init)?, bn: BatchNorm2d::new(&(path / "bn"), conv.out_channels, bn)? })
    }

    /// NB201's rule: the convolution has a bias exactly when the batch norm has no affine shift
    /// (`bias = not affine` in NB201's `ReLUConvBN`); `conv.bias` is ignored.
    pub fn nb201(path: &Path, conv: ConvSpec, bn: BatchNormSpec, init: ParamInit) -> Result<Self, TchError> {
        Self::new(path, conv.bias(!bn.affine), bn, init)
    }

    pub fn forward(&self, input: &Tensor, train: bool) -> Result<Tensor, TchError> {
        self.forward_activated(&input.f_relu()?, train)
    }

    /// The block on an input that already went through the ReLU (cells share one ReLU between
    /// the convs reading the same node).
    pub fn forward_activated(&self, activated: &Tensor, train: bool) -> Result<Tensor, TchError> {
        self.bn.forward(&self.conv.forward(activated)?, train)
    }
}

/// NB201's ResNet basic block with stride 2, the reduction between stages:
/// `ReLU-conv3x3(stride 2)-BN, ReLU-conv3x3-BN` plus a shortcut `avgpool 2x2, conv1x1 (no bias)`.
/// Sub-paths `conv_a`, `conv_b`, `downsample`. (NB201 uses no other form of the block.)
#[derive(Debug)]
pub struct ResNetBasicBlock {
    pub conv_a: ReluConvBn,
    pub conv_b: ReluConvBn,
    pub downsample: Conv2d,
}

impl ResNetBasicBlock {
    pub fn new(path: &Path, in_channels: i64, out_channels: i64, bn: BatchNormSpec, init: ParamInit) -> Result<Self, TchError> {
        let conv_a = ReluConvBn::nb201(&(path / "conv_a"), ConvSpec::new(in_channels, out_channels, 3).stride(2).padding(1), bn, init)?;
        let conv_b = ReluConvBn::nb201(&(path / "conv_b"), ConvSpec::new(out_channels, out_channels, 3).padding(1), bn, init)?;
        let downsample = Conv2d::new(&(path / "downsample"), ConvSpec::new(in_channels, out_channels, 1), init)?;
        Ok(ResNetBasicBlock { conv_a, conv_b, downsample })
    }

    pub fn forward(&self, input: &Tensor, train: bool) -> Result<Tensor, TchError> {
        let main = self.conv_b.forward(&self.conv_a.forward(input, train)?, train)?;
        let pooled = input.f_avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>)?;
        main.f_add(&self.downsample.forward(&pooled)?)
    }

    /// Side of the output for a square input of side `input`, or `None` where the two paths
    /// disagree (odd sides: the strided conv rounds up, the 2x2 pooling down).
    pub fn output_size(&self, input: i64) -> Option<i64> {
        let main = self.conv_a.conv.spec.output_size(input);
        (main == input / 2).then_some(main)
    }

    /// Multiply-accumulates of its three convolutions for a square input of side `input`.
    pub fn macs(&self, input: i64) -> u64 {
        let halved = self.conv_a.conv.spec.output_size(input);
        self.conv_a.conv.spec.macs(input) + self.conv_b.conv.spec.macs(halved) + self.downsample.spec.macs(input / 2)
    }
}

/// A fully connected layer; parameters `weight` `[out, in]` and `bias` `[out]`.
#[derive(Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
    pub in_features: i64,
    pub out_features: i64,
}

impl Linear {
    pub fn new(path: &Path, in_features: i64, out_features: i64, init: ParamInit) -> Result<Self, TchError> {
        let weight = path.f_var("weight", &[out_features, in_features], init.fan_in_uniform(in_features))?;
        let bias = path.f_var("bias", &[out_features], init.fan_in_uniform(in_features))?;
        Ok(Linear { weight, bias, in_features, out_features })
    }

    pub fn forward(&self, input: &Tensor) -> Result<Tensor, TchError> {
        input.f_linear(&self.weight, Some(&self.bias))
    }

    /// Multiply-accumulates of one input row (bias adds not counted).
    pub fn macs(&self) -> u64 {
        (self.in_features * self.out_features) as u64
    }
}

/// 3x3 average pooling, stride 1, padding 1, padding not counted in the average (NB201's and
/// DARTS's `avg_pool_3x3`): the output keeps the input's shape.
pub fn avg_pool_3x3(input: &Tensor) -> Result<Tensor, TchError> {
    crate::pooling::avg_pool_3x3_excluding_padding(input, 1)
}

/// Mean over the spatial axes: `[B, C, H, W]` -> `[B, C]`.
pub fn global_avg_pool(input: &Tensor) -> Result<Tensor, TchError> {
    input.f_mean_dim([2i64, 3].as_slice(), false, None::<tch::Kind>)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::VarStore;
    use tch::{Device, Kind};

    #[test]
    fn conv_spec_counts_shapes_and_work() {
        let strided = ConvSpec::new(16, 32, 3).stride(2).padding(1);
        assert_eq!(strided.output_size(32), 16);
        assert_eq!(strided.macs(32), 16 * 16 * 9 * 16 * 32);
        assert_eq!(strided.parameter_count(), 9 * 16 * 32);
        assert_eq!(strided.bias(true).parameter_count(), 9 * 16 * 32 + 32);
        assert_eq!(ConvSpec::new(3, 8, 1).output_size(7), 7);
    }

    #[test]
    fn avg_pool_excludes_padding_from_the_average() {
        let ones = Tensor::ones([1, 1, 3, 3], (Kind::Float, Device::Cpu));
        let pooled = avg_pool_3x3(&ones).unwrap();
        // With padding counted, the corner would be 4/9.
        assert_eq!(pooled.size(), vec![1, 1, 3, 3]);
        assert!((pooled.double_value(&[0, 0, 0, 0]) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn batch_norm_updates_running_stats_in_training_only() {
        let vs = VarStore::new(Device::Cpu);
        let bn = BatchNorm2d::new(&vs.root(), 2, BatchNormSpec::NON_AFFINE).unwrap();
        assert!(bn.weight.is_none());
        let input = Tensor::arange(16, (Kind::Float, Device::Cpu)).view([2, 2, 2, 2]);
        let _ = bn.forward(&input, false).unwrap();
        assert_eq!(bn.running_mean.as_ref().unwrap().double_value(&[0]), 0.0);
        let _ = bn.forward(&input, true).unwrap();
        // Channel 0 holds 0,1,2,3,8,9,10,11: mean 5.5, momentum 0.1.
        assert!((bn.running_mean.as_ref().unwrap().double_value(&[0]) - 0.55).abs() < 1e-6);
    }

    #[test]
    fn resnet_block_halves_and_names_its_parameters() {
        let vs = VarStore::new(Device::Cpu);
        let block = ResNetBasicBlock::new(&(vs.root() / "reduce"), 4, 8, BatchNormSpec::AFFINE, ParamInit::PyTorchDefault).unwrap();
        let output = block.forward(&Tensor::randn([2, 4, 8, 8], (Kind::Float, Device::Cpu)), true).unwrap();
        assert_eq!(output.size(), vec![2, 8, 4, 4]);
        assert_eq!(block.output_size(8), Some(4));
        assert_eq!(block.output_size(7), None);
        let names: Vec<String> = crate::NamedVariables::of(&vs).parameters.into_iter().map(|(name, _)| name).collect();
        assert_eq!(
            names,
            [
                "reduce.conv_a.bn.bias",
                "reduce.conv_a.bn.weight",
                "reduce.conv_a.conv.weight",
                "reduce.conv_b.bn.bias",
                "reduce.conv_b.bn.weight",
                "reduce.conv_b.conv.weight",
                "reduce.downsample.weight",
            ]
        );
    }

    #[test]
    fn shape_errors_come_back_as_errors() {
        let vs = VarStore::new(Device::Cpu);
        let conv = Conv2d::new(&vs.root(), ConvSpec::new(3, 4, 3), ParamInit::PyTorchDefault).unwrap();
        assert!(conv.forward(&Tensor::zeros([1, 5, 8, 8], (Kind::Float, Device::Cpu))).is_err());
    }
}
