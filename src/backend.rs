//! The seam between the trainer and the hardware: the `Backend` trait and the checks and
//! sizes both backends share. It imports neither backend: `cpu::CpuBackend` and
//! `gpu::GpuBackend` implement it, and `device` chooses between them.
//!
//! Data sets cross this seam as a [`Matrix`] of f32 or f64, whichever the caller holds, and
//! are converted once to the backend's precision where it keeps them; single batches (the
//! seeds' step, benchmarks) cross in f64. Each backend computes in its own precision and keeps
//! the weights where it computes.

use ndarray::{Array2, ArrayView2};

use crate::error::{Error, Result};
use crate::guard::interrupt::CancelToken;
use crate::guard::memory::MemoryPlan;
use crate::guard::numeric::Precision;
use crate::matrix::Matrix;
use crate::model::{Deltas, Network};
use crate::ops::optimizer::{Optimizer, OptimizerState};

/// One training step, forward pass and weight read-back, on some device.
pub trait Backend {
    /// What computes: `cpu (f64)` or the GPU adapter's name and API.
    fn description(&self) -> String;

    /// The precision the backend computes in: every value it is given must fit it.
    fn precision(&self) -> Precision;

    /// The mean deltas of one batch (`delta_w_i_h`, …, `delta_w_h_o`, and the biases'),
    /// leaving the network unchanged.
    fn delta_weights(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
    ) -> Result<Deltas<f64>>;

    /// One step: the same deltas, added to the weights where the backend keeps them.
    fn train_step(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
    ) -> Result<()>;

    /// The deltas of a batch at `learnrate`, from an output error term the caller computes
    /// from this backend's output, in one forward pass: the output layer's output (records x
    /// outputs, as [`Backend::predict`] gives it) goes to `output_error_term`, which returns the
    /// batch's output error term (records x outputs); the hidden error terms and the deltas
    /// then follow as in [`Backend::delta_weights`]. A term of another shape, or with a value
    /// the backend's precision cannot hold, is an error; an error of the callback is returned
    /// as it is. The network is unchanged.
    ///
    /// Hidden-layer-parallel training sums the ranks' outputs (each its share of the output
    /// pre-activation) in the callback and computes the term from the sum.
    fn delta_weights_from_output(
        &mut self,
        x: ArrayView2<f64>,
        learnrate: f64,
        output_error_term: &mut OutputErrorTerm<'_>,
    ) -> Result<Deltas<f64>>;

    /// One step from a batch's mean gradient (its deltas at learning rate −1, summed over the
    /// ranks of a distributed run): the seeds' step adds `−learnrate · gradient`, an optimizer
    /// applies its rule. Counts as one step of the optimizer.
    fn apply_gradient(&mut self, gradient: &Deltas<f64>, learnrate: f64) -> Result<()>;

