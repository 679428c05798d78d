//! TensorBoard event files (`[run] tensorboard = true`): the scalars of metrics.jsonl's events,
//! written beside it as they are logged ([`crate::metrics::MetricsLog`] hands every event here).
//!
//! ```text
//! <run dir>/tensorboard/
//!   node-N/events.out.tfevents.<unix seconds>.<host>             search epochs, splits
//!   node-N/standalone/events.out.tfevents.<unix seconds>.<host>  stand-alone training epochs
//! ```
//!
//! One TensorBoard *run* per node, so that a tag (`search/train_loss`) plots every node as its
//! own line on one chart, and the children's lines continue from their parent's split epoch;
//! stand-alone training is a run of its own below the node because its epochs count from 0
//! again. A step is the event's `epoch`, as in metrics.jsonl.
//!
//! The format is TensorFlow's: TFRecord framing (length as u64 little-endian, masked CRC-32C
//! of those 8 bytes, the record, masked CRC-32C of the record) around `Event` protocol buffers,
//! first `file_version: "brain.Event:2"`, then `wall_time`, `step` and a `Summary` of
//! `simple_value`s. The few protobuf fields are encoded here by hand. Every event is one
//! `write` call on an unbuffered file, so a killed run keeps every epoch it logged; a resumed
//! run opens new files (a later name, which TensorBoard reads after the old ones) and never
//! touches the old ones.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde_json::Value;

/// What `file_version` the first event of every file names.
const FILE_VERSION: &str = "brain.Event:2";

/// Scalars of a search epoch (`"event": "epoch"`): metrics.jsonl key, TensorBoard tag.
pub const EPOCH_SCALARS: [(&str, &str); 3] =
    [("train_loss", "search/train_loss"), ("supernet_valid_accuracy", "search/supernet_valid_accuracy"), ("lr", "search/lr")];

/// Scalars of a stand-alone training epoch (`"event": "standalone_epoch"`), where present.
pub const STANDALONE_SCALARS: [(&str, &str); 4] = [
    ("train_loss", "standalone/train_loss"),
    ("train_accuracy", "standalone/train_accuracy"),
    ("valid_accuracy", "standalone/valid_accuracy"),
    ("lr", "standalone/lr"),
];

/// Per-step learning rates (`step_lrs` of search and stand-alone epochs): the tag in the
/// event's TensorBoard run, whose steps are training steps (`epoch · steps + step`).
pub const STEP_LR_TAGS: [(&str, &str); 2] = [("epoch", "search/step_lr"), ("standalone_epoch", "standalone/step_lr")];

/// The prefix of a split's scores: `split/score/<choice point name>` per candidate.
pub const SPLIT_SCORE_PREFIX: &str = "split/score/";

/// The scalars one metrics event gives: which TensorBoard run (a directory below
/// `tensorboard/`), which step, and `(tag, value)` pairs. Events without scalars give none.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalars {
    pub run: String,
    pub step: i64,
    pub values: Vec<(String, f64)>,
}

/// The scalars of a metrics.jsonl event, if it has any.
pub fn scalars_of(event: &Value) -> Option<Scalars> {
    let node = event.get("node")?.as_u64()?;
    let pick = |table: &[(&str, &str)]| -> Vec<(String, f64)> {
        table.iter().filter_map(|(key, tag)| event.get(*key).and_then(Value::as_f64).map(|value| (tag.to_string(), value))).collect()
    };
    let (run, step, values) = match event.get("event")?.as_str()? {
        "epoch" => (format!("node-{node}"), event.get("epoch")?.as_i64()?, pick(&EPOCH_SCALARS)),
        "standalone_epoch" => (format!("node-{node}/standalone"), event.get("epoch")?.as_i64()?, pick(&STANDALONE_SCALARS)),
        "split" => {
            let split = event.get("split")?;
            let mut values: Vec<(String, f64)> = Vec::new();
            for candidate in split.get("candidates")?.as_array()? {
                let (Some(name), Some(score)) = (candidate.get("name").and_then(Value::as_str), candidate.get("score").and_then(Value::as_f64))
                else {
                    continue;
                };
                let mut tag = format!("{SPLIT_SCORE_PREFIX}{name}");
                if values.iter().any(|(taken, _)| *taken == tag) {
                    tag = format!("{tag}/{}", values.len());
                }
                values.push((tag, score));
            }
            (format!("node-{node}"), split.get("epoch")?.as_i64()?, values)
        }
        _ => return None,
    };
    (!values.is_empty()).then_some(Scalars { run, step, values })
}

