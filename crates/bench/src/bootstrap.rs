//! Confidence intervals for ranking quality, and the paired comparison of split criteria.
//!
//! A criterion's ranking quality (Kendall τ, Spearman ρ, top-k precision, regret of the top
//! pick) is the mean over its search seeds of each run's agreement with the ground-truth
//! table. That number is uncertain for three reasons, and the bootstrap here resamples all
//! three together in every replicate:
//! - which architectures the table happens to hold (resampled with replacement);
//! - the table's own training noise (its training seeds resampled, the truth their mean);
//! - the search seeds (resampled with replacement).
//!
//! Criteria run with the same seeds are paired: a seed fixes the data split and the batches
//! for every criterion, so the difference of two criteria on one seed removes that noise. A
//! replicate draws one set of architectures, table seeds and search seeds for every criterion,
//! so differences are bootstrapped paired too. Intervals are percentile intervals.

use serde::{Deserialize, Serialize};
use splitnas_data::SeededRng;
use thiserror::Error;

use crate::rank_statistics::{kendall_tau, regret_of_pick, spearman_rho, top_k_precision};

#[derive(Debug, Error, PartialEq)]
pub enum BootstrapError {
    #[error("the bootstrap needs at least 2 architectures, got {0}")]
    TooFewArchitectures(usize),
    #[error("architecture {index} has {found} table accuracies, the first has {expected}: every architecture needs one per table seed")]
    UnevenTableSeeds { index: usize, found: usize, expected: usize },
    #[error("criterion `{criterion}` has {found} runs, `{first}` has {expected}: criteria are paired by seed")]
    UnevenRuns { criterion: String, found: usize, first: String, expected: usize },
    #[error("run {run} of criterion `{criterion}` predicts {found} architectures, the table has {expected}")]
    UnevenPredictions { criterion: String, run: usize, found: usize, expected: usize },
}

/// A point estimate (on the data as measured) and its percentile confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

/// The ranking measures, in [`Measures::names`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    KendallTau,
    SpearmanRho,
    TopK(usize),
    Regret,
}

impl Measure {
    pub fn label(&self) -> String {
        match self {
            Measure::KendallTau => "Kendall τ".to_string(),
            Measure::SpearmanRho => "Spearman ρ".to_string(),
            Measure::TopK(k) => format!("top-{k} precision"),
            Measure::Regret => "regret of the top pick".to_string(),
        }
    }

    /// Whether a larger value is better (regret is the one where smaller is).
    pub fn higher_is_better(&self) -> bool {
        !matches!(self, Measure::Regret)
    }

    /// The measures for these k of top-k precision.
    pub fn all(top_k: &[usize]) -> Vec<Measure> {
        let mut measures = vec![Measure::KendallTau, Measure::SpearmanRho];
        measures.extend(top_k.iter().map(|&k| Measure::TopK(k)));
        measures.push(Measure::Regret);
        measures
    }

    fn of(&self, predicted: &[f64], truth: &[f64]) -> f64 {
        match self {
            Measure::KendallTau => kendall_tau(predicted, truth),
            Measure::SpearmanRho => spearman_rho(predicted, truth),
            Measure::TopK(k) => top_k_precision(predicted, truth, *k),
            Measure::Regret => regret_of_pick(predicted, truth),
        }
    }
}

/// The predictions of every criterion's runs over one list of architectures, and the table's
/// accuracies of those architectures per training seed.
#[derive(Debug, Clone)]
pub struct RankingData {
    /// `[architecture][table seed]`.
    pub table: Vec<Vec<f64>>,
    /// `(criterion, [run][architecture])`; run i of every criterion used the same seed.
    pub criteria: Vec<(String, Vec<Vec<f64>>)>,
}

/// One criterion's measures with intervals.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CriterionIntervals {
    pub criterion: String,
    /// `(measure, interval of its mean over seeds)`.
    pub measures: Vec<(Measure, Interval)>,
}

/// `reference` minus `other` on one measure, seed by seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairedDifference {
    pub reference: String,
    pub other: String,
    pub measure: Measure,
    /// Mean over seeds of (reference − other), with its interval.
    pub difference: Interval,
    /// Seeds where the reference is better, worse, and equal (better: higher, or lower regret).
    pub better: usize,
    pub worse: usize,
    pub ties: usize,
    /// The share of bootstrap replicates in which the reference is better on average.
    pub share_of_replicates_better: f64,
}

/// What [`bootstrap`] finds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootstrapReport {
    pub replicates: usize,
    pub confidence: f64,
    pub architectures: usize,
    pub table_seeds: usize,
    pub search_seeds: usize,
    pub criteria: Vec<CriterionIntervals>,
    pub paired: Vec<PairedDifference>,
}

