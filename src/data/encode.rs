//! Typing and encoding columns: numbers standardised with training-split statistics, text
//! categories one-hot, a date turned into a standardised year and a one-hot month, and the
//! empty-cell policy of `data/mod.rs`.

use std::collections::HashSet;

use chrono::{Datelike, NaiveDate};
use ndarray::{Array2, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

use super::{Dataset, Table};
use crate::error::{Error, Result};

/// The level an empty categorical cell becomes.
pub const MISSING: &str = "(missing)";

/// What the user said about the columns.
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    pub targets: Vec<String>,
    pub categorical: Vec<String>,
    pub drop: Vec<String>,
    pub date: Option<String>,
    /// Standardise the targets (regression, identity output); sigmoid targets stay in [0, 1].
    pub standardize_targets: bool,
    /// A categorical column with more distinct values than this is refused (one-hot encoding
    /// it would make one feature per value: a column of IDs is a matrix of records squared).
    pub max_categories: usize,
    /// Cross-entropy training: a single target column of text or integers is a set of
    /// classes (one-hot encoded), and numeric targets must lie in [0, 1].
    pub classify: bool,
    /// The output the user asked for (`--output`), which decides how two classes are encoded:
    /// one sigmoid output (the default) or a two-way softmax.
    pub output: Option<crate::model::Activation>,
    /// What empty cells become.
    pub missing: Missing,
}

/// The default of [`PipelineOptions::max_categories`] (`--max-categories`).
pub const DEFAULT_MAX_CATEGORIES: usize = 1000;

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            targets: Vec::new(),
            categorical: Vec::new(),
            drop: Vec::new(),
            date: None,
            standardize_targets: false,
            max_categories: DEFAULT_MAX_CATEGORIES,
            classify: false,
            output: None,
            missing: Missing::Error,
        }
    }
}

/// What an empty feature cell becomes (`--missing`). A categorical column holding the date's
/// weekday is refilled from the date under every policy: that is the cell's value, not a guess.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Missing {
    /// An empty cell is an error naming its line and column (and an empty target too).
    #[default]
    Error,
    /// Records with an empty feature or target cell are left out (and counted).
    Drop,
    /// Numbers: the training mean; categories: their own level, `(missing)`.
    Mean,
    /// Numbers: the training median; categories: their own level, `(missing)`.
    Median,
    /// The training split's most frequent value, numbers and categories alike.
    MostFrequent,
}

impl Missing {
    /// The policy of models saved before `--missing` existed.
    fn legacy() -> Self {
        Missing::Mean
    }

    pub fn name(self) -> &'static str {
        match self {
            Missing::Error => "error",
            Missing::Drop => "drop",
            Missing::Mean => "mean",
            Missing::Median => "median",
            Missing::MostFrequent => "most-frequent",
        }
    }
}

/// The hint of an empty cell's error.
const MISSING_HINT: &str =
    "choose what empty cells become with --missing drop|mean|median|most-frequent";

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
    fn width(&self) -> usize {
        match self {
            Feature::Numeric { .. } | Feature::DateYear { .. } => 1,
            Feature::Categorical { levels, .. } => levels.len(),
            Feature::DateMonth { .. } => 12,
        }
    }

    fn names(&self) -> Vec<String> {
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
}

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

/// Column roles before any statistics: what `Encoder::fit` needs besides the training rows.
#[derive(Clone, Debug)]
pub struct Schema {
    numeric: Vec<usize>,
    categorical: Vec<usize>,
    targets: Vec<usize>,
    date: Option<usize>,
    weekday_columns: Vec<usize>,
    hour: Option<usize>,
    /// The target column is a set of classes (see `PipelineOptions::classify`).
    class_target: bool,
    /// Rows whose targets are all present.
    pub usable_rows: Vec<usize>,
    /// The parsed date of each row, when there is a date column.
    pub dates: Option<Vec<NaiveDate>>,
}

fn parse_number(cell: &str) -> Option<f64> {
    cell.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// A cell written as a number that float64 cannot hold (`1e400`): an error, never silently
/// infinity or text. The words `inf` and `nan` are text here, like any other word.
fn overflows(cell: &str) -> bool {
    cell.bytes().any(|b| b.is_ascii_digit()) && cell.parse::<f64>().is_ok_and(|v| !v.is_finite())
}

fn number_error(table: &Table, row: usize, column: usize, what: &str) -> Error {
    let raw = &table.rows[row][column];
    let cell = quoted(raw);
    let message = if overflows(raw) {
        format!("{what}`{cell}` is beyond float64's range (±1.8e308)")
    } else {
        format!("{what}`{cell}` is not a number")
    };
    cell_error(table, row, column, message)
}

fn parse_date(cell: &str) -> Option<NaiveDate> {
    ["%Y-%m-%d", "%Y/%m/%d"]
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(cell, f).ok())
}