/// The learning rate of every step of an epoch event that lists them (`step_lrs`), one
/// [`Scalars`] per step, on the step axis of training steps: step `s` of epoch `e` with `n`
/// steps per epoch is `e · n + s`.
pub fn step_lr_scalars(event: &Value) -> Vec<Scalars> {
    let scalars = || -> Option<Vec<Scalars>> {
        let node = event.get("node")?.as_u64()?;
        let kind = event.get("event")?.as_str()?;
        let (_, tag) = STEP_LR_TAGS.iter().find(|(event_kind, _)| *event_kind == kind)?;
        let run = if kind == "epoch" { format!("node-{node}") } else { format!("node-{node}/standalone") };
        let epoch = event.get("epoch")?.as_i64()?;
        let lrs = event.get("step_lrs")?.as_array()?;
        let first_step = epoch * lrs.len() as i64;
        let per_step = lrs.iter().enumerate().filter_map(|(index, lr)| {
            Some(Scalars { run: run.clone(), step: first_step + index as i64, values: vec![(tag.to_string(), lr.as_f64()?)] })
        });
        Some(per_step.collect())
    };
    scalars().unwrap_or_default()
}

/// The event files of one run directory's `tensorboard/`, opened as events arrive.
pub struct TensorBoardLog {
    root: PathBuf,
    writers: BTreeMap<String, EventWriter>,
}

impl TensorBoardLog {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        TensorBoardLog { root: root.into(), writers: BTreeMap::new() }
    }

    /// Writes the scalars of one metrics event (nothing for an event without any).
    pub fn record(&mut self, event: &Value) -> Result<()> {
        for scalars in scalars_of(event).into_iter().chain(step_lr_scalars(event)) {
            let writer = match self.writers.entry(scalars.run.clone()) {
                std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::btree_map::Entry::Vacant(entry) => entry.insert(EventWriter::create(&self.root.join(&scalars.run))?),
            };
            writer.write_scalars(scalars.step, wall_time(), &scalars.values)?;
        }
        Ok(())
    }
}

/// One event file, written record by record.
pub struct EventWriter {
    file: File,
    path: PathBuf,
}

impl EventWriter {
    /// A new event file in `directory` (created if needed), named as TensorFlow names them;
    /// a name already taken (a resume within the same second) gets a suffix, so no file is
    /// ever appended to or replaced.
    pub fn create(directory: &Path) -> Result<Self> {
        std::fs::create_dir_all(directory).with_context(|| format!("cannot create {}", directory.display()))?;
        let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs());
        let base = format!("events.out.tfevents.{seconds}.{}", hostname());
        for attempt in 0.. {
            let name = if attempt == 0 { base.clone() } else { format!("{base}.{attempt}") };
            let path = directory.join(name);
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    let mut writer = EventWriter { file, path };
                    writer.write_event(&encode_event(wall_time(), 0, EventBody::FileVersion(FILE_VERSION)))?;
                    return Ok(writer);
                }
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(error).with_context(|| format!("cannot create {}", path.display())),
            }
        }
        unreachable!("some suffix is free")
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One event with `values` as `simple_value`s at `step`.
    pub fn write_scalars(&mut self, step: i64, wall_time: f64, values: &[(String, f64)]) -> Result<()> {
        self.write_event(&encode_event(wall_time, step, EventBody::Scalars(values)))
    }

    fn write_event(&mut self, event: &[u8]) -> Result<()> {
        // One write call per record: a killed run leaves whole records (or a torn last one,
        // which TensorBoard's reader stops at), never records of two writers interleaved.
        self.file.write_all(&frame(event)).with_context(|| format!("cannot write {}", self.path.display()))?;
        self.file.flush()?;
        Ok(())
    }
}

