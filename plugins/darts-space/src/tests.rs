//! Unit tests through the author traits, on the CPU, with tiny networks (C=4, 5 cells: normal
//! cells 0, 2, 4 and reduction cells 1, 3).

use std::collections::BTreeSet;

use splitnas_plugin_api::author::{NetworkPlugin, SupernetPlugin};
use splitnas_plugin_api::{ErrorKind, ForwardMode, NamedTensor};

use super::*;
use crate::space::{edge_index, EDGES, EDGES_PER_CELL};

const CPU: (Kind, tch::Device) = (Kind::Float, tch::Device::Cpu);

const DARTS_V2: &str = "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])";

fn tiny() -> DartsSpace {
    tch::set_num_threads(1);
    DartsSpace::create(r#"{"channels": 4, "cells": 5, "network_channels": 4, "network_cells": 5, "classes": 10, "input_channels": 3}"#).unwrap()
}

fn images(side: i64) -> Tensor {
    Tensor::randn([2, 3, side, side], CPU)
}

fn full_mask() -> Mask {
    Mask { rows: (0..NUM_CHOICE_POINTS).map(|_| vec![true; NUM_OPERATIONS].into()).collect() }
}

fn mask_of(ops: &[Operation]) -> Mask {
    Mask { rows: (0..NUM_CHOICE_POINTS).map(|_| Operation::ALL.iter().map(|op| ops.contains(op)).collect()).collect() }
}

fn uniform_weights() -> Tensor {
    Tensor::full([NUM_CHOICE_POINTS as i64, NUM_OPERATIONS as i64], 1.0 / 7.0, CPU)
}

fn parameter_map(supernet: &DartsSupernet) -> Vec<(String, Tensor)> {
    supernet.parameters().unwrap().into_iter().map(|named| (named.name.to_string(), named.tensor.into_tensor())).collect()
}

fn names(named: Vec<NamedTensor>) -> Vec<String> {
    named.into_iter().map(|named| named.name.to_string()).collect()
}

#[test]
fn info_lists_normal_then_reduction_edges_with_seven_ops() {
    let info = tiny().info().unwrap();
    assert_eq!(info.name.as_str(), "darts");
    assert_eq!((info.max_options, info.min_group_size, info.num_choice_points()), (7, 2, 28));
    for (point, choice_point) in info.choice_points.iter().enumerate() {
        let normal = point < EDGES_PER_CELL;
        assert_eq!(choice_point.group.as_str(), if normal { "normal" } else { "reduce" });
        assert_eq!(choice_point.splittable, normal, "only normal-cell edges split");
        let (to, from) = EDGES[point % EDGES_PER_CELL];
        assert_eq!(choice_point.name.as_str(), format!("{} {to}<-{from}", if normal { "normal" } else { "reduce" }));
        let options: Vec<&str> = choice_point.options.iter().map(|option| option.name.as_str()).collect();
        assert_eq!(options, ["max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]);
    }
    assert_eq!(info.full_mask(), full_mask());
}

#[test]
fn config_defaults_and_errors() {
    let default = DartsSpace::create(&DartsSpace::default_config().to_string()).unwrap();
    assert_eq!(
        default.config(),
        &DartsConfig { channels: 16, cells: 8, network_channels: 36, network_cells: 20, auxiliary: true, classes: 10, input_channels: 3 }
    );
    assert_eq!(DartsSpace::create("{}").unwrap().config(), default.config());
    let misspelt = DartsSpace::create(r#"{"layers": 8}"#).err().unwrap();
    assert_eq!(misspelt.kind, ErrorKind::InvalidConfig);
    assert!(misspelt.message.contains("layers"), "{}", misspelt.message);
    assert!(DartsSpace::create(r#"{"cells": 2}"#).err().unwrap().message.contains("cells must be between 3"));
    assert!(DartsSpace::create(r#"{"network_channels": 0}"#).err().unwrap().message.contains("network_channels must be at least 1"));
}

#[test]
fn supernet_forward_gives_logits_in_both_modes_and_28x28_images_work() {
    let space = tiny();
    let supernet = space.build_supernet(&full_mask(), Device::Cpu).unwrap();
    for (train, side) in [(true, 16), (false, 16), (true, 28)] {
        let logits = supernet.forward(&images(side), &uniform_weights(), &full_mask(), train).unwrap();
        assert_eq!(logits.size(), [2, 10]);
        assert_eq!(logits.isfinite().all().to_kind(Kind::Int64).int64_value(&[]), 1);
    }
    let error = supernet.forward(&images(16), &Tensor::zeros([14, 7], CPU), &full_mask(), true).unwrap_err();
    assert!(error.message.contains("[28, 7]"), "{}", error.message);
}

#[test]
fn only_the_active_options_are_computed() {
    let supernet = tiny().build_supernet(&full_mask(), Device::Cpu).unwrap();
    // Only skip_connect everywhere: the mixed ops' parameters that get a gradient are those of
    // the factorized reductions on the input edges of reduction cells.
    let logits = supernet.forward(&images(16), &uniform_weights(), &mask_of(&[Operation::SkipConnect]), true).unwrap();
    logits.sum(Kind::Float).backward();
    for (name, tensor) in parameter_map(&supernet) {
        let reduce_input_skip = (name.starts_with("cells.1.") || name.starts_with("cells.3."))
            && (name.contains("<-0.skip_connect") || name.contains("<-1.skip_connect"));
        let expected = !name.contains(".edges.") || reduce_input_skip;
        assert_eq!(tensor.grad().defined(), expected, "{name}");
    }
}

#[test]
fn an_absent_edge_contributes_nothing() {
    let supernet = tiny().build_supernet(&full_mask(), Device::Cpu).unwrap();
    let input = images(16);
    // Architecture weights: DARTS_V2 one-hot, absent edges all-zero rows with nothing active.
    let architecture = tiny().parse_genotype(DARTS_V2).unwrap();
    let (weights, active) = one_hot(&architecture);
    let first = supernet.forward(&input, &weights, &active, false).unwrap();
    // Activating an absent edge's op with weight 0 changes nothing.
    let mut wider = active.clone();
    wider.rows[edge_index(5, 4).unwrap()][3] = true;
    let second = supernet.forward(&input, &weights, &wider, false).unwrap();
    assert!(first.allclose(&second, 1e-6, 1e-6, false));
}

fn one_hot(architecture: &Architecture) -> (Tensor, Mask) {
    let mut values = vec![0f32; NUM_CHOICE_POINTS * NUM_OPERATIONS];
    let mut active = Mask { rows: (0..NUM_CHOICE_POINTS).map(|_| vec![false; NUM_OPERATIONS].into()).collect() };
    for (point, &choice) in architecture.choices.iter().enumerate() {
        if choice != Architecture::ABSENT {
            values[point * NUM_OPERATIONS + choice as usize] = 1.0;
            active.rows[point][choice as usize] = true;
        }
    }
    (Tensor::from_slice(&values).view([NUM_CHOICE_POINTS as i64, NUM_OPERATIONS as i64]), active)
}

#[test]
fn shared_set_is_every_other_mixed_op_and_choice_points_own_their_edge_in_every_cell() {
    let supernet = tiny().build_supernet(&full_mask(), Device::Cpu).unwrap();
    let all: BTreeSet<String> = names(supernet.parameters().unwrap()).into_iter().collect();
    let mixed: BTreeSet<String> = all.iter().filter(|name| name.contains(".edges.")).cloned().collect();
    for point in [0u32, 13, 14, 27] {
        let own: BTreeSet<String> = supernet.owned_parameters(point).unwrap().into_iter().collect();
        let shared: BTreeSet<String> = supernet.shared_parameters(point).unwrap().into_iter().collect();
        assert!(!own.is_empty());
        assert!(own.is_disjoint(&shared));
        assert_eq!(own.union(&shared).cloned().collect::<BTreeSet<_>>(), mixed, "choice point {point}");
        let edge = &format!(".edges.{}.", space::edge_name(point as usize % EDGES_PER_CELL));
        let cells: &[&str] = if point < 14 { &["cells.0.", "cells.2.", "cells.4."] } else { &["cells.1.", "cells.3."] };
        for name in &own {
            assert!(name.contains(edge) && cells.iter().any(|cell| name.starts_with(cell)), "{name}");
        }
    }
    assert!(supernet.shared_parameters(28).is_err());
    // Names do not depend on the mask: children inherit by name.
    let masked = tiny().build_supernet(&mask_of(&[Operation::MaxPool3x3, Operation::SepConv3x3]), Device::Cpu).unwrap();
    assert_eq!(names(masked.parameters().unwrap()), names(supernet.parameters().unwrap()));
    assert_eq!(names(masked.buffers().unwrap()), names(supernet.buffers().unwrap()));
}

#[test]
fn derive_keeps_the_two_strongest_edges_of_every_node() {
    let space = tiny();
    let mut values = vec![0.0f32; NUM_CHOICE_POINTS * NUM_OPERATIONS];
    let mut set = |point: usize, op: Operation, value: f32| values[point * NUM_OPERATIONS + op.index()] = value;
    // Normal node 3: edges 3<-0 (0.5 sep3), 3<-1 (0.3 max), 3<-2 (0.6 dil5 but also 0.1 skip).
    set(edge_index(3, 0).unwrap(), Operation::SepConv3x3, 0.5);
    set(edge_index(3, 1).unwrap(), Operation::MaxPool3x3, 0.3);
    set(edge_index(3, 2).unwrap(), Operation::DilConv5x5, 0.6);
    set(edge_index(3, 2).unwrap(), Operation::SkipConnect, 0.1);
    // Reduction node 5: 5<-4 strongest, then 5<-1.
    set(14 + edge_index(5, 4).unwrap(), Operation::AvgPool3x3, 0.9);
    set(14 + edge_index(5, 1).unwrap(), Operation::SepConv5x5, 0.8);
    let weights = Tensor::from_slice(&values).view([28, 7]);
    let architecture = space.derive(&weights, &full_mask()).unwrap();
    let darts = DartsArchitecture::from_architecture(&architecture).expect("two inputs per node");
    assert_eq!(darts.normal[edge_index(3, 0).unwrap()], Some(Operation::SepConv3x3));
    assert_eq!(darts.normal[edge_index(3, 1).unwrap()], None);
    assert_eq!(darts.normal[edge_index(3, 2).unwrap()], Some(Operation::DilConv5x5));
    assert_eq!(darts.reduce[edge_index(5, 4).unwrap()], Some(Operation::AvgPool3x3));
    assert_eq!(darts.reduce[edge_index(5, 1).unwrap()], Some(Operation::SepConv5x5));
    // All-zero rows elsewhere: ties keep the lower inputs and the first op.
    assert_eq!(darts.normal[edge_index(2, 0).unwrap()], Some(Operation::MaxPool3x3));
    assert_eq!(darts.normal[edge_index(4, 0).unwrap()], Some(Operation::MaxPool3x3));
    assert_eq!(darts.normal[edge_index(4, 1).unwrap()], Some(Operation::MaxPool3x3));
    // The mask is honoured: without dil_conv_5x5 on 3<-2, its best is skip (0.1) and 3<-1 wins.
    let mut mask = full_mask();
    mask.rows[edge_index(3, 2).unwrap()][Operation::DilConv5x5.index()] = false;
    let masked = DartsArchitecture::from_architecture(&space.derive(&weights, &mask).unwrap()).unwrap();
    assert_eq!(masked.normal[edge_index(3, 1).unwrap()], Some(Operation::MaxPool3x3));
    assert_eq!(masked.normal[edge_index(3, 2).unwrap()], None);
    // Formats, parses back.
    let text = space.format_genotype(&architecture).unwrap();
    assert_eq!(space.parse_genotype(&text).unwrap(), architecture);
    let nan = Tensor::full([28, 7], f64::NAN, CPU);
    assert!(space.derive(&nan, &full_mask()).unwrap_err().message.contains("NaN"));
}

#[test]
fn stand_alone_network_trains_with_auxiliary_head_and_drop_path() {
    let space = tiny();
    let architecture = space.parse_genotype(DARTS_V2).unwrap();
    let network = space.build_network(&architecture, Device::Cpu).unwrap();
    let train = ForwardMode { train: true, drop_path_prob: 0.2 };
    let (logits, auxiliary) = network.forward(&images(32), train).unwrap();
    assert_eq!(logits.size(), [2, 10]);
    assert_eq!(auxiliary.expect("auxiliary logits in training").size(), [2, 10]);
    let (_, auxiliary) = network.forward(&images(32), ForwardMode { train: false, drop_path_prob: 0.0 }).unwrap();
    assert!(auxiliary.is_none(), "no auxiliary logits in evaluation");
    // The auxiliary head wants 32x32 images; other sizes say so.
    let error = network.forward(&images(16), train).unwrap_err();
    assert!(error.message.contains("auxiliary = false"), "{}", error.message);
    let without = DartsSpace::create(r#"{"network_channels": 4, "network_cells": 5, "auxiliary": false, "input_channels": 1}"#).unwrap();
    let network = without.build_network(&architecture, Device::Cpu).unwrap();
    let (logits, auxiliary) = network.forward(&Tensor::randn([2, 1, 28, 28], CPU), train).unwrap();
    assert_eq!((logits.size(), auxiliary.is_none()), (vec![2, 10], true));
    // Drop-path changes training outputs between calls (fresh masks), never evaluation ones.
    let parameters = names(network.parameters().unwrap());
    assert!(parameters.iter().all(|name| !name.starts_with("auxiliary_head")));
    assert!(parameters.iter().any(|name| name == "cells.0.edges.5<-2.dil_conv_3x3.dw.weight"), "{parameters:?}");
}

#[test]
fn stats_exclude_the_auxiliary_head_and_option_costs_add_up() {
    let space = tiny();
    let architecture = space.parse_genotype(DARTS_V2).unwrap();
    let network = space.placeholder_network(&architecture).unwrap();
    let stats = space.network_stats(&architecture, 32).unwrap();
    assert_eq!(stats.parameters, network.parameter_count(false));
    assert!(network.parameter_count(true) > stats.parameters);
    assert!(stats.flops > 0);
    // Parameters = those of an all-pooling architecture on the same edges + the option costs.
    let info = space.info().unwrap();
    let pooled = Architecture {
        choices: architecture.choices.iter().map(|&c| if c == Architecture::ABSENT { c } else { Operation::MaxPool3x3.index() as u32 }).collect(),
    };
    let base = space.network_stats(&pooled, 32).unwrap().parameters;
    let costs: f64 = architecture
        .choices
        .iter()
        .enumerate()
        .filter(|(_, &c)| c != Architecture::ABSENT)
        .map(|(point, &c)| info.choice_points[point].options[c as usize].costs[0].value)
        .sum();
    assert_eq!(stats.parameters, base + costs as u64);
    // An architecture with three inputs on a node is refused by name.
    let mut choices = architecture.choices.to_vec();
    choices[edge_index(5, 4).unwrap()] = 0;
    let error = space.network_stats(&Architecture { choices: choices.into() }, 32).unwrap_err();
    assert!(error.message.contains("node 5 of the normal cell keeps 3"), "{}", error.message);
}

/// ABI 1.3: DARTS-V2's FLOPs are those of the all-max-pool architecture on the same edges plus
/// its options' FLOPs at the configured image size (16x16 here), normal and reduction edges
/// (a strided skip is a factorized reduce, which counts).
#[test]
fn option_flops_add_up_to_network_flops_at_the_configured_image_size() {
    let mut space = tiny();
    space.configure(&SpaceSetup { classes: 10, input_channels: 3, image_size: 16, network_channels: 0, network_cells: 0 }).unwrap();
    let flops = space.option_flops().unwrap();
    assert_eq!(flops.len(), NUM_CHOICE_POINTS);
    let architecture = space.parse_genotype(DARTS_V2).unwrap();
    let pooled = Architecture {
        choices: architecture.choices.iter().map(|&c| if c == Architecture::ABSENT { c } else { Operation::MaxPool3x3.index() as u32 }).collect(),
    };
    let options: f64 =
        architecture.choices.iter().enumerate().filter(|(_, &c)| c != Architecture::ABSENT).map(|(point, &c)| flops[point][c as usize]).sum();
    let total = space.network_stats(&architecture, 16).unwrap().flops;
    assert_eq!(total - space.network_stats(&pooled, 16).unwrap().flops, options as u64);
    let skip = Operation::SkipConnect.index();
    assert_eq!(flops[0][skip], 0.0, "a normal skip is the identity");
    assert!(flops[EDGES_PER_CELL][skip] > 0.0, "reduce 2<-0 skips with a factorized reduce");
    assert!(flops[0][Operation::SepConv5x5.index()] > flops[0][Operation::SepConv3x3.index()]);
}

/// ABI 1.3: an edge's modules run at each of its cells' widths and sides with the edge's stride.
#[test]
fn option_networks_run_each_op_at_its_cells_places() {
    let mut space = tiny();
    space.configure(&SpaceSetup { classes: 10, input_channels: 3, image_size: 16, network_channels: 0, network_cells: 0 }).unwrap();
    let mode = ForwardMode { train: false, drop_path_prob: 0.0 };
    // Normal cells 0, 2, 4 of widths 4, 8, 16 at 16, 8, 4 pixels.
    let normal = space.option_networks(0, Operation::SepConv3x3.index() as u32, Device::Cpu).unwrap();
    assert_eq!(normal.iter().map(|m| (m.input_shape, m.occurrences)).collect::<Vec<_>>(), [([4, 16, 16], 1), ([8, 8, 8], 1), ([16, 4, 4], 1)]);
    // Reduction cells 1, 3: edge 2<-0 takes the cell's input at stride 2.
    let reduce = space.option_networks(EDGES_PER_CELL as u32, Operation::DilConv5x5.index() as u32, Device::Cpu).unwrap();
    assert_eq!(reduce.iter().map(|m| m.input_shape).collect::<Vec<_>>(), [[8, 16, 16], [16, 8, 8]]);
    for module in normal.iter().chain(&reduce) {
        let [c, h, w] = module.input_shape;
        let (output, _) = module.network.forward(&Tensor::randn([2, c, h, w], CPU), mode).unwrap();
        let stride = if reduce.iter().any(|r| std::ptr::eq(r, module)) { 2 } else { 1 };
        assert_eq!(output.size(), [2, c, h / stride, w / stride]);
    }
    assert!(space.option_networks(0, NUM_OPERATIONS as u32, Device::Cpu).is_err());
    assert!(space.option_networks(NUM_CHOICE_POINTS as u32, 0, Device::Cpu).is_err());
}
