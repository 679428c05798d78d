//! The out-of-tree example, `examples/third-party-plugin`, built as an outside author builds it:
//! its own workspace, lock file and target directory, `LIBTORCH` taken from `splitnas info
//! --json` (the repository's `.cargo/config.toml` does not apply: cargo runs from outside the
//! checkout). Its contract suite passes, the host loads it, it installs into the user's plugin
//! directory, and one `splitnas compare` runs its criterion and algorithm beside `gm`.

use std::path::{Path, PathBuf};

use splitnas_e2e::*;

/// Runs cargo on the example's manifest from outside the checkout, as a third party would.
fn example_cargo(args: &[&str]) {
    let info: serde_json::Value = serde_json::from_str(&stdout(&run_splitnas(&["info", "--json"]))).expect("info --json is JSON");
    let libtorch = info["libtorch"].as_str().expect("info --json names the libtorch to build against");
    let manifest = workspace_root().join("examples/third-party-plugin/Cargo.toml");
    let mut args = args.to_vec();
    args.extend(["--release", "--locked", "--manifest-path", manifest.to_str().expect("utf-8 path")]);
    let output = out_of_tree_cargo(&std::env::temp_dir(), &args, &[("LIBTORCH", libtorch), ("LIBTORCH_CXX11_ABI", "1")]);
    assert!(output.status.success(), "`cargo {}` of the example failed:\n{}", args.join(" "), String::from_utf8_lossy(&output.stderr));
}

fn built_example() -> PathBuf {
    example_cargo(&["build"]);
    out_of_tree_target_dir().join("release/libsplitnas_plugin_gradient_extras.so")
}

fn splitnas_with_user_directory(data_home: &Path, args: &[&str]) -> std::process::Output {
    splitnas_for_user(data_home).args(args).output().expect("splitnas runs")
}

#[test]
fn the_third_party_example_builds_outside_the_workspace_passes_its_contracts_and_compares_with_gm() {
    example_cargo(&["test"]);
    let library = built_example();
    let file = library.to_str().expect("utf-8 path");

    let check = run_splitnas(&["plugins", "check", file]);
    assert!(check.status.success(), "the host refuses the example: {}", stderr(&check));
    let listing = stdout(&check);
    assert!(listing.contains("criterion gm-l2") && listing.contains("algorithm fair-darts"), "{listing}");

    // Installed into the user's plugin directory, every command finds it without flags.
    let scratch = tempfile::tempdir().expect("temp dir");
    let data_home = scratch.path().join("data");
    let install = splitnas_with_user_directory(&data_home, &["plugins", "install", file]);
    assert!(install.status.success(), "install failed: {}", stderr(&install));
    let list = stdout(&splitnas_with_user_directory(&data_home, &["plugins", "list"]));
    assert!(list.contains("gm-l2") && list.contains("fair-darts") && list.contains("gm "), "{list}");

    let config = workspace_root().join("examples/third-party-plugin/tiny.toml");
    let runs = scratch.path().join("runs");
    let compare = splitnas_with_user_directory(
        &data_home,
        &[
            "compare",
            "--config",
            config.to_str().expect("utf-8 path"),
            "--criteria",
            "gm,gm-l2",
            "--algo",
            "fair-darts",
            "--seeds",
            "0",
            "--threads",
            "1",
            "--output-dir",
            runs.to_str().expect("utf-8 path"),
            "--json",
        ],
    );
    assert!(compare.status.success(), "compare failed: {}", stderr(&compare));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&compare)).expect("compare --json is JSON");
    let criteria: Vec<&str> = rows.as_array().expect("rows").iter().map(|row| row["criterion"].as_str().expect("criterion")).collect();
    assert_eq!(criteria, ["gm", "gm-l2"]);
    for row in rows.as_array().expect("rows") {
        assert_eq!(row["leaves"], 2, "one split into two leaves: {row}");
    }

    // The example's criterion got the base's `repeats` (a key both publish), and its metrics
    // are on the split tree.
    let tree: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(runs.join("gm-l2-seed0/tree.json")).expect("tree.json")).expect("tree JSON");
    let split = &tree["nodes"][0]["split"];
    assert_eq!(split["criterion"], "gm-l2");
    assert!(split["candidates"].as_array().expect("candidates").iter().all(|candidate| candidate["repeats"] == 2), "{split}");
    let metrics = split["metrics"].as_array().expect("metrics");
    assert!(metrics.iter().any(|metric| metric[0].as_str().is_some_and(|name| name.starts_with("gm-l2.score."))), "{split}");
    let algorithm = std::fs::read_to_string(runs.join("gm-l2-seed0/config.toml")).expect("config.toml");
    assert!(
        algorithm.contains("fair-darts") && algorithm.contains("zero_one_weight"),
        "the resolved configuration names the example's algorithm:\n{algorithm}"
    );
}
