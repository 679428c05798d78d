//! `splitnas resume` after SIGKILL. One few-shot run is killed at several points (root
//! training, root splitting, children just created, one sibling split and the other not, a
//! restarted leaf mid-training, derivation, stand-alone training) and resumed after each; it
//! must end with the same split tree, report and logged events as an uninterrupted run.
//!
//! Every epoch reseeds libtorch from (seed, node, epoch) and the loaders seek to the epoch's
//! first batch, so on the CPU with a fixed seed the results agree exactly: nothing here is
//! compared with a tolerance, and only wall-clock timings ("...seconds") are ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use splitnas_e2e::*;

const RUN_NAME: &str = "resume-e2e";

/// NB201 at C=4, N=1 on 600 embedded images. The root trains epochs 0-1 and splits at 2 (its
/// children inherit everything), they train epoch 2 and split at 3 (`restart_final`: the four
/// leaves start fresh), the leaves train epochs 3-4; then every leaf is derived and trained
/// stand-alone. Each phase is long enough (a second or more) to be caught by polling.
///
/// `threads = 1`: this run and the reference run side by side, and with libtorch's default
/// of one thread per core their OpenMP threads spin against each other (a 7 s split took
/// 166 s on a busy 2-core machine). The run directory's config.toml keeps it for resumes.
const CONFIG: &str = r#"
[run]
name = "resume-e2e"
seed = 1
device = "cpu"
threads = 1

[data]
dataset = "embedded"
max_train_images = 600
max_test_images = 100
batch_size = 32

[space]
name = "nb201"
channels = 4
cells = 1

[algorithm]
name = "darts"

[search]
epochs = 5
max_steps_per_epoch = 6
eval_batches = 2

[split]
criterion = "gm"
epochs = [2, 3]
groups = [2, 2]
repeats = 2

[final]
epochs = 1
max_steps_per_epoch = 3
"#;

/// Nodes of the finished tree: the root, two children, four grandchildren.
const NODES: usize = 7;
const LEAVES: usize = 4;

/// How often the run directory is looked at while waiting for a kill point.
const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// A whole run takes well under a minute; this only stops a hung process from hanging the suite.
const PATIENCE: Duration = Duration::from_secs(600);

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// The next epoch `node`'s checkpoint would train; 0 before it has one.
fn checkpoint_epoch(run: &Path, node: usize) -> u64 {
    read_json(&run.join(format!("checkpoints/node-{node}.json"))).and_then(|checkpoint| checkpoint["epoch"].as_u64()).unwrap_or(0)
}

fn tree_nodes(run: &Path) -> Vec<Value> {
    read_json(&run.join("tree.json")).and_then(|tree| tree["nodes"].as_array().cloned()).unwrap_or_default()
}

/// Whether tree.json (the progress record) shows `node` with children.
fn is_split(run: &Path, node: usize) -> bool {
    tree_nodes(run).get(node).and_then(|n| n["children"].as_array()).is_some_and(|children| !children.is_empty())
}

/// Leaves with a derived architecture in tree.json.
fn derived_leaves(run: &Path) -> usize {
    tree_nodes(run).iter().filter(|node| !node["result"].is_null()).count()
}

/// Leaves whose stand-alone training is recorded in tree.json.
fn standalone_leaves(run: &Path) -> usize {
    tree_nodes(run).iter().filter(|node| !node["result"]["standalone"].is_null()).count()
}

fn is_finished(run: &Path) -> bool {
    run.join("report.json").exists()
}

/// SIGKILL's signal number, what `Child::kill` sends on Unix.
const SIGKILL: i32 = 9;

/// `splitnas run CONFIG --output-dir OUTPUT`.
fn run_args<'a>(config: &'a Path, output: &'a Path) -> [&'a OsStr; 4] {
    ["run".as_ref(), config.as_os_str(), "--output-dir".as_ref(), output.as_os_str()]
}

/// A moment in the run to kill it at, described by what the run directory shows.
struct KillPoint {
    name: &'static str,
    /// The run got here: kill it now.
    reached: fn(&Path) -> bool,
    /// The run already left the point: the kill landed too late to test it.
    passed: fn(&Path) -> bool,
}

