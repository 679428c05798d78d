//! Per-option costs a run searches under (ABI 1.3): FLOPs counted by the space, or latencies
//! from a lookup table measured on the user's device by `splitnas bench latency`. The host
//! offers them to search algorithms through `HostContext::option_costs`.
//!
//! The table's file format lives here, so that the command writing it (crates/bench) and the
//! run reading it (crates/run) share one definition and one check against the space.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use abi_stable::std_types::RVec;
use serde::{Deserialize, Serialize};
use splitnas_plugin_api::{OptionCosts, SearchSpaceBox, SpaceInfo};

/// The metric names of [`OptionCosts`].
pub mod metric {
    pub const FLOPS: &str = "flops";
    pub const LATENCY_MS: &str = "latency_ms";
}

/// The version of the latency table's format; a table of another version is refused.
pub const LATENCY_TABLE_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CostError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a latency table: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}; measure a table for this space with `splitnas bench latency --space {space} --output FILE` (with the run's space settings)")]
    Mismatch { path: PathBuf, space: String, message: String },
    #[error("space `{space}` cannot count its options' FLOPs: {message}")]
    Flops { space: String, message: String },
    #[error(transparent)]
    Write(#[from] crate::checkpoint::CheckpointError),
}

/// The machine a table was measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    pub hostname: String,
    pub os: String,
    pub arch: String,
    /// The CPU model (from `/proc/cpuinfo`) or the CUDA device's name.
    pub processor: String,
    /// libtorch's CPU threads while timing.
    pub threads: i32,
    pub libtorch: String,
}

/// One option's median time, with the places it was timed at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionLatency {
    pub name: String,
    /// `Σ occurrences · median` over the option's places, in milliseconds (0: computes nothing).
    pub median_ms: f64,
    /// Each place: its input shape `[C, H, W]`, how often it occurs, its own median.
    pub places: Vec<PlaceLatency>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceLatency {
    pub input_shape: Vec<i64>,
    pub occurrences: u32,
    pub median_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChoicePointLatency {
    pub name: String,
    pub options: Vec<OptionLatency>,
}

/// One part of the space's stand-alone networks (ABI 1.5 `network_parts`) and its median time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartLatency {
    pub key: String,
    pub input_shape: Vec<i64>,
    pub median_ms: f64,
}

/// A latency lookup table: what `splitnas bench latency` writes and `[search] latency_table`
/// reads. A space whose costs add up per option has `choice_points` (ProxylessNAS); one whose
/// costs do not has `parts`, and a network's latency is the sum over the parts it runs (OFA).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyTable {
    pub format: u32,
    /// The space's name.
    pub space: String,
    /// The space's resolved configuration (its keys and the data's shape), as measured.
    pub settings: serde_json::Value,
    /// The device timed on (`cpu`, `cuda:0`).
    pub device: String,
    pub batch_size: i64,
    pub warmup: usize,
    pub repeats: usize,
    pub machine: Machine,
    /// Per option (empty for a space that times only parts).
    #[serde(default)]
    pub choice_points: Vec<ChoicePointLatency>,
    /// Per part of the stand-alone networks (absent from tables of spaces without parts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartLatency>,
}

impl LatencyTable {
    pub fn write(&self, path: &Path) -> Result<(), CostError> {
        Ok(crate::checkpoint::write_json(path, self)?)
    }

    pub fn read(path: &Path) -> Result<Self, CostError> {
        let text = std::fs::read_to_string(path).map_err(|source| CostError::Read { path: path.to_path_buf(), source })?;
        let table: LatencyTable =
            serde_json::from_str(&text).map_err(|error| CostError::Parse { path: path.to_path_buf(), message: error.to_string() })?;
        if table.format != LATENCY_TABLE_FORMAT {
            return Err(CostError::Parse {
                path: path.to_path_buf(),
                message: format!("format {} (this splitnas reads format {LATENCY_TABLE_FORMAT})", table.format),
            });
        }
        Ok(table)
    }

    fn check_space(&self, info: &SpaceInfo, path: &Path) -> Result<(), CostError> {
        if self.space != info.name.as_str() {
            return Err(CostError::Mismatch {
                path: path.to_path_buf(),
                space: info.name.to_string(),
                message: format!("the table was measured for the space `{}`, the run searches `{}`", self.space, info.name),
            });
        }
        Ok(())
    }

    /// The table's per-part latencies, for whole-network latencies of the space `info`
    /// describes; `None` when the table has no parts.
    pub fn part_latencies(&self, info: &SpaceInfo, path: &Path) -> Result<Option<PartLatencies>, CostError> {
        self.check_space(info, path)?;
        if self.parts.is_empty() {
            return Ok(None);
        }
        let mut medians = HashMap::with_capacity(self.parts.len());
        for part in &self.parts {
            if !(part.median_ms.is_finite() && part.median_ms >= 0.0) {
                return Err(CostError::Mismatch {
                    path: path.to_path_buf(),
                    space: info.name.to_string(),
                    message: format!("part `{}` has the latency {}", part.key, part.median_ms),
                });
            }
            medians.insert(part.key.clone(), part.median_ms);
        }
        Ok(Some(PartLatencies { path: path.to_path_buf(), space: self.space.clone(), medians }))
    }

