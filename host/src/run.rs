//! `splitnas run CONFIG`: a search from a configuration file to a report, in a run directory.
//!
//! Run directory:
//! ```text
//! runs/<name>/
//!   config.toml            the configuration as resolved (defaults filled in)
//!   metrics.jsonl          one JSON object per epoch and event
//!   checkpoints/node-0.*   supernet, α, optimizer state (safetensors) + scalar state (JSON)
//!   report.json            the result, machine-readable
//!   report.md              the result, for people
//! ```

use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use splitnas_plugin_api::{AlgorithmSetup, ComponentKind, Device, SearchAlgorithmBox, SearchSpaceBox, SpaceInfo, SplitRequest};

use crate::checkpoint::{write_atomic, write_json, write_tensors};
use crate::components::create_space;
use crate::config::RunConfig;
use crate::data::{BatchLoader, prepare_data, PreparedData, SplitName};
use crate::device::DeviceChoice;
use crate::plugins::PluginRegistry;
use crate::random::SeededRng;
use crate::search::{SearchError, SubSupernet, TrainingEnvironment, TrainingSettings};
use crate::standalone::train_standalone;
use crate::tree::{CandidateRecord, LeafResult, SplitRecord, SplitTree};

/// Seeds of independent random streams, derived from the run seed.
const STREAM_INIT: u64 = 1;
const STREAM_EPOCH: u64 = 2;
const STREAM_EVAL: u64 = 3;
const STREAM_DERIVE: u64 = 4;
const STREAM_FINAL: u64 = 5;
const STREAM_SPLIT: u64 = 6;
/// Loader epochs far beyond training's, so that gradient matching draws its own batches.
const GRADIENT_LOADER_EPOCH: u64 = 1 << 40;

/// Options from the command line that are not part of the configuration.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Overrides `run.device`.
    pub device: Option<String>,
    /// Overrides `run.output_dir`.
    pub output_dir: Option<PathBuf>,
    /// Replace an existing run directory of the same name.
    pub overwrite: bool,
    /// No progress bars or per-epoch lines.
    pub quiet: bool,
}

/// The stand-alone training of the selected architecture.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub run: String,
    pub space: String,
    pub algorithm: String,
    pub criterion: String,
    pub device: String,
    pub seed: u64,
    /// Wall time of supernet training and splitting, all nodes.
    pub search_seconds: f64,
    /// The part of it spent inside split criteria (gradient collection included).
    pub split_seconds: f64,
    pub leaves: Vec<(usize, LeafResult)>,
    /// The node whose architecture was selected.
    pub selected: usize,
    pub selected_result: LeafResult,
    /// Every round of successive halving (`[final] select_by = "successive_halving"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub halving: Vec<HalvingRound>,
}

/// One leaf's stand-alone training in a round of successive halving.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HalvingEntry {
    pub node: usize,
    pub genotype: String,
    pub result: crate::standalone::StandaloneResult,
}

/// A round of successive halving: every survivor trained from scratch for `epochs`, and the
/// leaves kept for the next round (the better half, rounded up, by validation accuracy).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HalvingRound {
    pub round: usize,
    pub epochs: usize,
    pub entries: Vec<HalvingEntry>,
    pub kept: Vec<usize>,
}

fn to_tch(device: Device) -> tch::Device {
    device.to_tch()
}

/// Fills the space's `classes` and `input_channels` from the data unless the user set them.
fn space_config(config: &RunConfig, registry: &PluginRegistry, classes: usize, channels: usize) -> Result<Value> {
    let mut user = config.space.config_json();
    let component = registry.get(ComponentKind::Space, &config.space.name)?;
    let defaults: Value = serde_json::from_str(&component.info.default_config).unwrap_or(Value::Null);
    for (key, value) in [("classes", classes), ("input_channels", channels)] {
        if defaults.get(key).is_some() && user.get(key).is_none() {
            user[key] = json!(value);
        }
    }
    Ok(user)
}

/// Makes the algorithm factory for this run, with the user's keys validated once.
fn algorithm_factory(config: &RunConfig, registry: &PluginRegistry) -> Result<impl Fn(&AlgorithmSetup) -> Result<SearchAlgorithmBox, SearchError>> {
    Ok(crate::components::algorithm_factory(registry, &config.algorithm.name, &config.algorithm.config_json())?)
}

/// Appends one JSON line to metrics.jsonl.
struct MetricsLog {
    file: std::fs::File,
}

impl MetricsLog {
    fn open(path: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Ok(MetricsLog { file })
    }
    fn write(&mut self, value: Value) -> Result<()> {
        // One write call per line: `writeln!(file, "{value}")` issues a write per JSON token,
        // so a run killed mid-line left half a line that the resumed run's next line joined.
        let line = format!("{value}\n");
        self.file.write_all(line.as_bytes())?;
        self.file.flush()?;
        Ok(())
    }
}

pub fn progress_bar(length: u64, quiet: bool, prefix: String) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length);
    bar.set_style(ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} ETA {eta} {msg}").expect("valid template").progress_chars("=> "));
    bar.set_prefix(prefix);
    bar
}

