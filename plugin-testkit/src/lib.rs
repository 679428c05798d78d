//! # splitnas plugin testkit
//!
//! What a splitnas plugin needs to test itself without the host (use it as a
//! dev-dependency):
//!
//! - [`host::FakeHost`]: a [`HostContext`](splitnas_plugin_api::HostContext) over a tiny linear
//!   toy supernet, with recorded calls, a miniature training loop ([`host::run_search`]) and a
//!   toy task in which one option is clearly the best ([`host::FakeHost::toy_task`]);
//! - [`criterion_context::FakeCriterionContext`]: a criterion context serving Gram matrices of
//!   synthetic (clustered) or recorded per-option gradients, and a seeded `next_random`;
//! - [`conformance`]: fixtures written by a reference implementation's generator script, loading
//!   its weights by name and comparing tensors within float32's tolerance;
//! - one contract suite per kind: [`space`], [`algorithm`] and [`criterion`]. Each runs every
//!   check of its kind and returns a [`ContractReport`] naming each check and its outcome, so
//!   a test can assert which check failed; `assert_contract` panics with every failure.
//!
//! ```ignore
//! #[test]
//! fn honours_the_space_contract() {
//!     splitnas_plugin_testkit::space::assert_contract::<MySpace>(&SpaceSuiteConfig::default());
//! }
//! ```
//!
//! The kit draws its random numbers from the shared splitmix64 generator (`splitnas-seeded-rng`),
//! never from libtorch's global one, so that a suite is reproducible even while other tests draw.

pub mod algorithm;
pub mod conformance;
pub mod criterion;
pub mod criterion_context;
pub mod host;
pub mod space;

mod random;
mod report;

pub use random::{NormalTensor, SeededRng};
pub use report::{CheckResult, ContractReport, Outcome};
