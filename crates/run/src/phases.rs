//! The phases of a run, from a resolved configuration to a report
//! (docs/ARCHITECTURE.md, "the life of a run"):
//!
//! 1. the split tree: the root's fresh supernet, or the tree a killed run left;
//! 2. training and splitting, level by level, every epoch checkpointed;
//! 3. one architecture derived per leaf;
//! 4. selection among the leaves (stand-alone training, successive halving, or the supernet);
//! 5. the report.
//!
//! `run` and `resume` share all of it; `bench gm-repeats` trains its root with
//! [`new_root`] and [`train_epochs`], so it sees exactly the supernet a run sees.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use splitnas_engine::components::create_criterion;
use splitnas_engine::context::TrainingEnvironment;
use splitnas_engine::criterion::split_candidates;
use splitnas_engine::plugins::PluginRegistry;
use splitnas_engine::seeds::{epoch_seed, evaluation_seed, seed_node_init, stream_seed, Stream, SPLIT_LOADER_EPOCH};
use splitnas_engine::sub_supernet::{Derivation, EpochSummary, SplitOutcome, SubSupernet, TrainingSettings};
use splitnas_engine::threads::ThreadChoice;
use splitnas_plugin_api::{Mask, SplitRequest};

use crate::config::RunConfig;
use crate::directory::{RunDirectory, RunLock};
use crate::metrics::{progress_bar, MetricsLog};
use crate::provenance::{build_differences, Provenance};
use crate::report::{render_report, Report};
use crate::selection::{select, Selection};
use crate::setup::{training_settings, AlgorithmFactory, RunOptions, RunSetup, SearchLoaders};
use crate::tree::{CandidateRecord, LeafResult, SplitRecord, SplitTree};

/// Starts a new run in a fresh directory.
pub fn run(setup: RunSetup, options: &RunOptions) -> Result<Report> {
    let lock = setup.directory.create(&setup.config, options.overwrite)?;
    setup.directory.write_class_names(setup.data.class_names.as_deref())?;
    setup.directory.write_provenance(&Provenance { builds: setup.builds.clone(), invocation: options.invocation.clone() })?;
    execute(setup, lock, options)
}

/// Continues an interrupted run from its directory.
pub fn resume(directory: &Path, registry: PluginRegistry, options: &RunOptions) -> Result<Report> {
    let run_directory = RunDirectory::open(directory)?;
    let lock = run_directory.lock()?;
    let mut config = run_directory.read_config()?;
    config.run.output_dir = directory.parent().map(Path::to_path_buf).unwrap_or_default();
    config.run.name = directory.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let options = RunOptions { output_dir: Some(config.run.output_dir.clone()), ..options.clone() };
    let setup = RunSetup::new(config, registry, &options)?;
    if let Some(mut recorded) = run_directory.read_provenance()? {
        let differences = build_differences(&recorded.builds, &setup.builds);
        if !differences.is_empty() {
            // The run goes on (a rebuilt plugin may be the point), but its record says so.
            eprintln!("warning: {} was started by other plugin builds: {}", directory.display(), differences.join("; "));
            let mut metrics = MetricsLog::open(&run_directory.metrics_path())?;
            metrics.write(json!({"event": "builds_changed", "differences": differences, "builds": setup.builds}))?;
            recorded.builds = setup.builds.clone();
            run_directory.write_provenance(&recorded)?;
        }
    }
    if let Some(training) = run_directory.read_training()? {
        return crate::training::execute_training(&setup, &training.genotype, &options, lock);
    }
    execute(setup, lock, &options)
}

fn execute(setup: RunSetup, _lock: RunLock, options: &RunOptions) -> Result<Report> {
    let loaders = SearchLoaders::new(&setup.data)?;
    let env = loaders.environment(&setup.space, &setup.info, setup.device, &setup.config, &setup.costs);
    let mut search = Search { setup: &setup, options, metrics: MetricsLog::for_run(&setup.directory, &setup.config)? };
    let mut tree = search.tree(&env)?;
    search.announce();
    search.train_and_split(&env, &mut tree)?;
    search.derive_leaves(&env, &mut tree)?;
    let selection = select(&setup, options, &mut tree, &mut search.metrics)?;
    search.report(&tree, selection)
}

