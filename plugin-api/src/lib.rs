//! # splitnas plugin API
//!
//! The ABI-stable contract between the `splitnas` host and its plugins. A plugin is a
//! shared library (`cdylib`) that exports one root module ([`PluginModule`]) listing
//! components of three kinds:
//!
//! - **search spaces** ([`author::SpacePlugin`]): choice points and options, a supernet for a
//!   mask, stand-alone networks, genotype strings;
//! - **split criteria** ([`author::CriterionPlugin`]): which choice point of a sub-supernet to
//!   split and how to partition its options;
//! - **search algorithms** ([`author::AlgorithmPlugin`]): architecture parameters and the
//!   sampling policy (DARTS, SNAS, GDAS, RSPS, ...).
//!
//! ## Writing a plugin
//!
//! ```toml
//! [package]
//! name = "my-splitnas-plugin"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! splitnas-plugin-api = { path = "..." }   # the one your host was built with
//! abi_stable = "0.11"                      # its attribute macros name `::abi_stable`
//! serde_json = "1"
//! torch-sys = "=0.24.0"                    # only for build.rs below
//!
//! [build-dependencies]
//! splitnas-build-support = { path = "..." } # optional: rpath to libtorch
//! ```
//!
//! ```ignore
//! use splitnas_plugin_api::author::{Component, CriterionPlugin};
//! use splitnas_plugin_api::{CriterionContextRef, PluginError, SplitDecision, SplitRequest};
//!
//! pub struct FirstCandidate;
//!
//! impl Component for FirstCandidate {
//!     const NAME: &'static str = "first";
//!     const DESCRIPTION: &'static str = "splits the first candidate into singletons";
//!     fn default_config() -> serde_json::Value { serde_json::json!({}) }
//! }
//!
//! impl CriterionPlugin for FirstCandidate {
//!     fn create(_config: &str) -> Result<Self, PluginError> { Ok(FirstCandidate) }
//!     fn split(&mut self, request: &SplitRequest, _context: &CriterionContextRef<'_>)
//!         -> Result<SplitDecision, PluginError> { todo!() }
//! }
//!
//! splitnas_plugin_api::export_plugin!("my-plugin");
//! splitnas_plugin_api::export_criterion!(FirstCandidate);
//! ```
//!
//! One `export_plugin!` per library, then one `export_*!` line per component; the
//! components are collected with `inventory` inside the library and listed sorted by
//! (kind, name). Build with `cargo build --release` and drop the `.so` into a directory
//! given to the host with `--plugin-dir` or `SPLITNAS_PLUGIN_PATH`.
//!
//! A space implements [`author::SpacePlugin`] and should also implement its ABI 1.1
//! methods `configure` (the host's [`SpaceSetup`]: classes, image channels and size, the
//! stand-alone network's size) and `sample_architecture` (uniform, seeded, no libtorch random
//! numbers), and where it can, `architecture_count`/`architecture_at`. An algorithm
//! implements [`author::AlgorithmPlugin`], whose `scoring_sample` gives the weights the other
//! choice points use while a criterion scores one choice point.
//!
//! ## Testing a plugin
//!
//! `splitnas-plugin-testkit` (a dev-dependency) has a fake host, fake criterion gradients and
//! one contract suite per kind; run your kind's suite from a test:
//!
//! ```ignore
//! #[test]
//! fn honours_the_criterion_contract() {
//!     splitnas_plugin_testkit::criterion::assert_contract::<FirstCandidate>(&Default::default());
//! }
//! ```
//!
//! ## Compatibility
//!
//! The ABI is append-only: methods are only ever added at the end of a trait, with a default
//! body that runs when an older plugin lacks them (see [`traits`]): an ABI 1.0 space's
//! `configure` and `sample_architecture` answer [`ErrorKind::Unsupported`] and its
//! `architecture_count` answers `None`. The host checks an older plugin's layout with the roles
//! of `abi_stable`'s check swapped, so such a plugin loads (see [`traits`]).
//!
//! ## Rules of the boundary
//!
//! - Tensors cross only as libtorch handles ([`TensorRef`] borrowed, [`OwnedTensor`] owned);
//!   see [`tensor`] for ownership.
//! - No panic may cross: the export macros run every method inside [`ffi_guard`], and
//!   every method returns a [`PluginResult`].
//! - A plugin loads only if it was built against a compatible plugin-api (checked by
//!   `abi_stable`: version and the layout of every type reachable from the root module),
//!   the same [`ABI_VERSION`] and the same [`TORCH_ABI`] (tch and libtorch release).
//! - Configuration is JSON text: the host validates user keys against the component's
//!   default configuration, merges, and hands the result to the factory.

