//! SVG charts of a [`Report`] (plotters, SVG backend only): per fan-out shape, delivered vs
//! offered load for ours and the baselines, and the latency distribution (percentile curve)
//! at each server's highest passing step; the durable scenario's ack latencies.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::error::BenchError;
use crate::report::{Fanout, Report};
use crate::stats::{Latency, Step};

const SIZE: (u32, u32) = (860, 520);
const COLORS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
];

fn chart_error<E: std::fmt::Display>(path: &Path) -> impl FnOnce(E) -> BenchError + '_ {
    move |e| BenchError::setup(format!("drawing {}: {e}", path.display()))
}

/// `x` of a quantile on a "nines" axis: 0.9 → 1, 0.99 → 2, …; 1.0 is drawn at 5.
#[must_use]
pub fn nines(q: f64) -> f64 {
    if q >= 1.0 { 5.0 } else { (-(1.0 - q).log10()).clamp(0.0, 5.0) }
}

/// The step whose distribution a chart shows: the highest passing one, else the first.
#[must_use]
pub fn shown_step(f: &Fanout) -> Option<&Step> {
    f.steps.iter().rfind(|s| s.passes()).or(f.steps.first())
}

fn throughput(path: &Path, title: &str, series: &[&Fanout]) -> Result<(), BenchError> {
    let points: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|f| f.steps.iter().map(|s| (s.offered_per_sec, s.delivered_per_sec().max(1.0))))
        .collect();
    let max = points.iter().map(|p| p.0.max(p.1)).fold(10.0, f64::max) * 1.5;
    let min = points.iter().map(|p| p.0.min(p.1)).fold(max, f64::min).max(1.0) / 1.5;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(chart_error(path))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d((min..max).log_scale(), (min..max).log_scale())
        .map_err(chart_error(path))?;
    chart
        .configure_mesh()
        .x_desc("offered deliveries/s")
        .y_desc("delivered/s")
        .x_label_formatter(&|v| format!("{:.0}k", v / 1000.0))
        .y_label_formatter(&|v| format!("{:.0}k", v / 1000.0))
        .draw()
        .map_err(chart_error(path))?;
    chart
        .draw_series(LineSeries::new([(min, min), (max, max)], BLACK.mix(0.25)))
        .map_err(chart_error(path))?
        .label("delivered = offered")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK.mix(0.25)));
    for (i, f) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<(f64, f64)> =
            f.steps.iter().map(|s| (s.offered_per_sec, s.delivered_per_sec().max(1.0))).collect();
        let cap = f.capacity.map_or_else(|| "none".to_owned(), |c| format!("{:.0}k", c / 1000.0));
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(chart_error(path))?
            .label(format!("{} (capacity {cap})", f.label))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        chart
            .draw_series(f.steps.iter().zip(&pts).map(|(s, &p)| {
                let style = if s.passes() { color.filled() } else { RED.stroke_width(2) };
                Cross::new(p, 5, style)
            }))
            .map_err(chart_error(path))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(chart_error(path))?;
    root.present().map_err(chart_error(path))?;
    Ok(())
}

fn latency(path: &Path, title: &str, series: &[(String, &Latency)]) -> Result<(), BenchError> {
    let max_ms = series.iter().flat_map(|(_, l)| l.curve.iter().map(|p| p.1 as f64 / 1000.0)).fold(1.0, f64::max) * 2.0;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(chart_error(path))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(0.0..5.0, (0.01..max_ms).log_scale())
        .map_err(chart_error(path))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("send → receive, ms")
        .x_labels(6)
        .x_label_formatter(&|x: &f64| match x.round() as i64 {
            0 => "0".to_owned(),
            1 => "90".to_owned(),
            2 => "99".to_owned(),
            3 => "99.9".to_owned(),
            4 => "99.99".to_owned(),
            _ => "max".to_owned(),
        })
        .draw()
        .map_err(chart_error(path))?;
    for (i, (label, l)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<(f64, f64)> = l.curve.iter().map(|&(q, us)| (nines(q), (us as f64 / 1000.0).max(0.01))).collect();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(chart_error(path))?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(chart_error(path))?;
    root.present().map_err(chart_error(path))?;
    Ok(())
}

/// Draws every chart of the report into `dir`; returns the files written.
///
/// # Errors
/// When a file cannot be written.
pub fn draw(report: &Report, dir: &Path) -> Result<Vec<PathBuf>, BenchError> {
    std::fs::create_dir_all(dir).map_err(BenchError::io(format!("creating {}", dir.display())))?;
    let mut written = Vec::new();
    let mut all: Vec<&Fanout> = report.fanout.iter().collect();
    all.extend(report.two_nodes.iter());
    let mut shapes: Vec<_> = all.iter().map(|f| f.shape).collect();
    shapes.dedup();
    let mut seen = Vec::new();
    for shape in shapes {
        if seen.contains(&shape) {
            continue;
        }
        seen.push(shape);
        let of_shape: Vec<&Fanout> = all.iter().copied().filter(|f| f.shape == shape && !f.steps.is_empty()).collect();
        if of_shape.is_empty() {
            continue;
        }
        let label = shape.label();
        let p = dir.join(format!("fanout-{}-{label}.svg", report.profile));
        throughput(
            &p,
            &format!("fan-out {} groups × {} members ({} profile)", shape.groups, shape.size, report.profile),
            &of_shape,
        )?;
        written.push(p);
        let curves: Vec<(String, &Latency)> = of_shape
            .iter()
            .filter_map(|f| {
                shown_step(f).map(|s| (format!("{} at {:.0}k/s", f.label, s.offered_per_sec / 1000.0), &s.latency))
            })
            .filter(|(_, l)| l.count > 0)
            .collect();
        if !curves.is_empty() {
            let p = dir.join(format!("latency-{}-{label}.svg", report.profile));
            latency(
                &p,
                &format!("latency, {} groups × {} members (highest passing step)", shape.groups, shape.size),
                &curves,
            )?;
            written.push(p);
        }
    }
    let durable: Vec<(String, &Latency)> = report
        .durable
        .iter()
        .filter(|d| d.ack_latency.count > 0)
        .map(|d| (format!("{} ({:.0} msg/s)", d.store, d.acked_per_sec), &d.ack_latency))
        .collect();
    if !durable.is_empty() {
        let p = dir.join(format!("durable-{}.svg", report.profile));
        latency(&p, "durable: send → ack (committed) latency", &durable)?;
        written.push(p);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nines_axis_spreads_the_tail() {
        assert!((nines(0.0)).abs() < 1e-9);
        assert!((nines(0.9) - 1.0).abs() < 1e-9);
        assert!((nines(0.999) - 3.0).abs() < 1e-6);
        assert!((nines(1.0) - 5.0).abs() < 1e-9);
    }
}
