//! `splitnas bench`: ground-truth tables (sampling, resuming, workers), ranking a run's
//! supernet against a table (BN recalibration included), and table conversion, as users run them.

use std::path::{Path, PathBuf};

use splitnas_bench::ground_truth::{run_ground_truth, GroundTruthRequest, Selection};
use splitnas_bench::ranking::{rank_run, RankingOptions, RankingReport};
use splitnas_bench::table::{GroundTruthTable, TableEntry};
use splitnas_e2e::*;
use splitnas_run::tree::SplitTree;
use splitnas_run::{run, RunOptions, RunSetup};

const TINY_TRAINING: &str = "[final]\nepochs = 1\nmax_steps_per_epoch = 2\n";

fn quiet() -> RunOptions {
    RunOptions { quiet: true, ..RunOptions::default() }
}

fn ground_truth(root: &Path, output: &str, seeds: &[u64], worker: Option<(usize, usize)>) -> anyhow::Result<GroundTruthTable> {
    let request = GroundTruthRequest {
        config: tiny_config("rsps", root, TINY_TRAINING),
        selection: Selection::Stratified(4),
        seeds: seeds.to_vec(),
        output_dir: root.join(output),
        command: "test".to_string(),
        worker,
    };
    run_ground_truth(request, shipped_registry(), &quiet())
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().map(str::to_string).collect()
}

#[test]
fn ground_truth_samples_by_size_and_continues_where_it_stopped() {
    let _generator = exclusive_generator();
    let root = tempfile::tempdir().unwrap();
    let table = ground_truth(root.path(), "gt", &[0, 1], None).unwrap();
    assert_eq!(table.architectures.len(), 4);
    let parameters: Vec<u64> = table.architectures.iter().map(|e| e.parameters.unwrap()).collect();
    assert!(parameters.windows(2).all(|w| w[0] <= w[1]), "one architecture per size stratum, in stratum order: {parameters:?}");
    assert!(parameters[0] < parameters[3], "the strata span small to large networks: {parameters:?}");
    for entry in &table.architectures {
        assert_eq!(entry.seeds, vec![0, 1]);
        assert!(entry.accuracy.iter().chain(&entry.valid_accuracy).all(|a| (0.0..=1.0).contains(a)));
    }
    let directory = root.path().join("gt");
    assert_eq!(GroundTruthTable::read(&directory.join("table.json")).unwrap(), table);
    assert_eq!(GroundTruthTable::read(&directory.join("table.csv")).unwrap().architectures.len(), 4);

    // Killed after five trainings, mid-write of the sixth: only the missing ones are redone,
    // and (one thread, seeded) they come out the same.
    let records = directory.join("results.jsonl");
    let mut all = lines(&records);
    assert_eq!(all.len(), 8);
    assert!(all.iter().all(|line| line.contains("\"threads\":1")), "each record keeps the thread count [run] pinned: {all:?}");
    // A record written before the thread count was kept still reads.
    all[0] = all[0].replace(",\"threads\":1", "");
    std::fs::write(&records, format!("{}\n{{\"genotype\":\"|nor_co", all[..5].join("\n"))).unwrap();
    let resumed = ground_truth(root.path(), "gt", &[0, 1], None).unwrap();
    assert_eq!(
        resumed.architectures.iter().map(|e| &e.accuracy).collect::<Vec<_>>(),
        table.architectures.iter().map(|e| &e.accuracy).collect::<Vec<_>>()
    );
    let complete: Vec<String> = lines(&records).into_iter().filter(|l| l.ends_with('}')).collect();
    assert_eq!(complete.len(), 8, "three trainings redone, none twice");

    // The same directory with another protocol is refused, not mixed.
    let error = ground_truth(root.path(), "gt", &[0], None).unwrap_err().to_string();
    assert!(error.contains("different protocol"), "{error}");

    // Two workers share a directory; a plain run then assembles the same table.
    ground_truth(root.path(), "shared", &[0, 1], Some((0, 2))).unwrap();
    assert_eq!(lines(&root.path().join("shared/results.jsonl")).len(), 4);
    assert!(!root.path().join("shared/table.json").exists(), "workers leave the table to the assembling run");
    ground_truth(root.path(), "shared", &[0, 1], Some((1, 2))).unwrap();
    let assembled = ground_truth(root.path(), "shared", &[0, 1], None).unwrap();
    assert_eq!(lines(&root.path().join("shared/results.jsonl")).len(), 8);
    assert_eq!(
        assembled.architectures,
        table
            .architectures
            .iter()
            .map(|e| TableEntry { seconds: assembled.find(&e.genotype).unwrap().seconds.clone(), ..e.clone() })
            .collect::<Vec<_>>()
    );
}