/// In the order the run passes them. Each window lasts from a file write to the next one
/// that `passed` looks for: an epoch, a split, or (the shortest) deriving the other leaves.
fn kill_points() -> Vec<KillPoint> {
    vec![
        KillPoint {
            name: "root mid-training (epoch 1 of 0-1 checkpointed)",
            reached: |run| checkpoint_epoch(run, 0) >= 1,
            passed: |run| checkpoint_epoch(run, 0) >= 2,
        },
        KillPoint {
            name: "root splitting (trained to its split epoch, no children yet)",
            reached: |run| checkpoint_epoch(run, 0) >= 2,
            passed: |run| is_split(run, 0),
        },
        KillPoint { name: "children created, none trained", reached: |run| is_split(run, 0), passed: |run| checkpoint_epoch(run, 1) >= 3 },
        KillPoint { name: "node 1 split, its sibling node 2 not yet", reached: |run| is_split(run, 1), passed: |run| is_split(run, 2) },
        KillPoint {
            name: "restarted leaf 3 mid-training (epoch 3 of 3-4 checkpointed)",
            reached: |run| checkpoint_epoch(run, 3) >= 4,
            passed: |run| checkpoint_epoch(run, 3) >= 5,
        },
        KillPoint { name: "deriving (some leaves derived)", reached: |run| derived_leaves(run) >= 1, passed: |run| derived_leaves(run) >= LEAVES },
        KillPoint {
            name: "stand-alone training (some leaves trained)",
            reached: |run| standalone_leaves(run) >= 1,
            passed: |run| standalone_leaves(run) >= LEAVES,
        },
    ]
}

/// A `splitnas` child process; killed if the test panics, so no run outlives the test.
struct Splitnas {
    child: Child,
    log: PathBuf,
}

