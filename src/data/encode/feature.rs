//! Each kind of feature fits itself on the training rows and encodes any rows into its
//! columns of the inputs: numbers standardised, categories one-hot, a date's year and month.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use ndarray::ArrayViewMut2;
use serde::{Deserialize, Serialize};

use super::options::{Missing, PipelineOptions, MISSING};
use super::stats::{mean_std, median, standardize};
use crate::data::frame::{Cell, Frame, EMPTY, UNTRACKED};
use crate::data::schema::number_error;
use crate::error::Result;
use crate::float::Float;
use crate::guard::numeric::Precision;

/// One input column and how it becomes features.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Feature {
    /// `(value - mean) / std`; an empty cell is `fill` (the training median or most frequent
    /// value), or the mean when there is none.
    Numeric {
        column: String,
        mean: f64,
        std: f64,
        #[serde(default)]
        fill: Option<f64>,
    },
    /// One-hot over the training split's levels; an unseen level is all zeros. An empty cell
    /// is `fill` (the most frequent level), or the level `(missing)` when there is none.
    Categorical {
        column: String,
        levels: Vec<String>,
        #[serde(default)]
        fill: Option<String>,
    },
    /// The date's year, standardised.
    DateYear { column: String, mean: f64, std: f64 },
    /// The date's month, one-hot over 1..=12.
    DateMonth { column: String },
}

impl Feature {
    pub fn width(&self) -> usize {
        match self {
            Feature::Numeric { .. } | Feature::DateYear { .. } => 1,
            Feature::Categorical { levels, .. } => levels.len(),
            Feature::DateMonth { .. } => 12,
        }
    }

    pub fn names(&self) -> Vec<String> {
        match self {
            Feature::Numeric { column, .. } => vec![column.clone()],
            Feature::Categorical { column, levels, .. } => {
                levels.iter().map(|l| format!("{column}={l}")).collect()
            }
            Feature::DateYear { column, .. } => vec![format!("{column}.year")],
            Feature::DateMonth { column } => {
                (1..=12).map(|m| format!("{column}.month={m}")).collect()
            }
        }
    }

    /// The column the feature reads.
    pub fn column(&self) -> &str {
        match self {
            Feature::Numeric { column, .. }
            | Feature::Categorical { column, .. }
            | Feature::DateYear { column, .. }
            | Feature::DateMonth { column } => column,
        }
    }
}

/// The error for a record whose standardised feature `feature` (`v`) is beyond `precision`.
pub(crate) fn beyond_precision(
    frame: &Frame,
    r: usize,
    feature: &str,
    v: f64,
    precision: Precision,
) -> crate::Error {
    frame.file_error(format!(
        "{} {}: feature `{feature}`: {v:e} standard deviations from the training mean is beyond {}'s range (±{:.3e}), which the model computes in: the record is far outside the training data",
        frame.lines.unit,
        frame.lines.get(r),
        precision.name(),
        precision.largest()
    ))
}

/// What fitting a feature sees: the training rows of a frame, their dates, the options.
pub struct Fitting<'a> {
    pub frame: &'a Frame,
    pub rows: &'a [usize],
    /// The date of every frame row, when there is a date column.
    pub dates: Option<&'a [NaiveDate]>,
    pub options: &'a PipelineOptions,
}

