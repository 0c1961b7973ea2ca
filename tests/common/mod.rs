//! Helpers shared by the integration tests: seeded random problems.

#![allow(dead_code)]

use backprop::ops::optimizer::{Method, Optimizer};
use backprop::{Activation, Network};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A random batch problem: network with the given layer sizes, `n_records` inputs in [-1, 1),
/// targets in [0, 1) (valid for both output activations).
pub struct Problem {
    pub network: Network<f64>,
    pub x: Array2<f64>,
    pub target: Array2<f64>,
}

pub fn problem(
    layer_sizes: &[usize],
    n_records: usize,
    output: Activation,
    rng: &mut ChaCha8Rng,
) -> Problem {
    let network = Network::random(layer_sizes, output, rng).expect("valid sizes");
    let x =
        Array2::from_shape_simple_fn((n_records, layer_sizes[0]), || rng.random_range(-1.0..1.0));
    let n_outputs = layer_sizes[layer_sizes.len() - 1];
    let target =
        Array2::from_shape_simple_fn((n_records, n_outputs), || rng.random_range(0.0..1.0));
    Problem { network, x, target }
}

/// The binary under test.
pub fn backprop() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("backprop").expect("the binary builds")
}

/// A temporary directory a test's files live in.
pub struct Dir(pub tempfile::TempDir);

impl Dir {
    pub fn new() -> Self {
        Dir(tempfile::tempdir().unwrap())
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.path().join(name)
    }
}

/// Each epoch's training and validation loss (NaN without validation) from a `--metrics` file.
pub fn losses(m: &serde_json::Value) -> Vec<(f64, f64)> {
    m["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["train_loss"].as_f64().unwrap(),
                e["val_loss"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect()
}

/// Whether the GPU tests must run (CI sets `BACKPROP_REQUIRE_GPU=1`).
pub fn gpu_required() -> bool {
    std::env::var("BACKPROP_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

/// A small CSV like the bike-sharing data: `days` days from 2012-01-01, four hours a day,
/// rows shuffled, a text season, a clock hour, a weekday with some cells empty, a weather
/// category with some empty, a numeric temperature with some empty, an `extra` column to drop,
/// and a target `cnt` that depends on hour, temperature and weather.
pub fn bike_like_csv(days: usize, seed: u64) -> String {
    use chrono::{Datelike, Duration, NaiveDate};
    use rand::seq::SliceRandom;
    let mut rng = rng(seed);
    let start = NaiveDate::from_ymd_opt(2012, 1, 1).unwrap();
    let mut rows = Vec::new();
    for d in 0..days {
        let date = start + Duration::days(d as i64);
        for hour in [6u32, 9, 13, 18] {
            let temp: f64 = rng.random_range(-5.0..35.0);
            let weather = ["Clear", "Mist", "Rain"][rng.random_range(0..3)];
            let cnt = 10.0 + 3.0 * temp + if hour == 9 || hour == 18 { 120.0 } else { 20.0 }
                - if weather == "Rain" { 30.0 } else { 0.0 }
                + rng.random_range(-5.0..5.0);
            let weekday = if rng.random_bool(0.1) {
                String::new()
            } else {
                date.weekday().to_string()
            };
            let weather = if rng.random_bool(0.1) { "" } else { weather };
            let temp = if rng.random_bool(0.05) {
                String::new()
            } else {
                format!("{temp:.2}")
            };
            let season = ["winter", "spring", "summer", "fall"][(date.month0() / 3) as usize];
            let h12 = if hour > 12 {
                format!("{}pm", hour - 12)
            } else {
                format!("{hour}am")
            };
            rows.push(format!(
                "{date},{season},{h12},{weekday},{weather},{temp},{},{cnt:.0}",
                d % 7
            ));
        }
    }
    rows.shuffle(&mut rng);
    format!(
        "dteday,season,hr,weekday,weathersit,temp,extra,cnt\n{}\n",
        rows.join("\n")
    )
}

/// A small classification CSV like the iris flowers: `per_class` records of each of three
/// species (text labels), four measurements drawn around well-separated centres, rows shuffled.
pub fn flowers_csv(per_class: usize, seed: u64) -> String {
    use rand::seq::SliceRandom;
    let mut rng = rng(seed);
    let species = [
        ("setosa", [5.0, 3.4, 1.5, 0.2]),
        ("versicolor", [5.9, 2.8, 4.3, 1.3]),
        ("virginica", [6.6, 3.0, 5.6, 2.0]),
    ];
    let mut rows = Vec::new();
    for (name, centre) in species {
        for _ in 0..per_class {
            let cells: Vec<String> = centre
                .iter()
                .map(|c| format!("{:.2}", c + rng.random_range(-0.25..0.25)))
                .collect();
            rows.push(format!("{},{name}", cells.join(",")));
        }
    }
    rows.shuffle(&mut rng);
    format!(
        "sepal_length,sepal_width,petal_length,petal_width,species\n{}\n",
        rows.join("\n")
    )
}

/// Every optimizer rule with the settings the tests step them with, by name.
pub fn every_optimizer() -> Vec<(&'static str, Optimizer)> {
    let base = Optimizer::default();
    vec![
        ("sgd", base),
        (
            "sgd + L2",
            Optimizer {
                weight_decay: 0.01,
                ..base
            },
        ),
        (
            "momentum",
            Optimizer {
                method: Method::Momentum,
                ..base
            },
        ),
        (
            "nesterov + L2",
            Optimizer {
                method: Method::Momentum,
                nesterov: true,
                weight_decay: 0.01,
                ..base
            },
        ),
        (
            "adam",
            Optimizer {
                method: Method::Adam,
                ..base
            },
        ),
        (
            "adamw",
            Optimizer {
                method: Method::Adamw,
                weight_decay: 0.01,
                ..base
            },
        ),
        (
            "sgd + L2 on weights only (alpha)",
            Optimizer {
                l2_weights: 0.02,
                ..base
            },
        ),
        (
            "adam + L2 on weights only (alpha)",
            Optimizer {
                method: Method::Adam,
                l2_weights: 0.02,
                ..base
            },
        ),
    ]
}
