//! Training from a mapped `.npy` of inputs: the model the in-memory path trains, bit for bit,
//! within a memory budget the in-memory path refuses; and on the GPU, a data set larger than
//! the device allows streamed a window at a time into the model the resident path trains.

mod common;

use std::path::Path;

use common::{backprop, losses, Dir};
use rand::Rng;

/// An `.npy` of `values` (records x columns) as float32 (`f32`) or float64, in C order or,
/// when `fortran`, in Fortran order (which the in-memory reader takes).
fn npy(path: &Path, (rows, columns): (usize, usize), values: &[f64], f32: bool, fortran: bool) {
    let mut out = backprop::io::npy::header(if f32 { "<f4" } else { "<f8" }, &[rows, columns]);
    if fortran {
        let at = out.windows(5).position(|w| w == b"False").unwrap();
        out.splice(at..at + 5, *b"True ");
    }
    let at = |r: usize, c: usize| values[r * columns + c];
    let order: Vec<f64> = match fortran {
        true => (0..columns)
            .flat_map(|c| (0..rows).map(move |r| at(r, c)))
            .collect(),
        false => values.to_vec(),
    };
    for v in order {
        match f32 {
            true => out.extend((v as f32).to_le_bytes()),
            false => out.extend(v.to_le_bytes()),
        }
    }
    std::fs::write(path, out).unwrap();
}

