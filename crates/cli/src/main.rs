//! The `splitnas` command line: one module per command under `commands/`, the flags they
//! share in `runtime.rs`.

mod commands;
mod runtime;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::runtime::PluginArgs;

#[derive(Parser)]
#[command(name = "splitnas", version, about = "Few-shot neural architecture search with gradient-matching supernet splitting")]
struct Cli {
    #[command(flatten)]
    plugins: PluginArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect plugins: what is loaded, and why a file is not.
    #[command(subcommand)]
    Plugins(commands::plugins::PluginsCommand),
    /// Search: train the supernet, derive an architecture, train it stand-alone, report.
    Run(commands::run::RunArgs),
    /// Run the same search under several split criteria and tabulate the results.
    Compare(commands::compare::CompareArgs),
    /// Train one architecture stand-alone under `[final]`, and export its weights.
    Train(commands::train::TrainArgs),
    /// A leaf's subnet with the supernet's weights, no retraining (OFA): BN re-estimated, evaluated, exported.
    Extract(commands::extract::ExtractArgs),
    /// Continue an interrupted run (search or `train`) from its last checkpoint.
    Resume(commands::run::ResumeArgs),
    /// Print the split tree of a run (text, --dot, or --svg FILE).
    Tree(commands::tree::TreeArgs),
    /// Parameters and FLOPs of one architecture's stand-alone network.
    Arch(commands::arch::ArchArgs),
    /// Measure search quality and speed: ground-truth tables, ranking, step timing, gm repeats.
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
    /// Image folders: generate an ImageNet-like set, check one for unreadable files.
    #[command(subcommand)]
    Data(commands::data::DataCommand),
    /// What this process can run on (CUDA, threads) and the libtorch it was built for.
    Info(commands::info::InfoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any tensor work: as many libtorch threads as there are free CPUs (see
    // splitnas_engine::threads); `run.threads` / `--threads` replace the choice later.
    splitnas_engine::threads::apply_automatic();
    match dispatch(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", commands::error_chain(&error));
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    let plugins = &cli.plugins;
    match cli.command {
        Command::Plugins(command) => commands::plugins::execute(plugins, command),
        Command::Run(args) => commands::run::run(plugins, args),
        Command::Train(args) => commands::train::execute(plugins, args),
        Command::Extract(args) => commands::extract::execute(plugins, args),
        Command::Resume(args) => commands::run::resume(plugins, args),
        Command::Compare(args) => commands::compare::execute(plugins, args),
        Command::Tree(args) => commands::tree::execute(args),
        Command::Arch(args) => commands::arch::execute(plugins, args),
        Command::Bench(command) => commands::bench::execute(plugins, command),
        Command::Data(command) => commands::data::execute(command),
        Command::Info(args) => commands::info::execute(args),
    }
}
