//! One training run, as every front end starts it: the network's kind and layer sizes from the
//! settings and the data, its first weights (fresh, warm, or where a checkpoint left off), the
//! backend it trains on (device, precision, ranks), the data loaded into it once, and the
//! trainer's loop with its stopping rules.

use std::sync::Arc;

use ndarray::ArrayView2;
use rand::SeedableRng;

use super::settings::{Device, Settings};
use crate::backend::{self, Backend};
use crate::comm::{check_same_on_every_rank, checksum, Communicator};
use crate::data::Encoder;
use crate::device::{self, CpuPrecision};
use crate::error::{Error, Result};
use crate::guard::interrupt::CancelToken;
use crate::guard::memory::host_available;
use crate::matrix::Matrix;
use crate::model::{Activation, Loss, Network, Spec};
use crate::ops::optimizer::OptimizerState;
use crate::parallel::{flatten, parameters, DataParallel, HiddenParallel, Parallel};
use crate::report::summary;
use crate::train::{
    self, EpochRecord, Evaluation, Finished, Loaded, LoadedSet, Progress, TrainConfig,
    TrainingState,
};

/// Something a run tells its user, by kind, for each front end to show its way (the command
/// line on standard error, the Python package as warnings or, verbose, printed).
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    /// Which backend computes (and why, when `auto` fell back to the CPU).
    Backend(String),
    /// Worth knowing, nothing wrong (a batch larger than the data, clipped).
    Note(String),
    /// Probably not what the user meant (a learning rate too small to move any weight).
    Warning(String),
}

/// Where a run's notices go.
pub type Notify = Arc<dyn Fn(Notice) + Send + Sync>;

/// What surrounds a run: the ranks it trains on (one process: [`crate::comm::Local`]), the
/// token that stops it, and where its notices go.
#[derive(Clone)]
pub struct Env<'a> {
    pub comm: &'a dyn Communicator,
    pub cancel: CancelToken,
    pub notify: Notify,
}

impl<'a> Env<'a> {
    /// One process, a fresh token, notices dropped.
    pub fn quiet() -> Env<'static> {
        Env {
            comm: &crate::comm::Local,
            cancel: CancelToken::new(),
            notify: Arc::new(|_| {}),
        }
    }

    fn tell(&self, notice: Notice) {
        if self.comm.writes_outputs() {
            (self.notify)(notice);
        }
    }
}

/// Where a run starts from.
pub enum Start {
    /// Weights drawn from the settings' seed.
    Fresh,
    /// These weights, with a fresh history and optimizer (scikit-learn's `warm_start`).
    Warm(Network<f64>),
    /// Where a checkpoint left off: weights, history, optimizer state and, under early
    /// stopping, the best epoch's weights. The settings must give the checkpoint's run (its
    /// epochs aside), or the run is refused: it would not be the one interrupted.
    Resume(Checkpoint),
    /// Where an earlier fit left off, going on with these settings (scikit-learn's
    /// `partial_fit`, whose batches may differ in size).
    Continue(Checkpoint),
}

/// A run's state between fits: what a checkpoint file holds besides the encoder.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub network: Network<f64>,
    pub state: TrainingState,
    pub optimizer: Option<OptimizerState<f64>>,
    pub best_network: Option<Network<f64>>,
}

/// Records of a run: features and their encoded targets (records x outputs, in model units).
#[derive(Clone, Copy, Debug)]
pub struct Part<'a> {
    pub x: Matrix<'a>,
    pub target: ArrayView2<'a, f64>,
}

/// A run ready to train: the backend holds the first weights and the data.
pub struct Run<'a> {
    pub spec: Spec,
    pub layer_sizes: Vec<usize>,
    pub config: TrainConfig,
    encoder: &'a Encoder,
    backend: Box<dyn Backend + 'a>,
    train: LoadedSet<'a>,
    validation: Option<LoadedSet<'a>>,
    progress: Option<Progress>,
    env: Env<'a>,
}

