//! `splitnas info`: what this process can run on, and what a plugin must match to load in it.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use splitnas_engine::device::device_report;

#[derive(Args)]
pub struct InfoArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn execute(args: InfoArgs) -> Result<ExitCode> {
    let report = device_report();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("libtorch:        {}", report.torch_abi);
        println!("CUDA available:  {}", if report.cuda_available { "yes" } else { "no" });
        println!("CUDA devices:    {}", report.cuda_devices);
        println!("cuDNN available: {}", if report.cudnn_available { "yes" } else { "no" });
        println!("CPU threads:     {} ({})", report.cpu_threads, report.cpu_threads_reason);
        println!("plugin API:      splitnas-plugin-api {}, ABI {}", report.plugin_api_version, report.abi_version);
        println!("libtorch lib:    {}", report.libtorch_lib);
        println!("build plugins with LIBTORCH={} LIBTORCH_CXX11_ABI=1", report.libtorch);
    }
    Ok(ExitCode::SUCCESS)
}
