//! The run config's `[data]` table, and turning it into splits and loaders.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Device;

use crate::SeededRng;

use super::cifar::{load_cifar, CifarVariant, FileFormat};
use super::embedded::load_embedded;
use super::idx::load_mnist_like;
use super::imagenet16::{load_imagenet16, IMAGENET16_120_CLASSES};
use super::loader::{BatchLoader, LoaderOptions};
use super::split::{split_by_file, split_train_valid, stratified_subset, Splits};
use super::{Augmentation, Cutout, DataError, Dataset, Normalization};

/// Which data set a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum DatasetKind {
    /// The Fashion-MNIST subset built into the binary (6,000 train + 1,000 test); needs no path.
    #[default]
    #[serde(rename = "embedded")]
    Embedded,
    /// CIFAR-10, binary (`data_batch_N.bin`, `test_batch.bin`) or python (`data_batch_N`, `test_batch`).
    #[serde(rename = "cifar10")]
    Cifar10,
    /// CIFAR-100 with fine labels, binary (`train.bin`, `test.bin`) or python (`train`, `test`).
    #[serde(rename = "cifar100")]
    Cifar100,
    /// NB201's ImageNet16-120 (`train_data_batch_N`, `val_data`).
    #[serde(rename = "imagenet16-120")]
    ImageNet16_120,
    /// MNIST IDX files (`train-images-idx3-ubyte[.gz]`, ...).
    #[serde(rename = "mnist")]
    Mnist,
    /// Fashion-MNIST IDX files, same names as MNIST's.
    #[serde(rename = "fashion-mnist")]
    FashionMnist,
}

impl DatasetKind {
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Embedded => "embedded",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100 => "cifar100",
            DatasetKind::ImageNet16_120 => "imagenet16-120",
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
        }
    }

    /// NB201's augmentation where NB201 defines it; the same idea scaled to 28×28 otherwise,
    /// without flips for digits (a mirrored 2 is not a 2).
    pub fn default_augmentation(self) -> Augmentation {
        match self {
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => Augmentation::nb201_cifar(),
            DatasetKind::ImageNet16_120 => Augmentation::nb201_imagenet16(),
            DatasetKind::Embedded | DatasetKind::FashionMnist => Augmentation { crop_padding: 2, horizontal_flip: true },
            DatasetKind::Mnist => Augmentation { crop_padding: 2, horizontal_flip: false },
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `[data]`: what to train and select on, and how batches are made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// `embedded` (default), `cifar10`, `cifar100`, `imagenet16-120`, `mnist` or `fashion-mnist`.
    pub dataset: DatasetKind,
    /// Directory with the data set's standard files (or the folder its archive was unpacked
    /// in, e.g. the parent of `cifar-10-batches-bin`). Required for every data set except
    /// `embedded`, which must not have one. Relative paths are taken from the current
    /// directory unless the config loader calls [`DataConfig::resolve_relative_to`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// CIFAR only: `binary`, `pickle`, or `auto` (default: whichever the directory holds).
    pub format: FileFormat,
    /// Share of each class of the official training set held out as the valid split
    /// (NB201: 0.5). At least 0 and below 1; with 0 there is no valid split. Ignored when
    /// `split_file` is set.
    pub valid_fraction: f64,
    /// A file that fixes the train/valid split instead of `valid_fraction` and the seed:
    /// NAS-Bench-201's `cifar-split.txt` (XAutoDL's `configs/nas-benchmark/`), a JSON object
    /// whose `train` and `valid` list indices into the official training set (for CIFAR-10,
    /// its 50,000 images in file order), as plain integers or in XAutoDL's typed form
    /// `["int", ["0", "5", ...]]`. The indices must be in range and disjoint; images in neither
    /// list are not used. Cannot be combined with `max_train_images`. A relative path is taken
    /// as `path` is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split_file: Option<PathBuf>,
    /// Images per training batch (NB201 search: 64).
    pub batch_size: usize,
    /// Images per evaluation batch; defaults to `batch_size`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_batch_size: Option<usize>,
    /// Random crop with zero padding and horizontal flips on training batches (default on).
    pub augment: bool,
    /// Skip each epoch's last, smaller training batch (default off, as in NB201's loaders).
    pub drop_last: bool,
    /// Use at most this many images of the official training set (a stratified, seeded
    /// subset, taken before the train/valid split): for tiny test configurations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_train_images: Option<usize>,
    /// Use at most this many test images (stratified, seeded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_test_images: Option<usize>,
    /// Seeds the split, the subsets, batch order and augmentation; the same seed gives the
    /// same batches. Unset, it follows the run's seed (`run.seed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dataset: DatasetKind::Embedded,
            path: None,
            format: FileFormat::Auto,
            valid_fraction: 0.5,
            split_file: None,
            batch_size: 64,
            eval_batch_size: None,
            augment: true,
            drop_last: false,
            max_train_images: None,
            max_test_images: None,
            seed: None,
        }
    }
}