impl Fitting<'_> {
    /// Cell (`r`, `c`) as text, an empty weekday cell being its date's weekday.
    fn deduced(&self, r: usize, c: usize, weekday: bool) -> String {
        match (self.frame.cell(r, c), self.dates) {
            (Cell::Empty, Some(dates)) if weekday => dates[r].weekday().to_string(),
            (cell, _) => cell.to_text(),
        }
    }

    /// The training split's most frequent text of column `c` (the first in sorted order on
    /// ties: deterministic).
    fn most_frequent_text(&self, c: usize, weekday: bool) -> Option<String> {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for &r in self.rows {
            let value = self.deduced(r, c, weekday);
            if !value.is_empty() {
                *counts.entry(value).or_default() += 1;
            }
        }
        let top = counts.values().copied().max()?;
        counts.into_iter().find(|(_, n)| *n == top).map(|(v, _)| v)
    }

    /// The training split's most frequent number of column `c` (the smallest on ties, as
    /// scikit-learn's imputer picks).
    fn most_frequent_number(&self, values: &[f64]) -> Option<f64> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mut best: Option<(f64, usize)> = None;
        for run in sorted.chunk_by(|a, b| a == b) {
            if best.is_none_or(|(_, n)| run.len() > n) {
                best = Some((run[0], run.len()));
            }
        }
        best.map(|(v, _)| v)
    }

    /// A numeric column: mean, deviation and the fill of empty cells.
    pub fn numeric(&self, c: usize) -> Result<Feature> {
        let column = &self.frame.columns[c];
        let values: Vec<f64> = match column.only_numbers() {
            Some(numbers) => self
                .rows
                .iter()
                .map(|&r| numbers[r])
                .filter(|v| !v.is_nan())
                .collect(),
            None => self.rows.iter().filter_map(|&r| column.number(r)).collect(),
        };
        let name = self.frame.names[c].clone();
        let (mean, std) = mean_std(&name, &values)?;
        let fill = match self.options.missing {
            Missing::Median => median(&values),
            Missing::MostFrequent => self.most_frequent_number(&values),
            _ => None,
        };
        Ok(Feature::Numeric {
            column: name,
            mean,
            std,
            fill,
        })
    }

    /// A categorical column: its training levels (sorted) and the fill of empty cells.
    pub fn categorical(&self, c: usize, weekday: bool) -> Result<Feature> {
        let name = self.frame.names[c].clone();
        let fill = match self.options.missing {
            Missing::MostFrequent => self.most_frequent_text(c, weekday),
            _ => None,
        };
        let empty_level = fill.clone().unwrap_or_else(|| MISSING.to_string());
        let column = &self.frame.columns[c];
        let mut levels: Vec<String> = match (&column.text, self.dates.is_some() && weekday) {
            // Fast path: each level once, from the codes of the training rows.
            (Some(text), false) => {
                let mut seen = vec![false; text.levels.len()];
                let mut levels = Vec::new();
                let mut empty = false;
                for &r in self.rows {
                    match text.codes[r] {
                        EMPTY => empty = true,
                        UNTRACKED => levels.push(column.cell(r).to_text()),
                        k if !seen[k as usize] => {
                            seen[k as usize] = true;
                            levels.push(text.levels[k as usize].clone());
                        }
                        _ => {}
                    }
                }
                if empty {
                    levels.push(empty_level.clone());
                }
                levels
            }
            _ => self
                .rows
                .iter()
                .map(|&r| match self.deduced(r, c, weekday) {
                    empty if empty.is_empty() => empty_level.clone(),
                    value => value,
                })
                .collect(),
        };
        levels.sort();
        levels.dedup();
        if levels.len() > self.options.max_categories {
            return Err(self.frame.file_error(format!(
                "column `{name}` has {} distinct values in the training records; one-hot encoding makes one feature per value (over --max-categories {}): drop it with --drop {name}, or raise --max-categories",
                levels.len(),
                self.options.max_categories
            )));
        }
        Ok(Feature::Categorical {
            column: name,
            levels,
            fill,
        })
    }

    /// A date column: the year standardised, and the month one-hot.
    pub fn date(&self, c: usize) -> Result<[Feature; 2]> {
        let name = self.frame.names[c].clone();
        let years: Vec<f64> = self
            .dates
            .map(|d| self.rows.iter().map(|&r| f64::from(d[r].year())).collect())
            .unwrap_or_default();
        let (mean, std) = mean_std(&name, &years)?;
        Ok([
            Feature::DateYear {
                column: name.clone(),
                mean,
                std,
            },
            Feature::DateMonth { column: name },
        ])
    }
}

/// What encoding a feature sees: rows of a frame, their dates, and the encoder's policy.
#[derive(Clone, Copy)]
pub struct Encoding<'a> {
    pub frame: &'a Frame,
    pub rows: &'a [usize],
    /// The date of each of `rows`, when the encoder has a date.
    pub dates: Option<&'a [NaiveDate]>,
    pub missing: Missing,
}

