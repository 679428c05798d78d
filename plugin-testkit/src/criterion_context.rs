//! A fake [`CriterionContext`]: gradient Gram matrices from synthetic or recorded per-option
//! gradients, a seeded `next_random`, and a record of what was served.

use std::cell::RefCell;
use std::collections::HashMap;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RResult, RStr};
use splitnas_plugin_api::{CriterionContext, CriterionContextRef, CriterionContext_TO, GramSample, Mask, OptionGradients, PluginError, PluginResult};
use tch::Tensor;

use crate::SeededRng;

/// Where one choice point's gradients come from.
enum GradientSource {
    /// Options in the same cluster share a direction; every repeat adds fresh noise.
    Clustered { options: Vec<u32>, centres: Vec<Vec<f32>>, cluster_of: Vec<usize>, noise: f64 },
    /// Prepared `[options, P]` gradients, one tensor per repeat, served in turn (cycling).
    Recorded { options: Vec<u32>, repeats: Vec<Tensor> },
}

/// Length of the synthetic gradients.
const SYNTHETIC_DIMENSIONS: usize = 32;

/// Serves what a split criterion asks the host for, from gradients the test decides.
pub struct FakeCriterionContext {
    sources: HashMap<u32, GradientSource>,
    served: RefCell<HashMap<u32, usize>>,
    random: RefCell<SeededRng>,
    /// `log_metric` calls, in order.
    pub metrics: RefCell<Vec<(String, f64)>>,
}

impl FakeCriterionContext {
    /// A context with no gradients yet (`gradient_gram` answers `InvalidInput` for every choice
    /// point) whose `next_random` is seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        FakeCriterionContext {
            sources: HashMap::new(),
            served: RefCell::new(HashMap::new()),
            random: RefCell::new(SeededRng::new(seed)),
            metrics: RefCell::new(Vec::new()),
        }
    }

    /// Synthetic gradients for `choice_point`: the options of each cluster share a random
    /// direction, and every repeat adds independent noise of standard deviation `noise`
    /// (relative to unit-variance directions). The options served are the clusters' union, sorted.
    pub fn with_clusters(mut self, choice_point: u32, clusters: &[Vec<u32>], noise: f64) -> Self {
        let mut options: Vec<u32> = clusters.iter().flatten().copied().collect();
        options.sort_unstable();
        let cluster_of = options.iter().map(|option| clusters.iter().position(|cluster| cluster.contains(option)).expect("listed")).collect();
        let centres = (0..clusters.len()).map(|_| self.random.get_mut().normals(SYNTHETIC_DIMENSIONS)).collect();
        self.sources.insert(choice_point, GradientSource::Clustered { options, centres, cluster_of, noise });
        self
    }

    /// Synthetic gradients for every candidate: its allowed options (per `mask`) dealt round
    /// robin into `clusters` clusters.
    pub fn with_clusters_for(mut self, mask: &Mask, candidates: &[u32], clusters: usize, noise: f64) -> Self {
        for &point in candidates {
            let mut dealt = vec![Vec::new(); clusters.max(1)];
            for (position, option) in mask.allowed(point as usize).into_iter().enumerate() {
                dealt[position % clusters.max(1)].push(option);
            }
            dealt.retain(|cluster| !cluster.is_empty());
            self = self.with_clusters(point, &dealt, noise);
        }
        self
    }

    /// Recorded gradients for `choice_point`: `repeats[r]` is `[options.len(), P]`, served in
    /// turn (cycling) as the host would, Gram matrices in float32 like the host's.
    pub fn with_recorded(mut self, choice_point: u32, options: Vec<u32>, repeats: Vec<Tensor>) -> Self {
        self.sources.insert(choice_point, GradientSource::Recorded { options, repeats });
        self
    }

    /// The ABI view a criterion's `split` takes.
    pub fn context(&self) -> CriterionContextRef<'_> {
        CriterionContext_TO::from_ptr(self, TD_Opaque)
    }

    /// How many repeats were served for `choice_point`.
    pub fn served(&self, choice_point: u32) -> usize {
        self.served.borrow().get(&choice_point).copied().unwrap_or(0)
    }

    /// How many repeats were served in all.
    pub fn total_served(&self) -> usize {
        self.served.borrow().values().sum()
    }

    fn gram(&self, choice_point: u32) -> Result<GramSample, PluginError> {
        let source = self
            .sources
            .get(&choice_point)
            .ok_or_else(|| PluginError::invalid_input(format!("the fake context has no gradients for choice point {choice_point}")))?;
        let repeat = {
            let mut served = self.served.borrow_mut();
            let count = served.entry(choice_point).or_insert(0);
            *count += 1;
            *count - 1
        };
        let (options, gradients) = match source {
            GradientSource::Recorded { options, repeats } => (options, repeats[repeat % repeats.len()].shallow_clone()),
            GradientSource::Clustered { options, centres, cluster_of, noise } => {
                let mut random = self.random.borrow_mut();
                let rows: Vec<f32> = cluster_of
                    .iter()
                    .flat_map(|&cluster| {
                        let noise_values = random.normals(SYNTHETIC_DIMENSIONS);
                        centres[cluster].iter().zip(noise_values).map(|(centre, e)| centre + (*noise as f32) * e).collect::<Vec<f32>>()
                    })
                    .collect();
                (options, Tensor::from_slice(&rows).view([options.len() as i64, SYNTHETIC_DIMENSIONS as i64]))
            }
        };
        let gram = gradients.f_matmul(&gradients.f_tr()?)?.f_to_kind(tch::Kind::Double)?.f_flatten(0, -1)?;
        Ok(GramSample { options: options.clone().into(), gram: Vec::<f64>::try_from(gram)?.into() })
    }
}

impl CriterionContext for FakeCriterionContext {
    fn gradient_gram(&self, choice_point: u32) -> PluginResult<GramSample> {
        RResult::from(self.gram(choice_point))
    }

    /// Retired in ABI 1.1; the fake host does not offer it.
    fn option_gradients(&self, _choice_point: u32) -> PluginResult<OptionGradients> {
        RResult::RErr(PluginError::unsupported("option_gradients is retired (ABI 1.1)"))
    }

    fn next_random(&self) -> PluginResult<u64> {
        RResult::ROk(self.random.borrow_mut().next_u64())
    }

    fn log_metric(&self, name: RStr<'_>, value: f64) -> PluginResult<()> {
        self.metrics.borrow_mut().push((name.to_string(), value));
        RResult::ROk(())
    }
}
