//! A fake host for search algorithms: a [`HostContext`] over a toy space, with no real
//! search space behind it.
//!
//! Its "supernet" is linear over fixed features: each option `k` of choice point `e` owns a
//! learnable matrix `W[e, k]`, and `logits = x @ Σ_{e,k} w[e, k] · W[e, k] + bias`, summed over
//! the active options only (as a real supernet skips inactive ones). The forward pass
//! rejects what a real host must never be given: a weights tensor of the wrong shape, an
//! active option the mask disallows, or a nonzero weight on an inactive option.
//!
//! The data, the initial weights and `next_random` come from a private splitmix64 generator,
//! so they do not depend on libtorch's global generator (tests run in parallel threads).
//!
//! [`FakeHost::toy_task`] makes a task in which one option of every choice point is clearly
//! the best: the algorithm suite checks that a search finds it.

use std::cell::{Cell, RefCell};

use crate::{NormalTensor, SeededRng};
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RStr, RVec};
use splitnas_plugin_api::author::AlgorithmPlugin;
use splitnas_plugin_api::{
    AlgorithmSetup, Architecture, ArchitectureStep, Batch, ChoicePointInfo, Device, HostContext, HostContextRef, HostContext_TO, Mask, NamedTensor,
    NetworkStats, OptionCosts, OptionInfo, OwnedTensor, PluginError, PluginResult, SpaceInfo, TensorRef, TrainingProgress,
};
use tch::{Kind, Tensor};

pub const FEATURES: i64 = 6;
pub const CLASSES: i64 = 3;
pub const BATCH_SIZE: i64 = 32;
const TRAIN_SIZE: i64 = 256;
const VALID_SIZE: i64 = 128;

/// Option counts of the test space's choice points; `max_options` is 4, so choice point 2
/// has a padding column that no mask may allow.
pub const OPTION_COUNTS: [usize; 4] = [4, 4, 3, 4];

/// The sub-supernet the tests search: every option of choice point 0, two of choice point 1,
/// a single one of choice point 2 (its row must still work), three of choice point 3.
pub fn test_mask() -> Mask {
    let rows: [[bool; 4]; 4] = [[true, true, true, true], [true, false, true, false], [false, true, false, false], [true, true, false, true]];
    Mask { rows: rows.iter().map(|row| row.iter().copied().collect()).collect() }
}

pub fn test_space() -> SpaceInfo {
    SpaceInfo {
        name: "linear-test".into(),
        choice_points: OPTION_COUNTS
            .iter()
            .enumerate()
            .map(|(point, &count)| ChoicePointInfo {
                name: format!("point {point}").into(),
                group: "test".into(),
                options: (0..count).map(|option| OptionInfo { name: format!("op{option}").into(), costs: RVec::new() }).collect(),
                splittable: true,
            })
            .collect(),
        max_options: 4,
        min_group_size: 1,
    }
}

/// Choice points and options of [`toy_space`].
pub const TOY_CHOICE_POINTS: usize = 3;
pub const TOY_OPTIONS: usize = 3;

/// The space of [`FakeHost::toy_task`]: 3 choice points of 3 options each.
pub fn toy_space() -> SpaceInfo {
    SpaceInfo {
        name: "toy-task".into(),
        choice_points: (0..TOY_CHOICE_POINTS)
            .map(|point| ChoicePointInfo {
                name: format!("point {point}").into(),
                group: "toy".into(),
                options: (0..TOY_OPTIONS).map(|option| OptionInfo { name: format!("op{option}").into(), costs: RVec::new() }).collect(),
                splittable: true,
            })
            .collect(),
        max_options: TOY_OPTIONS as u32,
        min_group_size: 1,
    }
}

pub fn test_setup() -> AlgorithmSetup {
    AlgorithmSetup { space: test_space(), mask: test_mask(), device: Device::Cpu, seed: 0 }
}

/// What one call of `forward` was given.
pub struct RecordedForward {
    pub weights: Tensor,
    pub active: Mask,
    pub train: bool,
}

/// How a fake host counts an architecture's FLOPs.
type FlopsOf = Box<dyn Fn(&Architecture) -> u64>;
type LatencyOf = Box<dyn Fn(&Architecture) -> f64>;

