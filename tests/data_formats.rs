//! Arrays and Parquet in, predictions out in every format: the same records as CSV, `.npy`
//! pairs, `.npz` and Parquet train the same model (bit for bit on the CPU, along the CPU's
//! curve on the GPU), and a file written by pyarrow reads with its types.

mod common;

use common::{backprop, losses, Dir};

use std::path::Path;

use backprop::data::{self, Cell, ReadPlan, Role, Source};
use ndarray::{Array1, Array2};
use rand::Rng;

/// An `.npy` of f64 (C order) or, when `f32`, of float32.
fn npy_bytes(shape: &[usize], values: &[f64], f32: bool) -> Vec<u8> {
    let descr = if f32 { "<f4" } else { "<f8" };
    let mut out = backprop::io::npy::header(descr, shape);
    for &v in values {
        match f32 {
            true => out.extend((v as f32).to_le_bytes()),
            false => out.extend(v.to_le_bytes()),
        }
    }
    out
}

/// An `.npy` of fixed-width text.
fn text_npy(labels: &[&str]) -> Vec<u8> {
    let width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(1);
    let mut out = backprop::io::npy::header(&format!("<U{width}"), &[labels.len()]);
    for label in labels {
        let mut cell: Vec<u8> = label
            .chars()
            .flat_map(|c| (c as u32).to_le_bytes())
            .collect();
        cell.resize(4 * width, 0);
        out.extend(cell);
    }
    out
}

