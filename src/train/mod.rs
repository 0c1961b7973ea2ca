//! The trainer: epochs of shuffled mini-batches on any backend with the chosen optimizer and
//! learning-rate schedule, losses once per epoch, early stopping, a guard against divergence,
//! and state that lets an interrupted run continue exactly.

pub mod schedule;

use std::collections::BTreeMap;
use std::time::Instant;

use ndarray::ArrayView2;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, DataId};
use crate::error::{Error, Result};
use crate::guard::interrupt;
use crate::model::{Network, Spec};
use crate::ops::optimizer::Optimizer;
use schedule::Schedule;

/// A training loss this many times the untrained network's counts as diverged.
pub const EXPLODED_FACTOR: f64 = 1e3;

/// What a run is asked to do (saved with checkpoints, so `--resume` repeats it exactly).
/// Fields after `seed` came with the optimizers; a checkpoint without them is a plain SGD run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch: usize,
    /// The base learning rate (the schedule scales it per epoch).
    pub learnrate: f64,
    /// The seed of the initial weights.
    pub seed: u64,
    /// The seed of the per-epoch shuffles (`seed` when absent).
    #[serde(default)]
    pub shuffle_seed: Option<u64>,
    #[serde(default)]
    pub optimizer: Optimizer,
    #[serde(default)]
    pub schedule: Schedule,
    /// Leave out the partial last batch of each epoch (its records come in other epochs).
    #[serde(default)]
    pub drop_last: bool,
    #[serde(default)]
    pub early_stopping: Option<EarlyStopping>,
}

impl TrainConfig {
    /// The plain run of the seeds: SGD at a constant rate, every record every epoch.
    pub fn plain(epochs: usize, batch: usize, learnrate: f64, seed: u64) -> Self {
        TrainConfig {
            epochs,
            batch,
            learnrate,
            seed,
            shuffle_seed: None,
            optimizer: Optimizer::default(),
            schedule: Schedule::default(),
            drop_last: false,
            early_stopping: None,
        }
    }

    /// The records of epoch `epoch` in the order it visits them, of a data set of `n`.
    pub fn epoch_order(&self, epoch: usize, n: usize) -> Vec<usize> {
        let mut order = epoch_order(self.shuffle_seed.unwrap_or(self.seed), epoch, n);
        if self.drop_last && n > self.batch {
            order.truncate(n - n % self.batch);
        }
        order
    }
}

/// Stop when the validation loss has not improved by more than `min_delta` for `patience`
/// epochs, keeping the best epoch's weights.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct EarlyStopping {
    pub patience: usize,
    pub min_delta: f64,
}

/// The best epoch so far under early stopping.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct BestEpoch {
    pub epoch: usize,
    pub val_loss: f64,
}

/// The losses after one epoch, in model units (standardised targets), and the figures beside
/// them (accuracy for classes; RMSE, MAE and R² in the target's units for regression).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub train_metrics: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub val_metrics: BTreeMap<String, f64>,
}

/// Figures computed from a run's outputs and targets (accuracy, RMSE…), by name.
pub type MetricsFn<'a> = dyn Fn(ArrayView2<f64>, ArrayView2<f64>) -> BTreeMap<String, f64> + 'a;

/// How a run is judged: the loss of the network's spec, and the figures reported beside it
/// each epoch (from outputs and targets).
pub struct Evaluation<'a> {
    pub spec: Spec,
    pub metrics: &'a MetricsFn<'a>,
}

impl Evaluation<'_> {
    /// The loss of outputs `y` against `target`.
    pub fn loss(&self, y: ArrayView2<f64>, target: ArrayView2<f64>) -> f64 {
        self.spec.loss.evaluate(self.spec.output, y, target)
    }
}

/// Where a run stands: what a checkpoint stores besides the weights.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainingState {
    pub config: TrainConfig,
    /// The untrained network's training loss: the yardstick of the divergence guard.
    pub initial_loss: f64,
    pub history: Vec<EpochRecord>,
    /// Under early stopping: the best epoch so far (its weights are kept beside the state).
    #[serde(default)]
    pub best: Option<BestEpoch>,
    /// The epoch after which early stopping ended the run.
    #[serde(default)]
    pub stopped_early: Option<usize>,
}

