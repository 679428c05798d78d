//! Everything a run needs before its first epoch: the device, the data, the components, each
//! checked, so that a wrong name or key fails before a run directory exists.

use std::cell::RefCell;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::Value;
use splitnas_data::{prepare_data, BatchLoader, PreparedData, SplitName};
use splitnas_engine::components::{algorithm_factory, create_criterion, create_space, merge_config};
use splitnas_engine::context::TrainingEnvironment;
use splitnas_engine::costs::{flops_costs, LatencyTable, SearchCosts};
use splitnas_engine::device::DeviceChoice;
use splitnas_engine::error::SearchError;
use splitnas_engine::plugins::PluginRegistry;
use splitnas_engine::sub_supernet::TrainingSettings;
use splitnas_plugin_api::{AlgorithmSetup, Architecture, ComponentKind, Device, SearchAlgorithmBox, SearchSpaceBox, SpaceInfo, SpaceSetup};

use crate::config::{ComponentChoice, OptionCostKind, RunConfig};
use crate::directory::RunDirectory;
use crate::provenance::{component_builds, ComponentBuild, Invocation};

/// Options from the command line that are not part of the configuration.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Overrides `run.device`.
    pub device: Option<String>,
    /// Overrides `run.threads`.
    pub threads: Option<usize>,
    /// Overrides `run.output_dir`.
    pub output_dir: Option<PathBuf>,
    /// Replace an existing run directory of the same name.
    pub overwrite: bool,
    /// No progress bars or per-epoch lines.
    pub quiet: bool,
    /// The command line that asked for the run, recorded in `provenance.json` of the runs it
    /// starts.
    pub invocation: Option<Invocation>,
}

/// Creates a search algorithm for one sub-supernet.
pub type AlgorithmFactory = Box<dyn Fn(&AlgorithmSetup) -> Result<SearchAlgorithmBox, SearchError>>;

/// Everything a run needs once its configuration is resolved.
pub struct RunSetup {
    /// The configuration with every plugin's defaults filled in (what `config.toml` records).
    pub config: RunConfig,
    pub registry: PluginRegistry,
    pub device: Device,
    pub data: PreparedData,
    pub space: SearchSpaceBox,
    pub info: SpaceInfo,
    pub create_algorithm: AlgorithmFactory,
    pub directory: RunDirectory,
    /// The plugin builds of the components the configuration names.
    pub builds: Vec<ComponentBuild>,
    /// The costs the run searches under (`[search] option_cost`), checked against the space
    /// before a run directory exists.
    pub costs: SearchCosts,
}

impl RunSetup {
    /// Resolves the device, prepares the data and creates every component once: an unknown
    /// component or key fails here, before anything is written.
    pub fn new(config: RunConfig, registry: PluginRegistry, options: &RunOptions) -> Result<Self> {
        let mut config = resolve_component_defaults(config, &registry)?;
        let device_text = options.device.clone().unwrap_or_else(|| config.run.device.clone());
        let device = device_text.parse::<DeviceChoice>()?.resolve()?;
        if let Some(threads) = options.threads {
            config.run.threads = threads;
        }
        // 0 keeps the count the binary chose from the free CPUs (re-checked every epoch).
        if config.run.threads > 0 {
            splitnas_engine::threads::pin(config.run.threads, if options.threads.is_some() { "--threads" } else { "run.threads" });
        }
        let data = prepare_data(&config.data, device.to_tch()).context("preparing the data ([data] table)")?;
        let space = create_run_space(&registry, &config, &data)?;
        let info = space.info().into_result().map_err(|e| anyhow::anyhow!("space `{}`: {e}", config.space.name))?;
        let costs = search_costs(&config, &space, &info)?;
        let create_algorithm: AlgorithmFactory = Box::new(algorithm_factory(&registry, &config.algorithm.name, &config.algorithm.config_json())?);
        if !config.split.is_one_shot() {
            create_criterion(&registry, &config.split.criterion, &config.split.config_json())?;
        }
        let builds = component_builds(&config, &registry)?;
        let output_dir = options.output_dir.clone().unwrap_or_else(|| config.run.output_dir.clone());
        let directory = RunDirectory::new(output_dir.join(&config.run.name));
        config.run.output_dir = output_dir;
        Ok(RunSetup { config, registry, device, data, space, info, create_algorithm, directory, builds, costs })
    }
}

impl RunSetup {
    /// Milliseconds of `architecture`'s stand-alone network from the latency table's network
    /// parts; `None` when the run has no such table.
    pub fn network_latency_ms(&self, architecture: &Architecture) -> Result<Option<f64>> {
        let Some(table) = &self.costs.network_latency else {
            return Ok(None);
        };
        let parts =
            self.space.architecture_parts(architecture).into_result().map_err(|e| anyhow::anyhow!("space `{}`: {e}", self.config.space.name))?;
        Ok(Some(table.network_latency_ms(parts.iter().map(|key| key.as_str()))?))
    }
}

