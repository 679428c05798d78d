//! Studies over splitnas runs: ground-truth tables and how well supernets rank them, the
//! comparison of split criteria, the speed of a training step against plain PyTorch, and the
//! cost of gradient matching's repeats (docs/ARCHITECTURE.md).

pub mod compare;
pub mod external;
pub mod gm_repeats;
pub mod ground_truth;
mod plots;
pub mod rank_statistics;
pub mod ranking;
pub mod step;
pub mod table;