/// `y.npy`: one float64 target per record.
fn targets(dir: &Dir, y: &[f64]) {
    let mut out = backprop::io::npy::header("<f8", &[y.len()]);
    out.extend(y.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(dir.path("y.npy"), out).unwrap();
}

/// `rows` x `columns` inputs (about one in 500 missing, as NaN) and a target depending on
/// three of them, written as `X.npy` (C order), `XF.npy` (Fortran order) and `y.npy`.
fn write_problem(dir: &Dir, (rows, columns): (usize, usize), seed: u64) {
    let mut rng = common::rng(seed);
    let x: Vec<f64> = (0..rows * columns)
        .map(|_| match rng.random_range(0..500) {
            0 => f64::NAN,
            _ => f64::from(rng.random_range(-4.0f32..9.0)),
        })
        .collect();
    let y: Vec<f64> = (0..rows)
        .map(|r| {
            // A missing input counts as 0 in the target.
            let v = |c: usize| match x[r * columns + c] {
                v if v.is_nan() => 0.0,
                v => v.clamp(0.0, 9.0),
            };
            v(0) * 2.0 - v(1) + 0.5 * v(2) * v(2)
        })
        .collect();
    npy(&dir.path("X.npy"), (rows, columns), &x, true, false);
    npy(&dir.path("XF.npy"), (rows, columns), &x, true, true);
    targets(dir, &y);
}

/// `train` on `data` with targets `y.npy` and `args`: its success and the metrics, or its
/// failure's standard error.
fn train(
    dir: &Dir,
    data: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<serde_json::Value, String> {
    let metrics = dir.path(&format!("{data}.json"));
    let mut command = backprop();
    command
        .args(["train", "--quiet", "--no-tune", "--seed", "5"])
        .args(["--data", data, "--target", "y.npy", "--metrics"])
        .arg(&metrics)
        .args(args)
        .current_dir(dir.0.path());
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().unwrap();
    match output.status.success() {
        true => Ok(serde_json::from_slice(&std::fs::read(metrics).unwrap()).unwrap()),
        false => Err(String::from_utf8_lossy(&output.stderr).into_owned()),
    }
}

#[test]
fn a_mapped_array_trains_the_in_memory_model_and_beyond_the_memory_budget() {
    let dir = Dir::new();
    write_problem(&dir, (1009, 7), 1);
    // C order is mapped, Fortran order read into memory: the same statistics, the same
    // standardised values, the same batches: the same losses to the last bit, under each
    // policy for the missing values that lets them through, with or without a column dropped.
    for (missing, drop) in [("mean", Some("x2")), ("drop", None)] {
        let mut args = vec![
            "--backend",
            "cpu",
            "--epochs",
            "3",
            "--hidden",
            "6",
            "--batch",
            "32",
            "--missing",
            missing,
        ];
        args.extend(drop.iter().flat_map(|d| ["--drop", d]));
        let mapped = train(&dir, "X.npy", &args, &[]).unwrap();
        let in_memory = train(&dir, "XF.npy", &args, &[]).unwrap();
        assert_eq!(losses(&mapped).len(), 3);
        assert_eq!(losses(&mapped), losses(&in_memory), "--missing {missing}");
        assert_eq!(
            mapped["test_loss"], in_memory["test_loss"],
            "--missing {missing}"
        );
    }
    // Under --missing error the first empty cell is named, as the in-memory path names it.
    let mapped = train(&dir, "X.npy", &["--backend", "cpu"], &[]).unwrap_err();
    let in_memory = train(&dir, "XF.npy", &["--backend", "cpu"], &[]).unwrap_err();
    assert!(mapped.contains("the cell is empty"), "{mapped}");
    let cell = |e: &str| e[e.find("row ").unwrap()..e.find(": the cell").unwrap()].to_string();
    assert_eq!(cell(&mapped), cell(&in_memory));

    // 300,000 records x 24 features: reading them into memory takes 300,000 x 25 x 8 = 60 MB
    // before encoding, over the limit; the mapped path holds row numbers and targets (5 MB).
    // It trains within 20 MiB (measured 2026-12-06): 40 MiB leaves room on both sides.
    let dir = Dir::new();
    write_problem(&dir, (300_000, 24), 2);
    let limit = [("BACKPROP_MEMORY_LIMIT", "40MiB")];
    let args = [
        "--backend",
        "cpu",
        "--epochs",
        "1",
        "--hidden",
        "4",
        "--batch",
        "256",
        "--missing",
        "mean",
    ];
    let refused = train(&dir, "XF.npy", &args, &limit).unwrap_err();
    assert!(
        refused.contains("BACKPROP_MEMORY_LIMIT") && refused.contains("XF.npy"),
        "{refused}"
    );
    let mapped = train(&dir, "X.npy", &args, &limit).unwrap();
    let (train_loss, _) = losses(&mapped)[0];
    // Standardised targets: a model that learnt nothing scores 1.
    assert!(train_loss.is_finite() && train_loss < 1.0, "{train_loss}");
}

#[test]
fn the_gpu_streams_a_data_set_larger_than_it_allows_into_the_resident_model() {
    let Some(ctx) = backprop::gpu::context::GpuContext::for_tests() else {
        return;
    };
    let dir = Dir::new();
    write_problem(&dir, (2003, 40), 3);
    let args = [
        "--backend",
        "gpu",
        "--adapter",
        &ctx.info.name,
        "--epochs",
        "2",
        "--hidden",
        "16",
        "--batch",
        "50",
        "--missing",
        "mean",
        "--val-fraction",
        "0.3",
    ];
    let resident = train(&dir, "X.npy", &args, &[]).unwrap();
    // 1,403 training records x 40 inputs x 4 bytes (224 KB) and the validation set (96 KB)
    // exceed a 64 KiB binding: both are streamed, in windows of 400 records (8 batches).
    let cap = [("BACKPROP_MAX_BINDING_BYTES", "64KiB")];
    let streamed = train(&dir, "X.npy", &args, &cap).unwrap();
    // The same records in the same batches through the same kernels.
    assert_eq!(losses(&streamed), losses(&resident));
    assert_eq!(streamed["test_loss"], resident["test_loss"]);
    // The in-memory reader's copy streams as well (it is the same table).
    let from_memory = train(&dir, "XF.npy", &args, &cap).unwrap();
    assert_eq!(losses(&from_memory), losses(&resident));
    // Adam's step values are indexed by batch across windows; --drop-last leaves a partial
    // batch out of the last window.
    let mut adam = args.to_vec();
    let at = adam.iter().position(|&a| a == "--batch").unwrap();
    adam[at + 1] = "48";
    adam.extend(["--optimizer", "adam", "--drop-last"]);
    let resident = train(&dir, "X.npy", &adam, &[]).unwrap();
    let streamed = train(&dir, "X.npy", &adam, &cap).unwrap();
    assert_eq!(losses(&streamed), losses(&resident));
}

#[test]
fn the_mapped_path_checks_and_warns_as_the_in_memory_path_does() {
    let dir = Dir::new();
    let (rows, columns) = (300, 4);
    let mut rng = common::rng(4);
    let base: Vec<f64> = (0..rows * columns)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    let y: Vec<f64> = (0..rows).map(|r| base[r * columns] * 3.0).collect();
    targets(&dir, &y);
    // Both layouts of one table; each case's `train` outputs compared whole.
    let both = |x: &[f64], args: &[&str]| {
        npy(&dir.path("X.npy"), (rows, columns), x, false, false);
        npy(&dir.path("XF.npy"), (rows, columns), x, false, true);
        let mut args = args.to_vec();
        args.extend(["--backend", "cpu", "--epochs", "2"]);
        let run = |data: &str| {
            let output = backprop()
                .args([
                    "train",
                    "--quiet",
                    "--no-tune",
                    "--data",
                    data,
                    "--target",
                    "y.npy",
                ])
                .args(&args)
                .current_dir(dir.0.path())
                .output()
                .unwrap();
            let said = String::from_utf8_lossy(&output.stderr).replace("XF.npy", "X.npy");
            // The summary without the speed line (records per second vary).
            let summary: Vec<String> = String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter(|l| !l.contains("records/s"))
                .map(String::from)
                .collect();
            (output.status.success(), said, summary)
        };
        (run("X.npy"), run("XF.npy"))
    };
    // A column of NaN only is a category of empty cells to the in-memory path: the mapped
    // path leaves such an array to it (the same model).
    let mut x = base.clone();
    (0..rows).for_each(|r| x[r * columns + 2] = f64::NAN);
    let (mapped, in_memory) = both(&x, &["--missing", "mean"]);
    assert!(mapped.0, "{}", mapped.1);
    assert_eq!(mapped, in_memory);
    // A value too far out for float32 once standardised, in a held-out record (with 5% of the
    // records training, record 17 is held out under this seed): refused before training,
    // naming the record, by both.
    let mut x = base.clone();
    x[17 * columns + 1] = 1e300;
    let held_out = ["--test-fraction", "0.5", "--val-fraction", "0.45"];
    let (mapped, in_memory) = both(&x, &held_out);
    assert!(
        !mapped.0 && mapped.1.contains("row 17: feature `x1`"),
        "{}",
        mapped.1
    );
    assert_eq!(mapped, in_memory);
    // An infinity after a missing value: the infinity is the error, as the reader finds it.
    let mut x = base.clone();
    x[5 * columns + 3] = f64::NAN;
    x[9 * columns + 2] = f64::INFINITY;
    let (mapped, in_memory) = both(&x, &[]);
    assert!(
        !mapped.0 && mapped.1.contains("row 9, column `x2`: the value is inf"),
        "{}",
        mapped.1
    );
    assert_eq!(mapped, in_memory);
    // A feature equal to the target warns; so does one that marks a class of a label target.
    let mut x = base.clone();
    (0..rows).for_each(|r| x[r * columns + 3] = y[r]);
    let (mapped, in_memory) = both(&x, &[]);
    assert!(
        mapped.0 && mapped.1.contains("feature `x3` equals the target `y`"),
        "{}",
        mapped.1
    );
    assert_eq!(mapped, in_memory);
    let labels: Vec<f64> = (0..rows).map(|r| (r % 3) as f64).collect();
    targets(&dir, &labels);
    let mut x = base.clone();
    (0..rows).for_each(|r| x[r * columns + 1] = f64::from(u8::from(r % 3 == 2)));
    let (mapped, in_memory) = both(&x, &["--loss", "cross-entropy"]);
    assert!(
        mapped.0
            && mapped
                .1
                .contains("feature `x1` is 1 exactly where the target `y` is `2`"),
        "{}",
        mapped.1
    );
    assert_eq!(mapped, in_memory);
}
