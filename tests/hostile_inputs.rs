//! Hostile input through the binary, as a table: corrupt and lying files, absurd sizes and
//! flags, outputs aimed at inputs, bad environment settings. Every case asserts that the
//! process exits with a plain failure (never 101 for a panic, never a signal), that standard
//! error names the place (file, flag, line, column, array), that no file in the working
//! directory changed or appeared (no output, no stray temporary), and that nothing printed
//! "panicked". Then the cases that must succeed on unusual paths: a closed standard output,
//! SIGINT/SIGTERM in the middle of training, symlinked outputs, SVG plots, exact resume.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use backprop::data::{
    self, Missing, PipelineOptions, SeparateSets, Source, SplitKind, SplitOptions,
};
use backprop::model_file::{self, SavedModel};
use backprop::{Activation, Network};
use ndarray::{array, ArrayD};
use rand::SeedableRng;

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_backprop"))
}

/// Whether the GPU cases can run here (CI sets BACKPROP_REQUIRE_GPU=1, so they must there).
fn gpu_adapter() -> Option<String> {
    backprop::gpu::context::GpuContext::for_tests().map(|ctx| ctx.info.name)
}

// ---- files the cases start from -------------------------------------------------------------

/// A `.npy` file as NumPy 1.x writes it, with any header text and data.
fn npy_raw(header: &str, data: &[u8]) -> Vec<u8> {
    let mut header = header.as_bytes().to_vec();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header);
    out.extend(data);
    out
}

fn npy(shape: &str, values: &[f64]) -> Vec<u8> {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    npy_raw(
        &format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}"),
        &data,
    )
}

fn npy_of(a: &ArrayD<f64>) -> Vec<u8> {
    let shape: Vec<String> = a.shape().iter().map(|d| d.to_string()).collect();
    let shape = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.join(", ")),
    };
    npy(&shape, &a.iter().copied().collect::<Vec<_>>())
}

/// An `.npz` archive of raw `.npy` members, stored uncompressed.
fn npz_raw(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in members {
        zip.start_file(format!("{name}.npy"), options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn weights(w_ih: ArrayD<f64>, w_ho: ArrayD<f64>) -> Vec<u8> {
    npz_raw(&[
        ("weights_input_to_hidden", npy_of(&w_ih)),
        ("weights_hidden_to_output", npy_of(&w_ho)),
    ])
}

fn w_ih() -> ArrayD<f64> {
    array![[0.1, -0.2], [0.4, 0.5], [-0.3, 0.2]].into_dyn()
}

fn w_ho() -> ArrayD<f64> {
    array![[0.3], [-0.1]].into_dyn()
}

/// The step problem every `step` case starts from: W.npz (3 x 2, 2 x 1), X.npy, T.npy.
fn step_files(dir: &Path) {
    write(dir, "W.npz", &weights(w_ih(), w_ho()));
    write(dir, "X.npy", &npy_of(&array![[0.5, 0.1, -0.2]].into_dyn()));
    write(dir, "T.npy", &npy_of(&array![[0.6]].into_dyn()));
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// A bike-like CSV (see `common::bike_like_csv`) as `d.csv`.
fn data_csv(dir: &Path) {
    write(dir, "d.csv", common::bike_like_csv(120, 5).as_bytes());
}

/// A model trained on nothing, saved as `m.safetensors`, for `d.csv`'s columns.
fn model(dir: &Path) {
    data_csv(dir);
    let options = PipelineOptions {
        targets: vec!["cnt".into()],
        drop: vec!["extra".into()],
        date: Some("dteday".into()),
        standardize_targets: true,
        missing: Missing::Mean,
        ..Default::default()
    };
    let source = Source::File(dir.join("d.csv"));
    let (encoder, _) = data::prepare(
        &source,
        &options,
        &SplitOptions::new(SplitKind::Time, 1),
        &SeparateSets::default(),
    )
    .unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let network = Network::random(
        &[encoder.n_features(), 4, 1],
        Activation::Identity,
        &mut rng,
    )
    .unwrap();
    model_file::save(
        &dir.join("m.safetensors"),
        &SavedModel::model(network, encoder),
    )
    .unwrap();
}

/// A model (see [`model`]) with its saved metadata changed by `edit`.
fn edit_model(dir: &Path, edit: impl Fn(&mut SavedModel)) {
    model(dir);
    let path = dir.join("m.safetensors");
    let mut saved = model_file::load(&path).unwrap();
    edit(&mut saved);
    model_file::save(&path, &saved).unwrap();
}

fn csv(dir: &Path, text: &str) {
    write(dir, "d.csv", text.as_bytes());
}

// ---- the table ------------------------------------------------------------------------------

struct Case {
    name: &'static str,
    setup: Box<dyn Fn(&Path)>,
    args: Vec<String>,
    env: Vec<(&'static str, &'static str)>,
    /// Substrings standard error must contain (the place, and what is wrong).
    stderr: Vec<&'static str>,
    /// The exit code: 1 for our errors, 2 for clap's.
    code: i32,
    gpu: bool,
}

fn case(
    name: &'static str,
    setup: impl Fn(&Path) + 'static,
    args: &str,
    stderr: &[&'static str],
) -> Case {
    Case {
        name,
        setup: Box::new(setup),
        args: args.split_whitespace().map(str::to_string).collect(),
        env: Vec::new(),
        stderr: stderr.to_vec(),
        code: 1,
        gpu: false,
    }
}

impl Case {
    fn env(mut self, key: &'static str, value: &'static str) -> Self {
        self.env.push((key, value));
        self
    }

    fn code(mut self, code: i32) -> Self {
        self.code = code;
        self
    }

    /// Runs on the GPU test adapter (added as `--adapter`); skipped without one, unless CI
    /// requires a GPU.
    fn gpu(mut self) -> Self {
        self.gpu = true;
        self
    }
}

/// Every file under `dir` (symlinks as their targets' names), with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let content = if meta.file_type().is_symlink() {
                std::fs::read_link(&path)
                    .unwrap()
                    .to_string_lossy()
                    .as_bytes()
                    .to_vec()
            } else if meta.is_dir() {
                stack.push(path.clone());
                b"<dir>".to_vec()
            } else if meta.is_file() {
                std::fs::read(&path).unwrap()
            } else {
                b"<special>".to_vec()
            };
            files.insert(path.strip_prefix(dir).unwrap().to_path_buf(), content);
        }
    }
    files
}

/// Runs one case and returns what was wrong with its outcome, if anything.
fn run_case(case: &Case, adapter: Option<&str>) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    (case.setup)(dir.path());
    let before = snapshot(dir.path());
    let mut cmd = Command::new(binary());
    cmd.args(&case.args).current_dir(dir.path());
    if let Some(adapter) = adapter {
        cmd.args(["--adapter", adapter]);
    }
    for (k, v) in &case.env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let after = snapshot(dir.path());
    let mut problems = Vec::new();
    match out.status.code() {
        Some(code) if code == case.code => {}
        Some(code) => problems.push(format!("exit code {code}, expected {}", case.code)),
        None => problems.push(format!("killed by a signal: {:?}", out.status)),
    }
    for needle in &case.stderr {
        if !stderr.contains(needle) {
            problems.push(format!("stderr lacks {needle:?}"));
        }
    }
    if stderr.contains("panicked") {
        problems.push("panicked".into());
    }
    if before != after {
        let changed: Vec<_> = after
            .keys()
            .chain(before.keys())
            .filter(|k| before.get(*k) != after.get(*k))
            .collect();
        problems.push(format!("files changed or appeared: {changed:?}"));
    }
    (!problems.is_empty()).then(|| {
        format!(
            "{}: {}\n    args: {:?}\n    stderr: {}",
            case.name,
            problems.join("; "),
            case.args,
            stderr.trim()
        )
    })
}

