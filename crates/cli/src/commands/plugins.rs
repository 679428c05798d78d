//! `splitnas plugins list | check FILE | install FILE | remove NAME | try CRITERION | new NAME`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::json;
use splitnas_bench::gm_repeats::{parse_json_object, render_try, try_criterion, TryRequest};
use splitnas_engine::checkpoint::write_atomic;
use splitnas_engine::plugins::{load_plugin, shared_libraries, user_plugin_directory, LoadedPlugin, PLUGIN_PATH_VARIABLE};
use splitnas_run::RunOptions;

use crate::commands::scaffold::{self, PluginKind};
use crate::runtime::PluginArgs;

#[derive(Subcommand)]
pub enum PluginsCommand {
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
        /// After a layout refusal, also print abi_stable's full layout report.
        #[arg(long)]
        verbose: bool,
    },
    /// Check a plugin and copy it into the user's plugin directory, where every command finds
    /// it without flags ($XDG_DATA_HOME/splitnas/plugins or ~/.local/share/splitnas/plugins).
    Install {
        /// The plugin library to install.
        file: PathBuf,
    },
    /// Take a plugin out of the user's plugin directory, by a component's name or the file's name.
    Remove {
        /// A component the plugin exports (`my-criterion`), or the library's file name.
        name: String,
    },
    /// Write a new stand-alone plugin crate (one space, algorithm or criterion) that builds as
    /// generated and passes its kind's contract suite; then says what to run next.
    New {
        /// What the plugin exports.
        #[arg(long, value_enum)]
        kind: PluginKind,
        /// The plugin's name: lowercase letters, digits and '-', starting with a letter. The
        /// package is splitnas-plugin-NAME, the component NAME.
        name: String,
        /// Where to write the crate (a new or empty directory); default ./splitnas-plugin-NAME.
        #[arg(long, value_name = "DIR")]
        path: Option<PathBuf>,
        /// The splitnas checkout its splitnas crates come from (by path, as they are not
        /// published); default: the one this binary was built from.
        #[arg(long, value_name = "DIR")]
        splitnas_source: Option<PathBuf>,
    },
    /// Run a split criterion on gradient repeats that `bench gm-repeats --recordings DIR` kept,
    /// beside gm on the same repeats: seconds per seed, no training.
    Try {
        /// The criterion to try (any loaded one).
        criterion: String,
        /// The recordings directory (seed-N.json files).
        #[arg(long, value_name = "DIR")]
        recordings: PathBuf,
        /// The criterion's keys as a JSON object, e.g. '{"repeats": 20}'.
        #[arg(long, value_name = "JSON", value_parser = parse_json_object)]
        config: Option<serde_json::Value>,
        /// Children per split; default: the recorded configuration's first split.
        #[arg(long)]
        groups: Option<u32>,
        /// Print every seed's decisions as JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
}

pub fn execute(plugins: &PluginArgs, command: PluginsCommand) -> Result<ExitCode> {
    match command {
        PluginsCommand::List { json } => list(plugins, json),
        PluginsCommand::Check { file, verbose } => Ok(check(&file, verbose)),
        PluginsCommand::Install { file } => install(&file),
        PluginsCommand::Remove { name } => remove(&name),
        PluginsCommand::New { kind, name, path, splitnas_source } => scaffold::execute(kind, &name, path, splitnas_source),
        PluginsCommand::Try { criterion, recordings, config, groups, json } => {
            let request = TryRequest { criterion, config: config.unwrap_or(serde_json::Value::Null), recordings, groups };
            let records = try_criterion(&request, plugins.discover(), &RunOptions::default(), &mut |record| {
                if !json {
                    println!("{}", render_try(&request.criterion, record));
                }
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&records)?);
            } else {
                let agreements = records.iter().filter(|record| record.agrees_with_gm).count();
                println!("{} seeds: `{}` agrees with gm on {agreements}", records.len(), request.criterion);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn list(plugins: &PluginArgs, as_json: bool) -> Result<ExitCode> {
    let registry = plugins.discover();
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
        let failures: Vec<_> = registry.failures.iter().map(|f| json!({"file": f.path, "reason": f.error.to_string()})).collect();
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
        println!("no plugins found; build them with `cargo xtask build`, or point --plugin-dir or {PLUGIN_PATH_VARIABLE} at a directory of plugin libraries");
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

fn check(file: &Path, verbose: bool) -> ExitCode {
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
            eprintln!("error: {}: {error}", file.display());
            match error.layout_report() {
                Some(report) if verbose => eprintln!("\n{report}"),
                Some(_) => eprintln!("(`splitnas plugins check --verbose {}` prints abi_stable's full layout report)", file.display()),
                None => {}
            }
            ExitCode::FAILURE
        }
    }
}

fn user_directory() -> Result<PathBuf> {
    user_plugin_directory().context("neither XDG_DATA_HOME nor HOME is set: set one, or pass --plugin-dir instead of installing")
}

/// What a plugin must state about its components before it is installed.
fn check_metadata(plugin: &LoadedPlugin) -> Result<()> {
    if plugin.components.is_empty() {
        bail!("plugin `{}` exports no component", plugin.name);
    }
    for component in &plugin.components {
        if component.name.is_empty() {
            bail!("plugin `{}` exports a {} without a name", plugin.name, component.kind());
        }
        let defaults: serde_json::Value = serde_json::from_str(&component.default_config)
            .with_context(|| format!("{} `{}`: its default configuration is not JSON", component.kind(), component.name))?;
        if !defaults.is_object() {
            bail!("{} `{}`: its default configuration must be a JSON object of keys, got {defaults}", component.kind(), component.name);
        }
    }
    Ok(())
}

fn install(file: &Path) -> Result<ExitCode> {
    let plugin = load_plugin(file).map_err(|error| anyhow::anyhow!("{} is not installed: {error}", file.display()))?;
    check_metadata(&plugin).with_context(|| format!("{} is not installed", file.display()))?;
    let directory = user_directory()?;
    let name = file.file_name().context("the plugin path names no file")?;
    let target = directory.join(name);
    let replaced = target.exists();
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    write_atomic(&target, &bytes)?;
    let components: Vec<String> = plugin.components.iter().map(|c| format!("{} `{}`", c.kind(), c.name)).collect();
    println!("{} {} ({}) into {}", if replaced { "replaced" } else { "installed" }, target.display(), components.join(", "), directory.display());
    Ok(ExitCode::SUCCESS)
}

fn remove(name: &str) -> Result<ExitCode> {
    let directory = user_directory()?;
    let exports = |file: &Path| load_plugin(file).is_ok_and(|plugin| plugin.components.iter().any(|c| c.name.as_str() == name));
    let matches: Vec<PathBuf> = shared_libraries(&directory)
        .into_iter()
        .filter(|file| file.file_name().is_some_and(|f| f.to_string_lossy() == name) || exports(file))
        .collect();
    if matches.is_empty() {
        bail!("no plugin in {} exports `{name}` or is named so; `splitnas plugins list` shows where each component comes from", directory.display());
    }
    for file in matches {
        std::fs::remove_file(&file).with_context(|| format!("cannot remove {}", file.display()))?;
        println!("removed {}", file.display());
    }
    Ok(ExitCode::SUCCESS)
}
