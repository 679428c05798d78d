//! The flags every command that loads plugins or trains shares, defined once.

use std::path::PathBuf;

use clap::Args;
use splitnas_engine::plugins::{PluginRegistry, PluginSearch};
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
    /// CPU threads for libtorch; overrides `run.threads`.
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

/// The command line as given, for tables that record how they were made.
pub fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}
