//! A generated ImageNet-like image folder (`splitnas data generate DIR`): JPEGs of about
//! ImageNet's size and quality in ImageNet's layout (`train/<class>/*.JPEG`,
//! `val/<class>/*.JPEG`, class folders named like WordNet ids: `n00000001` …), for the data
//! benchmark, the image-folder example and tests, where real ImageNet is too big to ship.
//!
//! Every class is learnable from any reasonable crop: a class owns a hue, a shape (disc,
//! square, diamond or ring) and a stripe texture (angle and period), drawn at a random place
//! and size over a random pale background with a colour gradient, plus per-pixel noise, which
//! also gives the files the entropy (and so the decode cost) of photographs rather than of
//! flat drawings. The hue wobbles per image by less than the distance to the next class's hue.
//!
//! Deterministic: image `k` of class `c` comes from `SeededRng::derive(seed, [IMAGES, c, k])`
//! and the JPEG encoder is deterministic, so the same options write the same bytes.

use std::f64::consts::PI;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::ExtendedColorType;
use serde::{Deserialize, Serialize};

use crate::SeededRng;

use super::DataError;

/// The random stream of the generated images.
const IMAGES_STREAM: u64 = 0x5359_4e54_4845; // "SYNTHE"

/// The file next to `train/` and `val/` that records how a folder was generated.
pub const SYNTHETIC_MANIFEST: &str = "generated.json";

/// What `splitnas data generate` writes. The defaults are the ImageNet-like set:
/// 2,000 JPEGs of 500×375 at quality 90 in 10 classes, a fifth of them in `val/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticOptions {
    /// Images in all, over both splits; classes get equal shares (the first ones one more
    /// when it does not divide).
    pub images: usize,
    pub classes: usize,
    pub width: u32,
    pub height: u32,
    /// JPEG quality, 1–100.
    pub quality: u8,
    pub seed: u64,
    /// Share of each class's images written to `val/` (rounded per class); the rest go to `train/`.
    pub val_fraction: f64,
}

impl Default for SyntheticOptions {
    fn default() -> Self {
        SyntheticOptions { images: 2000, classes: 10, width: 500, height: 375, quality: 90, seed: 0, val_fraction: 0.2 }
    }
}

/// What was written (or found already written).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyntheticSummary {
    pub root: PathBuf,
    pub class_names: Vec<String>,
    pub train_images: usize,
    pub val_images: usize,
    pub bytes: u64,
    /// True when `root` already held this exact set (same options) and nothing was written.
    pub already_present: bool,
}

/// The folder name of class `index`: WordNet-id-like, so that sorted order is class order.
pub fn synthetic_class_name(index: usize) -> String {
    format!("n{:08}", index + 1)
}

impl SyntheticOptions {
    pub fn validate(&self) -> Result<(), DataError> {
        let field = |name: &'static str, problem: &str| Err(DataError::config(name, problem.to_string()));
        if self.classes == 0 {
            return field("--classes", "must be at least 1");
        }
        if self.images < self.classes {
            return field("--images", &format!("must be at least --classes ({}), one image per class", self.classes));
        }
        if self.width < 8 || self.height < 8 {
            return field("--width/--height", "must be at least 8 pixels each");
        }
        if self.width > 16_384 || self.height > 16_384 {
            return field("--width/--height", "must be at most 16384 pixels each");
        }
        if self.val_fraction > 0.0 && self.images < 2 * self.classes {
            return field("--images", &format!("must be at least twice --classes ({}) with a val split: one image per class in each", self.classes));
        }
        if !(1..=100).contains(&self.quality) {
            return field("--quality", "must be between 1 and 100");
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return field("--val-fraction", "must be at least 0 and below 1");
        }
        Ok(())
    }

    /// Images of class `class` in (train, val).
    pub fn class_counts(&self, class: usize) -> (usize, usize) {
        let total = self.images / self.classes + usize::from(class < self.images % self.classes);
        // Every class has images in both splits (when there is a val split at all): a class
        // folder without images is refused, and a missing one would shift the class indices.
        let val = ((total as f64) * self.val_fraction).round() as usize;
        let val = if self.val_fraction > 0.0 { val.max(1) } else { 0 };
        let val = val.min(total - 1);
        (total - val, val)
    }
}

/// One image to write.
struct Job {
    class: usize,
    /// Index within the class, over both splits (train first); the random stream's key.
    index: usize,
    path: PathBuf,
}