impl DataConfig {
    /// The seed of the data pipeline (0 where neither `data.seed` nor a run seed set it).
    pub fn data_seed(&self) -> u64 {
        self.seed.unwrap_or(0)
    }
}

/// Which split an evaluation loader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SplitName {
    Train,
    Valid,
    Test,
}

/// Which images a training loader serves (the run configuration's `[final] train_on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TrainOn {
    /// The train split alone: the valid split stays held out.
    #[default]
    #[serde(rename = "train")]
    Train,
    /// Both halves of the search split, i.e. every training image the run reads (the whole
    /// official training set unless `max_train_images` or a split file leaves some out): what
    /// NB201 and DARTS train on before they report test accuracy. The valid split is trained on.
    #[serde(rename = "train+valid")]
    TrainValid,
}

impl TrainOn {
    pub fn name(self) -> &'static str {
        match self {
            TrainOn::Train => "train",
            TrainOn::TrainValid => "train+valid",
        }
    }
}

impl fmt::Display for TrainOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Seeds of the data pipeline's random streams, all derived from `data.seed`.
const TRAIN_SUBSET_STREAM: u64 = 1;
const TEST_SUBSET_STREAM: u64 = 2;
const TRAIN_BATCH_STREAM: u64 = 3;
const VALID_BATCH_STREAM: u64 = 4;

impl DataConfig {
    /// Makes a relative `path` relative to `base` (the config file's directory, say).
    pub fn resolve_relative_to(&mut self, base: &Path) {
        for path in [&mut self.path, &mut self.split_file].into_iter().flatten() {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }

    /// Checks the settings without reading any data.
    pub fn validate(&self) -> Result<(), DataError> {
        if !(0.0..1.0).contains(&self.valid_fraction) {
            return Err(DataError::config(
                "data.valid_fraction",
                format!("must be at least 0 and below 1 (NB201 uses 0.5), got {}", self.valid_fraction),
            ));
        }
        if self.batch_size == 0 {
            return Err(DataError::config("data.batch_size", "must be at least 1"));
        }
        if self.eval_batch_size == Some(0) {
            return Err(DataError::config("data.eval_batch_size", "must be at least 1 (or left out to use data.batch_size)"));
        }
        if self.max_train_images == Some(0) {
            return Err(DataError::config("data.max_train_images", "must be at least 1 (or left out for all images)"));
        }
        if self.max_test_images == Some(0) {
            return Err(DataError::config("data.max_test_images", "must be at least 1 (or left out for all images)"));
        }
        if let Some(split_file) = &self.split_file {
            if self.max_train_images.is_some() {
                return Err(DataError::config(
                    "data.split_file",
                    "its indices refer to the whole official training set, so data.max_train_images (a subset taken before the split) cannot be combined with it; remove one",
                ));
            }
            if !split_file.is_file() {
                return Err(DataError::config(
                    "data.split_file",
                    format!("{} is not a file (relative paths are taken from {})", split_file.display(), current_dir_text()),
                ));
            }
        }
        let is_cifar = matches!(self.dataset, DatasetKind::Cifar10 | DatasetKind::Cifar100);
        if self.format != FileFormat::Auto && !is_cifar {
            return Err(DataError::config(
                "data.format",
                format!("only CIFAR data sets come in more than one format; remove it for dataset `{}`", self.dataset),
            ));
        }
        match (&self.path, self.dataset) {
            (Some(path), DatasetKind::Embedded) => Err(DataError::config(
                "data.path",
                format!("dataset `embedded` is built in and reads no files, but path = {:?} is set; remove it or name the data set it holds", path),
            )),
            (None, DatasetKind::Embedded) => Ok(()),
            (None, dataset) => {
                Err(DataError::config("data.path", format!("dataset `{dataset}` needs the directory that holds its files; set data.path")))
            }
            (Some(path), _) if !path.is_dir() => Err(DataError::config(
                "data.path",
                format!("{} is not a directory (relative paths are taken from {})", path.display(), current_dir_text()),
            )),
            (Some(_), _) => Ok(()),
        }
    }

    /// The official training and test sets this config names, read from files or the binary.
    pub fn load_official(&self) -> Result<(Dataset, Dataset), DataError> {
        self.validate()?;
        let dir = self.path.as_deref().unwrap_or(Path::new(""));
        match self.dataset {
            DatasetKind::Embedded => load_embedded(),
            DatasetKind::Cifar10 => load_cifar(dir, CifarVariant::Cifar10, self.format),
            DatasetKind::Cifar100 => load_cifar(dir, CifarVariant::Cifar100, self.format),
            DatasetKind::ImageNet16_120 => load_imagenet16(dir, IMAGENET16_120_CLASSES),
            DatasetKind::Mnist => load_mnist_like(dir, "mnist"),
            DatasetKind::FashionMnist => load_mnist_like(dir, "fashion-mnist"),
        }
    }
}

fn current_dir_text() -> String {
    std::env::current_dir().map(|dir| dir.display().to_string()).unwrap_or_else(|_| "the current directory".to_string())
}

/// A run's data, ready to serve: splits on the device, their normalisation, and loader settings.
#[derive(Debug)]
pub struct PreparedData {
    pub dataset: DatasetKind,
    /// On the run's device; loaders share this storage.
    pub splits: Splits,
    /// NB201's constants for CIFAR and ImageNet16, otherwise computed from the train split.
    pub normalization: Normalization,
    /// Shuffled, augmented (if `data.augment`), `data.drop_last`: for training steps.
    pub training_options: LoaderOptions,
    pub eval_batch_size: usize,
    seed: u64,
}

/// Reads, subsets, splits and normalises the data `config` names, and puts it on `device`.
pub fn prepare_data(config: &DataConfig, device: Device) -> Result<PreparedData, DataError> {
    let (mut official_train, mut test) = config.load_official()?;
    if let Some(cap) = config.max_train_images {
        official_train = stratified_subset(&official_train, cap, stream_seed(config.data_seed(), TRAIN_SUBSET_STREAM));
    }
    if let Some(cap) = config.max_test_images {
        test = stratified_subset(&test, cap, stream_seed(config.data_seed(), TEST_SUBSET_STREAM));
    }
    let (train, valid) = match &config.split_file {
        Some(path) => split_by_file(&official_train, path)?,
        None => split_train_valid(&official_train, config.valid_fraction, config.data_seed())?,
    };
    let normalization = match config.dataset {
        DatasetKind::Cifar10 => Normalization::nb201_cifar10(),
        DatasetKind::Cifar100 => Normalization::nb201_cifar100(),
        DatasetKind::ImageNet16_120 => Normalization::nb201_imagenet16(),
        _ => Normalization::from_dataset(&train)?,
    };
    let splits = Splits { train, valid, test }.to_device(device);
    Ok(PreparedData {
        dataset: config.dataset,
        splits,
        normalization,
        training_options: LoaderOptions {
            batch_size: config.batch_size,
            shuffle: true,
            drop_last: config.drop_last,
            augmentation: config.augment.then(|| config.dataset.default_augmentation()),
            cutout: None,
            seed: stream_seed(config.data_seed(), TRAIN_BATCH_STREAM),
        },
        eval_batch_size: config.eval_batch_size.unwrap_or(config.batch_size),
        seed: config.data_seed(),
    })
}

fn stream_seed(seed: u64, stream: u64) -> u64 {
    SeededRng::derive(seed, &[stream]).next_u64()
}

impl PreparedData {
    /// Training batches of the train split: shuffled, augmented, endless via `next_batch`.
    pub fn train_loader(&self) -> Result<BatchLoader, DataError> {
        BatchLoader::new(&self.splits.train, &self.normalization, self.training_options, self.splits.train.device())
    }

