//! Running a split criterion through the ABI, and checking what it decides.

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RStr, RVec};
use splitnas_data::SeededRng;
use splitnas_plugin_api::{
    ffi_guard, CriterionContext, CriterionContext_TO, GramSample, Mask, OptionGradients, PluginError, PluginResult, SpaceInfo, SplitCriterionBox,
    SplitDecision, SplitRequest,
};

use crate::services::PluginServices;

/// Where per-option gradients come from (the host's gradient provider, or a test double).
pub trait GradientSource {
    fn gradient_gram(&self, choice_point: u32) -> Result<GramSample, PluginError>;
}

/// The context handed to a criterion: seeded randomness, gradients if a source is attached,
/// and metrics collected for the split tree's record.
pub struct HostCriterionContext<'a> {
    pub services: PluginServices,
    gradients: Option<&'a dyn GradientSource>,
}

impl<'a> HostCriterionContext<'a> {
    pub fn new(rng: SeededRng, gradients: Option<&'a dyn GradientSource>) -> Self {
        HostCriterionContext { services: PluginServices::new(rng), gradients }
    }

    fn source(&self) -> Result<&'a dyn GradientSource, PluginError> {
        self.gradients.ok_or_else(|| PluginError::unsupported("this split has no gradient source attached"))
    }
}

impl CriterionContext for HostCriterionContext<'_> {
    fn gradient_gram(&self, choice_point: u32) -> PluginResult<GramSample> {
        ffi_guard(|| self.source()?.gradient_gram(choice_point))
    }
    /// Retired in ABI 1.1: no criterion uses per-option gradient rows; the Gram matrix serves.
    fn option_gradients(&self, _choice_point: u32) -> PluginResult<OptionGradients> {
        ffi_guard(|| Err(PluginError::unsupported("option_gradients is retired (ABI 1.1): use gradient_gram")))
    }
    fn next_random(&self) -> PluginResult<u64> {
        self.services.next_random()
    }
    fn log_metric(&self, name: RStr<'_>, value: f64) -> PluginResult<()> {
        self.services.log_metric(name.as_str(), value)
    }
}

/// A criterion returned a decision that does not fit the request.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error("the criterion failed: {0}")]
    Plugin(#[from] PluginError),
    #[error("the criterion chose choice point {0}, which is not a candidate")]
    NotACandidate(u32),
    #[error("the criterion scored choice point {0}, which is not a candidate")]
    ScoredANonCandidate(u32),
    #[error("the criterion returned {found} groups, {expected} were asked for (0: any number from 2)")]
    GroupCount { expected: u32, found: usize },
    #[error("the criterion's groups are not a partition of the allowed options {allowed:?} of choice point {choice_point}: {groups:?}")]
    NotAPartition { choice_point: u32, allowed: Vec<u32>, groups: Vec<Vec<u32>> },
}

/// Choice points a leaf may split: splittable (DARTS: normal-cell edges only) and never split
/// on its path (the mask row still allows every option).
pub fn split_candidates(info: &SpaceInfo, mask: &Mask) -> Vec<u32> {
    info.choice_points
        .iter()
        .enumerate()
        .filter(|(point, choice_point)| choice_point.splittable && mask.count(*point) == choice_point.options.len())
        .map(|(point, _)| point as u32)
        .collect()
}

/// Asks `criterion` to split and checks that the answer is a partition of the chosen choice
/// point's allowed options into the requested number of non-empty groups.
pub fn run_split(criterion: &mut SplitCriterionBox, request: &SplitRequest, context: &HostCriterionContext<'_>) -> Result<SplitDecision, SplitError> {
    let context_object = CriterionContext_TO::from_ptr(context, TD_Opaque);
    let decision = criterion.split(request, context_object).into_result()?;
    validate_decision(request, &decision)?;
    Ok(decision)
}

pub fn validate_decision(request: &SplitRequest, decision: &SplitDecision) -> Result<(), SplitError> {
    let point = decision.choice_point;
    if !request.candidates.contains(&point) {
        return Err(SplitError::NotACandidate(point));
    }
    // Scores are recorded by choice point: one outside the candidates names nothing the tree knows.
    if let Some(score) = decision.scores.iter().find(|score| !request.candidates.contains(&score.choice_point)) {
        return Err(SplitError::ScoredANonCandidate(score.choice_point));
    }
    // 0 groups leaves the count to the criterion (exhaustive: one per option); a split still needs two.
    let count_ok = if request.groups == 0 { decision.groups.len() >= 2 } else { decision.groups.len() == request.groups as usize };
    if !count_ok {
        return Err(SplitError::GroupCount { expected: request.groups, found: decision.groups.len() });
    }
    let allowed = request.mask.allowed(point as usize);
    let mut seen: Vec<u32> = decision.groups.iter().flat_map(|g| g.iter().copied()).collect();
    seen.sort_unstable();
    let empty_group = decision.groups.iter().any(RVec::is_empty);
    if empty_group || seen != allowed {
        return Err(SplitError::NotAPartition { choice_point: point, allowed, groups: decision.groups.iter().map(|g| g.to_vec()).collect() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitnas_plugin_api::{ChoicePointInfo, OptionInfo};

    #[test]
    fn only_splittable_choice_points_never_split_on_the_path_are_candidates() {
        let options: RVec<OptionInfo> = ["a", "b", "c"].iter().map(|n| OptionInfo { name: (*n).into(), costs: Default::default() }).collect();
        let point = |name: &str, splittable| ChoicePointInfo { name: name.into(), group: "cell".into(), options: options.clone(), splittable };
        let info = SpaceInfo {
            name: "t".into(),
            choice_points: vec![point("normal 0", true), point("normal 1", true), point("reduce 0", false)].into(),
            max_options: 3,
            min_group_size: 2,
        };
        let mut mask = info.full_mask();
        assert_eq!(split_candidates(&info, &mask), vec![0, 1], "reduction-cell edges are never candidates");
        mask.rows[1] = vec![true, false, true].into();
        assert_eq!(split_candidates(&info, &mask), vec![0], "a choice point split above is no longer a candidate");
    }
}
