//! The split tree of a run: which sub-supernet came from which, on what choice point, with
//! which groups and scores. Persisted as `tree.json` in the run directory (atomically), it is
//! also the run's progress record that `splitnas resume` continues from.

use serde::{Deserialize, Serialize};
use splitnas_plugin_api::{Mask, SpaceInfo};

use splitnas_engine::standalone::StandaloneResult;

use crate::svg::{text_width, wrap, Bounds, Svg, LINE_HEIGHT_EM};

/// One candidate's score in a split.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CandidateRecord {
    pub choice_point: u32,
    pub name: String,
    pub score: f64,
    pub groups: Vec<Vec<u32>>,
    pub repeats: u32,
}

/// How a node was split.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SplitRecord {
    /// The epoch at which the split happened (after training epochs before it).
    pub epoch: usize,
    pub criterion: String,
    pub choice_point: u32,
    pub choice_point_name: String,
    /// Option indices of each child, in child order.
    pub groups: Vec<Vec<u32>>,
    /// Option names of each child.
    pub group_names: Vec<Vec<String>>,
    pub candidates: Vec<CandidateRecord>,
    /// Forward/backward passes the criterion asked for.
    pub gradient_passes: usize,
    pub seconds: f64,
    /// What the criterion logged while deciding (`log_metric`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<(String, f64)>,
}

/// What a leaf ended with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeafResult {
    pub genotype: String,
    pub choices: Vec<u32>,
    /// Validation accuracy of the supernet with the algorithm's evaluation weights.
    pub supernet_valid_accuracy: f64,
    /// Validation accuracy of the derived architecture through the supernet (single path).
    pub architecture_valid_accuracy: f64,
    /// Stand-alone training of the derived architecture, when selection trains leaves.
    pub standalone: Option<StandaloneResult>,
    pub parameters: u64,
    pub flops: u64,
    /// Milliseconds of the stand-alone network from `[search] latency_table`'s network parts,
    /// when the run has such a table (OFA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TreeNode {
    pub id: usize,
    pub parent: Option<usize>,
    pub depth: usize,
    /// Allowed options per choice point.
    pub mask: Vec<Vec<bool>>,
    pub children: Vec<usize>,
    pub split: Option<SplitRecord>,
    /// Seconds spent training this node's epochs (not its children's).
    pub train_seconds: f64,
    pub result: Option<LeafResult>,
}

