//! The examples in `examples/` run and succeed (`cargo test` builds them beside the tests; each
//! checks its own results and fails with a non-zero exit).

use std::path::PathBuf;
use std::process::Command;

/// Where cargo put the examples of this build: `target/<profile>/examples`.
fn examples_dir() -> PathBuf {
    let test_binary = std::env::current_exe().expect("the test binary's path");
    test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples"))
        .expect("target/<profile>/deps")
}

fn run(name: &str, envs: &[(&str, &str)]) -> String {
    let path = examples_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let output = Command::new(&path)
        .envs(envs.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (built by `cargo test`?)", path.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{name}: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn the_seeds_exercise_gives_seed_002s_deltas() {
    assert!(run("seeds_exercise", &[]).contains("matches seed 002"));
}

#[test]
fn the_iris_classifier_reaches_90_percent_and_round_trips_its_file() {
    let out = run("iris", &[]);
    assert!(
        out.contains("test accuracy") && out.contains("predicted the same"),
        "{out}"
    );
}

#[test]
fn cpu_and_gpu_train_the_same_curve() {
    // On lavapipe where CI has it; the example fails under BACKPROP_REQUIRE_GPU=1 without one.
    // The heuristic kernels: tuning every product on lavapipe takes a minute and a half.
    let out = run(
        "cpu_vs_gpu",
        &[("BACKPROP_ADAPTER", "llvmpipe"), ("BACKPROP_TUNE", "0")],
    );
    assert!(out.contains("cpu:"), "{out}");
    if std::env::var("BACKPROP_REQUIRE_GPU").as_deref() == Ok("1") {
        assert!(out.contains("the curves agree"), "{out}");
    }
}
