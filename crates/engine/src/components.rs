//! Instantiating components from the registry with validated configuration.

use abi_stable::std_types::RStr;
use serde_json::{Map, Value};
use splitnas_plugin_api::{
    AlgorithmSetup, ComponentFactory, ComponentKind, ErrorKind, PluginError, SearchAlgorithmBox, SearchSpaceBox, SpaceSetup, SplitCriterionBox,
};

use crate::error::SearchError;
use crate::plugins::{PluginRegistry, UnknownComponent};

#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error(transparent)]
    Unknown(#[from] UnknownComponent),
    #[error("{kind} `{name}`: unknown config key `{key}` (known keys: {known})")]
    UnknownKey { kind: ComponentKind, name: String, key: String, known: String },
    #[error("{kind} `{name}`: its configuration must be a table of keys, got {found}")]
    NotATable { kind: ComponentKind, name: String, found: String },
    #[error("{kind} `{name}` publishes a default configuration that is not a JSON object: {detail}")]
    BadDefaults { kind: ComponentKind, name: String, detail: String },
    #[error("{kind} `{name}` (plugin file {file}): {error}")]
    Plugin { kind: ComponentKind, name: String, file: String, error: PluginError },
}

/// Merges `user` over the component's `defaults`, rejecting keys the defaults do not have.
/// Nested tables merge key by key under the same rule.
pub fn merge_config(kind: ComponentKind, name: &str, defaults: &str, user: &Value) -> Result<Value, ComponentError> {
    let defaults: Value =
        serde_json::from_str(defaults).map_err(|error| ComponentError::BadDefaults { kind, name: name.to_string(), detail: error.to_string() })?;
    let Value::Object(mut merged) = defaults else {
        return Err(ComponentError::BadDefaults { kind, name: name.to_string(), detail: "not an object".to_string() });
    };
    match user {
        Value::Null => {}
        Value::Object(user) => merge_into(kind, name, "", &mut merged, user)?,
        other => return Err(ComponentError::NotATable { kind, name: name.to_string(), found: other.to_string() }),
    }
    Ok(Value::Object(merged))
}

fn merge_into(
    kind: ComponentKind,
    name: &str,
    prefix: &str,
    target: &mut Map<String, Value>,
    user: &Map<String, Value>,
) -> Result<(), ComponentError> {
    for (key, value) in user {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match target.get_mut(key) {
            None => {
                let mut known: Vec<&str> = target.keys().map(String::as_str).collect();
                known.sort();
                return Err(ComponentError::UnknownKey { kind, name: name.to_string(), key: path, known: known.join(", ") });
            }
            Some(Value::Object(inner)) if value.is_object() => merge_into(kind, name, &path, inner, value.as_object().expect("checked"))?,
            Some(slot) => *slot = value.clone(),
        }
    }
    Ok(())
}

fn plugin_error(registry: &PluginRegistry, kind: ComponentKind, name: &str, error: PluginError) -> ComponentError {
    let file = registry.get(kind, name).map(|c| c.path.display().to_string()).unwrap_or_default();
    ComponentError::Plugin { kind, name: name.to_string(), file, error }
}

/// Creates a split criterion.
pub fn create_criterion(registry: &PluginRegistry, name: &str, user: &Value) -> Result<SplitCriterionBox, ComponentError> {
    let kind = ComponentKind::Criterion;
    let component = registry.get(kind, name)?;
    let config = merge_config(kind, name, &component.info.default_config, user)?.to_string();
    let ComponentFactory::Criterion(factory) = component.info.factory else { unreachable!("registry keys by kind") };
    factory(RStr::from_str(&config)).into_result().map_err(|error| plugin_error(registry, kind, name, error))
}

/// Creates a search space and tells it what the data is (`SearchSpace::configure`).
///
/// A space built before ABI 1.1 cannot be told: it is created again with the data's
/// `classes` and `input_channels` as configuration keys where it publishes them, as hosts
/// before ABI 1.1 did, and its own default stand-alone size.
pub fn create_space(registry: &PluginRegistry, name: &str, user: &Value, setup: &SpaceSetup) -> Result<SearchSpaceBox, ComponentError> {
    let kind = ComponentKind::Space;
    let component = registry.get(kind, name)?;
    let ComponentFactory::Space(factory) = component.info.factory else { unreachable!("registry keys by kind") };
    let create = |user: &Value| -> Result<SearchSpaceBox, ComponentError> {
        let config = merge_config(kind, name, &component.info.default_config, user)?.to_string();
        factory(RStr::from_str(&config)).into_result().map_err(|error| plugin_error(registry, kind, name, error))
    };
    let mut space = create(user)?;
    match space.configure(setup).into_result() {
        Ok(()) => Ok(space),
        Err(error) if error.kind == ErrorKind::Unsupported => {
            let defaults: Value = serde_json::from_str(&component.info.default_config).unwrap_or(Value::Null);
            let mut legacy = if user.is_object() { user.clone() } else { Value::Object(Map::new()) };
            for (key, value) in [("classes", setup.classes), ("input_channels", setup.input_channels)] {
                if defaults.get(key).is_some() {
                    legacy[key] = Value::from(value);
                }
            }
            create(&legacy)
        }
        Err(error) => Err(plugin_error(registry, kind, name, error)),
    }
}

/// A factory of search algorithms (one per sub-supernet), with the user's keys validated once.
pub fn algorithm_factory(
    registry: &PluginRegistry,
    name: &str,
    user: &Value,
) -> Result<impl Fn(&AlgorithmSetup) -> Result<SearchAlgorithmBox, SearchError>, ComponentError> {
    let kind = ComponentKind::Algorithm;
    let component = registry.get(kind, name)?;
    let merged = merge_config(kind, name, &component.info.default_config, user)?.to_string();
    let ComponentFactory::Algorithm(factory) = component.info.factory else { unreachable!("registry keys by kind") };
    let (name, file) = (name.to_string(), component.path.display().to_string());
    Ok(move |setup: &AlgorithmSetup| {
        factory(RStr::from_str(&merged), setup)
            .into_result()
            .map_err(|error| SearchError::Plugin { component: format!("algorithm `{name}` ({file})"), error })
    })
}
