//! Distributed training under `mpirun` (built with `--features mpi`): data- and
//! hidden-layer-parallel runs of 1, 2 and 3 ranks train the model one process trains, on the
//! CPU in f64 and on the GPU (lavapipe in CI) in f32; a distributed run resumes exactly; only
//! rank 0 writes; a rank that fails stops every rank with its error.
//!
//! Each test launches `mpirun --oversubscribe` itself (so that np 1, 2 and 3 are compared in
//! one test); the ranks are told they may run as root, as CI does.

#![cfg(feature = "mpi")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use backprop::model_file;
use rand::Rng;

/// How long one launch may take before the test calls it a hang.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(300);

fn mpirun_found() -> bool {
    let found = std::process::Command::new("mpirun")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var("BACKPROP_REQUIRE_MPI").is_ok_and(|v| v == "1") {
        panic!("BACKPROP_REQUIRE_MPI=1 but `mpirun` was not found: install Open MPI (openmpi-bin)");
    }
    if !found {
        eprintln!("skipped: no mpirun (set BACKPROP_REQUIRE_MPI=1 to fail instead)");
    }
    found
}

/// `mpirun --oversubscribe <launch>` in `dir` (`launch`: `-np N program args`, or several
/// such separated by `:`), killed after [`LAUNCH_TIMEOUT`]. Ranks run unbound (2 cores, 3
/// ranks) and may run as root, as in CI.
fn mpirun(launch: &[&str], dir: &Path) -> Output {
    assert_cmd::Command::new("mpirun")
        .args(["--oversubscribe", "--bind-to", "none"])
        .args(launch)
        .current_dir(dir)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .timeout(LAUNCH_TIMEOUT)
        .output()
        .expect("mpirun starts")
}

/// `backprop <args>` as `np` ranks (np 0: one process, no launcher), in `dir`.
fn launch(np: usize, args: &[&str], dir: &Path) -> Output {
    let bin = env!("CARGO_BIN_EXE_backprop");
    if np == 0 {
        return assert_cmd::Command::new(bin)
            .args(args)
            .current_dir(dir)
            .timeout(LAUNCH_TIMEOUT)
            .output()
            .expect("backprop starts");
    }
    let np = np.to_string();
    mpirun(&args_with(&["-np", &np, bin], args), dir)
}

/// Two ranks that run `backprop` with arguments of their own: MPI's MPMD launch.
fn launch_two(rank0: &[&str], rank1: &[&str], dir: &Path) -> Output {
    let bin = env!("CARGO_BIN_EXE_backprop");
    let mut launch = vec!["-np", "1", bin];
    launch.extend(rank0);
    launch.extend([":", "-np", "1", bin]);
    launch.extend(rank1);
    mpirun(&launch, dir)
}

/// [`launch`], which must succeed.
fn run(np: usize, args: &[&str], dir: &Path) -> Output {
    let out = launch(np, args, dir);
    assert!(
        out.status.success(),
        "np {np}: backprop {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The largest difference between two saved models' tensors, relative to the largest value of
/// each tensor (weights, biases, moments and step alike).
fn max_relative_difference(a: &Path, b: &Path) -> f64 {
    let (a, b) = (model_file::load(a).unwrap(), model_file::load(b).unwrap());
    let tensors = |m: &model_file::SavedModel| -> Vec<Vec<f64>> {
        let n = &m.network;
        let mut all: Vec<Vec<f64>> = n
            .weights()
            .iter()
            .map(|w| w.iter().copied().collect())
            .collect();
        all.extend(n.biases().into_iter().flatten().map(|b| b.to_vec()));
        for moment in m.optimizer.iter().flat_map(|o| &o.moments) {
            all.extend(moment.weights.iter().map(|w| w.iter().copied().collect()));
            all.extend(moment.biases.iter().flatten().map(|b| b.to_vec()));
        }
        all
    };
    let (ta, tb) = (tensors(&a), tensors(&b));
    assert_eq!(ta.len(), tb.len(), "the models hold different tensors");
    assert_eq!(a.network.layer_sizes(), b.network.layer_sizes());
    assert_eq!(
        a.optimizer.as_ref().map(|o| o.step),
        b.optimizer.as_ref().map(|o| o.step)
    );
    ta.iter()
        .zip(&tb)
        .map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            let scale = x.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
            x.iter()
                .zip(y)
                .fold(0.0f64, |m, (p, q)| m.max((p - q).abs() / scale))
        })
        .fold(0.0, f64::max)
}

