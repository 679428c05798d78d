//! `splitnas bench gm-repeats CONFIG`: how a gradient-matching configuration with fewer
//! (adaptive) repeats decides compared with the paper's fixed R.
//!
//! The root supernet is trained up to the first split epoch as a run trains it. Then, per study
//! seed, R Gram samples of every split candidate are recorded once, from the same supernet
//! state, with that seed's batches and context samples, round-robin (repeat 0 of every
//! candidate, then repeat 1, ...). Both `gm` configurations decide on that one recording: each
//! is served a candidate's samples in recorded order for as long as it asks. They see the same
//! gradients, so a disagreement comes from how many repeats were used and nothing else, and
//! the cost ratio (repeats asked for, over the fixed configuration's) measures the saving.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::RStr;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use splitnas_plugin_api::{ComponentKind, GramSample, HostContext_TO, PluginError, SpaceInfo, SplitDecision, SplitRequest};

use splitnas_data::{LoaderPosition, PreparedData};
use splitnas_engine::components::{create_criterion, merge_config};
use splitnas_engine::context::{BufferSnapshot, TrainingEnvironment};
use splitnas_engine::criterion::split_candidates;
use splitnas_engine::criterion::{run_split, GradientSource, HostCriterionContext};
use splitnas_engine::error::PluginResultExt;
use splitnas_engine::gradients::GradientProvider;
use splitnas_engine::plugins::PluginRegistry;
use splitnas_engine::seeds::{stream_seed, Stream};
use splitnas_engine::sub_supernet::SubSupernet;
use splitnas_run::config::RunConfig;
use splitnas_run::metrics::progress_bar;
use splitnas_run::phases::{new_root, state_digest, train_epochs};
use splitnas_run::setup::SearchLoaders;
use splitnas_run::{RunOptions, RunSetup};
use {splitnas_data::SeededRng, splitnas_engine::services::PluginServices};

/// The criterion under study.
const CRITERION: &str = "gm";
/// Loader epochs far beyond training's (and a run's gradient matching), so that every study
/// seed draws its own batches.
const RECORDING_LOADER_EPOCH: u64 = 1 << 41;

/// Study seeds: `A..B` (B excluded) or a comma-separated list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedList(pub Vec<u64>);

impl std::str::FromStr for SeedList {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let number = |part: &str| part.trim().parse::<u64>().map_err(|_| format!("`{part}` is not a seed (a non-negative integer)"));
        let seeds: Vec<u64> = match text.split_once("..") {
            Some((start, end)) => (number(start)?..number(end)?).collect(),
            None => text.split(',').map(number).collect::<Result<_, _>>()?,
        };
        if seeds.is_empty() {
            return Err(format!("`{text}` holds no seed (a range A..B excludes B)"));
        }
        for (index, seed) in seeds.iter().enumerate() {
            if seeds[..index].contains(seed) {
                return Err(format!("seed {seed} is listed twice"));
            }
        }
        Ok(SeedList(seeds))
    }
}

/// A JSON object from the command line (the gm keys of `--adaptive`, `--adaptive-config-raw`).
pub fn parse_json_object(text: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(other) => Err(format!("expected a JSON object of gm keys, got {other}")),
        Err(error) => Err(format!("not JSON: {error}")),
    }
}

/// What to study.
#[derive(Debug, Clone)]
pub struct GmRepeatsRequest {
    pub config: RunConfig,
    /// Where `config` came from, for the report.
    pub config_path: PathBuf,
    pub seeds: Vec<u64>,
    /// R: the fixed configuration's repeats, and the Gram samples recorded per candidate.
    pub reference_repeats: u32,
    /// gm keys merged over `{"repeats": R, "adaptive": true}`.
    pub adaptive: Option<Value>,
    /// Replaces the adaptive configuration entirely: any two gm configurations can be compared.
    pub adaptive_config_raw: Option<Value>,
    /// Where each seed's recording is kept and reused (`seed-N.json`).
    pub recordings: Option<PathBuf>,
}

/// Per candidate, its recorded Gram samples in order.
type Recording = BTreeMap<u32, Vec<GramSample>>;

/// A Gram sample as kept on disk: (options, row-major Gram matrix).
type SavedGram = (Vec<u32>, Vec<f64>);

