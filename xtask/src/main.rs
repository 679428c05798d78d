//! `cargo xtask setup | build | test | demo`: everything a fresh machine needs, in one place.
//!
//! `setup` provisions PyTorch 2.11.0 (the CUDA build from PyPI, with its nvidia wheels)
//! into a virtual environment in a cache outside the checkout, idempotently, and points
//! `.libtorch` (read by `.cargo/config.toml`) at its `torch/` directory. After it, plain
//! `cargo build`, `cargo run` and `cargo test` work with nothing exported.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The PyTorch release tch 0.24 is built for.
const TORCH_VERSION: &str = "2.11.0";
/// Overrides the cache directory (default `~/.cache/splitnas`).
const CACHE_VARIABLE: &str = "SPLITNAS_CACHE";
/// Python packages of the provisioned environment: libtorch itself, what the committed
/// fixture generators import, TensorBoard, whose own reader checks the event files runs
/// write (tests/tensorboard.rs), and torchvision (with Pillow), the reference the image
/// transforms and the data benchmark are checked against. The venv's marker file lists them: adding one here installs it
/// into an existing environment on the next `setup`.
const PYTHON_PACKAGES: &[&str] = &["torch==2.11.0", "numpy", "safetensors", "scipy", "tensorboard==2.21.0", "torchvision==0.26.0"];
/// Reference implementations the export tests load trained weights into and the conformance
/// generators build networks with, installed without their dependencies (xautodl pins a numpy
/// from 2020; ofa, MIT Han Lab's package holding ProxylessNAS's networks, would pull in
/// torchvision and more) into `<venv>/reference-packages`.
const REFERENCE_PACKAGES: &[&str] = &["xautodl==1.0.0", "ofa==0.1.0.post202307202001"];
const REFERENCE_PACKAGES_DIR: &str = "reference-packages";

const USAGE: &str = "usage: cargo xtask <command>

commands:
  setup   provision libtorch (PyTorch 2.11.0 from PyPI) into the cache and configure the build
  build   setup, then build the release `splitnas` binary and every plugin (target/release)
  test    setup, then build the plugins and run the whole test suite
  lint    setup, then `cargo fmt --check` and `cargo clippy --all-targets -D warnings`
  package setup, then `cargo package` the crates a plugin author depends on (verified builds)
  demo    build, then run the quickstart search on the embedded dataset";

fn main() -> Result<()> {
    let command = std::env::args().nth(1).unwrap_or_default();
    let root = workspace_root();
    match command.as_str() {
        "setup" => setup(&root).map(|_| ()),
        "build" => build(&root),
        "test" => test(&root),
        "lint" => lint(&root),
        "package" => package(&root),
        "demo" => demo(&root),
        "" | "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(CACHE_VARIABLE) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME").context("HOME is not set; set SPLITNAS_CACHE to a cache directory")?;
    Ok(PathBuf::from(home).join(".cache").join("splitnas"))
}

