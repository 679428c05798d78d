//! Train / valid / test splits and stratified subsets.
//!
//! NB201 searches on half of the official training set and selects on the other half; the
//! official test set stays the test set. Our split is stratified and seeded: every class is
//! shuffled on its own and contributes the same fraction (to within one image) to valid, so
//! small subsets keep their class balance. Both halves stay in file order; loaders shuffle.
//!
//! A split file (`data.split_file`, NB201's `cifar-split.txt`) fixes the two halves instead.

use std::path::Path;

use serde_json::Value;

use crate::SeededRng;

use super::dataset::LabelledImages;
use super::{DataError, SplitData};

/// Tags that keep the generators of different uses apart under one seed.
const SPLIT_STREAM: u64 = 0x0053_504c_4954; // "SPLIT"
const SUBSET_STREAM: u64 = 0x5355_4253_4554; // "SUBSET"

/// The three parts a run uses.
#[derive(Debug)]
pub struct Splits {
    /// Network weights are trained on this.
    pub train: SplitData,
    /// Architecture parameters, split decisions and rankings are judged on this.
    pub valid: SplitData,
    /// The official test set, for final numbers only.
    pub test: SplitData,
}

/// Fisher–Yates.
pub(crate) fn shuffle<T>(items: &mut [T], rng: &mut SeededRng) {
    for last in (1..items.len()).rev() {
        let chosen = rng.below(last as u64 + 1) as usize;
        items.swap(last, chosen);
    }
}

/// Splits indices `0..labels.len()` into `take` chosen ones and the rest, stratified by label:
/// class c gives floor or ceil of `take · n_c / n` (largest remainders get the extra ones, ties
/// to the lower class), chosen at random within the class. Both lists come back sorted.
fn stratified_partition(labels: &[i64], num_classes: usize, take: usize, rng: &mut SeededRng) -> (Vec<i64>, Vec<i64>) {
    let total = labels.len();
    let mut by_class: Vec<Vec<i64>> = vec![Vec::new(); num_classes];
    for (index, &label) in labels.iter().enumerate() {
        by_class[label as usize].push(index as i64);
    }
    // Quotas: exact shares rounded down, then the remainder to the largest fractional parts.
    let exact: Vec<f64> = by_class.iter().map(|members| take as f64 * members.len() as f64 / total.max(1) as f64).collect();
    let mut quotas: Vec<usize> = exact.iter().map(|share| share.floor() as usize).collect();
    let mut by_remainder: Vec<usize> = (0..num_classes).collect();
    by_remainder.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())).then(a.cmp(&b)));
    let mut missing = take.saturating_sub(quotas.iter().sum());
    for class in by_remainder.into_iter().cycle().take(num_classes * 2) {
        if missing == 0 {
            break;
        }
        if quotas[class] < by_class[class].len() {
            quotas[class] += 1;
            missing -= 1;
        }
    }
    let (mut chosen, mut rest) = (Vec::with_capacity(take), Vec::with_capacity(total - take));
    for (members, quota) in by_class.iter_mut().zip(quotas) {
        shuffle(members, rng);
        chosen.extend_from_slice(&members[..quota]);
        rest.extend_from_slice(&members[quota..]);
    }
    chosen.sort_unstable();
    rest.sort_unstable();
    (chosen, rest)
}

/// Splits the official training set into `(train, valid)`, `valid_fraction` of each class to
/// valid (0.5 in NB201). Same data, fraction and seed give the same split.
pub fn split_train_valid<D: LabelledImages>(official_train: &D, valid_fraction: f64, seed: u64) -> Result<(D, D), DataError> {
    if !(0.0..1.0).contains(&valid_fraction) {
        return Err(DataError::config("data.valid_fraction", format!("must be at least 0 and below 1, got {valid_fraction}")));
    }
    let labels = official_train.label_vec();
    let valid_count = (labels.len() as f64 * valid_fraction).round() as usize;
    let mut rng = SeededRng::derive(seed, &[SPLIT_STREAM]);
    let (valid, train) = stratified_partition(&labels, official_train.num_classes(), valid_count, &mut rng);
    let base = official_train.name().split('/').next().unwrap_or("data");
    Ok((official_train.subset(format!("{base}/train"), &train), official_train.subset(format!("{base}/valid"), &valid)))
}

