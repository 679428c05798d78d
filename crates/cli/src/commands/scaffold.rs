//! `splitnas plugins new --kind KIND NAME`: a new stand-alone plugin crate that builds as
//! generated and passes its kind's contract suite (splitnas-plugin-testkit).
//!
//! The files come from the templates under `crates/cli/templates/` (`shared/`, and one
//! directory per kind), embedded in the binary. A template names what it needs as
//! `{{key}}`; [`render`] fills in every key and refuses unknown ones. What the host knows
//! goes into the crate: the splitnas checkout its crates come from (by `path`, as they are not
//! published), and, in `.cargo/config.toml`, the libtorch it runs and its `TORCH_ABI` tag,
//! which the crate's build script checks (`splitnas_build_support::check_host_torch_abi`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use splitnas_engine::device::device_report;
use splitnas_plugin_api::PLUGIN_API_VERSION;

/// The kind of component the new plugin exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PluginKind {
    /// A search space (`SpacePlugin`): choice points, supernet, stand-alone networks.
    Space,
    /// A search algorithm (`AlgorithmPlugin`): architecture parameters and sampling policy.
    Algorithm,
    /// A split criterion (`CriterionPlugin`): which choice point to split, and how.
    Criterion,
}

impl PluginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Space => "space",
            PluginKind::Algorithm => "algorithm",
            PluginKind::Criterion => "criterion",
        }
    }

    /// The end of the component's type name (`MySpace`, `GmL2Criterion`).
    fn type_suffix(self) -> &'static str {
        match self {
            PluginKind::Space => "Space",
            PluginKind::Algorithm => "Algorithm",
            PluginKind::Criterion => "Criterion",
        }
    }

    /// `src/lib.rs`, `tests/contract.rs` and the README's "Try it" section of this kind.
    fn templates(self) -> [&'static str; 3] {
        match self {
            PluginKind::Space => [
                include_str!("../../templates/space/lib.rs.tmpl"),
                include_str!("../../templates/space/contract.rs.tmpl"),
                include_str!("../../templates/space/README-try.md.tmpl"),
            ],
            PluginKind::Algorithm => [
                include_str!("../../templates/algorithm/lib.rs.tmpl"),
                include_str!("../../templates/algorithm/contract.rs.tmpl"),
                include_str!("../../templates/algorithm/README-try.md.tmpl"),
            ],
            PluginKind::Criterion => [
                include_str!("../../templates/criterion/lib.rs.tmpl"),
                include_str!("../../templates/criterion/contract.rs.tmpl"),
                include_str!("../../templates/criterion/README-try.md.tmpl"),
            ],
        }
    }

    /// Whether its template draws seeded random numbers (`splitnas-seeded-rng`).
    fn needs_seeded_rng(self) -> bool {
        self == PluginKind::Space
    }
}

/// How a template's values are written into the file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Syntax {
    /// As they are (Rust sources, where only validated names go, and Markdown).
    Plain,
    /// Inside TOML basic strings (`"..."`): escaped. Comments take the escaped text too.
    Toml,
}

/// One generated file: where it goes in the crate, its template, how values are written.
struct FileTemplate {
    path: &'static str,
    text: &'static str,
    syntax: Syntax,
}

/// Where the crate's files come from, besides the kind's own.
fn shared_templates() -> [FileTemplate; 6] {
    [
        FileTemplate { path: "Cargo.toml", text: include_str!("../../templates/shared/Cargo.toml.tmpl"), syntax: Syntax::Toml },
        FileTemplate { path: ".cargo/config.toml", text: include_str!("../../templates/shared/cargo-config.toml.tmpl"), syntax: Syntax::Toml },
        FileTemplate { path: "build.rs", text: include_str!("../../templates/shared/build.rs.tmpl"), syntax: Syntax::Plain },
        FileTemplate { path: "README.md", text: include_str!("../../templates/shared/README.md.tmpl"), syntax: Syntax::Plain },
        FileTemplate { path: "rustfmt.toml", text: include_str!("../../templates/shared/rustfmt.toml.tmpl"), syntax: Syntax::Toml },
        FileTemplate { path: ".gitignore", text: include_str!("../../templates/shared/gitignore.tmpl"), syntax: Syntax::Plain },
    ]
}

/// Names a generated package cannot take: its library would clash with a dependency's.
const RESERVED_NAMES: [&str; 2] = ["api", "testkit"];

