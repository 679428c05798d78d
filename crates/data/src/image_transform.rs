//! ImageNet's per-image transforms, on decoded 8-bit RGB images, as torchvision applies them
//! to the PIL images its `ImageFolder` loads:
//!
//! - train: `RandomResizedCrop(size, scale=(0.08, 1), ratio=(3/4, 4/3))`, `RandomHorizontalFlip`,
//!   optionally `ColorJitter(brightness, contrast, saturation)`;
//! - eval: `Resize(ceil(size · 256 / 224))` (shorter side), `CenterCrop(size)`.
//!
//! Resampling is Pillow's `BILINEAR` filter, a triangle filter widened by the scale factor
//! (antialiased when shrinking), computed by `fast_image_resize`'s convolution resizer, which
//! implements Pillow's algorithm; the two agree to within one grey level (checked against
//! torchvision in `tests/image_folder.rs`). The random parameters follow torchvision's
//! algorithms but draw from splitnas's seeded generator, not torch's, so they are the same for a
//! seed whatever the worker count, but not the numbers torchvision would draw.
//!
//! Results are written as `[3, size, size]` uint8 (channels first), ready to join a batch;
//! normalisation happens on the device, as for the in-memory data sets.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use crate::SeededRng;

use super::image_folder::{ColorJitter, ImageTransforms, RgbPixels};

/// A crop window in the source image: top row, left column, height, width (torchvision's
/// `i, j, h, w`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    pub top: u32,
    pub left: u32,
    pub height: u32,
    pub width: u32,
}

/// The parameters of one training transform, drawn before any pixel is touched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainDraw {
    pub crop: CropBox,
    pub flip: bool,
    /// `(which adjustment, factor)` in the order they apply: 0 brightness, 1 contrast,
    /// 2 saturation. Empty without colour jitter.
    pub jitter: [(u8, f64); 3],
    pub jitter_count: usize,
}

/// Python's `round` (half to even), which torchvision's crop arithmetic uses.
fn round_half_even(value: f64) -> f64 {
    let rounded = value.round();
    if (value - value.trunc()).abs() == 0.5 && rounded % 2.0 != 0.0 {
        rounded - value.signum()
    } else {
        rounded
    }
}

fn uniform(rng: &mut SeededRng, low: f64, high: f64) -> f64 {
    low + (high - low) * rng.unit()
}

/// torchvision's `RandomResizedCrop.get_params`: ten tries at an area share in `scale` and a
/// log-uniform aspect ratio in `ratio`, then the centre crop clamped to `ratio`.
pub fn random_resized_crop_box(width: u32, height: u32, scale: (f64, f64), ratio: (f64, f64), rng: &mut SeededRng) -> CropBox {
    let area = f64::from(width) * f64::from(height);
    let (log_low, log_high) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target_area = area * uniform(rng, scale.0, scale.1);
        let aspect = uniform(rng, log_low, log_high).exp();
        let w = round_half_even((target_area * aspect).sqrt()) as i64;
        let h = round_half_even((target_area / aspect).sqrt()) as i64;
        if 0 < w && w <= i64::from(width) && 0 < h && h <= i64::from(height) {
            let top = rng.below((i64::from(height) - h + 1) as u64) as u32;
            let left = rng.below((i64::from(width) - w + 1) as u64) as u32;
            return CropBox { top, left, height: h as u32, width: w as u32 };
        }
    }
    let in_ratio = f64::from(width) / f64::from(height);
    let (w, h) = if in_ratio < ratio.0.min(ratio.1) {
        (width, round_half_even(f64::from(width) / ratio.0.min(ratio.1)) as u32)
    } else if in_ratio > ratio.0.max(ratio.1) {
        (round_half_even(f64::from(height) * ratio.0.max(ratio.1)) as u32, height)
    } else {
        (width, height)
    };
    CropBox { top: (height - h) / 2, left: (width - w) / 2, height: h, width: w }
}

/// Draws everything a training transform of a `width × height` image needs.
pub fn draw_train(transforms: &ImageTransforms, width: u32, height: u32, rng: &mut SeededRng) -> TrainDraw {
    let crop = random_resized_crop_box(width, height, transforms.scale, transforms.ratio, rng);
    let flip = transforms.horizontal_flip && rng.unit() < 0.5;
    let mut draw = TrainDraw { crop, flip, jitter: [(0, 1.0); 3], jitter_count: 0 };
    let ColorJitter { brightness, contrast, saturation } = transforms.color_jitter;
    if !transforms.color_jitter.is_identity() {
        // torchvision: a random permutation of the adjustments, then one factor per adjustment.
        let mut order = [0u8, 1, 2];
        for last in (1..order.len()).rev() {
            let chosen = rng.below(last as u64 + 1) as usize;
            order.swap(last, chosen);
        }
        for which in order {
            let strength = [brightness, contrast, saturation][which as usize];
            if strength > 0.0 {
                draw.jitter[draw.jitter_count] = (which, uniform(rng, (1.0 - strength).max(0.0), 1.0 + strength));
                draw.jitter_count += 1;
            }
        }
    }
    draw
}

