//! Data-parallel training: each global batch split across the ranks, their gradients summed.
//!
//! A rank with `b` of a batch's `B` records computes its deltas at learning rate `−b / B`, so
//! that the sum over ranks is the batch's mean gradient `−(1/B) Σ δ ⊗ input`, exactly what one
//! process computes for the whole batch (up to the order of the sums); every rank then applies
//! the same step with [`Backend::apply_gradient`]. Predictions are split the same way and summed
//! into the whole, so every rank sees the same losses and takes the same decisions (early
//! stopping, divergence).

use std::ops::Range;

use ndarray::{s, Array2, ArrayView2, Axis};

use super::{same_as_rank_0, share, ParameterSum};
use crate::backend::{
    check_epoch, check_output_error_term, unknown, Backend, DataId, OutputErrorTerm,
};
use crate::comm::Communicator;
use crate::cpu;
use crate::error::{Error, Result};
use crate::guard::interrupt::CancelToken;
use crate::guard::numeric::Precision;
use crate::matrix::{HostRecords, Matrix};
use crate::model::{Deltas, Network};
use crate::ops::optimizer::{Optimizer, OptimizerState};

/// A data set as every rank holds it: the whole on the host (batches are drawn from all of
/// it), and this rank's share of its records in the inner backend (for predictions).
struct Resident {
    x: HostRecords<f64>,
    target: Array2<f64>,
    share: Range<usize>,
    inner: Option<DataId>,
}

/// A backend that trains data-parallel over `comm`'s ranks on an `inner` backend per rank.
pub struct DataParallel<'a> {
    inner: Box<dyn Backend + 'a>,
    comm: &'a dyn Communicator,
    /// Seen by every sum: a cancelled rank stops all of them at the same batch.
    cancel: CancelToken,
    /// The sum over ranks of each batch's deltas.
    sum: ParameterSum,
    layer_ends: (usize, usize),
    data: Vec<Resident>,
}

impl<'a> DataParallel<'a> {
    /// Wraps `inner`, which holds the same network on every rank; `cancel` stops the run (an
    /// epoch's own token replaces it).
    pub fn new(
        inner: Box<dyn Backend + 'a>,
        comm: &'a dyn Communicator,
        cancel: CancelToken,
    ) -> Result<Self> {
        let mut inner = inner;
        let network = inner.network()?;
        Ok(DataParallel {
            sum: ParameterSum::new(&network),
            layer_ends: (network.n_inputs(), network.n_outputs()),
            inner,
            comm,
            cancel,
            data: Vec::new(),
        })
    }

    fn my_share(&self, n: usize) -> Range<usize> {
        share(n, self.comm.size(), self.comm.rank())
    }

    fn parts(&mut self) -> Parts<'_, '_> {
        (self.inner.as_mut(), self.comm, &mut self.sum, &self.cancel)
    }

    /// The network's output for `n` records, this rank computing those of `mine` with
    /// `predict` (`None` when it has none).
    fn summed_predictions(
        &mut self,
        n: usize,
        mine: Range<usize>,
        predict: impl FnOnce(&mut dyn Backend) -> Result<Option<Array2<f64>>>,
    ) -> Result<Array2<f64>> {
        let part = predict(self.inner.as_mut())?;
        summed_rows(self.comm, (n, self.layer_ends.1), mine, part)
    }

    fn check_batch(&self, x: (usize, usize), target: (usize, usize)) -> Result<()> {
        cpu::check_batch(self.layer_ends.0, self.layer_ends.1, x, target)
    }
}

/// A matrix of `shape` whose rows `mine` are `part` (zeros without one), summed over the
/// ranks: the whole from each rank's rows, as rank 0 summed it (see `same_as_rank_0`).
fn summed_rows(
    comm: &dyn Communicator,
    shape: (usize, usize),
    mine: Range<usize>,
    part: Option<Array2<f64>>,
) -> Result<Array2<f64>> {
    let mut whole = Array2::zeros(shape);
    if let Some(part) = part {
        whole.slice_mut(s![mine, ..]).assign(&part);
    }
    let mut values = whole.into_raw_vec_and_offset().0;
    comm.all_reduce_sum(&mut values)?;
    let mut whole =
        Array2::from_shape_vec(shape, values).map_err(|e| Error::Shape(e.to_string()))?;
    same_as_rank_0(comm, &mut whole)?;
    Ok(whole)
}

/// What a sum over ranks works with: the rank's backend, the ranks, the sum's buffers and the
/// run's token.
type Parts<'b, 's> = (
    &'b mut dyn Backend,
    &'b dyn Communicator,
    &'s mut ParameterSum,
    &'b CancelToken,
);

/// The batch's deltas summed over the ranks, each rank computing those of its share of the
/// records, of `b` of the batch's `B`, with `deltas(rows, learnrate · b / B)` (not called for
/// a rank with no records); and whether the sum is finite.
fn summed_deltas<'s>(
    (inner, comm, sum, cancel): Parts<'_, 's>,
    records: usize,
    learnrate: f64,
    deltas: impl FnOnce(&mut dyn Backend, Range<usize>, f64) -> Result<Deltas<f64>>,
) -> Result<(&'s Deltas<f64>, bool)> {
    let mine = share(records, comm.size(), comm.rank());
    let part = if mine.is_empty() {
        None
    } else {
        let part = mine.len() as f64 / records as f64;
        Some(deltas(inner, mine, learnrate * part)?)
    };
    sum.sum(comm, inner.precision(), part.as_ref(), cancel)?;
    Ok((sum.last(), sum.is_finite()))
}

