//! The run directory: the one place that knows its file names, and typed reads and writes of
//! every record in it.
//!
//! ```text
//! runs/<name>/
//!   config.toml            the configuration as resolved (defaults and plugin defaults filled in)
//!   metrics.jsonl          one JSON object per epoch and event
//!   tree.json              the split tree, also the resume record
//!   checkpoints/node-N.*   supernet, α, optimizer state (safetensors) + scalar state (JSON)
//!   classes.json           the class names in label order, for image folders (label k is the
//!                          k-th sorted class folder)
//!   provenance.json        which plugin builds (file, version, SHA-256) made the run, and the
//!                          command line that started it (its --set overrides)
//!   halving.json           successive-halving rounds, when selection uses them
//!   report.json            the result, machine-readable
//!   report.md              the result, for people
//!   tensorboard/node-N/    TensorBoard event files, when `[run] tensorboard` is on
//!   tree.svg               the split tree, the selected leaf marked
//!   curves.svg             search loss and supernet accuracy per node over the epochs (and
//!                          stand-alone training when logged)
//!   alpha.svg              the selected leaf's lineage's architecture weights over the epochs
//!                          (when the algorithm has them)
//!   architecture.svg       the selected architecture as a cell graph (when the space's choice
//!                          points are named as cell edges, `[cell ]to<-from`)
//!   run.lock               held while a process works in the directory
//! ```

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use splitnas_engine::checkpoint::{read_json, read_tensors, write_atomic, write_json, write_tensors, CheckpointError};
use splitnas_engine::sub_supernet::{SubSupernet, SubSupernetState};
use tch::Tensor;

use crate::cell_graph::cell_graph_svg;
use crate::charts::{alpha_svg, curves_svg};
use crate::config::RunConfig;
use crate::metrics::read_events;
use crate::provenance::Provenance;
use crate::report::{HalvingRound, Report};
use crate::tree::SplitTree;

const CONFIG: &str = "config.toml";
const METRICS: &str = "metrics.jsonl";
const TREE: &str = "tree.json";
const CHECKPOINTS: &str = "checkpoints";
const HALVING: &str = "halving.json";
const PROVENANCE: &str = "provenance.json";
const CLASSES: &str = "classes.json";
const REPORT_JSON: &str = "report.json";
const REPORT_MARKDOWN: &str = "report.md";
const LOCK: &str = "run.lock";
/// The selected architecture's trained network, as its reference implementation names it.
const MODEL: &str = "model";
/// Every leaf's trained network, where `[final] save_leaves` asks for them.
const MODELS: &str = "models";
/// Present in the directory of `splitnas train`: the architecture it trains.
const TRAINING: &str = "training.json";
const TENSORBOARD: &str = "tensorboard";
const TREE_SVG: &str = "tree.svg";
const CURVES_SVG: &str = "curves.svg";
const ALPHA_SVG: &str = "alpha.svg";
const ARCHITECTURE_SVG: &str = "architecture.svg";

#[derive(Debug, thiserror::Error)]
pub enum RunDirectoryError {
    #[error("run directory {0} already exists: choose another run.name, pass --overwrite, or `splitnas resume` it")]
    Exists(PathBuf),
    #[error("{0} is not a run directory (no {CONFIG})")]
    NotARun(PathBuf),
    #[error("the run in {0} has not finished (no {REPORT_JSON}); finish it with `splitnas resume {0}`")]
    Unfinished(PathBuf),
    #[error("run directory {directory} is in use by process {holder}: wait for it to finish or stop it first")]
    InUse { directory: PathBuf, holder: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Toml { path: PathBuf, source: toml::ser::Error },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("node {node}: {message}")]
    Node { node: usize, message: String },
}

/// A node's checkpoint besides its tensors: where its training is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeCheckpoint {
    /// The next epoch to train (epochs before it are done).
    pub epoch: usize,
    pub state: SubSupernetState,
}

/// What `splitnas train` trains, recorded in its directory so that `resume` knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRecord {
    /// The genotype as the user gave it.
    pub genotype: String,
}

/// A run directory (which may not exist yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDirectory {
    root: PathBuf,
}

