//! Small synthetic files in every format, read back; broken files; splits, transforms, loaders.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_pickle::{HashableValue, SerOptions, Value};
use tch::{Device, Kind, Tensor};

use super::*;
use crate::cifar::*;
use crate::embedded::*;
use crate::idx::*;
use crate::imagenet16::*;
use crate::split::*;

/// Pixel `j` of record `r` in every fixture (the pickle generator uses the same formula).
fn fixture_pixel(record: usize, j: usize) -> u8 {
    ((record * 31 + j * 7) % 256) as u8
}

fn fixture_pixels(records: &[usize], per_record: usize) -> Vec<u8> {
    records.iter().flat_map(|&r| (0..per_record).map(move |j| fixture_pixel(r, j))).collect()
}

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data").join(name)
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write test file");
    path
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}

/// CIFAR binary records: `labels[i]` is (coarse, fine) for CIFAR-100, the label for CIFAR-10.
fn cifar_binary_bytes(variant: CifarVariant, labels: &[(u8, u8)], first_record: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (i, &(coarse, fine)) in labels.iter().enumerate() {
        if variant == CifarVariant::Cifar100 {
            bytes.push(coarse);
        }
        bytes.push(fine);
        bytes.extend(fixture_pixels(&[first_record + i], 3072));
    }
    bytes
}

fn expect_error<T: std::fmt::Debug>(result: Result<T, DataError>, fragments: &[&str]) -> String {
    let message = result.expect_err("expected an error").to_string();
    for fragment in fragments {
        assert!(message.contains(fragment), "error {message:?} should mention {fragment:?}");
    }
    message
}

/// `count` images, 1 channel 4×4, image i filled with value i, label i % classes.
fn synthetic_dataset(count: usize, classes: usize) -> Dataset {
    let pixels: Vec<u8> = (0..count).flat_map(|i| std::iter::repeat_n(i as u8, 16)).collect();
    let labels: Vec<i64> = (0..count).map(|i| (i % classes) as i64).collect();
    ImageRecords { pixels, labels, image_shape: [1, 4, 4] }.into_dataset("synthetic/official-train", classes).unwrap()
}

/// Turns normalisation into the identity on 0..255 values, so batches show raw pixels.
fn identity_normalization(channels: usize) -> Normalization {
    Normalization { mean: vec![0.0; channels], std: vec![1.0 / 255.0; channels] }
}

fn same(a: &Tensor, b: &Tensor) -> bool {
    a.size() == b.size() && a.equal(b)
}

// ---- CIFAR binary ----

#[test]
fn cifar10_binary_with_three_records_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "data_batch_1.bin", &cifar_binary_bytes(CifarVariant::Cifar10, &[(0, 3), (0, 0), (0, 9)], 0));
    let records = read_cifar_binary_batch(&path, CifarVariant::Cifar10).unwrap();
    assert_eq!(records.labels, vec![3, 0, 9]);
    assert_eq!(records.pixels, fixture_pixels(&[0, 1, 2], 3072));
    assert_eq!(records.image_shape, [3, 32, 32]);
}

#[test]
fn cifar100_binary_keeps_the_fine_label() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "train.bin", &cifar_binary_bytes(CifarVariant::Cifar100, &[(19, 99), (4, 0)], 0));
    let records = read_cifar_binary_batch(&path, CifarVariant::Cifar100).unwrap();
    assert_eq!(records.labels, vec![99, 0]);
    assert_eq!(records.pixels, fixture_pixels(&[0, 1], 3072));
}

#[test]
fn cifar_binary_truncated_empty_and_bad_label_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = cifar_binary_bytes(CifarVariant::Cifar10, &[(0, 1), (0, 2)], 0);
    bytes.truncate(bytes.len() - 5);
    let truncated = write_file(dir.path(), "truncated.bin", &bytes);
    expect_error(read_cifar_binary_batch(&truncated, CifarVariant::Cifar10), &["truncated.bin", "not a multiple", "3073"]);

    let empty = write_file(dir.path(), "empty.bin", &[]);
    expect_error(read_cifar_binary_batch(&empty, CifarVariant::Cifar10), &["empty.bin", "empty"]);

    let bad_label = write_file(dir.path(), "bad_label.bin", &cifar_binary_bytes(CifarVariant::Cifar10, &[(0, 1), (0, 10)], 0));
    expect_error(read_cifar_binary_batch(&bad_label, CifarVariant::Cifar10), &["bad_label.bin", "record 1", "label 10"]);

    // A CIFAR-100 file read as CIFAR-10: 3074-byte records do not divide into 3073.
    let hundred = write_file(dir.path(), "train.bin", &cifar_binary_bytes(CifarVariant::Cifar100, &[(1, 2), (3, 4)], 0));
    expect_error(read_cifar_binary_batch(&hundred, CifarVariant::Cifar10), &["train.bin", "not a multiple"]);

    let missing = dir.path().join("absent.bin");
    expect_error(read_cifar_binary_batch(&missing, CifarVariant::Cifar10), &["absent.bin"]);
}

#[test]
fn cifar10_binary_directory_reads_all_numbered_batches() {
    let root = tempfile::tempdir().unwrap();
    // The user points at the folder the archive was unpacked in.
    let dir = root.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&dir).unwrap();
    write_file(&dir, "data_batch_1.bin", &cifar_binary_bytes(CifarVariant::Cifar10, &[(0, 1), (0, 2), (0, 3)], 0));
    write_file(&dir, "data_batch_2.bin", &cifar_binary_bytes(CifarVariant::Cifar10, &[(0, 4), (0, 5)], 3));
    write_file(&dir, "test_batch.bin", &cifar_binary_bytes(CifarVariant::Cifar10, &[(0, 7)], 9));
    let (train, test) = load_cifar(root.path(), CifarVariant::Cifar10, FileFormat::Auto).unwrap();
    assert_eq!(train.images.size(), [5, 3, 32, 32]);
    assert_eq!(train.label_vec(), vec![1, 2, 3, 4, 5]);
    let expected = Tensor::from_slice(&fixture_pixels(&[0, 1, 2, 3, 4], 3072)).view([5, 3, 32, 32]);
    assert!(same(&train.images, &expected));
    assert_eq!(test.label_vec(), vec![7]);
    assert_eq!(train.num_classes, 10);

    // A gap in the numbering means a file went missing.
    write_file(&dir, "data_batch_4.bin", &cifar_binary_bytes(CifarVariant::Cifar10, &[(0, 1)], 0));
    expect_error(load_cifar(&dir, CifarVariant::Cifar10, FileFormat::Binary), &["data_batch_3.bin"]);
}

