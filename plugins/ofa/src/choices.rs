//! OFA's choices as splitnas choice points, masks and architectures, and OFA's genotype JSON.
//!
//! Choice points, in this order: `block 1 kernel` .. `block 20 kernel` (group `kernel`,
//! options `3`, `5`, `7`), `block 1 expand` .. `block 20 expand` (group `expand`, options `3`,
//! `4`, `6`), `stage 1 depth` .. `stage 5 depth` (group `depth`, options `2`, `3`, `4`). Blocks
//! are numbered from 1, as the elastic blocks of `OFAMobileNetV3.blocks` (block 0 is the fixed
//! first block).
//!
//! A block that its stage's depth drops runs nothing: its kernel and expand choices are
//! ignored. Architectures this space makes (samples, derivations, enumeration) are canonical:
//! a dropped block's choices are the first option its mask allows, so one network is one
//! architecture.

use serde::{Deserialize, Serialize};
use splitnas_plugin_api::{Architecture, Mask, PluginError};

pub const NUM_STAGES: usize = 5;
pub const BLOCKS_PER_STAGE: usize = 4;
pub const NUM_BLOCKS: usize = NUM_STAGES * BLOCKS_PER_STAGE;
pub const NUM_CHOICE_POINTS: usize = 2 * NUM_BLOCKS + NUM_STAGES;
/// Every choice point has three options.
pub const NUM_OPTIONS: usize = 3;
pub const KERNEL_SIZES: [i64; NUM_OPTIONS] = [3, 5, 7];
pub const EXPAND_RATIOS: [i64; NUM_OPTIONS] = [3, 4, 6];
pub const DEPTHS: [i64; NUM_OPTIONS] = [2, 3, 4];

/// What a choice point chooses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChoicePoint {
    Kernel { block: usize },
    Expand { block: usize },
    Depth { stage: usize },
}

impl ChoicePoint {
    pub fn from_index(index: usize) -> Option<ChoicePoint> {
        match index {
            _ if index < NUM_BLOCKS => Some(ChoicePoint::Kernel { block: index }),
            _ if index < 2 * NUM_BLOCKS => Some(ChoicePoint::Expand { block: index - NUM_BLOCKS }),
            _ if index < NUM_CHOICE_POINTS => Some(ChoicePoint::Depth { stage: index - 2 * NUM_BLOCKS }),
            _ => None,
        }
    }

    pub fn index(self) -> usize {
        match self {
            ChoicePoint::Kernel { block } => block,
            ChoicePoint::Expand { block } => NUM_BLOCKS + block,
            ChoicePoint::Depth { stage } => 2 * NUM_BLOCKS + stage,
        }
    }

    /// `block 7 kernel`, `block 7 expand`, `stage 2 depth` (1-based, as OFA numbers its
    /// elastic blocks).
    pub fn name(self) -> String {
        match self {
            ChoicePoint::Kernel { block } => format!("block {} kernel", block + 1),
            ChoicePoint::Expand { block } => format!("block {} expand", block + 1),
            ChoicePoint::Depth { stage } => format!("stage {} depth", stage + 1),
        }
    }

    pub fn group(self) -> &'static str {
        match self {
            ChoicePoint::Kernel { .. } => "kernel",
            ChoicePoint::Expand { .. } => "expand",
            ChoicePoint::Depth { .. } => "depth",
        }
    }

    /// The values of its options, in option order.
    pub fn values(self) -> [i64; NUM_OPTIONS] {
        match self {
            ChoicePoint::Kernel { .. } => KERNEL_SIZES,
            ChoicePoint::Expand { .. } => EXPAND_RATIOS,
            ChoicePoint::Depth { .. } => DEPTHS,
        }
    }

    /// The elastic block whose tensors this choice point shapes (none for depths).
    pub fn block(self) -> Option<usize> {
        match self {
            ChoicePoint::Kernel { block } | ChoicePoint::Expand { block } => Some(block),
            ChoicePoint::Depth { .. } => None,
        }
    }
}

/// Every choice point, in order.
pub fn choice_points() -> impl Iterator<Item = ChoicePoint> {
    (0..NUM_CHOICE_POINTS).filter_map(ChoicePoint::from_index)
}

/// One subnet: a kernel size and expand ratio per block, a depth per stage (OFA's `ks`,
/// `e`, `d`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    #[serde(rename = "ks")]
    pub kernel_sizes: Vec<i64>,
    #[serde(rename = "e")]
    pub expand_ratios: Vec<i64>,
    #[serde(rename = "d")]
    pub depths: Vec<i64>,
}

impl Subnet {
    /// Whether the depth of its stage keeps elastic block `block`.
    pub fn keeps_block(&self, block: usize) -> bool {
        (block % BLOCKS_PER_STAGE) < self.depths[block / BLOCKS_PER_STAGE] as usize
    }

