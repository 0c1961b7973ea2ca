//! Training, validation and test records: the seed project's split by time, or a seeded random
//! split.

use chrono::{Days, NaiveDate};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// Days of the test set and of the validation set before it, as in the seed project.
pub const TEST_DAYS: i64 = 21;
pub const VALIDATION_DAYS: i64 = 60;
/// Fractions of the records a random split puts in the test and validation sets by default.
pub const RANDOM_TEST_FRACTION: f64 = 0.1;
pub const RANDOM_VALIDATION_FRACTION: f64 = 0.1;

/// How records are split.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SplitOptions {
    pub kind: SplitKind,
    /// The seed of the random split.
    pub seed: u64,
    pub test_fraction: f64,
    pub validation_fraction: f64,
    /// The time split's days of test records (the last ones) and of validation records (the
    /// days before them).
    pub test_days: u32,
    pub validation_days: u32,
    /// The validation or test set comes from a file of its own: the split makes none.
    pub separate_validation: bool,
    pub separate_test: bool,
}

impl SplitOptions {
    pub fn new(kind: SplitKind, seed: u64) -> Self {
        SplitOptions {
            kind,
            seed,
            test_fraction: RANDOM_TEST_FRACTION,
            validation_fraction: RANDOM_VALIDATION_FRACTION,
            test_days: TEST_DAYS as u32,
            validation_days: VALIDATION_DAYS as u32,
            separate_validation: false,
            separate_test: false,
        }
    }

    /// The fractions of a random split that go to test and validation (0 for a part that
    /// comes from its own file).
    fn fractions(&self) -> (f64, f64) {
        (
            if self.separate_test {
                0.0
            } else {
                self.test_fraction
            },
            if self.separate_validation {
                0.0
            } else {
                self.validation_fraction
            },
        )
    }

    /// Whether the split is asked to hold out no validation records (a fraction or a number of
    /// days of 0): every record not in the test set trains.
    pub fn holds_out_no_validation(&self) -> bool {
        match self.kind {
            SplitKind::Random => self.validation_fraction == 0.0,
            SplitKind::Time => self.validation_days == 0,
        }
    }

    /// Likewise for the test set.
    pub fn holds_out_no_test(&self) -> bool {
        match self.kind {
            SplitKind::Random => self.test_fraction == 0.0,
            SplitKind::Time => self.test_days == 0,
        }
    }

