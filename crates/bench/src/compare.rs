//! `splitnas compare`: the same space, algorithm, data, seeds and epoch budget under several
//! split criteria (`none` = one-shot), one run directory per (criterion, seed), resumable.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::bootstrap::{bootstrap, BootstrapReport, Measure, RankingData};
use crate::ranking::{rank_run, RankingOptions, RankingReport, METHODS};
use crate::table::GroundTruthTable;
use splitnas_engine::plugins::PluginRegistry;
use splitnas_plugin_api::ComponentKind;
use splitnas_run::config::RunConfig;
use splitnas_run::directory::RunDirectory;
use splitnas_run::provenance::{build_differences, component_builds};
use splitnas_run::{resume, run, Report, RunOptions, RunSetup};

/// The configuration `compare` starts from when none is given: the quickstart's.
pub const DEFAULT_BASE_CONFIG: &str = include_str!("../../../examples/quickstart.toml");

/// What to compare.
#[derive(Debug, Clone)]
pub struct CompareRequest {
    pub criteria: Vec<String>,
    pub space: Option<String>,
    pub algorithm: Option<String>,
    pub seeds: Vec<u64>,
    pub output_dir: PathBuf,
    /// A ground-truth table: score every run's ranking against it.
    pub table: Option<PathBuf>,
    pub ranking: RankingOptions,
    /// Confidence intervals and the paired comparison (with a table).
    pub bootstrap: BootstrapOptions,
}

/// The bootstrap of ranking quality over architectures, table seeds and search seeds
/// ([`crate::bootstrap`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootstrapOptions {
    /// Replicates; 0 leaves intervals out.
    pub replicates: usize,
    /// The intervals' confidence, e.g. 0.95.
    pub confidence: f64,
    /// The criterion every other one is compared with, seed by seed (where it is compared).
    pub reference: String,
    pub seed: u64,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        BootstrapOptions { replicates: 1000, confidence: 0.95, reference: "gm".to_string(), seed: 0 }
    }
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
    /// Ranking quality against the table, where one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranking: Option<RankingSummary>,
}

/// Ranking quality of one criterion over its seeds: per BN method, mean and std.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RankingSummary {
    pub methods: Vec<MethodStatistics>,
    /// Regret of each run's own selected architecture, where the table lists it.
    pub selected_regret: (f64, f64),
    pub selected_in_table: usize,
    /// Kendall τ between the table's first two seeds (the noise ceiling), where it has two.
    #[serde(default)]
    pub table_seed_tau: Option<f64>,
    /// Per BN method (in `methods` order): the bootstrap's intervals for this criterion, and,
    /// for criteria other than the reference, the reference minus this criterion, seed by seed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bootstrap: Vec<MethodBootstrap>,
}

/// One BN method's bootstrap results for one criterion.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MethodBootstrap {
    pub method: String,
    pub replicates: usize,
    pub confidence: f64,
    /// Architectures and seeds the bootstrap resampled.
    pub architectures: usize,
    pub table_seeds: usize,
    pub search_seeds: usize,
    pub intervals: Vec<(Measure, crate::bootstrap::Interval)>,
    /// Empty for the reference criterion itself.
    pub versus_reference: Vec<crate::bootstrap::PairedDifference>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MethodStatistics {
    pub method: String,
    pub kendall_tau: (f64, f64),
    pub spearman_rho: (f64, f64),
    /// (k, mean, std) of top-k precision.
    pub top_k: Vec<(usize, f64, f64)>,
    pub regret: (f64, f64),
}