/// Reusable buffers of one worker: the resizer keeps its convolution coefficients' storage.
#[derive(Default)]
pub struct TransformScratch {
    resizer: Resizer,
    cropped: Vec<u8>,
    resized: Vec<u8>,
}

impl TransformScratch {
    /// The `crop` of `image`, resized to `out_width × out_height`. The crop is copied out
    /// first, as torchvision's `img.crop(...).resize(...)` does: a resizer cropping on its own
    /// reads the filter's support beyond the crop's edges, which Pillow clamps at them.
    fn resize(&mut self, image: &RgbPixels, crop: CropBox, out_width: u32, out_height: u32) -> &[u8] {
        let whole = crop == CropBox { top: 0, left: 0, height: image.height, width: image.width };
        let source = if whole {
            ImageRef::new(image.width, image.height, &image.pixels, PixelType::U8x3)
        } else {
            self.cropped.clear();
            let row_bytes = image.width as usize * 3;
            for row in crop.top..crop.top + crop.height {
                let start = row as usize * row_bytes + crop.left as usize * 3;
                self.cropped.extend_from_slice(&image.pixels[start..start + crop.width as usize * 3]);
            }
            ImageRef::new(crop.width, crop.height, &self.cropped, PixelType::U8x3)
        }
        .expect("RGB pixels fill width × height × 3");
        self.resized.resize(out_width as usize * out_height as usize * 3, 0);
        let mut target = Image::from_slice_u8(out_width, out_height, &mut self.resized, PixelType::U8x3).expect("buffer sized above");
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        self.resizer.resize(&source, &mut target, &options).expect("same pixel type on both sides");
        &self.resized
    }
}

/// The crop of `draw`, resized to `size × size`, flipped and jittered as drawn, into `out`
/// (`[3, size, size]`).
pub fn apply_train(image: &RgbPixels, draw: &TrainDraw, size: u32, scratch: &mut TransformScratch, out: &mut [u8]) {
    let mut pixels = scratch.resize(image, draw.crop, size, size).to_vec();
    if draw.flip {
        flip_horizontally(&mut pixels, size as usize, size as usize);
    }
    for &(which, factor) in &draw.jitter[..draw.jitter_count] {
        match which {
            0 => adjust_brightness(&mut pixels, factor),
            1 => adjust_contrast(&mut pixels, factor),
            _ => adjust_saturation(&mut pixels, factor),
        }
    }
    to_channels_first(&pixels, out);
}

/// torchvision's `Resize(resize)` (shorter side to `resize`, the longer
/// `int(resize · long / short)`), then `CenterCrop(size)`, into `out` (`[3, size, size]`).
pub fn apply_eval(image: &RgbPixels, resize: u32, size: u32, scratch: &mut TransformScratch, out: &mut [u8]) {
    let (width, height) = (image.width, image.height);
    let (new_width, new_height) = if width <= height {
        (resize, (f64::from(resize) * f64::from(height) / f64::from(width)) as u32)
    } else {
        ((f64::from(resize) * f64::from(width) / f64::from(height)) as u32, resize)
    };
    let whole = CropBox { top: 0, left: 0, height, width };
    let resized = scratch.resize(image, whole, new_width, new_height);
    let resized = RgbPixels { width: new_width, height: new_height, pixels: resized.to_vec() };
    to_channels_first(&center_crop(&resized, size), out);
}

/// torchvision's `CenterCrop`: offsets `int(round((side − size) / 2))`, zero padding where the
/// image is smaller than the crop. Returns the `size × size × 3` pixels.
fn center_crop(image: &RgbPixels, size: u32) -> Vec<u8> {
    let size_usize = size as usize;
    let mut out = vec![0u8; size_usize * size_usize * 3];
    // torchvision pads a smaller image by `(size − side) // 2` before its top/left edge.
    let offset = |side: u32| {
        if side >= size {
            round_half_even((f64::from(side) - f64::from(size)) / 2.0) as i64
        } else {
            -(i64::from(size - side) / 2)
        }
    };
    let (top, left) = (offset(image.height), offset(image.width));
    for row in 0..size_usize {
        let source_row = top + row as i64;
        if source_row < 0 || source_row >= i64::from(image.height) {
            continue;
        }
        for column in 0..size_usize {
            let source_column = left + column as i64;
            if source_column < 0 || source_column >= i64::from(image.width) {
                continue;
            }
            let from = (source_row as usize * image.width as usize + source_column as usize) * 3;
            let to = (row * size_usize + column) * 3;
            out[to..to + 3].copy_from_slice(&image.pixels[from..from + 3]);
        }
    }
    out
}

fn flip_horizontally(pixels: &mut [u8], width: usize, height: usize) {
    for row in pixels.chunks_exact_mut(width * 3).take(height) {
        for column in 0..width / 2 {
            let mirrored = width - 1 - column;
            for channel in 0..3 {
                row.swap(column * 3 + channel, mirrored * 3 + channel);
            }
        }
    }
}