fn step(extra: &str) -> String {
    format!("step --backend cpu --weights W.npz --input X.npy --target T.npy --out D.npz {extra}")
}

fn train(extra: &str) -> String {
    format!(
        "train --backend cpu --quiet --data d.csv --target cnt --date dteday --drop extra --missing mean {extra}"
    )
}

fn cases() -> Vec<Case> {
    let with = |f: fn(&Path, &str, &[u8]), name: &'static str, bytes: Vec<u8>| {
        move |d: &Path| {
            step_files(d);
            f(d, name, &bytes)
        }
    };
    let header = |shape: &str| {
        npy_raw(
            &format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}"),
            &[0; 16],
        )
    };
    let lying_npz = {
        // A stored member whose local and central headers claim 2^31 bytes.
        let mut bytes = weights(w_ih(), w_ho());
        let declared = (1u32 << 31).to_le_bytes();
        let mut at = 0;
        while let Some(p) = bytes[at..]
            .windows(4)
            .position(|w| w == b"PK\x01\x02" || w == b"PK\x03\x04")
        {
            let p = at + p;
            let offset = if bytes[p + 2] == 1 { 24 } else { 22 };
            bytes[p + offset..p + offset + 4].copy_from_slice(&declared);
            at = p + 4;
        }
        bytes
    };
    let unique_ids: String = {
        let mut s = String::from("id,x,y\n");
        for i in 0..1500 {
            s.push_str(&format!("user-{i},{},{}\n", i % 7, i % 3));
        }
        s
    };
    let mut cases = vec![
        // .npy inputs
        case(
            "npy header declares 10^18 values",
            with(write, "X.npy", header("(1000000000, 1000000000)")),
            &step(""),
            &["X.npy", "header declares shape"],
        ),
        case(
            "npy shape overflows",
            with(
                write,
                "X.npy",
                header("(18446744073709551615, 18446744073709551615)"),
            ),
            &step(""),
            &["X.npy", "overflows"],
        ),
        case(
            "npy header length of 4 GiB",
            with(
                write,
                "X.npy",
                [b"\x93NUMPY\x02\x00".as_slice(), &u32::MAX.to_le_bytes()].concat(),
            ),
            &step(""),
            &["X.npy", "header claims"],
        ),
        case(
            "npy truncated data",
            with(write, "X.npy", npy("(1, 3)", &[0.5, 0.1])),
            &step(""),
            &["X.npy", "holds only 16 bytes"],
        ),
        case(
            "npy trailing bytes",
            with(write, "X.npy", npy("(1, 3)", &[0.5, 0.1, 0.2, 9.0])),
            &step(""),
            &["X.npy", "8 unexpected bytes"],
        ),
        case(
            "npy that is text",
            with(write, "X.npy", b"0.5,0.1,-0.2\n".to_vec()),
            &step(""),
            &["X.npy", "not a .npy file"],
        ),
        case(
            "npy of complex numbers",
            with(
                write,
                "X.npy",
                npy_raw(
                    "{'descr': '<c16', 'fortran_order': False, 'shape': (1, 3), }",
                    &[0; 48],
                ),
            ),
            &step(""),
            &["X.npy", "dtype <c16 is not supported"],
        ),
        case(
            "npy of text where numbers are needed",
            with(
                write,
                "X.npy",
                npy_raw(
                    "{'descr': '<U1', 'fortran_order': False, 'shape': (1, 3), }",
                    &[0; 12],
                ),
            ),
            &step(""),
            &["X.npy", "holds text (<U1) where numbers are needed"],
        ),
        case(
            "npy structured dtype",
            with(
                write,
                "X.npy",
                npy_raw(
                    "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (1,), }",
                    &[0; 8],
                ),
            ),
            &step(""),
            &["X.npy", "structured"],
        ),
        case(
            "npy nested parentheses",
            with(
                write,
                "X.npy",
                header(&format!("{}{}", "(".repeat(3000), ")".repeat(3000))),
            ),
            &step(""),
            &["X.npy"],
        ),
        case(
            "npy holding NaN",
            with(write, "X.npy", npy("(1, 3)", &[0.5, f64::NAN, 0.2])),
            &step(""),
            &["X.npy", "[0, 1]", "NaN"],
        ),
        case(
            "npy of three dimensions",
            with(write, "X.npy", npy("(1, 1, 3)", &[0.5, 0.1, 0.2])),
            &step(""),
            &["X.npy", "expected 1-D"],
        ),
        case(
            "npy input that is a directory",
            |d: &Path| {
                step_files(d);
                std::fs::remove_file(d.join("X.npy")).unwrap();
                std::fs::create_dir(d.join("X.npy")).unwrap();
            },
            &step(""),
            &["X.npy", "is a directory"],
        ),
        case(
            "npy input missing",
            |d: &Path| {
                step_files(d);
                std::fs::remove_file(d.join("T.npy")).unwrap();
            },
            &step(""),
            &["T.npy", "No such file"],
        ),
        // .npz weights
        case(
            "npz member lying about its size",
            with(write, "W.npz", lying_npz),
            &step(""),
            &["W.npz"],
        ),
        case(
            "npz member declaring a huge array",
            with(
                write,
                "W.npz",
                npz_raw(&[
                    ("weights_input_to_hidden", header("(100000, 100000)")),
                    ("weights_hidden_to_output", npy_of(&w_ho())),
                ]),
            ),
            &step(""),
            &["W.npz", "weights_input_to_hidden", "header declares"],
        ),
        case(
            "npz that is not a zip",
            with(write, "W.npz", b"not a zip at all".to_vec()),
            &step(""),
            &["W.npz", "not a readable .npz"],
        ),
        case(
            "npz without the output weights",
            with(
                write,
                "W.npz",
                npz_raw(&[("weights_input_to_hidden", npy_of(&w_ih()))]),
            ),
            &step(""),
            &["W.npz", "expected"],
        ),
        case(
            "npz weights that do not chain",
            with(
                write,
                "W.npz",
                weights(w_ih(), array![[0.3], [-0.1], [0.2]].into_dyn()),
            ),
            &step(""),
            &[
                "W.npz",
                "weights_input_to_hidden",
                "weights_hidden_to_output",
            ],
        ),
        case(
            "npz weights beyond fp32 on the GPU",
            with(
                write,
                "W.npz",
                weights(
                    array![[1e300, -0.2], [0.4, 0.5], [-0.3, 0.2]].into_dyn(),
                    w_ho(),
                ),
            ),
            "step --backend gpu --weights W.npz --input X.npy --target T.npy --out D.npz",
            &["weights_input_to_hidden", "[0, 0]", "float32"],
        )
        .gpu(),
        case(
            "input beyond fp32 on the GPU",
            with(write, "X.npy", npy("(1, 3)", &[0.5, 1e300, 0.2])),
            "step --backend gpu --weights W.npz --input X.npy --target T.npy --out D.npz",
            &["`input` at index [0, 1]", "float32"],
        )
        .gpu(),
        case(
            "an output overflowing float64",
            |d: &Path| {
                step_files(d);
                write(d, "X.npy", &npy("(1, 3)", &[1.0, 1.0, 1.0]));
                write(
                    d,
                    "W.npz",
                    &weights(
                        array![[10.0, 10.0], [10.0, 10.0], [10.0, 10.0]].into_dyn(),
                        array![[1e308], [1e308]].into_dyn(),
                    ),
                );
            },
            &step("--output identity"),
            &["non-finite result", "delta_w_", "nothing was written"],
        ),
        case(
            "sigmoid target outside [0, 1]",
            with(write, "T.npy", npy("(1, 1)", &[2.0])),
            &step(""),
            &["T.npy", "outside [0, 1]"],
        ),
        // step outputs and flags
        case(
            "--out is --input",
            step_files,
            "step --backend cpu --weights W.npz --input X.npy --target T.npy --out X.npy",
            &["--out", "same file as --input"],
        ),
        case(
            "--out symlinked to --weights",
            |d: &Path| {
                step_files(d);
                std::os::unix::fs::symlink("W.npz", d.join("D.npz")).unwrap();
            },
            &step(""),
            &["--out", "same file as --weights"],
        ),
        case(
            "--out hard-linked to --target",
            |d: &Path| {
                step_files(d);
                std::fs::hard_link(d.join("T.npy"), d.join("D.npz")).unwrap();
            },
            &step(""),
            &["--out", "same file as --target"],
        ),
        case(
            "--out is a directory",
            |d: &Path| {
                step_files(d);
                std::fs::create_dir(d.join("D.npz")).unwrap();
            },
            &step(""),
            &["--out", "a directory"],
        ),
        case(
            "--out is a device",
            step_files,
            "step --backend cpu --weights W.npz --input X.npy --target T.npy --out /dev/null",
            &["--out", "a device"],
        ),
        case(
            "--out in a missing directory",
            step_files,
            "step --backend cpu --weights W.npz --input X.npy --target T.npy --out missing/D.npz",
            &["--out", "No such file"],
        ),
        case(
            "--out read-only",
            |d: &Path| {
                step_files(d);
                write(d, "D.npz", b"keep");
                let mut p = std::fs::metadata(d.join("D.npz")).unwrap().permissions();
                p.set_readonly(true);
                std::fs::set_permissions(d.join("D.npz"), p).unwrap();
            },
            &step(""),
            &["--out", "read-only"],
        ),
        case(
            "step --lr nan",
            step_files,
            &step("--lr nan"),
            &["--lr", "NaN"],
        ),
        case(
            "step --lr -inf",
            step_files,
            &step("--lr -inf"),
            &["--lr", "-inf"],
        ),
        case(
            "step --lr 0",
            step_files,
            &step("--lr 0"),
            &["--lr", "positive"],
        ),
        case(
            "step --lr -1",
            step_files,
            &step("--lr -1"),
            &["--lr", "positive"],
        ),
        // CSVs
        case(
            "empty CSV",
            |d: &Path| csv(d, ""),
            &train(""),
            &["d.csv", "empty"],
        ),
        case(
            "CSV with only a header",
            |d: &Path| csv(d, "dteday,cnt,extra\n"),
            &train(""),
            &["d.csv", "no records"],
        ),
        case(
            "ragged CSV",
            |d: &Path| csv(d, "dteday,x,cnt,extra\n2012-01-01,1,2,3\n2012-01-02,1,2\n"),
            &train(""),
            &["d.csv", "line 3", "cells where the header has 4"],
        ),
        case(
            "CSV with bytes that are not UTF-8",
            |d: &Path| {
                write(
                    d,
                    "d.csv",
                    b"dteday,x,cnt,extra\n2012-01-01,1,2,3\n2012-01-02,\xff\xfe,2,3\n",
                )
            },
            &train(""),
            &["d.csv", "line 3, column 2", "UTF-8"],
        ),
        case(
            "CSV that is a directory",
            |d: &Path| std::fs::create_dir(d.join("d.csv")).unwrap(),
            &train(""),
            &["d.csv", "is a directory"],
        ),
        case(
            "unknown --target",
            data_csv,
            "train --backend cpu --data d.csv --target zz",
            &["--target", "no column `zz`"],
        ),
        case(
            "--target named twice",
            data_csv,
            "train --backend cpu --data d.csv --target cnt,cnt",
            &["--target", "`cnt` is named twice"],
        ),
        case(
            "no feature column left",
            |d: &Path| csv(d, "a,cnt\n1,2\n3,4\n5,6\n7,8\n9,1\n"),
            "train --backend cpu --data d.csv --target cnt --drop a",
            &["d.csv", "no feature column is left"],
        ),
        case(
            "a number beyond float64",
            |d: &Path| csv(d, "x,cnt\n1,2\n1e400,4\n5,6\n"),
            "train --backend cpu --data d.csv --target cnt",
            &["d.csv", "line 3, column 1", "beyond float64"],
        ),
        case(
            "text in a numeric column",
            |d: &Path| csv(d, "x,cnt\n1,2\nabc,4\n5,6\n"),
            "train --backend cpu --data d.csv --target cnt",
            &["d.csv", "line 3, column 1", "`abc` is not a number"],
        ),
        case(
            "a target that is not a number",
            |d: &Path| csv(d, "x,cnt\n1,2\n3,four\n5,6\n"),
            "train --backend cpu --data d.csv --target cnt --loss mse",
            &["d.csv", "line 3, column 2", "target `four`", "is not a number"],
        ),
        case(
            "a column of unique IDs",
            move |d: &Path| csv(d, &unique_ids),
            "train --backend cpu --data d.csv --target y",
            &["d.csv", "`id` has 1", "distinct values", "--drop id"],
        ),
        case(
            "a random split of three records",
            |d: &Path| csv(d, "x,cnt\n1,2\n3,4\n5,6\n"),
            "train --backend cpu --data d.csv --target cnt",
            &["--split", "random split", "at least 5 records"],
        ),
        case(
            "a time split of a week",
            |d: &Path| {
                csv(
                    d,
                    "dteday,x,cnt\n2012-01-01,1,2\n2012-01-02,3,4\n2012-01-03,5,6\n",
                )
            },
            "train --backend cpu --data d.csv --target cnt --date dteday",
            &["--split", "days"],
        ),
        // train outputs
        case(
            "--metrics is --data",
            data_csv,
            &train("--metrics d.csv"),
            &["--metrics", "same file as --data"],
        ),
        case(
            "--save symlinked to --data",
            |d: &Path| {
                data_csv(d);
                std::os::unix::fs::symlink(d.join("d.csv"), d.join("m.st")).unwrap();
            },
            &train("--save m.st"),
            &["--save", "same file as --data"],
        ),
        case(
            "--metrics and --save the same file",
            data_csv,
            &train("--metrics out --save ./out"),
            &["--save", "two outputs"],
        ),
        case(
            "--plot with a .jpg name",
            data_csv,
            &train("--plot loss.jpg"),
            &["--plot", ".png or .svg"],
        ),
        case(
            "--plot into a directory",
            |d: &Path| {
                data_csv(d);
                std::fs::create_dir(d.join("p.png")).unwrap();
            },
            &train("--plot p.png"),
            &["--plot", "a directory"],
        ),
        case(
            "--save into a missing directory",
            data_csv,
            &train("--epochs 1000 --save nowhere/m.st"),
            &["--save", "No such file"],
        ),
        case(
            "--checkpoint is --data on resume",
            data_csv,
            &train("--resume --checkpoint d.csv --checkpoint-every 1"),
            &["--checkpoint", "same file as --data"],
        ),
        case(
            "--resume without a checkpoint",
            data_csv,
            &train("--resume --checkpoint ck.st"),
            &["ck.st", "No such file"],
        ),
        case(
            "--resume from garbage",
            |d: &Path| {
                data_csv(d);
                write(d, "ck.st", b"\xff\xff\xff\xff\xff\xff\xff\x7fjunk");
            },
            &train("--resume --checkpoint ck.st"),
            &["ck.st", "not a safetensors model"],
        ),
        // train flags
        case(
            "train --lr nan",
            data_csv,
            &train("--lr nan"),
            &["--lr", "NaN"],
        ),
        case(
            "train --lr -inf",
            data_csv,
            &train("--lr -inf"),
            &["--lr", "-inf"],
        ),
        case(
            "train --lr 0",
            data_csv,
            &train("--lr 0"),
            &["--lr", "positive"],
        ),
        case(
            "train --hidden 0",
            data_csv,
            &train("--hidden 0"),
            &["--hidden", "at least one unit"],
        ),
        case(
            "train --hidden 2^64-1",
            data_csv,
            &train("--hidden 18446744073709551615"),
            &["--hidden", "weights_input_to_hidden", "more than any machine"],
        ),
        case(
            "train --hidden 100000,100000",
            data_csv,
            &train("--hidden 100000,100000"),
            &["host memory", "weights_hidden1_to_hidden2", "available", "--hidden"],
        ),
        case(
            "train --epochs 0",
            data_csv,
            &train("--epochs 0"),
            &["--epochs", "at least 1"],
        ),
        case(
            "train --precision f64 on the GPU",
            data_csv,
            "train --backend gpu --quiet --data d.csv --target cnt --date dteday --missing mean --precision f64",
            &["--precision", "--backend cpu"],
        ),
        case(
            "train --parallel with no such mode",
            data_csv,
            &train("--parallel layers"),
            &["--parallel", "layers"],
        )
        .code(2),
        case(
            "train --batch 0",
            data_csv,
            &train("--batch 0"),
            &["--batch", "at least 1"],
        ),
        case(
            "train --checkpoint-every 0",
            data_csv,
            &train("--checkpoint-every 0"),
            &["--checkpoint-every", "at least 1"],
        ),
        case(
            "train --max-categories 0",
            data_csv,
            &train("--max-categories 0"),
            &["--max-categories", "at least 1"],
        ),
        case(
            "train --hidden abc",
            data_csv,
            &train("--hidden abc"),
            &["--hidden", "abc"],
        )
        .code(2),
        case(
            "a memory limit that is not a size",
            data_csv,
            &train(""),
            &["BACKPROP_MEMORY_LIMIT", "`lots` is not a byte count"],
        )
        .env("BACKPROP_MEMORY_LIMIT", "lots"),
        case(
            "a memory limit of 1 KiB",
            data_csv,
            &train(""),
            &["host memory", "are available (BACKPROP_MEMORY_LIMIT)"],
        )
        .env("BACKPROP_MEMORY_LIMIT", "1K"),
        // GPU settings
        case(
            "a binding cap that is not a size",
            data_csv,
            "train --backend gpu --quiet --data d.csv --target cnt --date dteday --missing mean --epochs 1",
            &["BACKPROP_MAX_BINDING_BYTES", "`abc` is not a byte count"],
        )
        .env("BACKPROP_MAX_BINDING_BYTES", "abc")
        .gpu(),
        case(
            "a binding cap below the smallest kernel",
            data_csv,
            "train --backend gpu --quiet --data d.csv --target cnt --date dteday --missing mean --epochs 1",
            &["BACKPROP_MAX_BINDING_BYTES", "at least"],
        )
        .env("BACKPROP_MAX_BINDING_BYTES", "64")
        .gpu(),
        case(
            "a GPU memory budget of 1 KiB",
            data_csv,
            "train --backend gpu --quiet --data d.csv --target cnt --date dteday --missing mean --epochs 1",
            &["GPU memory", "BACKPROP_GPU_MEMORY"],
        )
        .env("BACKPROP_GPU_MEMORY", "1K")
        .gpu(),
        // predict
        case(
            "predict with a model that is not safetensors",
            |d: &Path| {
                data_csv(d);
                write(d, "m.safetensors", b"garbage");
            },
            "predict --backend cpu --model m.safetensors --data d.csv",
            &["m.safetensors", "not a safetensors model"],
        ),
        case(
            "predict with a truncated model",
            |d: &Path| {
                model(d);
                let b = std::fs::read(d.join("m.safetensors")).unwrap();
                write(d, "m.safetensors", &b[..b.len() - 9]);
            },
            "predict --backend cpu --model m.safetensors --data d.csv",
            &["m.safetensors", "not a safetensors model"],
        ),
        case(
            "predict with a model whose header claims 2^62 bytes",
            |d: &Path| {
                data_csv(d);
                write(
                    d,
                    "m.safetensors",
                    &[(1u64 << 62).to_le_bytes().as_slice(), b"{}"].concat(),
                );
            },
            "predict --backend cpu --model m.safetensors --data d.csv",
            &["m.safetensors", "not a safetensors model"],
        ),
        case(
            "predict --out is --data",
            model,
            "predict --backend cpu --model m.safetensors --data d.csv --out d.csv",
            &["--out", "same file as --data"],
        ),
        case(
            "predict --out is --model",
            model,
            "predict --backend cpu --model m.safetensors --data d.csv --out m.safetensors",
            &["--out", "same file as --model"],
        ),
        case(
            "predict on a record far beyond the training data",
            |d: &Path| {
                model(d);
                let text = std::fs::read_to_string(d.join("d.csv")).unwrap();
                let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
                let cells: Vec<&str> = lines[2].split(',').collect();
                let mut cells: Vec<String> = cells.iter().map(|c| c.to_string()).collect();
                cells[5] = "1e300".into();
                lines[2] = cells.join(",");
                write(d, "d.csv", lines.join("\n").as_bytes());
            },
            "predict --backend cpu --model m.safetensors --data d.csv --out p.csv",
            &["d.csv", "line 3", "feature `temp`", "float32"],
        ),
        case(
            "predict on a CSV without a feature column",
            |d: &Path| {
                model(d);
                csv(d, "dteday,cnt\n2012-01-01,3\n");
            },
            "predict --backend cpu --model m.safetensors --data d.csv",
            &["no column `", "d.csv"],
        ),
        // bench and validate
        case(
            "bench --sizes garbage",
            |_: &Path| {},
            "bench --backend cpu --sizes 12xQ",
            &["--sizes", "12xQ"],
        ),
        case(
            "bench --budget -1",
            |_: &Path| {},
            "bench --backend cpu --sizes 2x3x4x1 --budget -1",
            &["--budget"],
        ),
        case(
            "bench --budget nan",
            |_: &Path| {},
            "bench --backend cpu --sizes 2x3x4x1 --budget nan",
            &["--budget", "NaN"],
        ),
        case(
            "bench --budget 1e300",
            |_: &Path| {},
            "bench --backend cpu --sizes 2x3x4x1 --budget 1e300",
            &["--budget", "1e300"],
        ),
        case(
            "bench --steps 0",
            |_: &Path| {},
            "bench --backend cpu --steps 0",
            &["--steps"],
        )
        .code(2),
        case(
            "validate --cases 0",
            |_: &Path| {},
            "validate --backend cpu --cases 0",
            &["--cases"],
        )
        .code(2),
        // found by a hostile-input hunt
        case(
            "an input that is a device",
            step_files,
            "step --backend cpu --weights W.npz --input /dev/zero --target T.npy --out D.npz",
            &["/dev/zero", "is a device"],
        ),
        case(
            "a model whose target spread is 0",
            |d: &Path| edit_model(d, |m| m.encoder.targets[0].std = 0.0),
            "predict --backend cpu --model m.safetensors --data d.csv",
            &["m.safetensors", "metadata is inconsistent", "`cnt`"],
        ),
        case(
            "a model without targets",
            |d: &Path| edit_model(d, |m| m.encoder.targets.clear()),
            "predict --backend cpu --model m.safetensors --data d.csv",
            &["m.safetensors", "no target column"],
        ),
        case(
            "a model reading a column the data lacks",
            |d: &Path| edit_model(d, |m| m.encoder.date = Some("nonexistent".into())),
            "predict --backend cpu --model m.safetensors --data d.csv",
            &["d.csv", "no column `nonexistent`", "its date"],
        ),
        case(
            "a test target beyond fp32 once standardised",
            |d: &Path| {
                let text = common::bike_like_csv(120, 5);
                let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
                let last = lines
                    .iter()
                    .position(|l| l.starts_with("2012-04-29"))
                    .unwrap();
                let mut cells: Vec<String> = lines[last].split(',').map(str::to_string).collect();
                cells[7] = "1e300".into();
                lines[last] = cells.join(",");
                csv(d, &lines.join("\n"));
            },
            &train("--epochs 1"),
            &["d.csv", "test record, target `cnt`", "float32"],
        ),
        case(
            "an output ending with a slash",
            data_csv,
            &train("--epochs 1000 --save newdir/"),
            &["--save", "ends with `/`"],
        ),
        case(
            "an output name too long for the file system",
            data_csv,
            &train(&format!("--epochs 1000 --save {}.st", "a".repeat(300))),
            &["--save", "cannot write a file of this name"],
        ),
        case(
            "an unterminated quote",
            |d: &Path| csv(d, "a,b,cnt\n1,2,3\n4,\"5,6\n7,8,9\n1,2,3\n"),
            "train --backend cpu --data d.csv --target cnt",
            &["d.csv", "line 3", "unterminated"],
        ),
        case(
            "one date thousands of years after the rest",
            |d: &Path| {
                let mut text = common::bike_like_csv(120, 5);
                text.push_str("9999-12-31,winter,6am,Fri,Clear,3.0,1,10\n");
                csv(d, &text);
            },
            &train(""),
            &["--split", "run from 2012-01-01 to 9999-12-31"],
        ),
        // Optimizer, schedule, stopping and split settings.
        case(
            "train --momentum 1.5",
            data_csv,
            &train("--optimizer momentum --momentum 1.5"),
            &["--momentum", "1.5", "[0, 1)"],
        ),
        case(
            "train --beta2 1",
            data_csv,
            &train("--optimizer adam --beta2 1"),
            &["--beta2", "[0, 1)"],
        ),
        case(
            "train --epsilon 0",
            data_csv,
            &train("--optimizer adam --epsilon 0"),
            &["--epsilon", "above 0"],
        ),
        case(
            "train --weight-decay -1",
            data_csv,
            &train("--weight-decay -1"),
            &["--weight-decay", "-1"],
        ),
        case(
            "train --nesterov with adam",
            data_csv,
            &train("--optimizer adam --nesterov"),
            &["--nesterov", "--optimizer momentum"],
        ),
        case(
            "train --warmup as long as the run",
            data_csv,
            &train("--epochs 3 --warmup 3"),
            &["--warmup", "3 warm-up epochs"],
        ),
        case(
            "train --lr-gamma 0",
            data_csv,
            &train("--lr-schedule step --lr-gamma 0"),
            &["--lr-gamma", "(0, 1]"],
        ),
        case(
            "train --init with --no-bias",
            data_csv,
            &train("--no-bias --init he"),
            &["--init", "--no-bias"],
        ),
        case(
            "train --weight-decay so large that training diverges",
            data_csv,
            &train("--optimizer adamw --weight-decay 1e300 --epochs 2"),
            &["diverged", "--weight-decay"],
        ),
        case(
            "train --patience 0",
            data_csv,
            &train("--patience 0"),
            &["--patience", "at least 1"],
        ),
        case(
            "train --min-delta NaN",
            data_csv,
            &train("--patience 3 --min-delta NaN"),
            &["--min-delta", "NaN"],
        ),
        case(
            "train --val-fraction leaving nothing to train on",
            data_csv,
            &train("--split random --val-fraction 0.95"),
            &["--val-fraction", "no records for training"],
        ),
        case(
            "train --test-fraction 1",
            data_csv,
            &train("--split random --test-fraction 1"),
            &["--test-fraction", "[0, 1)"],
        ),
        case(
            "train --val-days beyond the calendar",
            data_csv,
            &train("--val-days 4294967295 --test-days 4294967295"),
            &["--split", "training set would be empty"],
        ),
        case(
            "train --tol negative",
            data_csv,
            &train("--tol -1e-3"),
            &["--tol", ">= 0"],
        ),
        case(
            "train --n-iter-no-change 0",
            data_csv,
            &train("--tol 1e-3 --n-iter-no-change 0"),
            &["--n-iter-no-change", "at least 1"],
        ),
        case(
            "train --alpha infinite",
            data_csv,
            &train("--alpha inf"),
            &["--alpha", "finite"],
        ),
        case(
            "train --patience with nothing held out for validation",
            data_csv,
            &train("--split random --val-fraction 0 --patience 2"),
            &["--patience", "--val-fraction 0"],
        ),
        case(
            "train --val file that does not exist",
            data_csv,
            &train("--val nowhere.csv"),
            &["nowhere.csv"],
        ),
        case(
            "train --test file without the target column",
            |d: &Path| {
                data_csv(d);
                write(d, "t.csv", b"a,b\n1,2\n");
            },
            &train("--test t.csv"),
            &["t.csv", "cnt"],
        ),
        case(
            "train --val file with an unseen class",
            |d: &Path| {
                write(d, "f.csv", common::flowers_csv(10, 1).as_bytes());
                let other: String = common::flowers_csv(3, 2).replace("setosa", "rosa");
                write(d, "v.csv", other.as_bytes());
            },
            "train --backend cpu --quiet --data f.csv --target species --loss cross-entropy --val v.csv",
            &["v.csv", "line", "rosa"],
        ),
        case(
            "train on a CSV with an empty cell under the default --missing error",
            data_csv,
            "train --backend cpu --quiet --data d.csv --target cnt --date dteday --drop extra",
            &["d.csv", "line", "column", "the cell is empty", "--missing drop|mean|median|most-frequent"],
        ),
        case(
            "train --val --checkpoint is --val on resume",
            |d: &Path| {
                data_csv(d);
                write(d, "v.csv", common::bike_like_csv(30, 9).as_bytes());
            },
            &train("--val v.csv --checkpoint v.csv --checkpoint-every 1"),
            &["--checkpoint", "--val"],
        ),
        case(
            "train --lr beyond fp32",
            data_csv,
            &train("--lr 1e39"),
            &["--lr", "float32"],
        ),
        case(
            "step --lr beyond fp32 on the GPU",
            step_files,
            "step --backend gpu --weights W.npz --input X.npy --target T.npy --out D.npz --lr 1e39",
            &["--lr", "float32"],
        )
        .gpu(),
        case(
            "an empty adapter name",
            data_csv,
            &train("--adapter="),
            &["--adapter", "empty name"],
        ),
        case(
            "bench with no sizes",
            |_: &Path| {},
            "bench --backend cpu --sizes=",
            &["--sizes", "at least one"],
        ),
        // A data set wider than a binding is streamed (tests/mapped.rs); a batch cannot be.
        case(
            "a batch wider than a capped binding",
            data_csv,
            "train --backend gpu --quiet --data d.csv --target cnt --date dteday --missing mean --epochs 1 --batch 512",
            &["does not fit one storage binding", "BACKPROP_MAX_BINDING_BYTES"],
        )
        .env("BACKPROP_MAX_BINDING_BYTES", "8KiB")
        .gpu(),
    ];
    // Launched as one of several ranks by a launcher, a build without MPI refuses (with the
    // feature, these variables would start MPI: tests/mpi.rs covers that build).
    if cfg!(not(feature = "mpi")) {
        cases.push(
            case(
                "bench as one of 2 ranks without MPI",
                |_: &Path| {},
                "bench --backend cpu --sizes 4x3x2x1",
                &["PMI_SIZE=2", "--features mpi"],
            )
            .env("PMI_SIZE", "2"),
        );
    }
    cases
}