/// `6am` -> 6, `12am` -> 0, `12pm` -> 12, `1pm` -> 13, `13:00` -> 13.
pub fn parse_hour(cell: &str) -> Option<u32> {
    let lower = cell.to_ascii_lowercase();
    if let Some((h, _)) = lower.split_once(':') {
        return h.parse::<u32>().ok().filter(|h| *h < 24);
    }
    let (digits, pm) = match (lower.strip_suffix("am"), lower.strip_suffix("pm")) {
        (Some(d), _) => (d, false),
        (_, Some(d)) => (d, true),
        _ => return None,
    };
    let h = digits
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|h| (1..=12).contains(h))?;
    Some(h % 12 + if pm { 12 } else { 0 })
}

fn weekday_matches(cell: &str, date: NaiveDate) -> bool {
    let full = date.weekday().to_string(); // "Mon"
    let name = match date.weekday() {
        chrono::Weekday::Mon => "monday",
        chrono::Weekday::Tue => "tuesday",
        chrono::Weekday::Wed => "wednesday",
        chrono::Weekday::Thu => "thursday",
        chrono::Weekday::Fri => "friday",
        chrono::Weekday::Sat => "saturday",
        chrono::Weekday::Sun => "sunday",
    };
    let c = cell.to_ascii_lowercase();
    c == full.to_ascii_lowercase() || c == name
}

/// A cell as messages quote it: whole when short, else its start (a cell may be megabytes).
fn quoted(cell: &str) -> String {
    const MAX: usize = 40;
    match cell.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &cell[..end]),
        None => cell.to_string(),
    }
}

fn cell_error(table: &Table, row: usize, column: usize, message: String) -> Error {
    table.file_error(format!(
        "line {}, column {} (`{}`): {message}",
        table.lines[row],
        column + 1,
        table.columns[column]
    ))
}

