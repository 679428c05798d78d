//! The run config's `[data]` table, and turning it into splits and loaders.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tch::Device;

use crate::SeededRng;

use super::cifar::{load_cifar, CifarVariant, FileFormat};
use super::dataset::LabelledImages;
use super::embedded::load_embedded;
use super::idx::load_mnist_like;
use super::image_folder::{scan_image_folder, ColorJitter, FolderScan, ImageFiles, ImageTransforms};
use super::imagenet16::{load_imagenet16, IMAGENET16_120_CLASSES};
use super::loader::{BatchLoader, LoaderOptions};
use super::split::{split_by_file, split_train_valid, stratified_subset, Splits};
use super::stream::StreamOptions;
use super::{Augmentation, Cutout, DataError, Dataset, Normalization, SplitData};

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
    /// JPEG and PNG images in torchvision's ImageFolder layout (one folder per class): the
    /// training images in `train/` and the test images in `val/` (or `test/`) under `path`,
    /// as ImageNet is usually unpacked, or wherever `train_path` and `test_path` say.
    #[serde(rename = "image-folder")]
    ImageFolder,
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
            DatasetKind::ImageFolder => "image-folder",
        }
    }

    /// NB201's augmentation where NB201 defines it; the same idea scaled to 28×28 otherwise,
    /// without flips for digits (a mirrored 2 is not a 2).
    pub fn default_augmentation(self) -> Augmentation {
        match self {
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => Augmentation::nb201_cifar(),
            DatasetKind::ImageNet16_120 => Augmentation::nb201_imagenet16(),
            // Image folders crop with RandomResizedCrop in their workers instead; the flag only
            // says "training transforms" there.
            DatasetKind::Embedded | DatasetKind::FashionMnist | DatasetKind::ImageFolder => Augmentation { crop_padding: 2, horizontal_flip: true },
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
    /// `embedded` (default), `cifar10`, `cifar100`, `imagenet16-120`, `mnist`, `fashion-mnist`
    /// or `image-folder`.
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
    /// Image folders: the folder of training images (one sub-folder per class), instead of
    /// `path/train`. A relative path is taken as `path` is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_path: Option<PathBuf>,
    /// Image folders: the folder of test images, instead of `path/val` (or `path/test`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_path: Option<PathBuf>,
    /// Image folders: side of the square network input (default 224; 64-128 for quick runs).
    /// Training images are `RandomResizedCrop`ped to it, test images resized to
    /// `ceil(size · 256 / 224)` and centre-cropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_size: Option<u32>,
    /// Image folders: colour jitter on training images, e.g. `{ brightness = 0.125,
    /// saturation = 0.5 }` (OFA's ImageNet setting); each factor is drawn from `[1 − x, 1 + x]`.
    #[serde(skip_serializing_if = "ColorJitter::is_identity")]
    pub color_jitter: ColorJitter,
    /// Image folders: threads that decode and transform batches (default: the CPUs this
    /// process may use, at most 8; 0 decodes on the training thread).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Image folders: finished batches kept ahead of training (default 2 per worker).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefetch_batches: Option<usize>,
    /// Image folders: share of a split's images that may be unreadable (skipped, logged and
    /// counted) before the run stops with their list (default 0.01; 0 stops at the first).
    pub max_unreadable_fraction: f64,
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
            train_path: None,
            test_path: None,
            image_size: None,
            color_jitter: ColorJitter::default(),
            workers: None,
            prefetch_batches: None,
            max_unreadable_fraction: 0.01,
        }
    }
}

impl DataConfig {
    /// The seed of the data pipeline (0 where neither `data.seed` nor a run seed set it).
    pub fn data_seed(&self) -> u64 {
        self.seed.unwrap_or(0)
    }

    /// The worker threads, queue depth and unreadable-image limit of streamed loaders.
    pub fn stream_options(&self) -> StreamOptions {
        let workers = self.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(8));
        StreamOptions {
            workers,
            prefetch: self.prefetch_batches.unwrap_or(2 * workers.max(1)),
            max_unreadable_fraction: self.max_unreadable_fraction,
        }
    }

    /// The transforms of image-folder splits.
    pub fn image_transforms(&self) -> ImageTransforms {
        ImageTransforms::imagenet(self.image_size.unwrap_or(DEFAULT_IMAGE_SIZE), self.color_jitter)
    }
}

