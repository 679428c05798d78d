use super::*;
use splitnas_plugin_api::author::{NetworkPlugin, SupernetPlugin};
use splitnas_plugin_api::ForwardMode;

fn space(config: serde_json::Value) -> ProxylessNas {
    ProxylessNas::create(&config.to_string()).unwrap()
}

/// A CPU-sized space: a quarter of the widths, 16x16 input, 4 classes.
fn tiny() -> ProxylessNas {
    space(json!({"width_multiplier": 0.25, "feature_mix_channels": 32, "classes": 4, "input_channels": 2, "image_size": 16}))
}

fn genotype_of(names: &[&str]) -> String {
    names.join(",")
}

const MOBILE_LIKE: [&str; 21] = [
    "5x5_MBConv3",
    "3x3_MBConv3",
    "zero",
    "zero",
    "7x7_MBConv3",
    "3x3_MBConv3",
    "5x5_MBConv3",
    "5x5_MBConv3",
    "7x7_MBConv6",
    "5x5_MBConv3",
    "5x5_MBConv3",
    "5x5_MBConv3",
    "5x5_MBConv6",
    "5x5_MBConv3",
    "5x5_MBConv3",
    "5x5_MBConv3",
    "7x7_MBConv6",
    "7x7_MBConv6",
    "7x7_MBConv3",
    "7x7_MBConv3",
    "7x7_MBConv6",
];

#[test]
fn layout_is_proxylessnas_mobile_space() {
    let layout = space(json!({})).layout().clone();
    assert_eq!(layout.blocks.len(), 21);
    assert_eq!((layout.stem_channels, layout.first_block.out_channels, layout.feature_mix_channels), (32, 16, 1280));
    let widths: Vec<i64> = layout.blocks.iter().map(|block| block.out_channels).collect();
    assert_eq!(widths, [24, 24, 24, 24, 40, 40, 40, 40, 80, 80, 80, 80, 96, 96, 96, 96, 192, 192, 192, 192, 320]);
    let strides: Vec<i64> = layout.blocks.iter().map(|block| block.stride).collect();
    assert_eq!(strides, [2, 1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]);
    let with_zero: Vec<usize> = (0..21).filter(|&block| layout.blocks[block].allows_zero).collect();
    assert_eq!(with_zero.len(), 15);
    assert!(!layout.blocks[12].allows_zero && !layout.blocks[12].has_shortcut, "stage 4 starts 80 -> 96 at stride 1: no shortcut, no zero");
    assert!(!layout.blocks[20].allows_zero, "the single 320 block has no zero");
    for block in &layout.blocks {
        assert_eq!(block.has_shortcut, block.allows_zero);
    }
    let info = space(json!({})).info().unwrap();
    assert_eq!(info.choice_points[0].options.len(), 6);
    assert_eq!(info.choice_points[1].options.len(), 7);
    assert_eq!(info.choice_points[1].options[6].name.as_str(), "zero");
    assert!(!info.full_mask().rows[0][6], "block 1 has no zero");
}

#[test]
fn width_multiplier_rounds_like_the_official_code() {
    let layout = tiny().layout().clone();
    // make_divisible(32 * 0.25) = 8, 16 * 0.25 -> 8, 24 * 0.25 = 6 -> 8, 40 -> 10 -> 8 (+8: lost > 10 %) = 16, 80 -> 24, 96 -> 24,
    // 192 -> 48, 320 -> 80; the feature mix keeps its width below 1.
    assert_eq!((layout.stem_channels, layout.first_block.out_channels), (8, 8));
    let stage_widths: Vec<i64> = [0, 4, 8, 12, 16, 20].iter().map(|&block| layout.blocks[block].out_channels).collect();
    assert_eq!(stage_widths, [8, 16, 24, 24, 48, 80]);
    // Stage 4's first block is 24 -> 24 at stride 1 here: ProxylessNAS's rule gives it a
    // shortcut, but it stays without `zero` so that genotypes mean the same at every width.
    assert!(layout.blocks[12].has_shortcut && !layout.blocks[12].allows_zero);
    assert_eq!(layout.feature_mix_channels, 32);
}

#[test]
fn stats_count_what_the_network_holds_and_options_add_up() {
    let space = tiny();
    let mask = space.info().unwrap().full_mask();
    for seed in 0..4 {
        let architecture = space.sample_architecture(&mask, seed).unwrap();
        let network = space.build_network(&architecture, Device::Cpu).unwrap();
        let stats = space.network_stats(&architecture, 16).unwrap();
        assert_eq!(stats.parameters, network.parameter_count(), "seed {seed}");
        let macs = space.option_macs(16);
        let chosen: u64 = architecture.choices.iter().enumerate().map(|(block, &option)| macs[block][option as usize]).sum();
        assert_eq!(stats.flops, space.layout().fixed_macs(16) + chosen);
    }
}

