//! `splitnas plugins new`: the crate it writes for each kind builds outside the workspace,
//! passes its kind's contract suite as generated, and its plugin checks, installs, lists and
//! is removed again; the build refuses another libtorch than the host's; bad names and
//! non-empty targets are refused.
//!
//! The generated crates are built in release, with their own `.cargo/config.toml` (the cargo
//! commands run inside them, with the variables this test inherited from the workspace's
//! cargo removed), into `target/out-of-tree`: shared by every generated crate and kept between
//! runs, so that tch and torch-sys compile once.

use std::process::Output;

use splitnas_e2e::{out_of_tree_cargo, out_of_tree_target_dir, run_splitnas, splitnas_for_user, stderr, stdout};

fn assert_success(output: &Output, what: &str) {
    assert!(output.status.success(), "{what} failed:\n--- stdout\n{}\n--- stderr\n{}", stdout(output), stderr(output));
}

/// Generates, builds, tests, checks, installs, lists and removes a plugin of `kind`.
fn generated_plugin_works(kind: &str, name: &str) {
    let root = tempfile::tempdir().expect("temporary directory");
    let dir = root.path().join(name);
    let created = run_splitnas(&["plugins", "new", "--kind", kind, name, "--path", dir.to_str().expect("UTF-8 path")]);
    assert_success(&created, "splitnas plugins new");
    let text = stdout(&created);
    let library_name = format!("libsplitnas_plugin_{}.so", name.replace('-', "_"));
    for next in ["next:", "cargo test", "cargo build --release", &format!("splitnas plugins check target/release/{library_name}")] {
        assert!(text.contains(next), "`plugins new` should print `{next}`:\n{text}");
    }
    for file in ["Cargo.toml", "Cargo.lock", ".cargo/config.toml", "build.rs", "src/lib.rs", "tests/contract.rs", "README.md", ".gitignore"] {
        assert!(dir.join(file).is_file(), "{file} was not generated");
    }

    // The crate's configuration holds what `splitnas info --json` reports.
    let info = run_splitnas(&["info", "--json"]);
    assert_success(&info, "splitnas info --json");
    let report: serde_json::Value = serde_json::from_str(&stdout(&info)).expect("info --json is JSON");
    let config: toml::Table = std::fs::read_to_string(dir.join(".cargo/config.toml")).expect("config").parse().expect("config is TOML");
    assert_eq!(config["env"]["LIBTORCH"].as_str(), report["libtorch"].as_str());
    assert_eq!(config["env"]["SPLITNAS_HOST_TORCH_ABI"].as_str(), report["torch_abi"].as_str());

    let tested = out_of_tree_cargo(&dir, &["test", "--release"], &[]);
    assert_success(&tested, &format!("cargo test --release in the generated {kind} crate"));
    let contract = format!("honours_the_{kind}_contract ... ok");
    assert!(stdout(&tested).contains(&contract), "the contract suite did not run:\n{}", stdout(&tested));
    assert_success(&out_of_tree_cargo(&dir, &["build", "--release"], &[]), &format!("cargo build --release in the generated {kind} crate"));
    let library = out_of_tree_target_dir().join("release").join(&library_name);
    assert!(library.is_file(), "{} was not built", library.display());
    let library_arg = library.to_str().expect("UTF-8 path");

    let checked = run_splitnas(&["plugins", "check", library_arg]);
    assert_success(&checked, "splitnas plugins check");
    let text = stdout(&checked);
    assert!(text.contains(&format!("ok, plugin `{name}`")), "{text}");
    assert!(text.contains(&format!("  {kind} {name} 0.1.0: ")), "the {kind} should be listed:\n{text}");

    let data_home = tempfile::tempdir().expect("temporary directory");
    let user_splitnas = |args: &[&str]| splitnas_for_user(data_home.path()).args(args).output().expect("splitnas runs");
    assert_success(&user_splitnas(&["plugins", "install", library_arg]), "splitnas plugins install");
    assert!(data_home.path().join("splitnas/plugins").join(&library_name).is_file(), "installed into the user's plugin directory");
    let listed = user_splitnas(&["plugins", "list"]);
    assert_success(&listed, "splitnas plugins list");
    let row = stdout(&listed).lines().find(|line| line.split_whitespace().take(2).eq([kind, name])).map(str::to_string);
    let row = row.unwrap_or_else(|| panic!("`plugins list` does not show the {kind} `{name}`:\n{}", stdout(&listed)));
    assert!(row.contains(&library_name), "{row}");
    assert_success(&user_splitnas(&["plugins", "remove", name]), "splitnas plugins remove");
    let listed = user_splitnas(&["plugins", "list"]);
    assert!(!stdout(&listed).contains(&library_name), "still listed after removal:\n{}", stdout(&listed));

    if kind == "criterion" {
        // Another libtorch than the host's: the build script says so before anything links.
        let refused = out_of_tree_cargo(&dir, &["build", "--release"], &[("SPLITNAS_HOST_TORCH_ABI", "tch 0.24, libtorch 9.9.9")]);
        assert!(!refused.status.success(), "a build for another host libtorch must fail");
        let text = stderr(&refused);
        for part in ["libtorch 9.9.9", "LIBTORCH=", "splitnas info --json"] {
            assert!(text.contains(part), "the refusal should name `{part}`:\n{text}");
        }
    }
}

#[test]
fn a_generated_space_builds_passes_its_contract_and_installs() {
    generated_plugin_works("space", "scaffold-space");
}

#[test]
fn a_generated_algorithm_builds_passes_its_contract_and_installs() {
    generated_plugin_works("algorithm", "scaffold-algorithm");
}

#[test]
fn a_generated_criterion_builds_passes_its_contract_and_installs() {
    generated_plugin_works("criterion", "scaffold-criterion");
}

#[test]
fn bad_names_and_occupied_targets_are_refused() {
    let root = tempfile::tempdir().expect("temporary directory");
    let path = |name: &str| root.path().join(name).to_str().expect("UTF-8 path").to_string();
    for bad in ["Bad", "2fast", "under_score", "dot.ted"] {
        let output = run_splitnas(&["plugins", "new", "--kind", "criterion", bad, "--path", &path(bad)]);
        assert!(!output.status.success(), "`{bad}` was accepted");
        assert!(stderr(&output).contains("lowercase letters, digits and '-'"), "{}", stderr(&output));
        assert!(!root.path().join(bad).exists(), "nothing is written for `{bad}`");
    }
    let output = run_splitnas(&["plugins", "new", "--kind", "space", "api", "--path", &path("api")]);
    assert!(stderr(&output).contains("splitnas-plugin-api"), "{}", stderr(&output));

    let occupied = root.path().join("occupied");
    std::fs::create_dir(&occupied).expect("create dir");
    std::fs::write(occupied.join("keep.txt"), "mine").expect("write file");
    let output = run_splitnas(&["plugins", "new", "--kind", "algorithm", "fine-name", "--path", &path("occupied")]);
    assert!(!output.status.success(), "a non-empty directory was written into");
    assert!(stderr(&output).contains("exists and is not empty"), "{}", stderr(&output));
    assert_eq!(std::fs::read_dir(&occupied).expect("read dir").count(), 1, "nothing was added");

    let output = run_splitnas(&["plugins", "new", "--kind", "space", "fine-name", "--path", &path("new"), "--splitnas-source", &path("occupied")]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("not a splitnas checkout"), "{}", stderr(&output));
}