fn run(command: &mut Command) -> Result<()> {
    eprintln!("xtask: running {command:?}");
    let status = command.status().with_context(|| format!("cannot start {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}

fn python_output(python: &Path, code: &str) -> Option<String> {
    let output = Command::new(python).arg("-c").arg(code).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Provisions the environment and links `.libtorch`; returns the torch directory.
fn setup(root: &Path) -> Result<PathBuf> {
    let venv = cache_dir()?.join(format!("torch-{TORCH_VERSION}"));
    let python = venv.join("bin").join("python");
    let marker = venv.join(".splitnas-complete");
    let query = "import torch, os; print(torch.__version__); print(os.path.dirname(torch.__file__))";

    let packages = PYTHON_PACKAGES.join("\n") + "\n";
    let complete = std::fs::read_to_string(&marker).is_ok_and(|installed| installed == packages);
    let ready = complete && python_output(&python, query).is_some_and(|out| out.lines().next().is_some_and(|v| v.starts_with(TORCH_VERSION)));
    if !ready {
        if python.exists() {
            eprintln!("xtask: installing {} into {}", PYTHON_PACKAGES.join(" "), venv.display());
        } else {
            eprintln!("xtask: provisioning PyTorch {TORCH_VERSION} into {} (about 5 GB, once)", venv.display());
        }
        if !python.exists() {
            let system_python = ["python3", "python"]
                .into_iter()
                .find(|p| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success()))
                .context("no python3 found: install Python 3.9+ (with venv) to provision libtorch")?;
            std::fs::create_dir_all(venv.parent().expect("venv has a parent"))?;
            run(Command::new(system_python).args(["-m", "venv"]).arg(&venv))?;
        }
        run(Command::new(&python).args(["-m", "pip", "install", "--disable-pip-version-check", "--quiet"]).args(PYTHON_PACKAGES))?;
        std::fs::write(&marker, &packages)?;
    }
    let reference_dir = venv.join(REFERENCE_PACKAGES_DIR);
    let reference_marker = reference_dir.join(format!(".splitnas-{}", REFERENCE_PACKAGES.join("+")));
    if !reference_marker.exists() {
        run(Command::new(&python)
            .args(["-m", "pip", "install", "--disable-pip-version-check", "--quiet", "--no-deps", "--upgrade", "--target"])
            .arg(&reference_dir)
            .args(REFERENCE_PACKAGES))?;
        std::fs::write(&reference_marker, "")?;
    }
    let out = python_output(&python, query).context("the provisioned python cannot import torch; delete the cache directory and rerun")?;
    let mut lines = out.lines();
    let version = lines.next().unwrap_or_default();
    if !version.starts_with(TORCH_VERSION) {
        bail!("the cache holds torch {version}, tch 0.24 needs {TORCH_VERSION}: delete {} and rerun", venv.display());
    }
    let torch_dir = PathBuf::from(lines.next().context("torch did not report its directory")?);

    let link = root.join(".libtorch");
    let current = std::fs::read_link(&link).ok();
    if current.as_deref() != Some(torch_dir.as_path()) {
        if link.symlink_metadata().is_ok() {
            std::fs::remove_file(&link).with_context(|| format!("cannot replace {}", link.display()))?;
        }
        std::os::unix::fs::symlink(&torch_dir, &link).with_context(|| format!("cannot create {}", link.display()))?;
    }
    eprintln!("xtask: libtorch {version} ready at {}", torch_dir.display());
    Ok(torch_dir)
}

fn cargo(root: &Path) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root);
    command
}

/// Packages that are plugins shipped with splitnas: every crate under `plugins/`.
fn shipped_plugins(root: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(root.join("plugins"))? {
        let manifest = entry?.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else { continue };
        let name = text
            .lines()
            .find_map(|line| line.strip_prefix("name = ").map(|n| n.trim_matches('"').to_string()))
            .with_context(|| format!("no package name in {}", manifest.display()))?;
        names.push(name);
    }
    names.sort();
    Ok(names)
}

fn build(root: &Path) -> Result<()> {
    setup(root)?;
    let mut command = cargo(root);
    command.args(["build", "--release", "-p", "splitnas"]);
    for plugin in shipped_plugins(root)? {
        command.args(["-p", &plugin]);
    }
    run(&mut command)?;
    eprintln!("xtask: built {} and its plugins", root.join("target/release/splitnas").display());
    Ok(())
}

fn test(root: &Path) -> Result<()> {
    setup(root)?;
    // `cargo test` does not build the cdylibs the tests load: build them first.
    let mut command = cargo(root);
    command.args(["build", "-p", "splitnas", "-p", "splitnas-testplugin-fixtures"]);
    for plugin in shipped_plugins(root)? {
        command.args(["-p", &plugin]);
    }
    run(&mut command)?;
    // --no-fail-fast: one failing test binary must not hide the others' results.
    run(cargo(root).args(["test", "--workspace", "--exclude", "xtask", "--no-fail-fast"]))
}

/// Formatting and clippy over the whole workspace, and formatting of the out-of-tree example
/// (tests/third_party.rs builds it); CI runs it after the tests.
fn lint(root: &Path) -> Result<()> {
    setup(root)?;
    run(cargo(root).args(["fmt", "--all", "--check"]))?;
    run(cargo(root).args(["fmt", "--check", "--manifest-path", "examples/third-party-plugin/Cargo.toml"]))?;
    run(cargo(root).args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))
}

/// The crates an outside plugin author builds against, packaged as they would be published
/// (metadata, README, license; each verified by building it from its package). Nothing is
/// uploaded.
const AUTHOR_CRATES: &[&str] = &["splitnas-build-support", "splitnas-seeded-rng", "splitnas-plugin-api", "splitnas-plugin-testkit"];

fn package(root: &Path) -> Result<()> {
    setup(root)?;
    forget_packaged_sources()?;
    let mut command = cargo(root);
    command.args(["package", "--allow-dirty"]);
    for name in AUTHOR_CRATES {
        command.args(["-p", name]);
    }
    run(&mut command)?;
    eprintln!("xtask: packaged {} into {}", AUTHOR_CRATES.join(", "), root.join("target/package").display());
    Ok(())
}

/// Removes cargo's extracted copies of earlier packagings of the author crates. `cargo package`
/// verifies each crate against the others through a local registry, and cargo keeps what it
/// extracted from such a registry under `$CARGO_HOME/registry/src/-<hash>/<name>-<version>`,
/// keyed by the registry's path: a crate packaged again at the same version (every change
/// between releases) would be verified against the stale copy. crates.io's copies are not touched.
fn forget_packaged_sources() -> Result<()> {
    let cargo_home = match std::env::var_os("CARGO_HOME") {
        Some(home) => PathBuf::from(home),
        None => PathBuf::from(std::env::var_os("HOME").context("neither CARGO_HOME nor HOME is set")?).join(".cargo"),
    };
    for area in ["src", "cache"] {
        let Ok(registries) = std::fs::read_dir(cargo_home.join("registry").join(area)) else { continue };
        for registry in registries.flatten() {
            // Local registries have no name: `-<hash>`; crates.io's is `index.crates.io-<hash>`.
            if !registry.file_name().to_string_lossy().starts_with('-') {
                continue;
            }
            for entry in std::fs::read_dir(registry.path())?.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if AUTHOR_CRATES.iter().any(|krate| name.starts_with(&format!("{krate}-"))) {
                    let path = entry.path();
                    if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) }
                        .with_context(|| format!("cannot remove the stale packaged copy {}", path.display()))?;
                }
            }
        }
    }
    Ok(())
}

fn demo(root: &Path) -> Result<()> {
    build(root)?;
    let quickstart = root.join("examples").join("quickstart.toml");
    let binary = root.join("target/release/splitnas");
    if quickstart.exists() {
        // --overwrite: the demo is run again as it is, not resumed or refused.
        run(Command::new(&binary).arg("run").arg(&quickstart).arg("--overwrite").current_dir(root))
    } else {
        run(Command::new(&binary).args(["plugins", "list"]).current_dir(root))
    }
}
