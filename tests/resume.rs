//! `splitnas resume` after SIGKILL. One few-shot run is killed at several points (root
//! training, root splitting, children just created, one sibling split and the other not, a
//! restarted leaf mid-training, derivation, stand-alone training) and resumed after each; it
//! must end with the same split tree, report and logged events as an uninterrupted run.
//!
//! Every epoch reseeds libtorch from (seed, node, epoch) and the loaders seek to the epoch's
//! first batch, so on the CPU with a fixed seed the results agree exactly: nothing here is
//! compared with a tolerance, and only wall-clock timings ("...seconds") are ignored.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Instant;

use splitnas_e2e::resume::*;
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
    assert_same_results(&reference_run, &run, NODES);
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