#[test]
fn cifar_format_detection_needs_one_format() {
    let dir = tempfile::tempdir().unwrap();
    expect_error(resolve_cifar_format(dir.path(), CifarVariant::Cifar10, FileFormat::Auto), &["test_batch.bin", "test_batch"]);
    write_file(dir.path(), "test_batch", b"x");
    assert_eq!(resolve_cifar_format(dir.path(), CifarVariant::Cifar10, FileFormat::Auto).unwrap(), FileFormat::Pickle);
    write_file(dir.path(), "test_batch.bin", b"x");
    expect_error(resolve_cifar_format(dir.path(), CifarVariant::Cifar10, FileFormat::Auto), &["data.format"]);
    assert_eq!(resolve_cifar_format(dir.path(), CifarVariant::Cifar10, FileFormat::Binary).unwrap(), FileFormat::Binary);
}

// ---- pickles ----

#[test]
fn cifar_pickle_fixtures_from_python2_and_python3_read() {
    let cases: [(&str, CifarVariant, Vec<i64>); 6] = [
        ("cifar10_py2_batch", CifarVariant::Cifar10, vec![3, 0, 9]),
        ("cifar10_py3_protocol2_batch", CifarVariant::Cifar10, vec![3, 0, 9]),
        ("cifar10_py3_protocol4_batch", CifarVariant::Cifar10, vec![3, 0, 9]),
        ("cifar10_py3_protocol2_lists_batch", CifarVariant::Cifar10, vec![3, 0, 9]),
        ("cifar100_py2_batch", CifarVariant::Cifar100, vec![99, 0, 42]),
        ("cifar100_py3_protocol5_batch", CifarVariant::Cifar100, vec![99, 0, 42]),
    ];
    for (name, variant, labels) in cases {
        let records = read_cifar_pickle_batch(&fixture_path(name), variant).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(records.labels, labels, "{name}");
        assert_eq!(records.pixels, fixture_pixels(&[0, 1, 2], 3072), "{name}");
    }
}

#[test]
fn imagenet16_fixtures_keep_the_first_120_classes_as_label_minus_one() {
    for name in ["imagenet16_py3_batch", "imagenet16_py2_batch"] {
        // Labels in the file: 1, 120, 121, 500, 7.
        let records = read_imagenet16_batch(&fixture_path(name), IMAGENET16_120_CLASSES).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(records.labels, vec![0, 119, 6], "{name}");
        assert_eq!(records.pixels, fixture_pixels(&[0, 1, 4], 768), "{name}");
        assert_eq!(records.image_shape, [3, 16, 16]);
    }
}

#[test]
fn imagenet16_directory_reads_numbered_batches_and_val_data() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = std::fs::read(fixture_path("imagenet16_py3_batch")).unwrap();
    write_file(dir.path(), "train_data_batch_1", &fixture);
    write_file(dir.path(), "train_data_batch_2", &std::fs::read(fixture_path("imagenet16_py2_batch")).unwrap());
    write_file(dir.path(), "val_data", &fixture);
    let (train, test) = load_imagenet16(dir.path(), IMAGENET16_120_CLASSES).unwrap();
    assert_eq!(train.images.size(), [6, 3, 16, 16]);
    assert_eq!(train.label_vec(), vec![0, 119, 6, 0, 119, 6]);
    assert_eq!(test.len(), 3);
    assert_eq!(train.num_classes, 120);
}

fn pickle_dict(entries: Vec<(&str, Value)>) -> Vec<u8> {
    let map: BTreeMap<HashableValue, Value> = entries.into_iter().map(|(key, value)| (HashableValue::String(key.to_string()), value)).collect();
    serde_pickle::value_to_vec(&Value::Dict(map), SerOptions::new()).unwrap()
}

fn int_list(values: &[i64]) -> Value {
    Value::List(values.iter().map(|&v| Value::I64(v)).collect())
}

#[test]
fn pickle_written_from_rust_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    // `data` as one bytes object of shape [N·3072] is not accepted: rows must be explicit.
    let rows = Value::List((0..2).map(|r| Value::Bytes(fixture_pixels(&[r], 3072))).collect());
    let path = write_file(dir.path(), "data_batch_1", &pickle_dict(vec![("data", rows), ("labels", int_list(&[5, 6]))]));
    let records = read_cifar_pickle_batch(&path, CifarVariant::Cifar10).unwrap();
    assert_eq!(records.labels, vec![5, 6]);
    assert_eq!(records.pixels, fixture_pixels(&[0, 1], 3072));
}

#[test]
fn broken_pickles_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let rows = || Value::List((0..2).map(|r| Value::Bytes(fixture_pixels(&[r], 3072))).collect());

    let no_labels = write_file(dir.path(), "no_labels", &pickle_dict(vec![("data", rows())]));
    expect_error(read_cifar_pickle_batch(&no_labels, CifarVariant::Cifar10), &["no_labels", "missing key `labels`", "data"]);

    // CIFAR-10 batch read as CIFAR-100: it has `labels`, not `fine_labels`.
    let fixture = fixture_path("cifar10_py2_batch");
    expect_error(read_cifar_pickle_batch(&fixture, CifarVariant::Cifar100), &["cifar10_py2_batch", "fine_labels"]);

    let short_rows = Value::List((0..2).map(|_| int_list(&[1, 2, 3])).collect());
    let bad_shape = write_file(dir.path(), "bad_shape", &pickle_dict(vec![("data", short_rows), ("labels", int_list(&[1, 2]))]));
    expect_error(read_cifar_pickle_batch(&bad_shape, CifarVariant::Cifar10), &["bad_shape", "shape [2, 3]", "3072"]);

    let count = write_file(dir.path(), "count", &pickle_dict(vec![("data", rows()), ("labels", int_list(&[1, 2, 3]))]));
    expect_error(read_cifar_pickle_batch(&count, CifarVariant::Cifar10), &["count", "2 images", "3 labels"]);

    let label = write_file(dir.path(), "label", &pickle_dict(vec![("data", rows()), ("labels", int_list(&[1, 12]))]));
    expect_error(read_cifar_pickle_batch(&label, CifarVariant::Cifar10), &["label", "label 12"]);

    let mut bytes = std::fs::read(&fixture).unwrap();
    bytes.truncate(bytes.len() / 2);
    let truncated = write_file(dir.path(), "truncated_batch", &bytes);
    expect_error(read_cifar_pickle_batch(&truncated, CifarVariant::Cifar10), &["truncated_batch", "pickle"]);

    let garbage = write_file(dir.path(), "garbage_batch", b"this is not a pickle at all");
    expect_error(read_cifar_pickle_batch(&garbage, CifarVariant::Cifar10), &["garbage_batch", "pickle"]);

    let empty = write_file(dir.path(), "empty_batch", &[]);
    expect_error(read_cifar_pickle_batch(&empty, CifarVariant::Cifar10), &["empty_batch", "empty"]);

    let list = write_file(dir.path(), "list_batch", &serde_pickle::value_to_vec(&int_list(&[1]), SerOptions::new()).unwrap());
    expect_error(read_cifar_pickle_batch(&list, CifarVariant::Cifar10), &["list_batch", "expected a dict"]);

    let imagenet = write_file(dir.path(), "val_data", &pickle_dict(vec![("data", Value::List(vec![])), ("labels", int_list(&[]))]));
    expect_error(read_imagenet16_batch(&imagenet, 120), &["val_data", "shape"]);
}

