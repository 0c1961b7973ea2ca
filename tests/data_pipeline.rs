//! The data pipeline: typing, encoding, missing values, splits, statistics and bad input.

mod common;

use std::io::Write;

use backprop::data::encode::{Feature, MISSING};
use backprop::data::{
    prepare, read_text, Classify, Missing, PipelineOptions, SeparateSets, Source, SplitKind,
    SplitOptions,
};

fn csv_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

/// The options of these tests: empty cells filled with the training mean (`--missing mean`,
/// the built-in data's policy); the other policies have tests of their own.
fn options(targets: &[&str]) -> PipelineOptions {
    PipelineOptions {
        targets: targets.iter().map(|s| s.to_string()).collect(),
        standardize_targets: true,
        missing: Missing::Mean,
        ..Default::default()
    }
}

fn bike_options() -> PipelineOptions {
    PipelineOptions {
        drop: vec!["extra".into()],
        date: Some("dteday".into()),
        ..options(&["cnt"])
    }
}

#[test]
fn text_columns_are_one_hot_and_numbers_standardised_with_training_statistics() {
    let f = csv_file(&common::bike_like_csv(120, 1));
    let source = Source::File(f.path().into());
    let (encoder, splits) = prepare(
        &source,
        &bike_options(),
        &SplitOptions::new(SplitKind::Time, 0),
        &SeparateSets::default(),
    )
    .unwrap();
    let names = encoder.feature_names();
    for expected in [
        "season=winter",
        "hr=6am",
        "weekday=Mon",
        "weathersit=Mist",
        "temp",
        "dteday.year",
        "dteday.month=3",
    ] {
        assert!(
            names.contains(&expected.to_string()),
            "{expected} not in {names:?}"
        );
    }
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("extra") || n.starts_with("cnt")),
        "{names:?}"
    );
    assert_eq!(splits.train.x.ncols(), encoder.n_features());

    // Statistics come from the training split alone: there the standardised temperature
    // (empty cells count as the mean, 0) has mean 0, and the target mean 0 and variance 1.
    let temp = names.iter().position(|n| n == "temp").unwrap();
    let train_x = splits.train.x.to_f64();
    let t = train_x.column(temp);
    assert!(t.mean().unwrap().abs() < 1e-9, "{}", t.mean().unwrap());
    let y = splits.train.target.column(0);
    assert!(y.mean().unwrap().abs() < 1e-9);
    assert!((y.mapv(|v| v * v).mean().unwrap() - 1.0).abs() < 1e-9);
    let Feature::Numeric { mean, std, .. } = &encoder
        .features
        .iter()
        .find(|f| matches!(f, Feature::Numeric { column, .. } if column == "temp"))
        .unwrap()
    else {
        unreachable!()
    };
    assert!(
        (0.0..30.0).contains(mean) && *std > 5.0,
        "mean {mean} std {std}"
    );
    // One-hot: one level per record in training; the levels are the training split's, so a
    // season first seen later (training holds only winter here) encodes as all zeros.
    let season: Vec<usize> = names
        .iter()
        .enumerate()
        .filter(|(_, n)| n.starts_with("season="))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(season.len(), 1, "{names:?}");
    for row in train_x.outer_iter() {
        assert_eq!(season.iter().map(|&i| row[i]).sum::<f64>(), 1.0);
    }
    assert!(
        splits
            .test
            .x
            .to_f64()
            .outer_iter()
            .all(|row| row[season[0]] == 0.0),
        "spring is unseen"
    );
}