    /// The network's output for records `x` (converted once to the backend's precision).
    fn predict(&mut self, x: Matrix<'_>) -> Result<Array2<f64>>;

    /// The current weights, read back from wherever they live.
    fn network(&mut self) -> Result<Network<f64>>;

    /// Replaces the weights and biases (of the same shapes): early stopping's best epoch.
    fn set_network(&mut self, network: &Network<f64>) -> Result<()>;

    /// How `train_epoch` steps from now on: `optimizer`, continuing from `state` (its moments
    /// and step count; [`OptimizerState::zeros`] for a fresh run).
    fn set_optimizer(&mut self, optimizer: &Optimizer, state: &OptimizerState<f64>) -> Result<()>;

    /// The optimizer's state, read back (for checkpoints).
    fn optimizer_state(&mut self) -> Result<OptimizerState<f64>>;

    /// Keeps a data set where the backend computes, converted once to its precision (on the
    /// GPU: uploaded once, resident), and returns its handle for `train_epoch` and
    /// `predict_data`. A value the precision cannot hold is an `Error::Value` naming `input` or
    /// `target` and its [record, column].
    fn load_data(&mut self, x: Matrix<'_>, target: Matrix<'_>) -> Result<DataId>;

    /// One epoch of mini-batch training over loaded data: records in `order` (a permutation of
    /// the data set's records, or of some of them), in batches of `batch` (the last one smaller
    /// when `batch` does not divide them), each batch stepping by the mean of its per-record
    /// deltas at `learnrate`, or by the optimizer's rule from their mean gradient.
    ///
    /// Returns the first batch (counted from 0) whose `output_layer_out` held a NaN or an
    /// infinity, if any: the weights are then unusable, and the caller says where it happened.
    /// Stops between batches with `Error::Interrupted` once `cancel` is cancelled.
    fn train_epoch(
        &mut self,
        data: DataId,
        order: &[usize],
        batch: usize,
        learnrate: f64,
        cancel: &CancelToken,
    ) -> Result<Option<usize>>;

    /// The network's output for every record of loaded data.
    fn predict_data(&mut self, data: DataId) -> Result<Array2<f64>>;

    /// `count` training steps on the same batch, as a benchmark loops; the GPU records them
    /// into few submissions and returns before they finish (see `synchronize`).
    fn train_steps(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
        count: usize,
    ) -> Result<()> {
        for _ in 0..count {
            self.train_step(x, target, learnrate)?;
        }
        Ok(())
    }

    /// Waits for all submitted work (the GPU computes asynchronously; the CPU never lags).
    fn synchronize(&mut self) -> Result<()> {
        Ok(())
    }

    /// The time of each kernel of one training step, in milliseconds, summed by kernel, from
    /// the device's timestamps; `None` where the backend cannot measure them.
    fn kernel_times(
        &mut self,
        _x: ArrayView2<f64>,
        _target: ArrayView2<f64>,
        _learnrate: f64,
    ) -> Result<Option<KernelTimes>> {
        Ok(None)
    }
}

/// One kernel's share of a training step, summed over its dispatches (the blocks of a split
/// layer, the reduction of a split-K product).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct KernelTime {
    pub kernel: String,
    /// The GEMM variant that computed it, for the products.
    pub variant: Option<String>,
    pub ms: f64,
    /// Floating-point operations of its products (2 per multiply-add); 0 for element-wise kernels.
    pub flops: f64,
}

/// The kernels of one step, in the order they run.
pub type KernelTimes = Vec<KernelTime>;

/// What [`Backend::delta_weights_from_output`] calls with a batch's output (records x outputs)
/// for the batch's output error term (records x outputs).
pub type OutputErrorTerm<'a> = dyn FnMut(Array2<f64>) -> Result<Array2<f64>> + 'a;

/// Checks that an output error term returned for a batch of `records` records by a network of
/// `n_outputs` outputs is records x outputs.
pub fn check_output_error_term(
    records: usize,
    n_outputs: usize,
    term: (usize, usize),
) -> Result<()> {
    if term == (records, n_outputs) {
        Ok(())
    } else {
        Err(Error::Shape(format!(
            "the output error term is {term:?}, but the batch has {records} records and the network {n_outputs} outputs, so it must be {:?}",
            (records, n_outputs)
        )))
    }
}

/// A data set loaded into a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataId(pub usize);

/// Checks that `order` visits records of a data set of `n_records` (every one, or fewer when
/// the partial last batch is dropped), each index in range, with `batch` >= 1.
pub fn check_epoch(n_records: usize, order: &[usize], batch: usize) -> Result<()> {
    if order.len() > n_records || order.is_empty() {
        return Err(Error::Shape(format!(
            "an epoch visits between 1 and {n_records} records: the order lists {}",
            order.len()
        )));
    }
    if batch == 0 {
        return Err(Error::Argument {
            flag: "--batch".into(),
            message: "the batch size must be at least 1".into(),
        });
    }
    if let Some(bad) = order.iter().find(|&&r| r >= n_records) {
        return Err(Error::Shape(format!(
            "record {bad} in the epoch order, but the data set holds {n_records}"
        )));
    }
    Ok(())
}

/// Checks that `gradient` has the shapes of `network`'s weights and biases.
pub fn check_gradient<T: crate::float::Float>(
    network: &Network<T>,
    gradient: &Deltas<f64>,
) -> Result<()> {
    check_gradient_shapes(&network.layer_sizes(), network.biases().is_some(), gradient)
}

