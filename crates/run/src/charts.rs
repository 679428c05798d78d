//! A run's curves as SVG, from its `metrics.jsonl`: `curves.svg` (search training loss and
//! supernet validation accuracy per node of the split tree, and stand-alone training when the
//! log has it) and `alpha.svg` (the architecture weights of every choice point over the
//! epochs).
//!
//! `alpha.svg` follows the selected leaf's lineage, root to leaf: that is the one path
//! through the tree whose α produced the selected architecture, and because children inherit
//! their parent's α it reads as one continuous trajectory per option, with each split visible
//! as the options it pruned dropping to 0 (or, with `restart_final`, as the restart to uniform
//! weights). Drawing every node instead would put `nodes × choice points` panels side by side,
//! most of them repeating their parent's first epochs.

use std::collections::BTreeMap;

use crate::metrics::{EpochEvent, LoggedAlphas, MetricsEvent, StandaloneEpochEvent};
use crate::svg::{color, dash, draw_legend, legend_width, text_width, Axes, Bounds, LegendEntry, Svg, LINE_HEIGHT_EM};
use crate::tree::SplitTree;

const FONT: f64 = 12.0;

/// One line of a chart: drawing coordinates come later.
struct Series {
    key: String,
    index: usize,
    points: Vec<(f64, f64)>,
    emphasised: bool,
}

/// The search epochs of each node, the last logged one winning (a resumed run may log an
/// epoch twice; both are the same epoch).
fn search_epochs(events: &[MetricsEvent]) -> BTreeMap<usize, BTreeMap<usize, &EpochEvent>> {
    let mut nodes: BTreeMap<usize, BTreeMap<usize, &EpochEvent>> = BTreeMap::new();
    for event in events {
        if let MetricsEvent::Epoch(epoch) = event {
            nodes.entry(epoch.node).or_default().insert(epoch.epoch, epoch);
        }
    }
    nodes
}

/// Each node's last stand-alone training (an epoch that does not follow the previous one
/// starts a new training: successive halving trains survivors again, a resumed run redoes a
/// killed training).
fn standalone_trainings(events: &[MetricsEvent]) -> BTreeMap<Option<usize>, Vec<&StandaloneEpochEvent>> {
    let mut nodes: BTreeMap<Option<usize>, Vec<&StandaloneEpochEvent>> = BTreeMap::new();
    for event in events {
        if let MetricsEvent::StandaloneEpoch(epoch) = event {
            let training = nodes.entry(epoch.node).or_default();
            if training.last().is_some_and(|last| epoch.epoch <= last.epoch) {
                training.clear();
            }
            training.push(epoch);
        }
    }
    nodes
}

fn finite(value: Option<f64>) -> Option<f64> {
    value.filter(|v| v.is_finite())
}

/// The (low, high) of every y value, padded by 5 %.
fn y_range(series: &[Series]) -> (f64, f64) {
    let (low, high) =
        series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), y| (l.min(y), h.max(y)));
    if !low.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((high - low) * 0.05).max(1e-3);
    (low - pad, high + pad)
}

/// A panel: axes, optional vertical markers (split epochs), one polyline and its markers per
/// series.
fn draw_panel(svg: &mut Svg, axes: &Axes, (title, x_label, y_label): (&str, &str, &str), markers: &[f64], series: &[Series], panel: &str) {
    axes.draw(svg, title, x_label, y_label, FONT);
    for &x in markers {
        let (px, _) = axes.map(x, 0.0);
        svg.line((px, axes.area.y), (px, axes.area.bottom()), "class=\"split-marker\" stroke=\"#888\" stroke-dasharray=\"4 3\"");
    }
    for s in series {
        let points: Vec<(f64, f64)> = s.points.iter().map(|&(x, y)| axes.map(x, y)).collect();
        let width = if s.emphasised { 2.6 } else { 1.5 };
        let dashes = if dash(s.index).is_empty() { String::new() } else { format!(" stroke-dasharray=\"{}\"", dash(s.index)) };
        let c = color(s.index);
        svg.polyline(
            &points,
            &format!("class=\"curve\" data-panel=\"{panel}\" data-series=\"{}\" stroke=\"{c}\" stroke-width=\"{width}\"{dashes}", s.key),
        );
        for &point in &points {
            svg.circle(point, if s.emphasised { 3.0 } else { 2.2 }, &format!("fill=\"{c}\""));
        }
    }
}

