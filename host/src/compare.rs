//! `splitnas compare`: the same space, algorithm, data, seeds and epoch budget under several
//! split criteria (`none` = one-shot), one run directory per (criterion, seed), resumable.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::plugins::PluginRegistry;
use crate::run::{resume, run, Report, RunOptions, RunSetup};

/// The configuration `compare` starts from when none is given: the quickstart's.
pub const DEFAULT_BASE_CONFIG: &str = include_str!("../../examples/quickstart.toml");

/// What to compare.
#[derive(Debug, Clone)]
pub struct CompareRequest {
    pub criteria: Vec<String>,
    pub space: Option<String>,
    pub algorithm: Option<String>,
    pub seeds: Vec<u64>,
    pub output_dir: PathBuf,
}

/// One criterion's row of the table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompareRow {
    pub criterion: String,
    pub seeds: Vec<u64>,
    /// The selected architecture of the seed with the best stand-alone validation accuracy.
    pub best_genotype: String,
    pub standalone_valid_mean: f64,
    pub standalone_valid_std: f64,
    pub standalone_test_mean: f64,
    pub standalone_test_std: f64,
    pub search_seconds_mean: f64,
    pub split_seconds_mean: f64,
    pub leaves: usize,
    pub runs: Vec<PathBuf>,
}

/// Mean and sample standard deviation (0 for one value).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() - 1) as f64;
    (mean, variance.sqrt())
}

/// The configuration of one (criterion, seed) run, derived from `base`. Every criterion gets
/// the same total epochs; `exhaustive` splits once, at the base schedule's first split epoch,
/// into one child per option (Few-Shot NAS); `none` never splits.
pub fn run_config(base: &RunConfig, criterion: &str, seed: u64) -> Result<RunConfig> {
    let mut config = base.clone();
    config.run.seed = seed;
    config.data.seed = seed;
    config.run.name = format!("{criterion}-seed{seed}");
    let schedule = if base.split.is_one_shot() {
        let epochs = base.search.epochs;
        if epochs < 3 {
            bail!("search.epochs = {epochs} leaves no room for splits: use at least 3");
        }
        (vec![epochs / 3, 2 * epochs / 3], vec![2, 2])
    } else {
        (base.split.epochs.clone(), base.split.groups.clone())
    };
    config.split.criterion = criterion.to_string();
    // Criterion-specific keys of the base belong to its criterion only.
    if criterion != base.split.criterion {
        config.split.config.clear();
    }
    match criterion {
        "none" => {
            config.split.epochs.clear();
            config.split.groups.clear();
        }
        "exhaustive" => {
            config.split.epochs = vec![schedule.0[0]];
            config.split.groups = vec![0];
        }
        _ => {
            config.split.epochs = schedule.0;
            config.split.groups = schedule.1;
        }
    }
    config.validate().map_err(|message| anyhow::anyhow!("compare configuration for `{criterion}`: {message}"))?;
    Ok(config)
}

fn run_or_resume(config: RunConfig, directory: &Path, registry: PluginRegistry, options: &RunOptions) -> Result<Report> {
    if directory.join("report.json").exists() {
        return Ok(crate::checkpoint::read_json(&directory.join("report.json"))?);
    }
    if directory.join("tree.json").exists() {
        return resume(directory, registry, options);
    }
    let setup = RunSetup::new(config, registry, options)?;
    run(setup, &RunOptions { overwrite: true, ..options.clone() })
}