/// One seed's recorded Gram samples, kept so that other gm configurations can be studied on the
/// same streams without recording again. `study` pins what they were recorded from.
#[derive(Debug, Serialize, Deserialize)]
struct SavedRecording {
    study: Value,
    /// Per candidate, in recorded order: (options, row-major Gram matrix).
    candidates: BTreeMap<u32, Vec<SavedGram>>,
    gradient_passes: usize,
}

impl SavedRecording {
    fn path(directory: &std::path::Path, seed: u64) -> PathBuf {
        directory.join(format!("seed-{seed}.json"))
    }

    /// The recording of `seed` if one was kept for the same study.
    fn load(directory: &std::path::Path, seed: u64, study: &Value) -> Result<Option<(Recording, usize)>> {
        let path = Self::path(directory, seed);
        if !path.exists() {
            return Ok(None);
        }
        let saved: SavedRecording = splitnas_engine::checkpoint::read_json(&path)?;
        if &saved.study != study {
            bail!("{} was recorded for another study ({}); use another --recordings directory", path.display(), saved.study);
        }
        let samples = saved
            .candidates
            .into_iter()
            .map(|(point, samples)| {
                (point, samples.into_iter().map(|(options, gram)| GramSample { options: options.into(), gram: gram.into() }).collect())
            })
            .collect();
        Ok(Some((samples, saved.gradient_passes)))
    }

    fn save(directory: &std::path::Path, seed: u64, study: &Value, recording: &Recording, gradient_passes: usize) -> Result<()> {
        std::fs::create_dir_all(directory).with_context(|| format!("cannot create {}", directory.display()))?;
        let candidates =
            recording.iter().map(|(&point, samples)| (point, samples.iter().map(|s| (s.options.to_vec(), s.gram.to_vec())).collect())).collect();
        let saved = SavedRecording { study: study.clone(), candidates, gradient_passes };
        Ok(splitnas_engine::checkpoint::write_json(&Self::path(directory, seed), &saved)?)
    }
}

impl GmRepeatsRequest {
    /// The gm configurations as given to the plugin: (fixed, adaptive).
    pub fn gm_configs(&self) -> Result<(Value, Value)> {
        let fixed = json!({ "repeats": self.reference_repeats });
        let adaptive = match (&self.adaptive_config_raw, &self.adaptive) {
            (Some(_), Some(_)) => bail!("give the adaptive keys (--adaptive) or a whole configuration (--adaptive-config-raw), not both"),
            (Some(raw), None) => raw.clone(),
            (None, keys) => {
                let mut config = json!({ "repeats": self.reference_repeats, "adaptive": true });
                if let Some(keys) = keys {
                    let Value::Object(keys) = keys else { bail!("the adaptive keys must be a JSON object, got {keys}") };
                    for (key, value) in keys {
                        config[key] = value.clone();
                    }
                }
                config
            }
        };
        Ok((fixed, adaptive))
    }
}

/// One configuration's split decision on a seed's recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GmDecision {
    pub choice_point: u32,
    pub choice_point_name: String,
    pub groups: Vec<Vec<u32>>,
    pub group_names: Vec<Vec<String>>,
    /// Gram samples served per candidate, in the report's candidate order.
    pub repeats: Vec<usize>,
    pub total_repeats: usize,
}

/// Both decisions on one seed's recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedRecord {
    pub seed: u64,
    pub fixed: GmDecision,
    pub adaptive: GmDecision,
    /// The adaptive configuration's repeats over the fixed configuration's.
    pub cost_ratio: f64,
    /// Same choice point and same partition of its options.
    pub agree: bool,
    /// Forward/backward passes of the recording.
    pub gradient_passes: usize,
    pub record_seconds: f64,
    pub decide_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudySummary {
    pub seeds: usize,
    pub agreements: usize,
    pub agreement_rate: f64,
    pub mean_cost_ratio: f64,
    pub max_cost_ratio: f64,
    pub mean_record_seconds: f64,
}

impl StudySummary {
    fn of(records: &[SeedRecord]) -> Self {
        let seeds = records.len();
        let agreements = records.iter().filter(|r| r.agree).count();
        let mean = |value: fn(&SeedRecord) -> f64| records.iter().map(value).sum::<f64>() / seeds.max(1) as f64;
        StudySummary {
            seeds,
            agreements,
            agreement_rate: agreements as f64 / seeds.max(1) as f64,
            mean_cost_ratio: mean(|r| r.cost_ratio),
            max_cost_ratio: records.iter().map(|r| r.cost_ratio).fold(0.0, f64::max),
            mean_record_seconds: mean(|r| r.record_seconds),
        }
    }
}