/// Pillow's `Image.blend(degenerate, image, factor)`: `degenerate + factor · (image −
/// degenerate)` in float, clipped and truncated to 8 bits.
fn blend(pixel: u8, degenerate: u8, factor: f64) -> u8 {
    let value = f32::from(degenerate) + factor as f32 * (f32::from(pixel) - f32::from(degenerate));
    value.clamp(0.0, 255.0) as u8
}

/// Pillow's `convert("L")`: ITU-R 601-2 luma with its fixed-point rounding.
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((u32::from(r) * 19595 + u32::from(g) * 38470 + u32::from(b) * 7471 + 0x8000) >> 16) as u8
}

/// `ImageEnhance.Brightness`: blend with black.
fn adjust_brightness(pixels: &mut [u8], factor: f64) {
    for value in pixels.iter_mut() {
        *value = blend(*value, 0, factor);
    }
}

/// `ImageEnhance.Contrast`: blend with the mean grey level (of the luma, rounded).
fn adjust_contrast(pixels: &mut [u8], factor: f64) {
    let count = (pixels.len() / 3).max(1);
    let sum: u64 = pixels.chunks_exact(3).map(|p| u64::from(luma(p[0], p[1], p[2]))).sum();
    let mean = (sum as f64 / count as f64 + 0.5) as u8;
    for value in pixels.iter_mut() {
        *value = blend(*value, mean, factor);
    }
}

/// `ImageEnhance.Color`: blend with the image's own luma.
fn adjust_saturation(pixels: &mut [u8], factor: f64) {
    for pixel in pixels.chunks_exact_mut(3) {
        let grey = luma(pixel[0], pixel[1], pixel[2]);
        for value in pixel.iter_mut() {
            *value = blend(*value, grey, factor);
        }
    }
}

/// `[H, W, 3]` to `[3, H, W]`.
fn to_channels_first(pixels: &[u8], out: &mut [u8]) {
    let plane = pixels.len() / 3;
    assert_eq!(out.len(), pixels.len(), "the output holds one image");
    for (index, pixel) in pixels.chunks_exact(3).enumerate() {
        out[index] = pixel[0];
        out[plane + index] = pixel[1];
        out[2 * plane + index] = pixel[2];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_rounding_is_half_to_even() {
        assert_eq!([0.5, 1.5, 2.5, -0.5, 2.4, 2.6].map(round_half_even), [0.0, 2.0, 2.0, -0.0, 2.0, 3.0]);
    }

    #[test]
    fn crop_boxes_stay_inside_the_image_and_within_the_scale_and_ratio() {
        let mut rng = SeededRng::new(3);
        for (width, height) in [(500, 375), (375, 500), (32, 32), (1000, 20)] {
            for _ in 0..500 {
                let crop = random_resized_crop_box(width, height, (0.08, 1.0), (0.75, 4.0 / 3.0), &mut rng);
                assert!(crop.width >= 1 && crop.height >= 1);
                assert!(crop.left + crop.width <= width && crop.top + crop.height <= height, "{crop:?} in {width}x{height}");
            }
        }
    }

    #[test]
    fn a_very_wide_image_falls_back_to_the_centre_crop_at_the_widest_ratio() {
        // 1000 × 20: no area share of at least 8 % fits a ratio of at most 4/3 in 20 rows.
        let crop = random_resized_crop_box(1000, 20, (0.08, 1.0), (0.75, 4.0 / 3.0), &mut SeededRng::new(1));
        assert_eq!(crop, CropBox { top: 0, left: (1000 - 27) / 2, height: 20, width: 27 });
    }

    #[test]
    fn flips_mirror_each_row() {
        let mut pixels: Vec<u8> = (0..2 * 3 * 3).map(|v| v as u8).collect();
        flip_horizontally(&mut pixels, 3, 2);
        assert_eq!(&pixels[..9], &[6, 7, 8, 3, 4, 5, 0, 1, 2]);
    }

    #[test]
    fn jitter_factors_stay_in_their_ranges_and_every_adjustment_runs_once() {
        let transforms = ImageTransforms::imagenet(8, ColorJitter { brightness: 0.4, contrast: 0.0, saturation: 0.5 });
        let mut rng = SeededRng::new(9);
        for _ in 0..200 {
            let draw = draw_train(&transforms, 20, 20, &mut rng);
            assert_eq!(draw.jitter_count, 2);
            let mut seen: Vec<u8> = draw.jitter[..2].iter().map(|&(which, _)| which).collect();
            seen.sort();
            assert_eq!(seen, vec![0, 2]);
            for &(which, factor) in &draw.jitter[..2] {
                let strength = if which == 0 { 0.4 } else { 0.5 };
                assert!((1.0 - strength..=1.0 + strength).contains(&factor));
            }
        }
    }
}
