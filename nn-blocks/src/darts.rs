//! The operations of the DARTS family of cell spaces (Liu et al., "DARTS", ICLR 2019), as its
//! `operations.py` defines them: separable and dilated convolutions, factorized reduction,
//! 3x3 pooling with a stride, and drop-path.
//!
//! None of the convolutions has a bias (every one is followed by a batch norm).

use tch::nn::Path;
use tch::{TchError, Tensor};

use crate::layers::{BatchNorm2d, BatchNormSpec, Conv2d, ConvSpec, ParamInit};

/// `ReLU, depthwise conv k×k (stride), pointwise conv 1×1, BN` twice; the second depthwise conv
/// has stride 1 and the first pointwise conv keeps the input width. Sub-paths `dw1`, `pw1`,
/// `bn1`, `dw2`, `pw2`, `bn2`.
#[derive(Debug)]
pub struct SepConv {
    pub dw1: Conv2d,
    pub pw1: Conv2d,
    pub bn1: BatchNorm2d,
    pub dw2: Conv2d,
    pub pw2: Conv2d,
    pub bn2: BatchNorm2d,
}

impl SepConv {
    /// DARTS's `sep_conv_{k}x{k}`: padding `k / 2`.
    pub fn new(
        path: &Path,
        in_channels: i64,
        out_channels: i64,
        kernel: i64,
        stride: i64,
        bn: BatchNormSpec,
        init: ParamInit,
    ) -> Result<Self, TchError> {
        let depthwise = |stride| ConvSpec::new(in_channels, in_channels, kernel).stride(stride).padding(kernel / 2).groups(in_channels);
        Ok(SepConv {
            dw1: Conv2d::new(&(path / "dw1"), depthwise(stride), init)?,
            pw1: Conv2d::new(&(path / "pw1"), ConvSpec::new(in_channels, in_channels, 1), init)?,
            bn1: BatchNorm2d::new(&(path / "bn1"), in_channels, bn)?,
            dw2: Conv2d::new(&(path / "dw2"), depthwise(1), init)?,
            pw2: Conv2d::new(&(path / "pw2"), ConvSpec::new(in_channels, out_channels, 1), init)?,
            bn2: BatchNorm2d::new(&(path / "bn2"), out_channels, bn)?,
        })
    }

    pub fn forward(&self, input: &Tensor, train: bool) -> Result<Tensor, TchError> {
        let half = self.bn1.forward(&self.pw1.forward(&self.dw1.forward(&input.f_relu()?)?)?, train)?;
        self.bn2.forward(&self.pw2.forward(&self.dw2.forward(&half.f_relu()?)?)?, train)
    }

    pub fn output_size(&self, input: i64) -> i64 {
        self.dw1.spec.output_size(input)
    }

    /// Multiply-accumulates on a square input of side `input`.
    pub fn macs(&self, input: i64) -> u64 {
        let side = self.output_size(input);
        self.dw1.spec.macs(input) + self.pw1.spec.macs(side) + self.dw2.spec.macs(side) + self.pw2.spec.macs(side)
    }
}

/// `ReLU, depthwise dilated conv k×k (dilation 2, stride), pointwise conv 1×1, BN`: DARTS's
/// `dil_conv_{k}x{k}` with padding `k - 1`. Sub-paths `dw`, `pw`, `bn`.
#[derive(Debug)]
pub struct DilConv {
    pub dw: Conv2d,
    pub pw: Conv2d,
    pub bn: BatchNorm2d,
}

impl DilConv {
    pub fn new(
        path: &Path,
        in_channels: i64,
        out_channels: i64,
        kernel: i64,
        stride: i64,
        bn: BatchNormSpec,
        init: ParamInit,
    ) -> Result<Self, TchError> {
        let depthwise = ConvSpec::new(in_channels, in_channels, kernel).stride(stride).padding(kernel - 1).dilation(2).groups(in_channels);
        Ok(DilConv {
            dw: Conv2d::new(&(path / "dw"), depthwise, init)?,
            pw: Conv2d::new(&(path / "pw"), ConvSpec::new(in_channels, out_channels, 1), init)?,
            bn: BatchNorm2d::new(&(path / "bn"), out_channels, bn)?,
        })
    }