/// A plugin name: lowercase ASCII letters, digits and `-`, starting with a letter. The package
/// is `splitnas-plugin-NAME`, the component `NAME`.
pub fn validate_name(name: &str) -> Result<(), String> {
    let rule = "a plugin name is lowercase letters, digits and '-', starting with a letter (e.g. `my-criterion`)";
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!("`{name}`: {rule}"));
    }
    if let Some(bad) = name.chars().find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')) {
        return Err(format!("`{name}` contains {bad:?}: {rule}"));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(format!(
            "`{name}` would make the package splitnas-plugin-{name}, which is a splitnas crate the plugin depends on: choose another name"
        ));
    }
    Ok(())
}

/// The library's crate name: `splitnas_plugin_my_criterion`.
pub fn crate_name(name: &str) -> String {
    format!("splitnas_plugin_{}", name.replace('-', "_"))
}

/// The component's type: the name in CamelCase, ending with the kind (`my-criterion` →
/// `MyCriterion`, `gm-l2` → `GmL2Criterion`), so that it never clashes with the names the
/// template imports (`Tensor`, `Mask`, ...).
pub fn type_name(name: &str, kind: PluginKind) -> String {
    let mut camel: String = name
        .split('-')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|first| first.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect();
    if !camel.ends_with(kind.type_suffix()) {
        camel.push_str(kind.type_suffix());
    }
    camel
}

/// `text` as the inside of a TOML basic string.
pub fn toml_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            c if c.is_control() => escaped.push_str(&format!("\\u{:04X}", c as u32)),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Replaces every `{{key}}` of `template` by `values[key]`, in one pass (values are not
/// scanned again). An unknown key or an unclosed `{{` is an error.
pub fn render(template: &str, values: &BTreeMap<&str, String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| format!("an unclosed `{{{{` in the template: {:?}", &rest[start..rest.len().min(start + 40)]))?;
        let key = &after[..end];
        let value = values.get(key).ok_or_else(|| format!("the template names an unknown value `{{{{{key}}}}}`"))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// What the host tells a new plugin: the libtorch to build against and the tags to match.
#[derive(Clone, Debug)]
pub struct HostFacts {
    /// What `LIBTORCH` must be (`libtorch` of `splitnas info --json`).
    pub libtorch: String,
    /// The host's `TORCH_ABI`, e.g. `tch 0.24, libtorch 2.11.0`.
    pub torch_abi: String,
    /// The host's splitnas-plugin-api version.
    pub plugin_api_version: String,
}

impl HostFacts {
    /// This process's.
    pub fn of_this_host() -> Result<Self> {
        let report = device_report();
        if report.libtorch.is_empty() {
            bail!("cannot tell where this host's libtorch is (its lib directory {} has no parent)", report.libtorch_lib);
        }
        Ok(HostFacts {
            libtorch: report.libtorch,
            torch_abi: report.torch_abi.to_string(),
            plugin_api_version: report.plugin_api_version.to_string(),
        })
    }
}

/// Everything a new plugin crate is made from.
#[derive(Clone, Debug)]
pub struct NewPlugin {
    pub kind: PluginKind,
    pub name: String,
    /// The splitnas checkout the crate's splitnas dependencies come from (absolute).
    pub splitnas_source: PathBuf,
    pub host: HostFacts,
    /// Whether the crate starts with a copy of the checkout's `Cargo.lock`.
    pub with_lock_file: bool,
}

impl NewPlugin {
    fn values(&self, syntax: Syntax) -> Result<BTreeMap<&'static str, String>, String> {
        let text = |value: &str| if syntax == Syntax::Toml { toml_escape(value) } else { value.to_string() };
        let source = text(&self.splitnas_source.display().to_string());
        let mut values = BTreeMap::from([
            ("name", self.name.clone()),
            ("kind", self.kind.as_str().to_string()),
            ("crate_name", crate_name(&self.name)),
            ("type_name", type_name(&self.name, self.kind)),
            ("splitnas_version", env!("CARGO_PKG_VERSION").to_string()),
            // The crates a plugin author uses share the workspace's version, plugin-api's.
            ("splitnas_crates_version", PLUGIN_API_VERSION.to_string()),
            ("plugin_api_version", text(&self.host.plugin_api_version)),
            ("torch_abi", text(&self.host.torch_abi)),
            ("libtorch", text(&self.host.libtorch)),
            ("splitnas_source", source.clone()),
        ]);
        let extra_dependencies = if self.kind.needs_seeded_rng() {
            format!("splitnas-seeded-rng = {{ path = \"{source}/seeded-rng\", version = \"{PLUGIN_API_VERSION}\" }}\n")
        } else {
            String::new()
        };
        values.insert("extra_dependencies", extra_dependencies);
        let lock_file_note = if self.with_lock_file {
            "- `Cargo.lock` started as a copy of the host's, so the dependencies are the versions the host\n  was built and tested with.\n"
        } else {
            ""
        };
        values.insert("lock_file_note", lock_file_note.to_string());
        let try_it = render(self.kind.templates()[2], &values)?;
        values.insert("try_it", try_it.trim_end().to_string());
        Ok(values)
    }

    /// Every file of the new crate but `Cargo.lock`: (path within the crate, contents).
    pub fn files(&self) -> Result<Vec<(&'static str, String)>, String> {
        let [lib, contract, _] = self.kind.templates();
        let mut templates = Vec::from(shared_templates());
        templates.push(FileTemplate { path: "src/lib.rs", text: lib, syntax: Syntax::Plain });
        templates.push(FileTemplate { path: "tests/contract.rs", text: contract, syntax: Syntax::Plain });
        let plain = self.values(Syntax::Plain)?;
        let toml = self.values(Syntax::Toml)?;
        templates
            .iter()
            .map(|template| {
                let values = if template.syntax == Syntax::Toml { &toml } else { &plain };
                render(template.text, values).map(|text| (template.path, text)).map_err(|error| format!("{}: {error}", template.path))
            })
            .collect()
    }

    /// The plugin file `cargo build --release` leaves, relative to the crate.
    pub fn library(&self) -> String {
        format!("target/release/lib{}.so", crate_name(&self.name))
    }
}

