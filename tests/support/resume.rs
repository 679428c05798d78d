//! Killing `splitnas` runs and comparing a resumed run with an uninterrupted one: what the
//! resume tests of every feature share.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::splitnas;

/// How often the run directory is looked at while waiting for a kill point.
const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// A whole run takes well under a minute; this only stops a hung process from hanging the suite.
const PATIENCE: Duration = Duration::from_secs(600);

pub fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// The next epoch `node`'s checkpoint would train; 0 before it has one.
pub fn checkpoint_epoch(run: &Path, node: usize) -> u64 {
    read_json(&run.join(format!("checkpoints/node-{node}.json"))).and_then(|checkpoint| checkpoint["epoch"].as_u64()).unwrap_or(0)
}

pub fn tree_nodes(run: &Path) -> Vec<Value> {
    read_json(&run.join("tree.json")).and_then(|tree| tree["nodes"].as_array().cloned()).unwrap_or_default()
}

/// Whether tree.json (the progress record) shows `node` with children.
pub fn is_split(run: &Path, node: usize) -> bool {
    tree_nodes(run).get(node).and_then(|n| n["children"].as_array()).is_some_and(|children| !children.is_empty())
}

/// Leaves with a derived architecture in tree.json.
pub fn derived_leaves(run: &Path) -> usize {
    tree_nodes(run).iter().filter(|node| !node["result"].is_null()).count()
}

/// Leaves whose stand-alone training is recorded in tree.json.
pub fn standalone_leaves(run: &Path) -> usize {
    tree_nodes(run).iter().filter(|node| !node["result"]["standalone"].is_null()).count()
}

pub fn is_finished(run: &Path) -> bool {
    run.join("report.json").exists()
}

/// SIGKILL's signal number, what `Child::kill` sends on Unix.
pub const SIGKILL: i32 = 9;

/// `splitnas run CONFIG --output-dir OUTPUT`.
pub fn run_args<'a>(config: &'a Path, output: &'a Path) -> [&'a OsStr; 4] {
    ["run".as_ref(), config.as_os_str(), "--output-dir".as_ref(), output.as_os_str()]
}

/// A `splitnas` child process; killed if the test panics, so no run outlives the test.
pub struct Splitnas {
    pub child: Child,
    log: PathBuf,
}

