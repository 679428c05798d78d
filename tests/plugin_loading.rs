//! Plugin discovery and loading, through the `splitnas` binary: good plugins load, bad files
//! are refused with a one-line reason, and the host keeps working around them.

use std::path::Path;

use serde_json::Value;
use splitnas_e2e::*;

fn list_json(extra: &[&str]) -> (Value, String) {
    let mut args = vec!["plugins", "list", "--json"];
    args.extend_from_slice(extra);
    let output = run_splitnas(&args);
    assert!(output.status.success(), "plugins list failed: {}", stderr(&output));
    (serde_json::from_str(&stdout(&output)).expect("plugins list --json prints JSON"), stderr(&output))
}

fn names_of_kind(listing: &Value, kind: &str) -> Vec<String> {
    listing["components"]
        .as_array()
        .expect("components array")
        .iter()
        .filter(|c| c["kind"] == kind)
        .map(|c| c["name"].as_str().expect("name").to_string())
        .collect()
}

/// `plugins check FILE` must fail with exactly one line on stderr containing `expected`.
fn assert_refused(file: &Path, expected: &str) {
    let output = run_splitnas(&["plugins", "check", file.to_str().expect("utf-8 path")]);
    let err = stderr(&output);
    assert!(!output.status.success(), "{} was accepted: {}", file.display(), stdout(&output));
    let first = err.lines().next().unwrap_or_default();
    assert!(first.contains(expected), "reason for {} should mention `{expected}`, got: {err}", file.display());
    assert!(first.contains(&file.display().to_string()), "the reason names the file: {first}");
}

#[test]
fn every_shipped_plugin_loads() {
    for file in shipped_plugin_files() {
        let output = run_splitnas(&["plugins", "check", file.to_str().unwrap()]);
        assert!(output.status.success(), "{} does not load: {}", file.display(), stderr(&output));
    }
    let (listing, warnings) = list_json(&[]);
    assert_eq!(listing["failures"].as_array().unwrap().len(), 0, "default location has failures: {warnings}");
    let criteria = names_of_kind(&listing, "criterion");
    assert!(criteria.contains(&"exhaustive".to_string()) && criteria.contains(&"random".to_string()), "{criteria:?}");
    // Test fixtures are not shipped: the default location only loads libsplitnas_plugin_*.
    assert!(!criteria.contains(&"panics-in-split".to_string()));
}

#[test]
fn the_table_lists_kind_name_version_file_description() {
    let output = run_splitnas(&["plugins", "list"]);
    let text = stdout(&output);
    let header = text.lines().next().expect("a header line");
    for column in ["KIND", "NAME", "VERSION", "FILE", "DESCRIPTION"] {
        assert!(header.contains(column), "{header}");
    }
    let exhaustive = text.lines().find(|l| l.contains("exhaustive")).expect("exhaustive row");
    assert!(exhaustive.starts_with("criterion") && exhaustive.contains("libsplitnas_plugin_split_criteria.so"), "{exhaustive}");
}

#[test]
fn random_bytes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("random.so");
    let bytes: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(&file, bytes).unwrap();
    assert_refused(&file, "not a loadable shared library");
}

#[test]
fn an_empty_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("empty.so");
    std::fs::write(&file, b"").unwrap();
    assert_refused(&file, "the file is empty");
}

#[test]
fn a_missing_file_is_refused() {
    assert_refused(Path::new("/nonexistent/libnothing.so"), "not a loadable shared library");
}

#[test]
fn a_shared_library_that_is_not_a_plugin_is_refused() {
    // libc10 ships with libtorch: a real shared library with no splitnas root module.
    let libtorch = workspace_root().join(".libtorch/lib/libc10.so");
    assert!(libtorch.exists(), "run `cargo xtask setup` first");
    assert_refused(&libtorch, "not a splitnas plugin");
}

#[test]
fn a_plugin_built_against_a_changed_plugin_api_layout_is_refused() {
    let plugin = mismatched_plugin(ApiMismatch::Layout);
    assert_refused(&plugin, "plugin-api types differ");
    // The cause comes first, in one line: the type that differs and how.
    let output = run_splitnas(&["plugins", "check", plugin.to_str().unwrap()]);
    let err = stderr(&output);
    let first = err.lines().next().unwrap_or_default();
    assert!(first.contains("cause: ComponentInfo: incompatible type size") && first.contains("too many fields (expected 5, found 6)"), "{first}");
    assert!(err.lines().count() <= 3, "without --verbose the refusal stays short: {err}");
    // `--verbose` adds abi_stable's full report.
    let verbose = run_splitnas(&["plugins", "check", "--verbose", plugin.to_str().unwrap()]);
    assert!(stderr(&verbose).contains("Layout of expected type:") && stderr(&verbose).lines().count() > 20, "the full report follows with --verbose");
}