    /// Checks the fractions, naming the flag.
    pub fn check(&self) -> Result<()> {
        for (flag, f) in [
            ("--test-fraction", self.test_fraction),
            ("--val-fraction", self.validation_fraction),
        ] {
            if !(f.is_finite() && (0.0..1.0).contains(&f)) {
                return Err(Error::Argument {
                    flag: flag.into(),
                    message: format!("{f} is not a fraction in [0, 1)"),
                });
            }
        }
        if self.test_fraction + self.validation_fraction >= 1.0 {
            return Err(Error::Argument {
                flag: "--val-fraction".into(),
                message: format!(
                    "with --test-fraction {} it leaves no records for training",
                    self.test_fraction
                ),
            });
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitKind {
    /// The last 21 days are the test set, the 60 days before them validation (needs --date).
    Time,
    /// 10% test, 10% validation, drawn with --seed.
    Random,
}

/// Row indices of each part.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
    pub test: Vec<usize>,
}

/// The sizes of the test and validation sets of a random split of `n` records.
fn random_sizes(n: usize, (test_fraction, validation_fraction): (f64, f64)) -> (usize, usize) {
    let part = |fraction: f64| ((n as f64 * fraction).round() as usize).min(n);
    let test = part(test_fraction);
    (test, part(validation_fraction).min(n - test))
}

/// A seeded random split of `rows`; with `labels` (one per table row), stratified: each class
/// is split in the same fractions, so every part keeps the class proportions.
fn random_split(rows: Vec<usize>, labels: Option<&[&str]>, options: &SplitOptions) -> Split {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    // Without labels one group: the rows themselves, shuffled in place (no copy of a
    // million-record index).
    let groups: Vec<Vec<usize>> = match labels {
        None => vec![rows],
        Some(labels) => {
            let mut groups: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
            for r in rows {
                groups.entry(labels[r]).or_default().push(r);
            }
            groups.into_values().collect()
        }
    };
    let mut parts = Split {
        train: Vec::new(),
        validation: Vec::new(),
        test: Vec::new(),
    };
    for mut group in groups {
        group.shuffle(&mut rng);
        let (n_test, n_validation) = random_sizes(group.len(), options.fractions());
        parts.test.extend(group.drain(..n_test));
        parts.validation.extend(group.drain(..n_validation));
        match parts.train.is_empty() {
            true => parts.train = group,
            false => parts.train.extend(group),
        }
    }
    // Each part in file order: which records it holds is random, their order is not (the
    // trainer shuffles every epoch), and reading the columns front to back is several times
    // faster than in a random order.
    for part in [&mut parts.train, &mut parts.validation, &mut parts.test] {
        part.sort_unstable();
    }
    parts
}

/// Splits `rows` (indices into the table). `dates` holds one date per table row, `labels`
/// the class of each table row for a stratified random split.
pub fn split(
    rows: Vec<usize>,
    dates: Option<&[NaiveDate]>,
    labels: Option<&[&str]>,
    options: &SplitOptions,
) -> Result<Split> {
    let kind = options.kind;
    let n_rows = rows.len();
    let mut date_span = String::new();
    let mut parts = match kind {
        SplitKind::Time => {
            let dates = dates.ok_or_else(|| Error::Argument {
                flag: "--split".into(),
                message: "`time` needs a date column: pass --date COL, or use --split random"
                    .into(),
            })?;
            let last = rows
                .iter()
                .map(|&r| dates[r])
                .max()
                .ok_or_else(|| Error::Argument {
                    flag: "--split".into(),
                    message: "no records to split".into(),
                })?;
            let first = rows.iter().map(|&r| dates[r]).min().unwrap_or(last);
            // Days before the first date there is are the first date there is: a number of
            // days beyond the calendar holds every record.
            let before = |date: NaiveDate, days: u32| {
                date.checked_sub_days(Days::new(u64::from(days)))
                    .unwrap_or(NaiveDate::MIN)
            };
            let test_from = before(last, options.test_days);
            let validation_from = before(test_from, options.validation_days);
            date_span = format!(
                "; the dates run from {first} to {last}, so the test set starts after {test_from} and validation after {validation_from} (a date far from the others empties them: a typo?)"
            );
            let part = |keep: &dyn Fn(NaiveDate) -> bool| {
                rows.iter()
                    .copied()
                    .filter(|&r| keep(dates[r]))
                    .collect::<Vec<_>>()
            };
            Split {
                train: part(&|d| d <= validation_from),
                validation: part(&|d| d > validation_from && d <= test_from),
                test: part(&|d| d > test_from),
            }
        }
        SplitKind::Random => random_split(rows, labels, options),
    };
    // A part that comes from its own file takes no records; in a time split they train.
    if options.separate_test {
        parts.train.append(&mut parts.test);
    }
    if options.separate_validation {
        parts.train.append(&mut parts.validation);
    }
    // A part may be empty where it comes from a file or is asked to hold nothing.
    for (name, part, may_be_empty) in [
        ("training", &parts.train, false),
        (
            "validation",
            &parts.validation,
            options.separate_validation || options.holds_out_no_validation(),
        ),
        (
            "test",
            &parts.test,
            options.separate_test || options.holds_out_no_test(),
        ),
    ] {
        if part.is_empty() && !may_be_empty {
            let why = match kind {
                SplitKind::Time => format!(
                    "the time split needs more than {} days of data ({} for testing, the {} before them for validation){date_span}",
                    u64::from(options.test_days) + u64::from(options.validation_days),
                    options.test_days,
                    options.validation_days
                ),
                SplitKind::Random => format!(
                    "the random split puts {}{}% in validation{}, so it needs at least {} records",
                    match options.fractions().0 {
                        0.0 => String::new(),
                        test => format!("{}% of the records in the test set and ", test * 100.0),
                    },
                    options.fractions().1 * 100.0,
                    if labels.is_some() {
                        " (of every class)"
                    } else {
                        ""
                    },
                    (1..)
                        .find(|&n| {
                            let (test, validation) = random_sizes(n, options.fractions());
                            (test > 0 || options.separate_test || options.holds_out_no_test())
                                && (validation > 0
                                    || options.separate_validation
                                    || options.holds_out_no_validation())
                                && test + validation < n
                        })
                        .unwrap_or(0)
                ),
            };
            return Err(Error::Argument {
                flag: "--split".into(),
                message: format!(
                    "the {name} set would be empty ({n_rows} records with a target in all); {why}"
                ),
            });
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_split_takes_the_last_21_and_60_days() {
        let start = NaiveDate::from_ymd_opt(2012, 1, 1).unwrap();
        let dates: Vec<NaiveDate> = (0..200)
            .map(|d| start + chrono::Duration::days(d))
            .collect();
        let rows: Vec<usize> = (0..200).rev().collect();
        let s = split(
            rows.clone(),
            Some(&dates),
            None,
            &SplitOptions::new(SplitKind::Time, 0),
        )
        .unwrap();
        assert_eq!(s.test.len(), 21);
        assert_eq!(s.validation.len(), 60);
        assert_eq!(s.train.len(), 119);
        assert!(s.test.iter().all(|&r| r >= 179));
        assert!(s.validation.iter().all(|&r| (119..179).contains(&r)));
    }

    #[test]
    fn the_random_split_is_seeded_and_disjoint() {
        let rows: Vec<usize> = (0..1000).collect();
        let random = |seed| SplitOptions::new(SplitKind::Random, seed);
        let a = split(rows.clone(), None, None, &random(7)).unwrap();
        assert_eq!(a, split(rows.clone(), None, None, &random(7)).unwrap());
        assert_ne!(a, split(rows.clone(), None, None, &random(8)).unwrap());
        assert_eq!(
            (a.train.len(), a.validation.len(), a.test.len()),
            (800, 100, 100)
        );
        let mut all: Vec<usize> = a
            .train
            .iter()
            .chain(&a.validation)
            .chain(&a.test)
            .copied()
            .collect();
        all.sort();
        assert_eq!(all, rows);
    }

    #[test]
    fn a_random_split_of_too_few_records_says_how_many_it_needs() {
        let random = SplitOptions::new(SplitKind::Random, 0);
        let err = split(vec![0, 1, 2], None, None, &random)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("random split") && err.contains("at least 5 records"),
            "{err}"
        );
        assert!(!err.contains("days"), "{err}");
        assert!(split(vec![0, 1, 2, 3, 4], None, None, &random).is_ok());
    }

    #[test]
    fn a_stratified_split_keeps_every_class_in_proportion() {
        // 60 of class a, 30 of b, 10 of c: 10% test and 10% validation of each.
        let labels: Vec<&str> = (0..100)
            .map(|r| match r % 10 {
                0 => "c",
                1..=3 => "b",
                _ => "a",
            })
            .collect();
        let rows: Vec<usize> = (0..100).collect();
        let s = split(
            rows.clone(),
            None,
            Some(&labels),
            &SplitOptions::new(SplitKind::Random, 3),
        )
        .unwrap();
        let count =
            |part: &[usize], class: &str| part.iter().filter(|&&r| labels[r] == class).count();
        for (class, n) in [("a", 60), ("b", 30), ("c", 10)] {
            assert_eq!(count(&s.test, class), n / 10, "{class}");
            assert_eq!(count(&s.validation, class), n / 10, "{class}");
        }
        // With the test set from a file of its own, the split makes none.
        let separate = SplitOptions {
            separate_test: true,
            ..SplitOptions::new(SplitKind::Random, 3)
        };
        let s = split(rows.clone(), None, Some(&labels), &separate).unwrap();
        assert!(s.test.is_empty());
        assert_eq!((s.train.len(), s.validation.len()), (90, 10));
    }

    #[test]
    fn a_time_split_without_a_date_says_what_to_do() {
        let err = split(
            vec![0, 1],
            None,
            None,
            &SplitOptions::new(SplitKind::Time, 0),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("--date"), "{err}");
    }
}