#[test]
fn hostile_inputs_get_a_clear_error_and_leave_every_file_as_it_was() {
    let cases = cases();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let adapter = gpu_adapter();
    let failures: Vec<String> = cases
        .iter()
        .filter(|c| !c.gpu || adapter.is_some())
        .filter_map(|c| run_case(c, if c.gpu { adapter.as_deref() } else { None }))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

// ---- paths that must succeed ----------------------------------------------------------------

/// A command line (split on spaces) run in `dir`.
fn command(dir: &Path, args: &str) -> Command {
    let mut cmd = Command::new(binary());
    cmd.args(args.split_whitespace()).current_dir(dir);
    cmd
}

/// Runs `args` in `dir` and expects success; returns standard error.
fn run_ok(dir: &Path, args: &str) -> String {
    let out = command(dir, args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args}: {stderr}");
    stderr
}

#[test]
fn a_closed_standard_output_ends_the_output_and_the_model_is_still_saved() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    model(d);
    let saving = train("--epochs 2 --save saved.st");
    let runs = [
        saving.as_str(),
        "step --backend cpu",
        "step --backend cpu --json",
        "predict --backend cpu --model m.safetensors --data d.csv",
        "bench --backend cpu --sizes 2x3x4x1 --steps 1",
        "info",
    ];
    for args in runs {
        let mut child = command(d, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before anything is written.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args}: {stderr}");
    }
    let saved = model_file::load(&d.join("saved.st")).unwrap();
    assert_eq!(saved.training.unwrap().history.len(), 2);
}

