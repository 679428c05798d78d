//! `splitnas run CONFIG` and `splitnas resume RUN_DIR`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use splitnas_bench::compare::DEFAULT_BASE_CONFIG;
use splitnas_run::config::RunConfig;
use splitnas_run::directory::RunDirectory;
use splitnas_run::setup::resolve_component_defaults;
use splitnas_run::{RunOptions, RunSetup};

use crate::runtime::{PluginArgs, RuntimeArgs};

#[derive(Args)]
pub struct RunArgs {
    /// The run configuration (TOML), e.g. examples/quickstart.toml.
    #[arg(required_unless_present = "print_defaults")]
    config: Option<PathBuf>,
    /// Print the complete configuration (every key, the components' own keys included) of
    /// CONFIG, or of the quickstart when none is given, and the keys of every other loaded
    /// component; then exit without running.
    #[arg(long)]
    print_defaults: bool,
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// Directory for run directories; overrides `run.output_dir`.
    #[arg(long)]
    output_dir: Option<PathBuf>,
    /// Replace an existing run directory of the same name.
    #[arg(long)]
    overwrite: bool,
}

#[derive(Args)]
pub struct ResumeArgs {
    /// The run directory (runs/<name>).
    run_dir: PathBuf,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

pub fn run(plugins: &PluginArgs, args: RunArgs) -> Result<ExitCode> {
    if args.print_defaults {
        return print_defaults(plugins, args.config.as_deref());
    }
    let path = args.config.expect("clap requires CONFIG without --print-defaults");
    let config = RunConfig::from_file(&path)?;
    let options = RunOptions { output_dir: args.output_dir, overwrite: args.overwrite, ..args.runtime.run_options() };
    let setup = RunSetup::new(config, plugins.discover(), &options)?;
    let directory = setup.directory.clone();
    splitnas_run::run(setup, &options)?;
    print_report(&directory)
}

pub fn resume(plugins: &PluginArgs, args: ResumeArgs) -> Result<ExitCode> {
    splitnas_run::resume(&args.run_dir, plugins.discover(), &args.runtime.run_options())?;
    print_report(&RunDirectory::new(&args.run_dir))
}

pub(crate) fn print_report(directory: &RunDirectory) -> Result<ExitCode> {
    let path = directory.report_markdown_path();
    print!("{}", std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?);
    println!("\nrun directory: {}", directory.path().display());
    Ok(ExitCode::SUCCESS)
}

fn print_defaults(plugins: &PluginArgs, path: Option<&Path>) -> Result<ExitCode> {
    let registry = plugins.discover();
    let config = match path {
        Some(path) => RunConfig::from_file(path)?,
        None => RunConfig::from_toml(DEFAULT_BASE_CONFIG, Path::new("examples/quickstart.toml"))?,
    };
    let resolved = resolve_component_defaults(config, &registry)?;
    print!("{}", toml::to_string_pretty(&resolved)?);
    let chosen = [&resolved.space.name, &resolved.algorithm.name, &resolved.split.criterion];
    let others: Vec<_> = registry.components().filter(|c| !chosen.contains(&&c.info.name.to_string())).collect();
    if !others.is_empty() {
        println!("\n# The other loaded components and their keys (name one in [space], [algorithm] or [split]):");
        for component in others {
            println!("# {} `{}`: {}", component.info.kind(), component.info.name, component.info.default_config);
        }
    }
    Ok(ExitCode::SUCCESS)
}
