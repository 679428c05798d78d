//! Build-script helpers shared by every crate that produces a final artifact
//! (the host binary, each plugin, test binaries).
//!
//! `tch` sets no rpath on its dependents, so each artifact records the libtorch
//! directory itself. Cargo only hands `DEP_TCH_LIBTORCH_LIB` to crates that depend
//! on `torch-sys` directly, which is why every caller lists `torch-sys` as a dependency.
//!
//! A plugin's build script can also refuse, before anything is compiled against it, a
//! libtorch other than the one its host runs: [`check_host_torch_abi`] compares the libtorch
//! release `torch-sys` found with the host's tag in `SPLITNAS_HOST_TORCH_ABI` (the
//! `torch_abi` of `splitnas info --json`; `splitnas plugins new` writes it into the new crate's
//! `.cargo/config.toml`). A plugin built against another release would only be refused when
//! the host loads it.

use std::env;
use std::path::PathBuf;

/// The variable [`check_host_torch_abi`] reads: the host's `TORCH_ABI` tag, e.g.
/// `tch 0.24, libtorch 2.11.0`.
pub const HOST_TORCH_ABI_VARIABLE: &str = "SPLITNAS_HOST_TORCH_ABI";

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

/// Panics (one line: both releases, the `LIBTORCH` in use, and what to set it to) when
/// `SPLITNAS_HOST_TORCH_ABI` is set and the libtorch release `torch-sys` linked is not the
/// one in that tag. Does nothing when the variable is unset.
///
/// Call it from a plugin's build script, after [`link_libtorch_rpath`]:
///
/// ```no_run
/// splitnas_build_support::link_libtorch_rpath();
/// splitnas_build_support::check_host_torch_abi();
/// ```
pub fn check_host_torch_abi() {
    println!("cargo:rerun-if-env-changed={HOST_TORCH_ABI_VARIABLE}");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Ok(host_tag) = env::var(HOST_TORCH_ABI_VARIABLE) else {
        return;
    };
    let found = libtorch_version();
    if let Err(problem) = torch_abi_mismatch(&host_tag, found.as_deref()) {
        let libtorch = match env::var("LIBTORCH") {
            Ok(root) => format!("LIBTORCH={root}"),
            Err(_) => format!("LIBTORCH unset, libtorch found in {}", libtorch_lib_dir().display()),
        };
        panic!(
            "{problem} ({libtorch}): set LIBTORCH to the host's libtorch (`splitnas info --json`, key `libtorch`) \
             with LIBTORCH_CXX11_ABI=1, and rebuild"
        );
    }
}

/// The libtorch release in a host tag `tch 0.24, libtorch 2.11.0`, if it names one.
pub fn host_libtorch_release(host_tag: &str) -> Option<&str> {
    let release = host_tag.split_once("libtorch ")?.1.trim();
    (!release.is_empty()).then_some(release)
}

/// `Ok` when the libtorch release `found` (as [`libtorch_version`] reads it) is the one the
/// host's tag names; otherwise what differs, in one line.
pub fn torch_abi_mismatch(host_tag: &str, found: Option<&str>) -> Result<(), String> {
    let Some(expected) = host_libtorch_release(host_tag) else {
        return Err(format!(
            "{HOST_TORCH_ABI_VARIABLE} is `{host_tag}`, which names no libtorch release (expected e.g. `tch 0.24, libtorch 2.11.0`)"
        ));
    };
    match found {
        Some(found) if found == expected => Ok(()),
        Some(found) => Err(format!("this plugin is being built against libtorch {found}, but its splitnas host runs `{host_tag}`, so the host would refuse it")),
        None => Err(format!(
            "cannot read the release of the libtorch this plugin is being built against (no version.py or build-version next to its lib directory), and its splitnas host runs `{host_tag}`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_is_read_from_the_host_tag() {
        assert_eq!(host_libtorch_release("tch 0.24, libtorch 2.11.0"), Some("2.11.0"));
        assert_eq!(host_libtorch_release("tch 0.24, libtorch "), None);
        assert_eq!(host_libtorch_release("garbage"), None);
    }

    #[test]
    fn the_same_release_passes_and_another_is_named_with_the_host_tag() {
        let tag = "tch 0.24, libtorch 2.11.0";
        assert_eq!(torch_abi_mismatch(tag, Some("2.11.0")), Ok(()));
        let error = torch_abi_mismatch(tag, Some("2.10.0")).unwrap_err();
        assert!(error.contains("libtorch 2.10.0") && error.contains(tag), "{error}");
        assert!(torch_abi_mismatch(tag, Some("2.11.1")).is_err(), "patch releases differ too");
        assert!(torch_abi_mismatch(tag, None).unwrap_err().contains("cannot read the release"));
        assert!(torch_abi_mismatch("tch 0.24", Some("2.11.0")).unwrap_err().contains("names no libtorch release"));
    }
}
