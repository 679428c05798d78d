//! Which plugin builds made a run: recorded in `provenance.json` when the run starts, checked
//! when it resumes, and compared by `splitnas compare` before it reuses a run.

use serde::{Deserialize, Serialize};
use splitnas_engine::plugins::{build_digest, PluginRegistry};
use splitnas_plugin_api::ComponentKind;

use crate::config::RunConfig;

/// One component a run used, and the build it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentBuild {
    pub kind: String,
    pub name: String,
    pub version: String,
    /// The plugin library the component was loaded from.
    pub file: String,
    /// SHA-256 of that file: another build of the same version differs here.
    pub build_sha256: String,
}

/// The builds of every component `config` names (space, algorithm, criterion if any).
pub fn component_builds(config: &RunConfig, registry: &PluginRegistry) -> anyhow::Result<Vec<ComponentBuild>> {
    let mut used = vec![(ComponentKind::Space, config.space.name.as_str()), (ComponentKind::Algorithm, config.algorithm.name.as_str())];
    if !config.split.is_one_shot() {
        used.push((ComponentKind::Criterion, config.split.criterion.as_str()));
    }
    used.into_iter()
        .map(|(kind, name)| {
            let component = registry.get(kind, name)?;
            let build_sha256 = build_digest(&component.path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", component.path.display()))?;
            Ok(ComponentBuild {
                kind: kind.to_string(),
                name: name.to_string(),
                version: component.info.version.to_string(),
                file: component.path.display().to_string(),
                build_sha256,
            })
        })
        .collect()
}

/// What differs between the builds a run recorded and the ones loaded now (empty: the same).
pub fn build_differences(recorded: &[ComponentBuild], current: &[ComponentBuild]) -> Vec<String> {
    let mut differences = Vec::new();
    for now in current {
        match recorded.iter().find(|then| then.kind == now.kind && then.name == now.name) {
            None => differences.push(format!("{} `{}` was not used by the run", now.kind, now.name)),
            Some(then) if then.build_sha256 != now.build_sha256 => differences.push(format!(
                "{} `{}`: the run used version {} from {} (sha256 {}…), now version {} from {} (sha256 {}…)",
                now.kind,
                now.name,
                then.version,
                then.file,
                &then.build_sha256[..12.min(then.build_sha256.len())],
                now.version,
                now.file,
                &now.build_sha256[..12.min(now.build_sha256.len())]
            )),
            Some(_) => {}
        }
    }
    differences
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(name: &str, sha: &str) -> ComponentBuild {
        ComponentBuild {
            kind: "criterion".into(),
            name: name.into(),
            version: "0.1.0".into(),
            file: format!("lib{name}.so"),
            build_sha256: sha.into(),
        }
    }

    #[test]
    fn another_build_of_the_same_version_is_a_difference() {
        assert!(build_differences(&[build("gm", "aa")], &[build("gm", "aa")]).is_empty());
        let differences = build_differences(&[build("gm", "aa")], &[build("gm", "bb")]);
        assert_eq!(differences.len(), 1);
        assert!(differences[0].contains("`gm`") && differences[0].contains("sha256 aa") && differences[0].contains("sha256 bb"), "{differences:?}");
        assert_eq!(build_differences(&[build("gm", "aa")], &[build("random", "aa")]).len(), 1);
    }
}