    pub fn forward(&self, input: &Tensor, train: bool) -> Result<Tensor, TchError> {
        self.bn.forward(&self.pw.forward(&self.dw.forward(&input.f_relu()?)?)?, train)
    }

    pub fn output_size(&self, input: i64) -> i64 {
        self.dw.spec.output_size(input)
    }

    pub fn macs(&self, input: i64) -> u64 {
        self.dw.spec.macs(input) + self.pw.spec.macs(self.output_size(input))
    }
}

/// Halves the resolution without losing the odd pixels: `ReLU`, then two 1×1 convs with
/// stride 2 (each to half the output width), the second on the input shifted by one pixel,
/// concatenated, BN. Sub-paths `conv_1`, `conv_2`, `bn`. `out_channels` must be even.
#[derive(Debug)]
pub struct FactorizedReduce {
    pub conv_1: Conv2d,
    pub conv_2: Conv2d,
    pub bn: BatchNorm2d,
}

impl FactorizedReduce {
    pub fn new(path: &Path, in_channels: i64, out_channels: i64, bn: BatchNormSpec, init: ParamInit) -> Result<Self, TchError> {
        if out_channels % 2 != 0 {
            return Err(TchError::Shape(format!("factorized reduce needs an even output width, got {out_channels}")));
        }
        let half = ConvSpec::new(in_channels, out_channels / 2, 1).stride(2);
        Ok(FactorizedReduce {
            conv_1: Conv2d::new(&(path / "conv_1"), half, init)?,
            conv_2: Conv2d::new(&(path / "conv_2"), half, init)?,
            bn: BatchNorm2d::new(&(path / "bn"), out_channels, bn)?,
        })
    }

    /// An odd input side gives the two halves different sizes: an error, as in PyTorch.
    pub fn forward(&self, input: &Tensor, train: bool) -> Result<Tensor, TchError> {
        let activated = input.f_relu()?;
        let shifted = activated.f_slice(2, 1, None, 1)?.f_slice(3, 1, None, 1)?;
        let halves = [self.conv_1.forward(&activated)?, self.conv_2.forward(&shifted)?];
        if halves[0].size() != halves[1].size() {
            return Err(TchError::Shape(format!(
                "factorized reduce needs an even input side, got {:?} (the two strided halves are {:?} and {:?})",
                input.size(),
                halves[0].size(),
                halves[1].size()
            )));
        }
        self.bn.forward(&Tensor::f_cat(&halves, 1)?, train)
    }

    /// Side of the output, `None` for an odd input side.
    pub fn output_size(&self, input: i64) -> Option<i64> {
        (input % 2 == 0).then_some(input / 2)
    }

    pub fn macs(&self, input: i64) -> u64 {
        self.conv_1.spec.macs(input) + self.conv_2.spec.macs(input - 1)
    }
}

/// 3×3 max pooling, padding 1 (DARTS's `max_pool_3x3`).
pub fn max_pool_3x3(input: &Tensor, stride: i64) -> Result<Tensor, TchError> {
    input.f_max_pool2d([3, 3], [stride, stride], [1, 1], [1, 1], false)
}

/// 3×3 average pooling, padding 1, padding not counted (DARTS's `avg_pool_3x3`).
pub fn avg_pool_3x3_strided(input: &Tensor, stride: i64) -> Result<Tensor, TchError> {
    crate::pooling::avg_pool_3x3_excluding_padding(input, stride)
}

/// Side of the output of a 3×3 pooling with padding 1.
pub fn pool_3x3_output_size(input: i64, stride: i64) -> i64 {
    (input - 1) / stride + 1
}