// ---- IDX ----

fn idx_pair(count: usize, labels: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let pixels = fixture_pixels(&(0..count).collect::<Vec<_>>(), 28 * 28);
    (encode_idx(&[count, 28, 28], &pixels), encode_idx(&[labels.len()], labels))
}

#[test]
fn idx_files_plain_and_gzipped_round_trip() {
    for gzipped in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = idx_pair(3, &[7, 0, 9]);
        let (test_images, test_labels) = idx_pair(2, &[1, 2]);
        let (pack, suffix) = if gzipped { (gzip as fn(&[u8]) -> Vec<u8>, ".gz") } else { (<[u8]>::to_vec as fn(&[u8]) -> Vec<u8>, "") };
        write_file(dir.path(), &format!("train-images-idx3-ubyte{suffix}"), &pack(&images));
        write_file(dir.path(), &format!("train-labels-idx1-ubyte{suffix}"), &pack(&labels));
        write_file(dir.path(), &format!("t10k-images-idx3-ubyte{suffix}"), &pack(&test_images));
        write_file(dir.path(), &format!("t10k-labels-idx1-ubyte{suffix}"), &pack(&test_labels));
        let (train, test) = load_mnist_like(dir.path(), "fashion-mnist").unwrap();
        assert_eq!(train.images.size(), [3, 1, 28, 28]);
        assert_eq!(train.label_vec(), vec![7, 0, 9]);
        let expected = Tensor::from_slice(&fixture_pixels(&[0, 1, 2], 784)).view([3, 1, 28, 28]);
        assert!(same(&train.images, &expected), "gzipped = {gzipped}");
        assert_eq!(test.label_vec(), vec![1, 2]);
    }
}

#[test]
fn broken_idx_files_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = idx_pair(3, &[7, 0, 9]);

    // Labels where images belong: magic 0x801 instead of 0x803.
    let swapped = write_file(dir.path(), "train-images-idx3-ubyte", &labels);
    expect_error(read_idx_file(&swapped, 3), &["train-images-idx3-ubyte", "bad magic", "0x00000801", "0x00000803"]);

    let truncated = write_file(dir.path(), "truncated-idx3-ubyte", &images[..images.len() - 10]);
    expect_error(read_idx_file(&truncated, 3), &["truncated-idx3-ubyte", "truncated"]);

    let header_only = write_file(dir.path(), "header-idx3-ubyte", &images[..6]);
    expect_error(read_idx_file(&header_only, 3), &["header-idx3-ubyte", "truncated"]);

    let mut long = images.clone();
    long.push(0);
    let trailing = write_file(dir.path(), "long-idx3-ubyte", &long);
    expect_error(read_idx_file(&trailing, 3), &["long-idx3-ubyte", "extra data"]);

    let empty = write_file(dir.path(), "empty-idx1-ubyte.gz", &[]);
    expect_error(read_idx_file(&empty, 1), &["empty-idx1-ubyte.gz", "empty"]);

    let zipped = gzip(&images);
    let corrupt_gz = write_file(dir.path(), "cut-idx3-ubyte.gz", &zipped[..zipped.len() / 2]);
    expect_error(read_idx_file(&corrupt_gz, 3), &["cut-idx3-ubyte.gz", "gzip"]);

    let (_, two_labels) = idx_pair(2, &[1, 2]);
    let image_path = Path::new("images-idx3-ubyte");
    expect_error(decode_idx_pair(&images, image_path, &two_labels, Path::new("few-labels"), 10), &["few-labels", "2 labels", "3 images"]);
    let (_, bad_labels) = idx_pair(3, &[1, 2, 10]);
    expect_error(decode_idx_pair(&images, image_path, &bad_labels, Path::new("bad-labels"), 10), &["bad-labels", "label 10"]);

    let missing = tempfile::tempdir().unwrap();
    expect_error(load_mnist_like(missing.path(), "mnist"), &["train-images-idx3-ubyte", "data.path"]);
}

// ---- embedded ----

#[test]
fn embedded_subset_is_stratified_600_and_100_per_class() {
    let (train, test) = load_embedded().unwrap();
    assert_eq!(train.images.size(), [6000, 1, 28, 28]);
    assert_eq!(test.images.size(), [1000, 1, 28, 28]);
    assert_eq!(train.class_counts(), vec![EMBEDDED_TRAIN_PER_CLASS; 10]);
    assert_eq!(test.class_counts(), vec![EMBEDDED_TEST_PER_CLASS; 10]);
    // Real images, not a blank placeholder.
    assert!(train.images.to_kind(Kind::Float).std(true).double_value(&[]) > 10.0);
}

// ---- splits ----

