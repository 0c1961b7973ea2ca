//! `backprop predict`: a saved model applied to new rows, with the error when the CSV holds
//! the target.

use std::path::PathBuf;

use anyhow::{Context, Result};
use ndarray::Array2;

use backprop::backend;
use backprop::data::{self, read_csv, Classes, Encoder, Source, Table};
use backprop::device::CpuPrecision;
use backprop::guard::memory::host_available;
use backprop::guard::paths::FilePlan;
use backprop::model_file;
use backprop::report::metrics::{classification, figure, regression, root_mean_square};
use backprop::Error;

use super::{errln, to_stdout};

#[derive(clap::Args)]
pub struct PredictArgs {
    /// A model saved by `backprop train --save`.
    #[arg(long, value_name = "FILE.safetensors")]
    model: PathBuf,
    /// The CSV to predict; the built-in bike-sharing data when omitted.
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// Write the rows with a `<target>_predicted` column per target (CSV, atomically);
    /// without it they go to standard output.
    #[arg(long, value_name = "FILE.csv")]
    out: Option<PathBuf>,
    #[command(flatten)]
    backend: super::BackendArgs,
}

pub fn run(args: PredictArgs) -> Result<()> {
    FilePlan::new()
        .input("--model", Some(&args.model))
        .input("--data", args.data.as_deref())
        .output("--out", args.out.as_deref())
        .check()?;
    let saved = model_file::load(&args.model)?;
    let source = args.data.clone().map_or(Source::BuiltIn, Source::File);
    let table = read_csv(&source)?;
    let all_rows: Vec<usize> = (0..table.rows.len()).collect();
    data::encoding_plan(&saved.encoder, all_rows.len())?
        .check("host memory", host_available()?.as_ref())
        .map_err(|e| table.file_error(e.to_string()))?;
    let encoded = saved.encoder.transform(&table, &all_rows, false)?;
    backend::memory_plan(
        &saved.network.layer_sizes(),
        1,
        4,
        args.backend.device().may_compute_on_host(),
    )?
    .check("host memory", host_available()?.as_ref())?;
    let mut backend = args
        .backend
        .create(&saved.network, CpuPrecision::F32, 1)
        .with_context(|| args.model.display().to_string())?;
    let feature_names = saved.encoder.feature_names();
    let y = backend
        .predict(backprop::Matrix::from(&encoded.x))
        .map_err(|e| encoded.locate(e, &table.source, "input", &saved.encoder))?;
    let predicted = saved.encoder.destandardize(&y);
    encoded.check_predictions(&table.source, "model's", &feature_names, predicted.view())?;

    let encoder = &saved.encoder;
    match &encoder.classes {
        Some(classes) => report_accuracy(&table, classes, &y)?,
        None => report_errors(&table, encoder, &predicted)?,
    }

    // The input's columns, then per target its prediction (a class label, with a probability
    // per class, for a classifier).
    let mut header = table.columns.clone();
    let predicted_cells: Vec<Vec<String>> = match &encoder.classes {
        Some(classes) => {
            header.push(format!("{}_predicted", classes.column));
            header.extend(
                classes
                    .names
                    .iter()
                    .map(|n| format!("{}_p_{n}", classes.column)),
            );
            let labels = classes.predicted(y.view());
            y.rows()
                .into_iter()
                .zip(labels)
                .map(|(row, k)| {
                    std::iter::once(classes.names[k].clone())
                        .chain(classes.probabilities(row).iter().map(|p| p.to_string()))
                        .collect()
                })
                .collect()
        }
        None => {
            header.extend(
                encoder
                    .targets
                    .iter()
                    .map(|t| format!("{}_predicted", t.column)),
            );
            predicted
                .rows()
                .into_iter()
                .map(|row| row.iter().map(|v| v.to_string()).collect())
                .collect()
        }
    };
    let write = |w: &mut dyn std::io::Write| -> csv::Result<()> {
        let mut out = csv::Writer::from_writer(w);
        out.write_record(&header)?;
        for (row, extra) in table.rows.iter().zip(&predicted_cells) {
            out.write_record(row.iter().chain(extra))?;
        }
        out.flush()?;
        Ok(())
    };
    match &args.out {
        Some(path) => backprop::io::write_atomic(path, |w| {
            write(w).map_err(|e| Error::File {
                path: path.clone(),
                message: e.to_string(),
            })
        })
        .with_context(|| format!("writing {}", path.display()))?,
        // csv wraps I/O errors; unwrap them so a closed pipe is seen as one.
        None => to_stdout(|out| {
            write(out).map_err(|e| match e.into_kind() {
                csv::ErrorKind::Io(io) => io,
                other => std::io::Error::other(format!("{other:?}")),
            })
        })?,
    }
    Ok(())
}

