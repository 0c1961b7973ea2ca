//! The encoder: fitted on the training rows of a frame (each feature kind fits itself, see
//! [`feature`]), saved with a model, and applied to any frame with the same columns, straight
//! into the precision the model trains in.

pub mod classes;
pub mod feature;
pub mod options;
pub mod stats;

use std::borrow::Cow;

use ndarray::{s, Array2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use classes::{sort_class_names, Classes, LabelType, TargetColumn};
pub use feature::Feature;
pub(crate) use options::MISSING_HINT;
pub use options::{Classify, Missing, PipelineOptions, DEFAULT_MAX_CATEGORIES, MISSING};
pub(crate) use stats::{columns_mean_std, mean_std, standardize};

use super::frame::{Column, Frame, ReadPlan, Role};
use super::schema::{dates_at, parse_hour, time_key, Schema};
use super::Dataset;
use crate::error::Result;
use crate::float::Float;
use crate::guard::numeric::Precision;
use crate::matrix::Values;
use feature::{Encoding, Fitting};

/// Everything needed to turn a CSV into model inputs the same way again (saved with a model).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Encoder {
    pub features: Vec<Feature>,
    pub targets: Vec<TargetColumn>,
    pub date: Option<String>,
    /// Categorical columns holding the date's weekday, refilled from the date when empty.
    pub weekday_columns: Vec<String>,
    /// A column of clock hours (`6am`, `13:00`) that orders records within a day.
    pub hour: Option<String>,
    /// The target as classes (cross-entropy on a text or integer column); `targets` is then
    /// empty.
    #[serde(default)]
    pub classes: Option<Classes>,
    /// What empty cells become (models from before `--missing`: `mean`).
    #[serde(default = "Missing::legacy")]
    pub missing: Missing,
}

impl Encoder {
    /// Fits the statistics and levels on the training rows only.
    pub fn fit(
        frame: &Frame,
        schema: &Schema,
        options: &PipelineOptions,
        train_rows: &[usize],
    ) -> Result<Encoder> {
        let fitting = Fitting {
            frame,
            rows: train_rows,
            dates: schema.dates.as_deref(),
            options,
        };
        // Each column fits on its own, on every core; in column order.
        let fitted: Vec<Result<Vec<Feature>>> = (0..frame.names.len())
            .into_par_iter()
            .map(|c| {
                Ok(if schema.numeric.contains(&c) {
                    vec![fitting.numeric(c)?]
                } else if schema.categorical.contains(&c) {
                    vec![fitting.categorical(c, schema.weekday_columns.contains(&c))?]
                } else if Some(c) == schema.date {
                    fitting.date(c)?.into()
                } else {
                    Vec::new()
                })
            })
            .collect();
        let mut features = Vec::new();
        for fitted in fitted {
            features.extend(fitted?);
        }
        let name = |c: usize| frame.names[c].clone();
        let (classes, targets) = if schema.class_target {
            let t = schema.targets[0];
            let classes = classes::fit_classes(frame, t, train_rows, options)?;
            (Some(classes), Vec::new())
        } else {
            let targets = schema
                .targets
                .iter()
                .map(|&t| classes::fit_target(frame, t, train_rows, options.standardize_targets))
                .collect::<Result<Vec<_>>>()?;
            (None, targets)
        };
        Ok(Encoder {
            features,
            targets,
            date: schema.date.map(name),
            weekday_columns: schema.weekday_columns.iter().map(|&c| name(c)).collect(),
            hour: schema.hour.map(name),
            classes,
            missing: options.missing,
        })
    }

    /// The encoder of a model trained from arrays: each feature a column of numbers, used as
    /// given or, with `statistics` (one mean and deviation per feature), standardised; the
    /// targets as `classes`, or numbers in columns `targets` (each with its mean and deviation:
    /// 0 and 1 for targets used as given). Empty cells are errors.
    pub fn for_arrays(
        feature_names: &[String],
        statistics: Option<&[(f64, f64)]>,
        targets: Vec<TargetColumn>,
        classes: Option<Classes>,
    ) -> Encoder {
        let features = feature_names
            .iter()
            .enumerate()
            .map(|(j, column)| {
                let (mean, std) = statistics
                    .and_then(|s| s.get(j))
                    .copied()
                    .unwrap_or((0.0, 1.0));
                Feature::Numeric {
                    column: column.clone(),
                    mean,
                    std,
                    fill: None,
                }
            })
            .collect();
        Encoder {
            features,
            targets: if classes.is_some() {
                Vec::new()
            } else {
                targets
            },
            date: None,
            weekday_columns: Vec::new(),
            hour: None,
            classes,
            missing: Missing::Error,
        }
    }

    /// The mean and deviation of each feature when every feature is a column of numbers (a
    /// model that takes arrays), in order; `None` when some feature is made from text or a date.
    pub fn numeric_statistics(&self) -> Option<Vec<(f64, f64)>> {
        self.features
            .iter()
            .map(|f| match f {
                Feature::Numeric { mean, std, .. } => Some((*mean, *std)),
                _ => None,
            })
            .collect()
    }

