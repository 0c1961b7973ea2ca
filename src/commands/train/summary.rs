//! What a finished run reports: the model saved first, then the summary table of every split
//! (loss, and accuracy and F1 for classes or RMSE, MAE and R² in the target's units), the
//! `--metrics` JSON and the plots.

use anyhow::{Context, Result};
use ndarray::Array2;
use serde_json::json;

use backprop::data::{Dataset, Encoder, Splits};
use backprop::mlp::{LearnRate, Run};
use backprop::model_file::{self, SavedModel};
use backprop::ops::optimizer::short;
use backprop::report::metrics::{readable, ClassReport, RegressionReport};
use backprop::report::plot;
use backprop::report::summary::{self, Figures};
use backprop::train::Finished;
use backprop::{Error, Matrix, Spec};

use super::flags::DataPlan;
use super::TrainArgs;
use crate::commands::outln;

/// Saves the model (first: a later failure must not lose it), predicts every split that holds
/// records (the training and validation sets where they are loaded, the test set loaded now),
/// and writes the summary, `--metrics` and the plots (rank 0; the other ranks take part in
/// reading the weights back and in the predictions, and return).
pub fn report(
    args: &TrainArgs,
    run: &mut Run,
    (encoder, splits): (&Encoder, &Splits),
    data: &DataPlan,
    (finished, seconds): (Finished, f64),
    says: bool,
) -> Result<()> {
    let trained = run.backend().network()?;
    let state = &finished.state;
    if let (Some(path), true) = (&args.save, says) {
        model_file::save(
            path,
            &SavedModel {
                training: Some(state.clone()),
                ..SavedModel::model(trained, encoder.clone())
            },
        )?;
    }
    let mut parts: Vec<(&'static str, Array2<f64>, &Dataset)> = Vec::new();
    if let Some(y) = run.predict_loaded(false)? {
        parts.push(("training", y, &splits.train));
    }
    if let Some(y) = run.predict_loaded(true)? {
        parts.push(("validation", y, &splits.validation));
    }
    if !splits.test.is_empty() {
        let (backend, set) = (run.backend(), &splits.test);
        let id = backend
            .load_data(Matrix::from(&set.x), Matrix::from(&set.target))
            .map_err(|e| set.locate(e, &set.source, "test", encoder))?;
        parts.push(("test", backend.predict_data(id)?, set));
    }
    if !says {
        return Ok(());
    }
    let feature_names = encoder.feature_names();
    for (name, y, part) in &parts {
        part.check_predictions(&part.source, name, &feature_names, y.view())
            .with_context(|| match &args.save {
                Some(path) => format!(
                    "the model was saved to {}, but no metrics or plots were written",
                    path.display()
                ),
                None => "no metrics or plots were written".into(),
            })?;
    }
    let names = encoder.target_columns();
    let unit_label = data.unit.clone().unwrap_or_else(|| "data units".into());
    let spec = run.spec;
    let summary = summarise(encoder, spec, &parts);
    let config = &run.config;
    let description = run.description();
    let source_name = data.source.name();

    if let Some(path) = &args.metrics {
        let mut metrics = summary.json();
        metrics.insert("backend".into(), json!(description));
        metrics.insert("layer_sizes".into(), json!(run.layer_sizes));
        metrics.insert("config".into(), json!(config));
        metrics.insert(
            "records_per_second".into(),
            json!(finished.records_per_second),
        );
        metrics.insert("training_seconds".into(), json!(seconds));
        metrics.insert("epochs".into(), json!(state.history));
        metrics.insert("learnrate".into(), json!(config.learnrate));
        metrics.insert("best_epoch".into(), json!(state.best.map(|b| b.epoch)));
        metrics.insert("stopped_early".into(), json!(state.stopped_early));
        metrics.insert("converged".into(), json!(state.converged));
        let text = serde_json::to_string_pretty(&serde_json::Value::Object(metrics))?;
        backprop::io::write_atomic(path, |w| {
            std::io::Write::write_all(w, text.as_bytes()).map_err(|e| Error::Io {
                path: path.clone(),
                cause: e,
            })
        })?;
    }
    if let Some(path) = &args.plot {
        plot::loss_curves(
            path,
            &state.history,
            &format!("{} on {}", names.join(", "), source_name.display()),
            summary::loss_label(spec),
        )?;
    }
    if let (Some(path), Some((_, y, part))) = (
        &args.plot_predictions,
        parts.iter().find(|(name, _, _)| *name == "test"),
    ) {
        let hours: Vec<f64> = match &part.time {
            Some(t) => t.iter().map(|v| v - t[0]).collect(),
            None => (0..part.len()).map(|i| i as f64).collect(),
        };
        let truth = encoder.destandardize(&part.target);
        let predicted = encoder.destandardize(y);
        plot::predictions(
            path,
            &hours,
            &truth.column(0).to_vec(),
            &predicted.column(0).to_vec(),
            &format!("test set: {} predicted and observed", names[0]),
            &format!("{} ({unit_label})", names[0]),
        )?;
    }

    let layer_sizes = &run.layer_sizes;
    outln!(
        "trained {:?} ({} hidden, {} output, {} loss{}) for {} epochs on {description}: {} training records, {:.0} records/s, {:.1} s",
        layer_sizes,
        spec.hidden,
        spec.output,
        spec.loss,
        if args.no_bias { ", no biases" } else { "" },
        state.epochs_done(),
        splits.train.len(),
        finished.records_per_second,
        seconds
    )?;
    let optimizer = &config.optimizer;
    outln!(
        "optimizer {}, learning rate {}{}, {}{}",
        optimizer.describe(),
        short(config.learnrate),
        match args.lr {
            LearnRate::Auto => format!(" (--lr auto for {})", optimizer.method.name()),
            LearnRate::Value(_) => String::new(),
        },
        config.schedule.describe(),
        stopping(state)
    )?;
    if splits.dropped > 0 {
        outln!("{} records without a target were left out", splits.dropped)?;
    }
    if let Some(classes) = &encoder.classes {
        outln!(
            "{} classes of `{}` ({}): {}",
            classes.names.len(),
            classes.column,
            classes.names.join(", "),
            if classes.single_output {
                format!(
                    "one sigmoid output, the probability of `{}`",
                    classes.names[1]
                )
            } else {
                format!("a {}-way {} output", classes.names.len(), spec.output)
            }
        )?;
    }
    summary.print(&unit_label)
}

/// How the run stopped, when a rule stopped it or kept an earlier epoch.
fn stopping(state: &backprop::train::TrainingState) -> String {
    let convergence = state.config.convergence;
    match (state.stopped_early, state.best, state.converged, convergence) {
        (Some(stopped), Some(best), _, _) => format!(
            "; early stopping after epoch {stopped} kept epoch {}'s weights (validation loss {})",
            best.epoch,
            readable(best.val_loss, 4)
        ),
        (None, Some(best), _, _) => format!(
            "; kept epoch {}'s weights, the best validation loss ({})",
            best.epoch,
            readable(best.val_loss, 4)
        ),
        (_, _, Some(epoch), Some(rule)) => format!(
            "; converged after epoch {epoch}: the training loss did not improve by more than --tol {} for {} epochs",
            short(rule.tol),
            rule.n_iter_no_change + 1
        ),
        _ => String::new(),
    }
}

/// The figures of each split: the loss, then for classes accuracy and macro F1 (and the test
/// set's per-class figures and confusion matrix), for numbers RMSE, MAE and R² in the data's
/// units per target (and accuracy where numeric targets are one-hot).
struct Summary {
    spec: Spec,
    rows: Vec<SummaryRow>,
}

struct SummaryRow {
    name: &'static str,
    loss: f64,
    figures: Figures,
    one_hot_accuracy: Option<f64>,
}

fn summarise(
    encoder: &Encoder,
    spec: Spec,
    parts: &[(&'static str, Array2<f64>, &Dataset)],
) -> Summary {
    let rows = parts
        .iter()
        .map(|(name, y, part)| SummaryRow {
            name,
            loss: spec
                .loss
                .evaluate(spec.output, y.view(), part.target.view()),
            figures: summary::figures(encoder, y.view(), part.target.view()),
            one_hot_accuracy: summary::one_hot_accuracy(y.view(), part.target.view()),
        })
        .collect();
    Summary { spec, rows }
}

impl Summary {
    /// The same figures for `--metrics`.
    fn json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut summary = serde_json::Map::new();
        summary.insert("loss".into(), json!(summary::loss_label(self.spec)));
        for row in &self.rows {
            let name = row.name;
            summary.insert(format!("{name}_loss"), json!(row.loss));
            match &row.figures {
                Figures::Classes(c) => {
                    summary.insert(format!("{name}_accuracy"), json!(c.accuracy));
                    summary.insert(format!("{name}_macro_f1"), json!(c.macro_f1));
                    summary.insert(format!("{name}_per_class"), json!(c.per_class));
                    summary.insert(
                        format!("{name}_confusion_matrix"),
                        json!(c.confusion_matrix),
                    );
                }
                Figures::Regression(reports) => {
                    let by_target = |pick: &dyn Fn(&RegressionReport) -> serde_json::Value| {
                        reports
                            .iter()
                            .map(|(n, r)| (n.clone(), pick(r)))
                            .collect::<serde_json::Map<_, _>>()
                    };
                    summary.insert(
                        format!("{name}_rmse_original_units"),
                        json!(by_target(&|r| json!(r.rmse))),
                    );
                    summary.insert(
                        format!("{name}_mae_original_units"),
                        json!(by_target(&|r| json!(r.mae))),
                    );
                    summary.insert(format!("{name}_r2"), json!(by_target(&|r| json!(r.r2))));
                }
            }
            if let Some(a) = row.one_hot_accuracy {
                summary.insert(format!("{name}_accuracy"), json!(a));
            }
        }
        summary
    }

    fn print(&self, unit_label: &str) -> Result<()> {
        let loss = summary::loss_label(self.spec);
        match self.rows.first().map(|r| &r.figures) {
            Some(Figures::Classes(_)) => {
                outln!(
                    "{:<11} {:>14} {:>9} {:>9}",
                    "",
                    loss,
                    "accuracy",
                    "macro F1"
                )?;
                for row in &self.rows {
                    if let Figures::Classes(c) = &row.figures {
                        outln!(
                            "{:<11} {:>14} {:>8.1}% {:>9.3}",
                            row.name,
                            readable(row.loss, 4),
                            c.accuracy * 100.0,
                            c.macro_f1
                        )?;
                    }
                }
                let test = self.rows.iter().find(|r| r.name == "test");
                if let Some(Figures::Classes(test)) = test.map(|r| &r.figures) {
                    print_classes(test)?;
                }
            }
            Some(Figures::Regression(reports)) => {
                // Every row's figures first: each column as wide as its title (a long target
                // name) and never narrower than its figures (1.98e300 as wide as 85.70).
                let rows: Vec<(&SummaryRow, Vec<[String; 3]>)> = self
                    .rows
                    .iter()
                    .filter_map(|row| match &row.figures {
                        Figures::Regression(reports) => Some((
                            row,
                            reports
                                .values()
                                .map(|r| {
                                    [
                                        r.rmse.map_or("-".into(), |v| readable(v, 2)),
                                        readable(r.mae, 2),
                                        readable(r.r2, 3),
                                    ]
                                })
                                .collect(),
                        )),
                        Figures::Classes(_) => None,
                    })
                    .collect();
                let titles: Vec<[String; 3]> = reports
                    .keys()
                    .map(|n| {
                        [
                            format!("RMSE {n} ({unit_label})"),
                            format!("MAE {n}"),
                            format!("R² {n}"),
                        ]
                    })
                    .collect();
                let widths: Vec<[usize; 3]> = titles
                    .iter()
                    .enumerate()
                    .map(|(j, t)| {
                        let w = |i: usize, least: usize| {
                            let widest = rows
                                .iter()
                                .filter_map(|(_, figures)| figures.get(j))
                                .map(|f| f[i].chars().count())
                                .max()
                                .unwrap_or(0);
                            (t[i].chars().count() + 2).max(widest + 2).max(least)
                        };
                        [w(0, 24), w(1, 12), w(2, 8)]
                    })
                    .collect();
                let columns = |cells: &[[String; 3]]| -> String {
                    cells
                        .iter()
                        .zip(&widths)
                        .map(|([rmse, mae, r2], [a, b, c])| {
                            format!("  {rmse:>a$}{mae:>b$}{r2:>c$}")
                        })
                        .collect()
                };
                outln!("{:<11} {:>19}{}", "", loss, columns(&titles))?;
                for (row, figures) in &rows {
                    let values = columns(figures);
                    outln!(
                        "{:<11} {:>19}{values}{}",
                        row.name,
                        readable(row.loss, 4),
                        row.one_hot_accuracy
                            .map_or(String::new(), |a| format!("  accuracy {:.1}%", a * 100.0))
                    )?;
                }
            }
            None => {}
        }
        Ok(())
    }
}

/// The test set's per-class figures and confusion matrix.
fn print_classes(test: &ClassReport) -> Result<()> {
    let width = test
        .per_class
        .iter()
        .map(|c| c.class.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    outln!(
        "test set, per class:\n{:<width$} {:>9} {:>7} {:>6} {:>8}",
        "class",
        "precision",
        "recall",
        "F1",
        "support"
    )?;
    for c in &test.per_class {
        outln!(
            "{:<width$} {:>9.3} {:>7.3} {:>6.3} {:>8}",
            c.class,
            c.precision,
            c.recall,
            c.f1,
            c.support
        )?;
    }
    outln!("confusion matrix (rows: true class, columns: predicted, in the order above):")?;
    for (c, row) in test.per_class.iter().zip(&test.confusion_matrix) {
        let counts: String = row.iter().map(|n| format!("{n:>7}")).collect();
        outln!("{:<width$} {counts}", c.class)?;
    }
    Ok(())
}