/// A zip of `.npy` members, as `np.savez` writes it.
fn npz(path: &Path, members: &[(&str, Vec<u8>)]) {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in members {
        zip.start_file(
            format!("{name}.npy"),
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

/// A regression problem of awkward size: 211 records (prime) of 5 features.
fn problem() -> (Array2<f64>, Array1<f64>) {
    let mut rng = common::rng(19);
    let x = Array2::from_shape_simple_fn((211, 5), || rng.random_range(-3.0..3.0));
    let y = x
        .rows()
        .into_iter()
        .map(|r| r[0] * 2.0 - r[3] + r[4] * r[1])
        .collect();
    (x, y)
}

/// `train --metrics` on `data` with `args`; the metrics file.
fn train(dir: &Dir, name: &str, data: &Path, args: &[&str]) -> serde_json::Value {
    let metrics = dir.path(&format!("{name}.json"));
    backprop()
        .args([
            "train",
            "--quiet",
            "--no-tune",
            "--epochs",
            "4",
            "--seed",
            "3",
        ])
        .arg("--data")
        .arg(data)
        .arg("--metrics")
        .arg(&metrics)
        .args(args)
        .current_dir(dir.0.path())
        .assert()
        .success();
    serde_json::from_slice(&std::fs::read(metrics).unwrap()).unwrap()
}

#[test]
fn csv_npy_npz_and_parquet_train_the_same_model_on_both_backends() {
    let dir = Dir::new();
    let (x, y) = problem();
    let mut csv = String::from("f0,f1,f2,f3,f4,t\n");
    for (row, t) in x.rows().into_iter().zip(&y) {
        let cells: Vec<String> = row.iter().chain([t]).map(|v| format!("{v:?}")).collect();
        csv.push_str(&cells.join(","));
        csv.push('\n');
    }
    std::fs::write(dir.path("d.csv"), csv).unwrap();
    let flat: Vec<f64> = x.iter().copied().collect();
    std::fs::write(dir.path("X.npy"), npy_bytes(&[211, 5], &flat, false)).unwrap();
    std::fs::write(
        dir.path("y.npy"),
        npy_bytes(&[211], y.as_slice().unwrap(), false),
    )
    .unwrap();
    // The archive stores X in Fortran order (as `np.asfortranarray` would) and y as a column.
    let mut fortran = backprop::io::npy::header("<f8", &[211, 5]);
    let at = fortran.windows(5).position(|w| w == b"False").unwrap();
    fortran.splice(at..at + 5, *b"True ");
    fortran.extend(x.t().iter().flat_map(|v| v.to_le_bytes()));
    npz(
        &dir.path("d.npz"),
        &[
            ("X", fortran),
            ("y", npy_bytes(&[211, 1], y.as_slice().unwrap(), false)),
        ],
    );

    let from_csv = train(
        &dir,
        "csv",
        &dir.path("d.csv"),
        &["--target", "t", "--save", "m.st"],
    );
    let from_npy = train(&dir, "npy", &dir.path("X.npy"), &["--target", "y.npy"]);
    let from_npz = train(&dir, "npz", &dir.path("d.npz"), &[]);
    // Parquet as backprop writes it: the CSV's records, typed, with the model's predictions
    // (dropped for training).
    backprop()
        .args([
            "predict",
            "--model",
            "m.st",
            "--data",
            "d.csv",
            "--out",
            "d.parquet",
        ])
        .current_dir(dir.0.path())
        .assert()
        .success();
    let from_parquet = train(
        &dir,
        "parquet",
        &dir.path("d.parquet"),
        &["--target", "t", "--drop", "t_predicted"],
    );
    // The same values through the same encoder and the same split: the same f32 arithmetic.
    let reference = losses(&from_csv);
    assert_eq!(reference.len(), 4);
    for (name, m) in [
        ("npy", &from_npy),
        ("npz", &from_npz),
        ("parquet", &from_parquet),
    ] {
        assert_eq!(losses(m), reference, "{name}");
    }

    // The GPU follows the CPU's curve from an array file (fp32 both sides; only summation
    // order differs, ~1e-7 relative per step: 1e-5 over 4 epochs of 169 records is generous
    // yet catches any real divergence).
    if let Some(ctx) = backprop::gpu::context::GpuContext::for_tests() {
        let gpu = train(
            &dir,
            "gpu",
            &dir.path("d.npz"),
            &["--backend", "gpu", "--adapter", &ctx.info.name],
        );
        for ((c_train, c_val), (g_train, g_val)) in reference.iter().zip(losses(&gpu)) {
            for (c, g) in [(c_train, g_train), (c_val, g_val)] {
                assert!((c - g).abs() <= 1e-5 * c.abs().max(1.0), "cpu {c} gpu {g}");
            }
        }
    }
}

/// Reads `path` with every column inferred.
fn frame(path: &Path) -> data::Frame {
    data::read(
        &Source::File(path.into()),
        &ReadPlan::infer_all(),
        &|_, _| {},
    )
    .unwrap()
}

#[test]
fn predictions_in_csv_npy_and_parquet_agree() {
    let dir = Dir::new();
    let (x, y) = problem();
    let flat: Vec<f64> = x.iter().copied().collect();
    npz(
        &dir.path("d.npz"),
        &[
            ("x", npy_bytes(&[211, 5], &flat, true)),
            ("y", npy_bytes(&[211], y.as_slice().unwrap(), false)),
        ],
    );
    std::fs::write(dir.path("X.npy"), npy_bytes(&[211, 5], &flat, true)).unwrap();
    train(&dir, "m", &dir.path("d.npz"), &["--save", "m.st"]);
    let predict = |data: &str, out: &str| {
        backprop()
            .args([
                "predict",
                "--backend",
                "cpu",
                "--model",
                "m.st",
                "--data",
                data,
                "--out",
                out,
            ])
            .current_dir(dir.0.path())
            .assert()
            .success()
    };
    // With `y` in the archive, predict scores the model.
    let scored = predict("d.npz", "p.csv");
    assert!(
        String::from_utf8_lossy(&scored.get_output().stderr).contains("y: 211 records, MSE"),
        "{scored:?}"
    );
    predict("X.npy", "p.npy");
    predict("X.npy", "p.parquet");
    let csv = frame(&dir.path("p.csv"));
    let from_csv: Vec<f64> = (0..211)
        .map(|r| {
            csv.cell(r, csv.column("y_predicted", "").unwrap())
                .number()
                .unwrap()
        })
        .collect();
    let npy = std::fs::read(dir.path("p.npy")).unwrap();
    let npy = backprop::io::npy::parse(&npy).unwrap();
    assert_eq!(
        npy.shape(),
        [211],
        "one target: a 1-D array, as scikit-learn's predict"
    );
    assert_eq!(npy.as_slice().unwrap(), &from_csv[..]);
    let parquet = frame(&dir.path("p.parquet"));
    assert_eq!(parquet.names[..5], ["x0", "x1", "x2", "x3", "x4"]);
    let c = parquet.column("y_predicted", "").unwrap();
    let from_parquet: Vec<f64> = (0..211)
        .map(|r| parquet.cell(r, c).number().unwrap())
        .collect();
    assert_eq!(from_parquet, from_csv);
    // The inputs went through f32 on their way in and come out as they were read.
    assert_eq!(
        parquet.cell(5, 2).number(),
        Some(f64::from(x[[5, 2]] as f32))
    );
}

#[test]
fn text_labels_in_an_npz_train_a_classifier_whose_npy_predictions_are_labels() {
    let dir = Dir::new();
    let mut rng = common::rng(5);
    let names = ["setosa", "versicolor", "virginica"];
    let n = 151;
    let mut flat = Vec::new();
    let mut labels = Vec::new();
    for i in 0..n {
        let class = i % 3;
        for j in 0..2 {
            let centre = if j == class % 2 {
                4.0 * class as f64
            } else {
                -2.0
            };
            flat.push(centre + rng.random_range(-0.5..0.5));
        }
        labels.push(names[class]);
    }
    npz(
        &dir.path("iris.npz"),
        &[
            ("x", npy_bytes(&[n, 2], &flat, false)),
            ("y", text_npy(&labels)),
        ],
    );
    let out = backprop()
        .args([
            "train",
            "--data",
            "iris.npz",
            "--epochs",
            "60",
            "--save",
            "m.st",
            "--no-tune",
        ])
        .current_dir(dir.0.path())
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("target `y` holds class labels (3 classes: setosa, versicolor, virginica)"),
        "{stderr}"
    );
    assert!(stdout.contains("confusion matrix"), "{stdout}");
    backprop()
        .args([
            "predict",
            "--backend",
            "cpu",
            "--model",
            "m.st",
            "--data",
            "iris.npz",
        ])
        .args(["--out", "p.npy"])
        .current_dir(dir.0.path())
        .assert()
        .success();
    let bytes = std::fs::read(dir.path("p.npy")).unwrap();
    let predicted = backprop::io::npy::Npy::parse(&bytes).unwrap();
    assert_eq!(predicted.dtype(), "<U10");
    assert_eq!(predicted.shape, [n]);
    let right = (0..n).filter(|&i| predicted.text(i) == labels[i]).count();
    assert!(right as f64 > 0.9 * n as f64, "{right} of {n}");
}

#[test]
fn a_parquet_file_from_pyarrow_reads_with_its_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mixed.parquet");
    // The nested column is left out (no feature), and cannot be a target.
    let mut plan = ReadPlan::infer_all();
    plan.roles.insert("tags".into(), Role::Target);
    let err = data::read(&Source::File(path.clone()), &plan, &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("column `tags` is nested"), "{err}");
    let mut plan = ReadPlan::infer_all();
    plan.roles.insert("target".into(), Role::Target);
    let with_tags = data::read(&Source::File(path.clone()), &plan, &|_, _| {}).unwrap();
    assert!(with_tags.columns[with_tags.column("tags", "").unwrap()].is_skipped());
    plan.roles.insert("tags".into(), Role::Skip);
    // Booleans are 0 and 1 as inputs, labels as a target (a column of flags is binary).
    let mut flags = plan.clone();
    flags.roles.insert("flag".into(), Role::Target);
    let as_target = data::read(&Source::File(path.clone()), &flags, &|_, _| {}).unwrap();
    let flag = as_target.column("flag", "").unwrap();
    assert_eq!(
        (as_target.cell(0, flag), as_target.cell(1, flag)),
        (Cell::Text("true"), Cell::Text("false"))
    );
    let frame = data::read(&Source::File(path), &plan, &|_, _| {}).unwrap();
    assert_eq!(frame.n_rows(), 230, "four row groups of at most 64");
    assert_eq!(
        frame.names,
        [
            "count", "small", "ratio", "big", "huge", "flag", "kind", "day", "at", "price", "tags",
            "target"
        ]
    );
    let cell = |r: usize, name: &str| frame.cell(r, frame.column(name, "").unwrap());
    for i in 0..230 {
        let expected_count = if i % 7 == 0 {
            Cell::Empty
        } else {
            Cell::Number(3.0 * i as f64)
        };
        assert_eq!(cell(i, "count"), expected_count, "row {i}");
        assert_eq!(cell(i, "small"), Cell::Number((i % 100) as f64 - 50.0));
        assert_eq!(
            cell(i, "ratio"),
            Cell::Number(f64::from((i as f64 / 8.0) as f32))
        );
        assert_eq!(
            cell(i, "flag"),
            Cell::Number(if i % 2 == 0 { 1.0 } else { 0.0 })
        );
        let kind = ["alpha", "beta", "gamma"][i % 3];
        let expected_kind = if i % 11 == 0 {
            Cell::Empty
        } else {
            Cell::Text(kind)
        };
        assert_eq!(cell(i, "kind"), expected_kind, "row {i}");
        let day =
            chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap() + chrono::Days::new(i as u64);
        assert_eq!(cell(i, "day").to_text(), day.format("%Y-%m-%d").to_string());
        let at = day.and_hms_opt(0, 0, 0).unwrap() - chrono::Days::new(i as u64)
            + chrono::Duration::hours(i as i64);
        let at_text = match i % 24 {
            0 => at.format("%Y-%m-%d").to_string(),
            _ => at.format("%Y-%m-%d %H:%M:%S").to_string(),
        };
        assert_eq!(cell(i, "at").to_text(), at_text);
        assert_eq!(cell(i, "price").number(), Some(i as f64 * 125.0 / 100.0));
        assert_eq!(
            cell(i, "target").number(),
            Some(2.0 * i as f64 / 8.0 + (i % 3) as f64)
        );
    }
}

#[test]
fn array_files_that_disagree_or_cannot_be_trained_on_are_named() {
    let dir = Dir::new();
    std::fs::write(dir.path("X.npy"), npy_bytes(&[4, 2], &[1.0; 8], false)).unwrap();
    std::fs::write(dir.path("y.npy"), npy_bytes(&[3], &[1.0; 3], false)).unwrap();
    std::fs::write(
        dir.path("inf.npy"),
        npy_bytes(&[2, 2], &[1.0, 2.0, f64::INFINITY, 3.0], false),
    )
    .unwrap();
    std::fs::write(dir.path("y2.npy"), npy_bytes(&[2], &[1.0; 2], false)).unwrap();
    std::fs::write(
        dir.path("cube.npy"),
        npy_bytes(&[2, 2, 2], &[1.0; 8], false),
    )
    .unwrap();
    let fails = |args: &[&str], expected: &str| {
        let out = backprop()
            .arg("train")
            .args(args)
            .current_dir(dir.0.path())
            .assert()
            .failure();
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    };
    fails(
        &["--data", "X.npy", "--target", "y.npy"],
        "y.npy: holds 3 target records (shape [3]) but",
    );
    fails(
        &["--data", "X.npy"],
        "holds the inputs only: give the targets as --target y.npy",
    );
    fails(
        &["--data", "inf.npy", "--target", "y2.npy"],
        "row 1, column `x0`: the value is inf",
    );
    fails(
        &["--data", "cube.npy", "--target", "y.npy"],
        "has shape [2, 2, 2]",
    );
    std::fs::write(
        dir.path("hollow.npy"),
        npy_bytes(&[1_000_000_000_000, 0], &[], false),
    )
    .unwrap();
    fails(
        &["--data", "hollow.npy", "--target", "y.npy"],
        "records without columns",
    );
    fails(
        &["--data", "missing.npy", "--target", "y.npy"],
        "missing.npy",
    );
    std::fs::write(dir.path("bad.parquet"), b"PAR1 not really").unwrap();
    fails(
        &["--data", "bad.parquet", "--target", "t"],
        "not a readable Parquet file",
    );
    npz(
        &dir.path("noy.npz"),
        &[("z", npy_bytes(&[1], &[1.0], false))],
    );
    fails(
        &["--data", "noy.npz"],
        "the inputs must be called `x` (or `X`)",
    );
}