/// The splitnas-plugin-api version of a checkout, where its manifests say it.
fn checkout_version(source: &Path) -> Option<String> {
    let read = |path: PathBuf| -> Option<toml::Table> { std::fs::read_to_string(path).ok()?.parse().ok() };
    let package = read(source.join("plugin-api/Cargo.toml"))?;
    match package.get("package")?.get("version")? {
        toml::Value::String(version) => Some(version.clone()),
        _ => read(source.join("Cargo.toml"))?.get("workspace")?.get("package")?.get("version")?.as_str().map(str::to_string),
    }
}

/// The checkout the new crate's splitnas dependencies come from: `given`, or the one this
/// binary was built from; it must hold plugin-api at the host's version.
fn splitnas_source(given: Option<&Path>) -> Result<PathBuf> {
    let hint =
        format!("pass --splitnas-source DIR pointing at a splitnas checkout of this host's version (splitnas-plugin-api {PLUGIN_API_VERSION})");
    let source = match given {
        Some(dir) => {
            let absolute = dir.canonicalize().with_context(|| format!("--splitnas-source {}: no such directory", dir.display()))?;
            if !absolute.join("plugin-api/Cargo.toml").is_file() {
                bail!("--splitnas-source {}: not a splitnas checkout (it has no plugin-api/Cargo.toml)", dir.display());
            }
            absolute
        }
        None => {
            let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
            match built_from.canonicalize() {
                Ok(root) if root.join("plugin-api/Cargo.toml").is_file() => root,
                _ => bail!("the splitnas checkout this host was built from ({}) is gone: {hint}", built_from.display()),
            }
        }
    };
    match checkout_version(&source) {
        Some(version) if version != PLUGIN_API_VERSION => {
            bail!("{} holds splitnas-plugin-api {version}, but this host has {PLUGIN_API_VERSION}: {hint}", source.display())
        }
        _ => Ok(source),
    }
}

/// Refuses an existing target that is not an empty directory.
fn check_target(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    if !dir.is_dir() {
        bail!("{} exists and is not a directory: choose another --path", dir.display());
    }
    let mut entries = std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    if entries.next().is_some() {
        bail!("{} exists and is not empty: choose another --path, or remove it first", dir.display());
    }
    Ok(())
}

