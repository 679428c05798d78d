//! `splitnas bench ground-truth`: stand-alone accuracy of many architectures under one fixed,
//! recorded protocol, for measuring how well supernets rank them.
//!
//! The protocol is a run configuration: `[data]`, `[space]`, `[final]` (the stand-alone
//! training) and `[run]` (seed, threads, device); `[search]` and `[split]` are ignored. The
//! output directory holds `protocol.json` (the protocol, the architectures and the seeds),
//! `results.jsonl` (one line per finished training, appended as they finish) and the table
//! (`table.json`, `table.csv`), rewritten atomically as results come in. Running the same
//! command again continues where it stopped; a different protocol is refused.

use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use splitnas_plugin_api::{Architecture, Mask, SearchSpaceBox, SpaceInfo};

use crate::table::{GroundTruthTable, TableEntry};
use splitnas_data::SeededRng;
use splitnas_data::{LoaderOptions, SplitName};
use splitnas_engine::plugins::PluginRegistry;
use splitnas_engine::standalone::{train_standalone, StandaloneHooks};
use splitnas_run::config::RunConfig;
use splitnas_run::metrics::progress_bar;
use splitnas_run::{RunOptions, RunSetup};

/// Which architectures to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    /// Every architecture of the space (it must be small enough to enumerate).
    All,
    /// A stratified, seeded sample of this many (see [`select_architectures`]).
    Stratified(usize),
}

impl std::str::FromStr for Selection {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "all" => Ok(Selection::All),
            number => number
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .map(Selection::Stratified)
                .ok_or_else(|| format!("`{text}` is neither `all` nor a positive number of architectures")),
        }
    }
}

/// What `protocol.json` records; a continued run must match it exactly.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Protocol {
    pub space: String,
    pub selection: Selection,
    pub seeds: Vec<u64>,
    /// The configuration sections that determine the results.
    pub run_seed: u64,
    pub threads: usize,
    pub data: serde_json::Value,
    pub space_config: serde_json::Value,
    pub training: serde_json::Value,
    /// In training order.
    pub genotypes: Vec<String>,
}

/// One finished training, a line of `results.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainingRecord {
    pub genotype: String,
    pub seed: u64,
    pub valid_accuracy: Option<f64>,
    pub test_accuracy: f64,
    pub final_train_loss: f64,
    pub seconds: f64,
    /// The libtorch threads of its last epoch (chosen from the free CPUs unless `[run]
    /// threads` pins them); absent in records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
}

pub struct GroundTruthRequest {
    pub config: RunConfig,
    pub selection: Selection,
    pub seeds: Vec<u64>,
    pub output_dir: PathBuf,
    /// Recorded in the table, so that it can be reproduced.
    pub command: String,
    /// `(i, n)`: train only every n-th (architecture, seed) pair, starting at the i-th, so that
    /// n processes (cores, GPUs) share one output directory. Workers only append results; a
    /// run without a worker assembles the table.
    pub worker: Option<(usize, usize)>,
}

/// Parses `i/n` (0 ≤ i < n).
pub fn parse_worker(text: &str) -> Result<(usize, usize), String> {
    let parsed = text.split_once('/').and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
    match parsed {
        Some((i, n)) if n > 0 && i < n => Ok((i, n)),
        _ => Err(format!("`{text}` is not a worker `i/n` with 0 <= i < n (e.g. 0/2 and 1/2 for two processes)")),
    }
}

/// Largest space enumerated whole; larger ones are sampled by the space.
const ENUMERATION_LIMIT: usize = 1_000_000;
/// Candidates drawn per wanted architecture when a space is too large to enumerate.
const POOL_FACTOR: usize = 20;

