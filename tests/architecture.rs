//! The dependency rule of docs/ARCHITECTURE.md, checked against the manifests (rustc then
//! enforces it on every `use`): the CLI uses run and bench, bench uses run, both use the
//! engine, the engine uses data and plugin-api, and nothing points back up. Plugins and the
//! test kit reach the host only through the ABI (plugins may use the shared layers and the
//! seeded generator); the seeded generator depends on nothing.

use std::collections::BTreeSet;

use splitnas_e2e::workspace_root;

/// Every `splitnas-*` crate a manifest depends on (normal and build dependencies).
fn splitnas_dependencies(manifest: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(workspace_root().join(manifest)).unwrap_or_else(|e| panic!("{manifest}: {e}"));
    let parsed: toml::Value = toml::from_str(&text).unwrap();
    ["dependencies", "build-dependencies"]
        .iter()
        .filter_map(|table| parsed.get(table).and_then(toml::Value::as_table))
        .flat_map(|table| table.keys().cloned())
        .filter(|name| name.starts_with("splitnas-") && name != "splitnas-build-support")
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| name.to_string()).collect()
}

#[test]
fn dependencies_point_one_way() {
    let rules: [(&str, &[&str]); 9] = [
        ("seeded-rng/Cargo.toml", &[]),
        ("plugin-api/Cargo.toml", &[]),
        ("nn-blocks/Cargo.toml", &["splitnas-seeded-rng"]),
        ("plugin-testkit/Cargo.toml", &["splitnas-plugin-api", "splitnas-seeded-rng"]),
        ("crates/data/Cargo.toml", &["splitnas-seeded-rng"]),
        ("crates/engine/Cargo.toml", &["splitnas-plugin-api", "splitnas-data"]),
        ("crates/run/Cargo.toml", &["splitnas-plugin-api", "splitnas-data", "splitnas-engine"]),
        ("crates/bench/Cargo.toml", &["splitnas-plugin-api", "splitnas-data", "splitnas-engine", "splitnas-run"]),
        ("crates/cli/Cargo.toml", &["splitnas-plugin-api", "splitnas-data", "splitnas-engine", "splitnas-run", "splitnas-bench"]),
    ];
    for (manifest, allowed) in rules {
        let found = splitnas_dependencies(manifest);
        let extra: Vec<String> = found.difference(&set(allowed)).cloned().collect();
        assert!(extra.is_empty(), "{manifest} depends on {extra:?}, which the dependency rule forbids (docs/ARCHITECTURE.md)");
    }
    for entry in std::fs::read_dir(workspace_root().join("plugins")).unwrap() {
        let manifest = format!("plugins/{}/Cargo.toml", entry.unwrap().file_name().to_string_lossy());
        let found = splitnas_dependencies(&manifest);
        // The seeded generator depends on nothing and is no part of the host.
        let allowed = set(&["splitnas-plugin-api", "splitnas-nn-blocks", "splitnas-seeded-rng"]);
        let extra: Vec<String> = found.difference(&allowed).cloned().collect();
        assert!(extra.is_empty(), "{manifest}: a plugin reaches the host only through the ABI, but depends on {extra:?}");
    }
}