/// The costs `[search] option_cost` names: the space's FLOPs at the data's image size, or the
/// latency table's milliseconds (per option, per network part, or both), refused when the
/// table does not describe this space.
pub fn search_costs(config: &RunConfig, space: &SearchSpaceBox, info: &SpaceInfo) -> Result<SearchCosts> {
    Ok(match config.search.option_cost {
        OptionCostKind::None => SearchCosts::default(),
        OptionCostKind::Flops => {
            SearchCosts { options: Some(flops_costs(space, info).context("`search.option_cost = \"flops\"`")?), network_latency: None }
        }
        OptionCostKind::Latency => {
            let path = config.search.latency_table.as_deref().context("`search.option_cost = \"latency\"` needs `search.latency_table`")?;
            let table = LatencyTable::read(path)?;
            let network_latency = table.part_latencies(info, path).context("`search.latency_table`")?;
            // A table of parts only (OFA's) offers no per-option costs.
            let options = if table.choice_points.is_empty() && network_latency.is_some() {
                None
            } else {
                Some(table.option_costs(info, path).context("`search.latency_table`")?)
            };
            SearchCosts { options, network_latency }
        }
    })
}

/// The configuration with each component's published defaults merged under the user's keys
/// (a wrong key fails here, naming the component and the keys it knows).
pub fn resolve_component_defaults(mut config: RunConfig, registry: &PluginRegistry) -> Result<RunConfig> {
    if config.data.seed.is_none() {
        config.data.seed = Some(config.run.seed);
    }
    resolve_choice(&mut config.space, ComponentKind::Space, registry)?;
    resolve_choice(&mut config.algorithm, ComponentKind::Algorithm, registry)?;
    if !config.split.is_one_shot() {
        let component = registry.get(ComponentKind::Criterion, &config.split.criterion)?;
        let merged = merge_config(ComponentKind::Criterion, &config.split.criterion, &component.info.default_config, &config.split.config_json())?;
        config.split.config = to_toml_table(&merged);
    }
    Ok(config)
}

fn resolve_choice(choice: &mut ComponentChoice, kind: ComponentKind, registry: &PluginRegistry) -> Result<()> {
    let component = registry.get(kind, &choice.name)?;
    let merged = merge_config(kind, &choice.name, &component.info.default_config, &choice.config_json())?;
    choice.config = to_toml_table(&merged);
    Ok(())
}

/// A JSON object as TOML keys (JSON nulls, which TOML cannot hold, are left out).
fn to_toml_table(value: &Value) -> std::collections::BTreeMap<String, toml::Value> {
    value
        .as_object()
        .map(|object| object.iter().filter_map(|(key, value)| toml::Value::try_from(value).ok().map(|value| (key.clone(), value))).collect())
        .unwrap_or_default()
}

/// What the data is, as the run's search space is told it (the stand-alone network keeps the
/// space's configured size).
pub(crate) fn space_setup(data: &PreparedData) -> SpaceSetup {
    let shape = data.splits.train.image_shape();
    SpaceSetup {
        classes: data.splits.train.num_classes() as u32,
        input_channels: shape[0] as u32,
        image_size: shape[1] as u32,
        network_channels: 0,
        network_cells: 0,
    }
}

/// The run's search space, told what the data is.
pub(crate) fn create_run_space(registry: &PluginRegistry, config: &RunConfig, data: &PreparedData) -> Result<SearchSpaceBox> {
    Ok(create_space(registry, &config.space.name, &config.space.config_json(), &space_setup(data))?)
}

/// A sub-supernet's optimizer settings under `config`: α stays frozen until the last split
/// unless the configuration trains it before.
pub fn training_settings(config: &RunConfig) -> TrainingSettings {
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

/// The loaders a supernet's training reads: training batches, validation batches for the
/// architecture steps, and the validation split for supernet accuracy.
pub struct SearchLoaders {
    /// Side of the training images (what `network_stats` counts FLOPs at).
    image_size: u32,
    /// Fixed training images for BatchNorm recalibration (`[search] recalibration_batches`).
    calibration: RefCell<BatchLoader>,
    train: RefCell<BatchLoader>,
    valid: RefCell<BatchLoader>,
    valid_eval: RefCell<BatchLoader>,
}

impl SearchLoaders {
    pub fn new(data: &PreparedData) -> Result<Self> {
        Ok(SearchLoaders {
            image_size: space_setup(data).image_size,
            calibration: RefCell::new(data.calibration_loader()?),
            train: RefCell::new(data.train_loader()?),
            valid: RefCell::new(data.valid_search_loader()?),
            valid_eval: RefCell::new(data.eval_loader(SplitName::Valid)?),
        })
    }

    /// The fixed training images BatchNorm recalibration reads.
    pub(crate) fn calibration(&self) -> &RefCell<BatchLoader> {
        &self.calibration
    }

    /// The validation split in order, as the search evaluates architectures on it.
    pub(crate) fn valid_eval(&self) -> &RefCell<BatchLoader> {
        &self.valid_eval
    }

    pub fn environment<'a>(
        &'a self,
        space: &'a SearchSpaceBox,
        info: &'a SpaceInfo,
        device: Device,
        config: &RunConfig,
        costs: &'a SearchCosts,
    ) -> TrainingEnvironment<'a> {
        TrainingEnvironment {
            space,
            info,
            device,
            train: &self.train,
            valid: &self.valid,
            valid_eval: &self.valid_eval,
            eval_batches: config.search.eval_batches,
            total_epochs: config.search.epochs,
            option_costs: costs.options.as_ref(),
            network_latency: costs.network_latency.as_ref(),
            label_smoothing: config.search.label_smoothing,
            image_size: self.image_size,
            recalibration: (config.search.recalibration_batches > 0).then_some((&self.calibration, config.search.recalibration_batches)),
        }
    }
}
