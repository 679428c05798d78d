//! What can go wrong while reading, splitting and serving data.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    /// The file exists but is not what its name promises: truncated, corrupt, wrong format.
    #[error("{path}: {problem}")]
    BadFile { path: PathBuf, problem: String },

    #[error("{path}: no {what} found there; {hint}")]
    MissingFiles { path: PathBuf, what: String, hint: String },

    /// A `[data]` setting that cannot work; `field` is its full name, e.g. `data.batch_size`.
    #[error("{field}: {problem}")]
    Config { field: &'static str, problem: String },

    #[error("data set `{name}`: {problem}")]
    BadDataset { name: String, problem: String },

    /// More of a split's images failed to decode than `data.max_unreadable_fraction` allows.
    #[error(
        "{count} of the {total} images of `{name}` cannot be read, more than data.max_unreadable_fraction = {limit} allows; fix or remove them (`splitnas data check DIR` lists every one), or raise the limit:\n  {}",
        list.join("\n  ")
    )]
    TooManyUnreadableImages { name: String, count: usize, total: usize, limit: f64, list: Vec<String> },

    #[error("libtorch failed while {doing}: {source}")]
    Torch { doing: String, source: tch::TchError },
}

impl DataError {
    pub(crate) fn bad_file(path: &Path, problem: impl Into<String>) -> Self {
        DataError::BadFile { path: path.to_path_buf(), problem: problem.into() }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io { path: path.to_path_buf(), source }
    }

    pub(crate) fn config(field: &'static str, problem: impl Into<String>) -> Self {
        DataError::Config { field, problem: problem.into() }
    }

    pub(crate) fn torch(doing: impl Into<String>) -> impl FnOnce(tch::TchError) -> Self {
        let doing = doing.into();
        move |source| DataError::Torch { doing, source }
    }
}
