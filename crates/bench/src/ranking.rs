//! `splitnas bench ranking RUN_DIR --table FILE`: how well a finished run's supernet (or, for
//! a split run, the leaf whose sub-space contains each architecture) ranks the architectures
//! of a ground-truth table.
//!
//! Each architecture is evaluated through its leaf as a single path (one-hot weights) on the
//! valid split, two ways:
//! - `running`: BatchNorm in inference mode with the running statistics the supernet kept
//!   during search training (no recalibration);
//! - `recalibrated`: the running statistics re-estimated for that architecture alone, as the
//!   exact average of its batch statistics over a fixed set of training batches (the same
//!   batches for every architecture), then inference mode. This is the usual "BN
//!   recalibration" of weight-sharing evaluations.
//!
//! The supernet's state is never changed on disk; buffers are restored after each leaf.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use splitnas_plugin_api::{Architecture, Mask, SupernetBox, TensorRef};
use tch::{Kind, Tensor};

use crate::rank_statistics::{kendall_tau, regret_of_pick, spearman_rho, top_indices, top_k_precision};
use crate::table::GroundTruthTable;
use splitnas_data::{BatchLoader, LoaderPosition, SplitName};
use splitnas_engine::batch_norm::BatchNormStatistics;
use splitnas_engine::checkpoint::{read_json, restore_into};
use splitnas_engine::context::one_hot_weights;
use splitnas_engine::error::{named, PluginResultExt, SearchError};
use splitnas_engine::plugins::PluginRegistry;
use splitnas_engine::sub_supernet::state_prefix;
use splitnas_run::directory::RunDirectory;
use splitnas_run::{RunOptions, RunSetup};

/// How the supernet evaluates each architecture.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RankingOptions {
    /// Valid batches per architecture (0: the whole valid split).
    pub eval_batches: usize,
    /// Training batches that re-estimate BatchNorm statistics per architecture.
    pub recalibration_batches: usize,
    /// The k of top-k precision.
    pub top_k: Vec<usize>,
}

impl Default for RankingOptions {
    fn default() -> Self {
        RankingOptions { eval_batches: 0, recalibration_batches: 10, top_k: vec![5, 10, 20] }
    }
}