/// ImageNet's input size.
pub const DEFAULT_IMAGE_SIZE: u32 = 224;

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
        for path in [&mut self.path, &mut self.split_file, &mut self.train_path, &mut self.test_path].into_iter().flatten() {
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
        if !(0.0..=1.0).contains(&self.max_unreadable_fraction) {
            return Err(DataError::config(
                "data.max_unreadable_fraction",
                format!("must be between 0 and 1 (a share of the images), got {}", self.max_unreadable_fraction),
            ));
        }
        let is_image_folder = self.dataset == DatasetKind::ImageFolder;
        let folder_only: [(&'static str, bool); 6] = [
            ("data.train_path", self.train_path.is_some()),
            ("data.test_path", self.test_path.is_some()),
            ("data.image_size", self.image_size.is_some()),
            ("data.color_jitter", !self.color_jitter.is_identity()),
            ("data.workers", self.workers.is_some()),
            ("data.prefetch_batches", self.prefetch_batches.is_some()),
        ];
        if let Some((field, _)) = folder_only.iter().find(|(_, set)| *set).filter(|_| !is_image_folder) {
            return Err(DataError::config(field, format!("only applies to dataset `image-folder`; remove it for dataset `{}`", self.dataset)));
        }
        if is_image_folder {
            if self.image_size.is_some_and(|size| size < 8) {
                return Err(DataError::config("data.image_size", "must be at least 8 pixels (224 for ImageNet, 64-128 for quick runs)"));
            }
            if self.prefetch_batches == Some(0) {
                return Err(DataError::config("data.prefetch_batches", "must be at least 1 (or left out for 2 per worker)"));
            }
            let jitter = self.color_jitter;
            for (field, value) in [("brightness", jitter.brightness), ("contrast", jitter.contrast), ("saturation", jitter.saturation)] {
                if !(0.0..=1.0).contains(&value) {
                    return Err(DataError::config("data.color_jitter", format!("{field} must be between 0 and 1, got {value}")));
                }
            }
            for (field, folder) in [("data.train_path", &self.train_path), ("data.test_path", &self.test_path)] {
                if let Some(folder) = folder.as_ref().filter(|folder| !folder.is_dir()) {
                    return Err(DataError::config(
                        field,
                        format!("{} is not a directory (relative paths are taken from {})", folder.display(), current_dir_text()),
                    ));
                }
            }
            if self.path.is_none() && self.train_path.is_some() && self.test_path.is_some() {
                return Ok(());
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
            DatasetKind::ImageFolder => Err(DataError::config("data.dataset", "image folders are streamed, not loaded whole; use prepare_data")),
        }
    }

    /// The training and test folders of an image-folder data set.
    pub fn image_folders(&self) -> Result<(PathBuf, PathBuf), DataError> {
        self.validate()?;
        let root = self.path.as_deref();
        let train = match (&self.train_path, root) {
            (Some(train), _) => train.clone(),
            (None, Some(root)) => root.join("train"),
            (None, None) => {
                return Err(DataError::config("data.path", "dataset `image-folder` needs data.path (holding train/ and val/) or data.train_path"))
            }
        };
        let test = match (&self.test_path, root) {
            (Some(test), _) => test.clone(),
            (None, Some(root)) => ["val", "test"].iter().map(|name| root.join(name)).find(|dir| dir.is_dir()).unwrap_or_else(|| root.join("val")),
            (None, None) => {
                return Err(DataError::config("data.path", "dataset `image-folder` needs data.path (holding train/ and val/) or data.test_path"))
            }
        };
        for (field, folder) in [("data.path", &train), ("data.path", &test)] {
            if !folder.is_dir() {
                return Err(DataError::MissingFiles {
                    path: folder.clone(),
                    what: "image folder".to_string(),
                    hint: format!(
                        "{field} must hold train/ and val/ (or test/), one sub-folder per class; or set data.train_path and data.test_path"
                    ),
                });
            }
        }
        Ok((train, test))
    }
}

fn current_dir_text() -> String {
    std::env::current_dir().map(|dir| dir.display().to_string()).unwrap_or_else(|_| "the current directory".to_string())
}

/// A run's data, ready to serve: splits on the device (or streamed from files), their
/// normalisation, and loader settings.
#[derive(Debug)]
pub struct PreparedData {
    pub dataset: DatasetKind,
    /// On the run's device (loaders share this storage), or image files served there.
    pub splits: Splits,
    /// NB201's constants for CIFAR and ImageNet16, ImageNet's for image folders, otherwise
    /// computed from the train split.
    pub normalization: Normalization,
    /// Shuffled, augmented (if `data.augment`), `data.drop_last`: for training steps.
    pub training_options: LoaderOptions,
    pub eval_batch_size: usize,
    /// Class names by index, where the data set names its classes (image folders).
    pub class_names: Option<Vec<String>>,
    /// How image folders are streamed (workers, prefetch, unreadable-image limit).
    pub stream: StreamOptions,
    seed: u64,
}

/// Reads, subsets, splits and normalises the data `config` names, and puts it on `device`.
pub fn prepare_data(config: &DataConfig, device: Device) -> Result<PreparedData, DataError> {
    let (splits, normalization, class_names) = if config.dataset == DatasetKind::ImageFolder {
        let (train_folder, test_folder) = config.image_folders()?;
        let (official_train, test, class_names) = load_image_folders(&train_folder, &test_folder, config, device)?;
        let (train, valid, test) = subset_and_split(config, official_train, test)?;
        let splits = Splits { train: SplitData::Files(train), valid: SplitData::Files(valid), test: SplitData::Files(test) };
        (splits, Normalization::imagenet(), Some(class_names))
    } else {
        let (official_train, test) = config.load_official()?;
        let (train, valid, test) = subset_and_split(config, official_train, test)?;
        let normalization = match config.dataset {
            DatasetKind::Cifar10 => Normalization::nb201_cifar10(),
            DatasetKind::Cifar100 => Normalization::nb201_cifar100(),
            DatasetKind::ImageNet16_120 => Normalization::nb201_imagenet16(),
            _ => Normalization::from_dataset(&train)?,
        };
        let on_device = |dataset: Dataset| SplitData::Tensors(dataset.to_device(device));
        (Splits { train: on_device(train), valid: on_device(valid), test: on_device(test) }, normalization, None)
    };
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
        class_names,
        stream: config.stream_options(),
        seed: config.data_seed(),
    })
}