fn summarize_rankings(reports: &[RankingReport]) -> RankingSummary {
    let stat = |f: &dyn Fn(&RankingReport) -> f64| mean_std(&reports.iter().map(f).collect::<Vec<_>>());
    let methods = METHODS
        .iter()
        .enumerate()
        .map(|(m, (name, _))| MethodStatistics {
            method: name.to_string(),
            kendall_tau: stat(&|r| r.methods[m].kendall_tau),
            spearman_rho: stat(&|r| r.methods[m].spearman_rho),
            top_k: reports.first().map_or(Vec::new(), |first| {
                first.methods[m]
                    .top_k
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let (mean, std) = stat(&|r| r.methods[m].top_k[i].precision);
                        (t.k, mean, std)
                    })
                    .collect()
            }),
            regret: stat(&|r| r.methods[m].regret),
        })
        .collect();
    let selected: Vec<f64> = reports.iter().filter_map(|r| r.selected.as_ref().and_then(|s| s.regret)).collect();
    RankingSummary {
        methods,
        selected_regret: mean_std(&selected),
        selected_in_table: selected.len(),
        table_seed_tau: reports.first().and_then(|r| r.table_seed_tau),
        bootstrap: Vec::new(),
    }
}

/// The run's ranking report, cached in the run directory for this table and these options.
fn ranking_of(directory: &Path, table: &Path, ranking: &RankingOptions, registry: PluginRegistry, options: &RunOptions) -> Result<RankingReport> {
    let cache = directory.join("ranking.json");
    if let Ok(report) = splitnas_engine::checkpoint::read_json::<RankingReport>(&cache) {
        let same_options = serde_json::to_value(&report.options).ok() == serde_json::to_value(ranking).ok();
        if report.table == table && same_options && scored_the_same_table(&report, table) {
            return Ok(report);
        }
    }
    let report = rank_run(directory, table, registry, ranking, options)?;
    splitnas_engine::checkpoint::write_json(&cache, &report)?;
    Ok(report)
}

/// Whether `report` scored the table now at `table`: the same architectures with the same
/// accuracies (a table rewritten under the same name, e.g. one that grew, is scored again).
fn scored_the_same_table(report: &RankingReport, table: &Path) -> bool {
    let Ok(current) = crate::table::GroundTruthTable::read(table) else {
        return false;
    };
    let truths: std::collections::HashMap<&str, f64> =
        current.architectures.iter().map(|entry| (entry.genotype.as_str(), entry.mean_accuracy())).collect();
    report.scores.len() + report.skipped.len() == current.architectures.len()
        && report.scores.iter().all(|score| truths.get(score.genotype.as_str()).is_some_and(|&truth| truth == score.truth))
}