/// The two ways of evaluating, in report order.
pub(crate) const METHODS: [(&str, &str); 2] = [
    ("running", "supernet BN running statistics, no recalibration"),
    ("recalibrated", "BN statistics re-estimated per architecture on training batches"),
];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchitectureScore {
    pub genotype: String,
    pub leaf: usize,
    /// The table's (mean) accuracy.
    pub truth: f64,
    /// Supernet valid accuracy, per method, in [`METHODS`] order.
    pub predicted: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopK {
    pub k: usize,
    pub precision: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MethodSummary {
    pub method: String,
    pub description: String,
    pub kendall_tau: f64,
    pub spearman_rho: f64,
    pub top_k: Vec<TopK>,
    /// The architecture this method ranks first, its true accuracy, and the regret.
    pub pick: String,
    pub pick_truth: f64,
    pub regret: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SelectedArchitecture {
    pub genotype: String,
    /// Its table accuracy, where the table lists it.
    pub truth: Option<f64>,
    pub regret: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RankingReport {
    pub run_dir: PathBuf,
    pub space: String,
    pub algorithm: String,
    pub criterion: String,
    pub leaves: usize,
    pub table: PathBuf,
    pub metric: String,
    /// Architectures of the table evaluated (parsed and inside some leaf).
    pub architectures: usize,
    /// Table rows not evaluated, with the reason.
    pub skipped: Vec<(String, String)>,
    pub best_truth: f64,
    /// Kendall τ between the table's first two seeds over the evaluated architectures: how
    /// well the table agrees with itself, the ceiling any predictor can be compared with.
    #[serde(default)]
    pub table_seed_tau: Option<f64>,
    pub options: RankingOptions,
    pub methods: Vec<MethodSummary>,
    /// The run's own selected architecture, scored by the table.
    pub selected: Option<SelectedArchitecture>,
    pub scores: Vec<ArchitectureScore>,
    pub seconds: f64,
}

/// Evaluates every table architecture through the run's leaves and compares with the table.
pub fn rank_run(
    run_dir: &Path,
    table_path: &Path,
    registry: PluginRegistry,
    options: &RankingOptions,
    run_options: &RunOptions,
) -> Result<RankingReport> {
    let started = std::time::Instant::now();
    let table = GroundTruthTable::read(table_path)?;
    let directory = RunDirectory::open(run_dir)?;
    let report = directory.read_report()?;
    let config = directory.read_config()?;
    if let Some(space) = &table.space {
        if space != &config.space.name {
            bail!("the table {} is for space `{space}`, the run searched `{}`", table_path.display(), config.space.name);
        }
    }
    let quiet_options = RunOptions { quiet: true, ..run_options.clone() };
    let setup = RunSetup::new(config, registry, &quiet_options)?;
    let tree = directory.read_tree()?;
    let leaves = tree.leaves();

    // Which leaf holds which architecture.
    let mut by_leaf: BTreeMap<usize, Vec<(usize, Architecture)>> = BTreeMap::new();
    let mut skipped = Vec::new();
    for (row, entry) in table.architectures.iter().enumerate() {
        let architecture = match setup.space.parse_genotype(entry.genotype.as_str().into()).into_result() {
            Ok(architecture) => architecture,
            Err(error) => {
                skipped.push((entry.genotype.clone(), format!("space `{}` cannot parse it: {error}", setup.config.space.name)));
                continue;
            }
        };
        match leaves.iter().find(|&&leaf| tree.nodes[leaf].mask().contains(&architecture)) {
            Some(&leaf) => by_leaf.entry(leaf).or_default().push((row, architecture)),
            None => skipped.push((entry.genotype.clone(), "no leaf's sub-space contains it".to_string())),
        }
    }
    let evaluated: usize = by_leaf.values().map(Vec::len).sum();
    if evaluated < 2 {
        bail!("only {evaluated} architectures of {} could be evaluated; a ranking needs at least 2", table_path.display());
    }

    let data = &setup.data;
    let valid = RefCell::new(data.eval_loader(SplitName::Valid)?);
    let calibration = RefCell::new(data.calibration_loader()?);
    let bar = splitnas_run::metrics::progress_bar(evaluated as u64, run_options.quiet, "ranking".to_string());
    let mut scores = Vec::with_capacity(evaluated);
    let mut cache = PredictionCache::open(run_dir, options);
    for (&leaf, members) in &by_leaf {
        let mut leaf_net: Option<(LeafSupernet, f64)> = None;
        for (row, architecture) in members {
            let entry = &table.architectures[*row];
            let predicted = match cache.get(&entry.genotype) {
                Some(predicted) => predicted,
                None => {
                    if leaf_net.is_none() {
                        let net = LeafSupernet::load(&setup, &directory, leaf, &tree.nodes[leaf].mask())?;
                        let momentum = net.batch_norm_momentum(&calibration, &members[0].1, &setup)?;
                        leaf_net = Some((net, momentum));
                    }
                    let (net, momentum) = leaf_net.as_ref().expect("loaded above");
                    let (weights, active) = one_hot_weights(architecture, &setup.info, setup.device);
                    let running = net.accuracy(&valid, &weights, &active, options.eval_batches)?;
                    net.recalibrate(&calibration, &weights, &active, options.recalibration_batches, *momentum)?;
                    let recalibrated = net.accuracy(&valid, &weights, &active, options.eval_batches)?;
                    net.restore_buffers();
                    cache.insert(&entry.genotype, vec![running, recalibrated])?;
                    vec![running, recalibrated]
                }
            };
            scores.push(ArchitectureScore { genotype: entry.genotype.clone(), leaf, truth: entry.mean_accuracy(), predicted });
            bar.inc(1);
        }
    }
    cache.save()?;
    bar.finish_and_clear();

    let truth: Vec<f64> = scores.iter().map(|s| s.truth).collect();
    let table_seed_tau = {
        let pairs: Vec<(f64, f64)> =
            scores.iter().filter_map(|s| table.find(&s.genotype).filter(|e| e.accuracy.len() >= 2).map(|e| (e.accuracy[0], e.accuracy[1]))).collect();
        (pairs.len() == scores.len() && pairs.len() >= 2).then(|| {
            let (first, second): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
            kendall_tau(&first, &second)
        })
    };
    let best_truth = truth.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let methods = METHODS
        .iter()
        .enumerate()
        .map(|(m, (name, description))| {
            let predicted: Vec<f64> = scores.iter().map(|s| s.predicted[m]).collect();
            let pick = top_indices(&predicted, 1)[0];
            MethodSummary {
                method: name.to_string(),
                description: description.to_string(),
                kendall_tau: kendall_tau(&predicted, &truth),
                spearman_rho: spearman_rho(&predicted, &truth),
                top_k: options.top_k.iter().map(|&k| TopK { k, precision: top_k_precision(&predicted, &truth, k) }).collect(),
                pick: scores[pick].genotype.clone(),
                pick_truth: scores[pick].truth,
                regret: regret_of_pick(&predicted, &truth),
            }
        })
        .collect();
    let selected = {
        let genotype = report.selected_result.genotype.clone();
        let truth = table.find(&genotype).map(|e| e.mean_accuracy());
        Some(SelectedArchitecture {
            regret: truth.map(|t| table.architectures.iter().map(|e| e.mean_accuracy()).fold(f64::NEG_INFINITY, f64::max) - t),
            genotype,
            truth,
        })
    };
    Ok(RankingReport {
        run_dir: run_dir.to_path_buf(),
        space: setup.config.space.name.clone(),
        algorithm: setup.config.algorithm.name.clone(),
        criterion: setup.config.split.criterion.clone(),
        leaves: leaves.len(),
        table: table_path.to_path_buf(),
        metric: table.metric.clone(),
        architectures: evaluated,
        skipped,
        best_truth,
        table_seed_tau,
        options: options.clone(),
        methods,
        selected,
        scores,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The supernet's predictions per genotype, kept in the run directory
/// (`ranking-predictions.json`) for the evaluation options they were made with: scoring the
/// same run against another table, or again, costs no evaluation, and an interrupted
/// ranking continues.
struct PredictionCache {
    path: PathBuf,
    file: CachedPredictions,
    unsaved: usize,
}

#[derive(Serialize, Deserialize, Default)]
struct CachedPredictions {
    eval_batches: usize,
    recalibration_batches: usize,
    predictions: BTreeMap<String, Vec<f64>>,
}

impl PredictionCache {
    fn open(run_dir: &Path, options: &RankingOptions) -> Self {
        let path = run_dir.join("ranking-predictions.json");
        let file = read_json::<CachedPredictions>(&path)
            .ok()
            .filter(|c| c.eval_batches == options.eval_batches && c.recalibration_batches == options.recalibration_batches)
            .unwrap_or(CachedPredictions {
                eval_batches: options.eval_batches,
                recalibration_batches: options.recalibration_batches,
                predictions: BTreeMap::new(),
            });
        PredictionCache { path, file, unsaved: 0 }
    }

    fn get(&self, genotype: &str) -> Option<Vec<f64>> {
        self.file.predictions.get(genotype).cloned()
    }

    fn insert(&mut self, genotype: &str, predicted: Vec<f64>) -> Result<()> {
        self.file.predictions.insert(genotype.to_string(), predicted);
        self.unsaved += 1;
        if self.unsaved >= 20 {
            self.save()?;
        }
        Ok(())
    }

    fn save(&mut self) -> Result<()> {
        if self.unsaved > 0 {
            splitnas_engine::checkpoint::write_json(&self.path, &self.file)?;
            self.unsaved = 0;
        }
        Ok(())
    }
}

/// One leaf's supernet, restored from its checkpoint, with a copy of its BN buffers.
struct LeafSupernet {
    supernet: SupernetBox,
    statistics: BatchNormStatistics,
}

impl LeafSupernet {
    fn load(setup: &RunSetup, directory: &RunDirectory, leaf: usize, mask: &Mask) -> Result<Self> {
        let space_error = |e| anyhow!("space `{}`: {e}", setup.config.space.name);
        let supernet = setup.space.build_supernet(mask, setup.device).into_result().map_err(space_error)?;
        let parameters = named(supernet.parameters().into_result().map_err(space_error)?);
        let buffers = named(supernet.buffers().into_result().map_err(space_error)?);
        let path = directory.checkpoint_paths(leaf).0;
        let saved = directory.read_checkpoint_tensors(leaf).with_context(|| format!("leaf {leaf} has no checkpoint"))?;
        restore_into(&path, &saved, &parameters, state_prefix::PARAMETER)?;
        restore_into(&path, &saved, &buffers, state_prefix::BUFFER)?;
        Ok(LeafSupernet { supernet, statistics: BatchNormStatistics::of(&buffers) })
    }

    fn forward(&self, images: &Tensor, weights: &Tensor, active: &Mask, train: bool) -> Result<Tensor> {
        let output = self
            .supernet
            .forward(TensorRef::new(images), TensorRef::new(weights), active, train)
            .into_result()
            .map_err(|e| anyhow!("supernet: {e}"))?;
        Ok(output.into_tensor())
    }

    /// Valid accuracy with BN in inference mode.
    fn accuracy(&self, loader: &RefCell<BatchLoader>, weights: &Tensor, active: &Mask, max_batches: usize) -> Result<f64> {
        tch::no_grad(|| {
            let mut loader = loader.borrow_mut();
            loader.seek(LoaderPosition::default());
            let batches = loader.batches_per_epoch();
            let limit = if max_batches == 0 { batches } else { max_batches.min(batches) };
            let mut hits = Tensor::zeros([], (Kind::Int64, weights.device()));
            let mut seen = 0i64;
            for _ in 0..limit {
                let batch = loader.next_batch()?;
                let logits = self.forward(&batch.images, weights, active, false)?;
                hits += logits.argmax(-1, false).eq_tensor(&batch.labels).sum(Kind::Int64);
                seen += batch.labels.size()[0];
            }
            Ok(hits.int64_value(&[]) as f64 / seen.max(1) as f64)
        })
    }

    /// A training-mode pass of one architecture, for the statistics it leaves.
    fn train_forward<'a>(&'a self, weights: &'a Tensor, active: &'a Mask) -> impl Fn(&Tensor) -> Result<(), SearchError> + 'a {
        move |images: &Tensor| self.supernet.forward(TensorRef::new(images), TensorRef::new(weights), active, true).within("supernet").map(drop)
    }

    /// The BatchNorm momentum, measured on the first calibration batch (see
    /// [`BatchNormStatistics::measure_momentum`]).
    fn batch_norm_momentum(&self, calibration: &RefCell<BatchLoader>, architecture: &Architecture, setup: &RunSetup) -> Result<f64> {
        let (weights, active) = one_hot_weights(architecture, &setup.info, setup.device);
        let batch = {
            let mut loader = calibration.borrow_mut();
            loader.seek(LoaderPosition::default());
            loader.next_batch()?
        };
        let forward = self.train_forward(&weights, &active);
        let momentum = self.statistics.measure_momentum(&batch.images, &forward)?;
        Ok(momentum)
    }

    /// Sets the statistics to the mean of this architecture's batch statistics over the first
    /// `batches` calibration batches.
    fn recalibrate(&self, calibration: &RefCell<BatchLoader>, weights: &Tensor, active: &Mask, batches: usize, momentum: f64) -> Result<()> {
        Ok(self.statistics.recalibrate(calibration, batches, momentum, &self.train_forward(weights, active))?)
    }

    fn restore_buffers(&self) {
        self.statistics.restore();
    }
}

/// The report for people.
pub fn render_ranking(report: &RankingReport) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "run {} ({} / {} / split {}, {} leaves) against {}\n",
        report.run_dir.display(),
        report.space,
        report.algorithm,
        report.criterion,
        report.leaves,
        report.table.display()
    ));
    out.push_str(&format!(
        "{} architectures evaluated ({} skipped), {} valid batches each (0 = all), {} recalibration batches; table metric: {}\n\n",
        report.architectures,
        report.skipped.len(),
        report.options.eval_batches,
        report.options.recalibration_batches,
        report.metric
    ));
    let top_header: Vec<String> = report.options.top_k.iter().map(|k| format!("top-{k}")).collect();
    out.push_str(&format!(
        "{:<13} {:>8} {:>8} {} {:>8}  pick\n",
        "BN",
        "tau",
        "rho",
        top_header.iter().map(|h| format!("{h:>7}")).collect::<String>(),
        "regret"
    ));
    for method in &report.methods {
        let tops: String = method.top_k.iter().map(|t| format!("{:>7.2}", t.precision)).collect();
        out.push_str(&format!(
            "{:<13} {:>8.4} {:>8.4} {tops} {:>8.4}  {} ({:.4})\n",
            method.method, method.kendall_tau, method.spearman_rho, method.regret, method.pick, method.pick_truth
        ));
    }
    for (name, description) in METHODS {
        out.push_str(&format!("  {name}: {description}\n"));
    }
    if let Some(tau) = report.table_seed_tau {
        out.push_str(&format!("the table's first two seeds agree with tau {tau:.4} (the noise ceiling)\n"));
    }
    if let Some(selected) = &report.selected {
        match (selected.truth, selected.regret) {
            (Some(truth), Some(regret)) => {
                out.push_str(&format!("\nthe run selected {} : table accuracy {truth:.4}, regret {regret:.4}\n", selected.genotype))
            }
            _ => out.push_str(&format!("\nthe run selected {}, which the table does not list\n", selected.genotype)),
        }
    }
    out
}
