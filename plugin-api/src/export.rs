//! What a space says about exporting a stand-alone network (ABI 1.2,
//! [`crate::SearchSpace::export_description`]). It crosses the boundary as JSON text, so that
//! fields can be added without touching the ABI layout.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How a stand-alone network's weights load into its reference implementation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportDescription {
    /// The reference class, importable in Python (`xautodl.models.cell_infers.tiny_network.TinyNetwork`).
    pub reference: String,
    /// Where that class comes from (a PyPI package and version, or a repository and file).
    pub source: String,
    /// The class's constructor arguments, by name.
    pub constructor: serde_json::Value,
    /// For every parameter and buffer name of the network, its name in the reference
    /// `state_dict`. Targets are unique.
    pub names: BTreeMap<String, String>,
    /// What a user must do beyond constructing the class, one sentence each (for example, a
    /// stem rebuilt for one input channel where the reference hard-codes three).
    #[serde(default)]
    pub notes: Vec<String>,
}
