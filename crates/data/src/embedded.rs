//! The default data set, compiled into the binary: a stratified Fashion-MNIST subset of
//! 600 training and 100 test images per class (see data/README.md for its origin, license
//! and how to regenerate it). Embedding it means `dataset = "embedded"` needs no files and
//! works from any directory.

use std::path::Path;

use super::idx::{decode_idx_pair, MNIST_CLASSES};
use super::{DataError, Dataset};

const TRAIN_IMAGES: &[u8] = include_bytes!("../../../data/fashion-mnist-subset/train-images-idx3-ubyte.gz");
const TRAIN_LABELS: &[u8] = include_bytes!("../../../data/fashion-mnist-subset/train-labels-idx1-ubyte.gz");
const TEST_IMAGES: &[u8] = include_bytes!("../../../data/fashion-mnist-subset/t10k-images-idx3-ubyte.gz");
const TEST_LABELS: &[u8] = include_bytes!("../../../data/fashion-mnist-subset/t10k-labels-idx1-ubyte.gz");

#[cfg(test)]
pub const EMBEDDED_TRAIN_PER_CLASS: usize = 600;
#[cfg(test)]
pub const EMBEDDED_TEST_PER_CLASS: usize = 100;

/// The embedded training (6,000) and test (1,000) sets.
pub fn load_embedded() -> Result<(Dataset, Dataset), DataError> {
    // The paths only name the source in (unexpected) errors.
    let source = |file: &str| Path::new("<embedded>/data/fashion-mnist-subset").join(file);
    let train =
        decode_idx_pair(TRAIN_IMAGES, &source("train-images-idx3-ubyte.gz"), TRAIN_LABELS, &source("train-labels-idx1-ubyte.gz"), MNIST_CLASSES)?;
    let test = decode_idx_pair(TEST_IMAGES, &source("t10k-images-idx3-ubyte.gz"), TEST_LABELS, &source("t10k-labels-idx1-ubyte.gz"), MNIST_CLASSES)?;
    Ok((train.into_dataset("embedded/official-train", MNIST_CLASSES)?, test.into_dataset("embedded/test", MNIST_CLASSES)?))
}
