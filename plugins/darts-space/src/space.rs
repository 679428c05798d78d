//! The shape of the DARTS space: two cell kinds of 14 edges each, 7 candidate operations,
//! validation of masks and architectures, and the per-cell view of an architecture.

use splitnas_plugin_api::{Architecture, Mask, PluginError};

/// Intermediate nodes per cell (DARTS's `steps`); nodes 0 and 1 are the cell's two inputs.
pub const STEPS: usize = 4;
/// Nodes of a cell: 2 inputs and the intermediate ones; the output concatenates nodes 2..=5.
pub const NUM_NODES: usize = STEPS + 2;
/// Incoming edges every node of a stand-alone cell keeps (DARTS's top-2).
pub const INPUTS_PER_NODE: usize = 2;

/// The cell's edges `(to, from)` in DARTS's order: node 2 from 0, 1; node 3 from 0, 1, 2; ...
pub const EDGES: [(usize, usize); 14] =
    [(2, 0), (2, 1), (3, 0), (3, 1), (3, 2), (4, 0), (4, 1), (4, 2), (4, 3), (5, 0), (5, 1), (5, 2), (5, 3), (5, 4)];
pub const EDGES_PER_CELL: usize = EDGES.len();
/// Normal-cell edges, then reduction-cell edges.
pub const NUM_CHOICE_POINTS: usize = 2 * EDGES_PER_CELL;

/// The two kinds of cell; α (and an architecture) is shared by all cells of a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CellKind {
    Normal,
    Reduce,
}

impl CellKind {
    pub const ALL: [CellKind; 2] = [CellKind::Normal, CellKind::Reduce];

    pub fn name(self) -> &'static str {
        match self {
            CellKind::Normal => "normal",
            CellKind::Reduce => "reduce",
        }
    }

    /// The first choice point of this kind's edges.
    pub fn offset(self) -> usize {
        match self {
            CellKind::Normal => 0,
            CellKind::Reduce => EDGES_PER_CELL,
        }
    }
}

/// The kind and the edge of a choice point.
pub fn choice_point_edge(choice_point: usize) -> Option<(CellKind, usize)> {
    match choice_point {
        point if point < EDGES_PER_CELL => Some((CellKind::Normal, point)),
        point if point < NUM_CHOICE_POINTS => Some((CellKind::Reduce, point - EDGES_PER_CELL)),
        _ => None,
    }
}

/// The edge's path segment in parameter names (`2<-0`).
pub fn edge_name(edge: usize) -> String {
    let (to, from) = EDGES[edge];
    format!("{to}<-{from}")
}

/// The choice point's name (`normal 2<-0`, `reduce 5<-4`).
pub fn choice_point_name(choice_point: usize) -> String {
    match choice_point_edge(choice_point) {
        Some((kind, edge)) => format!("{} {}", kind.name(), edge_name(edge)),
        None => format!("choice point {choice_point}"),
    }
}

/// The edge index of `to <- from`.
pub fn edge_index(to: usize, from: usize) -> Option<usize> {
    EDGES.iter().position(|&edge| edge == (to, from))
}

/// The candidate operations of every edge, in option order (DARTS's `PRIMITIVES` without `none`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    MaxPool3x3,
    AvgPool3x3,
    SkipConnect,
    SepConv3x3,
    SepConv5x5,
    DilConv3x3,
    DilConv5x5,
}

pub const NUM_OPERATIONS: usize = Operation::ALL.len();

impl Operation {
    pub const ALL: [Operation; 7] = [
        Operation::MaxPool3x3,
        Operation::AvgPool3x3,
        Operation::SkipConnect,
        Operation::SepConv3x3,
        Operation::SepConv5x5,
        Operation::DilConv3x3,
        Operation::DilConv5x5,
    ];

