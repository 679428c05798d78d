//! Converting the NAS-Bench-201 / NATS-Bench topology files users already have into
//! ground-truth tables (`splitnas bench convert-nb201`).
//!
//! Both benchmarks store one Python dict: `meta_archs` (genotype strings) and `arch2infos`
//! (index → {schedule → the `ArchResults.state_dict()` of the nas_201_api / nats_bench
//! packages}). Each `ArchResults` holds `all_results[(dataset, seed)]`, a `ResultsCount`
//! state with `params` (M), `flop` (M), `epochs` and `eval_acc1es['<set>@<epoch>']` (percent).
//! Schedules are `"200"`/`"12"` in NATS-Bench and `"full"`/`"less"` in NAS-Bench-201.
//!
//! Accepted containers, recognised by content: NATS-Bench's bzip2-compressed pickle
//! (`NATS-tss-v1_0-3ffb9.pickle.pbz2`), a plain pickle, and `torch.save` files
//! (`NAS-Bench-201-v1_0-e61699.pth`, v1_1) in either the legacy stream format or the zip
//! format. The whole file is parsed into memory: the 2 GB NAS-Bench-201 v1.0 file needs
//! several times that in RAM; NATS-Bench's smaller file is the better input.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_pickle::{DeOptions, Deserializer, Value};

use crate::table::{GroundTruthTable, TableEntry};

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
}

/// What to extract.
#[derive(Debug, Clone)]
pub struct Nb201Selection {
    /// `cifar10-valid`, `cifar10`, `cifar100` or `ImageNet16-120`.
    pub dataset: String,
    /// The evaluation set: `x-valid`, `x-test` or `ori-test`.
    pub set: String,
    /// `200` (the full schedule) or `12`.
    pub schedule: String,
}

impl Default for Nb201Selection {
    fn default() -> Self {
        Nb201Selection { dataset: "cifar10-valid".to_string(), set: "x-valid".to_string(), schedule: "200".to_string() }
    }
}

#[derive(Deserialize)]
struct BenchmarkFile {
    meta_archs: Vec<String>,
    arch2infos: BTreeMap<i64, HashMap<String, ArchResults>>,
}

#[derive(Deserialize)]
struct ArchResults {
    #[serde(default)]
    arch_str: Option<String>,
    all_results: HashMap<(String, i64), ResultsCount>,
}

#[derive(Deserialize)]
struct ResultsCount {
    params: Value,
    flop: Value,
    epochs: i64,
    eval_acc1es: HashMap<String, Value>,
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::F64(v) => Some(*v),
        Value::I64(v) => Some(*v as f64),
        _ => None,
    }
}

/// The magic number `torch.save`'s legacy format writes as its first pickle.
const TORCH_LEGACY_MAGIC: &str = "1950a86a20f9469cfc6c";

/// The pickled object inside `bytes`, whichever container holds it.
fn unwrap_container(bytes: Vec<u8>, path: &Path) -> Result<Vec<u8>, ConvertError> {
    let format = |message: String| ConvertError::Format { path: path.to_path_buf(), message };
    if bytes.starts_with(b"BZh") {
        let mut out = Vec::new();
        bzip2::read::BzDecoder::new(bytes.as_slice()).read_to_end(&mut out).map_err(|e| format(format!("bzip2 data is damaged: {e}")))?;
        return unwrap_container(out, path);
    }
    if bytes.starts_with(b"PK\x03\x04") {
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| format(format!("zip (torch.save) container is damaged: {e}")))?;
        let name = archive
            .file_names()
            .find(|n| n.ends_with("data.pkl"))
            .map(str::to_string)
            .ok_or_else(|| format("a zip without data.pkl is not a torch.save file".to_string()))?;
        let mut out = Vec::new();
        archive
            .by_name(&name)
            .and_then(|mut f| f.read_to_end(&mut out).map_err(Into::into))
            .map_err(|e| format(format!("cannot read {name}: {e}")))?;
        return Ok(out);
    }
    if bytes.first() == Some(&0x80) {
        return Ok(bytes);
    }
    Err(format("neither a pickle, a bzip2-compressed pickle (.pickle.pbz2) nor a torch.save file (.pth)".to_string()))
}

