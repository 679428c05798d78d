//! The splitnas host: plugin registry, components, devices, and (growing) the search itself.

pub mod components;
pub mod criterion;
pub mod data;
pub mod device;
pub mod plugins;
pub mod random;