pub struct FakeHost {
    pub space: SpaceInfo,
    pub mask: Mask,
    /// `[choice points, max_options, FEATURES, CLASSES]`, learnable.
    pub option_weights: Tensor,
    /// `[CLASSES]`, learnable.
    pub bias: Tensor,
    train_images: Tensor,
    train_labels: Tensor,
    valid_images: Tensor,
    valid_labels: Tensor,
    random: RefCell<SeededRng>,
    pub progress: Cell<TrainingProgress>,
    pub metrics: RefCell<Vec<(String, f64)>>,
    pub forwards: RefCell<Vec<RecordedForward>>,
    pub evaluated: RefCell<Vec<Architecture>>,
    pub derived_from: RefCell<Vec<Tensor>>,
    /// The validation accuracy `evaluate` reports for an architecture.
    scorer: Box<dyn Fn(&Architecture) -> f64>,
    /// `derive` keeps only this many choice points, the strongest (like the DARTS space's
    /// top-2 edges per node); the others are absent.
    keep_strongest: Option<usize>,
    /// `[FEATURES, CLASSES]`: the labels are the argmax of `images @ teacher`.
    teacher: Tensor,
    /// What `option_costs` offers (ABI 1.3); `None` as a run that names no cost.
    option_costs: Option<OptionCosts>,
    /// What `label_smoothing` answers (ABI 1.3).
    label_smoothing: f64,
    /// The FLOPs `network_stats` reports for an architecture (ABI 1.4); `None`: unsupported,
    /// as a host built before ABI 1.4.
    flops_of: Option<FlopsOf>,
    latency_of: Option<LatencyOf>,
    /// The requests `reorganize_supernet` received (ABI 1.4), in order.
    pub reorganizations: RefCell<Vec<String>>,
}

impl FakeHost {
    /// The linear test space ([`test_space`]) restricted to [`test_mask`], with learnable
    /// random option weights.
    pub fn new(seed: u64) -> Self {
        Self::with_space(test_space(), test_mask(), seed)
    }