fn stray_temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".backprop-"))
        .collect()
}

#[test]
fn sigint_and_sigterm_stop_training_cleanly_and_the_checkpoint_resumes() {
    for (signal, code) in [("-INT", 130), ("-TERM", 143)] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        data_csv(d);
        let child = command(
            d,
            &train("--epochs 1000000 --checkpoint ck.st --checkpoint-every 1"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        let started = Instant::now();
        while !d.join("ck.st").exists() && started.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(150));
        // The shell's own `kill`: no procps needed on a minimal machine.
        let sent = Command::new("sh")
            .args(["-c", &format!("kill {signal} {}", child.id())])
            .status()
            .unwrap();
        assert!(sent.success());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{signal}: {stderr}");
        assert!(stderr.contains("interrupted by"), "{stderr}");
        assert!(stderr.contains("checkpoint"), "{stderr}");
        assert!(
            stray_temporaries(d).is_empty(),
            "{:?}",
            stray_temporaries(d)
        );
        let saved = model_file::load(&d.join("ck.st")).unwrap();
        let done = saved.training.unwrap().history.len();
        assert!(done >= 1);
        run_ok(
            d,
            &train(&format!(
                "--checkpoint ck.st --checkpoint-every 1 --resume --epochs {}",
                done + 1
            )),
        );
    }
}

