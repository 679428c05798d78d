//! The flags every command that loads plugins, trains or reads a run configuration shares,
//! defined once.

use std::path::{Path, PathBuf};

use clap::Args;
use splitnas_engine::components::ComponentError;
use splitnas_engine::plugins::{PluginRegistry, PluginSearch};
use splitnas_plugin_api::ComponentKind;
use splitnas_run::config::{ConfigError, RunConfig};
use splitnas_run::overrides::ConfigOverride;
use splitnas_run::provenance::Invocation;
use splitnas_run::RunOptions;

/// Where plugins come from (global: every subcommand takes it).
#[derive(Args, Debug, Clone)]
pub struct PluginArgs {
    /// Directory with plugin libraries (repeatable); searched before SPLITNAS_PLUGIN_PATH and
    /// the default location next to the executable.
    #[arg(long = "plugin-dir", value_name = "DIR", global = true)]
    pub plugin_dirs: Vec<PathBuf>,
}

impl PluginArgs {
    /// Every plugin found, with a warning line per file that did not load.
    pub fn discover(&self) -> PluginRegistry {
        let registry = self.discover_silently();
        for line in registry.warnings() {
            eprintln!("warning: {line}");
        }
        registry
    }

    /// The same, without the warnings (for the second and later registries of one command).
    pub fn discover_silently(&self) -> PluginRegistry {
        PluginRegistry::discover(&PluginSearch::from_cli(&self.plugin_dirs))
    }
}

/// How a command that trains runs.
#[derive(Args, Debug, Clone)]
pub struct RuntimeArgs {
    /// `cpu`, `cuda`, `cuda:N` or `auto`; overrides `run.device`.
    #[arg(long)]
    pub device: Option<String>,
    /// CPU threads for libtorch; overrides `run.threads` (without either, splitnas chooses
    /// from the free CPUs, again at every epoch).
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

impl RuntimeArgs {
    pub fn run_options(&self) -> RunOptions {
        RunOptions { device: self.device.clone(), threads: self.threads, quiet: self.quiet, ..RunOptions::default() }
    }
}

/// Configuration keys from the command line: every command that reads a run configuration
/// takes them.
#[derive(Args, Debug, Clone, Default)]
pub struct SetArgs {
    /// Set a configuration key over the file, e.g. `--set search.epochs=10`, `--set
    /// split.epochs=[2,4]`, `--set run.name="x"`, `--set algorithm.name=gdas`, `--set
    /// space.channels=8` (repeatable, applied in order). The value is TOML; a bare word is a
    /// string. Checked like the file: an unknown key or a wrong type fails naming the --set.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<ConfigOverride>,
}

impl SetArgs {
    /// The configuration in `path` with these keys (then `extra`) set.
    pub fn load(&self, path: &Path, extra: &[ConfigOverride]) -> Result<RunConfig, ConfigError> {
        RunConfig::from_file_with_overrides(path, &self.with(extra))
    }

    /// A built-in configuration (`text`, known as `name`) with these keys set.
    pub fn load_builtin(&self, text: &str, name: &str) -> Result<RunConfig, ConfigError> {
        RunConfig::from_toml_with_overrides(text, Path::new(name), &self.set)
    }

    /// What the runs a command starts record of it (`provenance.json`).
    pub fn invocation(&self, config_file: Option<&Path>, extra: &[ConfigOverride]) -> Invocation {
        Invocation {
            command_line: command_line(),
            config_file: config_file.map(Path::to_path_buf),
            overrides: self.with(extra).iter().map(ToString::to_string).collect(),
        }
    }

    /// `error` with the `--set` that caused it named, where it is a component's unknown key
    /// (`--set space.chanels=8`): the file's keys are checked against the plugin's published
    /// defaults only once the plugins are loaded, after the configuration itself was read.
    pub fn blame(&self, extra: &[ConfigOverride], error: anyhow::Error) -> anyhow::Error {
        let Some(ComponentError::UnknownKey { kind, key, .. }) = error.downcast_ref::<ComponentError>() else {
            return error;
        };
        let table = match kind {
            ComponentKind::Space => "space",
            ComponentKind::Algorithm => "algorithm",
            ComponentKind::Criterion => "split",
        };
        let culprit = self.with(extra).into_iter().rev().find(|set| set.path.len() > 1 && set.path[0] == table && set.path[1..].join(".") == *key);
        match culprit {
            Some(set) => error.context(format!("--set {set}")),
            None => error,
        }
    }

    fn with(&self, extra: &[ConfigOverride]) -> Vec<ConfigOverride> {
        self.set.iter().chain(extra).cloned().collect()
    }
}

/// The command line as given, for tables that record how they were made.
pub fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_component_key_names_its_set() {
        let args = SetArgs { set: vec!["space.chanels=8".parse().unwrap(), "split.gm.nested=1".parse().unwrap()] };
        let unknown = |kind, key: &str| {
            anyhow::Error::new(ComponentError::UnknownKey { kind, name: "x".into(), key: key.into(), known: "channels".into() }).context("outer")
        };
        let blamed = args.blame(&[], unknown(ComponentKind::Space, "chanels"));
        assert!(
            crate::commands::error_chain(&blamed).starts_with("--set space.chanels=8: outer: space `x`: unknown config key `chanels`"),
            "{blamed:#}"
        );
        let blamed = args.blame(&[], unknown(ComponentKind::Criterion, "gm.nested"));
        assert!(blamed.to_string().starts_with("--set split.gm.nested=1"), "{blamed:#}");
        let from_the_file = args.blame(&[], unknown(ComponentKind::Algorithm, "chanels"));
        assert_eq!(from_the_file.to_string(), "outer", "a key from the file is the file's");
    }
}
