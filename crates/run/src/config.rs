//! The run configuration (TOML). One source of truth: every field, its default and its help
//! text live here; `splitnas run --print-defaults` prints them.
//!
//! Every table rejects unknown keys by name. The `[space]` and `[algorithm]` tables name a
//! component and pass their other keys to it; the host checks those keys against the
//! component's published defaults.
//!
//! Any key can also come from the command line: `--set section.key=value` (repeatable; a TOML
//! value, a bare word being a string, see [`crate::overrides`]) is merged over the file and
//! checked like it, and `splitnas run --seed N` is `--set run.seed=N`. The run directory's
//! `config.toml` holds the result, `provenance.json` the overrides as given.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::overrides::ConfigOverride;
use splitnas_data::{DataConfig, TrainOn};
use splitnas_engine::optim::{AdamConfig, LrScheduleStep, SgdConfig};
use splitnas_engine::standalone::StandaloneSettings;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// A `--set` that does not fit the configuration (unknown key, wrong type, bad value).
    #[error("--set {set}: {message}")]
    Override { set: String, message: String },
}

/// A complete run configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    #[serde(default)]
    pub run: RunSection,
    #[serde(default)]
    pub data: DataConfig,
    pub space: ComponentChoice,
    pub algorithm: ComponentChoice,
    #[serde(default)]
    pub search: SearchSection,
    #[serde(default)]
    pub split: SplitSection,
    #[serde(default, rename = "final")]
    pub final_training: FinalSection,
}

/// `[split]`: the split schedule and criterion (absent or `criterion = "none"`: one-shot).
/// Keys other than these go to the criterion plugin (e.g. gm's `repeats`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SplitSection {
    /// `gm`, `exhaustive`, `random` (any loaded criterion) or `none`.
    pub criterion: String,
    /// Epochs at which every leaf is split (after training the epochs before), increasing.
    pub epochs: Vec<usize>,
    /// Children per split at each of those epochs; 0 lets the criterion decide (exhaustive).
    pub groups: Vec<u32>,
    /// After the last split, children start fresh: new weights, α, optimizers, and a cosine
    /// schedule over the remaining epochs (the paper's default).
    pub restart_final: bool,
    /// Train α before the last split too. The paper's code keeps α frozen (near-uniform) until
    /// the final split, so that gradient matching sees an unbiased supernet.
    pub train_architecture_before_last_split: bool,
    #[serde(flatten)]
    pub config: BTreeMap<String, toml::Value>,
}

impl Default for SplitSection {
    fn default() -> Self {
        SplitSection {
            criterion: "none".to_string(),
            epochs: Vec::new(),
            groups: Vec::new(),
            restart_final: true,
            train_architecture_before_last_split: false,
            config: BTreeMap::new(),
        }
    }
}

impl SplitSection {
    pub fn is_one_shot(&self) -> bool {
        self.criterion == "none" || self.epochs.is_empty()
    }
    pub fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("TOML values are representable as JSON")
    }
}

/// How the final architecture is chosen among the leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SelectBy {
    /// Train every leaf's architecture stand-alone; best validation accuracy wins.
    Standalone,
    /// Best supernet validation accuracy of the derived architecture; only it is trained.
    Supernet,
    /// Successive halving over the leaves' stand-alone trainings (the DARTS-space protocol of
    /// the paper): round r trains every surviving leaf's architecture from scratch for
    /// `halving_first_epochs · 2^r` epochs and keeps the better half (rounded up) by validation
    /// accuracy, until one is left. The report lists every round.
    #[serde(rename = "successive_halving", alias = "successive-halving")]
    SuccessiveHalving,
}

