//! The data layer: users' standard dataset files in, train / valid / test batches out.
//!
//! - readers for CIFAR-10/100 (binary and python-pickle batches), ImageNet16-120 pickles and
//!   (Fashion-)MNIST IDX files, plain or gzipped, each taking the record count from the file
//!   and naming the file and the problem when it is truncated or corrupt;
//! - the embedded default data set (a stratified Fashion-MNIST subset built into the binary);
//! - seeded, stratified train / valid splits (NB201: half of the official training set each),
//!   or the split a file fixes (NB201's own `cifar-split.txt`);
//! - loaders that serve normalised, augmented (zero-padded random crop + flip) batches on the
//!   run's device, reproducibly from a seed, epoch by epoch or as an endless stream, with
//!   cutout for final trainings that ask for it;
//! - image folders (torchvision's ImageFolder layout, JPEG and PNG) streamed by worker threads
//!   through ImageNet's transforms (`image_folder`, `image_transform`, `stream`), with
//!   `check_image_folder` for `splitnas data check` and `synthetic` for generated test sets;
//! - the `[data]` config table and [`prepare_data`], which ties it all together.

mod check;
mod cifar;
mod config;
mod dataset;
mod embedded;
mod error;
mod files;
mod idx;
mod image_folder;
mod image_transform;
mod imagenet16;
mod loader;
mod pickle;
mod split;
mod stream;
mod synthetic;
mod transform;

#[cfg(test)]
mod tests;

pub use check::{check_image_folder, split_folders, ClassCount, FolderCheck, SizeRange, SplitCheck, UnreadableFile, SPLIT_FOLDERS};
pub use cifar::{CifarVariant, FileFormat};
pub use config::{prepare_data, DataConfig, DatasetKind, PreparedData, SplitName, TrainOn, DEFAULT_IMAGE_SIZE};
pub use dataset::{Dataset, ImageRecords, LabelledImages, SplitData};
pub use error::DataError;
pub use idx::IdxArray;
pub use image_folder::{
    decode_rgb, read_rgb, scan_image_folder, ColorJitter, FolderScan, ImageFile, ImageFiles, ImageTransforms, RgbPixels, UnreadableImage,
    IMAGE_EXTENSIONS,
};
pub use image_transform::{apply_eval, apply_train, draw_train, random_resized_crop_box, CropBox, TrainDraw, TransformScratch};
pub use loader::{Batch, BatchLoader, BatchSource, EpochBatches, LoaderOptions, LoaderPosition, RepeatedBatch};
pub use split::Splits;
pub use splitnas_seeded_rng::SeededRng;
pub use stream::StreamOptions;
pub use synthetic::{generate_image_folder, synthetic_class_name, SyntheticOptions, SyntheticSummary, SYNTHETIC_MANIFEST};
pub use transform::{Augmentation, CropPlacement, Cutout, CutoutSquare, Normalization};
