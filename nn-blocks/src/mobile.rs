//! The mobile spaces' blocks (ProxylessNAS, MobileNetV2, OFA): convolution + batch norm
//! (+ ReLU6) layers and the inverted-residual MBConv, as MIT Han Lab's `ofa` package builds
//! them (`ofa.utils.layers.ConvLayer`, `MBConvLayer`): every convolution without bias, padding
//! `k // 2`, the stride on the depthwise convolution, batch norm after every convolution.

use tch::nn::Path;
use tch::{TchError, Tensor};

use crate::layers::{BatchNorm2d, BatchNormSpec, Conv2d, ConvSpec, ParamInit};

/// Batch norm epsilon and momentum of the mobile spaces (`set_bn_param(momentum=0.1, eps=1e-3)`
/// in ProxylessNAS and OFA).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormNumerics {
    pub eps: f64,
    pub momentum: f64,
}

impl BatchNormNumerics {
    /// ProxylessNAS's and OFA's: eps 1e-3, momentum 0.1.
    pub const MOBILE: BatchNormNumerics = BatchNormNumerics { eps: 1e-3, momentum: 0.1 };
}

/// ReLU6 as PyTorch's `nn.ReLU6` (`hardtanh(0, 6)`: no gradient at exactly 0 or 6).
pub fn relu6(input: &Tensor) -> Result<Tensor, TchError> {
    input.f_relu6()
}

/// `make_divisible(v, divisor)` of the mobile networks' code (from TensorFlow's MobileNet):
/// the nearest multiple of `divisor`, at least `divisor`, plus one `divisor` where rounding
/// lost more than 10 %.
pub fn make_divisible(value: f64, divisor: i64) -> i64 {
    let divisor_f = divisor as f64;
    let mut rounded = (((value + divisor_f / 2.0) as i64) / divisor * divisor).max(divisor);
    if (rounded as f64) < 0.9 * value {
        rounded += divisor;
    }
    rounded
}

/// A convolution and its batch norm (`ConvLayer` with `use_bn`, `ops_order=weight_bn_act`, and
/// the conv parts of `MBConvLayer`); sub-paths `conv` and `bn`. The activation is the caller's.
#[derive(Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm2d,
}

impl ConvBn {
    /// Affine batch norm with running statistics and the given numerics; `spec.bias` as given.
    pub fn new(path: &Path, spec: ConvSpec, numerics: BatchNormNumerics, init: ParamInit) -> Result<Self, TchError> {
        let conv = Conv2d::new(&(path / "conv"), spec, init)?;
        let bn = BatchNorm2d::new(&(path / "bn"), spec.out_channels, BatchNormSpec::AFFINE)?.with_numerics(numerics.eps, numerics.momentum);
        Ok(ConvBn { conv, bn })
    }

    pub fn forward(&self, input: &Tensor, train: bool) -> Result<Tensor, TchError> {
        self.bn.forward(&self.conv.forward(input)?, train)
    }

    /// Convolution, batch norm, ReLU6.
    pub fn forward_relu6(&self, input: &Tensor, train: bool) -> Result<Tensor, TchError> {
        relu6(&self.forward(input, train)?)
    }
}

/// The shape of an MBConv: `kernel_size`x`kernel_size` depthwise convolution with `stride`,
/// between a 1x1 expansion to `in_channels * expand_ratio` (none when the ratio is 1) and a
/// 1x1 projection to `out_channels`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MbConvSpec {
    pub in_channels: i64,
    pub out_channels: i64,
    pub kernel_size: i64,
    pub stride: i64,
    pub expand_ratio: i64,
}

impl MbConvSpec {
    /// Channels of the depthwise convolution: `round(in * e)`, exact for integer ratios.
    pub fn middle_channels(&self) -> i64 {
        self.in_channels * self.expand_ratio
    }

    fn expand_conv(&self) -> Option<ConvSpec> {
        (self.expand_ratio != 1).then(|| ConvSpec::new(self.in_channels, self.middle_channels(), 1))
    }

    fn depthwise_conv(&self) -> ConvSpec {
        let middle = self.middle_channels();
        ConvSpec::new(middle, middle, self.kernel_size).stride(self.stride).padding(self.kernel_size / 2).groups(middle)
    }

    fn project_conv(&self) -> ConvSpec {
        ConvSpec::new(self.middle_channels(), self.out_channels, 1)
    }

    /// Side of the output for a square input of side `input`.
    pub fn output_size(&self, input: i64) -> i64 {
        self.depthwise_conv().output_size(input)
    }

