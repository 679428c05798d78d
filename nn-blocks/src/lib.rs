//! Building blocks shared by splitnas's search-space plugins, on `tch`.
//!
//! Plugins link this rlib statically, so one copy of each block serves every space (NB201, the
//! DARTS space, ProxylessNAS) and none is copied between plugins.
//!
//! Conventions:
//! - Every block creates its tensors through a [`tch::nn::Path`], so parameters and buffers get
//!   stable dotted names (`cells.3.edges.1<-0.nor_conv_3x3.conv.weight`). Checkpoints, optimizers
//!   and children inheriting from their parent on a split all key on those names. Path segments
//!   must not contain `.` (tch panics on it): blocks only use fixed names.
//! - Forward passes use libtorch's fallible (`f_`) calls, so a wrong shape or device comes back as
//!   a [`tch::TchError`] instead of a panic (plugin code must not panic).
//! - Numbers follow PyTorch, and so the published NAS code: conv and linear weights and biases
//!   uniform in ±1/√fan_in, batch norm eps 1e-5 and momentum 0.1, running variance unbiased.

pub mod darts;
pub mod layers;
pub mod mixing;
pub mod mobile;
pub mod naming;
pub mod pooling;

pub use darts::{avg_pool_3x3_strided, drop_path, max_pool_3x3, pool_3x3_output_size, DilConv, FactorizedReduce, SepConv};
pub use layers::{avg_pool_3x3, global_avg_pool, BatchNorm2d, BatchNormSpec, Conv2d, ConvSpec, Linear, ParamInit, ReluConvBn, ResNetBasicBlock};
pub use mobile::{make_divisible, relu6, BatchNormNumerics, ConvBn, MbConv, MbConvSpec};
pub use naming::{is_under, natural_cmp, NamedVariables};
/// The seeded generator spaces draw architecture samples from (never libtorch's).
pub use splitnas_seeded_rng::SeededRng;
