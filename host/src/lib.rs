//! The splitnas host: plugin registry, components, devices, and (growing) the search itself.

pub mod bench;
pub mod checkpoint;
pub mod compare;
pub mod components;
pub mod config;
pub mod criterion;
pub mod data;
pub mod device;
pub mod gradients;
pub mod optim;
pub mod plugins;
pub mod random;
pub mod run;
pub mod search;
pub mod standalone;
pub mod tree;