/// `[run]`: where results go and how the run is seeded.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSection {
    /// Name of the run directory under `output_dir`.
    pub name: String,
    /// Directory that holds run directories.
    pub output_dir: PathBuf,
    /// Seed of everything random (data order, initialisation, sampling).
    pub seed: u64,
    /// `cpu`, `cuda`, `cuda:N` or `auto` (CUDA where available); `--device` overrides it.
    pub device: String,
    /// CPU threads for libtorch; 0 lets splitnas choose from the free CPUs (affinity mask,
    /// cgroup quota, other runnable processes; at most libtorch's default), again at every
    /// epoch boundary, as `splitnas_engine::threads` explains. `--threads` overrides it, the
    /// run's `config.toml` records a given number, and every epoch event of metrics.jsonl the
    /// count used and why (`threads`). Set it when results must reproduce bit for bit.
    pub threads: usize,
    /// Also write TensorBoard event files into `<run dir>/tensorboard/`: one TensorBoard run
    /// per node (`node-N`: per epoch `search/train_loss`, `search/supernet_valid_accuracy`,
    /// `search/lr`; per split `split/score/<choice point>`; per training step
    /// `search/step_lr`) and per stand-alone training (`node-N/standalone`:
    /// `standalone/train_loss`, `standalone/train_accuracy`, `standalone/lr`, and
    /// `standalone/valid_accuracy` where measured, per epoch; `standalone/step_lr` per training
    /// step). Steps are the `epoch` of metrics.jsonl, whose events they mirror, and for the
    /// `step_lr` tags the training step (`epoch · steps + step`, from the epoch events'
    /// `step_lrs`). Written as they are logged, so a killed run keeps them; a resumed run adds
    /// new files. `tensorboard --logdir runs/<name>/tensorboard` shows them.
    pub tensorboard: bool,
}

impl Default for RunSection {
    fn default() -> Self {
        RunSection { name: "run".to_string(), output_dir: PathBuf::from("runs"), seed: 0, device: "auto".to_string(), threads: 0, tensorboard: false }
    }
}

/// `[space]` / `[algorithm]`: a component by name, plus its own configuration keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComponentChoice {
    pub name: String,
    #[serde(flatten)]
    pub config: BTreeMap<String, toml::Value>,
}

impl ComponentChoice {
    /// The component's own keys as JSON, for the plugin.
    pub fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("TOML values are representable as JSON")
    }
}

/// `[search]`: training the supernet.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchSection {
    /// Epochs of supernet training.
    pub epochs: usize,
    /// Cap on training steps per epoch; 0 runs whole epochs.
    pub max_steps_per_epoch: usize,
    /// Epochs before the first architecture step (warm-up of the weights).
    pub architecture_warmup_epochs: usize,
    /// Cap on validation batches when the supernet evaluates an architecture; 0 uses the whole split.
    pub eval_batches: usize,
    /// Training batches (fixed images, no augmentation) on which BatchNorm statistics are
    /// re-estimated for every architecture the supernet evaluates, which then runs in inference
    /// mode (OFA's subnet evaluation: 2,000 images); 0 normalises each validation batch with
    /// its own statistics instead.
    pub recalibration_batches: usize,
    /// The weight optimizer (SGD) and its cosine schedule over `epochs` (after a final split
    /// with `restart_final`, over the remaining epochs): `lr` → `lr_min`, moving every step
    /// or once per epoch as `lr_schedule_step` says (`"iteration"` by default; DARTS's
    /// `train_search.py` steps per epoch: `"epoch"`).
    pub weights: SgdConfig,
    /// The architecture optimizer (Adam).
    pub architecture: AdamConfig,
    /// The per-option cost the host offers search algorithms (cost-aware search such as
    /// `proxylessnas`'s expected-cost loss): `none`, `flops` (multiply-accumulates the space
    /// counts at the data's image size) or `latency` (milliseconds from `latency_table`).
    pub option_cost: OptionCostKind,
    /// The latency lookup table `option_cost = "latency"` reads, as `splitnas bench latency
    /// --output` wrote it for this space and its settings (a relative path is taken from the
    /// working directory). It must list the space's choice points and options exactly.
    pub latency_table: Option<PathBuf>,
    /// Label smoothing ε of the weight steps' cross-entropy, as PyTorch's
    /// `CrossEntropyLoss(label_smoothing=ε)`, and of gradient matching's scoring passes (as
    /// ProxylessNAS-GM scores with its training loss); 0 disables it. Architecture steps keep
    /// plain cross-entropy.
    pub label_smoothing: f64,
}

/// `[search] option_cost`: which per-option cost the host offers search algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptionCostKind {
    /// No costs: cost-aware algorithms refuse a nonzero cost weight.
    None,
    /// The space's count of multiply-accumulates per option (ABI 1.3 `option_flops`).
    Flops,
    /// The median milliseconds of `[search] latency_table`.
    Latency,
}

