//! `backprop train` and `backprop predict` end to end: the built-in data past the seed
//! project's bar, metrics and plots, save -> load -> predict, exact resume, the divergence
//! guard, bad input, and the GPU following the CPU's curve.

mod common;

use assert_cmd::Command;
use common::{backprop, losses, Dir};

use std::path::{Path, PathBuf};

use backprop::data::read_text;
use backprop::guard::numeric::Precision;
use backprop::{cpu, model_file};
use predicates::prelude::*;

fn metrics(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// `backprop train` on the CPU, quietly, on a bike-like CSV (target `cnt`, date `dteday`).
fn train_on(data: &Path) -> Command {
    let mut cmd = backprop();
    cmd.args([
        "train",
        "--backend",
        "cpu",
        "--quiet",
        "--target",
        "cnt",
        "--date",
        "dteday",
        "--missing",
        "mean",
    ])
    .arg("--data")
    .arg(data);
    cmd
}

fn is_png(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| b.starts_with(b"\x89PNG\r\n\x1a\n") && b.len() > 10_000)
}

impl Dir {
    fn bike_like(&self, days: usize, seed: u64) -> PathBuf {
        let path = self.path("data.csv");
        std::fs::write(&path, common::bike_like_csv(days, seed)).unwrap();
        path
    }
}

