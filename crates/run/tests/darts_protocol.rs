//! examples/darts-gm-gpu.toml evaluates the selected architecture as DARTS evaluates its cell,
//! key by key against DARTS's published protocol.

use std::path::Path;

use splitnas_data::{DatasetKind, TrainOn};
use splitnas_engine::optim::LrScheduleStep;
use splitnas_run::config::{RunConfig, SelectBy};

/// DARTS's evaluation on CIFAR-10 (Liu et al., ICLR 2019), as its `cnn/train.py` sets it
/// (github.com/quark0/darts): the argparse defaults `--epochs 600`, `--batch_size 96`,
/// `--learning_rate 0.025`, `--momentum 0.9`, `--weight_decay 3e-4`, `--grad_clip 5`,
/// `--init_channels 36`, `--layers 20`, `--auxiliary_weight 0.4`, `--cutout_length 16`,
/// `--drop_path_prob 0.2`, run with `--auxiliary --cutout` for the paper's numbers;
/// `torch.optim.SGD(lr, momentum, weight_decay)` (no Nesterov) with
/// `CosineAnnealingLR(optimizer, epochs)` (eta_min 0), stepped once per epoch; `model.drop_path_prob =
/// drop_path_prob * epoch / epochs`; trained on `dset.CIFAR10(train=True)`, all 50,000
/// training images, and tested on the 10,000 test images.
mod darts {
    pub const EPOCHS: usize = 600;
    pub const BATCH_SIZE: usize = 96;
    pub const LEARNING_RATE: f64 = 0.025;
    pub const LEARNING_RATE_MIN: f64 = 0.0;
    pub const MOMENTUM: f64 = 0.9;
    pub const NESTEROV: bool = false;
    pub const WEIGHT_DECAY: f64 = 3e-4;
    pub const GRAD_CLIP: f64 = 5.0;
    pub const INIT_CHANNELS: i64 = 36;
    pub const LAYERS: i64 = 20;
    pub const AUXILIARY: bool = true;
    pub const AUXILIARY_WEIGHT: f64 = 0.4;
    pub const CUTOUT_LENGTH: usize = 16;
    pub const DROP_PATH_PROB: f64 = 0.2;
}

#[test]
fn the_gpu_example_evaluates_as_darts_train_py() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/darts-gm-gpu.toml");
    let config = RunConfig::from_file(&path).unwrap_or_else(|error| panic!("{error}"));
    let section = &config.final_training;
    let optimizer = &section.optimizer;
    let space_key = |key: &str| config.space.config.get(key).unwrap_or_else(|| panic!("[space] {key} is set in the example")).clone();

    assert_eq!(config.data.dataset, DatasetKind::Cifar10);
    assert_eq!(section.epochs, darts::EPOCHS, "epochs");
    assert_eq!(section.max_steps_per_epoch, 0, "whole epochs");
    assert_eq!(section.batch_size, darts::BATCH_SIZE, "batch_size");
    assert_eq!(optimizer.lr, darts::LEARNING_RATE, "learning_rate");
    assert_eq!(optimizer.lr_min, darts::LEARNING_RATE_MIN, "CosineAnnealingLR's eta_min");
    assert_eq!(optimizer.lr_schedule_step, LrScheduleStep::Epoch, "scheduler.step() once per epoch");
    assert_eq!(config.search.weights.lr_schedule_step, LrScheduleStep::Epoch, "train_search.py steps per epoch too");
    assert_eq!(optimizer.momentum, darts::MOMENTUM, "momentum");
    assert_eq!(optimizer.nesterov, darts::NESTEROV, "plain SGD momentum");
    assert_eq!(optimizer.weight_decay, darts::WEIGHT_DECAY, "weight_decay");
    assert_eq!(optimizer.grad_clip, darts::GRAD_CLIP, "grad_clip");
    assert_eq!(config.space.name, "darts");
    assert_eq!(space_key("network_channels").as_integer(), Some(darts::INIT_CHANNELS), "init_channels");
    assert_eq!(space_key("network_cells").as_integer(), Some(darts::LAYERS), "layers");
    assert_eq!(space_key("auxiliary").as_bool(), Some(darts::AUXILIARY), "--auxiliary");
    assert_eq!(section.auxiliary_weight, darts::AUXILIARY_WEIGHT, "auxiliary_weight");
    assert_eq!(section.cutout, darts::CUTOUT_LENGTH, "--cutout --cutout_length");
    assert_eq!(section.drop_path_prob, darts::DROP_PATH_PROB, "drop_path_prob");
    // All 50,000 training images: both halves of the search split, none capped away.
    assert_eq!(section.train_on, TrainOn::TrainValid, "trained on dset.CIFAR10(train=True)");
    assert_eq!((config.data.max_train_images, config.data.max_test_images, config.data.split_file.as_ref()), (None, None, None));
    // DARTS's crop 32 with padding 4 and horizontal flip: the CIFAR default augmentation.
    assert!(config.data.augment, "RandomCrop(32, padding=4) and RandomHorizontalFlip");
    // Not DARTS's, but what train+valid requires here: no stand-alone comparison among leaves.
    assert_eq!(section.select_by, SelectBy::Supernet);
}
