//! Users' own images in torchvision's `ImageFolder` layout: one folder per class, class index
//! by sorted folder name, files found recursively and taken in sorted order (`os.walk`,
//! sorted, as torchvision's `make_dataset` does), so index `i` names the same image in both.
//!
//! Only the file list lives in memory; pixels are decoded batch by batch by the streaming
//! loader ([`crate::stream`]). Decoding takes the format from the file's content, as PIL does
//! (a PNG named `.jpg` still decodes), and converts every JPEG and PNG colour type to 8-bit RGB.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::{DynamicImage, ImageFormat, ImageReader};
use serde::{Deserialize, Serialize};
use tch::Device;

use super::DataError;

/// File name extensions taken as images (compared without case). torchvision also lists
/// `.ppm .bmp .pgm .tif .tiff .webp`; those are not decoded here and are reported by
/// `splitnas data check` as ignored.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];

/// One image and its class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFile {
    pub path: PathBuf,
    pub label: i64,
}

/// What a scan of one `ImageFolder` directory found.
#[derive(Debug, Clone)]
pub struct FolderScan {
    pub root: PathBuf,
    /// Sorted folder names; a class's index is its position here.
    pub class_names: Vec<String>,
    pub files: Vec<ImageFile>,
    /// Files inside class folders whose extension is not one of [`IMAGE_EXTENSIONS`].
    pub ignored: Vec<PathBuf>,
}

/// Lists `root`'s classes and images. Fails naming the folder when it holds no class folder,
/// or when a class folder holds no image (torchvision refuses both too).
pub fn scan_image_folder(root: &Path) -> Result<FolderScan, DataError> {
    let entries = std::fs::read_dir(root).map_err(|source| DataError::io(root, source))?;
    let mut class_names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| DataError::io(root, source))?;
        // Follows symbolic links, as torchvision's `entry.is_dir()` does.
        if entry.path().is_dir() {
            class_names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    class_names.sort();
    if class_names.is_empty() {
        return Err(DataError::MissingFiles {
            path: root.to_path_buf(),
            what: "class folder".to_string(),
            hint: "an image folder holds one sub-folder per class, each with that class's JPEG or PNG images (torchvision's ImageFolder layout)"
                .to_string(),
        });
    }
    let mut files = Vec::new();
    let mut ignored = Vec::new();
    for (label, class) in class_names.iter().enumerate() {
        let class_dir = root.join(class);
        let mut found = Vec::new();
        walk_sorted(&class_dir, &mut found)?;
        let before = files.len();
        for path in found {
            if has_image_extension(&path) {
                files.push(ImageFile { path, label: label as i64 });
            } else {
                ignored.push(path);
            }
        }
        if files.len() == before {
            return Err(DataError::MissingFiles {
                path: class_dir,
                what: format!("image ({})", IMAGE_EXTENSIONS.iter().map(|e| format!(".{e}")).collect::<Vec<_>>().join(", ")),
                hint: format!("class `{class}` needs at least one image; remove the folder or add images"),
            });
        }
    }
    Ok(FolderScan { root: root.to_path_buf(), class_names, files, ignored })
}

/// Every file under `dir`, directories in sorted order of their path and files sorted by name
/// within each, as `sorted(os.walk(dir))` with `sorted(fnames)` gives.
fn walk_sorted(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), DataError> {
    let mut directories = vec![dir.to_path_buf()];
    let mut index = 0;
    while index < directories.len() {
        let current = directories[index].clone();
        for entry in std::fs::read_dir(&current).map_err(|source| DataError::io(&current, source))? {
            let path = entry.map_err(|source| DataError::io(&current, source))?.path();
            if path.is_dir() {
                directories.push(path);
            }
        }
        index += 1;
    }
    directories.sort_by(|a, b| a.to_string_lossy().cmp(&b.to_string_lossy()));
    for directory in directories {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&directory)
            .map_err(|source| DataError::io(&directory, source))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| !path.is_dir())
            .collect();
        names.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        found.extend(names);
    }
    Ok(())
}

fn has_image_extension(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|known| e.eq_ignore_ascii_case(known)))
}

/// A decoded image: 8-bit RGB, rows top to bottom, `[height, width, 3]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbPixels {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

/// Why an image could not be used; the path is added by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableImage {
    pub path: PathBuf,
    pub reason: String,
}

