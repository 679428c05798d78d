//! `splitnas data ...`: generate an ImageNet-like image folder, check an image folder.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use splitnas_data::{check_image_folder, generate_image_folder, FolderCheck, SizeRange, SyntheticOptions};

#[derive(Subcommand)]
pub enum DataCommand {
    /// Write an ImageNet-like set of JPEGs (DIR/train/<class>/*.JPEG, DIR/val/<class>/*.JPEG),
    /// each class its own colour, shape and texture, deterministic for a seed.
    Generate(GenerateArgs),
    /// Decode every image of an image folder (or of DIR/train, val, test) and report classes,
    /// counts, image sizes and every unreadable file. Exits with 2 when a file is unreadable
    /// or the splits' classes differ, 1 when DIR is not an image folder.
    Check(CheckArgs),
}

#[derive(Args)]
pub struct GenerateArgs {
    /// The folder to create (it must not exist or be empty).
    dir: PathBuf,
    /// Images in all, over train/ and val/.
    #[arg(long, default_value_t = SyntheticOptions::default().images)]
    images: usize,
    #[arg(long, default_value_t = SyntheticOptions::default().classes)]
    classes: usize,
    #[arg(long, default_value_t = SyntheticOptions::default().width)]
    width: u32,
    #[arg(long, default_value_t = SyntheticOptions::default().height)]
    height: u32,
    /// JPEG quality, 1-100.
    #[arg(long, default_value_t = SyntheticOptions::default().quality)]
    quality: u8,
    #[arg(long, default_value_t = SyntheticOptions::default().seed)]
    seed: u64,
    /// Share of each class's images written to val/.
    #[arg(long, default_value_t = SyntheticOptions::default().val_fraction)]
    val_fraction: f64,
    /// Encoding threads; 0 uses every available CPU.
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

#[derive(Args)]
pub struct CheckArgs {
    /// An image folder (one sub-folder per class) or a folder holding train/, val/, test/.
    dir: PathBuf,
    /// Decoding threads; 0 uses every available CPU.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn execute(command: DataCommand) -> Result<ExitCode> {
    match command {
        DataCommand::Generate(args) => generate(args),
        DataCommand::Check(args) => check(args),
    }
}

fn threads(requested: usize) -> usize {
    if requested > 0 {
        requested
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

fn generate(args: GenerateArgs) -> Result<ExitCode> {
    let options = SyntheticOptions {
        images: args.images,
        classes: args.classes,
        width: args.width,
        height: args.height,
        quality: args.quality,
        seed: args.seed,
        val_fraction: args.val_fraction,
    };
    let summary = generate_image_folder(&args.dir, &options, threads(args.threads))?;
    let verb = if summary.already_present { "already holds" } else { "written:" };
    println!(
        "{} {verb} {} training and {} validation images in {} classes, {:.1} MB",
        args.dir.display(),
        summary.train_images,
        summary.val_images,
        summary.class_names.len(),
        summary.bytes as f64 / 1e6
    );
    Ok(ExitCode::SUCCESS)
}

fn check(args: CheckArgs) -> Result<ExitCode> {
    let mut last_report = std::time::Instant::now();
    let report = check_image_folder(&args.dir, threads(args.threads), &mut |done, total| {
        if last_report.elapsed().as_secs() >= 5 {
            eprintln!("checked {done} of {total} images");
            last_report = std::time::Instant::now();
        }
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_check(&report));
    }
    Ok(if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

fn range(range: Option<SizeRange>) -> String {
    range.map_or_else(|| "-".to_string(), |r| format!("{} / {} / {}", r.min, r.median, r.max))
}

/// The text report: per split, classes with counts, sizes, then every bad file.
pub fn render_check(report: &FolderCheck) -> String {
    let mut text = String::new();
    for split in &report.splits {
        text += &format!("{} ({}): {} images in {} classes\n", split.name, split.path.display(), split.images, split.classes.len());
        text += &format!("  width  min / median / max: {}\n", range(split.width));
        text += &format!("  height min / median / max: {}\n", range(split.height));
        for class in &split.classes {
            let bad = if class.unreadable > 0 { format!(" ({} unreadable)", class.unreadable) } else { String::new() };
            text += &format!("  {:>8}  {}{bad}\n", class.images, class.name);
        }
        for file in &split.unreadable {
            text += &format!("  unreadable: {}: {}\n", file.path.display(), file.reason.trim_end());
        }
        for path in &split.ignored {
            text += &format!("  ignored (not .jpg/.jpeg/.png): {}\n", path.display());
        }
    }
    for mismatch in &report.class_mismatches {
        text += &format!("class mismatch: {mismatch}\n");
    }
    text += &match report.unreadable_count() {
        0 => "every image is readable\n".to_string(),
        n => format!("{n} unreadable file(s): a run skips them (up to data.max_unreadable_fraction); fix or remove them\n"),
    };
    text
}