/// The architectures to train: the whole space, or `n` stratified by model size. The
/// candidates (the space's exact enumeration where it offers one of at most a million
/// architectures, else `20·n` distinct ones it samples) are sorted by (parameters, FLOPs, genotype) and cut into `n`
/// equal strata; one architecture is drawn from each, seeded. So the sample covers small
/// and large networks evenly, and the same seed gives the same sample.
pub(crate) fn select_architectures(
    space: &SearchSpaceBox,
    info: &SpaceInfo,
    selection: Selection,
    seed: u64,
    image_size: u32,
) -> Result<Vec<(Architecture, String)>> {
    let mut rng = SeededRng::derive(seed, &[0x5354_5241_5441]); // "STRATA"
    let mask = info.full_mask();
    let space_error = |e: splitnas_plugin_api::PluginError| anyhow::anyhow!("space `{}`: {e}", info.name);
    // The space says what an architecture is (DARTS keeps two inputs per node): the host never
    // builds one from the product of options.
    let count = space.architecture_count(&mask).into_result().map_err(space_error)?.into_option();
    let enumerable = count.filter(|&count| count <= ENUMERATION_LIMIT as u64);
    let pool: Vec<Architecture> = match (selection, enumerable) {
        (_, Some(count)) => (0..count).map(|index| space.architecture_at(&mask, index).into_result().map_err(space_error)).collect::<Result<_>>()?,
        (Selection::All, None) => {
            bail!("space `{}` is too large to train every architecture, or cannot enumerate them; give a number with --architectures", info.name)
        }
        (Selection::Stratified(n), None) => sample_distinct(space, info, &mask, n * POOL_FACTOR, &mut rng)?,
    };
    let mut scored = Vec::with_capacity(pool.len());
    for architecture in pool {
        let stats = space.network_stats(&architecture, image_size).into_result().map_err(|e| anyhow::anyhow!("space `{}`: {e}", info.name))?;
        let genotype = space.format_genotype(&architecture).into_result().map_err(|e| anyhow::anyhow!("space `{}`: {e}", info.name))?.to_string();
        scored.push((stats.parameters, stats.flops, genotype, architecture));
    }
    let chosen: Vec<_> = match selection {
        Selection::All => scored,
        Selection::Stratified(n) => {
            if n > scored.len() {
                bail!("--architectures {n} asks for more than the {} architectures available", scored.len());
            }
            scored.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
            let len = scored.len();
            let picks: Vec<usize> = (0..n)
                .map(|stratum| {
                    let (start, end) = (stratum * len / n, (stratum + 1) * len / n);
                    start + (rng.next_u64() % (end - start) as u64) as usize
                })
                .collect();
            picks.into_iter().map(|i| scored[i].clone()).collect()
        }
    };
    Ok(chosen.into_iter().map(|(_, _, genotype, architecture)| (architecture, genotype)).collect())
}

/// `count` distinct architectures the space samples (uniformly, by its own rule), seeded.
fn sample_distinct(space: &SearchSpaceBox, info: &SpaceInfo, mask: &Mask, count: usize, rng: &mut SeededRng) -> Result<Vec<Architecture>> {
    let mut seen = std::collections::BTreeSet::new();
    let mut attempts = 0;
    while seen.len() < count {
        attempts += 1;
        if attempts > count * 10 {
            bail!("space `{}` gave only {} distinct architectures in {} draws", info.name, seen.len(), attempts - 1);
        }
        let architecture = space
            .sample_architecture(mask, rng.next_u64())
            .into_result()
            .map_err(|e| anyhow::anyhow!("space `{}` cannot sample architectures ({e}): rebuild it against this host's plugin-api", info.name))?;
        seen.insert(architecture);
    }
    Ok(seen.into_iter().collect())
}

/// The (seed, architecture index) pairs in training order: the architectures in a seeded
/// random order, every seed of one before the next. An interrupted table (or the first
/// minutes of one) thus holds every seed of a random subset of the sample, on which the
/// seeds' agreement can already be measured: the pilot of a protocol is the start of its
/// table. Results do not depend on the order (each training seeds itself from its seed and
/// architecture index); `--worker i/n` takes every n-th pair of this order.
fn training_order(architectures: usize, seeds: &[u64], run_seed: u64) -> Vec<(u64, usize)> {
    let mut order: Vec<usize> = (0..architectures).collect();
    let mut rng = SeededRng::derive(run_seed, &[0x004f_5244_4552]);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    order.into_iter().flat_map(|index| seeds.iter().map(move |&seed| (seed, index))).collect()
}

fn read_records(path: &Path) -> Result<Vec<TrainingRecord>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut records = Vec::new();
    for (number, line) in text.lines().enumerate() {
        match serde_json::from_str(line) {
            Ok(record) => records.push(record),
            // A run killed mid-write leaves a partial last line: that training is redone.
            Err(_) if number + 1 == text.lines().count() => {}
            Err(error) => bail!("{} line {}: {error}; remove the line to redo that training", path.display(), number + 1),
        }
    }
    Ok(records)
}