    /// The subnet of a (validated) architecture.
    pub fn of(architecture: &Architecture) -> Subnet {
        let value = |index: usize| {
            let point = ChoicePoint::from_index(index).expect("index below NUM_CHOICE_POINTS");
            point.values()[architecture.choices[index] as usize]
        };
        Subnet {
            kernel_sizes: (0..NUM_BLOCKS).map(|block| value(ChoicePoint::Kernel { block }.index())).collect(),
            expand_ratios: (0..NUM_BLOCKS).map(|block| value(ChoicePoint::Expand { block }.index())).collect(),
            depths: (0..NUM_STAGES).map(|stage| value(ChoicePoint::Depth { stage }.index())).collect(),
        }
    }

    /// The architecture of this subnet, or what is wrong with it.
    pub fn to_architecture(&self) -> Result<Architecture, String> {
        for (key, values, count) in [("ks", &self.kernel_sizes, NUM_BLOCKS), ("e", &self.expand_ratios, NUM_BLOCKS), ("d", &self.depths, NUM_STAGES)]
        {
            if values.len() != count {
                return Err(format!("`{key}` needs {count} entries, got {}", values.len()));
            }
        }
        let mut choices = vec![0u32; NUM_CHOICE_POINTS];
        for point in choice_points() {
            let value = match point {
                ChoicePoint::Kernel { block } => self.kernel_sizes[block],
                ChoicePoint::Expand { block } => self.expand_ratios[block],
                ChoicePoint::Depth { stage } => self.depths[stage],
            };
            let option = point.values().iter().position(|&allowed| allowed == value).ok_or_else(|| {
                let key = match point.group() {
                    "kernel" => "ks",
                    "expand" => "e",
                    _ => "d",
                };
                format!("{} (`{key}`) is {value}, but must be one of {:?}", point.name(), point.values())
            })?;
            choices[point.index()] = option as u32;
        }
        Ok(Architecture { choices: choices.into() })
    }

