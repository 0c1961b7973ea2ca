//! The Python package, from this test command like everything else: `pip install ./python`
//! into a fresh virtual environment (as a user on a fresh machine would), then its pytest
//! suite (`python/tests`): scikit-learn's estimator checks, the comparison with scikit-learn's
//! MLP, the GPU against the CPU, pickling, model files with the command line, bad inputs.
//!
//! Needs Python 3.11+ with `venv` and pip's registry. Without Python the test says so and
//! passes, unless `BACKPROP_REQUIRE_PYTHON=1` (CI), which makes a missing Python a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> Option<String> {
    let candidate = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let version = Command::new(&candidate)
        .args(["-c", "import sys, venv; print(sys.version_info >= (3, 11))"])
        .output()
        .ok()?;
    (String::from_utf8_lossy(&version.stdout).trim() == "True").then_some(candidate)
}

fn run(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: could not start: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{}", String::from_utf8_lossy(&output.stdout));
}

#[test]
fn the_python_package_installs_with_pip_and_passes_its_tests() {
    let Some(python) = python() else {
        assert!(
            std::env::var("BACKPROP_REQUIRE_PYTHON").as_deref() != Ok("1"),
            "BACKPROP_REQUIRE_PYTHON=1 but there is no Python 3.11+ with venv"
        );
        eprintln!("skipped: no Python 3.11+ with venv (BACKPROP_REQUIRE_PYTHON=1 makes this fail)");
        return;
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work: PathBuf = repo.join("target").join("python-tests");
    std::fs::create_dir_all(&work).unwrap();
    let venv = work.join("venv");
    run(
        Command::new(&python)
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
        "python -m venv",
    );
    let bin = venv.join(if cfg!(windows) { "Scripts" } else { "bin" });
    run(
        Command::new(bin.join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("{}[test]", repo.join("python").display()))
            .current_dir(repo),
        "pip install ./python[test]",
    );
    // Run outside the source tree, so that the installed package is the one imported.
    run(
        Command::new(bin.join("python"))
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"])
            .arg(repo.join("python").join("tests"))
            .current_dir(&work)
            .env("BACKPROP_BIN", env!("CARGO_BIN_EXE_backprop"))
            .env("BACKPROP_REQUIRE_CLI", "1")
            // The GPU tests run the heuristic kernels: tuning them on lavapipe takes minutes.
            .env("BACKPROP_TUNE", "0"),
        "pytest python/tests",
    );
}
