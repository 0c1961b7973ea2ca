//! Hidden-layer-parallel training: each rank holds a slice of the hidden units, the columns
//! `units` of `weights_input_to_hidden` and the same rows of `weights_hidden_to_output`.
//!
//! The output layer's pre-activation is a sum over hidden units, so it is the sum over ranks of
//! each slice's `hidden_layer_out · weights_hidden_to_output` (one sum of records x outputs
//! numbers). Every rank then applies the output activation and computes the same
//! `output_error_term`; each computes its own slice of `hidden_error_term` and of both weight
//! updates, which need nothing from the other slices. A batch is one pass of the inner backend
//! ([`Backend::delta_weights_from_output`]): the sum over ranks runs in its callback, between
//! the slice's forward pass and its error terms.
//!
//! Each rank's inner backend holds its slice as a network with an identity output, so its
//! predictions are its share of the pre-activation. The output bias is added once: rank 0's
//! slice holds it; the others hold zeros and are given a zero gradient for it, which keeps it
//! zero under every optimizer rule (their moments stay zero, and weight decay of zero is zero).

use std::ops::Range;
use std::rc::Rc;

use ndarray::{s, Array1, Array2, ArrayView2, Axis};

use super::{
    all_finite, all_reduce_or_stop, flatten, parameters, same_as_rank_0, share, unflatten,
};
use crate::backend::{check_epoch, unknown, Backend, DataId, OutputErrorTerm};
use crate::comm::Communicator;
use crate::cpu;
use crate::error::{Error, Result};
use crate::guard::interrupt::CancelToken;
use crate::guard::numeric::Precision;
use crate::matrix::{HostRecords, Matrix};
use crate::model::{Activation, Deltas, Loss, Network, Spec};
use crate::ops::optimizer::{Optimizer, OptimizerState};

/// A data set: on the host for drawing batches, and loaded into the inner backend whole.
struct Resident {
    records: Rc<(HostRecords<f64>, Array2<f64>)>,
    inner: DataId,
}

/// A backend that trains one hidden layer split across `comm`'s ranks.
pub struct HiddenParallel<'a> {
    inner: Box<dyn Backend + 'a>,
    comm: &'a dyn Communicator,
    /// Seen by every sum: a cancelled rank stops all of them at the same batch.
    cancel: CancelToken,
    /// The whole network's activations and loss (the slices' output is the identity).
    spec: Spec,
    /// The whole network's parameters as zeros: their shapes.
    zeros: Deltas<f64>,
    units: Range<usize>,
    data: Vec<Resident>,
}

impl<'a> HiddenParallel<'a> {
    /// This rank's slice of `network` (see the module's comment), for the backend it computes
    /// on; refuses a network that is not one hidden layer of at least one unit per rank.
    pub fn slice_of(network: &Network<f64>, comm: &dyn Communicator) -> Result<Network<f64>> {
        let sizes = network.layer_sizes();
        if sizes.len() != 3 {
            return Err(Error::Argument {
                flag: "--parallel hidden".into(),
                message: format!(
                    "splits one hidden layer across the ranks; layers {sizes:?} have {} (use --parallel data)",
                    sizes.len() - 2
                ),
            });
        }
        if sizes[1] < comm.size() {
            return Err(Error::Argument {
                flag: "--parallel hidden".into(),
                message: format!(
                    "{} hidden units cannot be split across {} ranks: each needs at least one",
                    sizes[1],
                    comm.size()
                ),
            });
        }
        let units = share(sizes[1], comm.size(), comm.rank());
        slice_network(
            &slice(&parameters(network), units, comm.rank() == 0),
            network.spec(),
        )
    }