/// Drop-path (DARTS's `drop_path`): each sample's whole tensor is zeroed with probability
/// `drop_prob`, the others scaled by `1 / (1 - drop_prob)`. Draws from libtorch's generator.
pub fn drop_path(input: &Tensor, drop_prob: f64) -> Result<Tensor, TchError> {
    if drop_prob <= 0.0 {
        return Ok(input.shallow_clone());
    }
    let keep = 1.0 - drop_prob;
    let batch = input.size().first().copied().unwrap_or(1);
    let mask = Tensor::f_empty([batch, 1, 1, 1], (input.kind(), input.device()))?.f_bernoulli_float_(keep)?;
    input.f_div_scalar(keep)?.f_mul(&mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NamedVariables;
    use tch::nn::VarStore;
    use tch::{Device, Kind};

    const CPU: (Kind, Device) = (Kind::Float, Device::Cpu);

    #[test]
    fn separable_and_dilated_convs_keep_or_halve_the_side_and_count_like_darts() {
        let vs = VarStore::new(Device::Cpu);
        let sep = SepConv::new(&(vs.root() / "sep"), 4, 4, 3, 1, BatchNormSpec::AFFINE, ParamInit::PyTorchDefault).unwrap();
        let dil = DilConv::new(&(vs.root() / "dil"), 4, 4, 5, 2, BatchNormSpec::AFFINE, ParamInit::PyTorchDefault).unwrap();
        let input = Tensor::randn([2, 4, 8, 8], CPU);
        assert_eq!(sep.forward(&input, true).unwrap().size(), [2, 4, 8, 8]);
        assert_eq!(dil.forward(&input, true).unwrap().size(), [2, 4, 4, 4]);
        assert_eq!((sep.output_size(8), dil.output_size(8)), (8, 4));
        let variables = NamedVariables::of(&vs);
        // sep 3x3 at C=4: 2 x (4·9 + 4·4) + 2 x 2·4; dil 5x5: 4·25 + 4·4 + 2·4.
        assert_eq!(variables.parameter_count(), (2 * (36 + 16) + 16) + (100 + 16 + 8));
        assert_eq!(sep.macs(8), 64 * (36 + 16) * 2);
        assert_eq!(dil.macs(8), 16 * (100 + 16));
    }

    #[test]
    fn factorized_reduce_halves_even_sides_and_refuses_odd_ones() {
        let vs = VarStore::new(Device::Cpu);
        let reduce = FactorizedReduce::new(&vs.root(), 3, 6, BatchNormSpec::NON_AFFINE, ParamInit::PyTorchDefault).unwrap();
        assert_eq!(reduce.forward(&Tensor::randn([2, 3, 8, 8], CPU), true).unwrap().size(), [2, 6, 4, 4]);
        assert!(reduce.forward(&Tensor::randn([2, 3, 7, 7], CPU), true).is_err());
        assert_eq!((reduce.output_size(8), reduce.output_size(7)), (Some(4), None));
        assert!(FactorizedReduce::new(&vs.root(), 3, 5, BatchNormSpec::AFFINE, ParamInit::Placeholder).is_err());
    }

    #[test]
    fn pools_and_drop_path() {
        let input = Tensor::randn([4, 2, 8, 8], CPU);
        assert_eq!(max_pool_3x3(&input, 2).unwrap().size(), [4, 2, 4, 4]);
        assert_eq!(avg_pool_3x3_strided(&input, 1).unwrap().size(), [4, 2, 8, 8]);
        assert_eq!(pool_3x3_output_size(7, 2), 4);
        let ones = Tensor::ones([64, 1, 2, 2], CPU);
        let dropped = drop_path(&ones, 0.5).unwrap();
        let per_sample = dropped.sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Float);
        let values = Vec::<f32>::try_from(&per_sample).unwrap();
        assert!(values.iter().all(|&v| v == 0.0 || (v - 8.0).abs() < 1e-5), "{values:?}");
        assert!(values.contains(&0.0) && values.iter().any(|&v| v > 0.0));
        assert!(drop_path(&ones, 0.0).unwrap().equal(&ones));
    }
}
