//! CIFAR-10 and CIFAR-100, binary and python-pickle batches.
//!
//! Binary: records of label byte(s) and 3,072 pixel bytes (R, G, B planes, 32×32 row-major),
//! one after another. The record count comes from the file length: `tch::vision::cifar`
//! insists on 10,000, which rejects every subset and test copy.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files::{locate_dir, numbered_files, read_whole_file};
use super::pickle::{read_pickle_dict, DecodedArray};
use super::{DataError, Dataset, ImageRecords};

pub const CIFAR_IMAGE_SHAPE: [usize; 3] = [3, 32, 32];
const CIFAR_IMAGE_BYTES: usize = 3 * 32 * 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarVariant {
    Cifar10,
    Cifar100,
}

impl CifarVariant {
    pub fn num_classes(self) -> usize {
        match self {
            CifarVariant::Cifar10 => 10,
            CifarVariant::Cifar100 => 100,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CifarVariant::Cifar10 => "cifar10",
            CifarVariant::Cifar100 => "cifar100",
        }
    }

    /// CIFAR-100 records start with the coarse label, then the fine one; we train on fine.
    fn label_bytes(self) -> usize {
        match self {
            CifarVariant::Cifar10 => 1,
            CifarVariant::Cifar100 => 2,
        }
    }

    pub fn binary_record_bytes(self) -> usize {
        self.label_bytes() + CIFAR_IMAGE_BYTES
    }

    fn pickle_label_key(self) -> &'static str {
        match self {
            CifarVariant::Cifar10 => "labels",
            CifarVariant::Cifar100 => "fine_labels",
        }
    }
}

/// How a data set's files are stored, where a data set has more than one way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileFormat {
    /// Whichever the directory holds.
    #[default]
    Auto,
    /// CIFAR `*.bin` batches.
    Binary,
    /// CIFAR python-pickle batches.
    Pickle,
}

/// Reads one binary batch (`data_batch_1.bin`, `test_batch.bin`, CIFAR-100's `train.bin`, ...).
pub fn read_cifar_binary_batch(path: &Path, variant: CifarVariant) -> Result<ImageRecords, DataError> {
    decode_cifar_binary(&read_whole_file(path)?, variant, path)
}

/// Decodes binary-batch bytes; `path` only names the source in errors.
pub fn decode_cifar_binary(bytes: &[u8], variant: CifarVariant, path: &Path) -> Result<ImageRecords, DataError> {
    let record_bytes = variant.binary_record_bytes();
    if bytes.is_empty() {
        return Err(DataError::bad_file(path, "the file is empty; download it again"));
    }
    // A binding, not `is_multiple_of`: that needs Rust 1.87 and the workspace supports 1.85.
    let leftover = bytes.len() % record_bytes;
    if leftover != 0 {
        return Err(DataError::bad_file(
            path,
            format!(
                "size {} bytes is not a multiple of the {record_bytes}-byte {} record ({} records and {} bytes left over): \
                 the file is truncated or not a {} binary batch (is data.dataset right?)",
                bytes.len(),
                variant.name(),
                bytes.len() / record_bytes,
                leftover,
                variant.name()
            ),
        ));
    }
    let count = bytes.len() / record_bytes;
    let mut records = ImageRecords::new(CIFAR_IMAGE_SHAPE);
    records.pixels.reserve_exact(count * CIFAR_IMAGE_BYTES);
    records.labels.reserve_exact(count);
    for (index, record) in bytes.chunks_exact(record_bytes).enumerate() {
        let label = record[variant.label_bytes() - 1] as usize;
        check_label(path, index, label as i64, variant.num_classes())?;
        records.labels.push(label as i64);
        records.pixels.extend_from_slice(&record[variant.label_bytes()..]);
    }
    Ok(records)
}

/// Reads one python-pickle batch (`data_batch_1`, `test_batch`, CIFAR-100's `train`/`test`),
/// Python 2 (byte-string keys) or Python 3.
pub fn read_cifar_pickle_batch(path: &Path, variant: CifarVariant) -> Result<ImageRecords, DataError> {
    let mut dict = read_pickle_dict(path)?;
    let data = dict.take_array("data")?;
    let labels = dict.take_array(variant.pickle_label_key())?.into_labels(path, variant.pickle_label_key())?;
    let pixels = images_from_rows(path, "data", data, CIFAR_IMAGE_SHAPE, labels.len())?;
    for (index, &label) in labels.iter().enumerate() {
        check_label(path, index, label, variant.num_classes())?;
    }
    Ok(ImageRecords { pixels, labels, image_shape: CIFAR_IMAGE_SHAPE })
}

/// Checks a pickled image array (rows of C·H·W bytes, or `[N, C, H, W]`) against `count`
/// labels and returns its bytes.
pub(crate) fn images_from_rows(path: &Path, key: &str, array: DecodedArray, image_shape: [usize; 3], count: usize) -> Result<Vec<u8>, DataError> {
    let image_bytes: usize = image_shape.iter().product();
    let shape = array.shape.clone();
    let as_rows = shape.len() == 2 && shape[1] == image_bytes;
    let as_images = shape.len() == 4 && shape[1..] == image_shape[..];
    if !(as_rows || as_images) {
        return Err(DataError::bad_file(
            path,
            format!(
                "`{key}` has shape {shape:?}; expected [N, {image_bytes}] or [N, {}, {}, {}] ({}×{}×{} images)",
                image_shape[0], image_shape[1], image_shape[2], image_shape[0], image_shape[1], image_shape[2]
            ),
        ));
    }
    if shape[0] != count {
        return Err(DataError::bad_file(path, format!("`{key}` holds {} images but there are {count} labels", shape[0])));
    }
    array.into_bytes(path, key)
}

