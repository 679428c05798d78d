//! The DARTS search network: every edge of every cell mixes its active options by
//! `weights[choice point, option]`; α is shared by all cells of a kind (normal-cell edges are
//! choice points 0..14, reduction-cell edges 14..28).
//!
//! As in DARTS's `model_search.py`: the mixed ops and the preprocess layers use batch norm
//! without affine (with running statistics, so that evaluation mode uses them), pooling ops are
//! followed by such a batch norm, the stem's batch norm is affine. Every op of every edge is
//! created whatever the mask, so parameter names are the same for every sub-supernet and
//! children inherit their parent's tensors by name; disallowed options are never computed.

use splitnas_nn_blocks::{BatchNormSpec, NamedVariables, ParamInit};
use splitnas_plugin_api::author::SupernetPlugin;
use splitnas_plugin_api::{Device, Mask, NamedTensor, PluginError};
use tch::nn::{Path, VarStore};
use tch::{TchError, Tensor};

use crate::cell::{cell_output_side, edge_stride, run_cell, CellLayout, CellOp, Preprocess};
use crate::skeleton::{Skeleton, SkeletonShape};
use crate::space::{
    choice_point_edge, choice_point_name, edge_name, validate_mask, CellKind, Operation, EDGES_PER_CELL, NUM_CHOICE_POINTS, NUM_OPERATIONS,
};
use crate::DartsConfig;

/// A search cell: `ops[edge][option]`, named `cells.{i}.edges.{to<-from}.{op}.*`.
pub struct SearchCell {
    preprocess: Preprocess,
    ops: Vec<Vec<CellOp>>,
}

impl SearchCell {
    fn new(path: &Path, layout: &CellLayout, init: ParamInit) -> Result<Self, TchError> {
        let preprocess = Preprocess::new(path, layout, BatchNormSpec::NON_AFFINE, init)?;
        let ops = (0..EDGES_PER_CELL)
            .map(|edge| {
                let edge_path = path / "edges" / edge_name(edge);
                let stride = edge_stride(layout.kind, edge);
                Operation::ALL
                    .into_iter()
                    .map(|op| CellOp::new(&(&edge_path / op.name()), op, layout.channels, stride, true, init))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SearchCell { preprocess, ops })
    }

    /// `mixing[edge]` lists this cell kind's computed options and their weights.
    fn forward(&self, layout: &CellLayout, s0: &Tensor, s1: &Tensor, mixing: &[Vec<(usize, Tensor)>], train: bool) -> Result<Tensor, TchError> {
        let (p0, p1) = self.preprocess.forward(s0, s1, train)?;
        let size = p1.size();
        let side = cell_output_side(layout.kind, size[2]);
        let node_shape = [size[0], layout.channels, side, cell_output_side(layout.kind, size[3])];
        run_cell(p0, p1, node_shape, |edge, input| {
            let mut sum: Option<Tensor> = None;
            for (option, weight) in &mixing[edge] {
                let weighted = self.ops[edge][*option].forward(input, train)?.f_mul(weight)?;
                sum = Some(match sum {
                    None => weighted,
                    Some(partial) => partial.f_add(&weighted)?,
                });
            }
            Ok(sum)
        })
    }
}

pub struct DartsSupernet {
    skeleton: Skeleton<SearchCell>,
    variables: NamedVariables,
    mask: Mask,
    // Owns the tensors' registry; the blocks and `variables` hold handles sharing storage.
    _var_store: VarStore,
}

impl DartsSupernet {
    /// `mask` must already be valid (see `space::validate_space_mask`).
    pub fn new(config: &DartsConfig, mask: &Mask, device: Device) -> Result<Self, PluginError> {
        let var_store = VarStore::new(device.to_tch());
        let shape = SkeletonShape {
            channels: config.channels as i64,
            cells: config.cells as usize,
            classes: config.classes as i64,
            input_channels: config.input_channels as i64,
            auxiliary: false,
        };
        let skeleton = Skeleton::new(&var_store.root(), shape, ParamInit::PyTorchDefault, |path, layout| {
            SearchCell::new(path, layout, ParamInit::PyTorchDefault)
        })?;
        let variables = NamedVariables::of(&var_store);
        Ok(DartsSupernet { skeleton, variables, mask: mask.clone(), _var_store: var_store })
    }

