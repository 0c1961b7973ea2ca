//! The trainer: epochs of shuffled mini-batches on any backend with the chosen optimizer and
//! learning-rate schedule, losses once per epoch, two stopping rules (early stopping on the
//! validation loss, convergence of the training loss), a guard against divergence, and state
//! that lets an interrupted run continue exactly.

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
use crate::guard::interrupt::CancelToken;
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
    /// Visit the records in a new random order each epoch (else in their order).
    #[serde(default = "shuffled")]
    pub shuffle: bool,
    #[serde(default)]
    pub convergence: Option<Convergence>,
}

fn shuffled() -> bool {
    true
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
            shuffle: true,
            convergence: None,
        }
    }

    /// The records of epoch `epoch` in the order it visits them, of a data set of `n`.
    pub fn epoch_order(&self, epoch: usize, n: usize) -> Vec<usize> {
        let mut order = if self.shuffle {
            epoch_order(self.shuffle_seed.unwrap_or(self.seed), epoch, n)
        } else {
            (0..n).collect()
        };
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

/// Stop when the training loss has not improved on the best so far by more than `tol` for
/// more than `n_iter_no_change` epochs in a row (scikit-learn's rule for its MLPs' default
/// `early_stopping=False`, counted as it counts): the run has converged. The weights are the
/// last epoch's.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Convergence {
    pub tol: f64,
    pub n_iter_no_change: usize,
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
    /// Absent when nothing is held out for validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
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
    pub metrics: Box<MetricsFn<'a>>,
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
    /// Under the convergence rule: the best training loss so far, and the epochs in a row
    /// that did not improve on it by the rule's `tol`.
    #[serde(default)]
    pub best_train_loss: Option<f64>,
    #[serde(default)]
    pub epochs_without_improvement: usize,
    /// The epoch after which the convergence rule ended the run.
    #[serde(default)]
    pub converged: Option<usize>,
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
            best_train_loss: None,
            epochs_without_improvement: 0,
            converged: None,
        }
    }

    /// Whether the run has nothing left to do (all epochs, stopped early, or converged).
    pub fn is_complete(&self) -> bool {
        self.stopped_early.is_some()
            || self.converged.is_some()
            || self.epochs_done() >= self.config.epochs
    }

    /// Counts `train_loss` under the convergence rule, as scikit-learn's MLPs count it, and
    /// marks the run converged when the rule says so.
    fn count_convergence(&mut self, epoch: usize, train_loss: f64) {
        let Some(rule) = self.config.convergence else {
            return;
        };
        let best = self.best_train_loss.unwrap_or(f64::INFINITY);
        if train_loss > best - rule.tol {
            self.epochs_without_improvement += 1;
        } else {
            self.epochs_without_improvement = 0;
        }
        if train_loss < best {
            self.best_train_loss = Some(train_loss);
        }
        if self.epochs_without_improvement > rule.n_iter_no_change {
            self.converged = Some(epoch);
        }
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
        val_loss: Option<f64>,
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

/// A data set loaded into a backend, with its targets (to judge the predictions by).
#[derive(Clone, Copy)]
pub struct LoadedSet<'a> {
    pub data: DataId,
    pub target: ArrayView2<'a, f64>,
}

/// The training set, and the validation set when one is held out, loaded into a backend.
pub struct Loaded<'a> {
    pub train: LoadedSet<'a>,
    pub validation: Option<LoadedSet<'a>>,
}

