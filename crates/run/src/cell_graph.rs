//! An architecture drawn as the cell graph NAS papers show (DARTS's `visualize.py`, without
//! graphviz): the cell's nodes, one arrow per kept edge labelled with its operation.
//!
//! The host knows a space only through its choice points, so the graph comes from their
//! names: `[CELL ]TO<-FROM` (NB201: `1<-0` … `3<-2`; DARTS: `normal 2<-0` … `reduce 5<-4`),
//! every edge from a lower node to a higher one. A space whose names do not all parse gets no
//! drawing. An edge whose option is `none`, or that the architecture marks
//! [`Architecture::ABSENT`](splitnas_plugin_api::Architecture::ABSENT), is not drawn.
//!
//! Nodes that no edge enters are the cell's inputs. With one input (NB201) the last node is
//! the output. With two or more (DARTS: `c_{k-2}`, `c_{k-1}`) the cell's output `c_{k}`
//! concatenates every other node, as DARTS's plot draws it.
//!
//! Layout: nodes in topological columns (longest path from an input, over every edge the
//! space has, so that all architectures of a space share one layout); each edge a cubic
//! curve between its nodes, bent up or down, further and further, until it passes through no
//! node and its label (at the curve's middle) meets no node, no other label and no other
//! curve.

use std::collections::BTreeMap;

use crate::svg::{text_width, Bounds, Svg};

/// An edge of a cell, parsed from a choice point's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellEdge {
    pub cell: String,
    pub to: usize,
    pub from: usize,
    pub choice_point: usize,
}

/// `[CELL ]TO<-FROM` → (cell, to, from), with `FROM < TO`.
pub fn parse_edge(name: &str) -> Option<(String, usize, usize)> {
    let (cell, edge) = match name.trim().rsplit_once(' ') {
        Some((cell, edge)) => (cell.trim().to_string(), edge),
        None => (String::new(), name.trim()),
    };
    let (to, from) = edge.split_once("<-")?;
    let (to, from) = (to.trim().parse().ok()?, from.trim().parse().ok()?);
    (from < to).then_some((cell, to, from))
}

/// Every choice point as an edge, or `None` when one of them is not named as an edge.
pub fn parse_edges(choice_points: &[String]) -> Option<Vec<CellEdge>> {
    choice_points
        .iter()
        .enumerate()
        .map(|(choice_point, name)| parse_edge(name).map(|(cell, to, from)| CellEdge { cell, to, from, choice_point }))
        .collect()
}

/// What a node of the drawing is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Input,
    Intermediate,
    Output,
}

#[derive(Debug, Clone)]
pub struct GraphNode {
    pub label: String,
    pub kind: NodeKind,
    pub bounds: Bounds,
}

/// A drawn edge: from and to index into the cell's nodes; `label` is the operation (`None`
/// for the output's concatenation edges).
#[derive(Debug, Clone)]
pub struct GraphEdge {
    pub from: usize,
    pub to: usize,
    pub label: Option<String>,
    /// Cubic Bézier control points.
    pub curve: [(f64, f64); 4],
    pub label_bounds: Option<Bounds>,
}

/// One cell laid out, in its own coordinates (top-left at the origin).
#[derive(Debug, Clone)]
pub struct CellLayout {
    pub name: String,
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
    pub width: f64,
    pub height: f64,
}

const FONT: f64 = 12.0;
const NODE_HEIGHT: f64 = 30.0;
const LABEL_PAD: f64 = 4.0;

fn bezier(curve: &[(f64, f64); 4], t: f64) -> (f64, f64) {
    let u = 1.0 - t;
    let (a, b, c, d) = (u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t);
    (a * curve[0].0 + b * curve[1].0 + c * curve[2].0 + d * curve[3].0, a * curve[0].1 + b * curve[1].1 + c * curve[2].1 + d * curve[3].1)
}

fn samples(curve: &[(f64, f64); 4]) -> Vec<(f64, f64)> {
    (1..60).map(|i| bezier(curve, i as f64 / 60.0)).collect()
}

