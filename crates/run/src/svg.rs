//! What every drawing of splitnas is made of: an SVG document written by hand (no fonts or
//! system libraries needed), text measured by character count in one monospace font, a
//! colour palette, boxes that know whether they overlap, and axes with ticks.
//!
//! Text is always monospace, so its width is known without a font: [`text_width`] is a
//! conservative estimate (0.62 em per character; DejaVu Sans Mono, Menlo and Liberation Mono
//! advance 0.60 em, Consolas 0.55 em). Layouts size their boxes and place their labels with it.

use std::fmt::Write;

/// The font of every drawing.
pub const FONT_FAMILY: &str = "monospace";

/// Width of one character, in em, for the monospace fonts a viewer may pick (rounded up).
pub const CHARACTER_WIDTH_EM: f64 = 0.62;

/// Height of a line of text, in em.
pub const LINE_HEIGHT_EM: f64 = 1.35;

/// Tableau 10, the palette of matplotlib's and plotters' examples: distinguishable in colour
/// and, for the first four, in grey.
pub const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// Dash patterns that tell lines of the same colour apart once the palette wraps around.
const DASHES: [&str; 4] = ["", "6 3", "2 2", "8 3 2 3"];

/// The `index`-th series' colour, as `#rrggbb`.
pub fn color(index: usize) -> String {
    let (r, g, b) = PALETTE[index % PALETTE.len()];
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// The `index`-th series' dash pattern (`""`: solid): solid for the first round of colours.
pub fn dash(index: usize) -> &'static str {
    DASHES[(index / PALETTE.len()) % DASHES.len()]
}

/// Text as XML character data or an attribute value.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The width `text` takes at `font_size` (conservative, see the module's documentation).
pub fn text_width(text: &str, font_size: f64) -> f64 {
    text.chars().count() as f64 * font_size * CHARACTER_WIDTH_EM
}

/// Splits `text` into lines of at most `max_chars` characters, breaking where a line reads
/// best: at a space, else before a `+` (genotypes join cells with `+`), else after a comma,
/// else anywhere; a break point in the first third of a line is not taken.
pub fn wrap(text: &str, max_chars: usize) -> Vec<String> {
    let max_chars = max_chars.max(3);
    let mut lines = Vec::new();
    let mut rest: Vec<char> = text.chars().collect();
    while rest.len() > max_chars {
        let last = |test: &dyn Fn(usize) -> bool| (max_chars / 3..=max_chars).rev().find(|&i| test(i));
        let at = last(&|i| rest[i] == ' ').or_else(|| last(&|i| rest[i] == '+')).or_else(|| last(&|i| rest[i - 1] == ',')).unwrap_or(max_chars);
        lines.push(rest[..at].iter().collect::<String>().trim_end().to_string());
        rest.drain(..at);
        while rest.first() == Some(&' ') {
            rest.remove(0);
        }
    }
    lines.push(rest.into_iter().collect());
    lines
}

/// An axis-aligned box in drawing coordinates (y down).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

impl Bounds {
    pub fn new(x: f64, y: f64, width: f64, height: f64) -> Self {
        Bounds { x, y, width, height }
    }
    /// The box of `width` × `height` centred on (`cx`, `cy`).
    pub fn centred(cx: f64, cy: f64, width: f64, height: f64) -> Self {
        Bounds { x: cx - width / 2.0, y: cy - height / 2.0, width, height }
    }
    pub fn right(&self) -> f64 {
        self.x + self.width
    }
    pub fn bottom(&self) -> f64 {
        self.y + self.height
    }
    pub fn centre(&self) -> (f64, f64) {
        (self.x + self.width / 2.0, self.y + self.height / 2.0)
    }
    /// Whether the two boxes share interior (touching edges do not count).
    pub fn intersects(&self, other: &Bounds) -> bool {
        self.x < other.right() && other.x < self.right() && self.y < other.bottom() && other.y < self.bottom()
    }
    pub fn contains(&self, other: &Bounds) -> bool {
        other.x >= self.x && other.y >= self.y && other.right() <= self.right() && other.bottom() <= self.bottom()
    }
    pub fn contains_point(&self, (x, y): (f64, f64)) -> bool {
        x >= self.x && x <= self.right() && y >= self.y && y <= self.bottom()
    }
    /// The box grown by `margin` on every side.
    pub fn inflate(&self, margin: f64) -> Bounds {
        Bounds { x: self.x - margin, y: self.y - margin, width: self.width + 2.0 * margin, height: self.height + 2.0 * margin }
    }
}

