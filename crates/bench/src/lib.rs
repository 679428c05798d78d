//! Studies over splitnas runs: ground-truth tables and how well supernets rank them, the
//! comparison of split criteria, the speed of a training step against plain PyTorch, and the
//! cost of gradient matching's repeats, and latency lookup tables of a space's options
//! (docs/ARCHITECTURE.md).

pub mod bootstrap;
pub mod compare;
pub mod data;
pub mod external;
pub mod gm_repeats;
pub mod ground_truth;
pub mod latency;
pub mod nb201_cells;
mod plots;
pub mod rank_statistics;
pub mod ranking;
pub mod step;
pub mod table;