impl Default for SearchSection {
    fn default() -> Self {
        SearchSection {
            epochs: 50,
            max_steps_per_epoch: 0,
            architecture_warmup_epochs: 0,
            eval_batches: 0,
            recalibration_batches: 0,
            weights: SgdConfig::default(),
            architecture: AdamConfig::default(),
            option_cost: OptionCostKind::None,
            latency_table: None,
            label_smoothing: 0.0,
        }
    }
}

/// `[final]`: training the derived architecture stand-alone.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FinalSection {
    /// Epochs of stand-alone training; 0 skips it.
    pub epochs: usize,
    /// Cap on training steps per epoch; 0 runs whole epochs.
    pub max_steps_per_epoch: usize,
    /// What stand-alone networks train on: `train` (the train split; the valid split stays
    /// held out, so its accuracy can choose among leaves) or `train+valid` (both halves of the
    /// search split: every training image, as NB201 and DARTS train before they report test
    /// accuracy). With `train+valid` the validation accuracy is still measured, but on images
    /// the network trained on (report.json's `trained_on` says so), so it cannot choose: only
    /// `select_by = "supernet"` is accepted with it.
    pub train_on: TrainOn,
    /// Images per training batch of stand-alone training; 0 uses `data.batch_size` (DARTS: 96).
    /// Evaluation batches keep `data.eval_batch_size`.
    pub batch_size: usize,
    /// Cutout (DeVries & Taylor) on stand-alone training batches, as DARTS's `Cutout`: the side
    /// in pixels of one square per image, its centre uniform over the image (clipped at the
    /// border), zeroed after normalisation; 0 disables it (DARTS: 16). An odd side cuts one
    /// pixel less, as DARTS's `length // 2` does. Drawn from the data seed and the batch's
    /// position, so a resumed training sees the same squares.
    pub cutout: usize,
    /// Weight of the auxiliary head's loss, for networks that have one (DARTS: 0.4).
    pub auxiliary_weight: f64,
    /// `standalone` (train every leaf, pick the best validation accuracy), `supernet` (best
    /// supernet accuracy, only it is trained) or `successive_halving` (see [`SelectBy`]).
    pub select_by: SelectBy,
    /// Epochs of the first successive-halving round (each later round doubles them); 0 uses
    /// `epochs`.
    pub halving_first_epochs: usize,
    /// Drop-path probability of networks that support it (DARTS: 0.2), raised linearly from 0
    /// over the epochs as DARTS's training script does; 0 disables it (NB201 networks refuse
    /// any other value).
    pub drop_path_prob: f64,
    /// Label smoothing ε of stand-alone training's cross-entropy (the auxiliary head's too), as
    /// PyTorch's `CrossEntropyLoss(label_smoothing=ε)`; 0 disables it (ProxylessNAS: 0.1).
    pub label_smoothing: f64,
    /// Export every trained leaf's network as `models/node-N.safetensors` (and `.json`), not
    /// only the selected one's `model.safetensors`.
    pub save_leaves: bool,
    /// SGD and its cosine schedule over `epochs`: `lr` → `lr_min`, moving every step or once
    /// per epoch as `lr_schedule_step` says (`"iteration"` by default; DARTS's `train.py`
    /// steps per epoch: `"epoch"`).
    pub optimizer: SgdConfig,
}

impl FinalSection {
    /// How the engine trains a stand-alone network under this table.
    pub fn standalone_settings(&self) -> StandaloneSettings {
        StandaloneSettings {
            epochs: self.epochs,
            max_steps_per_epoch: self.max_steps_per_epoch,
            auxiliary_weight: self.auxiliary_weight,
            drop_path_prob: self.drop_path_prob,
            label_smoothing: self.label_smoothing,
            optimizer: self.optimizer,
        }
    }
}

