//! Isomorphic NB201 cells: genotypes that differ as strings but build the same network.
//!
//! An NB201 cell is a DAG of four nodes; node 0 is the input, node 3 the output, and edge
//! `j<-i` (i < j) carries one of `none`, `skip_connect`, `nor_conv_1x1`, `nor_conv_3x3`,
//! `avg_pool_3x3`. Node j sums its incoming edges. Many of the 15,625 genotypes compute the
//! same function (up to the values of their weights):
//! - `none` edges contribute nothing, and a node all of whose inputs are `none` (or come from
//!   such nodes) is zero, so every edge leaving it is dropped too (strictly, a convolution's
//!   BatchNorm shift would turn zero into a constant; the cell carries no information there);
//! - edges whose target never reaches the output do not matter;
//! - a sum does not depend on the order of its terms, and `skip_connect` is the identity, so
//!   a sum reached through a skip merges into the sum that receives it.
//!
//! The canonical form is the cell's output written as an expression with these rules
//! applied: every node is the sorted multiset of its terms, each term an operation applied to
//! a node's expression. Two genotypes are isomorphic exactly when their forms are equal.

use std::collections::BTreeMap;

use thiserror::Error;

/// The operations of an NB201 edge.
pub const OPERATIONS: [&str; 5] = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"];

#[derive(Debug, Error, PartialEq)]
pub enum CellError {
    #[error("`{genotype}` is not an NB201 genotype: {reason} (expected e.g. |nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|skip_connect~2|)")]
    Malformed { genotype: String, reason: String },
}

/// Edge operations per node: `edges[j - 1][i]` is the operation of edge `j<-i`.
fn parse(genotype: &str) -> Result<Vec<Vec<String>>, CellError> {
    let malformed = |reason: String| CellError::Malformed { genotype: genotype.to_string(), reason };
    let nodes: Vec<&str> = genotype.split('+').collect();
    if nodes.len() != 3 {
        return Err(malformed(format!("{} nodes separated by `+`, not 3", nodes.len())));
    }
    let mut edges = Vec::with_capacity(3);
    for (index, node) in nodes.iter().enumerate() {
        let inner = node
            .strip_prefix('|')
            .and_then(|n| n.strip_suffix('|'))
            .ok_or_else(|| malformed(format!("node {} is not enclosed in `|`", index + 1)))?;
        let mut operations = Vec::new();
        for (source, edge) in inner.split('|').enumerate() {
            let (operation, from) = edge.split_once('~').ok_or_else(|| malformed(format!("edge `{edge}` has no `~input`")))?;
            if from.parse::<usize>().ok() != Some(source) {
                return Err(malformed(format!("edge `{edge}` of node {} should come from node {source}", index + 1)));
            }
            if !OPERATIONS.contains(&operation) {
                return Err(malformed(format!("unknown operation `{operation}`")));
            }
            operations.push(operation.to_string());
        }
        if operations.len() != index + 1 {
            return Err(malformed(format!("node {} has {} edges, not {}", index + 1, operations.len(), index + 1)));
        }
        edges.push(operations);
    }
    Ok(edges)
}

/// The canonical form of an NB201 cell (see the module's documentation). A cell whose output
/// is always zero has the form `0`.
pub fn canonical_form(genotype: &str) -> Result<String, CellError> {
    let edges = parse(genotype)?;
    // Each node as the sorted terms of its sum; `None` for a node that is always zero.
    let mut nodes: Vec<Option<Vec<String>>> = vec![Some(vec!["x".to_string()])];
    for incoming in &edges {
        let mut terms = Vec::new();
        for (source, operation) in incoming.iter().enumerate() {
            let Some(input) = &nodes[source] else { continue };
            match operation.as_str() {
                "none" => {}
                // The identity: the input's own terms join this sum.
                "skip_connect" => terms.extend(input.iter().cloned()),
                other => terms.push(format!("{other}({})", input.join("+"))),
            }
        }
        terms.sort();
        nodes.push((!terms.is_empty()).then_some(terms));
    }
    Ok(nodes[3].as_ref().map_or_else(|| "0".to_string(), |terms| terms.join("+")))
}

