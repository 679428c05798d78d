//! Plugin discovery, loading and the component registry.
//!
//! Each file is loaded on its own with `lib_header_from_path` (`RootModule::load_from_*`
//! caches one module per type, so a second plugin file would silently return the first), and
//! its layout is checked by [`check_root_module_layout`], which accepts older plugins too. A file that fails to load is recorded with a one-line reason
//! and the others still load. Libraries are never unloaded: their code may back live objects.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibraryError};
use serde::Serialize;
use splitnas_plugin_api::{ComponentInfo, ComponentKind, PluginModuleRef, ABI_VERSION, PLUGIN_API_VERSION, TORCH_ABI};

/// Environment variable with extra plugin directories, separated like `PATH`.
pub const PLUGIN_PATH_VARIABLE: &str = "SPLITNAS_PLUGIN_PATH";

/// Prefix of the plugins this project builds; in the default locations only these are loaded.
pub(crate) const BUILT_PLUGIN_PREFIX: &str = "libsplitnas_plugin_";

/// Why a file is not a usable plugin.
#[derive(Debug, thiserror::Error)]
pub enum PluginLoadError {
    #[error("not a loadable shared library: {detail}")]
    NotALibrary { detail: String },
    #[error("a shared library, but not a splitnas plugin (it exports no splitnas root module)")]
    NotAPlugin,
    #[error("built with an incompatible abi_stable: rebuild the plugin against this host's plugin-api")]
    IncompatibleAbiStable,
    #[error(
        "built against splitnas-plugin-api {found}, this host needs {expected}: rebuild the plugin against splitnas-plugin-api {PLUGIN_API_VERSION}"
    )]
    IncompatibleVersion { expected: String, found: String },
    #[error("its plugin-api types differ from this host's (built against a modified or different plugin-api; this host has splitnas-plugin-api {PLUGIN_API_VERSION}, ABI {ABI_VERSION}, {TORCH_ABI}): rebuild it against that; {}", layout_cause(.report))]
    IncompatibleLayout { report: String },
    #[error("plugin ABI version {found}, this host needs {expected}: rebuild the plugin against this host's plugin-api")]
    AbiVersion { expected: u32, found: u32 },
    #[error("built for {found}, this host runs {expected}: tensors cannot cross; rebuild the plugin with the same tch and libtorch")]
    TorchAbi { expected: String, found: String },
    #[error("failed while listing its components: {0}")]
    Components(String),
    #[error("{0}")]
    Other(String),
}

impl PluginLoadError {
    /// abi_stable's full layout report, where there is one (`plugins check --verbose`).
    pub fn layout_report(&self) -> Option<&str> {
        match self {
            PluginLoadError::IncompatibleLayout { report } => Some(report),
            _ => None,
        }
    }

    fn from_library_error(error: LibraryError) -> Self {
        match error {
            LibraryError::OpenError { err, .. } => PluginLoadError::NotALibrary { detail: first_line(&err.to_string()) },
            LibraryError::GetSymbolError { .. } => PluginLoadError::NotAPlugin,
            LibraryError::InvalidAbiHeader(_) | LibraryError::InvalidCAbi { .. } => PluginLoadError::IncompatibleAbiStable,
            LibraryError::IncompatibleVersionNumber { expected_version, actual_version, .. } => PluginLoadError::IncompatibleVersion {
                expected: format!("{}.{}.x", expected_version.major, expected_version.minor),
                found: actual_version.to_string(),
            },
            LibraryError::AbiInstability(report) => PluginLoadError::IncompatibleLayout { report: report.to_string() },
            LibraryError::RootModule { err, .. } => PluginLoadError::Other(format!("its root module failed to initialise: {err}")),
            other => PluginLoadError::Other(first_line(&other.to_string())),
        }
    }
}

