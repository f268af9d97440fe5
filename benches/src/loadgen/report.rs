//! What a run measured, as JSON, as a printed summary and as SVG charts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use plotters::prelude::*;
use serde::Serialize;

use super::runner::{HttpVersion, Mode, Outcome};

/// The results file (`results.json`).
#[derive(Debug, Serialize)]
pub struct Report {
    pub target: String,
    /// `open` (fixed arrival rate) or `closed` (fixed concurrency).
    pub mode: &'static str,
    /// The arrival rate asked for, in an open loop.
    pub rate: Option<f64>,
    pub concurrency: usize,
    pub connections: usize,
    /// `auto`, `1.1` or `2`: what was asked; `versions` is what was spoken.
    pub http: &'static str,
    pub warmup_s: f64,
    pub duration_s: f64,
    /// Stopped before the end (Ctrl-C): `duration_s` is what was measured.
    pub interrupted: bool,
    /// Requests counted: answered or failed.
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub requests_per_second: f64,
    /// From when each request was due (open loop) or sent (closed loop).
    pub latency_ms: Percentiles,
    /// The same answers timed from when they were sent, which hides
    /// the requests a stalled server kept waiting (open loop only).
    pub uncorrected_latency_ms: Option<Percentiles>,
    pub errors_by_status: BTreeMap<String, u64>,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub versions: BTreeMap<String, u64>,
    pub by_request: Vec<RequestReport>,
    /// Per second of the measured period, by completion time.
    pub timeline: Vec<SecondReport>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
    pub mean: f64,
}

#[derive(Debug, Serialize)]
pub struct RequestReport {
    pub name: String,
    pub ok: u64,
    pub errors: u64,
    pub latency_ms: Percentiles,
}

#[derive(Debug, Serialize)]
pub struct SecondReport {
    pub second: usize,
    pub ok: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1e3
}

impl Percentiles {
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let at = |q: f64| if histogram.is_empty() { 0.0 } else { ms(histogram.value_at_quantile(q)) };
        Percentiles {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p99_9: at(0.999),
            max: ms(histogram.max()),
            mean: histogram.mean() / 1e3,
        }
    }
}

impl Report {
    pub fn of(outcome: &Outcome) -> Self {
        let options = &outcome.options;
        let (mode, rate) = match options.mode {
            Mode::Closed => ("closed", None),
            Mode::Open { rate } => ("open", Some(rate)),
        };
        let requests = outcome.ok + outcome.errors;
        Report {
            target: outcome.target.clone(),
            mode,
            rate,
            concurrency: options.concurrency,
            connections: options.connections,
            http: match options.http {
                HttpVersion::Auto => "auto",
                HttpVersion::Http1 => "1.1",
                HttpVersion::Http2 => "2",
            },
            warmup_s: options.warmup.as_secs_f64(),
            duration_s: outcome.measured.as_secs_f64(),
            interrupted: outcome.interrupted,
            requests,
            ok: outcome.ok,
            errors: outcome.errors,
            requests_per_second: requests as f64 / outcome.measured.as_secs_f64().max(f64::EPSILON),
            latency_ms: Percentiles::of(&outcome.latency),
            uncorrected_latency_ms: rate.map(|_| Percentiles::of(&outcome.uncorrected)),
            errors_by_status: outcome.errors_by_status.iter().map(|(s, n)| (s.to_string(), *n)).collect(),
            errors_by_kind: outcome.errors_by_kind.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect(),
            versions: outcome.versions.clone(),
            by_request: outcome
                .names
                .iter()
                .zip(&outcome.per_request)
                .map(|(name, tally)| RequestReport {
                    name: name.clone(),
                    ok: tally.ok,
                    errors: tally.errors,
                    latency_ms: Percentiles::of(&tally.latency),
                })
                .collect(),
            timeline: outcome
                .timeline
                .iter()
                .enumerate()
                .map(|(second, s)| SecondReport {
                    second,
                    ok: s.ok,
                    errors: s.errors,
                    p50_ms: Percentiles::of(&s.latency).p50,
                    p99_ms: Percentiles::of(&s.latency).p99,
                })
                .collect(),
        }
    }

