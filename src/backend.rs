//! The seam between the trainer and the hardware: one `Backend` trait, a CPU and a GPU side,
//! and the rule that picks one (`--backend auto|gpu|cpu`).
//!
//! Arrays cross this seam in f64 (what NumPy users hand us); each backend computes in its own
//! precision and keeps the weights where it computes.

use ndarray::{Array2, ArrayView2, Axis};

use crate::cpu;
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::{GpuBackend, GpuDevice, GpuOptions};
use crate::guard::interrupt;
use crate::guard::memory::{host_available, MemoryPlan};
use crate::guard::numeric::{check_network, check_representable, first_non_finite, Precision};
use crate::model::{Float, Network};

/// One training step, forward pass and weight read-back, on some device.
pub trait Backend {
    /// What computes: `cpu (f64)` or the GPU adapter's name and API.
    fn description(&self) -> String;

    /// The mean delta weights of one batch (`delta_w_i_h`, …, `delta_w_h_o`), leaving the
    /// weights unchanged.
    fn delta_weights(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
    ) -> Result<Vec<Array2<f64>>>;

    /// One step: the same deltas, added to the weights where the backend keeps them.
    fn train_step(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
    ) -> Result<()>;

    /// The network's output for a batch of records.
    fn predict(&mut self, x: ArrayView2<f64>) -> Result<Array2<f64>>;

    /// The current weights, read back from wherever they live.
    fn network(&mut self) -> Result<Network<f64>>;

    /// Keeps a data set where the backend computes (on the GPU: uploaded once, resident) and
    /// returns its handle for `train_epoch` and `predict_data`.
    fn load_data(&mut self, x: ArrayView2<f64>, target: ArrayView2<f64>) -> Result<DataId>;

