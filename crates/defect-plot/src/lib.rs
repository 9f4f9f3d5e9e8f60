// SPDX-License-Identifier: MIT OR Apache-2.0
//! The look of the project's plots, shared by `defect-report` (SVG) and `defect-replay` (PNG):
//! [`plotters`] with one font, embedded, its sizes and the series colours.
//!
//! The font is DejaVu Sans 2.37 (`fonts/DejaVuSans.ttf`, Bitstream Vera licence in
//! `fonts/LICENSE-DejaVu.txt`), compiled in and registered with plotters by [`fonts`] under
//! the family name [`FONT`]: plotters measures every label with it (both backends), and a
//! bitmap's text is drawn with it, so that a PNG needs no font installed on the machine. An SVG
//! names the family and leaves drawing the text to the viewer's fonts.
//!
//! ```
//! use defect_plot::plotters::prelude::*;
//!
//! defect_plot::fonts();
//! let mut svg = String::new();
//! {
//!     let root = SVGBackend::with_string(&mut svg, (320, 200)).into_drawing_area();
//!     root.fill(&WHITE).unwrap();
//!     let mut chart = ChartBuilder::on(&root)
//!         .caption("ratio", defect_plot::title())
//!         .x_label_area_size(30)
//!         .y_label_area_size(40)
//!         .build_cartesian_2d(0.0..1.0, 0.0..1.0)
//!         .unwrap();
//!     chart.configure_mesh().label_style(defect_plot::label()).draw().unwrap();
//!     root.present().unwrap();
//! }
//! assert!(svg.contains("ratio"));
//! ```

use std::sync::OnceLock;

pub use plotters;
use plotters::style::{Color, FontStyle, Palette, Palette99, RGBAColor, TextStyle};

/// The font family the plots name.
pub const FONT: &str = "sans-serif";
/// A plot's title, in pixels.
pub const TITLE_SIZE: u32 = 18;
/// Axis labels, tick labels and legends, in pixels.
pub const LABEL_SIZE: u32 = 12;

/// DejaVu Sans 2.37, unmodified.
static DEJAVU_SANS: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

/// Registers the embedded font as [`FONT`] (the first call; later ones only answer). False
/// when the font could not be read (then plotters has no font, and a plot's text is left
/// out): the tests make sure it can.
pub fn fonts() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, DEJAVU_SANS).is_ok()
    })
}

/// The style of a plot's title.
pub fn title() -> TextStyle<'static> {
    TextStyle::from((FONT, TITLE_SIZE))
}

/// The style of axis labels, tick labels and legends.
pub fn label() -> TextStyle<'static> {
    TextStyle::from((FONT, LABEL_SIZE))
}

/// The colour of the `index`-th series.
pub fn series_colour(index: usize) -> RGBAColor {
    Palette99::pick(index).to_rgba()
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::prelude::*;

    #[test]
    fn the_embedded_font_registers_and_measures_text() {
        assert!(fonts());
        assert!(fonts(), "a second call answers the same");
        let (short, _) = label().font.box_size("ab").unwrap();
        let (long, _) = label().font.box_size("abcdefgh").unwrap();
        assert!(short > 0 && long > 3 * short, "{short} {long}");
    }

    #[test]
    fn a_bitmap_draws_its_text_with_the_font() {
        fonts();
        let (w, h) = (120u32, 40u32);
        let mut pixels = vec![255u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
            root.draw(&Text::new("Wg", (10, 10), title())).unwrap();
            root.present().unwrap();
        }
        let dark = pixels.chunks(3).filter(|p| p[0] < 128).count();
        assert!(dark > 20, "{dark} dark pixels: the text was not drawn");
    }
}
