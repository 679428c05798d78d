//! Build-script helpers shared by every crate that produces a final artifact
//! (the host binary, each plugin, test binaries).
//!
//! `tch` sets no rpath on its dependents, so each artifact records the libtorch
//! directory itself. Cargo only hands `DEP_TCH_LIBTORCH_LIB` to crates that depend
//! on `torch-sys` directly, which is why every caller lists `torch-sys` as a dependency.

use std::env;
use std::path::PathBuf;

/// The libtorch `lib` directory that `torch-sys` linked against.
///
/// Panics (this runs in a build script, where a panic is the error report) with a
/// message saying what to do when the calling crate lacks a direct `torch-sys` dependency.
pub fn libtorch_lib_dir() -> PathBuf {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    match env::var_os("DEP_TCH_LIBTORCH_LIB") {
        Some(dir) => PathBuf::from(dir),
        None => panic!(
            "DEP_TCH_LIBTORCH_LIB is not set: add `torch-sys` as a direct dependency of this crate \
             so that its build script can see where libtorch is (run `cargo xtask setup` first)"
        ),
    }
}

/// Adds an rpath to libtorch on every target of the calling package (bins, cdylibs, tests).
pub fn link_libtorch_rpath() {
    let dir = libtorch_lib_dir();
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    println!("cargo:rustc-env=SPLITNAS_LIBTORCH_LIB={}", dir.display());
}

/// Forces `libtorch_cuda` into the calling artifact's dependencies.
///
/// rustc links with `--as-needed`; nothing in Rust code references a CUDA symbol directly,
/// so without this the linker drops `libtorch_cuda.so` and CUDA is never available, even on
/// a machine with a GPU. Does nothing when the libtorch build has no CUDA library.
pub fn link_libtorch_cuda() {
    let dir = libtorch_lib_dir();
    if dir.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}

/// The libtorch release (`2.11.0`, local suffix such as `+cu130` removed), read from the
/// python package around the library directory, or from libtorch's `build-version` file.
pub fn libtorch_version() -> Option<String> {
    let lib = libtorch_lib_dir();
    let root = lib.parent()?;
    let from_python = std::fs::read_to_string(root.join("version.py")).ok().and_then(|text| {
        text.lines().find_map(|line| line.strip_prefix("__version__ = ").map(|v| v.trim_matches(|c| c == '\'' || c == '"').to_string()))
    });
    let raw = from_python.or_else(|| std::fs::read_to_string(root.join("build-version")).ok())?;
    let raw = raw.trim();
    Some(raw.split_once('+').map_or(raw, |(release, _)| release).to_string())
}