/// A fresh root supernet (node 0) for `config`, seeded as every run seeds it.
pub fn new_root(env: &TrainingEnvironment<'_>, config: &RunConfig, create: &AlgorithmFactory) -> Result<SubSupernet> {
    new_node(env, config, create, 0, env.info.full_mask(), training_settings(config))
}

fn new_node(
    env: &TrainingEnvironment<'_>,
    config: &RunConfig,
    create: &AlgorithmFactory,
    node: usize,
    mask: Mask,
    settings: TrainingSettings,
) -> Result<SubSupernet> {
    seed_node_init(config.run.seed, node);
    Ok(SubSupernet::new(env, mask, create, config.run.seed ^ node as u64, settings)?)
}

/// What one epoch of a node's training measured.
pub struct EpochOutcome<'a> {
    pub epoch: usize,
    /// The libtorch threads the epoch ran on, and why.
    pub threads: ThreadChoice,
    pub summary: &'a EpochSummary,
    pub supernet_valid_accuracy: f64,
}

/// Trains node `node` over epochs `from..to` exactly as a run does: every node sees the same
/// data order in a given epoch, libtorch and the algorithm draw from the node's epoch stream,
/// and the supernet is evaluated after each epoch. `after_epoch` records each epoch.
#[allow(clippy::too_many_arguments)]
pub fn train_epochs(
    env: &TrainingEnvironment<'_>,
    config: &RunConfig,
    sub: &mut SubSupernet,
    node: usize,
    from: usize,
    to: usize,
    quiet: bool,
    after_epoch: &mut dyn FnMut(&SubSupernet, EpochOutcome<'_>) -> Result<()>,
) -> Result<()> {
    let total = config.search.epochs;
    let seed = config.run.seed;
    for epoch in from..to {
        let steps = splitnas_engine::optim::steps_per_epoch(env.train.borrow().batches_per_epoch(), config.search.max_steps_per_epoch);
        let position = splitnas_data::LoaderPosition { epoch: epoch as u64, batch: 0 };
        env.train.borrow_mut().seek(position);
        env.valid.borrow_mut().seek(position);
        // An epoch boundary: the free CPUs may have changed (unless the count is pinned).
        splitnas_engine::threads::recheck();
        let threads = splitnas_engine::threads::current();
        let bar = progress_bar(steps as u64, quiet, format!("node {node} epoch {}/{total} ({} threads)", epoch + 1, threads.threads));
        let summary = sub.train_epoch(env, epoch, epoch_seed(seed, node, epoch), &mut || bar.inc(1))?;
        bar.finish_and_clear();
        let supernet_valid_accuracy = sub.evaluate(env, epoch, evaluation_seed(seed, node, epoch))?;
        if !quiet {
            eprintln!(
                "node {node} epoch {:>3}/{total}  lr {:.5}  loss {:.4}  supernet valid {:.4}  ({:.1} s, {} threads)",
                epoch + 1,
                summary.lr,
                summary.train_loss,
                supernet_valid_accuracy,
                summary.seconds,
                threads.threads
            );
        }
        after_epoch(sub, EpochOutcome { epoch, threads, summary: &summary, supernet_valid_accuracy })?;
    }
    Ok(())
}

/// Sums of absolute values per state role (param, buffer, alpha, sgd, adam): a cheap digest that
/// shows in metrics.jsonl what a node started from and what it inherited.
pub fn state_digest(sub: &SubSupernet) -> Value {
    let mut sums = std::collections::BTreeMap::<String, f64>::new();
    for (name, tensor) in sub.state_tensors().unwrap_or_default() {
        let role = name.split('.').next().unwrap_or_default().to_string();
        *sums.entry(role).or_default() += tensor.abs().sum(tch::Kind::Double).double_value(&[]);
    }
    json!(sums)
}

/// α of a sub-supernet as flat lists, for metrics.jsonl (small: choice points × options).
fn alpha_values(node: &SubSupernet) -> Value {
    let map: serde_json::Map<String, Value> = node
        .alphas
        .iter()
        .map(|(name, tensor)| {
            let flat: Vec<f64> =
                Vec::<f64>::try_from(tensor.detach().to_kind(tch::Kind::Double).to_device(tch::Device::Cpu).flatten(0, -1)).unwrap_or_default();
            (name.clone(), json!(flat))
        })
        .collect();
    Value::Object(map)
}

/// The search below the configuration: shared by `run` and `resume`.
struct Search<'a> {
    setup: &'a RunSetup,
    options: &'a RunOptions,
    metrics: MetricsLog,
}

