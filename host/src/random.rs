//! The run's seeded generator for host-side choices (plugins reach it through their context).
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

/// What every host context offers plugins besides its own job: the seeded generator and a
/// place to log metrics. One implementation, shared by the algorithm and criterion contexts.
pub struct PluginServices {
    rng: std::cell::RefCell<SeededRng>,
    metrics: std::cell::RefCell<Vec<(String, f64)>>,
}

impl PluginServices {
    pub fn new(rng: SeededRng) -> Self {
        PluginServices { rng: std::cell::RefCell::new(rng), metrics: std::cell::RefCell::new(Vec::new()) }
    }

    pub fn next_random(&self) -> splitnas_plugin_api::PluginResult<u64> {
        splitnas_plugin_api::ffi_guard(|| Ok(self.rng.borrow_mut().next_u64()))
    }

    pub fn log_metric(&self, name: &str, value: f64) -> splitnas_plugin_api::PluginResult<()> {
        splitnas_plugin_api::ffi_guard(|| {
            self.metrics.borrow_mut().push((name.to_string(), value));
            Ok(())
        })
    }

    pub fn rng(&self) -> SeededRng {
        *self.rng.borrow()
    }

    /// The metrics logged so far, in order.
    pub fn take_metrics(&self) -> Vec<(String, f64)> {
        std::mem::take(&mut self.metrics.borrow_mut())
    }
}