    /// Trains `network` split over `comm`'s ranks, this rank's slice ([`Self::slice_of`]) held
    /// by `inner`; `cancel` stops the run (an epoch's own token replaces it).
    pub fn new(
        network: &Network<f64>,
        comm: &'a dyn Communicator,
        inner: Box<dyn Backend + 'a>,
        cancel: CancelToken,
    ) -> Result<Self> {
        let mut inner = inner;
        let units = share(network.layer_sizes()[1], comm.size(), comm.rank());
        let expected = Self::slice_of(network, comm)?.layer_sizes();
        if inner.network()?.layer_sizes() != expected {
            return Err(Error::Shape(format!(
                "rank {}'s backend holds layers {:?}, not its slice {expected:?}",
                comm.rank(),
                inner.network()?.layer_sizes()
            )));
        }
        Ok(HiddenParallel {
            inner,
            comm,
            cancel,
            spec: network.spec(),
            zeros: super::zeros_like(network),
            units,
            data: Vec::new(),
        })
    }

    /// Whether this rank's slice holds the output bias.
    fn holds_output_bias(&self) -> bool {
        self.comm.rank() == 0
    }

    /// This rank's slice of a set of the whole network's parameters (or deltas, or moments).
    fn slice(&self, whole: &Deltas<f64>) -> Result<Deltas<f64>> {
        if !whole.same_layout(&self.zeros) {
            return Err(Error::Shape(format!(
                "parameters of shapes {:?} do not fit the network being trained, {:?}",
                whole.weights.iter().map(|w| w.dim()).collect::<Vec<_>>(),
                self.zeros
                    .weights
                    .iter()
                    .map(|w| w.dim())
                    .collect::<Vec<_>>()
            )));
        }
        Ok(slice(whole, self.units.clone(), self.holds_output_bias()))
    }

    /// The whole set from every rank's slice (one sum over ranks of the whole's size).
    fn gather(&self, part: &Deltas<f64>) -> Result<Deltas<f64>> {
        let mut whole = self.zeros.clone();
        let units = self.units.clone();
        whole.weights[0]
            .slice_mut(s![.., units.clone()])
            .assign(&part.weights[0]);
        whole.weights[1]
            .slice_mut(s![units.clone(), ..])
            .assign(&part.weights[1]);
        if let (Some(whole), Some(part)) = (whole.biases.as_mut(), part.biases.as_ref()) {
            whole[0].slice_mut(s![units]).assign(&part[0]);
            if self.holds_output_bias() {
                whole[1].assign(&part[1]);
            }
        }
        let mut values = flatten(&whole);
        self.comm.all_reduce_sum(&mut values)?;
        unflatten(&values, &self.zeros)
    }

    /// The whole network's output from this rank's share of the pre-activation, as rank 0
    /// computed it: the losses every rank takes its decisions from (early stopping, the
    /// divergence guard) are then the same bits on every rank, whatever order MPI summed in.
    fn output(&self, pre_activation: Array2<f64>) -> Result<Array2<f64>> {
        let mut output = summed_output(
            (self.comm, &self.cancel),
            self.inner.precision(),
            self.spec.output,
            pre_activation,
        )?;
        same_as_rank_0(self.comm, &mut output)?;
        Ok(output)
    }

    /// This rank's slice of a batch's deltas at `learnrate`, from one pass of the inner backend:
    /// its share of the output pre-activation, summed over the ranks into the whole network's
    /// output, whose output error term against `target` feeds the slice's hidden error terms.
    /// `None` when that output holds a NaN or an infinity: every rank sees the same sum, so
    /// all of them return `None` for the same batch.
    fn slice_deltas(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
    ) -> Result<Option<Deltas<f64>>> {
        let (comm, spec, precision) =
            ((self.comm, &self.cancel), self.spec, self.inner.precision());
        let mut finite = true;
        let deltas = self
            .inner
            .delta_weights_from_output(x, learnrate, &mut |part| {
                let y = summed_output(comm, precision, spec.output, part)?;
                if !all_finite(y.as_slice().unwrap_or(&[])) {
                    // The slice's deltas from a zero term are thrown away.
                    finite = false;
                    return Ok(Array2::zeros(y.dim()));
                }
                Ok(cpu::output_error_term(
                    target,
                    y.view(),
                    spec.output,
                    spec.loss,
                ))
            })?;
        Ok(finite.then_some(deltas))
    }

