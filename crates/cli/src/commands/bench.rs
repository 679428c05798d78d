//! `splitnas bench ...`: ground truth, ranking, conversion of published tables, step timing,
//! gradient-matching repeats.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use splitnas_bench::data::{render_data_report, run_data_benchmark, DataBenchOptions};
use splitnas_bench::external::{convert_nb201, Nb201Selection};
use splitnas_bench::gm_repeats::{parse_json_object, render_seed, render_summary, run_gm_repeats, GmRepeatsRequest, SeedList};
use splitnas_bench::ground_truth::{parse_worker, run_ground_truth, GroundTruthRequest, Selection};
use splitnas_bench::latency::{measure_latency_table, LatencyOptions, LatencySubject};
use splitnas_bench::nb201_cells::isomorphism_classes;
use splitnas_bench::ranking::{rank_run, render_ranking};
use splitnas_bench::step::{run_step_benchmark, StepOptions};
use splitnas_bench::table::GroundTruthTable;
use splitnas_engine::checkpoint::write_json;
use splitnas_engine::components::{create_space, merge_config};
use splitnas_engine::device::DeviceChoice;
use splitnas_plugin_api::{ComponentKind, SpaceSetup};

use crate::commands::compare::RankingEvaluationArgs;
use crate::runtime::{command_line, PluginArgs, RuntimeArgs, SetArgs};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Train many architectures stand-alone under one protocol and write their accuracies
    /// (table.json, table.csv). Resumable: run the same command again to continue.
    GroundTruth(GroundTruthArgs),
    /// How well a finished run's supernet (its leaves) ranks the architectures of a table.
    Ranking(RankingArgs),
    /// Group an NB201 table's genotypes into isomorphism classes (cells that build the same
    /// network: `none` edges, dead nodes and term order removed) and list the shared ones
    /// with their accuracies.
    Isomorphic(IsomorphicArgs),
    /// Convert a NAS-Bench-201 (.pth) or NATS-Bench topology (.pickle.pbz2) file to a table.
    ConvertNb201(ConvertArgs),
    /// Time one supernet step (darts, spos, gm) with the flags and JSON lines of
    /// benchmarks/step/reference_nb201.py, for benchmarks/step/compare.py.
    Step(StepOptions),
    /// Adaptive gradient-matching repeats against a fixed R: both decide the root split on
    /// the same recorded gradients, per seed; agreement and cost are reported.
    GmRepeats(GmRepeatsArgs),
    /// Time every option of a space in its context (input shape, stride) on this device and
    /// write a latency lookup table for `[search] option_cost = "latency"`.
    Latency(LatencyArgs),
    /// Images/s of the image-folder loader against torchvision's ImageFolder + DataLoader
    /// (same transforms, same workers; interleaved rounds, medians), its memory over the
    /// epoch, and a search step's time fed by it against a preloaded batch.
    Data(DataArgs),
}

#[derive(Args)]
pub struct DataArgs {
    #[command(flatten)]
    options: DataBenchOptions,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// CPU threads for libtorch (the step measurement; default: chosen from free CPUs).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args)]
pub struct LatencyArgs {
    /// The search space plugin.
    #[arg(long)]
    space: String,
    /// The space's configuration keys (JSON object) as the run's `[space]` table sets them,
    /// e.g. '{"width_multiplier": 0.5}'; the options are timed at those widths.
    #[arg(long, value_name = "JSON", value_parser = parse_json_object)]
    space_config: Option<serde_json::Value>,
    /// Side of the square input images (the run's data): the options' shapes follow from it.
    #[arg(long, default_value_t = 32)]
    image: u32,
    /// Image channels.
    #[arg(long, default_value_t = 3)]
    input_channels: u32,
    /// Output classes.
    #[arg(long, default_value_t = 10)]
    classes: u32,
    /// `cpu`, `cuda`, `cuda:N` or `auto`: the device the search's architecture is meant for.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// CPU threads for libtorch while timing (default: libtorch's own).
    #[arg(long)]
    threads: Option<usize>,
    /// Images per timed forward pass (1: ProxylessNAS's mobile setting).
    #[arg(long, default_value_t = LatencyOptions::default().batch_size, value_parser = clap::value_parser!(i64).range(1..))]
    batch_size: i64,
    /// Untimed forward passes before each option's timed ones.
    #[arg(long, default_value_t = LatencyOptions::default().warmup)]
    warmup: usize,
    /// Timed forward passes per option and place; the median is kept.
    #[arg(long, default_value_t = LatencyOptions::default().repeats as u64, value_parser = clap::value_parser!(u64).range(1..))]
    repeats: u64,
    /// The table to write (JSON).
    #[arg(long, short)]
    output: PathBuf,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args)]
