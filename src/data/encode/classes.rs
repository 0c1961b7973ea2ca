//! Targets: numbers (standardised for regression) or a column of classes (one-hot, or one
//! sigmoid output for two), fitted on the training rows and encoded for any rows.

use ndarray::{Array2, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

use super::options::PipelineOptions;
use super::stats::{mean_std, standardize};
use crate::data::frame::{quoted, Cell, Frame};
use crate::data::schema::number_error;
use crate::error::Result;

/// A target column and the statistics that map model units back to the data's units.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TargetColumn {
    pub column: String,
    pub mean: f64,
    pub std: f64,
}

/// A target column of classes: their names as found in the training records (numbers in
/// numeric order, text in lexical order), one-hot encoded; two classes with a single sigmoid
/// output are encoded as 1 for the second class, 0 for the first.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Classes {
    pub column: String,
    pub names: Vec<String>,
    pub single_output: bool,
    /// What the labels were before they became names (text from a CSV; numbers or booleans
    /// from arrays), so that a model gives them back as given.
    #[serde(default)]
    pub label_type: LabelType,
}

/// The type of a model's class labels; their names are their text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelType {
    #[default]
    Text,
    Integer,
    Float,
    Bool,
}

/// Sorts distinct class names as a classifier lists its classes: numbers in numeric order,
/// anything else in lexical order.
pub fn sort_class_names(names: &mut Vec<String>) {
    names.sort();
    names.dedup();
    if names.iter().all(|n| n.parse::<i64>().is_ok()) {
        names.sort_by_key(|n| n.parse::<i64>().unwrap_or_default());
    }
}

impl Classes {
    pub fn n_outputs(&self) -> usize {
        if self.single_output {
            1
        } else {
            self.names.len()
        }
    }

    /// The class each row of outputs predicts: the largest output, or for a single sigmoid
    /// output the second class from 0.5 on.
    pub fn predicted(&self, y: ArrayView2<f64>) -> Vec<usize> {
        y.rows()
            .into_iter()
            .map(|row| {
                if self.single_output {
                    usize::from(row[0] >= 0.5)
                } else {
                    row.iter()
                        .enumerate()
                        .fold((0, f64::NEG_INFINITY), |best, (i, &v)| {
                            if v > best.1 {
                                (i, v)
                            } else {
                                best
                            }
                        })
                        .0
                }
            })
            .collect()
    }

    /// Each class's probability from a row of outputs.
    pub fn probabilities(&self, row: ArrayView1<f64>) -> Vec<f64> {
        if self.single_output {
            vec![1.0 - row[0], row[0]]
        } else {
            row.to_vec()
        }
    }
}

/// The classes of column `t` in the training rows, sorted (numerically when they are all
/// integers), with how two of them are encoded. Fewer than two is an error, and so is a
/// column with more than `--max-categories`.
pub fn fit_classes(
    frame: &Frame,
    t: usize,
    train_rows: &[usize],
    options: &PipelineOptions,
) -> Result<Classes> {
    let column = frame.names[t].clone();
    let mut names: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for &r in train_rows {
        let cell = frame.cell(r, t);
        let name = match cell {
            Cell::Text(text) => text,
            _ => &cell.to_text(),
        };
        if !seen.contains(name) {
            seen.insert(name.to_string());
            names.push(name.to_string());
            if names.len() > options.max_categories {
                return Err(frame.file_error(format!(
                    "target `{column}` has more than {} classes in the training records (over --max-categories {}); is it really a class label?",
                    options.max_categories, options.max_categories
                )));
            }
        }
    }
    sort_class_names(&mut names);
    if names.len() < 2 {
        return Err(frame.file_error(format!(
            "target `{column}` has {} class in the training records ({}); a classifier needs two or more",
            names.len(),
            names.join(", ")
        )));
    }
    let single_output =
        names.len() == 2 && options.output != Some(crate::model::Activation::Softmax);
    Ok(Classes {
        column,
        names,
        single_output,
        label_type: LabelType::Text,
    })
}

/// A numeric target's statistics: the training mean and deviation when standardised, else
/// 0 and 1.
pub fn fit_target(
    frame: &Frame,
    t: usize,
    train_rows: &[usize],
    standardize_targets: bool,
) -> Result<TargetColumn> {
    let column = frame.names[t].clone();
    let (mean, std) = if standardize_targets {
        let values: Vec<f64> = train_rows
            .iter()
            .filter_map(|&r| frame.columns[t].number(r))
            .collect();
        mean_std(&column, &values)?
    } else {
        (0.0, 1.0)
    };
    Ok(TargetColumn { column, mean, std })
}

impl Classes {
    /// One-hot rows (or the second class's indicator) of the classes of column `c` at `rows`;
    /// a class the model does not know is an error naming its cell.
    pub fn encode(&self, frame: &Frame, c: usize, rows: &[usize]) -> Result<Array2<f64>> {
        let index: std::collections::HashMap<&str, usize> = self
            .names
            .iter()
            .enumerate()
            .map(|(k, n)| (n.as_str(), k))
            .collect();
        let mut target = Array2::zeros((rows.len(), self.n_outputs()));
        for (i, &r) in rows.iter().enumerate() {
            let cell = frame.cell(r, c);
            let label = cell.to_text();
            let k = index.get(label.as_str()).copied().ok_or_else(|| {
                frame.cell_error(
                    r,
                    c,
                    format!(
                        "class `{}` is not among the {} classes of the training records ({})",
                        quoted(&label),
                        self.names.len(),
                        self.names.join(", ")
                    ),
                )
            })?;
            if self.single_output {
                target[[i, 0]] = k as f64;
            } else {
                target[[i, k]] = 1.0;
            }
        }
        Ok(target)
    }
}

/// Numeric targets of columns `columns` at `rows`, standardised with their statistics.
pub fn encode_targets(
    frame: &Frame,
    columns: &[usize],
    targets: &[TargetColumn],
    rows: &[usize],
) -> Result<Array2<f64>> {
    let mut out = Array2::zeros((rows.len(), targets.len()));
    for (j, (&c, t)) in columns.iter().zip(targets).enumerate() {
        let column = &frame.columns[c];
        for (i, &r) in rows.iter().enumerate() {
            let v = column
                .number(r)
                .ok_or_else(|| number_error(frame, r, c, "target "))?;
            out[[i, j]] = standardize(v, t.mean, t.std);
        }
    }
    Ok(out)
}