pub mod author;
mod export;
mod guard;
mod module;
pub mod tensor;
#[allow(non_local_definitions)] // abi_stable's #[sabi_trait] expansion
pub mod traits;
mod types;

pub use export::ExportDescription;
pub use guard::{ffi_guard, panic_message};
pub use module::*;
pub use tensor::{BorrowedTensor, NamedTensor, OwnedTensor, TensorRef, TorchTensor};
pub use traits::*;
pub use types::*;

#[doc(hidden)]
pub use abi_stable;
#[doc(hidden)]
pub use inventory;

/// This crate's version, which `abi_stable` compares when a host loads a plugin: while it is
/// 0.x, a plugin built against an older minor version is refused (in 0.x a minor version may
/// break), and within one minor version only appended ABI is allowed (docs/PLUGINS.md).
pub const PLUGIN_API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Bumped on any change of meaning that `abi_stable`'s layout check cannot see.
pub const ABI_VERSION: u32 = 1;

/// The tch and libtorch release every plugin and the host must share.
pub const TORCH_ABI: &str = concat!("tch 0.24, libtorch ", env!("SPLITNAS_LIBTORCH_VERSION"));

/// One component registration inside a plugin library (see the `export_*!` macros).
pub struct ComponentRegistration(pub fn() -> ComponentInfo);

inventory::collect!(ComponentRegistration);

/// Every component registered in this library, sorted by (kind, name).
pub fn registered_components() -> Vec<ComponentInfo> {
    let mut components: Vec<ComponentInfo> = inventory::iter::<ComponentRegistration>.into_iter().map(|entry| (entry.0)()).collect();
    components.sort_by(|a, b| (a.kind(), a.name.as_str()).cmp(&(b.kind(), b.name.as_str())));
    components
}

#[doc(hidden)]
pub extern "C" fn __collect_components() -> PluginResult<abi_stable::std_types::RVec<ComponentInfo>> {
    ffi_guard(|| Ok(registered_components().into()))
}

/// Exports the library's root module. Use once per plugin library.
#[macro_export]
macro_rules! export_plugin {
    ($plugin_name:expr) => {
        #[::abi_stable::export_root_module]
        pub fn splitnas_plugin_root_module() -> $crate::PluginModuleRef {
            use ::abi_stable::prefix_type::PrefixTypeTrait;
            $crate::PluginModule {
                abi_version: $crate::ABI_VERSION,
                torch_abi: ::abi_stable::std_types::RStr::from_str($crate::TORCH_ABI),
                plugin_name: ::abi_stable::std_types::RStr::from_str($plugin_name),
                components: $crate::__collect_components,
            }
            .leak_into_prefix()
        }
    };
}

/// Registers a [`author::SpacePlugin`] of this library.
#[macro_export]
macro_rules! export_space {
    ($component:ty) => {
        $crate::inventory::submit! {
            $crate::ComponentRegistration(|| $crate::author::space_component::<$component>(env!("CARGO_PKG_VERSION")))
        }
    };
}

/// Registers a [`author::CriterionPlugin`] of this library.
#[macro_export]
macro_rules! export_criterion {
    ($component:ty) => {
        $crate::inventory::submit! {
            $crate::ComponentRegistration(|| $crate::author::criterion_component::<$component>(env!("CARGO_PKG_VERSION")))
        }
    };
}

/// Registers a [`author::AlgorithmPlugin`] of this library.
#[macro_export]
macro_rules! export_algorithm {
    ($component:ty) => {
        $crate::inventory::submit! {
            $crate::ComponentRegistration(|| $crate::author::algorithm_component::<$component>(env!("CARGO_PKG_VERSION")))
        }
    };
}