    /// A host over any space and mask (option counts and `max_options` from `space`), with
    /// learnable random option weights.
    pub fn with_space(space: SpaceInfo, mask: Mask, seed: u64) -> Self {
        let mut generator = SeededRng::new(seed);
        let points = space.num_choice_points() as i64;
        let max_options = i64::from(space.max_options);
        // Labels from a random linear teacher, so that the student can learn them.
        let teacher = generator.normal_tensor(&[FEATURES, CLASSES]);
        let train_images = generator.normal_tensor(&[TRAIN_SIZE, FEATURES]);
        let valid_images = generator.normal_tensor(&[VALID_SIZE, FEATURES]);
        let train_labels = train_images.matmul(&teacher).argmax(-1, false);
        let valid_labels = valid_images.matmul(&teacher).argmax(-1, false);
        let option_weights = (generator.normal_tensor(&[points, max_options, FEATURES, CLASSES]) * 0.1).set_requires_grad(true);
        let bias = Tensor::zeros([CLASSES], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        FakeHost {
            space,
            mask,
            option_weights,
            bias,
            train_images,
            train_labels,
            valid_images,
            valid_labels,
            random: RefCell::new(SeededRng::new(seed ^ 0x5EED)),
            progress: Cell::new(TrainingProgress { epoch: 0, total_epochs: 1 }),
            metrics: RefCell::new(Vec::new()),
            forwards: RefCell::new(Vec::new()),
            evaluated: RefCell::new(Vec::new()),
            derived_from: RefCell::new(Vec::new()),
            scorer: Box::new(|_| 0.5),
            keep_strongest: None,
            teacher,
            option_costs: None,
            label_smoothing: 0.0,
            flops_of: None,
            latency_of: None,
            reorganizations: RefCell::new(Vec::new()),
        }
    }

    /// A task in which option `good` of every choice point is clearly the best: the toy space
    /// has [`TOY_CHOICE_POINTS`] choice points of [`TOY_OPTIONS`] options (full mask); option
    /// `good` carries the labels' teacher, every other option pushes against it. Train it with
    /// a weight learning rate of 0 (the option weights are the task). `evaluate` reports the
    /// mean probability of the true class on the validation split along the architecture's
    /// single path (a smooth accuracy: highest when every choice point picks `good`).
    pub fn toy_task(seed: u64, good: usize) -> Self {
        assert!(good < TOY_OPTIONS, "the toy task has {TOY_OPTIONS} options");
        let space = toy_space();
        let mask = space.full_mask();
        let mut host = Self::with_space(space, mask, seed);
        let share = 1.0 / TOY_CHOICE_POINTS as f64;
        let rows: Vec<Tensor> = (0..TOY_CHOICE_POINTS * TOY_OPTIONS)
            .map(|index| if index % TOY_OPTIONS == good { &host.teacher * share } else { &host.teacher * (-0.5 * share) })
            .collect();
        host.option_weights = Tensor::stack(&rows, 0).view([TOY_CHOICE_POINTS as i64, TOY_OPTIONS as i64, FEATURES, CLASSES]).set_requires_grad(true);
        let (images, labels, option_weights) =
            (host.valid_images.shallow_clone(), host.valid_labels.shallow_clone(), host.option_weights.shallow_clone());
        host.scorer = Box::new(move |architecture: &Architecture| {
            let _no_grad = tch::no_grad_guard();
            let mut weights = vec![0f32; TOY_CHOICE_POINTS * TOY_OPTIONS];
            for (point, &choice) in architecture.choices.iter().enumerate() {
                weights[point * TOY_OPTIONS + choice as usize] = 1.0;
            }
            let weights = Tensor::from_slice(&weights).view([TOY_CHOICE_POINTS as i64, TOY_OPTIONS as i64]);
            let mixed = Tensor::einsum("ek,ekdc->dc", &[weights, option_weights.shallow_clone()], None::<i64>);
            let probabilities = images.matmul(&mixed).softmax(-1, Kind::Float);
            probabilities.gather(1, &labels.unsqueeze(1), false).mean(Kind::Float).double_value(&[])
        });
        host
    }

    /// The algorithm setup of this host's space and mask.
    pub fn setup(&self, seed: u64) -> AlgorithmSetup {
        AlgorithmSetup { space: self.space.clone(), mask: self.mask.clone(), device: Device::Cpu, seed }
    }

    /// Makes `derive` keep only the `count` choice points whose best allowed weight is largest
    /// (the first on ties), the others absent, as the DARTS space does per node.
    pub fn with_keep_strongest(mut self, count: usize) -> Self {
        self.keep_strongest = Some(count);
        self
    }

    /// Makes `evaluate` report `scorer(architecture)`.
    pub fn with_scorer(mut self, scorer: impl Fn(&Architecture) -> f64 + 'static) -> Self {
        self.scorer = Box::new(scorer);
        self
    }

    /// Makes `option_costs` offer `values[choice point][option]` under the name `metric`.
    pub fn with_option_costs(mut self, metric: &str, values: Vec<Vec<f64>>) -> Self {
        self.option_costs = Some(OptionCosts { metric: metric.into(), values: values.into_iter().map(RVec::from).collect() });
        self
    }

    /// Makes `network_stats` answer `flops(architecture)` FLOPs (and no parameters).
    pub fn with_network_flops(mut self, flops: impl Fn(&Architecture) -> u64 + 'static) -> Self {
        self.flops_of = Some(Box::new(flops));
        self
    }

    /// Makes `network_latency_ms` answer `latency(architecture)` milliseconds.
    pub fn with_network_latency(mut self, latency: impl Fn(&Architecture) -> f64 + 'static) -> Self {
        self.latency_of = Some(Box::new(latency));
        self
    }

    /// Makes `label_smoothing` answer `epsilon`.
    pub fn with_label_smoothing(mut self, epsilon: f64) -> Self {
        self.label_smoothing = epsilon;
        self
    }

    pub fn context(&self) -> HostContextRef<'_> {
        HostContext_TO::from_ptr(self, TD_Opaque)
    }

    pub fn train_batch(&self, step: usize) -> Batch {
        batch(&self.train_images, &self.train_labels, step)
    }

    pub fn valid_batch(&self, step: usize) -> Batch {
        batch(&self.valid_images, &self.valid_labels, step)
    }

    /// The supernet's learnable parameters.
    pub fn parameters(&self) -> Vec<Tensor> {
        vec![self.option_weights.shallow_clone(), self.bias.shallow_clone()]
    }

    /// The linear supernet as a pure function of its parameters (tests differentiate through it).
    pub fn logits_with(images: &Tensor, option_weights: &Tensor, bias: &Tensor, weights: &Tensor, active: &Mask) -> Tensor {
        let active_flat: Vec<f32> = active.rows.iter().flat_map(|row| row.iter().map(|&on| if on { 1.0 } else { 0.0 })).collect();
        let active = Tensor::from_slice(&active_flat).view_as(weights);
        let mixed = Tensor::einsum("ek,ekdc->dc", &[weights * active, option_weights.shallow_clone()], None::<i64>);
        images.matmul(&mixed) + bias
    }