    /// Multiply-accumulates of its three convolutions for a square input of side `input`.
    pub fn macs(&self, input: i64) -> u64 {
        let output = self.output_size(input);
        self.expand_conv().map_or(0, |spec| spec.macs(input)) + self.depthwise_conv().macs(input) + self.project_conv().macs(output)
    }

    /// Trainable values: the convolutions and the batch norms' scales and shifts.
    pub fn parameter_count(&self) -> u64 {
        let conv_bn = |spec: ConvSpec| spec.parameter_count() + 2 * spec.out_channels as u64;
        self.expand_conv().map_or(0, conv_bn) + conv_bn(self.depthwise_conv()) + conv_bn(self.project_conv())
    }
}

/// The inverted-residual block without its shortcut (`MBConvLayer` without SE): sub-paths
/// `expand` (absent for ratio 1), `depthwise`, `project`. The shortcut belongs to the network.
#[derive(Debug)]
pub struct MbConv {
    pub spec: MbConvSpec,
    pub expand: Option<ConvBn>,
    pub depthwise: ConvBn,
    pub project: ConvBn,
}

impl MbConv {
    pub fn new(path: &Path, spec: MbConvSpec, numerics: BatchNormNumerics, init: ParamInit) -> Result<Self, TchError> {
        let expand = spec.expand_conv().map(|conv| ConvBn::new(&(path / "expand"), conv, numerics, init)).transpose()?;
        let depthwise = ConvBn::new(&(path / "depthwise"), spec.depthwise_conv(), numerics, init)?;
        let project = ConvBn::new(&(path / "project"), spec.project_conv(), numerics, init)?;
        Ok(MbConv { spec, expand, depthwise, project })
    }

    /// Expand (1x1, BN, ReLU6), depthwise (kxk, BN, ReLU6), project (1x1, BN): no activation
    /// after the projection (the linear bottleneck).
    pub fn forward(&self, input: &Tensor, train: bool) -> Result<Tensor, TchError> {
        let expanded = match &self.expand {
            Some(expand) => expand.forward_relu6(input, train)?,
            None => input.shallow_clone(),
        };
        self.project.forward(&self.depthwise.forward_relu6(&expanded, train)?, train)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NamedVariables;
    use tch::nn::VarStore;
    use tch::{Device, Kind};

    #[test]
    fn make_divisible_follows_the_mobilenet_rule() {
        assert_eq!(make_divisible(32.0, 8), 32);
        assert_eq!(make_divisible(24.0 * 0.35, 8), 8);
        assert_eq!(make_divisible(20.0, 8), 24);
        assert_eq!(make_divisible(1.0, 8), 8);
        // 30 rounds to 32; 18 rounds to 16, which lost more than 10 %: 24; 23 rounds to 24.
        assert_eq!(make_divisible(30.0, 8), 32);
        assert_eq!(make_divisible(18.0, 8), 24);
        assert_eq!(make_divisible(23.0, 8), 24);
        // 12 rounds to 16 (ties up); 11.5 rounds down to 8, which lost more than 10 %: 16.
        assert_eq!(make_divisible(12.0, 8), 16);
        assert_eq!(make_divisible(11.5, 8), 16);
    }

    #[test]
    fn mbconv_counts_match_its_tensors_and_shapes() {
        for (expand_ratio, stride) in [(1, 1), (3, 2), (6, 1)] {
            let spec = MbConvSpec { in_channels: 8, out_channels: 16, kernel_size: 5, stride, expand_ratio };
            let vs = VarStore::new(Device::Cpu);
            let block = MbConv::new(&(vs.root() / "op"), spec, BatchNormNumerics::MOBILE, ParamInit::PyTorchDefault).unwrap();
            assert_eq!(NamedVariables::of(&vs).parameter_count(), spec.parameter_count());
            assert_eq!(block.expand.is_some(), expand_ratio != 1);
            let output = block.forward(&Tensor::randn([2, 8, 7, 7], (Kind::Float, Device::Cpu)), true).unwrap();
            let side = spec.output_size(7);
            assert_eq!(output.size(), vec![2, 16, side, side]);
            let middle = 8 * expand_ratio as u64;
            let expand_macs = if expand_ratio == 1 { 0 } else { 49 * 8 * middle };
            let expected = expand_macs + (side * side) as u64 * (25 * middle + middle * 16);
            assert_eq!(spec.macs(7), expected);
        }
    }

    #[test]
    fn relu6_clips_both_ends() {
        let input = Tensor::from_slice(&[-1.0f32, 3.0, 7.0]);
        assert_eq!(Vec::<f32>::try_from(relu6(&input).unwrap()).unwrap(), vec![0.0, 3.0, 6.0]);
    }
}
