//! `metrics.jsonl` (and the TensorBoard files that mirror it) and progress bars: what a run
//! tells while it works, and the events the drawings read back from it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use serde_json::Value;

use crate::config::RunConfig;
use crate::directory::RunDirectory;
use crate::tensorboard::TensorBoardLog;

/// Appends one JSON line per event to `metrics.jsonl`, and hands each event to the run's
/// TensorBoard files when it keeps them: every path that logs an event logs both.
pub(crate) struct MetricsLog {
    file: std::fs::File,
    tensorboard: Option<TensorBoardLog>,
}

impl MetricsLog {
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Ok(MetricsLog { file, tensorboard: None })
    }

    /// The log of a run: its metrics.jsonl, and TensorBoard event files under
    /// `tensorboard/` when `[run] tensorboard` is on.
    pub fn for_run(directory: &RunDirectory, config: &RunConfig) -> Result<Self> {
        let mut log = Self::open(&directory.metrics_path())?;
        if config.run.tensorboard {
            log.tensorboard = Some(TensorBoardLog::new(directory.tensorboard_path()));
        }
        Ok(log)
    }

    pub fn write(&mut self, value: Value) -> Result<()> {
        // One write call per line: `writeln!(file, "{value}")` issues a write per JSON token,
        // so a run killed mid-line left half a line that the resumed run's next line joined.
        let line = format!("{value}\n");
        self.file.write_all(line.as_bytes())?;
        self.file.flush()?;
        if let Some(tensorboard) = &mut self.tensorboard {
            tensorboard.record(&value)?;
        }
        Ok(())
    }
}

/// A progress bar on stderr, or a hidden one when `quiet`.
pub fn progress_bar(length: u64, quiet: bool, prefix: String) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} ETA {eta} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix);
    bar
}

/// α as logged: tensor name → its values, flat and row-major (`[choice points × options]`
/// for the shipped algorithms). A NaN is logged as `null`.
pub type LoggedAlphas = BTreeMap<String, Vec<Option<f64>>>;

/// `{"event": "init", ...}`: a node's sub-supernet as it starts (the root's at epoch 0, a
/// child's at its parent's split epoch).
#[derive(Debug, Clone, Deserialize)]
pub struct InitEvent {
    pub node: usize,
    /// The epoch it starts at; absent for the root.
    #[serde(default)]
    pub epoch: Option<usize>,
    #[serde(default)]
    pub alphas: LoggedAlphas,
}

/// `{"event": "epoch", ...}`: one epoch of a node's search training.
#[derive(Debug, Clone, Deserialize)]
pub struct EpochEvent {
    pub node: usize,
    pub epoch: usize,
    #[serde(default)]
    pub lr: Option<f64>,
    #[serde(default)]
    pub train_loss: Option<f64>,
    #[serde(default)]
    pub supernet_valid_accuracy: Option<f64>,
    #[serde(default)]
    pub alphas: LoggedAlphas,
}

/// `{"event": "standalone_epoch", ...}`: one epoch of a stand-alone training (of a leaf's
/// architecture; `node` is null when it belongs to none).
#[derive(Debug, Clone, Deserialize)]
pub struct StandaloneEpochEvent {
    #[serde(default)]
    pub node: Option<usize>,
    pub epoch: usize,
    #[serde(default)]
    pub lr: Option<f64>,
    #[serde(default)]
    pub train_loss: Option<f64>,
    #[serde(default)]
    pub train_accuracy: Option<f64>,
}

/// The events of `metrics.jsonl` that the drawings read.
#[derive(Debug, Clone)]
pub enum MetricsEvent {
    Init(InitEvent),
    Epoch(EpochEvent),
    StandaloneEpoch(StandaloneEpochEvent),
}

/// Reads `metrics.jsonl` leniently: other events, events missing a field the drawings need,
/// and lines that do not parse (a run killed mid-line) are skipped.
pub fn parse_events(text: &str) -> Vec<MetricsEvent> {
    text.lines()
        .filter_map(|line| {
            let value: Value = serde_json::from_str(line).ok()?;
            match value.get("event")?.as_str()? {
                "init" => serde_json::from_value(value).ok().map(MetricsEvent::Init),
                "epoch" => serde_json::from_value(value).ok().map(MetricsEvent::Epoch),
                "standalone_epoch" => serde_json::from_value(value).ok().map(MetricsEvent::StandaloneEpoch),
                _ => None,
            }
        })
        .collect()
}

/// [`parse_events`] of a file; a missing file has no events.
pub fn read_events(path: &Path) -> Result<Vec<MetricsEvent>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(parse_events(&text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_leniently() {
        let text = concat!(
            "{\"event\":\"init\",\"node\":0,\"alphas\":{\"alpha\":[0.5,null]}}\n",
            "{\"event\":\"epoch\",\"node\":0,\"epoch\":0,\"lr\":0.1,\"train_loss\":2.0,\"supernet_valid_accuracy\":0.3,\"future\":1}\n",
            "{\"event\":\"split\",\"node\":0}\n",
            "{\"event\":\"standalone_epoch\",\"node\":null,\"epoch\":1,\"lr\":0.1,\"train_loss\":1.0,\"train_accuracy\":0.5}\n",
            "{\"event\":\"epoch\",\"node\":1}\n",
            "{\"event\":\"epo",
        );
        let events = parse_events(text);
        assert_eq!(events.len(), 3, "{events:?}");
        assert!(matches!(&events[0], MetricsEvent::Init(i) if i.node == 0 && i.epoch.is_none() && i.alphas["alpha"] == [Some(0.5), None]));
        assert!(matches!(&events[1], MetricsEvent::Epoch(e) if e.train_loss == Some(2.0) && e.alphas.is_empty()));
        assert!(matches!(&events[2], MetricsEvent::StandaloneEpoch(s) if s.node.is_none() && s.train_accuracy == Some(0.5)));
    }
}