    /// Mean cross-entropy over the whole training split with the given mixing weights.
    pub fn train_loss(&self, weights: &Tensor, active: &Mask) -> f64 {
        let _no_grad = tch::no_grad_guard();
        let logits = Self::logits_with(&self.train_images, &self.option_weights, &self.bias, weights, active);
        logits.cross_entropy_for_logits(&self.train_labels).double_value(&[])
    }

    fn check_forward(&self, weights: &Tensor, active: &Mask) -> Result<(), PluginError> {
        let expected = [self.space.num_choice_points() as i64, i64::from(self.space.max_options)];
        if weights.size() != expected || weights.kind() != Kind::Float {
            return Err(PluginError::invalid_input(format!("weights must be f32 {expected:?}, got {:?} {:?}", weights.kind(), weights.size())));
        }
        if active.rows.len() != self.mask.rows.len() {
            return Err(PluginError::invalid_input("the active mask has the wrong number of rows"));
        }
        let values = Vec::<Vec<f32>>::try_from(&weights.detach()).map_err(PluginError::from)?;
        for (point, row) in active.rows.iter().enumerate() {
            for (option, &on) in row.iter().enumerate() {
                if on && !self.mask.is_allowed(point, option) {
                    return Err(PluginError::invalid_input(format!("option {option} of choice point {point} is active but not allowed")));
                }
                if !on && values[point][option] != 0.0 {
                    return Err(PluginError::invalid_input(format!(
                        "option {option} of choice point {point} is inactive but has weight {}",
                        values[point][option]
                    )));
                }
            }
        }
        Ok(())
    }
}

fn batch(images: &Tensor, labels: &Tensor, step: usize) -> Batch {
    let batches = images.size()[0] / BATCH_SIZE;
    let start = (step as i64 % batches) * BATCH_SIZE;
    Batch { images: OwnedTensor::new(images.narrow(0, start, BATCH_SIZE)), labels: OwnedTensor::new(labels.narrow(0, start, BATCH_SIZE)) }
}

fn answer<T>(body: impl FnOnce() -> Result<T, PluginError>) -> PluginResult<T> {
    RResult::from(body())
}

impl HostContext for FakeHost {
    fn device(&self) -> PluginResult<Device> {
        RResult::ROk(Device::Cpu)
    }

    fn space_info(&self) -> PluginResult<SpaceInfo> {
        RResult::ROk(self.space.clone())
    }

    fn mask(&self) -> PluginResult<Mask> {
        RResult::ROk(self.mask.clone())
    }

    fn progress(&self) -> PluginResult<TrainingProgress> {
        RResult::ROk(self.progress.get())
    }

    fn forward(&self, input: TensorRef<'_>, weights: TensorRef<'_>, active: &Mask, train: bool) -> PluginResult<OwnedTensor> {
        answer(|| {
            let weights = weights.tensor();
            self.check_forward(&weights, active)?;
            self.forwards.borrow_mut().push(RecordedForward { weights: weights.detach().copy(), active: active.clone(), train });
            let logits = Self::logits_with(&input.tensor(), &self.option_weights, &self.bias, &weights, active);
            Ok(OwnedTensor::new(logits))
        })
    }

    fn supernet_parameters(&self) -> PluginResult<RVec<NamedTensor>> {
        RResult::ROk(vec![NamedTensor::share("option_weights", &self.option_weights), NamedTensor::share("bias", &self.bias)].into())
    }

    fn evaluate(&self, architecture: &Architecture) -> PluginResult<f64> {
        answer(|| {
            let absent_allowed = self.keep_strongest.is_some();
            if !self.mask.contains(architecture) || (!absent_allowed && architecture.choices.contains(&Architecture::ABSENT)) {
                return Err(PluginError::invalid_input(format!("evaluate: {:?} is not in the sub-space", architecture.choices)));
            }
            self.evaluated.borrow_mut().push(architecture.clone());
            Ok((self.scorer)(architecture))
        })
    }

