//! The seeded generator of every host-side random choice (data order, augmentation, splits;
//! plugins reach it through their context).
//!
//! SplitMix64: tiny, fast, and its whole state is one `u64`, so checkpoints store it exactly.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededRng {
    state: u64,
}

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        SeededRng { state: seed }
    }

    /// A generator for a sub-task, independent of the parent's sequence (node id, epoch, ...).
    pub fn derive(seed: u64, parts: &[u64]) -> Self {
        let mut rng = SeededRng::new(seed);
        for &part in parts {
            rng.state ^= SeededRng::new(part ^ 0x9E37_79B9_7F4A_7C15).next_u64();
            rng.next_u64();
        }
        rng
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