    /// The table's latencies as option costs of `info`, refused unless the table has exactly
    /// the space's choice points and options, by name and in order.
    pub fn option_costs(&self, info: &SpaceInfo, path: &Path) -> Result<OptionCosts, CostError> {
        let mismatch = |message: String| CostError::Mismatch { path: path.to_path_buf(), space: info.name.to_string(), message };
        self.check_space(info, path)?;
        if self.choice_points.len() != info.choice_points.len() {
            return Err(mismatch(format!("the table has {} choice points, the space {}", self.choice_points.len(), info.choice_points.len())));
        }
        let mut values = RVec::new();
        for (point, (measured, expected)) in self.choice_points.iter().zip(info.choice_points.iter()).enumerate() {
            if measured.name != expected.name.as_str() {
                return Err(mismatch(format!("choice point {point} is `{}` in the table but `{}` in the space", measured.name, expected.name)));
            }
            let measured_names: Vec<&str> = measured.options.iter().map(|option| option.name.as_str()).collect();
            let expected_names: Vec<&str> = expected.options.iter().map(|option| option.name.as_str()).collect();
            if measured_names != expected_names {
                return Err(mismatch(format!(
                    "choice point `{}` has the options {measured_names:?} in the table but {expected_names:?} in the space",
                    expected.name
                )));
            }
            if let Some(bad) = measured.options.iter().find(|option| !(option.median_ms.is_finite() && option.median_ms >= 0.0)) {
                return Err(mismatch(format!("option `{}` of `{}` has the latency {}", bad.name, expected.name, bad.median_ms)));
            }
            values.push(measured.options.iter().map(|option| option.median_ms).collect());
        }
        Ok(OptionCosts { metric: metric::LATENCY_MS.into(), values })
    }
}

/// What a run searches under (`[search] option_cost`): per-option costs offered to
/// algorithms, and whole-network latencies from a table's parts (ABI 1.5).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchCosts {
    pub options: Option<OptionCosts>,
    pub network_latency: Option<PartLatencies>,
}

/// Whole-network latencies from a table's parts: what `HostContext::network_latency_ms` sums.
#[derive(Debug, Clone, PartialEq)]
pub struct PartLatencies {
    /// The table they were read from (named in errors).
    pub path: PathBuf,
    pub space: String,
    pub medians: HashMap<String, f64>,
}

impl PartLatencies {
    /// The sum of the medians of `parts` (one key per part run), refused when the table lacks
    /// one of them (it was measured under other space settings).
    pub fn network_latency_ms<'k>(&self, parts: impl IntoIterator<Item = &'k str>) -> Result<f64, CostError> {
        let mut total = 0.0;
        for key in parts {
            total += self.medians.get(key).ok_or_else(|| CostError::Mismatch {
                path: self.path.clone(),
                space: self.space.clone(),
                message: format!("the table has no part `{key}` (it was measured under other space settings or data shape)"),
            })?;
        }
        Ok(total)
    }
}

/// The space's per-option FLOPs as option costs, checked against its choice points.
pub fn flops_costs(space: &SearchSpaceBox, info: &SpaceInfo) -> Result<OptionCosts, CostError> {
    let failure = |message: String| CostError::Flops { space: info.name.to_string(), message };
    let values = space.option_flops().into_result().map_err(|error| failure(error.to_string()))?;
    if values.len() != info.choice_points.len() {
        return Err(failure(format!("it gave {} rows for {} choice points", values.len(), info.choice_points.len())));
    }
    for (row, point) in values.iter().zip(info.choice_points.iter()) {
        if row.len() != point.options.len() || row.iter().any(|value| !(value.is_finite() && *value >= 0.0)) {
            return Err(failure(format!("choice point `{}`: {:?} is not one finite cost >= 0 per option", point.name, row.as_slice())));
        }
    }
    Ok(OptionCosts { metric: metric::FLOPS.into(), values })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_latencies_sum_the_parts_run_and_name_a_missing_part() {
        let medians = HashMap::from([("stem".to_string(), 0.5), ("block k3".to_string(), 1.25), ("head".to_string(), 0.25)]);
        let table = PartLatencies { path: PathBuf::from("lut.json"), space: "ofa".to_string(), medians };
        // A part run twice counts twice.
        assert_eq!(table.network_latency_ms(["stem", "block k3", "block k3", "head"]).unwrap(), 3.25);
        let error = table.network_latency_ms(["stem", "block k7"]).unwrap_err().to_string();
        assert!(error.contains("lut.json") && error.contains("`block k7`") && error.contains("bench latency --space ofa"), "{error}");
    }
}