    /// The columns a model reads from a file, in order (a date's once).
    pub fn input_columns(&self) -> Vec<String> {
        let mut columns: Vec<String> = Vec::new();
        for feature in &self.features {
            let column = match feature {
                Feature::Numeric { column, .. }
                | Feature::Categorical { column, .. }
                | Feature::DateYear { column, .. }
                | Feature::DateMonth { column } => column,
            };
            if !columns.contains(column) {
                columns.push(column.clone());
            }
        }
        columns
    }

    /// The network's outputs: one per numeric target, or the classes' outputs.
    pub fn n_outputs(&self) -> usize {
        match &self.classes {
            Some(c) => c.n_outputs(),
            None => self.targets.len(),
        }
    }

    /// The column(s) the model predicts.
    pub fn target_columns(&self) -> Vec<String> {
        match &self.classes {
            Some(c) => vec![c.column.clone()],
            None => self.target_names(),
        }
    }

    /// Checks what a model file's metadata could get wrong (every statistic finite, every
    /// spread positive, at least one feature and one target), naming the column.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let statistics = |column: &str, mean: f64, std: f64| {
            if mean.is_finite() && std.is_finite() && std > 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "column `{column}` has mean {mean} and standard deviation {std}; a standard deviation must be finite and above 0"
                ))
            }
        };
        if self.features.is_empty() {
            return Err("the encoder makes no features".into());
        }
        match &self.classes {
            Some(c) if c.names.len() < 2 || (c.single_output && c.names.len() != 2) => {
                return Err(format!(
                    "class column `{}` has classes {:?}",
                    c.column, c.names
                ));
            }
            Some(_) => {}
            None if self.targets.is_empty() => {
                return Err("the encoder has no target column".into());
            }
            None => {}
        }
        for feature in &self.features {
            match feature {
                Feature::Numeric {
                    column, mean, std, ..
                }
                | Feature::DateYear { column, mean, std } => statistics(column, *mean, *std)?,
                Feature::Categorical { column, levels, .. } if levels.is_empty() => {
                    return Err(format!("categorical column `{column}` has no levels"));
                }
                Feature::Categorical { .. } | Feature::DateMonth { .. } => {}
            }
        }
        self.targets
            .iter()
            .try_for_each(|t| statistics(&t.column, t.mean, t.std))
    }

    pub fn n_features(&self) -> usize {
        self.features.iter().map(Feature::width).sum()
    }

    pub fn feature_names(&self) -> Vec<String> {
        self.features.iter().flat_map(Feature::names).collect()
    }

    pub fn target_names(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.column.clone()).collect()
    }

    /// Model units back to the data's units (e.g. rides per hour), column by column.
    pub fn destandardize(&self, y: &Array2<f64>) -> Array2<f64> {
        let mut out = y.clone();
        for (mut col, t) in out.columns_mut().into_iter().zip(&self.targets) {
            col.mapv_inplace(|v| v * t.std + t.mean);
        }
        out
    }

    /// How a reader stores the columns this encoder reads: categories, the date and the
    /// hour as text, numbers inferred, targets as numbers and text, the rest skipped.
    pub fn read_plan(&self) -> ReadPlan {
        let mut plan = ReadPlan::infer_all();
        plan.default = Role::Skip;
        for feature in &self.features {
            let role = match feature {
                Feature::Numeric { .. } => Role::Infer,
                _ => Role::Text,
            };
            plan.roles.insert(feature.column().to_string(), role);
        }
        for column in self.hour.iter().chain(&self.date) {
            plan.roles.insert(column.clone(), Role::Text);
        }
        for column in self.target_columns() {
            plan.roles.insert(column, Role::Target);
        }
        plan.levels_kept = self.classes.as_ref().map_or(0, |c| c.names.len() + 1);
        plan
    }

    /// Encodes `rows` of `frame`, the inputs in `precision`. With `with_targets` every target
    /// column must be present (rows with an empty target must not be among `rows`); without,
    /// targets are left empty (0 wide).
    pub fn transform(
        &self,
        frame: &Frame,
        rows: &[usize],
        with_targets: bool,
        precision: Precision,
    ) -> Result<Dataset> {
        let mut sets = self.encode_parts(Cow::Borrowed(frame), &[rows], with_targets, precision)?;
        Ok(sets.remove(0))
    }

    /// Encodes several parts of `frame` (with their targets), consuming it: feature by
    /// feature, and each frame column is released as soon as no feature still reads it, so
    /// the typed columns and the encoded tables are never whole at the same time.
    pub fn transform_owned(
        &self,
        frame: Frame,
        parts: &[&[usize]],
        precision: Precision,
    ) -> Result<Vec<Dataset>> {
        self.encode_parts(Cow::Owned(frame), parts, true, precision)
    }

    /// The columns the encoder reads in `frame`: each feature's, the date's and the hour's.
    /// A column the file lacks is the file's fault (a model applied to other data), not a
    /// flag's.
    fn columns(&self, frame: &Frame) -> Result<(Vec<usize>, Option<usize>, Option<usize>)> {
        let date = self
            .date
            .as_deref()
            .map(|d| find(frame, d, "its date"))
            .transpose()?;
        let hour = self
            .hour
            .as_deref()
            .map(|h| find(frame, h, "its clock hour"))
            .transpose()?;
        let features = self
            .features
            .iter()
            .map(|f| find(frame, f.column(), "a feature"))
            .collect::<Result<Vec<_>>>()?;
        Ok((features, date, hour))
    }

    /// The targets of `rows`: class indicators or (standardised) numbers.
    fn targets(&self, frame: &Frame, rows: &[usize]) -> Result<Array2<f64>> {
        match &self.classes {
            Some(classes) => classes.encode(
                frame,
                find(frame, &classes.column, "its class label")?,
                rows,
            ),
            None => {
                let columns = self
                    .targets
                    .iter()
                    .map(|t| find(frame, &t.column, "a target"))
                    .collect::<Result<Vec<_>>>()?;
                classes::encode_targets(frame, &columns, &self.targets, rows)
            }
        }
    }

    /// Everything of each part but its inputs, then the inputs feature by feature (columns
    /// of every part; blocks of records on every core). An owned frame releases each column
    /// once every feature that reads it is encoded; a borrowed one stays whole. The error is
    /// the first bad cell, in record order, of the first feature that has one.
    fn encode_parts(
        &self,
        mut frame: Cow<Frame>,
        parts: &[&[usize]],
        with_targets: bool,
        precision: Precision,
    ) -> Result<Vec<Dataset>> {
        let (columns, date_col, hour_col) = self.columns(&frame)?;
        let mut sets = Vec::with_capacity(parts.len());
        let mut part_dates = Vec::with_capacity(parts.len());
        for rows in parts {
            let f = &*frame;
            let dates = date_col
                .map(|d| dates_at(f, d, rows.iter().copied()))
                .transpose()?;
            let time = dates.as_ref().map(|dates| {
                dates
                    .iter()
                    .zip(rows.iter())
                    .map(|(&date, &r)| {
                        let hour = hour_col.and_then(|h| parse_hour(&f.cell(r, h).to_text()));
                        time_key(date, hour)
                    })
                    .collect()
            });
            let target = match with_targets {
                true => self.targets(f, rows)?,
                false => Array2::zeros((rows.len(), 0)),
            };
            sets.push(Dataset {
                x: Values::zeros_column_major(precision, rows.len(), self.n_features()),
                target,
                source: f.source.clone(),
                lines: f.lines.select(rows),
                time,
            });
            part_dates.push(dates);
        }
        let mut at = 0;
        for (i, (feature, &c)) in self.features.iter().zip(&columns).enumerate() {
            let width = feature.width();
            let weekday = self.weekday_columns.iter().any(|w| w == feature.column());
            for ((set, rows), dates) in sets.iter_mut().zip(parts).zip(&part_dates) {
                let encoding = Encoding {
                    frame: &frame,
                    rows,
                    dates: dates.as_deref(),
                    missing: self.missing,
                };
                match &mut set.x {
                    Values::F32(x) => encode_feature(
                        feature,
                        &encoding,
                        c,
                        weekday,
                        x.slice_mut(s![.., at..at + width]),
                    )?,
                    Values::F64(x) => encode_feature(
                        feature,
                        &encoding,
                        c,
                        weekday,
                        x.slice_mut(s![.., at..at + width]),
                    )?,
                    Values::Mapped(_) => {
                        return Err(crate::Error::Shape(
                            "mapped records are encoded as they are read, not written".into(),
                        ))
                    }
                }
            }
            at += width;
            let still_read =
                columns[i + 1..].contains(&c) || [date_col, hour_col].contains(&Some(c));
            if let (false, Cow::Owned(frame)) = (still_read, &mut frame) {
                frame.columns[c] = Column::default();
            }
        }
        Ok(sets)
    }
}