    /// Argmax per choice point within the mask, like the NB201 space.
    fn derive(&self, weights: TensorRef<'_>) -> PluginResult<Architecture> {
        answer(|| {
            let weights = weights.tensor().detach().copy();
            let values = Vec::<Vec<f32>>::try_from(&weights).map_err(PluginError::from)?;
            self.derived_from.borrow_mut().push(weights);
            let mut choices: Vec<u32> = values
                .iter()
                .enumerate()
                .map(|(point, row)| {
                    let allowed = self.mask.allowed(point);
                    *allowed
                        .iter()
                        .max_by(|&&a, &&b| row[a as usize].total_cmp(&row[b as usize]).then(b.cmp(&a)))
                        .expect("every row allows an option")
                })
                .collect();
            if let Some(count) = self.keep_strongest {
                let mut order: Vec<usize> = (0..choices.len()).collect();
                order.sort_by(|&a, &b| values[b][choices[b] as usize].total_cmp(&values[a][choices[a] as usize]));
                for &point in &order[count..] {
                    choices[point] = Architecture::ABSENT;
                }
            }
            let choices = choices.into();
            Ok(Architecture { choices })
        })
    }

    fn next_random(&self) -> PluginResult<u64> {
        RResult::ROk(self.random.borrow_mut().next_u64())
    }

    fn log_metric(&self, name: RStr<'_>, value: f64) -> PluginResult<()> {
        self.metrics.borrow_mut().push((name.to_string(), value));
        RResult::ROk(())
    }

    fn option_costs(&self) -> PluginResult<ROption<OptionCosts>> {
        RResult::ROk(self.option_costs.clone().into())
    }

    fn label_smoothing(&self) -> PluginResult<f64> {
        RResult::ROk(self.label_smoothing)
    }

    /// Records the request; the fake supernet has nothing to reorder.
    fn reorganize_supernet(&self, request: RStr<'_>) -> PluginResult<()> {
        self.reorganizations.borrow_mut().push(request.to_string());
        RResult::ROk(())
    }

    fn network_stats(&self, architecture: &Architecture) -> PluginResult<NetworkStats> {
        answer(|| match &self.flops_of {
            Some(flops) if self.mask.contains(architecture) => Ok(NetworkStats { parameters: 0, flops: flops(architecture) }),
            Some(_) => Err(PluginError::invalid_input(format!("network_stats: {:?} is not in the sub-space", architecture.choices))),
            None => Err(PluginError::unsupported("network_stats: this fake host was not given FLOPs (`with_network_flops`)")),
        })
    }

    fn network_latency_ms(&self, architecture: &Architecture) -> PluginResult<f64> {
        answer(|| match &self.latency_of {
            Some(latency) if self.mask.contains(architecture) => Ok(latency(architecture)),
            Some(_) => Err(PluginError::invalid_input(format!("network_latency_ms: {:?} is not in the sub-space", architecture.choices))),
            None => Err(PluginError::unsupported("network_latency_ms: this fake host was not given latencies (`with_network_latency`)")),
        })
    }
}

/// Plain Adam (β = 0.9, 0.999), as the host's architecture optimizer would step α.
pub struct Adam {
    learning_rate: f64,
    step: i32,
    moments: Vec<(Tensor, Tensor)>,
}

impl Adam {
    pub fn new(parameters: &[Tensor], learning_rate: f64) -> Self {
        Adam { learning_rate, step: 0, moments: parameters.iter().map(|p| (p.zeros_like(), p.zeros_like())).collect() }
    }

    pub fn step(&mut self, parameters: &[Tensor], gradients: &[Tensor]) {
        let _no_grad = tch::no_grad_guard();
        self.step += 1;
        let (beta1, beta2) = (0.9f64, 0.999f64);
        for ((parameter, gradient), (first, second)) in parameters.iter().zip(gradients).zip(&mut self.moments) {
            *first = &*first * beta1 + gradient * (1.0 - beta1);
            *second = &*second * beta2 + gradient.square() * (1.0 - beta2);
            let first_hat = &*first / (1.0 - beta1.powi(self.step));
            let second_hat = &*second / (1.0 - beta2.powi(self.step));
            let update = first_hat / (second_hat.sqrt() + 1e-8) * self.learning_rate;
            let _ = parameter.shallow_clone().g_sub_(&update);
        }
    }
}

