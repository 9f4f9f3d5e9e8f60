//! PNG plots of a replay report, drawn with the plugin's own canvas and bitmap font:
//! precision-recall curves per class, the confusion matrix, the latency histogram.

use std::path::Path;

use crate::draw::{Canvas, Rgb, YuvEncoding, text_width};
use crate::frame::PixelFormat;

const WIDTH: u32 = 800;
const HEIGHT: u32 = 600;
const MARGIN: i64 = 70;
const PALETTE: [Rgb; 8] = [
    Rgb(31, 119, 180),
    Rgb(255, 127, 14),
    Rgb(44, 160, 44),
    Rgb(214, 39, 40),
    Rgb(148, 103, 189),
    Rgb(140, 86, 75),
    Rgb(227, 119, 194),
    Rgb(23, 190, 207),
];
const GREY: Rgb = Rgb(200, 200, 200);

/// An RGB image being drawn.
struct Plot {
    pixels: Vec<u8>,
}

impl Plot {
    fn new() -> Self {
        Self {
            pixels: vec![255; (WIDTH * HEIGHT * 3) as usize],
        }
    }

    fn canvas(&mut self) -> Canvas<'_> {
        let planes: [&mut [u8]; 3] = [&mut self.pixels, &mut [], &mut []];
        Canvas::new(
            WIDTH,
            HEIGHT,
            PixelFormat::RGB,
            YuvEncoding::default(),
            planes,
            [(WIDTH * 3) as usize, 0, 0],
        )
        .expect("the plot buffer fits its size")
    }

    fn save(&self, path: &Path) -> std::io::Result<()> {
        let file = std::io::BufWriter::new(super::output::create_new(path)?);
        let mut encoder = png::Encoder::new(file, WIDTH, HEIGHT);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
        writer
            .write_image_data(&self.pixels)
            .map_err(std::io::Error::other)
    }
}

/// Axes for values in [0, x_max] x [0, y_max]; returns the mapping to pixels.
fn axes(
    c: &mut Canvas,
    title: &str,
    x_label: &str,
    y_label: &str,
    x_max: f64,
    y_max: f64,
) -> impl Fn(f64, f64) -> (i64, i64) + use<> {
    let (w, h) = (WIDTH as i64, HEIGHT as i64);
    c.text((w - text_width(title, 2)) / 2, 12, title, 2, Rgb::BLACK);
    c.line(MARGIN, h - MARGIN, w - 30, h - MARGIN, 2, Rgb::BLACK);
    c.line(MARGIN, h - MARGIN, MARGIN, 40, 2, Rgb::BLACK);
    for k in 0..=4 {
        let f = k as f64 / 4.0;
        let x = MARGIN + ((w - 30 - MARGIN) as f64 * f) as i64;
        let y = h - MARGIN - ((h - MARGIN - 40) as f64 * f) as i64;
        c.line(x, h - MARGIN, x, h - MARGIN + 6, 1, Rgb::BLACK);
        c.text(
            x - 16,
            h - MARGIN + 10,
            &format_tick(x_max * f),
            1,
            Rgb::BLACK,
        );
        c.line(MARGIN - 6, y, MARGIN, y, 1, Rgb::BLACK);
        c.text(8, y - 4, &format_tick(y_max * f), 1, Rgb::BLACK);
    }
    c.text(
        (w - text_width(x_label, 1)) / 2,
        h - 28,
        x_label,
        1,
        Rgb::BLACK,
    );
    c.text(8, 26, y_label, 1, Rgb::BLACK);
    move |x: f64, y: f64| {
        let px = MARGIN + ((w - 30 - MARGIN) as f64 * (x / x_max.max(1e-12))) as i64;
        let py = h - MARGIN - ((h - MARGIN - 40) as f64 * (y / y_max.max(1e-12))) as i64;
        (px, py)
    }
}