/// Decodes a JPEG or PNG (the format read from the content) to 8-bit RGB:
/// - grayscale is replicated to three channels, alpha is dropped (PIL's `convert("RGB")`);
/// - CMYK and YCCK JPEGs are converted to RGB by the decoder (Adobe-inverted as written by
///   Photoshop and PIL);
/// - palette PNGs are expanded; 16-bit PNGs are scaled to 8 bits (`v · 255 / 65535`, rounded).
///   PIL differs there: it opens 16-bit grayscale as 32-bit integers and clips them at 255.
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbPixels, String> {
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|error| error.to_string())?;
    match reader.format() {
        Some(ImageFormat::Jpeg | ImageFormat::Png) => {}
        Some(other) => return Err(format!("it is a {other:?} image; only JPEG and PNG are read (convert it, or remove it)")),
        None if bytes.is_empty() => return Err("the file is empty".to_string()),
        None => return Err("it is neither a JPEG nor a PNG image (unrecognised content)".to_string()),
    }
    if reader.format() == Some(ImageFormat::Jpeg) && !jpeg_has_end_after_last_scan(bytes) {
        return Err("corrupt or truncated image: the JPEG ends inside its last scan (no end-of-image marker after it)".to_string());
    }
    let image = reader.decode().map_err(|error| format!("corrupt or truncated image: {error}"))?;
    let rgb = match image {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    };
    let (width, height) = rgb.dimensions();
    if width == 0 || height == 0 {
        return Err("the image has no pixels".to_string());
    }
    Ok(RgbPixels { width, height, pixels: rgb.into_raw() })
}

/// Whether an end-of-image marker (`FF D9`) follows the last start-of-scan (`FF DA`). The JPEG
/// decoder fills a cut-off scan with grey rather than failing (PIL refuses such files); inside
/// entropy-coded data a literal `FF` is always followed by `00` or a restart marker, so the
/// last `FF DA` is the last scan's header, an EXIF thumbnail's markers come before it, and a
/// complete file has `FF D9` after it.
fn jpeg_has_end_after_last_scan(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|pair| pair == [0xFF, 0xDA]);
    match last_scan {
        Some(scan) => bytes[scan..].windows(2).any(|pair| pair == [0xFF, 0xD9]),
        None => false,
    }
}

/// Reads and decodes the image at `path`.
pub fn read_rgb(path: &Path) -> Result<RgbPixels, UnreadableImage> {
    let unreadable = |reason: String| UnreadableImage { path: path.to_path_buf(), reason };
    let bytes = std::fs::read(path).map_err(|error| unreadable(format!("cannot read it: {error}")))?;
    decode_rgb(&bytes).map_err(unreadable)
}

/// Colour jitter on training images: each factor is drawn from `[max(0, 1 − x), 1 + x]` and
/// the three adjustments run in a random order, as torchvision's `ColorJitter` (hue is not
/// offered).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ColorJitter {
    pub brightness: f64,
    pub contrast: f64,
    pub saturation: f64,
}

impl ColorJitter {
    pub fn is_identity(&self) -> bool {
        self.brightness == 0.0 && self.contrast == 0.0 && self.saturation == 0.0
    }
}

/// How an image-folder split turns files into network inputs: ImageNet's transforms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageTransforms {
    /// Side of the square network input.
    pub image_size: u32,
    /// Training crops: `RandomResizedCrop(image_size, scale, ratio)`.
    pub scale: (f64, f64),
    pub ratio: (f64, f64),
    pub horizontal_flip: bool,
    pub color_jitter: ColorJitter,
}

impl ImageTransforms {
    /// torchvision's `RandomResizedCrop` defaults and a horizontal flip.
    pub fn imagenet(image_size: u32, color_jitter: ColorJitter) -> Self {
        ImageTransforms { image_size, scale: (0.08, 1.0), ratio: (3.0 / 4.0, 4.0 / 3.0), horizontal_flip: true, color_jitter }
    }

    /// Evaluation resizes the shorter side to `ceil(image_size · 256 / 224)` (256 for 224,
    /// as OFA's `ceil(size / 0.875)`) before the centre crop.
    pub fn eval_resize(&self) -> u32 {
        (self.image_size * 256).div_ceil(224)
    }
}

/// Images of one split of an image folder: the files, their classes, and where batches go.
#[derive(Debug, Clone)]
pub struct ImageFiles {
    /// E.g. `image-folder/train`; used in messages.
    pub name: String,
    pub files: Arc<Vec<ImageFile>>,
    pub class_names: Arc<Vec<String>>,
    pub transforms: ImageTransforms,
    /// The device batches are served on.
    pub device: Device,
}

impl ImageFiles {
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    pub fn label_vec(&self) -> Vec<i64> {
        self.files.iter().map(|file| file.label).collect()
    }

    /// The files at `indices`, in that order.
    pub fn subset(&self, name: impl Into<String>, indices: &[i64]) -> ImageFiles {
        let files = indices.iter().map(|&index| self.files[index as usize].clone()).collect();
        ImageFiles { name: name.into(), files: Arc::new(files), ..self.clone() }
    }

    /// `parts` one after another (the splits of one folder: same classes and transforms).
    pub fn concat(name: impl Into<String>, parts: &[&ImageFiles]) -> ImageFiles {
        let first = parts.first().expect("at least one part to concatenate");
        let files = parts.iter().flat_map(|part| part.files.iter().cloned()).collect();
        ImageFiles { name: name.into(), files: Arc::new(files), ..(*first).clone() }
    }
}
