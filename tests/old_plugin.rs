//! A plugin built against the plugin-api of ABI 1.0 (before the ABI 1.1 and 1.2 methods were
//! appended) still loads in this host, and the appended methods answer their defaults for it.
//!
//! The old sources (plugin-api, build-support and the fixture plugin as of ABI 1.0) are a
//! snapshot, `fixture-plugins/plugin-api-abi-1.0.tar.gz` (see the README beside it). The
//! helper below builds them as a separate workspace under `target/`, like
//! `splitnas_e2e::mismatched_plugin` does for modified copies.

use std::path::PathBuf;
use std::process::Command;

use abi_stable::std_types::{RNone, RResult, RStr};
use splitnas_e2e::*;
use splitnas_plugin_api::{ComponentFactory, ErrorKind, SpaceSetup};

/// The old fixture plugin's package, renamed so that its library does not replace the
/// current fixture plugin's in the shared target directory.
const OLD_PACKAGE: &str = "splitnas-testplugin-abi-1-0";

/// Builds the ABI 1.0 fixture plugin into this profile's directory and returns the library.
fn old_abi_plugin() -> PathBuf {
    ensure_built();
    let root = workspace_root();
    let target = profile_dir().parent().expect("profile dir is inside target").to_path_buf();
    let dir = target.join("old-abi").join("abi-1.0");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the old-ABI workspace");
    let snapshot = root.join("tests/fixture-plugins/plugin-api-abi-1.0.tar.gz");
    let status = Command::new("tar").arg("-xzf").arg(&snapshot).arg("-C").arg(&dir).status().expect("tar runs");
    assert!(status.success(), "cannot unpack {}", snapshot.display());
    // Own directory names: cargo keys path packages by their path relative to the workspace
    // root, so the old copies must not share the current ones' paths.
    std::fs::rename(dir.join("plugin-api"), dir.join("plugin-api-abi-1.0")).expect("rename plugin-api");
    std::fs::rename(dir.join("build-support"), dir.join("build-support-abi-1.0")).expect("rename build-support");
    std::fs::rename(dir.join("tests/fixture-plugins/fixtures"), dir.join("plugin")).expect("move the fixture plugin");
    let manifest = dir.join("plugin/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("plugin manifest");
    assert!(text.contains("name = \"splitnas-testplugin-fixtures\""), "unexpected fixture manifest in the snapshot");
    std::fs::write(&manifest, text.replace("name = \"splitnas-testplugin-fixtures\"", &format!("name = \"{OLD_PACKAGE}\""))).expect("write manifest");

    // The current root manifest (same tch, abi_stable and profiles) with the old members.
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).expect("root manifest");
    let start = workspace.find("members = [").expect("members list");
    let end = start + workspace[start..].find(']').expect("end of members");
    let workspace =
        format!("{}members = [\"plugin-api-abi-1.0\", \"build-support-abi-1.0\", \"plugin\"]{}", &workspace[..start], &workspace[end + 1..]);
    let workspace = workspace
        .replace("path = \"plugin-api\"", "path = \"plugin-api-abi-1.0\"")
        .replace("path = \"build-support\"", "path = \"build-support-abi-1.0\"");
    assert!(workspace.contains("path = \"plugin-api-abi-1.0\""), "the root manifest no longer names plugin-api by path: update old_abi_plugin");
    std::fs::write(dir.join("Cargo.toml"), workspace).expect("write workspace manifest");
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).expect("copy lock file");

    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(&dir).env("CARGO_TARGET_DIR", &target).args(["build", "--offline", "-p", OLD_PACKAGE]);
    if profile_dir().file_name().is_some_and(|name| name == "release") {
        command.args(["--release", "--config", "build.incremental=false"]);
    }
    let output = command.output().expect("cargo runs");
    assert!(output.status.success(), "building the ABI 1.0 plugin failed:\n{}", String::from_utf8_lossy(&output.stderr));
    profile_dir().join(format!("lib{}.so", OLD_PACKAGE.replace('-', "_")))
}

#[test]
fn a_plugin_built_against_abi_1_0_loads_and_gets_the_defaults_of_the_appended_methods() {
    let plugin = old_abi_plugin();

    let output = run_splitnas(&["plugins", "check", plugin.to_str().expect("utf-8 path")]);
    assert!(output.status.success(), "the ABI 1.0 plugin is refused: {}", stderr(&output));
    let listing = stdout(&output);
    for component in ["space echo", "criterion panics-in-split", "criterion panics-in-create"] {
        assert!(listing.contains(component), "`{component}` is not listed:\n{listing}");
    }

    // In-process: the old space's vtable lacks the ABI 1.1 methods, so their defaults answer.
    let components = splitnas_engine::plugins::load_plugin(&plugin).expect("the host loads the ABI 1.0 plugin").components;
    let echo = components.iter().find(|component| component.name.as_str() == "echo").expect("the echo space");
    let ComponentFactory::Space(factory) = echo.factory else { panic!("echo is a space") };
    let mut space = factory(RStr::from_str("{}")).into_result().expect("the old factory creates the space");
    let setup = SpaceSetup { classes: 10, input_channels: 3, image_size: 32, network_channels: 0, network_cells: 0 };
    match space.configure(&setup) {
        RResult::RErr(error) => assert_eq!(error.kind, ErrorKind::Unsupported, "{error}"),
        RResult::ROk(()) => panic!("an ABI 1.0 space cannot have configured itself"),
    }
    let mask = space.info().into_result().expect("info").full_mask();
    let sampled = space.sample_architecture(&mask, 1).into_result();
    assert_eq!(sampled.expect_err("no sampling in ABI 1.0").kind, ErrorKind::Unsupported);
    assert_eq!(space.architecture_count(&mask).into_result().expect("the default count"), RNone);
    assert_eq!(space.architecture_at(&mask, 0).into_result().expect_err("no enumeration").kind, ErrorKind::Unsupported);
    // ABI 1.2's appended method, too: the host then exports under the network's own names.
    let architecture = splitnas_plugin_api::Architecture { choices: vec![0; mask.rows.len()].into() };
    assert_eq!(space.export_description(&architecture).into_result().expect_err("no export in ABI 1.0").kind, ErrorKind::Unsupported);
    // The methods of ABI 1.0 still work.
    assert_eq!(space.info().into_result().expect("info").name.as_str(), "echo");
}