#[test]
fn genotype_errors_name_the_position_and_the_allowed_names() {
    let space = space(json!({}));
    let mut names = MOBILE_LIKE.to_vec();
    let architecture = space.parse_genotype(&genotype_of(&names)).unwrap();
    assert_eq!(space.format_genotype(&architecture).unwrap(), genotype_of(&names));
    assert_eq!(architecture.choices[2], Operation::ZERO_INDEX as u32);
    names[0] = "zero";
    let error = space.parse_genotype(&genotype_of(&names)).unwrap_err();
    assert!(error.message.contains("position 1 (block 1)") && error.message.contains("no `zero`"), "{}", error.message);
    assert!(error.message.contains("3x3_MBConv3, 3x3_MBConv6, 5x5_MBConv3, 5x5_MBConv6, 7x7_MBConv3, 7x7_MBConv6"), "{}", error.message);
    names[0] = "5x5_MBConv3";
    names[6] = "9x9_MBConv3";
    let error = space.parse_genotype(&genotype_of(&names)).unwrap_err();
    assert!(error.message.contains("position 7 (block 7): `9x9_MBConv3` is not an option"), "{}", error.message);
    assert!(error.message.ends_with("7x7_MBConv6, zero"), "{}", error.message);
    let error = space.parse_genotype("3x3_MBConv3,zero").unwrap_err();
    assert!(error.message.contains("expected 21") && error.message.contains("got 2"), "{}", error.message);
    // Spaces after commas are accepted.
    assert_eq!(space.parse_genotype(&MOBILE_LIKE.join(", ")).unwrap(), architecture);
}

#[test]
fn masks_allowing_zero_on_a_first_block_are_refused() {
    let space = tiny();
    let mut mask = space.info().unwrap().full_mask();
    mask.rows[4][6] = true;
    let error = space.build_supernet(&mask, Device::Cpu).err().unwrap();
    assert!(error.message.contains("block 5"), "{}", error.message);
}

/// Copies every tensor of `from` into the tensor of the same name in `to` (which must have it).
fn copy_by_name(from: Vec<splitnas_plugin_api::NamedTensor>, to: Vec<splitnas_plugin_api::NamedTensor>) {
    let sources: std::collections::HashMap<String, Tensor> =
        from.into_iter().map(|named| (named.name.to_string(), named.tensor.into_tensor())).collect();
    tch::no_grad(|| {
        for named in to {
            let name = named.name.to_string();
            let source = sources.get(&name).unwrap_or_else(|| panic!("{name} is not in the supernet"));
            named.tensor.into_tensor().shallow_clone().copy_(source);
        }
    });
}

#[test]
fn a_single_path_of_the_supernet_is_the_stand_alone_network() {
    tch::manual_seed(3);
    let space = tiny();
    let mask = space.info().unwrap().full_mask();
    let supernet = space.build_supernet(&mask, Device::Cpu).unwrap();
    let input = Tensor::randn([3, 2, 16, 16], (Kind::Float, tch::Device::Cpu));
    for seed in [1, 2] {
        // Some zero blocks, some MBConvs; zero where allowed in every other block for seed 2.
        let mut architecture = space.sample_architecture(&mask, seed).unwrap();
        if seed == 2 {
            for block in (1..21).step_by(2) {
                if space.layout().blocks[block].allows_zero {
                    architecture.choices[block] = Operation::ZERO_INDEX as u32;
                }
            }
        }
        let network = space.build_network(&architecture, Device::Cpu).unwrap();
        copy_by_name(supernet.parameters().unwrap(), network.parameters().unwrap());
        copy_by_name(supernet.buffers().unwrap(), network.buffers().unwrap());
        let weights = Tensor::zeros([21, 7], (Kind::Float, tch::Device::Cpu));
        let mut active = Mask { rows: vec![vec![false; 7].into(); 21].into() };
        for (block, &option) in architecture.choices.iter().enumerate() {
            let _ = weights.get(block as i64).get(option as i64).fill_(1.0);
            active.rows[block][option as usize] = true;
        }
        let from_supernet = supernet.forward(&input, &weights, &active, false).unwrap();
        let (from_network, _) = network.forward(&input, ForwardMode { train: false, drop_path_prob: 0.0 }).unwrap();
        let difference = (from_supernet - from_network).abs().max().double_value(&[]);
        assert!(difference < 1e-5, "seed {seed}: {difference}");
    }
}