#[test]
fn the_default_run_passes_the_seed_projects_bar_and_writes_its_outputs() {
    let dir = Dir::new();
    backprop()
        .current_dir(dir.0.path())
        .args([
            "train",
            "--backend",
            "cpu",
            "--quiet",
            "--metrics",
            "m.json",
            "--plot",
            "loss.png",
        ])
        .args([
            "--plot-predictions",
            "pred.png",
            "--save",
            "model.safetensors",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("RMSE cnt (rides per hour)"))
        .stdout(predicate::str::contains("test"));
    let m = metrics(&dir.path("m.json"));
    let (train, val) = (
        m["training_loss"].as_f64().unwrap(),
        m["validation_loss"].as_f64().unwrap(),
    );
    assert!(train < 0.09, "training loss {train}");
    assert!(val < 0.18, "validation loss {val}");
    assert!(m["test_loss"].as_f64().unwrap().is_finite());
    assert_eq!(losses(&m).len(), 80);
    assert_eq!(
        losses(&m).last().unwrap().0,
        train,
        "the last epoch's loss is the summary's"
    );
    assert!(is_png(&dir.path("loss.png")) && is_png(&dir.path("pred.png")));
    let saved = model_file::load(&dir.path("model.safetensors")).unwrap();
    assert_eq!(saved.network.layer_sizes(), [61, 25, 1]);
    assert_eq!(saved.encoder.target_names(), ["cnt"]);
}

#[test]
fn save_load_predict_reproduces_the_model_and_reports_the_error() {
    let dir = Dir::new();
    let data = dir.bike_like(100, 1);
    train_on(&data)
        .args(["--drop", "extra", "--epochs", "15", "--save"])
        .arg(dir.path("m.safetensors"))
        .assert()
        .success();
    let out = dir.path("preds.csv");
    backprop()
        .args(["predict", "--backend", "cpu", "--model"])
        .arg(dir.path("m.safetensors"))
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stderr(predicate::str::contains("cnt: 400 records, MSE"));

    // The same predictions, computed here from the saved weights and encoder in f64.
    let saved = model_file::load(&dir.path("m.safetensors")).unwrap();
    let table = read_text(&backprop::data::Source::File(data.clone())).unwrap();
    let rows: Vec<usize> = (0..table.n_rows()).collect();
    let encoded = saved
        .encoder
        .transform(&table, &rows, false, Precision::F64)
        .unwrap();
    let outputs = cpu::forward(&saved.network, encoded.x.to_f64().view());
    let want = saved.encoder.destandardize(&outputs[outputs.len() - 1]);

    let written = read_text(&backprop::data::Source::File(out)).unwrap();
    assert_eq!(written.names.last().unwrap(), "cnt_predicted");
    assert_eq!(written.n_rows(), 400);
    for r in 0..written.n_rows() {
        let row = written.record(r);
        assert_eq!(
            row[..row.len() - 1],
            table.record(r)[..],
            "input cells are kept"
        );
        let got: f64 = row.last().unwrap().parse().unwrap();
        // The CLI predicts in f32: a 1e-4 relative difference is fp32 rounding through
        // a 25-unit network, far below any encoding or weight mix-up.
        assert!(
            (got - want[[r, 0]]).abs() <= 1e-4 * want[[r, 0]].abs().max(1.0),
            "row {r}: {got} vs {}",
            want[[r, 0]]
        );
    }
}

#[test]
fn a_resumed_run_continues_exactly() {
    let dir = Dir::new();
    let data = dir.bike_like(100, 2);
    let train = |extra: &[&str]| {
        train_on(&data)
            .args(["--hidden", "7,5", "--batch", "13"])
            .args(extra)
            .current_dir(dir.0.path())
            .assert()
            .success();
    };
    train(&[
        "--epochs",
        "6",
        "--metrics",
        "straight.json",
        "--save",
        "straight.st",
    ]);
    train(&[
        "--epochs",
        "3",
        "--checkpoint",
        "ck.st",
        "--checkpoint-every",
        "1",
    ]);
    train(&[
        "--epochs",
        "6",
        "--checkpoint",
        "ck.st",
        "--resume",
        "--metrics",
        "resumed.json",
        "--save",
        "resumed.st",
    ]);
    assert_eq!(
        losses(&metrics(&dir.path("straight.json"))),
        losses(&metrics(&dir.path("resumed.json")))
    );
    let a = model_file::load(&dir.path("straight.st")).unwrap();
    let b = model_file::load(&dir.path("resumed.st")).unwrap();
    assert_eq!(a.network, b.network, "bit-identical weights");

    // A checkpoint from other flags is refused.
    train_on(&data)
        .args([
            "--hidden",
            "7,5",
            "--batch",
            "14",
            "--epochs",
            "6",
            "--checkpoint",
            "ck.st",
            "--resume",
        ])
        .current_dir(dir.0.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains("--batch 13"));
}

#[test]
fn a_diverging_run_stops_and_suggests_a_smaller_learning_rate() {
    let dir = Dir::new();
    let data = dir.bike_like(100, 3);
    train_on(&data)
        .args([
            "--lr",
            "50",
            "--epochs",
            "20",
            "--save",
            "m.st",
            "--metrics",
            "m.json",
        ])
        .current_dir(dir.0.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains("training diverged at epoch"))
        .stderr(predicate::str::contains(
            "try a smaller learning rate, e.g. --lr 12.5",
        ));
    assert!(!dir.path("m.st").exists() && !dir.path("m.json").exists());
}

#[test]
fn the_last_good_checkpoint_survives_divergence() {
    let dir = Dir::new();
    let data = dir.bike_like(100, 4);
    let run = |lr: &str, epochs: &str, resume: bool| {
        let mut cmd = train_on(&data);
        cmd.args([
            "--lr",
            lr,
            "--epochs",
            epochs,
            "--checkpoint",
            "ck.st",
            "--checkpoint-every",
            "1",
        ])
        .current_dir(dir.0.path());
        if resume {
            cmd.arg("--resume");
        }
        cmd.output().unwrap()
    };
    assert!(run("0.1", "2", false).status.success());
    // Resuming with another learning rate is refused as a different run.
    let refused = run("50", "4", true);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("resume with the same"));

    // A run that diverges writes no checkpoint of its bad weights: the good one stays.
    let good = std::fs::read(dir.path("ck.st")).unwrap();
    let diverged = run("10000", "4", false);
    let stderr = String::from_utf8_lossy(&diverged.stderr);
    assert!(!diverged.status.success());
    assert!(stderr.contains("diverged at epoch 1"), "{stderr}");
    assert_eq!(std::fs::read(dir.path("ck.st")).unwrap(), good);
    let history = model_file::load(&dir.path("ck.st"))
        .unwrap()
        .training
        .unwrap()
        .history;
    assert_eq!(history.len(), 2);
}

