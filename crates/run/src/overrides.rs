//! `--set section.key=value`: configuration keys from the command line, merged over a file.
//!
//! A key is a TOML dotted key (`search.weights.lr`, `space."odd.key"`); a value is a TOML value
//! (`10`, `"x"`, `[2, 4]`, `{ lr = 0.1 }`), and text that is not one (a bare word such as
//! `gdas`, `my-run`, `cuda:0` or `/data/cifar`) is a string, unless it starts like a TOML
//! string, array or table (`"`, `'`, `[`, `{`): then it is a malformed value and refused.
//! Overrides apply in order over the file's tables: a table value merges into the table it
//! names, any other value replaces the key. The merged document is then read and checked
//! exactly like a file ([`crate::config::RunConfig::from_toml_with_overrides`]).

use std::fmt;
use std::str::FromStr;

use toml::{Table, Value};

/// One `--set KEY=VALUE`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigOverride {
    /// The key's path, e.g. `["search", "weights", "lr"]`.
    pub path: Vec<String>,
    pub value: Value,
}

impl ConfigOverride {
    /// `section.key`, as TOML writes the dotted key (quoted segments where needed).
    pub fn key(&self) -> String {
        self.path.iter().map(|segment| key_segment(segment)).collect::<Vec<_>>().join(".")
    }

    /// Sets `path` to `value` in `table`, creating the tables on the way; a table value merges
    /// into an existing table.
    pub fn apply(&self, table: &mut Table) -> Result<(), String> {
        let (last, parents) = self.path.split_last().expect("a parsed key has at least one segment");
        let mut current = table;
        for (depth, segment) in parents.iter().enumerate() {
            let entry = current.entry(segment.clone()).or_insert_with(|| Value::Table(Table::new()));
            current = match entry {
                Value::Table(inner) => inner,
                other => {
                    let key = ConfigOverride { path: self.path[..=depth].to_vec(), value: Value::Boolean(false) }.key();
                    return Err(format!("`{key}` is {}, not a table", describe(other)));
                }
            };
        }
        match (current.get_mut(last), &self.value) {
            (Some(Value::Table(existing)), Value::Table(new)) => merge(existing, new),
            (Some(Value::Table(_)), other) => {
                return Err(format!("`{}` is a table: set its keys (`{}.KEY=...`), not {}", self.key(), self.key(), describe(other)))
            }
            _ => {
                current.insert(last.clone(), self.value.clone());
            }
        }
        Ok(())
    }
}

/// `key=value` with the value as TOML writes it: what the run records, and a `--set` that
/// means the same when given again.
impl fmt::Display for ConfigOverride {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key(), inline_value(&self.value))
    }
}

impl FromStr for ConfigOverride {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (key, value) = text.split_once('=').ok_or_else(|| format!("`{text}` is not KEY=VALUE (e.g. search.epochs=10)"))?;
        let (key, value) = (key.trim(), value.trim());
        let path = parse_key(key)?;
        if value.is_empty() {
            return Err(format!("`{key}` has no value (an empty string is `{key}=\"\"`)"));
        }
        Ok(ConfigOverride { path, value: parse_value(value)? })
    }
}

/// The segments of a TOML dotted key.
fn parse_key(key: &str) -> Result<Vec<String>, String> {
    let table: Table = toml::from_str(&format!("{key} = 0")).map_err(|error| format!("`{key}` is not a key: {}", error.message()))?;
    let mut path = Vec::new();
    let mut current = &table;
    loop {
        let (segment, value) = current.iter().next().expect("`KEY = 0` holds one key");
        path.push(segment.clone());
        match value {
            Value::Table(inner) => current = inner,
            _ => return Ok(path),
        }
    }
}

/// A TOML value, or a bare word as a string.
fn parse_value(text: &str) -> Result<Value, String> {
    match toml::from_str::<Table>(&format!("value = {text}")) {
        Ok(mut table) => Ok(table.remove("value").expect("parsed `value = ...`")),
        Err(error) if text.starts_with(['"', '\'', '[', '{']) => Err(format!("`{text}` is not a TOML value: {}", error.message())),
        Err(_) => Ok(Value::String(text.to_string())),
    }
}

