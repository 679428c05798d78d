//! A splitnas run: its configuration, its directory, the phases of a search from
//! configuration to report, selection among the leaves, the report and the split tree
//! (docs/ARCHITECTURE.md).

pub mod config;
pub mod directory;
pub mod metrics;
pub mod overrides;
pub mod phases;
pub mod provenance;
pub mod report;
mod selection;
pub mod setup;
pub mod tensorboard;
pub mod training;
pub mod tree;

pub use phases::{resume, run};
pub use report::Report;
pub use setup::{RunOptions, RunSetup};
pub use training::train;
