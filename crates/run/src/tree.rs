//! The split tree of a run: which sub-supernet came from which, on what choice point, with
//! which groups and scores. Persisted as `tree.json` in the run directory (atomically), it is
//! also the run's progress record that `splitnas resume` continues from.

use serde::{Deserialize, Serialize};
use splitnas_plugin_api::{Mask, SpaceInfo};

use splitnas_engine::standalone::StandaloneResult;

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

    /// A self-contained SVG drawing: one box per node, levels top to bottom.
    pub fn render_svg(&self) -> String {
        let (box_width, box_height, gap_x, gap_y) = (300.0, 92.0, 24.0, 70.0);
        // Leaves get consecutive slots; parents sit centred over their children.
        let mut x_slot = vec![0.0f64; self.nodes.len()];
        let mut next = 0.0;
        fn place(tree: &SplitTree, id: usize, next: &mut f64, x: &mut Vec<f64>) {
            let node = &tree.nodes[id];
            if node.children.is_empty() {
                x[id] = *next;
                *next += 1.0;
            } else {
                for &child in &node.children {
                    place(tree, child, next, x);
                }
                x[id] = (x[node.children[0]] + x[*node.children.last().expect("non-empty")]) / 2.0;
            }
        }
        place(self, 0, &mut next, &mut x_slot);
        let depth = self.nodes.iter().map(|n| n.depth).max().unwrap_or(0) as f64;
        let width = next.max(1.0) * (box_width + gap_x) + gap_x;
        let height = (depth + 1.0) * (box_height + gap_y) + gap_y;
        let position = |id: usize| (gap_x + x_slot[id] * (box_width + gap_x), gap_y / 2.0 + self.nodes[id].depth as f64 * (box_height + gap_y));
        let mut out = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" font-family=\"monospace\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        );
        for node in &self.nodes {
            let (x, y) = position(node.id);
            if let Some(split) = &node.split {
                for (child, names) in node.children.iter().zip(&split.group_names) {
                    let (cx, cy) = position(*child);
                    out += &format!(
                        "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{cy:.1}\" stroke=\"#555\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#335\">{}</text>\n",
                        x + box_width / 2.0,
                        y + box_height,
                        cx + box_width / 2.0,
                        (x + cx + box_width) / 2.0 + 4.0,
                        (y + box_height + cy) / 2.0,
                        xml(&names.join(","))
                    );
                }
            }
        }
        for node in &self.nodes {
            let (x, y) = position(node.id);
            let fill = if node.is_leaf() { "#eef6ee" } else { "#eef0f8" };
            out += &format!(
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{box_width}\" height=\"{box_height}\" rx=\"6\" fill=\"{fill}\" stroke=\"#333\"/>\n"
            );
            let mut lines = vec![format!("node {}", node.id), self.mask_summary(node.id)];
            if let Some(split) = &node.split {
                let best = split.candidates.iter().find(|c| c.choice_point == split.choice_point).map(|c| c.score).unwrap_or(0.0);
                lines.push(format!("split {} @ epoch {}, score {best:.4}", split.choice_point_name, split.epoch));
            }
            if let Some(result) = &node.result {
                lines.push(result.genotype.clone());
                let standalone = result.standalone.as_ref().and_then(|s| s.valid_accuracy).map_or(String::new(), |v| format!(", stand-alone {v:.4}"));
                lines.push(format!("supernet acc {:.4}{standalone}", result.supernet_valid_accuracy));
            }
            for (i, line) in lines.iter().enumerate() {
                let clipped: String = line.chars().take(48).collect();
                out += &format!("<text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n", x + 6.0, y + 16.0 + i as f64 * 15.0, xml(&clipped));
            }
        }
        out + "</svg>\n"
    }
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
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
        let svg = tree.render_svg();
        assert!(svg.starts_with("<svg") && svg.matches("<rect x=").count() == 5);
        let json = serde_json::to_string(&tree).unwrap();
        assert_eq!(serde_json::from_str::<SplitTree>(&json).unwrap(), tree);
    }
}