/// Everything the study measured, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GmRepeatsReport {
    pub config: PathBuf,
    pub space: String,
    pub algorithm: String,
    pub device: String,
    pub split_epoch: usize,
    pub groups: u32,
    pub reference_repeats: u32,
    /// The gm configurations as given to the plugin.
    pub fixed_config: Value,
    pub adaptive_config: Value,
    /// The same with the plugin's defaults filled in: what actually decided.
    pub fixed_config_effective: Value,
    pub adaptive_config_effective: Value,
    /// Candidate choice points by name, in recording order.
    pub candidates: Vec<String>,
    pub train_seconds: f64,
    /// The root supernet's state digest after training (as `metrics.jsonl` of a run records
    /// it): equal to a run's at the same epoch.
    #[serde(default)]
    pub root_state_digest: Value,
    pub records: Vec<SeedRecord>,
    pub summary: StudySummary,
}

/// Serves a recording to a criterion: the k-th request for a candidate gets its k-th
/// recorded sample; the requests are counted.
struct ReplayedGrams<'a> {
    recording: &'a Recording,
    served: RefCell<BTreeMap<u32, usize>>,
}

impl<'a> ReplayedGrams<'a> {
    fn new(recording: &'a Recording) -> Self {
        ReplayedGrams { recording, served: RefCell::new(BTreeMap::new()) }
    }

    fn served(&self, choice_point: u32) -> usize {
        self.served.borrow().get(&choice_point).copied().unwrap_or(0)
    }
}

impl GradientSource for ReplayedGrams<'_> {
    fn gradient_gram(&self, choice_point: u32) -> Result<GramSample, PluginError> {
        let samples = self
            .recording
            .get(&choice_point)
            .ok_or_else(|| PluginError::invalid_input(format!("choice point {choice_point} is not a recorded candidate")))?;
        let mut served = self.served.borrow_mut();
        let next = served.entry(choice_point).or_default();
        let sample = samples.get(*next).ok_or_else(|| {
            PluginError::invalid_input(format!(
                "repeat {} of choice point {choice_point} was asked for, but only {} were recorded: raise --reference-repeats",
                *next + 1,
                samples.len()
            ))
        })?;
        *next += 1;
        Ok(sample.clone())
    }
}