/// Asserts that two saved models differ by less than `bound` ([`max_relative_difference`]),
/// and says by how much (`--nocapture` shows the measured figures).
fn assert_models_within(a: &Path, b: &Path, bound: f64, what: &str) {
    let difference = max_relative_difference(a, b);
    assert!(difference < bound, "{what}: {difference:e}");
    eprintln!("{what}: {difference:e}");
}

/// A random classification problem: 6 numeric features, 3 classes that depend on them, 131
/// records (a prime: batches and shares do not divide it).
fn classes_csv(dir: &Path) -> PathBuf {
    let mut rng = common::rng(13);
    let mut text = String::from("a,b,c,d,e,f,label\n");
    for _ in 0..131 {
        let v: Vec<f64> = (0..6).map(|_| rng.random_range(-2.0..2.0)).collect();
        let label = match v[0] + 0.5 * v[1] - v[2] * v[3] {
            s if s < -0.5 => "low",
            s if s < 0.7 => "mid",
            _ => "high",
        };
        let cells: Vec<String> = v.iter().map(|x| format!("{x:.5}")).collect();
        text.push_str(&format!("{},{label}\n", cells.join(",")));
    }
    let path = dir.join("classes.csv");
    std::fs::write(&path, text).unwrap();
    path
}

fn args_with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    base.iter().chain(extra).copied().collect()
}

/// The bike data (the built-in set) and a random classifier, trained in f64 on the CPU by one
/// process and by 2 and 3 ranks, split by records and by hidden units. The ranks sum the same
/// terms in another order, so the models differ by rounding alone: the bound, 1e-12 of each
/// tensor's largest value (~5000 f64 epsilons), is far above the 1e-16 to 7e-15 measured.
#[test]
fn data_and_hidden_parallel_runs_train_the_one_process_model_in_f64() {
    if !mpirun_found() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bike = [
        "train",
        "--backend",
        "cpu",
        "--precision",
        "f64",
        "--quiet",
        "--epochs",
        "2",
    ];
    run(0, &args_with(&bike, &["--save", "one.safetensors"]), d);
    for (np, parallel) in [(2, "data"), (3, "data"), (2, "hidden"), (3, "hidden")] {
        let name = format!("{parallel}{np}.safetensors");
        let out = run(
            np,
            &args_with(&bike, &["--parallel", parallel, "--save", &name]),
            d,
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            stdout.matches("trained [").count(),
            1,
            "rank 0 alone reports:\n{stdout}"
        );
        assert_models_within(
            &d.join("one.safetensors"),
            &d.join(&name),
            1e-12,
            &format!("bike, {parallel} np {np}"),
        );
    }

    let data = classes_csv(d);
    let data = data.to_str().unwrap();
    let random = [
        "train",
        "--backend",
        "cpu",
        "--precision",
        "f64",
        "--quiet",
        "--data",
        data,
        "--target",
        "label",
        "--loss",
        "cross-entropy",
        "--activation",
        "relu",
        "--optimizer",
        "adamw",
        "--batch",
        "10",
        "--epochs",
        "3",
        "--seed",
        "7",
    ];
    for (hidden, modes) in [("7,5", &["data"][..]), ("11", &["data", "hidden"][..])] {
        let one = format!("random-{hidden}.safetensors");
        run(
            0,
            &args_with(&random, &["--hidden", hidden, "--save", &one]),
            d,
        );
        for parallel in modes {
            for np in [2, 3] {
                let name = format!("random-{hidden}-{parallel}{np}.safetensors");
                run(
                    np,
                    &args_with(
                        &random,
                        &["--hidden", hidden, "--parallel", parallel, "--save", &name],
                    ),
                    d,
                );
                assert_models_within(
                    &d.join(&one),
                    &d.join(&name),
                    1e-12,
                    &format!("classes, hidden {hidden}, {parallel} np {np}"),
                );
            }
        }
    }
}