#[test]
fn train_valid_split_is_stratified_disjoint_and_seeded() {
    let dataset = synthetic_dataset(200, 10);
    let (train, valid) = split_train_valid(&dataset, 0.5, 7).unwrap();
    assert_eq!(train.class_counts(), vec![10; 10]);
    assert_eq!(valid.class_counts(), vec![10; 10]);
    // Image i has pixel value i (mod 256) and 200 < 256, so pixels identify images.
    let ids = |d: &Dataset| Vec::<u8>::try_from(&d.images.select(2, 0).select(2, 0).view([-1])).unwrap();
    let mut all: Vec<u8> = ids(&train).into_iter().chain(ids(&valid)).collect();
    all.sort_unstable();
    assert_eq!(all, (0..200).map(|i| i as u8).collect::<Vec<_>>());
    assert_eq!(train.name, "synthetic/train");
    assert_eq!(valid.name, "synthetic/valid");

    let (_, again) = split_train_valid(&dataset, 0.5, 7).unwrap();
    assert!(same(&valid.images, &again.images));
    let (_, other_seed) = split_train_valid(&dataset, 0.5, 8).unwrap();
    assert!(!same(&valid.images, &other_seed.images));

    expect_error(split_train_valid(&dataset, 1.0, 0), &["data.valid_fraction"]);
    let (all_train, none_valid) = split_train_valid(&dataset, 0.0, 0).unwrap();
    assert_eq!((all_train.len(), none_valid.len()), (200, 0));
}

#[test]
fn stratified_quotas_add_up_with_uneven_classes() {
    // Classes of 3, 3 and 1 images, 4 of the 7 taken: shares 12/7, 12/7 and 4/7.
    let labels = [0, 0, 0, 1, 1, 1, 2];
    let (taken, rest) = split::partition_for_tests(&labels, 3, 4, 1);
    assert_eq!(taken.len(), 4);
    assert_eq!(rest.len(), 3);
    let per_class = |indices: &[i64], class: i64| indices.iter().filter(|&&i| labels[i as usize] == class).count();
    for class in 0..2 {
        assert!((1..=2).contains(&per_class(&taken, class)), "class {class} gives floor or ceil of 1.5");
    }
    let subset = stratified_subset(&synthetic_dataset(100, 10), 30, 3);
    assert_eq!(subset.class_counts(), vec![3; 10]);
}

// ---- transforms ----

#[test]
fn crop_pads_with_zeros_and_keeps_shapes() {
    let ones = Tensor::ones([2, 3, 8, 8], (Kind::Uint8, Device::Cpu));
    let augmentation = Augmentation { crop_padding: 2, horizontal_flip: true };
    let mut rng = crate::SeededRng::new(1);
    assert_eq!(augmentation.apply(&ones, &mut rng).size(), [2, 3, 8, 8]);
    let floats = Tensor::ones([5, 1, 16, 16], (Kind::Float, Device::Cpu));
    assert_eq!(augmentation.apply(&floats, &mut rng).size(), [5, 1, 16, 16]);

    // Window at the padded image's top left: two zero rows and columns at the top and left.
    let top_left = CropPlacement { top: 0, left: 0, flip: false };
    let bottom_right = CropPlacement { top: 4, left: 4, flip: false };
    let cropped = augmentation.apply_placements(&ones, &[top_left, bottom_right]);
    let first = cropped.get(0);
    assert_eq!(first.narrow(1, 0, 2).sum(Kind::Int64).int64_value(&[]), 0, "top rows are padding");
    assert_eq!(first.narrow(2, 0, 2).sum(Kind::Int64).int64_value(&[]), 0, "left columns are padding");
    assert!(same(&first.narrow(1, 2, 6).narrow(2, 2, 6), &Tensor::ones([3, 6, 6], (Kind::Uint8, Device::Cpu))));
    let second = cropped.get(1);
    assert_eq!(second.narrow(1, 6, 2).sum(Kind::Int64).int64_value(&[]), 0, "bottom rows are padding");
    assert_eq!(second.narrow(2, 6, 2).sum(Kind::Int64).int64_value(&[]), 0, "right columns are padding");
    assert_eq!(second.narrow(1, 0, 6).narrow(2, 0, 6).sum(Kind::Int64).int64_value(&[]), 3 * 36);
}

#[test]
fn flip_mirrors_and_centre_crop_is_identity() {
    let images = Tensor::arange(2 * 3 * 4 * 5, (Kind::Int64, Device::Cpu)).view([2, 3, 4, 5]).to_kind(Kind::Uint8);
    let augmentation = Augmentation { crop_padding: 3, horizontal_flip: true };
    let centre = CropPlacement { top: 3, left: 3, flip: false };
    let centre_flipped = CropPlacement { flip: true, ..centre };
    assert!(same(&augmentation.apply_placements(&images, &[centre, centre]), &images));
    let flipped = augmentation.apply_placements(&images, &[centre_flipped, centre]);
    assert!(same(&flipped.get(0), &images.get(0).flip([2])));
    assert!(same(&flipped.get(1), &images.get(1)));

    // Without flips enabled, placements never ask for one.
    let no_flip = Augmentation { crop_padding: 1, horizontal_flip: false };
    let mut rng = crate::SeededRng::new(5);
    assert!(no_flip.draw_placements(100, &mut rng).iter().all(|p| !p.flip && (0..=2).contains(&p.top)));
}

/// Where a batch is zero, as `[image][channel][row][column]` booleans.
fn zeros(images: &Tensor) -> Vec<Vec<Vec<Vec<bool>>>> {
    let size = images.size();
    let values = Vec::<f32>::try_from(&images.contiguous().view([-1])).unwrap();
    let (c, h, w) = (size[1] as usize, size[2] as usize, size[3] as usize);
    (0..size[0] as usize)
        .map(|b| (0..c).map(|ch| (0..h).map(|y| (0..w).map(|x| values[((b * c + ch) * h + y) * w + x] == 0.0).collect()).collect()).collect())
        .collect()
}