/// Runs the study; `on_seed` sees each seed's record as soon as it is done.
pub fn run_gm_repeats(
    request: &GmRepeatsRequest,
    registry: PluginRegistry,
    options: &RunOptions,
    on_seed: &mut dyn FnMut(&SeedRecord),
) -> Result<GmRepeatsReport> {
    let config = &request.config;
    let split = &config.split;
    if split.is_one_shot() {
        bail!(
            "{}: the [split] table is one-shot; the study needs a few-shot schedule (criterion and `epochs`, e.g. epochs = [15], groups = [2])",
            request.config_path.display()
        );
    }
    if request.reference_repeats == 0 {
        bail!("--reference-repeats must be at least 1");
    }
    if request.seeds.is_empty() {
        bail!("no seeds to study");
    }
    // Checked before training, which may take long: both configurations must be usable, and
    // neither may ask for more repeats than are recorded.
    let (fixed_config, adaptive_config) = request.gm_configs()?;
    let defaults = registry.get(ComponentKind::Criterion, CRITERION)?.info.default_config.to_string();
    let mut effective = Vec::new();
    for (label, gm_config) in [("fixed", &fixed_config), ("adaptive", &adaptive_config)] {
        create_criterion(&registry, CRITERION, gm_config).with_context(|| format!("the {label} gm configuration {gm_config}"))?;
        let merged = merge_config(ComponentKind::Criterion, CRITERION, &defaults, gm_config)?;
        if let Some(repeats) = merged.get("repeats").and_then(Value::as_u64).filter(|&r| r > u64::from(request.reference_repeats)) {
            bail!(
                "the {label} gm configuration may ask for {repeats} repeats per candidate, but --reference-repeats {} are recorded",
                request.reference_repeats
            );
        }
        effective.push(merged);
    }
    let adaptive_config_effective = effective.pop().expect("two configurations");
    let fixed_config_effective = effective.pop().expect("two configurations");

    let split_epoch = split.epochs[0];
    let groups = split.groups[0];
    let RunSetup { config, registry, device, data, space, info, create_algorithm, costs, .. } = RunSetup::new(config.clone(), registry, options)?;
    let loaders = SearchLoaders::new(&data)?;
    let env = loaders.environment(&space, &info, device, &config, &costs);
    // The root a run trains: same seeds, same data order, same code (splitnas_run::phases).
    let mut root = new_root(&env, &config, &create_algorithm)?;
    // What a kept recording must match: the configuration and R.
    let study = json!({"config": config, "reference_repeats": request.reference_repeats});
    let all_kept = request.recordings.as_ref().is_some_and(|dir| request.seeds.iter().all(|&seed| SavedRecording::path(dir, seed).exists()));
    let train_started = std::time::Instant::now();
    if !all_kept {
        train_epochs(&env, &config, &mut root, 0, 0, split_epoch, options.quiet, &mut |_, _| Ok(()))?;
    }
    let train_seconds = train_started.elapsed().as_secs_f64();
    let root_state_digest = state_digest(&root);

    let mask = root.mask.clone();
    let candidates = split_candidates(&info, &mask);
    if candidates.is_empty() {
        bail!("space `{}` has no split candidate", config.space.name);
    }
    let split_request = SplitRequest { space: info.clone(), mask, candidates: candidates.clone().into(), groups };
    if !options.quiet {
        eprintln!(
            "recording {} Gram samples of {} candidates per seed; fixed gm {fixed_config}, adaptive gm {adaptive_config}",
            request.reference_repeats,
            candidates.len()
        );
    }
    let mut records = Vec::with_capacity(request.seeds.len());
    for &seed in &request.seeds {
        let record_started = std::time::Instant::now();
        let record_seed = stream_seed(config.run.seed, Stream::GradientRecording, &[seed]);
        let kept = match &request.recordings {
            Some(directory) => SavedRecording::load(directory, seed, &study)?,
            None => None,
        };
        let (recording, gradient_passes) = match kept {
            Some(kept) => kept,
            None => {
                let recorded =
                    record_grams(&env, &mut root, &data, &candidates, request.reference_repeats, split_epoch, record_seed, seed, options.quiet)?;
                if let Some(directory) = &request.recordings {
                    SavedRecording::save(directory, seed, &study, &recorded.0, recorded.1)?;
                }
                recorded
            }
        };
        let record_seconds = record_started.elapsed().as_secs_f64();

        let decide_started = std::time::Instant::now();
        // Both configurations get the same criterion randomness: only their repeats differ.
        let decide_seed = stream_seed(config.run.seed, Stream::StudyDecision, &[seed]);
        let decide_with = |gm_config: &Value, label: &str| {
            decide(&registry, CRITERION, gm_config, &split_request, &recording, &info, decide_seed)
                .with_context(|| format!("seed {seed}: the {label} gm configuration {gm_config}"))
        };
        let fixed = decide_with(&fixed_config, "fixed")?;
        let adaptive = decide_with(&adaptive_config, "adaptive")?;
        let decide_seconds = decide_started.elapsed().as_secs_f64();

        let record = SeedRecord {
            seed,
            agree: fixed.choice_point == adaptive.choice_point && same_partition(&fixed.groups, &adaptive.groups),
            cost_ratio: adaptive.total_repeats as f64 / fixed.total_repeats.max(1) as f64,
            fixed,
            adaptive,
            gradient_passes,
            record_seconds,
            decide_seconds,
        };
        on_seed(&record);
        records.push(record);
    }
    Ok(GmRepeatsReport {
        config: request.config_path.clone(),
        space: config.space.name.clone(),
        algorithm: config.algorithm.name.clone(),
        device: device.to_string(),
        split_epoch,
        groups,
        reference_repeats: request.reference_repeats,
        fixed_config,
        adaptive_config,
        fixed_config_effective,
        adaptive_config_effective,
        candidates: candidates.iter().map(|&point| info.choice_points[point as usize].name.to_string()).collect(),
        train_seconds,
        root_state_digest,
        summary: StudySummary::of(&records),
        records,
    })
}

