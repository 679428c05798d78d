//! `splitnas tree RUN_DIR`: the split tree as text, DOT or SVG (the selected leaf marked once
//! the run has finished).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use splitnas_engine::checkpoint::write_atomic;
use splitnas_run::directory::RunDirectory;

#[derive(Args)]
pub struct TreeArgs {
    /// The run directory (runs/<name>).
    run_dir: PathBuf,
    /// Print Graphviz DOT instead of text.
    #[arg(long)]
    dot: bool,
    /// Write an SVG drawing to this file.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

pub fn execute(args: TreeArgs) -> Result<ExitCode> {
    let directory = RunDirectory::open(&args.run_dir)?;
    let tree = directory.read_tree()?;
    if let Some(svg) = &args.svg {
        let selected = if directory.is_finished() { Some(directory.read_report()?.selected) } else { None };
        write_atomic(svg, tree.render_svg(selected).as_bytes())?;
        eprintln!("wrote {}", svg.display());
    }
    if args.dot {
        print!("{}", tree.render_dot());
    } else if args.svg.is_none() {
        print!("{}", tree.render_text());
    }
    Ok(ExitCode::SUCCESS)
}
