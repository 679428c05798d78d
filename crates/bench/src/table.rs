//! Ground-truth tables: the stand-alone accuracy of architectures, keyed by genotype string.
//!
//! Two interchangeable encodings, chosen by file extension:
//!
//! - **JSON** (`.json`), the complete record:
//!   `{"format": "splitnas-ground-truth/1", "space": "nb201", "metric": "...",
//!     "protocol": {...}, "command": "...", "architectures": [{"genotype": "...",
//!     "accuracy": [0.85, 0.86], "seeds": [0, 1], "valid_accuracy": [...],
//!     "parameters": 123, "flops": 456, "seconds": [8.1, 8.3]}, ...]}`.
//!   Only `format`, `architectures[].genotype` and `architectures[].accuracy` are required.
//! - **CSV** (`.csv`), for spreadsheets and other tools: a header row naming the columns
//!   `genotype` (required), `accuracy` (the mean) and/or `accuracy_seed_<N>` (one per seed),
//!   and optionally `valid_accuracy`, `parameters`, `flops`, `seconds`. Where per-seed
//!   columns exist they are the accuracies; otherwise `accuracy` is.
//!
//! Accuracies are fractions in [0, 1] (not percent), one per training seed.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use splitnas_engine::checkpoint::write_atomic;

/// The `format` tag of the JSON encoding.
pub(crate) const TABLE_FORMAT: &str = "splitnas-ground-truth/1";

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("cannot read the ground-truth table {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a ground-truth table: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
}

/// One architecture of a table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableEntry {
    /// The space's genotype string (NB201: `|nor_conv_3x3~0|+|...|`).
    pub genotype: String,
    /// Accuracy per training seed, in [0, 1].
    pub accuracy: Vec<f64>,
    /// The seeds behind `accuracy`, where known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<u64>,
    /// Validation accuracy per seed, where the protocol measured it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub valid_accuracy: Vec<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flops: Option<u64>,
    /// Training time per seed, in seconds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seconds: Vec<f64>,
}

impl TableEntry {
    /// The mean over seeds: the value rankings compare with.
    pub fn mean_accuracy(&self) -> f64 {
        mean(&self.accuracy)
    }
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// A table of architectures and their accuracies.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroundTruthTable {
    pub format: String,
    /// The search space the genotypes belong to, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space: Option<String>,
    /// What the accuracies measure, in words.
    #[serde(default)]
    pub metric: String,
    /// How the accuracies were produced (for tables made by `splitnas bench ground-truth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<serde_json::Value>,
    /// The command that produced the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    pub architectures: Vec<TableEntry>,
}

impl GroundTruthTable {
    pub fn new(space: Option<String>, metric: impl Into<String>, architectures: Vec<TableEntry>) -> Self {
        GroundTruthTable { format: TABLE_FORMAT.to_string(), space, metric: metric.into(), protocol: None, command: None, architectures }
    }

    /// Reads a `.json` or `.csv` table and checks it.
    pub fn read(path: &Path) -> Result<Self, TableError> {
        let text = std::fs::read_to_string(path).map_err(|source| TableError::Read { path: path.to_path_buf(), source })?;
        let invalid = |message: String| TableError::Invalid { path: path.to_path_buf(), message };
        let table = match extension(path).as_str() {
            "json" => {
                let table: GroundTruthTable = serde_json::from_str(&text).map_err(|e| invalid(format!("{e}")))?;
                if table.format != TABLE_FORMAT {
                    return Err(invalid(format!("its format is `{}`, this splitnas reads `{TABLE_FORMAT}`", table.format)));
                }
                table
            }
            "csv" => parse_csv(&text, path).map_err(invalid)?,
            other => return Err(invalid(format!("unknown extension `.{other}`; use .json or .csv"))),
        };
        table.validate().map_err(invalid)?;
        Ok(table)
    }