/// The loaders a supernet's training reads: training batches, validation batches for the
/// architecture steps, and the validation split for supernet accuracy.
pub struct SearchLoaders {
    train: RefCell<BatchLoader>,
    valid: RefCell<BatchLoader>,
    valid_eval: RefCell<BatchLoader>,
}

impl SearchLoaders {
    pub fn new(data: &PreparedData) -> Result<Self> {
        Ok(SearchLoaders {
            train: RefCell::new(data.train_loader()?),
            valid: RefCell::new(data.valid_search_loader()?),
            valid_eval: RefCell::new(data.eval_loader(SplitName::Valid)?),
        })
    }

    pub fn environment<'a>(&'a self, space: &'a SearchSpaceBox, info: &'a SpaceInfo, device: Device, config: &RunConfig) -> TrainingEnvironment<'a> {
        TrainingEnvironment {
            space,
            info,
            device,
            train: &self.train,
            valid: &self.valid,
            valid_eval: &self.valid_eval,
            eval_batches: config.search.eval_batches,
            total_epochs: config.search.epochs,
        }
    }
}

/// Everything a run needs once its configuration is resolved.
pub struct RunSetup {
    pub config: RunConfig,
    pub registry: PluginRegistry,
    pub device: Device,
    pub data: PreparedData,
    pub space: SearchSpaceBox,
    pub info: SpaceInfo,
    pub directory: PathBuf,
}

impl RunSetup {
    pub fn new(config: RunConfig, registry: PluginRegistry, options: &RunOptions) -> Result<Self> {
        let device_text = options.device.clone().unwrap_or_else(|| config.run.device.clone());
        let device = device_text.parse::<DeviceChoice>()?.resolve()?;
        if config.run.threads > 0 {
            tch::set_num_threads(config.run.threads as i32);
        }
        let data = prepare_data(&config.data, to_tch(device)).context("preparing the data ([data] table)")?;
        let shape = data.splits.train.image_shape();
        let classes = data.splits.train.num_classes;
        let space = create_space(&registry, &config.space.name, &space_config(&config, &registry, classes, shape[0] as usize)?)?;
        let info = space.info().into_result().map_err(|e| anyhow::anyhow!("space `{}`: {e}", config.space.name))?;
        let output_dir = options.output_dir.clone().unwrap_or_else(|| config.run.output_dir.clone());
        let directory = output_dir.join(&config.run.name);
        Ok(RunSetup { config, registry, device, data, space, info, directory })
    }
}


fn node_seed(seed: u64, stream: u64, parts: &[u64]) -> u64 {
    let mut all = vec![stream];
    all.extend_from_slice(parts);
    SeededRng::derive(seed, &all).next_u64()
}

/// Choice points a leaf may split: splittable (DARTS: normal-cell edges only) and never split
/// on its path (the mask row still allows every option).
pub fn split_candidates(info: &SpaceInfo, mask: &splitnas_plugin_api::Mask) -> Vec<u32> {
    info.choice_points
        .iter()
        .enumerate()
        .filter(|(point, choice_point)| choice_point.splittable && mask.count(*point) == choice_point.options.len())
        .map(|(point, _)| point as u32)
        .collect()
}

/// Sums of absolute values per state role (param, buffer, alpha, sgd, adam): a cheap digest that
/// shows in metrics.jsonl what a node started from and what it inherited.
fn state_digest(sub: &SubSupernet) -> Value {
    let mut sums = std::collections::BTreeMap::<String, f64>::new();
    for (name, tensor) in sub.state_tensors() {
        let role = name.split('.').next().unwrap_or_default().to_string();
        *sums.entry(role).or_default() += tensor.abs().sum(tch::Kind::Double).double_value(&[]);
    }
    json!(sums)
}

/// A node's checkpoint: its tensors and where it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NodeCheckpoint {
    /// The next epoch to train (epochs before it are done).
    epoch: usize,
    state: crate::search::SubSupernetState,
}

fn checkpoint_paths(directory: &Path, node: usize) -> (PathBuf, PathBuf) {
    (directory.join(format!("checkpoints/node-{node}.safetensors")), directory.join(format!("checkpoints/node-{node}.json")))
}

fn save_node(directory: &Path, node: usize, sub: &SubSupernet, epoch: usize) -> Result<()> {
    let (tensors, json_path) = checkpoint_paths(directory, node);
    write_tensors(&tensors, &sub.state_tensors())?;
    write_json(&json_path, &NodeCheckpoint { epoch, state: sub.state()? })?;
    Ok(())
}

/// The search: everything below the configuration, shared by `run` and `resume`.
struct Search<'a> {
    config: &'a RunConfig,
    info: &'a SpaceInfo,
    data: &'a PreparedData,
    directory: &'a Path,
    options: &'a RunOptions,
    registry: &'a PluginRegistry,
}