/// Runs (or continues) the trainings and returns the table.
pub fn run_ground_truth(request: GroundTruthRequest, registry: PluginRegistry, options: &RunOptions) -> Result<GroundTruthTable> {
    let GroundTruthRequest { config, selection, seeds, output_dir, command, worker } = request;
    let mine = |pair: usize| worker.is_none_or(|(i, n)| pair % n == i);
    if seeds.is_empty() {
        bail!("--seeds is empty; give at least one training seed");
    }
    if config.final_training.epochs == 0 {
        bail!("[final] epochs is 0: the protocol must train (set [final] epochs)");
    }
    let setup = RunSetup::new(config, registry, options)?;
    let config = &setup.config;
    let image_size = setup.data.splits.train.image_shape()[1] as u32;
    let chosen = select_architectures(&setup.space, &setup.info, selection, config.run.seed, image_size)?;
    let protocol = Protocol {
        space: config.space.name.clone(),
        selection,
        seeds: seeds.clone(),
        run_seed: config.run.seed,
        threads: config.run.threads,
        data: serde_json::to_value(&config.data)?,
        space_config: config.space.config_json(),
        training: serde_json::to_value(&config.final_training)?,
        genotypes: chosen.iter().map(|(_, g)| g.clone()).collect(),
    };
    std::fs::create_dir_all(&output_dir).with_context(|| format!("cannot create {}", output_dir.display()))?;
    let protocol_path = output_dir.join("protocol.json");
    if protocol_path.exists() {
        let existing: Protocol = splitnas_engine::checkpoint::read_json(&protocol_path)?;
        if existing != protocol {
            bail!(
                "{} holds results of a different protocol (configuration, seeds or architectures differ); \
                 continue with the same command, or choose another --output-dir",
                output_dir.display()
            );
        }
    } else {
        splitnas_engine::checkpoint::write_json(&protocol_path, &protocol)?;
    }
    let records_path = output_dir.join("results.jsonl");
    let mut records = read_records(&records_path)?;
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&records_path)
        .with_context(|| format!("cannot open {}", records_path.display()))?;
    // A partial last line (killed mid-write) must not glue onto the next record.
    if std::fs::read(&records_path)?.last().is_some_and(|&b| b != b'\n') {
        log.write_all(b"\n")?;
    }

    let data = &setup.data;
    let test = RefCell::new(data.eval_loader(SplitName::Test)?);
    let done = |records: &[TrainingRecord], genotype: &str, seed: u64| records.iter().any(|r| r.genotype == genotype && r.seed == seed);
    let pairs = training_order(chosen.len(), &seeds, config.run.seed);
    let assigned: Vec<(u64, usize)> = pairs.iter().enumerate().filter(|(pair, _)| mine(*pair)).map(|(_, &p)| p).collect();
    let bar = progress_bar(assigned.len() as u64, options.quiet, "ground truth".to_string());
    bar.set_position(assigned.iter().filter(|(seed, index)| done(&records, &chosen[*index].1, *seed)).count() as u64);
    bar.reset_eta();
    let mut since_write = 0;
    for &(seed, index) in &assigned {
        let (architecture, genotype) = &chosen[index];
        {
            if done(&records, genotype, seed) {
                continue;
            }
            bar.set_message(genotype.clone());
            let init_seed = SeededRng::derive(seed, &[index as u64]).next_u64();
            tch::manual_seed(init_seed as i64);
            let network = setup
                .space
                .build_network(architecture, setup.device)
                .into_result()
                .map_err(|e| anyhow::anyhow!("space `{}`: {e}", config.space.name))?;
            // The same batches for every architecture of a seed: differences between
            // architectures are not drowned by differences in data order.
            let loader_seed = SeededRng::derive(seed, &[0x004f_5244_4552]).next_u64();
            let train = RefCell::new(data.loader(&data.splits.train, LoaderOptions { seed: loader_seed, ..data.training_options })?);
            // Only the test split is evaluated: the table's accuracy is test accuracy, and the
            // valid split (the search's) would cost more than a third of a short training.
            let hooks = StandaloneHooks { on_step: &mut |_, _| {}, on_epoch_end: &mut |_| Ok(()) };
            let result = train_standalone(&network, &train, None, &test, &config.final_training.standalone_settings(), init_seed, None, hooks)
                .with_context(|| format!("training {genotype} (seed {seed})"))?;
            let record = TrainingRecord {
                genotype: genotype.clone(),
                seed,
                valid_accuracy: result.valid_accuracy,
                test_accuracy: result.test_accuracy,
                final_train_loss: result.final_train_loss,
                seconds: result.seconds,
                threads: Some(splitnas_engine::threads::current().threads),
            };
            log.write_all(format!("{}\n", serde_json::to_string(&record)?).as_bytes())?;
            log.flush()?;
            records.push(record);
            bar.inc(1);
            since_write += 1;
            if since_write >= 10 && worker.is_none() {
                write_table(&output_dir, &protocol, &records, &setup, &chosen, image_size, &command, true)?;
                since_write = 0;
            }
        }
    }
    bar.finish_and_clear();
    if let Some((i, n)) = worker {
        if !options.quiet {
            eprintln!("worker {i}/{n} finished its {} trainings; run the command without --worker to assemble the table", assigned.len());
        }
    }
    write_table(&output_dir, &protocol, &records, &setup, &chosen, image_size, &command, worker.is_none())
}

