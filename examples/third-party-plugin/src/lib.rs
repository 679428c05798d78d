//! Two components for splitnas, from the literature, that splitnas does not ship:
//!
//! - the split criterion `gm-l2`: gradient matching with the squared Euclidean distance
//!   `‖g_i − g_j‖²` between the options' shared-weight gradients, the alternative to the cosine
//!   distance that the gradient-matching code offers (its `mse` matching loss);
//! - the search algorithm `fair-darts` (Chu et al., "Fair DARTS: Eliminating Unfair Advantages
//!   in Differentiable Architecture Search", ECCV 2020): every option weighted by its own
//!   sigmoid instead of a softmax over the options, and the zero-one loss that pushes each
//!   sigmoid towards 0 or 1.
//!
//! One plugin library exports both; the host lists them as `criterion gm-l2` and
//! `algorithm fair-darts`.

mod fair_darts;
mod l2_distance;

pub use fair_darts::FairDarts;
pub use l2_distance::{squared_distances, GradientMatchingL2};

splitnas_plugin_api::export_plugin!("gradient-extras");
splitnas_plugin_api::export_criterion!(GradientMatchingL2);
splitnas_plugin_api::export_algorithm!(FairDarts);