#[test]
fn a_symlinked_output_is_written_through_and_stays_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    data_csv(d);
    std::fs::create_dir(d.join("models")).unwrap();
    write(d, "models/real.st", b"old");
    std::os::unix::fs::symlink("models/real.st", d.join("link.st")).unwrap();
    run_ok(d, &train("--epochs 1 --save link.st --plot loss.svg"));
    let link = std::fs::symlink_metadata(d.join("link.st")).unwrap();
    assert!(link.file_type().is_symlink());
    assert!(model_file::load(&d.join("models/real.st")).is_ok());
    assert!(stray_temporaries(d).is_empty() && stray_temporaries(&d.join("models")).is_empty());
    let svg = std::fs::read_to_string(d.join("loss.svg")).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("validation"),
        "{svg:.200}"
    );
}

#[test]
fn the_default_run_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |epochs: u32, resume: &str| {
        run_ok(
            d,
            &format!("train --backend cpu --quiet --epochs {epochs} --checkpoint ck.st --checkpoint-every 1 --save m.st {resume}"),
        );
        model_file::load(&d.join("m.st")).unwrap()
    };
    let straight = run(3, "");
    run(2, "");
    let resumed = run(3, "--resume");
    assert_eq!(straight.network, resumed.network);
    assert_eq!(straight.encoder, resumed.encoder);
}