pub struct GmRepeatsArgs {
    /// A run configuration with a few-shot [split] table: its root is trained up to the first
    /// split epoch and split into that split's number of groups.
    config: PathBuf,
    /// Study seeds: `A..B` (B excluded) or a comma-separated list. Each seed records its own
    /// batches and context samples.
    #[arg(long, default_value = "0..20")]
    seeds: SeedList,
    /// R: the fixed configuration's repeats and the Gram samples recorded per candidate.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    reference_repeats: u32,
    /// gm keys (JSON object) merged over {"repeats": R, "adaptive": true}, e.g. '{"confidence": 0.95}'.
    #[arg(long, value_name = "JSON", value_parser = parse_json_object)]
    adaptive: Option<serde_json::Value>,
    /// A whole gm configuration (JSON object) to compare with the fixed one instead of the
    /// adaptive one, e.g. '{"repeats": 10}'.
    #[arg(long, value_name = "JSON", value_parser = parse_json_object, conflicts_with = "adaptive")]
    adaptive_config_raw: Option<serde_json::Value>,
    /// Also write every seed's record and the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Keep each seed's recording here (seed-N.json) and reuse it when present: other gm
    /// configurations can then be studied on the same streams in seconds.
    #[arg(long, value_name = "DIR")]
    recordings: Option<PathBuf>,
    #[command(flatten)]
    set: SetArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

#[derive(Args)]
pub struct GroundTruthArgs {
    /// The protocol: a run configuration whose [data], [space], [final] and [run] tables
    /// define the data, the networks, the training and the seed of the sample.
    #[arg(long)]
    config: PathBuf,
    /// `all`, or how many architectures to sample (stratified by model size, seeded by run.seed).
    #[arg(long, default_value = "200")]
    architectures: Selection,
    /// Training seeds, comma-separated; each architecture is trained once per seed.
    #[arg(long, value_delimiter = ',', default_value = "0,1")]
    seeds: Vec<u64>,
    /// Where protocol.json, results.jsonl, table.json and table.csv go.
    #[arg(long)]
    output_dir: PathBuf,
    /// `i/n`: this process trains every n-th (architecture, seed) pair from the i-th, sharing
    /// the output directory with the other workers; afterwards a run without it assembles the table.
    #[arg(long, value_parser = parse_worker)]
    worker: Option<(usize, usize)>,
    #[command(flatten)]
    set: SetArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

#[derive(Args)]
pub struct RankingArgs {
    /// A finished run directory (runs/<name>).
    run_dir: PathBuf,
    /// The ground-truth table (.json or .csv).
    #[arg(long)]
    table: PathBuf,
    #[command(flatten)]
    evaluation: RankingEvaluationArgs,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

#[derive(Args)]
pub struct IsomorphicArgs {
    /// An NB201 ground-truth table (.json or .csv).
    table: PathBuf,
}

#[derive(Args)]
pub struct ConvertArgs {
    /// NAS-Bench-201-v1_*.pth, NATS-tss-v1_0-*.pickle.pbz2, or a plain pickle of the same dict.
    input: PathBuf,
    /// `cifar10-valid`, `cifar10`, `cifar100` or `ImageNet16-120`.
    #[arg(long, default_value_t = Nb201Selection::default().dataset)]
    dataset: String,
    /// Evaluation set: `x-valid`, `x-test` or `ori-test`.
    #[arg(long, default_value_t = Nb201Selection::default().set)]
    set: String,
    /// Training schedule: `200` or `12` epochs.
    #[arg(long, default_value_t = Nb201Selection::default().schedule)]
    schedule: String,
    /// The table to write (.json or .csv).
    #[arg(long, short)]
    output: PathBuf,
}

pub fn execute(plugins: &PluginArgs, command: BenchCommand) -> Result<ExitCode> {
    match command {
        BenchCommand::GroundTruth(args) => ground_truth(plugins, args),
        BenchCommand::Ranking(args) => ranking(plugins, args),
        BenchCommand::ConvertNb201(args) => convert(args),
        BenchCommand::Isomorphic(args) => isomorphic(args),
        BenchCommand::Step(options) => {
            run_step_benchmark(&plugins.discover(), &options, &mut |line| println!("{line}"))?;
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::GmRepeats(args) => gm_repeats(plugins, args),
        BenchCommand::Latency(args) => latency(plugins, args),
        BenchCommand::Data(args) => data(plugins, args),
    }
}

fn data(plugins: &PluginArgs, args: DataArgs) -> Result<ExitCode> {
    if let Some(threads) = args.threads {
        splitnas_engine::threads::pin(threads, "--threads");
    }
    let report = run_data_benchmark(&plugins.discover(), &args.options, &mut |line| eprintln!("{line}"))?;
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    print!("{}", render_data_report(&report));
    Ok(ExitCode::SUCCESS)
}

fn ground_truth(plugins: &PluginArgs, args: GroundTruthArgs) -> Result<ExitCode> {
    let config = args.set.load(&args.config, &[])?;
    let options = args.runtime.run_options();
    let request = GroundTruthRequest {
        config,
        selection: args.architectures,
        seeds: args.seeds,
        output_dir: args.output_dir.clone(),
        command: command_line(),
        worker: args.worker,
    };
    let table = run_ground_truth(request, plugins.discover(), &options).map_err(|error| args.set.blame(&[], error))?;
    if args.worker.is_none() {
        println!("{} architectures in {}", table.architectures.len(), args.output_dir.join("table.json").display());
    }
    Ok(ExitCode::SUCCESS)
}

fn ranking(plugins: &PluginArgs, args: RankingArgs) -> Result<ExitCode> {
    let options = args.runtime.run_options();
    let report = rank_run(&args.run_dir, &args.table, plugins.discover(), &args.evaluation.options(), &options)?;
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    print!("{}", render_ranking(&report));
    Ok(ExitCode::SUCCESS)
}

fn isomorphic(args: IsomorphicArgs) -> Result<ExitCode> {
    let table = GroundTruthTable::read(&args.table)?;
    let genotypes: Vec<&str> = table.architectures.iter().map(|e| e.genotype.as_str()).collect();
    let classes = isomorphism_classes(&genotypes).with_context(|| format!("table {}", args.table.display()))?;
    let members: usize = classes.iter().map(|(_, m)| m.len()).sum();
    println!(
        "{} architectures, {} distinct networks: {} isomorphism classes hold {members} of them.\n",
        genotypes.len(),
        genotypes.len() - members + classes.len(),
        classes.len()
    );
    if classes.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    println!("| class (the cell's output) | genotype | accuracy per seed | mean |\n|---|---|---|---|");
    for (form, genotypes) in &classes {
        for genotype in genotypes {
            let entry = table.find(genotype).expect("listed by the table");
            let accuracies: Vec<String> = entry.accuracy.iter().map(|a| format!("{a:.4}")).collect();
            println!("| `{form}` | `{genotype}` | {} | {:.4} |", accuracies.join(", "), entry.mean_accuracy());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn convert(args: ConvertArgs) -> Result<ExitCode> {
    let selection = Nb201Selection { dataset: args.dataset, set: args.set, schedule: args.schedule };
    let mut table = convert_nb201(&args.input, &selection)?;
    table.command = Some(command_line());
    table.write(&args.output)?;
    println!("{} architectures ({}) written to {}", table.architectures.len(), table.metric, args.output.display());
    Ok(ExitCode::SUCCESS)
}

fn gm_repeats(plugins: &PluginArgs, args: GmRepeatsArgs) -> Result<ExitCode> {
    let request = GmRepeatsRequest {
        config: args.set.load(&args.config, &[])?,
        config_path: args.config,
        seeds: args.seeds.0,
        reference_repeats: args.reference_repeats,
        adaptive: args.adaptive,
        adaptive_config_raw: args.adaptive_config_raw,
        recordings: args.recordings,
    };
    let options = args.runtime.run_options();
    let report = run_gm_repeats(&request, plugins.discover(), &options, &mut |record| println!("{}", render_seed(record)))
        .map_err(|error| args.set.blame(&[], error))?;
    print!("{}", render_summary(&report));
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn latency(plugins: &PluginArgs, args: LatencyArgs) -> Result<ExitCode> {
    if let Some(threads) = args.threads {
        splitnas_engine::threads::pin(threads, "--threads");
    }
    let device = args.device.parse::<DeviceChoice>()?.resolve()?;
    let registry = plugins.discover();
    let user = args.space_config.clone().unwrap_or(serde_json::Value::Null);
    let setup =
        SpaceSetup { classes: args.classes, input_channels: args.input_channels, image_size: args.image, network_channels: 0, network_cells: 0 };
    let space = create_space(&registry, &args.space, &user, &setup)?;
    let defaults = registry.get(ComponentKind::Space, &args.space)?.info.default_config.as_str();
    let subject = LatencySubject {
        space_name: &args.space,
        space: &space,
        space_config: merge_config(ComponentKind::Space, &args.space, defaults, &user)?,
        setup,
        device,
    };
    let options = LatencyOptions { batch_size: args.batch_size, warmup: args.warmup, repeats: args.repeats as usize };
    let quiet = args.quiet;
    let table = measure_latency_table(&subject, options, &mut |line| {
        if !quiet {
            eprintln!("{line}");
        }
    })?;
    table.write(&args.output)?;
    let options_timed: usize = table.choice_points.iter().map(|point| point.options.len()).sum();
    println!(
        "{options_timed} options of {} choice points and {} network parts timed on {} ({} threads) written to {}",
        table.choice_points.len(),
        table.parts.len(),
        table.device,
        table.machine.threads,
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}
