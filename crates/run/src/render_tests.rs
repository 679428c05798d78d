//! The drawings as a viewer shows them: rendered by resvg with the machine's fonts, every
//! text's laid-out box measured and compared with the box it belongs in. Set
//! `SPLITNAS_DRAWINGS_OUT=DIR` to keep the SVG and PNG files for a look.

use std::collections::BTreeMap;
use std::sync::Arc;

use resvg::tiny_skia::{Pixmap, Transform};
use resvg::usvg::{self, fontdb, Node, Rect};

use crate::cell_graph::cell_graph_svg;
use crate::charts::tests::{nb201_tree, quickstart_log};
use crate::charts::{alpha_svg, curves_svg};
use crate::metrics::parse_events;
use crate::tree::{CandidateRecord, LeafResult, SplitTree};

/// The system's fonts, with the generic `monospace` family pointing at an installed
/// monospace face (fontdb's default, Courier New, is rarely installed on Linux).
fn fonts() -> Arc<fontdb::Database> {
    let mut database = fontdb::Database::new();
    database.load_system_fonts();
    let monospace = database
        .faces()
        .find(|face| face.monospaced)
        .map(|face| face.families[0].0.clone())
        .expect("no monospace font on this machine: the drawings' text cannot be measured (Debian: apt-get install fonts-dejavu-core)");
    database.set_monospace_family(monospace);
    Arc::new(database)
}

/// Parses and renders `svg` (saving it when asked); returns every element's box by id.
fn render(name: &str, svg: &str) -> BTreeMap<String, Rect> {
    let options = usvg::Options { fontdb: fonts(), ..usvg::Options::default() };
    let tree = usvg::Tree::from_str(svg, &options).unwrap_or_else(|error| panic!("{name}: not valid SVG: {error}"));
    let size = tree.size().to_int_size();
    let mut pixmap = Pixmap::new(size.width(), size.height()).expect("a non-empty drawing");
    resvg::render(&tree, Transform::identity(), &mut pixmap.as_mut());
    assert!(pixmap.pixels().iter().any(|p| p.red() < 128), "{name}: nothing dark was drawn");
    if let Some(directory) = std::env::var_os("SPLITNAS_DRAWINGS_OUT") {
        let directory = std::path::PathBuf::from(directory);
        std::fs::create_dir_all(&directory).unwrap();
        std::fs::write(directory.join(format!("{name}.svg")), svg).unwrap();
        pixmap.save_png(directory.join(format!("{name}.png"))).unwrap();
    }
    let mut boxes = BTreeMap::new();
    fn walk(group: &usvg::Group, boxes: &mut BTreeMap<String, Rect>) {
        for node in group.children() {
            match node {
                Node::Group(inner) => walk(inner, boxes),
                Node::Path(path) if !path.id().is_empty() => {
                    boxes.insert(path.id().to_string(), path.abs_bounding_box());
                }
                Node::Text(text) if !text.id().is_empty() => {
                    boxes.insert(text.id().to_string(), text.abs_bounding_box());
                }
                _ => {}
            }
        }
    }
    walk(tree.root(), &mut boxes);
    boxes
}

fn inside(inner: &Rect, outer: &Rect) -> bool {
    inner.left() >= outer.left() && inner.right() <= outer.right() && inner.top() >= outer.top() && inner.bottom() <= outer.bottom()
}

fn overlap(a: &Rect, b: &Rect) -> bool {
    a.left() < b.right() && b.left() < a.right() && a.top() < b.bottom() && b.top() < a.bottom()
}