#[test]
fn step_output_ends_with_a_newline() {
    let dir = tempfile::tempdir().unwrap();
    for args in ["step --backend cpu", "step --backend cpu --json"] {
        let out = command(dir.path(), args).output().unwrap();
        assert!(out.status.success());
        assert!(
            out.stdout.ends_with(b"]\n") || out.stdout.ends_with(b"}\n"),
            "{args}"
        );
    }
}

#[test]
fn a_learning_rate_too_small_for_fp32_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    data_csv(dir.path());
    let stderr = run_ok(dir.path(), &train("--epochs 1 --lr 1e-12"));
    assert!(
        stderr.contains("warning: --lr 1e-12 is so small that no weight can change"),
        "{stderr}"
    );
}

#[test]
fn predict_reports_finite_errors_for_targets_near_the_ends_of_float64() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    model(d);
    let text = std::fs::read_to_string(d.join("d.csv")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut cells: Vec<String> = lines[4].split(',').map(str::to_string).collect();
    cells[7] = "1e300".into();
    lines[4] = cells.join(",");
    write(d, "d.csv", lines.join("\n").as_bytes());
    let stderr = run_ok(
        d,
        "predict --backend cpu --model m.safetensors --data d.csv --out p.csv",
    );
    assert!(stderr.contains("cnt: 480 records"), "{stderr}");
    assert!(
        !stderr.contains("inf") && !stderr.contains("NaN"),
        "{stderr}"
    );
}