    /// OFA's JSON, compact: `{"ks":[..20],"e":[..20],"d":[..5]}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `3, 5, 7`-style listing for messages.
fn option_list(point: ChoicePoint) -> String {
    point.values().iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}

/// Checks a mask's shape (45 rows of 3); `what` names it in errors.
pub fn validate_mask(mask: &Mask, what: &str) -> Result<(), PluginError> {
    if mask.rows.len() != NUM_CHOICE_POINTS {
        return Err(PluginError::invalid_input(format!(
            "{what} has {} rows, but ofa has {NUM_CHOICE_POINTS} choice points (20 kernels, 20 expand ratios, 5 depths)",
            mask.rows.len()
        )));
    }
    for (index, row) in mask.rows.iter().enumerate() {
        if row.len() != NUM_OPTIONS {
            let point = ChoicePoint::from_index(index).expect("index below NUM_CHOICE_POINTS");
            return Err(PluginError::invalid_input(format!(
                "{what}: row {index} ({}) has {} entries, but ofa's masks have {NUM_OPTIONS} ({})",
                point.name(),
                row.len(),
                option_list(point)
            )));
        }
    }
    Ok(())
}

/// Like [`validate_mask`], and every choice point must allow some option (a sub-supernet's mask).
pub fn validate_space_mask(mask: &Mask) -> Result<(), PluginError> {
    validate_mask(mask, "the mask")?;
    if let Some(point) = choice_points().find(|point| mask.count(point.index()) == 0) {
        return Err(PluginError::invalid_input(format!("the mask allows no option on {}: every choice point needs at least one", point.name())));
    }
    Ok(())
}

/// Checks an architecture's length and option indices.
pub fn validate_architecture(architecture: &Architecture) -> Result<(), PluginError> {
    if architecture.choices.len() != NUM_CHOICE_POINTS {
        return Err(PluginError::invalid_input(format!(
            "an ofa architecture has {NUM_CHOICE_POINTS} choices (20 kernels, 20 expand ratios, 5 depths), this one has {}",
            architecture.choices.len()
        )));
    }
    for (index, &choice) in architecture.choices.iter().enumerate() {
        if choice as usize >= NUM_OPTIONS {
            let point = ChoicePoint::from_index(index).expect("index below NUM_CHOICE_POINTS");
            return Err(PluginError::invalid_input(format!(
                "{} has option {choice}, but its options are 0..={} ({})",
                point.name(),
                NUM_OPTIONS - 1,
                option_list(point)
            )));
        }
    }
    Ok(())
}

/// Sets the kernel and expand choices of every block its stage's depth drops to the first
/// option `mask` allows, so that equal networks are equal architectures.
pub fn canonicalize(choices: &mut [u32], mask: &Mask) {
    for block in 0..NUM_BLOCKS {
        let stage = block / BLOCKS_PER_STAGE;
        let depth = DEPTHS[choices[ChoicePoint::Depth { stage }.index()] as usize] as usize;
        if block % BLOCKS_PER_STAGE >= depth {
            for point in [ChoicePoint::Kernel { block }, ChoicePoint::Expand { block }] {
                if let Some(&first) = mask.allowed(point.index()).first() {
                    choices[point.index()] = first;
                }
            }
        }
    }
}

/// Distinct subnets of one stage within `mask`: Σ over allowed depths d of Π over its first d
/// blocks of (allowed kernels × allowed expand ratios). `None` on overflow.
fn stage_count(mask: &Mask, stage: usize) -> Option<u64> {
    let mut total: u64 = 0;
    for depth_option in mask.allowed(ChoicePoint::Depth { stage }.index()) {
        total = total.checked_add(depth_count(mask, stage, DEPTHS[depth_option as usize] as usize)?)?;
    }
    Some(total)
}

/// Choices of the first `depth` blocks of `stage` within `mask`.
fn depth_count(mask: &Mask, stage: usize, depth: usize) -> Option<u64> {
    (0..depth).try_fold(1u64, |product, position| {
        let block = stage * BLOCKS_PER_STAGE + position;
        let options = (mask.count(ChoicePoint::Kernel { block }.index()) * mask.count(ChoicePoint::Expand { block }.index())) as u64;
        product.checked_mul(options)
    })
}

/// How many distinct subnets `mask` allows, `None` when it exceeds a `u64` (the full space
/// has about 2.2e19).
pub fn architecture_count(mask: &Mask) -> Option<u64> {
    (0..NUM_STAGES).try_fold(1u64, |product, stage| product.checked_mul(stage_count(mask, stage)?))
}

/// Subnet number `index` of `mask` (canonical): stages in mixed radix, the last fastest;
/// within a stage, its allowed depths in order, then each kept block's kernel and expand ratio
/// in mixed radix, the last fastest. The caller checked `index < architecture_count(mask)`.
pub fn architecture_at(mask: &Mask, mut index: u64) -> Option<Architecture> {
    let counts: Vec<u64> = (0..NUM_STAGES).map(|stage| stage_count(mask, stage)).collect::<Option<_>>()?;
    let mut choices = vec![0u32; NUM_CHOICE_POINTS];
    let mut within = [0u64; NUM_STAGES];
    for stage in (0..NUM_STAGES).rev() {
        within[stage] = index % counts[stage];
        index /= counts[stage];
    }
    for (stage, &stage_index) in within.iter().enumerate() {
        let mut rest = stage_index;
        for depth_option in mask.allowed(ChoicePoint::Depth { stage }.index()) {
            let depth = DEPTHS[depth_option as usize] as usize;
            let count = depth_count(mask, stage, depth)?;
            if rest >= count {
                rest -= count;
                continue;
            }
            choices[ChoicePoint::Depth { stage }.index()] = depth_option;
            for position in (0..depth).rev() {
                let block = stage * BLOCKS_PER_STAGE + position;
                for point in [ChoicePoint::Expand { block }, ChoicePoint::Kernel { block }] {
                    let allowed = mask.allowed(point.index());
                    choices[point.index()] = allowed[(rest % allowed.len() as u64) as usize];
                    rest /= allowed.len() as u64;
                }
            }
            break;
        }
    }
    canonicalize(&mut choices, mask);
    Some(Architecture { choices: choices.into() })
}

/// Parses OFA's genotype JSON.
pub fn parse_genotype(text: &str) -> Result<Architecture, String> {
    let subnet: Subnet = serde_json::from_str(text.trim())
        .map_err(|error| format!("expected OFA's JSON `{{\"ks\":[20 kernel sizes],\"e\":[20 expand ratios],\"d\":[5 depths]}}`: {error}"))?;
    subnet.to_architecture()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Mask {
        Mask { rows: (0..NUM_CHOICE_POINTS).map(|_| vec![true; NUM_OPTIONS].into()).collect::<Vec<_>>().into() }
    }

    #[test]
    fn the_full_space_overflows_and_small_masks_count_exactly() {
        // (9^2 + 9^3 + 9^4)^5 = 7371^5, about 2.2e19: more than a u64 holds.
        assert_eq!(architecture_count(&full()), None);
        let mut mask = full();
        for stage in 0..NUM_STAGES {
            mask.rows[ChoicePoint::Depth { stage }.index()] = vec![true, false, false].into();
        }
        for block in 0..NUM_BLOCKS {
            mask.rows[ChoicePoint::Expand { block }.index()] = vec![true, false, false].into();
        }
        // Depth 2 everywhere, one ratio: 3 kernels on each of 2 blocks, 5 stages: 9^5.
        assert_eq!(architecture_count(&mask), Some(9u64.pow(5)));
    }

    #[test]
    fn genotype_json_round_trips_and_names_bad_fields() {
        let subnet = Subnet { kernel_sizes: vec![7; 20], expand_ratios: vec![6; 20], depths: vec![4; 5] };
        let text = subnet.to_json();
        assert!(text.starts_with("{\"ks\":[7,"), "{text}");
        let architecture = parse_genotype(&text).unwrap();
        assert_eq!(Subnet::of(&architecture), subnet);
        let error = parse_genotype(&text.replace("\"d\":[4,", "\"d\":[5,")).unwrap_err();
        assert!(error.contains("stage 1 depth") && error.contains("[2, 3, 4]"), "{error}");
        let error = parse_genotype("{\"ks\":[3],\"e\":[3],\"d\":[2]}").unwrap_err();
        assert!(error.contains("`ks` needs 20"), "{error}");
        assert!(parse_genotype("3x3_MBConv3").unwrap_err().contains("OFA's JSON"));
    }
}
