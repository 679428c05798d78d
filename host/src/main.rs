//! The `splitnas` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use splitnas::device::device_report;
use splitnas::plugins::{load_plugin, PluginRegistry, PluginSearch, PLUGIN_PATH_VARIABLE};

#[derive(Parser)]
#[command(name = "splitnas", version, about = "Few-shot neural architecture search with gradient-matching supernet splitting")]
struct Cli {
    #[command(flatten)]
    plugins: PluginOptions,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct PluginOptions {
    /// Directory with plugin libraries (repeatable); searched before SPLITNAS_PLUGIN_PATH and
    /// the default location next to the executable.
    #[arg(long = "plugin-dir", value_name = "DIR", global = true)]
    plugin_dirs: Vec<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect plugins: what is loaded, and why a file is not.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Search: train the supernet, derive an architecture, train it stand-alone, report.
    Run(RunArgs),
    /// Run the same search under several split criteria and tabulate the results.
    Compare(CompareArgs),
    /// Continue an interrupted run from its last checkpoint.
    Resume(ResumeArgs),
    /// Print the split tree of a run (text, --dot, or --svg FILE).
    Tree(TreeArgs),
    /// Parameters and FLOPs of one architecture's stand-alone network.
    Arch(ArchArgs),
    /// Measure search quality: ground-truth tables and how well supernets rank them.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// What this process can run on (CUDA, threads) and the libtorch it was built for.
    Info {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct RunArgs {
    /// The run configuration (TOML), e.g. examples/quickstart.toml.
    config: PathBuf,
    /// `cpu`, `cuda`, `cuda:N` or `auto`; overrides `run.device`.
    #[arg(long)]
    device: Option<String>,
    /// Directory for run directories; overrides `run.output_dir`.
    #[arg(long)]
    output_dir: Option<PathBuf>,
    /// Replace an existing run directory of the same name.
    #[arg(long)]
    overwrite: bool,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args)]
struct CompareArgs {
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
    /// `cpu`, `cuda`, `cuda:N` or `auto`.
    #[arg(long)]
    device: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// A ground-truth table (.json/.csv): adds ranking-quality columns (see `bench ranking`)
    /// and writes ranking-tau.svg and ranking-scatter.svg into the output directory.
    #[arg(long)]
    table: Option<PathBuf>,
    #[command(flatten)]
    ranking: RankingEvaluationArgs,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args)]
struct ResumeArgs {
    /// The run directory (runs/<name>).
    run_dir: PathBuf,
    /// `cpu`, `cuda`, `cuda:N` or `auto`; overrides the run's device.
    #[arg(long)]
    device: Option<String>,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args)]
struct TreeArgs {
    /// The run directory (runs/<name>).
    run_dir: PathBuf,
    /// Print Graphviz DOT instead of text.
    #[arg(long)]
    dot: bool,
    /// Write an SVG drawing to this file.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

#[derive(Args)]
struct ArchArgs {
    /// The search space plugin.
    #[arg(long)]
    space: String,
    /// The architecture in the space's genotype format.
    genotype: String,
    /// Channels of the stand-alone network (space key `network_channels` where the space has
    /// one, as DARTS does, else `channels`).
    #[arg(long)]
    channels: Option<u64>,
    /// Cells of the stand-alone network (space key `network_cells` where the space has one,
    /// else `cells`: per stage in NB201).
    #[arg(long)]
    cells: Option<u64>,
    /// Output classes (space key `classes`).
    #[arg(long)]
    classes: Option<u64>,
    /// Image channels (space key `input_channels`).
    #[arg(long)]
    input_channels: Option<u64>,
    /// Square input size for FLOPs.
    #[arg(long, default_value_t = 32)]
    image: u32,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Train many architectures stand-alone under one protocol and write their accuracies
    /// (table.json, table.csv). Resumable: run the same command again to continue.
    GroundTruth(GroundTruthArgs),
    /// How well a finished run's supernet (its leaves) ranks the architectures of a table.
    Ranking(RankingArgs),
    /// Convert a NAS-Bench-201 (.pth) or NATS-Bench topology (.pickle.pbz2) file to a table.
    ConvertNb201(ConvertArgs),
    /// Time one supernet step (darts, spos, gm) with the flags and JSON lines of
    /// ../shared/bench/reference_nb201.py, for benchmarks/step/compare.py.
    Step(splitnas::bench::step::StepOptions),
    /// Adaptive gradient-matching repeats against a fixed R: both decide the root split on
    /// the same recorded gradients, per seed; agreement and cost are reported.
    GmRepeats(GmRepeatsArgs),
}

#[derive(Args)]
struct GmRepeatsArgs {
    /// A run configuration with a few-shot [split] table: its root is trained up to the first
    /// split epoch and split into that split's number of groups.
    config: PathBuf,
    /// Study seeds: `A..B` (B excluded) or a comma-separated list. Each seed records its own
    /// batches and context samples.
    #[arg(long, default_value = "0..20")]
    seeds: splitnas::bench::gm_repeats::SeedList,
    /// R: the fixed configuration's repeats and the Gram samples recorded per candidate.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    reference_repeats: u32,
    /// gm keys (JSON object) merged over {"repeats": R, "adaptive": true}, e.g. '{"confidence": 0.95}'.
    #[arg(long, value_name = "JSON", value_parser = splitnas::bench::gm_repeats::parse_json_object)]
    adaptive: Option<serde_json::Value>,
    /// A whole gm configuration (JSON object) to compare with the fixed one instead of the
    /// adaptive one, e.g. '{"repeats": 10}'.
    #[arg(long, value_name = "JSON", value_parser = splitnas::bench::gm_repeats::parse_json_object, conflicts_with = "adaptive")]
    adaptive_config_raw: Option<serde_json::Value>,
    /// Also write every seed's record and the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Keep each seed's recording here (seed-N.json) and reuse it when present: other gm
    /// configurations can then be studied on the same streams in seconds.
    #[arg(long, value_name = "DIR")]
    recordings: Option<PathBuf>,
    /// `cpu`, `cuda`, `cuda:N` or `auto`; overrides `run.device`.
    #[arg(long)]
    device: Option<String>,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args)]
