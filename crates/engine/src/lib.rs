//! The splitnas engine: everything between a plugin registry and a trained, split tree of
//! sub-supernets, with no notion of a run directory or a command line
//! (docs/ARCHITECTURE.md).
//!
//! - [`plugins`] and [`components`]: loading plugin libraries, creating components from
//!   validated configuration;
//! - [`context`], [`sub_supernet`]: the host side of the algorithm contract, one training step
//!   ([`sub_supernet::Trainer`]) shared by every caller;
//! - [`gradients`], [`criterion`]: what split criteria are served, and the check of their verdict;
//! - [`costs`]: per-option costs (FLOPs, latency tables) offered to algorithms;
//! - [`optim`], [`standalone`], [`checkpoint`], [`seeds`], [`device`], [`services`].

pub mod batch_norm;
pub mod checkpoint;
pub mod components;
pub mod context;
pub mod costs;
pub mod criterion;
pub mod device;
pub mod error;
pub mod export;
pub mod gradients;
pub mod optim;
pub mod plugins;
pub mod seeds;
pub mod services;
pub mod standalone;
pub mod sub_supernet;
pub mod threads;

pub use splitnas_data::SeededRng;
