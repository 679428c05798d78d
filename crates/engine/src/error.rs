//! The engine's error, and the one place that names the component a plugin error came from.

use abi_stable::std_types::RVec;
use splitnas_plugin_api::{NamedTensor, PluginError, PluginResult};
use tch::Tensor;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{component}: {error}")]
    Plugin { component: String, error: PluginError },
    #[error(
        "the training loss became {value} at epoch {epoch}, step {step}: lower the learning rate (search.weights.lr) or enable gradient clipping"
    )]
    NonFiniteLoss { epoch: usize, step: usize, value: f64 },
    /// A batch could not be made (image folders: too many unreadable images).
    #[error(transparent)]
    Data(#[from] splitnas_data::DataError),
    #[error("{0}")]
    Other(String),
}

/// Attaches which component failed to a plugin error.
pub trait PluginResultExt<T> {
    fn within(self, component: &str) -> Result<T, SearchError>;
}

impl<T> PluginResultExt<T> for PluginResult<T> {
    fn within(self, component: &str) -> Result<T, SearchError> {
        self.into_result().map_err(|error| SearchError::Plugin { component: component.to_string(), error })
    }
}

impl<T> PluginResultExt<T> for Result<T, PluginError> {
    fn within(self, component: &str) -> Result<T, SearchError> {
        self.map_err(|error| SearchError::Plugin { component: component.to_string(), error })
    }
}

/// Plugin-returned named tensors as host pairs (shared storage).
pub fn named(tensors: RVec<NamedTensor>) -> Vec<(String, Tensor)> {
    tensors.into_iter().map(|t| (t.name.to_string(), t.tensor.into_tensor())).collect()
}