#[test]
fn shared_parameters_are_everything_outside_the_scored_block() {
    let space = tiny();
    let supernet = space.build_supernet(&space.info().unwrap().full_mask(), Device::Cpu).unwrap();
    let all: Vec<String> = supernet.parameters().unwrap().into_iter().map(|named| named.name.to_string()).collect();
    let shared = supernet.shared_parameters(4).unwrap();
    let owned = supernet.owned_parameters(4).unwrap();
    assert_eq!(shared.len() + owned.len(), all.len());
    assert!(owned.iter().all(|name| name.starts_with("blocks.5.")));
    for prefix in ["stem.", "first_block.", "blocks.1.", "blocks.21.", "feature_mix.", "classifier."] {
        assert!(shared.iter().any(|name| name.starts_with(prefix)), "{prefix}");
    }
    assert!(supernet.shared_parameters(21).is_err());
}

#[test]
fn reference_names_follow_ofa() {
    assert_eq!(network::reference_name("stem.conv.weight").unwrap(), "first_conv.conv.weight");
    assert_eq!(network::reference_name("first_block.depthwise.bn.running_var").unwrap(), "blocks.0.conv.depth_conv.bn.running_var");
    assert_eq!(network::reference_name("blocks.3.5x5_MBConv6.expand.conv.weight").unwrap(), "blocks.3.conv.inverted_bottleneck.conv.weight");
    assert_eq!(network::reference_name("blocks.21.7x7_MBConv3.project.bn.bias").unwrap(), "blocks.21.conv.point_linear.bn.bias");
    assert_eq!(network::reference_name("feature_mix.bn.weight").unwrap(), "feature_mix_layer.bn.weight");
    assert_eq!(network::reference_name("classifier.bias").unwrap(), "classifier.linear.bias");
    assert_eq!(network::reference_name("nonsense"), None);
}

/// Gradient matching's shared set on this space, as the host computes it: with a single-path
/// context (RSPS, or ProxylessNAS's binary gates), the shared-set gradients of every option of
/// the scored block reach exactly the stem, the fixed first block, the sampled option of every
/// other block, the feature mix and the classifier (GM-NAS's `get_split_gradients`), and
/// nothing of the scored block itself.
#[test]
fn gradient_matching_reaches_the_fixed_parts_and_the_sampled_option_of_every_other_block() {
    tch::manual_seed(5);
    let space = tiny();
    let mask = space.info().unwrap().full_mask();
    let supernet = space.build_supernet(&mask, Device::Cpu).unwrap();
    let parameters: std::collections::HashMap<String, Tensor> =
        supernet.parameters().unwrap().into_iter().map(|named| (named.name.to_string(), named.tensor.into_tensor())).collect();
    let scored = 5; // block 6: has `zero`
    let names = supernet.shared_parameters(scored as u32).unwrap();
    let shared: Vec<Tensor> = names.iter().map(|name| parameters[name].shallow_clone()).collect();
    let context = space.sample_architecture(&mask, 11).unwrap();
    let input = Tensor::randn([4, 2, 16, 16], (Kind::Float, tch::Device::Cpu));
    let labels = Tensor::from_slice(&[0i64, 1, 2, 3]);
    // What GM-NAS compares: the sampled op of every other block (zero has no parameters).
    let sampled_prefixes: Vec<String> = (0..21)
        .filter(|&block| block != scored)
        .map(|block| (block, Operation::from_index(context.choices[block] as usize).unwrap()))
        .filter(|(_, operation)| *operation != Operation::Zero)
        .map(|(block, operation)| format!("blocks.{}.{}.", block + 1, operation.name()))
        .collect();
    let expected = |name: &str| {
        ["stem.", "first_block.", "feature_mix.", "classifier."].iter().any(|prefix| name.starts_with(prefix))
            || sampled_prefixes.iter().any(|prefix| name.starts_with(prefix.as_str()))
    };
    let mut reached_by_option = Vec::new();
    for option in 0..7u32 {
        let mut choices = context.choices.clone();
        choices[scored] = option;
        let weights = Tensor::zeros([21, 7], (Kind::Float, tch::Device::Cpu));
        let mut active = Mask { rows: vec![vec![false; 7].into(); 21].into() };
        for (block, &choice) in choices.iter().enumerate() {
            let _ = weights.get(block as i64).get(choice as i64).fill_(1.0);
            active.rows[block][choice as usize] = true;
        }
        let logits = supernet.forward(&input, &weights, &active, true).unwrap();
        let loss = logits.cross_entropy_for_logits(&labels);
        let gradients = Tensor::f_run_backward(&[&loss], &shared, false, false).unwrap();
        let reached: Vec<&str> = names
            .iter()
            .zip(&gradients)
            .filter(|(_, gradient)| gradient.defined() && gradient.abs().sum(Kind::Double).double_value(&[]) > 0.0)
            .map(|(name, _)| name.as_str())
            .collect();
        assert!(reached.iter().all(|name| !name.starts_with("blocks.6.")), "option {option}: the scored block is never compared");
        for name in &reached {
            assert!(expected(name), "option {option}: {name} is neither fixed nor a sampled option");
        }
        for name in names.iter().filter(|name| expected(name)) {
            assert!(reached.contains(&name.as_str()), "option {option}: {name} has no gradient");
        }
        reached_by_option.push(reached.len());
    }
    assert!(reached_by_option.iter().all(|&count| count == reached_by_option[0]), "every option is compared on the same set");
}