    /// Every architecture has a genotype and at least one accuracy in [0, 1]; no duplicates.
    pub fn validate(&self) -> Result<(), String> {
        if self.architectures.is_empty() {
            return Err("it lists no architectures".to_string());
        }
        let mut seen = HashSet::new();
        for (row, entry) in self.architectures.iter().enumerate() {
            let at = format!("architecture {row} (`{}`)", entry.genotype);
            if entry.genotype.trim().is_empty() {
                return Err(format!("architecture {row} has an empty genotype"));
            }
            if !seen.insert(entry.genotype.as_str()) {
                return Err(format!("{at} is listed twice"));
            }
            if entry.accuracy.is_empty() {
                return Err(format!("{at} has no accuracy"));
            }
            for &value in entry.accuracy.iter().chain(&entry.valid_accuracy) {
                if !value.is_finite() || !(0.0..=1.0).contains(&value) {
                    let hint = if value > 1.0 && value <= 100.0 { " (accuracies are fractions in [0, 1]; this looks like percent)" } else { "" };
                    return Err(format!("{at} has accuracy {value}, outside [0, 1]{hint}"));
                }
            }
            if !entry.seeds.is_empty() && entry.seeds.len() != entry.accuracy.len() {
                return Err(format!("{at} has {} seeds for {} accuracies", entry.seeds.len(), entry.accuracy.len()));
            }
        }
        Ok(())
    }

    /// Writes the table as JSON (`.json`) or CSV (`.csv`), atomically.
    pub fn write(&self, path: &Path) -> Result<(), TableError> {
        let bytes = match extension(path).as_str() {
            "json" => serde_json::to_vec_pretty(self).expect("tables serialize"),
            "csv" => self.to_csv().into_bytes(),
            other => return Err(TableError::Write { path: path.to_path_buf(), message: format!("unknown extension `.{other}`; use .json or .csv") }),
        };
        write_atomic(path, &bytes).map_err(|e| TableError::Write { path: path.to_path_buf(), message: e.to_string() })
    }

    /// The CSV encoding: one row per architecture, per-seed columns for the union of seeds.
    pub fn to_csv(&self) -> String {
        let seeds: Vec<u64> = {
            let mut all: Vec<u64> = self.architectures.iter().flat_map(seeds_of).collect();
            all.sort_unstable();
            all.dedup();
            all
        };
        let mut writer = csv::Writer::from_writer(Vec::new());
        let mut header = vec!["genotype".to_string(), "accuracy".to_string()];
        header.extend(seeds.iter().map(|s| format!("accuracy_seed_{s}")));
        header.extend(["valid_accuracy", "parameters", "flops", "seconds"].map(String::from));
        writer.write_record(&header).expect("in-memory CSV");
        let optional = |value: Option<String>| value.unwrap_or_default();
        for entry in &self.architectures {
            let by_seed: BTreeMap<u64, f64> = seeds_of(entry).into_iter().zip(entry.accuracy.iter().copied()).collect();
            let mut row = vec![entry.genotype.clone(), format!("{}", entry.mean_accuracy())];
            row.extend(seeds.iter().map(|s| optional(by_seed.get(s).map(|v| v.to_string()))));
            row.push(optional((!entry.valid_accuracy.is_empty()).then(|| mean(&entry.valid_accuracy).to_string())));
            row.push(optional(entry.parameters.map(|v| v.to_string())));
            row.push(optional(entry.flops.map(|v| v.to_string())));
            row.push(optional((!entry.seconds.is_empty()).then(|| mean(&entry.seconds).to_string())));
            writer.write_record(&row).expect("in-memory CSV");
        }
        String::from_utf8(writer.into_inner().expect("in-memory CSV")).expect("UTF-8 fields")
    }

    /// The entry of `genotype`, if listed.
    pub fn find(&self, genotype: &str) -> Option<&TableEntry> {
        self.architectures.iter().find(|e| e.genotype == genotype)
    }
}

/// An entry's seeds; `0..n` where the table does not name them.
fn seeds_of(entry: &TableEntry) -> Vec<u64> {
    if entry.seeds.len() == entry.accuracy.len() {
        entry.seeds.clone()
    } else {
        (0..entry.accuracy.len() as u64).collect()
    }
}

fn extension(path: &Path) -> String {
    path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default()
}