/// A finished few-shot run (one GM split into two leaves) and a table of architectures from
/// both leaves.
fn split_run(root: &Path) -> (PathBuf, PathBuf) {
    let extra = r#"
[search]
epochs = 2
max_steps_per_epoch = 4
eval_batches = 2

[split]
criterion = "gm"
epochs = [1]
groups = [2]
repeats = 1

[final]
epochs = 0
select_by = "supernet"
"#;
    let mut config = tiny_config("rsps", root, &format!("derive_samples = 3\n{extra}"));
    config.run.name = "split".to_string();
    let setup = RunSetup::new(config, shipped_registry(), &quiet()).unwrap();
    let directory = setup.directory.path().to_path_buf();
    run(setup, &quiet()).unwrap();
    let operations = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"];
    let entries = (0..10)
        .map(|i| {
            let op = |k: usize| operations[(i + k) % 5];
            TableEntry {
                genotype: format!("|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|", op(0), op(1), op(2), op(3), op(4), op(i % 3)),
                accuracy: vec![0.5 + i as f64 / 40.0],
                seeds: vec![],
                valid_accuracy: vec![],
                parameters: None,
                flops: None,
                seconds: vec![],
            }
        })
        .collect();
    let table_path = root.join("table.json");
    GroundTruthTable::new(Some("nb201".into()), "made up", entries).write(&table_path).unwrap();
    (directory, table_path)
}

fn rank(directory: &Path, table: &Path) -> RankingReport {
    let options = RankingOptions { eval_batches: 3, recalibration_batches: 3, top_k: vec![3] };
    rank_run(directory, table, shipped_registry(), &options, &quiet()).unwrap()
}