impl TrainingState {
    pub fn epochs_done(&self) -> usize {
        self.history.len()
    }

    /// A fresh run's state.
    pub fn new(config: TrainConfig, initial_loss: f64) -> Self {
        TrainingState {
            config,
            initial_loss,
            history: Vec::new(),
            best: None,
            stopped_early: None,
        }
    }

    /// Whether the run has nothing left to do (all epochs, or stopped early).
    pub fn is_complete(&self) -> bool {
        self.stopped_early.is_some() || self.epochs_done() >= self.config.epochs
    }
}

/// How a run ended.
pub enum Outcome {
    Finished,
    /// A loss turned NaN or exploded at `epoch` (the weights in the backend are unusable; the
    /// last checkpoint holds the good ones). `first_non_finite_batch` is the batch of that
    /// epoch whose output first held a NaN or an infinity, when one did.
    Diverged {
        epoch: usize,
        train_loss: f64,
        val_loss: f64,
        first_non_finite_batch: Option<usize>,
    },
}

/// NaN, infinite, or over `EXPLODED_FACTOR` times the untrained network's training loss.
fn exploded(loss: f64, initial_loss: f64) -> bool {
    !loss.is_finite() || loss > EXPLODED_FACTOR * initial_loss.max(1e-12)
}

/// The order of epoch `epoch`: a permutation of `n` records drawn from the run's seed and the
/// epoch number alone, so that a resumed run shuffles as the uninterrupted one would have.
pub fn epoch_order(seed: u64, epoch: usize, n: usize) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    order
}

/// The training and validation sets loaded into a backend.
pub struct Loaded<'a> {
    pub train: DataId,
    pub train_target: ArrayView2<'a, f64>,
    pub validation: DataId,
    pub validation_target: ArrayView2<'a, f64>,
}

/// The loss of the backend's predictions on loaded data, and the figures beside it.
pub fn evaluate(
    backend: &mut dyn Backend,
    data: DataId,
    target: ArrayView2<f64>,
    evaluation: &Evaluation,
) -> Result<(f64, BTreeMap<String, f64>)> {
    let y = backend.predict_data(data)?;
    Ok((
        evaluation.loss(y.view(), target),
        (evaluation.metrics)(y.view(), target),
    ))
}

/// What `run` leaves: how it ended, the state (history of the good epochs) and the speed. The
/// weights stay in the backend (read them with `Backend::network`); after a divergence they are
/// the bad ones, and the last checkpoint holds the good.
pub struct Finished {
    pub outcome: Outcome,
    pub state: TrainingState,
    pub records_per_second: f64,
}

/// Where training goes on from: the state, and under early stopping the best epoch's network
/// (which a checkpoint keeps beside the current one).
pub struct Progress {
    pub state: TrainingState,
    pub best_network: Option<Network<f64>>,
}