impl Encoding<'_> {
    /// An empty cell at (`row`, `column`) under a policy that fills none is an error naming
    /// it (records from a file the model did not train on: `predict`, `--val`, `--test`).
    fn check_fillable(&self, row: usize, column: usize) -> Result<()> {
        match self.missing {
            Missing::Error | Missing::Drop => Err(self.frame.cell_error(
                row,
                column,
                format!(
                    "the cell is empty, and the model was trained with --missing {}, which fills none",
                    self.missing.name()
                ),
            )),
            _ => Ok(()),
        }
    }
}

impl Feature {
    /// Writes the feature of `at.rows` from frame column `c` into `x[.., at..at + width]`.
    pub fn encode<T: Float>(
        &self,
        at: &Encoding,
        c: usize,
        weekday: bool,
        x: &mut ArrayViewMut2<T>,
    ) -> Result<()> {
        let column = &at.frame.columns[c];
        // A standardised value beyond the model's precision (a record far outside the
        // training data) is an error naming the record, never an infinity.
        let value = |v: f64, r: usize| -> Result<T> {
            let precision = Precision::of::<T>();
            match T::from_f64(v).filter(|t| t.is_finite()) {
                Some(t) => Ok(t),
                None => Err(beyond_precision(
                    at.frame,
                    r,
                    &at.frame.names[c],
                    v,
                    precision,
                )),
            }
        };
        match self {
            Feature::Numeric {
                mean, std, fill, ..
            } => {
                let numbers = column.only_numbers();
                for (i, &r) in at.rows.iter().enumerate() {
                    let number = match numbers {
                        Some(numbers) => Some(numbers[r]).filter(|v| !v.is_nan()),
                        None => column.number(r),
                    };
                    let v = match number {
                        Some(v) => standardize(v, *mean, *std),
                        None if column.cell(r).is_empty() => {
                            at.check_fillable(r, c)?;
                            fill.map_or(0.0, |v| standardize(v, *mean, *std))
                        }
                        None => return Err(number_error(at.frame, r, c, "")),
                    };
                    x[[i, 0]] = value(v, r)?;
                }
            }
            Feature::Categorical { levels, fill, .. } => {
                let index: std::collections::HashMap<&str, usize> = levels
                    .iter()
                    .enumerate()
                    .map(|(k, l)| (l.as_str(), k))
                    .collect();
                let position = |text: &str| index.get(text).copied();
                let fill_position = position(fill.as_deref().unwrap_or(MISSING));
                // Each frame level's position among the feature's, found once.
                let known: Vec<Option<usize>> = column
                    .text
                    .as_ref()
                    .map_or_else(Vec::new, |t| t.levels.iter().map(|l| position(l)).collect());
                for (i, &r) in at.rows.iter().enumerate() {
                    let k = match (column.cell(r), at.dates) {
                        (Cell::Empty, Some(dates)) if weekday => {
                            position(&dates[i].weekday().to_string())
                        }
                        (Cell::Empty, _) => {
                            at.check_fillable(r, c)?;
                            fill_position
                        }
                        (Cell::Text(_), _) => column
                            .text
                            .as_ref()
                            .and_then(|t| known[t.codes[r] as usize]),
                        (cell, _) => position(&cell.to_text()),
                    };
                    if let Some(k) = k {
                        x[[i, k]] = T::one();
                    }
                }
            }
            Feature::DateYear { mean, std, .. } => {
                for (i, date) in at.dates.unwrap_or_default().iter().enumerate() {
                    x[[i, 0]] =
                        value(standardize(f64::from(date.year()), *mean, *std), at.rows[i])?;
                }
            }
            Feature::DateMonth { .. } => {
                for (i, date) in at.dates.unwrap_or_default().iter().enumerate() {
                    x[[i, date.month0() as usize]] = T::one();
                }
            }
        }
        Ok(())
    }
}