impl Default for FinalSection {
    /// NB201's stand-alone protocol: SGD 0.1 Nesterov, weight decay 5e-4, cosine to 0, moved
    /// every step (see [`LrScheduleStep`] for why, and for what each reference does).
    fn default() -> Self {
        FinalSection {
            epochs: 10,
            max_steps_per_epoch: 0,
            train_on: TrainOn::Train,
            batch_size: 0,
            cutout: 0,
            auxiliary_weight: 0.4,
            select_by: SelectBy::Standalone,
            halving_first_epochs: 0,
            drop_path_prob: 0.0,
            label_smoothing: 0.0,
            save_leaves: false,
            optimizer: SgdConfig {
                lr: 0.1,
                lr_min: 0.0,
                momentum: 0.9,
                nesterov: true,
                weight_decay: 5e-4,
                grad_clip: 5.0,
                lr_schedule_step: LrScheduleStep::Iteration,
            },
        }
    }
}

impl RunConfig {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::from_toml(&text, path)
    }

    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: RunConfig = toml::from_str(text)
            .map_err(|error| ConfigError::Parse { path: path.to_path_buf(), message: error.to_string().trim_end().to_string() })?;
        config.validate().map_err(|message| ConfigError::Invalid { path: path.to_path_buf(), message })?;
        Ok(config)
    }

    /// [`RunConfig::from_file`] with `--set` overrides merged over the file.
    pub fn from_file_with_overrides(path: &Path, overrides: &[ConfigOverride]) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::from_toml_with_overrides(&text, path, overrides)
    }

    /// The configuration in `text` with `overrides` applied in order (see [`crate::overrides`]),
    /// checked exactly like a file: an unknown key or a value of the wrong type fails naming
    /// the `--set` that brought it, a value that makes no sense names the key (and the `--set`
    /// that set it).
    pub fn from_toml_with_overrides(text: &str, path: &Path, overrides: &[ConfigOverride]) -> Result<Self, ConfigError> {
        if overrides.is_empty() {
            return Self::from_toml(text, path);
        }
        let mut table: toml::Table = toml::from_str(text)
            .map_err(|error| ConfigError::Parse { path: path.to_path_buf(), message: error.to_string().trim_end().to_string() })?;
        let rejected = |set: &ConfigOverride, message: String| ConfigError::Override { set: set.to_string(), message };
        for set in overrides {
            // Each override alone, over the smallest valid configuration: an unknown key or a
            // wrong type is its own fault, whatever the file holds.
            let mut minimal: toml::Table = toml::from_str(MINIMAL_CONFIG).expect("the minimal configuration parses");
            set.apply(&mut minimal).map_err(|message| rejected(set, message))?;
            RunConfig::deserialize(minimal).map_err(|error| rejected(set, one_line(&error)))?;
            set.apply(&mut table).map_err(|message| rejected(set, message))?;
        }
        let config = RunConfig::deserialize(table).map_err(|error| match Self::from_toml(text, path) {
            Err(file_error) => file_error,
            Ok(_) => ConfigError::Invalid { path: with_overrides(path, overrides), message: one_line(&error) },
        })?;
        config.validate().map_err(|message| match overrides.iter().rev().find(|set| message.contains(&format!("`{}`", set.key()))) {
            Some(set) => rejected(set, message),
            None => ConfigError::Invalid { path: with_overrides(path, overrides), message },
        })?;
        Ok(config)
    }

    /// Checks values that parse but make no sense, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        let positive = |value: f64, field: &str| {
            if value > 0.0 && value.is_finite() {
                Ok(())
            } else {
                Err(format!("`{field}` must be a positive number, got {value}"))
            }
        };
        let non_negative = |value: f64, field: &str| {
            if value >= 0.0 && value.is_finite() {
                Ok(())
            } else {
                Err(format!("`{field}` must be zero or more, got {value}"))
            }
        };
        if self.run.name.is_empty() || self.run.name.contains('/') {
            return Err(format!("`run.name` must be a plain directory name, got {:?}", self.run.name));
        }
        self.run.device.parse::<splitnas_engine::device::DeviceChoice>().map_err(|e| format!("`run.device`: {e}"))?;
        if self.search.epochs == 0 {
            return Err("`search.epochs` must be at least 1".to_string());
        }
        for (prefix, sgd) in [("search.weights", &self.search.weights), ("final.optimizer", &self.final_training.optimizer)] {
            positive(sgd.lr, &format!("{prefix}.lr"))?;
            non_negative(sgd.lr_min, &format!("{prefix}.lr_min"))?;
            non_negative(sgd.weight_decay, &format!("{prefix}.weight_decay"))?;
            non_negative(sgd.grad_clip, &format!("{prefix}.grad_clip"))?;
            if !(0.0..1.0).contains(&sgd.momentum) {
                return Err(format!("`{prefix}.momentum` must be in [0, 1), got {}", sgd.momentum));
            }
        }
        let split = &self.split;
        if !split.is_one_shot() {
            if split.epochs.len() != split.groups.len() {
                return Err(format!(
                    "`split.epochs` has {} entries but `split.groups` has {}: give one group count per split",
                    split.epochs.len(),
                    split.groups.len()
                ));
            }
            let mut previous = 0;
            for &epoch in &split.epochs {
                if epoch <= previous || epoch >= self.search.epochs {
                    return Err(format!(
                        "`split.epochs` must increase and lie strictly between 0 and search.epochs ({}), got {:?}",
                        self.search.epochs, split.epochs
                    ));
                }
                previous = epoch;
            }
            if split.groups.contains(&1) {
                return Err("`split.groups` entries must be 0 (criterion decides) or at least 2".to_string());
            }
        } else if split.criterion == "none" && (!split.epochs.is_empty() || !split.config.is_empty()) {
            return Err("`split.criterion` is \"none\" but other [split] keys are set: name a criterion (gm, exhaustive, random)".to_string());
        }
        if self.final_training.train_on == TrainOn::TrainValid && self.final_training.select_by != SelectBy::Supernet {
            let select_by = match self.final_training.select_by {
                SelectBy::Standalone => "standalone",
                SelectBy::Supernet => "supernet",
                SelectBy::SuccessiveHalving => "successive_halving",
            };
            return Err(format!(
                "`final.train_on = \"train+valid\"` trains stand-alone networks on the valid split too, so their validation accuracy is \
                 not held out, but `final.select_by = \"{select_by}\"` would choose the leaf by it: by accuracy on images it trained on. \
                 Set `final.select_by = \"supernet\"` (only the leaf with the best supernet accuracy is trained, as DARTS evaluates its \
                 one derived cell) or keep `final.train_on = \"train\"` to choose by held-out stand-alone accuracy"
            ));
        }
        let drop_path = self.final_training.drop_path_prob;
        if !(0.0..1.0).contains(&drop_path) {
            return Err(format!("`final.drop_path_prob` must be in [0, 1), got {drop_path}"));
        }
        for (value, field) in
            [(self.search.label_smoothing, "search.label_smoothing"), (self.final_training.label_smoothing, "final.label_smoothing")]
        {
            if !(0.0..1.0).contains(&value) {
                return Err(format!("`{field}` must be in [0, 1), got {value}"));
            }
        }
        match (self.search.option_cost, &self.search.latency_table) {
            (OptionCostKind::Latency, None) => {
                return Err(
                    "`search.option_cost = \"latency\"` needs `search.latency_table`: a table written by `splitnas bench latency --output FILE`"
                        .to_string(),
                )
            }
            (OptionCostKind::None | OptionCostKind::Flops, Some(table)) => {
                return Err(format!(
                    "`search.latency_table` ({}) is read only with `search.option_cost = \"latency\"`: set that, or remove the table",
                    table.display()
                ))
            }
            _ => {}
        }
        let adam = &self.search.architecture;
        positive(adam.lr, "search.architecture.lr")?;
        for (value, field) in [(adam.beta1, "beta1"), (adam.beta2, "beta2")] {
            if !(0.0..1.0).contains(&value) {
                return Err(format!("`search.architecture.{field}` must be in [0, 1), got {value}"));
            }
        }
        Ok(())
    }
}

