// SPDX-License-Identifier: MIT OR Apache-2.0
//! The report: Markdown (`report.md`, plots as SVG files beside it) and a self-contained HTML
//! page (`report.html`, the same plots inline). Plots are drawn by `plotters` as SVG in the
//! project's plot style (`defect_plot`), so their text is set in the viewer's real fonts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use defect_plot::plotters::prelude::*;
use defect_plot::{label, series_colour};

use crate::stats::{Hour, Stats, verdict_name};
use crate::time::{date_text, hour_text};

/// Shift starts as hours of the (local) day, ascending, at least one.
#[derive(Debug, Clone, PartialEq)]
pub struct Shifts(pub Vec<u32>);

impl Shifts {
    /// Parses `06:00,14:00,22:00` (whole hours: the report counts by hour).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut starts = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let seconds = crate::time::parse_clock(part)
                .ok_or_else(|| format!("shift start {part:?} is not hh:mm"))?;
            if seconds % 3600 != 0 {
                return Err(format!("shift start {part:?} is not on a whole hour"));
            }
            starts.push((seconds / 3600) as u32);
        }
        starts.sort_unstable();
        starts.dedup();
        if starts.is_empty() {
            return Err("no shift start".into());
        }
        Ok(Self(starts))
    }

    /// (the day the shift started, its index) of an hour number.
    pub fn of(&self, hour: i64) -> (i64, usize) {
        let day = hour.div_euclid(24);
        let hd = hour.rem_euclid(24) as u32;
        match self.0.iter().rposition(|s| *s <= hd) {
            Some(i) => (day, i),
            None => (day - 1, self.0.len() - 1),
        }
    }

    pub fn name(&self, i: usize) -> String {
        let end = self.0[(i + 1) % self.0.len()];
        format!("{:02}:00-{:02}:00", self.0[i], end)
    }
}

/// A report's options.
#[derive(Debug, Clone)]
pub struct Options {
    pub title: String,
    pub shifts: Shifts,
    pub files: Vec<String>,
    /// Classes drawn in the per-class plots at most (the most frequent).
    pub top_classes: usize,
}

