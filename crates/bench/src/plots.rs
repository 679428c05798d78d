//! SVG plots of ranking results (`splitnas compare --table`): Kendall τ per criterion, and
//! predicted against true accuracy.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use splitnas_run::svg::PALETTE;

use crate::ranking::{RankingReport, METHODS};

/// One bar group: a criterion and, per BN method, the mean and std of Kendall τ over seeds.
pub(crate) struct TauBar {
    pub criterion: String,
    pub per_method: Vec<(f64, f64)>,
}

/// The `index`-th series' colour: the palette of every splitnas drawing.
fn color(index: usize) -> RGBColor {
    let (r, g, b) = PALETTE[index % PALETTE.len()];
    RGBColor(r, g, b)
}

fn plot_error(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("cannot draw the plot: {error}")
}

/// Bars of mean Kendall τ (± std over seeds) per criterion, one bar per BN method.
pub(crate) fn tau_bars(bars: &[TauBar], path: &Path) -> Result<()> {
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let low = bars.iter().flat_map(|b| b.per_method.iter().map(|(m, s)| m - s)).filter(|v| v.is_finite()).fold(0.0f64, f64::min);
    let high = bars.iter().flat_map(|b| b.per_method.iter().map(|(m, s)| m + s)).filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    let groups = bars.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption("Kendall τ against the ground truth (mean ± std over seeds)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(0.0..groups, (low - 0.05).min(-0.05)..(high + 0.1).min(1.0))
        .map_err(plot_error)?;
    let names: Vec<String> = bars.iter().map(|b| b.criterion.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(bars.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let index = x.floor() as usize;
            if (x - index as f64 - 0.5).abs() < 0.01 {
                names.get(index).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("Kendall τ")
        .draw()
        .map_err(plot_error)?;
    let methods = METHODS.len() as f64;
    let width = 0.8 / methods;
    for (m, (name, _)) in METHODS.iter().enumerate() {
        let color = color(m);
        let rectangles = bars.iter().enumerate().map(|(g, bar)| {
            let left = g as f64 + 0.1 + m as f64 * width;
            Rectangle::new([(left, 0.0), (left + width * 0.9, bar.per_method[m].0)], color.filled())
        });
        chart
            .draw_series(rectangles)
            .map_err(plot_error)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
        let whiskers = bars.iter().enumerate().map(|(g, bar)| {
            let centre = g as f64 + 0.1 + m as f64 * width + width * 0.45;
            let (mean, std) = bar.per_method[m];
            ErrorBar::new_vertical(centre, mean - std, mean, mean + std, BLACK.stroke_width(1), 6)
        });
        chart.draw_series(whiskers).map_err(plot_error)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// Predicted (recalibrated BN) against true accuracy, one colour per run.
pub(crate) fn prediction_scatter(reports: &[(String, &RankingReport)], method: usize, path: &Path) -> Result<()> {
    let root = SVGBackend::new(path, (720, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let points = || reports.iter().flat_map(|(_, r)| r.scores.iter());
    let (x_low, x_high) = points().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), s| (l.min(s.truth), h.max(s.truth)));
    let (y_low, y_high) = points().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), s| (l.min(s.predicted[method]), h.max(s.predicted[method])));
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Supernet accuracy ({} BN) vs ground truth", METHODS[method].0), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(52)
        .build_cartesian_2d((x_low - 0.01)..(x_high + 0.01), (y_low - 0.01)..(y_high + 0.01))
        .map_err(plot_error)?;
    chart.configure_mesh().x_desc("stand-alone test accuracy (table)").y_desc("supernet valid accuracy").draw().map_err(plot_error)?;
    for (index, (label, report)) in reports.iter().enumerate() {
        let color = color(index);
        let series = report.scores.iter().map(|s| Circle::new((s.truth, s.predicted[method]), 3, color.mix(0.7).filled()));
        let tau = report.methods[method].kendall_tau;
        chart
            .draw_series(series)
            .map_err(plot_error)?
            .label(format!("{label} (τ = {tau:.3})"))
            .legend(move |(x, y)| Circle::new((x + 5, y), 4, color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}
