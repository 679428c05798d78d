//! examples/proxylessnas-gm-imagenet.toml searches as ProxylessNAS-GM searches on ImageNet,
//! key by key against the published schedule.

use std::path::Path;

use splitnas_data::{DatasetKind, TrainOn};
use splitnas_engine::optim::LrScheduleStep;
use splitnas_run::config::{RunConfig, SelectBy};

/// ProxylessNAS's search on ImageNet as GM-NAS runs it (Hu et al., ICLR 2022, appendix;
/// ProxylessNAS's `imagenet_arch_search.py`): batch 512, 120 epochs of which 40 warm up the
/// weights only, SGD 0.025 with Nesterov momentum 0.9 and a per-iteration cosine, weight decay
/// 4e-5, label smoothing 0.1, `valid_size = 10000` held out of the training set; α by Adam 1e-3,
/// betas (0, 0.999), every 5 steps; GM splits every leaf at 40 and 80 into 2, then 3 groups.
mod proxylessnas_gm {
    pub const BATCH_SIZE: usize = 512;
    pub const EPOCHS: usize = 120;
    pub const WARMUP_EPOCHS: usize = 40;
    pub const LEARNING_RATE: f64 = 0.025;
    pub const MOMENTUM: f64 = 0.9;
    pub const WEIGHT_DECAY: f64 = 4e-5;
    pub const LABEL_SMOOTHING: f64 = 0.1;
    pub const VALID_IMAGES: f64 = 10_000.0;
    pub const IMAGENET_TRAIN_IMAGES: f64 = 1_281_167.0;
    pub const SPLIT_EPOCHS: [usize; 2] = [40, 80];
    pub const SPLIT_GROUPS: [u32; 2] = [2, 3];
    pub const ARCH_UPDATE_EVERY: i64 = 5;
}

#[test]
fn the_imagenet_example_searches_as_proxylessnas_gm() {
    use proxylessnas_gm::*;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/proxylessnas-gm-imagenet.toml");
    let config = RunConfig::from_file(&path).unwrap_or_else(|error| panic!("{error}"));
    let search = &config.search;
    let weights = &search.weights;

    assert_eq!(config.data.dataset, DatasetKind::ImageFolder, "ImageNet as an image folder");
    assert_eq!(config.data.image_size, Some(224));
    assert_eq!(config.data.batch_size, BATCH_SIZE, "batch size");
    let held_out = (IMAGENET_TRAIN_IMAGES * config.data.valid_fraction).round();
    assert_eq!(held_out, VALID_IMAGES, "valid_size = 10000 of ImageNet's training images");
    assert_eq!(config.space.name, "proxylessnas");
    assert!(!config.space.config.contains_key("width_multiplier"), "width 1.0: the space's default");
    assert_eq!(config.algorithm.name, "proxylessnas", "binary gates");
    let update_every = config.algorithm.config.get("arch_update_every").and_then(|value| value.as_integer());
    assert_eq!(update_every, Some(ARCH_UPDATE_EVERY));
    assert_eq!(search.epochs, EPOCHS);
    assert_eq!(search.max_steps_per_epoch, 0, "whole epochs");
    assert_eq!(search.architecture_warmup_epochs, WARMUP_EPOCHS);
    assert_eq!(search.label_smoothing, LABEL_SMOOTHING);
    assert_eq!(weights.lr, LEARNING_RATE);
    assert_eq!(weights.lr_min, 0.0, "cosine to 0");
    assert_eq!(weights.momentum, MOMENTUM);
    assert!(weights.nesterov, "Nesterov");
    assert_eq!(weights.weight_decay, WEIGHT_DECAY);
    assert_eq!(weights.lr_schedule_step, LrScheduleStep::Iteration, "cosine per iteration");
    assert_eq!(config.split.criterion, "gm");
    assert_eq!(config.split.epochs, SPLIT_EPOCHS.to_vec());
    assert_eq!(config.split.groups, SPLIT_GROUPS.to_vec(), "6 leaves");
    assert_eq!(config.final_training.select_by, SelectBy::Supernet);
    assert_eq!(config.final_training.train_on, TrainOn::TrainValid);
    assert_eq!(config.final_training.label_smoothing, LABEL_SMOOTHING);
}