/// The same on the GPU (lavapipe in CI): every rank computes in f32, one process with its fused
/// update, the ranks through `apply_gradient`. fp32 rounds each product to 6e-8 and a gradient
/// sums up to 10 records' terms (each rank fewer, in another order; the ranks' shares are added
/// in f32 too), so the runs part by a few 1e-8 of a weight per step, and Adam's normalised steps
/// carry such differences on rather than damp them: over 3 epochs of 14 steps, measured 7e-8 to
/// 2e-7 of each tensor's largest value; the bound, 1e-5, is 50 times that.
#[test]
fn data_and_hidden_parallel_runs_follow_one_process_on_the_gpu() {
    if !mpirun_found() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = classes_csv(d);
    let adapter = std::env::var("BACKPROP_TEST_ADAPTER").unwrap_or_else(|_| "llvmpipe".into());
    let base = [
        "train",
        "--backend",
        "gpu",
        "--adapter",
        &adapter,
        "--no-tune",
        "--quiet",
        "--data",
        data.to_str().unwrap(),
        "--target",
        "label",
        "--loss",
        "cross-entropy",
        "--hidden",
        "12",
        "--optimizer",
        "adam",
        "--batch",
        "10",
        "--epochs",
        "3",
    ];
    run(0, &args_with(&base, &["--save", "one.safetensors"]), d);
    for (np, parallel) in [(2, "data"), (3, "data"), (2, "hidden"), (3, "hidden")] {
        let name = format!("{parallel}{np}.safetensors");
        let out = run(
            np,
            &args_with(&base, &["--parallel", parallel, "--save", &name]),
            d,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("rank 1 of {np}: backend:")),
            "{stderr}"
        );
        assert_models_within(
            &d.join("one.safetensors"),
            &d.join(&name),
            1e-5,
            &format!("gpu, {parallel} np {np}"),
        );
    }
}

/// A distributed run cut after 2 of 4 epochs and resumed from its checkpoint (by 2 ranks)
/// ends where the uninterrupted 2-rank run ends, bit for bit, in both modes; rank 1 writes
/// nothing (its --save names a file of its own, which must not appear).
#[test]
fn a_distributed_run_resumes_exactly_and_only_rank_0_writes() {
    if !mpirun_found() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = classes_csv(d);
    let base = [
        "train",
        "--backend",
        "cpu",
        "--quiet",
        "--data",
        data.to_str().unwrap(),
        "--target",
        "label",
        "--loss",
        "cross-entropy",
        "--hidden",
        "9",
        "--optimizer",
        "adamw",
        "--batch",
        "16",
        "--lr-schedule",
        "step",
        "--lr-step",
        "1",
        "--lr-gamma",
        "0.7",
    ];
    for parallel in ["data", "hidden"] {
        let whole = format!("whole-{parallel}.safetensors");
        run(
            2,
            &args_with(
                &base,
                &["--parallel", parallel, "--epochs", "4", "--save", &whole],
            ),
            d,
        );
        let checkpoint = format!("checkpoint-{parallel}.safetensors");
        let first = args_with(
            &base,
            &[
                "--parallel",
                parallel,
                "--epochs",
                "2",
                "--checkpoint",
                &checkpoint,
                "--checkpoint-every",
                "1",
            ],
        );
        run(2, &first, d);
        let resumed = format!("resumed-{parallel}.safetensors");
        let rest = args_with(
            &base,
            &[
                "--parallel",
                parallel,
                "--epochs",
                "4",
                "--checkpoint",
                &checkpoint,
                "--resume",
                "--save",
            ],
        );
        // MPMD: rank 0 and rank 1 are given different --save paths.
        let out = launch_two(
            &args_with(&rest, &[&resumed]),
            &args_with(&rest, &["rank1.safetensors"]),
            d,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            max_relative_difference(&d.join(&whole), &d.join(&resumed)),
            0.0,
            "{parallel}: the resumed run differs"
        );
        assert!(
            !d.join("rank1.safetensors").exists(),
            "rank 1 wrote its --save"
        );
    }
}