fn read_benchmark(path: &Path) -> Result<BenchmarkFile, ConvertError> {
    let format = |message: String| ConvertError::Format { path: path.to_path_buf(), message };
    let bytes = std::fs::read(path).map_err(|source| ConvertError::Read { path: path.to_path_buf(), source })?;
    let pickle = unwrap_container(bytes, path)?;
    // Unresolved globals (numpy scalars in fields we ignore) become None. serde-pickle cannot
    // resolve a memoised object reached again through a copy of a shared container; with
    // the replacement such a value becomes None, which fails loudly only where we need it.
    let options = || DeOptions::new().replace_unresolved_globals().replace_recursive_structures();
    let mut deserializer = Deserializer::new(BufReader::new(Cursor::new(pickle)), options());
    // The legacy torch.save stream is: magic number, protocol version, system info, object.
    let first = deserializer.deserialize_value().map_err(|e| format(format!("not a readable pickle: {e}")))?;
    let legacy_torch = matches!(&first, Value::Int(big) if format!("{big:x}") == TORCH_LEGACY_MAGIC);
    let object = if legacy_torch {
        for _ in 0..2 {
            deserializer.reset_memo();
            deserializer.deserialize_value().map_err(|e| format(format!("torch.save header: {e}")))?;
        }
        deserializer.reset_memo();
        deserializer.deserialize_value().map_err(|e| format(format!("torch.save object: {e}")))?
    } else {
        first
    };
    serde_pickle::from_value(object).map_err(|e| {
        format(format!("not a NAS-Bench-201 / NATS-Bench topology file (a dict with `meta_archs` and `arch2infos` of ArchResults states): {e}"))
    })
}