/// `curves.svg`: per node of the split tree, the search training loss and the supernet's
/// validation accuracy after each epoch, with the split epochs marked; below, when the log has
/// `standalone_epoch` events, each node's (last) stand-alone training loss and accuracy.
/// `selected` (the selected leaf) is drawn thicker.
pub fn curves_svg(tree: &SplitTree, selected: Option<usize>, events: &[MetricsEvent]) -> String {
    let search = search_epochs(events);
    let standalone = standalone_trainings(events);
    let series = |pick: &dyn Fn(&EpochEvent) -> Option<f64>| -> Vec<Series> {
        search
            .iter()
            .map(|(&node, epochs)| Series {
                key: node.to_string(),
                index: node,
                points: epochs.values().filter_map(|e| finite(pick(e)).map(|y| ((e.epoch + 1) as f64, y))).collect(),
                emphasised: selected == Some(node),
            })
            .collect()
    };
    let loss = series(&|e| e.train_loss);
    let accuracy = series(&|e| e.supernet_valid_accuracy);
    let orphan = tree.nodes.len(); // the colour of stand-alone trainings that belong to no node
    let standalone_series = |pick: &dyn Fn(&StandaloneEpochEvent) -> Option<f64>| -> Vec<Series> {
        standalone
            .iter()
            .map(|(node, epochs)| Series {
                key: node.map_or("none".to_string(), |n| n.to_string()),
                index: node.unwrap_or(orphan),
                points: epochs.iter().filter_map(|e| finite(pick(e)).map(|y| ((e.epoch + 1) as f64, y))).collect(),
                emphasised: node.is_some() && *node == selected,
            })
            .collect()
    };
    let standalone_loss = standalone_series(&|e| e.train_loss);
    let standalone_accuracy = standalone_series(&|e| e.train_accuracy);

    let mut legend: Vec<LegendEntry> = search
        .keys()
        .map(|&node| (Some(node), node))
        .chain(standalone.keys().filter(|n| n.is_none_or(|n| !search.contains_key(&n))).map(|n| (*n, n.unwrap_or(orphan))))
        .map(|(node, index)| LegendEntry {
            color: color(index),
            dash: dash(index),
            width: if node.is_some() && node == selected { 2.6 } else { 1.5 },
            label: match node {
                Some(n) if Some(n) == selected => format!("node {n} (selected)"),
                Some(n) if tree.nodes.get(n).is_some_and(|t| t.is_leaf()) => format!("node {n} (leaf)"),
                Some(n) => format!("node {n}"),
                None => "stand-alone, no node".to_string(),
            },
        })
        .collect();
    legend.sort_by_key(|e| e.label.split(' ').nth(1).and_then(|n| n.parse::<usize>().ok()).unwrap_or(usize::MAX));

    let (panel_w, panel_h) = (430.0, 260.0);
    let left = Axes::y_label_space(FONT) + 8.0;
    let (top, between_x, between_y) = (48.0, Axes::y_label_space(FONT) + 24.0, Axes::x_label_space(FONT) + 40.0);
    let rows = if standalone.is_empty() { 1 } else { 2 };
    let legend_x = left + 2.0 * panel_w + between_x + 24.0;
    let width = legend_x + legend_width(&legend, FONT) + 16.0;
    let height = top + rows as f64 * panel_h + (rows - 1) as f64 * between_y + Axes::x_label_space(FONT) + 12.0;
    let mut svg = Svg::new(width, height, FONT);
    svg.text((left, 22.0), "Search: training loss and supernet validation accuracy per node (dashed: split epochs)", "font-weight=\"bold\"");

    let last_epoch = search.values().flat_map(|e| e.keys()).max().map_or(1.0, |e| (e + 1) as f64);
    let splits: Vec<f64> = {
        let mut epochs: Vec<usize> = tree.nodes.iter().filter_map(|n| n.split.as_ref().map(|s| s.epoch)).collect();
        epochs.sort_unstable();
        epochs.dedup();
        epochs.into_iter().map(|e| e as f64).collect()
    };
    let area = |column: usize, row: usize| {
        Bounds::new(left + column as f64 * (panel_w + between_x), top + row as f64 * (panel_h + between_y), panel_w, panel_h)
    };
    let panels = [
        (area(0, 0), ("search training loss", "epoch", "loss"), &loss, "search-loss"),
        (area(1, 0), ("supernet validation accuracy", "epoch", "accuracy"), &accuracy, "search-accuracy"),
    ];
    for (bounds, labels, series, name) in panels {
        let axes = Axes::new(bounds, (0.0, last_epoch), y_range(series));
        draw_panel(&mut svg, &axes, labels, &splits, series, name);
        // A child continues from its parent's last epoch: a dotted link shows where (and, for
        // children that restart, how far back they start).
        for s in series.iter() {
            let parent = tree.nodes.get(s.index).and_then(|n| n.parent);
            let from = parent.and_then(|p| series.iter().find(|o| o.index == p)).and_then(|p| p.points.last());
            if let (Some(&(x0, y0)), Some(&(x1, y1))) = (from, s.points.first()) {
                svg.line(
                    axes.map(x0, y0),
                    axes.map(x1, y1),
                    &format!("class=\"lineage-link\" stroke=\"{}\" stroke-dasharray=\"1 3\"", color(s.index)),
                );
            }
        }
    }
    if !standalone.is_empty() {
        let last = standalone.values().flat_map(|t| t.iter().map(|e| e.epoch)).max().map_or(1.0, |e| (e + 1) as f64);
        let panels = [
            (area(0, 1), ("stand-alone training loss", "epoch", "loss"), &standalone_loss, "standalone-loss"),
            (area(1, 1), ("stand-alone training accuracy", "epoch", "accuracy"), &standalone_accuracy, "standalone-accuracy"),
        ];
        for (bounds, labels, series, name) in panels {
            let axes = Axes::new(bounds, (0.0, last), y_range(series));
            draw_panel(&mut svg, &axes, labels, &[], series, name);
        }
    }
    draw_legend(&mut svg, &legend, (legend_x, top), FONT);
    svg.finish()
}

