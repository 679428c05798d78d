//! Batches for training and evaluation, reproducible from a seed.
//!
//! The whole split is moved to the device once (the largest, ImageNet16-120's training set,
//! is about 120 MB of uint8); each batch is then an index-select, the augmentation gather and
//! a normalising multiply-add there (then cutout's masked fill, where a loader cuts out), with
//! no per-batch host work beyond a few index vectors.
//!
//! Image folders are streamed instead ([`crate::stream`]): worker threads decode and transform
//! batches ahead of the consumer; the batch order, seeking and the seed work the same way.
//!
//! Every random choice comes from `SeededRng::derive(seed, [stream, epoch(, batch)])`, so a
//! batch depends only on the seed and its position, not on what was drawn before: the same
//! seed gives the same batches, and a resumed run that seeks to a position continues the
//! same sequence.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::SeededRng;

use super::image_folder::ImageFiles;
use super::split::shuffle;
use super::stream::{BatchPlan, BatchStream, StreamOptions, AUGMENT_STREAM};
use super::transform::NormalizeOnDevice;
use super::{Augmentation, Cutout, DataError, Dataset, Normalization, SplitData};

const ORDER_STREAM: u64 = 0x004f_5244_4552; // "ORDER"
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
    fn next_batch(&mut self) -> Result<Batch, DataError>;
}

impl BatchSource for BatchLoader {
    fn next_batch(&mut self) -> Result<Batch, DataError> {
        BatchLoader::next_batch(self)
    }
}

/// The same batch every time: the benchmarks and conformance tests, which compare with
/// references that reuse one batch.
pub struct RepeatedBatch(pub Batch);

impl BatchSource for RepeatedBatch {
    fn next_batch(&mut self) -> Result<Batch, DataError> {
        Ok(Batch { images: self.0.images.shallow_clone(), labels: self.0.labels.shallow_clone() })
    }
}

/// Where a loader's images come from.
#[derive(Debug)]
enum Source {
    /// The whole split on the device: a batch is an index-select.
    Tensors { images: Tensor, labels: Tensor },
    /// Image files decoded by worker threads, batch by batch (boxed: the stream's state is
    /// far larger than two tensor handles).
    Files(Box<BatchStream>),
}

/// The seeded order of each epoch's images, and which of them a batch takes.
#[derive(Debug)]
struct EpochOrder {
    len: usize,
    options: LoaderOptions,
    /// The orders of the epochs asked for last (the streaming loader prefetches into the
    /// next epoch while the current one is served).
    cached: Vec<(u64, Vec<i64>)>,
}

impl EpochOrder {
    fn order(&mut self, epoch: u64) -> &[i64] {
        if let Some(found) = self.cached.iter().position(|(cached, _)| *cached == epoch) {
            return &self.cached[found].1;
        }
        let mut order: Vec<i64> = (0..self.len as i64).collect();
        if self.options.shuffle {
            shuffle(&mut order, &mut SeededRng::derive(self.options.seed, &[ORDER_STREAM, epoch]));
        }
        if self.cached.len() >= 2 {
            self.cached.remove(0);
        }
        self.cached.push((epoch, order));
        &self.cached.last().expect("pushed above").1
    }
}

impl BatchPlan for EpochOrder {
    fn batches_per_epoch(&self) -> usize {
        let (images, size) = (self.len, self.options.batch_size);
        if self.options.drop_last {
            images / size
        } else {
            images.div_ceil(size)
        }
    }

    fn batch_indices(&mut self, position: LoaderPosition) -> Vec<i64> {
        let size = self.options.batch_size;
        let start = position.batch * size;
        let end = (start + size).min(self.len);
        self.order(position.epoch)[start..end].to_vec()
    }
}

#[derive(Debug)]
pub struct BatchLoader {
    name: String,
    source: Source,
    device: Device,
    normalize: NormalizeOnDevice,
    position: LoaderPosition,
    plan: EpochOrder,
}

impl BatchLoader {
    /// Moves `dataset` to `device` (shared if it is there already). Fails if the data set
    /// would give no batch at all, since `next_batch` promises one forever.
    pub fn new(dataset: &Dataset, normalization: &Normalization, options: LoaderOptions, device: Device) -> Result<Self, DataError> {
        check_normalization(&dataset.name, dataset.image_shape()[0] as usize, normalization)?;
        let source = Source::Tensors { images: dataset.images.to_device(device), labels: dataset.labels.to_device(device) };
        Self::with_source(dataset.name.clone(), dataset.len(), source, normalization, options, device)
    }

    /// Batches of image files, decoded and transformed by `stream.workers` threads (ImageNet's
    /// training transforms where `options.augmentation` is set, its evaluation transforms
    /// otherwise), served on `files.device`.
    pub fn streaming(files: &ImageFiles, normalization: &Normalization, options: LoaderOptions, stream: StreamOptions) -> Result<Self, DataError> {
        check_normalization(&files.name, 3, normalization)?;
        if options.cutout.is_some() {
            return Err(DataError::config("final.cutout", "is not offered for image folders (it is a CIFAR protocol); remove it"));
        }
        let batch_stream = BatchStream::new(files.clone(), options.augmentation.is_some(), options.seed, stream);
        Self::with_source(files.name.clone(), files.len(), Source::Files(Box::new(batch_stream)), normalization, options, files.device)
    }