/// A batch's deltas from its inputs and targets, over a rank's rows of them.
fn delta_weights_of_rows<'v>(
    x: ArrayView2<'v, f64>,
    target: ArrayView2<'v, f64>,
) -> impl FnOnce(&mut dyn Backend, Range<usize>, f64) -> Result<Deltas<f64>> + 'v {
    move |inner, rows, learnrate| {
        let rows = s![rows, ..];
        inner.delta_weights(x.slice(rows), target.slice(rows), learnrate)
    }
}

impl Backend for DataParallel<'_> {
    fn description(&self) -> String {
        format!(
            "{}, data-parallel over {} ranks",
            self.inner.description(),
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
        let (sum, _) = summed_deltas(
            self.parts(),
            x.nrows(),
            learnrate,
            delta_weights_of_rows(x, target),
        )?;
        Ok(sum.clone())
    }

    /// Each rank's inner backend computes the output of its share of the records, one sum over
    /// the ranks assembles the whole batch's output, and every rank calls `output_error_term`
    /// once with it (as one process would); each then takes its share's rows of the returned
    /// term for its hidden error terms and deltas, which a second sum adds. A rank without
    /// records in the batch adds zeros to both sums and still calls `output_error_term`.
    fn delta_weights_from_output(
        &mut self,
        x: ArrayView2<f64>,
        learnrate: f64,
        output_error_term: &mut OutputErrorTerm<'_>,
    ) -> Result<Deltas<f64>> {
        let (records, n_outputs) = (x.nrows(), self.layer_ends.1);
        self.check_batch(x.dim(), (records, n_outputs))?;
        let comm = self.comm;
        // The whole batch's term from this rank's rows of its output (`None`: no rows).
        let mut whole_term = |mine: Range<usize>, part: Option<Array2<f64>>| {
            let output = summed_rows(comm, (records, n_outputs), mine, part)?;
            let term = output_error_term(output)?;
            check_output_error_term(records, n_outputs, term.dim())?;
            Ok::<_, Error>(term)
        };
        let mine = self.my_share(records);
        if mine.is_empty() {
            whole_term(mine, None)?;
        }
        let (sum, _) = summed_deltas(self.parts(), records, learnrate, |inner, mine, lr| {
            inner.delta_weights_from_output(x.slice(s![mine.clone(), ..]), lr, &mut |part| {
                let term = whole_term(mine.clone(), Some(part))?;
                Ok(term.slice(s![mine.clone(), ..]).to_owned())
            })
        })?;
        Ok(sum.clone())
    }

    fn apply_gradient(&mut self, gradient: &Deltas<f64>, learnrate: f64) -> Result<()> {
        self.inner.apply_gradient(gradient, learnrate)
    }

    fn train_step(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
    ) -> Result<()> {
        let gradient = self.delta_weights(x, target, -1.0)?;
        self.inner.apply_gradient(&gradient, learnrate)
    }

    fn predict(&mut self, x: Matrix<'_>) -> Result<Array2<f64>> {
        self.check_batch(x.dim(), (x.nrows(), self.layer_ends.1))?;
        let mine = self.my_share(x.nrows());
        self.summed_predictions(x.nrows(), mine.clone(), |inner| {
            if mine.is_empty() {
                return Ok(None);
            }
            inner.predict(x.rows(mine.start, mine.end)).map(Some)
        })
    }

    fn network(&mut self) -> Result<Network<f64>> {
        self.inner.network()
    }

    fn set_network(&mut self, network: &Network<f64>) -> Result<()> {
        self.inner.set_network(network)
    }

    fn set_optimizer(&mut self, optimizer: &Optimizer, state: &OptimizerState<f64>) -> Result<()> {
        self.inner.set_optimizer(optimizer, state)
    }

    fn optimizer_state(&mut self) -> Result<OptimizerState<f64>> {
        self.inner.optimizer_state()
    }

    fn load_data(&mut self, x: Matrix<'_>, target: Matrix<'_>) -> Result<DataId> {
        self.check_batch(x.dim(), target.dim())?;
        let share = self.my_share(x.nrows());
        let inner = if share.is_empty() {
            None
        } else {
            let (start, end) = (share.start, share.end);
            Some(
                self.inner
                    .load_data(x.rows(start, end), target.rows(start, end))?,
            )
        };
        self.data.push(Resident {
            x: HostRecords::load(x, "input")?,
            target: target.to_precision("target")?,
            share,
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
        let DataParallel {
            inner,
            comm,
            sum,
            cancel,
            data: sets,
            ..
        } = self;
        let resident = sets.get(data.0).ok_or_else(|| unknown(data))?;
        check_epoch(resident.x.nrows(), order, batch)?;
        for (b, records) in order.chunks(batch).enumerate() {
            let x_batch = resident.x.select(records)?;
            let target_batch = resident.target.select(Axis(0), records);
            let (gradient, finite) = summed_deltas(
                (inner.as_mut(), *comm, sum, cancel),
                records.len(),
                -1.0,
                delta_weights_of_rows(x_batch.view(), target_batch.view()),
            )?;
            if !finite {
                return Ok(Some(b));
            }
            inner.apply_gradient(gradient, learnrate)?;
        }
        Ok(None)
    }

    fn predict_data(&mut self, data: DataId) -> Result<Array2<f64>> {
        let resident = self.data.get(data.0).ok_or_else(|| unknown(data))?;
        let (n, mine, id) = (resident.x.nrows(), resident.share.clone(), resident.inner);
        self.summed_predictions(n, mine, |inner| {
            id.map(|id| inner.predict_data(id)).transpose()
        })
    }

    fn synchronize(&mut self) -> Result<()> {
        self.inner.synchronize()
    }
}