/// Softmax of `row` over the options `allowed` (the others are exactly 0, as the algorithms'
/// masked softmax makes them); `None` when a value is missing or not finite.
fn masked_softmax(row: &[Option<f64>], allowed: &[bool]) -> Option<Vec<f64>> {
    let values: Vec<Option<f64>> =
        (0..allowed.len()).map(|k| if allowed[k] { row.get(k).copied().flatten() } else { Some(f64::NEG_INFINITY) }).collect();
    if values.iter().zip(allowed).any(|(v, on)| *on && !v.is_some_and(f64::is_finite)) {
        return None;
    }
    let max = values.iter().flatten().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = values.iter().map(|v| (v.unwrap_or(f64::NEG_INFINITY) - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    Some(exps.iter().map(|e| e / sum).collect())
}

/// `alpha.svg`: for the selected leaf's lineage (see the module's documentation), one panel
/// per choice point with one line per option: softmax(α) over the options the node on the
/// lineage allows, after each epoch, from the root's initial α on. Dashed lines mark the
/// lineage's splits; the option the leaf derived is drawn thicker. `None` when the algorithm
/// logged no α (random sampling) or α of another shape than `[choice points × options]`.
pub fn alpha_svg(tree: &SplitTree, selected: usize, derived: &[u32], events: &[MetricsEvent]) -> Option<String> {
    let points = tree.choice_points.len();
    let options = tree.option_names.iter().map(Vec::len).max().unwrap_or(0);
    if points == 0 || options == 0 || selected >= tree.nodes.len() {
        return None;
    }
    let lineage = tree.lineage(selected);
    // (x, node, α) along the lineage, in order; a later record of the same point wins.
    let mut samples: BTreeMap<(usize, usize, usize), (f64, usize, &LoggedAlphas)> = BTreeMap::new();
    for event in events {
        let (node, x, order, alphas) = match event {
            MetricsEvent::Init(init) => (init.node, init.epoch.unwrap_or(0), 0, &init.alphas),
            MetricsEvent::Epoch(epoch) => (epoch.node, epoch.epoch + 1, 1, &epoch.alphas),
            MetricsEvent::StandaloneEpoch(_) => continue,
        };
        let Some(depth) = lineage.iter().position(|n| *n == node) else { continue };
        samples.insert((depth, x, order), (x as f64, node, alphas));
    }
    let names: Vec<&String> = {
        let mut names: Vec<&String> = samples
            .values()
            .flat_map(|(_, _, a)| a.iter().filter(|(_, v)| v.len() % points == 0 && v.len() / points >= options).map(|(n, _)| n))
            .collect();
        names.sort();
        names.dedup();
        names
    };
    if names.is_empty() {
        return None;
    }
    let last_x = samples.values().map(|s| s.0).fold(1.0, f64::max);
    let splits: Vec<f64> = lineage.iter().filter_map(|&n| tree.nodes[n].split.as_ref()).map(|s| s.epoch as f64).collect();

    let shared_options = tree.option_names.iter().all(|o| o == &tree.option_names[0]);
    let font = 11.0;
    let (panel_w, panel_h) = (210.0, 120.0);
    let columns = ((points as f64 * 1.5).sqrt().ceil() as usize).clamp(1, points);
    let rows = points.div_ceil(columns);
    let left = Axes::y_label_space(font) - font;
    let (gap_x, gap_y) = (left + 16.0, Axes::x_label_space(font) + 28.0);
    let legend: Vec<LegendEntry> = tree
        .option_names
        .iter()
        .max_by_key(|o| o.len())
        .expect("choice points exist")
        .iter()
        .enumerate()
        .map(|(k, name)| LegendEntry {
            color: color(k),
            dash: dash(k),
            width: 1.5,
            label: if shared_options { name.clone() } else { format!("option {k}") },
        })
        .collect();
    let caption = [
        format!(
            "Architecture weights of the selected leaf (node {selected}) and its ancestors ({}):",
            lineage.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(" -> ")
        ),
        "softmax(alpha) over the options each node allows, after each epoch; dashed: splits; thick: the derived option".to_string(),
    ];
    let title_height = 16.0 + caption.len() as f64 * font * LINE_HEIGHT_EM;
    let grid_w = left + columns as f64 * (panel_w + gap_x);
    let legend_x = grid_w + 8.0;
    let section_h = 28.0 + rows as f64 * (panel_h + gap_y);
    let width = (legend_x + legend_width(&legend, font) + 16.0).max(caption.iter().map(|c| text_width(c, font)).fold(0.0, f64::max) + 32.0);
    let height = title_height + names.len() as f64 * section_h + 8.0;
    let mut svg = Svg::new(width, height, font);
    for (i, line) in caption.iter().enumerate() {
        svg.text((16.0, 20.0 + i as f64 * font * LINE_HEIGHT_EM), line, if i == 0 { "font-weight=\"bold\"" } else { "" });
    }
    for (section, name) in names.iter().enumerate() {
        let section_top = title_height + section as f64 * section_h;
        svg.open_group(&format!("class=\"alpha-tensor\" data-name=\"{}\"", crate::svg::escape(name)));
        svg.text((16.0, section_top + 14.0), &format!("alpha tensor `{name}`"), "font-style=\"italic\"");
        for point in 0..points {
            let (column, row) = (point % columns, point / columns);
            let area = Bounds::new(
                left + column as f64 * (panel_w + gap_x),
                section_top + 28.0 + font * 1.6 + row as f64 * (panel_h + gap_y),
                panel_w,
                panel_h,
            );
            let axes = Axes::new(area, (0.0, last_x), (0.0, 1.0));
            let count = tree.option_names[point].len();
            let mut series: Vec<Series> = (0..count)
                .map(|k| Series {
                    key: tree.option_names[point][k].clone(),
                    index: k,
                    points: Vec::new(),
                    emphasised: derived.get(point) == Some(&(k as u32)),
                })
                .collect();
            for (x, node, alphas) in samples.values() {
                let Some(flat) = alphas.get(*name) else { continue };
                let stride = flat.len() / points;
                let allowed: Vec<bool> = tree.nodes[*node].mask.get(point).cloned().unwrap_or_else(|| vec![true; count]);
                if let Some(probabilities) = masked_softmax(&flat[point * stride..point * stride + count], &allowed[..count.min(allowed.len())]) {
                    for (k, p) in probabilities.into_iter().enumerate() {
                        series[k].points.push((*x, p));
                    }
                }
            }
            let chosen = derived.get(point).and_then(|&c| tree.option_names[point].get(c as usize));
            let title = match chosen {
                Some(option) => format!("{} -> {option}", tree.choice_points[point]),
                None => tree.choice_points[point].clone(),
            };
            svg.open_group(&format!("class=\"panel\" data-choice-point=\"{}\"", crate::svg::escape(&tree.choice_points[point])));
            draw_panel(&mut svg, &axes, (&title, if row + 1 == rows { "epoch" } else { "" }, ""), &splits, &series, &format!("alpha-{point}"));
            svg.close_group();
        }
        svg.close_group();
    }
    draw_legend(&mut svg, &legend, (legend_x, title_height + 28.0 + font * 1.6), font);
    Some(svg.finish())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::metrics::parse_events;
    use crate::tree::{SplitRecord, SplitTree};

    pub(crate) fn nb201_tree() -> SplitTree {
        let names = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"];
        let edges = ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"];
        let mut tree = SplitTree {
            nodes: vec![crate::tree::TreeNode {
                id: 0,
                parent: None,
                depth: 0,
                mask: vec![vec![true; 5]; 6],
                children: vec![],
                split: None,
                train_seconds: 0.0,
                result: None,
            }],
            choice_points: edges.iter().map(|e| e.to_string()).collect(),
            option_names: vec![names.iter().map(|n| n.to_string()).collect(); 6],
        };
        let record = |point: u32, epoch: usize, groups: Vec<Vec<u32>>| SplitRecord {
            epoch,
            criterion: "gm".into(),
            choice_point: point,
            choice_point_name: edges[point as usize].into(),
            group_names: groups.iter().map(|g| g.iter().map(|k| names[*k as usize].to_string()).collect()).collect(),
            groups,
            candidates: vec![],
            gradient_passes: 0,
            seconds: 0.0,
            metrics: vec![],
        };
        tree.split(0, record(0, 2, vec![vec![0, 2, 3], vec![1, 4]]));
        tree.split(1, record(4, 4, vec![vec![0, 1, 4], vec![2, 3]]));
        tree.split(2, record(4, 4, vec![vec![0, 1, 4], vec![2, 3]]));
        tree
    }

    /// The quickstart's schedule: 6 epochs, splits after 2 and 4, α logged at every event.
    pub(crate) fn quickstart_log(tree: &SplitTree, standalone: bool) -> String {
        let alpha = |seed: usize| -> Vec<f64> { (0..30).map(|i| ((i * 7 + seed * 3) % 11) as f64 * 0.1).collect() };
        let mut lines = vec![serde_json::json!({"event": "init", "node": 0, "alphas": {"alpha": alpha(0)}})];
        for node in &tree.nodes {
            let from = 2 * node.depth;
            if let Some(parent) = node.parent {
                lines.push(
                    serde_json::json!({"event": "init", "node": node.id, "parent": parent, "epoch": from, "alphas": {"alpha": alpha(node.id)}}),
                );
            }
            for epoch in from..from + 2 {
                lines.push(serde_json::json!({"event": "epoch", "node": node.id, "epoch": epoch, "lr": 0.025, "train_loss": 2.3 - 0.1 * epoch as f64 - 0.01 * node.id as f64,
                    "supernet_valid_accuracy": 0.1 + 0.05 * epoch as f64, "alphas": {"alpha": alpha(node.id * 10 + epoch)}}));
            }
            if node.split.is_some() {
                lines.push(serde_json::json!({"event": "split", "node": node.id}));
            }
        }
        if standalone {
            for leaf in tree.leaves() {
                for epoch in 0..3 {
                    lines.push(serde_json::json!({"event": "standalone_epoch", "node": leaf, "epoch": epoch, "lr": 0.1, "train_loss": 2.0 - 0.3 * epoch as f64, "train_accuracy": 0.2 * epoch as f64}));
                }
            }
        }
        // A resumed run logs a redone epoch twice.
        lines.push(lines[2].clone());
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    /// The points of each `<polyline class="curve" data-panel=PANEL ...>`, by series.
    pub(crate) fn curves(svg: &str, panel: &str) -> BTreeMap<String, usize> {
        svg.lines()
            .filter(|l| l.starts_with("<polyline") && l.contains(&format!("data-panel=\"{panel}\"")))
            .map(|l| {
                let series = l.split("data-series=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
                let points = l.split("points=\"").nth(1).unwrap().split('"').next().unwrap().split(' ').count();
                (series, points)
            })
            .collect()
    }

    #[test]
    fn curves_have_one_line_per_node_with_a_point_per_epoch() {
        let tree = nb201_tree();
        let events = parse_events(&quickstart_log(&tree, false));
        let svg = curves_svg(&tree, Some(6), &events);
        let expected: BTreeMap<String, usize> = (0..7).map(|n| (n.to_string(), 2)).collect();
        assert_eq!(curves(&svg, "search-loss"), expected);
        assert_eq!(curves(&svg, "search-accuracy"), expected);
        assert!(curves(&svg, "standalone-loss").is_empty(), "no stand-alone events, no stand-alone panels");
        assert!(svg.contains("node 6 (selected)") && svg.contains("node 3 (leaf)") && svg.contains(">node 0<"));
        assert_eq!(svg.matches("class=\"split-marker\"").count(), 2 * 2, "splits at epochs 2 and 4, in both panels");
        assert_eq!(svg.matches("class=\"lineage-link\"").count(), 2 * 6, "every child linked to its parent, in both panels");
        assert!(svg.contains(">epoch<") && svg.contains(">loss<") && svg.contains(">accuracy<"), "axes are labelled");

        let events = parse_events(&quickstart_log(&tree, true));
        let svg = curves_svg(&tree, Some(6), &events);
        let leaves: BTreeMap<String, usize> = [3, 4, 5, 6].iter().map(|n| (n.to_string(), 3)).collect();
        assert_eq!(curves(&svg, "standalone-loss"), leaves);
        assert_eq!(curves(&svg, "standalone-accuracy"), leaves);
    }

    #[test]
    fn the_last_standalone_training_of_a_node_is_drawn() {
        let tree = nb201_tree();
        let mut log = String::new();
        for (node, epochs) in [("3", 0..2), ("3", 0..4), ("null", 0..1)] {
            for epoch in epochs {
                log += &format!(
                    "{{\"event\":\"standalone_epoch\",\"node\":{node},\"epoch\":{epoch},\"lr\":0.1,\"train_loss\":1.0,\"train_accuracy\":0.5}}\n"
                );
            }
        }
        let svg = curves_svg(&tree, None, &parse_events(&log));
        assert_eq!(curves(&svg, "standalone-loss"), [("3".to_string(), 4), ("none".to_string(), 1)].into_iter().collect());
        assert!(svg.contains("stand-alone, no node"));
    }

    #[test]
    fn alpha_has_a_panel_per_choice_point_following_the_lineage() {
        let tree = nb201_tree();
        let events = parse_events(&quickstart_log(&tree, false));
        let svg = alpha_svg(&tree, 6, &[3, 0, 3, 2, 3, 3], &events).expect("α is logged");
        assert_eq!(svg.matches("class=\"panel\"").count(), 6);
        // Lineage 0 -> 2 -> 6: root init + 2 epochs, then per child init + 2 epochs.
        let lines = curves(&svg, "alpha-0");
        assert_eq!(lines.len(), 5, "one line per option");
        assert!(lines.values().all(|&points| points == 9), "{lines:?}");
        // Node 2 kept {skip_connect, avg_pool_3x3} on 1<-0: `none` is exactly 0 from its init on.
        let none_line = svg.lines().find(|l| l.contains("data-panel=\"alpha-0\"") && l.contains("data-series=\"none\"")).unwrap();
        let ys: Vec<&str> =
            none_line.split("points=\"").nth(1).unwrap().split('"').next().unwrap().split(' ').map(|p| p.split(',').nth(1).unwrap()).collect();
        let zero = ys.last().unwrap();
        assert!(ys[3..].iter().all(|y| y == zero) && ys[0] != *zero, "{ys:?}");
        assert!(svg.contains("1&lt;-0 -&gt; nor_conv_3x3") || svg.contains("1&lt;-0 -> nor_conv_3x3"), "the derived option is named");
        assert!(
            alpha_svg(&tree, 6, &[], &parse_events("{\"event\":\"epoch\",\"node\":0,\"epoch\":0,\"alphas\":{}}\n")).is_none(),
            "no α, no drawing"
        );
    }

    #[test]
    fn masked_softmax_is_zero_outside_the_mask() {
        let p = masked_softmax(&[Some(0.0), Some(5.0), Some(0.0)], &[true, false, true]).unwrap();
        assert_eq!(p, vec![0.5, 0.0, 0.5]);
        assert!(masked_softmax(&[Some(0.0), None], &[true, true]).is_none());
        assert_eq!(masked_softmax(&[Some(0.0), None], &[true, false]).unwrap(), vec![1.0, 0.0]);
    }
}