/// The genotypes grouped by canonical form: every class with more than one member, largest
/// first (then by form), members in their input order.
pub fn isomorphism_classes<'a>(genotypes: &[&'a str]) -> Result<Vec<(String, Vec<&'a str>)>, CellError> {
    let mut classes: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for genotype in genotypes {
        classes.entry(canonical_form(genotype)?).or_default().push(genotype);
    }
    let mut shared: Vec<(String, Vec<&str>)> = classes.into_iter().filter(|(_, members)| members.len() > 1).collect();
    shared.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    Ok(shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_genotypes() -> Vec<String> {
        let mut out = Vec::new();
        for code in 0..5usize.pow(6) {
            let op = |position: u32| OPERATIONS[code / 5usize.pow(position) % 5];
            out.push(format!("|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|", op(0), op(1), op(2), op(3), op(4), op(5)));
        }
        out
    }

    #[test]
    fn a_dead_branch_and_term_order_do_not_matter() {
        // Node 1 feeds only node 2, which does not reach the output (edge 3<-2 is none).
        let a = "|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|nor_conv_3x3~0|none~1|none~2|";
        let b = "|none~0|+|skip_connect~0|none~1|+|nor_conv_3x3~0|none~1|none~2|";
        assert_eq!(canonical_form(a).unwrap(), "nor_conv_3x3(x)");
        assert_eq!(canonical_form(a), canonical_form(b));
        // Node 1 is zero (its only input edge is none), so edge 2<-1 carries nothing.
        let c = "|none~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|none~0|none~1|skip_connect~2|";
        assert_eq!(canonical_form(c).unwrap(), "nor_conv_1x1(x)");
        // Sums are unordered; a skip merges a node's sum into the next one.
        let d = "|nor_conv_1x1~0|+|none~0|none~1|+|avg_pool_3x3~0|skip_connect~1|none~2|";
        let e = "|avg_pool_3x3~0|+|none~0|none~1|+|nor_conv_1x1~0|skip_connect~1|none~2|";
        assert_eq!(canonical_form(d).unwrap(), "avg_pool_3x3(x)+nor_conv_1x1(x)");
        assert_eq!(canonical_form(d), canonical_form(e));
        // The output of an all-none cell is zero.
        assert_eq!(canonical_form("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|").unwrap(), "0");
    }

    #[test]
    fn operations_on_different_inputs_stay_apart() {
        let on_input = "|skip_connect~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|none~2|";
        let on_conv = "|nor_conv_1x1~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|none~2|";
        assert_eq!(canonical_form(on_input).unwrap(), "nor_conv_3x3(x)");
        assert_eq!(canonical_form(on_conv).unwrap(), "nor_conv_3x3(nor_conv_1x1(x))");
        // Two convolutions of the same input have their own weights: a multiset, not a set.
        let twice = "|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_3x3~0|skip_connect~1|none~2|";
        assert_eq!(canonical_form(twice).unwrap(), "nor_conv_3x3(x)+nor_conv_3x3(x)");
    }

    #[test]
    fn the_whole_space_falls_into_fewer_classes() {
        let genotypes = all_genotypes();
        let forms: std::collections::BTreeSet<String> = genotypes.iter().map(|g| canonical_form(g).unwrap()).collect();
        // Every cell with a conv on each edge is its own class; many cells share one.
        let references: Vec<&str> = genotypes.iter().map(String::as_str).collect();
        let classes = isomorphism_classes(&references).unwrap();
        assert_eq!(classes.iter().map(|(_, m)| m.len()).sum::<usize>() + (forms.len() - classes.len()), genotypes.len());
        assert!(classes.windows(2).all(|w| w[0].1.len() >= w[1].1.len()));
        // Counted by hand: edge 3<-0 is none, and edges 3<-1 and 3<-2 are none or leave a
        // zero node; over the 125 settings of the other three edges that is 225 + 116 cells.
        let zero = classes.iter().find(|(form, _)| form == "0").expect("cells whose output is always zero");
        assert_eq!(zero.1.len(), 341);
        // NB201 reports 6,466 unique cells by its graph hash; merging sums through skips and
        // ignoring term order (function-level equivalence) merges more.
        assert_eq!(forms.len(), 4930);
    }

    #[test]
    fn refuses_malformed_genotypes() {
        for bad in [
            "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|",
            "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
            "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",
            "|none~0|+|none~0|+|none~0|none~1|none~2|",
        ] {
            assert!(canonical_form(bad).is_err(), "{bad}");
        }
    }
}