    /// DARTS's name, used in genotype strings and parameter names.
    pub fn name(self) -> &'static str {
        match self {
            Operation::MaxPool3x3 => "max_pool_3x3",
            Operation::AvgPool3x3 => "avg_pool_3x3",
            Operation::SkipConnect => "skip_connect",
            Operation::SepConv3x3 => "sep_conv_3x3",
            Operation::SepConv5x5 => "sep_conv_5x5",
            Operation::DilConv3x3 => "dil_conv_3x3",
            Operation::DilConv5x5 => "dil_conv_5x5",
        }
    }

    pub fn from_name(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.name() == name)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_index(index: usize) -> Option<Operation> {
        Operation::ALL.get(index).copied()
    }

    /// Parameters of this op at width `channels` in the stand-alone network (affine batch norm):
    /// DARTS's formulas, `stride` 2 on the input edges of reduction cells.
    pub fn parameters(self, channels: u64, stride: u64) -> u64 {
        let c = channels;
        match self {
            Operation::MaxPool3x3 | Operation::AvgPool3x3 => 0,
            Operation::SkipConnect if stride == 1 => 0,
            // Factorized reduce: two 1x1 convs to C/2 each, BN over C.
            Operation::SkipConnect => 2 * c * (c / 2) + 2 * c,
            Operation::SepConv3x3 => 2 * (9 * c + c * c) + 4 * c,
            Operation::SepConv5x5 => 2 * (25 * c + c * c) + 4 * c,
            Operation::DilConv3x3 => 9 * c + c * c + 2 * c,
            Operation::DilConv5x5 => 25 * c + c * c + 2 * c,
        }
    }
}

/// `max_pool_3x3, avg_pool_3x3, ...`, for error messages.
pub fn operation_names() -> String {
    Operation::ALL.map(Operation::name).join(", ")
}

/// One cell kind's operation per edge; `None` where the edge is not kept.
pub type CellOperations = [Option<Operation>; EDGES_PER_CELL];

/// An architecture as two cells' edges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DartsArchitecture {
    pub normal: CellOperations,
    pub reduce: CellOperations,
}

impl DartsArchitecture {
    pub fn cell(&self, kind: CellKind) -> &CellOperations {
        match kind {
            CellKind::Normal => &self.normal,
            CellKind::Reduce => &self.reduce,
        }
    }

    pub fn to_architecture(&self) -> Architecture {
        let choice = |op: &Option<Operation>| op.map_or(Architecture::ABSENT, |op| op.index() as u32);
        Architecture { choices: self.normal.iter().chain(self.reduce.iter()).map(choice).collect() }
    }

    /// Reads an architecture and checks that it is a DARTS cell pair: every intermediate node
    /// keeps exactly two incoming edges.
    pub fn from_architecture(architecture: &Architecture) -> Result<Self, PluginError> {
        if architecture.choices.len() != NUM_CHOICE_POINTS {
            return Err(PluginError::invalid_input(format!(
                "a darts architecture has {NUM_CHOICE_POINTS} choices (14 normal-cell edges, then 14 reduction-cell edges), this one has {}",
                architecture.choices.len()
            )));
        }
        let mut cells = [[None; EDGES_PER_CELL]; 2];
        for (point, &choice) in architecture.choices.iter().enumerate() {
            let (kind, edge) = choice_point_edge(point).expect("checked length");
            cells[kind.offset() / EDGES_PER_CELL][edge] = match choice {
                Architecture::ABSENT => None,
                choice => Some(Operation::from_index(choice as usize).ok_or_else(|| {
                    PluginError::invalid_input(format!(
                        "edge {} has option {choice}, but darts has {NUM_OPERATIONS} options ({})",
                        choice_point_name(point),
                        operation_names()
                    ))
                })?),
            };
        }
        let result = DartsArchitecture { normal: cells[0], reduce: cells[1] };
        for kind in CellKind::ALL {
            for node in 2..NUM_NODES {
                let kept: Vec<usize> = node_edges(node).filter(|&edge| result.cell(kind)[edge].is_some()).collect();
                if kept.len() != INPUTS_PER_NODE {
                    return Err(PluginError::invalid_input(format!(
                        "node {node} of the {} cell keeps {} incoming edges ({}), but a darts cell keeps exactly {INPUTS_PER_NODE} per node",
                        kind.name(),
                        kept.len(),
                        kept.iter().map(|&edge| edge_name(edge)).collect::<Vec<_>>().join(", ")
                    )));
                }
            }
        }
        Ok(result)
    }
}