/// A sub-supernet's optimizer settings under `config`: α stays frozen until the last split
/// unless the configuration trains it before.
pub(crate) fn training_settings(config: &RunConfig) -> TrainingSettings {
    let split = &config.split;
    let mut warmup = config.search.architecture_warmup_epochs;
    if !split.is_one_shot() && !split.train_architecture_before_last_split {
        warmup = warmup.max(*split.epochs.last().expect("a few-shot schedule has split epochs"));
    }
    TrainingSettings {
        weights: config.search.weights,
        architecture: config.search.architecture,
        schedule_start: 0,
        schedule_end: config.search.epochs,
        architecture_warmup_epochs: warmup,
        max_steps_per_epoch: config.search.max_steps_per_epoch,
    }
}

impl Search<'_> {
    fn settings(&self) -> TrainingSettings {
        training_settings(self.config)
    }

    /// Epoch boundaries: 0, the split epochs, the total.
    fn boundaries(&self) -> Vec<usize> {
        let mut boundaries = vec![0];
        if !self.config.split.is_one_shot() {
            boundaries.extend(&self.config.split.epochs);
        }
        boundaries.push(self.config.search.epochs);
        boundaries
    }

    fn tree_path(&self) -> PathBuf {
        self.directory.join("tree.json")
    }

    fn save_tree(&self, tree: &SplitTree) -> Result<()> {
        Ok(write_json(&self.tree_path(), tree)?)
    }

    /// Loads a node's sub-supernet from its checkpoint; returns it and the next epoch to train.
    fn load_node(&self, env: &TrainingEnvironment<'_>, tree: &SplitTree, node: usize, create: &dyn Fn(&AlgorithmSetup) -> Result<SearchAlgorithmBox, SearchError>) -> Result<(SubSupernet, usize)> {
        let (tensors_path, json_path) = checkpoint_paths(self.directory, node);
        let checkpoint: NodeCheckpoint = crate::checkpoint::read_json(&json_path).with_context(|| format!("node {node} has no usable checkpoint"))?;
        let tensors = crate::checkpoint::read_tensors(&tensors_path)?;
        tch::manual_seed(node_seed(self.config.run.seed, STREAM_INIT, &[node as u64]) as i64);
        let mut sub = SubSupernet::new(env, tree.nodes[node].mask(), create, self.config.run.seed ^ node as u64, self.settings())?;
        sub.load(&tensors_path, &tensors, &checkpoint.state)?;
        Ok((sub, checkpoint.epoch))
    }

    #[allow(clippy::too_many_arguments)]
    fn train_node(&self, env: &TrainingEnvironment<'_>, sub: &mut SubSupernet, node: usize, from: usize, to: usize, metrics: &mut MetricsLog, tree: &mut SplitTree) -> Result<()> {
        let total = self.config.search.epochs;
        for epoch in from..to {
            let steps = {
                let batches = env.train.borrow().batches_per_epoch();
                let cap = self.config.search.max_steps_per_epoch;
                if cap == 0 { batches } else { batches.min(cap) }
            };
            // Every node sees the same data order in a given epoch; resumes replay it exactly.
            env.train.borrow_mut().seek(crate::data::LoaderPosition { epoch: epoch as u64, batch: 0 });
            env.valid.borrow_mut().seek(crate::data::LoaderPosition { epoch: epoch as u64, batch: 0 });
            let bar = progress_bar(steps as u64, self.options.quiet, format!("node {node} epoch {}/{total}", epoch + 1));
            let summary = sub.train_epoch(env, epoch, node_seed(self.config.run.seed, STREAM_EPOCH, &[node as u64, epoch as u64]), &mut || bar.inc(1))?;
            bar.finish_and_clear();
            let valid_accuracy = sub.evaluate(env, epoch, node_seed(self.config.run.seed, STREAM_EVAL, &[node as u64, epoch as u64]))?;
            if !self.options.quiet {
                eprintln!(
                    "node {node} epoch {:>3}/{total}  lr {:.5}  loss {:.4}  supernet valid {:.4}  ({:.1} s)",
                    epoch + 1,
                    summary.lr,
                    summary.train_loss,
                    valid_accuracy,
                    summary.seconds
                );
            }
            metrics.write(json!({
                "event": "epoch", "node": node, "epoch": epoch, "lr": summary.lr, "train_loss": summary.train_loss,
                "supernet_valid_accuracy": valid_accuracy, "steps": summary.steps, "seconds": summary.seconds,
                "metrics": summary.metrics, "alphas": alpha_values(sub), "state_digest": state_digest(sub),
            }))?;
            tree.nodes[node].train_seconds += summary.seconds;
            save_node(self.directory, node, sub, epoch + 1)?;
            self.save_tree(tree)?;
        }
        Ok(())
    }

    /// Splits `node` (trained up to `epoch`) and writes its children's checkpoints, then the tree.
    #[allow(clippy::too_many_arguments)]
    fn split_node(
        &self,
        env: &TrainingEnvironment<'_>,
        sub: &mut SubSupernet,
        node: usize,
        level: usize,
        epoch: usize,
        tree: &mut SplitTree,
        create: &dyn Fn(&AlgorithmSetup) -> Result<SearchAlgorithmBox, SearchError>,
        metrics: &mut MetricsLog,
    ) -> Result<()> {
        let split = &self.config.split;
        let started = std::time::Instant::now();
        let mask = sub.mask.clone();
        let candidates = split_candidates(self.info, &mask);
        let request = SplitRequest { space: self.info.clone(), mask: mask.clone(), candidates: candidates.into(), groups: split.groups[level] };
        let mut criterion = crate::components::create_criterion(self.registry, &split.criterion, &split.config_json())?;
        let gradient_loader = RefCell::new(self.data.train_loader()?);
        gradient_loader.borrow_mut().seek(crate::data::LoaderPosition { epoch: GRADIENT_LOADER_EPOCH + node as u64, batch: 0 });
        if !self.options.quiet {
            eprintln!("node {node}: splitting with `{}` at epoch {epoch} ...", split.criterion);
        }
        let seed = node_seed(self.config.run.seed, STREAM_SPLIT, &[node as u64]);
        let (decision, passes) = sub.split(env, &mut criterion, &request, epoch, seed, &gradient_loader)?;
        let name = |point: u32| self.info.choice_points[point as usize].name.to_string();
        let option_name = |point: u32, option: u32| self.info.choice_points[point as usize].options[option as usize].name.to_string();
        let record = SplitRecord {
            epoch,
            criterion: split.criterion.clone(),
            choice_point: decision.choice_point,
            choice_point_name: name(decision.choice_point),
            groups: decision.groups.iter().map(|g| g.to_vec()).collect(),
            group_names: decision.groups.iter().map(|g| g.iter().map(|&o| option_name(decision.choice_point, o)).collect()).collect(),
            candidates: decision
                .scores
                .iter()
                .map(|c| CandidateRecord { choice_point: c.choice_point, name: name(c.choice_point), score: c.score, groups: c.groups.iter().map(|g| g.to_vec()).collect(), repeats: c.repeats })
                .collect(),
            gradient_passes: passes,
            seconds: started.elapsed().as_secs_f64(),
        };
        if !self.options.quiet {
            eprintln!("node {node}: split {} into {:?} ({:.1} s, {passes} gradient passes)", record.choice_point_name, record.group_names, record.seconds);
        }
        metrics.write(json!({"event": "split", "node": node, "split": record}))?;
        let last_split = level + 1 == split.epochs.len();
        let mut next_tree = tree.clone();
        let children = next_tree.split(node, record);
        let parent_tensors = sub.state_tensors();
        let parent_state = sub.state()?;
        for &child in &children {
            tch::manual_seed(node_seed(self.config.run.seed, STREAM_INIT, &[child as u64]) as i64);
            let mut settings = self.settings();
            if last_split && split.restart_final {
                // Fresh weights, α, optimizers; the schedule restarts over the remaining epochs.
                settings.schedule_start = epoch;
            }
            let mut child_sub = SubSupernet::new(env, next_tree.nodes[child].mask(), create, self.config.run.seed ^ child as u64, settings)?;
            if !(last_split && split.restart_final) {
                // Inherit everything: parameters, BN buffers, α, optimizer and schedule state.
                child_sub.load(&self.directory.join(format!("checkpoints/node-{node}.safetensors")), &parent_tensors, &parent_state)?;
            }
            metrics.write(json!({"event": "init", "node": child, "parent": node, "epoch": epoch, "fresh": last_split && split.restart_final, "alphas": alpha_values(&child_sub), "state_digest": state_digest(&child_sub)}))?;
            save_node(self.directory, child, &child_sub, epoch)?;
        }
        *tree = next_tree;
        self.save_tree(tree)?;
        Ok(())
    }
}

