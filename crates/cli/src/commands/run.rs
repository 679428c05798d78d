//! `splitnas run CONFIG` and `splitnas resume RUN_DIR`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use splitnas_bench::compare::DEFAULT_BASE_CONFIG;
use splitnas_run::directory::RunDirectory;
use splitnas_run::overrides::ConfigOverride;
use splitnas_run::setup::resolve_component_defaults;
use splitnas_run::{RunOptions, RunSetup};

use crate::runtime::{PluginArgs, RuntimeArgs, SetArgs};

#[derive(Args)]
pub struct RunArgs {
    /// The run configuration (TOML), e.g. examples/quickstart.toml.
    #[arg(required_unless_present = "print_defaults")]
    config: Option<PathBuf>,
    /// Print the complete configuration (every key, the components' own keys included) of
    /// CONFIG, or of the quickstart when none is given, with the --set keys applied, and the
    /// keys of every other loaded component; then exit without running.
    #[arg(long)]
    print_defaults: bool,
    #[command(flatten)]
    set: SetArgs,
    /// The run's seed: `--set run.seed=N`, applied after the --set keys.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(..=i64::MAX as u64))]
    seed: Option<u64>,
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// Directory for run directories; overrides `run.output_dir`.
    #[arg(long)]
    output_dir: Option<PathBuf>,
    /// Replace an existing run directory of the same name.
    #[arg(long)]
    overwrite: bool,
}

/// `splitnas resume RUN_DIR`: the run goes on with the configuration it recorded in
/// RUN_DIR/config.toml; `--set` and `--seed`, which would change it half-way, are refused.
#[derive(Args)]
pub struct ResumeArgs {
    /// The run directory (runs/<name>).
    run_dir: PathBuf,
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// Refused (hidden): accepted only to say why.
    #[arg(long = "set", value_name = "KEY=VALUE", hide = true)]
    set: Vec<String>,
    /// Refused (hidden): accepted only to say why.
    #[arg(long, hide = true)]
    seed: Option<String>,
}

impl RunArgs {
    /// `--seed N` as the override it stands for (none without it).
    fn seed_override(&self) -> Vec<ConfigOverride> {
        self.seed
            .map(|seed| ConfigOverride { path: vec!["run".into(), "seed".into()], value: toml::Value::Integer(seed as i64) })
            .into_iter()
            .collect()
    }
}

pub fn run(plugins: &PluginArgs, args: RunArgs) -> Result<ExitCode> {
    let seed = args.seed_override();
    if args.print_defaults {
        return print_defaults(plugins, args.config.as_deref(), &args.set, &seed);
    }
    let path = args.config.expect("clap requires CONFIG without --print-defaults");
    let config = args.set.load(&path, &seed)?;
    let options = RunOptions {
        output_dir: args.output_dir,
        overwrite: args.overwrite,
        invocation: Some(args.set.invocation(Some(&path), &seed)),
        ..args.runtime.run_options()
    };
    let setup = RunSetup::new(config, plugins.discover(), &options).map_err(|error| args.set.blame(&seed, error))?;
    let directory = setup.directory.clone();
    splitnas_run::run(setup, &options)?;
    print_report(&directory)
}

pub fn resume(plugins: &PluginArgs, args: ResumeArgs) -> Result<ExitCode> {
    let given: Vec<String> = args.set.iter().map(|set| format!("--set {set}")).chain(args.seed.iter().map(|seed| format!("--seed {seed}"))).collect();
    if !given.is_empty() {
        let config = RunDirectory::new(&args.run_dir).config_path();
        bail!(
            "resume takes no {}: a resumed run keeps the configuration it started with ({}), or its second half would not belong \
             to its first. For other keys start a new run: splitnas run {} --set run.name=NEW {}",
            given.join(" "),
            config.display(),
            config.display(),
            given.join(" ")
        );
    }
    splitnas_run::resume(&args.run_dir, plugins.discover(), &args.runtime.run_options())?;
    print_report(&RunDirectory::new(&args.run_dir))
}

pub(crate) fn print_report(directory: &RunDirectory) -> Result<ExitCode> {
    let path = directory.report_markdown_path();
    print!("{}", std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?);
    println!("\nrun directory: {}", directory.path().display());
    Ok(ExitCode::SUCCESS)
}

fn print_defaults(plugins: &PluginArgs, path: Option<&Path>, set: &SetArgs, seed: &[ConfigOverride]) -> Result<ExitCode> {
    let registry = plugins.discover();
    let config = match path {
        Some(path) => set.load(path, seed)?,
        None => SetArgs { set: set.set.iter().chain(seed).cloned().collect() }.load_builtin(DEFAULT_BASE_CONFIG, "examples/quickstart.toml")?,
    };
    let resolved = resolve_component_defaults(config, &registry).map_err(|error| set.blame(seed, error))?;
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