/// The edges into `node`, in choice-point order.
pub fn node_edges(node: usize) -> impl Iterator<Item = usize> {
    (0..EDGES_PER_CELL).filter(move |&edge| EDGES[edge].0 == node)
}

/// Checks a mask's shape (28 choice points x 7 options).
pub fn validate_mask(mask: &Mask, what: &str) -> Result<(), PluginError> {
    if mask.rows.len() != NUM_CHOICE_POINTS {
        return Err(PluginError::invalid_input(format!(
            "{what} has {} rows, but darts has {NUM_CHOICE_POINTS} choice points (14 normal-cell edges, then 14 reduction-cell edges)",
            mask.rows.len()
        )));
    }
    for (point, row) in mask.rows.iter().enumerate() {
        if row.len() != NUM_OPERATIONS {
            return Err(PluginError::invalid_input(format!(
                "{what}: row {point} (edge {}) has {} entries, but darts has {NUM_OPERATIONS} options ({})",
                choice_point_name(point),
                row.len(),
                operation_names()
            )));
        }
    }
    Ok(())
}

/// Like [`validate_mask`], and every edge must allow some option (a sub-supernet's mask).
pub fn validate_space_mask(mask: &Mask) -> Result<(), PluginError> {
    validate_mask(mask, "the mask")?;
    if let Some(point) = (0..NUM_CHOICE_POINTS).find(|&point| mask.count(point) == 0) {
        return Err(PluginError::invalid_input(format!(
            "the mask allows no option on edge {}: every edge needs at least one",
            choice_point_name(point)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_and_operations_are_in_darts_order() {
        let names: Vec<String> = (0..NUM_CHOICE_POINTS).map(choice_point_name).collect();
        assert_eq!(names[0], "normal 2<-0");
        assert_eq!(names[4], "normal 3<-2");
        assert_eq!(names[13], "normal 5<-4");
        assert_eq!(names[14], "reduce 2<-0");
        assert_eq!(names[27], "reduce 5<-4");
        assert_eq!(edge_index(4, 3), Some(8));
        assert_eq!(node_edges(5).collect::<Vec<_>>(), vec![9, 10, 11, 12, 13]);
        assert_eq!(operation_names(), "max_pool_3x3, avg_pool_3x3, skip_connect, sep_conv_3x3, sep_conv_5x5, dil_conv_3x3, dil_conv_5x5");
        for op in Operation::ALL {
            assert_eq!(Operation::from_name(op.name()), Some(op));
            assert_eq!(Operation::from_index(op.index()), Some(op));
        }
        assert_eq!(Operation::from_name("none"), None);
    }

    #[test]
    fn architectures_need_two_inputs_per_node() {
        let mut choices = vec![Architecture::ABSENT; NUM_CHOICE_POINTS];
        for kind in CellKind::ALL {
            for node in 2..NUM_NODES {
                // inputs 0 and 1 of every node
                for from in [0, 1] {
                    choices[kind.offset() + edge_index(node, from).unwrap()] = 3;
                }
            }
        }
        let architecture = Architecture { choices: choices.clone().into() };
        let darts = DartsArchitecture::from_architecture(&architecture).unwrap();
        assert_eq!(darts.to_architecture(), architecture);
        choices[edge_index(4, 3).unwrap()] = 0;
        let error = DartsArchitecture::from_architecture(&Architecture { choices: choices.clone().into() }).unwrap_err();
        assert!(error.message.contains("node 4 of the normal cell keeps 3"), "{}", error.message);
        choices[edge_index(4, 3).unwrap()] = 7;
        let error = DartsArchitecture::from_architecture(&Architecture { choices: choices.into() }).unwrap_err();
        assert!(error.message.contains("edge normal 4<-3 has option 7"), "{}", error.message);
    }
}
