//! The plugin against the official implementation: fixtures in `tests/fixtures`, made by
//! `make_fixtures.py` with `ofa`'s `ProxylessNASNets` (see its docstring for what each file
//! holds and how to regenerate them).
//!
//! - parameters and FLOPs (multiply-accumulates) of stand-alone networks: the published
//!   ProxylessNAS-Mobile and GM + ProxylessNAS networks, fixed and seeded random genotypes at
//!   several widths, strides, image sizes and class counts;
//! - a stand-alone network's training forward and backward, running statistics, evaluation
//!   forward, after loading the official network's parameters into ours by name;
//! - a supernet's forward and backward with sparse mixing weights (inactive options, single
//!   paths, a block whose only active option is `zero`), against a PyTorch rendering built
//!   from ofa's `MBConvLayer` candidates.

use serde::Deserialize;
use splitnas_plugin_api::author::{NetworkPlugin, SpacePlugin, SupernetPlugin};
use splitnas_plugin_api::{Device, ForwardMode, Mask};
use splitnas_plugin_proxylessnas::ProxylessNas;
use splitnas_plugin_testkit::conformance::{assert_close, assert_network_stats_match, by_name, load_named, under, Fixtures, NameCheck};

fn fixtures() -> Fixtures {
    Fixtures::of_crate(env!("CARGO_MANIFEST_DIR"))
}

fn space(config: &serde_json::Value) -> ProxylessNas {
    ProxylessNas::create(&config.to_string()).unwrap_or_else(|error| panic!("{config}: {error}"))
}

#[test]
fn parameters_and_flops_equal_the_official_networks() {
    let cases = fixtures().stats_cases("stats.json", 15);
    assert_network_stats_match::<ProxylessNas>(&cases);
    // The published numbers themselves (ProxylessNAS's log: 4.08 M parameters, 320.4 M FLOPs).
    let mobile = cases.iter().find(|case| case.name.starts_with("ProxylessNAS-Mobile")).expect("the Mobile case");
    assert_eq!((mobile.parameters / 10_000, mobile.flops / 100_000), (408, 3204));
}

#[derive(Deserialize)]
struct TinyCases {
    config: serde_json::Value,
    image_size: i64,
    network_genotype: String,
}

#[test]
fn stand_alone_network_trains_and_evaluates_like_ofa() {
    let cases: TinyCases = fixtures().read_json("cases.json");
    let space = space(&cases.config);
    let tensors = fixtures().read_tensors("network.safetensors");
    let architecture = space.parse_genotype(&cases.network_genotype).unwrap();
    let network = space.build_network(&architecture, Device::Cpu).unwrap();
    let parameters = by_name(network.parameters().unwrap());
    let buffers = by_name(network.buffers().unwrap());
    load_named("parameters", &parameters, &under(&tensors, "param"), NameCheck::Exact);
    load_named("buffers", &buffers, &under(&tensors, "buffer_before"), NameCheck::Exact);
    let input = &tensors["input"];
    assert_eq!(input.size()[2], cases.image_size);
    let (logits, auxiliary) = network.forward(input, ForwardMode { train: true, drop_path_prob: 0.0 }).unwrap();
    assert!(auxiliary.is_none());
    assert_close("training logits", &logits, &tensors["logits_train"]);
    let loss = logits.cross_entropy_for_logits(&tensors["labels"]);
    assert_close("loss", &loss, &tensors["loss"]);
    loss.backward();
    for (name, parameter) in &parameters {
        assert_close(&format!("grad {name}"), &parameter.grad(), &tensors[&format!("grad/{name}")]);
    }
    for (name, buffer) in &buffers {
        assert_close(&format!("running statistic {name}"), buffer, &tensors[&format!("buffer_after/{name}")]);
    }
    let (evaluation, _) = tch::no_grad(|| network.forward(input, ForwardMode { train: false, drop_path_prob: 0.0 })).unwrap();
    assert_close("evaluation logits", &evaluation, &tensors["logits_eval"]);
}

#[test]
fn supernet_mixes_like_the_pytorch_rendering() {
    let cases: TinyCases = fixtures().read_json("cases.json");
    let space = space(&cases.config);
    let tensors = fixtures().read_tensors("supernet.safetensors");
    let mask = space.info().unwrap().full_mask();
    let supernet = space.build_supernet(&mask, Device::Cpu).unwrap();
    let parameters = by_name(supernet.parameters().unwrap());
    let in_graph = under(&tensors, "param");
    load_named("parameters", &parameters, &in_graph, NameCheck::FixtureSubset);
    let weights = tensors["weights"].copy().set_requires_grad(true);
    let nonzero = Vec::<f32>::try_from(tensors["weights"].view([-1])).unwrap();
    let active =
        Mask { rows: nonzero.chunks(7).map(|row| row.iter().map(|&weight| weight != 0.0).collect::<Vec<_>>().into()).collect::<Vec<_>>().into() };
    // The fixture's sparse weights: block 4 computes only `zero` (its input passes on).
    assert_eq!(active.allowed(3), [6]);
    let logits = supernet.forward(&tensors["input"], &weights, &active, true).unwrap();
    assert_close("logits", &logits, &tensors["logits"]);
    let loss = logits.cross_entropy_for_logits(&tensors["labels"]);
    assert_close("loss", &loss, &tensors["loss"]);
    loss.backward();
    assert_close("weights grad", &weights.grad(), &tensors["weights_grad"]);
    for (name, parameter) in &parameters {
        let grad = parameter.grad();
        match tensors.get(&format!("grad/{name}")) {
            Some(expected) => assert_close(&format!("grad {name}"), &grad, expected),
            None => assert!(!grad.defined() || grad.abs().max().double_value(&[]) == 0.0, "{name} is inactive but got a gradient"),
        }
    }
}
