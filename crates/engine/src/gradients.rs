//! The gradient provider of gradient matching (docs/ARCHITECTURE.md, "the life of a run", phase 2).
//!
//! For a candidate choice point, one *repeat* is: one training batch and one context sample
//! from the search algorithm, shared by every allowed option; for each option k the choice
//! point is forced to k (weight 1, the only active option), forward, the training loss
//! (cross-entropy with `[search] label_smoothing`), and the gradient of the space's shared set
//! alone (`run_backward` on exactly those tensors: no other gradient is computed). The K×K
//! Gram matrix is one product of the per-option gradients of the tensors some option reaches,
//! flattened side by side, and is read back once per repeat.

use std::cell::RefCell;
use std::collections::HashMap;

use splitnas_plugin_api::{GramSample, Mask, PluginError, TensorRef, WeightSample};
use tch::Tensor;

use crate::context::TrainingContext;
use crate::criterion::GradientSource;
use crate::standalone::training_cross_entropy;
use splitnas_data::BatchSource;

/// Serves per-option shared-set gradients of one sub-supernet to a split criterion.
pub struct GradientProvider<'a> {
    pub context: &'a TrainingContext<'a>,
    /// The search algorithm's context sample for the other choice points, one per repeat.
    contexts: RefCell<&'a mut dyn FnMut() -> Result<WeightSample, PluginError>>,
    pub parameters: &'a [(String, Tensor)],
    batches: &'a RefCell<dyn BatchSource + 'a>,
    shared: RefCell<HashMap<u32, Vec<Tensor>>>,
    /// Forward/backward passes done so far (for the split record).
    pub passes: RefCell<usize>,
}

impl<'a> GradientProvider<'a> {
    pub fn new(
        context: &'a TrainingContext<'a>,
        contexts: &'a mut dyn FnMut() -> Result<WeightSample, PluginError>,
        parameters: &'a [(String, Tensor)],
        batches: &'a RefCell<dyn BatchSource + 'a>,
    ) -> Self {
        GradientProvider {
            context,
            contexts: RefCell::new(contexts),
            parameters,
            batches,
            shared: RefCell::new(HashMap::new()),
            passes: RefCell::new(0),
        }
    }

    /// The shared-set tensors for scoring `choice_point`, looked up once.
    fn shared_set(&self, choice_point: u32) -> Result<Vec<Tensor>, PluginError> {
        if let Some(found) = self.shared.borrow().get(&choice_point) {
            return Ok(found.iter().map(Tensor::shallow_clone).collect());
        }
        let names = self.context.supernet.shared_parameters(choice_point).into_result()?;
        let by_name: HashMap<&str, &Tensor> = self.parameters.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let tensors = names
            .iter()
            .map(|name| {
                by_name
                    .get(name.as_str())
                    .map(|t| t.shallow_clone())
                    .ok_or_else(|| PluginError::invalid_input(format!("the space names shared parameter `{name}`, which the supernet does not have")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if tensors.is_empty() {
            return Err(PluginError::invalid_input(format!("the space's shared set for choice point {choice_point} is empty")));
        }
        self.shared.borrow_mut().insert(choice_point, tensors.iter().map(Tensor::shallow_clone).collect());
        Ok(tensors)
    }

    /// One repeat: the shared set, and per allowed option the gradient of each of its tensors
    /// (`None` where the option's graph does not reach it: the gradient is zero).
    #[allow(clippy::type_complexity)]
    fn repeat(&self, choice_point: u32) -> Result<(Vec<u32>, Vec<Tensor>, Vec<Vec<Option<Tensor>>>), PluginError> {
        let shared = self.shared_set(choice_point)?;
        let options = self.context.mask.allowed(choice_point as usize);
        if options.is_empty() {
            return Err(PluginError::invalid_input(format!("choice point {choice_point} has no allowed option")));
        }
        let batch = self.batches.borrow_mut().next_batch().map_err(PluginError::other)?;
        let sample = (self.contexts.borrow_mut())()?;
        let context_weights = sample.weights.into_tensor().detach();
        let point = choice_point as i64;
        let mut per_option = Vec::with_capacity(options.len());
        for &option in &options {
            let weights = context_weights.copy();
            let _ = weights.get(point).fill_(0.0);
            let _ = weights.get(point).get(option as i64).fill_(1.0);
            let mut active: Mask = sample.active.clone();
            for (k, on) in active.rows[choice_point as usize].iter_mut().enumerate() {
                *on = k as u32 == option;
            }
            let logits =
                self.context.supernet.forward(TensorRef::new(&batch.images), TensorRef::new(&weights), &active, true).into_result()?.into_tensor();
            // The training loss, label smoothing included (ProxylessNAS-GM scores its blocks
            // with the label-smoothed cross-entropy it trains with).
            let loss = training_cross_entropy(&logits, &batch.labels, self.context.label_smoothing);
            let gradients = Tensor::f_run_backward(&[&loss], &shared, false, false)?;
            *self.passes.borrow_mut() += 1;
            per_option.push(gradients.into_iter().map(|g| g.defined().then_some(g)).collect());
        }
        Ok((options, shared, per_option))
    }
}

impl GradientSource for GradientProvider<'_> {
    fn gradient_gram(&self, choice_point: u32) -> Result<GramSample, PluginError> {
        let (options, shared, gradients) = self.repeat(choice_point)?;
        let k = options.len() as i64;
        // One flat row per option over the parameters with a gradient for some option, then
        // one matrix product: a few large ops instead of several per parameter. Parameters no
        // option reaches (unsampled ops of the context) contribute nothing and are skipped.
        let reached: Vec<usize> = (0..gradients[0].len()).filter(|&p| gradients.iter().any(|per_option| per_option[p].is_some())).collect();
        let gram = if reached.is_empty() {
            Tensor::zeros([k, k], (tch::Kind::Float, tch::Device::Cpu))
        } else {
            let rows: Vec<Tensor> = gradients
                .iter()
                .map(|per_option| {
                    let pieces: Vec<Tensor> = reached
                        .iter()
                        .map(|&p| match &per_option[p] {
                            Some(gradient) => gradient.view(-1),
                            None => shared[p].zeros_like().view(-1),
                        })
                        .collect();
                    Tensor::cat(&pieces, 0)
                })
                .collect();
            let matrix = Tensor::stack(&rows, 0);
            matrix.matmul(&matrix.tr())
        };
        let values = Vec::<f64>::try_from(gram.to_kind(tch::Kind::Double).to_device(tch::Device::Cpu).flatten(0, -1))
            .map_err(|e| PluginError::other(format!("reading the Gram matrix: {e}")))?;
        Ok(GramSample { options: options.into(), gram: values.into() })
    }
}
