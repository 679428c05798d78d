//! `splitnas train --space S GENOTYPE [--config C]`: one architecture trained stand-alone.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use splitnas_bench::compare::DEFAULT_BASE_CONFIG;
use splitnas_run::config::{ComponentChoice, RunConfig};
use splitnas_run::{RunOptions, RunSetup};

use crate::commands::run::print_report;
use crate::runtime::{PluginArgs, RuntimeArgs};

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
    runtime: RuntimeArgs,
}

/// `train` selects nothing: `[final] select_by` is set to `supernet`, the one choice that
/// every `train_on` allows, so that a search configuration with `train_on = "train+valid"`
/// trains here as it is.
fn without_selection(text: &str, path: &Path) -> Result<String> {
    let mut table: toml::Table = text.parse().with_context(|| format!("{}: not valid TOML", path.display()))?;
    let section = table.entry("final").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(section) = section.as_table_mut() {
        section.insert("select_by".to_string(), toml::Value::String("supernet".to_string()));
    }
    Ok(toml::to_string(&table)?)
}

/// FNV-1a: a short stable name for a genotype (not a security hash).
fn genotype_hash(genotype: &str) -> u32 {
    genotype.bytes().fold(0x811c_9dc5u32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193))
}

pub fn execute(plugins: &PluginArgs, args: TrainArgs) -> Result<ExitCode> {
    let (text, path) = match &args.config {
        Some(path) => (std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?, path.clone()),
        None => (DEFAULT_BASE_CONFIG.to_string(), PathBuf::from("examples/quickstart.toml")),
    };
    let mut config = RunConfig::from_toml(&without_selection(&text, &path)?, &path)?;
    if let Some(space) = &args.space {
        if *space != config.space.name {
            config.space = ComponentChoice { name: space.clone(), config: Default::default() };
        }
    }
    config.run.name = args.name.clone().unwrap_or_else(|| format!("train-{}-{:08x}", config.space.name, genotype_hash(&args.genotype)));
    let options = RunOptions { output_dir: args.output_dir, overwrite: args.overwrite, ..args.runtime.run_options() };
    let setup = RunSetup::new(config, plugins.discover(), &options)?;
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