    /// The loader `split` needs: in memory, or streamed from its files.
    pub fn for_split(split: &SplitData, normalization: &Normalization, options: LoaderOptions, stream: StreamOptions) -> Result<Self, DataError> {
        match split {
            SplitData::Tensors(dataset) => Self::new(dataset, normalization, options, dataset.device()),
            SplitData::Files(files) => Self::streaming(files, normalization, options, stream),
        }
    }

    fn with_source(
        name: String,
        len: usize,
        source: Source,
        normalization: &Normalization,
        options: LoaderOptions,
        device: Device,
    ) -> Result<Self, DataError> {
        if options.batch_size == 0 {
            return Err(DataError::config("data.batch_size", "must be at least 1"));
        }
        let loader = BatchLoader {
            name,
            source,
            device,
            normalize: NormalizeOnDevice::new(normalization, device),
            position: LoaderPosition::default(),
            plan: EpochOrder { len, options, cached: Vec::new() },
        };
        if loader.batches_per_epoch() == 0 {
            return Err(DataError::BadDataset {
                name: loader.name.clone(),
                problem: format!(
                    "{} image(s) make no batch of {}{}; lower data.batch_size or use more data",
                    len,
                    options.batch_size,
                    if options.drop_last { " with drop_last" } else { "" }
                ),
            });
        }
        Ok(loader)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Images in the data set.
    pub fn len(&self) -> usize {
        self.plan.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn options(&self) -> &LoaderOptions {
        &self.plan.options
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn batches_per_epoch(&self) -> usize {
        self.plan.batches_per_epoch()
    }

    pub fn position(&self) -> LoaderPosition {
        self.position
    }

    /// Image files that could not be read so far, with the reason (streamed loaders only).
    pub fn unreadable_images(&self) -> Vec<(std::path::PathBuf, String)> {
        match &self.source {
            Source::Files(stream) => stream.unreadable().iter().map(|(path, reason)| (path.clone(), reason.clone())).collect(),
            Source::Tensors { .. } => Vec::new(),
        }
    }

    /// Continues from `position` (as `position()` reported it earlier, possibly in another process).
    pub fn seek(&mut self, position: LoaderPosition) {
        self.position = LoaderPosition { epoch: position.epoch, batch: position.batch.min(self.batches_per_epoch()) };
        self.roll_over_finished_epoch();
    }

    /// The next batch, endlessly: after an epoch's last batch comes the first of the next
    /// (reshuffled) epoch. For "one more training batch" calls. Fails only for image files,
    /// when more of them cannot be read than `data.max_unreadable_fraction` allows.
    pub fn next_batch(&mut self) -> Result<Batch, DataError> {
        // A batch of files that all failed to decode is skipped; an epoch of them is an error.
        for _ in 0..=self.batches_per_epoch() {
            let position = self.position;
            let (images, labels) = match &mut self.source {
                Source::Tensors { images, labels } => {
                    let index = Tensor::from_slice(&self.plan.batch_indices(position)).to_device(self.device);
                    let mut batch_images = images.index_select(0, &index);
                    if let Some(augmentation) = &self.plan.options.augmentation {
                        let mut rng = SeededRng::derive(self.plan.options.seed, &[AUGMENT_STREAM, position.epoch, position.batch as u64]);
                        batch_images = augmentation.apply(&batch_images, &mut rng);
                    }
                    (batch_images, labels.index_select(0, &index))
                }
                Source::Files(stream) => {
                    let decoded = stream.take(position, &mut self.plan)?;
                    let size = stream.files().transforms.image_size as i64;
                    let count = decoded.labels.len() as i64;
                    let images = Tensor::from_slice(&decoded.pixels).view([count, 3, size, size]);
                    let images = if self.device.is_cuda() {
                        // Pinned host memory lets the copy overlap the previous step's kernels.
                        images.pin_memory(self.device).to_device_(self.device, Kind::Uint8, true, false)
                    } else {
                        images
                    };
                    (images, Tensor::from_slice(&decoded.labels).to_device(self.device))
                }
            };
            self.position.batch += 1;
            self.roll_over_finished_epoch();
            if labels.size()[0] == 0 {
                continue;
            }
            let mut images = self.normalize.apply(&images);
            if let Some(cutout) = &self.plan.options.cutout {
                let mut rng = SeededRng::derive(self.plan.options.seed, &[CUTOUT_STREAM, position.epoch, position.batch as u64]);
                images = cutout.apply(&images, &mut rng);
            }
            return Ok(Batch { images, labels });
        }
        Err(DataError::BadDataset { name: self.name.clone(), problem: "no image of a whole epoch could be read".to_string() })
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
        }
    }
}

fn check_normalization(name: &str, channels: usize, normalization: &Normalization) -> Result<(), DataError> {
    if normalization.channels() != channels || normalization.std.len() != normalization.channels() {
        return Err(DataError::BadDataset {
            name: name.to_string(),
            problem: format!(
                "its images have {} channel(s) but the normalisation has {} means and {} stds",
                channels,
                normalization.mean.len(),
                normalization.std.len()
            ),
        });
    }
    Ok(())
}

/// Iterator over the remaining batches of one epoch; see [`BatchLoader::epoch`].
pub struct EpochBatches<'a> {
    loader: &'a mut BatchLoader,
    epoch: u64,
}

impl Iterator for EpochBatches<'_> {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        (self.loader.position.epoch == self.epoch).then(|| self.loader.next_batch())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = if self.loader.position.epoch == self.epoch { self.loader.batches_per_epoch() - self.loader.position.batch } else { 0 };
        (left, Some(left))
    }
}

impl ExactSizeIterator for EpochBatches<'_> {}