/// Writes the set `options` describes under `root` (`train/`, `val/` when `val_fraction > 0`,
/// and [`SYNTHETIC_MANIFEST`]), on `threads` threads (at least 1). Refuses a non-empty `root`
/// unless it holds exactly this set already, in which case nothing is written.
pub fn generate_image_folder(root: &Path, options: &SyntheticOptions, threads: usize) -> Result<SyntheticSummary, DataError> {
    options.validate()?;
    let class_names: Vec<String> = (0..options.classes).map(synthetic_class_name).collect();
    let manifest_path = root.join(SYNTHETIC_MANIFEST);
    let (train_images, val_images) =
        (0..options.classes).map(|class| options.class_counts(class)).fold((0, 0), |(train, val), (t, v)| (train + t, val + v));
    if root.exists() {
        let mut entries = std::fs::read_dir(root).map_err(|source| DataError::io(root, source))?;
        if entries.next().is_some() {
            let existing = std::fs::read_to_string(&manifest_path).ok().and_then(|text| serde_json::from_str::<SyntheticOptions>(&text).ok());
            if existing.as_ref() == Some(options) {
                let bytes = folder_bytes(root)?;
                return Ok(SyntheticSummary { root: root.to_path_buf(), class_names, train_images, val_images, bytes, already_present: true });
            }
            return Err(DataError::BadDataset {
                name: root.display().to_string(),
                problem: match existing {
                    Some(_) => format!("holds a generated set with other options ({}); remove the folder or choose another", manifest_path.display()),
                    None => "is not empty; choose a new or empty folder (generate never overwrites files)".to_string(),
                },
            });
        }
    }
    let mut jobs = Vec::with_capacity(options.images);
    for (class, name) in class_names.iter().enumerate() {
        let (train, val) = options.class_counts(class);
        for split in ["train", "val"] {
            let count = if split == "train" { train } else { val };
            if count == 0 {
                continue;
            }
            let dir = root.join(split).join(name);
            std::fs::create_dir_all(&dir).map_err(|source| DataError::io(&dir, source))?;
        }
        for index in 0..train + val {
            let path = if index < train {
                root.join("train").join(name).join(format!("{name}_{:05}.JPEG", index + 1))
            } else {
                root.join("val").join(name).join(format!("{name}_val_{:05}.JPEG", index - train + 1))
            };
            jobs.push(Job { class, index, path });
        }
    }
    let threads = threads.max(1).min(jobs.len());
    let results: Vec<Result<u64, DataError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|worker| {
                let jobs = &jobs;
                scope.spawn(move || {
                    let mut pixels = Vec::new();
                    let mut bytes = 0;
                    for job in jobs.iter().skip(worker).step_by(threads) {
                        draw_image(options, job.class, job.index, &mut pixels);
                        bytes += write_jpeg(&job.path, &pixels, options)?;
                    }
                    Ok(bytes)
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().expect("an image generator thread does not panic")).collect()
    });
    let mut bytes = 0;
    for result in results {
        bytes += result?;
    }
    let manifest = serde_json::to_string_pretty(options).expect("options serialise");
    std::fs::write(&manifest_path, manifest + "\n").map_err(|source| DataError::io(&manifest_path, source))?;
    Ok(SyntheticSummary { root: root.to_path_buf(), class_names, train_images, val_images, bytes, already_present: false })
}

fn write_jpeg(path: &Path, pixels: &[u8], options: &SyntheticOptions) -> Result<u64, DataError> {
    let file = std::fs::File::create(path).map_err(|source| DataError::io(path, source))?;
    let mut writer = BufWriter::new(file);
    JpegEncoder::new_with_quality(&mut writer, options.quality)
        .encode(pixels, options.width, options.height, ExtendedColorType::Rgb8)
        .map_err(|error| DataError::bad_file(path, format!("cannot encode the JPEG: {error}")))?;
    let file = writer.into_inner().map_err(|error| DataError::io(path, error.into_error()))?;
    Ok(file.metadata().map_err(|source| DataError::io(path, source))?.len())
}

fn folder_bytes(dir: &Path) -> Result<u64, DataError> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(|source| DataError::io(dir, source))? {
        let entry = entry.map_err(|source| DataError::io(dir, source))?;
        let path = entry.path();
        total += if path.is_dir() { folder_bytes(&path)? } else { entry.metadata().map_err(|source| DataError::io(&path, source))?.len() };
    }
    Ok(total)
}

