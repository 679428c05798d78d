//! `splitnas extract RUN_DIR [--node N]`: a leaf's subnet with the supernet's weights, no
//! retraining (spaces that support it: OFA).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use splitnas_run::{extract, ExtractRequest};

use crate::runtime::{PluginArgs, RuntimeArgs};

#[derive(Args)]
pub struct ExtractArgs {
    /// A finished search's run directory.
    run_dir: PathBuf,
    /// The leaf whose derived architecture is extracted; default: the run's selected leaf.
    #[arg(long)]
    node: Option<usize>,
    /// Training batches that re-estimate the subnet's batch norms before it is evaluated and
    /// exported; default: the run's `[search] recalibration_batches`, or 8 where that is 0.
    #[arg(long)]
    recalibration_batches: Option<usize>,
    /// Validation batches evaluated (0: the whole split); default: the run's `[search]
    /// eval_batches`, so that the accuracy is comparable with the search's.
    #[arg(long)]
    eval_batches: Option<usize>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

pub fn execute(plugins: &PluginArgs, args: ExtractArgs) -> Result<ExitCode> {
    let request = ExtractRequest { node: args.node, recalibration_batches: args.recalibration_batches, eval_batches: args.eval_batches };
    let extracted = extract(&args.run_dir, plugins.discover(), &args.runtime.run_options(), &request)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&extracted)?);
        return Ok(ExitCode::SUCCESS);
    }
    let batches = match extracted.eval_batches {
        0 => "the whole split".to_string(),
        batches => format!("{batches} batches"),
    };
    println!(
        "node {}: {}\n  batch norms re-estimated on {} training batches; valid {:.4} ({batches}; through the supernet in the search: {:.4}), test {:.4}\n  written to {} (and .json beside it: how to load it in PyTorch)",
        extracted.node,
        extracted.genotype,
        extracted.recalibration_batches,
        extracted.valid_accuracy,
        extracted.supernet_valid_accuracy,
        extracted.test_accuracy,
        extracted.model.display()
    );
    Ok(ExitCode::SUCCESS)
}