/// Gradients of `loss` with respect to `inputs`, zeros where it does not depend on them.
pub fn gradients(loss: &Tensor, inputs: &[Tensor]) -> Vec<Tensor> {
    Tensor::run_backward(&[loss], inputs, false, false)
        .into_iter()
        .zip(inputs)
        .map(|(gradient, input)| if gradient.defined() { gradient } else { input.zeros_like() })
        .collect()
}

/// The host's training loop in miniature: per step a weight step (SGD on the supernet, and
/// Adam on α when the loss trains it), then an architecture step.
pub fn run_search<A: AlgorithmPlugin>(host: &FakeHost, algorithm: &mut A, steps: usize, weight_lr: f64, architecture_lr: f64) {
    let context = host.context();
    let alpha: Vec<Tensor> = algorithm.architecture_parameters().unwrap().into_iter().map(|named| named.tensor.into_tensor()).collect();
    let mut adam = Adam::new(&alpha, architecture_lr);
    for step in 0..steps {
        let (train, valid) = (host.train_batch(step), host.valid_batch(step));
        let output = algorithm.weight_step(&context, &train).unwrap();
        let loss = output.loss.into_tensor();
        let parameters = host.parameters();
        let mut inputs: Vec<Tensor> = parameters.iter().map(Tensor::shallow_clone).collect();
        if output.trains_architecture {
            inputs.extend(alpha.iter().map(Tensor::shallow_clone));
        }
        let mut all_gradients = gradients(&loss, &inputs);
        let architecture_gradients = all_gradients.split_off(parameters.len());
        {
            let _no_grad = tch::no_grad_guard();
            for (parameter, gradient) in parameters.iter().zip(&all_gradients) {
                let _ = parameter.shallow_clone().g_sub_(&(gradient * weight_lr));
            }
        }
        if output.trains_architecture {
            adam.step(&alpha, &architecture_gradients);
        }
        match algorithm.architecture_step(&context, &valid, &train).unwrap() {
            ArchitectureStep::Skip => {}
            ArchitectureStep::Loss(loss) => adam.step(&alpha, &gradients(&loss.into_tensor(), &alpha)),
            ArchitectureStep::GradientsWritten => {
                let written: Vec<Tensor> = alpha.iter().map(|a| a.grad().copy()).collect();
                adam.step(&alpha, &written);
                for a in &alpha {
                    a.shallow_clone().zero_grad();
                }
            }
        }
    }
}

/// Runs `steps` of the miniature search and checks that it learns: the training loss under
/// the evaluation weights falls below 70% of where it started and α moves by more than 0.01.
/// Returns α for the caller's own checks.
pub fn assert_search_learns<A: AlgorithmPlugin>(host: &FakeHost, algorithm: &mut A, steps: usize) -> Tensor {
    let alpha = alpha_of(algorithm);
    let initial_alpha = alpha.detach().copy();
    let context = host.context();
    let before = algorithm.evaluation_sample(&context).unwrap();
    let loss_before = host.train_loss(&before.weights.tensor(), &before.active);
    run_search(host, algorithm, steps, 0.5, 0.05);
    let after = algorithm.evaluation_sample(&context).unwrap();
    let loss_after = host.train_loss(&after.weights.tensor(), &after.active);
    assert!(loss_after < 0.7 * loss_before, "training loss {loss_before} -> {loss_after}");
    let moved = (&alpha - &initial_alpha).abs().max().double_value(&[]);
    assert!(moved > 0.01, "α moved by {moved}");
    alpha
}

/// The single architecture parameter tensor of an algorithm (shares α's storage).
pub fn alpha_of<A: AlgorithmPlugin>(algorithm: &A) -> Tensor {
    let mut parameters = algorithm.architecture_parameters().unwrap();
    assert_eq!(parameters.len(), 1, "one architecture tensor");
    let named = parameters.pop().unwrap();
    assert_eq!(named.name.as_str(), "alpha");
    named.tensor.into_tensor()
}

/// Rows of a 2-D tensor as host vectors.
pub fn rows(tensor: &Tensor) -> Vec<Vec<f32>> {
    Vec::<Vec<f32>>::try_from(&tensor.detach().to_kind(Kind::Float)).unwrap()
}

/// A configuration: the component's defaults with `overrides` merged in, as the host does.
pub fn config_with<A: AlgorithmPlugin>(overrides: serde_json::Value) -> String {
    let mut config = A::default_config();
    for (key, value) in overrides.as_object().expect("overrides are an object") {
        config[key] = value.clone();
    }
    config.to_string()
}