fn format_tick(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Precision against recall per class; `curves[c]` is (recall, precision) in confidence order.
pub fn pr_curves(path: &Path, names: &[String], curves: &[Vec<(f64, f64)>]) -> std::io::Result<()> {
    let mut plot = Plot::new();
    let mut c = plot.canvas();
    let to_px = axes(
        &mut c,
        "Precision-recall at IoU 0.5",
        "recall",
        "precision",
        1.0,
        1.0,
    );
    for (class, curve) in curves.iter().enumerate() {
        let colour = PALETTE[class % PALETTE.len()];
        let mut previous: Option<(i64, i64)> = None;
        for &(recall, precision) in curve {
            let point = to_px(recall, precision);
            if let Some(p) = previous {
                c.line(p.0, p.1, point.0, point.1, 2, colour);
            }
            previous = Some(point);
        }
        let name = names.get(class).map_or("?", String::as_str);
        let y = 50 + class as i64 * 14;
        c.fill_rect(WIDTH as i64 - 230, y, WIDTH as i64 - 214, y + 8, colour);
        c.text(WIDTH as i64 - 208, y, name, 1, Rgb::BLACK);
    }
    plot.save(path)
}

/// The confusion matrix as a grid of counts, darker for larger counts.
pub fn confusion(path: &Path, labels: &[String], counts: &[Vec<u64>]) -> std::io::Result<()> {
    let mut plot = Plot::new();
    let mut c = plot.canvas();
    let title = "Confusion matrix (rows predicted, columns truth)";
    c.text(
        (WIDTH as i64 - text_width(title, 2)) / 2,
        12,
        title,
        2,
        Rgb::BLACK,
    );
    let n = counts.len().max(1) as i64;
    let (left, top) = (150i64, 150i64);
    let cell = ((WIDTH as i64 - left - 20).min(HEIGHT as i64 - top - 20) / n).max(8);
    let max = counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
    for (i, row) in counts.iter().enumerate() {
        let label: String = labels
            .get(i)
            .map_or("?", String::as_str)
            .chars()
            .take(17)
            .collect();
        c.text(
            8,
            top + i as i64 * cell + cell / 2 - 4,
            &label,
            1,
            Rgb::BLACK,
        );
        for (j, &count) in row.iter().enumerate() {
            let shade = (255.0 * (1.0 - 0.8 * count as f64 / max)) as u8;
            let (x, y) = (left + j as i64 * cell, top + i as i64 * cell);
            c.fill_rect(x, y, x + cell, y + cell, Rgb(shade, shade, 255));
            c.outline(x, y, x + cell + 1, y + cell + 1, 1, GREY);
            let text = count.to_string();
            c.text(
                x + (cell - text_width(&text, 1)) / 2,
                y + cell / 2 - 4,
                &text,
                1,
                Rgb::BLACK,
            );
        }
    }
    for j in 0..n as usize {
        let label: String = labels
            .get(j)
            .map_or("?", String::as_str)
            .chars()
            .take(6)
            .collect();
        c.text(
            left + j as i64 * cell + 2,
            top - 14 - (j as i64 % 2) * 12,
            &label,
            1,
            Rgb::BLACK,
        );
    }
    plot.save(path)
}

/// A histogram of per-frame latencies in milliseconds.
pub fn latency_histogram(path: &Path, latencies_ms: &[f64]) -> std::io::Result<()> {
    let mut plot = Plot::new();
    let mut c = plot.canvas();
    let max = latencies_ms
        .iter()
        .copied()
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.05;
    const BINS: usize = 40;
    let mut bins = [0u64; BINS];
    for &l in latencies_ms {
        bins[((l / max * BINS as f64) as usize).min(BINS - 1)] += 1;
    }
    let top = *bins.iter().max().unwrap_or(&1) as f64;
    let to_px = axes(
        &mut c,
        "Latency per frame (defectdetect)",
        "milliseconds",
        "frames",
        max,
        top.max(1.0),
    );
    for (i, &count) in bins.iter().enumerate() {
        let (x0, y0) = to_px(max * i as f64 / BINS as f64, count as f64);
        let (x1, y1) = to_px(max * (i + 1) as f64 / BINS as f64, 0.0);
        c.fill_rect(x0 + 1, y0, x1, y1, PALETTE[0]);
    }
    plot.save(path)
}