impl<'a> Search<'a> {
    fn config(&self) -> &'a RunConfig {
        &self.setup.config
    }

    fn directory(&self) -> &'a RunDirectory {
        &self.setup.directory
    }

    /// Phase 1: the tree a killed run left, or a new one with the root's fresh supernet.
    fn tree(&mut self, env: &TrainingEnvironment<'_>) -> Result<SplitTree> {
        if self.directory().has_tree() {
            return Ok(self.directory().read_tree()?);
        }
        let tree = SplitTree::new(&self.setup.info);
        let root = new_root(env, self.config(), &self.setup.create_algorithm)?;
        self.metrics.write(json!({"event": "init", "node": 0, "alphas": alpha_values(&root)}))?;
        self.directory().save_node(0, &root, 0)?;
        self.directory().write_tree(&tree)?;
        Ok(tree)
    }

    fn announce(&self) {
        if self.options.quiet {
            return;
        }
        let (config, data) = (self.config(), &self.setup.data);
        eprintln!(
            "searching {} with {} (split: {}) on {} ({} train / {} valid images, device {})",
            config.space.name,
            config.algorithm.name,
            config.split.criterion,
            data.dataset,
            data.splits.train.len(),
            data.splits.valid.len(),
            self.setup.device
        );
    }

    /// Epoch boundaries: 0, the split epochs, the total.
    fn boundaries(&self) -> Vec<usize> {
        let config = self.config();
        let mut boundaries = vec![0];
        if !config.split.is_one_shot() {
            boundaries.extend(&config.split.epochs);
        }
        boundaries.push(config.search.epochs);
        boundaries
    }

    /// Loads a node's sub-supernet from its checkpoint; returns it and the next epoch to train.
    fn load_node(&self, env: &TrainingEnvironment<'_>, tree: &SplitTree, node: usize) -> Result<(SubSupernet, usize)> {
        let (tensors, checkpoint) = self.directory().read_checkpoint(node).with_context(|| format!("node {node} has no usable checkpoint"))?;
        let mut sub = new_node(env, self.config(), &self.setup.create_algorithm, node, tree.nodes[node].mask(), training_settings(self.config()))?;
        sub.load(&self.directory().checkpoint_paths(node).0, &tensors, &checkpoint.state)?;
        Ok((sub, checkpoint.epoch))
    }

    /// Phase 2: every level's nodes trained to the next boundary, then split.
    fn train_and_split(&mut self, env: &TrainingEnvironment<'_>, tree: &mut SplitTree) -> Result<()> {
        let boundaries = self.boundaries();
        for level in 0..boundaries.len() - 1 {
            let end = boundaries[level + 1];
            let splits_after = level + 2 < boundaries.len();
            for node in tree.at_depth(level) {
                if tree.nodes[node].split.is_some() {
                    continue;
                }
                let (mut sub, next_epoch) = self.load_node(env, tree, node)?;
                if next_epoch < end {
                    self.train_node(env, &mut sub, node, next_epoch, end, tree)?;
                }
                if splits_after {
                    self.split_node(env, &mut sub, node, level, end, tree)?;
                }
            }
        }
        Ok(())
    }

    fn train_node(
        &mut self,
        env: &TrainingEnvironment<'_>,
        sub: &mut SubSupernet,
        node: usize,
        from: usize,
        to: usize,
        tree: &mut SplitTree,
    ) -> Result<()> {
        let (setup, quiet) = (self.setup, self.options.quiet);
        let metrics = &mut self.metrics;
        train_epochs(env, &setup.config, sub, node, from, to, quiet, &mut |sub, outcome| {
            let summary = outcome.summary;
            metrics.write(json!({
                "event": "epoch", "node": node, "epoch": outcome.epoch, "lr": summary.lr, "step_lrs": summary.step_lrs, "train_loss": summary.train_loss,
                "supernet_valid_accuracy": outcome.supernet_valid_accuracy, "steps": summary.steps, "seconds": summary.seconds, "threads": outcome.threads,
                "metrics": summary.metrics, "alphas": alpha_values(sub), "state_digest": state_digest(sub),
            }))?;
            tree.nodes[node].train_seconds += summary.seconds;
            setup.directory.save_node(node, sub, outcome.epoch + 1)?;
            setup.directory.write_tree(tree)?;
            Ok(())
        })
    }

    /// Splits `node` (trained up to `epoch`) and writes its children's checkpoints, then the tree.
    fn split_node(
        &mut self,
        env: &TrainingEnvironment<'_>,
        sub: &mut SubSupernet,
        node: usize,
        level: usize,
        epoch: usize,
        tree: &mut SplitTree,
    ) -> Result<()> {
        let (config, info) = (self.config(), &self.setup.info);
        let split = &config.split;
        let started = std::time::Instant::now();
        let mask = sub.mask.clone();
        let request =
            SplitRequest { space: info.clone(), mask: mask.clone(), candidates: split_candidates(info, &mask).into(), groups: split.groups[level] };
        let mut criterion = create_criterion(&self.setup.registry, &split.criterion, &split.config_json())?;
        let gradient_loader = std::cell::RefCell::new(self.setup.data.train_loader()?);
        gradient_loader.borrow_mut().seek(splitnas_data::LoaderPosition { epoch: SPLIT_LOADER_EPOCH + node as u64, batch: 0 });
        if !self.options.quiet {
            eprintln!("node {node}: splitting with `{}` at epoch {epoch} ...", split.criterion);
        }
        let seed = stream_seed(config.run.seed, Stream::Split, &[node as u64]);
        let SplitOutcome { decision, gradient_passes: passes, metrics } = sub.split(env, &mut criterion, &request, epoch, seed, &gradient_loader)?;
        let name = |point: u32| info.choice_points[point as usize].name.to_string();
        let option_name = |point: u32, option: u32| info.choice_points[point as usize].options[option as usize].name.to_string();
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
                .map(|c| CandidateRecord {
                    choice_point: c.choice_point,
                    name: name(c.choice_point),
                    score: c.score,
                    groups: c.groups.iter().map(|g| g.to_vec()).collect(),
                    repeats: c.repeats,
                })
                .collect(),
            gradient_passes: passes,
            seconds: started.elapsed().as_secs_f64(),
            metrics,
        };
        if !self.options.quiet {
            eprintln!(
                "node {node}: split {} into {:?} ({:.1} s, {passes} gradient passes)",
                record.choice_point_name, record.group_names, record.seconds
            );
        }
        self.metrics.write(json!({"event": "split", "node": node, "split": record}))?;
        let restart = level + 1 == split.epochs.len() && split.restart_final;
        let mut next_tree = tree.clone();
        let children = next_tree.split(node, record);
        let parent_tensors = sub.state_tensors()?;
        let parent_state = sub.state()?;
        for &child in &children {
            let mut settings = training_settings(config);
            if restart {
                // Fresh weights, α, optimizers; the schedule restarts over the remaining epochs.
                settings.schedule_start = epoch;
            }
            let mut child_sub = new_node(env, config, &self.setup.create_algorithm, child, next_tree.nodes[child].mask(), settings)?;
            if !restart {
                // Inherit everything: parameters, BN buffers, α, optimizer and schedule state.
                child_sub.load(&self.directory().checkpoint_paths(node).0, &parent_tensors, &parent_state)?;
            }
            self.metrics.write(json!({"event": "init", "node": child, "parent": node, "epoch": epoch, "fresh": restart, "alphas": alpha_values(&child_sub), "state_digest": state_digest(&child_sub)}))?;
            self.directory().save_node(child, &child_sub, epoch)?;
        }
        *tree = next_tree;
        self.directory().write_tree(tree)?;
        Ok(())
    }

    /// Phase 3: one architecture per leaf, with its supernet accuracies and size.
    fn derive_leaves(&mut self, env: &TrainingEnvironment<'_>, tree: &mut SplitTree) -> Result<()> {
        let setup = self.setup;
        let (config, space) = (self.config(), &setup.space);
        let image = self.setup.data.splits.train.image_shape()[1] as u32;
        let seed = config.run.seed;
        let epoch = config.search.epochs;
        let space_error = |e: splitnas_plugin_api::PluginError| anyhow::anyhow!("space `{}`: {e}", config.space.name);
        for node in tree.leaves() {
            if tree.nodes[node].result.is_some() {
                continue;
            }
            let (mut sub, _) = self.load_node(env, tree, node)?;
            let supernet_accuracy = sub.evaluate(env, epoch, evaluation_seed(seed, node, epoch))?;
            let Derivation { architecture, accuracy: architecture_accuracy, metrics: derive_metrics } =
                sub.derive(env, epoch, stream_seed(seed, Stream::Derivation, &[node as u64]))?;
            let genotype = space.format_genotype(&architecture).into_result().map_err(space_error)?.to_string();
            let stats = space.network_stats(&architecture, image).into_result().map_err(space_error)?;
            let latency_ms = setup.network_latency_ms(&architecture)?;
            if !self.options.quiet {
                eprintln!("node {node}: derived {genotype} (supernet valid {supernet_accuracy:.4}, architecture through supernet {architecture_accuracy:.4})");
            }
            self.metrics.write(json!({"event": "derive", "node": node, "genotype": genotype, "supernet_valid_accuracy": supernet_accuracy, "architecture_valid_accuracy": architecture_accuracy, "metrics": derive_metrics}))?;
            tree.nodes[node].result = Some(LeafResult {
                genotype,
                choices: architecture.choices.to_vec(),
                supernet_valid_accuracy: supernet_accuracy,
                architecture_valid_accuracy: architecture_accuracy,
                standalone: None,
                parameters: stats.parameters,
                flops: stats.flops,
                latency_ms,
            });
            self.directory().write_tree(tree)?;
        }
        Ok(())
    }

    /// Phase 5: `report.json` and `report.md`, then the drawings (`tree.svg`, `curves.svg`,
    /// `alpha.svg`, `architecture.svg`).
    fn report(&self, tree: &SplitTree, selection: Selection) -> Result<Report> {
        let config = self.config();
        let splits = || tree.nodes.iter().filter_map(|n| n.split.as_ref());
        // + 0.0: an empty f64 sum is -0.0, which would print as "-0.0" for one-shot runs.
        let split_seconds: f64 = splits().map(|s| s.seconds).sum::<f64>() + 0.0;
        let search_seconds: f64 = tree.nodes.iter().map(|n| n.train_seconds).sum::<f64>() + split_seconds;
        let leaves = tree.leaves();
        let leaf_result = |node: usize| tree.nodes[node].result.clone().expect("every leaf is derived before selection");
        let report = Report {
            run: config.run.name.clone(),
            space: config.space.name.clone(),
            algorithm: config.algorithm.name.clone(),
            criterion: config.split.criterion.clone(),
            device: self.setup.device.to_string(),
            seed: config.run.seed,
            search_seconds,
            split_seconds,
            leaves: leaves.iter().map(|&n| (n, leaf_result(n))).collect(),
            selected: selection.selected,
            selected_result: leaf_result(selection.selected),
            trained_on: config.final_training.train_on,
            halving: selection.halving,
            builds: self.setup.builds.clone(),
            model: selection.model.map(|path| self.directory().relative(&path)),
        };
        self.directory().write_report(&report, &render_report(&report, tree))?;
        self.directory().write_drawings(tree, &report)?;
        Ok(report)
    }
}