/// Rank 1 cannot read its --data: every rank stops, non-zero, with rank 1's error named once,
/// well before the timeout, and rank 0 writes nothing.
#[test]
fn a_rank_that_cannot_read_its_input_stops_every_rank() {
    if !mpirun_found() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = classes_csv(d);
    let data = data.to_str().unwrap();
    let common = [
        "train",
        "--backend",
        "cpu",
        "--quiet",
        "--target",
        "label",
        "--loss",
        "cross-entropy",
        "--epochs",
        "50",
        "--save",
        "model.safetensors",
        "--data",
    ];
    let (rank0, rank1) = (
        args_with(&common, &[data]),
        args_with(&common, &["no-such-file.csv"]),
    );
    let started = std::time::Instant::now();
    let out = launch_two(&rank0, &rank1, d);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("error: rank 1 of 2:").count(),
        1,
        "rank 1's error, once:\n{stderr}"
    );
    assert!(stderr.contains("no-such-file.csv"), "{stderr}");
    assert!(!stderr.contains("error: rank 0"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    assert!(!d.join("model.safetensors").exists());
}

/// Ranks that read different data (a node with another copy of the file) refuse to train.
#[test]
fn ranks_that_read_different_data_refuse_to_train() {
    if !mpirun_found() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = classes_csv(d);
    let other = d.join("other.csv");
    let text = std::fs::read_to_string(&data).unwrap();
    std::fs::write(&other, text.replacen("-", "", 1)).unwrap();
    let common = [
        "train",
        "--backend",
        "cpu",
        "--quiet",
        "--target",
        "label",
        "--loss",
        "cross-entropy",
        "--epochs",
        "2",
        "--data",
    ];
    let out = launch_two(
        &args_with(&common, &[data.to_str().unwrap()]),
        &args_with(&common, &[other.to_str().unwrap()]),
        d,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("different from rank 0's"), "{stderr}");
}

/// `bench` under mpirun reports, per mode, the step time, the one-process time, the scaling
/// efficiency and the share spent communicating; hidden mode refuses two hidden layers as a
/// row of the table, not a crash.
#[test]
fn bench_under_mpirun_reports_scaling_and_communication() {
    if !mpirun_found() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        2,
        &[
            "bench",
            "--backend",
            "cpu",
            "--sizes",
            "64x9x31x3,16x5x4x4x2",
            "--steps",
            "3",
            "--budget",
            "1",
            "--json",
        ],
        dir.path(),
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON table");
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 4, "{rows:?}");
    for row in &rows[..2] {
        assert_eq!(row["ranks"], 2);
        // Communication is part of a step: at most the slowest sample's step time (and a
        // little for the broadcasts that keep the ranks' sampling together).
        let median = row["median_ms"].as_f64().unwrap();
        let slowest = row["max_ms"].as_f64().unwrap();
        let comm = row["communication_ms"].as_f64().unwrap();
        assert!(median > 0.0 && comm > 0.0 && comm <= slowest * 1.1, "{row}");
        assert!(row["scaling_efficiency"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["bytes_per_step"].as_f64().unwrap() > 0.0, "{row}");
    }
    // Data-parallel moves every parameter, hidden-parallel records x outputs numbers (and one
    // to say whether a rank was interrupted), in f32 for the f32 CPU backend; the broadcasts
    // that keep the ranks' sampling together add a few bytes per step.
    let per_step = |row: &serde_json::Value| row["bytes_per_step"].as_f64().unwrap();
    let (params, outputs) = ((9 * 31 + 31 * 3) as f64, (64 * 3) as f64);
    assert!(
        (per_step(&rows[0]) - 4.0 * (params + 1.0)).abs() < 16.0,
        "{}",
        rows[0]
    );
    assert!(
        (per_step(&rows[1]) - 4.0 * (outputs + 1.0)).abs() < 16.0,
        "{}",
        rows[1]
    );
    assert!(
        rows[3]["error"]
            .as_str()
            .unwrap()
            .contains("one hidden layer"),
        "{}",
        rows[3]
    );
}