/// Escapes text for HTML.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for a Markdown table cell: no markup, links, HTML or cell breaks survive.
pub fn md_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '|' | '!' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn pct(n: u64, of: u64) -> String {
    if of == 0 {
        "-".into()
    } else {
        format!("{:.2} %", 100.0 * n as f64 / of as f64)
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

/// A summary row of several hours.
#[derive(Default)]
struct Row {
    hour: Hour,
}

impl Row {
    fn add(&mut self, h: &Hour) {
        self.hour.merge(h);
    }

    fn cells(&self) -> Vec<String> {
        let f = self.hour.frames;
        let n = self.hour.frames_total();
        let p = self.hour.parts;
        let np: u64 = p.iter().sum();
        vec![
            n.to_string(),
            pct(f[1], n),
            pct(f[2], n),
            pct(f[3], n),
            np.to_string(),
            pct(p[1], np),
            ms(self.hour.latency_total.quantile(0.5)),
            ms(self.hour.latency_total.quantile(0.99)),
        ]
    }
}

const ROW_HEADER: [&str; 8] = [
    "frames",
    "FAIL",
    "REVIEW",
    "UNKNOWN",
    "parts",
    "parts FAIL",
    "latency p50 ms",
    "latency p99 ms",
];

/// A table as Markdown and as HTML.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| {} |",
            self.header
                .iter()
                .map(|h| md_escape(h))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(s, "|{}|", vec!["---"; self.header.len()].join("|"));
        for row in &self.rows {
            let _ = writeln!(
                s,
                "| {} |",
                row.iter()
                    .map(|c| md_escape(c))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
        }
        s
    }

    fn html(&self) -> String {
        let mut s = String::from("<table>\n<tr>");
        for h in &self.header {
            let _ = write!(s, "<th>{}</th>", html_escape(h));
        }
        s.push_str("</tr>\n");
        for row in &self.rows {
            s.push_str("<tr>");
            for c in row {
                let _ = write!(s, "<td>{}</td>", html_escape(c));
            }
            s.push_str("</tr>\n");
        }
        s.push_str("</table>\n");
        s
    }
}

/// One section: a heading, a paragraph, tables and plots.
struct Section {
    title: String,
    text: String,
    tables: Vec<Table>,
    plots: Vec<(String, String)>,
}

/// A line chart of series over hours, as SVG text.
fn line_chart(
    title: &str,
    y_label: &str,
    hours: &[i64],
    series: &[(String, Vec<Option<f64>>)],
) -> String {
    defect_plot::fonts();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 360)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let (x0, x1) = match (hours.first(), hours.last()) {
            (Some(a), Some(b)) => (*a, (*b).max(*a) + 1),
            _ => (0, 1),
        };
        let y_max = series
            .iter()
            .flat_map(|(_, v)| v.iter().flatten())
            .fold(0.0f64, |m, v| if v.is_finite() { m.max(*v) } else { m });
        let y_max = if y_max <= 0.0 { 1.0 } else { y_max * 1.1 };
        let chart = ChartBuilder::on(&root)
            .caption(title, defect_plot::title())
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, 0.0..y_max);
        let Ok(mut chart) = chart else {
            return svg_fallback(title);
        };
        let _ = chart
            .configure_mesh()
            .x_labels(8)
            .x_label_formatter(&|h| hour_text(*h))
            .y_desc(y_label)
            .label_style(label())
            .draw();
        for (i, (name, values)) in series.iter().enumerate() {
            let color = series_colour(i);
            let points: Vec<(i64, f64)> = hours
                .iter()
                .zip(values)
                .filter_map(|(h, v)| v.filter(|v| v.is_finite()).map(|v| (*h, v)))
                .collect();
            if let Ok(drawn) = chart.draw_series(LineSeries::new(points, color.stroke_width(2))) {
                drawn.label(name.clone()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            }
        }
        let _ = chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(label())
            .draw();
        let _ = root.present();
    }
    svg
}

fn svg_fallback(title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"960\" height=\"40\"><text x=\"10\" y=\"25\">{}: nothing to draw</text></svg>",
        html_escape(title)
    )
}