#[test]
fn cutout_squares_are_clipped_at_the_border_and_whole_inside() {
    // DARTS: y1 = clip(y − L//2, 0, h), y2 = clip(y + L//2, 0, h), likewise x.
    assert_eq!(CutoutSquare::around(0, 0, 16, 32, 32), CutoutSquare { top: 0, bottom: 8, left: 0, right: 8 });
    assert_eq!(CutoutSquare::around(31, 31, 16, 32, 32), CutoutSquare { top: 23, bottom: 32, left: 23, right: 32 });
    assert_eq!(CutoutSquare::around(3, 30, 16, 32, 32), CutoutSquare { top: 0, bottom: 11, left: 22, right: 32 });
    assert_eq!(CutoutSquare::around(16, 16, 16, 32, 32).area(), 256, "away from the border: side²");
    assert_eq!(CutoutSquare::around(16, 16, 5, 32, 32).area(), 16, "an odd side cuts (side − 1)², as DARTS's `length // 2`");
    assert_eq!(CutoutSquare::around(16, 16, 1, 32, 32).area(), 0);

    // On a batch: every channel of an image loses exactly its square, nothing else.
    let cutout = Cutout { size: 4 };
    let squares = [
        CutoutSquare::around(0, 0, 4, 8, 8), // top left corner: rows 0..2, columns 0..2
        CutoutSquare::around(4, 4, 4, 8, 8), // inside: rows 2..6, columns 2..6, 16 pixels
        CutoutSquare::around(7, 6, 4, 8, 8), // bottom right: rows 5..8, columns 4..8
        CutoutSquare::around(4, 7, 4, 8, 8), // right edge: rows 2..6, columns 5..8
    ];
    let images = Tensor::ones([4, 3, 8, 8], (Kind::Float, Device::Cpu)) * 2.5;
    let cut = cutout.apply_squares(&images, &squares);
    assert_eq!(cut.size(), [4, 3, 8, 8]);
    let zero = zeros(&cut);
    for (b, (square, image)) in squares.iter().zip(&zero).enumerate() {
        for (channel, rows) in image.iter().enumerate() {
            for (y, row) in rows.iter().enumerate() {
                for (x, &is_zero) in row.iter().enumerate() {
                    let inside = (square.top..square.bottom).contains(&(y as i64)) && (square.left..square.right).contains(&(x as i64));
                    assert_eq!(is_zero, inside, "image {b} channel {channel} pixel ({y}, {x}) of {square:?}");
                }
            }
        }
    }
    let counts: Vec<i64> = (0..4).map(|b| cut.get(b).eq(0.0).sum(Kind::Int64).int64_value(&[])).collect();
    assert_eq!(counts, vec![3 * 4, 3 * 16, 3 * 12, 3 * 12]);
    assert!(same(&(cut.ne(0.0).to_kind(Kind::Float) * 2.5), &cut), "pixels outside keep their value");
}

#[test]
fn cutout_draws_centres_over_the_whole_image_and_repeats_for_a_seed() {
    let cutout = Cutout { size: 16 };
    let draw = |seed| cutout.draw_squares(2000, 32, 32, &mut crate::SeededRng::new(seed));
    let (first, again, other) = (draw(3), draw(3), draw(4));
    assert_eq!(first, again, "the same seed draws the same squares");
    assert_ne!(first, other);
    // Centres cover every row and column: squares touch every border, and most are whole.
    assert!(first.iter().any(|s| s.top == 0) && first.iter().any(|s| s.bottom == 32));
    assert!(first.iter().any(|s| s.left == 0) && first.iter().any(|s| s.right == 32));
    assert!(first.iter().all(|s| s.area() <= 256 && s.area() >= 8 * 8));
    // A square is whole when its centre is in 8..=24 both ways: 17² of 32² centres, ±20%.
    let whole = first.iter().filter(|s| s.area() == 256).count();
    let expected = 2000 * 17 * 17 / (32 * 32);
    assert!((expected * 8 / 10..=expected * 12 / 10).contains(&whole), "{whole} whole squares, about {expected} expected");
}

#[test]
fn cutout_in_a_loader_is_seeded_by_position_and_leaves_crops_alone() {
    let dataset = synthetic_dataset(30, 3);
    // Normalised images are 1..: only cutout makes zeros (pixel value i + 1 ≥ 1, padding 0 − (−1)).
    let normalization = Normalization { mean: vec![-1.0 / 255.0], std: vec![1.0 / 255.0] };
    let plain = loader_options(7, 9);
    let with_cutout = LoaderOptions { cutout: Some(Cutout { size: 2 }), ..plain };
    let reference = collect(&mut BatchLoader::new(&dataset, &normalization, plain, Device::Cpu).unwrap(), 12);
    let cut = collect(&mut BatchLoader::new(&dataset, &normalization, with_cutout, Device::Cpu).unwrap(), 12);
    for (plain, cut) in reference.iter().zip(&cut) {
        assert!(same(&plain.labels, &cut.labels), "the same order");
        let kept = cut.images.ne(0.0);
        assert!(same(&plain.images.masked_select(&kept), &cut.images.masked_select(&kept)), "the same crops and flips");
        let zeros_per_image = cut.images.eq(0.0).sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Int64);
        let zeros_per_image = Vec::<i64>::try_from(&zeros_per_image).unwrap();
        assert!(zeros_per_image.iter().all(|&n| (1..=4).contains(&n)), "one clipped 2×2 square per image: {zeros_per_image:?}");
    }
    // A resumed loader sees the same masks.
    let mut resumed = BatchLoader::new(&dataset, &normalization, with_cutout, Device::Cpu).unwrap();
    resumed.seek(LoaderPosition { epoch: 2, batch: 1 });
    assert!(same(&resumed.next_batch().unwrap().images, &cut[11].images));
    // Another seed, other masks.
    let other = collect(&mut BatchLoader::new(&dataset, &normalization, LoaderOptions { seed: 10, ..with_cutout }, Device::Cpu).unwrap(), 1);
    assert!(!same(&other[0].images, &cut[0].images));
}

#[test]
fn normalisation_constants_and_statistics() {
    let cifar10 = Normalization::nb201_cifar10();
    assert!((cifar10.mean[0] - 125.3 / 255.0).abs() < 1e-12 && (cifar10.std[2] - 66.7 / 255.0).abs() < 1e-12);
    assert!((Normalization::nb201_imagenet16().mean[1] - 116.66 / 255.0).abs() < 1e-12);
    assert!((Normalization::nb201_cifar100().std[0] - 68.2 / 255.0).abs() < 1e-12);

    // Half the pixels 0, half 255: mean 0.5, std 0.5 (population std, as the constants).
    let pixels: Vec<u8> = (0..32).map(|i| if i % 2 == 0 { 0 } else { 255 }).collect();
    let dataset = ImageRecords { pixels, labels: vec![0, 1], image_shape: [1, 4, 4] }.into_dataset("halves", 2).unwrap();
    let statistics = Normalization::from_dataset(&dataset).unwrap();
    assert!((statistics.mean[0] - 0.5).abs() < 1e-12 && (statistics.std[0] - 0.5).abs() < 1e-12);
    let normalised = statistics.apply(&dataset.images);
    assert_eq!(normalised.kind(), Kind::Float);
    let values = Vec::<f32>::try_from(&normalised.view([-1])).unwrap();
    assert!(values.iter().all(|v| (v.abs() - 1.0).abs() < 1e-6), "0 and 255 become -1 and 1");
}