/// The cause of a layout refusal in one line, from abi_stable's report (which runs to hundreds
/// of lines, its cause at the end): the innermost type that differs and each difference, e.g.
/// `ComponentInfo: incompatible type size (expected 144, found 176)`.
pub fn layout_cause(report: &str) -> String {
    let lines: Vec<&str> = report.lines().map(str::trim).collect();
    let mut causes = Vec::new();
    let mut current_type = None;
    for (index, line) in lines.iter().enumerate() {
        if *line == "Layout of expected type:" {
            current_type = lines[index + 1..].iter().find_map(|l| l.strip_prefix("type:"));
        }
        if let Some(kind) = line.strip_prefix("Error:") {
            // abi_stable prints `Expected:` and `Found:` each above its value.
            let value_after = |label: &str| {
                lines[index + 1..].iter().position(|l| *l == label).and_then(|at| lines.get(index + 1 + at + 1)).copied().unwrap_or("?")
            };
            let place = current_type.map_or(String::new(), |name| format!("{name}: "));
            causes.push(format!("{place}{kind} (expected {}, found {})", value_after("Expected:"), value_after("Found:")));
        }
    }
    if causes.is_empty() {
        "`splitnas plugins check --verbose FILE` prints the differences".to_string()
    } else {
        format!("cause: {}", causes.join("; "))
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").trim().to_string()
}

/// A plugin library that loaded.
pub struct LoadedPlugin {
    pub path: PathBuf,
    pub name: String,
    pub components: Vec<ComponentInfo>,
}

/// Loads one plugin file and lists its components.
pub fn load_plugin(path: &Path) -> Result<LoadedPlugin, PluginLoadError> {
    let metadata = std::fs::metadata(path).map_err(|error| PluginLoadError::NotALibrary { detail: error.to_string() })?;
    if !metadata.is_file() {
        return Err(PluginLoadError::NotALibrary { detail: "not a regular file".to_string() });
    }
    if metadata.len() == 0 {
        return Err(PluginLoadError::NotALibrary { detail: "the file is empty".to_string() });
    }
    let header = lib_header_from_path(path).map_err(PluginLoadError::from_library_error)?;
    check_root_module_layout(header)?;
    // SAFETY: the layout was checked just above, in the direction that fits the plugin's age.
    let module = unsafe { header.init_root_module_with_unchecked_layout::<PluginModuleRef>() }.map_err(PluginLoadError::from_library_error)?;
    if module.abi_version() != ABI_VERSION {
        return Err(PluginLoadError::AbiVersion { expected: ABI_VERSION, found: module.abi_version() });
    }
    if module.torch_abi().as_str() != TORCH_ABI {
        return Err(PluginLoadError::TorchAbi { expected: TORCH_ABI.to_string(), found: module.torch_abi().to_string() });
    }
    let components = (module.components())().into_result().map_err(|error| PluginLoadError::Components(error.to_string()))?;
    Ok(LoadedPlugin { path: path.to_path_buf(), name: module.plugin_name().to_string(), components: components.into_iter().collect() })
}

/// Checks that the plugin's root module fits this host's: the same types, where one side's
/// prefix types (the trait vtables, the root module) may have more fields than the other's.
///
/// `abi_stable` alone lets a library be newer than its loader (more vtable entries than the
/// host knows), never older. The ABI is appended only and every appended method has a
/// default body that runs where an older plugin's vtable lacks the entry (`missing_field
/// (option)`), so a plugin built against an older plugin-api is sound to load: its layout is
/// then checked with the roles swapped, which passes exactly when its types are a prefix of
/// the host's. Any other difference fails both ways and is reported from the host's side.
pub(crate) fn check_root_module_layout(header: &abi_stable::library::LibHeader) -> Result<(), PluginLoadError> {
    use abi_stable::abi_stability::abi_checking::check_layout_compatibility;
    use abi_stable::library::IsLayoutChecked;
    use abi_stable::StableAbi;
    let IsLayoutChecked::Yes(plugin_layout) = header.root_mod_consts().layout() else {
        return Err(PluginLoadError::Other("the plugin was built without layout information; rebuild it against this host's plugin-api".to_string()));
    };
    let host_layout = <PluginModuleRef as StableAbi>::LAYOUT;
    match check_layout_compatibility(host_layout, plugin_layout) {
        Ok(()) => Ok(()),
        Err(newer_or_different) => match check_layout_compatibility(plugin_layout, host_layout) {
            Ok(()) => Ok(()),
            Err(_) => Err(PluginLoadError::IncompatibleLayout { report: newer_or_different.to_string() }),
        },
    }
}

/// The SHA-256 of a plugin library file, in hex: which build of a plugin made a run.
pub fn build_digest(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect())
}

/// A file that did not load, and why.
#[derive(Debug)]
pub struct LoadFailure {
    pub path: PathBuf,
    pub error: PluginLoadError,
}

/// A component registered under a (kind, name) another plugin already took.
#[derive(Debug, Clone, Serialize)]
pub struct Duplicate {
    pub kind: String,
    pub name: String,
    pub kept: PathBuf,
    pub ignored: PathBuf,
}

/// A component and where it came from.
#[derive(Clone)]
pub struct RegisteredComponent {
    pub info: ComponentInfo,
    pub plugin: String,
    pub path: PathBuf,
}

impl fmt::Debug for RegisteredComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.info.kind(), self.info.name, self.path.display())
    }
}

/// Where plugins are looked for.
#[derive(Debug, Clone, Default)]
pub struct PluginSearch {
    /// Directories given by the user (`--plugin-dir`, `SPLITNAS_PLUGIN_PATH`): every shared
    /// library in them is tried.
    pub directories: Vec<PathBuf>,
    /// Also search the default locations (next to the executable, and its `plugins/`), where
    /// only files named `libsplitnas_plugin_*` are tried.
    pub default_locations: bool,
}

impl PluginSearch {
    /// `--plugin-dir` values first, then `SPLITNAS_PLUGIN_PATH`, then the user's plugin
    /// directory ([`user_plugin_directory`]), then the defaults.
    pub fn from_cli(plugin_dirs: &[PathBuf]) -> Self {
        let mut directories = plugin_dirs.to_vec();
        if let Some(value) = std::env::var_os(PLUGIN_PATH_VARIABLE) {
            directories.extend(std::env::split_paths(&value).filter(|path| !path.as_os_str().is_empty()));
        }
        directories.extend(user_plugin_directory());
        PluginSearch { directories, default_locations: true }
    }

