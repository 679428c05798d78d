//! Per-batch preprocessing on the device: augmentation of raw pixels, normalisation, then
//! (final training only, where configured) cutout.
//!
//! The order is NB201's (flip, crop with zero padding, to [0, 1], normalise): padding is
//! added to raw pixels, so a padded border becomes (0 − mean) / std after normalising,
//! exactly as torchvision's `RandomCrop(padding=p)` followed by `Normalize` gives.
//! `tch`'s own crop helper pads by reflection, which NB201 does not; it is not used. Cutout
//! comes after `Normalize`, as in DARTS's transform list, so a cut pixel is 0 = the mean colour.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::SeededRng;

use super::{DataError, Dataset};

/// Per-channel mean and standard deviation of pixel values scaled to [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Normalization {
    /// From statistics of 0..255 pixel values, the way NB201 writes its constants.
    fn from_pixel_scale(mean: [f64; 3], std: [f64; 3]) -> Self {
        Normalization { mean: mean.iter().map(|m| m / 255.0).collect(), std: std.iter().map(|s| s / 255.0).collect() }
    }

    /// NB201's CIFAR-10 constants.
    pub fn nb201_cifar10() -> Self {
        Self::from_pixel_scale([125.3, 123.0, 113.9], [63.0, 62.1, 66.7])
    }

    /// NB201's CIFAR-100 constants.
    pub fn nb201_cifar100() -> Self {
        Self::from_pixel_scale([129.3, 124.1, 112.4], [68.2, 65.4, 70.4])
    }

    /// NB201's ImageNet16 constants.
    pub fn nb201_imagenet16() -> Self {
        Self::from_pixel_scale([122.68, 116.66, 104.01], [63.22, 61.26, 65.09])
    }

    /// ImageNet's constants (torchvision's), for image folders.
    pub fn imagenet() -> Self {
        Normalization { mean: vec![0.485, 0.456, 0.406], std: vec![0.229, 0.224, 0.225] }
    }

    /// The statistics of `dataset` itself (use the training split: never look at test data).
    /// A channel with no spread gets std 1, so constant images do not divide by zero.
    pub fn from_dataset(dataset: &Dataset) -> Result<Self, DataError> {
        if dataset.is_empty() {
            return Err(DataError::BadDataset {
                name: dataset.name.clone(),
                problem: "it is empty, so no normalisation statistics can be computed from it".to_string(),
            });
        }
        let images = dataset.images.to_device(Device::Cpu);
        let (mut mean, mut std) = (Vec::new(), Vec::new());
        for channel in 0..dataset.image_shape()[0] {
            // A histogram of the 256 values gives exact statistics without a float copy of the data.
            let pixels = Vec::<u8>::try_from(&images.select(1, channel).contiguous().view([-1]))
                .map_err(DataError::torch("reading pixels for normalisation statistics"))?;
            let mut histogram = [0u64; 256];
            for &pixel in &pixels {
                histogram[pixel as usize] += 1;
            }
            let count = pixels.len() as f64;
            let channel_mean = histogram.iter().enumerate().map(|(v, &n)| v as f64 / 255.0 * n as f64).sum::<f64>() / count;
            let variance = histogram.iter().enumerate().map(|(v, &n)| (v as f64 / 255.0 - channel_mean).powi(2) * n as f64).sum::<f64>() / count;
            mean.push(channel_mean);
            std.push(if variance > 0.0 { variance.sqrt() } else { 1.0 });
        }
        Ok(Normalization { mean, std })
    }

    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// Raw pixels (any kind, values 0..255) `[B, C, H, W]` to normalised float32.
    pub fn apply(&self, images: &Tensor) -> Tensor {
        NormalizeOnDevice::new(self, images.device()).apply(images)
    }
}

/// `x · scale + shift` with `scale = 1 / (255 · std)`, `shift = −mean / std`, kept on the device
/// so batches need no host-to-device copy for it.
#[derive(Debug)]
pub(crate) struct NormalizeOnDevice {
    scale: Tensor,
    shift: Tensor,
}