/// The halves a split file names, as `(train, valid)` indices into a training set of `images`
/// images, each sorted. The file is a JSON object with the keys `train` and `valid` (and no
/// others), each a list of indices: plain integers, or NB201's `cifar-split.txt` form, the
/// typed pair of XAutoDL's `load_config` (`["int", ["0", "5", ...]]`, indices as strings).
/// Every index must be below `images` and appear once in all; errors name the file and the
/// offending index.
pub fn read_split_file(path: &Path, images: usize) -> Result<(Vec<i64>, Vec<i64>), DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::io(path, source))?;
    let bad = |problem: String| DataError::bad_file(path, problem);
    let expected = "a split file is a JSON object {\"train\": [indices], \"valid\": [indices]}, as NB201's cifar-split.txt";
    let value: Value = serde_json::from_str(&text).map_err(|error| bad(format!("not JSON ({error}); {expected}")))?;
    let Value::Object(object) = value else {
        return Err(bad(format!("the top level is not a JSON object; {expected}")));
    };
    if let Some(other) = object.keys().find(|key| !["train", "valid"].contains(&key.as_str())) {
        return Err(bad(format!("unexpected key `{other}`; {expected} (the official test set stays the test set)")));
    }
    // Which half holds each index so far: duplicates and overlaps are found in one pass.
    let mut owner: Vec<Option<&str>> = vec![None; images];
    let mut halves = Vec::with_capacity(2);
    for key in ["train", "valid"] {
        let list = object.get(key).ok_or_else(|| bad(format!("no `{key}` list; {expected}")))?;
        let entries = match list {
            // XAutoDL's typed form: ["int", [...]].
            Value::Array(pair) if pair.len() == 2 && pair[0].is_string() && pair[1].is_array() => {
                if pair[0] != "int" {
                    return Err(bad(format!("`{key}` is typed {}, not \"int\"", pair[0])));
                }
                pair[1].as_array().expect("checked above")
            }
            Value::Array(entries) => entries,
            other => return Err(bad(format!("`{key}` is {other}, not a list of indices"))),
        };
        if entries.is_empty() {
            return Err(bad(format!("`{key}` lists no image")));
        }
        let mut indices = Vec::with_capacity(entries.len());
        for (position, entry) in entries.iter().enumerate() {
            let index = match entry {
                Value::Number(number) => number.as_u64(),
                Value::String(text) => text.trim().parse::<u64>().ok(),
                _ => None,
            }
            .ok_or_else(|| bad(format!("`{key}` entry {position} is {entry}, not an image index (an integer from 0)")))?;
            if index >= images as u64 {
                return Err(bad(format!(
                    "`{key}` holds index {index} (entry {position}), but the official training set has {images} images (indices 0 to {})",
                    images.saturating_sub(1)
                )));
            }
            match owner[index as usize] {
                Some(half) if half == key => return Err(bad(format!("index {index} appears twice in `{key}` (entry {position})"))),
                Some(half) => return Err(bad(format!("index {index} is in both `{half}` and `{key}`: the halves must be disjoint"))),
                None => owner[index as usize] = Some(key),
            }
            indices.push(index as i64);
        }
        indices.sort_unstable();
        halves.push(indices);
    }
    let valid = halves.pop().expect("two halves");
    let train = halves.pop().expect("two halves");
    Ok((train, valid))
}

/// Splits the official training set into `(train, valid)` as the split file at `path` says
/// (see [`read_split_file`]); images in neither half are left out.
pub fn split_by_file<D: LabelledImages>(official_train: &D, path: &Path) -> Result<(D, D), DataError> {
    let (train, valid) = read_split_file(path, official_train.len())?;
    let base = official_train.name().split('/').next().unwrap_or("data");
    Ok((official_train.subset(format!("{base}/train"), &train), official_train.subset(format!("{base}/valid"), &valid)))
}

/// At most `count` images of `dataset`, stratified by class and chosen with `seed`; the data
/// set itself (shared) when it has no more than that. For tiny configurations and tests.
pub fn stratified_subset<D: LabelledImages>(dataset: &D, count: usize, seed: u64) -> D {
    if count >= dataset.len() {
        return dataset.shared();
    }
    let mut rng = SeededRng::derive(seed, &[SUBSET_STREAM]);
    let (chosen, _) = stratified_partition(&dataset.label_vec(), dataset.num_classes(), count, &mut rng);
    dataset.subset(dataset.name().to_string(), &chosen)
}

#[cfg(test)]
pub(crate) fn partition_for_tests(labels: &[i64], num_classes: usize, take: usize, seed: u64) -> (Vec<i64>, Vec<i64>) {
    stratified_partition(labels, num_classes, take, &mut SeededRng::new(seed))
}
