//! How a supernet scales each computed option's output by its mixing weight, cheaply: a single
//! path on the CPU needs no multiplication at all, constant weights need no graph, and only
//! weights that want a gradient (or live on a GPU, where reading them would stall the stream)
//! stay tensors.

use tch::{Kind, TchError, Tensor};

/// How one option's output is scaled.
pub enum MixingWeight {
    /// Exactly 1 with no gradient wanted (single paths): the output as it is.
    One,
    /// A constant read from weights on the CPU that need no gradient.
    Constant(f64),
    /// A 0-d slice of the weights, keeping the graph to them (architecture steps, or weights
    /// on a device, where reading them would stall the stream).
    Tensor(Tensor),
}

impl MixingWeight {
    pub fn apply(&self, output: Tensor) -> Result<Tensor, TchError> {
        match self {
            MixingWeight::One => Ok(output),
            MixingWeight::Constant(weight) => output.f_mul_scalar(*weight),
            MixingWeight::Tensor(weight) => output.f_mul(weight),
        }
    }
}

/// The `[choice points, options]` weights of one forward pass, read once.
pub struct MixingWeights<'a> {
    weights: &'a Tensor,
    options: usize,
    /// The weights as numbers when they need no gradient and are on the CPU: one small copy
    /// here saves an op per option (and per cell).
    constants: Option<Vec<f64>>,
}

impl<'a> MixingWeights<'a> {
    pub fn new(weights: &'a Tensor) -> Result<Self, TchError> {
        let options = weights.size().last().copied().unwrap_or(0) as usize;
        let constants = if !weights.requires_grad() && weights.device() == tch::Device::Cpu {
            Some(Vec::<f64>::try_from(weights.f_to_kind(Kind::Double)?.f_contiguous()?.f_view([-1])?)?)
        } else {
            None
        };
        Ok(MixingWeights { weights, options, constants })
    }

    /// The weight of `option` at `choice_point`.
    pub fn weight(&self, choice_point: usize, option: usize) -> Result<MixingWeight, TchError> {
        Ok(match &self.constants {
            Some(values) if values[choice_point * self.options + option] == 1.0 => MixingWeight::One,
            Some(values) => MixingWeight::Constant(values[choice_point * self.options + option]),
            None => MixingWeight::Tensor(self.weights.f_select(0, choice_point as i64)?.f_select(0, option as i64)?),
        })
    }
}