// ---- loaders ----

fn loader_options(batch_size: usize, seed: u64) -> LoaderOptions {
    LoaderOptions { batch_size, shuffle: true, drop_last: false, augmentation: Some(Augmentation::nb201_imagenet16()), cutout: None, seed }
}

fn collect(loader: &mut BatchLoader, batches: usize) -> Vec<Batch> {
    (0..batches).map(|_| loader.next_batch().unwrap()).collect()
}

#[test]
fn the_same_seed_gives_the_same_batches() {
    let dataset = synthetic_dataset(50, 5);
    let normalization = identity_normalization(1);
    let make = |seed| BatchLoader::new(&dataset, &normalization, loader_options(8, seed), Device::Cpu).unwrap();
    let (first, second, other) = (collect(&mut make(1), 15), collect(&mut make(1), 15), collect(&mut make(2), 15));
    for (a, b) in first.iter().zip(&second) {
        assert!(same(&a.images, &b.images) && same(&a.labels, &b.labels));
    }
    assert!(first.iter().zip(&other).any(|(a, b)| !same(&a.images, &b.images)), "another seed, other batches");
    assert_eq!(first[0].images.kind(), Kind::Float);
    assert_eq!(first[0].labels.kind(), Kind::Int64);
    assert_eq!(first[0].images.size(), [8, 1, 4, 4]);
}

#[test]
fn an_epoch_visits_every_image_once_and_the_stream_rolls_over() {
    let dataset = synthetic_dataset(10, 10); // label i for image i
    let normalization = identity_normalization(1);
    let options = LoaderOptions { augmentation: None, ..loader_options(4, 3) };
    let mut loader = BatchLoader::new(&dataset, &normalization, options, Device::Cpu).unwrap();
    assert_eq!(loader.batches_per_epoch(), 3);
    let batches: Vec<Batch> = loader.epoch().collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.iter().map(|b| b.labels.size()[0]).collect::<Vec<_>>(), vec![4, 4, 2]);
    let mut seen: Vec<i64> = batches.iter().flat_map(|b| Vec::<i64>::try_from(&b.labels).unwrap()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    // Without augmentation and with identity normalisation, images are their raw pixels (= id).
    let first_pixels = Vec::<f32>::try_from(&batches[0].images.select(2, 0).select(2, 0).view([-1])).unwrap();
    let first_labels = Vec::<i64>::try_from(&batches[0].labels).unwrap();
    assert_eq!(first_pixels, first_labels.iter().map(|&l| l as f32).collect::<Vec<_>>());

    assert_eq!(loader.position(), LoaderPosition { epoch: 1, batch: 0 });
    let epoch_two: Vec<i64> = loader.epoch().flat_map(|b| Vec::<i64>::try_from(&b.unwrap().labels).unwrap()).collect();
    let epoch_one: Vec<i64> = batches.iter().flat_map(|b| Vec::<i64>::try_from(&b.labels).unwrap()).collect();
    assert_ne!(epoch_one, epoch_two, "each epoch is reshuffled");

    // drop_last leaves out the short batch.
    let dropping = LoaderOptions { drop_last: true, ..options };
    let mut loader = BatchLoader::new(&dataset, &normalization, dropping, Device::Cpu).unwrap();
    assert_eq!(loader.batches_per_epoch(), 2);
    assert_eq!(loader.epoch().count(), 2);
    assert!(collect(&mut loader, 7).iter().all(|b| b.labels.size() == [4]), "the endless stream keeps going");
    assert_eq!(loader.position(), LoaderPosition { epoch: 4, batch: 1 });
}

#[test]
fn seeking_continues_the_same_sequence() {
    let dataset = synthetic_dataset(30, 3);
    let normalization = identity_normalization(1);
    let mut original = BatchLoader::new(&dataset, &normalization, loader_options(7, 9), Device::Cpu).unwrap();
    let reference = collect(&mut original, 12);
    let mut resumed = BatchLoader::new(&dataset, &normalization, loader_options(7, 9), Device::Cpu).unwrap();
    resumed.seek(LoaderPosition { epoch: 2, batch: 1 }); // 5 batches per epoch: batch 11 overall
    let next = resumed.next_batch().unwrap();
    assert!(same(&next.images, &reference[11].images) && same(&next.labels, &reference[11].labels));
}

#[test]
fn evaluation_loaders_keep_file_order() {
    let dataset = synthetic_dataset(10, 10);
    let mut loader = BatchLoader::new(&dataset, &identity_normalization(1), LoaderOptions::evaluation(3), Device::Cpu).unwrap();
    let labels: Vec<i64> = loader.epoch().flat_map(|b| Vec::<i64>::try_from(&b.unwrap().labels).unwrap()).collect();
    assert_eq!(labels, (0..10).collect::<Vec<_>>());
}

#[test]
fn loaders_refuse_to_make_no_batches() {
    let normalization = identity_normalization(1);
    let dataset = synthetic_dataset(3, 3);
    let options = LoaderOptions { drop_last: true, ..loader_options(4, 0) };
    expect_error(BatchLoader::new(&dataset, &normalization, options, Device::Cpu), &["synthetic", "no batch of 4", "drop_last"]);
    let empty = dataset.subset("synthetic/valid", &[]);
    expect_error(BatchLoader::new(&empty, &normalization, loader_options(4, 0), Device::Cpu), &["synthetic/valid", "0 image"]);
    expect_error(BatchLoader::new(&dataset, &identity_normalization(3), loader_options(4, 0), Device::Cpu), &["channel"]);
}

// ---- config ----