/// The network's kind from the settings and, for classes, from the encoder: with
/// cross-entropy two classes take one sigmoid output unless softmax was asked for, more take
/// softmax.
pub fn spec_of(settings: &Settings, encoder: &Encoder) -> Result<Spec> {
    let output = match (settings.loss, &encoder.classes, settings.output) {
        (Loss::CrossEntropy, Some(c), _) if c.single_output => Activation::Sigmoid,
        (_, _, Some(output)) => output,
        (Loss::CrossEntropy, Some(_), None) => Activation::Softmax,
        (Loss::CrossEntropy, None, None) => Activation::Sigmoid,
        (Loss::Mse, _, None) => Activation::Identity,
    };
    let spec = Spec {
        hidden: settings.activation,
        output,
        loss: settings.loss,
    };
    spec.check()?;
    Ok(spec)
}

/// The layer sizes a run of `settings` trains on records encoded by `encoder`.
pub fn layer_sizes(settings: &Settings, encoder: &Encoder) -> Vec<usize> {
    let mut sizes = vec![encoder.n_features()];
    sizes.extend(&settings.hidden);
    sizes.push(encoder.n_outputs());
    sizes
}

/// A network whose sizes overflow a count of elements or bytes: the hidden layers' doing (the
/// input and output widths come from data already in memory), so an invalid `--hidden`.
fn impossible_hidden(e: Error, hidden: &[usize]) -> Error {
    match e {
        Error::Memory(message) => Error::argument("--hidden", format!("{hidden:?}: {message}")),
        other => other,
    }
}

/// Whether regression targets are standardised: the command line's way with an identity output
/// (a sigmoid output learns targets in [0, 1] as they are).
pub fn standardizes_targets(settings: &Settings) -> bool {
    settings.standardize
        && settings.loss == Loss::Mse
        && settings.output.unwrap_or(Activation::Identity) == Activation::Identity
}

/// The backend a run computes on: on `device` (without an adapter's name, a rank of a
/// distributed run takes its host's `local_rank`-th GPU), tuning its kernels when `tune`, in
/// `precision` on the CPU, for batches of up to `batch` records; wrapped for `parallel` when
/// `env` has several ranks. Says which backend computes (and why) as a [`Notice::Backend`].
pub fn create_backend<'a>(
    (device, tune): (&Device, bool),
    network: &Network<f64>,
    (precision, batch): (CpuPrecision, usize),
    parallel: Parallel,
    env: &Env<'a>,
) -> Result<Box<dyn Backend + 'a>> {
    device.check()?;
    let comm = env.comm;
    let create = |network: &Network<f64>| -> Result<Box<dyn Backend>> {
        let selected = device::create(
            device.choice,
            || device::shared_gpu(device.adapter.as_deref(), comm.local_rank(), tune),
            network,
            precision,
            batch,
        )?;
        let mut line = selected.note.map_or(String::new(), |note| note + "\n");
        line += &match comm.size() {
            1 => format!("backend: {}", selected.backend.description()),
            n => format!(
                "rank {} of {n}: backend: {}",
                comm.rank(),
                selected.backend.description()
            ),
        };
        // Every rank says which device it took.
        (env.notify)(Notice::Backend(line));
        Ok(selected.backend)
    };
    if comm.size() == 1 {
        if parallel == Parallel::Hidden {
            env.tell(Notice::Note("--parallel hidden splits the hidden layer across MPI ranks (see README, \"Beyond one machine\"); one process trains the whole layer".into()));
        }
        return create(network);
    }
    let cancel = env.cancel.clone();
    Ok(match parallel {
        Parallel::Data => Box::new(DataParallel::new(create(network)?, comm, cancel)?),
        Parallel::Hidden => {
            let inner = create(&HiddenParallel::slice_of(network, comm)?)?;
            Box::new(HiddenParallel::new(network, comm, inner, cancel)?)
        }
    })
}

/// Warns when the learning rate is so small that a step cannot change any weight in fp32: an
/// update smaller than half a unit in the last place of a weight rounds away. The weights start
/// near `n_in^-0.5` and the error terms and standardised inputs are of order one, so a learning
/// rate below `2^-25 · n_in^-0.5` leaves every weight as it was.
fn learning_rate_lost(lr: f64, layer_sizes: &[usize]) -> Option<String> {
    let widest = layer_sizes[..layer_sizes.len() - 1]
        .iter()
        .copied()
        .max()
        .unwrap_or(1);
    let typical_weight = (widest as f64).powf(-0.5);
    let half_ulp = typical_weight * f64::from(f32::EPSILON) / 2.0;
    (lr < half_ulp).then(|| format!(
        "--lr {lr:e} is so small that no weight can change in fp32 (a step of about lr x 1 is below half a unit in the last place, {half_ulp:.1e}, of weights of size {typical_weight:.2}); training will leave the network as it is"
    ))
}

