//! The NB201 supernet: every edge of every search cell mixes its active options by
//! `weights[edge, option]` (α shared by all cells).
//!
//! Search-cell ops use batch norm without affine (the mixing weight alone scales an op) but with
//! running statistics, so that evaluation mode uses them; convs there have a bias (NB201's
//! `bias = not affine`). The stem, reduction blocks and head use affine batch norm.
//!
//! Every op of every edge is created whatever the mask: parameter names are then identical for
//! every sub-supernet, and children inherit their parent's tensors by name. Disallowed options
//! are simply never computed.

use splitnas_nn_blocks::mixing::{MixingWeight, MixingWeights};
use splitnas_nn_blocks::{is_under, BatchNormSpec, NamedVariables, ParamInit};
use splitnas_plugin_api::author::SupernetPlugin;
use splitnas_plugin_api::{Device, Mask, NamedTensor, PluginError};
use tch::nn::{Path, VarStore};
use tch::{TchError, Tensor};

use crate::cell::{run_cell, CellOp};
use crate::skeleton::{layer_prefix, Skeleton};
use crate::space::{edge_name, validate_mask, Operation, NUM_EDGES, NUM_OPERATIONS};
use crate::Nb201Config;

/// A search cell: `ops[edge][option]`, named `cells.{i}.edges.{to<-from}.{op}.*`.
pub struct SearchCell {
    ops: Vec<Vec<CellOp>>,
}

impl SearchCell {
    fn new(path: &Path, channels: i64, init: ParamInit) -> Result<Self, TchError> {
        let ops = (0..NUM_EDGES)
            .map(|edge| {
                let edge_path = path / "edges" / edge_name(edge);
                Operation::ALL
                    .into_iter()
                    .map(|op| CellOp::new(&(&edge_path / op.name()), op, channels, BatchNormSpec::NON_AFFINE, init))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SearchCell { ops })
    }

    /// `mixing[edge]` lists the computed options and their weights.
    fn forward(&self, input: &Tensor, mixing: &[Vec<(usize, MixingWeight)>], train: bool) -> Result<Tensor, TchError> {
        run_cell(input, |edge, node| {
            let mut sum: Option<Tensor> = None;
            for (option, weight) in &mixing[edge] {
                if let Some(output) = self.ops[edge][*option].forward(node, train)? {
                    let weighted = weight.apply(output)?;
                    sum = Some(match sum {
                        None => weighted,
                        Some(partial) => partial.f_add(&weighted)?,
                    });
                }
            }
            Ok(sum)
        })
    }
}

pub struct Nb201Supernet {
    skeleton: Skeleton<SearchCell>,
    variables: NamedVariables,
    mask: Mask,
    cell_layers: Vec<usize>,
    reduction_layers: Vec<usize>,
    // Owns the tensors' registry; the blocks and `variables` hold handles sharing storage.
    _var_store: VarStore,
}

impl Nb201Supernet {
    /// `mask` must already be valid (see `space::validate_space_mask`).
    pub fn new(config: &Nb201Config, mask: &Mask, device: Device) -> Result<Self, PluginError> {
        let var_store = VarStore::new(device.to_tch());
        let skeleton = Skeleton::new(&var_store.root(), config, ParamInit::PyTorchDefault, |path, channels| {
            SearchCell::new(path, channels, ParamInit::PyTorchDefault)
        })?;
        let (cell_layers, reduction_layers) = skeleton.layer_indices();
        let variables = NamedVariables::of(&var_store);
        Ok(Nb201Supernet { skeleton, variables, mask: mask.clone(), cell_layers, reduction_layers, _var_store: var_store })
    }

    fn check_choice_point(choice_point: u32) -> Result<usize, PluginError> {
        let edge = choice_point as usize;
        if edge >= NUM_EDGES {
            return Err(PluginError::invalid_input(format!(
                "choice point {choice_point} does not exist: nb201 has {NUM_EDGES} (0..={})",
                NUM_EDGES - 1
            )));
        }
        Ok(edge)
    }

    /// Whether parameter `name` belongs to an op of `edge` in some search cell.
    fn is_edge_parameter(&self, name: &str, edge: usize) -> bool {
        let edge = edge_name(edge);
        self.cell_layers.iter().any(|&cell| is_under(name, &format!("{}.edges.{edge}", layer_prefix(cell))))
    }

    fn is_reduction_parameter(&self, name: &str) -> bool {
        self.reduction_layers.iter().any(|&layer| is_under(name, &layer_prefix(layer)))
    }

    /// The computed options of every edge with their weights. `none` is left out: it
    /// contributes zero.
    fn mixing(&self, weights: &Tensor, active: &Mask) -> Result<Vec<Vec<(usize, MixingWeight)>>, PluginError> {
        if weights.size() != [NUM_EDGES as i64, NUM_OPERATIONS as i64] {
            return Err(PluginError::invalid_input(format!(
                "weights must be [{NUM_EDGES}, {NUM_OPERATIONS}] (edges x options), got {:?}",
                weights.size()
            )));
        }
        validate_mask(active, "the active mask")?;
        let mixing_weights = MixingWeights::new(weights)?;
        let mut mixing = Vec::with_capacity(NUM_EDGES);
        for edge in 0..NUM_EDGES {
            let mut computed = Vec::new();
            for option in active.allowed(edge) {
                let option = option as usize;
                if !self.mask.is_allowed(edge, option) {
                    return Err(PluginError::invalid_input(format!(
                        "option {} of edge {} is active but outside this supernet's mask",
                        Operation::ALL[option].name(),
                        edge_name(edge)
                    )));
                }
                if Operation::ALL[option] != Operation::None {
                    let weight = mixing_weights.weight(edge, option)?;
                    computed.push((option, weight));
                }
            }
            mixing.push(computed);
        }
        Ok(mixing)
    }
}

impl Nb201Supernet {
    /// Names of the parameters owned by the options of one edge (in every cell). Not part of
    /// the plugin contract any more (ABI 1.1 retired `choice_point_parameters`); tests use it.
    pub fn owned_parameters(&self, choice_point: u32) -> Result<Vec<String>, PluginError> {
        let edge = Self::check_choice_point(choice_point)?;
        Ok(self.variables.parameter_names().filter(|name| self.is_edge_parameter(name, edge)).map(str::to_string).collect())
    }
}

fn share_all(named: &[(String, Tensor)]) -> Vec<NamedTensor> {
    named.iter().map(|(name, tensor)| NamedTensor::share(name.as_str(), tensor)).collect()
}

impl SupernetPlugin for Nb201Supernet {
    fn forward(&self, input: &Tensor, weights: &Tensor, active: &Mask, train: bool) -> Result<Tensor, PluginError> {
        let mixing = self.mixing(weights, active)?;
        self.skeleton.forward(input, train, |cell, features| cell.forward(features, &mixing, train))
    }

    fn parameters(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(share_all(&self.variables.parameters))
    }

    fn buffers(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(share_all(&self.variables.buffers))
    }

    /// Every search-cell op parameter except `choice_point`'s (in every cell, since α is
    /// shared), plus the reduction blocks; not the stem, head batch norm or classifier.
    fn shared_parameters(&self, choice_point: u32) -> Result<Vec<String>, PluginError> {
        let scored = Self::check_choice_point(choice_point)?;
        Ok(self
            .variables
            .parameter_names()
            .filter(|name| {
                let other_edge = (0..NUM_EDGES).any(|edge| edge != scored && self.is_edge_parameter(name, edge));
                other_edge || self.is_reduction_parameter(name)
            })
            .map(str::to_string)
            .collect())
    }
}
