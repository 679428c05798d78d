//! The gradient provider of gradient matching (DESIGN.md section 5, step 2).
//!
//! For a candidate choice point, one *repeat* is: one training batch and one context sample
//! from the search algorithm, shared by every allowed option; for each option k the choice
//! point is forced to k (weight 1, the only active option), forward, cross-entropy, and the
//! gradient of the space's shared set alone (`run_backward` on exactly those tensors: no
//! other gradient is computed). The K×K Gram matrix is accumulated parameter tensor by
//! parameter tensor on the device, without concatenating, and read back once per repeat.

use std::cell::RefCell;
use std::collections::HashMap;

use splitnas_plugin_api::{GramSample, Mask, OptionGradients, OwnedTensor, PluginError, TensorRef, WeightSample};
use tch::Tensor;

use crate::criterion::GradientSource;
use crate::data::BatchSource;
use crate::search::TrainingContext;

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
        GradientProvider { context, contexts: RefCell::new(contexts), parameters, batches, shared: RefCell::new(HashMap::new()), passes: RefCell::new(0) }
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
                by_name.get(name.as_str()).map(|t| t.shallow_clone()).ok_or_else(|| {
                    PluginError::invalid_input(format!("the space names shared parameter `{name}`, which the supernet does not have"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if tensors.is_empty() {
            return Err(PluginError::invalid_input(format!("the space's shared set for choice point {choice_point} is empty")));
        }
        self.shared.borrow_mut().insert(choice_point, tensors.iter().map(Tensor::shallow_clone).collect());
        Ok(tensors)
    }

    /// One repeat: per allowed option, the gradients of the shared set (undefined → zeros).
    fn repeat(&self, choice_point: u32) -> Result<(Vec<u32>, Vec<Vec<Tensor>>), PluginError> {
        let shared = self.shared_set(choice_point)?;
        let options = self.context.mask.allowed(choice_point as usize);
        if options.is_empty() {
            return Err(PluginError::invalid_input(format!("choice point {choice_point} has no allowed option")));
        }
        let batch = self.batches.borrow_mut().next_batch();
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
            let logits = self.context.supernet.forward(TensorRef::new(&batch.images), TensorRef::new(&weights), &active, true).into_result()?.into_tensor();
            let loss = logits.cross_entropy_for_logits(&batch.labels);
            let gradients = Tensor::f_run_backward(&[&loss], &shared, false, false)?;
            *self.passes.borrow_mut() += 1;
            per_option.push(gradients.into_iter().zip(&shared).map(|(g, p)| if g.defined() { g } else { p.zeros_like() }).collect());
        }
        Ok((options, per_option))
    }
}

impl GradientSource for GradientProvider<'_> {
    fn gradient_gram(&self, choice_point: u32) -> Result<GramSample, PluginError> {
        let (options, gradients) = self.repeat(choice_point)?;
        let k = options.len() as i64;
        let device = gradients[0][0].device();
        let mut gram = Tensor::zeros([k, k], (tch::Kind::Float, device));
        for parameter in 0..gradients[0].len() {
            let rows: Vec<Tensor> = gradients.iter().map(|per_parameter| per_parameter[parameter].flatten(0, -1)).collect();
            let matrix = Tensor::stack(&rows, 0);
            gram += matrix.matmul(&matrix.tr());
        }
        let values = Vec::<f64>::try_from(gram.to_kind(tch::Kind::Double).to_device(tch::Device::Cpu).flatten(0, -1))
            .map_err(|e| PluginError::other(format!("reading the Gram matrix: {e}")))?;
        Ok(GramSample { options: options.into(), gram: values.into() })
    }

    fn option_gradients(&self, choice_point: u32) -> Result<OptionGradients, PluginError> {
        let (options, gradients) = self.repeat(choice_point)?;
        let rows: Vec<Tensor> = gradients.iter().map(|per_parameter| Tensor::cat(&per_parameter.iter().map(|g| g.flatten(0, -1)).collect::<Vec<_>>(), 0)).collect();
        Ok(OptionGradients { options: options.into(), gradients: OwnedTensor::new(Tensor::stack(&rows, 0)) })
    }
}