/// Checks that `gradient` has the shapes of the weights (and biases, when `has_biases`) of a
/// network of `layer_sizes`, for a backend that keeps its weights elsewhere.
pub fn check_gradient_shapes(
    layer_sizes: &[usize],
    has_biases: bool,
    gradient: &Deltas<f64>,
) -> Result<()> {
    let weights_match = layer_sizes.len() == gradient.weights.len() + 1
        && layer_sizes
            .windows(2)
            .zip(&gradient.weights)
            .all(|(w, g)| g.dim() == (w[0], w[1]));
    let biases_match = match &gradient.biases {
        None => !has_biases,
        Some(g) => {
            has_biases
                && g.len() + 1 == layer_sizes.len()
                && g.iter().zip(&layer_sizes[1..]).all(|(g, &n)| g.len() == n)
        }
    };
    if weights_match && biases_match {
        Ok(())
    } else {
        Err(Error::Shape(format!(
            "a gradient of shapes {:?}{} does not fit a network of layers {layer_sizes:?}{}",
            gradient.weights.iter().map(|g| g.dim()).collect::<Vec<_>>(),
            match &gradient.biases {
                Some(b) => format!(
                    " and biases {:?}",
                    b.iter().map(|b| b.len()).collect::<Vec<_>>()
                ),
                None => " without biases".into(),
            },
            if has_biases {
                " with biases"
            } else {
                " without biases"
            },
        )))
    }
}

/// Checks that `new` has the layer sizes and biases of `current`.
pub fn same_shapes(current: &Network<f64>, new: &Network<f64>) -> Result<()> {
    if current.layer_sizes() == new.layer_sizes()
        && current.biases().is_some() == new.biases().is_some()
    {
        Ok(())
    } else {
        Err(Error::Shape(format!(
            "a network of layers {:?} cannot replace one of layers {:?}",
            new.layer_sizes(),
            current.layer_sizes()
        )))
    }
}

/// Records one pass of a prediction computes at most: the activations of a slice of the data,
/// not of all of it, are held (a wide hidden layer times every record is too much).
pub const RECORDS_PER_PASS: usize = 4096;

/// The bytes one record takes in a pass through `layer_sizes`: its input and target rows and
/// every layer's output and error term, `value_bytes` each.
pub fn bytes_per_record(layer_sizes: &[usize], value_bytes: u64) -> Result<u64> {
    let units = layer_sizes[1..]
        .iter()
        .try_fold(0usize, |a, &u| a.checked_add(u))
        .and_then(|u| u.checked_mul(2))
        .and_then(|u| u.checked_add(layer_sizes[0]));
    let units = units.ok_or_else(|| {
        Error::Memory(format!(
            "layers {layer_sizes:?} have more units than any machine holds"
        ))
    })?;
    (units as u64)
        .checked_mul(value_bytes)
        .ok_or_else(|| Error::Memory(format!("layers {layer_sizes:?} are too large")))
}

/// How many records one pass may hold: `wanted`, or fewer where that many records' activations
/// would take over a quarter of `budget` bytes (a hidden layer of ten million units times 4,096
/// records is 164 GB); at least one.
pub fn records_per_pass(
    layer_sizes: &[usize],
    value_bytes: u64,
    wanted: usize,
    budget: Option<u64>,
) -> Result<usize> {
    let per_record = bytes_per_record(layer_sizes, value_bytes)?.max(1);
    let fits = budget.map_or(u64::MAX, |b| b / 4 / per_record);
    Ok(wanted
        .min(usize::try_from(fits).unwrap_or(usize::MAX))
        .max(1))
}

/// What the host holds to train a network of `layer_sizes` on batches of `batch` records:
/// the f64 weights the commands keep and, on the CPU backend (`value_bytes` per value), its
/// copy of the weights, a step's deltas, and a batch's activations; on a GPU backend, the f32
/// copies made while uploading and reading back. The sizes are multiplied with overflow checks.
pub fn memory_plan(
    layer_sizes: &[usize],
    batch: usize,
    value_bytes: u64,
    on_host: bool,
) -> Result<MemoryPlan> {
    let mut plan = MemoryPlan::new();
    let per_weight = if on_host { 8 + 2 * value_bytes } else { 8 + 4 };
    let names = crate::model::weight_names(layer_sizes.len().saturating_sub(1));
    for (name, w) in names.iter().zip(layer_sizes.windows(2)) {
        plan.add(format!("`{name}`"), &[w[0], w[1]], per_weight)?;
    }
    if on_host {
        let per_record = bytes_per_record(layer_sizes, value_bytes)?;
        plan.add(
            format!("the activations of a batch of {batch}"),
            &[batch, usize::try_from(per_record).unwrap_or(usize::MAX)],
            1,
        )?;
    }
    Ok(plan)
}

/// The error for a `DataId` that no `load_data` returned.
pub fn unknown(data: DataId) -> Error {
    Error::Shape(format!("no data set {} was loaded", data.0))
}
