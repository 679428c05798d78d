//! `metrics.jsonl` (and the TensorBoard files that mirror it) and progress bars: what a run
//! tells while it works.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
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