/// Trains from `progress` until `config.epochs` or early stopping, calling `after_epoch` after
/// each good epoch with the progress and the backend, which holds the weights (read back only
/// when the callback needs them: on the GPU that is a copy of every weight). Under early
/// stopping the backend ends holding the best epoch's weights.
pub fn run(
    backend: &mut dyn Backend,
    data: &Loaded,
    evaluation: &Evaluation,
    mut progress: Progress,
    mut after_epoch: impl FnMut(&EpochRecord, &Progress, &mut dyn Backend) -> Result<()>,
) -> Result<Finished> {
    let n = data.train_target.nrows();
    let started = Instant::now();
    let mut trained_records = 0usize;
    let rate = |records: usize| records as f64 / started.elapsed().as_secs_f64().max(1e-9);
    let config = progress.state.config.clone();
    // From here the first SIGINT/SIGTERM stops training between batches (see guard::interrupt).
    let _polling = interrupt::Polling::start();
    let first = progress.state.epochs_done() + 1;
    for epoch in first..=config.epochs {
        if progress.state.stopped_early.is_some() {
            break;
        }
        let interrupted = |e: Error| match e {
            Error::Interrupted { signal, .. } => Error::Interrupted {
                signal,
                detail: format!(
                    " during epoch {epoch} of {}; {} epochs were complete",
                    config.epochs,
                    epoch - 1
                ),
            },
            other => other,
        };
        interrupt::check().map_err(interrupted)?;
        let order = config.epoch_order(epoch, n);
        let learnrate = config
            .schedule
            .learnrate(config.learnrate, epoch, config.epochs);
        let first_non_finite_batch = backend
            .train_epoch(data.train, &order, config.batch, learnrate)
            .map_err(interrupted)?;
        trained_records += order.len();
        let (train_loss, train_metrics) =
            evaluate(backend, data.train, data.train_target, evaluation)?;
        let (val_loss, val_metrics) =
            evaluate(backend, data.validation, data.validation_target, evaluation)?;
        if first_non_finite_batch.is_some()
            || exploded(train_loss, progress.state.initial_loss)
            || exploded(val_loss, progress.state.initial_loss)
        {
            return Ok(Finished {
                outcome: Outcome::Diverged {
                    epoch,
                    train_loss,
                    val_loss,
                    first_non_finite_batch,
                },
                state: progress.state,
                records_per_second: rate(trained_records),
            });
        }
        let record = EpochRecord {
            epoch,
            train_loss,
            val_loss,
            train_metrics,
            val_metrics,
        };
        progress.state.history.push(record.clone());
        if let Some(stopping) = config.early_stopping {
            let improved = progress
                .state
                .best
                .is_none_or(|best| val_loss < best.val_loss - stopping.min_delta);
            if improved {
                progress.state.best = Some(BestEpoch { epoch, val_loss });
                progress.best_network = Some(backend.network()?);
            }
            let since = epoch - progress.state.best.map_or(epoch, |b| b.epoch);
            if since >= stopping.patience {
                progress.state.stopped_early = Some(epoch);
            }
        }
        after_epoch(&record, &progress, &mut *backend)?;
    }
    if let Some(best) = &progress.best_network {
        backend.set_network(best)?;
    }
    Ok(Finished {
        outcome: Outcome::Finished,
        state: progress.state,
        records_per_second: rate(trained_records),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::CpuBackend;
    use crate::model::{Activation, Network};
    use ndarray::Array2;

    #[test]
    fn a_diverging_run_stops_before_its_bad_epoch_is_recorded() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let network = Network::<f64>::random(&[3, 4, 1], Activation::Identity, &mut rng).unwrap();
        let x = Array2::from_shape_fn((20, 3), |(i, j)| ((i * 3 + j) as f64).sin());
        let t = Array2::from_shape_fn((20, 1), |(i, _)| (i as f64).cos());
        let mut backend = CpuBackend::<f32>::new(&network);
        let id = backend.load_data(x.view(), t.view()).unwrap();
        let data = Loaded {
            train: id,
            train_target: t.view(),
            validation: id,
            validation_target: t.view(),
        };
        let config = TrainConfig::plain(5, 4, 1e4, 0);
        let no_metrics = |_: ArrayView2<f64>, _: ArrayView2<f64>| BTreeMap::new();
        let evaluation = Evaluation {
            spec: network.spec(),
            metrics: &no_metrics,
        };
        let initial_loss = evaluate(&mut backend, id, t.view(), &evaluation).unwrap().0;
        let progress = Progress {
            state: TrainingState::new(config, initial_loss),
            best_network: None,
        };
        let mut epochs_seen = 0;
        let finished = run(&mut backend, &data, &evaluation, progress, |_, _, _| {
            epochs_seen += 1;
            Ok(())
        })
        .unwrap();
        assert!(matches!(
            finished.outcome,
            Outcome::Diverged { epoch: 1, .. }
        ));
        assert_eq!(epochs_seen, 0);
        assert!(finished.state.history.is_empty());
    }

    #[test]
    fn epoch_orders_are_permutations_that_depend_on_seed_and_epoch_only() {
        let a = epoch_order(3, 5, 100);
        assert_eq!(a, epoch_order(3, 5, 100));
        assert_ne!(a, epoch_order(3, 6, 100));
        assert_ne!(a, epoch_order(4, 5, 100));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    }
}