impl TreeNode {
    pub fn mask(&self) -> Mask {
        Mask { rows: self.mask.iter().map(|row| row.clone().into()).collect() }
    }
    pub fn is_leaf(&self) -> bool {
        self.children.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SplitTree {
    pub nodes: Vec<TreeNode>,
    /// Option names per choice point, for rendering.
    pub choice_points: Vec<String>,
    pub option_names: Vec<Vec<String>>,
}

fn mask_rows(mask: &Mask) -> Vec<Vec<bool>> {
    mask.rows.iter().map(|row| row.to_vec()).collect()
}

impl SplitTree {
    pub fn new(info: &SpaceInfo) -> Self {
        let root = TreeNode {
            id: 0,
            parent: None,
            depth: 0,
            mask: mask_rows(&info.full_mask()),
            children: Vec::new(),
            split: None,
            train_seconds: 0.0,
            result: None,
        };
        SplitTree {
            nodes: vec![root],
            choice_points: info.choice_points.iter().map(|p| p.name.to_string()).collect(),
            option_names: info.choice_points.iter().map(|p| p.options.iter().map(|o| o.name.to_string()).collect()).collect(),
        }
    }

    pub fn leaves(&self) -> Vec<usize> {
        self.nodes.iter().filter(|n| n.is_leaf()).map(|n| n.id).collect()
    }

    pub fn at_depth(&self, depth: usize) -> Vec<usize> {
        self.nodes.iter().filter(|n| n.depth == depth).map(|n| n.id).collect()
    }

    /// Adds one child per group of `record` under `parent`; returns their ids.
    pub fn split(&mut self, parent: usize, record: SplitRecord) -> Vec<usize> {
        let mut ids = Vec::new();
        for group in &record.groups {
            let id = self.nodes.len();
            let mut mask = self.nodes[parent].mask.clone();
            for (option, allowed) in mask[record.choice_point as usize].iter_mut().enumerate() {
                *allowed = *allowed && group.contains(&(option as u32));
            }
            self.nodes.push(TreeNode {
                id,
                parent: Some(parent),
                depth: self.nodes[parent].depth + 1,
                mask,
                children: Vec::new(),
                split: None,
                train_seconds: 0.0,
                result: None,
            });
            ids.push(id);
        }
        self.nodes[parent].children = ids.clone();
        self.nodes[parent].split = Some(record);
        ids
    }

    /// Choice points restricted in a node's mask, as `name={options}`.
    pub fn mask_summary(&self, node: usize) -> String {
        let mask = &self.nodes[node].mask;
        let parts: Vec<String> = mask
            .iter()
            .enumerate()
            .filter(|(point, row)| row.iter().filter(|on| **on).count() < self.option_names[*point].len())
            .map(|(point, row)| {
                let names: Vec<&str> = row.iter().enumerate().filter(|(_, on)| **on).map(|(k, _)| self.option_names[point][k].as_str()).collect();
                format!("{}={{{}}}", self.choice_points[point], names.join(","))
            })
            .collect();
        if parts.is_empty() {
            "full space".to_string()
        } else {
            parts.join(" ")
        }
    }

    /// The tree as indented text.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        self.render_node(0, "", true, true, &mut out);
        out
    }

    fn render_node(&self, id: usize, prefix: &str, last: bool, root: bool, out: &mut String) {
        let node = &self.nodes[id];
        let branch = if root {
            ""
        } else if last {
            "└─ "
        } else {
            "├─ "
        };
        out.push_str(&format!("{prefix}{branch}node {id}: {}", self.mask_summary(id)));
        if let Some(split) = &node.split {
            let best = split.candidates.iter().find(|c| c.choice_point == split.choice_point).map(|c| c.score).unwrap_or(0.0);
            out.push_str(&format!(
                "  | split {} at epoch {} ({}, score {best:.4}, {:.1} s)",
                split.choice_point_name, split.epoch, split.criterion, split.seconds
            ));
        }
        if let Some(result) = &node.result {
            out.push_str(&format!("  | {}  supernet {:.4}", result.genotype, result.supernet_valid_accuracy));
            if let Some(standalone) = &result.standalone {
                out.push_str(&format!("  stand-alone valid {}", standalone.valid_accuracy.map_or("-".into(), |v| format!("{v:.4}"))));
            }
        }
        out.push('\n');
        let child_prefix = if root { String::new() } else { format!("{prefix}{}", if last { "   " } else { "│  " }) };
        for (i, &child) in node.children.iter().enumerate() {
            self.render_node(child, &child_prefix, i + 1 == node.children.len(), false, out);
        }
    }

    /// Graphviz DOT.
    pub fn render_dot(&self) -> String {
        let mut out = String::from("digraph split_tree {\n  node [shape=box, fontname=\"monospace\"];\n");
        for node in &self.nodes {
            let mut label = format!("node {}\\n{}", node.id, escape(&self.mask_summary(node.id)));
            if let Some(split) = &node.split {
                let best = split.candidates.iter().find(|c| c.choice_point == split.choice_point).map(|c| c.score).unwrap_or(0.0);
                label += &format!("\\nsplit {} @ epoch {} score {best:.4}", escape(&split.choice_point_name), split.epoch);
            }
            if let Some(result) = &node.result {
                label += &format!("\\n{}\\nsupernet acc {:.4}", escape(&result.genotype), result.supernet_valid_accuracy);
            }
            out += &format!("  n{} [label=\"{label}\"];\n", node.id);
        }
        for node in &self.nodes {
            if let Some(split) = &node.split {
                for (child, names) in node.children.iter().zip(&split.group_names) {
                    out += &format!("  n{} -> n{} [label=\"{}\"];\n", node.id, child, escape(&names.join(",")));
                }
            }
        }
        out + "}\n"
    }

    /// The lines of text a node's box shows (long ones wrapped).
    fn box_lines(&self, id: usize, selected: Option<usize>) -> Vec<String> {
        let node = &self.nodes[id];
        let mut lines = vec![if selected == Some(id) { format!("node {id} (selected)") } else { format!("node {id}") }];
        lines.extend(wrap(&self.mask_summary(id), TREE_WRAP));
        if let Some(split) = &node.split {
            let best = split.candidates.iter().find(|c| c.choice_point == split.choice_point).map(|c| c.score).unwrap_or(0.0);
            lines.extend(wrap(&format!("split {} @ epoch {}, score {best:.4}", split.choice_point_name, split.epoch), TREE_WRAP));
        }
        if let Some(result) = &node.result {
            lines.extend(wrap(&result.genotype, TREE_WRAP));
            let standalone = result.standalone.as_ref().and_then(|s| s.valid_accuracy).map_or(String::new(), |v| format!(", stand-alone {v:.4}"));
            lines.extend(wrap(&format!("supernet acc {:.4}{standalone}", result.supernet_valid_accuracy), TREE_WRAP));
        }
        lines
    }

    /// The nodes from the root down to `node`.
    pub fn lineage(&self, node: usize) -> Vec<usize> {
        let mut path = vec![node];
        while let Some(parent) = self.nodes[*path.last().expect("non-empty")].parent {
            path.push(parent);
        }
        path.reverse();
        path
    }

    /// A self-contained SVG drawing: one box per node sized to its text, levels top to
    /// bottom, each edge labelled with the options its child kept; `selected` (the run's
    /// selected leaf) and its lineage stand out.
    ///
    /// Layout: every node gets a horizontal slot as wide as its box and the label of the
    /// edge into it; a subtree is as wide as its slot or its children's subtrees side by side,
    /// and a node is centred over its subtree. Edges run down from the parent to a bus, across
    /// and down to the child; the child's label sits on its own vertical drop, inside the
    /// child's slot, so no two labels and no label and box can meet.
    pub fn render_svg(&self, selected: Option<usize>) -> String {
        let font = TREE_FONT;
        let line = (font * LINE_HEIGHT_EM).ceil();
        let (pad, gap_x, margin) = (8.0, 24.0, 16.0);
        let lines: Vec<Vec<String>> = self.nodes.iter().map(|n| self.box_lines(n.id, selected)).collect();
        let box_size: Vec<(f64, f64)> = lines
            .iter()
            .map(|l| (l.iter().map(|t| text_width(t, font)).fold(0.0, f64::max) + 2.0 * pad, l.len() as f64 * line + 2.0 * pad))
            .collect();
        let labels: Vec<Option<String>> = self
            .nodes
            .iter()
            .map(|n| {
                let parent = &self.nodes[n.parent?];
                let split = parent.split.as_ref()?;
                let index = parent.children.iter().position(|c| *c == n.id)?;
                Some(split.group_names.get(index)?.join(","))
            })
            .collect();
        let label_size = |text: &str| (text_width(text, font) + 2.0 * 5.0, line + 4.0);
        let slot: Vec<f64> =
            self.nodes.iter().map(|n| box_size[n.id].0.max(labels[n.id].as_deref().map_or(0.0, |l| label_size(l).0 + 2.0 * 6.0))).collect();

        fn subtree_width(tree: &SplitTree, id: usize, slot: &[f64], gap: f64, out: &mut Vec<f64>) -> f64 {
            let children = &tree.nodes[id].children;
            let mut sum = 0.0;
            for &child in children {
                sum += subtree_width(tree, child, slot, gap, out);
            }
            sum += gap * children.len().saturating_sub(1) as f64;
            out[id] = slot[id].max(sum);
            out[id]
        }
        fn place(tree: &SplitTree, id: usize, left: f64, widths: &[f64], gap: f64, centre: &mut Vec<f64>) {
            centre[id] = left + widths[id] / 2.0;
            let children = &tree.nodes[id].children;
            let block: f64 = children.iter().map(|c| widths[*c]).sum::<f64>() + gap * children.len().saturating_sub(1) as f64;
            let mut x = left + (widths[id] - block) / 2.0;
            for &child in children {
                place(tree, child, x, widths, gap, centre);
                x += widths[child] + gap;
            }
        }
        let mut widths = vec![0.0; self.nodes.len()];
        let total_width = subtree_width(self, 0, &slot, gap_x, &mut widths);
        let mut centre = vec![0.0; self.nodes.len()];
        place(self, 0, margin, &widths, gap_x, &mut centre);

        // Rows: as tall as their tallest box; between rows a stub, the bus, the labels.
        let depth = self.nodes.iter().map(|n| n.depth).max().unwrap_or(0);
        let row_height: Vec<f64> =
            (0..=depth).map(|d| self.nodes.iter().filter(|n| n.depth == d).map(|n| box_size[n.id].1).fold(0.0, f64::max)).collect();
        let (stub, label_band) = (14.0, line + 4.0 + 2.0 * 10.0);
        let mut row_top = vec![margin];
        for d in 1..=depth {
            row_top.push(row_top[d - 1] + row_height[d - 1] + stub + label_band);
        }
        let height = row_top[depth] + row_height[depth] + margin;
        let bounds = |id: usize| {
            let (w, h) = box_size[id];
            Bounds::new(centre[id] - w / 2.0, row_top[self.nodes[id].depth], w, h)
        };
        let on_lineage: Vec<bool> = {
            let mut marks = vec![false; self.nodes.len()];
            if let Some(leaf) = selected.filter(|s| *s < self.nodes.len()) {
                for id in self.lineage(leaf) {
                    marks[id] = true;
                }
            }
            marks
        };

        let mut svg = Svg::new(total_width + 2.0 * margin, height, font);
        for node in &self.nodes {
            let Some(parent) = node.parent else { continue };
            let parent_box = bounds(parent);
            let child_box = bounds(node.id);
            let bus = row_top[self.nodes[parent].depth] + row_height[self.nodes[parent].depth] + stub;
            let (px, cx) = (centre[parent], centre[node.id]);
            let style = if on_lineage[node.id] { "stroke=\"#c0392b\" stroke-width=\"2.5\"" } else { "stroke=\"#555\" stroke-width=\"1.2\"" };
            svg.polyline(
                &[(px, parent_box.bottom()), (px, bus), (cx, bus), (cx, child_box.y)],
                &format!("id=\"edge-{parent}-{}\" class=\"edge\" {style}", node.id),
            );
            if let Some(label) = &labels[node.id] {
                let (w, h) = label_size(label);
                let label_box = Bounds::centred(cx, bus + label_band / 2.0, w, h);
                svg.rect(label_box, &format!("id=\"edge-{parent}-{}-box\" class=\"edge-label\" rx=\"3\" fill=\"#f7f7fb\" stroke=\"#99a\"", node.id));
                svg.text(
                    (cx, Svg::baseline_centred(&label_box, font)),
                    label,
                    &format!("id=\"edge-{parent}-{}-label\" text-anchor=\"middle\" fill=\"#335\"", node.id),
                );
            }
        }
        for node in &self.nodes {
            let b = bounds(node.id);
            let (fill, stroke) = if selected == Some(node.id) {
                ("#fdeee6", "stroke=\"#c0392b\" stroke-width=\"3\"")
            } else if on_lineage[node.id] {
                (if node.is_leaf() { "#eef6ee" } else { "#eef0f8" }, "stroke=\"#c0392b\" stroke-width=\"1.5\"")
            } else {
                (if node.is_leaf() { "#eef6ee" } else { "#eef0f8" }, "stroke=\"#333\"")
            };
            svg.rect(b, &format!("id=\"node-{}\" class=\"node\" rx=\"6\" fill=\"{fill}\" {stroke}", node.id));
            for (i, text) in lines[node.id].iter().enumerate() {
                let weight = if i == 0 { " font-weight=\"bold\"" } else { "" };
                svg.text((b.x + pad, b.y + pad + font + i as f64 * line), text, &format!("id=\"node-{}-text-{i}\"{weight}", node.id));
            }
        }
        svg.finish()
    }
}

/// Font size of `tree.svg`, and the characters after which its lines wrap.
const TREE_FONT: f64 = 11.0;
const TREE_WRAP: usize = 56;

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitnas_plugin_api::{ChoicePointInfo, OptionInfo};