struct GroundTruthArgs {
    /// The protocol: a run configuration whose [data], [space], [final] and [run] tables
    /// define the data, the networks, the training and the seed of the sample.
    #[arg(long)]
    config: PathBuf,
    /// `all`, or how many architectures to sample (stratified by model size, seeded by run.seed).
    #[arg(long, default_value = "200")]
    architectures: splitnas::bench::ground_truth::Selection,
    /// Training seeds, comma-separated; each architecture is trained once per seed.
    #[arg(long, value_delimiter = ',', default_value = "0,1")]
    seeds: Vec<u64>,
    /// Where protocol.json, results.jsonl, table.json and table.csv go.
    #[arg(long)]
    output_dir: PathBuf,
    /// `i/n`: this process trains every n-th (architecture, seed) pair from the i-th, sharing
    /// the output directory with the other workers; afterwards a run without it assembles the table.
    #[arg(long, value_parser = splitnas::bench::ground_truth::parse_worker)]
    worker: Option<(usize, usize)>,
    /// `cpu`, `cuda`, `cuda:N` or `auto`; overrides `run.device`.
    #[arg(long)]
    device: Option<String>,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args)]
struct RankingArgs {
    /// A finished run directory (runs/<name>).
    run_dir: PathBuf,
    /// The ground-truth table (.json or .csv).
    #[arg(long)]
    table: PathBuf,
    #[command(flatten)]
    evaluation: RankingEvaluationArgs,
    /// `cpu`, `cuda`, `cuda:N` or `auto`; overrides the run's device.
    #[arg(long)]
    device: Option<String>,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
}

/// How a supernet evaluates the architectures of a table (`bench ranking`, `compare --table`).
#[derive(Args, Clone)]
struct RankingEvaluationArgs {
    /// Valid batches per architecture; 0 evaluates on the whole valid split.
    #[arg(long, default_value_t = splitnas::bench::ranking::RankingOptions::default().eval_batches)]
    eval_batches: usize,
    /// Training batches that re-estimate BatchNorm statistics per architecture.
    #[arg(long, default_value_t = splitnas::bench::ranking::RankingOptions::default().recalibration_batches)]
    recalibration_batches: usize,
    /// The k of top-k precision, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = splitnas::bench::ranking::RankingOptions::default().top_k)]
    top_k: Vec<usize>,
}

impl RankingEvaluationArgs {
    fn options(&self) -> splitnas::bench::ranking::RankingOptions {
        splitnas::bench::ranking::RankingOptions { eval_batches: self.eval_batches, recalibration_batches: self.recalibration_batches, top_k: self.top_k.clone() }
    }
}

