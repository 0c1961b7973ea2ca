//! What a fit learns to predict: numbers (records x outputs), or one class label per record.

use ndarray::{Array2, ArrayView2};

use crate::data::encode::{sort_class_names, Classes, LabelType, TargetColumn};
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::model::{Activation, Loss};

/// The targets of a fit.
#[derive(Clone, Debug)]
pub enum Targets<'a> {
    /// Numbers, records x outputs, in columns named `names`: regression targets, or with
    /// cross-entropy probabilities in [0, 1] (one sigmoid output each: several labels at once).
    Values {
        values: Matrix<'a>,
        names: Vec<String>,
    },
    /// One class per record.
    Classes(Labels),
}

impl<'a> Targets<'a> {
    /// Numbers in columns `y0`, `y1`, … (`y` for one).
    pub fn values(values: impl Into<Matrix<'a>>) -> Self {
        let values = values.into();
        let names = match values.ncols() {
            1 => vec!["y".to_string()],
            n => (0..n).map(|j| format!("y{j}")).collect(),
        };
        Targets::Values { values, names }
    }

    /// One class label per record, as text; see [`Labels::from_text`].
    pub fn labels<S: AsRef<str>>(labels: &[S]) -> Self {
        Targets::Classes(Labels::from_text(labels))
    }