    /// The default locations: the directory of the running executable (where `cargo build`
    /// puts plugins) and its `plugins/` subdirectory (an installed layout).
    pub fn default_directories() -> Vec<PathBuf> {
        let Ok(exe) = std::env::current_exe() else { return Vec::new() };
        let Some(dir) = exe.parent() else { return Vec::new() };
        vec![dir.to_path_buf(), dir.join("plugins")]
    }

    /// Candidate files, in search order, each once.
    pub fn candidate_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for dir in &self.directories {
            files.extend(shared_libraries_in(dir, None));
        }
        if self.default_locations {
            for dir in Self::default_directories() {
                files.extend(shared_libraries_in(&dir, Some(BUILT_PLUGIN_PREFIX)));
            }
        }
        let mut seen = std::collections::HashSet::new();
        files.retain(|file| seen.insert(std::fs::canonicalize(file).unwrap_or_else(|_| file.clone())));
        files
    }
}

/// Where `splitnas plugins install` puts plugins, searched without any flag:
/// `$XDG_DATA_HOME/splitnas/plugins`, or `~/.local/share/splitnas/plugins`.
pub fn user_plugin_directory() -> Option<PathBuf> {
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local").join("share")))?;
    Some(data_home.join("splitnas").join("plugins"))
}

/// Every shared library in a directory (the user's plugin directory, for `plugins remove`).
pub fn shared_libraries(dir: &Path) -> Vec<PathBuf> {
    shared_libraries_in(dir, None)
}

fn is_shared_library(path: &Path) -> bool {
    matches!(path.extension().and_then(OsStr::to_str), Some("so" | "dylib" | "dll"))
}

fn shared_libraries_in(dir: &Path, prefix: Option<&str>) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_file() && is_shared_library(path))
        .filter(|path| match prefix {
            Some(prefix) => path.file_name().and_then(OsStr::to_str).is_some_and(|name| name.starts_with(prefix)),
            None => true,
        })
        .collect();
    files.sort();
    files
}

/// Every loaded component, keyed by (kind, name), with what failed and what clashed.
#[derive(Default)]
pub struct PluginRegistry {
    components: BTreeMap<(ComponentKind, String), RegisteredComponent>,
    pub plugins: Vec<(PathBuf, String)>,
    pub failures: Vec<LoadFailure>,
    pub duplicates: Vec<Duplicate>,
}

/// Asked-for component that is not registered.
#[derive(Debug, thiserror::Error)]
#[error("no {kind} named `{name}` is loaded (available: {available}); see `splitnas plugins list`")]
pub struct UnknownComponent {
    pub kind: ComponentKind,
    pub name: String,
    pub available: String,
}

impl PluginRegistry {
    /// Loads every candidate file of `search`. Never fails: problems are recorded.
    pub fn discover(search: &PluginSearch) -> Self {
        let mut registry = PluginRegistry::default();
        for path in search.candidate_files() {
            registry.add_file(&path);
        }
        registry
    }

    /// Loads one more file into the registry.
    pub fn add_file(&mut self, path: &Path) {
        match load_plugin(path) {
            Ok(plugin) => self.add(plugin),
            Err(error) => self.failures.push(LoadFailure { path: path.to_path_buf(), error }),
        }
    }

    pub fn add(&mut self, plugin: LoadedPlugin) {
        for info in plugin.components {
            let key = (info.kind(), info.name.to_string());
            if let Some(existing) = self.components.get(&key) {
                self.duplicates.push(Duplicate {
                    kind: key.0.to_string(),
                    name: key.1.clone(),
                    kept: existing.path.clone(),
                    ignored: plugin.path.clone(),
                });
                continue;
            }
            self.components.insert(key, RegisteredComponent { info, plugin: plugin.name.clone(), path: plugin.path.clone() });
        }
        self.plugins.push((plugin.path, plugin.name));
    }

    pub fn components(&self) -> impl Iterator<Item = &RegisteredComponent> {
        self.components.values()
    }

    pub fn get(&self, kind: ComponentKind, name: &str) -> Result<&RegisteredComponent, UnknownComponent> {
        self.components.get(&(kind, name.to_string())).ok_or_else(|| UnknownComponent {
            kind,
            name: name.to_string(),
            available: {
                let names: Vec<&str> = self.components.keys().filter(|(k, _)| *k == kind).map(|(_, n)| n.as_str()).collect();
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            },
        })
    }

    /// One line per file that failed, for stderr.
    pub fn warnings(&self) -> Vec<String> {
        let mut lines: Vec<String> =
            self.failures.iter().map(|failure| format!("skipped plugin {}: {}", failure.path.display(), failure.error)).collect();
        lines.extend(self.duplicates.iter().map(|dup| {
            format!("duplicate {} `{}` in {} ignored (kept the one from {})", dup.kind, dup.name, dup.ignored.display(), dup.kept.display())
        }));
        lines
    }
}
