//! What every host context offers plugins besides its own job.

use splitnas_data::SeededRng;

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