/// The report's sections, and the plots (file name, SVG text).
fn sections(stats: &Stats, o: &Options) -> Vec<Section> {
    let hours: Vec<i64> = match (stats.hours.keys().next(), stats.hours.keys().last()) {
        (Some(a), Some(b)) => (*a..=*b).collect(),
        _ => Vec::new(),
    };
    let empty = Hour::default();
    let hour = |h: &i64| stats.hours.get(h).unwrap_or(&empty);
    let mut out = Vec::new();

    // Overview.
    let f = stats.frame_totals();
    let n: u64 = f.iter().sum();
    let p = stats.part_totals();
    let np: u64 = p.iter().sum();
    let span = match (hours.first(), hours.last()) {
        (Some(a), Some(b)) => format!("{} to {}", hour_text(*a), hour_text(*b + 1)),
        _ => "no records".into(),
    };
    let mut text = format!(
        "{} records from {} file(s), {span} (UTC{:+} h). ",
        stats.records,
        o.files.len(),
        stats.offset_s as f64 / 3600.0
    );
    if stats.malformed > 0 {
        let _ = write!(
            text,
            "{} line(s) could not be read (first: ",
            stats.malformed
        );
        let first: Vec<String> = stats
            .problems
            .iter()
            .take(3)
            .map(|pr| {
                format!(
                    "{}:{}: {}",
                    o.files.get(pr.file).map_or("?", |s| s.as_str()),
                    pr.line,
                    pr.message
                )
            })
            .collect();
        let _ = write!(text, "{}). ", first.join("; "));
    }
    if stats.skipped_types > 0 {
        let _ = write!(
            text,
            "{} record(s) of other types skipped. ",
            stats.skipped_types
        );
    }
    let uninspected: u64 = stats.hours.values().map(|h| h.uninspected).sum();
    let _ = write!(
        text,
        "{uninspected} frame(s) were not inspected by the model (never a pass)."
    );
    let mut rows = Vec::new();
    for i in 0..4 {
        rows.push(vec![
            verdict_name(i).to_owned(),
            f[i].to_string(),
            pct(f[i], n),
            p[i].to_string(),
            pct(p[i], np),
        ]);
    }
    rows.push(vec![
        "all".into(),
        n.to_string(),
        pct(n, n),
        np.to_string(),
        pct(np, np),
    ]);
    out.push(Section {
        title: "Overview".into(),
        text,
        tables: vec![Table {
            header: ["verdict", "frames", "share", "parts", "share"]
                .map(String::from)
                .to_vec(),
            rows,
        }],
        plots: vec![],
    });

    // Rates per hour, shift and day.
    let rate = |i: usize| -> Vec<Option<f64>> {
        hours
            .iter()
            .map(|h| {
                let hr = hour(h);
                let t = hr.frames_total();
                (t > 0).then(|| 100.0 * hr.frames[i] as f64 / t as f64)
            })
            .collect()
    };
    let rates_plot = line_chart(
        "FAIL / REVIEW / UNKNOWN frames per hour",
        "% of frames",
        &hours,
        &[
            ("FAIL".into(), rate(1)),
            ("REVIEW".into(), rate(2)),
            ("UNKNOWN".into(), rate(3)),
        ],
    );
    let part_rate = |i: usize| -> Vec<Option<f64>> {
        hours
            .iter()
            .map(|h| {
                let hr = hour(h);
                let t: u64 = hr.parts.iter().sum();
                (t > 0).then(|| 100.0 * hr.parts[i] as f64 / t as f64)
            })
            .collect()
    };
    let parts_plot = line_chart(
        "Parts per hour: FAIL / REVIEW / UNKNOWN",
        "% of parts",
        &hours,
        &[
            ("FAIL".into(), part_rate(1)),
            ("REVIEW".into(), part_rate(2)),
            ("UNKNOWN".into(), part_rate(3)),
        ],
    );
    let mut days: BTreeMap<i64, Row> = BTreeMap::new();
    let mut shifts: BTreeMap<(i64, usize), Row> = BTreeMap::new();
    for (h, hr) in &stats.hours {
        days.entry(h.div_euclid(24)).or_default().add(hr);
        shifts.entry(o.shifts.of(*h)).or_default().add(hr);
    }
    let header = |first: &[&str]| -> Vec<String> {
        first
            .iter()
            .chain(ROW_HEADER.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let day_rows = days
        .iter()
        .map(|(d, r)| std::iter::once(date_text(*d)).chain(r.cells()).collect())
        .collect();
    let shift_rows = shifts
        .iter()
        .map(|((d, s), r)| {
            [date_text(*d), o.shifts.name(*s)]
                .into_iter()
                .chain(r.cells())
                .collect()
        })
        .collect();
    out.push(Section {
        title: "Rates by hour, shift and day".into(),
        text: "Shares of frames and parts per verdict; latency is defectdetect's whole time per frame.".into(),
        tables: vec![
            Table { header: header(&["day"]), rows: day_rows },
            Table { header: header(&["day", "shift"]), rows: shift_rows },
        ],
        plots: vec![("rates.svg".into(), rates_plot), ("parts.svg".into(), parts_plot)],
    });

    // Classes.
    let classes = stats.classes_by_count();
    let top: Vec<&String> = classes.iter().take(o.top_classes).map(|(c, _)| c).collect();
    let count_series: Vec<(String, Vec<Option<f64>>)> = top
        .iter()
        .map(|c| {
            (
                (*c).clone(),
                hours
                    .iter()
                    .map(|h| Some(hour(h).classes.get(*c).map_or(0.0, |x| x.detections as f64)))
                    .collect(),
            )
        })
        .collect();
    let conf_series: Vec<(String, Vec<Option<f64>>)> = top
        .iter()
        .map(|c| {
            (
                (*c).clone(),
                hours
                    .iter()
                    .map(|h| {
                        hour(h)
                            .classes
                            .get(*c)
                            .filter(|x| x.detections > 0)
                            .map(|x| x.confidence_sum / x.detections as f64)
                    })
                    .collect(),
            )
        })
        .collect();
    let half = hours.len() / 2;
    let class_rows = classes
        .iter()
        .map(|(c, count)| {
            let mean = |range: &[i64]| {
                let (mut n, mut s) = (0u64, 0.0);
                for h in range {
                    if let Some(x) = hour(h).classes.get(c) {
                        n += x.detections;
                        s += x.confidence_sum;
                    }
                }
                (n > 0).then(|| s / n as f64)
            };
            let f3 = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
            vec![
                c.clone(),
                count.to_string(),
                f3(mean(&hours)),
                f3(mean(&hours[..half])),
                f3(mean(&hours[half..])),
            ]
        })
        .collect();
    out.push(Section {
        title: "Classes".into(),
        text: format!(
            "Detections the policy judged (not those outside the region, masked or too small), per class; the plots show the {} most frequent.",
            top.len()
        ),
        tables: vec![Table {
            header: ["class", "detections", "mean confidence", "first half", "second half"].map(String::from).to_vec(),
            rows: class_rows,
        }],
        plots: vec![
            ("classes.svg".into(), line_chart("Detections per hour by class", "detections", &hours, &count_series)),
            ("confidence.svg".into(), line_chart("Mean confidence per hour by class", "confidence", &hours, &conf_series)),
        ],
    });

    // Latency.
    let q =
        |which: fn(&Hour) -> &crate::stats::LatencyHistogram, quantile: f64| -> Vec<Option<f64>> {
            hours
                .iter()
                .map(|h| which(hour(h)).quantile(quantile))
                .collect()
        };
    out.push(Section {
        title: "Latency".into(),
        text: "Per hour, from a log-spaced histogram (quantiles within about 6 %).".into(),
        tables: vec![],
        plots: vec![(
            "latency.svg".into(),
            line_chart(
                "Latency per hour",
                "ms",
                &hours,
                &[
                    ("total p50".into(), q(|h| &h.latency_total, 0.5)),
                    ("total p99".into(), q(|h| &h.latency_total, 0.99)),
                    ("inference p50".into(), q(|h| &h.latency_inference, 0.5)),
                    ("inference p99".into(), q(|h| &h.latency_inference, 0.99)),
                ],
            ),
        )],
    });

    // Models.
    let mut models: Vec<_> = stats.models.iter().collect();
    models.sort_by_key(|(id, m)| (m.first_ms, (*id).clone()));
    let utc = |ms: i64| {
        let local = ms + stats.offset_s * 1000;
        let s = local.div_euclid(1000);
        format!(
            "{} {:02}:{:02}:{:02}",
            date_text(s.div_euclid(86_400)),
            s.rem_euclid(86_400) / 3600,
            s.rem_euclid(3600) / 60,
            s.rem_euclid(60)
        )
    };
    out.push(Section {
        title: "Models".into(),
        text: "Each model seen, in the order it came into use.".into(),
        tables: vec![Table {
            header: ["model", "version", "first frame", "last frame", "frames"]
                .map(String::from)
                .to_vec(),
            rows: models
                .iter()
                .map(|(id, m)| {
                    vec![
                        (*id).clone(),
                        m.version.clone(),
                        utc(m.first_ms),
                        utc(m.last_ms),
                        m.frames.to_string(),
                    ]
                })
                .collect(),
        }],
        plots: vec![],
    });

    // Drift.
    out.push(Section {
        title: "Drift episodes".into(),
        text: if stats.episodes.is_empty() {
            "No drift episode.".into()
        } else {
            String::new()
        },
        tables: if stats.episodes.is_empty() {
            vec![]
        } else {
            vec![Table {
                header: [
                    "source",
                    "episode",
                    "started",
                    "ended",
                    "features that moved (highest score)",
                ]
                .map(String::from)
                .to_vec(),
                rows: stats
                    .episodes
                    .iter()
                    .map(|((source, n), e)| {
                        vec![
                            source.clone(),
                            n.to_string(),
                            e.start_ms.map_or("-".into(), utc),
                            e.end_ms.map_or("ongoing".into(), utc),
                            e.features
                                .iter()
                                .map(|(f, s)| format!("{f} {s:.2}"))
                                .collect::<Vec<_>>()
                                .join(", "),
                        ]
                    })
                    .collect(),
            }]
        },
        plots: vec![],
    });

    // Sources.
    out.push(Section {
        title: "Sources".into(),
        text: String::new(),
        tables: vec![Table {
            header: ["source", "frames", "FAIL", "REVIEW", "UNKNOWN"]
                .map(String::from)
                .to_vec(),
            rows: stats
                .sources
                .iter()
                .map(|(s, c)| {
                    let t: u64 = c.iter().sum();
                    vec![
                        s.clone(),
                        t.to_string(),
                        pct(c[1], t),
                        pct(c[2], t),
                        pct(c[3], t),
                    ]
                })
                .collect(),
        }],
        plots: vec![],
    });
    out
}

/// The report's files: (relative path, contents).
pub fn render(stats: &Stats, o: &Options) -> Vec<(String, String)> {
    let sections = sections(stats, o);
    let mut md = format!("# {}\n\n", md_escape(&o.title));
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{0}</title>\n<style>body{{font-family:sans-serif;max-width:1000px;margin:auto}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}</style></head><body>\n<h1>{0}</h1>\n",
        html_escape(&o.title)
    );
    let mut files = Vec::new();
    for s in &sections {
        let _ = write!(md, "## {}\n\n", md_escape(&s.title));
        let _ = writeln!(html, "<h2>{}</h2>", html_escape(&s.title));
        if !s.text.is_empty() {
            let _ = write!(md, "{}\n\n", md_escape(&s.text));
            let _ = writeln!(html, "<p>{}</p>", html_escape(&s.text));
        }
        for t in &s.tables {
            let _ = writeln!(md, "{}", t.markdown());
            html.push_str(&t.html());
        }
        for (name, svg) in &s.plots {
            let _ = write!(md, "![{}](plots/{name})\n\n", md_escape(&s.title));
            let _ = writeln!(html, "<figure>{svg}</figure>");
            files.push((format!("plots/{name}"), svg.clone()));
        }
    }
    html.push_str("</body></html>\n");
    files.push(("report.md".into(), md));
    files.push(("report.html".into(), html));
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_wrap_past_midnight() {
        let s = Shifts::parse("06:00,14:00,22:00").unwrap();
        assert_eq!(s.of(10 * 24 + 5), (9, 2));
        assert_eq!(s.of(10 * 24 + 6), (10, 0));
        assert_eq!(s.of(10 * 24 + 23), (10, 2));
        assert_eq!(s.name(2), "22:00-06:00");
        assert!(Shifts::parse("06:30").is_err());
        assert!(Shifts::parse("").is_err());
    }

    #[test]
    fn hostile_class_names_are_escaped() {
        let mut stats = Stats::new(0);
        stats.add_line(0, 1, br#"{"type":"frame","utc":"2026-12-06T10:00:00Z","verdict":"FAIL","detections":[{"class_name":"<script>alert(1)</script>|[x](http://e)","confidence":0.9}]}"#);
        let o = Options {
            title: "t".into(),
            shifts: Shifts::parse("06:00").unwrap(),
            files: vec!["a".into()],
            top_classes: 8,
        };
        let files = render(&stats, &o);
        let html = &files.iter().find(|(n, _)| n == "report.html").unwrap().1;
        let md = &files.iter().find(|(n, _)| n == "report.md").unwrap().1;
        assert!(!html.contains("<script>"));
        assert!(!md.contains("<script>"));
        assert!(md.contains(r"\|\[x\]\(http://e\)"));
        assert!(
            files
                .iter()
                .any(|(n, s)| n == "plots/rates.svg" && s.starts_with("<svg"))
        );
    }
}