impl NormalizeOnDevice {
    pub fn new(normalization: &Normalization, device: Device) -> Self {
        let channels = normalization.channels() as i64;
        let scale: Vec<f32> = normalization.std.iter().map(|s| (1.0 / (255.0 * s)) as f32).collect();
        let shift: Vec<f32> = normalization.mean.iter().zip(&normalization.std).map(|(m, s)| (-m / s) as f32).collect();
        NormalizeOnDevice {
            scale: Tensor::from_slice(&scale).view([1, channels, 1, 1]).to_device(device),
            shift: Tensor::from_slice(&shift).view([1, channels, 1, 1]).to_device(device),
        }
    }

    pub fn apply(&self, images: &Tensor) -> Tensor {
        images.to_kind(Kind::Float) * &self.scale + &self.shift
    }
}

/// NB201's training augmentation: a random crop of the original size from the image padded
/// with `crop_padding` zeros on every side, and a horizontal flip half of the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Augmentation {
    pub crop_padding: i64,
    pub horizontal_flip: bool,
}

/// Where one image's crop window sits in the padded image, and whether it is mirrored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropPlacement {
    /// Top row of the window in the padded image, `0..=2·crop_padding`.
    pub top: i64,
    /// Left column of the window in the padded image, `0..=2·crop_padding`.
    pub left: i64,
    pub flip: bool,
}

impl Augmentation {
    /// CIFAR: crop 32 with padding 4, flip.
    pub fn nb201_cifar() -> Self {
        Augmentation { crop_padding: 4, horizontal_flip: true }
    }

    /// ImageNet16-120: crop 16 with padding 2, flip.
    pub fn nb201_imagenet16() -> Self {
        Augmentation { crop_padding: 2, horizontal_flip: true }
    }

    /// Draws one placement per image from `rng`.
    pub fn draw_placements(&self, batch: usize, rng: &mut SeededRng) -> Vec<CropPlacement> {
        let positions = 2 * self.crop_padding.max(0) as u64 + 1;
        (0..batch)
            .map(|_| CropPlacement {
                top: rng.below(positions) as i64,
                left: rng.below(positions) as i64,
                flip: self.horizontal_flip && rng.next_u64() >> 63 == 1,
            })
            .collect()
    }

    /// Augments `[B, C, H, W]` images (any kind) with placements drawn from `rng`.
    pub fn apply(&self, images: &Tensor, rng: &mut SeededRng) -> Tensor {
        let placements = self.draw_placements(images.size()[0] as usize, rng);
        self.apply_placements(images, &placements)
    }

    /// Augments with given placements: one gather on the device for the whole batch (crop and
    /// flip are both just a choice of source row and column per output pixel).
    pub fn apply_placements(&self, images: &Tensor, placements: &[CropPlacement]) -> Tensor {
        let size = images.size();
        let (batch, channels, height, width) = (size[0], size[1], size[2], size[3]);
        assert_eq!(placements.len() as i64, batch, "one placement per image");
        let padding = self.crop_padding.max(0);
        let padded = if padding > 0 { images.constant_pad_nd([padding, padding, padding, padding]) } else { images.shallow_clone() };
        let mut rows = Vec::with_capacity((batch * height) as usize);
        let mut columns = Vec::with_capacity((batch * width) as usize);
        for placement in placements {
            assert!(
                (0..=2 * padding).contains(&placement.top) && (0..=2 * padding).contains(&placement.left),
                "crop window {placement:?} outside the padded image"
            );
            rows.extend((0..height).map(|y| placement.top + y));
            columns.extend((0..width).map(|x| placement.left + if placement.flip { width - 1 - x } else { x }));
        }
        let device = images.device();
        let options = (Kind::Int64, device);
        let batch_index = Tensor::arange(batch, options).view([batch, 1, 1, 1]);
        let channel_index = Tensor::arange(channels, options).view([1, channels, 1, 1]);
        let rows = Tensor::from_slice(&rows).view([batch, 1, height, 1]).to_device(device);
        let columns = Tensor::from_slice(&columns).view([batch, 1, 1, width]).to_device(device);
        padded.index(&[Some(batch_index), Some(channel_index), Some(rows), Some(columns)])
    }
}