    fn info() -> SpaceInfo {
        let options: abi_stable::std_types::RVec<OptionInfo> =
            ["a", "b", "c", "d"].iter().map(|n| OptionInfo { name: (*n).into(), costs: Default::default() }).collect();
        SpaceInfo {
            name: "t".into(),
            choice_points: (0..2)
                .map(|e| ChoicePointInfo { name: format!("e{e}").into(), group: "cell".into(), options: options.clone(), splittable: true })
                .collect(),
            max_options: 4,
            min_group_size: 1,
        }
    }

    fn record(point: u32, groups: Vec<Vec<u32>>) -> SplitRecord {
        SplitRecord {
            metrics: Vec::new(),
            epoch: 3,
            criterion: "gm".into(),
            choice_point: point,
            choice_point_name: format!("e{point}"),
            group_names: groups.iter().map(|g| g.iter().map(|k| ["a", "b", "c", "d"][*k as usize].to_string()).collect()).collect(),
            groups,
            candidates: vec![CandidateRecord { choice_point: point, name: format!("e{point}"), score: 1.5, groups: vec![], repeats: 10 }],
            gradient_passes: 40,
            seconds: 1.0,
        }
    }

    #[test]
    fn splitting_restricts_the_childrens_masks_and_renders() {
        let mut tree = SplitTree::new(&info());
        let children = tree.split(0, record(1, vec![vec![0, 3], vec![1, 2]]));
        assert_eq!(children, vec![1, 2]);
        assert_eq!(tree.nodes[1].mask[1], vec![true, false, false, true]);
        assert_eq!(tree.nodes[2].mask[0], vec![true; 4]);
        let grandchildren = tree.split(2, record(0, vec![vec![0], vec![1, 2, 3]]));
        assert_eq!(tree.nodes[grandchildren[0]].mask[1], vec![false, true, true, false]);
        assert_eq!(tree.leaves(), vec![1, 3, 4]);
        assert_eq!(tree.mask_summary(3), "e0={a} e1={b,c}");
        let text = tree.render_text();
        assert!(text.contains("split e1 at epoch 3") && text.contains("└─ node 2"), "{text}");
        let dot = tree.render_dot();
        assert!(dot.contains("n0 -> n1") && dot.contains("n2 -> n4"));
        let svg = tree.render_svg(Some(3));
        assert!(svg.starts_with("<svg") && svg.matches("class=\"node\"").count() == 5);
        assert_eq!(svg.matches("class=\"edge-label\"").count(), 4);
        assert!(svg.contains("node 3 (selected)"));
        assert_eq!(tree.lineage(3), vec![0, 2, 3]);
        let json = serde_json::to_string(&tree).unwrap();
        assert_eq!(serde_json::from_str::<SplitTree>(&json).unwrap(), tree);
    }
}
