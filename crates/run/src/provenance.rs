//! Where a run came from, in `provenance.json`: which plugin builds made it (recorded when the
//! run starts, checked when it resumes, compared by `splitnas compare` before it reuses a run)
//! and how it was asked for on the command line (the `--set` overrides above all).
//!
//! The overrides are recorded here rather than in `config.toml`: that file is the resolved
//! configuration alone and stays a configuration one can run again (`splitnas run
//! runs/<name>/config.toml`); how it came about (a file plus overrides) is provenance, kept with
//! the builds that `resume` and `compare` already read.

use std::path::PathBuf;

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

/// `provenance.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "ProvenanceFile")]
pub struct Provenance {
    /// The plugin builds of the components the run uses.
    pub builds: Vec<ComponentBuild>,
    /// The command that started the run; absent for runs started through the library.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation: Option<Invocation>,
}

/// How a run was asked for on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invocation {
    /// The whole command line, as given.
    pub command_line: String,
    /// The configuration file it named; absent where the command used its built-in base
    /// configuration (`compare` without `--config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_file: Option<PathBuf>,
    /// The configuration keys set on the command line, in the order applied: every `--set`
    /// (and `run --seed N` as `run.seed=N`), each written as a `--set` that means the same.
    /// `config.toml` holds the configuration they resulted in.
    pub overrides: Vec<String>,
}

/// What `provenance.json` held: the builds alone before invocations were recorded.
#[derive(Deserialize)]
#[serde(untagged)]
enum ProvenanceFile {
    Builds(Vec<ComponentBuild>),
    Record {
        builds: Vec<ComponentBuild>,
        #[serde(default)]
        invocation: Option<Invocation>,
    },
}

impl From<ProvenanceFile> for Provenance {
    fn from(file: ProvenanceFile) -> Self {
        match file {
            ProvenanceFile::Builds(builds) => Provenance { builds, invocation: None },
            ProvenanceFile::Record { builds, invocation } => Provenance { builds, invocation },
        }
    }
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
    fn provenance_reads_both_of_its_forms() {
        let builds = vec![build("gm", "aa")];
        let old: Provenance = serde_json::from_value(serde_json::to_value(&builds).unwrap()).unwrap();
        assert_eq!(old, Provenance { builds: builds.clone(), invocation: None });
        let invocation = Invocation {
            command_line: "splitnas run a.toml --set search.epochs=3".into(),
            config_file: Some("a.toml".into()),
            overrides: vec!["search.epochs=3".into()],
        };
        let new = Provenance { builds, invocation: Some(invocation) };
        let text = serde_json::to_string(&new).unwrap();
        assert!(text.contains(r#""overrides":["search.epochs=3"]"#), "{text}");
        assert_eq!(serde_json::from_str::<Provenance>(&text).unwrap(), new);
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