/// The first weights of a fresh run: the seeds' initialisation for the seeds' network (no
/// biases), otherwise as `settings.init` says, from `settings.seed`.
fn fresh_network(settings: &Settings, layer_sizes: &[usize], spec: Spec) -> Result<Network<f64>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(settings.seed);
    if settings.bias {
        Network::random_with(layer_sizes, spec, settings.init, true, &mut rng)
    } else {
        let seeds = Network::random(layer_sizes, spec.output, &mut rng)?;
        Network::with_spec(seeds.weights().to_vec(), None, spec)
    }
}

/// Sigmoid outputs live in (0, 1): a target outside [0, 1] can never be reached.
fn check_sigmoid_targets(part: &Part) -> Result<()> {
    match part
        .target
        .indexed_iter()
        .find(|(_, t)| !(0.0..=1.0).contains(*t))
    {
        None => Ok(()),
        Some(((i, j), t)) => Err(Error::Value {
            array: "target".into(),
            index: vec![i, j],
            message: format!(
                "{t} is outside [0, 1], which a sigmoid output cannot reach; use --output identity"
            ),
        }),
    }
}

impl<'a> Run<'a> {
    /// Sets up a run of `settings` on records encoded by `encoder`: `train` and, when held
    /// out, `validation`. A value a backend cannot hold is an error that `locate` may turn into
    /// one naming where the record came from (given the part's name, "training" or
    /// "validation", and the error).
    pub fn start(
        settings: &Settings,
        encoder: &'a Encoder,
        (train, validation): (Part<'a>, Option<Part<'a>>),
        start: Start,
        env: Env<'a>,
        locate: &dyn Fn(&str, Error) -> Error,
    ) -> Result<Self> {
        settings.check()?;
        let spec = spec_of(settings, encoder)?;
        if spec.output == Activation::Sigmoid && spec.loss == Loss::Mse {
            check_sigmoid_targets(&train).map_err(|e| locate("training", e))?;
            if let Some(part) = &validation {
                check_sigmoid_targets(part).map_err(|e| locate("validation", e))?;
            }
        }
        if train.x.nrows() == 0 {
            return Err(Error::Shape("there are no training records".into()));
        }
        let layer_sizes = layer_sizes(settings, encoder);
        let records = train.x.nrows();
        let (batch, clipped) = settings.batch_for(records);
        if clipped {
            env.tell(Notice::Note(format!(
                "--batch {} is more than the {records} training records: each epoch is one batch of {batch}",
                match settings.batch {
                    super::settings::Batch::Records(b) => b,
                    super::settings::Batch::Auto => batch,
                }
            )));
        }
        let optimizer = settings.optimizer(batch);
        optimizer.check()?;
        let learnrate = settings.learnrate.resolve(&optimizer);
        let config = TrainConfig {
            epochs: settings.epochs,
            batch,
            learnrate,
            seed: settings.seed,
            shuffle_seed: settings.shuffle_seed,
            optimizer,
            schedule: settings.schedule,
            drop_last: settings.drop_last,
            early_stopping: settings.early_stopping,
            shuffle: settings.shuffle,
            convergence: settings.convergence,
        };
        let precision = settings.compute.on_cpu(train.x.precision());
        let value_bytes = match precision {
            CpuPrecision::F32 => 4,
            CpuPrecision::F64 => 8,
        };
        let on_host = settings.device.may_compute_on_host();
        backend::memory_plan(&layer_sizes, batch, value_bytes, on_host)
            .map_err(|e| impossible_hidden(e, &settings.hidden))?
            .remedy(if on_host {
                "a smaller --hidden or --batch"
            } else {
                "a smaller --hidden"
            })
            .check("host memory", host_available()?.as_ref())?;
        if let Some(warning) = learning_rate_lost(learnrate, &layer_sizes) {
            env.tell(Notice::Warning(warning));
        }

        let resumed = matches!(start, Start::Resume(_) | Start::Continue(_));
        let (network, resumed_state) = match start {
            Start::Fresh => (fresh_network(settings, &layer_sizes, spec)?, None),
            Start::Warm(network) => {
                same_kind(&network, &layer_sizes, spec, settings.bias)?;
                (network, None)
            }
            Start::Resume(checkpoint) => {
                same_run(&checkpoint.state.config, &config)?;
                same_kind(&checkpoint.network, &layer_sizes, spec, settings.bias)?;
                (checkpoint.network.clone(), Some(checkpoint))
            }
            Start::Continue(checkpoint) => {
                same_kind(&checkpoint.network, &layer_sizes, spec, settings.bias)?;
                (checkpoint.network.clone(), Some(checkpoint))
            }
        };
        if let Some(saved) = &resumed_state {
            let state = TrainingState {
                config: config.clone(),
                ..saved.state.clone()
            };
            check_not_complete(&state)?;
        }
        // A checkpoint's moments go on with its optimizer; another optimizer (a `partial_fit`
        // after the solver changed) starts from fresh ones, as a new optimizer does.
        let optimizer_state = resumed_state
            .as_ref()
            .filter(|c| c.state.config.optimizer.method == optimizer.method)
            .and_then(|c| c.optimizer.clone())
            .filter(|state| state.check(&optimizer, &network).is_ok())
            .unwrap_or_else(|| OptimizerState::zeros(&optimizer, &network));
        let comm = env.comm;
        check_same_on_every_rank(
            comm,
            if resumed {
                "the checkpoint"
            } else {
                "the initial weights"
            },
            checksum(
                flatten(&parameters(&network))
                    .into_iter()
                    .chain(optimizer_state.moments.iter().flat_map(flatten)),
            ),
        )?;

        let mut backend = create_backend(
            (&settings.device, settings.tune),
            &network,
            (precision, batch),
            settings.parallel,
            &env,
        )?;
        backend.set_optimizer(&optimizer, &optimizer_state)?;
        let mut load = |name: &str, part: Part<'a>| -> Result<LoadedSet<'a>> {
            let data = backend
                .load_data(part.x, Matrix::F64(part.target))
                .map_err(|e| locate(name, e))?;
            Ok(LoadedSet {
                data,
                target: part.target,
            })
        };
        let train_set = load("training", train)?;
        let validation_set = validation.map(|v| load("validation", v)).transpose()?;
        let mut run = Run {
            spec,
            layer_sizes,
            config,
            encoder,
            backend,
            train: train_set,
            validation: validation_set,
            progress: None,
            env,
        };
        let progress = match resumed_state {
            Some(saved) => Progress {
                state: TrainingState {
                    config: run.config.clone(),
                    ..saved.state
                },
                best_network: saved.best_network,
            },
            None => {
                let evaluation = run.evaluation_spec();
                let (initial_loss, _) =
                    train::evaluate(run.backend.as_mut(), run.train, &evaluation)?;
                if !initial_loss.is_finite() {
                    let precision = run.backend.precision();
                    return Err(locate(
                        "training",
                        super::diverged::too_large(train, initial_loss, precision),
                    ));
                }
                Progress {
                    state: TrainingState::new(run.config.clone(), initial_loss),
                    best_network: None,
                }
            }
        };
        run.progress = Some(progress);
        Ok(run)
    }

