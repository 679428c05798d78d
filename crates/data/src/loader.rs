//! Batches for training and evaluation, reproducible from a seed.
//!
//! The whole split is moved to the device once (the largest, ImageNet16-120's training set,
//! is about 120 MB of uint8); each batch is then an index-select, the augmentation gather and
//! a normalising multiply-add there (then cutout's masked fill, where a loader cuts out), with
//! no per-batch host work beyond a few index vectors.
//!
//! Every random choice comes from `SeededRng::derive(seed, [stream, epoch(, batch)])`, so a
//! batch depends only on the seed and its position, not on what was drawn before: the same
//! seed gives the same batches, and a resumed run that seeks to a position continues the
//! same sequence.

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::SeededRng;

use super::split::shuffle;
use super::transform::NormalizeOnDevice;
use super::{Augmentation, Cutout, DataError, Dataset, Normalization};

const ORDER_STREAM: u64 = 0x004f_5244_4552; // "ORDER"
const AUGMENT_STREAM: u64 = 0x4155_474d; // "AUGM"
/// Its own stream, so that turning cutout on leaves the crops and flips as they were.
const CUTOUT_STREAM: u64 = 0x4355_544f_5554; // "CUTOUT"

/// How a loader walks its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoaderOptions {
    pub batch_size: usize,
    /// A new random order every epoch (training); file order otherwise (evaluation).
    pub shuffle: bool,
    /// Skip an epoch's last, smaller batch.
    pub drop_last: bool,
    /// Applied to every batch when set (training only).
    pub augmentation: Option<Augmentation>,
    /// Cutout after normalisation, one square per image, when set (training only).
    pub cutout: Option<Cutout>,
    pub seed: u64,
}

impl LoaderOptions {
    /// In order, every image once, no augmentation.
    pub fn evaluation(batch_size: usize) -> Self {
        LoaderOptions { batch_size, shuffle: false, drop_last: false, augmentation: None, cutout: None, seed: 0 }
    }
}

/// One batch on the loader's device.
#[derive(Debug)]
pub struct Batch {
    /// float32 `[B, C, H, W]`, augmented if the loader augments, normalised.
    pub images: Tensor,
    /// int64 `[B]`.
    pub labels: Tensor,
}

/// Where a loader is: the epoch (from 0) and the next batch within it. Store it in a
/// checkpoint and `seek` to it to continue the same sequence of batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LoaderPosition {
    pub epoch: u64,
    pub batch: usize,
}

/// Something that hands out training batches one at a time (gradient matching draws its
/// repeats' batches through this).
pub trait BatchSource {
    fn next_batch(&mut self) -> Batch;
}

impl BatchSource for BatchLoader {
    fn next_batch(&mut self) -> Batch {
        BatchLoader::next_batch(self)
    }
}

/// The same batch every time: the benchmarks and conformance tests, which compare with
/// references that reuse one batch.
pub struct RepeatedBatch(pub Batch);

impl BatchSource for RepeatedBatch {
    fn next_batch(&mut self) -> Batch {
        Batch { images: self.0.images.shallow_clone(), labels: self.0.labels.shallow_clone() }
    }
}

#[derive(Debug)]
pub struct BatchLoader {
    name: String,
    images: Tensor,
    labels: Tensor,
    normalize: NormalizeOnDevice,
    options: LoaderOptions,
    position: LoaderPosition,
    /// The current epoch's image order.
    order: Vec<i64>,
}