/// ABI 1.3: an architecture's FLOPs are the fixed layers' plus its options' `option_flops`, at
/// the image size `configure` gave; `zero` costs nothing and a 7x7 expand-6 block the most.
#[test]
fn option_flops_add_up_to_network_flops_at_the_configured_image_size() {
    for image_size in [16, 32] {
        let mut space = tiny();
        space.configure(&SpaceSetup { classes: 4, input_channels: 2, image_size, network_channels: 0, network_cells: 0 }).unwrap();
        let flops = space.option_flops().unwrap();
        assert_eq!(flops.len(), NUM_BLOCKS);
        let mask = space.info().unwrap().full_mask();
        for seed in 0..3 {
            let architecture = space.sample_architecture(&mask, seed).unwrap();
            let chosen: f64 = architecture.choices.iter().enumerate().map(|(block, &option)| flops[block][option as usize]).sum();
            let stats = space.network_stats(&architecture, image_size).unwrap();
            assert_eq!(stats.flops, space.layout().fixed_macs(image_size as i64) + chosen as u64, "{image_size}px, seed {seed}");
        }
        let index = |name: &str| Operation::ALL.iter().position(|op| op.name() == name).unwrap();
        assert_eq!(flops[1][index("zero")], 0.0);
        assert_eq!(flops[0].len(), 6, "a stage's first block has no zero");
        let largest = flops[1].iter().copied().fold(0.0, f64::max);
        assert_eq!(flops[1][index("7x7_MBConv6")], largest);
        assert!(flops[1][index("3x3_MBConv3")] < flops[1][index("7x7_MBConv6")] / 2.0);
    }
}

/// ABI 1.3: an option's module is its MBConv at the block's input width and side and with the
/// block's stride (plus the shortcut where the block has one), holding exactly the option's
/// parameters; `zero` computes nothing.
#[test]
fn option_networks_run_each_mbconv_in_its_blocks_context() {
    let space = tiny();
    let layout = space.layout().clone();
    let (sides, _) = layout.block_input_sides(16);
    let index = |name: &str| Operation::ALL.iter().position(|op| op.name() == name).unwrap() as u32;
    assert!(space.option_networks(1, index("zero"), Device::Cpu).unwrap().is_empty());
    for (block, name) in [(0usize, "7x7_MBConv6"), (1, "3x3_MBConv3"), (5, "5x5_MBConv6")] {
        let modules = space.option_networks(block as u32, index(name), Device::Cpu).unwrap();
        assert_eq!(modules.len(), 1, "block {block}: one place");
        let module = &modules[0];
        let in_channels = layout.blocks[block].in_channels;
        assert_eq!(module.input_shape, [in_channels, sides[block], sides[block]], "block {block}");
        assert_eq!(module.occurrences, 1);
        let input = Tensor::randn([2, in_channels, sides[block], sides[block]], (Kind::Float, tch::Device::Cpu));
        let (output, _) = module.network.forward(&input, ForwardMode { train: false, drop_path_prob: 0.0 }).unwrap();
        let out_side = if block + 1 < NUM_BLOCKS { sides[block + 1] } else { layout.block_input_sides(16).1 };
        assert_eq!(output.size(), [2, layout.blocks[block].out_channels, out_side, out_side], "block {block} {name}");
        let parameters: i64 = module.network.parameters().unwrap().into_iter().map(|named| named.tensor.into_tensor().numel() as i64).sum();
        assert_eq!(parameters as u64, layout.option_parameters(block, Operation::ALL[index(name) as usize]), "block {block} {name}");
    }
    let error = space.option_networks(NUM_BLOCKS as u32, 0, Device::Cpu).err().unwrap();
    assert!(error.message.contains("choice point 21"), "{}", error.message);
    let error = space.option_networks(0, index("zero"), Device::Cpu).err().unwrap();
    assert!(error.message.contains("block 1") && error.message.contains("7x7_MBConv6"), "{}", error.message);
}