impl RankingData {
    fn validate(&self) -> Result<(), BootstrapError> {
        let architectures = self.table.len();
        if architectures < 2 {
            return Err(BootstrapError::TooFewArchitectures(architectures));
        }
        let table_seeds = self.table[0].len();
        if let Some((index, row)) = self.table.iter().enumerate().find(|(_, row)| row.len() != table_seeds || row.is_empty()) {
            return Err(BootstrapError::UnevenTableSeeds { index, found: row.len(), expected: table_seeds });
        }
        let Some((first, first_runs)) = self.criteria.first() else { return Ok(()) };
        for (criterion, runs) in &self.criteria {
            if runs.len() != first_runs.len() {
                return Err(BootstrapError::UnevenRuns {
                    criterion: criterion.clone(),
                    found: runs.len(),
                    first: first.clone(),
                    expected: first_runs.len(),
                });
            }
            if let Some((run, predictions)) = runs.iter().enumerate().find(|(_, p)| p.len() != architectures) {
                return Err(BootstrapError::UnevenPredictions {
                    criterion: criterion.clone(),
                    run,
                    found: predictions.len(),
                    expected: architectures,
                });
            }
        }
        Ok(())
    }

    /// `[criterion][run][measure]` on the architectures `chosen`, against the mean of the table
    /// seeds `table_seeds`.
    fn per_run(&self, measures: &[Measure], chosen: &[usize], table_seeds: &[usize]) -> Vec<Vec<Vec<f64>>> {
        let truth: Vec<f64> = chosen.iter().map(|&a| table_seeds.iter().map(|&s| self.table[a][s]).sum::<f64>() / table_seeds.len() as f64).collect();
        self.criteria
            .iter()
            .map(|(_, runs)| {
                runs.iter()
                    .map(|predictions| {
                        let predicted: Vec<f64> = chosen.iter().map(|&a| predictions[a]).collect();
                        measures.iter().map(|m| m.of(&predicted, &truth)).collect()
                    })
                    .collect()
            })
            .collect()
    }
}

/// Mean of `values[i]` over the indices `runs`, skipping NaN (a run whose predictions are all
/// equal on a replicate's architectures has no τ); NaN when none is left.
fn mean_over(values: &[f64], runs: &[usize]) -> f64 {
    let kept: Vec<f64> = runs.iter().map(|&r| values[r]).filter(|v| !v.is_nan()).collect();
    if kept.is_empty() {
        f64::NAN
    } else {
        kept.iter().sum::<f64>() / kept.len() as f64
    }
}

/// The `q` quantile (linear interpolation, as numpy's default) of the finite values.
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let position = q * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    sorted[below] + (sorted[above] - sorted[below]) * (position - below as f64)
}