    /// Training batches for a stand-alone network (the run's `[final]` table says how): of
    /// the train split or of train+valid, `batch_size` images each (0: `data.batch_size`),
    /// with cutout where `cutout` is set. Otherwise as [`Self::train_loader`]: the same seed,
    /// order and augmentation, so `(Train, 0, None)` gives exactly its batches.
    pub fn standalone_train_loader(&self, on: TrainOn, batch_size: usize, cutout: Option<Cutout>) -> Result<BatchLoader, DataError> {
        let batch_size = if batch_size == 0 { self.training_options.batch_size } else { batch_size };
        let options = LoaderOptions { batch_size, cutout, ..self.training_options };
        let device = self.splits.train.device();
        match on {
            TrainOn::Train => BatchLoader::new(&self.splits.train, &self.normalization, options, device),
            TrainOn::TrainValid => {
                let base = self.splits.train.name.split('/').next().unwrap_or("data");
                let both = Dataset::concat(format!("{base}/train+valid"), &[&self.splits.train, &self.splits.valid]);
                BatchLoader::new(&both, &self.normalization, options, device)
            }
        }
    }

    /// Batches of the valid split made like training batches (shuffled, augmented), with
    /// their own seed: what NB201's search feeds the architecture step.
    pub fn valid_search_loader(&self) -> Result<BatchLoader, DataError> {
        if self.splits.valid.is_empty() {
            return Err(DataError::config("data.valid_fraction", "is 0, so there is no valid split to search on; set it above 0 (NB201 uses 0.5)"));
        }
        let options = LoaderOptions { seed: stream_seed(self.seed, VALID_BATCH_STREAM), ..self.training_options };
        BatchLoader::new(&self.splits.valid, &self.normalization, options, self.splits.valid.device())
    }

    /// Every image of `split` once, in order, unaugmented: for accuracy and rankings.
    pub fn eval_loader(&self, split: SplitName) -> Result<BatchLoader, DataError> {
        let dataset = match split {
            SplitName::Train => &self.splits.train,
            SplitName::Valid => &self.splits.valid,
            SplitName::Test => &self.splits.test,
        };
        BatchLoader::new(dataset, &self.normalization, LoaderOptions::evaluation(self.eval_batch_size), dataset.device())
    }
}