/// The smallest configuration that reads: each `--set` is first checked over it alone.
const MINIMAL_CONFIG: &str = "[space]\nname = \"space\"\n[algorithm]\nname = \"algorithm\"\n";

/// A deserialisation error on one line (toml puts the key's path on a line of its own).
fn one_line(error: &toml::de::Error) -> String {
    error.to_string().trim_end().replace('\n', " ")
}

/// `path` as an error names it when overrides were merged over the file.
fn with_overrides(path: &Path, overrides: &[ConfigOverride]) -> PathBuf {
    let sets: Vec<String> = overrides.iter().map(|set| format!("--set {set}")).collect();
    PathBuf::from(format!("{} with {}", path.display(), sets.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[space]\nname = \"nb201\"\n[algorithm]\nname = \"darts\"\n";

    fn parse(text: &str) -> Result<RunConfig, ConfigError> {
        RunConfig::from_toml(text, Path::new("test.toml"))
    }

    #[test]
    fn a_minimal_config_gets_the_defaults() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.search.weights.lr, 0.025);
        assert_eq!(config.final_training.optimizer.lr, 0.1);
        assert_eq!(config.run.device, "auto");
    }

    #[test]
    fn component_keys_pass_through() {
        let config = parse("[space]\nname = \"nb201\"\nchannels = 8\n[algorithm]\nname = \"darts\"\n").unwrap();
        assert_eq!(config.space.config_json()["channels"], 8);
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let error = parse(&format!("{MINIMAL}[search]\nepochz = 3\n")).unwrap_err().to_string();
        assert!(error.contains("test.toml") && error.contains("epochz"), "{error}");
        let error = parse(&format!("{MINIMAL}[search.weights]\nlearning_rate = 3\n")).unwrap_err().to_string();
        assert!(error.contains("learning_rate"), "{error}");
        let error = parse(&format!("{MINIMAL}[srch]\n")).unwrap_err().to_string();
        assert!(error.contains("srch"), "{error}");
    }

    #[test]
    fn split_schedules_are_checked() {
        let ok =
            parse(&format!("{MINIMAL}[search]\nepochs = 10\n[split]\ncriterion = \"gm\"\nepochs = [3, 6]\ngroups = [2, 2]\nrepeats = 5\n")).unwrap();
        assert_eq!(ok.split.config_json()["repeats"], 5);
        assert!(!ok.split.is_one_shot());
        let error = parse(&format!("{MINIMAL}[search]\nepochs = 10\n[split]\ncriterion = \"gm\"\nepochs = [6, 3]\ngroups = [2, 2]\n"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("split.epochs"), "{error}");
        let error =
            parse(&format!("{MINIMAL}[search]\nepochs = 10\n[split]\ncriterion = \"gm\"\nepochs = [3]\ngroups = [2, 2]\n")).unwrap_err().to_string();
        assert!(error.contains("split.groups"), "{error}");
        let error = parse(&format!("{MINIMAL}[split]\nepochs = [3]\n")).unwrap_err().to_string();
        assert!(error.contains("split.criterion"), "{error}");
    }

    #[test]
    fn successive_halving_is_a_selection() {
        let config =
            parse(&format!("{MINIMAL}[final]\nselect_by = \"successive_halving\"\nhalving_first_epochs = 2\ndrop_path_prob = 0.2\n")).unwrap();
        assert_eq!(config.final_training.select_by, SelectBy::SuccessiveHalving);
        assert_eq!((config.final_training.halving_first_epochs, config.final_training.drop_path_prob), (2, 0.2));
        let round_trip = toml::to_string(&config).unwrap();
        assert!(round_trip.contains("select_by = \"successive_halving\""), "{round_trip}");
        assert_eq!(
            parse(&format!("{MINIMAL}[final]\nselect_by = \"successive-halving\"\n")).unwrap().final_training.select_by,
            SelectBy::SuccessiveHalving
        );
        let error = parse(&format!("{MINIMAL}[final]\nselect_by = \"halving\"\n")).unwrap_err().to_string();
        assert!(error.contains("successive_halving"), "{error}");
        let error = parse(&format!("{MINIMAL}[final]\ndrop_path_prob = 1.0\n")).unwrap_err().to_string();
        assert!(error.contains("final.drop_path_prob"), "{error}");
    }

    fn with_sets(text: &str, sets: &[&str]) -> Result<RunConfig, ConfigError> {
        let overrides: Vec<ConfigOverride> = sets.iter().map(|set| set.parse().unwrap()).collect();
        RunConfig::from_toml_with_overrides(text, Path::new("test.toml"), &overrides)
    }

    #[test]
    fn overrides_reach_every_key() {
        let config = with_sets(
            &format!("{MINIMAL}[search]\nepochs = 10\n[split]\ncriterion = \"gm\"\nepochs = [3]\ngroups = [2]\n"),
            &[
                "search.epochs=6",
                "search.weights.lr=0.05",
                "run.name=\"from-cli\"",
                "run.output_dir=/tmp/runs",
                "algorithm.name=gdas",
                "split.epochs=[2,4]",
                "split.groups=[2, 0]",
                "split.repeats=3",
                "space.channels=8",
                "space.nested.deep=[1]",
                "final.select_by=supernet",
                "data.batch_size=16",
            ],
        )
        .unwrap();
        assert_eq!((config.search.epochs, config.search.weights.lr), (6, 0.05));
        assert_eq!((config.run.name.as_str(), config.run.output_dir.as_path()), ("from-cli", Path::new("/tmp/runs")));
        assert_eq!((config.algorithm.name.as_str(), config.space.name.as_str()), ("gdas", "nb201"));
        assert_eq!((config.split.epochs.as_slice(), config.split.groups.as_slice()), (&[2, 4][..], &[2, 0][..]));
        assert_eq!(config.split.config_json()["repeats"], 3);
        assert_eq!(config.space.config_json()["channels"], 8);
        assert_eq!(config.space.config_json()["nested"]["deep"][0], 1);
        assert_eq!(config.final_training.select_by, SelectBy::Supernet);
        assert_eq!(config.data.batch_size, 16);
        assert_eq!(with_sets(MINIMAL, &["search.epochs=3", "search.epochs=4"]).unwrap().search.epochs, 4, "the last one wins");
        let config = with_sets("[algorithm]\nname = \"darts\"\n", &["space.name=nb201"]).unwrap();
        assert_eq!(config.space.name, "nb201", "an override may supply what the file lacks");
    }

    #[test]
    fn a_bad_override_names_its_set() {
        let error = with_sets(MINIMAL, &["search.epochs=3", "search.epochz=3"]).unwrap_err().to_string();
        assert!(error.starts_with("--set search.epochz=3:") && error.contains("unknown field `epochz`"), "{error}");
        let error = with_sets(MINIMAL, &["srch.epochs=3"]).unwrap_err().to_string();
        assert!(error.starts_with("--set srch.epochs=3:") && error.contains("srch"), "{error}");
        let error = with_sets(MINIMAL, &["search.weights.learning_rate=0.1"]).unwrap_err().to_string();
        assert!(error.starts_with("--set search.weights.learning_rate=0.1:") && error.contains("learning_rate"), "{error}");
        let error = with_sets(MINIMAL, &["search.epochs=ten"]).unwrap_err().to_string();
        assert!(error.starts_with("--set search.epochs=\"ten\":") && error.contains("search.epochs") && error.contains("string"), "{error}");
        let error = with_sets(MINIMAL, &["run.seed=-1"]).unwrap_err().to_string();
        assert!(error.starts_with("--set run.seed=-1:") && error.contains("run.seed"), "{error}");
        let error = with_sets(MINIMAL, &["search.weights=0.1"]).unwrap_err().to_string();
        assert!(error.starts_with("--set search.weights=0.1:") && error.contains("expected struct SgdConfig in `search.weights`"), "{error}");
        let error = with_sets(MINIMAL, &["space=3"]).unwrap_err().to_string();
        assert!(error.starts_with("--set space=3:") && error.contains("`space` is a table: set its keys"), "{error}");
        let error = with_sets(MINIMAL, &["search.epochs=0"]).unwrap_err().to_string();
        assert!(error.starts_with("--set search.epochs=0:") && error.contains("at least 1"), "{error}");
        let few_shot = format!("{MINIMAL}[search]\nepochs = 4\n[split]\ncriterion = \"gm\"\nepochs = [3]\ngroups = [2]\n");
        let error = with_sets(&few_shot, &["search.epochs=3"]).unwrap_err().to_string();
        assert!(error.starts_with("test.toml with --set search.epochs=3: `split.epochs`") && error.contains("search.epochs (3)"), "{error}");
        let error = with_sets(&format!("{MINIMAL}[search]\nepochz = 4\n"), &["search.epochs=2"]).unwrap_err().to_string();
        assert!(error.starts_with("test.toml") && error.contains("epochz"), "a mistake in the file is the file's: {error}");
    }

    #[test]
    fn final_training_data_keys_default_to_the_search_batches() {
        let defaults = parse(MINIMAL).unwrap().final_training;
        assert_eq!((defaults.train_on, defaults.batch_size, defaults.cutout), (TrainOn::Train, 0, 0));
        let config =
            parse(&format!("{MINIMAL}[final]\ntrain_on = \"train+valid\"\nselect_by = \"supernet\"\nbatch_size = 96\ncutout = 16\n")).unwrap();
        let section = &config.final_training;
        assert_eq!((section.train_on, section.batch_size, section.cutout), (TrainOn::TrainValid, 96, 16));
        let round_trip = toml::to_string(&config).unwrap();
        assert!(round_trip.contains("train_on = \"train+valid\""), "{round_trip}");
        let error = parse(&format!("{MINIMAL}[final]\ntrain_on = \"all\"\n")).unwrap_err().to_string();
        assert!(error.contains("train+valid"), "{error}");
    }

    #[test]
    fn train_valid_refuses_selection_by_stand_alone_validation_accuracy() {
        for select_by in ["standalone", "successive_halving"] {
            let error = parse(&format!("{MINIMAL}[final]\ntrain_on = \"train+valid\"\nselect_by = \"{select_by}\"\n")).unwrap_err().to_string();
            assert!(
                error.contains("final.train_on")
                    && error.contains(select_by)
                    && error.contains("select_by = \"supernet\"")
                    && error.contains("not held out"),
                "{error}"
            );
        }
        let error = parse(&format!("{MINIMAL}[final]\ntrain_on = \"train+valid\"\n")).unwrap_err().to_string();
        assert!(error.contains("\"standalone\""), "the default selection is refused too: {error}");
        assert!(parse(&format!("{MINIMAL}[final]\ntrain_on = \"train\"\nselect_by = \"successive_halving\"\n")).is_ok());
    }

    #[test]
    fn option_costs_and_label_smoothing_are_checked() {
        let defaults = parse(MINIMAL).unwrap();
        assert_eq!(
            (defaults.search.option_cost, defaults.search.label_smoothing, defaults.final_training.label_smoothing),
            (OptionCostKind::None, 0.0, 0.0)
        );
        let config = parse(&format!(
            "{MINIMAL}[search]\noption_cost = \"latency\"\nlatency_table = \"lut.json\"\nlabel_smoothing = 0.1\n[final]\nlabel_smoothing = 0.1\n"
        ))
        .unwrap();
        assert_eq!((config.search.option_cost, config.search.latency_table.as_deref()), (OptionCostKind::Latency, Some(Path::new("lut.json"))));
        assert_eq!((config.search.label_smoothing, config.final_training.label_smoothing), (0.1, 0.1));
        assert_eq!(parse(&format!("{MINIMAL}[search]\noption_cost = \"flops\"\n")).unwrap().search.option_cost, OptionCostKind::Flops);
        let error = parse(&format!("{MINIMAL}[search]\noption_cost = \"latency\"\n")).unwrap_err().to_string();
        assert!(error.contains("search.latency_table") && error.contains("bench latency"), "{error}");
        let error = parse(&format!("{MINIMAL}[search]\nlatency_table = \"lut.json\"\n")).unwrap_err().to_string();
        assert!(error.contains("lut.json") && error.contains("option_cost"), "{error}");
        let error = parse(&format!("{MINIMAL}[search]\noption_cost = \"macs\"\n")).unwrap_err().to_string();
        assert!(error.contains("flops") && error.contains("latency"), "{error}");
        let error = parse(&format!("{MINIMAL}[final]\nlabel_smoothing = 1.0\n")).unwrap_err().to_string();
        assert!(error.contains("final.label_smoothing"), "{error}");
    }

    #[test]
    fn bad_values_name_the_field() {
        let error = parse(&format!("{MINIMAL}[search.weights]\nlr = -1.0\n")).unwrap_err().to_string();
        assert!(error.contains("search.weights.lr"), "{error}");
        let error = parse(&format!("[run]\ndevice = \"tpu\"\n{MINIMAL}")).unwrap_err().to_string();
        assert!(error.contains("run.device") && error.contains("tpu"), "{error}");
        let error = parse("[algorithm]\nname = \"darts\"\n").unwrap_err().to_string();
        assert!(error.contains("space"), "{error}");
    }
}