/// Runs every (criterion, seed) pair not already finished and summarises them.
pub fn compare(base: &RunConfig, request: &CompareRequest, mut registry: impl FnMut() -> PluginRegistry, options: &RunOptions) -> Result<Vec<CompareRow>> {
    let mut base = base.clone();
    if let Some(space) = &request.space {
        if *space != base.space.name {
            base.space = crate::config::ComponentChoice { name: space.clone(), config: Default::default() };
        }
    }
    if let Some(algorithm) = &request.algorithm {
        if *algorithm != base.algorithm.name {
            base.algorithm = crate::config::ComponentChoice { name: algorithm.clone(), config: Default::default() };
        }
    }
    base.run.output_dir = request.output_dir.clone();
    let mut rows = Vec::new();
    for criterion in &request.criteria {
        let mut reports = Vec::new();
        let mut runs = Vec::new();
        for &seed in &request.seeds {
            let config = run_config(&base, criterion, seed)?;
            let directory = request.output_dir.join(&config.run.name);
            if !options.quiet {
                eprintln!("== {criterion}, seed {seed} -> {}", directory.display());
            }
            let report = run_or_resume(config, &directory, registry(), options).with_context(|| format!("criterion `{criterion}`, seed {seed}"))?;
            reports.push(report);
            runs.push(directory);
        }
        let valid: Vec<f64> = reports.iter().map(|r| r.selected_result.standalone.as_ref().and_then(|s| s.valid_accuracy).unwrap_or(f64::NAN)).collect();
        let test: Vec<f64> = reports.iter().map(|r| r.selected_result.standalone.as_ref().map_or(f64::NAN, |s| s.test_accuracy)).collect();
        let best = (0..reports.len()).max_by(|&a, &b| valid[a].total_cmp(&valid[b])).unwrap_or(0);
        let (valid_mean, valid_std) = mean_std(&valid);
        let (test_mean, test_std) = mean_std(&test);
        rows.push(CompareRow {
            criterion: criterion.clone(),
            seeds: request.seeds.clone(),
            best_genotype: reports.get(best).map(|r| r.selected_result.genotype.clone()).unwrap_or_default(),
            standalone_valid_mean: valid_mean,
            standalone_valid_std: valid_std,
            standalone_test_mean: test_mean,
            standalone_test_std: test_std,
            search_seconds_mean: mean_std(&reports.iter().map(|r| r.search_seconds).collect::<Vec<_>>()).0,
            split_seconds_mean: mean_std(&reports.iter().map(|r| r.split_seconds).collect::<Vec<_>>()).0,
            leaves: reports.first().map_or(0, |r| r.leaves.len()),
            runs,
        });
    }
    Ok(rows)
}

/// The table for people.
pub fn render_table(rows: &[CompareRow]) -> String {
    let mut out = String::from("| criterion | leaves | best-found architecture | stand-alone valid | stand-alone test | search s | splitting s |\n|---|---|---|---|---|---|---|\n");
    for row in rows {
        out += &format!(
            "| {} | {} | `{}` | {:.4} ± {:.4} | {:.4} ± {:.4} | {:.1} | {:.1} |\n",
            row.criterion,
            row.leaves,
            row.best_genotype,
            row.standalone_valid_mean,
            row.standalone_valid_std,
            row.standalone_test_mean,
            row.standalone_test_std,
            row.search_seconds_mean,
            row.split_seconds_mean
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> RunConfig {
        RunConfig::from_toml(DEFAULT_BASE_CONFIG, Path::new("quickstart.toml")).unwrap()
    }

    #[test]
    fn every_criterion_gets_the_same_epochs_and_its_own_schedule() {
        let base = base();
        let gm = run_config(&base, "gm", 1).unwrap();
        assert_eq!(gm.split.epochs, base.split.epochs);
        assert_eq!(gm.split.config_json()["repeats"], 3);
        let random = run_config(&base, "random", 1).unwrap();
        assert_eq!(random.split.groups, base.split.groups);
        assert!(random.split.config.is_empty(), "gm's keys are not passed to random");
        let exhaustive = run_config(&base, "exhaustive", 1).unwrap();
        assert_eq!((exhaustive.split.epochs.as_slice(), exhaustive.split.groups.as_slice()), (&base.split.epochs[..1], &[0u32][..]));
        let none = run_config(&base, "none", 2).unwrap();
        assert!(none.split.is_one_shot());
        for config in [&gm, &random, &exhaustive, &none] {
            assert_eq!(config.search.epochs, base.search.epochs);
        }
        assert_eq!((none.run.seed, none.data.seed, none.run.name.as_str()), (2, 2, "none-seed2"));
    }

    #[test]
    fn mean_and_sample_std() {
        let (mean, std) = mean_std(&[1.0, 2.0, 3.0]);
        assert!((mean - 2.0).abs() < 1e-12 && (std - 1.0).abs() < 1e-12);
        assert_eq!(mean_std(&[0.5]), (0.5, 0.0));
    }
}