impl BatchLoader {
    /// Moves `dataset` to `device` (shared if it is there already). Fails if the data set
    /// would give no batch at all, since `next_batch` promises one forever.
    pub fn new(dataset: &Dataset, normalization: &Normalization, options: LoaderOptions, device: Device) -> Result<Self, DataError> {
        let bad = |problem: String| DataError::BadDataset { name: dataset.name.clone(), problem };
        if options.batch_size == 0 {
            return Err(DataError::config("data.batch_size", "must be at least 1"));
        }
        if normalization.channels() != dataset.image_shape()[0] as usize || normalization.std.len() != normalization.channels() {
            return Err(bad(format!(
                "its images have {} channel(s) but the normalisation has {} means and {} stds",
                dataset.image_shape()[0],
                normalization.mean.len(),
                normalization.std.len()
            )));
        }
        let mut loader = BatchLoader {
            name: dataset.name.clone(),
            images: dataset.images.to_device(device),
            labels: dataset.labels.to_device(device),
            normalize: NormalizeOnDevice::new(normalization, device),
            options,
            position: LoaderPosition::default(),
            order: Vec::new(),
        };
        if loader.batches_per_epoch() == 0 {
            return Err(bad(format!(
                "{} image(s) make no batch of {}{}; lower data.batch_size or use more data",
                loader.len(),
                options.batch_size,
                if options.drop_last { " with drop_last" } else { "" }
            )));
        }
        loader.order = loader.epoch_order(0);
        Ok(loader)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Images in the data set.
    pub fn len(&self) -> usize {
        self.labels.size()[0] as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn options(&self) -> &LoaderOptions {
        &self.options
    }

    pub fn device(&self) -> Device {
        self.images.device()
    }

    pub fn batches_per_epoch(&self) -> usize {
        let (images, size) = (self.len(), self.options.batch_size);
        if self.options.drop_last {
            images / size
        } else {
            images.div_ceil(size)
        }
    }

    pub fn position(&self) -> LoaderPosition {
        self.position
    }

    /// Continues from `position` (as `position()` reported it earlier, possibly in another process).
    pub fn seek(&mut self, position: LoaderPosition) {
        let position = LoaderPosition { epoch: position.epoch, batch: position.batch.min(self.batches_per_epoch()) };
        if position.epoch != self.position.epoch {
            self.order = self.epoch_order(position.epoch);
        }
        self.position = position;
        self.roll_over_finished_epoch();
    }

    /// The next batch, endlessly: after an epoch's last batch comes the first of the next
    /// (reshuffled) epoch. For "one more training batch" calls.
    pub fn next_batch(&mut self) -> Batch {
        let LoaderPosition { epoch, batch } = self.position;
        let start = batch * self.options.batch_size;
        let end = (start + self.options.batch_size).min(self.len());
        let index = Tensor::from_slice(&self.order[start..end]).to_device(self.device());
        let mut images = self.images.index_select(0, &index);
        if let Some(augmentation) = &self.options.augmentation {
            let mut rng = SeededRng::derive(self.options.seed, &[AUGMENT_STREAM, epoch, batch as u64]);
            images = augmentation.apply(&images, &mut rng);
        }
        let mut images = self.normalize.apply(&images);
        if let Some(cutout) = &self.options.cutout {
            let mut rng = SeededRng::derive(self.options.seed, &[CUTOUT_STREAM, epoch, batch as u64]);
            images = cutout.apply(&images, &mut rng);
        }
        let batch_out = Batch { images, labels: self.labels.index_select(0, &index) };
        self.position.batch += 1;
        self.roll_over_finished_epoch();
        batch_out
    }

    /// The rest of the current epoch (all of it when called at an epoch's start, which is
    /// the case unless `next_batch` was called in between).
    pub fn epoch(&mut self) -> EpochBatches<'_> {
        let epoch = self.position.epoch;
        EpochBatches { loader: self, epoch }
    }

    fn roll_over_finished_epoch(&mut self) {
        if self.position.batch >= self.batches_per_epoch() {
            self.position = LoaderPosition { epoch: self.position.epoch + 1, batch: 0 };
            self.order = self.epoch_order(self.position.epoch);
        }
    }

    fn epoch_order(&self, epoch: u64) -> Vec<i64> {
        let mut order: Vec<i64> = (0..self.len() as i64).collect();
        if self.options.shuffle {
            shuffle(&mut order, &mut SeededRng::derive(self.options.seed, &[ORDER_STREAM, epoch]));
        }
        order
    }
}

/// Iterator over the remaining batches of one epoch; see [`BatchLoader::epoch`].
pub struct EpochBatches<'a> {
    loader: &'a mut BatchLoader,
    epoch: u64,
}

impl Iterator for EpochBatches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        (self.loader.position.epoch == self.epoch).then(|| self.loader.next_batch())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = if self.loader.position.epoch == self.epoch { self.loader.batches_per_epoch() - self.loader.position.batch } else { 0 };
        (left, Some(left))
    }
}

impl ExactSizeIterator for EpochBatches<'_> {}