/// The caps (`max_train_images`, `max_test_images`), then the train/valid split.
fn subset_and_split<D: LabelledImages>(config: &DataConfig, mut official_train: D, mut test: D) -> Result<(D, D, D), DataError> {
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
    Ok((train, valid, test))
}

/// The two folders' file lists. Their classes must be the same folders, so that an index
/// means the same class in both.
fn load_image_folders(
    train_folder: &Path,
    test_folder: &Path,
    config: &DataConfig,
    device: Device,
) -> Result<(ImageFiles, ImageFiles, Vec<String>), DataError> {
    let train = scan_image_folder(train_folder)?;
    let test = scan_image_folder(test_folder)?;
    if train.class_names != test.class_names {
        let missing: Vec<&String> = train.class_names.iter().filter(|name| !test.class_names.contains(name)).collect();
        let extra: Vec<&String> = test.class_names.iter().filter(|name| !train.class_names.contains(name)).collect();
        return Err(DataError::BadDataset {
            name: "image-folder".to_string(),
            problem: format!(
                "the training folder {} and the test folder {} hold different classes (only in training: {missing:?}; only in test: {extra:?}); class indices come from the sorted folder names, so both need the same class folders",
                train_folder.display(),
                test_folder.display()
            ),
        });
    }
    let class_names = Arc::new(train.class_names.clone());
    let transforms = config.image_transforms();
    let files = |name: &str, scan: FolderScan| ImageFiles {
        name: format!("image-folder/{name}"),
        files: Arc::new(scan.files),
        class_names: Arc::clone(&class_names),
        transforms,
        device,
    };
    let names = train.class_names.clone();
    Ok((files("official-train", train), files("test", test), names))
}

fn stream_seed(seed: u64, stream: u64) -> u64 {
    SeededRng::derive(seed, &[stream]).next_u64()
}

impl PreparedData {
    /// A loader of `split` with `options`: in memory, or streamed with the run's stream settings.
    pub fn loader(&self, split: &SplitData, options: LoaderOptions) -> Result<BatchLoader, DataError> {
        BatchLoader::for_split(split, &self.normalization, options, self.stream)
    }

    /// Batches of training images for re-estimating BatchNorm statistics per architecture:
    /// the train split shuffled once by a fixed seed, without augmentation, so that every
    /// architecture is recalibrated on the same images.
    pub fn calibration_loader(&self) -> Result<BatchLoader, DataError> {
        let options = LoaderOptions {
            batch_size: self.training_options.batch_size,
            shuffle: true,
            drop_last: true,
            augmentation: None,
            cutout: None,
            seed: 0x0043_414c_4942,
        };
        self.loader(&self.splits.train, options)
    }

    /// Training batches of the train split: shuffled, augmented, endless via `next_batch`.
    pub fn train_loader(&self) -> Result<BatchLoader, DataError> {
        self.loader(&self.splits.train, self.training_options)
    }

    /// Training batches for a stand-alone network (the run's `[final]` table says how): of
    /// the train split or of train+valid, `batch_size` images each (0: `data.batch_size`),
    /// with cutout where `cutout` is set. Otherwise as [`Self::train_loader`]: the same seed,
    /// order and augmentation, so `(Train, 0, None)` gives exactly its batches.
    pub fn standalone_train_loader(&self, on: TrainOn, batch_size: usize, cutout: Option<Cutout>) -> Result<BatchLoader, DataError> {
        let batch_size = if batch_size == 0 { self.training_options.batch_size } else { batch_size };
        let options = LoaderOptions { batch_size, cutout, ..self.training_options };
        match on {
            TrainOn::Train => self.loader(&self.splits.train, options),
            TrainOn::TrainValid => {
                let base = self.splits.train.name().split('/').next().unwrap_or("data");
                let both = SplitData::concat(format!("{base}/train+valid"), &[&self.splits.train, &self.splits.valid]);
                self.loader(&both, options)
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
        self.loader(&self.splits.valid, options)
    }

    /// Every image of `split` once, in order, unaugmented: for accuracy and rankings.
    pub fn eval_loader(&self, split: SplitName) -> Result<BatchLoader, DataError> {
        let data = match split {
            SplitName::Train => &self.splits.train,
            SplitName::Valid => &self.splits.valid,
            SplitName::Test => &self.splits.test,
        };
        self.loader(data, LoaderOptions::evaluation(self.eval_batch_size))
    }
}
