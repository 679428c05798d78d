//! `splitnas arch --space S GENOTYPE`: the size of one architecture's stand-alone network.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use splitnas_engine::components::create_space;

use crate::runtime::PluginArgs;

#[derive(Args)]
pub struct ArchArgs {
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

pub fn execute(plugins: &PluginArgs, args: ArchArgs) -> Result<ExitCode> {
    let registry = plugins.discover();
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
    let space = create_space(&registry, &args.space, &serde_json::Value::Object(config))?;
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