#[derive(Args)]
struct ConvertArgs {
    /// NAS-Bench-201-v1_*.pth, NATS-tss-v1_0-*.pickle.pbz2, or a plain pickle of the same dict.
    input: PathBuf,
    /// `cifar10-valid`, `cifar10`, `cifar100` or `ImageNet16-120`.
    #[arg(long, default_value_t = splitnas::bench::external::Nb201Selection::default().dataset)]
    dataset: String,
    /// Evaluation set: `x-valid`, `x-test` or `ori-test`.
    #[arg(long, default_value_t = splitnas::bench::external::Nb201Selection::default().set)]
    set: String,
    /// Training schedule: `200` or `12` epochs.
    #[arg(long, default_value_t = splitnas::bench::external::Nb201Selection::default().schedule)]
    schedule: String,
    /// The table to write (.json or .csv).
    #[arg(long, short)]
    output: PathBuf,
}

#[derive(Subcommand)]
enum PluginsCommand {
    /// List every loaded component (kind, name, version, file, description).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Load one file and report everything about it; exits non-zero if it is not a usable plugin.
    Check {
        /// The plugin library to check.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Plugins(PluginsCommand::List { json }) => plugins_list(&cli.plugins, json),
        Command::Plugins(PluginsCommand::Check { file }) => Ok(plugins_check(&file)),
        Command::Run(args) => run_search(&cli.plugins, args),
        Command::Arch(args) => arch(&cli.plugins, args),
        Command::Resume(args) => resume(&cli.plugins, args),
        Command::Compare(args) => compare(&cli.plugins, args),
        Command::Tree(args) => tree(args),
        Command::Bench(BenchCommand::GroundTruth(args)) => ground_truth(&cli.plugins, args),
        Command::Bench(BenchCommand::Ranking(args)) => ranking(&cli.plugins, args),
        Command::Bench(BenchCommand::ConvertNb201(args)) => convert_nb201(args),
        Command::Bench(BenchCommand::Step(options)) => bench_step(&cli.plugins, options),
        Command::Bench(BenchCommand::GmRepeats(args)) => gm_repeats(&cli.plugins, args),
        Command::Info { json } => {
            let report = device_report();
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("libtorch:        {}", report.torch_abi);
                println!("CUDA available:  {}", if report.cuda_available { "yes" } else { "no" });
                println!("CUDA devices:    {}", report.cuda_devices);
                println!("cuDNN available: {}", if report.cudnn_available { "yes" } else { "no" });
                println!("CPU threads:     {}", report.cpu_threads);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn discover(options: &PluginOptions) -> PluginRegistry {
    let registry = PluginRegistry::discover(&PluginSearch::from_cli(&options.plugin_dirs));
    for line in registry.warnings() {
        eprintln!("warning: {line}");
    }
    registry
}

fn plugins_list(options: &PluginOptions, as_json: bool) -> Result<ExitCode> {
    let registry = discover(options);
    if as_json {
        let components: Vec<_> = registry
            .components()
            .map(|c| {
                json!({
                    "kind": c.info.kind().as_str(),
                    "name": c.info.name.as_str(),
                    "version": c.info.version.as_str(),
                    "plugin": c.plugin,
                    "file": c.path,
                    "description": c.info.description.as_str(),
                    "default_config": serde_json::from_str::<serde_json::Value>(&c.info.default_config).unwrap_or_default(),
                })
            })
            .collect();
        let failures: Vec<_> =
            registry.failures.iter().map(|f| json!({"file": f.path, "reason": f.error.to_string()})).collect();
        let out = json!({"components": components, "failures": failures, "duplicates": registry.duplicates});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 5]> = registry
        .components()
        .map(|c| {
            [
                c.info.kind().to_string(),
                c.info.name.to_string(),
                c.info.version.to_string(),
                c.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                c.info.description.to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!(
            "no plugins found; build them with `cargo xtask build`, or point --plugin-dir or {PLUGIN_PATH_VARIABLE} at a directory of plugin libraries"
        );
        return Ok(ExitCode::SUCCESS);
    }
    print_table(&["KIND", "NAME", "VERSION", "FILE", "DESCRIPTION"], &rows);
    Ok(ExitCode::SUCCESS)
}

fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn plugins_check(file: &std::path::Path) -> ExitCode {
    match load_plugin(file) {
        Ok(plugin) => {
            println!("{}: ok, plugin `{}`", file.display(), plugin.name);
            println!("  abi: splitnas-plugin-api {}, {}", splitnas_plugin_api::ABI_VERSION, splitnas_plugin_api::TORCH_ABI);
            for c in &plugin.components {
                println!("  {} {} {}: {}", c.kind(), c.name, c.version, c.description);
                println!("    defaults: {}", c.default_config);
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {}: {}", file.display(), error.report());
            ExitCode::FAILURE
        }
    }
}

fn run_search(plugins: &PluginOptions, args: RunArgs) -> Result<ExitCode> {
    let config = splitnas::config::RunConfig::from_file(&args.config)?;
    let options = splitnas::run::RunOptions { device: args.device, output_dir: args.output_dir, overwrite: args.overwrite, quiet: args.quiet };
    let setup = splitnas::run::RunSetup::new(config, discover(plugins), &options)?;
    let directory = setup.directory.clone();
    splitnas::run::run(setup, &options)?;
    print_report(&directory)
}

fn print_report(directory: &std::path::Path) -> Result<ExitCode> {
    let report = directory.join("report.md");
    print!("{}", std::fs::read_to_string(&report).with_context(|| format!("cannot read {}", report.display()))?);
    println!("\nrun directory: {}", directory.display());
    Ok(ExitCode::SUCCESS)
}

fn resume(plugins: &PluginOptions, args: ResumeArgs) -> Result<ExitCode> {
    let options = splitnas::run::RunOptions { device: args.device, output_dir: None, overwrite: false, quiet: args.quiet };
    splitnas::run::resume(&args.run_dir, discover(plugins), &options)?;
    print_report(&args.run_dir)
}

fn tree(args: TreeArgs) -> Result<ExitCode> {
    let path = args.run_dir.join("tree.json");
    let tree: splitnas::tree::SplitTree = splitnas::checkpoint::read_json(&path).with_context(|| format!("{} is not a run directory with a split tree", args.run_dir.display()))?;
    if let Some(svg) = &args.svg {
        splitnas::checkpoint::write_atomic(svg, tree.render_svg().as_bytes())?;
        eprintln!("wrote {}", svg.display());
    }
    if args.dot {
        print!("{}", tree.render_dot());
    } else if args.svg.is_none() {
        print!("{}", tree.render_text());
    }
    Ok(ExitCode::SUCCESS)
}

fn arch(plugins: &PluginOptions, args: ArchArgs) -> Result<ExitCode> {
    let registry = discover(plugins);
    // Spaces whose stand-alone network differs from the search network (DARTS: C=36, 20
    // cells vs C=16, 8) name its size `network_channels` / `network_cells`; `arch` sizes the
    // stand-alone network, so the flags go there.
    let defaults: serde_json::Value = registry
        .get(splitnas_plugin_api::ComponentKind::Space, &args.space)
        .ok()
        .and_then(|c| serde_json::from_str(&c.info.default_config).ok())
        .unwrap_or_default();
    let size_key = |plain: &'static str, network: &'static str| if defaults.get(network).is_some() { network } else { plain };
    let mut config = serde_json::Map::new();
    for (key, value) in [
        (size_key("channels", "network_channels"), args.channels),
        (size_key("cells", "network_cells"), args.cells),
        ("classes", args.classes),
        ("input_channels", args.input_channels),
    ] {
        if let Some(value) = value {
            config.insert(key.to_string(), json!(value));
        }
    }
    let space = splitnas::components::create_space(&registry, &args.space, &serde_json::Value::Object(config))?;
    let architecture = space
        .parse_genotype(abi_stable::std_types::RStr::from_str(&args.genotype))
        .into_result()
        .map_err(|e| anyhow::anyhow!("space `{}`: {e}", args.space))?;
    let stats = space.network_stats(&architecture, args.image).into_result().map_err(|e| anyhow::anyhow!("space `{}`: {e}", args.space))?;
    if args.json {
        println!("{}", json!({"space": args.space, "genotype": args.genotype, "image": args.image, "parameters": stats.parameters, "flops": stats.flops}));
    } else {
        println!("{}", args.genotype);
        println!("parameters: {} ({:.3} M)", stats.parameters, stats.parameters as f64 / 1e6);
        println!("FLOPs:      {} ({:.2} M, {}x{} input)", stats.flops, stats.flops as f64 / 1e6, args.image, args.image);
    }
    Ok(ExitCode::SUCCESS)
}

fn compare(plugins: &PluginOptions, args: CompareArgs) -> Result<ExitCode> {
    use splitnas::compare::{compare, render_table, CompareRequest, DEFAULT_BASE_CONFIG};
    use splitnas::config::RunConfig;
    let base = match &args.config {
        Some(path) => RunConfig::from_file(path)?,
        None => RunConfig::from_toml(DEFAULT_BASE_CONFIG, std::path::Path::new("examples/quickstart.toml"))?,
    };
    let request = CompareRequest {
        criteria: args.criteria,
        space: args.space,
        algorithm: args.algorithm,
        seeds: args.seeds,
        output_dir: args.output_dir,
        table: args.table,
        ranking: args.ranking.options(),
    };
    let options = splitnas::run::RunOptions { device: args.device, output_dir: None, overwrite: false, quiet: args.quiet };
    let mut first = true;
    let registry = || {
        let registry = PluginRegistry::discover(&PluginSearch::from_cli(&plugins.plugin_dirs));
        if std::mem::take(&mut first) {
            for line in registry.warnings() {
                eprintln!("warning: {line}");
            }
        }
        registry
    };
    let rows = compare(&base, &request, registry, &options)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", render_table(&rows));
        let ranking = splitnas::compare::render_ranking_table(&rows);
        if !ranking.is_empty() {
            println!();
            print!("{ranking}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The command line as given, for tables that record how they were made.
fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

fn ground_truth(plugins: &PluginOptions, args: GroundTruthArgs) -> Result<ExitCode> {
    use splitnas::bench::ground_truth::{run_ground_truth, GroundTruthRequest};
    let config = splitnas::config::RunConfig::from_file(&args.config)?;
    let options = splitnas::run::RunOptions { device: args.device, output_dir: None, overwrite: false, quiet: args.quiet };
    let request = GroundTruthRequest { config, selection: args.architectures, seeds: args.seeds, output_dir: args.output_dir.clone(), command: command_line(), worker: args.worker };
    let table = run_ground_truth(request, discover(plugins), &options)?;
    if args.worker.is_none() {
        println!("{} architectures in {}", table.architectures.len(), args.output_dir.join("table.json").display());
    }
    Ok(ExitCode::SUCCESS)
}

fn ranking(plugins: &PluginOptions, args: RankingArgs) -> Result<ExitCode> {
    use splitnas::bench::ranking::{rank_run, render_ranking};
    let options = splitnas::run::RunOptions { device: args.device, output_dir: None, overwrite: false, quiet: args.quiet };
    let report = rank_run(&args.run_dir, &args.table, discover(plugins), &args.evaluation.options(), &options)?;
    if let Some(path) = &args.json {
        splitnas::checkpoint::write_json(path, &report)?;
    }
    print!("{}", render_ranking(&report));
    Ok(ExitCode::SUCCESS)
}

fn convert_nb201(args: ConvertArgs) -> Result<ExitCode> {
    use splitnas::bench::external::{convert_nb201, Nb201Selection};
    let selection = Nb201Selection { dataset: args.dataset, set: args.set, schedule: args.schedule };
    let mut table = convert_nb201(&args.input, &selection)?;
    table.command = Some(command_line());
    table.write(&args.output)?;
    println!("{} architectures ({}) written to {}", table.architectures.len(), table.metric, args.output.display());
    Ok(ExitCode::SUCCESS)
}

fn bench_step(plugins: &PluginOptions, options: splitnas::bench::step::StepOptions) -> Result<ExitCode> {
    splitnas::bench::step::run_step_benchmark(&discover(plugins), &options, &mut |line| println!("{line}"))?;
    Ok(ExitCode::SUCCESS)
}

fn gm_repeats(plugins: &PluginOptions, args: GmRepeatsArgs) -> Result<ExitCode> {
    use splitnas::bench::gm_repeats::{render_seed, render_summary, run_gm_repeats, GmRepeatsRequest};
    let request = GmRepeatsRequest {
        config: splitnas::config::RunConfig::from_file(&args.config)?,
        config_path: args.config,
        seeds: args.seeds.0,
        reference_repeats: args.reference_repeats,
        adaptive: args.adaptive,
        adaptive_config_raw: args.adaptive_config_raw,
        recordings: args.recordings,
    };
    let options = splitnas::run::RunOptions { device: args.device, output_dir: None, overwrite: false, quiet: args.quiet };
    let report = run_gm_repeats(&request, discover(plugins), &options, &mut |record| println!("{}", render_seed(record)))?;
    print!("{}", render_summary(&report));
    if let Some(path) = &args.json {
        splitnas::checkpoint::write_json(path, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}