#[test]
fn config_defaults_names_and_unknown_fields() {
    let config: DataConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(config, DataConfig::default());
    assert_eq!(config.dataset, DatasetKind::Embedded);
    assert_eq!(config.valid_fraction, 0.5);
    for (text, kind) in [
        ("embedded", DatasetKind::Embedded),
        ("cifar10", DatasetKind::Cifar10),
        ("cifar100", DatasetKind::Cifar100),
        ("imagenet16-120", DatasetKind::ImageNet16_120),
        ("mnist", DatasetKind::Mnist),
        ("fashion-mnist", DatasetKind::FashionMnist),
    ] {
        let config: DataConfig = serde_json::from_value(serde_json::json!({ "dataset": text })).unwrap();
        assert_eq!(config.dataset, kind);
        assert_eq!(kind.name(), text);
    }
    let format: DataConfig = serde_json::from_str(r#"{"dataset": "cifar10", "format": "pickle"}"#).unwrap();
    assert_eq!(format.format, FileFormat::Pickle);
    let unknown = serde_json::from_str::<DataConfig>(r#"{"batchsize": 32}"#).unwrap_err().to_string();
    assert!(unknown.contains("batchsize"), "{unknown}");
}

#[test]
fn config_errors_name_the_field() {
    let with = |edit: &dyn Fn(&mut DataConfig)| {
        let mut config = DataConfig::default();
        edit(&mut config);
        config.validate()
    };
    expect_error(with(&|c| c.dataset = DatasetKind::Cifar10), &["data.path", "cifar10"]);
    expect_error(with(&|c| c.path = Some("/somewhere".into())), &["data.path", "embedded"]);
    expect_error(
        with(&|c| {
            c.dataset = DatasetKind::Mnist;
            c.path = Some("/definitely/not/here".into());
        }),
        &["data.path", "/definitely/not/here"],
    );
    expect_error(with(&|c| c.valid_fraction = 1.5), &["data.valid_fraction"]);
    expect_error(with(&|c| c.batch_size = 0), &["data.batch_size"]);
    expect_error(with(&|c| c.eval_batch_size = Some(0)), &["data.eval_batch_size"]);
    expect_error(with(&|c| c.max_train_images = Some(0)), &["data.max_train_images"]);
    expect_error(with(&|c| c.format = FileFormat::Binary), &["data.format"]);
    assert!(with(&|_| {}).is_ok());

    let mut relative = DataConfig { path: Some("cifar".into()), ..DataConfig::default() };
    relative.resolve_relative_to(Path::new("/configs"));
    assert_eq!(relative.path, Some(PathBuf::from("/configs/cifar")));
}

#[test]
fn embedded_config_prepares_small_splits_and_loaders() {
    let config = DataConfig { max_train_images: Some(200), max_test_images: Some(50), batch_size: 32, ..DataConfig::default() };
    let data = prepare_data(&config, Device::Cpu).unwrap();
    assert_eq!((data.splits.train.len(), data.splits.valid.len(), data.splits.test.len()), (100, 100, 50));
    assert_eq!(data.splits.train.class_counts(), vec![10; 10]);
    assert_eq!(data.splits.test.class_counts(), vec![5; 10]);
    assert_eq!(data.normalization.channels(), 1);
    let batch = data.train_loader().unwrap().next_batch().unwrap();
    assert_eq!(batch.images.size(), [32, 1, 28, 28]);
    let mean = batch.images.mean(Kind::Float).double_value(&[]);
    assert!(mean.abs() < 0.5, "normalised with the train split's statistics, mean {mean}");
    assert_eq!(data.valid_search_loader().unwrap().batches_per_epoch(), 4);
    assert_eq!(data.eval_loader(SplitName::Test).unwrap().epoch().map(|b| b.unwrap().labels.size()[0]).sum::<i64>(), 50);

    // Same config, same batches.
    let again = prepare_data(&config, Device::Cpu).unwrap().train_loader().unwrap().next_batch().unwrap();
    assert!(same(&batch.images, &again.images));

    let no_valid = prepare_data(&DataConfig { valid_fraction: 0.0, ..config }, Device::Cpu).unwrap();
    expect_error(no_valid.valid_search_loader(), &["data.valid_fraction"]);
}

/// A split file in `dir`, its JSON written as given.
fn split_file(dir: &Path, json: &str) -> PathBuf {
    write_file(dir, "cifar-split.txt", json.as_bytes())
}

#[test]
fn split_files_in_both_of_nb201s_forms_fix_the_halves() {
    let dir = tempfile::tempdir().unwrap();
    // NB201's cifar-split.txt: XAutoDL's typed form, indices as strings, any order.
    let typed = split_file(dir.path(), r#"{"train": ["int", ["0", "5", "2", "7"]], "valid": ["int", ["1", "3", "9"]]}"#);
    assert_eq!(read_split_file(&typed, 10).unwrap(), (vec![0, 2, 5, 7], vec![1, 3, 9]));
    let plain = split_file(dir.path(), r#"{"valid": [1, 3, 9], "train": [7, 0, 5, 2]}"#);
    assert_eq!(read_split_file(&plain, 10).unwrap(), (vec![0, 2, 5, 7], vec![1, 3, 9]));

    let dataset = synthetic_dataset(10, 2);
    let (train, valid) = split_by_file(&dataset, &plain).unwrap();
    let ids = |d: &Dataset| Vec::<u8>::try_from(&d.images.select(2, 0).select(2, 0).view([-1])).unwrap();
    assert_eq!((ids(&train), ids(&valid)), (vec![0, 2, 5, 7], vec![1, 3, 9]), "image i has pixel value i");
    assert_eq!((train.name.as_str(), valid.name.as_str()), ("synthetic/train", "synthetic/valid"));
}

#[test]
fn split_file_errors_name_the_file_and_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let check = |json: &str, fragments: &[&str]| {
        let path = split_file(dir.path(), json);
        let mut with_file = vec!["cifar-split.txt"];
        with_file.extend_from_slice(fragments);
        expect_error(read_split_file(&path, 10), &with_file);
    };
    check(r#"{"train": [0, 1], "valid": [2, 10]}"#, &["`valid`", "index 10", "entry 1", "10 images"]);
    check(r#"{"train": ["int", ["0", "4"]], "valid": ["int", ["3", "4"]]}"#, &["index 4", "both `train` and `valid`", "disjoint"]);
    check(r#"{"train": [0, 6, 6], "valid": [2]}"#, &["index 6", "twice in `train`"]);
    check(r#"{"train": [0, -1], "valid": [2]}"#, &["`train` entry 1", "-1"]);
    check(r#"{"train": ["int", ["0", "x"]], "valid": [2]}"#, &["`train` entry 1", "\"x\""]);
    check(r#"{"train": ["float", ["0"]], "valid": [2]}"#, &["`train`", "\"float\""]);
    check(r#"{"train": [0]}"#, &["no `valid`"]);
    check(r#"{"train": [0], "valid": [1], "xtest": [2]}"#, &["unexpected key `xtest`"]);
    check(r#"{"train": [], "valid": [1]}"#, &["`train` lists no image"]);
    check(r#"[0, 1]"#, &["not a JSON object"]);
    check(r#"{"train": [0"#, &["not JSON"]);
    expect_error(read_split_file(&dir.path().join("missing.txt"), 10), &["missing.txt"]);
}

#[test]
fn a_split_file_replaces_the_seeded_split_of_a_config() {
    let dir = tempfile::tempdir().unwrap();
    let labels: Vec<(u8, u8)> = (0..8).map(|i| (0, i % 2)).collect();
    write_file(dir.path(), "data_batch_1.bin", &cifar_binary_bytes(CifarVariant::Cifar10, &labels, 0));
    write_file(dir.path(), "test_batch.bin", &cifar_binary_bytes(CifarVariant::Cifar10, &labels[..2], 0));
    let split = split_file(dir.path(), r#"{"train": ["int", ["0", "1", "2", "3", "4"]], "valid": ["int", ["6", "7"]]}"#);
    let config = DataConfig {
        dataset: DatasetKind::Cifar10,
        path: Some(dir.path().to_path_buf()),
        split_file: Some(split.clone()),
        batch_size: 2,
        ..DataConfig::default()
    };
    let data = prepare_data(&config, Device::Cpu).unwrap();
    assert_eq!((data.splits.train.len(), data.splits.valid.len(), data.splits.test.len()), (5, 2, 2));
    assert_eq!(data.splits.valid.label_vec(), vec![0, 1], "records 6 and 7");
    // It replaces the seed's split: another seed, the same halves.
    let reseeded = prepare_data(&DataConfig { seed: Some(7), ..config.clone() }, Device::Cpu).unwrap();
    assert!(same(&reseeded.splits.valid.tensors().unwrap().images, &data.splits.valid.tensors().unwrap().images));
    // Train+valid for a final training: both halves (record 5 is in neither).
    assert_eq!(data.standalone_train_loader(TrainOn::TrainValid, 0, None).unwrap().len(), 7);

    expect_error(DataConfig { max_train_images: Some(4), ..config.clone() }.validate(), &["data.split_file", "data.max_train_images"]);
    expect_error(DataConfig { split_file: Some(dir.path().join("nope.txt")), ..config.clone() }.validate(), &["data.split_file", "nope.txt"]);
    let mut relative = DataConfig { split_file: Some("cifar-split.txt".into()), ..DataConfig::default() };
    relative.resolve_relative_to(Path::new("/configs"));
    assert_eq!(relative.split_file, Some(PathBuf::from("/configs/cifar-split.txt")));
    let round_trip: DataConfig = serde_json::from_value(serde_json::to_value(&config).unwrap()).unwrap();
    assert_eq!(round_trip.split_file, Some(split));
}

#[test]
fn standalone_train_loaders_pick_the_data_batch_size_and_cutout() {
    let config = DataConfig { max_train_images: Some(200), max_test_images: Some(50), batch_size: 32, ..DataConfig::default() };
    let data = prepare_data(&config, Device::Cpu).unwrap();
    // The defaults give the search's training batches exactly.
    let mut search = data.train_loader().unwrap();
    let mut standalone = data.standalone_train_loader(TrainOn::Train, 0, None).unwrap();
    for _ in 0..5 {
        let (a, b) = (search.next_batch().unwrap(), standalone.next_batch().unwrap());
        assert!(same(&a.images, &b.images) && same(&a.labels, &b.labels));
    }
    let both = data.standalone_train_loader(TrainOn::TrainValid, 48, None).unwrap();
    assert_eq!((both.len(), both.options().batch_size, both.batches_per_epoch()), (200, 48, 5));
    assert_eq!(both.name(), "embedded/train+valid");
    let mut labels: Vec<i64> = data
        .standalone_train_loader(TrainOn::TrainValid, 64, None)
        .unwrap()
        .epoch()
        .flat_map(|b| Vec::<i64>::try_from(&b.unwrap().labels).unwrap())
        .collect();
    labels.sort_unstable();
    let mut expected: Vec<i64> = data.splits.train.label_vec().into_iter().chain(data.splits.valid.label_vec()).collect();
    expected.sort_unstable();
    assert_eq!(labels, expected, "an epoch of train+valid visits both halves once");
    let cut = data.standalone_train_loader(TrainOn::Train, 0, Some(Cutout { size: 8 })).unwrap();
    assert_eq!(cut.options().cutout, Some(Cutout { size: 8 }));
    assert_eq!(serde_json::to_value(TrainOn::TrainValid).unwrap(), "train+valid");
    assert_eq!(serde_json::from_value::<TrainOn>(serde_json::json!("train")).unwrap(), TrainOn::Train);
}

#[test]
fn cifar_config_reads_a_directory_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let labels: Vec<(u8, u8)> = (0..8).map(|i| (0, i % 2)).collect();
    write_file(dir.path(), "data_batch_1.bin", &cifar_binary_bytes(CifarVariant::Cifar10, &labels, 0));
    write_file(dir.path(), "test_batch.bin", &cifar_binary_bytes(CifarVariant::Cifar10, &labels[..2], 0));
    let config = DataConfig { dataset: DatasetKind::Cifar10, path: Some(dir.path().to_path_buf()), batch_size: 2, ..DataConfig::default() };
    let data = prepare_data(&config, Device::Cpu).unwrap();
    assert_eq!((data.splits.train.len(), data.splits.valid.len(), data.splits.test.len()), (4, 4, 2));
    assert_eq!(data.normalization, Normalization::nb201_cifar10());
    assert_eq!(data.training_options.augmentation, Some(Augmentation::nb201_cifar()));
    assert_eq!(data.train_loader().unwrap().next_batch().unwrap().images.size(), [2, 3, 32, 32]);
}