    /// This rank's gradient of a batch: its slice's, with the output bias's left to rank 0;
    /// `None` as for [`Self::slice_deltas`].
    fn slice_gradient(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
    ) -> Result<Option<Deltas<f64>>> {
        let mut gradient = self.slice_deltas(x, target, -1.0)?;
        if !self.holds_output_bias() {
            if let Some(b) = gradient.as_mut().and_then(|g| g.biases.as_mut()) {
                b[1].fill(0.0);
            }
        }
        Ok(gradient)
    }

    fn check_batch(&self, x: (usize, usize), target: (usize, usize)) -> Result<()> {
        cpu::check_batch(
            self.zeros.weights[0].nrows(),
            self.zeros.weights[1].ncols(),
            x,
            target,
        )
    }

    fn non_finite_output(&self) -> Error {
        Error::NonFinite("the network's output holds NaN or infinite values".into())
    }
}

/// The whole network's output from this rank's share of the output pre-activation: the shares
/// summed over the ranks (with the stop flag, see `all_reduce_or_stop`), then `activation`.
fn summed_output(
    (comm, cancel): (&dyn Communicator, &CancelToken),
    precision: Precision,
    activation: Activation,
    pre_activation: Array2<f64>,
) -> Result<Array2<f64>> {
    let dim = pre_activation.dim();
    let mut values = pre_activation.into_raw_vec_and_offset().0;
    all_reduce_or_stop(comm, precision, &mut values, cancel)?;
    let mut output =
        Array2::from_shape_vec(dim, values).map_err(|e| Error::Shape(e.to_string()))?;
    cpu::activate(&mut output, activation);
    Ok(output)
}

/// Slice `units` of the whole network's parameters; the output bias only where
/// `keep_output_bias`.
fn slice(whole: &Deltas<f64>, units: Range<usize>, keep_output_bias: bool) -> Deltas<f64> {
    Deltas {
        weights: vec![
            whole.weights[0].slice(s![.., units.clone()]).to_owned(),
            whole.weights[1].slice(s![units.clone(), ..]).to_owned(),
        ],
        biases: whole.biases.as_ref().map(|b| {
            vec![
                b[0].slice(s![units]).to_owned(),
                if keep_output_bias {
                    b[1].clone()
                } else {
                    Array1::zeros(b[1].len())
                },
            ]
        }),
    }
}

/// A slice's network: the whole's hidden activation, an identity output (its predictions are
/// its share of the output pre-activation).
fn slice_network(slice: &Deltas<f64>, spec: Spec) -> Result<Network<f64>> {
    Network::with_spec(
        slice.weights.clone(),
        slice.biases.clone(),
        Spec {
            output: Activation::Identity,
            loss: Loss::Mse,
            ..spec
        },
    )
}