    fn check_choice_point(choice_point: u32) -> Result<(CellKind, usize), PluginError> {
        choice_point_edge(choice_point as usize).ok_or_else(|| {
            PluginError::invalid_input(format!(
                "choice point {choice_point} does not exist: darts has {NUM_CHOICE_POINTS} (0..={})",
                NUM_CHOICE_POINTS - 1
            ))
        })
    }

    /// The kind and edge of the mixed op that parameter `name` belongs to, if any: names are
    /// `cells.{i}.edges.{to<-from}.{op}.*`.
    fn mixed_op_of(&self, name: &str) -> Option<(CellKind, usize)> {
        let mut segments = name.split('.');
        let (Some("cells"), Some(index), Some("edges"), Some(edge)) = (segments.next(), segments.next(), segments.next(), segments.next()) else {
            return None;
        };
        let layout = self.skeleton.layouts.get(index.parse::<usize>().ok()?)?;
        let edge = (0..EDGES_PER_CELL).find(|&candidate| edge_name(candidate) == edge)?;
        Some((layout.kind, edge))
    }

    /// The computed options of every choice point with their weights (0-d tensors, keeping the
    /// graph to `weights`).
    fn mixing(&self, weights: &Tensor, active: &Mask) -> Result<Vec<Vec<(usize, Tensor)>>, PluginError> {
        if weights.size() != [NUM_CHOICE_POINTS as i64, NUM_OPERATIONS as i64] {
            return Err(PluginError::invalid_input(format!(
                "weights must be [{NUM_CHOICE_POINTS}, {NUM_OPERATIONS}] (choice points x options), got {:?}",
                weights.size()
            )));
        }
        validate_mask(active, "the active mask")?;
        let mut mixing = Vec::with_capacity(NUM_CHOICE_POINTS);
        for point in 0..NUM_CHOICE_POINTS {
            let mut computed = Vec::new();
            for option in active.allowed(point) {
                let option = option as usize;
                if !self.mask.is_allowed(point, option) {
                    return Err(PluginError::invalid_input(format!(
                        "option {} of edge {} is active but outside this supernet's mask",
                        Operation::ALL[option].name(),
                        choice_point_name(point)
                    )));
                }
                computed.push((option, weights.f_select(0, point as i64)?.f_select(0, option as i64)?));
            }
            mixing.push(computed);
        }
        Ok(mixing)
    }
}

impl DartsSupernet {
    /// The parameters of the choice point's options in every cell of its kind. Not part of
    /// the plugin contract any more (ABI 1.1 retired `choice_point_parameters`); tests use it.
    pub fn owned_parameters(&self, choice_point: u32) -> Result<Vec<String>, PluginError> {
        let scored = Self::check_choice_point(choice_point)?;
        Ok(self.variables.parameter_names().filter(|name| self.mixed_op_of(name) == Some(scored)).map(str::to_string).collect())
    }
}

fn share_all(named: &[(String, Tensor)]) -> Vec<NamedTensor> {
    named.iter().map(|(name, tensor)| NamedTensor::share(name.as_str(), tensor)).collect()
}

impl SupernetPlugin for DartsSupernet {
    fn forward(&self, input: &Tensor, weights: &Tensor, active: &Mask, train: bool) -> Result<Tensor, PluginError> {
        let mixing = self.mixing(weights, active)?;
        let (logits, _) = self.skeleton.forward(input, train, |cell, layout, s0, s1| {
            let offset = layout.kind.offset();
            cell.forward(layout, s0, s1, &mixing[offset..offset + EDGES_PER_CELL], train)
        })?;
        Ok(logits)
    }

    fn parameters(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(share_all(&self.variables.parameters))
    }

    fn buffers(&self) -> Result<Vec<NamedTensor>, PluginError> {
        Ok(share_all(&self.variables.buffers))
    }

    /// The mixed-op parameters of every other edge, normal and reduction, in every cell (α is
    /// shared by the cells of a kind, so the scored edge is left out of all of them); not the
    /// preprocess layers, the stem or the classifier.
    fn shared_parameters(&self, choice_point: u32) -> Result<Vec<String>, PluginError> {
        let scored = Self::check_choice_point(choice_point)?;
        Ok(self.variables.parameter_names().filter(|name| self.mixed_op_of(name).is_some_and(|owner| owner != scored)).map(str::to_string).collect())
    }
}
