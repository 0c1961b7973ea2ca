//! Typing the columns of a frame: each rule a function (the flags' consistency, the date, the
//! target's kind, which records are usable, numbers or categories, weekday and hour columns,
//! empty cells), run once by [`Schema::detect`] before any statistics.

use std::collections::HashSet;

use chrono::{Datelike, NaiveDate};

use super::encode::{Classify, Missing, PipelineOptions, MISSING_HINT};
use super::frame::{quoted, Cell, Column, Frame, EMPTY, UNTRACKED};
use crate::error::{Error, Result};

/// Column roles before any statistics: what `Encoder::fit` needs besides the training rows.
#[derive(Clone, Debug)]
pub struct Schema {
    pub numeric: Vec<usize>,
    pub categorical: Vec<usize>,
    pub targets: Vec<usize>,
    pub date: Option<usize>,
    pub weekday_columns: Vec<usize>,
    pub hour: Option<usize>,
    /// The target column is a set of classes (see [`Classify`]).
    pub class_target: bool,
    /// Rows whose targets are all present.
    pub usable_rows: Vec<usize>,
    /// The parsed date of each row, when there is a date column.
    pub dates: Option<Vec<NaiveDate>>,
}

/// A cell written as a number that float64 cannot hold (`1e400`): an error, never silently
/// infinity or text. The words `inf` and `nan` are text here, like any other word.
pub fn overflows(cell: &str) -> bool {
    cell.bytes().any(|b| b.is_ascii_digit()) && cell.parse::<f64>().is_ok_and(|v| !v.is_finite())
}

/// The error of a cell that should be a number.
pub fn number_error(frame: &Frame, row: usize, column: usize, what: &str) -> Error {
    let raw = frame.cell(row, column).to_text();
    let cell = quoted(&raw);
    let message = if overflows(&raw) {
        format!("{what}`{cell}` is beyond float64's range (±1.8e308)")
    } else {
        format!("{what}`{cell}` is not a number")
    };
    frame.cell_error(row, column, message)
}

pub fn parse_date(cell: &str) -> Option<NaiveDate> {
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
    let short = date.weekday().to_string(); // "Mon"
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
    c == short.to_ascii_lowercase() || c == name
}

/// A sortable instant: days since 1970-01-01 times 24, plus the hour of day.
pub fn time_key(date: NaiveDate, hour: Option<u32>) -> f64 {
    let days = date.signed_duration_since(NaiveDate::default()).num_days();
    days as f64 * 24.0 + f64::from(hour.unwrap_or(0))
}

/// `f` of each level of a text column, computed once per level.
fn per_level<T>(column: &Column, f: impl Fn(&str) -> T) -> Vec<T> {
    column
        .text
        .as_ref()
        .map_or_else(Vec::new, |t| t.levels.iter().map(|l| f(l)).collect())
}

/// How many cells of each level, and of untracked numbers.
fn level_counts(column: &Column) -> (Vec<usize>, usize) {
    let Some(text) = &column.text else {
        return (Vec::new(), 0);
    };
    let mut counts = vec![0; text.levels.len()];
    let mut untracked = 0;
    for &k in &text.codes {
        match k {
            EMPTY => {}
            UNTRACKED => untracked += 1,
            k => counts[k as usize] += 1,
        }
    }
    (counts, untracked)
}

/// The first row whose text level satisfies `test`.
fn first_row_with(column: &Column, test: &[bool]) -> Option<usize> {
    let codes = &column.text.as_ref()?.codes;
    codes
        .iter()
        .position(|&k| k != EMPTY && k != UNTRACKED && test[k as usize])
}

impl Schema {
    /// Assigns every column a role. A column is categorical when named by `--categorical` or
    /// when none of its cells is a number; a column mixing numbers and text is an error at its
    /// first text cell (a typo in a numeric column must not silently become a category).
    pub fn detect(frame: &Frame, options: &PipelineOptions) -> Result<Schema> {
        Self::detect_with(frame, options, false)
    }

