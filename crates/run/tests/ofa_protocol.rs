//! examples/ofa-gm-imagenet.toml trains and searches as GM + OFA does on ImageNet, key by key
//! against the published schedule.

use std::path::Path;

use splitnas_data::DatasetKind;
use splitnas_run::config::{RunConfig, SelectBy};

/// OFA's train_ofa_net.py as GM-NAS's once-for-all-GM runs it: the full network 180 epochs,
/// the kernel phase 120 (GM splits at its epochs 30, 60, 90, two ways each), depth 25 + 120,
/// expand 25 + 120; batch 128 per GPU, weight decay 3e-5, label smoothing 0.1, distillation
/// weight 1; evolution: population 100, 500 iterations, parent ratio 0.25, mutation ratio 0.5,
/// mutate probability 0.1, under 600 M MACs.
mod ofa_gm {
    pub const PHASES: [(&str, i64); 6] = [("full", 180), ("kernel", 120), ("depth 1", 25), ("depth 2", 120), ("expand 1", 25), ("expand 2", 120)];
    pub const SPLITS_IN_KERNEL_PHASE: [usize; 3] = [30, 60, 90];
    pub const BATCH_SIZE: usize = 128;
    pub const WEIGHT_DECAY: f64 = 3e-5;
    pub const LABEL_SMOOTHING: f64 = 0.1;
    pub const KD_RATIO: f64 = 1.0;
    pub const EVOLUTION: [(&str, f64); 5] =
        [("population", 100.0), ("iterations", 500.0), ("parent_ratio", 0.25), ("mutation_ratio", 0.5), ("mutate_probability", 0.1)];
    pub const MAX_FLOPS: f64 = 600e6;
}

#[test]
fn the_imagenet_example_trains_and_searches_as_gm_ofa() {
    use ofa_gm::*;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ofa-gm-imagenet.toml");
    let config = RunConfig::from_file(&path).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(config.data.dataset, DatasetKind::ImageFolder, "ImageNet as an image folder");
    assert_eq!(config.data.image_size, Some(224));
    assert_eq!(config.data.batch_size, BATCH_SIZE);
    assert_eq!(config.space.name, "ofa");
    assert_eq!(config.algorithm.name, "ofa");
    let algorithm = &config.algorithm.config;
    let phases = algorithm["phases"].as_array().expect("phases");
    let listed: Vec<(&str, i64)> = phases.iter().map(|phase| (phase["name"].as_str().unwrap(), phase["epochs"].as_integer().unwrap())).collect();
    assert_eq!(listed, PHASES);
    let total: i64 = PHASES.iter().map(|(_, epochs)| epochs).sum();
    assert_eq!(config.search.epochs as i64, total, "[search] epochs is the phases' sum");
    assert_eq!(algorithm["kd_ratio"].as_float(), Some(KD_RATIO));
    assert_eq!(algorithm["teacher_phase"].as_str(), Some("full"));
    let evolution = &algorithm["evolution"];
    for (key, value) in EVOLUTION {
        let found = evolution[key].as_float().or_else(|| evolution[key].as_integer().map(|integer| integer as f64));
        assert_eq!(found, Some(value), "evolution.{key}");
    }
    assert_eq!(evolution["max_flops"].as_float(), Some(MAX_FLOPS));
    assert_eq!(config.search.label_smoothing, LABEL_SMOOTHING);
    let recalibration_images = config.search.recalibration_batches * config.data.batch_size;
    assert!((2_000..2_200).contains(&recalibration_images), "OFA recalibrates BN on 2,000 training images, here {recalibration_images}");
    assert_eq!(config.search.weights.weight_decay, WEIGHT_DECAY);
    let kernel_start = PHASES[0].1 as usize;
    assert_eq!(config.split.criterion, "gm");
    assert_eq!(config.split.epochs, SPLITS_IN_KERNEL_PHASE.map(|epoch| kernel_start + epoch).to_vec());
    assert_eq!(config.split.groups, vec![2, 2, 2], "8 leaves");
    assert!(!config.split.restart_final, "the leaves go on with the next phases");
    assert_eq!(config.split.config.get("min_group_size").and_then(|value| value.as_integer()), Some(1), "{{1, 2}} partitions of 3 kernels");
    assert_eq!(config.final_training.select_by, SelectBy::Supernet);
}