/// Held while a process works in a run directory; released when dropped (or when the
/// process dies: the operating system drops the lock with the file handle).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunDirectory {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunDirectory { root: root.into() }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join(CONFIG)
    }
    pub fn metrics_path(&self) -> PathBuf {
        self.root.join(METRICS)
    }
    pub fn tree_path(&self) -> PathBuf {
        self.root.join(TREE)
    }
    pub fn report_path(&self) -> PathBuf {
        self.root.join(REPORT_JSON)
    }
    pub fn classes_path(&self) -> PathBuf {
        self.root.join(CLASSES)
    }

    /// Records the class names of the run's data (index = label), where the data names them.
    pub fn write_class_names(&self, class_names: Option<&[String]>) -> Result<(), RunDirectoryError> {
        match class_names {
            Some(names) => Ok(write_json(&self.classes_path(), &names)?),
            None => Ok(()),
        }
    }
    pub fn report_markdown_path(&self) -> PathBuf {
        self.root.join(REPORT_MARKDOWN)
    }
    /// TensorBoard's log directory of the run (`tensorboard --logdir` it).
    pub fn tensorboard_path(&self) -> PathBuf {
        self.root.join(TENSORBOARD)
    }
    pub fn tree_svg_path(&self) -> PathBuf {
        self.root.join(TREE_SVG)
    }
    pub fn curves_svg_path(&self) -> PathBuf {
        self.root.join(CURVES_SVG)
    }
    pub fn alpha_svg_path(&self) -> PathBuf {
        self.root.join(ALPHA_SVG)
    }
    pub fn architecture_svg_path(&self) -> PathBuf {
        self.root.join(ARCHITECTURE_SVG)
    }
    fn halving_path(&self) -> PathBuf {
        self.root.join(HALVING)
    }
    /// A node's tensors (safetensors) and scalar state (JSON).
    pub fn checkpoint_paths(&self, node: usize) -> (PathBuf, PathBuf) {
        let directory = self.root.join(CHECKPOINTS);
        (directory.join(format!("node-{node}.safetensors")), directory.join(format!("node-{node}.json")))
    }

    /// The checkpoint of a leaf's stand-alone training of `epochs` epochs (its trained network
    /// once finished): one safetensors file, progress included, written atomically.
    pub fn standalone_checkpoint_path(&self, node: usize, epochs: usize) -> PathBuf {
        self.root.join(CHECKPOINTS).join(format!("standalone-node-{node}-epochs-{epochs}.safetensors"))
    }
    /// Where a trained network is exported: the selected one (`model.safetensors` and
    /// `model.json`), or with `node`, a leaf's (`models/node-N.*`).
    pub fn model_paths(&self, node: Option<usize>) -> (PathBuf, PathBuf) {
        let stem = match node {
            None => self.root.join(MODEL),
            Some(node) => self.root.join(MODELS).join(format!("node-{node}")),
        };
        (stem.with_extension("safetensors"), stem.with_extension("json"))
    }
    /// Where `splitnas extract` exports a leaf's subnet with the supernet's weights
    /// (`models/node-N-from-supernet.*`).
    pub fn extracted_model_paths(&self, node: usize) -> (PathBuf, PathBuf) {
        let stem = self.root.join(MODELS).join(format!("node-{node}-from-supernet"));
        (stem.with_extension("safetensors"), stem.with_extension("json"))
    }
    /// `path` relative to the run directory (as reports name files, so that a run directory
    /// can move), or whole where it lies elsewhere.
    pub fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.root).unwrap_or(path).display().to_string()
    }
    /// `splitnas train`'s record of what it trains; absent in a search's directory.
    pub fn read_training(&self) -> Result<Option<TrainingRecord>, RunDirectoryError> {
        let path = self.root.join(TRAINING);
        if !path.exists() {
            return Ok(None);
        }
        Ok(Some(read_json(&path)?))
    }
    pub fn write_training(&self, record: &TrainingRecord) -> Result<(), RunDirectoryError> {
        Ok(write_json(&self.root.join(TRAINING), record)?)
    }

    pub fn exists(&self) -> bool {
        self.root.exists()
    }
    pub fn is_run(&self) -> bool {
        self.config_path().exists()
    }
    pub fn is_finished(&self) -> bool {
        self.report_path().exists()
    }
    pub fn has_tree(&self) -> bool {
        self.tree_path().exists()
    }

    /// Creates the directory for a new run (removing an old one only when `overwrite`), takes
    /// its lock, and records the resolved configuration.
    pub fn create(&self, config: &RunConfig, overwrite: bool) -> Result<RunLock, RunDirectoryError> {
        if self.exists() {
            if !overwrite {
                return Err(RunDirectoryError::Exists(self.root.clone()));
            }
            // Never remove a directory another process is working in.
            drop(self.lock()?);
            std::fs::remove_dir_all(&self.root).map_err(|source| RunDirectoryError::Io { path: self.root.clone(), source })?;
        }
        let checkpoints = self.root.join(CHECKPOINTS);
        std::fs::create_dir_all(&checkpoints).map_err(|source| RunDirectoryError::Io { path: checkpoints, source })?;
        let lock = self.lock()?;
        let text = toml::to_string_pretty(config).map_err(|source| RunDirectoryError::Toml { path: self.config_path(), source })?;
        write_atomic(&self.config_path(), text.as_bytes())?;
        Ok(lock)
    }

    /// An existing run, for `resume`, `tree`, `bench ranking`, ...
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, RunDirectoryError> {
        let directory = RunDirectory::new(root);
        if !directory.is_run() {
            return Err(RunDirectoryError::NotARun(directory.root));
        }
        Ok(directory)
    }

    /// Takes the directory's lock, or names the process that holds it.
    pub fn lock(&self) -> Result<RunLock, RunDirectoryError> {
        let path = self.root.join(LOCK);
        let io = |source| RunDirectoryError::Io { path: path.clone(), source };
        let mut file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = if holder.trim().is_empty() { "unknown".to_string() } else { holder.trim().to_string() };
                return Err(RunDirectoryError::InUse { directory: self.root.clone(), holder });
            }
            Err(std::fs::TryLockError::Error(source)) => return Err(io(source)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(RunLock { _file: file })
    }

    pub fn read_config(&self) -> Result<RunConfig, RunDirectoryError> {
        Ok(RunConfig::from_file(&self.config_path())?)
    }

    pub fn read_tree(&self) -> Result<SplitTree, RunDirectoryError> {
        Ok(read_json(&self.tree_path())?)
    }
    pub fn write_tree(&self, tree: &SplitTree) -> Result<(), RunDirectoryError> {
        Ok(write_json(&self.tree_path(), tree)?)
    }

    pub fn read_report(&self) -> Result<Report, RunDirectoryError> {
        if !self.is_finished() {
            return Err(RunDirectoryError::Unfinished(self.root.clone()));
        }
        Ok(read_json(&self.report_path())?)
    }
    /// Writes `report.json` and, for people, `report.md`.
    pub fn write_report(&self, report: &Report, markdown: &str) -> Result<(), RunDirectoryError> {
        write_json(&self.report_path(), report)?;
        Ok(write_atomic(&self.report_markdown_path(), markdown.as_bytes())?)
    }

    /// The drawings of a finished run, from its tree, its report and `metrics.jsonl`:
    /// `tree.svg`, `curves.svg`, and `alpha.svg` and `architecture.svg` where the algorithm
    /// has α and the space's choice points are cell edges (a stale one is removed).
    pub fn write_drawings(&self, tree: &SplitTree, report: &Report) -> Result<(), RunDirectoryError> {
        let events = read_events(&self.metrics_path())
            .map_err(|error| RunDirectoryError::Io { path: self.metrics_path(), source: std::io::Error::other(format!("{error:#}")) })?;
        let selected = report.selected;
        let choices = &report.selected_result.choices;
        write_atomic(&self.tree_svg_path(), tree.render_svg(Some(selected)).as_bytes())?;
        write_atomic(&self.curves_svg_path(), curves_svg(tree, Some(selected), &events).as_bytes())?;
        let title = format!("Selected architecture (node {selected})");
        for (path, drawing) in [
            (self.alpha_svg_path(), alpha_svg(tree, selected, choices, &events)),
            (self.architecture_svg_path(), cell_graph_svg(&tree.choice_points, &tree.option_names, choices, &title)),
        ] {
            match drawing {
                Some(svg) => write_atomic(&path, svg.as_bytes())?,
                None if path.exists() => std::fs::remove_file(&path).map_err(|source| RunDirectoryError::Io { path: path.clone(), source })?,
                None => {}
            }
        }
        Ok(())
    }

    /// The plugin builds (and command line) the run recorded; `None` for runs made before
    /// provenance was kept.
    pub fn read_provenance(&self) -> Result<Option<Provenance>, RunDirectoryError> {
        let path = self.root.join(PROVENANCE);
        if !path.exists() {
            return Ok(None);
        }
        Ok(Some(read_json(&path)?))
    }
    pub fn write_provenance(&self, provenance: &Provenance) -> Result<(), RunDirectoryError> {
        Ok(write_json(&self.root.join(PROVENANCE), provenance)?)
    }

    pub fn read_halving(&self) -> Result<Vec<HalvingRound>, RunDirectoryError> {
        if !self.halving_path().exists() {
            return Ok(Vec::new());
        }
        Ok(read_json(&self.halving_path())?)
    }
    pub fn write_halving(&self, rounds: &[HalvingRound]) -> Result<(), RunDirectoryError> {
        Ok(write_json(&self.halving_path(), &rounds)?)
    }

    pub fn write_checkpoint(&self, node: usize, tensors: &[(String, Tensor)], checkpoint: &NodeCheckpoint) -> Result<(), RunDirectoryError> {
        let (tensors_path, json_path) = self.checkpoint_paths(node);
        write_tensors(&tensors_path, tensors)?;
        Ok(write_json(&json_path, checkpoint)?)
    }
    /// A sub-supernet's checkpoint: its state tensors and where its training is (`epoch`, the
    /// next epoch to train).
    pub fn save_node(&self, node: usize, sub: &SubSupernet, epoch: usize) -> Result<(), RunDirectoryError> {
        let node_error = |error: splitnas_engine::error::SearchError| RunDirectoryError::Node { node, message: error.to_string() };
        let state = sub.state().map_err(node_error)?;
        self.write_checkpoint(node, &sub.state_tensors().map_err(node_error)?, &NodeCheckpoint { epoch, state })
    }
    pub fn read_checkpoint(&self, node: usize) -> Result<(Vec<(String, Tensor)>, NodeCheckpoint), RunDirectoryError> {
        let (tensors_path, json_path) = self.checkpoint_paths(node);
        let checkpoint = read_json(&json_path)?;
        Ok((read_tensors(&tensors_path)?, checkpoint))
    }
    /// A node's saved tensors alone (`bench ranking` evaluates leaves from them).
    pub fn read_checkpoint_tensors(&self, node: usize) -> Result<Vec<(String, Tensor)>, RunDirectoryError> {
        Ok(read_tensors(&self.checkpoint_paths(node).0)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDirectory::new(dir.path());
        let held = run.lock().unwrap();
        let error = run.lock().unwrap_err().to_string();
        assert!(error.contains(&std::process::id().to_string()) && error.contains("in use"), "{error}");
        drop(held);
        run.lock().expect("free again once dropped");
    }

    #[test]
    fn an_existing_directory_is_kept_without_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDirectory::new(dir.path().join("a"));
        let config = RunConfig::from_toml("[space]\nname = \"s\"\n[algorithm]\nname = \"a\"\n", Path::new("t.toml")).unwrap();
        drop(run.create(&config, false).unwrap());
        assert!(matches!(run.create(&config, false), Err(RunDirectoryError::Exists(_))));
        let held = run.lock().unwrap();
        assert!(matches!(run.create(&config, true), Err(RunDirectoryError::InUse { .. })), "an overwrite never removes a run in use");
        drop(held);
        drop(run.create(&config, true).unwrap());
        assert!(run.read_config().is_ok());
    }
}