/// Cutout (DeVries & Taylor, 2017) as DARTS's `utils.Cutout` applies it to training images: one
/// square per image, its centre drawn uniformly over the image's pixels (so the square is
/// clipped where it crosses the border), its pixels set to 0 *after* normalisation (the mean
/// colour), on every image (p = 1). Like DARTS, the square spans `centre − size/2` up to
/// (excluding) `centre + size/2` in integer halves: an even `size` cuts `size × size` pixels
/// away from the border, an odd one `(size − 1) × (size − 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cutout {
    /// Side of the square in pixels (DARTS: 16 on CIFAR).
    pub size: i64,
}

/// Where one image's cutout square lies after clipping: rows `top..bottom`, columns
/// `left..right` (empty where the size is below 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutoutSquare {
    pub top: i64,
    pub bottom: i64,
    pub left: i64,
    pub right: i64,
}

impl CutoutSquare {
    /// The square of side `2 · (size / 2)` centred on pixel (`row`, `column`), clipped to a
    /// `height × width` image.
    pub fn around(row: i64, column: i64, size: i64, height: i64, width: i64) -> Self {
        let half = size.max(0) / 2;
        CutoutSquare {
            top: (row - half).clamp(0, height),
            bottom: (row + half).clamp(0, height),
            left: (column - half).clamp(0, width),
            right: (column + half).clamp(0, width),
        }
    }

    /// Pixels it covers.
    pub fn area(&self) -> i64 {
        (self.bottom - self.top).max(0) * (self.right - self.left).max(0)
    }
}

impl Cutout {
    /// Draws one square per image of a `height × width` batch from `rng`: the centre's row,
    /// then its column, each uniform (DARTS: `np.random.randint(h)`, then `randint(w)`).
    pub fn draw_squares(&self, batch: usize, height: i64, width: i64, rng: &mut SeededRng) -> Vec<CutoutSquare> {
        (0..batch)
            .map(|_| {
                let row = rng.below(height.max(1) as u64) as i64;
                let column = rng.below(width.max(1) as u64) as i64;
                CutoutSquare::around(row, column, self.size, height, width)
            })
            .collect()
    }

    /// Cuts a square out of every image of a normalised `[B, C, H, W]` float batch, with
    /// squares drawn from `rng`.
    pub fn apply(&self, images: &Tensor, rng: &mut SeededRng) -> Tensor {
        let size = images.size();
        let squares = self.draw_squares(size[0] as usize, size[2], size[3], rng);
        self.apply_squares(images, &squares)
    }

    /// Zeroes the given squares, one per image (every channel), in one masked fill on the
    /// device: the mask compares each pixel's row and column with its image's square.
    pub fn apply_squares(&self, images: &Tensor, squares: &[CutoutSquare]) -> Tensor {
        let size = images.size();
        let (batch, height, width) = (size[0], size[2], size[3]);
        assert_eq!(squares.len() as i64, batch, "one square per image");
        let device = images.device();
        let per_image = |bound: fn(&CutoutSquare) -> i64| {
            Tensor::from_slice(&squares.iter().map(bound).collect::<Vec<i64>>()).view([batch, 1, 1, 1]).to_device(device)
        };
        let rows = Tensor::arange(height, (Kind::Int64, device)).view([1, 1, height, 1]);
        let columns = Tensor::arange(width, (Kind::Int64, device)).view([1, 1, 1, width]);
        let inside_rows = rows.ge_tensor(&per_image(|s| s.top)).logical_and(&rows.lt_tensor(&per_image(|s| s.bottom)));
        let inside_columns = columns.ge_tensor(&per_image(|s| s.left)).logical_and(&columns.lt_tensor(&per_image(|s| s.right)));
        images.masked_fill(&inside_rows.logical_and(&inside_columns), 0.0)
    }
}
