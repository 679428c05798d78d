//! A splitnas run: its configuration, its directory, the phases of a search from
//! configuration to report, selection among the leaves, the report and the split tree
//! (docs/ARCHITECTURE.md), and the drawings of a run (`svg`, `charts`, `cell_graph`).

pub mod cell_graph;
pub mod charts;
pub mod config;
pub mod directory;
pub mod extract;
pub mod metrics;
pub mod overrides;
pub mod phases;
pub mod provenance;
#[cfg(test)]
mod render_tests;
pub mod report;
mod selection;
pub mod setup;
pub mod svg;
pub mod tensorboard;
pub mod training;
pub mod tree;

pub use extract::{extract, ExtractRequest, Extracted};
pub use phases::{resume, run};
pub use report::Report;
pub use setup::{RunOptions, RunSetup};
pub use training::train;