    /// How the trainer judges the network: the loss of its spec, and the encoder's figures
    /// beside it each epoch.
    fn evaluation_spec(&self) -> Evaluation<'a> {
        let encoder = self.encoder;
        Evaluation {
            spec: self.spec,
            metrics: Box::new(move |y: ArrayView2<f64>, t: ArrayView2<f64>| {
                summary::epoch_metrics(encoder, y, t)
            }),
        }
    }

    /// Where training stands before [`Run::train`]: the state it starts from.
    pub fn state(&self) -> Option<&TrainingState> {
        self.progress.as_ref().map(|p| &p.state)
    }

    /// Trains until the epochs are done or a stopping rule ends the run, calling `after_epoch`
    /// after each good epoch (a checkpoint, a progress bar). The weights stay in the backend.
    pub fn train(
        &mut self,
        after_epoch: impl FnMut(&EpochRecord, &Progress, &mut dyn Backend) -> Result<()>,
    ) -> Result<Finished> {
        let progress = self
            .progress
            .take()
            .ok_or_else(|| Error::Shape("the run has already trained".into()))?;
        let evaluation = self.evaluation_spec();
        let loaded = Loaded {
            train: self.train,
            validation: self.validation,
        };
        train::run(
            self.backend.as_mut(),
            &loaded,
            &evaluation,
            progress,
            &self.env.cancel,
            after_epoch,
        )
    }

    /// The backend the run trains on (its predictions, its weights).
    pub fn backend(&mut self) -> &mut dyn Backend {
        self.backend.as_mut()
    }

    /// The backend's output for the training or validation records.
    pub fn predict_loaded(&mut self, validation: bool) -> Result<Option<ndarray::Array2<f64>>> {
        let set = if validation {
            self.validation
        } else {
            Some(self.train)
        };
        set.map(|s| self.backend.predict_data(s.data)).transpose()
    }

    /// The backend's description (`cpu (f32)`, an adapter's name).
    pub fn description(&self) -> String {
        self.backend.description()
    }
}