#[test]
fn empty_cells_follow_the_policy() {
    let f = csv_file(&common::bike_like_csv(120, 2));
    let source = Source::File(f.path().into());
    let (encoder, splits) = prepare(
        &source,
        &bike_options(),
        &SplitOptions::new(SplitKind::Time, 0),
        &SeparateSets::default(),
    )
    .unwrap();
    // weekday holds the date's weekday, so its empty cells are recomputed: no missing level.
    assert_eq!(encoder.weekday_columns, ["weekday"]);
    let names = encoder.feature_names();
    assert!(!names.contains(&format!("weekday={MISSING}")), "{names:?}");
    let weekday: Vec<usize> = names
        .iter()
        .enumerate()
        .filter(|(_, n)| n.starts_with("weekday="))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(weekday.len(), 7);
    for part in [&splits.train, &splits.validation, &splits.test] {
        for row in part.x.to_f64().outer_iter() {
            assert_eq!(
                weekday.iter().map(|&i| row[i]).sum::<f64>(),
                1.0,
                "every record has a weekday"
            );
        }
    }
    // weathersit's empty cells become their own category.
    assert!(
        names.contains(&format!("weathersit={MISSING}")),
        "{names:?}"
    );
    // The clock-hour column orders records within a day.
    assert_eq!(encoder.hour.as_deref(), Some("hr"));
    let time = splits.test.time.as_ref().unwrap();
    assert!(
        time.windows(2).all(|w| w[0] <= w[1]),
        "test records are in time order"
    );
}

#[test]
fn every_missing_policy_does_what_it_says() {
    // x: 1, 2, 3, 10 and one empty cell; colour: red twice, blue once, two empty cells.
    let mut text = String::from("x,colour,t\n");
    for i in 0..40 {
        let x = ["1", "2", "3", "10", ""][i % 5];
        let colour = ["red", "red", "blue", "", ""][(i / 5) % 5];
        text.push_str(&format!("{x},{colour},{}\n", i % 3));
    }
    let f = csv_file(&text);
    let source = Source::File(f.path().into());
    let with = |missing: Missing| {
        let options = PipelineOptions {
            missing,
            ..options(&["t"])
        };
        prepare(
            &source,
            &options,
            &SplitOptions::new(SplitKind::Random, 1),
            &SeparateSets::default(),
        )
    };
    // error: the first empty cell, by line and column, with the flag in the hint.
    let error = with(Missing::Error).unwrap_err().to_string();
    assert!(
        error.contains("line 6, column 1 (`x`): the cell is empty")
            && error.contains("--missing drop|mean|median|most-frequent"),
        "{error}"
    );
    // drop: only the records with every cell filled: 8 lack x, 10 (records 15 to 24) lack a
    // colour, 2 of them both: 16 left out.
    let (_, splits) = with(Missing::Drop).unwrap();
    let kept = splits.train.len() + splits.validation.len() + splits.test.len();
    assert_eq!((kept, splits.dropped), (24, 16));
    let fill_of = |encoder: &backprop::data::Encoder| {
        let numeric = encoder.features.iter().find_map(|f| match f {
            Feature::Numeric { fill, .. } => Some(*fill),
            _ => None,
        });
        let categorical = encoder.features.iter().find_map(|f| match f {
            Feature::Categorical { fill, levels, .. } => Some((fill.clone(), levels.clone())),
            _ => None,
        });
        (numeric.flatten(), categorical)
    };
    // mean: no numeric fill (the mean, 0 standardised); an empty colour is a level of its own.
    let (encoder, _) = with(Missing::Mean).unwrap();
    let (numeric, categorical) = fill_of(&encoder);
    assert_eq!(numeric, None);
    let (fill, levels) = categorical.unwrap();
    assert_eq!(fill, None);
    assert!(levels.contains(&MISSING.to_string()), "{levels:?}");
    // median: the middle of the training values (2 or 3 depending on the split, never 4).
    let (encoder, _) = with(Missing::Median).unwrap();
    let median = fill_of(&encoder).0.unwrap();
    assert!((2.0..=3.0).contains(&median), "{median}");
    // most-frequent: every empty cell takes the commonest value; no `(missing)` level.
    let (encoder, _) = with(Missing::MostFrequent).unwrap();
    let (numeric, categorical) = fill_of(&encoder);
    assert!([1.0, 2.0, 3.0, 10.0].contains(&numeric.unwrap()));
    let (fill, levels) = categorical.unwrap();
    assert_eq!(fill.as_deref(), Some("red"));
    assert!(!levels.contains(&MISSING.to_string()), "{levels:?}");
}

