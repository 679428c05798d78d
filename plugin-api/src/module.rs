//! The root module every plugin library exports, and the component descriptions in it.

use abi_stable::library::RootModule;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RStr, RString, RVec};
use abi_stable::{declare_root_module_statics, package_version_strings, StableAbi};

use crate::traits::{SearchAlgorithmBox, SearchSpaceBox, SplitCriterionBox};
use crate::types::{AlgorithmSetup, ComponentKind, PluginResult};

/// Creates a search space from its configuration (JSON text, defaults already merged in).
pub type SpaceFactory = extern "C" fn(config: RStr<'_>) -> PluginResult<SearchSpaceBox>;
/// Creates a split criterion from its configuration.
pub type CriterionFactory = extern "C" fn(config: RStr<'_>) -> PluginResult<SplitCriterionBox>;
/// Creates a search algorithm for one sub-supernet.
pub type AlgorithmFactory = extern "C" fn(config: RStr<'_>, setup: &AlgorithmSetup) -> PluginResult<SearchAlgorithmBox>;

/// How to make a component; the variant is its kind.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy)]
pub enum ComponentFactory {
    // Written out, not through the aliases above: StableAbi's derive reads fn-pointer types
    // (their lifetimes) from the field itself.
    Space(extern "C" fn(config: RStr<'_>) -> PluginResult<SearchSpaceBox>),
    Criterion(extern "C" fn(config: RStr<'_>) -> PluginResult<SplitCriterionBox>),
    Algorithm(extern "C" fn(config: RStr<'_>, setup: &AlgorithmSetup) -> PluginResult<SearchAlgorithmBox>),
}

impl ComponentFactory {
    pub fn kind(&self) -> ComponentKind {
        match self {
            ComponentFactory::Space(_) => ComponentKind::Space,
            ComponentFactory::Criterion(_) => ComponentKind::Criterion,
            ComponentFactory::Algorithm(_) => ComponentKind::Algorithm,
        }
    }
}

/// One component a plugin library offers.
#[repr(C)]
#[derive(StableAbi, Clone)]
pub struct ComponentInfo {
    pub name: RString,
    pub version: RString,
    pub description: RString,
    /// The full default configuration as a JSON object. The host rejects user keys that are
    /// not in it, merges the user's values over it and hands the result to the factory.
    pub default_config: RString,
    pub factory: ComponentFactory,
}

impl ComponentInfo {
    pub fn kind(&self) -> ComponentKind {
        self.factory.kind()
    }
}

/// The root module of a plugin library. A prefix type: fields are only ever appended, so a
/// host can load plugins built against an older plugin-api of the same major version.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    /// [`crate::ABI_VERSION`] of the plugin-api the plugin was built with.
    pub abi_version: u32,
    /// [`crate::TORCH_ABI`] of the plugin-api the plugin was built with: tensors only cross
    /// between builds of the same tch and libtorch.
    pub torch_abi: RStr<'static>,
    pub plugin_name: RStr<'static>,
    /// The components, sorted by (kind, name).
    #[sabi(last_prefix_field)]
    pub components: extern "C" fn() -> PluginResult<RVec<ComponentInfo>>,
}

impl RootModule for PluginModuleRef {
    declare_root_module_statics! {PluginModuleRef}
    const BASE_NAME: &'static str = "splitnas_plugin";
    const NAME: &'static str = "splitnas_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
