//! Shared helpers for the end-to-end tests: build what the tests load, run the binary,
//! and make plugins built against a modified plugin-api.
//!
//! `cargo test` does not build the cdylibs of other workspace members, so the first test
//! that needs them runs `cargo build` for the host and the plugins (a no-op when
//! `cargo xtask test` built them already).

pub mod resume;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the workspace").to_path_buf()
}

/// `target/<profile>`: where cargo put this test binary's sibling artifacts.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash>
    exe.parent().and_then(Path::parent).expect("test binaries live in target/<profile>/deps").to_path_buf()
}

fn target_dir() -> PathBuf {
    profile_dir().parent().expect("profile dir is inside target").to_path_buf()
}

/// The target directory of crates built outside the workspace (the third-party example,
/// generated plugin crates): not the workspace's, but shared by them and kept between runs so
/// that tch and abi_stable compile once.
pub fn out_of_tree_target_dir() -> PathBuf {
    target_dir().join("out-of-tree")
}

/// What the workspace's cargo and its `.cargo/config.toml` hand the tests, and a crate built
/// outside the workspace must not see: it takes its libtorch from its own configuration.
const WORKSPACE_BUILD_VARIABLES: [&str; 13] = [
    "LIBTORCH",
    "LIBTORCH_CXX11_ABI",
    "LIBTORCH_INCLUDE",
    "LIBTORCH_LIB",
    "LIBTORCH_USE_PYTORCH",
    "LIBTORCH_STATIC",
    "SPLITNAS_HOST_TORCH_ABI",
    "SPLITNAS_HOST_PLUGIN_API",
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
];

/// `cargo ARGS` run in `dir` as an outside author runs it: none of the workspace's build
/// variables, [`out_of_tree_target_dir`] as the target directory, `extra_env` on top. One at a
/// time across the process's tests.
pub fn out_of_tree_cargo(dir: &Path, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(dir).args(args);
    for variable in WORKSPACE_BUILD_VARIABLES {
        command.env_remove(variable);
    }
    command.env("CARGO_TARGET_DIR", out_of_tree_target_dir());
    for (key, value) in extra_env {
        command.env(key, value);
    }
    command.output().expect("cargo runs")
}

fn is_release() -> bool {
    profile_dir().file_name().is_some_and(|name| name == "release")
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(workspace_root()).env("CARGO_TARGET_DIR", target_dir());
    if is_release() {
        command.arg("--config").arg("build.incremental=false");
    }
    command
}

fn run_cargo_build(mut command: Command, what: &str) {
    let output = command.output().unwrap_or_else(|error| panic!("cannot run cargo to build {what}: {error}"));
    assert!(output.status.success(), "building {what} failed:\n{}", String::from_utf8_lossy(&output.stderr));
}

/// Packages under `plugins/`: what splitnas ships.
pub fn shipped_plugin_packages() -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(workspace_root().join("plugins")).expect("plugins/ exists") {
        let manifest = entry.expect("readable plugins/").path().join("Cargo.toml");
        if let Ok(text) = std::fs::read_to_string(&manifest) {
            let name = text.lines().find_map(|l| l.strip_prefix("name = ")).expect("package name");
            names.push(name.trim_matches('"').to_string());
        }
    }
    names.sort();
    names
}

/// Builds the host binary, every shipped plugin and the test-fixture plugin, once per process.
pub fn ensure_built() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut command = cargo();
        command.arg("build");
        if is_release() {
            command.arg("--release");
        }
        for package in ["splitnas".to_string(), "splitnas-testplugin-fixtures".to_string()].into_iter().chain(shipped_plugin_packages()) {
            command.args(["-p", &package]);
        }
        run_cargo_build(command, "the host and plugins");
    });
}

/// The path of a built library in the profile directory, e.g. `library_path("splitnas_plugin_split_criteria")`.
pub fn library_path(stem: &str) -> PathBuf {
    ensure_built();
    profile_dir().join(format!("lib{stem}.so"))
}

/// Every shipped plugin file that the build produced.
pub fn shipped_plugin_files() -> Vec<PathBuf> {
    ensure_built();
    shipped_plugin_packages().iter().map(|package| library_path(&package.replace('-', "_"))).collect()
}