fn parse_csv(text: &str, path: &Path) -> Result<GroundTruthTable, String> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| format!("its header row cannot be read: {e}"))?.clone();
    let column = |name: &str| header.iter().position(|h| h == name);
    let genotype = column("genotype").ok_or("its header has no `genotype` column")?;
    let seed_columns: Vec<(u64, usize)> =
        header.iter().enumerate().filter_map(|(i, h)| h.strip_prefix("accuracy_seed_").and_then(|s| s.parse().ok()).map(|s| (s, i))).collect();
    let mean_column = column("accuracy");
    if seed_columns.is_empty() && mean_column.is_none() {
        return Err("its header has neither an `accuracy` column nor `accuracy_seed_<N>` columns".to_string());
    }
    let number = |record: &csv::StringRecord, index: usize, line: usize| -> Result<Option<f64>, String> {
        let cell = record.get(index).unwrap_or("");
        if cell.is_empty() {
            return Ok(None);
        }
        cell.parse::<f64>().map(Some).map_err(|_| format!("line {line}, column `{}`: `{cell}` is not a number", &header[index]))
    };
    let mut architectures = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let line = row + 2;
        let record = record.map_err(|e| format!("line {line}: {e}"))?;
        let mut entry = TableEntry {
            genotype: record.get(genotype).unwrap_or("").to_string(),
            accuracy: Vec::new(),
            seeds: Vec::new(),
            valid_accuracy: Vec::new(),
            parameters: None,
            flops: None,
            seconds: Vec::new(),
        };
        for &(seed, index) in &seed_columns {
            if let Some(value) = number(&record, index, line)? {
                entry.seeds.push(seed);
                entry.accuracy.push(value);
            }
        }
        if entry.accuracy.is_empty() {
            if let Some(index) = mean_column {
                entry.accuracy.extend(number(&record, index, line)?);
            }
        }
        if let Some(index) = column("valid_accuracy") {
            entry.valid_accuracy.extend(number(&record, index, line)?);
        }
        if let Some(index) = column("seconds") {
            entry.seconds.extend(number(&record, index, line)?);
        }
        for (name, target) in [("parameters", &mut entry.parameters), ("flops", &mut entry.flops)] {
            if let Some(index) = column(name) {
                *target = number(&record, index, line)?.map(|v| v.round() as u64);
            }
        }
        architectures.push(entry);
    }
    Ok(GroundTruthTable::new(None, format!("the accuracy columns of {}", path.display()), architectures))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(genotype: &str, accuracy: &[f64]) -> TableEntry {
        TableEntry {
            genotype: genotype.to_string(),
            accuracy: accuracy.to_vec(),
            seeds: (0..accuracy.len() as u64).collect(),
            valid_accuracy: vec![],
            parameters: Some(1000),
            flops: Some(2000),
            seconds: vec![1.5; accuracy.len()],
        }
    }

    #[test]
    fn json_and_csv_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let table = GroundTruthTable::new(Some("nb201".into()), "test accuracy", vec![entry("|a~0|", &[0.5, 0.75]), entry("|b~0|", &[0.25, 0.125])]);
        let json = dir.path().join("t.json");
        table.write(&json).unwrap();
        assert_eq!(GroundTruthTable::read(&json).unwrap(), table);
        let csv = dir.path().join("t.csv");
        table.write(&csv).unwrap();
        let back = GroundTruthTable::read(&csv).unwrap();
        assert_eq!(back.architectures.len(), 2);
        assert_eq!(back.architectures[0].accuracy, vec![0.5, 0.75]);
        assert_eq!(back.architectures[1].seeds, vec![0, 1]);
        assert_eq!(back.architectures[1].parameters, Some(1000));
        assert_eq!(back.architectures[0].mean_accuracy(), 0.625);
    }

    #[test]
    fn csv_with_only_a_mean_column_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "genotype,accuracy\n|x~0|,0.9\n|y~0|, 0.8\n").unwrap();
        let table = GroundTruthTable::read(&path).unwrap();
        assert_eq!(table.architectures[1].accuracy, vec![0.8]);
    }

    #[test]
    fn bad_tables_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("percent.csv", "genotype,accuracy\n|x~0|,93.5\n", "looks like percent"),
            ("twice.csv", "genotype,accuracy\n|x~0|,0.5\n|x~0|,0.6\n", "listed twice"),
            ("nogeno.csv", "arch,accuracy\n|x~0|,0.5\n", "no `genotype` column"),
            ("text.csv", "genotype,accuracy\n|x~0|,high\n", "line 2, column `accuracy`"),
            ("empty.json", r#"{"format": "splitnas-ground-truth/1", "architectures": []}"#, "no architectures"),
            ("other.json", r#"{"format": "something/2", "architectures": []}"#, "something/2"),
        ];
        for (name, text, expected) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let message = GroundTruthTable::read(&path).unwrap_err().to_string();
            assert!(message.contains(name) && message.contains(expected), "{name}: {message}");
        }
    }
}
