//! The kit's own generator, so that nothing it draws touches libtorch's global generator.

/// The splitmix64 generator: one `u64` of state, deterministic in its seed.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound` > 0); the modulo bias is negligible for test sizes.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `count` standard normal numbers (Box-Muller).
    pub fn normals(&mut self, count: usize) -> Vec<f32> {
        let mut values = Vec::with_capacity(count + 1);
        while values.len() < count {
            let u1 = 1.0 - self.unit();
            let u2 = self.unit();
            let radius = (-2.0 * u1.ln()).sqrt();
            values.push((radius * (2.0 * std::f64::consts::PI * u2).cos()) as f32);
            values.push((radius * (2.0 * std::f64::consts::PI * u2).sin()) as f32);
        }
        values.truncate(count);
        values
    }

    /// A `[shape]` f32 CPU tensor of standard normal numbers.
    pub fn normal_tensor(&mut self, shape: &[i64]) -> tch::Tensor {
        let count = shape.iter().product::<i64>() as usize;
        tch::Tensor::from_slice(&self.normals(count)).view(shape)
    }
}