impl Backend for HiddenParallel<'_> {
    fn description(&self) -> String {
        format!(
            "{}, hidden units {}..{} of {} on rank {} of {}",
            self.inner.description(),
            self.units.start,
            self.units.end,
            self.zeros.weights[0].ncols(),
            self.comm.rank(),
            self.comm.size()
        )
    }

    fn precision(&self) -> Precision {
        self.inner.precision()
    }

    fn delta_weights(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
    ) -> Result<Deltas<f64>> {
        self.check_batch(x.dim(), target.dim())?;
        let part = self
            .slice_deltas(x, target, learnrate)?
            .ok_or_else(|| self.non_finite_output())?;
        self.gather(&part)
    }

    /// `output_error_term` gets the whole network's output (the slices' shares summed over the
    /// ranks, then the output activation), on every rank; the slices' deltas are gathered.
    fn delta_weights_from_output(
        &mut self,
        x: ArrayView2<f64>,
        learnrate: f64,
        output_error_term: &mut OutputErrorTerm<'_>,
    ) -> Result<Deltas<f64>> {
        self.check_batch(x.dim(), (x.nrows(), self.zeros.weights[1].ncols()))?;
        let (comm, output, precision) = (
            (self.comm, &self.cancel),
            self.spec.output,
            self.inner.precision(),
        );
        let part = self
            .inner
            .delta_weights_from_output(x, learnrate, &mut |part| {
                output_error_term(summed_output(comm, precision, output, part)?)
            })?;
        self.gather(&part)
    }

    fn apply_gradient(&mut self, gradient: &Deltas<f64>, learnrate: f64) -> Result<()> {
        let part = self.slice(gradient)?;
        self.inner.apply_gradient(&part, learnrate)
    }

    fn train_step(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
    ) -> Result<()> {
        self.check_batch(x.dim(), target.dim())?;
        let gradient = self
            .slice_gradient(x, target)?
            .ok_or_else(|| self.non_finite_output())?;
        self.inner.apply_gradient(&gradient, learnrate)
    }

    fn predict(&mut self, x: Matrix<'_>) -> Result<Array2<f64>> {
        let part = self.inner.predict(x)?;
        self.output(part)
    }

    fn network(&mut self) -> Result<Network<f64>> {
        let part = parameters(&self.inner.network()?);
        let Deltas { weights, biases } = self.gather(&part)?;
        Network::with_spec(weights, biases, self.spec)
    }

    fn set_network(&mut self, network: &Network<f64>) -> Result<()> {
        let slice = slice_network(&self.slice(&parameters(network))?, self.spec)?;
        self.inner.set_network(&slice)
    }

    fn set_optimizer(&mut self, optimizer: &Optimizer, state: &OptimizerState<f64>) -> Result<()> {
        let moments = state
            .moments
            .iter()
            .map(|m| self.slice(m))
            .collect::<Result<_>>()?;
        self.inner.set_optimizer(
            optimizer,
            &OptimizerState {
                step: state.step,
                moments,
            },
        )
    }

    fn optimizer_state(&mut self) -> Result<OptimizerState<f64>> {
        let part = self.inner.optimizer_state()?;
        let moments = part
            .moments
            .iter()
            .map(|m| self.gather(m))
            .collect::<Result<_>>()?;
        Ok(OptimizerState {
            step: part.step,
            moments,
        })
    }

    fn load_data(&mut self, x: Matrix<'_>, target: Matrix<'_>) -> Result<DataId> {
        self.check_batch(x.dim(), target.dim())?;
        let inner = self.inner.load_data(x, target)?;
        self.data.push(Resident {
            records: Rc::new((
                HostRecords::load(x, "input")?,
                target.to_precision("target")?,
            )),
            inner,
        });
        Ok(DataId(self.data.len() - 1))
    }

    fn train_epoch(
        &mut self,
        data: DataId,
        order: &[usize],
        batch: usize,
        learnrate: f64,
        cancel: &CancelToken,
    ) -> Result<Option<usize>> {
        self.cancel = cancel.clone();
        let resident = self.data.get(data.0).ok_or_else(|| unknown(data))?;
        let records = Rc::clone(&resident.records);
        let (x, target) = (&records.0, &records.1);
        check_epoch(x.nrows(), order, batch)?;
        for (b, records) in order.chunks(batch).enumerate() {
            let x_batch = x.select(records)?;
            let target_batch = target.select(Axis(0), records);
            let Some(gradient) = self.slice_gradient(x_batch.view(), target_batch.view())? else {
                return Ok(Some(b));
            };
            self.inner.apply_gradient(&gradient, learnrate)?;
        }
        Ok(None)
    }

    fn predict_data(&mut self, data: DataId) -> Result<Array2<f64>> {
        let id = self.data.get(data.0).ok_or_else(|| unknown(data))?.inner;
        let part = self.inner.predict_data(id)?;
        self.output(part)
    }

    fn synchronize(&mut self) -> Result<()> {
        self.inner.synchronize()
    }
}
