//! Conformance against a reference implementation: fixtures a generator script wrote next to
//! the tests (JSON counts, safetensors of weights, inputs and expected outputs), loading the
//! reference's weights into the plugin's tensors by name, and comparing tensors within a
//! tolerance that float32 arithmetic in a different order allows.
//!
//! ```ignore
//! let fixtures = Fixtures::of_crate(env!("CARGO_MANIFEST_DIR"));
//! let case = fixtures.read_tensors("supernet.safetensors");
//! load_named("supernet", &by_name(supernet.parameters()), &under(&case, "param"), NameCheck::Exact);
//! assert_close("logits", &logits, &case["logits"]);
//! ```

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use splitnas_plugin_api::author::SpacePlugin;
use splitnas_plugin_api::NamedTensor;
use tch::{Kind, Tensor};

/// The fixtures of one crate: `<crate>/tests/fixtures/`.
#[derive(Debug, Clone)]
pub struct Fixtures {
    directory: PathBuf,
}

impl Fixtures {
    /// `manifest_dir` is the test crate's `env!("CARGO_MANIFEST_DIR")`.
    pub fn of_crate(manifest_dir: &str) -> Self {
        Fixtures { directory: Path::new(manifest_dir).join("tests/fixtures") }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.directory.join(file)
    }

    /// A JSON fixture; panics naming the file and the problem.
    pub fn read_json<T: DeserializeOwned>(&self, file: &str) -> T {
        let text = std::fs::read_to_string(self.path(file)).unwrap_or_else(|error| panic!("{file}: {error}"));
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("{file}: {error}"))
    }

    /// A safetensors fixture, keyed by tensor name.
    pub fn read_tensors(&self, file: &str) -> HashMap<String, Tensor> {
        Tensor::read_safetensors(self.path(file)).unwrap_or_else(|error| panic!("{file}: {error}")).into_iter().collect()
    }
}

/// A stand-alone network's size by the reference implementation: one case of a
/// `stats.json` fixture (`{"cases": [...]}`).
#[derive(Debug, Clone, Deserialize)]
pub struct StatsCase {
    pub name: String,
    /// The space's configuration keys for this case.
    pub config: serde_json::Value,
    /// The network in the space's genotype format.
    pub genotype: String,
    pub image_size: u32,
    pub parameters: u64,
    /// Multiply-accumulates of conv and linear layers for one `image_size` input.
    pub flops: u64,
}

#[derive(Deserialize)]
struct StatsFile {
    cases: Vec<StatsCase>,
}

impl Fixtures {
    /// Every case of a `stats.json`-shaped fixture; at least `minimum` of them.
    pub fn stats_cases(&self, file: &str, minimum: usize) -> Vec<StatsCase> {
        let StatsFile { cases } = self.read_json(file);
        assert!(cases.len() >= minimum, "{file} holds {} cases, expected at least {minimum}", cases.len());
        cases
    }
}

/// The space `S`, made from each case's configuration, counts each case's parameters and
/// FLOPs exactly as the reference does; panics naming the case.
pub fn assert_network_stats_match<S: SpacePlugin>(cases: &[StatsCase]) {
    for case in cases {
        let space = S::create(&case.config.to_string()).unwrap_or_else(|error| panic!("{}: {error}", case.name));
        let architecture = space.parse_genotype(&case.genotype).unwrap_or_else(|error| panic!("{}: {error}", case.name));
        let stats = space.network_stats(&architecture, case.image_size).unwrap_or_else(|error| panic!("{}: {error}", case.name));
        assert_eq!((stats.parameters, stats.flops), (case.parameters, case.flops), "{} ({}, {})", case.name, case.config, case.genotype);
    }
}

/// The tensors under `prefix/`, keyed by the rest of their name.
pub fn under<'a>(tensors: &'a HashMap<String, Tensor>, prefix: &str) -> HashMap<&'a str, &'a Tensor> {
    tensors.iter().filter_map(|(name, tensor)| Some((name.strip_prefix(prefix)?.strip_prefix('/')?, tensor))).collect()
}

/// `|ours − reference| ≤ relative · max|reference| + absolute`, per tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    pub relative: f64,
    pub absolute: f64,
}

impl Tolerance {
    /// float32 on both sides, summed in different orders.
    pub const FLOAT32: Tolerance = Tolerance { relative: 1e-4, absolute: 1e-5 };
}

/// [`assert_close_within`] [`Tolerance::FLOAT32`].
pub fn assert_close(what: &str, ours: &Tensor, expected: &Tensor) {
    assert_close_within(what, ours, expected, Tolerance::FLOAT32);
}

/// Panics naming `what`, the largest difference and the reference's scale when the two differ
/// in shape or by more than `tolerance`.
pub fn assert_close_within(what: &str, ours: &Tensor, expected: &Tensor, tolerance: Tolerance) {
    assert_eq!(ours.size(), expected.size(), "{what}: shape");
    let expected = expected.to_kind(Kind::Double);
    let scale = expected.abs().max().double_value(&[]);
    let difference = (ours.to_kind(Kind::Double) - &expected).abs().max().double_value(&[]);
    assert!(
        difference <= tolerance.relative * scale + tolerance.absolute,
        "{what}: max |ours - reference| = {difference:e} with max |reference| = {scale:e}"
    );
}

/// The gradient of a parameter, zeros where autograd never reached it (references often
/// leave exact zeros out of their fixtures).
pub fn grad_or_zeros(tensor: &Tensor) -> Tensor {
    let grad = tensor.grad();
    if grad.defined() {
        grad
    } else {
        tensor.zeros_like()
    }
}

/// A plugin's named tensors as plain `(name, tensor)` pairs.
pub fn by_name(named: Vec<NamedTensor>) -> Vec<(String, Tensor)> {
    named.into_iter().map(|named| (named.name.to_string(), named.tensor.into_tensor())).collect()
}

/// How the plugin's names must relate to the fixture's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameCheck {
    /// The same sets of names.
    Exact,
    /// Every fixture name is one of the plugin's (the plugin may hold more).
    FixtureSubset,
}

/// Copies `values[name]` into each of `ours` that the fixture holds, after checking the names
/// as `check` says.
pub fn load_named(what: &str, ours: &[(String, Tensor)], values: &HashMap<&str, &Tensor>, check: NameCheck) {
    let our_names: BTreeSet<&str> = ours.iter().map(|(name, _)| name.as_str()).collect();
    let their_names: BTreeSet<&str> = values.keys().copied().collect();
    match check {
        NameCheck::Exact => assert_eq!(our_names, their_names, "{what}: the plugin's names and the fixture's differ"),
        NameCheck::FixtureSubset => {
            let unknown: Vec<&&str> = their_names.difference(&our_names).collect();
            assert!(unknown.is_empty(), "{what}: the fixture names tensors the plugin does not have: {unknown:?}");
        }
    }
    tch::no_grad(|| {
        for (name, tensor) in ours {
            if let Some(value) = values.get(name.as_str()) {
                // A second handle to the same storage: copy_ wants `&mut`.
                tensor.shallow_clone().f_copy_(value).unwrap_or_else(|error| panic!("{what} {name}: {error}"));
            }
        }
    });
}