/// Starts a new run in a fresh directory.
pub fn run(setup: RunSetup, options: &RunOptions) -> Result<Report> {
    let directory = setup.directory.clone();
    if directory.exists() {
        if !options.overwrite {
            bail!("run directory {} already exists: choose another run.name, pass --overwrite, or `splitnas resume` it", directory.display());
        }
        std::fs::remove_dir_all(&directory).with_context(|| format!("cannot remove {}", directory.display()))?;
    }
    std::fs::create_dir_all(directory.join("checkpoints")).with_context(|| format!("cannot create {}", directory.display()))?;
    write_atomic(&directory.join("config.toml"), toml::to_string_pretty(&setup.config)?.as_bytes())?;
    execute(setup, options)
}

/// Continues an interrupted run from its directory.
pub fn resume(directory: &Path, registry: PluginRegistry, options: &RunOptions) -> Result<Report> {
    let config_path = directory.join("config.toml");
    if !config_path.exists() {
        bail!("{} is not a run directory (no config.toml)", directory.display());
    }
    let mut config = RunConfig::from_file(&config_path)?;
    config.run.output_dir = directory.parent().map(Path::to_path_buf).unwrap_or_default();
    config.run.name = directory.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let setup = RunSetup::new(config, registry, options)?;
    execute(setup, options)
}

