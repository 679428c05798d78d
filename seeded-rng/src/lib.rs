//! The seeded generator every part of splitnas draws from outside libtorch: the host's data
//! order, augmentation and splits, the spaces' architecture samples, the test kit's synthetic
//! gradients. One implementation, so that the same seed means the same numbers everywhere, and
//! none of it touches libtorch's global generator.
//!
//! SplitMix64 (Steele, Lea and Flood 2014): one `u64` of state, full period, so a checkpoint
//! stores a generator exactly.

/// The SplitMix64 generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeededRng {
    state: u64,
}

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        SeededRng { state: seed }
    }

    /// A generator for a sub-task, independent of the parent's sequence (node id, epoch, ...).
    pub fn derive(seed: u64, parts: &[u64]) -> Self {
        let mut generator = SeededRng::new(seed);
        for &part in parts {
            generator.state ^= SeededRng::new(part ^ 0x9E37_79B9_7F4A_7C15).next_u64();
            generator.next_u64();
        }
        generator
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound` > 0), without bias: Lemire's multiply-shift, redrawing
    /// the rare products that would favour low values.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "SeededRng::below needs a positive bound");
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(bound);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// A uniformly chosen element of a non-empty slice.
    pub fn choose<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_sequence_and_bounded_draws() {
        // First outputs of splitmix64 seeded with 0 (the reference implementation's values).
        let mut generator = SeededRng::new(0);
        assert_eq!(generator.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(generator.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let mut counts = [0u32; 3];
        for _ in 0..3000 {
            counts[SeededRng::new(generator.next_u64()).below(3) as usize] += 1;
        }
        assert!(counts.iter().all(|&count| (800..1200).contains(&count)), "{counts:?}");
    }

    #[test]
    fn derived_streams_are_independent_and_stable() {
        let a = SeededRng::derive(7, &[1, 2]).next_u64();
        assert_eq!(a, SeededRng::derive(7, &[1, 2]).next_u64());
        assert_ne!(a, SeededRng::derive(7, &[2, 1]).next_u64());
        assert_ne!(a, SeededRng::derive(8, &[1, 2]).next_u64());
    }

    #[test]
    fn normals_have_the_right_moments() {
        let values = SeededRng::new(3).normals(20_000);
        let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64;
        let variance = values.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / values.len() as f64;
        assert!(mean.abs() < 0.03 && (variance - 1.0).abs() < 0.05, "mean {mean}, variance {variance}");
    }
}
