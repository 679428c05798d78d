//! `splitnas train --space S GENOTYPE [--config C]`: one architecture trained stand-alone.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use splitnas_bench::compare::DEFAULT_BASE_CONFIG;
use splitnas_run::config::{ComponentChoice, RunConfig};
use splitnas_run::overrides::ConfigOverride;
use splitnas_run::{RunOptions, RunSetup};

use crate::commands::run::print_report;
use crate::runtime::{PluginArgs, RuntimeArgs, SetArgs};

#[derive(Args)]
pub struct TrainArgs {
    /// The architecture, in the space's genotype format (NB201: `|nor_conv_3x3~0|+|...|`).
    genotype: String,
    /// The search space; default: the configuration's.
    #[arg(long)]
    space: Option<String>,
    /// A run configuration: its `[data]`, `[space]` and `[final]` tables say how to train
    /// (the rest is ignored); default: examples/quickstart.toml as built into the binary.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The run directory's name; default: `train-<space>-<hash of the genotype>`.
    #[arg(long)]
    name: Option<String>,
    /// Directory for run directories; overrides `run.output_dir`.
    #[arg(long)]
    output_dir: Option<PathBuf>,
    /// Replace an existing run directory of the same name.
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    set: SetArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

/// FNV-1a: a short stable name for a genotype (not a security hash).
fn genotype_hash(genotype: &str) -> u32 {
    genotype.bytes().fold(0x811c_9dc5u32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193))
}

pub fn execute(plugins: &PluginArgs, args: TrainArgs) -> Result<ExitCode> {
    // `train` selects nothing: `select_by = "supernet"`, the one choice every `train_on`
    // allows, so that a search configuration with `train_on = "train+valid"` trains here as it is.
    let no_selection: Vec<ConfigOverride> = vec!["final.select_by=supernet".parse().map_err(|error: String| anyhow::anyhow!(error))?];
    let mut config = match &args.config {
        Some(path) => args.set.load(path, &no_selection)?,
        None => {
            let text = DEFAULT_BASE_CONFIG;
            let overrides: Vec<ConfigOverride> = args.set.set.iter().chain(&no_selection).cloned().collect();
            RunConfig::from_toml_with_overrides(text, Path::new("examples/quickstart.toml"), &overrides)?
        }
    };
    if let Some(space) = &args.space {
        if *space != config.space.name {
            config.space = ComponentChoice { name: space.clone(), config: Default::default() };
        }
    }
    config.run.name = args.name.clone().unwrap_or_else(|| format!("train-{}-{:08x}", config.space.name, genotype_hash(&args.genotype)));
    let options = RunOptions {
        output_dir: args.output_dir,
        overwrite: args.overwrite,
        invocation: Some(args.set.invocation(args.config.as_deref(), &no_selection)),
        ..args.runtime.run_options()
    };
    let setup = RunSetup::new(config, plugins.discover(), &options).map_err(|error| args.set.blame(&no_selection, error))?;
    let directory = setup.directory.clone();
    splitnas_run::train(setup, &args.genotype, &options)?;
    print_report(&directory)
}

#[cfg(test)]
mod tests {
    #[test]
    fn genotype_names_are_stable_and_differ() {
        assert_eq!(super::genotype_hash("a"), 0xe40c_292c); // FNV-1a's published value for "a"
        assert_ne!(super::genotype_hash("|none~0|"), super::genotype_hash("|skip_connect~0|"));
    }
}
