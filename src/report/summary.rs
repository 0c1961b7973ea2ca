//! The figures of a trained model on a data set, in the target's own terms: for classes,
//! accuracy, per-class precision, recall and F1, macro F1 and the confusion matrix; for numbers,
//! RMSE, MAE and R² in the target's units (not standardised). Shared by `train` (every epoch
//! and the final summary) and `predict`.

use std::collections::BTreeMap;

use ndarray::ArrayView2;
use serde::Serialize;

use super::metrics::{classification, regression_of, ClassReport, RegressionReport};
use crate::data::Encoder;
use crate::model::{Activation, Loss, Spec};

/// How a data set's predictions fared.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Figures {
    Classes(ClassReport),
    /// One report per target column, by name.
    Regression(BTreeMap<String, RegressionReport>),
}

/// The true class of each row of encoded targets (one-hot, or 0/1 for a single output).
fn true_classes(target: ArrayView2<f64>, single_output: bool) -> Vec<usize> {
    target
        .rows()
        .into_iter()
        .map(|row| {
            if single_output {
                usize::from(row[0] >= 0.5)
            } else {
                row.iter().position(|&v| v == 1.0).unwrap_or(usize::MAX)
            }
        })
        .collect()
}

/// The figures of outputs `y` against encoded `target` (both in model units).
pub fn figures(encoder: &Encoder, y: ArrayView2<f64>, target: ArrayView2<f64>) -> Figures {
    match &encoder.classes {
        Some(classes) => Figures::Classes(classification(
            &classes.names,
            &true_classes(target, classes.single_output),
            &classes.predicted(y),
        )),
        None => Figures::Regression(
            encoder
                .target_names()
                .into_iter()
                .enumerate()
                .map(|(j, name)| {
                    // In data units, as `Encoder::destandardize` gives them, value by value
                    // (a copy of millions of predictions is what the figures would hold).
                    let (std, mean) = encoder
                        .targets
                        .get(j)
                        .map_or((1.0, 0.0), |t| (t.std, t.mean));
                    let (y, t) = (y.column(j), target.column(j));
                    let figures =
                        regression_of(y.len(), |i| t[i] * std + mean, |i| y[i] * std + mean);
                    (name, figures)
                })
                .collect(),
        ),
    }
}

/// The few numbers worth a line per epoch: accuracy and macro F1 for classes; RMSE, MAE and
/// R² (of the first target, or per target when there are several) for numbers.
pub fn epoch_metrics(
    encoder: &Encoder,
    y: ArrayView2<f64>,
    target: ArrayView2<f64>,
) -> BTreeMap<String, f64> {
    match figures(encoder, y, target) {
        Figures::Classes(c) => BTreeMap::from([
            ("accuracy".to_string(), c.accuracy),
            ("macro_f1".to_string(), c.macro_f1),
        ]),
        Figures::Regression(reports) => {
            let several = reports.len() > 1;
            let mut out = BTreeMap::new();
            for (name, r) in reports {
                let key = |what: &str| {
                    if several {
                        format!("{what}_{name}")
                    } else {
                        what.to_string()
                    }
                };
                if let Some(rmse) = r.rmse {
                    out.insert(key("rmse"), rmse);
                }
                out.insert(key("mae"), r.mae);
                out.insert(key("r2"), r.r2);
            }
            out
        }
    }
}

/// Accuracy where numeric targets are one-hot (two or more 0/1 columns summing to 1 in every
/// row): the seeds' way of training a classifier with sigmoid outputs and squared error.
pub fn one_hot_accuracy(y: ArrayView2<f64>, target: ArrayView2<f64>) -> Option<f64> {
    let one_hot = target.ncols() >= 2
        && target
            .rows()
            .into_iter()
            .all(|r| r.iter().all(|&v| v == 0.0 || v == 1.0) && r.sum() == 1.0);
    if !one_hot {
        return None;
    }
    let argmax = |r: ndarray::ArrayView1<f64>| {
        r.iter()
            .enumerate()
            .fold(
                (0, f64::MIN),
                |best, (i, &v)| if v > best.1 { (i, v) } else { best },
            )
            .0
    };
    let hits = y
        .rows()
        .into_iter()
        .zip(target.rows())
        .filter(|(a, b)| argmax(*a) == argmax(*b))
        .count();
    Some(hits as f64 / target.nrows().max(1) as f64)
}

/// What a loss's value is called in a summary, with its scale: squared error on standardised
/// targets for regression, on the targets themselves for a sigmoid output, cross-entropy.
pub fn loss_label(spec: Spec) -> &'static str {
    match (spec.loss, spec.output) {
        (Loss::Mse, Activation::Identity) => "MSE (standardised)",
        (Loss::Mse, _) => "MSE",
        (Loss::CrossEntropy, _) => "cross-entropy",
    }
}