/// Refuses to go on with a run that has nothing left to do.
fn check_not_complete(state: &TrainingState) -> Result<()> {
    let done = state.epochs_done();
    let why = match (state.stopped_early, state.converged) {
        (Some(epoch), _) => format!("early stopping ended it after epoch {epoch}"),
        (_, Some(epoch)) => format!("it converged after epoch {epoch}"),
        _ if done >= state.config.epochs => {
            format!("it is already trained for {done} epochs; ask for more")
        }
        _ => return Ok(()),
    };
    Err(Error::argument(
        "--epochs",
        format!("the run has nothing left to do: {why}"),
    ))
}

/// Checks that a checkpoint's run, `saved`, is the one `config` asks for, its epochs aside.
fn same_run(saved: &TrainConfig, config: &TrainConfig) -> Result<()> {
    let same = TrainConfig {
        epochs: saved.epochs,
        ..config.clone()
    } == *saved;
    if same {
        return Ok(());
    }
    let c = saved;
    Err(Error::argument(
        "--resume",
        format!(
            "the checkpoint was made with --batch {} --lr {} --seed {}{} --optimizer {} ({}), schedule {}{}{}{}{}; resume with the same",
            c.batch,
            c.learnrate,
            c.seed,
            c.shuffle_seed
                .map_or(String::new(), |s| format!(" --shuffle-seed {s}")),
            c.optimizer.method.name(),
            c.optimizer.describe(),
            c.schedule.describe(),
            if c.drop_last { ", --drop-last" } else { "" },
            if c.shuffle { "" } else { ", --no-shuffle" },
            c.early_stopping.map_or(String::new(), |e| format!(
                ", --patience {} --min-delta {}",
                e.patience, e.min_delta
            )),
            c.convergence.map_or(String::new(), |r| format!(
                ", --tol {} --n-iter-no-change {}",
                r.tol, r.n_iter_no_change
            ))
        ),
    ))
}

/// Checks that `network` (a warm start's, a checkpoint's) has the layers and kind a run of these
/// settings on this data trains.
fn same_kind(network: &Network<f64>, layer_sizes: &[usize], spec: Spec, bias: bool) -> Result<()> {
    if network.layer_sizes() != layer_sizes
        || network.spec() != spec
        || network.biases().is_some() != bias
    {
        let given = network.spec();
        return Err(Error::Shape(format!(
            "the network to continue from has layers {:?} ({} hidden, {} output, {} loss{}), but these settings on this data train layers {layer_sizes:?} ({} hidden, {} output, {} loss{})",
            network.layer_sizes(),
            given.hidden,
            given.output,
            given.loss,
            if network.biases().is_some() { "" } else { ", no biases" },
            spec.hidden,
            spec.output,
            spec.loss,
            if bias { "" } else { ", no biases" },
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_learning_rate_below_half_an_ulp_is_said() {
        assert!(learning_rate_lost(1e-12, &[4, 25, 1]).is_some());
        assert!(learning_rate_lost(1e-3, &[4, 25, 1]).is_none());
    }
}