    /// Records.
    pub fn len(&self) -> usize {
        match self {
            Targets::Values { values, .. } => values.nrows(),
            Targets::Classes(labels) => labels.of_record.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks what the public fields could get wrong: a name per column of numbers, a class
    /// per label index.
    pub fn check(&self) -> Result<()> {
        match self {
            Targets::Values { values, names } if names.len() != values.ncols() => {
                Err(Error::Shape(format!(
                    "{} target names for {} target columns",
                    names.len(),
                    values.ncols()
                )))
            }
            Targets::Values { .. } => Ok(()),
            Targets::Classes(labels) => labels.check(),
        }
    }
}

/// Class labels: the classes in their order and, per record, the index of its class.
#[derive(Clone, Debug, PartialEq)]
pub struct Labels {
    /// What the model calls the target (a CSV's column; `y` for arrays).
    pub column: String,
    pub classes: Vec<String>,
    pub of_record: Vec<usize>,
    pub label_type: LabelType,
}

impl Labels {
    /// Labels given as text, the classes ordered as a CSV's are (numbers in numeric order,
    /// text in lexical order).
    pub fn from_text<S: AsRef<str>>(labels: &[S]) -> Self {
        let mut classes: Vec<String> = labels.iter().map(|l| l.as_ref().to_string()).collect();
        sort_class_names(&mut classes);
        let index: std::collections::HashMap<&str, usize> = classes
            .iter()
            .enumerate()
            .map(|(k, c)| (c.as_str(), k))
            .collect();
        let of_record = labels
            .iter()
            .map(|l| index.get(l.as_ref()).copied().unwrap_or_default())
            .collect();
        Labels {
            column: "y".into(),
            classes,
            of_record,
            label_type: LabelType::Text,
        }
    }

    /// Labels as indices into `classes` (in the caller's order, e.g. NumPy's `unique`).
    pub fn indexed(
        classes: Vec<String>,
        of_record: Vec<usize>,
        label_type: LabelType,
    ) -> Result<Self> {
        let labels = Labels {
            column: "y".into(),
            classes,
            of_record,
            label_type,
        };
        labels.check()?;
        Ok(labels)
    }

    /// Checks that every record's index names one of the classes.
    pub fn check(&self) -> Result<()> {
        match self
            .of_record
            .iter()
            .enumerate()
            .find(|(_, &k)| k >= self.classes.len())
        {
            Some((i, &k)) => Err(Error::Value {
                array: "labels".into(),
                index: vec![i],
                message: format!("class {k} is not one of the {} classes", self.classes.len()),
            }),
            None => Ok(()),
        }
    }
}

/// Targets as a network learns them: the encoded records x outputs (in f64, the trainer judges
/// predictions against them) and how they map back (the encoder's target columns or classes).
pub struct EncodedTargets {
    pub values: Array2<f64>,
    pub columns: Vec<TargetColumn>,
    pub classes: Option<Classes>,
}

/// Encodes `targets` for a network trained with `loss` and `output`; numbers are standardised
/// with `statistics` (their mean and deviation per column) when given.
pub fn encode(
    targets: &Targets,
    loss: Loss,
    output: Option<Activation>,
    statistics: Option<&[(f64, f64)]>,
) -> Result<EncodedTargets> {
    targets.check()?;
    match targets {
        Targets::Values { values, names } => {
            let mut encoded: Array2<f64> = values.to_precision("target")?;
            let columns = names
                .iter()
                .enumerate()
                .map(|(j, name)| {
                    let (mean, std) = statistics
                        .and_then(|s| s.get(j))
                        .copied()
                        .unwrap_or((0.0, 1.0));
                    encoded
                        .column_mut(j)
                        .mapv_inplace(|v| crate::data::encode::standardize(v, mean, std));
                    TargetColumn {
                        column: name.clone(),
                        mean,
                        std,
                    }
                })
                .collect();
            if loss == Loss::CrossEntropy {
                check_probabilities(encoded.view())?;
            }
            Ok(EncodedTargets {
                values: encoded,
                columns,
                classes: None,
            })
        }
        Targets::Classes(labels) => {
            if loss != Loss::CrossEntropy {
                return Err(Error::argument(
                    "--loss",
                    "class labels are learnt with cross-entropy; squared error needs numbers",
                ));
            }
            if labels.classes.len() < 2 {
                return Err(Error::Value {
                    array: "labels".into(),
                    index: Vec::new(),
                    message: format!(
                        "{} class ({}); a classifier needs two or more",
                        labels.classes.len(),
                        labels.classes.join(", ")
                    ),
                });
            }
            let single_output = labels.classes.len() == 2 && output != Some(Activation::Softmax);
            let width = if single_output {
                1
            } else {
                labels.classes.len()
            };
            let mut values = Array2::zeros((labels.of_record.len(), width));
            for (i, &k) in labels.of_record.iter().enumerate() {
                if single_output {
                    values[[i, 0]] = k as f64;
                } else {
                    values[[i, k]] = 1.0;
                }
            }
            Ok(EncodedTargets {
                values,
                columns: Vec::new(),
                classes: Some(Classes {
                    column: labels.column.clone(),
                    names: labels.classes.clone(),
                    single_output,
                    label_type: labels.label_type,
                }),
            })
        }
    }
}

/// Cross-entropy on numbers learns probabilities: each must lie in [0, 1].
fn check_probabilities(values: ArrayView2<f64>) -> Result<()> {
    match values
        .indexed_iter()
        .find(|(_, v)| !(0.0..=1.0).contains(*v))
    {
        None => Ok(()),
        Some(((i, j), v)) => Err(Error::Value {
            array: "target".into(),
            index: vec![i, j],
            message: format!(
                "{v} is not a probability in [0, 1], which cross-entropy learns (give class labels, or 0/1 per label)"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn text_labels_order_their_classes_like_a_csv() {
        let labels = Labels::from_text(&["10", "9", "10", "2"]);
        assert_eq!(labels.classes, ["2", "9", "10"]);
        assert_eq!(labels.of_record, [2, 1, 2, 0]);
        let words = Labels::from_text(&["b", "a", "b"]);
        assert_eq!(words.classes, ["a", "b"]);
        assert!(Labels::indexed(vec!["a".into()], vec![0, 1], LabelType::Text).is_err());
    }

    #[test]
    fn two_classes_take_one_output_and_numbers_their_statistics() {
        let two = encode(
            &Targets::labels(&["no", "yes", "yes"]),
            Loss::CrossEntropy,
            None,
            None,
        )
        .unwrap();
        assert_eq!(two.values, array![[0.0], [1.0], [1.0]]);
        assert!(two.classes.unwrap().single_output);
        let three = encode(
            &Targets::labels(&["a", "b", "c"]),
            Loss::CrossEntropy,
            None,
            None,
        )
        .unwrap();
        assert_eq!(three.values, Array2::<f64>::eye(3));
        let y = array![[1.0f32], [3.0]];
        let numbers = encode(&Targets::values(&y), Loss::Mse, None, Some(&[(2.0, 1.0)])).unwrap();
        assert_eq!(numbers.values, array![[-1.0], [1.0]]);
        assert_eq!(numbers.columns[0].column, "y");
        let err = encode(&Targets::values(&y), Loss::CrossEntropy, None, None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("[1, 0]") && err.contains("probability"),
            "{err}"
        );
        assert!(encode(&Targets::labels(&["a", "b"]), Loss::Mse, None, None).is_err());
    }
}