    /// [`Schema::detect`] for a frame of targets whose inputs are read elsewhere (a mapped
    /// array, `data::mapped`) when `inputs_elsewhere`: a frame without features is then whole.
    pub(crate) fn detect_with(
        frame: &Frame,
        options: &PipelineOptions,
        inputs_elsewhere: bool,
    ) -> Result<Schema> {
        let roles = Roles::of(frame, options)?;
        let dates = roles
            .date
            .map(|d| dates_at(frame, d, 0..frame.n_rows()))
            .transpose()?;
        let class_target = is_class_target(frame, &roles.targets, options.classify);
        let usable_rows = usable_rows(frame, &roles.targets, class_target, options)?;
        let (mut numeric, mut categorical) = (Vec::new(), Vec::new());
        for c in 0..frame.names.len() {
            if roles.is_feature(c, frame) {
                if roles.forced.contains(&c) || !is_numeric(frame, c)? {
                    categorical.push(c);
                } else {
                    numeric.push(c);
                }
            }
        }
        if numeric.is_empty() && categorical.is_empty() && roles.date.is_none() && !inputs_elsewhere
        {
            return Err(frame.file_error(format!(
                "no feature column is left: of {}, the targets are {} and the rest is dropped; a network needs at least one input",
                frame.some_columns(),
                roles
                    .targets
                    .iter()
                    .map(|&t| frame.names[t].as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let weekday_columns = match &dates {
            Some(dates) => categorical
                .iter()
                .copied()
                .filter(|&c| is_weekday_column(frame, c, dates))
                .collect(),
            None => Vec::new(),
        };
        let hour = categorical
            .iter()
            .copied()
            .find(|&c| is_hour_column(&frame.columns[c]));
        let mut schema = Schema {
            numeric,
            categorical,
            class_target,
            targets: roles.targets,
            date: roles.date,
            weekday_columns,
            hour,
            usable_rows,
            dates,
        };
        schema.apply_missing(frame, options.missing)?;
        Ok(schema)
    }

    /// Empty feature cells that no date refills: an error, or their records left out.
    fn apply_missing(&mut self, frame: &Frame, missing: Missing) -> Result<()> {
        let unfilled: Vec<usize> = self
            .numeric
            .iter()
            .chain(&self.categorical)
            .copied()
            .filter(|c| self.dates.is_none() || !self.weekday_columns.contains(c))
            .collect();
        let first_empty = |r: usize| {
            unfilled
                .iter()
                .copied()
                .find(|&c| frame.cell(r, c).is_empty())
        };
        match missing {
            Missing::Error => {
                let found = self
                    .usable_rows
                    .iter()
                    .find_map(|&r| first_empty(r).map(|c| (r, c)));
                if let Some((r, c)) = found {
                    return Err(frame.cell_error(
                        r,
                        c,
                        format!("the cell is empty; {MISSING_HINT}"),
                    ));
                }
            }
            Missing::Drop => {
                self.usable_rows.retain(|&r| first_empty(r).is_none());
                if self.usable_rows.is_empty() {
                    return Err(frame.file_error(
                        "every record has an empty cell, and --missing drop left them all out"
                            .into(),
                    ));
                }
            }
            Missing::Mean | Missing::Median | Missing::MostFrequent => {}
        }
        Ok(())
    }

    /// The class label of each row, when the target is a set of classes: what a stratified
    /// split groups by.
    pub fn class_labels<'f>(&self, frame: &'f Frame) -> Option<Vec<&'f str>> {
        let t = *self.targets.first()?;
        let text = frame.columns[t].text.as_ref()?;
        self.class_target.then(|| {
            text.codes
                .iter()
                .map(|&k| text.levels.get(k as usize).map_or("", String::as_str))
                .collect()
        })
    }

    /// The time of row `row` (0 without a date column).
    pub fn time_key(&self, frame: &Frame, row: usize) -> f64 {
        match &self.dates {
            Some(dates) => time_key(
                dates[row],
                self.hour.and_then(|h| match frame.cell(row, h) {
                    Cell::Text(t) => parse_hour(t),
                    _ => None,
                }),
            ),
            None => 0.0,
        }
    }

    /// Feature columns that give the target away: one equal to a target column in every
    /// training record, or (for classes) one holding 1 exactly where the target is some class
    /// and 0 elsewhere. Each is a warning naming the column.
    pub fn label_leaks(&self, frame: &Frame, train_rows: &[usize]) -> Vec<String> {
        let mut warnings = Vec::new();
        if train_rows.is_empty() {
            return warnings;
        }
        for &c in self.numeric.iter().chain(&self.categorical) {
            let feature = &frame.names[c];
            for &t in &self.targets {
                let target = &frame.names[t];
                if train_rows
                    .iter()
                    .all(|&r| same(frame.cell(r, c), frame.cell(r, t)))
                {
                    warnings.push(leak_warning(feature, target));
                } else if self.class_target {
                    if let Some(class) = indicator_of(frame, c, t, train_rows) {
                        warnings.push(indicator_warning(feature, target, &class));
                    }
                }
            }
        }
        warnings
    }
}

/// The warning for a feature equal to a target in every training record.
pub(crate) fn leak_warning(feature: &str, target: &str) -> String {
    format!(
        "feature `{feature}` equals the target `{target}` in every training record: a label leak? (--drop {feature})"
    )
}

/// The warning for a feature that is the indicator of one class of the target.
pub(crate) fn indicator_warning(feature: &str, target: &str, class: &str) -> String {
    format!(
        "feature `{feature}` is 1 exactly where the target `{target}` is `{class}`: a one-hot column of the target left among the features? (--drop {feature})"
    )
}

/// Two cells hold the same value: equal numbers, or equal text.
pub(crate) fn same(a: Cell, b: Cell) -> bool {
    match (a.number(), b.number()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b || a.to_text() == b.to_text(),
    }
}

/// The class that column `c` is the indicator of (1 exactly where target `t` is that class).
fn indicator_of(frame: &Frame, c: usize, t: usize, rows: &[usize]) -> Option<String> {
    let indicator = |r: usize| frame.cell(r, c).number();
    let label = |r: usize| frame.cell(r, t).to_text();
    let class = rows
        .iter()
        .find(|&&r| indicator(r) == Some(1.0))
        .map_or_else(|| label(rows[0]), |&r| label(r));
    rows.iter()
        .all(|&r| indicator(r) == Some(if label(r) == class { 1.0 } else { 0.0 }))
        .then_some(class)
}

/// The columns the flags name, checked against each other and the frame.
struct Roles {
    targets: Vec<usize>,
    forced: HashSet<usize>,
    dropped: HashSet<usize>,
    date: Option<usize>,
}

impl Roles {
    fn of(frame: &Frame, options: &PipelineOptions) -> Result<Roles> {
        // An array file names its own targets (`y`) when the user names none.
        let targets = match options.targets.is_empty() {
            true => &frame.targets,
            false => &options.targets,
        };
        if targets.is_empty() {
            return Err(Error::argument(
                "--target",
                "name at least one target column",
            ));
        }
        for (flag, names) in [
            ("--target", targets),
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
        let find = |names: &[String], flag: &str| -> Result<Vec<usize>> {
            names.iter().map(|n| frame.column(n, flag)).collect()
        };
        let roles = Roles {
            targets: find(targets, "--target")?,
            forced: find(&options.categorical, "--categorical")?
                .into_iter()
                .collect(),
            dropped: find(&options.drop, "--drop")?.into_iter().collect(),
            date: options
                .date
                .as_ref()
                .map(|d| frame.column(d, "--date"))
                .transpose()?,
        };
        if let Some(&t) = roles.targets.iter().find(|t| {
            roles.forced.contains(t) || roles.dropped.contains(t) || Some(**t) == roles.date
        }) {
            return Err(Error::argument(
                "--target",
                format!(
                    "`{}` is also named as a feature, dropped or the date",
                    frame.names[t]
                ),
            ));
        }
        Ok(roles)
    }

    /// Whether column `c` is a feature: not a target, not dropped, not the date, and read
    /// (a reader leaves out what it cannot hold, such as Parquet's nested columns).
    fn is_feature(&self, c: usize, frame: &Frame) -> bool {
        !self.targets.contains(&c)
            && !self.dropped.contains(&c)
            && Some(c) != self.date
            && !frame.columns[c].is_skipped()
    }
}

/// The date of each of `rows` in date column `d` (each distinct text parsed once); a cell
/// that is not a date is an error naming it.
pub fn dates_at(
    frame: &Frame,
    d: usize,
    rows: impl Iterator<Item = usize>,
) -> Result<Vec<NaiveDate>> {
    let column = &frame.columns[d];
    let parsed = per_level(column, parse_date);
    rows.map(|r| {
        let date = match column.text.as_ref().map(|t| t.codes[r]) {
            Some(k) if (k as usize) < parsed.len() => parsed[k as usize],
            _ => parse_date(&column.cell(r).to_text()),
        };
        date.ok_or_else(|| {
            frame.cell_error(
                r,
                d,
                format!(
                    "`{}` is not a date like 2012-11-05",
                    quoted(&frame.cell(r, d).to_text())
                ),
            )
        })
    })
    .collect()
}

/// Whether the single target is a set of classes: under `Auto` when some cell is text, under
/// `Always` when some cell is text or an integer.
fn is_class_target(frame: &Frame, targets: &[usize], classify: Classify) -> bool {
    let [t] = targets else {
        return false;
    };
    let column = &frame.columns[*t];
    let is_text = per_level(column, |l| crate::data::frame::parse_number(l).is_none());
    let any_text = is_text.iter().any(|&b| b);
    match classify {
        Classify::Never => false,
        Classify::Auto => any_text,
        Classify::Always => {
            any_text
                || column
                    .numbers
                    .as_ref()
                    .is_some_and(|n| n.iter().any(|v| v.fract() == 0.0))
        }
    }
}

/// The rows whose targets are all present; an empty target is an error under `--missing
/// error`, and a target that is not a number (or, with cross-entropy, a probability) is one
/// always.
fn usable_rows(
    frame: &Frame,
    targets: &[usize],
    class_target: bool,
    options: &PipelineOptions,
) -> Result<Vec<usize>> {
    let mut usable = Vec::with_capacity(frame.n_rows());
    for r in 0..frame.n_rows() {
        let mut complete = true;
        for &t in targets {
            let cell = frame.cell(r, t);
            if cell.is_empty() && options.missing == Missing::Error {
                return Err(frame.cell_error(
                    r,
                    t,
                    format!("the target cell is empty; {MISSING_HINT} (every policy but error leaves such records out)"),
                ));
            } else if cell.is_empty() {
                complete = false;
            } else if class_target {
                continue;
            } else if let Some(v) = cell.number() {
                if options.classify == Classify::Always && !(0.0..=1.0).contains(&v) {
                    return Err(frame.cell_error(
                        r,
                        t,
                        format!(
                            "target `{}` is outside [0, 1]: with --loss cross-entropy a numeric target is a probability (or name a column of class labels)",
                            quoted(&cell.to_text())
                        ),
                    ));
                }
            } else {
                return Err(number_error(frame, r, t, "target "));
            }
        }
        if complete {
            usable.push(r);
        }
    }
    if usable.is_empty() {
        return Err(frame.file_error("no record has all its target cells filled".into()));
    }
    Ok(usable)
}

/// Whether feature column `c` is numbers: a column of text is a category; a number beyond
/// float64's range, or a text cell among numbers, is an error naming the cell.
fn is_numeric(frame: &Frame, c: usize) -> Result<bool> {
    let column = &frame.columns[c];
    let Some(text) = &column.text else {
        return Ok(column
            .numbers
            .as_ref()
            .is_some_and(|n| n.iter().any(|v| !v.is_nan())));
    };
    if let Some(r) = first_row_with(column, &per_level(column, overflows)) {
        return Err(number_error(frame, r, c, ""));
    }
    let is_number = per_level(column, |l| crate::data::frame::parse_number(l).is_some());
    let (counts, untracked) = level_counts(column);
    let numbers = untracked
        + counts
            .iter()
            .zip(&is_number)
            .filter(|(_, &n)| n)
            .map(|(k, _)| k)
            .sum::<usize>();
    let is_text: Vec<bool> = is_number.iter().map(|n| !n).collect();
    match first_row_with(column, &is_text) {
        None => Ok(numbers > 0),
        Some(_) if numbers == 0 => Ok(false),
        Some(r) => Err(frame.cell_error(
            r,
            c,
            format!(
                "`{}` is not a number, but {numbers} other cells of this column are; fix the cell, or pass --categorical {}",
                quoted(&text.levels[text.codes[r] as usize]),
                frame.names[c]
            ),
        )),
    }
}

/// Every filled cell of text column `c` is the weekday of its row's date (and one is filled).
fn is_weekday_column(frame: &Frame, c: usize, dates: &[NaiveDate]) -> bool {
    let Some(text) = &frame.columns[c].text else {
        return false;
    };
    let mut any = false;
    for (r, &k) in text.codes.iter().enumerate() {
        match k {
            EMPTY => {}
            UNTRACKED => return false,
            k if weekday_matches(&text.levels[k as usize], dates[r]) => any = true,
            _ => return false,
        }
    }
    any
}

/// Every filled cell is a clock hour (`6am`, `13:00`), and one is filled.
fn is_hour_column(column: &Column) -> bool {
    let hours = per_level(column, |l| parse_hour(l).is_some());
    let (counts, untracked) = level_counts(column);
    untracked == 0
        && counts.iter().any(|&n| n > 0)
        && counts.iter().zip(&hours).all(|(&n, &h)| n == 0 || h)
}

#[cfg(test)]
mod tests {
    use super::*;

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