/// Builds the table from the records so far (architectures with at least one result) and,
/// if `write`, writes `table.json` and `table.csv`.
#[allow(clippy::too_many_arguments)]
fn write_table(
    directory: &Path,
    protocol: &Protocol,
    records: &[TrainingRecord],
    setup: &RunSetup,
    chosen: &[(Architecture, String)],
    image_size: u32,
    command: &str,
    write: bool,
) -> Result<GroundTruthTable> {
    let mut entries = Vec::new();
    for (architecture, genotype) in chosen {
        let mine: Vec<&TrainingRecord> =
            protocol.seeds.iter().filter_map(|&s| records.iter().find(|r| &r.genotype == genotype && r.seed == s)).collect();
        if mine.is_empty() {
            continue;
        }
        let stats = setup.space.network_stats(architecture, image_size).into_result().map_err(|e| anyhow::anyhow!("{e}"))?;
        entries.push(TableEntry {
            genotype: genotype.clone(),
            accuracy: mine.iter().map(|r| r.test_accuracy).collect(),
            seeds: mine.iter().map(|r| r.seed).collect(),
            valid_accuracy: mine.iter().filter_map(|r| r.valid_accuracy).collect(),
            parameters: Some(stats.parameters),
            flops: Some(stats.flops),
            seconds: mine.iter().map(|r| r.seconds).collect(),
        });
    }
    let mut table = GroundTruthTable::new(
        Some(protocol.space.clone()),
        "test accuracy of the stand-alone network after the protocol's training, per seed",
        entries,
    );
    table.protocol = Some(serde_json::to_value(protocol)?);
    table.command = Some(command.to_string());
    if write && !table.architectures.is_empty() {
        table.write(&directory.join("table.json"))?;
        table.write(&directory.join("table.csv"))?;
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_order_gives_every_seed_of_a_random_prefix() {
        let order = training_order(50, &[0, 1], 0);
        assert_eq!(order.len(), 100);
        let mut all = order.clone();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 100, "every (seed, architecture) pair exactly once");
        for pair in order.chunks(2) {
            assert_eq!((pair[0].0, pair[1].0, pair[0].1), (0, 1, pair[1].1), "both seeds of one architecture in a row");
        }
        let first: Vec<usize> = order.iter().step_by(2).take(10).map(|p| p.1).collect();
        assert_ne!(first, (0..10).collect::<Vec<_>>(), "not the size order of the strata");
        assert_eq!(order, training_order(50, &[0, 1], 0), "seeded");
        assert_ne!(order, training_order(50, &[0, 1], 1));
        // Two workers: one takes seed 0 of every architecture, the other seed 1, in step.
        let worker: Vec<(u64, usize)> = order.iter().enumerate().filter(|(p, _)| p % 2 == 1).map(|(_, &pair)| pair).collect();
        assert!(worker.iter().all(|(seed, _)| *seed == 1));
    }
}