/// Reads a NAS-Bench-201 or NATS-Bench topology file and returns the table of `selection`:
/// one accuracy per seed (as fractions), parameters and FLOPs per architecture.
pub fn convert_nb201(path: &Path, selection: &Nb201Selection) -> Result<GroundTruthTable, ConvertError> {
    let format = |message: String| ConvertError::Format { path: path.to_path_buf(), message };
    let file = read_benchmark(path)?;
    let schedule_keys: Vec<&str> = match selection.schedule.as_str() {
        "200" => vec!["200", "full"],
        "12" => vec!["12", "less"],
        other => return Err(format(format!("schedule `{other}` does not exist; use 200 or 12"))),
    };
    let mut entries = Vec::new();
    for (&index, schedules) in &file.arch2infos {
        let Some(results) = schedule_keys.iter().find_map(|k| schedules.get(*k)) else {
            let available: Vec<&String> = schedules.keys().collect();
            return Err(format(format!("architecture {index} has no {}-epoch results (it has {available:?})", selection.schedule)));
        };
        let genotype = usize::try_from(index)
            .ok()
            .and_then(|i| file.meta_archs.get(i).cloned())
            .or_else(|| results.arch_str.clone())
            .ok_or_else(|| format(format!("architecture {index} has no genotype string")))?;
        let mut runs: Vec<(&i64, &ResultsCount)> =
            results.all_results.iter().filter(|((dataset, _), _)| dataset == &selection.dataset).map(|((_, seed), r)| (seed, r)).collect();
        if runs.is_empty() {
            let mut datasets: Vec<&String> = results.all_results.keys().map(|(d, _)| d).collect();
            datasets.sort();
            datasets.dedup();
            return Err(format(format!("architecture {index} has no results on `{}`; it has {datasets:?}", selection.dataset)));
        }
        runs.sort_by_key(|(seed, _)| **seed);
        let mut entry = TableEntry {
            genotype,
            accuracy: Vec::new(),
            seeds: Vec::new(),
            valid_accuracy: Vec::new(),
            parameters: None,
            flops: None,
            seconds: Vec::new(),
        };
        for (seed, run) in runs {
            let key = format!("{}@{}", selection.set, run.epochs - 1);
            let value = run.eval_acc1es.get(&key).ok_or_else(|| {
                let mut sets: Vec<&str> = run.eval_acc1es.keys().filter_map(|k| k.split('@').next()).collect();
                sets.sort();
                sets.dedup();
                format(format!("architecture {index}, {} seed {seed}: no `{key}`; its evaluation sets are {sets:?}", selection.dataset))
            })?;
            let percent = number(value).ok_or_else(|| format(format!("architecture {index}: `{key}` is {value:?}, not a number")))?;
            entry.accuracy.push(percent / 100.0);
            entry.seeds.push(*seed as u64);
            entry.parameters = number(&run.params).map(|m| (m * 1e6).round() as u64);
            entry.flops = number(&run.flop).map(|m| (m * 1e6).round() as u64);
        }
        entries.push(entry);
    }
    let table = GroundTruthTable::new(
        Some("nb201".to_string()),
        format!(
            "{} {} accuracy after the {}-epoch schedule, per seed, from {}",
            selection.dataset,
            selection.set,
            selection.schedule,
            path.display()
        ),
        entries,
    );
    table.validate().map_err(format)?;
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nb201-tables").join(name)
    }

    #[derive(Deserialize)]
    struct Expected {
        files: Vec<String>,
        selections: Vec<ExpectedSelection>,
    }

    /// Genotype, accuracies (fractions) in seed order, seeds, parameters, FLOPs.
    type ExpectedRow = (String, Vec<f64>, Vec<u64>, u64, u64);

    #[derive(Deserialize)]
    struct ExpectedSelection {
        dataset: String,
        set: String,
        schedule: String,
        architectures: Vec<ExpectedRow>,
    }

    /// Every container format gives the tables the generator says it wrote.
    #[test]
    fn converts_every_fixture_format() {
        let expected: Expected = serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap();
        assert!(expected.files.len() >= 4);
        for file in &expected.files {
            for selection in &expected.selections {
                let wanted = Nb201Selection { dataset: selection.dataset.clone(), set: selection.set.clone(), schedule: selection.schedule.clone() };
                let table = convert_nb201(&fixture(file), &wanted).unwrap_or_else(|e| panic!("{file}: {e}"));
                assert_eq!(table.architectures.len(), selection.architectures.len(), "{file}");
                for (entry, (genotype, accuracy, seeds, parameters, flops)) in table.architectures.iter().zip(&selection.architectures) {
                    assert_eq!(&entry.genotype, genotype, "{file}");
                    assert_eq!(&entry.seeds, seeds, "{file} {genotype}");
                    for (ours, theirs) in entry.accuracy.iter().zip(accuracy) {
                        assert!((ours - theirs).abs() < 1e-12, "{file} {genotype}: {ours} vs {theirs}");
                    }
                    assert_eq!(entry.parameters, Some(*parameters), "{file} {genotype}");
                    assert_eq!(entry.flops, Some(*flops), "{file} {genotype}");
                }
            }
        }
    }

    #[test]
    fn missing_data_is_named() {
        let file = fixture("nats-tss-fixture.pickle.pbz2");
        let wrong_set = Nb201Selection { set: "x-test".into(), dataset: "cifar10".into(), ..Default::default() };
        let message = convert_nb201(&file, &wrong_set).unwrap_err().to_string();
        assert!(message.contains("no `x-test@") && message.contains("ori-test"), "{message}");
        let wrong_dataset = Nb201Selection { dataset: "svhn".into(), ..Default::default() };
        let message = convert_nb201(&file, &wrong_dataset).unwrap_err().to_string();
        assert!(message.contains("no results on `svhn`") && message.contains("cifar10-valid"), "{message}");
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pth");
        std::fs::write(&junk, b"hello").unwrap();
        let message = convert_nb201(&junk, &Nb201Selection::default()).unwrap_err().to_string();
        assert!(message.contains("junk.pth") && message.contains("neither a pickle"), "{message}");
    }
}
