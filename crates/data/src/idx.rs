//! MNIST and Fashion-MNIST: IDX files, plain or gzipped.
//!
//! IDX: two zero bytes, a type byte (0x08 = unsigned byte, the only one these data sets
//! use), a dimension count, then one big-endian u32 per dimension and the raw values.
//! Whether a file is gzipped is decided by its first bytes, not its name.

use std::io::Read;
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::cifar::check_label;
use super::files::{first_existing, read_whole_file};
use super::{DataError, Dataset, ImageRecords};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const IDX_UNSIGNED_BYTE: u8 = 0x08;
/// Both MNIST variants have ten classes.
pub const MNIST_CLASSES: usize = 10;

/// A decoded IDX file: its dimensions and values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub values: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes with `expected_dims` dimensions (3 for images, 1 for labels).
#[cfg(test)]
pub fn read_idx_file(path: &Path, expected_dims: usize) -> Result<IdxArray, DataError> {
    decode_idx(&read_whole_file(path)?, expected_dims, path)
}

/// Decodes IDX bytes, gunzipping them first if they are gzipped; `path` names them in errors.
pub fn decode_idx(bytes: &[u8], expected_dims: usize, path: &Path) -> Result<IdxArray, DataError> {
    if bytes.is_empty() {
        return Err(DataError::bad_file(path, "the file is empty; download it again"));
    }
    let gunzipped;
    let bytes = if bytes.starts_with(&GZIP_MAGIC) {
        let mut buffer = Vec::new();
        MultiGzDecoder::new(bytes).read_to_end(&mut buffer).map_err(|error| {
            DataError::bad_file(path, format!("gzip data cannot be decompressed ({error}): the download is truncated or corrupt"))
        })?;
        gunzipped = buffer;
        &gunzipped[..]
    } else {
        bytes
    };
    let expected_magic = u32::from(IDX_UNSIGNED_BYTE) << 8 | expected_dims as u32;
    let header_bytes = 4 + 4 * expected_dims;
    if bytes.len() < 4 {
        return Err(DataError::bad_file(path, format!("only {} bytes: too short for an IDX header (truncated?)", bytes.len())));
    }
    let magic = u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes"));
    if magic != expected_magic {
        return Err(DataError::bad_file(
            path,
            format!(
                "bad magic number {magic:#010x}, expected {expected_magic:#010x} (IDX unsigned bytes, {expected_dims} dimension(s)): \
                 not an {} file of MNIST or Fashion-MNIST, or corrupt",
                if expected_dims == 1 { "IDX label" } else { "IDX image" }
            ),
        ));
    }
    if bytes.len() < header_bytes {
        return Err(DataError::bad_file(path, format!("{} bytes: the IDX header alone needs {header_bytes} (truncated)", bytes.len())));
    }
    let dims: Vec<usize> =
        bytes[4..header_bytes].chunks_exact(4).map(|chunk| u32::from_be_bytes(chunk.try_into().expect("4 bytes")) as usize).collect();
    let promised = dims.iter().try_fold(1usize, |total, &d| total.checked_mul(d));
    let found = bytes.len() - header_bytes;
    match promised {
        Some(promised) if promised == found => {}
        Some(promised) if promised > found => {
            return Err(DataError::bad_file(
                path,
                format!("the header promises {dims:?} = {promised} values but only {found} bytes follow: the file is truncated"),
            ))
        }
        _ => {
            return Err(DataError::bad_file(
                path,
                format!("the header promises {dims:?} values but {found} bytes follow: extra data or a corrupt header"),
            ))
        }
    }
    Ok(IdxArray { dims, values: bytes[header_bytes..].to_vec() })
}

/// Encodes unsigned bytes as an (uncompressed) IDX file: for writing test data sets.
#[cfg(test)]
pub fn encode_idx(dims: &[usize], values: &[u8]) -> Vec<u8> {
    assert_eq!(dims.iter().product::<usize>(), values.len(), "IDX dims must match the values");
    let mut bytes = vec![0, 0, IDX_UNSIGNED_BYTE, dims.len() as u8];
    for &d in dims {
        bytes.extend_from_slice(&(d as u32).to_be_bytes());
    }
    bytes.extend_from_slice(values);
    bytes
}

/// Pairs an image file with its label file; the paths name them in errors.
pub fn decode_idx_pair(
    image_bytes: &[u8],
    image_path: &Path,
    label_bytes: &[u8],
    label_path: &Path,
    num_classes: usize,
) -> Result<ImageRecords, DataError> {
    let images = decode_idx(image_bytes, 3, image_path)?;
    let labels = decode_idx(label_bytes, 1, label_path)?;
    if images.dims[0] != labels.dims[0] {
        return Err(DataError::bad_file(
            label_path,
            format!("{} labels for the {} images in {}: the files do not belong together", labels.dims[0], images.dims[0], image_path.display()),
        ));
    }
    for (index, &label) in labels.values.iter().enumerate() {
        check_label(label_path, index, i64::from(label), num_classes)?;
    }
    Ok(ImageRecords {
        pixels: images.values,
        labels: labels.values.into_iter().map(i64::from).collect(),
        image_shape: [1, images.dims[1], images.dims[2]],
    })
}

/// `{prefix}-images-idx3-ubyte` and `{prefix}-labels-idx1-ubyte` in `dir`, each plain or `.gz`
/// (also the `prefix-images.idx3-ubyte` spelling some mirrors use).
pub fn read_idx_split(dir: &Path, prefix: &str, num_classes: usize) -> Result<ImageRecords, DataError> {
    let candidates = |kind: &str| {
        let (stem, dot_stem) = (format!("{prefix}-{kind}-ubyte"), format!("{prefix}-{}-ubyte", kind.replacen('-', ".", 1)));
        vec![stem.clone(), format!("{stem}.gz"), dot_stem.clone(), format!("{dot_stem}.gz")]
    };
    let image_path = first_existing(dir, &candidates("images-idx3"))?;
    let label_path = first_existing(dir, &candidates("labels-idx1"))?;
    decode_idx_pair(&read_whole_file(&image_path)?, &image_path, &read_whole_file(&label_path)?, &label_path, num_classes)
}

/// The official training and test sets of MNIST or Fashion-MNIST in `dir` (`name` labels them).
pub fn load_mnist_like(dir: &Path, name: &str) -> Result<(Dataset, Dataset), DataError> {
    let train = read_idx_split(dir, "train", MNIST_CLASSES)?;
    let test = read_idx_split(dir, "t10k", MNIST_CLASSES)?;
    Ok((train.into_dataset(format!("{name}/official-train"), MNIST_CLASSES)?, test.into_dataset(format!("{name}/test"), MNIST_CLASSES)?))
}