#[test]
fn ranking_evaluates_each_architecture_in_its_leaf_and_recalibration_ignores_stored_statistics() {
    let _generator = exclusive_generator();
    let root = tempfile::tempdir().unwrap();
    let (directory, table) = split_run(root.path());
    let tree: SplitTree = serde_json::from_str(&std::fs::read_to_string(directory.join("tree.json")).unwrap()).unwrap();
    let split = tree.nodes[0].split.clone().expect("the root split");
    let checkpoints = |d: &Path| -> Vec<Vec<u8>> {
        tree.leaves().iter().map(|l| std::fs::read(d.join(format!("checkpoints/node-{l}.safetensors"))).unwrap()).collect()
    };
    let before = checkpoints(&directory);

    let report = rank(&directory, &table);
    assert_eq!(report.architectures, 10);
    assert!(report.skipped.is_empty());
    assert_eq!(report.leaves, 2);
    for score in &report.scores {
        // The leaf is the child whose group holds the architecture's option on the split edge.
        let edge_segment = score.genotype.split('|').filter(|s| s.contains('~')).nth(split.choice_point as usize).unwrap();
        let option =
            tree.option_names[split.choice_point as usize].iter().position(|name| edge_segment.starts_with(&format!("{name}~"))).unwrap() as u32;
        let child = tree.nodes[0].children[split.groups.iter().position(|g| g.contains(&option)).unwrap()];
        assert_eq!(score.leaf, child, "{}", score.genotype);
        assert!(score.predicted.iter().all(|p| (0.0..=1.0).contains(p)));
    }
    for method in &report.methods {
        assert!((-1.0..=1.0).contains(&method.kendall_tau) && (-1.0..=1.0).contains(&method.spearman_rho), "{method:?}");
        assert!(method.regret >= 0.0);
    }
    assert_eq!(checkpoints(&directory), before, "ranking leaves the run's checkpoints untouched");
    let cache = directory.join("ranking-predictions.json");
    assert!(cache.exists(), "predictions are kept for the next table");
    std::fs::remove_file(&cache).unwrap();
    let again = rank(&directory, &table);
    assert_eq!(again.scores.iter().map(|s| &s.predicted).collect::<Vec<_>>(), report.scores.iter().map(|s| &s.predicted).collect::<Vec<_>>());

    // Corrupt the stored BN statistics: inference with them changes, recalibration does not
    // depend on them at all.
    for leaf in tree.leaves() {
        let path = directory.join(format!("checkpoints/node-{leaf}.safetensors"));
        let tensors: Vec<(String, tch::Tensor)> = splitnas_engine::checkpoint::read_tensors(&path)
            .unwrap()
            .into_iter()
            .map(|(name, t)| {
                let corrupted = if name.starts_with("buffer.") && t.is_floating_point() { t.ones_like() * 50.0 } else { t };
                (name, corrupted)
            })
            .collect();
        splitnas_engine::checkpoint::write_tensors(&path, &tensors).unwrap();
    }
    let cached = rank(&directory, &table);
    assert_eq!(
        cached.scores.iter().map(|s| &s.predicted).collect::<Vec<_>>(),
        report.scores.iter().map(|s| &s.predicted).collect::<Vec<_>>(),
        "cached predictions are reused"
    );
    std::fs::remove_file(&cache).unwrap();
    let corrupted = rank(&directory, &table);
    let column = |r: &RankingReport, m: usize| r.scores.iter().map(|s| s.predicted[m]).collect::<Vec<_>>();
    assert_ne!(column(&corrupted, 0), column(&report, 0), "running statistics are used as stored");
    assert_eq!(column(&corrupted, 1), column(&report, 1), "recalibration re-estimates them from scratch");
}

#[test]
fn bench_commands_as_a_user_runs_them() {
    let _generator = exclusive_generator();
    let root = tempfile::tempdir().unwrap();
    let fixture = workspace_root().join("crates/bench/tests/fixtures/nb201-tables/nats-tss-fixture.pickle.pbz2");
    let csv = root.path().join("nats.csv");
    let output = run_splitnas(&[
        "bench",
        "convert-nb201",
        fixture.to_str().unwrap(),
        "--dataset",
        "cifar10",
        "--set",
        "ori-test",
        "--output",
        csv.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("3 architectures"), "{}", stdout(&output));
    assert_eq!(GroundTruthTable::read(&csv).unwrap().architectures[0].seeds, vec![777, 888]);

    let (directory, table) = split_run(root.path());
    let json = root.path().join("ranking.json");
    let output = run_splitnas(&[
        "bench",
        "ranking",
        directory.to_str().unwrap(),
        "--table",
        table.to_str().unwrap(),
        "--eval-batches",
        "2",
        "--recalibration-batches",
        "2",
        "--top-k",
        "2",
        "--json",
        json.to_str().unwrap(),
        "-q",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("running") && text.contains("recalibrated") && text.contains("top-2"), "{text}");
    let report: RankingReport = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report.architectures, 10);

    let unfinished = root.path().join("nowhere");
    std::fs::create_dir_all(&unfinished).unwrap();
    let output = run_splitnas(&["bench", "ranking", unfinished.to_str().unwrap(), "--table", table.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("not a run directory"), "{}", stderr(&output));
}