/// With the true labels in the file: accuracy, macro F1 and the confusion matrix on stderr.
/// A label the model never saw is an error naming its line and column.
fn report_accuracy(table: &Table, classes: &Classes, y: &Array2<f64>) -> Result<()> {
    let Ok(c) = table.column(&classes.column, "--data") else {
        return Ok(());
    };
    let mut truth = Vec::new();
    let mut predicted = Vec::new();
    let labels = classes.predicted(y.view());
    for (r, row) in table.rows.iter().enumerate() {
        if row[c].is_empty() {
            continue;
        }
        let k = classes
            .names
            .iter()
            .position(|n| *n == row[c])
            .ok_or_else(|| {
                table.file_error(format!(
                    "line {}, column {} (`{}`): class `{}` is not one the model knows ({})",
                    table.lines[r],
                    c + 1,
                    classes.column,
                    row[c],
                    classes.names.join(", ")
                ))
            })?;
        truth.push(k);
        predicted.push(labels[r]);
    }
    if truth.is_empty() {
        return Ok(());
    }
    let report = classification(&classes.names, &truth, &predicted);
    errln!(
        "{}: {} records, accuracy {:.2}%, macro F1 {:.3}; confusion matrix (rows true, columns predicted: {}): {:?}",
        classes.column,
        truth.len(),
        report.accuracy * 100.0,
        report.macro_f1,
        classes.names.join(", "),
        report.confusion_matrix
    );
    Ok(())
}

/// With the true values in the file: MSE, RMSE, MAE and R² per target in the data's units
/// (finite even for values near the ends of float64), on stderr.
fn report_errors(table: &Table, encoder: &Encoder, predicted: &Array2<f64>) -> Result<()> {
    for (j, t) in encoder.targets.iter().enumerate() {
        let Ok(c) = table.column(&t.column, "--data") else {
            continue;
        };
        let (mut truth, mut guess) = (Vec::new(), Vec::new());
        for (r, row) in table.rows.iter().enumerate() {
            if row[c].is_empty() {
                continue;
            }
            let value: f64 = row[c].parse().map_err(|_| Error::File {
                path: table.source.clone(),
                message: format!(
                    "line {}, column {} (`{}`): `{}` is not a number",
                    table.lines[r],
                    c + 1,
                    t.column,
                    row[c]
                ),
            })?;
            truth.push(value);
            guess.push(predicted[[r, j]]);
        }
        if truth.is_empty() {
            continue;
        }
        let errors: Vec<f64> = truth.iter().zip(&guess).map(|(t, g)| g - t).collect();
        let rmse = root_mean_square(&errors);
        let r = regression(&truth, &guess);
        errln!(
            "{}: {} records, MSE {}, RMSE {}, MAE {}, R² {} (standardised MSE {})",
            t.column,
            truth.len(),
            figure(rmse.map(|r| r * r)),
            figure(rmse),
            figure(Some(r.mae)),
            figure(Some(r.r2)),
            figure(rmse.map(|r| (r / t.std) * (r / t.std)))
        );
    }
    Ok(())
}