    /// One epoch of mini-batch gradient descent over loaded data: records in `order` (a
    /// permutation of the data set's records), in
    /// batches of `batch` (the last one smaller when `batch` does not divide the records),
    /// each batch stepping by the mean of its per-record deltas.
    ///
    /// Returns the first batch (counted from 0) whose `output_layer_out` held a NaN or an
    /// infinity, if any: the weights are then unusable, and the caller says where it happened.
    /// Stops early with `Error::Interrupted` when SIGINT/SIGTERM arrived (see `guard::interrupt`).
    fn train_epoch(
        &mut self,
        data: DataId,
        order: &[usize],
        batch: usize,
        learnrate: f64,
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

/// Milliseconds per kernel of one step, by kernel name.
pub type KernelTimes = Vec<(String, f64)>;

/// A data set loaded into a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataId(pub usize);

/// Checks that `order` visits `n_records` records, each index in range, with `batch` >= 1.
pub fn check_epoch(n_records: usize, order: &[usize], batch: usize) -> Result<()> {
    if order.len() != n_records {
        return Err(Error::Shape(format!(
            "an epoch visits every record once: the order lists {} of {n_records}",
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

/// The CPU backend: the reference of `cpu.rs` run in precision `T`.
pub struct CpuBackend<T> {
    network: Network<T>,
    data: Vec<(Array2<T>, Array2<T>)>,
    /// Records one forward pass of a prediction computes at a time (see [`records_per_pass`]).
    predict_chunk: usize,
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

impl<T: Float> CpuBackend<T> {
    /// The backend holding `network` in precision `T`; `backend::create` checks first that
    /// every weight fits `T` (`guard::numeric`).
    pub fn new(network: &Network<f64>) -> Self {
        let layer_sizes = network.layer_sizes();
        let budget = host_available().ok().flatten().map(|a| a.bytes);
        let value_bytes = std::mem::size_of::<T>() as u64;
        CpuBackend {
            network: network.cast(),
            data: Vec::new(),
            predict_chunk: records_per_pass(&layer_sizes, value_bytes, RECORDS_PER_PASS, budget)
                .unwrap_or(1),
        }
    }

    /// `x` and `target` in `T`, after checking that every value fits it.
    fn convert(x: ArrayView2<f64>, target: ArrayView2<f64>) -> Result<(Array2<T>, Array2<T>)> {
        let precision = Precision::of::<T>();
        check_representable("input", x, precision)?;
        check_representable("target", target, precision)?;
        Ok((cast(x), cast(target)))
    }

    fn backward(
        &self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
    ) -> Result<Vec<Array2<T>>> {
        let (x, target) = Self::convert(x, target)?;
        cpu::backward(
            &self.network,
            x.view(),
            target.view(),
            T::from_f64(learnrate).unwrap_or_else(T::nan),
        )
    }

    /// The network's output for `x`, computed `predict_chunk` records at a time.
    fn forward_in_chunks(&self, x: ArrayView2<T>) -> Array2<f64> {
        let mut out = Array2::zeros((x.nrows(), self.network.n_outputs()));
        for start in (0..x.nrows()).step_by(self.predict_chunk) {
            let end = (start + self.predict_chunk).min(x.nrows());
            let outputs = cpu::forward(&self.network, x.slice(ndarray::s![start..end, ..]));
            out.slice_mut(ndarray::s![start..end, ..])
                .assign(&cast::<T, f64>(outputs[outputs.len() - 1].view()));
        }
        out
    }
}

fn cast<T: Float, U: Float>(a: ArrayView2<T>) -> Array2<U> {
    a.mapv(|v| U::from(v).unwrap_or_else(U::nan))
}

impl<T: Float> Backend for CpuBackend<T> {
    fn description(&self) -> String {
        format!("cpu ({})", std::any::type_name::<T>())
    }

    fn delta_weights(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
    ) -> Result<Vec<Array2<f64>>> {
        let deltas = self.backward(x, target, learnrate)?;
        Ok(deltas.iter().map(|d| cast(d.view())).collect())
    }

    fn train_step(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
    ) -> Result<()> {
        let deltas = self.backward(x, target, learnrate)?;
        self.network.apply_deltas(&deltas)
    }

    fn predict(&mut self, x: ArrayView2<f64>) -> Result<Array2<f64>> {
        let (n_inputs, n_outputs) = (self.network.n_inputs(), self.network.n_outputs());
        cpu::check_batch(n_inputs, n_outputs, x.dim(), (x.nrows(), n_outputs))?;
        check_representable("input", x, Precision::of::<T>())?;
        Ok(self.forward_in_chunks(cast::<f64, T>(x).view()))
    }

    fn network(&mut self) -> Result<Network<f64>> {
        Ok(self.network.cast())
    }

    fn load_data(&mut self, x: ArrayView2<f64>, target: ArrayView2<f64>) -> Result<DataId> {
        let (n_inputs, n_outputs) = (self.network.n_inputs(), self.network.n_outputs());
        cpu::check_batch(n_inputs, n_outputs, x.dim(), target.dim())?;
        self.data.push(Self::convert(x, target)?);
        Ok(DataId(self.data.len() - 1))
    }

    fn train_epoch(
        &mut self,
        data: DataId,
        order: &[usize],
        batch: usize,
        learnrate: f64,
    ) -> Result<Option<usize>> {
        let (x, target) = self.data.get(data.0).ok_or_else(|| unknown(data))?;
        check_epoch(x.nrows(), order, batch)?;
        let learnrate = T::from_f64(learnrate).unwrap_or_else(T::nan);
        for (b, records) in order.chunks(batch).enumerate() {
            interrupt::check()?;
            let x_batch = x.select(Axis(0), records);
            let target_batch = target.select(Axis(0), records);
            let layer_outputs = cpu::forward(&self.network, x_batch.view());
            if first_non_finite(layer_outputs[layer_outputs.len() - 1].view()).is_some() {
                return Ok(Some(b));
            }
            let deltas = cpu::deltas_from_outputs(
                &self.network,
                x_batch.view(),
                &layer_outputs,
                target_batch.view(),
                learnrate,
            );
            self.network.apply_deltas(&deltas)?;
        }
        Ok(None)
    }

    fn train_steps(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
        count: usize,
    ) -> Result<()> {
        // The batch is converted to the backend's precision once, as the GPU uploads it once.
        let (x, target) = Self::convert(x, target)?;
        let learnrate = T::from_f64(learnrate).unwrap_or_else(T::nan);
        for _ in 0..count {
            let deltas = cpu::backward(&self.network, x.view(), target.view(), learnrate)?;
            self.network.apply_deltas(&deltas)?;
        }
        Ok(())
    }

    fn predict_data(&mut self, data: DataId) -> Result<Array2<f64>> {
        let (x, _) = self.data.get(data.0).ok_or_else(|| unknown(data))?;
        Ok(self.forward_in_chunks(x.view()))
    }
}

fn unknown(data: DataId) -> Error {
    Error::Shape(format!("no data set {} was loaded", data.0))
}

/// Which backend a command computes on (`--backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// A hardware GPU when there is one (or the adapter named), otherwise the CPU.
    Auto,
    /// The GPU: a hardware adapter, or the one named; fails when there is none.
    Gpu,
    /// The CPU backend (f64 for `step`, f32 for training).
    Cpu,
}

/// A created backend, with a note saying why `auto` chose what it chose.
pub struct Selected {
    pub backend: Box<dyn Backend>,
    pub note: Option<String>,
}

/// The precision the CPU backend computes in: f64 for the reference (`step`, `validate`), f32
/// for training and benchmarks (twice the SIMD width, and what the GPU computes in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuPrecision {
    F32,
    F64,
}

/// Creates the chosen backend holding `network`. `adapter` is a case-insensitive substring of
/// an adapter name; `auto` falls back to the CPU when no GPU can be opened.
pub fn create(
    choice: BackendChoice,
    adapter: Option<&str>,
    network: &Network<f64>,
    precision: CpuPrecision,
) -> Result<Selected> {
    let gpu = || -> Result<Box<dyn Backend>> {
        let device = GpuDevice::new(GpuContext::open(adapter)?);
        Ok(Box::new(GpuBackend::new(
            device,
            network,
            GpuOptions::default(),
        )?))
    };
    let cpu = || -> Result<Box<dyn Backend>> {
        Ok(match precision {
            CpuPrecision::F32 => {
                check_network(network, Precision::F32)?;
                Box::new(CpuBackend::<f32>::new(network))
            }
            CpuPrecision::F64 => Box::new(CpuBackend::<f64>::new(network)),
        })
    };
    Ok(match choice {
        BackendChoice::Cpu => Selected {
            backend: cpu()?,
            note: None,
        },
        BackendChoice::Gpu => Selected {
            backend: gpu()?,
            note: None,
        },
        BackendChoice::Auto => match gpu() {
            Ok(backend) => Selected {
                backend,
                note: None,
            },
            Err(Error::NoAdapter(why)) => Selected {
                backend: cpu()?,
                note: Some(format!("using the CPU backend: {why}")),
            },
            Err(e) => return Err(e),
        },
    })
}
