//! Unit tests through the author traits, on the CPU, with tiny networks (C=4, N=1, 8x8 inputs).

use std::collections::BTreeSet;

use splitnas_plugin_api::author::{NetworkPlugin, SupernetPlugin};
use splitnas_plugin_api::{ForwardMode, NamedTensor};
use tch::Kind;

use super::*;
use crate::space::NUM_EDGES;

const CPU: (Kind, tch::Device) = (Kind::Float, tch::Device::Cpu);

fn tiny() -> Nb201 {
    Nb201::create(r#"{"channels": 4, "cells": 1, "classes": 10, "input_channels": 3}"#).unwrap()
}

fn images() -> Tensor {
    Tensor::randn([2, 3, 8, 8], CPU)
}

/// A mask allowing, on every edge, exactly the listed options.
fn mask_of(options: &[Operation]) -> Mask {
    mask_per_edge(|_| options.to_vec())
}

fn mask_per_edge(options: impl Fn(usize) -> Vec<Operation>) -> Mask {
    Mask {
        rows: (0..NUM_EDGES)
            .map(|edge| {
                let allowed = options(edge);
                Operation::ALL.iter().map(|op| allowed.contains(op)).collect()
            })
            .collect(),
    }
}

fn full_mask() -> Mask {
    mask_of(&Operation::ALL)
}

fn uniform_weights() -> Tensor {
    Tensor::full([NUM_EDGES as i64, 5], 0.2, CPU)
}

fn parameter_map(supernet: &Nb201Supernet) -> Vec<(String, Tensor)> {
    supernet.parameters().unwrap().into_iter().map(|named| (named.name.to_string(), named.tensor.into_tensor())).collect()
}

fn names(named: Vec<NamedTensor>) -> Vec<String> {
    named.into_iter().map(|named| named.name.to_string()).collect()
}

fn has_grad(tensor: &Tensor) -> bool {
    tensor.grad().defined()
}

#[test]
fn info_lists_the_six_edges_and_five_options() {
    let info = tiny().info().unwrap();
    assert_eq!(info.name.as_str(), "nb201");
    assert_eq!((info.max_options, info.min_group_size), (5, 1));
    let edges: Vec<&str> = info.choice_points.iter().map(|point| point.name.as_str()).collect();
    assert_eq!(edges, ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"]);
    for point in &info.choice_points {
        assert_eq!(point.group.as_str(), "cell");
        assert!(point.splittable);
        let options: Vec<&str> = point.options.iter().map(|option| option.name.as_str()).collect();
        assert_eq!(options, ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]);
    }
    // C=4, N=1: conv3x3 adds 9w²+2w per stage for w = 4, 8, 16.
    let conv3 = &info.choice_points[0].options[3].costs[0];
    assert_eq!((conv3.name.as_str(), conv3.value), ("params", (9 * (16 + 64 + 256) + 2 * (4 + 8 + 16)) as f64));
    assert_eq!(info.full_mask(), full_mask());
}

#[test]
fn config_defaults_and_errors() {
    let default = Nb201::create(&Nb201::default_config().to_string()).unwrap();
    assert_eq!(default.config(), &Nb201Config { channels: 16, cells: 5, classes: 10, input_channels: 3 });
    assert_eq!(Nb201::create("{}").unwrap().config(), default.config());
    let misspelt = Nb201::create(r#"{"chanels": 8}"#).err().unwrap();
    assert_eq!(misspelt.kind, splitnas_plugin_api::ErrorKind::InvalidConfig);
    assert!(misspelt.message.contains("chanels"), "{}", misspelt.message);
    assert!(Nb201::create(r#"{"cells": 0}"#).err().unwrap().message.contains("cells must be at least 1"));
    assert!(Nb201::create(r#"{"classes": -1}"#).is_err());
}

#[test]
fn supernet_forward_gives_logits_in_both_modes() {
    let space = tiny();
    let supernet = space.build_supernet(&full_mask(), Device::Cpu).unwrap();
    for train in [true, false] {
        let logits = supernet.forward(&images(), &uniform_weights(), &full_mask(), train).unwrap();
        assert_eq!(logits.size(), [2, 10]);
        assert_eq!(logits.isfinite().all().to_kind(Kind::Int64).int64_value(&[]), 1);
    }
}

#[test]
fn only_skip_active_computes_no_conv() {
    let supernet = tiny().build_supernet(&full_mask(), Device::Cpu).unwrap();
    let buffers_before: Vec<Tensor> = supernet.buffers().unwrap().into_iter().map(|named| named.tensor.into_tensor().copy()).collect();
    let logits = supernet.forward(&images(), &uniform_weights(), &mask_of(&[Operation::SkipConnect]), true).unwrap();
    logits.sum(Kind::Float).backward();
    for (name, tensor) in parameter_map(&supernet) {
        let in_search_cell = name.contains(".edges.");
        assert_eq!(has_grad(&tensor), !in_search_cell, "{name}");
    }
    // Search-cell ops were never run, so their running statistics are untouched.
    for (named, before) in supernet.buffers().unwrap().into_iter().zip(buffers_before) {
        let unchanged = named.tensor.tensor().equal(&before);
        assert_eq!(unchanged, named.name.contains(".edges."), "{}", named.name);
    }
}

#[test]
fn options_outside_the_active_mask_are_not_computed() {
    let supernet = tiny().build_supernet(&full_mask(), Device::Cpu).unwrap();
    // Edge 1<-0 runs only conv3x3; the others skip and average-pool; weights of everything
    // inactive are zero, as a host would pass them.
    let active = mask_per_edge(|edge| if edge == 0 { vec![Operation::NorConv3x3] } else { vec![Operation::SkipConnect, Operation::AvgPool3x3] });
    let weights = Tensor::from_slice(&active.rows.iter().flat_map(|row| row.iter().map(|&on| if on { 0.5f32 } else { 0.0 })).collect::<Vec<_>>())
        .view([NUM_EDGES as i64, 5]);
    let logits = supernet.forward(&images(), &weights, &active, true).unwrap();
    logits.sum(Kind::Float).backward();
    let edge0_conv3 = supernet.owned_parameters(0).unwrap().into_iter().filter(|name| name.contains("nor_conv_3x3")).collect::<BTreeSet<_>>();
    assert_eq!(edge0_conv3.len(), 3 * 2, "3 cells x (conv weight, conv bias)");
    for (name, tensor) in parameter_map(&supernet) {
        if name.contains(".edges.") {
            assert_eq!(has_grad(&tensor), edge0_conv3.contains(&name), "{name}");
        }
    }
}

#[test]
fn a_node_with_only_none_inputs_is_zeros() {
    let supernet = tiny().build_supernet(&full_mask(), Device::Cpu).unwrap();
    // Every cell outputs zeros, the reduction blocks map zeros to zeros, so the logits are the
    // classifier's bias whatever the input.
    let logits = supernet.forward(&images(), &uniform_weights(), &mask_of(&[Operation::None]), true).unwrap();
    let bias = parameter_map(&supernet).into_iter().find(|(name, _)| name == "classifier.bias").unwrap().1;
    assert!(logits.allclose(&bias.unsqueeze(0).expand([2, 10], false), 1e-6, 1e-6, false));
}

#[test]
fn parameter_names_do_not_depend_on_the_mask() {
    let space = tiny();
    let full = space.build_supernet(&full_mask(), Device::Cpu).unwrap();
    let narrow = space.build_supernet(&mask_per_edge(|edge| vec![Operation::ALL[edge % 5]]), Device::Cpu).unwrap();
    let full_names = names(full.parameters().unwrap());
    assert_eq!(full_names, names(narrow.parameters().unwrap()));
    assert_eq!(names(full.buffers().unwrap()), names(narrow.buffers().unwrap()));
    // tch renames a duplicate to `name__N`: every name must have been unique.
    assert!(full_names.iter().all(|name| !name.contains("__")));
    for expected in [
        "stem.conv.weight",
        "stem.bn.weight",
        "cells.0.edges.1<-0.nor_conv_3x3.conv.weight",
        "cells.0.edges.1<-0.nor_conv_3x3.conv.bias",
        "cells.1.conv_a.conv.weight",
        "cells.1.downsample.weight",
        "cells.4.edges.3<-2.nor_conv_1x1.conv.bias",
        "head.bn.weight",
        "classifier.weight",
    ] {
        assert!(full_names.iter().any(|name| name == expected), "{expected} missing from {full_names:?}");
    }
    let buffers = names(full.buffers().unwrap());
    assert!(buffers.contains(&"cells.2.edges.2<-1.nor_conv_1x1.bn.running_var".to_string()));
    assert!(!full_names.iter().any(|name| name.contains(".edges.") && name.contains(".bn.")), "search-cell BN has no affine");
}

#[test]
fn shared_set_excludes_exactly_the_scored_edge() {
    let supernet = tiny().build_supernet(&full_mask(), Device::Cpu).unwrap();
    let all: BTreeSet<String> = names(supernet.parameters().unwrap()).into_iter().collect();
    let reductions: BTreeSet<String> = all.iter().filter(|name| name.starts_with("cells.1.") || name.starts_with("cells.3.")).cloned().collect();
    let fixed: BTreeSet<String> = all.iter().filter(|name| !name.starts_with("cells.")).cloned().collect();
    assert_eq!(
        fixed.iter().map(String::as_str).collect::<Vec<_>>(),
        ["classifier.bias", "classifier.weight", "head.bn.bias", "head.bn.weight", "stem.bn.bias", "stem.bn.weight", "stem.conv.weight"]
    );
    let per_edge: Vec<BTreeSet<String>> = (0..NUM_EDGES as u32).map(|edge| supernet.owned_parameters(edge).unwrap().into_iter().collect()).collect();
    for (edge, own) in per_edge.iter().enumerate() {
        // 3 cells x (conv1x1, conv3x3) x (weight, bias).
        assert_eq!(own.len(), 12, "edge {edge}");
        let shared: BTreeSet<String> = supernet.shared_parameters(edge as u32).unwrap().into_iter().collect();
        assert!(shared.is_disjoint(own));
        assert!(shared.is_superset(&reductions));
        assert!(shared.is_disjoint(&fixed));
        let mut union = shared.clone();
        union.extend(own.iter().cloned());
        union.extend(fixed.iter().cloned());
        assert_eq!(union, all, "shared + own + stem/head = everything, for edge {edge}");
        for (other, theirs) in per_edge.iter().enumerate() {
            if other != edge {
                assert!(shared.is_superset(theirs));
            }
        }
    }
    assert!(supernet.shared_parameters(6).unwrap_err().message.contains("choice point 6 does not exist"));
}

#[test]
fn bad_masks_weights_and_inputs_are_errors() {
    let space = tiny();
    let short = Mask { rows: full_mask().rows.into_iter().take(5).collect() };
    assert!(space.build_supernet(&short, Device::Cpu).err().unwrap().message.contains("has 5 rows"));
    let empty_edge = mask_per_edge(|edge| if edge == 2 { vec![] } else { vec![Operation::SkipConnect] });
    assert!(space.build_supernet(&empty_edge, Device::Cpu).err().unwrap().message.contains("no option on edge 2<-1"));

    let narrow = space.build_supernet(&mask_of(&[Operation::SkipConnect, Operation::NorConv1x1]), Device::Cpu).unwrap();
    let outside = narrow.forward(&images(), &uniform_weights(), &full_mask(), true).unwrap_err();
    assert!(outside.message.contains("option none of edge 1<-0 is active but outside"), "{}", outside.message);
    let wrong_weights = narrow.forward(&images(), &Tensor::ones([6, 4], CPU), &mask_of(&[Operation::SkipConnect]), true).unwrap_err();
    assert!(wrong_weights.message.contains("weights must be [6, 5]"));
    let gray = narrow.forward(&Tensor::ones([2, 1, 8, 8], CPU), &uniform_weights(), &mask_of(&[Operation::SkipConnect]), true).unwrap_err();
    assert!(gray.message.contains("expected images [batch, 3, height, width]"), "{}", gray.message);
    let odd = narrow.forward(&Tensor::ones([2, 3, 7, 7], CPU), &uniform_weights(), &mask_of(&[Operation::NorConv1x1]), true).unwrap_err();
    assert_eq!(odd.kind, splitnas_plugin_api::ErrorKind::Torch, "libtorch's shape error comes back as an error");
}

#[test]
fn derive_takes_the_argmax_within_the_mask() {
    let space = tiny();
    let weights = Tensor::from_slice(&[
        0.9f32, 0.1, 0.2, 0.3, 0.4, // edge 0: none wins outright
        0.9, 0.1, 0.2, 0.3, 0.4, // edge 1: none is masked out, avg_pool wins
        0.0, 0.5, 0.5, 0.1, 0.1, // edge 2: tie, the first wins
        0.1, 0.2, 0.3, 0.4, 0.5, //
        0.5, 0.4, 0.3, 0.2, 0.1, //
        0.1, 0.1, 0.9, 0.1, 0.1, //
    ])
    .view([6, 5]);
    let mask =
        mask_per_edge(
            |edge| {
                if edge == 1 {
                    vec![Operation::SkipConnect, Operation::NorConv1x1, Operation::AvgPool3x3]
                } else {
                    Operation::ALL.to_vec()
                }
            },
        );
    let architecture = space.derive(&weights, &mask).unwrap();
    assert_eq!(architecture.choices.as_slice(), [0, 4, 1, 4, 0, 2]);
    assert_eq!(space.format_genotype(&architecture).unwrap(), "|none~0|+|avg_pool_3x3~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|");
    let nan = weights.copy();
    let _ = nan.get(3).get(2).fill_(f64::NAN);
    assert!(space.derive(&nan, &full_mask()).unwrap_err().message.contains("nor_conv_1x1 on edge 3<-0 is NaN"));
    assert!(space.derive(&Tensor::zeros([5, 5], CPU), &full_mask()).is_err());
}

#[test]
fn genotypes_round_trip_through_the_space() {
    let space = tiny();
    let architecture = space.parse_genotype(genotype::EXAMPLE).unwrap();
    assert_eq!(architecture.choices.as_slice(), [3, 3, 3, 1, 3, 3]);
    assert_eq!(space.format_genotype(&architecture).unwrap(), genotype::EXAMPLE);
    let error = space.parse_genotype("|nor_conv_3x3~0|+|nor_conv_3x3~0|").unwrap_err();
    assert_eq!(error.kind, splitnas_plugin_api::ErrorKind::InvalidInput);
    assert!(error.message.starts_with("nb201 genotype: expected 3 node groups"), "{}", error.message);
    let absent = Architecture { choices: vec![0, 0, 0, 0, 0, Architecture::ABSENT].into() };
    assert!(space.format_genotype(&absent).unwrap_err().message.contains("edge 3<-2 is marked absent"));
}

#[test]
fn stand_alone_network_forward_names_and_stats() {
    let space = tiny();
    let architecture = space.parse_genotype("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|").unwrap();
    let network = space.build_network(&architecture, Device::Cpu).unwrap();
    for train in [true, false] {
        let (logits, auxiliary) = network.forward(&images(), ForwardMode { train, drop_path_prob: 0.0 }).unwrap();
        assert_eq!(logits.size(), [2, 10]);
        assert!(auxiliary.is_none());
    }
    let drop_path = network.forward(&images(), ForwardMode { train: true, drop_path_prob: 0.2 }).unwrap_err();
    assert_eq!(drop_path.kind, splitnas_plugin_api::ErrorKind::Unsupported);

    let parameter_names = names(network.parameters().unwrap());
    assert!(parameter_names.contains(&"cells.0.edges.1<-0.nor_conv_3x3.conv.weight".to_string()));
    assert!(parameter_names.contains(&"cells.0.edges.1<-0.nor_conv_3x3.bn.weight".to_string()), "affine BN in stand-alone cells");
    assert!(!parameter_names.iter().any(|name| name.ends_with("conv.bias")), "no conv bias before an affine BN");
    assert!(names(network.buffers().unwrap()).contains(&"cells.4.edges.3<-2.nor_conv_3x3.bn.running_mean".to_string()));

    let counted: i64 = network.parameters().unwrap().iter().map(|named| named.tensor.tensor().numel() as i64).sum();
    let stats = space.network_stats(&architecture, 8).unwrap();
    assert_eq!(stats.parameters, counted as u64);
    // By hand at 8x8: stem 64*4*3*9; stage 1 (8x8, w=4): conv3x3 64*16*9 twice, conv1x1 64*16;
    // reduction 4->8: 16*4*8*9 + 16*8*8*9 + 16*4*8; stage 2 (4x4, w=8): 16*64*(9+1+9);
    // reduction 8->16: 4*8*16*9 + 4*16*16*9 + 4*8*16; stage 3 (2x2, w=16): 4*256*19; classifier 16*10 + 10.
    let expected = 64 * 4 * 3 * 9
        + 64 * 16 * 19
        + (16 * 32 * 9 + 16 * 64 * 9 + 16 * 32)
        + 16 * 64 * 19
        + (4 * 128 * 9 + 4 * 256 * 9 + 4 * 128)
        + 4 * 256 * 19
        + 170;
    assert_eq!(stats.flops, expected);
    assert!(space.network_stats(&architecture, 6).unwrap_err().message.contains("use a multiple of 4"));
    assert!(space.network_stats(&architecture, 0).is_err());
}

#[test]
fn option_costs_add_up_to_network_sizes() {
    let space = tiny();
    let info = space.info().unwrap();
    let params_of = |ops: [Operation; NUM_EDGES]| space.network_stats(&space::architecture_of(&ops), 8).unwrap().parameters;
    let skeleton_only = params_of([Operation::None; NUM_EDGES]);
    for (index, op) in Operation::ALL.into_iter().enumerate() {
        let cost = info.choice_points[0].options[index].costs[0].value as u64;
        assert_eq!(params_of([op; NUM_EDGES]) - skeleton_only, NUM_EDGES as u64 * cost, "{}", op.name());
    }
}

/// NB201's own table for CIFAR-10 (C=16, N=5, 32x32) spans 0.073306 to 1.531546 M parameters and
/// 7.78305 to 220.11969 MFLOPs, from the all-`none` cell to the all-conv3x3 cell.
#[test]
fn full_size_stats_match_nb201s_table() {
    let space = Nb201::create("{}").unwrap();
    let stats_of = |op| space.network_stats(&space::architecture_of(&[op; NUM_EDGES]), 32).unwrap();
    assert_eq!(stats_of(Operation::None), NetworkStats { parameters: 73_306, flops: 7_783_050 });
    assert_eq!(stats_of(Operation::NorConv3x3), NetworkStats { parameters: 1_531_546, flops: 220_119_690 });
}

#[test]
fn the_library_exports_the_space() {
    let components = splitnas_plugin_api::registered_components();
    assert!(components.iter().any(|component| component.name.as_str() == "nb201" && component.kind() == splitnas_plugin_api::ComponentKind::Space));
}

/// ABI 1.3: an architecture's FLOPs are the all-`none` skeleton's plus its options' FLOPs, at
/// the image size `configure` gave (8x8 and 16x16 here), mixed architectures included.
#[test]
fn option_flops_add_up_to_network_flops_at_the_configured_image_size() {
    for image_size in [8, 16] {
        let mut space = tiny();
        space.configure(&SpaceSetup { classes: 10, input_channels: 3, image_size, network_channels: 0, network_cells: 0 }).unwrap();
        let flops = space.option_flops().unwrap();
        assert_eq!(flops.len(), NUM_EDGES);
        let flops_of = |ops: [Operation; NUM_EDGES]| space.network_stats(&space::architecture_of(&ops), image_size).unwrap().flops;
        let skeleton_only = flops_of([Operation::None; NUM_EDGES]);
        let mixed =
            [Operation::NorConv3x3, Operation::SkipConnect, Operation::NorConv1x1, Operation::AvgPool3x3, Operation::None, Operation::NorConv3x3];
        let expected: f64 = mixed.iter().enumerate().map(|(edge, op)| flops[edge][op.index()]).sum();
        assert_eq!(flops_of(mixed) - skeleton_only, expected as u64, "{image_size}x{image_size}");
        for op in [Operation::None, Operation::SkipConnect, Operation::AvgPool3x3] {
            assert_eq!(flops[0][op.index()], 0.0, "{} computes no multiply-accumulates", op.name());
        }
        assert!(flops[0][Operation::NorConv3x3.index()] > flops[0][Operation::NorConv1x1.index()]);
    }
}

/// ABI 1.3: an option's modules run at its stages' shapes (C, 2C, 4C at 8, 4, 2 pixels), once
/// per cell, and give the op's output shape; `none` has none.
#[test]
fn option_networks_run_each_op_at_its_stages_shapes() {
    let mut space = Nb201::create(r#"{"channels": 4, "cells": 2}"#).unwrap();
    space.configure(&SpaceSetup { classes: 10, input_channels: 3, image_size: 8, network_channels: 0, network_cells: 0 }).unwrap();
    assert!(space.option_networks(0, Operation::None.index() as u32, Device::Cpu).unwrap().is_empty());
    let modules = space.option_networks(3, Operation::NorConv3x3.index() as u32, Device::Cpu).unwrap();
    let shapes: Vec<[i64; 3]> = modules.iter().map(|module| module.input_shape).collect();
    assert_eq!(shapes, [[4, 8, 8], [8, 4, 4], [16, 2, 2]]);
    assert!(modules.iter().all(|module| module.occurrences == 2));
    for module in &modules {
        let [c, h, w] = module.input_shape;
        let (output, _) = module.network.forward(&Tensor::randn([2, c, h, w], CPU), ForwardMode { train: false, drop_path_prob: 0.0 }).unwrap();
        assert_eq!(output.size(), [2, c, h, w]);
        assert_eq!(module.network.parameters().unwrap().len(), 3, "conv weight, BN weight and bias");
    }
    assert!(space.option_networks(6, 0, Device::Cpu).is_err());
    assert!(space.option_networks(0, 5, Device::Cpu).is_err());
}