#[test]
fn a_plugin_with_another_abi_version_is_refused() {
    let plugin = mismatched_plugin(ApiMismatch::AbiVersion);
    assert_refused(&plugin, "plugin ABI version 9999, this host needs 1");
}

#[test]
fn bad_files_are_skipped_and_the_good_ones_still_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("garbage.so"), b"\x7fELF but not really").unwrap();
    std::fs::write(dir.path().join("empty.so"), b"").unwrap();
    std::fs::copy(fixture_plugin(), dir.path().join("libfixtures.so")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"not a library, not even tried").unwrap();

    let (listing, warnings) = list_json(&["--plugin-dir", dir.path().to_str().unwrap()]);
    let failures = listing["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(warnings.contains("garbage.so") && warnings.contains("empty.so"), "{warnings}");
    assert!(!warnings.contains("notes.txt"));
    let criteria = names_of_kind(&listing, "criterion");
    for expected in ["exhaustive", "random", "panics-in-split", "panics-in-create"] {
        assert!(criteria.contains(&expected.to_string()), "{expected} missing from {criteria:?}");
    }
    assert!(names_of_kind(&listing, "space").contains(&"echo".to_string()));
}

#[test]
fn plugin_path_variable_is_searched() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture_plugin(), dir.path().join("libfixtures.so")).unwrap();
    let output = splitnas().args(["plugins", "list", "--json"]).env("SPLITNAS_PLUGIN_PATH", dir.path()).output().unwrap();
    let listing: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert!(names_of_kind(&listing, "space").contains(&"echo".to_string()));
}

#[test]
fn duplicate_components_are_reported_and_the_first_kept() {
    let dir = tempfile::tempdir().unwrap();
    let second = dir.path().join("libcopy_of_criteria.so");
    std::fs::copy(library_path("splitnas_plugin_split_criteria"), &second).unwrap();
    let (listing, warnings) = list_json(&["--plugin-dir", dir.path().to_str().unwrap()]);
    let duplicates = listing["duplicates"].as_array().unwrap();
    assert_eq!(duplicates.len(), 2, "exhaustive and random are both duplicated: {duplicates:?}");
    assert!(warnings.contains("duplicate criterion `exhaustive`"), "{warnings}");
    // --plugin-dir is searched first, so its copy is the one kept.
    let exhaustive = listing["components"].as_array().unwrap().iter().find(|c| c["name"] == "exhaustive").unwrap();
    assert_eq!(exhaustive["file"].as_str().unwrap(), second.to_str().unwrap());
}

/// `plugins install` checks a plugin and puts it where every command finds it without flags;
/// `plugins remove` takes it out by a component's name; an unusable file is never installed.
#[test]
fn installed_plugins_are_found_without_flags_and_removed_by_name() {
    let data_home = tempfile::tempdir().unwrap();
    let with_home = |args: &[&str]| splitnas().args(args).env("XDG_DATA_HOME", data_home.path()).output().unwrap();
    let spaces = |output: &std::process::Output| {
        let listing: Value = serde_json::from_str(&stdout(output)).expect("plugins list --json prints JSON");
        names_of_kind(&listing, "space")
    };
    assert!(!spaces(&with_home(&["plugins", "list", "--json"])).contains(&"echo".to_string()));

    let installed = with_home(&["plugins", "install", fixture_plugin().to_str().unwrap()]);
    assert!(installed.status.success(), "{}", stderr(&installed));
    assert!(stdout(&installed).contains("space `echo`"), "{}", stdout(&installed));
    assert!(data_home.path().join("splitnas/plugins").join(fixture_plugin().file_name().unwrap()).exists());
    assert!(spaces(&with_home(&["plugins", "list", "--json"])).contains(&"echo".to_string()), "found with no flag");

    let garbage = data_home.path().join("garbage.so");
    std::fs::write(&garbage, b"\x7fELF but not really").unwrap();
    let refused = with_home(&["plugins", "install", garbage.to_str().unwrap()]);
    assert!(!refused.status.success() && stderr(&refused).contains("is not installed"), "{}", stderr(&refused));
    assert!(!data_home.path().join("splitnas/plugins/garbage.so").exists());

    let removed = with_home(&["plugins", "remove", "echo"]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    assert!(!spaces(&with_home(&["plugins", "list", "--json"])).contains(&"echo".to_string()));
    let missing = with_home(&["plugins", "remove", "echo"]);
    assert!(!missing.status.success() && stderr(&missing).contains("no plugin"), "{}", stderr(&missing));
}