/// An SVG document being written: elements in drawing order, then [`Svg::finish`].
pub struct Svg {
    width: f64,
    height: f64,
    font_size: f64,
    body: String,
}

impl Svg {
    /// A white canvas of `width` × `height`, whose text is `font_size` unless told otherwise.
    pub fn new(width: f64, height: f64, font_size: f64) -> Self {
        Svg { width, height, font_size, body: String::new() }
    }

    /// A raw element (already escaped).
    pub fn raw(&mut self, element: &str) {
        self.body.push_str(element);
        self.body.push('\n');
    }

    pub fn open_group(&mut self, attributes: &str) {
        self.raw(&format!("<g {attributes}>"));
    }
    pub fn close_group(&mut self) {
        self.raw("</g>");
    }

    /// A rectangle; `attributes` carries its fill, stroke, id, class.
    pub fn rect(&mut self, bounds: Bounds, attributes: &str) {
        self.raw(&format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" {attributes}/>",
            bounds.x, bounds.y, bounds.width, bounds.height
        ));
    }

    pub fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), attributes: &str) {
        self.raw(&format!("<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" {attributes}/>"));
    }

    /// A polyline through `points` (one `<polyline>`, whatever the number of points).
    pub fn polyline(&mut self, points: &[(f64, f64)], attributes: &str) {
        let mut list = String::new();
        for (i, (x, y)) in points.iter().enumerate() {
            let _ = write!(list, "{}{x:.1},{y:.1}", if i == 0 { "" } else { " " });
        }
        self.raw(&format!("<polyline points=\"{list}\" fill=\"none\" {attributes}/>"));
    }

    pub fn circle(&mut self, (cx, cy): (f64, f64), radius: f64, attributes: &str) {
        self.raw(&format!("<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"{radius:.1}\" {attributes}/>"));
    }

    /// A path from its `d` data.
    pub fn path(&mut self, data: &str, attributes: &str) {
        self.raw(&format!("<path d=\"{data}\" {attributes}/>"));
    }

    /// Text whose baseline starts at (`x`, `y`) (or is centred/ends there with `text-anchor`
    /// in `attributes`); escaped here.
    pub fn text(&mut self, (x, y): (f64, f64), text: &str, attributes: &str) {
        self.raw(&format!("<text x=\"{x:.1}\" y=\"{y:.1}\" {attributes}>{}</text>", escape(text)));
    }

    /// The baseline that centres one line of `font_size` text vertically in `bounds`.
    pub fn baseline_centred(bounds: &Bounds, font_size: f64) -> f64 {
        bounds.y + bounds.height / 2.0 + font_size * 0.35
    }

    pub fn finish(self) -> String {
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\" font-family=\"{FONT_FAMILY}\" font-size=\"{}\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{}</svg>\n",
            self.font_size,
            self.body,
            w = self.width.ceil(),
            h = self.height.ceil()
        )
    }
}

/// Round tick values covering `low..=high`: about `count` of them, at 1, 2 or 5 × 10^k.
pub fn ticks(low: f64, high: f64, count: usize) -> Vec<f64> {
    if !(low.is_finite() && high.is_finite()) || high <= low {
        return vec![low];
    }
    let raw = (high - low) / count.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude);
    let first = (low / step).ceil() as i64;
    let last = (high / step + 1e-9).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// A tick value as people write it: no trailing zeros, no `-0`.