/// The longest run of digits in `text`.
fn longest_digit_run(text: &str) -> usize {
    text.split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0)
}

#[test]
fn train_prints_the_figures_of_targets_near_the_ends_of_float64_in_scientific_notation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for scale in [1e300, 1e-12] {
        // 200 records of two features, a target of `scale` times something varied.
        let mut csv = String::from("a,b,y\n");
        for i in 0..200u32 {
            let a = f64::from((i * 37) % 101) / 50.0 - 1.0;
            let b = f64::from((i * 53) % 97) / 48.0 - 1.0;
            let noise = f64::from((i * 17) % 13) / 13.0;
            csv += &format!("{a},{b},{:e}\n", scale * (a + 0.5 * b + noise));
        }
        write(d, "scaled.csv", csv.as_bytes());
        let out = command(
            d,
            "train --backend cpu --quiet --data scaled.csv --target y --epochs 2 --metrics m.json",
        )
        .output()
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{scale:e}: {stdout}{stderr}");
        for line in stdout.lines().chain(stderr.lines()) {
            assert!(longest_digit_run(line) < 20, "{scale:e}: {line}");
        }
        let metrics: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("m.json")).unwrap()).unwrap();
        for part in ["training", "validation", "test"] {
            // `part  loss  RMSE  MAE  R²`: the RMSE as scientific notation that reads back as
            // the figure of --metrics.
            let line = stdout
                .lines()
                .find(|l| l.starts_with(part))
                .unwrap_or_else(|| panic!("{scale:e}: no {part} line in {stdout}"));
            let rmse = line.split_whitespace().nth(2).unwrap();
            assert!(rmse.contains('e'), "{scale:e}: {part} RMSE {rmse}: {line}");
            let printed: f64 = rmse.parse().unwrap();
            let exact = metrics[format!("{part}_rmse_original_units")]["y"]
                .as_f64()
                .unwrap();
            assert!(
                (printed / exact - 1.0).abs() < 0.01,
                "{scale:e}: {part} RMSE printed {rmse}, {exact:e} in --metrics"
            );
        }
    }
}