/// The fixture plugin (panicking components, echo space).
pub fn fixture_plugin() -> PathBuf {
    library_path("splitnas_testplugin_fixtures")
}

/// A `splitnas` command that sees only the default plugin location (no user plugin path).
pub fn splitnas() -> Command {
    ensure_built();
    let mut command = Command::new(profile_dir().join("splitnas"));
    command.env_remove("SPLITNAS_PLUGIN_PATH");
    command
}

/// A `splitnas` command whose user plugin directory lies under `data_home` (`XDG_DATA_HOME`).
pub fn splitnas_for_user(data_home: &Path) -> Command {
    let mut command = splitnas();
    command.env("XDG_DATA_HOME", data_home);
    command
}

/// Runs `splitnas ARGS`, returning its output.
pub fn run_splitnas(args: &[&str]) -> Output {
    splitnas().args(args).output().expect("splitnas runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// How a generated plugin's copy of plugin-api differs from the real one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiMismatch {
    /// A field appended to `ComponentInfo`: abi_stable's layout check must refuse it.
    Layout,
    /// Same layout, another `ABI_VERSION`: the host's own check must refuse it.
    AbiVersion,
}

impl ApiMismatch {
    fn name(self) -> &'static str {
        match self {
            ApiMismatch::Layout => "layout",
            ApiMismatch::AbiVersion => "abi-version",
        }
    }

    /// Applies the modification to the copied plugin-api sources.
    fn modify(self, api_dir: &Path) {
        let (file, from, to) = match self {
            ApiMismatch::Layout => {
                ("src/module.rs", "    pub factory: ComponentFactory,\n}", "    pub factory: ComponentFactory,\n    pub homepage: RString,\n}")
            }
            ApiMismatch::AbiVersion => ("src/lib.rs", "pub const ABI_VERSION: u32 = 1;", "pub const ABI_VERSION: u32 = 9999;"),
        };
        let path = api_dir.join(file);
        let text = std::fs::read_to_string(&path).expect("copied plugin-api source");
        assert!(text.contains(from), "the mismatch generator no longer matches {}: update ApiMismatch::modify", path.display());
        let mut text = text.replace(from, to);
        if self == ApiMismatch::Layout {
            // Keep the modified copy compiling: every ComponentInfo literal gets the new field.
            text = text.replace("        factory,\n    }", "        factory,\n        homepage: RString::new(),\n    }");
        }
        std::fs::write(&path, text).expect("write modified plugin-api");
        if self == ApiMismatch::Layout {
            let author = api_dir.join("src/author.rs");
            let text = std::fs::read_to_string(&author)
                .expect("author.rs")
                .replace("        factory,\n    }", "        factory,\n        homepage: RString::new(),\n    }");
            std::fs::write(author, text).expect("write author.rs");
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy dir");
    for entry in std::fs::read_dir(from).expect("read source dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// Builds the `split-criteria` plugin against a modified copy of plugin-api and returns the
/// library. The copy is a separate workspace under `target/` with the root's profiles and
/// lock file, built into the same target directory so that tch and abi_stable are reused.
pub fn mismatched_plugin(mismatch: ApiMismatch) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _one_build_at_a_time = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    ensure_built();
    let root = workspace_root();
    let dir = target_dir().join("api-mismatch").join(mismatch.name());
    let _ = std::fs::remove_dir_all(&dir);
    // Cargo hashes path packages by their path relative to the workspace root: each variant's
    // copy needs its own relative path, or one variant's build would be reused for another.
    let api_dir = format!("plugin-api-{}", mismatch.name());
    copy_dir(&root.join("plugin-api"), &dir.join(&api_dir));
    copy_dir(&root.join("build-support"), &dir.join("build-support"));
    copy_dir(&root.join("plugins/split-criteria"), &dir.join("plugin"));
    mismatch.modify(&dir.join(&api_dir));

    let package = format!("splitnas-testplugin-mismatch-{}", mismatch.name());
    let manifest = dir.join("plugin/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("plugin manifest");
    let text = text.replace("name = \"splitnas-plugin-split-criteria\"", &format!("name = \"{package}\""));
    // The copy builds the library alone: its tests' kit is not part of the copied workspace.
    let text: String = text.lines().filter(|line| !line.starts_with("splitnas-plugin-testkit")).map(|line| format!("{line}\n")).collect();
    std::fs::write(&manifest, text).expect("write plugin manifest");

    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).expect("root manifest");
    let start = workspace.find("members = [").expect("members list");
    let end = start + workspace[start..].find(']').expect("end of members");
    let workspace = format!("{}members = [\"{api_dir}\", \"build-support\", \"plugin\"]{}", &workspace[..start], &workspace[end + 1..]);
    let workspace = workspace.replace("path = \"plugin-api\"", &format!("path = \"{api_dir}\""));
    assert!(workspace.contains(&api_dir), "the root manifest no longer names plugin-api by path: update mismatched_plugin");
    std::fs::write(dir.join("Cargo.toml"), workspace).expect("write workspace manifest");
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).expect("copy lock file");

    let mut command = cargo();
    command.current_dir(&dir).args(["build", "--offline", "-p", &package]);
    if is_release() {
        command.arg("--release");
    }
    run_cargo_build(command, &format!("the {} mismatch plugin", mismatch.name()));
    profile_dir().join(format!("lib{}.so", package.replace('-', "_")))
}

/// The Python that `cargo xtask setup` provisioned (the packages of xtask's `PYTHON_PACKAGES`:
/// torch, safetensors, TensorBoard), with the reference implementations it installs
/// (`reference-packages`: xautodl) on `PYTHONPATH`. Found through `.libtorch`, which links to
/// that environment's `site-packages/torch`.
pub fn provisioned_python() -> Command {
    let torch = std::fs::canonicalize(workspace_root().join(".libtorch")).expect(".libtorch links to the provisioned torch: run `cargo xtask setup`");
    // <venv>/lib/pythonX.Y/site-packages/torch
    let environment = torch.ancestors().nth(4).expect("<venv>/lib/pythonX.Y/site-packages/torch").to_path_buf();
    let python = environment.join("bin/python");
    assert!(python.exists(), "{} is missing: run `cargo xtask setup`", python.display());
    let mut command = Command::new(python);
    command.env("PYTHONPATH", environment.join("reference-packages"));
    command
}

/// Resident set size of this process, in bytes (Linux).
pub fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS line");
    kib * 1024
}

/// A registry with every shipped plugin, loaded in-process.
pub fn shipped_registry() -> splitnas_engine::plugins::PluginRegistry {
    let mut registry = splitnas_engine::plugins::PluginRegistry::default();
    for file in shipped_plugin_files() {
        registry.add_file(&file);
    }
    assert!(registry.failures.is_empty(), "shipped plugins failed to load: {:?}", registry.failures);
    registry
}

/// A run configuration small enough for the test suite: NB201 at C=4, N=1 on 1,000 embedded
/// images, a few short epochs. `extra` is appended TOML (later keys override nothing: use new tables).
pub fn tiny_config(algorithm: &str, output_dir: &Path, extra: &str) -> splitnas_run::config::RunConfig {
    let text = format!(
        r#"
[run]
name = "tiny-{algorithm}"
output_dir = "{output}"
seed = 1
device = "cpu"
threads = 1   # tests run in parallel: one libtorch thread each avoids oversubscribing the cores

[data]
dataset = "embedded"
max_train_images = 1200
max_test_images = 200
batch_size = 32

[space]
name = "nb201"
channels = 4
cells = 1

[algorithm]
name = "{algorithm}"
{extra}
"#,
        output = output_dir.display()
    );
    splitnas_run::config::RunConfig::from_toml(&text, Path::new("tiny.toml")).expect("tiny config parses")
}

/// libtorch's random generator is global to the process: tests that train in-process (they
/// seed it every epoch) and expect exact replays or a learning curve must not interleave.
static TORCH_GENERATOR: Mutex<()> = Mutex::new(());

/// Holds libtorch's global generator for one in-process training test.
pub fn exclusive_generator() -> std::sync::MutexGuard<'static, ()> {
    TORCH_GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
