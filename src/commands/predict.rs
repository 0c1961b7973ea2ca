//! `backprop predict`: a saved model applied to new rows, with the error when the CSV holds
//! the target.

use std::path::PathBuf;

use anyhow::{Context, Result};
use ndarray::Array2;

use backprop::backend;
use backprop::data::read::Format;
use backprop::data::write::{write_csv, write_predictions, OutFormat, Predicted, PredictedColumn};
use backprop::data::{self, Classes, Encoder, Frame, Role, Source};
use backprop::device::CpuPrecision;
use backprop::guard::memory::host_available;
use backprop::guard::numeric::Precision;
use backprop::guard::paths::FilePlan;
use backprop::model_file;
use backprop::report::metrics::{classification, figure, regression, root_mean_square};

use super::{errln, to_stdout};

#[derive(clap::Args)]
pub struct PredictArgs {
    /// A model saved by `backprop train --save`.
    #[arg(long, value_name = "FILE.safetensors")]
    model: PathBuf,
    /// The records to predict: CSV, `.npy` (inputs), `.npz` (`x`, and `y` to score) or
    /// `.parquet`, by extension; the built-in bike-sharing data when omitted.
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// Write the predictions (atomically) by extension: `.csv` (the records, then a
    /// `<target>_predicted` column per target and a classifier's probabilities), `.npy` (the
    /// predictions alone) or `.parquet` (typed columns, as CSV); without it, CSV to standard
    /// output.
    #[arg(long, value_name = "FILE")]
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
    let encoder = &saved.encoder;
    let mut plan = encoder.read_plan();
    let out_format = args.out.as_deref().map_or(OutFormat::Csv, OutFormat::of);
    // A CSV output copies the records byte for byte from a CSV file or the built-in data;
    // from a pipe (which cannot be read twice), an array or Parquet file, or into another
    // format, every column is kept to write them from.
    let input_again = |source: &Source| -> Option<Box<dyn std::io::Read>> {
        if !out_format.echoes_csv() {
            return None;
        }
        match source {
            Source::BuiltIn => Some(Box::new(data::BIKE_SHARING_CSV)),
            Source::File(path) if Format::of(path) == Format::Csv => std::fs::metadata(path)
                .is_ok_and(|m| m.is_file())
                .then(|| std::fs::File::open(path).ok())
                .flatten()
                .map(|f| Box::new(std::io::BufReader::new(f)) as Box<dyn std::io::Read>),
            _ => None,
        }
    };
    match input_again(&source) {
        Some(_) => plan.keep_spans = true,
        None => plan.default = Role::Infer,
    }
    let frame = data::read(&source, &plan, &|_, _| {})?;
    let all_rows: Vec<usize> = (0..frame.n_rows()).collect();
    data::encoding_plan(encoder, all_rows.len(), Precision::F32)?
        .check("host memory", host_available()?.as_ref())
        .map_err(|e| frame.file_error(e.to_string()))?;
    let encoded = encoder.transform(&frame, &all_rows, false, Precision::F32)?;
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
    let feature_names = encoder.feature_names();
    let y = backend
        .predict(backprop::Matrix::from(&encoded.x))
        .map_err(|e| encoded.locate(e, &frame.source, "input", encoder))?;
    drop(encoded);
    let predicted = encoder.destandardize(&y);
    let check = data::Dataset {
        x: backprop::matrix::Values::zeros(Precision::F32, 0, 0),
        target: ndarray::Array2::zeros((0, 0)),
        source: frame.source.clone(),
        lines: frame.lines.clone(),
        time: None,
    };
    check.check_predictions(&frame.source, "model's", &feature_names, predicted.view())?;
    match &encoder.classes {
        Some(classes) => report_accuracy(&frame, classes, &y)?,
        None => report_errors(&frame, encoder, &predicted)?,
    }
    let columns = predicted_columns(encoder, &y, &predicted);
    let mut input = input_again(&source);
    let input = input.as_deref_mut().map(|r| r as &mut dyn std::io::Read);
    match &args.out {
        Some(path) => write_predictions(path, &frame, input, &columns)
            .with_context(|| format!("writing {}", path.display()))?,
        None => to_stdout(|out| write_csv(out, &frame, input, &columns))?,
    }
    Ok(())
}

/// Per target its prediction (a class label, with a probability per class, for a classifier).
fn predicted_columns(encoder: &Encoder, y: &Array2<f64>, predicted: &Array2<f64>) -> Predicted {
    match &encoder.classes {
        Some(classes) => {
            let mut names = vec![format!("{}_predicted", classes.column)];
            names.extend(
                classes
                    .names
                    .iter()
                    .map(|n| format!("{}_p_{n}", classes.column)),
            );
            let mut columns = vec![PredictedColumn::Labels {
                names: classes.names.clone(),
                index: classes.predicted(y.view()),
            }];
            let probabilities: Vec<Vec<f64>> = y
                .rows()
                .into_iter()
                .map(|row| classes.probabilities(row))
                .collect();
            columns.extend(
                (0..classes.names.len()).map(|k| {
                    PredictedColumn::Numbers(probabilities.iter().map(|p| p[k]).collect())
                }),
            );
            Predicted {
                names,
                columns,
                predictions: 1,
            }
        }
        None => Predicted {
            predictions: encoder.targets.len(),
            names: encoder
                .targets
                .iter()
                .map(|t| format!("{}_predicted", t.column))
                .collect(),
            columns: predicted
                .columns()
                .into_iter()
                .map(|c| PredictedColumn::Numbers(c.to_vec()))
                .collect(),
        },
    }
}

/// With the true labels in the file: accuracy, macro F1 and the confusion matrix on stderr.
/// A label the model never saw is an error naming its line and column.
fn report_accuracy(frame: &Frame, classes: &Classes, y: &Array2<f64>) -> Result<()> {
    let Ok(c) = frame.column(&classes.column, "--data") else {
        return Ok(());
    };
    let mut truth = Vec::new();
    let mut predicted = Vec::new();
    let labels = classes.predicted(y.view());
    for (r, &predicted_label) in labels.iter().enumerate() {
        let cell = frame.cell(r, c);
        if cell.is_empty() {
            continue;
        }
        let label = cell.to_text();
        let k = classes
            .names
            .iter()
            .position(|n| *n == label)
            .ok_or_else(|| {
                frame.cell_error(
                    r,
                    c,
                    format!(
                        "class `{label}` is not one the model knows ({})",
                        classes.names.join(", ")
                    ),
                )
            })?;
        truth.push(k);
        predicted.push(predicted_label);
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
fn report_errors(frame: &Frame, encoder: &Encoder, predicted: &Array2<f64>) -> Result<()> {
    for (j, t) in encoder.targets.iter().enumerate() {
        let Ok(c) = frame.column(&t.column, "--data") else {
            continue;
        };
        let (mut truth, mut guess) = (Vec::new(), Vec::new());
        for r in 0..frame.n_rows() {
            let cell = frame.cell(r, c);
            if cell.is_empty() {
                continue;
            }
            let value = cell
                .number()
                .ok_or_else(|| data::schema::number_error(frame, r, c, ""))?;
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
