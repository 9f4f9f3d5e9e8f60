//! PNG plots of a replay report, drawn with `plotters` in the project's plot style
//! ([`defect_plot`]: the embedded font, so the text needs no font installed): precision-recall
//! curves per class, the confusion matrix, the latency histogram.

use std::path::Path;

use defect_plot::plotters::coord::Shift;
use defect_plot::plotters::coord::cartesian::Cartesian2d;
use defect_plot::plotters::coord::types::RangedCoordf64;
use defect_plot::plotters::prelude::*;
use defect_plot::plotters::style::text_anchor::{HPos, Pos, VPos};
use defect_plot::{label, series_colour, title};

const WIDTH: u32 = 800;
const HEIGHT: u32 = 600;
const GREY: RGBColor = RGBColor(200, 200, 200);

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error>>;
type XyChart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Draws a plot with `draw` on a white RGB image and writes it as PNG to `path` (a new file).
fn plot(path: &Path, draw: impl FnOnce(&Area) -> DrawResult) -> std::io::Result<()> {
    defect_plot::fonts();
    let mut pixels = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root)
            .and_then(|()| Ok(root.present()?))
            .map_err(|e| std::io::Error::other(format!("drawing {}: {e}", path.display())))?;
    }
    let file = std::io::BufWriter::new(super::output::create_new(path)?);
    let mut encoder = png::Encoder::new(file, WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
    writer
        .write_image_data(&pixels)
        .map_err(std::io::Error::other)
}

/// A chart of values in [0, x max] x [0, y max] on a white plot: its title, axes named
/// `(description, max)`, grid and tick labels.
fn axes<'a, 'b>(
    root: &'a Area<'b>,
    caption: &str,
    (x_desc, x_max): (&str, f64),
    (y_desc, y_max): (&str, f64),
) -> Result<XyChart<'a, 'b>, Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(root)
        .caption(caption, title())
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(label())
        .axis_desc_style(label())
        .draw()?;
    Ok(chart)
}

/// `text` cut (with an ellipsis) to at most `width` pixels in the label style.
fn fit(text: &str, width: u32) -> String {
    let wide = |t: &str| label().font.box_size(t).map_or(0, |(w, _)| w);
    if wide(text) <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().collect();
    while !cut.is_empty() && wide(&format!("{cut}…")) > width {
        cut.pop();
    }
    format!("{cut}…")
}