fn execute(setup: RunSetup, options: &RunOptions) -> Result<Report> {
    let RunSetup { config, registry, device, data, space, info, directory } = setup;
    let mut metrics = MetricsLog::open(&directory.join("metrics.jsonl"))?;
    let loaders = SearchLoaders::new(&data)?;
    let env = loaders.environment(&space, &info, device, &config);
    let search = Search { config: &config, info: &info, data: &data, directory: &directory, options, registry: &registry };
    let create = algorithm_factory(&config, &registry)?;
    if !config.split.is_one_shot() {
        registry.get(ComponentKind::Criterion, &config.split.criterion)?;
    }

    let mut tree: SplitTree = if search.tree_path().exists() {
        crate::checkpoint::read_json(&search.tree_path())?
    } else {
        let tree = SplitTree::new(&info);
        tch::manual_seed(node_seed(config.run.seed, STREAM_INIT, &[0]) as i64);
        let root = SubSupernet::new(&env, info.full_mask(), &create, config.run.seed, search.settings())?;
        metrics.write(json!({"event": "init", "node": 0, "alphas": alpha_values(&root)}))?;
        save_node(&directory, 0, &root, 0)?;
        search.save_tree(&tree)?;
        tree
    };
    if !options.quiet {
        eprintln!(
            "searching {} with {} (split: {}) on {} ({} train / {} valid images, device {device})",
            config.space.name,
            config.algorithm.name,
            config.split.criterion,
            data.dataset,
            data.splits.train.len(),
            data.splits.valid.len()
        );
    }

    let boundaries = search.boundaries();
    for level in 0..boundaries.len() - 1 {
        let end = boundaries[level + 1];
        let splits_after = level + 2 < boundaries.len();
        for node in tree.at_depth(level) {
            let already_split = tree.nodes[node].split.is_some();
            if already_split {
                continue;
            }
            let (mut sub, next_epoch) = search.load_node(&env, &tree, node, &create)?;
            if next_epoch < end {
                search.train_node(&env, &mut sub, node, next_epoch, end, &mut metrics, &mut tree)?;
            }
            if splits_after {
                search.split_node(&env, &mut sub, node, level, end, &mut tree, &create, &mut metrics)?;
            }
        }
    }
    let search_seconds: f64 = tree.nodes.iter().map(|n| n.train_seconds).sum::<f64>()
        + tree.nodes.iter().filter_map(|n| n.split.as_ref()).map(|s| s.seconds).sum::<f64>();
    // + 0.0: an empty f64 sum is -0.0, which would print as "-0.0" for one-shot runs.
    let split_seconds: f64 = tree.nodes.iter().filter_map(|n| n.split.as_ref()).map(|s| s.seconds).sum::<f64>() + 0.0;

    // Derive one architecture per leaf.
    let image = data.splits.train.image_shape()[1] as u32;
    for node in tree.leaves() {
        if tree.nodes[node].result.is_some() {
            continue;
        }
        let (mut sub, _) = search.load_node(&env, &tree, node, &create)?;
        let epoch = config.search.epochs;
        let supernet_accuracy = sub.evaluate(&env, epoch, node_seed(config.run.seed, STREAM_EVAL, &[node as u64, epoch as u64]))?;
        let crate::search::Derivation { architecture, accuracy: architecture_accuracy, metrics: derive_metrics } =
            sub.derive(&env, epoch, node_seed(config.run.seed, STREAM_DERIVE, &[node as u64]))?;
        let genotype = space.format_genotype(&architecture).into_result().map_err(|e| anyhow::anyhow!("space: {e}"))?.to_string();
        let stats = space.network_stats(&architecture, image).into_result().map_err(|e| anyhow::anyhow!("space: {e}"))?;
        if !options.quiet {
            eprintln!("node {node}: derived {genotype} (supernet valid {supernet_accuracy:.4}, architecture through supernet {architecture_accuracy:.4})");
        }
        metrics.write(json!({"event": "derive", "node": node, "genotype": genotype, "supernet_valid_accuracy": supernet_accuracy, "architecture_valid_accuracy": architecture_accuracy, "metrics": derive_metrics}))?;
        tree.nodes[node].result = Some(LeafResult {
            genotype,
            choices: architecture.choices.to_vec(),
            supernet_valid_accuracy: supernet_accuracy,
            architecture_valid_accuracy: architecture_accuracy,
            standalone: None,
            parameters: stats.parameters,
            flops: stats.flops,
        });
        search.save_tree(&tree)?;
    }

    // Select: stand-alone training of every leaf (best validation accuracy), successive halving
    // over those trainings, or the supernet's word.
    let leaves = tree.leaves();
    let by_standalone = config.final_training.epochs > 0 && config.final_training.select_by == crate::config::SelectBy::Standalone;
    let by_halving = config.final_training.epochs > 0 && config.final_training.select_by == crate::config::SelectBy::SuccessiveHalving;
    let to_train: Vec<usize> = if config.final_training.epochs == 0 || by_halving {
        Vec::new()
    } else if by_standalone {
        leaves.clone()
    } else {
        vec![best_by(&tree, &leaves, |r| r.architecture_valid_accuracy)]
    };
    for node in to_train {
        if tree.nodes[node].result.as_ref().is_some_and(|r| r.standalone.is_some()) {
            continue;
        }
        let result = tree.nodes[node].result.clone().expect("derived above");
        let architecture = splitnas_plugin_api::Architecture { choices: result.choices.clone().into() };
        let standalone = final_training(&config, &config.final_training, &space, &architecture, &result.genotype, node, &data, device, options, &mut metrics)?;
        tree.nodes[node].result.as_mut().expect("derived above").standalone = Some(standalone);
        search.save_tree(&tree)?;
    }
    let halving = if by_halving {
        let train = |node: usize, epochs: usize, genotype: &str, architecture: &splitnas_plugin_api::Architecture, metrics: &mut MetricsLog| {
            let section = crate::config::FinalSection { epochs, ..config.final_training.clone() };
            final_training(&config, &section, &space, architecture, genotype, node, &data, device, options, metrics)
        };
        successive_halving(&config, &mut tree, &leaves, &directory, options, &mut metrics, &train, &|tree| search.save_tree(tree))?
    } else {
        Vec::new()
    };
    let selected = if let Some(last) = halving.last() {
        last.kept[0]
    } else if by_standalone {
        best_by(&tree, &leaves, |r| r.standalone.as_ref().and_then(|s| s.valid_accuracy).unwrap_or(f64::NEG_INFINITY))
    } else {
        best_by(&tree, &leaves, |r| r.architecture_valid_accuracy)
    };
    let report = Report {
        run: config.run.name.clone(),
        space: config.space.name.clone(),
        algorithm: config.algorithm.name.clone(),
        criterion: config.split.criterion.clone(),
        device: device.to_string(),
        seed: config.run.seed,
        search_seconds,
        split_seconds,
        leaves: leaves.iter().map(|&n| (n, tree.nodes[n].result.clone().expect("derived above"))).collect(),
        selected,
        selected_result: tree.nodes[selected].result.clone().expect("derived above"),
        halving,
    };
    write_json(&directory.join("report.json"), &report)?;
    write_atomic(&directory.join("report.md"), render_report(&report, &tree).as_bytes())?;
    Ok(report)
}