/// Records `repeats` Gram samples of every candidate, round-robin, for one study seed. The
/// supernet's BatchNorm statistics and the algorithm's state are restored afterwards, so that
/// every seed records from the same state whatever the order of seeds.
#[allow(clippy::too_many_arguments)]
fn record_grams(
    env: &TrainingEnvironment<'_>,
    root: &mut SubSupernet,
    data: &PreparedData,
    candidates: &[u32],
    repeats: u32,
    epoch: usize,
    record_seed: u64,
    seed: u64,
    quiet: bool,
) -> Result<(Recording, usize)> {
    let snapshot = BufferSnapshot::take(&root.buffers);
    let saved_algorithm = root.algorithm.state_json().within("algorithm")?.to_string();
    // Every exit from the recording goes past the restore below.
    let recorded = (|| -> Result<(Recording, usize)> {
        tch::manual_seed(record_seed as i64);
        let loader = RefCell::new(data.train_loader()?);
        loader.borrow_mut().seek(LoaderPosition { epoch: RECORDING_LOADER_EPOCH + seed, batch: 0 });
        let services = PluginServices::new(SeededRng::derive(record_seed, &[1]));
        let (context, trainer) = root.trainer(env, epoch, &services);
        let (algorithm, parameters) = (trainer.algorithm, trainer.parameters);
        let mut contexts = || algorithm.context_sample(HostContext_TO::from_ptr(&context, TD_Opaque)).into_result();
        let provider = GradientProvider::new(&context, &mut contexts, parameters, &loader);
        let bar = progress_bar(u64::from(repeats) * candidates.len() as u64, quiet, format!("seed {seed} recording"));
        let mut recording: Recording = candidates.iter().map(|&point| (point, Vec::with_capacity(repeats as usize))).collect();
        for _ in 0..repeats {
            for &point in candidates {
                let sample = provider.gradient_gram(point).map_err(|e| anyhow!("seed {seed}: gradients of choice point {point}: {e}"))?;
                recording.get_mut(&point).expect("one entry per candidate").push(sample);
                bar.inc(1);
            }
        }
        bar.finish_and_clear();
        let passes = *provider.passes.borrow();
        Ok((recording, passes))
    })();
    snapshot.restore(&root.buffers);
    root.algorithm.load_state_json(RStr::from_str(&saved_algorithm)).within("algorithm")?;
    recorded
}

/// One gm configuration's decision on a recording, and the samples it asked for.
/// A criterion's decision on a recording, and the samples it asked for.
fn decide(
    registry: &PluginRegistry,
    criterion_name: &str,
    config: &Value,
    request: &SplitRequest,
    recording: &Recording,
    info: &SpaceInfo,
    decide_seed: u64,
) -> Result<GmDecision> {
    let mut criterion = create_criterion(registry, criterion_name, config)?;
    let replay = ReplayedGrams::new(recording);
    let context = HostCriterionContext::new(SeededRng::new(decide_seed), Some(&replay));
    let decision: SplitDecision = run_split(&mut criterion, request, &context)?;
    let point = &info.choice_points[decision.choice_point as usize];
    let repeats: Vec<usize> = request.candidates.iter().map(|&candidate| replay.served(candidate)).collect();
    Ok(GmDecision {
        choice_point: decision.choice_point,
        choice_point_name: point.name.to_string(),
        groups: decision.groups.iter().map(|g| g.to_vec()).collect(),
        group_names: decision.groups.iter().map(|g| g.iter().map(|&option| point.options[option as usize].name.to_string()).collect()).collect(),
        total_repeats: repeats.iter().sum(),
        repeats,
    })
}

/// `splitnas plugins try`: a criterion on kept recordings, no training.
pub struct TryRequest {
    pub criterion: String,
    /// The criterion's keys (JSON object), merged over its defaults.
    pub config: Value,
    /// A `--recordings` directory of `bench gm-repeats` (seed-N.json files).
    pub recordings: PathBuf,
    /// Children per split; default: the recorded configuration's first split.
    pub groups: Option<u32>,
}

/// A criterion's decision on one seed's recording, beside gm's on all the recorded repeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TryRecord {
    pub seed: u64,
    pub decision: GmDecision,
    pub gm: GmDecision,
    /// The same choice point and partition as gm's.
    pub agrees_with_gm: bool,
    pub seconds: f64,
}

