//! PNG plots with plotters: the loss curves and predictions against the truth over time.
//! The font is embedded (no system fonts needed); each plot is a PNG or an SVG, by its
//! extension, written atomically.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::train::EpochRecord;

const FONT: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font is valid; if registration ever failed, text would be missing
        // but the curves would still be drawn, so there is nothing to report.
        let _ = plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        );
    });
}

fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.into(),
        message: format!("drawing the plot: {e}"),
    }
}

/// The file formats a plot can be written in, chosen by the file's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Png,
    Svg,
}

impl Format {
    /// `.png` or `.svg` (any case); anything else is refused before any work is done.
    pub fn of(path: &Path) -> Result<Format> {
        let extension = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match extension.as_deref() {
            Some("png") => Ok(Format::Png),
            Some("svg") => Ok(Format::Svg),
            other => Err(Error::File {
                path: path.into(),
                message: format!(
                    "{}: plots are written as .png or .svg",
                    other.map_or("no extension".to_string(), |e| format!("extension .{e}"))
                ),
            }),
        }
    }
}

/// A plot that can be drawn on any plotters backend.
trait Drawing {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>, path: &Path) -> Result<()>;
}

/// Renders `drawing` into a temporary file beside `path` in the format its extension names,
/// then renames it into place.
fn render(path: &Path, drawing: &impl Drawing) -> Result<()> {
    register_font();
    let format = Format::of(path)?;
    let suffix = match format {
        Format::Png => ".png",
        Format::Svg => ".svg",
    };
    let (tmp, registered, target) = crate::io::temporary_beside(path, suffix)?;
    let size = (1000, 600);
    match format {
        Format::Png => {
            let root = BitMapBackend::new(tmp.path(), size).into_drawing_area();
            drawing.draw(root.clone(), path)?;
            root.present().map_err(|e| plot_error(path, e))?;
        }
        Format::Svg => {
            let root = SVGBackend::new(tmp.path(), size).into_drawing_area();
            drawing.draw(root.clone(), path)?;
            root.present().map_err(|e| plot_error(path, e))?;
        }
    }
    crate::io::persist(tmp, &target)?;
    drop(registered);
    Ok(())
}

/// The boxed legend both plots carry.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    path: &Path,
) -> Result<()> {
    chart
        .configure_series_labels()
        .label_font((FONT, 16))
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| plot_error(path, e))
}

/// Training and validation loss per epoch (the validation curve where one was held out), on
/// a log scale, the axis named `loss` (e.g. "MSE (standardised)").
pub fn loss_curves(path: &Path, history: &[EpochRecord], title: &str, loss: &str) -> Result<()> {
    render(
        path,
        &LossCurves {
            history,
            title,
            loss,
        },
    )
}

struct LossCurves<'a> {
    history: &'a [EpochRecord],
    title: &'a str,
    loss: &'a str,
}

impl Drawing for LossCurves<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>, path: &Path) -> Result<()> {
        let (history, title) = (self.history, self.title);
        root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
        let losses = history
            .iter()
            .flat_map(|r| std::iter::once(r.train_loss).chain(r.val_loss));
        let max = losses.clone().fold(f64::MIN_POSITIVE, f64::max) * 1.05;
        let min = losses.fold(f64::INFINITY, f64::min).min(max) * 0.95;
        let epochs = history.last().map_or(1, |r| r.epoch).max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 24))
            .margin(20)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(0usize..epochs, (min..max).log_scale())
            .map_err(|e| plot_error(path, e))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(self.loss)
            .y_label_formatter(&|v| format!("{v:.3}"))
            .label_style((FONT, 16))
            .draw()
            .map_err(|e| plot_error(path, e))?;
        for (name, color, pick) in [
            (
                "training",
                BLUE,
                (|r: &EpochRecord| Some(r.train_loss)) as fn(&EpochRecord) -> Option<f64>,
            ),
            ("validation", RED, |r: &EpochRecord| r.val_loss),
        ] {
            if history.iter().all(|r| pick(r).is_none()) {
                continue;
            }
            chart
                .draw_series(LineSeries::new(
                    history.iter().filter_map(|r| Some((r.epoch, pick(r)?))),
                    color.stroke_width(2),
                ))
                .map_err(|e| plot_error(path, e))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        draw_legend(&mut chart, path)
    }
}

/// Predictions and truth for each record in time order (`hours` since the first record).
pub fn predictions(
    path: &Path,
    hours: &[f64],
    truth: &[f64],
    predicted: &[f64],
    title: &str,
    unit: &str,
) -> Result<()> {
    render(
        path,
        &Predictions {
            hours,
            truth,
            predicted,
            title,
            unit,
        },
    )
}

struct Predictions<'a> {
    hours: &'a [f64],
    truth: &'a [f64],
    predicted: &'a [f64],
    title: &'a str,
    unit: &'a str,
}

impl Drawing for Predictions<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>, path: &Path) -> Result<()> {
        let (hours, truth, predicted, title, unit) = (
            self.hours,
            self.truth,
            self.predicted,
            self.title,
            self.unit,
        );
        root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
        let values = truth.iter().chain(predicted).copied();
        let max = values.clone().fold(f64::MIN, f64::max);
        let min = values.fold(f64::MAX, f64::min);
        let pad = (max - min).abs().max(1e-9) * 0.05;
        let span = hours.last().copied().unwrap_or(1.0).max(1.0);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 24))
            .margin(20)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..span, (min - pad)..(max + pad))
            .map_err(|e| plot_error(path, e))?;
        chart
            .configure_mesh()
            .x_desc("hours since the first test record")
            .y_desc(unit)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style((FONT, 16))
            .draw()
            .map_err(|e| plot_error(path, e))?;
        for (name, color, series) in [("truth", BLACK, truth), ("prediction", BLUE, predicted)] {
            chart
                .draw_series(LineSeries::new(
                    hours.iter().copied().zip(series.iter().copied()),
                    color.stroke_width(1),
                ))
                .map_err(|e| plot_error(path, e))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        draw_legend(&mut chart, path)
    }
}