/// The leaf with the highest `score` (the first on ties: never "the last leaf").
fn best_by(tree: &SplitTree, leaves: &[usize], score: impl Fn(&LeafResult) -> f64) -> usize {
    let mut best = leaves[0];
    for &leaf in leaves {
        let value = score(tree.nodes[leaf].result.as_ref().expect("derived"));
        if value > score(tree.nodes[best].result.as_ref().expect("derived")) {
            best = leaf;
        }
    }
    best
}

/// A stand-alone training of one leaf: `(node, epochs, genotype, architecture, metrics)`.
type TrainLeaf<'a> = dyn Fn(usize, usize, &str, &splitnas_plugin_api::Architecture, &mut MetricsLog) -> Result<crate::standalone::StandaloneResult> + 'a;

/// Successive halving over the leaves' stand-alone trainings (`[final] select_by =
/// "successive_halving"`): round r trains every survivor from scratch for `first · 2^r` epochs
/// and keeps the better half (rounded up) by validation accuracy (ties keep the lower node),
/// until one is left. Every training is recorded in `halving.json` as it ends, so a resumed
/// run continues where it stopped; each leaf's `standalone` result is its last training.
#[allow(clippy::too_many_arguments)]
fn successive_halving(
    config: &RunConfig,
    tree: &mut SplitTree,
    leaves: &[usize],
    directory: &Path,
    options: &RunOptions,
    metrics: &mut MetricsLog,
    train: &TrainLeaf<'_>,
    save_tree: &dyn Fn(&SplitTree) -> Result<()>,
) -> Result<Vec<HalvingRound>> {
    let path = directory.join("halving.json");
    let mut rounds: Vec<HalvingRound> = if path.exists() { crate::checkpoint::read_json(&path)? } else { Vec::new() };
    let section = &config.final_training;
    let first = if section.halving_first_epochs == 0 { section.epochs } else { section.halving_first_epochs };
    let mut survivors = leaves.to_vec();
    for round in 0.. {
        let epochs = first.checked_mul(1usize << round.min(usize::BITS as usize - 1)).context("successive halving: the epoch budget overflows")?;
        if rounds.len() == round {
            rounds.push(HalvingRound { round, epochs, entries: Vec::new(), kept: Vec::new() });
        }
        for &node in &survivors {
            if rounds[round].entries.iter().any(|entry| entry.node == node) {
                continue;
            }
            let leaf = tree.nodes[node].result.clone().expect("derived before selection");
            let architecture = splitnas_plugin_api::Architecture { choices: leaf.choices.clone().into() };
            let result = train(node, epochs, &leaf.genotype, &architecture, metrics)?;
            tree.nodes[node].result.as_mut().expect("derived before selection").standalone = Some(result.clone());
            rounds[round].entries.push(HalvingEntry { node, genotype: leaf.genotype, result });
            write_json(&path, &rounds)?;
            save_tree(tree)?;
        }
        let scores: Vec<(usize, f64)> = survivors
            .iter()
            .map(|&node| {
                let entry = rounds[round].entries.iter().find(|entry| entry.node == node).expect("trained above");
                (node, entry.result.valid_accuracy.filter(|v| !v.is_nan()).unwrap_or(f64::NEG_INFINITY))
            })
            .collect();
        let mut ranked = scores.clone();
        // Stable: equal accuracies keep the leaf order.
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked.truncate(survivors.len().div_ceil(2));
        let kept: Vec<usize> = survivors.iter().copied().filter(|node| ranked.iter().any(|(kept, _)| kept == node)).collect();
        rounds[round].kept = kept.clone();
        write_json(&path, &rounds)?;
        metrics.write(json!({"event": "halving", "round": round, "epochs": epochs, "entries": rounds[round].entries, "kept": kept}))?;
        if !options.quiet {
            let scores: Vec<String> = scores.iter().map(|(node, valid)| format!("node {node} {valid:.4}")).collect();
            eprintln!("successive halving round {round} ({epochs} epochs): valid {}; kept {kept:?}", scores.join(", "));
        }
        if kept.len() == 1 {
            rounds.truncate(round + 1);
            return Ok(rounds);
        }
        survivors = kept;
    }
    unreachable!("the survivors halve every round")
}