/// The quickstart's tree: 2 splits, 4 leaves with long genotypes, stand-alone results.
fn quickstart_tree() -> SplitTree {
    let mut tree = nb201_tree();
    let genotypes = [
        "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_1x1~2|",
        "|nor_conv_1x1~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|none~0|avg_pool_3x3~1|avg_pool_3x3~2|",
        "|skip_connect~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|none~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    ];
    for node in &mut tree.nodes {
        if let Some(split) = &mut node.split {
            split.candidates = vec![CandidateRecord {
                choice_point: split.choice_point,
                name: split.choice_point_name.clone(),
                score: 0.1234,
                groups: vec![],
                repeats: 3,
            }];
        }
    }
    for (leaf, genotype) in tree.leaves().into_iter().zip(genotypes) {
        tree.nodes[leaf].result = Some(LeafResult {
            genotype: genotype.to_string(),
            choices: vec![3, 0, 3, 0, 0, 2],
            supernet_valid_accuracy: 0.4567,
            architecture_valid_accuracy: 0.3456,
            standalone: None,
            parameters: 12345,
            flops: 678910,
            latency_ms: None,
        });
    }
    tree
}

#[test]
fn tree_boxes_hold_their_text_and_edge_labels_do_not_overlap() {
    let tree = quickstart_tree();
    let svg = tree.render_svg(Some(6));
    let boxes = render("tree", &svg);
    let mut texts = 0;
    for node in &tree.nodes {
        let frame = boxes.get(&format!("node-{}", node.id)).unwrap_or_else(|| panic!("node {}'s box was not drawn", node.id));
        for i in 0.. {
            let Some(text) = boxes.get(&format!("node-{}-text-{i}", node.id)) else { break };
            assert!(inside(text, frame), "node {} line {i} ({text:?}) leaves its box {frame:?}", node.id);
            texts += 1;
        }
        for other in &tree.nodes[node.id + 1..] {
            assert!(!overlap(frame, &boxes[&format!("node-{}", other.id)]), "nodes {} and {} overlap", node.id, other.id);
        }
    }
    assert!(texts >= 4 * tree.nodes.len(), "the text was laid out ({texts} lines measured): are fonts installed?");
    let labels: Vec<(String, Rect, Rect)> = tree
        .nodes
        .iter()
        .filter_map(|n| n.parent.map(|p| format!("edge-{p}-{}", n.id)))
        .map(|edge| (edge.clone(), boxes[&format!("{edge}-label")], boxes[&format!("{edge}-box")]))
        .collect();
    assert_eq!(labels.len(), 6);
    for (i, (edge, text, frame)) in labels.iter().enumerate() {
        assert!(inside(text, frame), "{edge}'s label leaves its box");
        for node in &tree.nodes {
            assert!(!overlap(frame, &boxes[&format!("node-{}", node.id)]), "{edge}'s label covers node {}", node.id);
        }
        for (other, _, other_frame) in &labels[i + 1..] {
            assert!(!overlap(frame, other_frame), "the labels of {edge} and {other} overlap");
        }
    }
    assert!(
        svg.contains("id=\"node-6\" class=\"node\" rx=\"6\" fill=\"#fdeee6\" stroke=\"#c0392b\" stroke-width=\"3\""),
        "the selected leaf stands out"
    );
}

#[test]
fn cell_graph_labels_fit_and_do_not_overlap() {
    let tree = quickstart_tree();
    let nb201 = cell_graph_svg(&tree.choice_points, &tree.option_names, &[3, 1, 3, 4, 2, 2], "nb201").unwrap();
    let (darts_points, darts_options) = crate::cell_graph::tests::darts();
    let darts_choices = crate::cell_graph::tests::darts_choices(&darts_points);
    let darts = cell_graph_svg(&darts_points, &darts_options, &darts_choices, "darts").unwrap();
    for (name, svg) in [("cell-nb201", nb201), ("cell-darts", darts)] {
        let boxes = render(name, &svg);
        let labels: Vec<(&String, &Rect)> = boxes.iter().filter(|(id, _)| id.contains("-label-") && !id.ends_with("-box")).collect();
        let nodes: Vec<(&String, &Rect)> = boxes.iter().filter(|(id, _)| id.contains("-node-") && !id.ends_with("-text")).collect();
        assert!(!labels.is_empty() && !nodes.is_empty(), "{name}: nothing measured");
        for (id, node) in &nodes {
            assert!(inside(&boxes[&format!("{id}-text")], node), "{name}: {id}'s text leaves its box");
        }
        for (i, (id, label)) in labels.iter().enumerate() {
            for (node_id, node) in &nodes {
                assert!(!overlap(label, node), "{name}: label {id} covers {node_id}");
            }
            for (other, other_label) in &labels[i + 1..] {
                assert!(!overlap(label, other_label), "{name}: labels {id} and {other} overlap");
            }
        }
    }
}

#[test]
fn charts_render() {
    let tree = quickstart_tree();
    let events = parse_events(&quickstart_log(&tree, true));
    let curves = curves_svg(&tree, Some(6), &events);
    let boxes = render("curves", &curves);
    assert!(!boxes.is_empty() || curves.contains("<polyline"));
    let alpha = alpha_svg(&tree, 6, &[3, 0, 3, 0, 0, 2], &events).unwrap();
    render("alpha", &alpha);
}
