//! Why a run diverged, in the user's terms: where the first NaN appeared and whether the inputs
//! (an outlying feature) or the step size (the learning rate, the weight decay) is to blame.

use super::run::Part;
use crate::data::frame::Lines;
use crate::error::Error;
use crate::guard::numeric::Precision;
use crate::matrix::Matrix;
use crate::ops::optimizer::{short, Optimizer};
use crate::report::metrics::readable;
use crate::train::{TrainConfig, EXPLODED_FACTOR};

/// Standardised features this many deviations from their mean are outliers that can overflow
/// fp32 by themselves; below it, a diverging run is the learning rate's doing.
const LARGE_FEATURE: f64 = 1e4;

/// The value of `x` farthest from 0: its record, feature and value.
fn largest(x: Matrix) -> (usize, usize, f64) {
    let mut best = (0usize, 0usize, 0.0f64);
    let mut see = |(r, c): (usize, usize), v: f64| {
        if v.abs() > best.2.abs() || v.is_nan() {
            best = (r, c, v);
        }
    };
    for r in 0..x.nrows() {
        for (c, v) in x.row(r).into_iter().enumerate() {
            see((r, c), v);
        }
    }
    best
}

/// Why the untrained network's loss is `loss` (infinite or NaN) on `part`: the largest value,
/// an input or a target, is too large for arithmetic in `precision` (squares overflow first),
/// as an `Error::Value` at its [record, column], which a front end can place in its file.
pub fn too_large(part: Part, loss: f64, precision: Precision) -> Error {
    let (r, c, x) = largest(part.x);
    let (tr, tc, t) = largest(Matrix::F64(part.target));
    let (array, index, value) = if t.abs() > x.abs() {
        ("target", vec![tr, tc], t)
    } else {
        ("input", vec![r, c], x)
    };
    Error::Value {
        array: array.into(),
        index,
        message: format!(
            "{} is too large for the loss to be computed in {} (the untrained network's loss on the training records is {loss})",
            readable(value, 4),
            precision.name()
        ),
    }
}

/// The feature farthest from its training mean over `x`, as "`name` = value at line N" (with
/// `lines`, the CSV line of each record) or "… in record N".
pub fn largest_feature(x: Matrix, feature_names: &[String], lines: Option<&Lines>) -> String {
    let (r, c, v) = largest(x);
    let name = feature_names.get(c).cloned().unwrap_or_default();
    match lines {
        Some(lines) => format!("`{name}` = {v:.3e} at {} {}", lines.unit, lines.get(r)),
        None => format!("`{name}` = {v:.3e} in record {r}"),
    }
}

/// What made a run diverge: outlying inputs when some feature is enormous, else the step size.
/// `standardized`: whether the features are in standard deviations from their training mean
/// (the command line's) or as the caller gave them (an array fit's).
pub fn cause(
    (x, standardized): (Matrix, bool),
    feature_names: &[String],
    lines: Option<&Lines>,
    lr: f64,
    optimizer: &Optimizer,
) -> String {
    let (_, _, largest) = largest(x);
    if !standardized {
        let decay = weight_decay_hint(lr, optimizer);
        return format!(
            "the largest input is {} ({}); inputs far from 1 in size want scaling first (a StandardScaler in a pipeline), else the step is too large: try a smaller learning rate, e.g. --lr {}{decay}",
            readable(largest.abs(), 4),
            largest_feature(x, feature_names, lines),
            short(lr / 4.0)
        );
    }
    if largest.abs() > LARGE_FEATURE {
        format!(
            "the inputs are the likely cause, not the learning rate: {} standard deviations from the training mean; look for outliers in that column, or drop it",
            largest_feature(x, feature_names, lines)
        )
    } else {
        let decay = weight_decay_hint(lr, optimizer);
        format!(
            "the inputs are standardised (no feature beyond {:.1} standard deviations), so the step is too large: try a smaller learning rate, e.g. --lr {}{decay}",
            largest.abs(),
            short(lr / 4.0)
        )
    }
}

/// A decay step of lr·λ ≥ 1 flips or zeroes every weight by itself: the hint that says so.
fn weight_decay_hint(lr: f64, optimizer: &Optimizer) -> String {
    if optimizer.weight_decay * lr >= 1.0 {
        format!(
            ", or a smaller --weight-decay ({} x the learning rate {} is at least 1)",
            short(optimizer.weight_decay),
            short(lr)
        )
    } else {
        String::new()
    }
}

/// How a run went wrong at `epoch` of a run of `config` over `records` training records: the
/// first batch whose output held a NaN or an infinity, or the loss that exploded.
pub fn what(
    (epoch, train_loss, val_loss): (usize, f64, Option<f64>),
    first_non_finite_batch: Option<usize>,
    config: &TrainConfig,
    (records, initial_loss): (usize, f64),
) -> String {
    let (which, loss) = match val_loss {
        Some(v) if train_loss.is_finite() && v.is_finite() && v > train_loss => ("validation", v),
        _ => ("training", train_loss),
    };
    let detail = match first_non_finite_batch {
        Some(batch) => format!(
            "output_layer_out first held a NaN or an infinity in batch {} of {} (records {} to {} of the epoch's shuffled order)",
            batch + 1,
            records.div_ceil(config.batch),
            batch * config.batch + 1,
            ((batch + 1) * config.batch).min(records)
        ),
        None => format!(
            "the {which} loss {loss:.4e} is over {EXPLODED_FACTOR}x the untrained network's {}",
            readable(initial_loss, 4)
        ),
    };
    format!("training diverged at epoch {epoch}: {detail}")
}
