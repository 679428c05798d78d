//! 3×3 average pooling that does not count the padding (`count_include_pad=False`), as NB201's
//! and DARTS's `avg_pool_3x3` do.
//!
//! On the CPU, libtorch's `avg_pool2d` kernel is slow for these shapes: with one thread, forward
//! and backward of a `[64, 64, 8, 8]` map take 4.6× as long as the same average written as a
//! depthwise 3×3 convolution with a kernel of ones followed by a multiplication with the
//! reciprocal of each position's window size (9 inside, 6 on an edge, 4 in a corner). That is
//! the same arithmetic, equal up to float rounding (about 1e-7 relative), so the CPU uses it;
//! CUDA keeps `avg_pool2d`, whose kernel is fast there.
//!
//! The two constant tensors are built once per shape and device and cached: rebuilding them
//! would add several small ops to every call, which is what small networks cannot afford.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use tch::{Device, Kind, TchError, Tensor};

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Constant {
    /// `[channels, 1, 3, 3]` ones.
    Kernel { channels: i64 },
    /// `[out_height, out_width]`: 1 / (input positions under the window).
    ReciprocalCounts { height: i64, width: i64, stride: i64 },
}

type CacheKey = (Constant, Device, Kind);

fn cached(key: CacheKey, make: impl FnOnce() -> Result<Tensor, TchError>) -> Result<Tensor, TchError> {
    static CACHE: OnceLock<Mutex<HashMap<CacheKey, Tensor>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(found) = cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&key) {
        return Ok(found.shallow_clone());
    }
    let made = tch::no_grad(make)?;
    cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(key, made.shallow_clone());
    Ok(made)
}

/// 3×3 average pooling with padding 1 and `stride`, the padding not counted.
pub fn avg_pool_3x3_excluding_padding(input: &Tensor, stride: i64) -> Result<Tensor, TchError> {
    let size = input.size();
    if input.device() != Device::Cpu || size.len() != 4 {
        return input.f_avg_pool2d([3, 3], [stride, stride], [1, 1], false, false, None::<i64>);
    }
    let (channels, height, width) = (size[1], size[2], size[3]);
    let (device, kind) = (input.device(), input.kind());
    let kernel = cached((Constant::Kernel { channels }, device, kind), || Tensor::f_ones([channels, 1, 3, 3], (kind, device)))?;
    let reciprocal_counts = cached((Constant::ReciprocalCounts { height, width, stride }, device, kind), || {
        let window = Tensor::f_ones([1, 1, 3, 3], (kind, device))?;
        let counts =
            Tensor::f_ones([1, 1, height, width], (kind, device))?.f_conv2d(&window, None::<&Tensor>, [stride, stride], [1, 1], [1, 1], 1)?;
        counts.f_reciprocal()?.f_squeeze_dims([0i64, 1].as_slice())
    })?;
    input.f_conv2d(&kernel, None::<&Tensor>, [stride, stride], [1, 1], [1, 1], channels)?.f_mul(&reciprocal_counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_libtorch_average_pooling_without_padding_counted() {
        tch::manual_seed(3);
        for (shape, stride) in [([2, 3, 7, 5], 1), ([2, 4, 8, 8], 2), ([1, 2, 1, 1], 1), ([3, 2, 5, 6], 2)] {
            let input = Tensor::randn(shape, (Kind::Float, Device::Cpu)).set_requires_grad(true);
            let ours = avg_pool_3x3_excluding_padding(&input, stride).unwrap();
            let expected = input.avg_pool2d([3, 3], [stride, stride], [1, 1], false, false, None::<i64>);
            assert_eq!(ours.size(), expected.size());
            assert!(ours.allclose(&expected, 1e-6, 1e-6, false), "forward differs for {shape:?} stride {stride}");
            let upstream = Tensor::randn(expected.size(), (Kind::Float, Device::Cpu));
            let ours_gradient = Tensor::run_backward(&[(&ours * &upstream).sum(Kind::Float)], &[&input], false, false).remove(0);
            let expected_gradient = Tensor::run_backward(&[(&expected * &upstream).sum(Kind::Float)], &[&input], false, false).remove(0);
            assert!(ours_gradient.allclose(&expected_gradient, 1e-6, 1e-6, false), "gradient differs for {shape:?} stride {stride}");
        }
    }
}
