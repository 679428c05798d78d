//! The `splitnas` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
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
    /// What this process can run on (CUDA, threads) and the libtorch it was built for.
    Info {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
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