impl Splitnas {
    /// Starts `splitnas ARGS --quiet`, its stderr to `log` (shown if it fails).
    fn start(args: &[&OsStr], log: PathBuf) -> Self {
        let log_file = std::fs::File::create(&log).expect("create the process log");
        let child = splitnas().args(args).arg("--quiet").stdout(Stdio::null()).stderr(log_file).spawn().expect("splitnas starts");
        Splitnas { child, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for_success(&mut self, what: &str) {
        let status = self.child.wait().expect("wait for splitnas");
        assert!(status.success(), "{what} failed ({status}):\n{}", self.log_text());
    }

    /// Polls the run directory until `reached`, then sends SIGKILL. Returns how the process
    /// ended, or panics if it failed on its own.
    fn kill_when(&mut self, run: &Path, reached: fn(&Path) -> bool) -> ExitStatus {
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

/// What became of one kill point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Killed inside the point's window.
    Hit,
    /// Killed, but the run had already moved past the window.
    Late,
    /// Not tried: an earlier late kill left the run past this point already.
    Skipped,
    /// The process finished before the kill landed.
    Finished,
}

/// `value` without wall-clock timings: every key containing "seconds", at any depth.
fn without_timings(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().filter(|(key, _)| !key.contains("seconds")).map(|(key, v)| (key.clone(), without_timings(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(without_timings).collect()),
        other => other.clone(),
    }
}

/// Where two JSON documents first differ, as a path, so a failure names the field.
fn first_difference(reference: &Value, resumed: &Value, path: &str) -> Option<String> {
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

fn json_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// metrics.jsonl, every line a JSON object (a half-written line from a kill fails here).
fn metrics(run: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics.jsonl");
    text.lines()
        .enumerate()
        .map(|(number, line)| serde_json::from_str(line).unwrap_or_else(|error| panic!("metrics.jsonl line {}: {error}: {line:.200}", number + 1)))
        .collect()
}

/// The search's decisions, field by field (readable failures), then both documents whole.
fn assert_same_results(reference: &Path, resumed: &Path) {
    let reference_tree = json_file(&reference.join("tree.json"));
    let resumed_tree = json_file(&resumed.join("tree.json"));
    let reference_nodes = reference_tree["nodes"].as_array().expect("tree nodes");
    let resumed_nodes = resumed_tree["nodes"].as_array().expect("tree nodes");
    assert_eq!(reference_nodes.len(), NODES, "the reference tree is not the schedule's: the test config changed?");
    assert_eq!(resumed_nodes.len(), NODES, "the resumed run's tree has another shape");
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
fn assert_same_events(reference: &Path, resumed: &Path) {
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

#[test]
fn a_run_killed_repeatedly_and_resumed_ends_like_an_uninterrupted_one() {
    let scratch = tempfile::tempdir().unwrap();
    let config = scratch.path().join("resume.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let reference_dir = scratch.path().join("reference");
    let interrupted_dir = scratch.path().join("interrupted");
    let run = interrupted_dir.join(RUN_NAME);

    // The uninterrupted reference runs beside the interrupted one (one thread each).
    let reference_started = Instant::now();
    let mut reference = Splitnas::start(&run_args(&config, &reference_dir), scratch.path().join("reference.log"));

    let interrupted_started = Instant::now();
    let mut outcomes = Vec::new();
    for (stage, point) in kill_points().iter().enumerate() {
        if (point.reached)(&run) {
            outcomes.push((point.name, Outcome::Skipped));
            continue;
        }
        let log = scratch.path().join(format!("stage-{stage}.log"));
        let mut process = if stage == 0 {
            Splitnas::start(&run_args(&config, &interrupted_dir), log)
        } else {
            Splitnas::start(&["resume".as_ref(), run.as_os_str()], log)
        };
        let status = process.kill_when(&run, point.reached);
        let outcome = if status.signal() != Some(SIGKILL) || is_finished(&run) {
            Outcome::Finished
        } else if (point.passed)(&run) {
            Outcome::Late
        } else {
            Outcome::Hit
        };
        outcomes.push((point.name, outcome));
    }
    let mut last = Splitnas::start(&["resume".as_ref(), run.as_os_str()], scratch.path().join("final-resume.log"));
    last.wait_for_success("the last resume");
    let interrupted_seconds = interrupted_started.elapsed().as_secs_f64();
    reference.wait_for_success("the reference run");
    let reference_seconds = reference_started.elapsed().as_secs_f64();

    eprintln!(
        "reference run {reference_seconds:.1} s; interrupted run {interrupted_seconds:.1} s over {} processes",
        outcomes.iter().filter(|(_, o)| *o != Outcome::Skipped).count() + 1
    );
    for (name, outcome) in &outcomes {
        eprintln!("  kill point {name}: {outcome:?}");
    }
    // Each window is a second or more against 5 ms polling: a miss means a badly overloaded
    // machine and is tolerated once; more means the points no longer match the run directory.
    let hits = outcomes.iter().filter(|(_, outcome)| *outcome == Outcome::Hit).count();
    assert!(hits + 1 >= outcomes.len(), "too few kills landed where intended: {outcomes:?}");
    assert!(outcomes.iter().all(|(_, outcome)| *outcome != Outcome::Finished), "a run finished before its kill: {outcomes:?}");

    let reference_run = reference_dir.join(RUN_NAME);
    assert_same_results(&reference_run, &run);
    assert_same_events(&reference_run, &run);

    // Resuming a finished run redoes nothing: same files, the same report, in a fraction of the time.
    let snapshot = |file: &str| std::fs::read(reference_run.join(file)).unwrap();
    let before: Vec<Vec<u8>> = ["metrics.jsonl", "tree.json", "report.json"].map(snapshot).into();
    let resume_started = Instant::now();
    let output = splitnas().args(["resume".as_ref(), reference_run.as_os_str(), "--quiet".as_ref()]).output().expect("splitnas runs");
    let resume_seconds = resume_started.elapsed().as_secs_f64();
    assert!(output.status.success(), "resuming a finished run failed:\n{}", stderr(&output));
    let after: Vec<Vec<u8>> = ["metrics.jsonl", "tree.json", "report.json"].map(snapshot).into();
    assert!(before == after, "resuming a finished run changed metrics.jsonl, tree.json or report.json");
    let report_md = std::fs::read_to_string(reference_run.join("report.md")).unwrap();
    assert!(stdout(&output).contains(&report_md), "resume printed something other than the report:\n{}", stdout(&output));
    eprintln!("resume of the finished run: {resume_seconds:.2} s");
    assert!(resume_seconds < reference_seconds / 4.0, "resuming a finished run took {resume_seconds:.1} s, the whole run {reference_seconds:.1} s");
}

#[test]
fn resume_names_a_directory_that_is_not_a_run() {
    let scratch = tempfile::tempdir().unwrap();
    let not_a_run = scratch.path().join("holiday-photos");
    std::fs::create_dir_all(&not_a_run).unwrap();
    std::fs::write(not_a_run.join("beach.jpg"), b"not a run").unwrap();
    let missing = scratch.path().join("no-such-run");
    for directory in [&not_a_run, &missing] {
        let output = splitnas().args(["resume".as_ref(), directory.as_os_str(), "--quiet".as_ref()]).output().expect("splitnas runs");
        assert!(!output.status.success(), "resume of {} succeeded", directory.display());
        let message = stderr(&output);
        assert!(message.contains(&directory.display().to_string()) && message.contains("not a run directory"), "{message}");
    }
}