pub(crate) fn check_label(path: &Path, index: usize, label: i64, num_classes: usize) -> Result<(), DataError> {
    if label < 0 || label >= num_classes as i64 {
        return Err(DataError::bad_file(
            path,
            format!("record {index} has label {label}, outside 0..{num_classes}: the file is corrupt or from another data set"),
        ));
    }
    Ok(())
}

const CIFAR10_BINARY_DIRS: [&str; 1] = ["cifar-10-batches-bin"];
const CIFAR10_PICKLE_DIRS: [&str; 1] = ["cifar-10-batches-py"];
const CIFAR100_BINARY_DIRS: [&str; 1] = ["cifar-100-binary"];
const CIFAR100_PICKLE_DIRS: [&str; 1] = ["cifar-100-python"];

/// Where a CIFAR directory's files are, per format: `(train files, test file)`.
fn cifar_files(dir: &Path, variant: CifarVariant, format: FileFormat) -> Result<(Vec<PathBuf>, PathBuf), DataError> {
    match (variant, format) {
        (_, FileFormat::Auto) => unreachable!("resolved by resolve_cifar_format"),
        (CifarVariant::Cifar10, FileFormat::Binary) => {
            let dir = locate_dir(dir, &CIFAR10_BINARY_DIRS, "test_batch.bin");
            Ok((numbered_files(&dir, "data_batch_", ".bin")?, dir.join("test_batch.bin")))
        }
        (CifarVariant::Cifar10, FileFormat::Pickle) => {
            let dir = locate_dir(dir, &CIFAR10_PICKLE_DIRS, "test_batch");
            Ok((numbered_files(&dir, "data_batch_", "")?, dir.join("test_batch")))
        }
        (CifarVariant::Cifar100, FileFormat::Binary) => {
            let dir = locate_dir(dir, &CIFAR100_BINARY_DIRS, "test.bin");
            Ok((vec![dir.join("train.bin")], dir.join("test.bin")))
        }
        (CifarVariant::Cifar100, FileFormat::Pickle) => {
            let dir = locate_dir(dir, &CIFAR100_PICKLE_DIRS, "test");
            Ok((vec![dir.join("train")], dir.join("test")))
        }
    }
}

/// Picks binary or pickle by which test file the directory (or its standard sub-directory) holds.
pub fn resolve_cifar_format(dir: &Path, variant: CifarVariant, format: FileFormat) -> Result<FileFormat, DataError> {
    if format != FileFormat::Auto {
        return Ok(format);
    }
    let (binary_dirs, binary_marker, pickle_dirs, pickle_marker) = match variant {
        CifarVariant::Cifar10 => (&CIFAR10_BINARY_DIRS, "test_batch.bin", &CIFAR10_PICKLE_DIRS, "test_batch"),
        CifarVariant::Cifar100 => (&CIFAR100_BINARY_DIRS, "test.bin", &CIFAR100_PICKLE_DIRS, "test"),
    };
    let has_binary = locate_dir(dir, binary_dirs, binary_marker).join(binary_marker).is_file();
    let has_pickle = locate_dir(dir, pickle_dirs, pickle_marker).join(pickle_marker).is_file();
    match (has_binary, has_pickle) {
        (true, false) => Ok(FileFormat::Binary),
        (false, true) => Ok(FileFormat::Pickle),
        (true, true) => Err(DataError::config(
            "data.format",
            format!("{} holds both binary and pickle {} files; set data.format = \"binary\" or \"pickle\"", dir.display(), variant.name()),
        )),
        (false, false) => Err(DataError::MissingFiles {
            path: dir.to_path_buf(),
            what: format!("{} files", variant.name()),
            hint: format!(
                "expected {binary_marker} (binary, from {}) or {pickle_marker} (python, from {}) there or in that sub-directory; check data.path",
                binary_dirs[0], pickle_dirs[0]
            ),
        }),
    }
}

/// The official training and test sets of CIFAR-10 or CIFAR-100 in `dir`.
pub fn load_cifar(dir: &Path, variant: CifarVariant, format: FileFormat) -> Result<(Dataset, Dataset), DataError> {
    let format = resolve_cifar_format(dir, variant, format)?;
    let (train_files, test_file) = cifar_files(dir, variant, format)?;
    let read = |path: &Path| match format {
        FileFormat::Binary => read_cifar_binary_batch(path, variant),
        _ => read_cifar_pickle_batch(path, variant),
    };
    let mut train = ImageRecords::new(CIFAR_IMAGE_SHAPE);
    for path in &train_files {
        train.append(read(path)?, path)?;
    }
    let test = read(&test_file)?;
    let name = variant.name();
    Ok((
        train.into_dataset(format!("{name}/official-train"), variant.num_classes())?,
        test.into_dataset(format!("{name}/test"), variant.num_classes())?,
    ))
}