#[test]
fn an_output_that_is_where_standard_output_goes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    data_csv(d);
    let out = command(d, &train("--epochs 1 --metrics so.txt"))
        .stdout(std::fs::File::create(d.join("so.txt")).unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--metrics") && stderr.contains("standard output"),
        "{stderr}"
    );
}

#[test]
fn a_binding_cap_fits_the_batch_it_is_given() {
    let Some(adapter) = gpu_adapter() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path(), "step --backend gpu")
        .args(["--adapter", &adapter])
        .env("BACKPROP_MAX_BINDING_BYTES", "4KiB")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("[0.0080404"),
        "{stderr}"
    );
}

#[test]
fn every_refused_hidden_size_names_the_flag() {
    for (hidden, why) in [
        ("0", "at least one unit"),
        ("18446744073709551615", "more than any machine can address"),
        ("1,18446744073709551615", "more than 2^64 bytes"),
        ("99999999999", "host memory"),
        ("3,0", "at least one unit"),
    ] {
        let refused = case(
            "a refused --hidden",
            data_csv,
            &train(&format!("--hidden {hidden}")),
            &["--hidden", why],
        );
        if let Some(problem) = run_case(&refused, None) {
            panic!("{problem}");
        }
    }
    // Sizes beyond what the flags hold are clap's refusal, naming the flag too.
    for hidden in ["18446744073709551616", "3,,4"] {
        let refused = case(
            "a --hidden that is not a size",
            data_csv,
            &train(&format!("--hidden {hidden}")),
            &["--hidden"],
        )
        .code(2);
        if let Some(problem) = run_case(&refused, None) {
            panic!("{problem}");
        }
    }
    // A batch beyond any training set is clipped to it, with a notice naming the flag.
    let dir = tempfile::tempdir().unwrap();
    data_csv(dir.path());
    let stderr = run_ok(
        dir.path(),
        &train("--epochs 1 --batch 18446744073709551615"),
    );
    assert!(
        stderr.contains("--batch 18446744073709551615 is more than the"),
        "{stderr}"
    );
}