/// The index of column `name`, which the encoder reads as `role`.
fn find(frame: &Frame, name: &str, role: &str) -> Result<usize> {
    frame.column(name, "--data").map_err(|_| {
        frame.file_error(format!(
            "no column `{name}`, which the encoder reads as {role}; the columns are {}",
            frame.some_columns()
        ))
    })
}

/// Writes one feature of `encoding.rows` into `x` (its columns of the inputs), blocks of
/// records on every core; the first error in record order is the one reported.
fn encode_feature<T: Float>(
    feature: &Feature,
    encoding: &Encoding,
    c: usize,
    weekday: bool,
    mut x: ndarray::ArrayViewMut2<T>,
) -> Result<()> {
    const RECORDS: usize = 1 << 15;
    let results: Vec<Result<()>> = x
        .axis_chunks_iter_mut(Axis(0), RECORDS)
        .into_par_iter()
        .enumerate()
        .map(|(block, mut x)| {
            let range = block * RECORDS..(block * RECORDS + x.nrows());
            let part = Encoding {
                rows: &encoding.rows[range.clone()],
                dates: encoding.dates.map(|d| &d[range]),
                ..*encoding
            };
            feature.encode(&part, c, weekday, &mut x)
        })
        .collect();
    results.into_iter().collect()
}
