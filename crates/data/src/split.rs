//! Train / valid / test splits and stratified subsets.
//!
//! NB201 searches on half of the official training set and selects on the other half; the
//! official test set stays the test set. Our split is stratified and seeded: every class is
//! shuffled on its own and contributes the same fraction (to within one image) to valid, so
//! small subsets keep their class balance. Both halves stay in file order; loaders shuffle.

use crate::SeededRng;

use super::{DataError, Dataset};

/// Tags that keep the generators of different uses apart under one seed.
const SPLIT_STREAM: u64 = 0x0053_504c_4954; // "SPLIT"
const SUBSET_STREAM: u64 = 0x5355_4253_4554; // "SUBSET"

/// The three parts a run uses.
#[derive(Debug)]
pub struct Splits {
    /// Network weights are trained on this.
    pub train: Dataset,
    /// Architecture parameters, split decisions and rankings are judged on this.
    pub valid: Dataset,
    /// The official test set, for final numbers only.
    pub test: Dataset,
}

impl Splits {
    pub fn to_device(&self, device: tch::Device) -> Splits {
        Splits { train: self.train.to_device(device), valid: self.valid.to_device(device), test: self.test.to_device(device) }
    }
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
pub fn split_train_valid(official_train: &Dataset, valid_fraction: f64, seed: u64) -> Result<(Dataset, Dataset), DataError> {
    if !(0.0..1.0).contains(&valid_fraction) {
        return Err(DataError::config("data.valid_fraction", format!("must be at least 0 and below 1, got {valid_fraction}")));
    }
    let labels = official_train.label_vec();
    let valid_count = (labels.len() as f64 * valid_fraction).round() as usize;
    let mut rng = SeededRng::derive(seed, &[SPLIT_STREAM]);
    let (valid, train) = stratified_partition(&labels, official_train.num_classes, valid_count, &mut rng);
    let base = official_train.name.split('/').next().unwrap_or("data");
    Ok((official_train.subset(format!("{base}/train"), &train), official_train.subset(format!("{base}/valid"), &valid)))
}

/// At most `count` images of `dataset`, stratified by class and chosen with `seed`; the data
/// set itself (shared) when it has no more than that. For tiny configurations and tests.
pub fn stratified_subset(dataset: &Dataset, count: usize, seed: u64) -> Dataset {
    if count >= dataset.len() {
        return Dataset {
            name: dataset.name.clone(),
            images: dataset.images.shallow_clone(),
            labels: dataset.labels.shallow_clone(),
            num_classes: dataset.num_classes,
        };
    }
    let mut rng = SeededRng::derive(seed, &[SUBSET_STREAM]);
    let (chosen, _) = stratified_partition(&dataset.label_vec(), dataset.num_classes, count, &mut rng);
    dataset.subset(dataset.name.clone(), &chosen)
}

#[cfg(test)]
pub(crate) fn partition_for_tests(labels: &[i64], num_classes: usize, take: usize, seed: u64) -> (Vec<i64>, Vec<i64>) {
    stratified_partition(labels, num_classes, take, &mut SeededRng::new(seed))
}