#[test]
fn bad_input_exits_non_zero_names_the_place_and_writes_nothing() {
    let dir = Dir::new();
    let fails = |csv: &str, extra: &[&str], needles: &[&str]| {
        let data = dir.path("bad.csv");
        std::fs::write(&data, csv).unwrap();
        let out = backprop()
            .args([
                "train",
                "--backend",
                "cpu",
                "--quiet",
                "--save",
                "m.st",
                "--metrics",
                "m.json",
                "--plot",
                "p.png",
            ])
            .arg("--data")
            .arg(&data)
            .args(extra)
            .current_dir(dir.0.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        for n in needles {
            assert!(stderr.contains(n), "{n:?} not in {stderr}");
        }
        for f in ["m.st", "m.json", "p.png"] {
            assert!(!dir.path(f).exists(), "{f} written");
        }
    };
    let mut numeric = String::from("a,b,cnt\n");
    for i in 0..40 {
        numeric.push_str(&format!(
            "{i},{},{}\n",
            if i == 17 {
                "n/a".to_string()
            } else {
                (i * 2).to_string()
            },
            i % 2
        ));
    }
    fails(
        &numeric,
        &["--target", "cnt"],
        &[
            "bad.csv",
            "line 19, column 2 (`b`)",
            "`n/a` is not a number",
        ],
    );
    fails(
        "a,cnt\n1,2\n3\n",
        &["--target", "cnt"],
        &["bad.csv", "line 3"],
    );
    fails(
        "a,cnt\n1,2\n",
        &["--target", "count"],
        &["--target", "`count`", "a, cnt"],
    );
    fails("", &["--target", "cnt"], &["bad.csv", "empty"]);
    fails("a,cnt\n1,2\n", &[], &["--target", "name the target"]);
    let mut out_of_range = String::from("a,y\n");
    for i in 0..40 {
        out_of_range.push_str(&format!("{i},{}\n", if i == 30 { 3 } else { i % 2 }));
    }
    fails(
        &out_of_range,
        &["--target", "y", "--output", "sigmoid", "--split", "random"],
        &["bad.csv", "line 32", "outside [0, 1]"],
    );
    fails(
        &numeric.replace("n/a", "5"),
        &["--target", "cnt", "--lr", "0"],
        &["--lr"],
    );
    fails(
        &numeric.replace("n/a", "5"),
        &["--target", "cnt", "--hidden", "4,0"],
        &["--hidden"],
    );
}

#[test]
fn one_hot_sigmoid_targets_report_accuracy() {
    let dir = Dir::new();
    let mut csv = String::from("x1,x2,yes,no\n");
    let mut rng = common::rng(5);
    for _ in 0..400 {
        use rand::Rng;
        let (a, b): (f64, f64) = (rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
        let yes = u8::from(a + b > 0.0);
        csv.push_str(&format!("{a:.3},{b:.3},{yes},{}\n", 1 - yes));
    }
    std::fs::write(dir.path("c.csv"), csv).unwrap();
    let out = backprop()
        .args([
            "train",
            "--backend",
            "cpu",
            "--quiet",
            "--data",
            "c.csv",
            "--target",
            "yes,no",
        ])
        .args([
            "--output",
            "sigmoid",
            "--epochs",
            "60",
            "--lr",
            "2",
            "--metrics",
            "m.json",
        ])
        .current_dir(dir.0.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("accuracy"));
    let accuracy = metrics(&dir.path("m.json"))["test_accuracy"]
        .as_f64()
        .unwrap();
    assert!(accuracy > 0.9, "a linearly separable problem: {accuracy}");
}

#[test]
fn the_gpu_follows_the_cpu_training_curve() {
    let Some(ctx) = backprop::gpu::context::GpuContext::for_tests() else {
        return;
    };
    let dir = Dir::new();
    // The GPU with its kernels tuned on this device (cached in the test's own directory) and
    // with the heuristic ones: both must follow the CPU.
    for (backend, file, tune) in [
        ("cpu", "cpu.json", "--no-tune"),
        ("gpu", "tuned.json", ""),
        ("gpu", "guessed.json", "--no-tune"),
    ] {
        let mut cmd = backprop();
        cmd.args([
            "train",
            "--quiet",
            "--epochs",
            "3",
            "--backend",
            backend,
            "--adapter",
            &ctx.info.name,
            "--metrics",
            file,
        ])
        .env("BACKPROP_CACHE_DIR", dir.path("cache"))
        .current_dir(dir.0.path());
        if !tune.is_empty() {
            cmd.arg(tune);
        }
        let out = cmd.assert().success();
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        // Tuning says what it did, one line per newly tuned shape.
        assert_eq!(
            stderr.contains("tuned "),
            file == "tuned.json",
            "{file}: {stderr}"
        );
    }
    assert!(dir.path("cache").join("tune.json").exists());
    let cpu_curve = losses(&metrics(&dir.path("cpu.json")));
    assert_eq!(cpu_curve.len(), 3);
    for gpu_file in ["tuned.json", "guessed.json"] {
        let gpu_curve = losses(&metrics(&dir.path(gpu_file)));
        check_curves(&cpu_curve, &gpu_curve);
    }
}

fn check_curves(cpu_curve: &[(f64, f64)], gpu_curve: &[(f64, f64)]) {
    for (epoch, (c, g)) in cpu_curve.iter().zip(gpu_curve).enumerate() {
        // Both compute in fp32 and differ only in summation order (~1e-7 relative per step,
        // measured at most 5e-7 after 10 epochs on lavapipe); 1e-5 allows for the growth of
        // that difference over 1,450 steps while catching any real divergence.
        for (a, b) in [(c.0, g.0), (c.1, g.1)] {
            assert!(
                (a - b).abs() <= 1e-5 * a,
                "epoch {}: cpu {a} gpu {b}",
                epoch + 1
            );
        }
    }
}

/// Trains on `data` with `args` on `backend` and returns the metrics JSON and stdout.
fn train_json(dir: &Dir, data: &Path, backend: &str, args: &[&str]) -> (serde_json::Value, String) {
    let metrics_file = format!("{backend}.json");
    let out = backprop()
        .args([
            "train",
            "--quiet",
            "--backend",
            backend,
            "--no-tune",
            "--metrics",
            &metrics_file,
        ])
        .arg("--data")
        .arg(data)
        .args(args)
        .current_dir(dir.0.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        metrics(&dir.path(&metrics_file)),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_softmax_classifier_learns_text_labels_on_both_backends_and_predicts_labels() {
    let dir = Dir::new();
    let data = dir.0.path().join("flowers.csv");
    std::fs::write(&data, common::flowers_csv(40, 3)).unwrap();
    let args = [
        "--target",
        "species",
        "--loss",
        "cross-entropy",
        "--activation",
        "relu",
        "--hidden",
        "16",
        "--epochs",
        "40",
        "--batch",
        "8",
        "--lr",
        "0.1",
        "--split",
        "random",
        "--save",
        "flowers.st",
    ];
    let (cpu, stdout) = train_json(&dir, &data, "cpu", &args);
    // Separable clusters: every record right, reported as classes with a confusion matrix.
    for part in ["training", "validation", "test"] {
        assert_eq!(cpu[format!("{part}_accuracy")], 1.0, "{part}: {cpu}");
    }
    assert_eq!(cpu["loss"], "cross-entropy");
    assert!(
        stdout.contains(
            "3 classes of `species` (setosa, versicolor, virginica): a 3-way softmax output"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("confusion matrix"), "{stdout}");
    let matrix = cpu["test_confusion_matrix"].as_array().unwrap();
    assert_eq!(matrix.len(), 3);
    let epochs = cpu["epochs"].as_array().unwrap();
    assert!(
        epochs[0]["val_metrics"]["accuracy"].is_number(),
        "{}",
        epochs[0]
    );

    // The GPU follows the same curve (fp32 both sides; summation order only).
    if let Some(ctx) = backprop::gpu::context::GpuContext::for_tests() {
        let mut gpu_args = args.to_vec();
        gpu_args.extend(["--adapter", &ctx.info.name]);
        let (gpu, _) = train_json(&dir, &data, "gpu", &gpu_args);
        check_curves(&losses(&cpu), &losses(&gpu));
        assert_eq!(gpu["test_accuracy"], 1.0);
    }

    // Predictions are labels with a probability per class, and accuracy when labels are there.
    let out = backprop()
        .args([
            "predict",
            "--backend",
            "cpu",
            "--model",
            "flowers.st",
            "--out",
            "p.csv",
        ])
        .arg("--data")
        .arg(&data)
        .current_dir(dir.0.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("species: 120 records, accuracy 100.00%"),
        "{stderr}"
    );
    let table = read_text(&backprop::data::Source::File(dir.path("p.csv"))).unwrap();
    let header = table.names.join(",");
    assert!(
        header.ends_with(
            "species_predicted,species_p_setosa,species_p_versicolor,species_p_virginica"
        ),
        "{header}"
    );
    for r in 0..table.n_rows() {
        let row = table.record(r);
        assert_eq!(row[4], row[5], "the prediction is the true species");
        let p: f64 = row[6..9].iter().map(|v| v.parse::<f64>().unwrap()).sum();
        assert!((p - 1.0).abs() < 1e-5, "{row:?}");
    }
}

#[test]
fn two_classes_take_one_sigmoid_output_and_an_unseen_class_is_named() {
    let dir = Dir::new();
    let text: String = common::flowers_csv(30, 4)
        .lines()
        .filter(|l| !l.ends_with("virginica"))
        .map(|l| format!("{l}\n"))
        .collect();
    let data = dir.0.path().join("two.csv");
    std::fs::write(&data, &text).unwrap();
    let (m, stdout) = train_json(
        &dir,
        &data,
        "cpu",
        &[
            "--target",
            "species",
            "--loss",
            "cross-entropy",
            "--hidden",
            "8",
            "--epochs",
            "20",
            "--lr",
            "0.2",
            "--split",
            "random",
            "--save",
            "two.st",
        ],
    );
    assert!(
        stdout.contains("one sigmoid output, the probability of `versicolor`"),
        "{stdout}"
    );
    assert_eq!(m["test_accuracy"], 1.0);
    // A file with a third species: predict names the line and the class.
    let bad = dir.0.path().join("three.csv");
    std::fs::write(&bad, common::flowers_csv(5, 5)).unwrap();
    let out = backprop()
        .args(["predict", "--backend", "cpu", "--model", "two.st"])
        .arg("--data")
        .arg(&bad)
        .current_dir(dir.0.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("class `virginica` is not one the model knows"),
        "{stderr}"
    );
}

#[test]
fn a_relu_regressor_with_biases_reaches_its_loss_on_both_backends() {
    let dir = Dir::new();
    let data = dir.bike_like(120, 6);
    let args = [
        "--target",
        "cnt",
        "--date",
        "dteday",
        "--drop",
        "extra",
        "--missing",
        "mean",
        "--activation",
        "relu",
        "--hidden",
        "16",
        "--epochs",
        "30",
        "--lr",
        "0.05",
    ];
    let (cpu, stdout) = train_json(&dir, &data, "cpu", &args);
    // cnt depends on the hour, the temperature and the weather: the network finds it.
    let train_loss = cpu["training_loss"].as_f64().unwrap();
    assert!(train_loss < 0.1, "training MSE (standardised) {train_loss}");
    // Measured 0.82 on validation (and 0.05 training MSE): the bound leaves room for the
    // platform's summation order, not for a network that did not learn.
    let r2 = cpu["validation_r2"]["cnt"].as_f64().unwrap();
    assert!(r2 > 0.7, "validation R² {r2}");
    assert!(stdout.contains("relu hidden"), "{stdout}");
    if let Some(ctx) = backprop::gpu::context::GpuContext::for_tests() {
        let mut gpu_args = args.to_vec();
        gpu_args.extend(["--adapter", &ctx.info.name]);
        let (gpu, _) = train_json(&dir, &data, "gpu", &gpu_args);
        check_curves(&losses(&cpu), &losses(&gpu));
    }
}

#[test]
fn a_feature_that_gives_the_label_away_is_a_warning_naming_it() {
    let dir = Dir::new();
    // Two leaks beside the measurements: a copy of the label, and the one-hot column of
    // `setosa` that a hand-made encoding left behind.
    let text: String = common::flowers_csv(10, 7)
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let label = line.rsplit(',').next().unwrap_or_default();
            match i {
                0 => format!("{line},label_copy,is_setosa\n"),
                _ => format!("{line},{label},{}\n", u8::from(label == "setosa")),
            }
        })
        .collect();
    let data = dir.0.path().join("leaky.csv");
    std::fs::write(&data, &text).unwrap();
    let out = backprop()
        .args([
            "train",
            "--quiet",
            "--backend",
            "cpu",
            "--target",
            "species",
            "--loss",
            "cross-entropy",
            "--epochs",
            "1",
            "--split",
            "random",
        ])
        .arg("--data")
        .arg(&data)
        .current_dir(dir.0.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("feature `label_copy` equals the target `species`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("feature `is_setosa` is 1 exactly where the target `species` is `setosa`"),
        "{stderr}"
    );
    assert!(!stderr.contains("`sepal_length`"), "{stderr}");
}

/// Trains `args` on `backend` in `dir`, checkpointing every epoch; returns the metrics JSON.
fn run_with_checkpoints(
    dir: &Dir,
    backend: &str,
    args: &[&str],
    metrics: &str,
) -> serde_json::Value {
    let out = backprop()
        .args(["train", "--quiet", "--no-tune", "--backend", backend])
        .args([
            "--checkpoint",
            "ck.st",
            "--checkpoint-every",
            "1",
            "--metrics",
            metrics,
        ])
        .args(args)
        .current_dir(dir.0.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    self::metrics(&dir.path(metrics))
}

#[test]
fn adam_with_a_schedule_and_early_stopping_resumes_exactly_on_both_backends() {
    let dir = Dir::new();
    let data = dir.0.path().join("flowers.csv");
    std::fs::write(&data, common::flowers_csv(30, 11)).unwrap();
    let data = data.to_string_lossy().into_owned();
    let common_args = [
        "--data",
        data.as_str(),
        "--target",
        "species",
        "--loss",
        "cross-entropy",
        "--activation",
        "relu",
        "--hidden",
        "12",
        "--optimizer",
        "adamw",
        "--lr",
        "0.01",
        "--lr-schedule",
        "step",
        "--lr-step",
        "4",
        "--lr-gamma",
        "0.5",
        "--warmup",
        "2",
        "--patience",
        "3",
        "--batch",
        "16",
        "--drop-last",
        "--split",
        "random",
        "--epochs",
    ];
    let mut backends = vec![("cpu".to_string(), Vec::new())];
    if let Some(ctx) = backprop::gpu::context::GpuContext::for_tests() {
        backends.push((
            "gpu".to_string(),
            vec!["--adapter".to_string(), ctx.info.name],
        ));
    }
    let mut curves = Vec::new();
    for (backend, extra) in &backends {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let with = |epochs: &'static str, more: &[&'static str]| {
            let mut args = common_args.to_vec();
            args.push(epochs);
            args.extend(&extra);
            args.extend(more);
            args
        };
        let whole = run_with_checkpoints(&dir, backend, &with("40", &[]), "whole.json");
        // The same run cut after 5 epochs and resumed: the optimizer's moments and step count,
        // the best epoch and its weights come back from the checkpoint.
        std::fs::remove_file(dir.path("ck.st")).unwrap();
        run_with_checkpoints(&dir, backend, &with("5", &[]), "first.json");
        let resumed =
            run_with_checkpoints(&dir, backend, &with("40", &["--resume"]), "resumed.json");
        assert_eq!(
            whole["epochs"], resumed["epochs"],
            "{backend}: every epoch, bit for bit"
        );
        assert_eq!(whole["test_loss"], resumed["test_loss"], "{backend}");
        assert_eq!(whole["best_epoch"], resumed["best_epoch"], "{backend}");
        assert_eq!(
            whole["stopped_early"], resumed["stopped_early"],
            "{backend}"
        );
        // Early stopping kept the best epoch: the reported validation loss is its loss.
        let best = whole["best_epoch"].as_u64().unwrap() as usize;
        let epochs = whole["epochs"].as_array().unwrap();
        assert_eq!(
            epochs[best - 1]["val_loss"],
            whole["validation_loss"],
            "{backend}"
        );
        assert_eq!(whole["test_accuracy"], 1.0, "{backend}");
        curves.push(losses(&whole));
        std::fs::remove_file(dir.path("ck.st")).unwrap();
    }
    if let [cpu, gpu] = curves.as_slice() {
        let n = cpu.len().min(gpu.len());
        check_curves(&cpu[..n], &gpu[..n]);
    }
}

#[test]
fn separate_validation_and_test_files_are_encoded_like_the_training_data() {
    let dir = Dir::new();
    for (name, per_class, seed) in [("train.csv", 30, 1), ("val.csv", 5, 2), ("test.csv", 7, 3)] {
        std::fs::write(dir.path(name), common::flowers_csv(per_class, seed)).unwrap();
    }
    let (m, stdout) = train_json(
        &dir,
        &dir.path("train.csv"),
        "cpu",
        &[
            "--val",
            "val.csv",
            "--test",
            "test.csv",
            "--target",
            "species",
            "--loss",
            "cross-entropy",
            "--optimizer",
            "adam",
            "--hidden",
            "16",
            "--epochs",
            "60",
            "--batch",
            "500",
        ],
    );
    // Every training record trains (none held out), the parts are the files' records.
    assert!(stdout.contains(": 90 training records"), "{stdout}");
    let support = |part: &str| -> u64 {
        m[format!("{part}_per_class")]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["support"].as_u64().unwrap())
            .sum()
    };
    assert_eq!((support("validation"), support("test")), (15, 21));
    assert_eq!(m["test_accuracy"], 1.0);
    assert!(
        stdout.contains("learning rate 0.001 (--lr auto for adam)"),
        "{stdout}"
    );
    assert_eq!(
        m["config"]["batch"], 90,
        "a batch larger than the data is clipped"
    );
}

#[test]
fn nothing_held_out_trains_on_every_record_and_early_stopping_then_is_refused() {
    let dir = Dir::new();
    let data = dir.bike_like(120, 7);
    let records = read_text(&backprop::data::Source::File(data.clone()))
        .unwrap()
        .n_rows();
    let metrics_path = dir.path("m.json");
    let out = train_on(&data)
        .args([
            "--split",
            "random",
            "--val-fraction",
            "0",
            "--test-fraction",
            "0",
            "--epochs",
            "3",
            "--drop",
            "extra",
            "--metrics",
        ])
        .arg(&metrics_path)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let stdout = String::from_utf8_lossy(&out);
    assert!(
        stdout.contains(&format!("{records} training records")),
        "{stdout}"
    );
    assert!(
        stdout.contains("training ")
            && !stdout.contains("validation ")
            && !stdout.contains("test "),
        "{stdout}"
    );
    let m = metrics(&metrics_path);
    let epochs = m["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 3);
    assert!(epochs.iter().all(|e| e.get("val_loss").is_none()), "{m}");
    assert!(
        m.get("validation_loss").is_none() && m["training_loss"].is_number(),
        "{m}"
    );

    // The time split's equivalent: no validation days.
    let out = train_on(&data)
        .args(["--val-days", "0", "--epochs", "2", "--drop", "extra"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let stdout = String::from_utf8_lossy(&out);
    assert!(
        stdout.contains("test ") && !stdout.contains("validation "),
        "{stdout}"
    );

    // Early stopping has nothing to watch: refused before any work, naming both flags.
    for (split, zero) in [
        (
            &["--split", "random", "--val-fraction", "0"][..],
            "--val-fraction 0",
        ),
        (&["--val-days", "0"][..], "--val-days 0"),
    ] {
        train_on(&data)
            .args(split)
            .args(["--patience", "3", "--drop", "extra"])
            .assert()
            .code(1)
            .stderr(predicate::str::contains("--patience").and(predicate::str::contains(zero)));
    }
    train_on(&data)
        .args([
            "--split",
            "random",
            "--test-fraction",
            "0",
            "--drop",
            "extra",
        ])
        .arg("--plot-predictions")
        .arg(dir.path("p.png"))
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("--plot-predictions")
                .and(predicate::str::contains("--test-fraction 0")),
        );
    assert!(!dir.path("p.png").exists());
}

#[test]
fn tol_stops_a_run_whose_training_loss_stopped_improving_and_resumes_exactly() {
    let dir = Dir::new();
    let data = dir.bike_like(90, 3);
    let metrics_path = dir.path("m.json");
    // A tolerance no epoch can meet: the first epoch sets the best loss, and the run stops
    // once n_iter_no_change + 1 epochs after it fell short (scikit-learn's count).
    let out = train_on(&data)
        .args([
            "--drop",
            "extra",
            "--epochs",
            "50",
            "--tol",
            "1e9",
            "--n-iter-no-change",
            "2",
        ])
        .arg("--metrics")
        .arg(&metrics_path)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let stdout = String::from_utf8_lossy(&out);
    assert!(stdout.contains("converged after epoch 4"), "{stdout}");
    assert!(stdout.contains("for 4 epochs on cpu"), "{stdout}");
    let m = metrics(&metrics_path);
    assert_eq!(m["converged"], 4);
    assert_eq!(m["epochs"].as_array().unwrap().len(), 4);

    // Interrupted by --epochs and resumed: the same curve as in one go.
    let whole = dir.path("whole.json");
    let args = [
        "--drop",
        "extra",
        "--tol",
        "1e-9",
        "--n-iter-no-change",
        "6",
        "--seed",
        "5",
    ];
    train_on(&data)
        .args(args)
        .args(["--epochs", "12", "--metrics"])
        .arg(&whole)
        .assert()
        .success();
    let checkpoint = dir.path("c.safetensors");
    train_on(&data)
        .args(args)
        .args(["--epochs", "5", "--checkpoint-every", "5", "--checkpoint"])
        .arg(&checkpoint)
        .assert()
        .success();
    let resumed = dir.path("resumed.json");
    train_on(&data)
        .args(args)
        .args(["--epochs", "12", "--resume", "--checkpoint"])
        .arg(&checkpoint)
        .arg("--metrics")
        .arg(&resumed)
        .assert()
        .success();
    assert_eq!(losses(&metrics(&whole)), losses(&metrics(&resumed)));
    // Another tolerance is another run.
    train_on(&data)
        .args([
            "--drop",
            "extra",
            "--tol",
            "1e-3",
            "--n-iter-no-change",
            "6",
            "--seed",
            "5",
        ])
        .args(["--epochs", "12", "--resume", "--checkpoint"])
        .arg(&checkpoint)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("resume with the same"));
}

#[test]
fn alpha_shrinks_the_weights_but_not_the_biases_and_no_shuffle_keeps_the_order() {
    let dir = Dir::new();
    let data = dir.bike_like(120, 11);
    let run = |name: &str, extra: &[&str]| {
        let path = dir.path(name);
        train_on(&data)
            .args(["--drop", "extra", "--epochs", "4", "--seed", "2"])
            .args(extra)
            .arg("--save")
            .arg(&path)
            .assert()
            .success();
        model_file::load(&path).unwrap()
    };
    let plain = run("plain.safetensors", &[]);
    let decayed = run("alpha.safetensors", &["--alpha", "20"]);
    let norm = |m: &model_file::SavedModel| -> f64 {
        m.network
            .weights()
            .iter()
            .flat_map(|w| w.iter())
            .map(|v| v * v)
            .sum()
    };
    assert!(
        norm(&decayed) < 0.8 * norm(&plain),
        "{} vs {}",
        norm(&decayed),
        norm(&plain)
    );
    let config = decayed.training.unwrap().config;
    assert!((config.optimizer.l2_weights - 20.0 / 32.0).abs() < 1e-12);
    // The same records in their order every epoch: two runs with other shuffle seeds agree.
    let a = run("a.safetensors", &["--no-shuffle", "--shuffle-seed", "1"]);
    let b = run("b.safetensors", &["--no-shuffle", "--shuffle-seed", "9"]);
    assert_eq!(a.network, b.network);
    assert_ne!(a.network, plain.network);
}