/// The loss of the backend's predictions on loaded data, and the figures beside it.
pub fn evaluate(
    backend: &mut dyn Backend,
    set: LoadedSet,
    evaluation: &Evaluation,
) -> Result<(f64, BTreeMap<String, f64>)> {
    let y = backend.predict_data(set.data)?;
    Ok((
        evaluation.loss(y.view(), set.target),
        (evaluation.metrics)(y.view(), set.target),
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

/// Trains from `progress` until `config.epochs`, early stopping or convergence, calling
/// `after_epoch` after each good epoch with the progress and the backend, which holds the
/// weights (read back only when the callback needs them: on the GPU that is a copy of every
/// weight). Under early stopping the backend ends holding the best epoch's weights. A
/// cancelled `cancel` stops the run between batches with `Error::Interrupted`.
pub fn run(
    backend: &mut dyn Backend,
    data: &Loaded,
    evaluation: &Evaluation,
    mut progress: Progress,
    cancel: &CancelToken,
    mut after_epoch: impl FnMut(&EpochRecord, &Progress, &mut dyn Backend) -> Result<()>,
) -> Result<Finished> {
    let n = data.train.target.nrows();
    let started = Instant::now();
    let mut trained_records = 0usize;
    let rate = |records: usize| records as f64 / started.elapsed().as_secs_f64().max(1e-9);
    let config = progress.state.config.clone();
    if config.early_stopping.is_some() && data.validation.is_none() {
        return Err(Error::argument(
            "--patience",
            "early stopping watches the validation loss, and no validation records are held out",
        ));
    }
    let first = progress.state.epochs_done() + 1;
    for epoch in first..=config.epochs {
        if progress.state.is_complete() {
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
        cancel.check().map_err(interrupted)?;
        let order = config.epoch_order(epoch, n);
        let learnrate = config
            .schedule
            .learnrate(config.learnrate, epoch, config.epochs);
        let first_non_finite_batch = backend
            .train_epoch(data.train.data, &order, config.batch, learnrate, cancel)
            .map_err(interrupted)?;
        trained_records += order.len();
        let (train_loss, train_metrics) = evaluate(backend, data.train, evaluation)?;
        let (val_loss, val_metrics) = match data.validation {
            Some(set) => {
                let (loss, metrics) = evaluate(backend, set, evaluation)?;
                (Some(loss), metrics)
            }
            None => (None, BTreeMap::new()),
        };
        if first_non_finite_batch.is_some()
            || exploded(train_loss, progress.state.initial_loss)
            || val_loss.is_some_and(|v| exploded(v, progress.state.initial_loss))
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
        progress.state.count_convergence(epoch, train_loss);
        if let (Some(stopping), Some(val_loss)) = (config.early_stopping, val_loss) {
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

    /// A small regression problem on the CPU backend: the network, the loaded data (training
    /// records only, or the same records for validation too) and its targets.
    struct Problem {
        backend: CpuBackend<f32>,
        set: LoadedSet<'static>,
        network: Network<f64>,
    }

    fn problem() -> Problem {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let network = Network::<f64>::random(&[3, 4, 1], Activation::Identity, &mut rng).unwrap();
        let x = Array2::from_shape_fn((20, 3), |(i, j)| ((i * 3 + j) as f64).sin());
        let t: &'static Array2<f64> =
            Box::leak(Box::new(Array2::from_shape_fn((20, 1), |(i, _)| {
                (i as f64).cos()
            })));
        let mut backend = CpuBackend::<f32>::new(&network);
        let data = backend.load_data(x.view().into(), t.view().into()).unwrap();
        Problem {
            backend,
            set: LoadedSet {
                data,
                target: t.view(),
            },
            network,
        }
    }

    fn no_metrics(spec: Spec) -> Evaluation<'static> {
        Evaluation {
            spec,
            metrics: Box::new(|_: ArrayView2<f64>, _: ArrayView2<f64>| BTreeMap::new()),
        }
    }

    fn start(p: &mut Problem, config: TrainConfig, evaluation: &Evaluation) -> Progress {
        let initial_loss = evaluate(&mut p.backend, p.set, evaluation).unwrap().0;
        Progress {
            state: TrainingState::new(config, initial_loss),
            best_network: None,
        }
    }

    #[test]
    fn a_diverging_run_stops_before_its_bad_epoch_is_recorded() {
        let mut p = problem();
        let data = Loaded {
            train: p.set,
            validation: Some(p.set),
        };
        let evaluation = no_metrics(p.network.spec());
        let progress = start(&mut p, TrainConfig::plain(5, 4, 1e4, 0), &evaluation);
        let mut epochs_seen = 0;
        let finished = run(
            &mut p.backend,
            &data,
            &evaluation,
            progress,
            &CancelToken::new(),
            |_, _, _| {
                epochs_seen += 1;
                Ok(())
            },
        )
        .unwrap();
        assert!(matches!(
            finished.outcome,
            Outcome::Diverged { epoch: 1, .. }
        ));
        assert_eq!(epochs_seen, 0);
        assert!(finished.state.history.is_empty());
    }

    #[test]
    fn the_convergence_rule_counts_as_scikit_learn_does() {
        // A learning rate that moves nothing: the first epoch sets the best loss, none after
        // it improves by tol, and the run stops once n_iter_no_change + 1 epochs did not
        // (scikit-learn stops when the count exceeds n_iter_no_change): epoch 5 of 50.
        let mut p = problem();
        let data = Loaded {
            train: p.set,
            validation: None,
        };
        let evaluation = no_metrics(p.network.spec());
        let config = TrainConfig {
            convergence: Some(Convergence {
                tol: 1e-3,
                n_iter_no_change: 3,
            }),
            ..TrainConfig::plain(50, 4, 1e-30, 0)
        };
        let progress = start(&mut p, config, &evaluation);
        let finished = run(
            &mut p.backend,
            &data,
            &evaluation,
            progress,
            &CancelToken::new(),
            |_, _, _| Ok(()),
        )
        .unwrap();
        assert_eq!(finished.state.converged, Some(5));
        assert_eq!(finished.state.epochs_done(), 5);
        assert!(finished.state.history.iter().all(|r| r.val_loss.is_none()));
        assert_eq!(finished.state.epochs_without_improvement, 4);

        // Counting by hand: an improvement by more than tol resets the count, a smaller one
        // only moves the best.
        let mut state = TrainingState::new(
            TrainConfig {
                convergence: Some(Convergence {
                    tol: 0.1,
                    n_iter_no_change: 1,
                }),
                ..TrainConfig::plain(10, 1, 0.1, 0)
            },
            1.0,
        );
        for (epoch, loss) in [(1, 1.0), (2, 0.95), (3, 0.5), (4, 0.45)] {
            state.count_convergence(epoch, loss);
            assert_eq!(state.converged, None, "epoch {epoch}");
        }
        assert_eq!(state.best_train_loss, Some(0.45));
        state.count_convergence(5, 0.44);
        assert_eq!(state.converged, Some(5));
    }

    #[test]
    fn early_stopping_needs_validation_and_a_cancelled_run_stops() {
        let mut p = problem();
        let evaluation = no_metrics(p.network.spec());
        let config = TrainConfig {
            early_stopping: Some(EarlyStopping {
                patience: 2,
                min_delta: 0.0,
            }),
            ..TrainConfig::plain(5, 4, 0.1, 0)
        };
        let progress = start(&mut p, config, &evaluation);
        let alone = Loaded {
            train: p.set,
            validation: None,
        };
        let refused = run(
            &mut p.backend,
            &alone,
            &evaluation,
            progress,
            &CancelToken::new(),
            |_, _, _| Ok(()),
        );
        assert!(
            matches!(&refused, Err(Error::Argument { flag, .. }) if flag == "--patience"),
            "{:?}",
            refused.err()
        );

        let progress = start(&mut p, TrainConfig::plain(5, 4, 0.1, 0), &evaluation);
        let cancel = CancelToken::new();
        cancel.cancel(15);
        let stopped = run(
            &mut p.backend,
            &alone,
            &evaluation,
            progress,
            &cancel,
            |_, _, _| Ok(()),
        );
        assert!(matches!(
            stopped,
            Err(Error::Interrupted { signal: 15, .. })
        ));
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
        let in_order = TrainConfig {
            shuffle: false,
            ..TrainConfig::plain(1, 4, 0.1, 3)
        };
        assert_eq!(in_order.epoch_order(5, 6), [0, 1, 2, 3, 4, 5]);
    }
}