/// `h, s, v` in [0, 1] to 8-bit-range RGB floats.
fn hsv_to_rgb(hue: f64, saturation: f64, value: f64) -> [f64; 3] {
    let h = hue.rem_euclid(1.0) * 6.0;
    let sector = h.floor();
    let f = h - sector;
    let (p, q, t) = (value * (1.0 - saturation), value * (1.0 - saturation * f), value * (1.0 - saturation * (1.0 - f)));
    let (r, g, b) = match sector as u32 {
        0 => (value, t, p),
        1 => (q, value, p),
        2 => (p, value, t),
        3 => (p, q, value),
        4 => (t, p, value),
        _ => (value, p, q),
    };
    [r * 255.0, g * 255.0, b * 255.0]
}

/// Class `class`'s image number `index`, as `height × width × 3` RGB into `pixels`.
fn draw_image(options: &SyntheticOptions, class: usize, index: usize, pixels: &mut Vec<u8>) {
    let (width, height) = (options.width as usize, options.height as usize);
    let mut rng = SeededRng::derive(options.seed, &[IMAGES_STREAM, class as u64, index as u64]);
    let classes = options.classes as f64;
    // The class's look: hue, shape, stripe angle and period; only the hue wobbles per image.
    let hue = class as f64 / classes + (rng.unit() - 0.5) * 0.4 / classes;
    let shape = class % 4;
    let stripe_angle = (class as f64 * 0.618_034).fract() * PI;
    let stripe_period = 6.0 + (class % 3) as f64 * 7.0;
    let colour = hsv_to_rgb(hue, 0.65 + 0.3 * rng.unit(), 0.6 + 0.35 * rng.unit());
    // The object: a random centre inside the image and a radius of 20–45 % of the shorter side.
    let short = width.min(height) as f64;
    let radius = short * (0.2 + 0.25 * rng.unit());
    let centre_x = radius * 0.5 + rng.unit() * (width as f64 - radius);
    let centre_y = radius * 0.5 + rng.unit() * (height as f64 - radius);
    let stripe_phase = rng.unit() * 2.0 * PI;
    // The background: a pale random colour fading into another across the image.
    let background_from = hsv_to_rgb(rng.unit(), 0.25 * rng.unit(), 0.55 + 0.4 * rng.unit());
    let background_to = hsv_to_rgb(rng.unit(), 0.25 * rng.unit(), 0.55 + 0.4 * rng.unit());
    let gradient_angle = rng.unit() * 2.0 * PI;
    let (gradient_x, gradient_y) = (gradient_angle.cos() / width as f64, gradient_angle.sin() / height as f64);
    let (stripe_x, stripe_y) = (stripe_angle.cos() * 2.0 * PI / stripe_period, stripe_angle.sin() * 2.0 * PI / stripe_period);
    let noise = 18.0;

    pixels.clear();
    pixels.reserve(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            let (dx, dy) = (x as f64 - centre_x, y as f64 - centre_y);
            let inside = match shape {
                0 => dx * dx + dy * dy < radius * radius,
                1 => dx.abs().max(dy.abs()) < radius * 0.85,
                2 => dx.abs() + dy.abs() < radius * 1.2,
                _ => {
                    let distance = (dx * dx + dy * dy).sqrt();
                    distance < radius && distance > radius * 0.55
                }
            };
            let base = if inside {
                let stripe = 0.72 + 0.28 * (x as f64 * stripe_x + y as f64 * stripe_y + stripe_phase).sin();
                [colour[0] * stripe, colour[1] * stripe, colour[2] * stripe]
            } else {
                let t = (0.5 + (x as f64 * gradient_x + y as f64 * gradient_y)).clamp(0.0, 1.0);
                [0, 1, 2].map(|c| background_from[c] * (1.0 - t) + background_to[c] * t)
            };
            let random = rng.next_u64();
            for (channel, value) in base.iter().enumerate() {
                // Three noise values from one draw: 21 bits each, centred, ±noise.
                let bits = (random >> (channel * 21)) & 0x1f_ffff;
                let jitter = (bits as f64 / f64::from(0x1f_ffff) - 0.5) * 2.0 * noise;
                pixels.push((value + jitter).round().clamp(0.0, 255.0) as u8);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode_rgb, scan_image_folder};

    fn small() -> SyntheticOptions {
        SyntheticOptions { images: 13, classes: 3, width: 40, height: 30, quality: 85, seed: 7, val_fraction: 0.25 }
    }

    #[test]
    fn writes_an_image_folder_that_scans_and_decodes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("set");
        let summary = generate_image_folder(&root, &small(), 2).unwrap();
        // 13 over 3 classes: 5, 4, 4; a quarter of each to val, rounded: 1, 1, 1.
        assert_eq!((summary.train_images, summary.val_images), (10, 3));
        assert!(!summary.already_present);
        let train = scan_image_folder(&root.join("train")).unwrap();
        assert_eq!(train.class_names, vec!["n00000001", "n00000002", "n00000003"]);
        assert_eq!(train.files.iter().filter(|f| f.label == 0).count(), 4);
        let val = scan_image_folder(&root.join("val")).unwrap();
        assert_eq!(val.files.len(), 3);
        for file in train.files.iter().chain(&val.files) {
            assert!(file.path.to_string_lossy().ends_with(".JPEG"));
            let bytes = std::fs::read(&file.path).unwrap();
            assert_eq!(&bytes[..2], &[0xFF, 0xD8], "a JPEG");
            let image = decode_rgb(&bytes).unwrap();
            assert_eq!((image.width, image.height), (40, 30));
        }
        assert!(root.join(SYNTHETIC_MANIFEST).is_file());
    }

    #[test]
    fn the_same_seed_writes_the_same_bytes_and_another_seed_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = "train/n00000002/n00000002_00001.JPEG";
        let read = |name: &str, options: &SyntheticOptions, threads: usize| {
            generate_image_folder(&dir.path().join(name), options, threads).unwrap();
            std::fs::read(dir.path().join(name).join(file)).unwrap()
        };
        let first = read("a", &small(), 1);
        assert_eq!(first, read("b", &small(), 3), "thread count changes nothing");
        assert_ne!(first, read("c", &SyntheticOptions { seed: 8, ..small() }, 1));
    }

    #[test]
    fn classes_differ_in_colour() {
        // The mean colour of a class's images is far from another class's: a network can learn them.
        let options = SyntheticOptions { width: 64, height: 48, ..small() };
        let mut means = Vec::new();
        for class in 0..3 {
            let mut sum = [0.0f64; 3];
            let mut pixels = Vec::new();
            for index in 0..4 {
                draw_image(&options, class, index, &mut pixels);
                // Only the object's pixels carry the class: take the most saturated half.
                let mut saturated: Vec<[f64; 3]> = pixels
                    .chunks(3)
                    .map(|p| [f64::from(p[0]), f64::from(p[1]), f64::from(p[2])])
                    .filter(|p| p.iter().cloned().fold(0.0, f64::max) - p.iter().cloned().fold(255.0, f64::min) > 80.0)
                    .collect();
                assert!(saturated.len() > 50, "class {class} image {index} shows its object");
                saturated.truncate(2000);
                for p in &saturated {
                    (0..3).for_each(|c| sum[c] += p[c] / saturated.len() as f64);
                }
            }
            means.push(sum);
        }
        for a in 0..3 {
            for b in a + 1..3 {
                let distance: f64 = (0..3).map(|c| (means[a][c] - means[b][c]).powi(2)).sum::<f64>().sqrt();
                assert!(distance > 60.0, "classes {a} and {b}: {:?} vs {:?}", means[a], means[b]);
            }
        }
    }

    #[test]
    fn refuses_a_folder_with_other_content_and_accepts_its_own_set_again() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let message = generate_image_folder(dir.path(), &small(), 1).unwrap_err().to_string();
        assert!(message.contains("not empty"), "{message}");
        let root = dir.path().join("set");
        generate_image_folder(&root, &small(), 1).unwrap();
        assert!(generate_image_folder(&root, &small(), 1).unwrap().already_present);
        let message = generate_image_folder(&root, &SyntheticOptions { seed: 1, ..small() }, 1).unwrap_err().to_string();
        assert!(message.contains("other options"), "{message}");
        let message = generate_image_folder(&dir.path().join("x"), &SyntheticOptions { quality: 0, ..small() }, 1).unwrap_err().to_string();
        assert!(message.contains("--quality"), "{message}");
    }
}
