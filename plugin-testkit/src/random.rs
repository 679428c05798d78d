//! Random tensors for the suites, drawn from the shared seeded generator, so that nothing the
//! kit draws touches libtorch's global generator (the suites check that spaces leave it alone).

pub use splitnas_seeded_rng::SeededRng;

/// Standard normal tensors from a [`SeededRng`].
pub trait NormalTensor {
    /// A `[shape]` f32 CPU tensor of standard normal numbers.
    fn normal_tensor(&mut self, shape: &[i64]) -> tch::Tensor;
}

impl NormalTensor for SeededRng {
    fn normal_tensor(&mut self, shape: &[i64]) -> tch::Tensor {
        let count = shape.iter().product::<i64>() as usize;
        tch::Tensor::from_slice(&self.normals(count)).view(shape)
    }
}