#[test]
fn a_weekday_column_that_disagrees_with_the_date_is_an_ordinary_category() {
    let mut text =
        String::from("dteday,weekday,cnt\n2012-01-02,Mon,1\n2012-01-03,Fri,2\n2012-01-04,,3\n");
    for i in 0..30 {
        text.push_str(&format!("2012-01-05,Thu,{i}\n"));
    }
    let f = csv_file(&text);
    let opts = PipelineOptions {
        date: Some("dteday".into()),
        ..options(&["cnt"])
    };
    let (encoder, _) = prepare(
        &Source::File(f.path().into()),
        &opts,
        &SplitOptions::new(SplitKind::Random, 1),
        &SeparateSets::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(encoder.weekday_columns.is_empty());
}

#[test]
fn records_without_a_target_are_dropped_and_counted() {
    let mut text = String::from("x,cnt\n");
    for i in 0..50 {
        let cnt = if i % 10 == 0 {
            String::new()
        } else {
            i.to_string()
        };
        text.push_str(&format!("{i},{cnt}\n"));
    }
    let f = csv_file(&text);
    let (_, splits) = prepare(
        &Source::File(f.path().into()),
        &options(&["cnt"]),
        &SplitOptions::new(SplitKind::Random, 3),
        &SeparateSets::default(),
    )
    .unwrap();
    assert_eq!(splits.dropped, 5);
    assert_eq!(
        splits.train.len() + splits.validation.len() + splits.test.len(),
        45
    );
}

#[test]
fn the_time_split_holds_out_the_last_21_and_60_days() {
    let f = csv_file(&common::bike_like_csv(120, 3));
    let (_, splits) = prepare(
        &Source::File(f.path().into()),
        &bike_options(),
        &SplitOptions::new(SplitKind::Time, 0),
        &SeparateSets::default(),
    )
    .unwrap();
    assert_eq!(splits.test.len(), 21 * 4);
    assert_eq!(splits.validation.len(), 60 * 4);
    assert_eq!(splits.train.len(), (120 - 81) * 4);
    let last = |t: &Option<Vec<f64>>| t.as_ref().unwrap().last().copied().unwrap();
    let first = |t: &Option<Vec<f64>>| t.as_ref().unwrap()[0];
    assert!(last(&splits.train.time) < first(&splits.validation.time));
    assert!(last(&splits.validation.time) < first(&splits.test.time));
}

#[test]
fn the_built_in_data_prepares_with_its_documented_shape() {
    let opts = PipelineOptions {
        drop: vec!["casual".into(), "registered".into()],
        date: Some("dteday".into()),
        ..options(&["cnt"])
    };
    let (encoder, splits) = prepare(
        &Source::BuiltIn,
        &opts,
        &SplitOptions::new(SplitKind::Time, 0),
        &SeparateSets::default(),
    )
    .unwrap();
    assert_eq!(
        splits.train.len() + splits.validation.len() + splits.test.len(),
        17_379
    );
    assert_eq!(
        splits.test.len(),
        21 * 24 - 2,
        "the UCI data misses two hours of those days"
    );
    assert_eq!(encoder.weekday_columns, ["weekday"]);
    assert!(encoder
        .feature_names()
        .contains(&format!("weathersit={MISSING}")));
    assert_eq!(encoder.n_features(), 61);
}

fn error_of(text: &str, opts: PipelineOptions) -> String {
    let f = csv_file(text);
    let err = prepare(
        &Source::File(f.path().into()),
        &opts,
        &SplitOptions::new(SplitKind::Random, 0),
        &SeparateSets::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(&f.path().display().to_string()),
        "names the file: {err}"
    );
    err
}

#[test]
fn bad_csvs_are_named_by_line_and_column() {
    let ragged = error_of("a,cnt\n1,2\n3\n4,5\n", options(&["cnt"]));
    assert!(
        ragged.contains("line 3") && ragged.contains("1 cells where the header has 2"),
        "{ragged}"
    );

    let typo = error_of(
        "a,b,cnt\n1,x,2\n2,y,3\n3.5,z,4\nfour,w,5\n",
        options(&["cnt"]),
    );
    assert!(
        typo.contains("line 5, column 1 (`a`)") && typo.contains("`four` is not a number"),
        "{typo}"
    );
    assert!(typo.contains("--categorical a"), "{typo}");

    // A target of numbers is regression (`--loss mse`): text there is a bad cell. (Without a
    // loss, a text target is a set of classes.)
    let bad_target = error_of(
        "a,cnt\n1,2\n2,lots\n",
        PipelineOptions {
            classify: Classify::Never,
            ..options(&["cnt"])
        },
    );
    assert!(
        bad_target.contains("line 3, column 2 (`cnt`)"),
        "{bad_target}"
    );

    let bad_date = error_of(
        "d,cnt\n2012-01-01,2\n01/02/2012,3\n",
        PipelineOptions {
            date: Some("d".into()),
            ..options(&["cnt"])
        },
    );
    assert!(
        bad_date.contains("line 3, column 1 (`d`)") && bad_date.contains("not a date"),
        "{bad_date}"
    );

    let empty = error_of("", options(&["cnt"]));
    assert!(empty.contains("empty"), "{empty}");
    let header_only = error_of("a,cnt\n", options(&["cnt"]));
    assert!(header_only.contains("no records"), "{header_only}");
}

#[test]
fn unknown_columns_are_named_with_the_flag_and_the_columns_there_are() {
    let err = error_of("a,cnt\n1,2\n", options(&["count"]));
    assert!(
        err.contains("--target") && err.contains("`count`") && err.contains("a, cnt"),
        "{err}"
    );
    let err = error_of(
        "a,cnt\n1,2\n",
        PipelineOptions {
            drop: vec!["zz".into()],
            ..options(&["cnt"])
        },
    );
    assert!(err.contains("--drop") && err.contains("`zz`"), "{err}");
}

#[test]
fn a_table_keeps_the_line_of_each_record() {
    let f = csv_file("a,cnt\n1,2\n\"multi\nline\",3\n4,5\n");
    let frame = read_text(&Source::File(f.path().into())).unwrap();
    assert_eq!(frame.lines.to_vec(), [2, 3, 5]);
    assert_eq!(frame.record(1), ["multi\nline", "3"]);
}

#[test]
fn without_a_loss_a_text_target_is_a_set_of_classes_and_numbers_are_regression() {
    // `Classify::Auto` (no `--loss`): text labels are classes, one output per class.
    let f = csv_file(&common::flowers_csv(20, 1));
    let source = Source::File(f.path().into());
    let auto = options(&["species"]);
    assert_eq!(auto.classify, Classify::Auto, "the default");
    let (encoder, splits) = prepare(
        &source,
        &auto,
        &SplitOptions::new(SplitKind::Random, 0),
        &SeparateSets::default(),
    )
    .unwrap();
    let classes = encoder.classes.as_ref().expect("a classifier");
    assert_eq!(classes.names, ["setosa", "versicolor", "virginica"]);
    assert_eq!(encoder.n_outputs(), 3);
    assert!(encoder.targets.is_empty());
    for part in [&splits.train, &splits.validation, &splits.test] {
        assert_eq!(part.target.ncols(), 3);
        assert!(part.target.rows().into_iter().all(|r| r.sum() == 1.0));
    }
    assert_eq!(
        splits.train.len() + splits.validation.len() + splits.test.len(),
        60
    );

    // `Classify::Never` (`--loss mse`): the same labels are refused as numbers.
    let err = prepare(
        &source,
        &PipelineOptions {
            classify: Classify::Never,
            ..options(&["species"])
        },
        &SplitOptions::new(SplitKind::Random, 0),
        &SeparateSets::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("column 5 (`species`)") && err.contains("is not a number"),
        "{err}"
    );

    // A target of integers stays regression without a loss.
    let mut text = String::from("a,level\n");
    for i in 0..40 {
        text.push_str(&format!("{i},{}\n", i % 3));
    }
    let f = csv_file(&text);
    let (encoder, _) = prepare(
        &Source::File(f.path().into()),
        &options(&["level"]),
        &SplitOptions::new(SplitKind::Random, 0),
        &SeparateSets::default(),
    )
    .unwrap();
    assert!(encoder.classes.is_none());
    assert_eq!(encoder.target_names(), ["level"]);
}
