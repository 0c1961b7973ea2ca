//! `backprop predict`: a saved model applied to new rows, with the error when the CSV holds
//! the target.

use std::path::PathBuf;

use anyhow::{Context, Result};

use backprop::backend;
use backprop::data::{self, read_csv, Source};
use backprop::device::CpuPrecision;
use backprop::guard::memory::host_available;
use backprop::guard::paths::FilePlan;
use backprop::model_file;
use backprop::report::metrics::{figure, root_mean_square};
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
        args.backend.may_compute_on_host(),
    )?
    .check("host memory", host_available()?.as_ref())?;
    let mut backend = args
        .backend
        .create(&saved.network, CpuPrecision::F32, 1)
        .with_context(|| args.model.display().to_string())?;
    let feature_names = saved.encoder.feature_names();
    let y = backend
        .predict(encoded.x.view())
        .map_err(|e| encoded.locate(e, &table.source, "input", &saved.encoder))?;
    let predicted = saved.encoder.destandardize(&y);
    encoded.check_predictions(&table.source, "model's", &feature_names, predicted.view())?;

    // The error, over the rows whose target cells are filled, in the data's units.
    let encoder = &saved.encoder;
    let target_columns: Option<Vec<usize>> = encoder
        .targets
        .iter()
        .map(|t| table.columns.iter().position(|c| *c == t.column))
        .collect();
    if let Some(columns) = &target_columns {
        for (j, (&c, t)) in columns.iter().zip(&encoder.targets).enumerate() {
            let mut errors = Vec::new();
            for (r, row) in table.rows.iter().enumerate() {
                if row[c].is_empty() {
                    continue;
                }
                let truth: f64 = row[c].parse().map_err(|_| Error::File {
                    path: table.source.clone(),
                    message: format!(
                        "line {}, column {} (`{}`): `{}` is not a number",
                        table.lines[r],
                        c + 1,
                        t.column,
                        row[c]
                    ),
                })?;
                errors.push(predicted[[r, j]] - truth);
            }
            if !errors.is_empty() {
                let rmse = root_mean_square(&errors);
                let standardised = rmse.map(|r| r / t.std);
                errln!(
                    "{}: {} records, MSE {}, RMSE {} (standardised MSE {})",
                    t.column,
                    errors.len(),
                    figure(rmse.map(|r| r * r)),
                    figure(rmse),
                    figure(standardised.map(|r| r * r))
                );
            }
        }
    }

    let write = |w: &mut dyn std::io::Write| -> csv::Result<()> {
        let mut out = csv::Writer::from_writer(w);
        let mut header = table.columns.clone();
        header.extend(
            encoder
                .targets
                .iter()
                .map(|t| format!("{}_predicted", t.column)),
        );
        out.write_record(&header)?;
        for (r, row) in table.rows.iter().enumerate() {
            let mut cells = row.clone();
            cells.extend(predicted.row(r).iter().map(|v| v.to_string()));
            out.write_record(&cells)?;
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