/// Runs `request.criterion` on every kept recording (seeds in order), each beside gm with
/// every recorded repeat: seconds per seed, with no training.
pub fn try_criterion(
    request: &TryRequest,
    registry: PluginRegistry,
    options: &RunOptions,
    on_seed: &mut dyn FnMut(&TryRecord),
) -> Result<Vec<TryRecord>> {
    let mut seeds: Vec<(u64, PathBuf)> = std::fs::read_dir(&request.recordings)
        .with_context(|| format!("cannot read the recordings directory {}", request.recordings.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter_map(|path| {
            let seed = path.file_name()?.to_str()?.strip_prefix("seed-")?.strip_suffix(".json")?.parse().ok()?;
            Some((seed, path))
        })
        .collect();
    seeds.sort();
    let Some((_, first)) = seeds.first() else {
        bail!(
            "{} holds no recording (seed-N.json): make some with `splitnas bench gm-repeats CONFIG --recordings {}`",
            request.recordings.display(),
            request.recordings.display()
        );
    };
    let first: SavedRecording = splitnas_engine::checkpoint::read_json(first)?;
    let config: RunConfig = serde_json::from_value(first.study["config"].clone()).context("the recording names no run configuration")?;
    // The space as the study had it (its data decides the classifier's width), without training.
    let groups = request.groups.or(config.split.groups.first().copied()).unwrap_or(2);
    let run_seed = config.run.seed;
    let RunSetup { registry, info, .. } = RunSetup::new(config, registry, &RunOptions { quiet: true, ..options.clone() })?;
    create_criterion(&registry, &request.criterion, &request.config)?;
    let mut records = Vec::with_capacity(seeds.len());
    for (seed, path) in seeds {
        let started = std::time::Instant::now();
        let saved: SavedRecording = splitnas_engine::checkpoint::read_json(&path)?;
        let recorded_repeats = saved.candidates.values().map(Vec::len).min().unwrap_or(0);
        let recording: Recording = saved
            .candidates
            .into_iter()
            .map(|(point, samples)| {
                (point, samples.into_iter().map(|(options, gram)| GramSample { options: options.into(), gram: gram.into() }).collect())
            })
            .collect();
        let candidates: Vec<u32> = recording.keys().copied().collect();
        let split_request = SplitRequest { space: info.clone(), mask: info.full_mask(), candidates: candidates.into(), groups };
        // The study's decision stream: gm here decides as the study's gm did.
        let decide_seed = stream_seed(run_seed, Stream::StudyDecision, &[seed]);
        let decision = decide(&registry, &request.criterion, &request.config, &split_request, &recording, &info, decide_seed)
            .with_context(|| format!("{}: criterion `{}`", path.display(), request.criterion))?;
        let gm = decide(&registry, CRITERION, &json!({ "repeats": recorded_repeats }), &split_request, &recording, &info, decide_seed)?;
        let record = TryRecord {
            seed,
            agrees_with_gm: decision.choice_point == gm.choice_point && same_partition(&decision.groups, &gm.groups),
            decision,
            gm,
            seconds: started.elapsed().as_secs_f64(),
        };
        on_seed(&record);
        records.push(record);
    }
    Ok(records)
}

/// One line for a seed of `plugins try`.
pub fn render_try(criterion: &str, record: &TryRecord) -> String {
    format!(
        "seed {:>3}: {criterion} {} ({} repeats); gm {} ({}) in {:.2} s",
        record.seed,
        render_decision(&record.decision),
        record.decision.total_repeats,
        if record.agrees_with_gm { "same".to_string() } else { render_decision(&record.gm) },
        if record.agrees_with_gm { "agree" } else { "DISAGREE" },
        record.seconds
    )
}

/// Whether two partitions are the same set of sets (group order and order within groups aside).
fn same_partition(a: &[Vec<u32>], b: &[Vec<u32>]) -> bool {
    let canonical = |groups: &[Vec<u32>]| {
        let mut sorted: Vec<Vec<u32>> = groups
            .iter()
            .map(|group| {
                let mut group = group.clone();
                group.sort_unstable();
                group
            })
            .collect();
        sorted.sort();
        sorted
    };
    canonical(a) == canonical(b)
}

fn render_decision(decision: &GmDecision) -> String {
    let groups: Vec<String> = decision.group_names.iter().map(|group| group.join("+")).collect();
    format!("{} {}", decision.choice_point_name, groups.join(" | "))
}

/// One line for a seed.
pub fn render_seed(record: &SeedRecord) -> String {
    let adaptive = if record.agree { "same".to_string() } else { render_decision(&record.adaptive) };
    format!(
        "seed {:>3}: fixed {}; adaptive {} ({}); repeats {}/{} (cost {:.3}); recorded in {:.1} s, decided in {:.2} s",
        record.seed,
        render_decision(&record.fixed),
        adaptive,
        if record.agree { "agree" } else { "DISAGREE" },
        record.adaptive.total_repeats,
        record.fixed.total_repeats,
        record.cost_ratio,
        record.record_seconds,
        record.decide_seconds
    )
}

/// The summary after the seeds' lines.
pub fn render_summary(report: &GmRepeatsReport) -> String {
    let summary = &report.summary;
    format!(
        "\n{}: space {}, algorithm {}, device {}; split at epoch {} into {} groups, {} candidates ({}); root trained in {:.1} s\n\
         fixed gm {} vs adaptive gm {}\n\
         seeds {}, agreement {}/{} ({:.3}), cost ratio mean {:.3}, max {:.3}; recording {:.1} s per seed\n",
        report.config.display(),
        report.space,
        report.algorithm,
        report.device,
        report.split_epoch,
        report.groups,
        report.candidates.len(),
        report.candidates.join(", "),
        report.train_seconds,
        report.fixed_config,
        report.adaptive_config,
        summary.seeds,
        summary.agreements,
        summary.seeds,
        summary.agreement_rate,
        summary.mean_cost_ratio,
        summary.max_cost_ratio,
        summary.mean_record_seconds
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_a_range_or_a_list() {
        assert_eq!("0..3".parse::<SeedList>().unwrap(), SeedList(vec![0, 1, 2]));
        assert_eq!("4, 7,9".parse::<SeedList>().unwrap(), SeedList(vec![4, 7, 9]));
        assert_eq!("5".parse::<SeedList>().unwrap(), SeedList(vec![5]));
        assert!("3..3".parse::<SeedList>().unwrap_err().contains("no seed"));
        assert!("1,2,1".parse::<SeedList>().unwrap_err().contains("twice"));
        assert!("a..3".parse::<SeedList>().is_err());
    }

    #[test]
    fn partitions_compare_as_sets_of_sets() {
        assert!(same_partition(&[vec![0, 1], vec![2, 3, 4]], &[vec![4, 2, 3], vec![1, 0]]));
        assert!(!same_partition(&[vec![0, 1], vec![2, 3, 4]], &[vec![0, 2], vec![1, 3, 4]]));
    }

    #[test]
    fn the_adaptive_configuration_merges_keys_or_is_replaced() {
        let request = |adaptive: Option<Value>, raw: Option<Value>| GmRepeatsRequest {
            config: RunConfig::from_toml("[space]\nname = \"s\"\n[algorithm]\nname = \"a\"\n", std::path::Path::new("t.toml")).unwrap(),
            config_path: PathBuf::from("t.toml"),
            seeds: vec![0],
            reference_repeats: 100,
            adaptive,
            adaptive_config_raw: raw,
            recordings: None,
        };
        let (fixed, adaptive) = request(Some(json!({"confidence": 0.9})), None).gm_configs().unwrap();
        assert_eq!(fixed, json!({"repeats": 100}));
        assert_eq!(adaptive, json!({"repeats": 100, "adaptive": true, "confidence": 0.9}));
        assert_eq!(request(None, Some(json!({"repeats": 10}))).gm_configs().unwrap().1, json!({"repeats": 10}));
        assert!(request(Some(json!({})), Some(json!({}))).gm_configs().is_err());
    }

    #[test]
    fn the_replay_serves_samples_in_recorded_order_and_no_more() {
        let sample = |value: f64| GramSample { options: vec![0].into(), gram: vec![value].into() };
        let recording = BTreeMap::from([(3, vec![sample(1.0), sample(2.0)])]);
        let replay = ReplayedGrams::new(&recording);
        assert_eq!(replay.gradient_gram(3).unwrap().gram[0], 1.0);
        assert_eq!(replay.gradient_gram(3).unwrap().gram[0], 2.0);
        assert!(replay.gradient_gram(3).unwrap_err().to_string().contains("only 2 were recorded"));
        assert!(replay.gradient_gram(4).is_err());
        assert_eq!((replay.served(3), replay.served(4)), (2, 0));
    }
}
