//! `splitnas compare`: the same search under several split criteria and seeds.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use splitnas_bench::compare::{compare, render_ranking_table, render_table, BootstrapOptions, CompareRequest, DEFAULT_BASE_CONFIG};
use splitnas_bench::ranking::RankingOptions;
use splitnas_run::RunOptions;

use crate::runtime::{PluginArgs, RuntimeArgs, SetArgs};

#[derive(Args)]
pub struct CompareArgs {
    /// Split criteria to compare; `none` is one-shot.
    #[arg(long, value_delimiter = ',', default_value = "gm,exhaustive,random,none")]
    criteria: Vec<String>,
    /// Search algorithm (overrides the base configuration's).
    #[arg(long = "algo")]
    algorithm: Option<String>,
    /// Search space (overrides the base configuration's).
    #[arg(long)]
    space: Option<String>,
    /// Seeds, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0,1")]
    seeds: Vec<u64>,
    /// Base run configuration; default: examples/quickstart.toml as built into the binary.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory for the runs (one per criterion and seed); finished runs are reused.
    #[arg(long, default_value = "runs/compare")]
    output_dir: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// A ground-truth table (.json/.csv): adds ranking-quality columns (see `bench ranking`)
    /// and writes ranking-tau.svg and ranking-scatter.svg into the output directory.
    #[arg(long)]
    table: Option<PathBuf>,
    #[command(flatten)]
    ranking: RankingEvaluationArgs,
    /// Bootstrap replicates for the ranking columns' confidence intervals and the paired
    /// comparison (resampling architectures, table seeds and search seeds); 0 leaves them out.
    #[arg(long, default_value_t = BootstrapOptions::default().replicates)]
    bootstrap: usize,
    /// Confidence of the bootstrap intervals.
    #[arg(long, default_value_t = BootstrapOptions::default().confidence)]
    confidence: f64,
    /// The criterion every other one is compared with seed by seed (paired by seed).
    #[arg(long, default_value_t = BootstrapOptions::default().reference)]
    reference: String,
    /// Keys of the base configuration (`--set KEY=VALUE`, as for `run`); the criterion, the
    /// seed and the run name are then set per run.
    #[command(flatten)]
    set: SetArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

pub fn execute(plugins: &PluginArgs, args: CompareArgs) -> Result<ExitCode> {
    let base = match &args.config {
        Some(path) => args.set.load(path, &[])?,
        None => args.set.load_builtin(DEFAULT_BASE_CONFIG, "examples/quickstart.toml")?,
    };
    let request = CompareRequest {
        criteria: args.criteria,
        space: args.space,
        algorithm: args.algorithm,
        seeds: args.seeds,
        output_dir: args.output_dir,
        table: args.table,
        ranking: args.ranking.options(),
        bootstrap: BootstrapOptions {
            replicates: args.bootstrap,
            confidence: args.confidence,
            reference: args.reference,
            ..BootstrapOptions::default()
        },
    };
    if !(args.confidence > 0.0 && args.confidence < 1.0) {
        anyhow::bail!("--confidence {} is not between 0 and 1 (e.g. 0.95)", args.confidence);
    }
    let options = RunOptions { invocation: Some(args.set.invocation(args.config.as_deref(), &[])), ..args.runtime.run_options() };
    let mut first = true;
    let registry = || {
        if std::mem::take(&mut first) {
            plugins.discover()
        } else {
            plugins.discover_silently()
        }
    };
    let rows = compare(&base, &request, registry, &options).map_err(|error| args.set.blame(&[], error))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", render_table(&rows));
        let ranking = render_ranking_table(&rows);
        if !ranking.is_empty() {
            println!();
            print!("{ranking}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How a supernet evaluates the architectures of a table (`bench ranking`, `compare --table`).
#[derive(Args, Clone)]
pub struct RankingEvaluationArgs {
    /// Valid batches per architecture; 0 evaluates on the whole valid split.
    #[arg(long, default_value_t = RankingOptions::default().eval_batches)]
    eval_batches: usize,
    /// Training batches that re-estimate BatchNorm statistics per architecture.
    #[arg(long, default_value_t = RankingOptions::default().recalibration_batches)]
    recalibration_batches: usize,
    /// The k of top-k precision, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = RankingOptions::default().top_k)]
    top_k: Vec<usize>,
}

impl RankingEvaluationArgs {
    pub fn options(&self) -> RankingOptions {
        RankingOptions { eval_batches: self.eval_batches, recalibration_batches: self.recalibration_batches, top_k: self.top_k.clone() }
    }
}
