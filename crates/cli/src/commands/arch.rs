//! `splitnas arch --space S GENOTYPE`: the size of one architecture's stand-alone network,
//! and with `--svg FILE` its cell graph.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use splitnas_engine::checkpoint::write_atomic;
use splitnas_engine::components::create_space;
use splitnas_plugin_api::SpaceSetup;
use splitnas_run::cell_graph::cell_graph_svg;

use crate::runtime::PluginArgs;

#[derive(Args)]
pub struct ArchArgs {
    /// The search space plugin.
    #[arg(long)]
    space: String,
    /// The architecture in the space's genotype format.
    genotype: String,
    /// Channels of the stand-alone network; default: the space's own (DARTS: 36).
    #[arg(long)]
    channels: Option<u32>,
    /// Cells of the stand-alone network (per stage in NB201); default: the space's own.
    #[arg(long)]
    cells: Option<u32>,
    /// Output classes.
    #[arg(long, default_value_t = 10)]
    classes: u32,
    /// Image channels.
    #[arg(long, default_value_t = 3)]
    input_channels: u32,
    /// Square input size for FLOPs.
    #[arg(long, default_value_t = 32)]
    image: u32,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Also draw the architecture's cells (nodes, edges labelled by operation) into this SVG
    /// file; for spaces whose choice points are named as cell edges (`[cell ]to<-from`).
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

pub fn execute(plugins: &PluginArgs, args: ArchArgs) -> Result<ExitCode> {
    let registry = plugins.discover();
    // The space is told the data and the stand-alone size as types (ABI 1.1 `configure`): it
    // knows which of its settings they are.
    let setup = SpaceSetup {
        classes: args.classes,
        input_channels: args.input_channels,
        image_size: args.image,
        network_channels: args.channels.unwrap_or(0),
        network_cells: args.cells.unwrap_or(0),
    };
    let space = create_space(&registry, &args.space, &serde_json::Value::Null, &setup)?;
    let space_error = |e| anyhow::anyhow!("space `{}`: {e}", args.space);
    let architecture = space.parse_genotype(abi_stable::std_types::RStr::from_str(&args.genotype)).into_result().map_err(space_error)?;
    let stats = space.network_stats(&architecture, args.image).into_result().map_err(space_error)?;
    if let Some(path) = &args.svg {
        let info = space.info().into_result().map_err(space_error)?;
        let choice_points: Vec<String> = info.choice_points.iter().map(|p| p.name.to_string()).collect();
        let options: Vec<Vec<String>> = info.choice_points.iter().map(|p| p.options.iter().map(|o| o.name.to_string()).collect()).collect();
        let title = if args.genotype.chars().count() <= 100 { format!("{}: {}", args.space, args.genotype) } else { args.space.clone() };
        let drawing = cell_graph_svg(&choice_points, &options, &architecture.choices, &title).ok_or_else(|| {
            anyhow::anyhow!("space `{}` does not name its choice points as cell edges (`[cell ]to<-from`): no cell graph to draw", args.space)
        })?;
        write_atomic(path, drawing.as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    if args.json {
        println!(
            "{}",
            json!({"space": args.space, "genotype": args.genotype, "image": args.image, "parameters": stats.parameters, "flops": stats.flops})
        );
    } else {
        println!("{}", args.genotype);
        println!("parameters: {} ({:.3} M)", stats.parameters, stats.parameters as f64 / 1e6);
        println!("FLOPs:      {} ({:.2} M, {}x{} input)", stats.flops, stats.flops as f64 / 1e6, args.image, args.image);
    }
    Ok(ExitCode::SUCCESS)
}