    /// The printed summary.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let load = match self.rate {
            Some(rate) => format!("open loop at {rate} req/s over {} workers", self.concurrency),
            None => format!("closed loop, {} workers", self.concurrency),
        };
        let versions: Vec<String> = self.versions.iter().map(|(v, n)| format!("{v} × {n}")).collect();
        let _ = writeln!(out, "target    {}", self.target);
        let _ = writeln!(
            out,
            "load      {load}, {} connection(s), HTTP {} ({}), {:.1} s measured after {:.1} s of warm-up{}",
            self.connections,
            self.http,
            if versions.is_empty() { "no answer".into() } else { versions.join(", ") },
            self.duration_s,
            self.warmup_s,
            if self.interrupted { " (stopped early)" } else { "" },
        );
        let _ = writeln!(
            out,
            "requests  {} ({} ok, {} errors): {:.1} req/s",
            self.requests, self.ok, self.errors, self.requests_per_second
        );
        let _ = writeln!(out, "\nlatency ms        p50       p90       p99     p99.9       max      mean");
        let row = |out: &mut String, label: &str, p: &Percentiles| {
            let _ = writeln!(
                out,
                "  {label:<12}{:>8.2}  {:>8.2}  {:>8.2}  {:>8.2}  {:>8.2}  {:>8.2}",
                p.p50, p.p90, p.p99, p.p99_9, p.max, p.mean
            );
        };
        match &self.uncorrected_latency_ms {
            Some(uncorrected) => {
                row(&mut out, "from due", &self.latency_ms);
                row(&mut out, "from sent", uncorrected);
                let _ = writeln!(
                    out,
                    "  (\"from due\" counts each request from when the schedule said to send it, \
                     corrected for coordinated omission; \"from sent\" is not)"
                );
            }
            None => row(&mut out, "all", &self.latency_ms),
        }
        if self.by_request.len() > 1 {
            let _ = writeln!(out, "\nby request                          ok    errors    p50 ms    p99 ms");
            for r in &self.by_request {
                let _ = writeln!(
                    out,
                    "  {:<30}{:>8}  {:>8}  {:>8.2}  {:>8.2}",
                    r.name, r.ok, r.errors, r.latency_ms.p50, r.latency_ms.p99
                );
            }
        }
        if self.errors > 0 {
            let _ = writeln!(out);
            for (status, n) in &self.errors_by_status {
                let _ = writeln!(out, "errors    status {status}: {n}");
            }
            for (kind, n) in &self.errors_by_kind {
                let _ = writeln!(out, "errors    {kind}: {n}");
            }
        }
        out
    }
}

/// Writes `results.json` and the charts (`latency.svg`, `throughput.svg`,
/// `latency-over-time.svg`) into `dir`.
pub fn write_all(outcome: &Outcome, dir: &Path) -> anyhow::Result<Report> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let report = Report::of(outcome);
    std::fs::write(dir.join("results.json"), serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing results.json in {}", dir.display()))?;
    latency_chart(outcome, &dir.join("latency.svg"))?;
    throughput_chart(&report, &dir.join("throughput.svg"))?;
    latency_over_time_chart(&report, &dir.join("latency-over-time.svg"))?;
    Ok(report)
}

/// Where a quantile sits on a percentile axis: 90% is 1, 99% is 2,
/// 99.9% is 3 — the usual way of plotting latency tails.
pub fn percentile_axis(quantile: f64) -> f64 {
    (1.0 / (1.0 - quantile)).log10()
}

pub fn percentile_label(x: f64) -> String {
    let percent = 100.0 * (1.0 - 10f64.powf(-x));
    let decimals = (x.round() as usize).saturating_sub(2);
    format!("{percent:.decimals$}%")
}

/// Ticks on an x axis, and the label of each.
pub type Ticks = (usize, fn(f64) -> String);