/// Percentile intervals at `confidence` (e.g. 0.95) from `replicates` bootstrap replicates,
/// seeded by `seed`. `reference` (a criterion of `data`) is compared with every other one.
pub fn bootstrap(
    data: &RankingData,
    measures: &[Measure],
    reference: Option<&str>,
    replicates: usize,
    confidence: f64,
    seed: u64,
) -> Result<BootstrapReport, BootstrapError> {
    data.validate()?;
    let architectures = data.table.len();
    let table_seeds = data.table[0].len();
    let search_seeds = data.criteria.first().map_or(0, |(_, runs)| runs.len());
    let all_architectures: Vec<usize> = (0..architectures).collect();
    let all_table_seeds: Vec<usize> = (0..table_seeds).collect();
    let all_runs: Vec<usize> = (0..search_seeds).collect();
    let reference_index = reference.and_then(|name| data.criteria.iter().position(|(c, _)| c == name));

    // `[criterion][measure]` means and `[other][measure]` paired differences, per replicate.
    let summarise = |per_run: &[Vec<Vec<f64>>], runs: &[usize]| -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        let means: Vec<Vec<f64>> = per_run
            .iter()
            .map(|criterion| (0..measures.len()).map(|m| mean_over(&criterion.iter().map(|run| run[m]).collect::<Vec<_>>(), runs)).collect())
            .collect();
        let differences = match reference_index {
            Some(r) => (0..per_run.len())
                .map(|c| {
                    (0..measures.len())
                        .map(|m| {
                            let paired: Vec<f64> = (0..search_seeds).map(|s| per_run[r][s][m] - per_run[c][s][m]).collect();
                            mean_over(&paired, runs)
                        })
                        .collect()
                })
                .collect(),
            None => Vec::new(),
        };
        (means, differences)
    };

    let measured = data.per_run(measures, &all_architectures, &all_table_seeds);
    let (estimates, estimated_differences) = summarise(&measured, &all_runs);

    let mut rng = SeededRng::new(seed);
    let mut draw = |n: usize| -> Vec<usize> { (0..n).map(|_| rng.below(n as u64) as usize).collect() };
    let mut replicate_means = Vec::with_capacity(replicates);
    let mut replicate_differences = Vec::with_capacity(replicates);
    for _ in 0..replicates {
        let chosen = draw(architectures);
        let seeds_of_table = draw(table_seeds);
        let runs = draw(search_seeds);
        let per_run = data.per_run(measures, &chosen, &seeds_of_table);
        let (means, differences) = summarise(&per_run, &runs);
        replicate_means.push(means);
        replicate_differences.push(differences);
    }
    let tail = (1.0 - confidence) / 2.0;
    let interval = |estimate: f64, samples: Vec<f64>| Interval { estimate, low: quantile(&samples, tail), high: quantile(&samples, 1.0 - tail) };

    let criteria = data
        .criteria
        .iter()
        .enumerate()
        .map(|(c, (criterion, _))| CriterionIntervals {
            criterion: criterion.clone(),
            measures: measures
                .iter()
                .enumerate()
                .map(|(m, measure)| (*measure, interval(estimates[c][m], replicate_means.iter().map(|r| r[c][m]).collect())))
                .collect(),
        })
        .collect();
    let mut paired = Vec::new();
    if let Some(r) = reference_index {
        for (c, (other, _)) in data.criteria.iter().enumerate().filter(|(c, _)| *c != r) {
            for (m, measure) in measures.iter().enumerate() {
                let sign = if measure.higher_is_better() { 1.0 } else { -1.0 };
                let per_seed: Vec<f64> = (0..search_seeds).map(|s| sign * (measured[r][s][m] - measured[c][s][m])).collect();
                let samples: Vec<f64> = replicate_differences.iter().map(|d| d[c][m]).collect();
                let finite = samples.iter().filter(|v| v.is_finite()).count();
                paired.push(PairedDifference {
                    reference: data.criteria[r].0.clone(),
                    other: other.clone(),
                    measure: *measure,
                    better: per_seed.iter().filter(|d| **d > 0.0).count(),
                    worse: per_seed.iter().filter(|d| **d < 0.0).count(),
                    ties: per_seed.iter().filter(|d| **d == 0.0).count(),
                    share_of_replicates_better: samples.iter().filter(|d| sign * **d > 0.0).count() as f64 / finite.max(1) as f64,
                    difference: interval(estimated_differences[c][m], samples),
                });
            }
        }
    }
    Ok(BootstrapReport { replicates, confidence, architectures, table_seeds, search_seeds, criteria, paired })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table of `n` architectures whose true accuracy is i/n, two noisy seeds.
    fn table(n: usize) -> Vec<Vec<f64>> {
        let mut rng = SeededRng::new(7);
        (0..n).map(|i| (0..2).map(|_| i as f64 / n as f64 + 0.02 * (rng.unit() - 0.5)).collect()).collect()
    }

    /// Predictions: the truth plus noise of this size, one run per seed.
    fn runs(n: usize, noise: f64, seeds: u64, salt: u64) -> Vec<Vec<f64>> {
        (0..seeds)
            .map(|s| {
                let mut rng = SeededRng::derive(salt, &[s]);
                (0..n).map(|i| i as f64 / n as f64 + noise * (rng.unit() - 0.5)).collect()
            })
            .collect()
    }

    #[test]
    fn estimates_are_the_measures_on_the_data_and_intervals_contain_them() {
        let n = 60;
        let data = RankingData { table: table(n), criteria: vec![("good".into(), runs(n, 0.3, 5, 1)), ("bad".into(), runs(n, 3.0, 5, 2))] };
        let measures = Measure::all(&[5]);
        let report = bootstrap(&data, &measures, Some("good"), 300, 0.95, 0).unwrap();
        let truth: Vec<f64> = data.table.iter().map(|row| row.iter().sum::<f64>() / row.len() as f64).collect();
        let expected_tau = data.criteria[0].1.iter().map(|p| kendall_tau(p, &truth)).sum::<f64>() / 5.0;
        let (measure, tau) = report.criteria[0].measures[0];
        assert_eq!(measure, Measure::KendallTau);
        assert!((tau.estimate - expected_tau).abs() < 1e-12);
        for criterion in &report.criteria {
            for (measure, interval) in &criterion.measures {
                assert!(interval.low <= interval.high, "{measure:?}");
                assert!(interval.low <= interval.estimate + 1e-9 && interval.estimate <= interval.high + 1e-9, "{measure:?}: {interval:?}");
            }
        }
        // A good ranker's τ interval sits high and clear of a bad one's.
        let bad_tau = report.criteria[1].measures[0].1;
        assert!(tau.low > 0.6 && bad_tau.high < tau.low, "{tau:?} vs {bad_tau:?}");
    }

    #[test]
    fn paired_comparison_counts_seeds_and_orients_regret() {
        let n = 40;
        let data = RankingData { table: table(n), criteria: vec![("gm".into(), runs(n, 0.2, 5, 3)), ("random".into(), runs(n, 5.0, 5, 4))] };
        let report = bootstrap(&data, &Measure::all(&[]), Some("gm"), 200, 0.9, 1).unwrap();
        assert_eq!(report.paired.len(), 3, "τ, ρ and regret against the one other criterion");
        let tau = report.paired.iter().find(|p| p.measure == Measure::KendallTau).unwrap();
        assert_eq!((tau.reference.as_str(), tau.other.as_str()), ("gm", "random"));
        assert_eq!((tau.better, tau.worse, tau.ties), (5, 0, 0));
        assert!(tau.difference.estimate > 0.4 && tau.difference.low > 0.0);
        assert!(tau.share_of_replicates_better > 0.99);
        // Regret: the difference is gm − random, so better means negative.
        let regret = report.paired.iter().find(|p| p.measure == Measure::Regret).unwrap();
        assert!(regret.difference.estimate <= 0.0);
        assert_eq!(regret.better + regret.worse + regret.ties, 5);
        assert!(regret.better >= regret.worse);
    }

    #[test]
    fn a_criterion_against_itself_ties_everywhere() {
        let n = 20;
        let same = runs(n, 0.5, 3, 5);
        let data = RankingData { table: table(n), criteria: vec![("gm".into(), same.clone()), ("copy".into(), same)] };
        let report = bootstrap(&data, &[Measure::KendallTau], Some("gm"), 100, 0.95, 2).unwrap();
        let tau = &report.paired[0];
        assert_eq!((tau.better, tau.worse, tau.ties), (0, 0, 3));
        assert_eq!((tau.difference.estimate, tau.difference.low, tau.difference.high), (0.0, 0.0, 0.0));
        assert_eq!(tau.share_of_replicates_better, 0.0);
    }

    #[test]
    fn same_seed_same_intervals() {
        let n = 30;
        let data = RankingData { table: table(n), criteria: vec![("gm".into(), runs(n, 1.0, 3, 6))] };
        let first = bootstrap(&data, &[Measure::KendallTau], None, 50, 0.95, 9).unwrap();
        let second = bootstrap(&data, &[Measure::KendallTau], None, 50, 0.95, 9).unwrap();
        assert_eq!(first.criteria[0].measures, second.criteria[0].measures);
        assert!(first.paired.is_empty());
    }

    #[test]
    fn refuses_mismatched_shapes() {
        let uneven = RankingData { table: vec![vec![0.1, 0.2], vec![0.3]], criteria: vec![] };
        assert_eq!(
            bootstrap(&uneven, &[Measure::KendallTau], None, 10, 0.95, 0).unwrap_err(),
            BootstrapError::UnevenTableSeeds { index: 1, found: 1, expected: 2 }
        );
        let runs_differ = RankingData { table: table(4), criteria: vec![("a".into(), runs(4, 1.0, 2, 0)), ("b".into(), runs(4, 1.0, 3, 0))] };
        assert!(matches!(bootstrap(&runs_differ, &[Measure::KendallTau], None, 10, 0.95, 0), Err(BootstrapError::UnevenRuns { .. })));
        let short = RankingData { table: table(4), criteria: vec![("a".into(), vec![vec![0.0; 3]])] };
        assert!(matches!(bootstrap(&short, &[Measure::KendallTau], None, 10, 0.95, 0), Err(BootstrapError::UnevenPredictions { .. })));
        let tiny = RankingData { table: table(1), criteria: vec![] };
        assert_eq!(bootstrap(&tiny, &[], None, 10, 0.95, 0).unwrap_err(), BootstrapError::TooFewArchitectures(1));
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let values = [4.0, 1.0, 3.0, 2.0, f64::NAN];
        assert_eq!(quantile(&values, 0.0), 1.0);
        assert_eq!(quantile(&values, 1.0), 4.0);
        assert!((quantile(&values, 0.5) - 2.5).abs() < 1e-12);
        assert!((quantile(&values, 0.25) - 1.75).abs() < 1e-12);
    }
}
