//! Training, validation and test records: the seed project's split by time, or a seeded random
//! split.

use chrono::{Duration, NaiveDate};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// Days of the test set and of the validation set before it, as in the seed project.
pub const TEST_DAYS: i64 = 21;
pub const VALIDATION_DAYS: i64 = 60;
/// Fractions of the records a random split puts in the test and validation sets.
pub const RANDOM_TEST_FRACTION: f64 = 0.1;
pub const RANDOM_VALIDATION_FRACTION: f64 = 0.1;

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
fn random_sizes(n: usize) -> (usize, usize) {
    let part = |fraction: f64| ((n as f64 * fraction).round() as usize).min(n);
    let test = part(RANDOM_TEST_FRACTION);
    (test, part(RANDOM_VALIDATION_FRACTION).min(n - test))
}

/// Splits `rows` (indices into the table). `dates` holds one date per table row.
pub fn split(
    rows: &[usize],
    dates: Option<&[NaiveDate]>,
    kind: SplitKind,
    seed: u64,
) -> Result<Split> {
    let mut date_span = String::new();
    let parts = match kind {
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
            date_span = format!(
                "; the dates run from {first} to {last}, so the test set starts after {} and validation after {} (a date far from the others empties them: a typo?)",
                last - Duration::days(TEST_DAYS),
                last - Duration::days(TEST_DAYS + VALIDATION_DAYS)
            );
            let test_from = last - Duration::days(TEST_DAYS);
            let validation_from = test_from - Duration::days(VALIDATION_DAYS);
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
        SplitKind::Random => {
            let mut shuffled = rows.to_vec();
            shuffled.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
            let (n_test, n_validation) = random_sizes(shuffled.len());
            let test = shuffled.drain(..n_test).collect();
            let validation = shuffled.drain(..n_validation).collect();
            Split {
                train: shuffled,
                validation,
                test,
            }
        }
    };
    for (name, part) in [
        ("training", &parts.train),
        ("validation", &parts.validation),
        ("test", &parts.test),
    ] {
        if part.is_empty() {
            let why = match kind {
                SplitKind::Time => format!(
                    "the time split needs more than {} days of data ({TEST_DAYS} for testing, the {VALIDATION_DAYS} before them for validation){date_span}",
                    TEST_DAYS + VALIDATION_DAYS
                ),
                SplitKind::Random => format!(
                    "the random split puts {:.0}% of the records in the test set and {:.0}% in validation, so it needs at least {} records",
                    RANDOM_TEST_FRACTION * 100.0,
                    RANDOM_VALIDATION_FRACTION * 100.0,
                    (1..)
                        .find(|&n| {
                            let (test, validation) = random_sizes(n);
                            test > 0 && validation > 0 && test + validation < n
                        })
                        .unwrap_or(0)
                ),
            };
            return Err(Error::Argument {
                flag: "--split".into(),
                message: format!(
                    "the {name} set would be empty ({} records with a target in all); {why}",
                    rows.len()
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
        let dates: Vec<NaiveDate> = (0..200).map(|d| start + Duration::days(d)).collect();
        let rows: Vec<usize> = (0..200).rev().collect();
        let s = split(&rows, Some(&dates), SplitKind::Time, 0).unwrap();
        assert_eq!(s.test.len(), 21);
        assert_eq!(s.validation.len(), 60);
        assert_eq!(s.train.len(), 119);
        assert!(s.test.iter().all(|&r| r >= 179));
        assert!(s.validation.iter().all(|&r| (119..179).contains(&r)));
    }

    #[test]
    fn the_random_split_is_seeded_and_disjoint() {
        let rows: Vec<usize> = (0..1000).collect();
        let a = split(&rows, None, SplitKind::Random, 7).unwrap();
        assert_eq!(a, split(&rows, None, SplitKind::Random, 7).unwrap());
        assert_ne!(a, split(&rows, None, SplitKind::Random, 8).unwrap());
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
        let err = split(&[0, 1, 2], None, SplitKind::Random, 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("random split") && err.contains("at least 5 records"),
            "{err}"
        );
        assert!(!err.contains("days"), "{err}");
        assert!(split(&[0, 1, 2, 3, 4], None, SplitKind::Random, 0).is_ok());
    }

    #[test]
    fn a_time_split_without_a_date_says_what_to_do() {
        let err = split(&[0, 1], None, SplitKind::Time, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--date"), "{err}");
    }
}