#[allow(clippy::too_many_arguments)]
fn final_training(
    config: &RunConfig,
    section: &crate::config::FinalSection,
    space: &SearchSpaceBox,
    architecture: &splitnas_plugin_api::Architecture,
    genotype: &str,
    node: usize,
    data: &PreparedData,
    device: Device,
    options: &RunOptions,
    metrics: &mut MetricsLog,
) -> Result<crate::standalone::StandaloneResult> {
    let seed = node_seed(config.run.seed, STREAM_FINAL, &[]);
    tch::manual_seed(seed as i64);
    let network = space.build_network(architecture, device).into_result().map_err(|e| anyhow::anyhow!("space `{}`: {e}", config.space.name))?;
    let train = RefCell::new(data.train_loader()?);
    let valid = RefCell::new(data.eval_loader(SplitName::Valid)?);
    let test = RefCell::new(data.eval_loader(SplitName::Test)?);
    let steps = {
        let batches = train.borrow().batches_per_epoch();
        let cap = section.max_steps_per_epoch;
        if cap == 0 { batches } else { batches.min(cap) }
    };
    let bar = progress_bar((steps * section.epochs) as u64, options.quiet, format!("node {node} stand-alone"));
    let result = train_standalone(&network, &train, Some(&valid), &test, section, seed, &mut |_, _| bar.inc(1))?;
    bar.finish_and_clear();
    if !options.quiet {
        eprintln!(
            "node {node} stand-alone {genotype}: valid {:.4}, test {:.4} after {} epochs ({:.1} s)",
            result.valid_accuracy.unwrap_or(f64::NAN),
            result.test_accuracy,
            result.epochs,
            result.seconds
        );
    }
    metrics.write(json!({"event": "final", "node": node, "genotype": genotype, "result": result}))?;
    Ok(result)
}

/// The report for people.
pub fn render_report(report: &Report, tree: &SplitTree) -> String {
    let mut text = format!(
        "# splitnas run `{}`\n\nspace `{}`, algorithm `{}`, split criterion `{}`, device {}, seed {}.\nsearch {:.1} s, of which splitting {:.1} s.\n\n## Split tree\n\n```\n{}```\n\n## Leaves\n\n| node | genotype | params | supernet valid | arch. via supernet | stand-alone valid | stand-alone test |\n|---|---|---|---|---|---|---|\n",
        report.run, report.space, report.algorithm, report.criterion, report.device, report.seed, report.search_seconds, report.split_seconds, tree.render_text()
    );
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    for (node, leaf) in &report.leaves {
        let standalone = leaf.standalone.as_ref();
        text += &format!(
            "| {node}{} | `{}` | {} | {:.4} | {:.4} | {} | {} |\n",
            if *node == report.selected { " (selected)" } else { "" },
            leaf.genotype,
            leaf.parameters,
            leaf.supernet_valid_accuracy,
            leaf.architecture_valid_accuracy,
            fmt(standalone.and_then(|s| s.valid_accuracy)),
            fmt(standalone.map(|s| s.test_accuracy))
        );
    }
    if !report.halving.is_empty() {
        text += "\n## Successive halving\n\n| round | epochs | node | genotype | stand-alone valid | stand-alone test | kept |\n|---|---|---|---|---|---|---|\n";
        for round in &report.halving {
            for entry in &round.entries {
                text += &format!(
                    "| {} | {} | {} | `{}` | {} | {:.4} | {} |\n",
                    round.round,
                    round.epochs,
                    entry.node,
                    entry.genotype,
                    fmt(entry.result.valid_accuracy),
                    entry.result.test_accuracy,
                    if round.kept.contains(&entry.node) { "yes" } else { "no" }
                );
            }
        }
    }
    let selected = &report.selected_result;
    text += &format!(
        "\nSelected: node {} `{}` ({} parameters, {} FLOPs){}.\n",
        report.selected,
        selected.genotype,
        selected.parameters,
        selected.flops,
        selected.standalone.as_ref().map_or(String::new(), |s| format!(", stand-alone test accuracy {:.4}", s.test_accuracy))
    );
    text
}