impl Schema {
    /// The class label of each table row, when the target is a set of classes: what a
    /// stratified split groups by.
    pub fn class_labels<'t>(&self, table: &'t Table) -> Option<Vec<&'t str>> {
        let t = *self.targets.first()?;
        self.class_target
            .then(|| table.rows.iter().map(|row| row[t].as_str()).collect())
    }

    /// Feature columns that give the target away: one equal to a target column in every
    /// training record, or (for classes) one holding 1 exactly where the target is some class
    /// and 0 elsewhere. Each is a warning naming the column.
    pub fn label_leaks(&self, table: &Table, train_rows: &[usize]) -> Vec<String> {
        let mut warnings = Vec::new();
        let features = self.numeric.iter().chain(&self.categorical);
        for &c in features {
            let feature = &table.columns[c];
            for &t in &self.targets {
                let target = &table.columns[t];
                let same = train_rows
                    .iter()
                    .all(|&r| table.rows[r][c] == table.rows[r][t]);
                if same && !train_rows.is_empty() {
                    warnings.push(format!(
                        "feature `{feature}` equals the target `{target}` in every training record: a label leak? (--drop {feature})"
                    ));
                    continue;
                }
                if !self.class_target {
                    continue;
                }
                let indicator = |r: usize| parse_number(&table.rows[r][c]);
                let first = train_rows.first().map(|&r| table.rows[r][t].as_str());
                let class_of_ones = train_rows
                    .iter()
                    .find(|&&r| indicator(r) == Some(1.0))
                    .map(|&r| table.rows[r][t].as_str());
                if let Some(class) = class_of_ones.or(first) {
                    let is_indicator = train_rows.iter().all(|&r| {
                        let expected = if table.rows[r][t] == class { 1.0 } else { 0.0 };
                        indicator(r) == Some(expected)
                    });
                    if is_indicator {
                        warnings.push(format!(
                            "feature `{feature}` is 1 exactly where the target `{target}` is `{class}`: a one-hot column of the target left among the features? (--drop {feature})"
                        ));
                    }
                }
            }
        }
        warnings
    }

    /// The time of table row `row` (0 without a date column).
    pub fn time_key(&self, table: &Table, row: usize) -> f64 {
        match &self.dates {
            Some(dates) => time_key(
                dates[row],
                self.hour.and_then(|h| parse_hour(&table.rows[row][h])),
            ),
            None => 0.0,
        }
    }

    /// Assigns every column a role. A column is categorical when named by `--categorical` or
    /// when none of its cells is a number; a column mixing numbers and text is an error at its
    /// first text cell (a typo in a numeric column must not silently become a category).
    pub fn detect(table: &Table, options: &PipelineOptions) -> Result<Schema> {
        if options.targets.is_empty() {
            return Err(Error::Argument {
                flag: "--target".into(),
                message: "name at least one target column".into(),
            });
        }
        for (flag, names) in [
            ("--target", &options.targets),
            ("--categorical", &options.categorical),
            ("--drop", &options.drop),
        ] {
            let mut seen = HashSet::new();
            if let Some((i, name)) = names
                .iter()
                .enumerate()
                .find(|(_, n)| !seen.insert(n.as_str()))
            {
                return Err(Error::argument(
                    flag,
                    format!("`{name}` is named twice (as item {})", i + 1),
                ));
            }
        }
        let targets = options
            .targets
            .iter()
            .map(|t| table.column(t, "--target"))
            .collect::<Result<Vec<_>>>()?;
        let forced = options
            .categorical
            .iter()
            .map(|c| table.column(c, "--categorical"))
            .collect::<Result<HashSet<_>>>()?;
        let dropped = options
            .drop
            .iter()
            .map(|c| table.column(c, "--drop"))
            .collect::<Result<HashSet<_>>>()?;
        let date = options
            .date
            .as_ref()
            .map(|d| table.column(d, "--date"))
            .transpose()?;
        if let Some(t) = targets
            .iter()
            .find(|t| forced.contains(t) || dropped.contains(t) || Some(**t) == date)
        {
            return Err(Error::Argument {
                flag: "--target".into(),
                message: format!(
                    "`{}` is also named as a feature, dropped or the date",
                    table.columns[*t]
                ),
            });
        }

        let dates = date
            .map(|d| {
                (0..table.rows.len())
                    .map(|r| {
                        parse_date(&table.rows[r][d]).ok_or_else(|| {
                            cell_error(
                                table,
                                r,
                                d,
                                format!(
                                    "`{}` is not a date like 2012-11-05",
                                    quoted(&table.rows[r][d])
                                ),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;

        // With cross-entropy, one column of text or integers holds classes; any other target
        // is a probability in [0, 1].
        let class_target = options.classify
            && targets.len() == 1
            && table
                .rows
                .iter()
                .map(|row| row[targets[0]].as_str())
                .any(|cell| {
                    !cell.is_empty() && parse_number(cell).is_none_or(|v| v.fract() == 0.0)
                });
        let mut usable_rows = Vec::with_capacity(table.rows.len());
        for (r, row) in table.rows.iter().enumerate() {
            let mut complete = true;
            for &t in &targets {
                if row[t].is_empty() && options.missing == Missing::Error {
                    return Err(cell_error(
                        table,
                        r,
                        t,
                        format!("the target cell is empty; {MISSING_HINT} (every policy but error leaves such records out)"),
                    ));
                } else if row[t].is_empty() {
                    complete = false;
                } else if class_target {
                    continue;
                } else if parse_number(&row[t]).is_none() {
                    return Err(number_error(table, r, t, "target "));
                } else if options.classify
                    && parse_number(&row[t]).is_some_and(|v| !(0.0..=1.0).contains(&v))
                {
                    return Err(cell_error(
                        table,
                        r,
                        t,
                        format!(
                            "target `{}` is outside [0, 1]: with --loss cross-entropy a numeric target is a probability (or name a column of class labels)",
                            quoted(&row[t])
                        ),
                    ));
                }
            }
            if complete {
                usable_rows.push(r);
            }
        }
        if usable_rows.is_empty() {
            return Err(table.file_error("no record has all its target cells filled".into()));
        }

        let mut numeric = Vec::new();
        let mut categorical = Vec::new();
        let target_set: HashSet<usize> = targets.iter().copied().collect();
        for c in 0..table.columns.len() {
            if target_set.contains(&c) || dropped.contains(&c) || Some(c) == date {
                continue;
            }
            if forced.contains(&c) {
                categorical.push(c);
                continue;
            }
            let cells = || {
                table
                    .rows
                    .iter()
                    .enumerate()
                    .filter(|(_, row)| !row[c].is_empty())
            };
            if let Some((r, _)) = cells().find(|(_, row)| overflows(&row[c])) {
                return Err(number_error(table, r, c, ""));
            }
            let numbers = cells()
                .filter(|(_, row)| parse_number(&row[c]).is_some())
                .count();
            if numbers == 0 {
                categorical.push(c);
            } else if let Some((r, row)) = cells().find(|(_, row)| parse_number(&row[c]).is_none())
            {
                return Err(cell_error(
                    table,
                    r,
                    c,
                    format!(
                        "`{}` is not a number, but {numbers} other cells of this column are; fix the cell, or pass --categorical {}",
                        quoted(&row[c]), table.columns[c]
                    ),
                ));
            } else {
                numeric.push(c);
            }
        }

        if numeric.is_empty() && categorical.is_empty() && date.is_none() {
            return Err(table.file_error(format!(
                "no feature column is left: of {}, the targets are {} and the rest is dropped; a network needs at least one input",
                table.some_columns(),
                options.targets.join(", ")
            )));
        }

        let all_filled = |c: usize, test: &dyn Fn(usize, &str) -> bool| {
            let mut any = false;
            for (r, row) in table.rows.iter().enumerate() {
                if !row[c].is_empty() {
                    if !test(r, &row[c]) {
                        return false;
                    }
                    any = true;
                }
            }
            any
        };
        let weekday_columns = match &dates {
            Some(dates) => categorical
                .iter()
                .copied()
                .filter(|&c| all_filled(c, &|r, cell| weekday_matches(cell, dates[r])))
                .collect(),
            None => Vec::new(),
        };
        let hour = categorical
            .iter()
            .copied()
            .find(|&c| all_filled(c, &|_, cell| parse_hour(cell).is_some()));
        // Empty feature cells that no date refills, under the policies that do not fill them.
        let unfilled: Vec<usize> = numeric
            .iter()
            .chain(&categorical)
            .copied()
            .filter(|c| dates.is_none() || !weekday_columns.contains(c))
            .collect();
        let first_empty = |r: usize| {
            unfilled
                .iter()
                .copied()
                .find(|&c| table.rows[r][c].is_empty())
        };
        match options.missing {
            Missing::Error => {
                let found = usable_rows
                    .iter()
                    .find_map(|&r| first_empty(r).map(|c| (r, c)));
                if let Some((r, c)) = found {
                    return Err(cell_error(
                        table,
                        r,
                        c,
                        format!("the cell is empty; {MISSING_HINT}"),
                    ));
                }
            }
            Missing::Drop => {
                usable_rows.retain(|&r| first_empty(r).is_none());
                if usable_rows.is_empty() {
                    return Err(table.file_error(
                        "every record has an empty cell, and --missing drop left them all out"
                            .into(),
                    ));
                }
            }
            Missing::Mean | Missing::Median | Missing::MostFrequent => {}
        }
        Ok(Schema {
            numeric,
            categorical,
            class_target,
            targets,
            date,
            weekday_columns,
            hour,
            usable_rows,
            dates,
        })
    }
}

/// A sortable instant: days since 1970-01-01 times 24, plus the hour of day.
fn time_key(date: NaiveDate, hour: Option<u32>) -> f64 {
    let days = date.signed_duration_since(NaiveDate::default()).num_days();
    days as f64 * 24.0 + f64::from(hour.unwrap_or(0))
}

/// The classes of column `t` in the training records, sorted (numerically when they are all
/// integers), with how two of them are encoded. Fewer than two is an error.
fn fit_classes(
    table: &Table,
    t: usize,
    train_rows: &[usize],
    options: &PipelineOptions,
) -> Result<Classes> {
    let column = table.columns[t].clone();
    let mut names: Vec<String> = train_rows
        .iter()
        .map(|&r| table.rows[r][t].clone())
        .collect();
    sort_class_names(&mut names);
    if names.len() < 2 {
        return Err(table.file_error(format!(
            "target `{column}` has {} class in the training records ({}); a classifier needs two or more",
            names.len(),
            names.join(", ")
        )));
    }
    if names.len() > options.max_categories {
        return Err(table.file_error(format!(
            "target `{column}` has {} classes in the training records (over --max-categories {}); is it really a class label?",
            names.len(),
            options.max_categories
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

/// `(v - mean) / std`, or `v / std - mean / std` where the difference overflows (values near
/// f64's range on both sides of the mean): finite whenever the result is.
pub(crate) fn standardize(v: f64, mean: f64, std: f64) -> f64 {
    let z = (v - mean) / std;
    if z.is_finite() {
        z
    } else {
        v / std - mean / std
    }
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some(sorted[n / 2 - 1] / 2.0 + sorted[n / 2] / 2.0),
    }
}

/// The mean and standard deviation of `values`, computed in two passes over values scaled by
/// their largest magnitude: no cancellation (`Σx²/n − mean²` loses every digit of
/// `1e9 + noise`) and no overflow (`1e300²`). A column with a single value has std 1, which
/// keeps it at 0 instead of dividing by 0. `column` names the column in the error when the
/// statistics are still not finite.
pub(crate) fn mean_std(column: &str, values: &[f64]) -> Result<(f64, f64)> {
    if values.is_empty() {
        return Ok((0.0, 1.0));
    }
    let scale = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if scale == 0.0 {
        return Ok((0.0, 1.0));
    }
    let n = values.len() as f64;
    let scaled_mean = values.iter().map(|v| v / scale).sum::<f64>() / n;
    let scaled_var = values
        .iter()
        .map(|v| (v / scale - scaled_mean).powi(2))
        .sum::<f64>()
        / n;
    let mean = scaled_mean * scale;
    let std = scaled_var.sqrt() * scale;
    if !(mean.is_finite() && std.is_finite()) {
        return Err(Error::Value {
            array: column.into(),
            index: Vec::new(),
            message: format!(
                "its mean ({mean:e}) or standard deviation ({std:e}) is beyond float64's range"
            ),
        });
    }
    // A spread below a few units in the last place of the mean is rounding, not information.
    let std = if std > mean.abs() * 4.0 * f64::EPSILON {
        std
    } else {
        1.0
    };
    Ok((mean, std))
}

impl Encoder {
    /// Fits the statistics and levels on the training rows only.
    pub fn fit(
        table: &Table,
        schema: &Schema,
        options: &PipelineOptions,
        train_rows: &[usize],
    ) -> Result<Encoder> {
        let cell = |r: usize, c: usize| table.rows[r][c].as_str();
        // A weekday column's empty cell is the date's weekday; other empty cells stay empty
        // here, and `fill` decides.
        let deduced = |r: usize, c: usize| -> String {
            match (&schema.dates, cell(r, c).is_empty()) {
                (Some(dates), true) if schema.weekday_columns.contains(&c) => {
                    dates[r].weekday().to_string()
                }
                _ => cell(r, c).to_string(),
            }
        };
        let most_frequent = |c: usize| -> Option<String> {
            let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
            for &r in train_rows {
                let value = deduced(r, c);
                if !value.is_empty() {
                    *counts.entry(value).or_default() += 1;
                }
            }
            // The first of the most frequent in sorted order: deterministic on ties.
            let top = counts.values().copied().max()?;
            counts.into_iter().find(|(_, n)| *n == top).map(|(v, _)| v)
        };
        let mut features = Vec::new();
        let numeric: HashSet<usize> = schema.numeric.iter().copied().collect();
        let categorical: HashSet<usize> = schema.categorical.iter().copied().collect();
        for c in 0..table.columns.len() {
            let column = table.columns[c].clone();
            if numeric.contains(&c) {
                let values: Vec<f64> = train_rows
                    .iter()
                    .filter_map(|&r| parse_number(cell(r, c)))
                    .collect();
                let (mean, std) = mean_std(&column, &values)?;
                let fill = match options.missing {
                    Missing::Median => median(&values),
                    Missing::MostFrequent => most_frequent(c).and_then(|v| parse_number(&v)),
                    _ => None,
                };
                features.push(Feature::Numeric {
                    column,
                    mean,
                    std,
                    fill,
                });
            } else if categorical.contains(&c) {
                let fill = match options.missing {
                    Missing::MostFrequent => most_frequent(c),
                    _ => None,
                };
                let mut levels: Vec<String> = train_rows
                    .iter()
                    .map(|&r| match deduced(r, c) {
                        empty if empty.is_empty() => {
                            fill.clone().unwrap_or_else(|| MISSING.to_string())
                        }
                        value => value,
                    })
                    .collect();
                levels.sort();
                levels.dedup();
                if levels.len() > options.max_categories {
                    return Err(table.file_error(format!(
                        "column `{column}` has {} distinct values in the training records; one-hot encoding makes one feature per value (over --max-categories {}): drop it with --drop {column}, or raise --max-categories",
                        levels.len(),
                        options.max_categories
                    )));
                }
                features.push(Feature::Categorical {
                    column,
                    levels,
                    fill,
                });
            } else if Some(c) == schema.date {
                let years = schema
                    .dates
                    .as_ref()
                    .map(|d| {
                        train_rows
                            .iter()
                            .map(|&r| f64::from(d[r].year()))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                let (mean, std) = mean_std(&column, &years)?;
                features.push(Feature::DateYear {
                    column: column.clone(),
                    mean,
                    std,
                });
                features.push(Feature::DateMonth { column });
            }
        }
        let targets = schema
            .targets
            .iter()
            .map(|&t| {
                let column = table.columns[t].clone();
                let (mean, std) = if options.standardize_targets {
                    let values: Vec<f64> = train_rows
                        .iter()
                        .filter_map(|&r| parse_number(cell(r, t)))
                        .collect();
                    mean_std(&column, &values)?
                } else {
                    (0.0, 1.0)
                };
                Ok(TargetColumn { column, mean, std })
            })
            .collect::<Result<Vec<_>>>()?;
        let name = |c: usize| table.columns[c].clone();
        let classes = if schema.class_target {
            let t = schema.targets[0];
            Some(fit_classes(table, t, train_rows, options)?)
        } else {
            None
        };
        Ok(Encoder {
            features,
            targets: if classes.is_some() {
                Vec::new()
            } else {
                targets
            },
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

    /// An empty cell at (`row`, `column`) under a policy that fills none is an error naming
    /// it (records from a file the model did not train on: `predict`, `--val`, `--test`).
    fn check_fillable(&self, table: &Table, row: usize, column: usize) -> Result<()> {
        match self.missing {
            Missing::Error | Missing::Drop => Err(cell_error(
                table,
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

    /// Encodes `rows` of `table`. With `with_targets` every target column must be present (rows
    /// with an empty target must not be among `rows`); without, targets are left empty (0 wide).
    pub fn transform(&self, table: &Table, rows: &[usize], with_targets: bool) -> Result<Dataset> {
        // A column the encoder reads but the file lacks: the file (a model applied to other
        // data) is at fault, not a flag.
        let find = |name: &str, role: &str| {
            table.column(name, "--data").map_err(|_| {
                table.file_error(format!(
                    "no column `{name}`, which the encoder reads as {role}; the columns are {}",
                    table.some_columns()
                ))
            })
        };
        let date_col = self
            .date
            .as_deref()
            .map(|d| find(d, "its date"))
            .transpose()?;
        let hour_col = self
            .hour
            .as_deref()
            .map(|h| find(h, "its clock hour"))
            .transpose()?;
        let columns = self
            .features
            .iter()
            .map(|f| match f {
                Feature::Numeric { column, .. }
                | Feature::Categorical { column, .. }
                | Feature::DateYear { column, .. }
                | Feature::DateMonth { column } => find(column, "a feature"),
            })
            .collect::<Result<Vec<_>>>()?;
        let target_cols = if !with_targets {
            Vec::new()
        } else if let Some(classes) = &self.classes {
            vec![find(&classes.column, "its class label")?]
        } else {
            self.targets
                .iter()
                .map(|t| find(&t.column, "a target"))
                .collect::<Result<Vec<_>>>()?
        };
        let n_targets = if with_targets { self.n_outputs() } else { 0 };

        let mut x = Array2::zeros((rows.len(), self.n_features()));
        let mut target = Array2::zeros((rows.len(), n_targets));
        let mut time = date_col.map(|_| Vec::with_capacity(rows.len()));
        for (i, &r) in rows.iter().enumerate() {
            let row = &table.rows[r];
            let date = date_col
                .map(|d| {
                    parse_date(&row[d]).ok_or_else(|| {
                        cell_error(
                            table,
                            r,
                            d,
                            format!("`{}` is not a date like 2012-11-05", quoted(&row[d])),
                        )
                    })
                })
                .transpose()?;
            if let (Some(time), Some(date)) = (time.as_mut(), date) {
                time.push(time_key(date, hour_col.and_then(|h| parse_hour(&row[h]))));
            }
            let mut at = 0;
            for (feature, &c) in self.features.iter().zip(&columns) {
                let cell = row[c].as_str();
                match feature {
                    Feature::Numeric {
                        mean, std, fill, ..
                    } => {
                        x[[i, at]] = if cell.is_empty() {
                            self.check_fillable(table, r, c)?;
                            fill.map_or(0.0, |v| standardize(v, *mean, *std))
                        } else {
                            let v =
                                parse_number(cell).ok_or_else(|| number_error(table, r, c, ""))?;
                            standardize(v, *mean, *std)
                        };
                    }
                    Feature::Categorical {
                        column,
                        levels,
                        fill,
                    } => {
                        let value = match (cell.is_empty(), date) {
                            (true, Some(date)) if self.weekday_columns.contains(column) => {
                                date.weekday().to_string()
                            }
                            (true, _) => {
                                self.check_fillable(table, r, c)?;
                                fill.clone().unwrap_or_else(|| MISSING.to_string())
                            }
                            _ => cell.to_string(),
                        };
                        if let Some(k) = levels.iter().position(|l| *l == value) {
                            x[[i, at + k]] = 1.0;
                        }
                    }
                    Feature::DateYear { mean, std, .. } => {
                        if let Some(date) = date {
                            x[[i, at]] = standardize(f64::from(date.year()), *mean, *std);
                        }
                    }
                    Feature::DateMonth { .. } => {
                        if let Some(date) = date {
                            x[[i, at + date.month0() as usize]] = 1.0;
                        }
                    }
                }
                at += feature.width();
            }
            if let (Some(classes), Some(&c)) = (&self.classes, target_cols.first()) {
                let label = &row[c];
                let k = classes
                    .names
                    .iter()
                    .position(|n| n == label)
                    .ok_or_else(|| {
                        cell_error(
                            table,
                            r,
                            c,
                            format!(
                                "class `{}` is not among the {} classes of the training records ({})",
                                quoted(label),
                                classes.names.len(),
                                classes.names.join(", ")
                            ),
                        )
                    })?;
                if classes.single_output {
                    target[[i, 0]] = k as f64;
                } else {
                    target[[i, k]] = 1.0;
                }
                continue;
            }
            for (j, (&c, t)) in target_cols.iter().zip(&self.targets).enumerate() {
                let v =
                    parse_number(&row[c]).ok_or_else(|| number_error(table, r, c, "target "))?;
                target[[i, j]] = standardize(v, t.mean, t.std);
            }
        }
        Ok(Dataset {
            x,
            target,
            source: table.source.clone(),
            lines: rows.iter().map(|&r| table.lines[r]).collect(),
            time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardisation_keeps_its_digits_on_a_large_offset_and_its_range_on_huge_values() {
        // 1e9 + i/1000: Σx²/n − mean² cancels 18 digits here and is off by ~200 in the
        // variance; the exact figures are mean 1e9 + 0.4995, std 0.001·√((n² − 1)/12).
        let n = 1000;
        let values: Vec<f64> = (0..n).map(|i| 1e9 + f64::from(i) / 1000.0).collect();
        let (mean, std) = mean_std("c", &values).unwrap();
        let exact_std = 0.001 * ((f64::from(n).powi(2) - 1.0) / 12.0).sqrt();
        assert!((mean - (1e9 + 0.4995)).abs() < 1e-6, "{mean}");
        assert!((std / exact_std - 1.0).abs() < 1e-6, "{std} vs {exact_std}");
        // Values whose squares overflow f64 still have a mean and a spread.
        let (mean, std) = mean_std("c", &[1e300, -1e300, 3e300]).unwrap();
        assert!((mean / 1e300 - 1.0).abs() < 1e-12 && std.is_finite() && std > 1e300);
        // A constant column has std 1 (it stays 0 after standardising), an empty one too.
        assert_eq!(mean_std("c", &[5.0; 3]).unwrap(), (5.0, 1.0));
        assert_eq!(mean_std("c", &[]).unwrap(), (0.0, 1.0));
    }

    #[test]
    fn clock_hours_parse() {
        assert_eq!(parse_hour("12am"), Some(0));
        assert_eq!(parse_hour("6am"), Some(6));
        assert_eq!(parse_hour("12pm"), Some(12));
        assert_eq!(parse_hour("11pm"), Some(23));
        assert_eq!(parse_hour("13:00"), Some(13));
        assert_eq!(parse_hour("13pm"), None);
        assert_eq!(parse_hour("Mist"), None);
    }
}
