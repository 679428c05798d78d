//! NB201's genotype strings: one `|`-delimited group per node 1..3, joined by `+`, each entry
//! `op~input`:
//! `|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|`.

use crate::space::{edge_index, operation_names, Operation, EDGES, NUM_EDGES, NUM_NODES};

pub const EXAMPLE: &str = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|";

/// The genotype string of one operation per edge (inputs of each node in ascending order).
pub fn format(operations: &[Operation; NUM_EDGES]) -> String {
    (1..NUM_NODES)
        .map(|to| {
            let entries: String = EDGES
                .iter()
                .zip(operations)
                .filter(|((target, _), _)| *target == to)
                .map(|((_, from), op)| format!("{}~{from}|", op.name()))
                .collect();
            format!("|{entries}")
        })
        .collect::<Vec<_>>()
        .join("+")
}

/// Parses a genotype string; inputs within a node may come in any order, each exactly once.
/// Errors say what is wrong and where, for the user who typed the string.
pub fn parse(text: &str) -> Result<[Operation; NUM_EDGES], String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("empty genotype string; expected e.g. {EXAMPLE}"));
    }
    let nodes: Vec<&str> = text.split('+').collect();
    if nodes.len() != NUM_NODES - 1 {
        return Err(format!(
            "expected {} node groups separated by '+' (nodes 1 to {}), found {} in {text:?}; e.g. {EXAMPLE}",
            NUM_NODES - 1,
            NUM_NODES - 1,
            nodes.len()
        ));
    }
    let mut operations: [Option<Operation>; NUM_EDGES] = [None; NUM_EDGES];
    for (group, node_text) in nodes.iter().enumerate() {
        let to = group + 1;
        let inner = node_text
            .strip_prefix('|')
            .and_then(|rest| rest.strip_suffix('|'))
            .filter(|inner| !inner.is_empty())
            .ok_or_else(|| format!("node {to} group {node_text:?} must look like |op~input|...|, starting and ending with '|'"))?;
        let entries: Vec<&str> = inner.split('|').collect();
        if entries.len() != to {
            return Err(format!(
                "node {to} group {node_text:?} has {} entries, but node {to} takes exactly {to} (one from each of nodes 0..{})",
                entries.len(),
                to - 1
            ));
        }
        for entry in entries {
            let (op_name, from_text) =
                entry.split_once('~').ok_or_else(|| format!("entry {entry:?} of node {to}: expected op~input, e.g. nor_conv_3x3~0"))?;
            let op = Operation::from_name(op_name)
                .ok_or_else(|| format!("entry {entry:?} of node {to}: unknown op {op_name:?}; the ops are {}", operation_names()))?;
            let from: usize = from_text.parse().map_err(|_| format!("entry {entry:?} of node {to}: input {from_text:?} is not a node number"))?;
            let edge = edge_index(to, from)
                .ok_or_else(|| format!("entry {entry:?} of node {to}: input node {from} does not precede node {to} (inputs are 0..{})", to - 1))?;
            if operations[edge].replace(op).is_some() {
                return Err(format!("node {to} lists input {from} twice"));
            }
        }
    }
    // Each node had exactly `to` entries, all distinct and valid, so every edge is set.
    let mut result = [Operation::None; NUM_EDGES];
    for (slot, parsed) in result.iter_mut().zip(operations) {
        *slot = parsed.ok_or("internal error: an edge was left unset")?;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Operation::*;

    #[test]
    fn the_published_example_round_trips() {
        let parsed = parse(EXAMPLE).unwrap();
        assert_eq!(parsed, [NorConv3x3, NorConv3x3, NorConv3x3, SkipConnect, NorConv3x3, NorConv3x3]);
        assert_eq!(format(&parsed), EXAMPLE);
    }

    #[test]
    fn every_single_op_architecture_round_trips() {
        for op in Operation::ALL {
            let operations = [op; NUM_EDGES];
            assert_eq!(parse(&format(&operations)).unwrap(), operations);
        }
        let mixed = [AvgPool3x3, None, NorConv1x1, SkipConnect, NorConv3x3, None];
        assert_eq!(format(&mixed), "|avg_pool_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|none~2|");
        assert_eq!(parse(&format(&mixed)).unwrap(), mixed);
    }

    #[test]
    fn inputs_may_come_in_any_order_and_whitespace_around_is_ignored() {
        let shuffled = "  |none~0|+|skip_connect~1|none~0|+|nor_conv_1x1~2|avg_pool_3x3~0|none~1|\n";
        assert_eq!(parse(shuffled).unwrap(), [None, None, SkipConnect, AvgPool3x3, None, NorConv1x1]);
    }

    fn error_of(text: &str) -> String {
        parse(text).unwrap_err()
    }

    #[test]
    fn malformed_strings_say_what_and_where() {
        assert!(error_of("").contains("empty genotype"));
        assert!(error_of("|none~0|+|none~0|none~1|").contains("found 2"));
        assert!(error_of("none~0|+|none~0|none~1|+|none~0|none~1|none~2|").contains("node 1 group \"none~0|\""));
        assert!(error_of("|none~0|+||+|none~0|none~1|none~2|").contains("node 2 group \"||\""));
        assert!(error_of("|none~0|+|none~0|+|none~0|none~1|none~2|").contains("node 2 group \"|none~0|\" has 1 entries"));
        assert!(error_of("|none0|+|none~0|none~1|+|none~0|none~1|none~2|").contains("entry \"none0\" of node 1: expected op~input"));
        let unknown = error_of("|none~0|+|none~0|conv_5x5~1|+|none~0|none~1|none~2|");
        assert!(unknown.contains("unknown op \"conv_5x5\"") && unknown.contains("node 2") && unknown.contains("avg_pool_3x3"));
        assert!(error_of("|none~x|+|none~0|none~1|+|none~0|none~1|none~2|").contains("input \"x\" is not a node number"));
        assert!(error_of("|none~0|+|none~0|none~2|+|none~0|none~1|none~2|").contains("input node 2 does not precede node 2"));
        assert!(error_of("|none~0|+|none~0|none~1|+|none~0|none~0|none~2|").contains("node 3 lists input 0 twice"));
        assert!(error_of("|none~0| + |none~0|none~1|+|none~0|none~1|none~2|").contains("node 1 group \"|none~0| \""));
    }
}