/// Mean and sample standard deviation (0 for one value).
pub(crate) fn mean_std(values: &[f64]) -> (f64, f64) {
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
/// into one child per option (Few-Shot NAS); `none` never splits. The base's criterion keys
/// (`[split] repeats = 3`) go to another criterion only where it publishes the same key
/// (`criterion_keys`, from its default configuration).
pub(crate) fn run_config(base: &RunConfig, criterion: &str, seed: u64, criterion_keys: &BTreeSet<String>) -> Result<RunConfig> {
    let mut config = base.clone();
    config.run.seed = seed;
    config.data.seed = Some(seed);
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
    if criterion != base.split.criterion {
        config.split.config.retain(|key, _| criterion_keys.contains(key));
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

/// Reuses a finished run or resumes an unfinished one, but only one made by the same plugin
/// builds: a run made by another build (or before builds were recorded) starts over.
fn run_or_resume(config: RunConfig, directory: &Path, registry: PluginRegistry, options: &RunOptions) -> Result<Report> {
    let run_directory = RunDirectory::new(directory);
    if run_directory.is_run() {
        let current = component_builds(&config, &registry)?;
        let differences = match run_directory.read_provenance()? {
            Some(recorded) => build_differences(&recorded.builds, &current),
            None => vec!["the run recorded no plugin builds".to_string()],
        };
        if differences.is_empty() {
            if run_directory.is_finished() {
                return Ok(run_directory.read_report()?);
            }
            if run_directory.has_tree() {
                return resume(directory, registry, options);
            }
        } else if !options.quiet {
            eprintln!("{} starts over: {}", directory.display(), differences.join("; "));
        }
    }
    let setup = RunSetup::new(config, registry, options)?;
    run(setup, &RunOptions { overwrite: true, ..options.clone() })
}

/// The keys a loaded criterion publishes in its default configuration (none if it is not loaded:
/// the run then fails naming it).
fn published_keys(registry: &PluginRegistry, criterion: &str) -> BTreeSet<String> {
    registry
        .get(ComponentKind::Criterion, criterion)
        .ok()
        .and_then(|component| serde_json::from_str::<serde_json::Value>(&component.info.default_config).ok())
        .and_then(|defaults| defaults.as_object().map(|keys| keys.keys().cloned().collect()))
        .unwrap_or_default()
}

/// Runs every (criterion, seed) pair not already finished and summarises them.
pub fn compare(
    base: &RunConfig,
    request: &CompareRequest,
    mut registry: impl FnMut() -> PluginRegistry,
    options: &RunOptions,
) -> Result<Vec<CompareRow>> {
    let mut base = base.clone();
    if let Some(space) = &request.space {
        if *space != base.space.name {
            base.space = splitnas_run::config::ComponentChoice { name: space.clone(), config: Default::default() };
        }
    }
    if let Some(algorithm) = &request.algorithm {
        if *algorithm != base.algorithm.name {
            base.algorithm = splitnas_run::config::ComponentChoice { name: algorithm.clone(), config: Default::default() };
        }
    }
    base.run.output_dir = request.output_dir.clone();
    let mut rows = Vec::new();
    let mut plot_inputs: Vec<(String, Vec<RankingReport>)> = Vec::new();
    for criterion in &request.criteria {
        let criterion_keys = published_keys(&registry(), criterion);
        if !options.quiet && *criterion != base.split.criterion {
            let dropped: Vec<&String> = base.split.config.keys().filter(|key| !criterion_keys.contains(*key)).collect();
            if !dropped.is_empty() {
                eprintln!("note: `{criterion}` has no key {dropped:?} of `{}`: its runs leave them out", base.split.criterion);
            }
        }
        let mut reports = Vec::new();
        let mut rankings = Vec::new();
        let mut runs = Vec::new();
        for &seed in &request.seeds {
            let config = run_config(&base, criterion, seed, &criterion_keys)?;
            let directory = request.output_dir.join(&config.run.name);
            if !options.quiet {
                eprintln!("== {criterion}, seed {seed} -> {}", directory.display());
            }
            let report = run_or_resume(config, &directory, registry(), options).with_context(|| format!("criterion `{criterion}`, seed {seed}"))?;
            reports.push(report);
            if let Some(table) = &request.table {
                if !options.quiet {
                    eprintln!("   ranking {} against {}", directory.display(), table.display());
                }
                rankings.push(
                    ranking_of(&directory, table, &request.ranking, registry(), options)
                        .with_context(|| format!("ranking of criterion `{criterion}`, seed {seed}"))?,
                );
            }
            runs.push(directory);
        }
        let valid: Vec<f64> =
            reports.iter().map(|r| r.selected_result.standalone.as_ref().and_then(|s| s.valid_accuracy).unwrap_or(f64::NAN)).collect();
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
            ranking: (!rankings.is_empty()).then(|| summarize_rankings(&rankings)),
        });
        if request.table.is_some() {
            plot_inputs.push((criterion.clone(), rankings));
        }
    }
    if let (Some(table), true) = (&request.table, request.bootstrap.replicates > 0) {
        attach_bootstrap(&mut rows, &plot_inputs, table, &request.ranking, &request.bootstrap)?;
    }
    if !plot_inputs.is_empty() {
        write_plots(&rows, &plot_inputs, &request.output_dir)?;
    }
    Ok(rows)
}

/// The architectures every run evaluated (in the first run's order), with the table's
/// accuracies per seed (as many seeds as every one of them has) and each criterion's
/// predictions per run and BN method: `[method]` of the bootstrap's input.
fn bootstrap_inputs(rankings: &[(String, Vec<RankingReport>)], table: &GroundTruthTable) -> Vec<RankingData> {
    let lookup: Vec<Vec<std::collections::HashMap<&str, &Vec<f64>>>> = rankings
        .iter()
        .map(|(_, reports)| reports.iter().map(|r| r.scores.iter().map(|s| (s.genotype.as_str(), &s.predicted)).collect()).collect())
        .collect();
    let genotypes: Vec<&str> = rankings
        .first()
        .and_then(|(_, reports)| reports.first())
        .map(|first| {
            first
                .scores
                .iter()
                .map(|s| s.genotype.as_str())
                .filter(|g| lookup.iter().flatten().all(|run| run.contains_key(g)) && table.find(g).is_some())
                .collect()
        })
        .unwrap_or_default();
    let table_seeds = genotypes.iter().filter_map(|g| table.find(g)).map(|e| e.accuracy.len()).min().unwrap_or(0);
    let accuracies: Vec<Vec<f64>> = genotypes.iter().filter_map(|g| table.find(g)).map(|e| e.accuracy[..table_seeds].to_vec()).collect();
    (0..METHODS.len())
        .map(|m| RankingData {
            table: accuracies.clone(),
            criteria: rankings
                .iter()
                .zip(&lookup)
                .map(|((criterion, _), runs)| (criterion.clone(), runs.iter().map(|run| genotypes.iter().map(|g| run[g][m]).collect()).collect()))
                .collect(),
        })
        .collect()
}

/// Bootstraps every BN method's ranking quality over architectures, table seeds and search
/// seeds, and stores the intervals and paired differences in the rows.
fn attach_bootstrap(
    rows: &mut [CompareRow],
    rankings: &[(String, Vec<RankingReport>)],
    table_path: &Path,
    ranking: &RankingOptions,
    options: &BootstrapOptions,
) -> Result<()> {
    let table = GroundTruthTable::read(table_path)?;
    let measures = Measure::all(&ranking.top_k);
    let reference = rankings.iter().any(|(c, _)| *c == options.reference).then_some(options.reference.as_str());
    let mut reports: Vec<(String, BootstrapReport)> = Vec::new();
    for (m, data) in bootstrap_inputs(rankings, &table).into_iter().enumerate() {
        let report = bootstrap(&data, &measures, reference, options.replicates, options.confidence, options.seed)
            .with_context(|| format!("bootstrap of the rankings against {}", table_path.display()))?;
        reports.push((METHODS[m].0.to_string(), report));
    }
    for row in rows.iter_mut() {
        let Some(summary) = row.ranking.as_mut() else { continue };
        summary.bootstrap = reports
            .iter()
            .filter_map(|(method, report)| {
                let intervals = report.criteria.iter().find(|c| c.criterion == row.criterion)?.measures.clone();
                Some(MethodBootstrap {
                    method: method.clone(),
                    replicates: report.replicates,
                    confidence: report.confidence,
                    architectures: report.architectures,
                    table_seeds: report.table_seeds,
                    search_seeds: report.search_seeds,
                    intervals,
                    versus_reference: report.paired.iter().filter(|p| p.other == row.criterion).cloned().collect(),
                })
            })
            .collect();
    }
    Ok(())
}

/// `ranking-tau.svg` (τ per criterion and BN method) and `ranking-scatter.svg` (predicted vs
/// true accuracy of each criterion's first seed, recalibrated BN) in the output directory.
fn write_plots(rows: &[CompareRow], inputs: &[(String, Vec<RankingReport>)], directory: &Path) -> Result<()> {
    use crate::plots::{prediction_scatter, tau_bars, TauBar};
    let bars: Vec<TauBar> = rows
        .iter()
        .filter_map(|row| {
            row.ranking.as_ref().map(|r| TauBar { criterion: row.criterion.clone(), per_method: r.methods.iter().map(|m| m.kendall_tau).collect() })
        })
        .collect();
    tau_bars(&bars, &directory.join("ranking-tau.svg"))?;
    let firsts: Vec<(String, &RankingReport)> = inputs
        .iter()
        .filter_map(|(c, reports)| {
            reports.first().map(|r| {
                (
                    format!(
                        "{c}, seed {}",
                        r.run_dir.file_name().map(|n| n.to_string_lossy().rsplit("seed").next().unwrap_or("").to_string()).unwrap_or_default()
                    ),
                    r,
                )
            })
        })
        .collect();
    prediction_scatter(&firsts, 1, &directory.join("ranking-scatter.svg"))?;
    Ok(())
}

/// Ranking columns, one row per criterion and BN method: mean ± sample std over seeds, and,
/// where the bootstrap ran, its interval in brackets. Then the paired comparison with the
/// reference criterion.
pub fn render_ranking_table(rows: &[CompareRow]) -> String {
    let Some(first) = rows.iter().find_map(|r| r.ranking.as_ref()) else { return String::new() };
    let ks: Vec<usize> = first.methods[0].top_k.iter().map(|t| t.0).collect();
    let mut out = String::from("| criterion | BN | Kendall τ | Spearman ρ |");
    for k in &ks {
        out += &format!(" top-{k} precision |");
    }
    out += " regret of the top pick | regret of the run's selection |\n|---|---|---|---|";
    out += &"---|".repeat(ks.len() + 2);
    out += "\n";
    for row in rows {
        let Some(ranking) = &row.ranking else { continue };
        for method in &ranking.methods {
            let intervals = ranking.bootstrap.iter().find(|b| b.method == method.method);
            let interval = |measure: Measure, digits: usize| {
                intervals
                    .and_then(|b| b.intervals.iter().find(|(m, _)| *m == measure))
                    .map_or(String::new(), |(_, i)| format!(" [{:.digits$}, {:.digits$}]", i.low, i.high))
            };
            out += &format!(
                "| {} | {} | {:.3} ± {:.3}{} | {:.3} ± {:.3}{} |",
                row.criterion,
                method.method,
                method.kendall_tau.0,
                method.kendall_tau.1,
                interval(Measure::KendallTau, 3),
                method.spearman_rho.0,
                method.spearman_rho.1,
                interval(Measure::SpearmanRho, 3)
            );
            for (k, mean, std) in &method.top_k {
                out += &format!(" {mean:.2} ± {std:.2}{} |", interval(Measure::TopK(*k), 2));
            }
            out += &format!(" {:.4} ± {:.4}{} |", method.regret.0, method.regret.1, interval(Measure::Regret, 4));
            out += &if ranking.selected_in_table > 0 {
                format!(
                    " {:.4} ± {:.4} ({}/{} listed) |\n",
                    ranking.selected_regret.0,
                    ranking.selected_regret.1,
                    ranking.selected_in_table,
                    row.seeds.len()
                )
            } else {
                " not in the table |\n".to_string()
            };
        }
    }
    if let Some(tau) = first.table_seed_tau {
        out += &format!("\nThe table's first two seeds agree with Kendall τ = {tau:.3}: the noise ceiling of these columns.\n");
    }
    if let Some(b) = rows.iter().filter_map(|r| r.ranking.as_ref()).find_map(|r| r.bootstrap.first()) {
        out += &format!(
            "\nIntervals: {:.0}% percentile bootstrap of the mean over seeds, {} replicates resampling the {} architectures, the table's {} seeds and the {} search seeds together.\n",
            b.confidence * 100.0,
            b.replicates,
            b.architectures,
            b.table_seeds,
            b.search_seeds
        );
    }
    out += &render_paired_table(rows);
    out
}

/// The reference criterion minus each other one, seed by seed: the mean difference, its
/// interval, and on how many seeds the reference was better / worse.
pub fn render_paired_table(rows: &[CompareRow]) -> String {
    let paired: Vec<(&CompareRow, &MethodBootstrap)> = rows
        .iter()
        .filter_map(|row| row.ranking.as_ref().map(|r| (row, r)))
        .flat_map(|(row, r)| r.bootstrap.iter().filter(|b| !b.versus_reference.is_empty()).map(move |b| (row, b)))
        .collect();
    let Some((_, first)) = paired.first() else { return String::new() };
    let reference = &first.versus_reference[0].reference;
    let mut out = format!(
        "\nPaired by seed: `{reference}` minus each other criterion (same seed: same data split and batches). Each cell: mean difference [interval], then the seeds on which `{reference}` is better / worse, then the share of bootstrap replicates in which it is better. For regret, negative differences favour `{reference}`.\n\n| {reference} minus | BN |"
    );
    for difference in &first.versus_reference {
        out += &format!(" {} |", difference.measure.label());
    }
    out += "\n|---|---|";
    out += &"---|".repeat(first.versus_reference.len());
    out += "\n";
    for (row, method) in &paired {
        out += &format!("| {} | {} |", row.criterion, method.method);
        for d in &method.versus_reference {
            let digits = if d.measure == Measure::Regret { 4 } else { 3 };
            out += &format!(
                " {:+.digits$} [{:+.digits$}, {:+.digits$}] {}/{} better/worse, {:.0}% |",
                d.difference.estimate,
                d.difference.low,
                d.difference.high,
                d.better,
                d.worse,
                d.share_of_replicates_better * 100.0
            );
        }
        out += "\n";
    }
    out
}

/// The table for people.
pub fn render_table(rows: &[CompareRow]) -> String {
    let mut out = String::from("| criterion | leaves | best-found architecture | stand-alone valid | stand-alone test | search s | splitting s |\n|---|---|---|---|---|---|---|\n");
    // Runs that train nothing stand-alone ([final] epochs = 0) have no accuracy to show.
    let accuracy = |mean: f64, std: f64| if mean.is_nan() { "not trained".to_string() } else { format!("{mean:.4} ± {std:.4}") };
    for row in rows {
        out += &format!(
            "| {} | {} | `{}` | {} | {} | {:.1} | {:.1} |\n",
            row.criterion,
            row.leaves,
            row.best_genotype,
            accuracy(row.standalone_valid_mean, row.standalone_valid_std),
            accuracy(row.standalone_test_mean, row.standalone_test_std),
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
        let none_published = BTreeSet::new();
        let gm = run_config(&base, "gm", 1, &none_published).unwrap();
        assert_eq!(gm.split.epochs, base.split.epochs);
        assert_eq!(gm.split.config_json()["repeats"], 3);
        let random = run_config(&base, "random", 1, &none_published).unwrap();
        assert_eq!(random.split.groups, base.split.groups);
        assert!(random.split.config.is_empty(), "gm's keys are not passed to random");
        let sharing = run_config(&base, "gm-l2", 1, &BTreeSet::from(["repeats".to_string(), "normalize".to_string()])).unwrap();
        assert_eq!(sharing.split.config_json()["repeats"], 3, "a key the other criterion also publishes is passed on");
        let exhaustive = run_config(&base, "exhaustive", 1, &none_published).unwrap();
        assert_eq!((exhaustive.split.epochs.as_slice(), exhaustive.split.groups.as_slice()), (&base.split.epochs[..1], &[0u32][..]));
        let none = run_config(&base, "none", 2, &none_published).unwrap();
        assert!(none.split.is_one_shot());
        for config in [&gm, &random, &exhaustive, &none] {
            assert_eq!(config.search.epochs, base.search.epochs);
        }
        assert_eq!((none.run.seed, none.data.seed, none.run.name.as_str()), (2, Some(2), "none-seed2"));
    }

    fn report(criterion: &str, seed: u64, predictions: &[(&str, f64)], truth: &GroundTruthTable) -> RankingReport {
        use crate::ranking::{ArchitectureScore, MethodSummary};
        let scores: Vec<ArchitectureScore> = predictions
            .iter()
            .map(|(genotype, p)| ArchitectureScore {
                genotype: genotype.to_string(),
                leaf: 0,
                truth: truth.find(genotype).unwrap().mean_accuracy(),
                predicted: vec![*p, *p + 0.01],
            })
            .collect();
        let summary = |method: &str| MethodSummary {
            method: method.to_string(),
            description: String::new(),
            kendall_tau: 0.5,
            spearman_rho: 0.5,
            top_k: vec![crate::ranking::TopK { k: 1, precision: 1.0 }],
            pick: String::new(),
            pick_truth: 0.0,
            regret: 0.0,
        };
        RankingReport {
            run_dir: PathBuf::from(format!("{criterion}-seed{seed}")),
            space: "nb201".into(),
            algorithm: "rsps".into(),
            criterion: criterion.into(),
            leaves: 1,
            table: PathBuf::from("table.json"),
            metric: String::new(),
            architectures: scores.len(),
            skipped: Vec::new(),
            best_truth: 0.9,
            table_seed_tau: Some(1.0),
            options: RankingOptions { top_k: vec![1], ..RankingOptions::default() },
            methods: vec![summary("running"), summary("recalibrated")],
            selected: None,
            scores,
            seconds: 0.0,
        }
    }

    #[test]
    fn a_cached_ranking_is_reused_only_for_the_same_table_contents() {
        use crate::table::TableEntry;
        let entry = |genotype: &str, accuracy: f64| TableEntry {
            genotype: genotype.into(),
            accuracy: vec![accuracy],
            seeds: vec![0],
            valid_accuracy: Vec::new(),
            parameters: None,
            flops: None,
            seconds: Vec::new(),
        };
        let table = GroundTruthTable::new(Some("nb201".into()), "test accuracy", vec![entry("a", 0.1), entry("b", 0.4)]);
        let scored = report("gm", 0, &[("a", 0.3), ("b", 0.2)], &table);
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("table.json");
        table.write(&path).unwrap();
        assert!(scored_the_same_table(&scored, &path));
        // The same name, grown by one architecture: scored again.
        GroundTruthTable::new(Some("nb201".into()), "test accuracy", vec![entry("a", 0.1), entry("b", 0.4), entry("c", 0.7)]).write(&path).unwrap();
        assert!(!scored_the_same_table(&scored, &path));
        // The same architectures with another accuracy: scored again.
        GroundTruthTable::new(Some("nb201".into()), "test accuracy", vec![entry("a", 0.1), entry("b", 0.5)]).write(&path).unwrap();
        assert!(!scored_the_same_table(&scored, &path));
        std::fs::remove_file(&path).unwrap();
        assert!(!scored_the_same_table(&scored, &path), "a table that cannot be read is never the same");
    }

    #[test]
    fn the_bootstrap_sees_the_architectures_every_run_evaluated_and_is_rendered_paired() {
        use crate::table::TableEntry;
        let entry = |genotype: &str, accuracy: [f64; 2]| TableEntry {
            genotype: genotype.into(),
            accuracy: accuracy.to_vec(),
            seeds: vec![0, 1],
            valid_accuracy: Vec::new(),
            parameters: None,
            flops: None,
            seconds: Vec::new(),
        };
        let table = GroundTruthTable::new(
            Some("nb201".into()),
            "test accuracy",
            vec![entry("a", [0.1, 0.2]), entry("b", [0.4, 0.3]), entry("c", [0.6, 0.7]), entry("d", [0.9, 0.8])],
        );
        let good = [("a", 0.1), ("b", 0.2), ("c", 0.3), ("d", 0.4)];
        let rankings = vec![
            ("gm".to_string(), vec![report("gm", 0, &good, &table), report("gm", 1, &good, &table)]),
            // Seed 1 of `random` did not evaluate `c`: the bootstrap leaves `c` out for everyone.
            (
                "random".to_string(),
                vec![
                    report("random", 0, &[("d", 0.1), ("c", 0.2), ("b", 0.3), ("a", 0.4)], &table),
                    report("random", 1, &[("a", 0.4), ("b", 0.3), ("d", 0.1)], &table),
                ],
            ),
        ];
        let inputs = bootstrap_inputs(&rankings, &table);
        assert_eq!(inputs.len(), METHODS.len());
        assert_eq!(inputs[0].table, vec![vec![0.1, 0.2], vec![0.4, 0.3], vec![0.9, 0.8]]);
        assert_eq!(inputs[0].criteria[1].1[0], vec![0.4, 0.3, 0.1], "random's seed 0, in the first run's order, without `c`");
        assert!((inputs[1].criteria[0].1[0][2] - 0.41).abs() < 1e-12, "the second method's predictions");

        let directory = std::env::temp_dir().join(format!("splitnas-compare-bootstrap-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let table_path = directory.join("table.json");
        table.write(&table_path).unwrap();
        let mut rows: Vec<CompareRow> = rankings
            .iter()
            .map(|(criterion, reports)| CompareRow {
                criterion: criterion.clone(),
                seeds: vec![0, 1],
                best_genotype: String::new(),
                standalone_valid_mean: f64::NAN,
                standalone_valid_std: f64::NAN,
                standalone_test_mean: f64::NAN,
                standalone_test_std: f64::NAN,
                search_seconds_mean: 0.0,
                split_seconds_mean: 0.0,
                leaves: 1,
                runs: Vec::new(),
                ranking: Some(summarize_rankings(reports)),
            })
            .collect();
        let options = BootstrapOptions { replicates: 50, ..BootstrapOptions::default() };
        attach_bootstrap(&mut rows, &rankings, &table_path, &RankingOptions { top_k: vec![1], ..RankingOptions::default() }, &options).unwrap();
        std::fs::remove_dir_all(&directory).unwrap();
        let gm = rows[0].ranking.as_ref().unwrap();
        assert_eq!(gm.bootstrap.len(), 2);
        assert!(gm.bootstrap[0].versus_reference.is_empty(), "the reference is not compared with itself");
        let tau = gm.bootstrap[0].intervals[0].1;
        assert_eq!(tau.estimate, 1.0, "gm ranks the three shared architectures perfectly on both seeds");
        let random = rows[1].ranking.as_ref().unwrap();
        let versus = &random.bootstrap[0].versus_reference;
        assert_eq!(versus.len(), 4, "τ, ρ, top-1 and regret");
        assert_eq!((versus[0].reference.as_str(), versus[0].other.as_str(), versus[0].better), ("gm", "random", 2));
        let rendered = render_ranking_table(&rows);
        assert!(rendered.contains("| gm | running | 0.500 ± 0.000 [1.000, 1.000] |"), "{rendered}");
        assert!(rendered.contains("| gm minus | BN | Kendall τ | Spearman ρ | top-1 precision | regret of the top pick |"), "{rendered}");
        assert!(rendered.contains("| random | running | +2.000 ["), "{rendered}");
        assert!(rendered.contains("2/0 better/worse"), "{rendered}");
    }

    #[test]
    fn mean_and_sample_std() {
        let (mean, std) = mean_std(&[1.0, 2.0, 3.0]);
        assert!((mean - 2.0).abs() < 1e-12 && (std - 1.0).abs() < 1e-12);
        assert_eq!(mean_std(&[0.5]), (0.5, 0.0));
    }
}