/// `splitnas plugins new`: writes the crate and says what to run next.
pub fn execute(kind: PluginKind, name: &str, path: Option<PathBuf>, source: Option<PathBuf>) -> Result<ExitCode> {
    validate_name(name).map_err(anyhow::Error::msg)?;
    let dir = path.unwrap_or_else(|| PathBuf::from(format!("splitnas-plugin-{name}")));
    check_target(&dir)?;
    let splitnas_source = splitnas_source(source.as_deref())?;
    let lock_file = splitnas_source.join("Cargo.lock");
    let plugin = NewPlugin { kind, name: name.to_string(), splitnas_source, host: HostFacts::of_this_host()?, with_lock_file: lock_file.is_file() };
    let files = plugin.files().map_err(|error| anyhow::anyhow!("a template of splitnas is broken: {error}"))?;
    for (relative, text) in &files {
        let target = dir.join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&target, text).with_context(|| format!("cannot write {}", target.display()))?;
    }
    if plugin.with_lock_file {
        std::fs::copy(&lock_file, dir.join("Cargo.lock")).with_context(|| format!("cannot copy {}", lock_file.display()))?;
    }
    let shown = dir.canonicalize().unwrap_or(dir);
    let mut listed: Vec<&str> = files.iter().map(|(relative, _)| *relative).collect();
    if plugin.with_lock_file {
        listed.push("Cargo.lock");
    }
    println!("created the {} `{name}` in {} (package splitnas-plugin-{name}): {}", kind.as_str(), shown.display(), listed.join(", "));
    println!("its splitnas crates come from {}; it builds against the libtorch at {}", plugin.splitnas_source.display(), plugin.host.libtorch);
    println!();
    println!("next:");
    println!("  cd {}", shown.display());
    println!("  cargo test                # the {} contract suite", kind.as_str());
    println!("  cargo build --release");
    println!("  splitnas plugins check {}", plugin.library());
    println!("  splitnas plugins install {}", plugin.library());
    println!("  splitnas plugins list");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(kind: PluginKind, name: &str, source: &str) -> NewPlugin {
        NewPlugin {
            kind,
            name: name.to_string(),
            splitnas_source: PathBuf::from(source),
            host: HostFacts { libtorch: "/opt/lib torch".into(), torch_abi: "tch 0.24, libtorch 2.11.0".into(), plugin_api_version: "0.1.0".into() },
            with_lock_file: true,
        }
    }

    const KINDS: [PluginKind; 3] = [PluginKind::Space, PluginKind::Algorithm, PluginKind::Criterion];

    #[test]
    fn names_are_lowercase_letters_digits_and_hyphens_starting_with_a_letter() {
        for good in ["my-criterion", "x2", "gm-l2", "a"] {
            assert_eq!(validate_name(good), Ok(()), "{good}");
        }
        for bad in ["", "2x", "-a", "My", "a_b", "a.b", "a b", "é", "a/b"] {
            assert!(validate_name(bad).unwrap_err().contains("lowercase letters"), "{bad}");
        }
        assert!(validate_name("api").unwrap_err().contains("splitnas-plugin-api"));
    }

    #[test]
    fn crate_and_type_names_follow_the_plugin_name() {
        assert_eq!(crate_name("gm-l2"), "splitnas_plugin_gm_l2");
        assert_eq!(type_name("gm-l2", PluginKind::Criterion), "GmL2Criterion");
        assert_eq!(type_name("my-space", PluginKind::Space), "MySpace");
        assert_eq!(type_name("tensor", PluginKind::Space), "TensorSpace");
        assert_eq!(type_name("fair-darts", PluginKind::Algorithm), "FairDartsAlgorithm");
        assert_eq!(type_name("a--b2", PluginKind::Algorithm), "AB2Algorithm");
    }

    #[test]
    fn render_fills_every_key_once_and_refuses_unknown_keys() {
        let values = BTreeMap::from([("a", "{{b}}".to_string()), ("b", "2".to_string())]);
        assert_eq!(render("x {{a}} y {{b}}", &values).unwrap(), "x {{b}} y 2", "values are not scanned again");
        assert!(render("{{c}}", &values).unwrap_err().contains("unknown value `{{c}}`"));
        assert!(render("x {{a", &values).unwrap_err().contains("unclosed"));
        assert_eq!(render("no keys", &values).unwrap(), "no keys");
    }

    #[test]
    fn toml_values_are_escaped() {
        assert_eq!(toml_escape(r#"C:\a "b""#), r#"C:\\a \"b\""#);
        assert_eq!(toml_escape("a\nb"), "a\\u000Ab");
    }

    #[test]
    fn every_template_renders_completely_for_every_kind() {
        for kind in KINDS {
            let plugin = plugin(kind, "my-plugin", "/src/split\"nas");
            let files = plugin.files().unwrap();
            let paths: Vec<&str> = files.iter().map(|(path, _)| *path).collect();
            assert_eq!(
                paths,
                ["Cargo.toml", ".cargo/config.toml", "build.rs", "README.md", "rustfmt.toml", ".gitignore", "src/lib.rs", "tests/contract.rs"]
            );
            for (path, text) in &files {
                assert!(!text.contains("{{"), "{kind:?} {path} keeps a placeholder:\n{text}");
            }
            let file = |wanted: &str| files.iter().find(|(path, _)| *path == wanted).map(|(_, text)| text.as_str()).unwrap();
            let lib = file("src/lib.rs");
            assert!(lib.contains("splitnas_plugin_api::export_plugin!(\"my-plugin\");"), "{kind:?}");
            let export = format!("splitnas_plugin_api::export_{}!({});", kind.as_str(), type_name("my-plugin", kind));
            assert!(lib.contains(&export), "{kind:?}: {export}");
            assert!(file("tests/contract.rs").contains(&format!("use splitnas_plugin_my_plugin::{};", type_name("my-plugin", kind))));
            assert!(file("README.md").contains("splitnas plugins check target/release/libsplitnas_plugin_my_plugin.so"));
        }
    }

    #[test]
    fn the_manifests_are_toml_with_the_host_values() {
        for kind in KINDS {
            let files = plugin(kind, "my-plugin", "/src/split\"nas").files().unwrap();
            let file = |wanted: &str| files.iter().find(|(path, _)| *path == wanted).map(|(_, text)| text.clone()).unwrap();
            let manifest: toml::Table = file("Cargo.toml").parse().unwrap();
            assert_eq!(manifest["package"]["name"].as_str(), Some("splitnas-plugin-my-plugin"));
            assert!(manifest["workspace"].as_table().unwrap().is_empty(), "its own workspace root");
            let dependencies = manifest["dependencies"].as_table().unwrap();
            assert_eq!(dependencies["splitnas-plugin-api"]["path"].as_str(), Some("/src/split\"nas/plugin-api"));
            assert_eq!(dependencies["splitnas-plugin-api"]["version"].as_str(), Some(PLUGIN_API_VERSION));
            assert_eq!(dependencies["torch-sys"].as_str(), Some("=0.24.0"));
            assert_eq!(dependencies.contains_key("splitnas-seeded-rng"), kind == PluginKind::Space);
            assert!(manifest["dev-dependencies"].get("splitnas-plugin-testkit").is_some());
            assert!(manifest["build-dependencies"].get("splitnas-build-support").is_some());
            let config: toml::Table = file(".cargo/config.toml").parse().unwrap();
            assert_eq!(config["env"]["LIBTORCH"].as_str(), Some("/opt/lib torch"));
            assert_eq!(config["env"]["SPLITNAS_HOST_TORCH_ABI"].as_str(), Some("tch 0.24, libtorch 2.11.0"));
            assert_eq!(config["env"]["SPLITNAS_HOST_PLUGIN_API"].as_str(), Some("0.1.0"));
            let _: toml::Table = file("rustfmt.toml").parse().unwrap();
        }
    }

    #[test]
    fn an_existing_non_empty_target_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_target(&dir.path().join("new")).is_ok());
        assert!(check_target(dir.path()).is_ok(), "an empty directory is fine");
        std::fs::write(dir.path().join("file"), "x").unwrap();
        assert!(check_target(dir.path()).unwrap_err().to_string().contains("is not empty"));
        assert!(check_target(&dir.path().join("file")).unwrap_err().to_string().contains("not a directory"));
    }

    #[test]
    fn the_checkout_this_binary_was_built_from_is_the_default_source() {
        let source = splitnas_source(None).unwrap();
        assert!(source.join("plugin-api/Cargo.toml").is_file());
        assert_eq!(checkout_version(&source).as_deref(), Some(PLUGIN_API_VERSION));
        assert!(splitnas_source(Some(Path::new("/"))).unwrap_err().to_string().contains("not a splitnas checkout"));
    }
}