/// α of a sub-supernet as flat lists, for metrics.jsonl (small: choice points × options).
fn alpha_values(node: &SubSupernet) -> Value {
    let map: serde_json::Map<String, Value> = node
        .alphas
        .iter()
        .map(|(name, tensor)| {
            let flat: Vec<f64> = Vec::<f64>::try_from(tensor.detach().to_kind(tch::Kind::Double).to_device(tch::Device::Cpu).flatten(0, -1)).unwrap_or_default();
            (name.clone(), json!(flat))
        })
        .collect();
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitnas_plugin_api::{ChoicePointInfo, OptionInfo};

    /// A DARTS-like space: two normal-cell edges (splittable) and one reduction edge (not).
    fn space() -> SpaceInfo {
        let options: abi_stable::std_types::RVec<OptionInfo> = ["a", "b", "c"].iter().map(|n| OptionInfo { name: (*n).into(), costs: Default::default() }).collect();
        let point = |name: &str, splittable| ChoicePointInfo { name: name.into(), group: "cell".into(), options: options.clone(), splittable };
        SpaceInfo { name: "t".into(), choice_points: vec![point("normal 0", true), point("normal 1", true), point("reduce 0", false)].into(), max_options: 3, min_group_size: 2 }
    }

    #[test]
    fn successive_halving_keeps_the_better_half_at_doubling_budgets_and_resumes() {
        let info = space();
        let mut tree = SplitTree::new(&info);
        let record = SplitRecord {
            epoch: 1,
            criterion: "test".into(),
            choice_point: 0,
            choice_point_name: "normal 0".into(),
            groups: vec![vec![0], vec![1], vec![2]],
            group_names: Vec::new(),
            candidates: Vec::new(),
            gradient_passes: 0,
            seconds: 0.0,
        };
        let leaves = tree.split(0, record);
        for &leaf in &leaves {
            tree.nodes[leaf].result = Some(LeafResult {
                genotype: format!("g{leaf}"),
                choices: vec![0, 0, 0],
                supernet_valid_accuracy: 0.0,
                architecture_valid_accuracy: 0.0,
                standalone: None,
                parameters: 1,
                flops: 1,
            });
        }
        let directory = tempfile::tempdir().unwrap();
        let mut config = RunConfig::from_toml("[space]\nname = \"t\"\n[algorithm]\nname = \"a\"\n[final]\nepochs = 9\nhalving_first_epochs = 2\nselect_by = \"successive_halving\"\n", Path::new("t.toml")).unwrap();
        config.run.name = "t".into();
        let mut metrics = MetricsLog::open(&directory.path().join("metrics.jsonl")).unwrap();
        let options = RunOptions { quiet: true, ..RunOptions::default() };
        // Node 3 is best at 2 epochs, node 2 at 4 epochs; node 1 is always worst.
        let calls = std::cell::RefCell::new(Vec::new());
        let train = |node: usize, epochs: usize, _: &str, _: &splitnas_plugin_api::Architecture, _: &mut MetricsLog| {
            calls.borrow_mut().push((node, epochs));
            let valid = match (node, epochs) {
                (1, _) => 0.1,
                (2, 2) => 0.5,
                (3, 2) => 0.6,
                (2, 4) => 0.8,
                (3, 4) => 0.7,
                other => panic!("unexpected training {other:?}"),
            };
            Ok(crate::standalone::StandaloneResult { epochs, final_train_loss: 1.0, valid_accuracy: Some(valid), test_accuracy: valid - 0.05, seconds: 0.0 })
        };
        let rounds = successive_halving(&config, &mut tree, &leaves, directory.path(), &options, &mut metrics, &train, &|_| Ok(())).unwrap();
        assert_eq!(*calls.borrow(), vec![(1, 2), (2, 2), (3, 2), (2, 4), (3, 4)]);
        assert_eq!(rounds.len(), 2);
        assert_eq!((rounds[0].epochs, rounds[0].kept.clone()), (2, vec![2, 3]));
        assert_eq!((rounds[1].epochs, rounds[1].kept.clone()), (4, vec![2]));
        assert_eq!(tree.nodes[2].result.as_ref().unwrap().standalone.as_ref().unwrap().epochs, 4, "a leaf keeps its last training");
        // Resumed: everything is in halving.json, nothing is trained again.
        let none = |_: usize, _: usize, _: &str, _: &splitnas_plugin_api::Architecture, _: &mut MetricsLog| -> Result<crate::standalone::StandaloneResult> { panic!("trained again") };
        let resumed = successive_halving(&config, &mut tree, &leaves, directory.path(), &options, &mut metrics, &none, &|_| Ok(())).unwrap();
        assert_eq!(resumed, rounds);
    }

    #[test]
    fn only_splittable_choice_points_never_split_on_the_path_are_candidates() {
        let info = space();
        let mut mask = info.full_mask();
        assert_eq!(split_candidates(&info, &mask), vec![0, 1], "reduction-cell edges are never candidates");
        mask.rows[1] = vec![true, false, true].into();
        assert_eq!(split_candidates(&info, &mask), vec![0], "a choice point split above is no longer a candidate");
    }
}