impl Splitnas {
    /// Starts `splitnas ARGS --quiet`, its stderr to `log` (shown if it fails).
    pub fn start(args: &[&OsStr], log: PathBuf) -> Self {
        let log_file = std::fs::File::create(&log).expect("create the process log");
        let child = splitnas().args(args).arg("--quiet").stdout(Stdio::null()).stderr(log_file).spawn().expect("splitnas starts");
        Splitnas { child, log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_for_success(&mut self, what: &str) {
        let status = self.child.wait().expect("wait for splitnas");
        assert!(status.success(), "{what} failed ({status}):\n{}", self.log_text());
    }

    /// Polls the run directory until `reached`, then sends SIGKILL. Returns how the process
    /// ended, or panics if it failed on its own.
    pub fn kill_when(&mut self, run: &Path, reached: fn(&Path) -> bool) -> ExitStatus {
        let started = Instant::now();
        loop {
            if reached(run) {
                // `Child::kill` is SIGKILL on Unix: no handler, no cleanup, as in a crash.
                let _ = self.child.kill();
                return self.child.wait().expect("wait for the killed splitnas");
            }
            if let Some(status) = self.child.try_wait().expect("poll splitnas") {
                assert!(status.success(), "splitnas failed ({status}) before it was killed:\n{}", self.log_text());
                return status;
            }
            assert!(started.elapsed() < PATIENCE, "splitnas did not reach the kill point in {PATIENCE:?}:\n{}", self.log_text());
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for Splitnas {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `value` without wall-clock timings: every key containing "seconds", at any depth.
pub fn without_timings(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().filter(|(key, _)| !key.contains("seconds")).map(|(key, v)| (key.clone(), without_timings(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(without_timings).collect()),
        other => other.clone(),
    }
}

/// Where two JSON documents first differ, as a path, so a failure names the field.
pub fn first_difference(reference: &Value, resumed: &Value, path: &str) -> Option<String> {
    match (reference, resumed) {
        (Value::Object(a), Value::Object(b)) => a.keys().chain(b.keys()).find_map(|key| match (a.get(key), b.get(key)) {
            (Some(x), Some(y)) => first_difference(x, y, &format!("{path}.{key}")),
            (x, y) => Some(format!("{path}.{key}: reference {x:?}, resumed {y:?}")),
        }),
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            a.iter().zip(b).enumerate().find_map(|(i, (x, y))| first_difference(x, y, &format!("{path}[{i}]")))
        }
        _ => (reference != resumed).then(|| format!("{path}: reference {reference}, resumed {resumed}")),
    }
}

pub fn json_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// metrics.jsonl, every line a JSON object (a half-written line from a kill fails here).
pub fn metrics(run: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics.jsonl");
    text.lines()
        .enumerate()
        .map(|(number, line)| serde_json::from_str(line).unwrap_or_else(|error| panic!("metrics.jsonl line {}: {error}: {line:.200}", number + 1)))
        .collect()
}

/// The search's decisions, field by field (readable failures), then both documents whole.
pub fn assert_same_results(reference: &Path, resumed: &Path, nodes: usize) {
    let reference_tree = json_file(&reference.join("tree.json"));
    let resumed_tree = json_file(&resumed.join("tree.json"));
    let reference_nodes = reference_tree["nodes"].as_array().expect("tree nodes");
    let resumed_nodes = resumed_tree["nodes"].as_array().expect("tree nodes");
    assert_eq!(reference_nodes.len(), nodes, "the reference tree is not the schedule's: the test config changed?");
    assert_eq!(resumed_nodes.len(), nodes, "the resumed run's tree has another shape");
    let candidate_scores = |node: &Value| -> Vec<(Value, Value, Value)> {
        node["split"]["candidates"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| (c["choice_point"].clone(), c["groups"].clone(), c["score"].clone()))
            .collect()
    };
    for (expected, actual) in reference_nodes.iter().zip(resumed_nodes) {
        let id = &expected["id"];
        assert_eq!(expected["split"]["choice_point"], actual["split"]["choice_point"], "node {id} split on another choice point");
        assert_eq!(expected["split"]["groups"], actual["split"]["groups"], "node {id} split into other groups");
        assert_eq!(candidate_scores(expected), candidate_scores(actual), "node {id}: candidate scores differ");
        assert_eq!(expected["result"]["genotype"], actual["result"]["genotype"], "node {id} derived another genotype");
    }
    let reference_report = json_file(&reference.join("report.json"));
    let resumed_report = json_file(&resumed.join("report.json"));
    assert_eq!(reference_report["selected"], resumed_report["selected"], "another leaf was selected");
    assert_eq!(reference_report["selected_result"]["genotype"], resumed_report["selected_result"]["genotype"], "another genotype was selected");

    for (file, a, b) in [("tree.json", &reference_tree, &resumed_tree), ("report.json", &reference_report, &resumed_report)] {
        if let Some(difference) = first_difference(&without_timings(a), &without_timings(b), file) {
            panic!("the resumed run's {file} differs: {difference}");
        }
    }
}

/// Every event the interrupted run logged, including work a kill made it redo, equals the
/// reference's event for the same node and epoch: each training step was repeated exactly.
pub fn assert_same_events(reference: &Path, resumed: &Path) {
    let key = |event: &Value| format!("{} node {} epoch {}", event["event"], event["node"], event["epoch"]);
    let reference_events = metrics(reference);
    let expected: BTreeMap<String, Value> = reference_events.iter().map(|event| (key(event), without_timings(event))).collect();
    assert_eq!(expected.len(), reference_events.len(), "the uninterrupted run logged some event twice");
    let mut logged = BTreeSet::new();
    for event in metrics(resumed) {
        let key = key(&event);
        let reference_event = expected.get(&key).unwrap_or_else(|| panic!("the resumed run logged {key}, the reference did not"));
        if let Some(difference) = first_difference(reference_event, &without_timings(&event), &key) {
            panic!("the resumed run's metrics.jsonl differs: {difference}");
        }
        logged.insert(key);
    }
    let missing: Vec<&String> = expected.keys().filter(|key| !logged.contains(*key)).collect();
    assert!(missing.is_empty(), "the resumed run never logged {missing:?}");
}
