//! `splitnas bench`: measuring search quality (ground truth, ranking) and speed.

pub mod external;
pub mod gm_repeats;
pub mod plots;
pub mod ground_truth;
pub mod rank_statistics;
pub mod ranking;
pub mod step;
pub mod table;