/// Precision against recall per class; `curves[c]` is (recall, precision) in confidence order.
pub fn pr_curves(path: &Path, names: &[String], curves: &[Vec<(f64, f64)>]) -> std::io::Result<()> {
    plot(path, |root| {
        let title = "Precision-recall at IoU 0.5";
        let mut chart = axes(root, title, ("recall", 1.0), ("precision", 1.0))?;
        for (class, curve) in curves.iter().enumerate() {
            let colour = series_colour(class);
            let name = names.get(class).map_or("?", String::as_str).to_string();
            chart
                .draw_series(LineSeries::new(curve.clone(), colour.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(label())
            .draw()?;
        Ok(())
    })
}

/// The confusion matrix as a grid of counts, darker for larger counts.
pub fn confusion(path: &Path, labels: &[String], counts: &[Vec<u64>]) -> std::io::Result<()> {
    let n = counts.len().max(1);
    let name = |i: usize| labels.get(i).map_or("?", String::as_str);
    plot(path, |root| {
        root.fill(&WHITE)?;
        let left = 160u32;
        let mut chart = ChartBuilder::on(root)
            .caption("Confusion matrix (rows predicted, columns truth)", title())
            .margin(15)
            .margin_left(left)
            // The column labels' room, below the title.
            .top_x_label_area_size(30)
            .build_cartesian_2d(0.0..n as f64, 0.0..n as f64)?;
        let max = counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
        // Row i (predicted) from the top: y from n - i - 1 to n - i.
        let cells = counts.iter().enumerate().flat_map(|(i, row)| {
            row.iter().enumerate().map(move |(j, &count)| {
                let y = (n - i) as f64;
                (j as f64, y, count)
            })
        });
        for (x, y, count) in cells {
            let shade = (255.0 * (1.0 - 0.8 * count as f64 / max)) as u8;
            chart.draw_series([
                Rectangle::new(
                    [(x, y - 1.0), (x + 1.0, y)],
                    RGBColor(shade, shade, 255).filled(),
                ),
                Rectangle::new([(x, y - 1.0), (x + 1.0, y)], GREY.stroke_width(1)),
            ])?;
            let centre = Pos::new(HPos::Center, VPos::Center);
            chart.draw_series([Text::new(
                count.to_string(),
                (x + 0.5, y - 0.5),
                label().pos(centre),
            )])?;
        }
        let (x0, _) = chart.backend_coord(&(0.0, 0.0));
        let (x1, _) = chart.backend_coord(&(1.0, 0.0));
        let cell = (x1 - x0).max(1) as u32;
        for i in 0..n {
            let (px, py) = chart.backend_coord(&(0.0, (n - i) as f64 - 0.5));
            let right = label().pos(Pos::new(HPos::Right, VPos::Center));
            root.draw(&Text::new(fit(name(i), left - 10), (px - 6, py), right))?;
            let (px, py) = chart.backend_coord(&(i as f64 + 0.5, n as f64));
            let above = label().pos(Pos::new(HPos::Center, VPos::Bottom));
            root.draw(&Text::new(
                fit(name(i), cell.saturating_sub(4)),
                (px, py - 4),
                above,
            ))?;
        }
        Ok(())
    })
}

/// A histogram of per-frame latencies in milliseconds.
pub fn latency_histogram(path: &Path, latencies_ms: &[f64]) -> std::io::Result<()> {
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
    let top = (*bins.iter().max().unwrap_or(&1)).max(1) as f64 * 1.05;
    plot(path, |root| {
        let title = "Latency per frame (defectdetect)";
        let mut chart = axes(root, title, ("milliseconds", max), ("frames", top))?;
        let width = max / BINS as f64;
        chart.draw_series(bins.iter().enumerate().map(|(i, &count)| {
            let x = i as f64 * width;
            Rectangle::new(
                [(x, 0.0), (x + width, count as f64)],
                series_colour(0).filled(),
            )
        }))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PNG's pixels (RGB).
    fn read(path: &Path) -> Vec<u8> {
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!((info.width, info.height), (WIDTH, HEIGHT));
        pixels
    }

    #[test]
    fn the_plots_are_drawn_with_text_and_never_overwrite() {
        let dir = std::env::temp_dir().join(format!("replay-plots-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let names = vec![
            "scratch".to_string(),
            "a very long class name indeed".into(),
        ];
        let curves = vec![vec![(0.0, 1.0), (0.5, 0.9), (0.9, 0.4)], vec![(0.2, 0.7)]];
        pr_curves(&dir.join("pr.png"), &names, &curves).unwrap();
        confusion(&dir.join("c.png"), &names, &[vec![5, 1], vec![0, 7]]).unwrap();
        latency_histogram(&dir.join("l.png"), &[3.0, 4.0, 4.5, 12.0]).unwrap();
        for name in ["pr.png", "c.png", "l.png"] {
            let pixels = read(&dir.join(name));
            // Black text (the title at least) and colour (curves, cells, bars).
            let black = pixels
                .chunks(3)
                .filter(|p| p.iter().all(|&v| v < 60))
                .count();
            let colour = pixels
                .chunks(3)
                .filter(|p| p.iter().max().unwrap() - p.iter().min().unwrap() > 60)
                .count();
            assert!(black > 200 && colour > 200, "{name}: {black} {colour}");
        }
        assert!(latency_histogram(&dir.join("l.png"), &[1.0]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
