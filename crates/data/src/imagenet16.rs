//! ImageNet16-120 (NAS-Bench-201): 16×16 downsampled ImageNet, the first 120 classes.
//!
//! Pickles `train_data_batch_1..10` and `val_data`, each a dict of `data` (uint8 N×768,
//! R, G, B planes of 16×16) and `labels` (1..=1000). NB201 keeps labels 1..=120 and trains
//! on label − 1; that gives 151,700 training and 6,000 test images.

use std::path::Path;

use super::cifar::images_from_rows;
use super::files::{locate_dir, numbered_files};
use super::pickle::read_pickle_dict;
use super::{DataError, Dataset, ImageRecords};

pub const IMAGENET16_IMAGE_SHAPE: [usize; 3] = [3, 16, 16];
/// NB201's ImageNet16-120 keeps this many of the 1,000 classes.
pub const IMAGENET16_120_CLASSES: usize = 120;
const IMAGENET_CLASSES: i64 = 1000;

/// Reads one pickle and keeps the records whose label is in `1..=max_label`, as label − 1.
pub fn read_imagenet16_batch(path: &Path, max_label: usize) -> Result<ImageRecords, DataError> {
    let mut dict = read_pickle_dict(path)?;
    let data = dict.take_array("data")?;
    let labels = dict.take_array("labels")?.into_labels(path, "labels")?;
    let pixels = images_from_rows(path, "data", data, IMAGENET16_IMAGE_SHAPE, labels.len())?;
    let image_bytes: usize = IMAGENET16_IMAGE_SHAPE.iter().product();
    let mut records = ImageRecords::new(IMAGENET16_IMAGE_SHAPE);
    for (index, (&label, image)) in labels.iter().zip(pixels.chunks_exact(image_bytes)).enumerate() {
        if !(1..=IMAGENET_CLASSES).contains(&label) {
            return Err(DataError::bad_file(
                path,
                format!("record {index} has label {label}; ImageNet16 labels run from 1 to {IMAGENET_CLASSES}: the file is corrupt or not an ImageNet16 batch"),
            ));
        }
        if label <= max_label as i64 {
            records.labels.push(label - 1);
            records.pixels.extend_from_slice(image);
        }
    }
    Ok(records)
}

/// The official training and validation sets (NB201 uses `val_data` as the test set).
pub fn load_imagenet16(dir: &Path, num_classes: usize) -> Result<(Dataset, Dataset), DataError> {
    let dir = locate_dir(dir, &["ImageNet16"], "val_data");
    let mut train = ImageRecords::new(IMAGENET16_IMAGE_SHAPE);
    for path in numbered_files(&dir, "train_data_batch_", "")? {
        train.append(read_imagenet16_batch(&path, num_classes)?, &path)?;
    }
    let test = read_imagenet16_batch(&dir.join("val_data"), num_classes)?;
    let name = format!("imagenet16-{num_classes}");
    Ok((train.into_dataset(format!("{name}/official-train"), num_classes)?, test.into_dataset(format!("{name}/test"), num_classes)?))
}