/// A value on one line, as in `key = value` (tables inline).
fn inline_value(value: &Value) -> String {
    match value {
        Value::Table(table) => {
            let entries: Vec<String> = table.iter().map(|(key, value)| format!("{} = {}", key_segment(key), inline_value(value))).collect();
            format!("{{ {} }}", entries.join(", "))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(inline_value).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

/// A key segment as TOML writes it: bare where it can be, quoted otherwise.
fn key_segment(segment: &str) -> String {
    let bare = !segment.is_empty() && segment.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if bare {
        segment.to_string()
    } else {
        Value::String(segment.to_string()).to_string()
    }
}

fn merge(existing: &mut Table, new: &Table) {
    for (key, value) in new {
        match (existing.get_mut(key), value) {
            (Some(Value::Table(inner)), Value::Table(new_inner)) => merge(inner, new_inner),
            _ => {
                existing.insert(key.clone(), value.clone());
            }
        }
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Table(_) => "a table".to_string(),
        other => format!("{} `{}`", other.type_str(), inline_value(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ConfigOverride {
        text.parse().unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    #[test]
    fn values_are_toml_and_bare_words_are_strings() {
        assert_eq!(parse("search.epochs=10").value, Value::Integer(10));
        assert_eq!(parse("run.name=\"x\"").value, Value::String("x".into()));
        assert_eq!(parse("run.name='x y'").value, Value::String("x y".into()));
        assert_eq!(parse("split.epochs=[2,4]").value, Value::Array(vec![Value::Integer(2), Value::Integer(4)]));
        assert_eq!(parse("search.weights.lr=0.1").value, Value::Float(0.1));
        assert_eq!(parse("split.restart_final=false").value, Value::Boolean(false));
        for bare in ["gdas", "my-run", "cuda:0", "/data/cifar-10", "1.2.3"] {
            assert_eq!(parse(&format!("k={bare}")).value, Value::String(bare.into()), "{bare}");
        }
        assert_eq!(parse("search.weights={ lr = 0.1 }").value.as_table().unwrap()["lr"], Value::Float(0.1));
    }

    #[test]
    fn keys_are_dotted_toml_keys() {
        assert_eq!(parse("search.weights.lr=1").path, ["search", "weights", "lr"]);
        assert_eq!(parse(" space.\"a.b\" = 1").path, ["space", "a.b"]);
        assert_eq!(parse("space.\"a.b\"=1").key(), "space.\"a.b\"");
        assert_eq!(parse("run=1").path, ["run"]);
    }

    #[test]
    fn malformed_overrides_say_what_is_wrong() {
        let error = "search.epochs".parse::<ConfigOverride>().unwrap_err();
        assert!(error.contains("KEY=VALUE"), "{error}");
        let error = "search..epochs=1".parse::<ConfigOverride>().unwrap_err();
        assert!(error.contains("`search..epochs` is not a key"), "{error}");
        let error = "split.epochs=[2,4".parse::<ConfigOverride>().unwrap_err();
        assert!(error.contains("`[2,4` is not a TOML value"), "{error}");
        let error = "run.name=\"x".parse::<ConfigOverride>().unwrap_err();
        assert!(error.contains("not a TOML value"), "{error}");
        let error = "run.name=".parse::<ConfigOverride>().unwrap_err();
        assert!(error.contains("no value"), "{error}");
    }

    #[test]
    fn display_gives_back_an_equivalent_override() {
        for text in ["search.epochs=10", "algorithm.name=gdas", "split.epochs=[2, 4]", "space.\"a.b\"='x'", "search.weights={lr=0.1,nesterov=true}"] {
            let first = parse(text);
            let again = parse(&first.to_string());
            assert_eq!(first, again, "{text} -> {first}");
        }
        assert_eq!(parse("algorithm.name=gdas").to_string(), "algorithm.name=\"gdas\"");
        assert_eq!(parse("split.epochs=[2,4]").to_string(), "split.epochs=[2, 4]");
    }

    #[test]
    fn applying_merges_tables_and_replaces_values() {
        let mut table: Table = toml::from_str("[search]\nepochs = 3\n[search.weights]\nlr = 0.5\nmomentum = 0.9\n[space]\nname = 's'\n").unwrap();
        parse("search.weights.lr=0.1").apply(&mut table).unwrap();
        parse("search.weights={nesterov=true}").apply(&mut table).unwrap();
        parse("split.epochs=[2,4]").apply(&mut table).unwrap();
        parse("space.nested.deep=1").apply(&mut table).unwrap();
        let weights = table["search"]["weights"].as_table().unwrap();
        assert_eq!((weights["lr"].as_float(), weights["momentum"].as_float(), weights["nesterov"].as_bool()), (Some(0.1), Some(0.9), Some(true)));
        assert_eq!(table["split"]["epochs"].as_array().unwrap().len(), 2);
        assert_eq!(table["space"]["nested"]["deep"].as_integer(), Some(1));
        assert_eq!(table["search"]["epochs"].as_integer(), Some(3));

        let error = parse("search.epochs.x=1").apply(&mut table).unwrap_err();
        assert!(error.contains("`search.epochs` is integer `3`, not a table"), "{error}");
        let error = parse("search.weights=1").apply(&mut table).unwrap_err();
        assert!(error.contains("`search.weights` is a table"), "{error}");
    }
}