/// Lays out the cells of an architecture; `None` when the choice points are not edges.
/// `choices[p]` is the option of choice point `p` (or `Architecture::ABSENT`).
pub fn layout(choice_points: &[String], option_names: &[Vec<String>], choices: &[u32]) -> Option<Vec<CellLayout>> {
    let edges = parse_edges(choice_points)?;
    if edges.is_empty() || choices.len() != choice_points.len() {
        return None;
    }
    let mut cells: Vec<String> = Vec::new();
    for edge in &edges {
        if !cells.contains(&edge.cell) {
            cells.push(edge.cell.clone());
        }
    }
    Some(
        cells
            .iter()
            .map(|cell| {
                let cell_edges: Vec<&CellEdge> = edges.iter().filter(|e| &e.cell == cell).collect();
                let kept: Vec<(&CellEdge, String)> = cell_edges
                    .iter()
                    .filter_map(|e| {
                        let option = option_names.get(e.choice_point)?.get(*choices.get(e.choice_point)? as usize)?;
                        (option != "none").then(|| (*e, option.clone()))
                    })
                    .collect();
                layout_cell(cell, &cell_edges, &kept)
            })
            .collect(),
    )
}

fn layout_cell(cell: &str, all_edges: &[&CellEdge], kept: &[(&CellEdge, String)]) -> CellLayout {
    // Cell nodes, by number; then the concatenated output for multi-input cells.
    let numbers: Vec<usize> = {
        let mut numbers: Vec<usize> = all_edges.iter().flat_map(|e| [e.from, e.to]).collect();
        numbers.sort_unstable();
        numbers.dedup();
        numbers
    };
    let inputs: Vec<usize> = numbers.iter().copied().filter(|n| !all_edges.iter().any(|e| e.to == *n)).collect();
    let concat = inputs.len() >= 2;
    let sink = *numbers.last().expect("a cell has edges");
    let mut column: BTreeMap<usize, usize> = BTreeMap::new();
    for &n in &numbers {
        let c = all_edges.iter().filter(|e| e.to == n).map(|e| column[&e.from] + 1).max().unwrap_or(0);
        column.insert(n, c);
    }
    let mut labels: Vec<(String, NodeKind, usize)> = numbers
        .iter()
        .map(|&n| {
            let kind = if inputs.contains(&n) {
                NodeKind::Input
            } else if !concat && n == sink {
                NodeKind::Output
            } else {
                NodeKind::Intermediate
            };
            let label = match (kind, concat) {
                (NodeKind::Input, true) if inputs.len() == 2 => {
                    ["c_{k-2}", "c_{k-1}"][inputs.iter().position(|i| *i == n).expect("an input")].to_string()
                }
                _ => n.to_string(),
            };
            (label, kind, column[&n])
        })
        .collect();
    let index_of = |n: usize| numbers.iter().position(|m| *m == n).expect("a node of the cell");
    let mut drawn: Vec<(usize, usize, Option<String>)> = kept.iter().map(|(e, op)| (index_of(e.from), index_of(e.to), Some(op.clone()))).collect();
    if concat {
        let output = labels.len();
        let last_column = column.values().copied().max().unwrap_or(0);
        labels.push(("c_{k}".to_string(), NodeKind::Output, last_column + 1));
        for (i, (_, kind, _)) in labels.iter().enumerate().take(output) {
            if *kind != NodeKind::Input {
                drawn.push((i, output, None));
            }
        }
    }

    // Columns left to right, nodes of a column stacked and centred on y = 0.
    let node_width: Vec<f64> = labels.iter().map(|(l, _, _)| (text_width(l, FONT) + 20.0).max(40.0)).collect();
    let widest_label = drawn.iter().filter_map(|d| d.2.as_deref()).map(|l| text_width(l, FONT)).fold(0.0, f64::max);
    let column_width = node_width.iter().copied().fold(0.0, f64::max) + widest_label + 2.0 * LABEL_PAD + 48.0;
    let row_gap = NODE_HEIGHT * 2.6;
    let columns = labels.iter().map(|l| l.2).max().unwrap_or(0) + 1;
    let mut centres = vec![(0.0, 0.0); labels.len()];
    for c in 0..columns {
        let members: Vec<usize> = (0..labels.len()).filter(|i| labels[*i].2 == c).collect();
        for (row, &i) in members.iter().enumerate() {
            centres[i] = (c as f64 * column_width, (row as f64 - (members.len() as f64 - 1.0) / 2.0) * row_gap);
        }
    }
    let mut nodes: Vec<GraphNode> = labels
        .iter()
        .zip(&centres)
        .zip(&node_width)
        .map(|(((label, kind, _), &(x, y)), &w)| GraphNode { label: label.clone(), kind: *kind, bounds: Bounds::centred(x, y, w, NODE_HEIGHT) })
        .collect();
    // Short edges first, labelled before concatenation; then by source and target.
    drawn.sort_by(|a, b| {
        let span = |d: &(usize, usize, Option<String>)| (nodes[d.1].bounds.x - nodes[d.0].bounds.x).abs();
        (a.2.is_none(), span(a)).partial_cmp(&(b.2.is_none(), span(b))).expect("finite").then((a.0, a.1).cmp(&(b.0, b.1)))
    });

    let mut edges: Vec<GraphEdge> = Vec::new();
    let step = NODE_HEIGHT * 0.9;
    for (from, to, label) in drawn {
        let (a, b) = (nodes[from].bounds, nodes[to].bounds);
        let start = (a.right(), a.centre().1);
        let end = (b.x, b.centre().1);
        let dx = end.0 - start.0;
        let label_size = label.as_deref().map(|l| (text_width(l, FONT) + 2.0 * LABEL_PAD, FONT * 1.5));
        let mut chosen = None;
        for attempt in 0..60u32 {
            // 0, -1, +1, -2, +2, ... steps: up first, then down.
            let level = attempt.div_ceil(2) as f64;
            let bend = if attempt % 2 == 1 { -level * step } else { level * step };
            let lift = bend * 4.0 / 3.0;
            let curve = [start, (start.0 + dx * 0.35, start.1 + lift), (end.0 - dx * 0.35, end.1 + lift), end];
            let label_bounds = label_size.map(|(w, h)| {
                let (mx, my) = bezier(&curve, 0.5);
                Bounds::centred(mx, my, w, h)
            });
            let points = samples(&curve);
            let through_node =
                nodes.iter().enumerate().any(|(i, n)| i != from && i != to && points.iter().any(|p| n.bounds.inflate(6.0).contains_point(*p)));
            let label_blocked = label_bounds.is_some_and(|lb| {
                let lb = lb.inflate(2.0);
                nodes.iter().any(|n| n.bounds.intersects(&lb))
                    || edges
                        .iter()
                        .any(|e| e.label_bounds.is_some_and(|o| o.intersects(&lb)) || samples(&e.curve).iter().any(|p| lb.contains_point(*p)))
            });
            let crosses_labels = edges.iter().filter_map(|e| e.label_bounds).any(|lb| points.iter().any(|p| lb.inflate(2.0).contains_point(*p)));
            let candidate = GraphEdge { from, to, label: label.clone(), curve, label_bounds };
            if !through_node && !label_blocked && !crosses_labels {
                chosen = Some(candidate);
                break;
            }
            if chosen.is_none() && attempt == 59 {
                chosen = Some(candidate);
            }
        }
        edges.push(chosen.expect("the last attempt is kept"));
    }

    // Shift everything so that the drawing starts at (margin, margin + title).
    let mut extent = nodes
        .iter()
        .map(|n| n.bounds)
        .chain(edges.iter().filter_map(|e| e.label_bounds))
        .fold((f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY), |(x0, y0, x1, y1), b| {
            (x0.min(b.x), y0.min(b.y), x1.max(b.right()), y1.max(b.bottom()))
        });
    for e in &edges {
        for p in samples(&e.curve) {
            extent = (extent.0.min(p.0), extent.1.min(p.1), extent.2.max(p.0), extent.3.max(p.1));
        }
    }
    let (margin, title) = (16.0, 24.0);
    let (dx, dy) = (margin - extent.0, margin + title - extent.1);
    let shift = |b: Bounds| Bounds::new(b.x + dx, b.y + dy, b.width, b.height);
    for n in &mut nodes {
        n.bounds = shift(n.bounds);
    }
    for e in &mut edges {
        e.label_bounds = e.label_bounds.map(shift);
        for p in &mut e.curve {
            *p = (p.0 + dx, p.1 + dy);
        }
    }
    CellLayout { name: cell.to_string(), nodes, edges, width: extent.2 - extent.0 + 2.0 * margin, height: extent.3 - extent.1 + 2.0 * margin + title }
}