pub fn tick_label(value: f64) -> String {
    if value.abs() < 1e-12 {
        return "0".to_string();
    }
    if value.abs() >= 1e4 || value.abs() < 1e-3 {
        return format!("{value:.1e}");
    }
    let text = format!("{value:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A plotting area: data ranges mapped onto a box, with axes, ticks and their labels.
#[derive(Debug, Clone)]
pub struct Axes {
    pub area: Bounds,
    pub x_range: (f64, f64),
    pub y_range: (f64, f64),
}

impl Axes {
    /// Axes over `area` (the plotting area itself; labels go outside it). Empty or
    /// degenerate ranges are widened so that every value maps somewhere.
    pub fn new(area: Bounds, x_range: (f64, f64), y_range: (f64, f64)) -> Self {
        let widen = |(low, high): (f64, f64)| {
            if !(low.is_finite() && high.is_finite()) {
                (0.0, 1.0)
            } else if high - low < 1e-12 {
                (low - 0.5, high + 0.5)
            } else {
                (low, high)
            }
        };
        Axes { area, x_range: widen(x_range), y_range: widen(y_range) }
    }

    /// A data point in drawing coordinates.
    pub fn map(&self, x: f64, y: f64) -> (f64, f64) {
        let (x0, x1) = self.x_range;
        let (y0, y1) = self.y_range;
        (self.area.x + (x - x0) / (x1 - x0) * self.area.width, self.area.bottom() - (y - y0) / (y1 - y0) * self.area.height)
    }

    /// Frame, grid, ticks with labels, axis titles and a title above.
    pub fn draw(&self, svg: &mut Svg, title: &str, x_label: &str, y_label: &str, font_size: f64) {
        let area = self.area;
        let x_ticks: Vec<f64> = ticks(self.x_range.0, self.x_range.1, ((area.width / (font_size * 6.0)) as usize).clamp(2, 10));
        let y_ticks: Vec<f64> = ticks(self.y_range.0, self.y_range.1, ((area.height / (font_size * 3.0)) as usize).clamp(2, 8));
        svg.open_group("class=\"axes\"");
        for &x in &x_ticks {
            let (px, _) = self.map(x, self.y_range.0);
            svg.line((px, area.y), (px, area.bottom()), "stroke=\"#e4e4e4\"");
            svg.line((px, area.bottom()), (px, area.bottom() + 4.0), "stroke=\"#333\"");
            svg.text((px, area.bottom() + 4.0 + font_size), &tick_label(x), "text-anchor=\"middle\"");
        }
        for &y in &y_ticks {
            let (_, py) = self.map(self.x_range.0, y);
            svg.line((area.x, py), (area.right(), py), "stroke=\"#e4e4e4\"");
            svg.line((area.x - 4.0, py), (area.x, py), "stroke=\"#333\"");
            svg.text((area.x - 6.0, py + font_size * 0.35), &tick_label(y), "text-anchor=\"end\"");
        }
        svg.rect(area, "fill=\"none\" stroke=\"#333\"");
        if !title.is_empty() {
            svg.text((area.x + area.width / 2.0, area.y - font_size * 0.6), title, "text-anchor=\"middle\" font-weight=\"bold\"");
        }
        if !x_label.is_empty() {
            svg.text((area.x + area.width / 2.0, area.bottom() + 8.0 + 2.2 * font_size), x_label, "text-anchor=\"middle\"");
        }
        if !y_label.is_empty() {
            let (x, y) = (area.x - Self::y_label_space(font_size) + font_size, area.y + area.height / 2.0);
            svg.raw(&format!(
                "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 {x:.1} {y:.1})\">{}</text>",
                escape(y_label)
            ));
        }
        svg.close_group();
    }

    /// Room to leave left of the area for tick labels and the y title.
    pub fn y_label_space(font_size: f64) -> f64 {
        text_width("0.0000", font_size) + 8.0 + 1.6 * font_size
    }

    /// Room to leave below the area for tick labels and the x title.
    pub fn x_label_space(font_size: f64) -> f64 {
        8.0 + 3.0 * font_size
    }
}

/// One entry of a legend: a coloured line (with its dash) and a name.
pub struct LegendEntry {
    pub color: String,
    pub dash: &'static str,
    pub width: f64,
    pub label: String,
}

/// The width a vertical legend of `entries` takes.
pub fn legend_width(entries: &[LegendEntry], font_size: f64) -> f64 {
    entries.iter().map(|e| text_width(&e.label, font_size)).fold(0.0, f64::max) + 40.0
}

/// A vertical legend with its top-left corner at (`x`, `y`).
pub fn draw_legend(svg: &mut Svg, entries: &[LegendEntry], (x, y): (f64, f64), font_size: f64) -> Bounds {
    let line = font_size * LINE_HEIGHT_EM;
    let bounds = Bounds::new(x, y, legend_width(entries, font_size), line * entries.len() as f64 + 8.0);
    svg.open_group("class=\"legend\"");
    svg.rect(bounds, "fill=\"white\" stroke=\"#999\"");
    for (i, entry) in entries.iter().enumerate() {
        let cy = y + 4.0 + line * (i as f64 + 0.5);
        let dash = if entry.dash.is_empty() { String::new() } else { format!(" stroke-dasharray=\"{}\"", entry.dash) };
        svg.line((x + 6.0, cy), (x + 28.0, cy), &format!("stroke=\"{}\" stroke-width=\"{}\"{dash}", entry.color, entry.width));
        svg.text((x + 34.0, cy + font_size * 0.35), &entry.label, "");
    }
    svg.close_group();
    bounds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let labels = |low, high, count| ticks(low, high, count).into_iter().map(tick_label).collect::<Vec<_>>();
        assert_eq!(labels(0.0, 1.0, 5), ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
        assert_eq!(labels(0.0, 6.0, 6), ["0", "1", "2", "3", "4", "5", "6"]);
        assert_eq!(labels(1.71, 2.32, 6), ["1.8", "2", "2.2"]);
        assert_eq!(tick_label(-0.0), "0");
        assert_eq!(tick_label(2.0), "2");
    }

    #[test]
    fn wrapping_breaks_genotypes_before_their_cells_and_names_after_commas() {
        let genotype = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_1x1~2|";
        let lines = wrap(genotype, 48);
        assert_eq!(lines, ["|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|", "+|none~0|none~1|nor_conv_1x1~2|"]);
        assert_eq!(lines.concat(), genotype);
        assert_eq!(wrap("a={x,y} b={z}", 8), ["a={x,y}", "b={z}"]);
        assert_eq!(
            wrap("1<-0={none,nor_conv_1x1} 3<-1={skip_connect,avg_pool_3x3}", 40),
            ["1<-0={none,nor_conv_1x1}", "3<-1={skip_connect,avg_pool_3x3}"]
        );
        assert_eq!(wrap("3<-1={skip_connect,avg_pool_3x3,nor_conv_1x1}", 20), ["3<-1={skip_connect,", "avg_pool_3x3,", "nor_conv_1x1}"]);
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 4), [""]);
    }

    #[test]
    fn boxes_overlap_only_with_shared_interior() {
        let a = Bounds::new(0.0, 0.0, 10.0, 10.0);
        assert!(a.intersects(&Bounds::new(9.0, 9.0, 5.0, 5.0)));
        assert!(!a.intersects(&Bounds::new(10.0, 0.0, 5.0, 5.0)));
        assert!(a.contains(&Bounds::new(1.0, 1.0, 8.0, 8.0)) && !a.contains(&Bounds::new(1.0, 1.0, 10.0, 8.0)));
    }
}
