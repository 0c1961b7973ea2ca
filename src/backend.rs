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
    fn train_epoch(
        &mut self,
        data: DataId,
        order: &[usize],
        batch: usize,
        learnrate: f64,
    ) -> Result<()>;

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
}

impl<T: Float> CpuBackend<T> {
    pub fn new(network: &Network<f64>) -> Self {
        CpuBackend {
            network: network.cast(),
            data: Vec::new(),
        }
    }

    fn backward(
        &self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
    ) -> Result<Vec<Array2<T>>> {
        cpu::backward(
            &self.network,
            cast::<f64, T>(x).view(),
            cast::<f64, T>(target).view(),
            T::from_f64(learnrate).unwrap_or_else(T::nan),
        )
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
        let outputs = cpu::forward(&self.network, cast::<f64, T>(x).view());
        Ok(cast(outputs[outputs.len() - 1].view()))
    }

    fn network(&mut self) -> Result<Network<f64>> {
        Ok(self.network.cast())
    }

    fn load_data(&mut self, x: ArrayView2<f64>, target: ArrayView2<f64>) -> Result<DataId> {
        let (n_inputs, n_outputs) = (self.network.n_inputs(), self.network.n_outputs());
        cpu::check_batch(n_inputs, n_outputs, x.dim(), target.dim())?;
        self.data.push((cast(x), cast(target)));
        Ok(DataId(self.data.len() - 1))
    }

    fn train_epoch(
        &mut self,
        data: DataId,
        order: &[usize],
        batch: usize,
        learnrate: f64,
    ) -> Result<()> {
        let (x, target) = self.data.get(data.0).ok_or_else(|| unknown(data))?;
        check_epoch(x.nrows(), order, batch)?;
        let learnrate = T::from_f64(learnrate).unwrap_or_else(T::nan);
        for records in order.chunks(batch) {
            let x_batch = x.select(Axis(0), records);
            let target_batch = target.select(Axis(0), records);
            let deltas = cpu::backward(
                &self.network,
                x_batch.view(),
                target_batch.view(),
                learnrate,
            )?;
            self.network.apply_deltas(&deltas)?;
        }
        Ok(())
    }

    fn train_steps(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
        count: usize,
    ) -> Result<()> {
        // The batch is converted to the backend's precision once, as the GPU uploads it once.
        let (x, target) = (cast::<f64, T>(x), cast::<f64, T>(target));
        let learnrate = T::from_f64(learnrate).unwrap_or_else(T::nan);
        for _ in 0..count {
            let deltas = cpu::backward(&self.network, x.view(), target.view(), learnrate)?;
            self.network.apply_deltas(&deltas)?;
        }
        Ok(())
    }

    fn predict_data(&mut self, data: DataId) -> Result<Array2<f64>> {
        let (x, _) = self.data.get(data.0).ok_or_else(|| unknown(data))?;
        let outputs = cpu::forward(&self.network, x.view());
        Ok(cast(outputs[outputs.len() - 1].view()))
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
    let cpu = || -> Box<dyn Backend> {
        match precision {
            CpuPrecision::F32 => Box::new(CpuBackend::<f32>::new(network)),
            CpuPrecision::F64 => Box::new(CpuBackend::<f64>::new(network)),
        }
    };
    Ok(match choice {
        BackendChoice::Cpu => Selected {
            backend: cpu(),
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
                backend: cpu(),
                note: Some(format!("using the CPU backend: {why}")),
            },
            Err(e) => return Err(e),
        },
    })
}