/// `architecture.svg`: every cell of the architecture, one below the other; `None` when the
/// space's choice points are not named as cell edges.
pub fn cell_graph_svg(choice_points: &[String], option_names: &[Vec<String>], choices: &[u32], title: &str) -> Option<String> {
    let cells = layout(choice_points, option_names, choices)?;
    let header = if title.is_empty() { 0.0 } else { 28.0 };
    let width = cells.iter().map(|c| c.width).fold(text_width(title, FONT) + 32.0, f64::max);
    let height = header + cells.iter().map(|c| c.height).sum::<f64>();
    let mut svg = Svg::new(width, height, FONT);
    svg.raw("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#444\"/></marker></defs>");
    if !title.is_empty() {
        svg.text((16.0, 20.0), title, "font-weight=\"bold\"");
    }
    let mut top = header;
    for (c, cell) in cells.iter().enumerate() {
        svg.open_group(&format!("class=\"cell\" data-cell=\"{}\" transform=\"translate(0 {top:.1})\"", crate::svg::escape(&cell.name)));
        let name = if cell.name.is_empty() { "cell".to_string() } else { format!("{} cell", cell.name) };
        svg.text((16.0, 30.0), &name, "font-style=\"italic\"");
        for (e, edge) in cell.edges.iter().enumerate() {
            let [p0, p1, p2, p3] = edge.curve;
            let data = format!("M{:.1},{:.1} C{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}", p0.0, p0.1, p1.0, p1.1, p2.0, p2.1, p3.0, p3.1);
            let (class, style) = match &edge.label {
                Some(op) => (format!("cell-edge\" data-op=\"{}", crate::svg::escape(op)), "stroke=\"#444\" stroke-width=\"1.4\""),
                None => ("concat-edge".to_string(), "stroke=\"#999\" stroke-width=\"1.2\" stroke-dasharray=\"5 3\""),
            };
            svg.path(&data, &format!("id=\"cell-{c}-edge-{e}\" class=\"{class}\" fill=\"none\" {style} marker-end=\"url(#arrow)\""));
        }
        for (e, edge) in cell.edges.iter().enumerate() {
            if let (Some(label), Some(bounds)) = (&edge.label, edge.label_bounds) {
                svg.rect(bounds, &format!("id=\"cell-{c}-label-{e}-box\" fill=\"white\" fill-opacity=\"0.9\" stroke=\"none\""));
                svg.text(
                    (bounds.centre().0, Svg::baseline_centred(&bounds, FONT)),
                    label,
                    &format!("id=\"cell-{c}-label-{e}\" class=\"edge-label\" text-anchor=\"middle\""),
                );
            }
        }
        for (n, node) in cell.nodes.iter().enumerate() {
            let fill = match node.kind {
                NodeKind::Input => "#c1e1c1",
                NodeKind::Intermediate => "#cfe2f3",
                NodeKind::Output => "#f5eebc",
            };
            svg.rect(node.bounds, &format!("id=\"cell-{c}-node-{n}\" class=\"cell-node\" rx=\"8\" fill=\"{fill}\" stroke=\"#333\""));
            svg.text(
                (node.bounds.centre().0, Svg::baseline_centred(&node.bounds, FONT)),
                &node.label,
                &format!("id=\"cell-{c}-node-{n}-text\" text-anchor=\"middle\""),
            );
        }
        svg.close_group();
        top += cell.height;
    }
    Some(svg.finish())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn nb201() -> (Vec<String>, Vec<Vec<String>>) {
        let names = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"];
        let edges = ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"];
        (edges.iter().map(|e| e.to_string()).collect(), vec![names.iter().map(|n| n.to_string()).collect(); 6])
    }

    pub(crate) fn darts() -> (Vec<String>, Vec<Vec<String>>) {
        let ops = ["max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"];
        let mut names = Vec::new();
        for cell in ["normal", "reduce"] {
            for to in 2..6 {
                for from in 0..to {
                    names.push(format!("{cell} {to}<-{from}"));
                }
            }
        }
        let count = names.len();
        (names, vec![ops.iter().map(|o| o.to_string()).collect(); count])
    }

    /// A DARTS genotype: two inputs per intermediate node, the rest absent.
    pub(crate) fn darts_choices(points: &[String]) -> Vec<u32> {
        let keep = [("2<-0", 3), ("2<-1", 3), ("3<-0", 4), ("3<-2", 2), ("4<-1", 5), ("4<-3", 0), ("5<-0", 6), ("5<-4", 1)];
        points
            .iter()
            .map(|p| keep.iter().find(|(e, _)| p.ends_with(&format!(" {e}"))).map_or(splitnas_plugin_api::Architecture::ABSENT, |(_, o)| *o))
            .collect()
    }

    #[test]
    fn names_parse_as_edges_or_not_at_all() {
        assert_eq!(parse_edge("3<-1"), Some((String::new(), 3, 1)));
        assert_eq!(parse_edge("reduce 5<-4"), Some(("reduce".to_string(), 5, 4)));
        assert_eq!(parse_edge("1<-3"), None, "edges point forward");
        assert_eq!(parse_edge("stage1.block2.kernel"), None);
        assert!(parse_edges(&["1<-0".into(), "width".into()]).is_none());
        assert!(cell_graph_svg(&["kernel".into()], &[vec!["3".into(), "5".into()]], &[0], "").is_none(), "no edges, no drawing");
    }

    #[test]
    fn the_nb201_cell_has_four_nodes_and_its_kept_edges() {
        let (points, options) = nb201();
        // |nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|
        let choices = [3, 0, 3, 1, 0, 2];
        let cells = layout(&points, &options, &choices).unwrap();
        assert_eq!(cells.len(), 1);
        let cell = &cells[0];
        assert_eq!(cell.nodes.iter().map(|n| n.label.as_str()).collect::<Vec<_>>(), ["0", "1", "2", "3"]);
        assert_eq!(cell.nodes[0].kind, NodeKind::Input);
        assert_eq!(cell.nodes[3].kind, NodeKind::Output);
        let mut drawn: Vec<(String, String, String)> =
            cell.edges.iter().map(|e| (cell.nodes[e.from].label.clone(), cell.nodes[e.to].label.clone(), e.label.clone().unwrap())).collect();
        drawn.sort();
        let expected = [("0", "1", "nor_conv_3x3"), ("0", "3", "skip_connect"), ("1", "2", "nor_conv_3x3"), ("2", "3", "nor_conv_1x1")];
        assert_eq!(drawn, expected.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())));
        assert_no_collisions(cell);

        let svg = cell_graph_svg(&points, &options, &choices, "selected").unwrap();
        assert_eq!(svg.matches("class=\"cell-node\"").count(), 4);
        assert_eq!(svg.matches("class=\"cell-edge\"").count(), 4);
        assert_eq!(svg.matches("class=\"concat-edge\"").count(), 0, "a one-input cell outputs its last node");
        for op in ["nor_conv_3x3", "skip_connect", "nor_conv_1x1"] {
            assert!(svg.contains(&format!("class=\"edge-label\" text-anchor=\"middle\">{op}<")), "{op}");
        }
        assert!(!svg.contains(">none<"));

        // Every edge kept, the long ones around the nodes.
        let everything = layout(&points, &options, &[1, 2, 3, 4, 1, 2]).unwrap();
        assert_eq!(everything[0].edges.len(), 6);
        assert_no_collisions(&everything[0]);
    }

    #[test]
    fn darts_cells_concatenate_their_intermediate_nodes() {
        let (points, options) = darts();
        let choices = darts_choices(&points);
        let cells = layout(&points, &options, &choices).unwrap();
        assert_eq!(cells.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["normal", "reduce"]);
        for cell in &cells {
            let labels: Vec<&str> = cell.nodes.iter().map(|n| n.label.as_str()).collect();
            assert_eq!(labels, ["c_{k-2}", "c_{k-1}", "2", "3", "4", "5", "c_{k}"]);
            let output = cell.nodes.iter().position(|n| n.label == "c_{k}").unwrap();
            let concatenated: Vec<&str> = cell.edges.iter().filter(|e| e.label.is_none()).map(|e| cell.nodes[e.from].label.as_str()).collect();
            assert_eq!(concatenated.len(), 4);
            assert!(cell.edges.iter().filter(|e| e.label.is_none()).all(|e| e.to == output));
            assert_eq!(cell.edges.iter().filter(|e| e.label.is_some()).count(), 8, "two inputs per intermediate node, absent edges left out");
            assert_no_collisions(cell);
        }
        let svg = cell_graph_svg(&points, &options, &choices, "").unwrap();
        assert_eq!(svg.matches("class=\"cell-node\"").count(), 14);
        assert_eq!(svg.matches("class=\"concat-edge\"").count(), 8);
        assert_eq!(svg.matches(">c_{k}<").count(), 2);
    }

    /// No label meets a node or another label; no curve passes through a node it does not join.
    pub(crate) fn assert_no_collisions(cell: &CellLayout) {
        for (i, edge) in cell.edges.iter().enumerate() {
            for (n, node) in cell.nodes.iter().enumerate() {
                if let Some(lb) = edge.label_bounds {
                    assert!(!lb.intersects(&node.bounds), "label {:?} meets node {}", edge.label, node.label);
                }
                if n != edge.from && n != edge.to {
                    assert!(
                        samples(&edge.curve).iter().all(|p| !node.bounds.contains_point(*p)),
                        "edge {:?} runs through node {}",
                        edge.label,
                        node.label
                    );
                }
            }
            for other in &cell.edges[i + 1..] {
                if let (Some(a), Some(b)) = (edge.label_bounds, other.label_bounds) {
                    assert!(!a.intersects(&b), "labels {:?} and {:?} overlap", edge.label, other.label);
                }
            }
        }
    }
}
