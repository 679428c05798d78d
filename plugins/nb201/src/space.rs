//! The shape of the NB201 space: the cell's edges, the candidate operations, validation of
//! masks and architectures against them.

use splitnas_plugin_api::{Architecture, Mask, PluginError};

/// Nodes of a cell: node 0 is the cell's input, node 3 its output.
pub const NUM_NODES: usize = 4;

/// The cell's edges `(to, from)` in choice-point order: `1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2`.
pub const EDGES: [(usize, usize); 6] = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)];

pub const NUM_EDGES: usize = EDGES.len();

/// The edge's name, also its segment in parameter names (`1<-0`).
pub fn edge_name(edge: usize) -> String {
    let (to, from) = EDGES[edge];
    format!("{to}<-{from}")
}

/// The choice-point index of edge `to <- from`.
pub fn edge_index(to: usize, from: usize) -> Option<usize> {
    EDGES.iter().position(|&edge| edge == (to, from))
}

/// The candidate operations of every edge, in option order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    None,
    SkipConnect,
    NorConv1x1,
    NorConv3x3,
    AvgPool3x3,
}

pub const NUM_OPERATIONS: usize = Operation::ALL.len();

impl Operation {
    pub const ALL: [Operation; 5] = [Operation::None, Operation::SkipConnect, Operation::NorConv1x1, Operation::NorConv3x3, Operation::AvgPool3x3];

    /// NB201's name, used in genotype strings and parameter names.
    pub fn name(self) -> &'static str {
        match self {
            Operation::None => "none",
            Operation::SkipConnect => "skip_connect",
            Operation::NorConv1x1 => "nor_conv_1x1",
            Operation::NorConv3x3 => "nor_conv_3x3",
            Operation::AvgPool3x3 => "avg_pool_3x3",
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

    /// Kernel size of the ReLU-conv-BN ops.
    pub fn conv_kernel(self) -> Option<i64> {
        match self {
            Operation::NorConv1x1 => Some(1),
            Operation::NorConv3x3 => Some(3),
            _ => None,
        }
    }
}

/// `none, skip_connect, ...`, for error messages.
pub fn operation_names() -> String {
    Operation::ALL.map(Operation::name).join(", ")
}

/// Checks a mask's shape (6 edges x 5 options) and that every edge allows at least one option.
pub fn validate_mask(mask: &Mask, what: &str) -> Result<(), PluginError> {
    if mask.rows.len() != NUM_EDGES {
        return Err(PluginError::invalid_input(format!(
            "{what} has {} rows, but nb201 has {NUM_EDGES} choice points (edges {})",
            mask.rows.len(),
            (0..NUM_EDGES).map(edge_name).collect::<Vec<_>>().join(", ")
        )));
    }
    for (edge, row) in mask.rows.iter().enumerate() {
        if row.len() != NUM_OPERATIONS {
            return Err(PluginError::invalid_input(format!(
                "{what}: row {edge} (edge {}) has {} entries, but nb201 has {NUM_OPERATIONS} options ({})",
                edge_name(edge),
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
    if let Some(edge) = (0..NUM_EDGES).find(|&edge| mask.count(edge) == 0) {
        return Err(PluginError::invalid_input(format!("the mask allows no option on edge {}: every edge needs at least one", edge_name(edge))));
    }
    Ok(())
}

/// The operation of every edge, or what is wrong with the architecture.
pub fn operations_of(architecture: &Architecture) -> Result<[Operation; NUM_EDGES], PluginError> {
    if architecture.choices.len() != NUM_EDGES {
        return Err(PluginError::invalid_input(format!(
            "an nb201 architecture has {NUM_EDGES} choices (one per edge), this one has {}",
            architecture.choices.len()
        )));
    }
    let mut operations = [Operation::None; NUM_EDGES];
    for (edge, &choice) in architecture.choices.iter().enumerate() {
        operations[edge] = match Operation::from_index(choice as usize) {
            Some(op) => op,
            None if choice == Architecture::ABSENT => {
                return Err(PluginError::invalid_input(format!(
                    "edge {} is marked absent, but every nb201 edge has an op (use `none` to cut it)",
                    edge_name(edge)
                )))
            }
            None => {
                return Err(PluginError::invalid_input(format!(
                    "edge {} has option {choice}, but nb201 has {NUM_OPERATIONS} options (0..={})",
                    edge_name(edge),
                    NUM_OPERATIONS - 1
                )))
            }
        };
    }
    Ok(operations)
}

/// The architecture of one operation per edge.
pub fn architecture_of(operations: &[Operation; NUM_EDGES]) -> Architecture {
    Architecture { choices: operations.iter().map(|op| op.index() as u32).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_and_operations_are_in_nb201_order() {
        let names: Vec<String> = (0..NUM_EDGES).map(edge_name).collect();
        assert_eq!(names, ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"]);
        assert_eq!(operation_names(), "none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3");
        assert_eq!(edge_index(3, 1), Some(4));
        assert_eq!(edge_index(1, 2), None);
        for op in Operation::ALL {
            assert_eq!(Operation::from_name(op.name()), Some(op));
            assert_eq!(Operation::from_index(op.index()), Some(op));
        }
    }

    #[test]
    fn bad_architectures_say_which_edge() {
        let absent = Architecture { choices: vec![1, 1, Architecture::ABSENT, 1, 1, 1].into() };
        assert!(operations_of(&absent).unwrap_err().message.contains("edge 2<-1 is marked absent"));
        let out_of_range = Architecture { choices: vec![1, 1, 1, 1, 5, 1].into() };
        assert!(operations_of(&out_of_range).unwrap_err().message.contains("edge 3<-1 has option 5"));
        let short = Architecture { choices: vec![1, 1].into() };
        assert!(operations_of(&short).unwrap_err().message.contains("this one has 2"));
    }
}