/// `record` in TFRecord framing.
pub fn frame(record: &[u8]) -> Vec<u8> {
    let length = (record.len() as u64).to_le_bytes();
    let mut framed = Vec::with_capacity(record.len() + 16);
    framed.extend_from_slice(&length);
    framed.extend_from_slice(&masked_crc32c(&length).to_le_bytes());
    framed.extend_from_slice(record);
    framed.extend_from_slice(&masked_crc32c(record).to_le_bytes());
    framed
}

/// TFRecord's checksum: CRC-32C, rotated right by 15 bits plus a constant (so that a CRC of
/// data holding CRCs is not degenerate).
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// What an `Event` carries besides its time and step.
pub enum EventBody<'a> {
    /// `file_version` (field 3), the first event of a file.
    FileVersion(&'a str),
    /// `summary` (field 5): one `Summary.Value { tag, simple_value }` per scalar.
    Scalars(&'a [(String, f64)]),
}

/// An `Event` protocol buffer: `wall_time` (1, double), `step` (2, int64), then the body.
pub fn encode_event(wall_time: f64, step: i64, body: EventBody<'_>) -> Vec<u8> {
    let mut event = Vec::new();
    event.push(tag(1, WIRE_FIXED64));
    event.extend_from_slice(&wall_time.to_le_bytes());
    if step != 0 {
        event.push(tag(2, WIRE_VARINT));
        put_varint(&mut event, step as u64);
    }
    match body {
        EventBody::FileVersion(version) => put_bytes(&mut event, 3, version.as_bytes()),
        EventBody::Scalars(values) => {
            let mut summary = Vec::new();
            for (name, value) in values {
                let mut entry = Vec::new();
                put_bytes(&mut entry, 1, name.as_bytes());
                entry.push(tag(2, WIRE_FIXED32));
                entry.extend_from_slice(&(*value as f32).to_le_bytes());
                put_bytes(&mut summary, 1, &entry);
            }
            put_bytes(&mut event, 5, &summary);
        }
    }
    event
}

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LENGTH_DELIMITED: u8 = 2;
const WIRE_FIXED32: u8 = 5;

fn tag(field: u8, wire_type: u8) -> u8 {
    debug_assert!(field < 16, "one-byte keys only");
    (field << 3) | wire_type
}

fn put_varint(buffer: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buffer.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buffer.push(value as u8);
}

fn put_bytes(buffer: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    buffer.push(tag(field, WIRE_LENGTH_DELIMITED));
    put_varint(buffer, bytes.len() as u64);
    buffer.extend_from_slice(bytes);
}

fn wall_time() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

/// The machine's name, as TensorFlow puts it in event file names.
fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").or_else(|_| std::fs::read_to_string("/etc/hostname")).unwrap_or_default();
    let name: String = name.trim().chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
    if name.is_empty() {
        "localhost".to_string()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn crc32c_and_its_mask_match_known_vectors() {
        // CRC-32C check value (RFC 3720, B.4) and TensorFlow's masking of it.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(masked_crc32c(b"123456789"), 0xc78a_b0e5, "tensorboard's masked_crc32c");
        assert_eq!(masked_crc32c(b""), 0xa282_ead8, "the CRC of nothing is 0");
    }

    #[test]
    fn framing_matches_tensorflow() {
        // What tensorboard's own RecordWriter writes for the record b"hello": the length, its
        // masked CRC, the data, their masked CRC.
        let expected: [u8; 21] = [5, 0, 0, 0, 0, 0, 0, 0, 0xea, 0xb2, 0x04, 0x3e, b'h', b'e', b'l', b'l', b'o', 0xbb, 0x1f, 0x1c, 0x19];
        assert_eq!(frame(b"hello"), expected);
    }

    #[test]
    fn events_encode_the_protobuf_fields() {
        let version = encode_event(1.5, 0, EventBody::FileVersion("brain.Event:2"));
        let mut expected = vec![0x09];
        expected.extend_from_slice(&1.5f64.to_le_bytes());
        expected.extend_from_slice(&[0x1a, 13]);
        expected.extend_from_slice(b"brain.Event:2");
        assert_eq!(version, expected);

        let scalars = encode_event(2.0, 300, EventBody::Scalars(&[("a/b".to_string(), 0.25)]));
        let mut expected = vec![0x09];
        expected.extend_from_slice(&2.0f64.to_le_bytes());
        expected.extend_from_slice(&[0x10, 0xac, 0x02]); // step 300 as a varint
        expected.extend_from_slice(&[0x2a, 12, 0x0a, 10, 0x0a, 3, b'a', b'/', b'b', 0x15]);
        expected.extend_from_slice(&0.25f32.to_le_bytes());
        assert_eq!(scalars, expected);
    }

    #[test]
    fn metrics_events_map_to_runs_steps_and_tags() {
        let epoch = json!({"event": "epoch", "node": 2, "epoch": 4, "lr": 0.01, "train_loss": 1.5, "supernet_valid_accuracy": 0.5, "steps": 3});
        let scalars = scalars_of(&epoch).unwrap();
        assert_eq!((scalars.run.as_str(), scalars.step), ("node-2", 4));
        let tags: Vec<&str> = scalars.values.iter().map(|(tag, _)| tag.as_str()).collect();
        assert_eq!(tags, ["search/train_loss", "search/supernet_valid_accuracy", "search/lr"]);

        let split = json!({"event": "split", "node": 0, "split": {"epoch": 3, "candidates": [
            {"name": "edge_1", "score": 0.5}, {"name": "edge_2", "score": null}, {"name": "edge_1", "score": 0.7}]}});
        let scalars = scalars_of(&split).unwrap();
        assert_eq!((scalars.run.as_str(), scalars.step), ("node-0", 3));
        assert_eq!(scalars.values, [("split/score/edge_1".to_string(), 0.5), ("split/score/edge_1/1".to_string(), 0.7)]);

        let standalone = json!({"event": "standalone_epoch", "node": 1, "epoch": 0, "lr": 0.1, "train_loss": 2.0, "train_accuracy": 0.25});
        let scalars = scalars_of(&standalone).unwrap();
        assert_eq!((scalars.run.as_str(), scalars.step, scalars.values.len()), ("node-1/standalone", 0, 3));

        let standalone = json!({"event": "standalone_epoch", "node": 1, "epoch": 2, "lr": 0.1, "step_lrs": [0.1, 0.09, 0.08]});
        let steps: Vec<(String, i64, f64)> = step_lr_scalars(&standalone).into_iter().map(|s| (s.run, s.step, s.values[0].1)).collect::<Vec<_>>();
        assert_eq!(
            steps,
            [("node-1/standalone".to_string(), 6, 0.1), ("node-1/standalone".to_string(), 7, 0.09), ("node-1/standalone".to_string(), 8, 0.08)]
        );
        let tags: Vec<String> = step_lr_scalars(&json!({"event": "epoch", "node": 0, "epoch": 0, "step_lrs": [0.5]}))
            .into_iter()
            .map(|s| format!("{}:{}", s.run, s.values[0].0))
            .collect();
        assert_eq!(tags, ["node-0:search/step_lr"]);
        assert!(step_lr_scalars(&epoch).is_empty(), "an event without step_lrs");

        assert_eq!(scalars_of(&json!({"event": "init", "node": 0, "alphas": {}})), None);
        assert_eq!(scalars_of(&json!({"event": "final", "node": 0})), None);
    }

    #[test]
    fn files_are_never_reused() {
        let directory = tempfile::tempdir().unwrap();
        let mut log = TensorBoardLog::new(directory.path());
        log.record(&json!({"event": "epoch", "node": 0, "epoch": 0, "lr": 0.1, "train_loss": 1.0, "supernet_valid_accuracy": 0.1})).unwrap();
        // A resumed run: a second log over the same directory, within the same second.
        let mut resumed = TensorBoardLog::new(directory.path());
        resumed.record(&json!({"event": "epoch", "node": 0, "epoch": 1, "lr": 0.1, "train_loss": 1.0, "supernet_valid_accuracy": 0.1})).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(directory.path().join("node-0"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().all(|name| name.starts_with("events.out.tfevents.")), "{names:?}");
        for name in &names {
            let bytes = std::fs::read(directory.path().join("node-0").join(name)).unwrap();
            let first = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
            assert_eq!(&bytes[8..12], &masked_crc32c(&bytes[..8]).to_le_bytes());
            let second = 16 + first;
            assert_eq!(bytes.len(), second + 16 + u64::from_le_bytes(bytes[second..second + 8].try_into().unwrap()) as usize, "two whole records");
        }
    }
}