/// One line of a chart: its legend, colour and points.
pub type Line = (&'static str, RGBColor, Vec<(f64, f64)>);

/// One line chart, as data: what each chart function fills in and
/// [`LineChart::draw`] draws alike.
pub struct LineChart {
    pub title: &'static str,
    pub x_max: f64,
    pub y_max: f64,
    pub x_desc: &'static str,
    pub y_desc: &'static str,
    /// Ticks on the x axis, with their labels (the percentile chart's).
    pub x_ticks: Option<Ticks>,
    pub legend: SeriesLabelPosition,
    pub series: Vec<Line>,
}

impl LineChart {
    /// A latency-by-percentile chart of one or more histograms (already
    /// made curves by [`percentile_curve`]), up to `x_max` on the
    /// percentile axis.
    pub fn percentiles(title: &'static str, x_max: f64, series: Vec<Line>) -> Self {
        let y_max = series.iter().flat_map(|(_, _, points)| points.iter().map(|p| p.1)).fold(0.001, f64::max);
        LineChart {
            title,
            x_max,
            y_max: y_max * 1.05,
            x_desc: "percentile",
            y_desc: "latency (ms)",
            x_ticks: Some((x_max as usize + 1, percentile_label)),
            legend: SeriesLabelPosition::UpperLeft,
            series,
        }
    }

    pub fn draw(self, path: &Path) -> anyhow::Result<()> {
        let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(self.title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..self.x_max, 0f64..self.y_max)?;
        let mut mesh = chart.configure_mesh();
        let formatter;
        if let Some((ticks, label)) = self.x_ticks {
            formatter = move |x: &f64| label(*x);
            mesh.x_labels(ticks).x_label_formatter(&formatter);
        }
        mesh.x_desc(self.x_desc).y_desc(self.y_desc).draw()?;
        for (label, color, points) in self.series {
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(self.legend)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        root.present().with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}

/// Where the percentile axis of `histogram`'s chart ends: 99% (2) for
/// few answers, up to 99.9999% (6) for many.
pub fn percentile_axis_end(histogram: &Histogram<u64>) -> f64 {
    (histogram.len().max(1) as f64).log10().ceil().clamp(2.0, 6.0)
}

/// `histogram`'s latency (ms) by percentile, as points of a chart whose
/// percentile axis ends at `x_max`, the maximum drawn at the end.
pub fn percentile_curve(histogram: &Histogram<u64>, x_max: f64) -> Vec<(f64, f64)> {
    let mut points: Vec<(f64, f64)> = histogram
        .iter_quantiles(4)
        .map(|v| (v.quantile_iterated_to(), ms(v.value_iterated_to())))
        .filter(|(q, _)| *q < 1.0)
        .map(|(q, value)| (percentile_axis(q).min(x_max), value))
        .collect();
    if !histogram.is_empty() {
        points.push((x_max, ms(histogram.max())));
    }
    points
}

/// Latency by percentile, corrected and (in an open loop) not.
fn latency_chart(outcome: &Outcome, path: &Path) -> anyhow::Result<()> {
    let x_max = percentile_axis_end(&outcome.latency);
    let closed = outcome.options.mode == Mode::Closed;
    let mut series = vec![(
        if closed { "latency" } else { "from due (corrected)" },
        BLUE,
        percentile_curve(&outcome.latency, x_max),
    )];
    if !closed {
        series.push(("from sent (uncorrected)", RED, percentile_curve(&outcome.uncorrected, x_max)));
    }
    LineChart::percentiles("Latency by percentile", x_max, series).draw(path)
}

/// A value of each second, at the middle of that second.
fn per_second(values: impl Iterator<Item = f64>) -> Vec<(f64, f64)> {
    values.enumerate().map(|(i, v)| (i as f64 + 0.5, v)).collect()
}

/// Answers and errors per second over the measured period.
fn throughput_chart(report: &Report, path: &Path) -> anyhow::Result<()> {
    let timeline = &report.timeline;
    LineChart {
        title: "Throughput and errors over time",
        x_max: timeline.len().max(1) as f64,
        y_max: timeline.iter().map(|s| s.ok.max(s.errors)).max().unwrap_or(0).max(1) as f64 * 1.1,
        x_desc: "seconds",
        y_desc: "per second",
        x_ticks: None,
        legend: SeriesLabelPosition::LowerRight,
        series: vec![
            ("answers/s (ok)", BLUE, per_second(timeline.iter().map(|s| s.ok as f64))),
            ("errors/s", RED, per_second(timeline.iter().map(|s| s.errors as f64))),
        ],
    }
    .draw(path)
}

/// p50 and p99 of each second's answers.
fn latency_over_time_chart(report: &Report, path: &Path) -> anyhow::Result<()> {
    let timeline = &report.timeline;
    LineChart {
        title: "Latency over time",
        x_max: timeline.len().max(1) as f64,
        y_max: timeline.iter().map(|s| s.p99_ms).fold(0.001, f64::max) * 1.1,
        x_desc: "seconds",
        y_desc: "latency (ms)",
        x_ticks: None,
        legend: SeriesLabelPosition::UpperRight,
        series: vec![
            ("p50", BLUE, per_second(timeline.iter().map(|s| s.p50_ms))),
            ("p99", RED, per_second(timeline.iter().map(|s| s.p99_ms))),
        ],
    }
    .draw(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_axis_labels() {
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
        assert_eq!(percentile_label(4.0), "99.99%");
        assert!((percentile_axis(0.99) - 2.0).abs() < 1e-9);
    }
}
